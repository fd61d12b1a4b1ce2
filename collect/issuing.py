"""Issuing a round: pick the agencies in scope, gather what to prefill, stamp one workbook each, record them."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from collect.agencies import Agency
from collect.errors import CollectError, NotFound
from collect.normalise import normalise_value
from collect.spec import Collection, parse_round, previous_round, round_end
from collect.stamp import AgencyCopy, Issued, issue_round
from collect.workspace import Context


@dataclass(frozen=True)
class IssueResult:
    collection: Collection
    round_id: str
    deadline: date
    issued: list[Issued]
    out_dir: Path
    new_version: bool
    by_supervisor: dict[str, int]


def scope_agencies(ctx: Context, coll: Collection, only: Sequence[str] = ()) -> list[Agency]:
    """The active agencies a collection's round goes to, or the ones named with --agency."""
    in_scope = ctx.registry.in_scope(coll.in_scope_codes())
    if not only:
        return in_scope
    by_code = {a.code: a for a in in_scope}
    missing = [c for c in only if c not in by_code]
    if missing:
        unknown = [c for c in missing if ctx.registry.get(c) is None]
        what = "not on the agency list" if unknown else f"not in scope of {coll.id}"
        raise NotFound(f"Agency {', '.join(missing)}: {what}.", "`collect agencies` lists every agency code.")
    return [by_code[c] for c in only]


def read_prefill(path: Path, coll: Collection) -> dict[str, list[dict[str, Any]]]:
    """A prefill file (CSV or xlsx) keyed by 機關代碼, with columns titled as the form's -> rows per agency."""
    if not path.is_file():
        raise NotFound(f"The prefill file {path} does not exist.")
    if path.suffix.lower() in (".xlsx", ".xlsm", ".xls", ".ods"):
        frame = pd.read_excel(path, dtype=object, engine="calamine")
    else:
        raw = path.read_bytes()
        text = raw.decode("utf-8-sig", errors="strict") if raw else ""
        frame = pd.DataFrame(list(csv.DictReader(io.StringIO(text))), dtype=object)
    if "機關代碼" not in frame.columns:
        raise CollectError(f"The prefill file {path} has no 機關代碼 column.",
                           "Its first row must name 機關代碼 and the form's column titles.")
    by_title = {c.title: c for c in coll.inputs}
    unknown = [t for t in frame.columns if t != "機關代碼" and t not in by_title]
    if unknown:
        raise CollectError(f"The prefill file {path} has columns the form does not: {', '.join(map(str, unknown))}.")
    out: dict[str, list[dict[str, Any]]] = {}
    for line, rec in enumerate(frame.to_dict("records"), start=2):
        code = str(rec.pop("機關代碼") or "").strip()
        row: dict[str, Any] = {}
        for title, raw_value in rec.items():
            col = by_title[str(title)]
            value, error = normalise_value(raw_value, col.kind if col.kind != "formula" else "text")
            if error:
                raise CollectError(f"{path}, row {line}, {title}: {raw_value!r} is not a valid {col.kind}.")
            if value is not None:
                row[col.key] = value
        out.setdefault(code, []).append(row)
    return out


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
    """Stamp one workbook per agency in scope into outbox/<collection>/<round>/issued/ and record them."""
    coll = ctx.collection(cid)
    parse_round(round_id)
    secret = ctx.ws.secret()
    targets = scope_agencies(ctx, coll, agencies)
    deadline = deadline or default_deadline(ctx, coll, round_id, today or date.today())
    prefilled = read_prefill(prefill, coll) if prefill else {}
    reg = ctx.registry
    copies = []
    for agency in targets:
        rows = prefilled.get(agency.code) or (carried_rows(ctx, coll, round_id, agency.code)
                                              if coll.meta.prefill_previous else [])
        sup = reg.supervisor_of(agency.code)
        copies.append(AgencyCopy(agency.code, agency.name, sup.name, rows))
    out_dir = ctx.ws.round_dir(cid, round_id) / "issued"
    new_version = ctx.ledger.record_version(cid, coll.version)
    ctx.ledger.upsert_round(cid, round_id, deadline.isoformat(), coll.version)
    total = len(copies)
    count = 0

    def tick(_copy: AgencyCopy) -> None:
        nonlocal count
        count += 1
        if progress:
            progress(count, total)

    issued = issue_round(coll, round_id, deadline, copies, secret, out_dir, tick)
    ctx.ledger.record_issued(cid, round_id, [
        (i.agency, i.stamp.version, i.stamp.token, str(i.path.relative_to(ctx.ws.root))) for i in issued])
    by_sup: dict[str, int] = {}
    for agency in targets:
        name = reg.supervisor_of(agency.code).name
        by_sup[name] = by_sup.get(name, 0) + 1
    return IssueResult(coll, round_id, deadline, issued, out_dir, new_version, by_sup)
