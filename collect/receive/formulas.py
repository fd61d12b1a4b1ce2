"""Formulas a program wrote without a saved result, computed as Excel would (the `formulas` library), within bounds."""

# Decisions (measured 2026-12-02 on this machine, benchmarks/README.md):
# - `formulas` (maintained) at the level of one formula: Parser().ast(text).compile() gives a function of the cells
#   and ranges the formula names; collect feeds it the values calamine read, so nothing is computed but the cells
#   asked for (about 0.6 ms a formula), where the library's whole-workbook model parses and computes every formula
#   of the file and loads it again with openpyxl. pycel, the other candidate, pins networkx<2.7, had its last
#   release in 2021 and ran past 60 s on a chain of 3,000 formulas.
# - Bounds before any computing: Excel's 8,192-character formula limit, 50,000 characters and 2,000 formulas per
#   file, 1,000,000 cells fetched for ranges, a chain of at most 100 uncached formulas, no cycles. A range of more
#   than 10,000 cells (E:E) is cut at the sheet's last value (its start stays: MATCH and INDEX keep positions).
# - Not computed (the agency is asked to save the file in Excel once): other workbooks ([1]Sheet!A1), defined names,
#   INDIRECT and OFFSET (their references are not their inputs), shared formulas stored without their text, and
#   whatever the library cannot compute.

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass, field
from typing import Any

from collect.receive.read import Book, Sheet
from collect.xlsx.addresses import a1, column_number, parse_a1
from collect.xlsx.dates import to_serial

MAX_FORMULA_CHARS = 8_192  # Excel's own limit
MAX_TEXT_PER_FILE = 50_000  # characters of formulas compiled for one file
MAX_FORMULAS = 2_000  # formulas computed for one file
MAX_CELLS = 1_000_000  # cells fetched for ranges, for one file
WHOLE_RANGE_CELLS = 10_000  # a larger range is cut at the sheet's last value
MAX_DEPTH = 100  # uncached formulas reached one through another
MAX_TEXT_RESULT = 32_767  # Excel's cell limit: a longer text is #VALUE!
MAX_ROW, MAX_COL = 1_048_576, 16_384
_REFUSED_FUNCTIONS = re.compile(r"(?i)\b(INDIRECT|OFFSET)\s*\(")
_STRING = re.compile(r'"(?:[^"]|"")*"')
_NO_ARG = re.compile(r"(?i)\b(ROW|COLUMN)\(\s*\)")


@dataclass(frozen=True)
class Result:
    """A formula's outcome: its value, or the Excel error it gives, or why collect did not compute it."""

    formula: str
    value: Any = None
    error: str = ""  # "#DIV/0!" ...: computed, and Excel would show this error
    reason: str = ""  # not computed: why, in zh-TW

    @property
    def computed(self) -> bool:
        return not self.reason


class _NotComputed(Exception):
    """A formula collect does not compute; the message is the reason shown to the agency."""


