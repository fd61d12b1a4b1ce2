"""The worker's examination of received files: read, identify, lift, validate and annotate, in a sandbox worker."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from collect import findings as F
from collect.config import load_workspace
from collect.findings import Finding, has_errors
from collect.forms import signoff_book
from collect.forms.issuing import issued_facts
from collect.forms.spec import Collection
from collect.forms.stamp import Stamp
from collect.receive.annotate import annotate
from collect.receive.convert import to_xlsx
from collect.receive.formulas import Result, evaluate
from collect.receive.identify import check_identity, check_stamp, describe, read_stamp
from collect.receive.read import Book, ReadError, read_book, unread_cells
from collect.receive.sandbox import Crashed, TimedOut, TooLarge
from collect.receive.table import Grid, Table, causes_first, extract, place_read_findings
from collect.receive.validate import ToCheck, validate_many
from collect.rounds import previous_round, roc_deadline, roc_round_label
from collect.states import Verdict
from collect.workspace import Context
from collect.xlsx.odf_annotate import annotate_ods

log = logging.getLogger("collect.receive.worker")


@dataclass(frozen=True)
class Job:
    """One file to examine: the workspace and its stamp key, the file's bytes, who sent it, its receipt id."""

    root: str
    secret: bytes
    data: bytes
    sender: str | None
    receipt: str


@dataclass
class Examination:
    """What a worker found in one file; the parent records it. `stamp` is None when it names nobody."""

    verdict: Verdict
    findings: list[Finding]
    kind: str | None = None
    stamp: Stamp | None = None
    collection: str | None = None
    frame_path: str | None = None  # the typed rows, written by the worker under the workspace's state folder
    rows: int | None = None
    annotated: bytes | None = None
    known: Known | None = None  # what the receipt says of the collection, round and agency, looked up here once


@dataclass(frozen=True)
class Known:
    """The collection, round and agency as the worker looked them up, for the parent's receipt."""

    title: str = ""
    deadline: str = ""
    agency_name: str = ""
    agency_emails: tuple[str, ...] = ()


_WORKER_CONTEXTS: dict[tuple[str, float], Context] = {}


def _worker_context(root: str) -> Context:
    """A context per workspace in each worker, opened again when the agency list changes."""
    ws = load_workspace(root)
    key = (root, ws.agencies_path.stat().st_mtime if ws.agencies_path.exists() else 0.0)
    if key not in _WORKER_CONTEXTS:
        for old in [k for k in _WORKER_CONTEXTS if k[0] == root]:
            _WORKER_CONTEXTS.pop(old).close()
        _WORKER_CONTEXTS[key] = Context(ws)
    return _WORKER_CONTEXTS[key]


@dataclass
class _Lifted:
    """A file read, identified and lifted into a table, waiting to be validated with the rest of its batch."""

    kind: str
    stamp: Stamp
    coll: Collection
    found: list[Finding]
    check: ToCheck
    known: Known | None = None
    formulas: dict[str, tuple[str, Result]] = field(default_factory=dict)  # input A1 -> (column title, its formula)


