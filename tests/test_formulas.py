"""Formulas without a saved result, computed from the workbook's own cells: what Excel shows, within bounds, and a
reason where collect does not compute (the CLI's answers are in test_receive_cases)."""

from __future__ import annotations

import datetime as dt
import io
import time
from typing import Any

import openpyxl
import pytest

from collect.receive import formulas
from collect.receive.formulas import Result, evaluate
from collect.receive.read import read_book, unread_cells


def book_of(cells: dict[str, Any], other: dict[str, Any] | None = None) -> bytes:
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "填報表"
    for ref, value in cells.items():
        ws[ref] = value
    if other is not None:
        extra = wb.create_sheet("附表 1")
        for ref, value in other.items():
            extra[ref] = value
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def results(data: bytes, *refs: str) -> dict[str, Result]:
    book = read_book(data)
    return evaluate(book, unread_cells(book).formulas, "填報表", list(refs))


def shown(result: Result) -> Any:
    return result.value if result.computed and not result.error else result.error or result.reason


def test_what_excel_would_show() -> None:
    data = book_of({"E7": 1001, "E8": 2000, "I7": dt.date(2026, 3, 5), "A7": "=ROW()-6", "B7": '="第"&COLUMN()&"欄"',
                    "F7": "=E7*0.8", "F8": "=SUM(E7:E8)", "F9": "=F7+F8", "F10": "=E9", "F11": "=I7+1",
                    "F12": "=E7/0", "F13": '=IF(E7>1000,"高","低")', "F14": "='附表 1'!A1*2", "F15": "=SUM(E:E)",
                    "F16": "=ROUND(E7/3,0)"}, other={"A1": 21})
    got = {ref: shown(r) for ref, r in results(data, "A7", "B7", "F7", "F8", "F9", "F10", "F11", "F12", "F13",
                                               "F14", "F15", "F16").items()}
    assert got == {"A7": 1, "B7": "第2欄", "F7": 800.8000000000001, "F8": 3001, "F9": 3801.8, "F10": 0,
                   "F11": 46087, "F12": "#DIV/0!", "F13": "高", "F14": 42, "F15": 3001, "F16": 334}


def test_what_collect_does_not_compute_says_why() -> None:
    data = book_of({"F7": "=[1]Sheet1!A1", "F8": '=INDIRECT("E7")', "F9": "=OFFSET(E7,1,0)", "F10": "=金額*2",
                    "F11": "=G11", "G11": "=F11", "F12": "=F11+1", "F13": "=缺少的表!A1", "F14": "=E7:E8*2"})
    got = {ref: shown(r) for ref, r in results(data, *(f"F{r}" for r in range(7, 15))).items()}
    assert got == {"F7": "參照其他活頁簿", "F8": "使用 INDIRECT 或 OFFSET 函數", "F9": "使用 INDIRECT 或 OFFSET 函數",
                   "F10": "使用名稱「金額」", "F11": "公式循環參照", "F12": "公式循環參照",
                   "F13": "參照不存在的工作表「缺少的表」", "F14": "公式的結果不只一個值"}


def test_hostile_formulas_are_bounded() -> None:
    """A range to the sheet's last cell is cut at the last value; a chain longer than MAX_DEPTH, a file with more than
    MAX_FORMULAS formulas, or an over-long formula is refused before any computing; text over Excel's limit is
    #VALUE!. Each case is answered in well under a second of work."""
    chain = {"A1": 1, **{f"A{r}": f"=A{r - 1}+1" for r in range(2, 3_001)}}
    many = {f"B{r}": f"={r}" for r in range(1, formulas.MAX_FORMULAS + 2)}
    data = book_of({"C1": "=SUM(D1:XFD1048576)", "D2": 5, "C2": '=REPT("a",40000)', "C3": "=1" + "+1" * 5_000,
                    **chain, **many})
    start = time.process_time()
    got = results(data, "C1", "C2", "C3", "A100", "A3000", *(f"B{r}" for r in range(1, formulas.MAX_FORMULAS + 2)))
    assert time.process_time() - start < 10
    assert shown(got["C1"]) == 5 and shown(got["C2"]) == "#VALUE!"
    assert shown(got["C3"]) == "公式超過 8,192 字"
    assert shown(got["A100"]) == 100
    assert shown(got["A3000"]) == f"公式之間相互參照超過 {formulas.MAX_DEPTH} 層"
    refused = [ref for ref, r in got.items() if ref.startswith("B") and not r.computed]
    assert refused and all(got[ref].reason == "檔案中沒有計算結果的公式過多" for ref in refused)


@pytest.mark.parametrize("formula", ["=1+", "=SUM(", '="a', "=)(", "=" + "(" * 300 + "1" + ")" * 300])
def test_a_formula_that_cannot_be_read_is_answered(formula: str) -> None:
    [result] = results(book_of({"F7": formula}), "F7").values()
    assert not result.computed or result.value == 1