@dataclass
class Evaluator:
    """Computes the uncached formulas of one read workbook; each at most once."""

    book: Book
    uncached: dict[str, dict[str, str]]  # sheet -> {A1: formula}, from read.unread_cells
    done: dict[tuple[str, str], Result] = field(default_factory=dict, init=False)
    _active: set[tuple[str, str]] = field(default_factory=set, init=False)  # being computed: a cycle if met again
    _text: int = field(default=0, init=False)  # characters of formulas compiled, against MAX_TEXT_PER_FILE
    _cells: int = field(default=0, init=False)  # cells fetched for ranges, against MAX_CELLS

    def result(self, sheet: str, ref: str) -> Result:
        """The outcome of the formula at sheet!ref (which must be one of the uncached formulas)."""
        return self._result(sheet, ref, 0)

    def _result(self, sheet: str, ref: str, depth: int) -> Result:
        key = (sheet, ref)
        if key in self.done:
            return self.done[key]
        formula = self.uncached[sheet][ref]
        if key in self._active:
            raise _NotComputed("公式循環參照")
        if depth > MAX_DEPTH:
            raise _NotComputed(f"公式之間相互參照超過 {MAX_DEPTH} 層")
        self._active.add(key)
        try:
            outcome = self._compute(sheet, ref, formula, depth)
        except _NotComputed as exc:
            if depth:  # the formula that refers to this one is not computed either, for the same reason
                raise
            outcome = Result(formula, reason=str(exc))
        finally:
            self._active.discard(key)
        self.done[key] = outcome
        return outcome

    def _compute(self, sheet: str, ref: str, formula: str, depth: int) -> Result:
        if not formula.startswith("="):
            raise _NotComputed("共用公式未存下公式內容")
        if len(formula) > MAX_FORMULA_CHARS:
            raise _NotComputed(f"公式超過 {MAX_FORMULA_CHARS:,} 字")
        self._text += len(formula)
        if self._text > MAX_TEXT_PER_FILE or len(self.done) >= MAX_FORMULAS:
            raise _NotComputed("檔案中沒有計算結果的公式過多")
        if _REFUSED_FUNCTIONS.search(_STRING.sub('""', formula)):
            raise _NotComputed("使用 INDIRECT 或 OFFSET 函數")
        row, col = parse_a1(ref)
        function = _compile(_with_position(formula, row, col))
        args = [self._input(sheet, name, depth) for name in function.inputs]
        try:
            value = function(*args)
        except Exception as exc:
            raise _NotComputed("公式無法計算") from exc
        return _outcome(formula, value)

    def _input(self, sheet: str, name: str, depth: int) -> Any:
        """The value (a cell) or the array (a range) the compiled formula calls `name`."""
        import numpy as np

        if name.startswith("[") or "]" in name.split("!")[0]:
            raise _NotComputed("參照其他活頁簿")
        sheet_name, _bang, ref = name.rpartition("!")
        bounds = _bounds(ref)
        if bounds is None:  # a defined name, or anything else that is not a reference
            raise _NotComputed(f"使用名稱「{name[:40]}」")
        top, left, bottom, right = bounds
        single = ":" not in ref
        target = self._sheet(sheet_name, sheet)
        if (bottom - top + 1) * (right - left + 1) > WHOLE_RANGE_CELLS:  # E:E, B1:XFD1048576: cut at the last value
            last_row = target.first_row + len(target.rows) - 1
            last_col = target.first_col + max((len(r) for r in target.rows), default=0) - 1
            bottom, right = max(top, min(bottom, last_row)), max(left, min(right, last_col))
        self._cells += (bottom - top + 1) * (right - left + 1)
        if self._cells > MAX_CELLS:
            raise _NotComputed("公式參照的範圍過大")
        grid = np.empty((bottom - top + 1, right - left + 1), dtype=object)
        for i, r in enumerate(range(top, bottom + 1)):
            for j, c in enumerate(range(left, right + 1)):
                grid[i, j] = self._cell(target, r, c, depth)
        return grid[0, 0] if single else grid

    def _sheet(self, named: str, current: str) -> Sheet:
        if not named:
            found = self.book.sheet(current)
        else:
            wanted = named.strip("'").replace("''", "'").casefold()
            found = next((s for s in self.book.sheets if s.name.casefold() == wanted), None)
        if found is None:
            raise _NotComputed(f"參照不存在的工作表「{named[:40]}」")
        return found

    def _cell(self, sheet: Sheet, row: int, col: int, depth: int) -> Any:
        import schedula

        ref = a1(row, col)
        if ref in self.uncached.get(sheet.name, {}):
            result = self._result(sheet.name, ref, depth + 1)
            if not result.computed:
                raise _NotComputed(result.reason)
            if result.error:
                from formulas.tokens.operand import XlError

                return XlError(result.error)
            return schedula.EMPTY if result.value is None else result.value
        i, j = row - sheet.first_row, col - sheet.first_col
        value = sheet.rows[i][j] if 0 <= i < len(sheet.rows) and 0 <= j < len(sheet.rows[i]) else ""
        return _excel_value(value)


