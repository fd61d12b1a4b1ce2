"""Issuing a round: pick the agencies in scope, gather what to prefill, stamp one workbook each, record them."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd

from collect.agencies import Agency
from collect.archive import write_atomic
from collect.errors import CollectError, NotFound
from collect.forms.spec import Collection, IssuedFacts
from collect.forms.stamp import AgencyCopy, Issued, RoundBook, Stamp, file_name, issue_round, make_stamp
from collect.normalise import normalise_value
from collect.rounds import parse_round, previous_round, round_end
from collect.workspace import Context
from collect.xlsx import odf
from collect.xlsx.values import first_sheet_frame


@dataclass(frozen=True)
class IssueResult:
    collection: Collection
    round_id: str
    deadline: date
    issued: list[Issued]
    out_dir: Path
    new_version: bool
    by_supervisor: dict[str, int]


def scope_agencies(ctx: Context, coll: Collection, only: Sequence[str] = (),
                   prefill_codes: Sequence[str] | None = None) -> list[Agency]:
    """The active agencies a collection's round goes to, or the ones named with --agency.

    A collection with Meta(scope="prefill") goes to the agencies named in the round's prefill file
    (`prefill_codes`), and cannot be issued without one.
    """
    if coll.meta.scope == "prefill":
        if prefill_codes is None:
            raise CollectError(f"{coll.id} goes to the agencies named in its prefill file; none was given.",
                               f"Pass --prefill FILE (a CSV/xlsx with 機關代碼 and the form's columns), e.g. "
                               f"samples/{coll.id}-<round>.csv.")
        unknown = sorted({c for c in prefill_codes if ctx.registry.get(c) is None})
        if unknown:
            raise NotFound(f"The prefill file names agency codes not on the agency list: {', '.join(unknown)}.",
                           "`collect agencies` lists every agency code.")
        in_scope = ctx.registry.in_scope(list(prefill_codes))
    else:
        in_scope = ctx.registry.in_scope(coll.in_scope_codes())
        codes = {a.code for a in in_scope}
        stray = sorted({c for c in prefill_codes or () if c not in codes})
        if stray:  # a typo in the office's prefill file must not silently leave an agency's form blank
            raise NotFound(f"The prefill file names agency codes that are not in scope of {coll.id}: "
                           f"{', '.join(stray)}.", "Correct them; `collect agencies` lists every agency code.")
    if not only:
        return in_scope
    by_code = {a.code: a for a in in_scope}
    missing = [c for c in only if c not in by_code]
    if missing:
        unknown = [c for c in missing if ctx.registry.get(c) is None]
        what = "not on the agency list" if unknown else f"not in scope of {coll.id}"
        raise NotFound(f"Agency {', '.join(missing)}: {what}.", "`collect agencies` lists every agency code.")
    return [by_code[c] for c in only]


@dataclass(frozen=True)
class Prefill:
    """A prefill file read: data rows and header field values per agency code."""

    rows: dict[str, list[dict[str, Any]]]
    fields: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def codes(self) -> list[str]:
        """Every agency code the file names, in file order."""
        return list(dict.fromkeys([*self.rows, *self.fields]))


def read_prefill_file(path: Path, coll: Collection) -> Prefill:
    """A prefill file keyed by 機關代碼 whose other columns are titled as the form's columns or header fields.

    A line whose form columns are all blank adds no data row (a line may carry only header fields, or only the
    code of an agency in a "prefill" scope). Header field values may repeat on each line of an agency but must
    agree.
    """
    if not path.is_file():
        raise NotFound(f"The prefill file {path} does not exist.")
    if path.suffix.lower() in (".xlsx", ".xlsm", ".xls", ".ods"):
        frame = first_sheet_frame(path)
    else:
        raw = path.read_bytes()
        text = raw.decode("utf-8-sig", errors="strict") if raw else ""
        frame = pd.DataFrame(list(csv.DictReader(io.StringIO(text))), dtype=object)
    if "機關代碼" not in frame.columns:
        raise CollectError(f"The prefill file {path} has no 機關代碼 column.",
                           "Its first row must name 機關代碼 and the form's column titles.")
    by_title = {c.title: c for c in coll.inputs}
    field_by_title = {f.title: f for f in coll.meta.fields}
    unknown = [t for t in frame.columns if t != "機關代碼" and t not in by_title and t not in field_by_title]
    if unknown:
        raise CollectError(f"The prefill file {path} has columns the form does not: {', '.join(map(str, unknown))}.")
    rows: dict[str, list[dict[str, Any]]] = {}
    fields: dict[str, dict[str, Any]] = {}
    for line, rec in enumerate(frame.to_dict("records"), start=2):
        code_value = rec.pop("機關代碼")
        code = str(code_value).strip() if _present(code_value) else ""
        if not code:
            if any(_present(v) for v in rec.values()):
                raise CollectError(f"{path}, row {line}: 機關代碼 is blank.")
            continue
        row: dict[str, Any] = {}
        for title, raw_value in rec.items():
            f = field_by_title.get(str(title))
            if f is not None:
                value, error = normalise_value(raw_value, f.kind)
                if error:
                    raise CollectError(f"{path}, row {line}, {title}: {raw_value!r} is not a valid {f.kind}.")
                mine = fields.setdefault(code, {})
                if value is not None and f.key in mine and mine[f.key] != value:
                    raise CollectError(f"{path}, row {line}, {title}: {code} has {mine[f.key]!r} on an earlier row "
                                       f"and {value!r} here.")
                if value is not None:
                    mine[f.key] = value
                continue
            col = by_title[str(title)]
            value, error = normalise_value(raw_value, col.kind if col.kind != "formula" else "text")
            if error:
                raise CollectError(f"{path}, row {line}, {title}: {raw_value!r} is not a valid {col.kind}.")
            if value is not None:
                row[col.key] = value
        agency_rows = rows.setdefault(code, [])
        if row:
            agency_rows.append(row)
    return Prefill(rows, fields)


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and pd.isna(value)) and str(value).strip() != ""


# -- what was prefilled, kept under state/issued/ for validating the returns ------------------------------------
def issued_facts_path(ctx: Context, cid: str, round_id: str, agency: str) -> Path:
    return ctx.ws.state_dir / "issued" / cid / round_id / f"{agency}.json"


def _json_value(value: Any) -> Any:
    if isinstance(value, pd.Timestamp):
        return value.date().isoformat()
    if isinstance(value, datetime | date):
        return value.isoformat()[:10]
    if isinstance(value, Decimal):
        return str(value)
    return value


def record_issued_facts(ctx: Context, coll: Collection, round_id: str, copy: AgencyCopy) -> Path | None:
    """Keep what an agency's copy was prefilled with that its return is held to: header fields, locked cells."""
    locked = [c.key for c in coll.locked_columns]
    if not locked and not coll.meta.fields:
        return None
    assert coll.layout is not None
    rows = []
    for i, row in enumerate(copy.rows):
        values = {k: _json_value(row[k]) for k in locked if row.get(k) is not None}
        if values:
            rows.append({"row": coll.layout.data_rows[i], "values": values})
    doc = {"collection": coll.id, "round": round_id, "agency": copy.code, "version": coll.version,
           "fields": {k: _json_value(v) for k, v in copy.fields.items() if v is not None}, "rows": rows}
    path = issued_facts_path(ctx, coll.id, round_id, copy.code)
    write_atomic(path, json.dumps(doc, ensure_ascii=False, indent=1).encode("utf-8"))
    return path


