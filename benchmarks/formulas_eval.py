"""`python -m benchmarks.formulas_eval`: computing formulas without a saved result, collect's way against the naive way.

collect computes one formula at a time from the values the reader already has (collect.receive.formulas); the naive
way is the `formulas` library's whole-workbook model (ExcelModel), which parses and computes every formula. Both run
on a 200-row sheet shaped like covid19's (=ROW()-6, =E7*0.8, =F7*0.5 and a rate =IF(E7=0,0,G7/E7) per row, none
with a saved result), then collect's alone on hostile sheets, each with what it answered.
"""

from __future__ import annotations

import io
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openpyxl

from collect.receive.formulas import evaluate
from collect.receive.read import read_book, unread_cells

ROWS = 200


def covid_like(rows: int = ROWS) -> bytes:
    """A sheet of `rows` rows from row 7: 項次, 名稱, 核定經費 typed; 4 formulas per row, none with a result."""
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "填報表"
    for r in range(7, 7 + rows):
        ws[f"A{r}"] = "=ROW()-6"
        ws[f"B{r}"] = f"計畫{r}"
        ws[f"E{r}"] = 1_000 * r
        ws[f"F{r}"] = f"=E{r}*0.8"
        ws[f"G{r}"] = f"=F{r}*0.5"
        ws[f"H{r}"] = f"=IF(E{r}=0,0,G{r}/E{r})"
    return _saved(wb)


def _saved(wb: openpyxl.Workbook) -> bytes:
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def _sheet_of(cells: dict[str, Any]) -> bytes:
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "填報表"
    for ref, value in cells.items():
        ws[ref] = value
    return _saved(wb)


HOSTILE: dict[str, Callable[[], bytes]] = {
    "=SUM(B1:XFD1048576), B2 = 5": lambda: _sheet_of({"A1": "=SUM(B1:XFD1048576)", "B2": 5}),
    "A1 = B1+1, B1 = A1+1 (a cycle)": lambda: _sheet_of({"A1": "=B1+1", "B1": "=A1+1"}),
    "a chain of 3,000 formulas": lambda: _sheet_of({"A1": 1, **{f"A{r}": f"=A{r - 1}+1" for r in range(2, 3_001)}}),
    '=LEN(REPT("a",100000000))': lambda: _sheet_of({"A1": '=LEN(REPT("a",100000000))'}),
    "=E:E*1 over 1,000 rows": lambda: _sheet_of({"A1": "=SUM(E:E)", **{f"E{r}": r for r in range(1, 1_001)}}),
}


def ours(data: bytes, refs: list[str] | None = None) -> tuple[float, dict[str, Any]]:
    """Seconds to read the file and compute the formulas at refs (all of the sheet's when None), and the outcomes."""
    start = time.perf_counter()
    book = read_book(data)
    uncached = unread_cells(book).formulas
    wanted = refs if refs is not None else list(uncached.get("填報表", {}))
    results = evaluate(book, uncached, "填報表", wanted)
    seconds = time.perf_counter() - start
    return seconds, {ref: r.value if r.computed and not r.error else r.error or r.reason for ref, r in results.items()}


def naive(data: bytes) -> float:
    """Seconds for the formulas library's whole-workbook model to load and compute the same file."""
    import formulas

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "book.xlsx"
        path.write_bytes(data)
        start = time.perf_counter()
        formulas.ExcelModel().loads(str(path)).finish().calculate()
        return time.perf_counter() - start


def main() -> int:
    ours(_sheet_of({"A1": "=1+1"}))  # the library's first parse loads its function tables: not counted below
    data = covid_like()
    seconds, found = ours(data)
    inputs = [f"{c}{r}" for r in range(7, 7 + ROWS) for c in "AF"]
    input_seconds, _ = ours(data, inputs)
    print(f"covid19-shaped, {ROWS} rows, {len(found)} formulas: collect {seconds:.2f} s for all, "
          f"{input_seconds:.2f} s for the {len(inputs)} in input columns; naive whole model {naive(data):.2f} s")
    print(f"  F7 = {found['F7']}, H7 = {found['H7']}, A206 = {found['A206']}")
    for name, make in HOSTILE.items():
        seconds, found = ours(make(), ["A1"] if "chain" not in name else ["A3000"])
        print(f"{name}: {seconds:.2f} s, {next(iter(found.values()))!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
