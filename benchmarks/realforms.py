"""The real-forms corpus run: every form under ../shared/realforms adopted, checked, issued, filled, ingested, reported.

`python -m benchmarks.realforms [DIR]` prints one line per form: the stage it reached (adopt, check, issue, fill,
ingest, report, done) and, where it stopped, the first failure's message. Nothing is edited by hand: the form is
adopted as published, every open input cell of the issued workbook is typed with a valid value for its kind (the
collection's rules pick it), and each agency returns it as one input kind: an .xlsx saved by openpyxl (as Excel
writes it), an .xlsx saved by LibreOffice, and an .ods. LibreOffice runs once for all the forms to convert and once
per return kind, so the whole corpus takes about a minute on two cores.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import openpyxl

from collect.dryround import check_collections
from collect.errors import CollectError
from collect.forms.adopt import adopt
from collect.forms.issuing import issue
from collect.forms.spec import Collection
from collect.receive.ingest import Ingestor
from collect.simulate import cells_for, sample_value
from collect.states import Verdict
from collect.workspace import Context, init_workspace
from collect.xlsx.libreoffice import convert

REALFORMS = Path(__file__).resolve().parents[2] / "shared" / "realforms"
SUFFIXES = (".xlsx", ".xls", ".ods")
STAGES = ("adopt", "check", "issue", "fill", "ingest", "report", "done")
ROUND = "2026-10"
AGENCIES = ("020001", "020002", "020003")  # one agency per return kind
KINDS = ("openpyxl.xlsx", "libreoffice.xlsx", "libreoffice.ods")
LIST_ROWS = 2  # rows typed into a list form (every input cell of each)


@dataclass
class FormRun:
    """What became of one form: the stage it reached and, when it stopped before `done`, why."""

    form: str  # its path under the corpus folder
    cid: str
    stage: str = "adopt"
    message: str = ""
    shape: str = ""
    inputs: dict[str, int] = field(default_factory=dict)  # kind -> number of inputs
    guesses: list[str] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return self.stage == "done"

    def fail(self, message: str) -> None:
        self.message = " ".join(message.split())[:400]

    def line(self) -> str:
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(self.inputs.items()))
        what = f"{self.shape}: {kinds}" if self.shape else ""
        if self.done:
            return f"done    {self.form}  [{what}]" + (f" {len(self.guesses)} guess(es)" if self.guesses else "")
        return f"{self.stage:<7} {self.form}  {self.message}"


class Clock:
    """Seconds per stage of the run, written to stderr as they pass."""

    def __init__(self) -> None:
        self.last = time.monotonic()

    def __call__(self, stage: str) -> None:
        now = time.monotonic()
        print(f"  {stage}: {now - self.last:.1f} s", file=sys.stderr)
        self.last = now


def forms(folder: Path = REALFORMS) -> list[Path]:
    """Every spreadsheet under `folder`, recursively, in a stable order."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)


def form_id(i: int) -> str:
    return f"form{i:02d}"


def run(folder: Path = REALFORMS, work: Path | None = None, only: Sequence[str] = ()) -> list[FormRun]:
    """Run every form of `folder` (or those whose path contains one of `only`) through a round; one FormRun each."""
    found = [p for p in forms(folder) if not only or any(o in str(p.relative_to(folder)) for o in only)]
    if work is None:
        with tempfile.TemporaryDirectory(prefix="collect-realforms-") as tmp:
            return _run(folder, found, Path(tmp))
    return _run(folder, found, work)


def _run(folder: Path, found: list[Path], work: Path) -> list[FormRun]:
    runs = [FormRun(str(p.relative_to(folder)), form_id(i)) for i, p in enumerate(found)]
    clock = Clock()
    xlsx = _as_xlsx(found, work / "converted")
    clock("convert")
    root = work / "ws"
    init_workspace(root, collections=[])
    ctx = Context.open(root)
    try:
        adopted = [r for r, src in zip(runs, xlsx, strict=True) if _adopt(ctx, r, src)]
        clock("adopt")
        checked = _check(ctx, adopted)
        clock("check")
        issued = {r.cid: paths for r in checked if (paths := _issue(ctx, r))}
        clock("issue")
        filled = {}
        for r in checked:
            if r.cid in issued and (made := _fill(ctx, r, issued[r.cid], work / "returns" / r.cid)):
                filled[r.cid] = made
        clock("fill")
        returns = _return_kinds(filled, work / "returns")
        clock("return kinds")
        ingested = _ingest(ctx, [r for r in checked if r.cid in returns], returns)
        clock("ingest")
        for r in ingested:
            _report(ctx, r)
        clock("report")
    finally:
        ctx.close()
    return runs