def issued_facts(ctx: Context, coll: Collection, round_id: str, agency: str) -> IssuedFacts | None:
    """What one agency's copy of a round was prefilled with (header fields, locked cells), or None if not kept.

    ingest hands this to validation (ToCheck.issued), so a return is held to what was issued, not to what the
    returned file says was issued (sheet protection is a convenience, not security).
    """
    path = issued_facts_path(ctx, coll.id, round_id, agency)
    if not path.is_file():
        return None
    doc = json.loads(path.read_text(encoding="utf-8"))
    kinds = {c.key: c.kind for c in coll.columns} | {f.key: f.kind for f in coll.meta.fields}
    fields = {k: _from_json(v, kinds.get(k, "text")) for k, v in doc.get("fields", {}).items()}
    rows = tuple((int(r["row"]), {k: _from_json(v, kinds.get(k, "text")) for k, v in r["values"].items()})
                 for r in doc.get("rows", []))
    return IssuedFacts(fields, rows)


def _from_json(value: Any, kind: str) -> Any:
    if value is None:
        return None
    if kind == "date":
        return date.fromisoformat(str(value)[:10])
    if kind == "whole":
        return int(value)
    if kind == "decimal":
        return Decimal(str(value))
    return value


def carried_rows(ctx: Context, coll: Collection, round_id: str, agency: str) -> list[dict[str, Any]]:
    """The carry-over columns of the agency's latest accepted submission of the previous round."""
    prev = ctx.ledger.latest_accepted(coll.id, previous_round(round_id), agency)
    if prev is None or not prev.frame_path:
        return []
    frame = pd.read_parquet(ctx.ws.state_dir / prev.frame_path)
    keys = [c.key for c in coll.columns if c.carry and c.key in frame.columns]
    rows = []
    for rec in frame[keys].to_dict("records"):
        rows.append({k: (None if pd.isna(v) else (v.date() if isinstance(v, pd.Timestamp) else v))
                     for k, v in rec.items()})
    return rows


def default_deadline(ctx: Context, coll: Collection, round_id: str, today: date) -> date:
    """The collection's (or workspace's) deadline days after the round's end, or after today if that is later."""
    days = coll.meta.deadline_days or ctx.ws.settings.deadline_days
    return max(today, round_end(round_id)) + timedelta(days=days)


def copy_format(ctx: Context, coll: Collection, agency: Agency) -> str:
    """The file format of an agency's copy: the agency list's 格式, else the collection's Meta(format=...), else
    collect.toml's [workspace] format."""
    fmt = agency.format or coll.meta.format or ctx.ws.settings.format
    if fmt not in ("xlsx", "ods"):
        raise CollectError(f"{coll.id}: Meta(format={fmt!r}) is not a file format collect issues.",
                           'Use format="xlsx" or format="ods" in its rules file.')
    return fmt


