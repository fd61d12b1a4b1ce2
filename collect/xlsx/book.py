"""Workbooks through openpyxl: open, type into and save, defined names and where they point, cell addresses, and
the few openpyxl types callers annotate with (re-exported, so no module outside collect/xlsx/ imports openpyxl)."""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Mapping
from copy import copy as shallow_copy
from pathlib import Path
from typing import Any

from openpyxl import Workbook, load_workbook
from openpyxl.cell.cell import Cell, MergedCell
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.utils import column_index_from_string, get_column_letter, range_boundaries
from openpyxl.workbook.defined_name import DefinedName
from openpyxl.worksheet.worksheet import Worksheet

__all__ = ["Alignment", "Border", "Cell", "Font", "MergedCell", "PatternFill", "Side", "Workbook", "Worksheet",
           "absolute", "bounds", "column_index", "column_letter", "copy_look", "define", "destinations",
           "first_sheet_rows", "new", "open_book", "save", "to_bytes", "typed"]

column_letter = get_column_letter  # 1 -> "A", 27 -> "AA"


def new() -> Workbook:
    """An empty workbook with its one sheet."""
    return Workbook()


def open_book(source: Path | bytes, *, data_only: bool = False) -> Workbook:
    """A workbook from a file or its bytes, editable (styles, names and validations kept)."""
    return load_workbook(io.BytesIO(source) if isinstance(source, bytes) else source, data_only=data_only)


def save(wb: Workbook, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    wb.save(path)
    return path


def to_bytes(wb: Workbook) -> bytes:
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def first_sheet_rows(path: Path) -> list[tuple[Any, ...]]:
    """The values of a workbook's first sheet, row by row, as last calculated (read-only: fast on a big list).
    Raises what openpyxl raises for a file it cannot read."""
    wb = load_workbook(path, read_only=True, data_only=True)
    try:
        sheet = wb.worksheets[0]
        sheet.reset_dimensions()  # a read-only sheet: trust no stored dimension
        return list(sheet.iter_rows(values_only=True))
    finally:
        wb.close()


def destinations(wb: Workbook) -> dict[str, tuple[str, str]]:
    """Defined name (upper case) -> (sheet title, A1 range without $), workbook- and sheet-scoped; a name that
    points nowhere (#REF!, a constant) is left out."""
    out: dict[str, tuple[str, str]] = {}
    scoped = [wb.defined_names] + [ws.defined_names for ws in wb.worksheets]
    for names in scoped:
        for name, dn in names.items():
            try:
                dests = list(dn.destinations)
            except Exception:
                continue
            if dests:
                sheet, ref = dests[0]
                out[name.upper()] = (sheet, ref.replace("$", ""))
    return out


def define(wb: Workbook, name: str, ws: Worksheet, ref: str) -> None:
    """A workbook-scoped defined name for `ref` (A1 or A1:B2) on `ws`."""
    quoted = "'" + ws.title.replace("'", "''") + "'"
    wb.defined_names[name] = DefinedName(name, attr_text=f"{quoted}!{absolute(ref)}")


def absolute(ref: str) -> str:
    """A1:B2 -> $A$1:$B$2; ranges joined by commas (a name over several total rows) each so."""
    return ",".join(":".join(re.sub(r"([A-Z]+)(\d+)", r"$\1$\2", p) for p in part.split(":"))
                    for part in ref.split(","))


def bounds(ref: str) -> tuple[int, int, int, int]:
    """A range's (min_col, min_row, max_col, max_row), a single cell counting as a 1x1 range; ValueError for a
    reference that is not cells (a whole column, a name)."""
    min_col, min_row, max_col, max_row = range_boundaries(ref)
    if min_col is None or min_row is None:
        raise ValueError(f"{ref} is not a cell range")
    return min_col, min_row, max_col or min_col, max_row or min_row


def copy_look(source: Cell, target: Cell) -> None:
    """Give `target` the font, border, alignment and number format of `source` (not its fill or protection)."""
    for part in ("font", "border", "alignment"):
        setattr(target, part, shallow_copy(getattr(source, part)))
    target.number_format = source.number_format


def typed(data: bytes, sheet: str, cells: Mapping[str, Any], *, edit: Callable[[Worksheet], None] | None = None,
          book_edit: Callable[[Workbook], None] | None = None) -> bytes:
    """The workbook `data` opened, `cells` (A1 -> value) typed on `sheet`, any edits made, and saved whole again, as
    a spreadsheet program saves it (a text starting with "=" becomes a formula, as when typed)."""
    wb = open_book(data)
    ws = wb[sheet]
    for ref, value in cells.items():
        ws[ref] = value
    if edit is not None:
        edit(ws)
    if book_edit is not None:
        book_edit(wb)
    return to_bytes(wb)


def column_index(letter: str) -> int:
    """"A" -> 1, "AA" -> 27."""
    return column_index_from_string(letter)