def examine_batch(jobs: Sequence[Job]) -> list[Examination]:
    """Examine files in a sandbox worker (memory and time limits): each is read, identified and lifted on its own;
    the tables of one collection and round are then validated together, and each file annotated."""
    ctx = _worker_context(jobs[0].root)
    staged: list[Examination | _Lifted] = []
    parts: list[dict[str, bytes]] = []  # each file's decompressed sheets, for its annotated copy
    for job in jobs:
        try:
            book = read_book(job.data)
        except ReadError as exc:
            staged.append(Examination(Verdict.UNREADABLE, [exc.finding(ctx.locale)]))
            parts.append({})
            continue
        staged.append(_lift(ctx, job, book))
        parts.append(book.parts)
    done = [item if isinstance(item, Examination) else None for item in staged]
    groups: dict[tuple[str, str], list[tuple[int, _Lifted]]] = {}
    for i, item in enumerate(staged):
        if isinstance(item, _Lifted):
            groups.setdefault((item.coll.id, item.stamp.round), []).append((i, item))
    for (cid, round_id), members in groups.items():
        checks = validate_many([item.check for _, item in members], members[0][1].coll, round_id, ctx.locale)
        for (i, item), checked in zip(members, checks, strict=True):
            found = causes_first(item.found + item.check.table.findings + checked.findings
                                 + _formula_findings(item, ctx.locale))  # a cell read as blank is not 「必須填寫」 too
            found = listed(found, ctx.locale)
            verdict = Verdict.REJECTED if has_errors(found) else Verdict.ACCEPTED
            saved = _save_rows(ctx, jobs[i], checked.frame)
            done[i] = Examination(verdict, found, item.kind, item.stamp, cid, saved, len(checked.frame),
                                  known=item.known)
    out = []
    for job, ex, decompressed in zip(jobs, done, parts, strict=True):
        assert ex is not None
        if ex.findings and ex.collection and ex.stamp and ex.kind and ex.verdict != Verdict.QUARANTINED:
            # held for staff: nothing to mark, no copy to an unknown sender
            ex.annotated = _annotate(job, ex.kind, ex.findings, ctx.collection(ex.collection), ex.stamp.round,
                                     ex.verdict, decompressed)
        out.append(ex)
    return out


def _save_rows(ctx: Context, job: Job, frame: pd.DataFrame) -> str:
    """Write a validated table's typed rows as Parquet (column _row: the Excel row); the path under state/."""
    rel = f"frames/{job.receipt}.parquet"
    path = ctx.ws.state_dir / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(frame.reset_index().rename(columns={"row": "_row"}), preserve_index=False)
    pq.write_table(table, path)  # pyarrow itself: 1.8 ms for 1,000 rows, where DataFrame.to_parquet takes 2.7 ms
    return rel


def _lift(ctx: Context, job: Job, book: Book) -> Examination | _Lifted:
    """Identify one read file and lift its table; what needs no validation is decided here already."""
    locale = ctx.locale
    ident = read_stamp(book)
    if ident is None:
        return Examination(Verdict.UNIDENTIFIED, [F.make("stamp.missing", locale, detail=describe(book))], book.kind)
    if signoff_book.is_signoff(ident.stamp):  # a supervising agency's 核轉表, not a unit's return
        return _lift_signoff(ctx, job, book, ident)
    stamp: Stamp | None = ident.stamp
    verdict, found, coll, known = _identify(ctx, book, ident, job.sender, job.secret)
    if verdict is None and coll is not None and stamp is not None:
        table = extract(book, coll, locale)
        if isinstance(table, list):
            return Examination(Verdict.REJECTED, found + table, book.kind, stamp, coll.id, known=known)
        found = found + place_read_findings(book.findings, table, coll, locale)  # cells reading could not read
        prev = ctx.ledger.latest_accepted(coll.id, previous_round(stamp.round), stamp.agency)
        previous = pd.read_parquet(ctx.ws.state_dir / prev.frame_path) if prev and prev.frame_path else None
        issued = issued_facts(ctx, coll, stamp.round, stamp.agency)
        formulas = _compute_formulas(job, book, coll, table)
        return _Lifted(book.kind, stamp, coll, found, ToCheck(table, previous, issued), known, formulas)
    if any(f.code == "stamp.invalid" for f in found):
        stamp = None  # a stamp that does not verify names nobody: no agency, no receipt to it
    assert verdict is not None
    return Examination(verdict, found, book.kind, stamp, coll.id if coll else None, known=known)


def _lift_signoff(ctx: Context, job: Job, book: Book, ident: Any) -> Examination:
    """A returned sign-off workbook: the same stamp check, then its own rules (collect.forms.signoff_book). Its
    decisions are saved like a return's rows; collect.follow.signoff applies them once it is accepted."""
    bad = check_stamp(ident, job.secret, ctx.locale)
    if bad is not None:
        return Examination(Verdict.TAMPERED, [bad], book.kind)
    sheet = book.sheet(signoff_book.SHEET)
    grid = Grid(sheet) if sheet is not None else None
    ex = signoff_book.examine(ctx, ident.stamp, grid.get if grid else None, grid.last_row if grid else 0,
                              job.sender, ctx.locale)
    cid = None if ex.verdict == Verdict.UNIDENTIFIED else signoff_book.collection_of(ident.stamp)
    saved = _save_rows(ctx, job, ex.frame) if ex.verdict == Verdict.ACCEPTED else None
    return Examination(ex.verdict, ex.findings, book.kind, ident.stamp, cid, saved,
                       len(ex.frame) if saved else None)