def _as_xlsx(found: list[Path], out: Path) -> list[Path | None]:
    """Each form as .xlsx: the .xlsx as it is; every .xls and .ods converted in one LibreOffice run."""
    todo = [(i, p) for i, p in enumerate(found) if p.suffix.lower() != ".xlsx"]
    staged = out / "in"
    staged.mkdir(parents=True, exist_ok=True)
    sources = []
    for i, p in todo:  # plain, distinct names: LibreOffice names its output after the input's stem
        sources.append(staged / f"{form_id(i)}{p.suffix.lower()}")
        shutil.copyfile(p, sources[-1])
    made = convert(sources, "xlsx", out, seconds=180)
    result: list[Path | None] = list(found)
    for (i, _), m in zip(todo, made, strict=True):
        result[i] = m
    return result


def _adopt(ctx: Context, r: FormRun, source: Path | None) -> bool:
    if source is None:
        r.fail("LibreOffice did not convert the form to .xlsx")
        return False
    try:
        done = adopt(source, r.cid, ctx.ws.rules_dir, ctx.ws.templates_dir, title=Path(r.form).stem)
    except CollectError as exc:
        r.fail(exc.message + (f" (hint: {exc.hint})" if exc.hint else ""))
        return False
    except Exception as exc:  # a crash of `collect adopt`: the run says so and goes on with the next form
        r.fail(f"adopt crashes: {exc.__class__.__name__}: {exc}")
        return False
    r.shape = done.plan.shape
    for i in done.plan.inputs:
        r.inputs[i.kind] = r.inputs.get(i.kind, 0) + 1
    r.guesses = list(done.plan.unsure)
    r.stage = "check"
    return True


def _check(ctx: Context, runs: list[FormRun]) -> list[FormRun]:
    try:
        results = {c.cid: c for c in check_collections(ctx, [r.cid for r in runs])}
    except Exception as exc:
        for r in runs:
            r.fail(f"check crashes: {exc.__class__.__name__}: {exc}")
        return []
    ok = []
    for r in runs:
        res = results.get(r.cid)
        if res is None or res.problems:
            r.fail("; ".join(res.problems) if res else "check gave no result")
        else:
            r.stage = "issue"
            ok.append(r)
    return ok


def _issue(ctx: Context, r: FormRun) -> list[Path]:
    try:
        done = issue(ctx, r.cid, ROUND, agencies=AGENCIES, today=date(2026, 10, 5))
    except CollectError as exc:
        r.fail(exc.message)
        return []
    except Exception as exc:
        r.fail(f"issue crashes: {exc.__class__.__name__}: {exc}")
        return []
    paths = sorted(i.path for i in done.issued)
    if len(paths) != len(AGENCIES):
        r.fail(f"issued {len(paths)} workbook(s) for {len(AGENCIES)} agencies")
        return []
    r.stage = "fill"
    return paths


def _fill(ctx: Context, r: FormRun, issued: list[Path], out: Path) -> list[Path]:
    """Every open input cell typed with a valid value for its kind, as a person would in Excel."""
    try:
        coll = ctx.collection(r.cid)
        values = fill_values(coll)
        out.mkdir(parents=True, exist_ok=True)
        made = []
        for path in issued:
            wb = openpyxl.load_workbook(path)
            ws = wb[coll.layout.sheet] if coll.layout else wb.active
            for ref, value in values.items():
                cell = ws[ref]
                if cell.protection.locked and ws.protection.sheet:
                    r.fail(f"the input cell {ref} is locked in the issued workbook")
                    return []
                cell.value = value
            made.append(out / path.name)
            wb.save(made[-1])
    except Exception as exc:
        r.fail(f"filling crashes: {exc.__class__.__name__}: {exc}")
        return []
    r.stage = "ingest"
    return made


