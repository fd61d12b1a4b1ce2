"""`collect check`'s dry round: issue a collection to one sample agency in a scratch workspace, fill it as a person
would, ingest it, and say in plain words what would go wrong for real."""

from __future__ import annotations

import random
import shutil
import tempfile
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import openpyxl

from collect.errors import CollectError
from collect.forms.collection import check as agreement
from collect.forms.sentence import filled_sentences
from collect.forms.spec import Collection, ColumnSpec
from collect.receive.ingest import Ingestor
from collect.rounds import round_end
from collect.states import Verdict
from collect.workspace import Context, init_workspace

PERIOD_ROUND = {"month": "{y}-{m:02d}", "quarter": "{y}-Q{q}", "half": "{y}-H{h}", "session": "{y}-S1",
                "year": "{y}", "any": "{y}-{m:02d}"}


@dataclass(frozen=True)
class CheckResult:
    """What `collect check ID` found: mismatches of template and rules, then the dry round's problems."""

    cid: str
    problems: list[str]
    dry_round: str  # what the dry round did, in a few words ("" when it did not run)

    @property
    def ok(self) -> bool:
        return not self.problems


def check_collections(ctx: Context, ids: list[str], *, dry_run: bool = True, today: date | None = None,
                      strict: bool = False) -> list[CheckResult]:
    """Check each collection: its template against its rules, then (when they agree) a dry round. A collection
    whose rules cannot be loaded at all is a problem of its line, or (`strict`, one collection asked for) raised."""
    results: list[CheckResult] = []
    ready: list[str] = []
    for cid in ids:
        try:
            problems = agreement(ctx.ws.rules_dir, ctx.ws.templates_dir, cid)
        except CollectError as exc:
            if strict:
                raise
            problems = [exc.message]
        if problems or not dry_run:
            results.append(CheckResult(cid, problems, ""))
        else:
            ready.append(cid)
    if ready:
        results.extend(dry_rounds(ctx, ready, today or date.today()))
    order = {cid: i for i, cid in enumerate(ids)}
    return sorted(results, key=lambda r: order[r.cid])


