"""A template's form sheet read once as plain data (values, styles as writer properties, widths, heights, merges),
for copying the office's own form into another workbook, as the consolidated form (彙整表) does."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openpyxl
from openpyxl.utils import column_index_from_string, get_column_letter
from openpyxl.utils.cell import coordinate_to_tuple

from collect.xlsx.cells import Merges, bordered
from collect.xlsx.printing import openpyxl_width
from collect.xlsx.writer import props

MAX_COLUMNS = 200  # a form wider than this is cut here
_BORDERS = {"thin": 1, "medium": 2, "dashed": 3, "dotted": 4, "thick": 5, "double": 6, "hair": 7,
            "mediumDashed": 8, "dashDot": 9, "mediumDashDot": 10, "dashDotDot": 11, "mediumDashDotDot": 12,
            "slantDashDot": 13}


def column_number(letters: str) -> int:
    """A column's number from its letters: "A" -> 1, "AA" -> 27."""
    return int(column_index_from_string(letters))


def position(ref: str) -> tuple[int, int]:
    """A cell's (row, column) from its A1 reference, 1-based."""
    row, col = coordinate_to_tuple(ref)
    return row, col


@dataclass(frozen=True)
class FormCell:
    """One cell of the form: its value, its look (font, alignment, borders, fill as writer properties, the number
    format apart), and whether it is styled at all and shows a date."""

    value: Any
    look: tuple[tuple[str, Any], ...]
    number_format: str
    has_style: bool
    is_date: bool

    def style(self, number_format: str | None = None) -> tuple[tuple[str, Any], ...]:
        """The cell's style for the writer, with `number_format` in place of its own when given."""
        fmt = number_format or (self.number_format if self.has_style else None)
        look = dict(self.look)
        if fmt and fmt != "General":
            look["num_format"] = fmt
        return tuple(sorted(look.items()))


EMPTY = FormCell(None, (), "General", False, False)


@dataclass(frozen=True)
class FormSheet:
    """The cells, column widths, row heights and merged ranges of a form sheet; `last_row`, `last_col`: the used
    area (a value, or a border at the left or bottom)."""

    cells: dict[tuple[int, int], FormCell]  # (row, col), 1-based
    widths: dict[int, float]  # col -> width in character units
    heights: dict[int, float]  # row -> height in points
    merges: Merges
    last_row: int
    last_col: int
    printed_width: float  # the used columns' width, for the print setup

    def cell(self, row: int, col: int) -> FormCell:
        return self.cells.get((row, col), EMPTY)

    @classmethod
    def read(cls, path: Path, sheet: str, alike: range = range(0)) -> FormSheet:
        """The sheet; of the rows `alike` (a list's data rows, styled as one another) only the first is read."""
        ws = openpyxl.load_workbook(path)[sheet]
        cells: dict[tuple[int, int], FormCell] = {}
        last_row = last_col = 1
        for row in ws.iter_rows():
            if row and row[0].row in alike and row[0].row != alike.start:
                continue
            for c in row:
                r, col = c.row or 1, c.column or 1
                if c.value is not None or (c.has_style and bordered(c, ("left", "bottom"))):
                    last_row, last_col = max(last_row, r), max(last_col, col)
                if c.value is None and not c.has_style:
                    continue
                cells[(r, col)] = FormCell(c.value, _look(c) if c.has_style else (), str(c.number_format or ""),
                                           bool(c.has_style), bool(getattr(c, "is_date", False)))
        last_col = min(last_col, MAX_COLUMNS)
        widths = {c: float(dim.width) for c in range(1, last_col + 1)
                  if (dim := ws.column_dimensions.get(get_column_letter(c))) is not None and dim.width}
        heights = {r: float(dim.height) for r, dim in ws.row_dimensions.items() if dim.height}
        return cls(cells, widths, heights, Merges.of(ws), last_row, last_col, openpyxl_width(ws, last_col))


def _look(cell: Any) -> tuple[tuple[str, Any], ...]:
    """An openpyxl cell's font, alignment, borders and fill as xlsxwriter format properties."""
    f, a, b, fill = cell.font, cell.alignment, cell.border, cell.fill
    out: dict[str, Any] = {}
    if f is not None:
        if f.name:
            out["font_name"] = f.name
        if f.sz:
            out["font_size"] = float(f.sz)
        if f.b:
            out["bold"] = True
        if f.i:
            out["italic"] = True
        if f.u:
            out["underline"] = 1
        rgb = getattr(f.color, "rgb", None) if f.color is not None else None
        if isinstance(rgb, str) and len(rgb) == 8 and rgb != "FF000000":
            out["font_color"] = "#" + rgb[2:]
    if a is not None:
        if a.horizontal in ("left", "center", "right", "fill", "justify", "centerContinuous", "distributed"):
            out["align"] = {"centerContinuous": "center_across"}.get(a.horizontal, a.horizontal)
        if a.vertical in ("top", "center", "bottom", "justify", "distributed"):
            out["valign"] = {"center": "vcenter"}.get(a.vertical, a.vertical)
        if a.wrap_text:
            out["text_wrap"] = True
    for side in ("left", "right", "top", "bottom"):
        style = getattr(getattr(b, side, None), "style", None)
        if style in _BORDERS:
            out[side] = _BORDERS[style]
    if fill is not None and fill.fill_type == "solid":
        rgb = getattr(fill.fgColor, "rgb", None)
        if isinstance(rgb, str) and len(rgb) == 8:
            out["bg_color"] = "#" + rgb[2:]
    return props(**out)