def fill_values(coll: Collection) -> dict[str, Any]:
    """A1 cell -> the value typed there: every input cell of a grid, every input of the first rows of a list."""
    assert coll.layout is not None
    lay = coll.layout
    if lay.cells:  # a sentence field's blanks are typed in its printed words, as an agency does
        return cells_for(coll, [{c.key: sample_value(c, ROUND) for c in coll.inputs}])
    out: dict[str, Any] = {}
    for n, row in enumerate(lay.data_rows[:LIST_ROWS]):
        for c in coll.inputs:
            value = sample_value(c, ROUND)
            if c.ordinal and c.kind == "whole":
                value = n + 1
            out[f"{lay.letters[c.key]}{row}"] = _excel(value)
    return out


def _excel(value: Any) -> Any:
    from decimal import Decimal

    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def _return_kinds(filled: dict[str, list[Path]], out: Path) -> dict[str, list[Path]]:
    """Each form's returns: the first agency's as openpyxl saved it; the others through LibreOffice (.xlsx, .ods),
    each kind in one LibreOffice run for all the forms."""
    result = {cid: [paths[0]] for cid, paths in filled.items()}
    for n, to in ((1, "xlsx"), (2, "ods")):
        staged = [(cid, paths[n]) for cid, paths in filled.items() if len(paths) > n]
        inbox = out / f"in-{to}"
        inbox.mkdir(parents=True, exist_ok=True)
        sources = []
        for cid, p in staged:
            sources.append(inbox / f"{cid}-{p.stem}.xlsx")
            shutil.copyfile(p, sources[-1])
        made = convert(sources, to, out / f"lo-{to}", seconds=180)
        for (cid, _), m in zip(staged, made, strict=True):
            if m is not None:
                result[cid].append(m)
    return result


def _ingest(ctx: Context, runs: list[FormRun], returns: dict[str, list[Path]]) -> list[FormRun]:
    try:
        with Ingestor(ctx) as ing:
            outcomes = ing.paths([p for r in runs for p in returns[r.cid]])
    except Exception as exc:
        for r in runs:
            r.fail(f"ingest crashes: {exc.__class__.__name__}: {exc}")
        return []
    by_file = {o.file: o for o in outcomes}
    ok = []
    for r in runs:
        problems = []
        if len(returns[r.cid]) != len(KINDS):
            problems.append(f"LibreOffice made {len(returns[r.cid]) - 1} of {len(KINDS) - 1} returns")
        for kind, path in zip(KINDS, returns[r.cid], strict=False):
            o = by_file.get(path.name)
            if o is None:
                problems.append(f"{kind}: no verdict")
                continue
            shown = "; ".join(f"{f.cell or f.sheet or ''} {f.code} {f.message}".strip() for f in o.findings[:3])
            if o.verdict != Verdict.ACCEPTED:
                problems.append(f"{kind} return {o.verdict}: {shown}")
            elif o.findings:
                problems.append(f"{kind} return accepted with {len(o.findings)} finding(s): {shown}")
        if problems:
            r.fail("; ".join(problems))
        else:
            r.stage = "report"
            ok.append(r)
    return ok


def _report(ctx: Context, r: FormRun) -> None:
    from collect.pipeline import make_report

    try:
        result = make_report(ctx, r.cid, ROUND)
    except CollectError as exc:
        r.fail(exc.message)
        return
    except Exception as exc:
        r.fail(f"report crashes: {exc.__class__.__name__}: {exc}")
        return
    if not result.files.master.is_file():
        r.fail("the report wrote no master workbook")
        return
    r.stage = "done"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("folder", nargs="?", type=Path, default=REALFORMS)
    parser.add_argument("--only", action="append", default=[], help="Only forms whose path contains this.")
    parser.add_argument("--keep", type=Path, help="Work in this folder and keep it (default: a temporary one).")
    args = parser.parse_args(argv)
    start = time.monotonic()
    runs = run(args.folder, args.keep, args.only)
    for r in runs:
        print(r.line())
    done = sum(r.done for r in runs)
    reached = {s: sum(r.stage == s for r in runs) for s in STAGES}
    if done < len(runs):
        print("stopped at: " + ", ".join(f"{s} {n}" for s, n in reached.items() if n and s != "done"))
    print(f"{done} of {len(runs)} forms end to end ({time.monotonic() - start:.0f} s)")
    return 0 if done == len(runs) else 1


if __name__ == "__main__":
    sys.exit(main())