MAX_LISTED_PER_COLUMN = 100  # findings listed per column; the rest are counted in one finding


def listed(found: list[Finding], locale: str, limit: int = MAX_LISTED_PER_COLUMN) -> list[Finding]:
    """At most `limit` findings per column, the rest counted in one finding per column (an error if any of them is):
    the receipt, the JSON line and the annotated copy grow with the rows only up to that."""
    per_column: dict[str, int] = {}
    out: list[Finding] = []
    rest: dict[str, list[Finding]] = {}
    for f in found:
        if f.column is None:
            out.append(f)
            continue
        per_column[f.column] = per_column.get(f.column, 0) + 1
        if per_column[f.column] <= limit:
            out.append(f)
        else:
            rest.setdefault(f.column, []).append(f)
    for column, more in rest.items():
        out.append(F.make("column.more", locale, sheet=more[0].sheet, column=column, value=f"{len(more):,}",
                          detail=limit, severity="error" if has_errors(more) else "warning"))
    return out


def _compute_formulas(job: Job, book: Book, coll: Collection, table: Table) -> dict[str, tuple[str, Result]]:
    """The table's input cells the reader saw empty though they are not: a formula with no saved result, computed
    from the workbook's own cells where collect can (the value is put in the table before validation), and an Excel
    error value (#DIV/0!), which Excel computed or the agency typed."""
    if book.kind not in ("xlsx", "xlsm"):
        return {}
    unread = unread_cells(book)
    in_sheet = unread.formulas.get(table.sheet, {})
    errors = unread.errors.get(table.sheet, {})
    if not in_sheet and not errors:
        return {}
    where = {}
    for row in table.raw.index:
        for col in coll.inputs:
            ref = table.cell(col.key, int(row))
            if ref in in_sheet or ref in errors:
                where[ref] = (int(row), col)
    out = {ref: (where[ref][1].title, Result(formula, error=error)) for ref, (formula, error) in errors.items()
           if ref in where}
    for ref, result in evaluate(book, unread.formulas, table.sheet, [r for r in where if r in in_sheet]).items():
        row, col = where[ref]
        if result.computed and not result.error:
            table.raw.at[row, col.key] = result.value
        out[ref] = (col.title, result)
    return out


def _formula_findings(item: _Lifted, locale: str) -> list[Finding]:
    """The input cells the reader saw empty (_compute_formulas): a value collect computed is checked like any other,
    and one warning says so; where it could not be computed, or is an Excel error, a finding names the formula at its
    cell (causes_first then drops the 「必須填寫」 ... its blank caused; an optional cell is never silently dropped)."""
    sheet = item.check.table.sheet
    failed = {ref: pair for ref, pair in item.formulas.items() if pair[1].error or not pair[1].computed}
    kept: list[Finding] = []
    for ref, (title, result) in failed.items():
        if result.error:
            code, detail, value = ("value.formula_error" if result.formula else "value.error_value", result.error,
                                   result.formula or result.error)
        else:
            code, detail, value = "value.formula_no_result", result.reason, result.formula
        kept.append(F.make(code, locale, sheet=sheet, cell=ref, column=title, value=value, detail=detail))
    computed = [(ref, result) for ref, (_title, result) in item.formulas.items() if ref not in failed]
    if computed:
        ref, first = computed[0]
        kept.append(F.make("value.formula_computed", locale, sheet=sheet, count=f"{len(computed):,}",
                           detail=f"{ref} {first.formula} = {first.value}"))
    return kept