def evaluate(book: Book, uncached: dict[str, dict[str, str]], sheet: str, refs: list[str]) -> dict[str, Result]:
    """The outcome of each formula at sheet!ref for ref in refs, computed from the workbook's own cells."""
    logging.getLogger("schedula").setLevel(logging.CRITICAL + 1)  # it logs every failed function with a traceback
    evaluator = Evaluator(book, uncached)
    return {ref: evaluator.result(sheet, ref) for ref in refs}


def _compile(formula: str) -> Any:
    from formulas import Parser

    try:
        return Parser().ast(formula)[1].compile()
    except Exception as exc:
        raise _NotComputed("公式無法解讀") from exc


def _with_position(formula: str, row: int, col: int) -> str:
    """ROW() and COLUMN() (no argument: the formula's own cell) as numbers, outside the formula's text literals."""
    pieces, last = [], 0
    for text in _STRING.finditer(formula):
        pieces.append(_fill_position(formula[last:text.start()], row, col))
        pieces.append(text.group(0))
        last = text.end()
    pieces.append(_fill_position(formula[last:], row, col))
    return "".join(pieces)


def _fill_position(part: str, row: int, col: int) -> str:
    return _NO_ARG.sub(lambda m: str(row if m.group(1).upper() == "ROW" else col), part)


_REF = re.compile(r"\$?([A-Z]{1,3})?\$?([0-9]{1,7})?(?::\$?([A-Z]{1,3})?\$?([0-9]{1,7})?)?")


def _bounds(ref: str) -> tuple[int, int, int, int] | None:
    """(top, left, bottom, right) of a reference as the library names it: "E7", "E7:F9", "E:E", "7:7", and its
    short forms of ranges to the sheet's edge ("B1:" to XFD1048576, "B1:10" to XFD10, "B1:C" to C1048576)."""
    found = _REF.fullmatch(ref.upper())
    if found is None:
        return None
    c1, r1, c2, r2 = found.groups()
    if ":" not in ref:
        box = (int(r1), column_number(c1), int(r1), column_number(c1)) if c1 and r1 else None
    elif c1 and r1:
        box = (int(r1), column_number(c1), int(r2) if r2 else MAX_ROW, column_number(c2) if c2 else MAX_COL)
    elif c1 and c2 and not (r1 or r2):
        box = (1, column_number(c1), MAX_ROW, column_number(c2))
    elif r1 and r2 and not (c1 or c2):
        box = (int(r1), 1, int(r2), MAX_COL)
    else:
        box = None
    if box is None or not (1 <= box[0] <= box[2] <= MAX_ROW and 1 <= box[1] <= box[3] <= MAX_COL):
        return None
    return box


def _excel_value(value: Any) -> Any:
    """A value as calamine read it, as Excel holds it: dates are serial numbers, an empty cell is EMPTY."""
    import schedula

    if value is None or value == "":
        return schedula.EMPTY
    if isinstance(value, bool):
        return value
    if isinstance(value, dt.date):  # a datetime too
        return to_serial(value)
    if isinstance(value, dt.time):
        return (value.hour * 3600 + value.minute * 60 + value.second + value.microsecond / 1e6) / 86400
    if isinstance(value, dt.timedelta):
        return value / dt.timedelta(days=1)
    return value


def _outcome(formula: str, value: Any) -> Result:
    """The library's answer as one cell's value: a number, text, a truth value or an Excel error."""
    import numpy as np
    import schedula
    from formulas.tokens.operand import XlError

    array = np.asarray(value, dtype=object)
    if array.size != 1:
        raise _NotComputed("公式的結果不只一個值")
    item = array.reshape(-1)[0]
    if isinstance(item, XlError):
        return Result(formula, error=str(item))
    if item is schedula.EMPTY or item is None:
        return Result(formula, value=0)  # =A1 with A1 empty shows 0
    if isinstance(item, np.generic):
        item = item.item()
    if isinstance(item, str) and len(item) > MAX_TEXT_RESULT:
        return Result(formula, error="#VALUE!")
    if isinstance(item, float) and item.is_integer() and abs(item) < 2**53:
        item = int(item)
    if not isinstance(item, bool | int | float | str):
        raise _NotComputed("公式的結果無法辨識")
    return Result(formula, value=item)