def issue_round_ods(coll: Collection, round_id: str, deadline: date, copies: Sequence[AgencyCopy], secret: bytes,
                    out_dir: Path, progress: Callable[[AgencyCopy], None] | None = None,
                    cache: Path | None = None) -> list[Issued]:
    """The .ods twin of issue_round: the round's workbook, with placeholders where agencies differ, converted by
    one LibreOffice run (collect.xlsx.odf.OdsCopies; kept in `cache` for issuing the round again), then one
    patched copy per agency."""
    assert coll.layout is not None
    lay = coll.layout
    book = RoundBook(coll, round_id, deadline)
    ph = odf.PLACEHOLDER.format
    base = book.render(AgencyCopy(ph("code"), ph("name"), ph("supervisor")),
                       Stamp(coll.id, round_id, ph("agency"), coll.version, ph("token")))
    twin = odf.OdsCopies(base, lay.sheet, cache=cache)
    done = []
    for copy in copies:
        stamp = make_stamp(secret, coll.id, round_id, copy.code, coll.version)
        cells: dict[str, Any] = {lay.fields[k]: v for k, v in copy.fields.items() if k in lay.fields and v is not None}
        locked = []
        for row, r in zip(copy.rows, lay.data_rows, strict=False):
            for key, value in row.items():
                col = coll.column(key) if key in book.letters else None
                if col is not None and col.is_input and value is not None:
                    cells[f"{book.letters[key]}{r}"] = value
                    if col.locked_prefill:
                        locked.append(f"{book.letters[key]}{r}")
        texts = {"code": copy.code, "name": copy.name, "supervisor": copy.supervisor, "agency": stamp.agency,
                 "token": stamp.token}
        path = out_dir / odf.ods_name(file_name(copy.code, copy.name))
        write_atomic(path, twin.render(texts, cells, locked))
        done.append(Issued(copy.code, path, stamp))
        if progress:
            progress(copy)
    return done


def issue(
    ctx: Context,
    cid: str,
    round_id: str,
    *,
    agencies: Sequence[str] = (),
    deadline: date | None = None,
    prefill: Path | None = None,
    today: date | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> IssueResult:
    """Stamp one workbook per agency in scope into outbox/<collection>/<round>/issued/ and record them. Two staff
    issuing one round at the same moment: the second is refused (LedgerBusy)."""
    with ctx.ledger.hold(f"issue:{cid}:{round_id}", f"issuing {cid} {round_id}"):
        return _issue(ctx, cid, round_id, agencies, deadline, prefill, today, progress)


def _issue(ctx: Context, cid: str, round_id: str, agencies: Sequence[str], deadline: date | None,
           prefill: Path | None, today: date | None, progress: Callable[[int, int], None] | None) -> IssueResult:
    coll = ctx.collection(cid)
    parse_round(round_id)
    secret = ctx.ws.secret()
    pre = read_prefill_file(prefill, coll) if prefill else Prefill({})
    targets = scope_agencies(ctx, coll, agencies, pre.codes if prefill else None)
    deadline = deadline or default_deadline(ctx, coll, round_id, today or date.today())
    prefilled = pre.rows
    reg = ctx.registry
    copies = []
    for agency in targets:
        rows = prefilled.get(agency.code) or (carried_rows(ctx, coll, round_id, agency.code)
                                              if coll.meta.prefill_previous else [])
        sup = reg.supervisor_of(agency.code)
        copies.append(AgencyCopy(agency.code, agency.name, sup.name, rows, pre.fields.get(agency.code, {})))
    out_dir = ctx.ws.round_dir(cid, round_id) / "issued"
    formats = {a.code: copy_format(ctx, coll, a) for a in targets}
    total = len(copies)
    count = 0

    def tick(_copy: AgencyCopy) -> None:
        nonlocal count
        count += 1
        if progress:
            progress(count, total)

    xlsx, ods = [c for c in copies if formats[c.code] != "ods"], [c for c in copies if formats[c.code] == "ods"]
    issued = (issue_round(coll, round_id, deadline, xlsx, secret, out_dir, tick) if xlsx or not ods else []) + (
        issue_round_ods(coll, round_id, deadline, ods, secret, out_dir, tick, ctx.ws.state_dir / "cache" / "ods")
        if ods else [])
    # recorded only once every workbook is stamped: a failed issue leaves no round behind
    new_version = ctx.ledger.record_version(cid, coll.version)
    ctx.ledger.upsert_round(cid, round_id, deadline.isoformat(), coll.version)
    for copy in copies:
        record_issued_facts(ctx, coll, round_id, copy)
    ctx.ledger.record_issued(cid, round_id, [
        (i.agency, i.stamp.version, i.stamp.token, str(i.path.relative_to(ctx.ws.root))) for i in issued])
    by_sup: dict[str, int] = {}
    for agency in targets:
        name = reg.supervisor_of(agency.code).name
        by_sup[name] = by_sup.get(name, 0) + 1
    return IssueResult(coll, round_id, deadline, issued, out_dir, new_version, by_sup)