def sample_round(coll: Collection, today: date) -> str:
    return PERIOD_ROUND.get(coll.meta.period, PERIOD_ROUND["any"]).format(
        y=today.year, m=today.month, q=(today.month - 1) // 3 + 1, h=1 if today.month <= 6 else 2)


def dry_rounds(ctx: Context, ids: list[str], today: date) -> list[CheckResult]:
    """One scratch workspace, one ingest for all the collections given."""
    out: list[CheckResult] = []
    with tempfile.TemporaryDirectory(prefix="collect-check-") as tmp:
        root = Path(tmp) / "ws"
        init_workspace(root, collections=[])
        (root / "rules").mkdir(exist_ok=True)
        (root / "templates_xlsx").mkdir(exist_ok=True)
        for cid in ids:
            shutil.copyfile(ctx.ws.rules_dir / f"{cid}.py", root / "rules" / f"{cid}.py")
            shutil.copyfile(ctx.ws.templates_dir / f"{cid}.xlsx", root / "templates_xlsx" / f"{cid}.xlsx")
        shutil.copyfile(ctx.ws.agencies_path, root / "agencies.csv")
        scratch = Context.open(root)
        files: dict[str, tuple[Path, Path, str]] = {}
        for cid in ids:
            if scratch.collection(cid).meta.scope == "prefill":
                out.append(CheckResult(cid, [], "skipped (issued only with a prefill file: try it with "
                                                 "`collect issue --prefill`)"))
                continue
            try:
                files[cid] = _issue_and_fill(scratch, cid, today)
            except CollectError as exc:
                out.append(CheckResult(cid, [f"dry round: issuing fails: {exc.message}"], "issue"))
            except Exception as exc:  # a crash here would be a crash of `collect issue`: say so, never pass
                out.append(CheckResult(cid, [f"dry round: issuing crashes ({exc.__class__.__name__}: {exc}); "
                                             f"`collect issue` would fail the same way."], "issue"))
        if files:
            with Ingestor(scratch) as ing:
                outcomes = ing.paths([p for filled, empty, _ in files.values() for p in (filled, empty)])
            by_file = {o.file: o for o in outcomes}
            for cid, (filled, empty, agency) in files.items():
                out.append(_judge(cid, agency, by_file.get(filled.name), by_file.get(empty.name)))
        scratch.close()
    return out


def _issue_and_fill(ctx: Context, cid: str, today: date) -> tuple[Path, Path, str]:
    from collect.forms.issuing import issue

    coll = ctx.collection(cid)
    round_id = sample_round(coll, today)
    agencies = ctx.registry.in_scope(coll.in_scope_codes())
    if not agencies:
        raise CollectError(f"no agency of the agency list is in the collection's scope ({coll.meta.scope}).")
    result = issue(ctx, cid, round_id, agencies=[agencies[0].code], today=today)
    issued = result.issued[0].path
    empty = issued.with_name(f"untouched-{cid}.xlsx")
    shutil.copyfile(issued, empty)
    filled = issued.with_name(f"filled-{cid}.xlsx")
    fill_sample(coll, issued, filled, round_id)
    return filled, empty, agencies[0].code


def fill_sample(coll: Collection, issued: Path, target: Path, round_id: str) -> None:
    """Type a valid value into every input cell of one row (a list) or every input cell (a cell form), as a person
    would in Excel; a collection's own `sample_rows` hook gives the row where it has one."""
    assert coll.layout is not None
    lay = coll.layout
    wb = openpyxl.load_workbook(issued)
    ws = wb[lay.sheet]
    if lay.cells:
        for col in coll.inputs:
            ws[lay.cells[col.key]] = sample_value(col, round_id)
        for ref, text in filled_sentences(coll.meta, {c.key: sample_value(c, round_id) for c in coll.inputs}).items():
            ws[ref] = text  # a sentence field: its blanks filled in the printed words
    else:
        rows = coll.sample_rows(random.Random(1), round_id, None)[:2] if coll.sample_rows else []
        rows = rows or [{c.key: sample_value(c, round_id) for c in coll.inputs}]
        for row, r in zip(rows, lay.data_rows, strict=False):
            for col in coll.inputs:
                value = row.get(col.key)
                if value is not None:
                    ws[f"{lay.letters.get(col.key) or _letter(coll, col)}{r}"] = _excel(value)
    wb.save(target)


def _letter(coll: Collection, col: ColumnSpec) -> str:
    from openpyxl.utils import get_column_letter

    assert coll.layout is not None
    return get_column_letter(coll.layout.first_col + [c.key for c in coll.columns].index(col.key))


def _excel(value: Any) -> Any:
    return int(value) if isinstance(value, Decimal) and value == value.to_integral_value() else (
        float(value) if isinstance(value, Decimal) else value)


def sample_value(col: ColumnSpec, round_id: str) -> Any:
    """A value the column accepts, as a person types it."""
    if col.choices:
        return col.choices[0]
    if col.kind == "date":
        lo, hi = col.date_bounds(round_id)
        day = hi or min(round_end(round_id), date.today())
        return max(day, lo) if lo else day
    if col.kind in ("whole", "decimal"):
        least: float = float(col.ge) if col.ge is not None else 0.0
        number = max(least, 1000.0 if col.money else 1.0)
        if col.le is not None:
            number = min(number, float(col.le))
        return int(number) if col.kind == "whole" else number
    if col.kind == "code":
        return "A001"[: col.max_length or 4]
    text = "測試資料"
    return text[: col.max_length] if col.max_length else text


def _judge(cid: str, agency: str, filled: Any, empty: Any) -> CheckResult:
    problems: list[str] = []
    if filled is None or empty is None:
        return CheckResult(cid, ["dry round: the sample returns got no verdict at all."], "ingest")
    if filled.verdict != Verdict.ACCEPTED:
        shown = "; ".join(f"{f.cell or f.sheet or ''} {f.message}".strip() for f in filled.findings[:5])
        problems.append(f"dry round: a correctly filled return of agency {agency} was {filled.verdict}: {shown}")
    if not any(f.code == "table.empty" for f in empty.findings) or empty.verdict == Verdict.ACCEPTED:
        shown = "; ".join(f"{f.code} {f.cell or ''}" for f in empty.findings[:5]) or "no finding"
        problems.append(f"dry round: the untouched workbook was {empty.verdict} ({shown}), not rejected as empty; "
                        f"something of the form is read as data (a printed text in an input cell?).")
    extra = [f for f in filled.findings if f.severity == "warning" and f.code.startswith(("table.", "total."))]
    problems.extend(f"dry round: a correctly filled return gets a warning at {f.cell}: {f.message}" for f in extra)
    return CheckResult(cid, problems, f"issued to {agency}, filled and untouched copies ingested")