def as_examination(result: Examination | BaseException, locale: str) -> Examination:
    """A worker's answer; a file that killed or hung the worker is unreadable, a program failure is raised."""
    if isinstance(result, Examination):
        return result
    if isinstance(result, Crashed):
        return Examination(Verdict.UNREADABLE, [ReadError("file.reader_failed", "讀取程式異常終止（可能是記憶體不足）")
                                                .finding(locale)])
    if isinstance(result, TimedOut):
        return Examination(Verdict.UNREADABLE, [ReadError("file.reader_failed", "讀取時間過長").finding(locale)])
    if isinstance(result, TooLarge):
        return Examination(Verdict.UNREADABLE, [ReadError("file.too_large", str(result)).finding(locale)])
    if isinstance(result, Exception):
        raise result
    return Examination(Verdict.UNREADABLE, [ReadError("file.reader_failed", f"{type(result).__name__}: {result}"[:160])
                                            .finding(locale)])


def _identify(ctx: Context, book: Book, ident: Any, sender: str | None,
              secret: bytes) -> tuple[Verdict | None, list[Finding], Collection | None, Known | None]:
    locale, stamp = ctx.locale, ident.stamp
    bad = check_stamp(ident, secret, locale)
    if bad is not None:
        return Verdict.TAMPERED, [bad], None, None
    if stamp.collection not in ctx.collection_ids():
        return (Verdict.UNIDENTIFIED, [F.make("stamp.unknown_collection", locale, value=stamp.collection)], None,
                None)
    coll = ctx.collection(stamp.collection)  # broken rules are the office's failure: raised, never a verdict
    info = ctx.ledger.round_info(coll.id, stamp.round)
    deadline = roc_deadline(info)
    agency = ctx.registry.get(stamp.agency)
    if agency is None:
        return (Verdict.UNIDENTIFIED, [F.make("stamp.unknown_agency", locale, value=stamp.agency)], coll,
                Known(coll.title, deadline))
    known = Known(coll.title, deadline, agency.name, tuple(agency.emails))
    changed = check_identity(book, coll, stamp, locale)
    if changed:
        return Verdict.TAMPERED, changed, coll, known
    found: list[Finding] = []
    if sender is not None and sender.lower() not in ctx.registry.addresses_for(stamp.agency):
        found.append(F.make("sender.unknown", locale, value=sender, detail=agency.name))
        return Verdict.QUARANTINED, found, coll, known
    if info and info["closed"]:
        found.append(F.make("stamp.round_closed", locale, value=roc_round_label(stamp.round),
                            severity="error" if coll.meta.closed_round == "error" else "warning"))
    if stamp.version != coll.version:
        found.append(F.make("stamp.old_version", locale, value=stamp.version,
                            severity="error" if coll.meta.old_version == "error" else "warning"))
    return None, found, coll, known


def _annotate(job: Job, kind: str, found: list[Finding], coll: Collection, round_id: str, verdict: Verdict,
              parts: dict[str, bytes]) -> bytes | None:
    errors = sum(f.severity == "error" for f in found)
    summary = [f"收件編號：{job.receipt}", f"檢核結果：{'通過' if verdict == Verdict.ACCEPTED else '退件'}",
               f"錯誤 {errors} 項、警告 {len(found) - errors} 項"]
    data = job.data
    title = f"{coll.title} {roc_round_label(round_id)} 檢核結果"
    if kind == "ods":  # answered in its own format: the .ods marked in place (no LibreOffice run)
        try:
            return annotate_ods(data, found, title=title, summary_lines=summary)
        except Exception as exc:  # an .ods it cannot edit: converted to .xlsx below, as before
            log.warning("%s: the .ods copy could not be marked in place (%s: %s); converting it to .xlsx",
                        job.receipt, exc.__class__.__name__, exc, exc_info=True)
    if kind in ("xls", "ods"):  # the agency's own workbook with its formatting, not a copy of its values
        converted = to_xlsx(data, kind)
        if converted is not None:
            data, kind, parts = converted, "xlsx", {}
    try:
        return annotate(data, kind, found, title=title, summary_lines=summary, parts=parts)
    except Exception as exc:  # the receipt still lists every finding; the copy is a convenience
        log.warning("%s: no annotated copy (%s: %s)", job.receipt, exc.__class__.__name__, exc, exc_info=True)
        return None
