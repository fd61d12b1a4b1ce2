"""A printed form's sheet as a person reads it: merged ranges, title paths down a header, label paths across rows."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

PATH_SEP = " › "
# A unit printed in a header or an input cell: (元) (人) (班) (％) (km) (c.c.) (座) ... full- or half-width brackets.
_UNIT = re.compile(r"[（(]\s*([^()（）]{1,8}?)\s*[)）]\s*$")
_SPACES = re.compile(r"[\s\u3000]+")


def clean(value: Any) -> str:
    """A cell's text as a title: NFKC, inner spaces (full-width too) removed, stripped; "" for a blank."""
    if value is None:
        return ""
    text = unicodedata.normalize("NFKC", str(value))
    return _SPACES.sub("", text).strip()


def unit_of(text: str) -> str | None:
    """The unit a text ends with: "金額(元)" -> "元", "（座）" -> "座"; None without one."""
    m = _UNIT.search(unicodedata.normalize("NFKC", text).strip())
    return m.group(1).strip() if m else None


def is_unit_only(text: str) -> bool:
    """True for a cell holding nothing but a unit in brackets: "(班)", "（％）"."""
    t = clean(text)
    return bool(t) and unit_of(t) is not None and _UNIT.sub("", t) == ""


@dataclass(frozen=True)
class Merges:
    """The merged ranges of a sheet: which cell speaks for which."""

    anchor: dict[tuple[int, int], tuple[int, int]]  # (row, col) of a covered cell -> (row, col) of its range's anchor
    extent: dict[tuple[int, int], tuple[int, int, int, int]]  # anchor -> (min_row, min_col, max_row, max_col)

    @classmethod
    def of(cls, ws: Worksheet) -> Merges:
        anchor: dict[tuple[int, int], tuple[int, int]] = {}
        extent: dict[tuple[int, int], tuple[int, int, int, int]] = {}
        for rng in ws.merged_cells.ranges:
            top = (rng.min_row, rng.min_col)
            extent[top] = (rng.min_row, rng.min_col, rng.max_row, rng.max_col)
            for r in range(rng.min_row, rng.max_row + 1):
                for c in range(rng.min_col, rng.max_col + 1):
                    anchor[(r, c)] = top
        return cls(anchor, extent)

    def top(self, row: int, col: int) -> tuple[int, int]:
        return self.anchor.get((row, col), (row, col))

    def is_covered(self, row: int, col: int) -> bool:
        """True for a cell inside a merged range other than its anchor (Excel shows the anchor's value there)."""
        return self.anchor.get((row, col), (row, col)) != (row, col)

    def starts_column(self, row: int, col: int) -> bool:
        """True when the cell is a column of its own at this row, not the right-hand part of a range merged across
        columns (a range merged down the rows still starts its column)."""
        return self.top(row, col)[1] == col

    def bottom(self, row: int, col: int) -> int:
        return self.extent.get(self.top(row, col), (row, col, row, col))[2]

    def ref(self, row: int, col: int) -> str:
        """The A1 reference of the cell, or of its whole merged range."""
        r1, c1, r2, c2 = self.extent.get(self.top(row, col), (row, col, row, col))
        first = f"{get_column_letter(c1)}{r1}"
        return first if (r1, c1) == (r2, c2) else f"{first}:{get_column_letter(c2)}{r2}"


def bordered(cell: Any, sides: tuple[str, ...] = ("left", "right", "top", "bottom")) -> bool:
    """True when the cell has a border on any of `sides` (openpyxl may leave a side, or the border, unset)."""
    b = getattr(cell, "border", None)
    return b is not None and any(getattr(getattr(b, side, None), "style", None) for side in sides)


def shown_text(ws: Worksheet, merges: Merges, row: int, col: int) -> str:
    """The text a person sees at a cell (a merged range shows its anchor's value everywhere), cleaned."""
    r, c = merges.top(row, col)
    return clean(ws.cell(r, c).value)


def title_path(ws: Worksheet, merges: Merges, rows: range, col: int) -> tuple[str, ...]:
    """A header column's title path in a template (openpyxl), see `path_of`."""
    return path_of(lambda r, c: ws.cell(r, c).value, merges.top, rows, col)


def path_of(value: Callable[[int, int], Any], top: Callable[[int, int], tuple[int, int]], rows: range,
            col: int) -> tuple[str, ...]:
    """A header column's title path, top to bottom: each header row's text at the column (a merged range's text
    where one covers it), a range over several rows once; the same for a template and for a returned sheet."""
    path: list[str] = []
    seen: set[tuple[int, int]] = set()
    for r in rows:
        anchor = top(r, col)
        if anchor in seen:
            continue
        seen.add(anchor)
        text = clean(value(*anchor))
        if text and (not path or path[-1] != text):
            path.append(text)
    return tuple(path)


def label_path(ws: Worksheet, merges: Merges, row: int, cols: range) -> tuple[str, ...]:
    """A row's label path, left to right across the label columns (labels merged down the rows count for every
    row they cover); unit-only texts and repeats are left out."""
    path: list[str] = []
    for c in cols:
        text = shown_text(ws, merges, row, c)
        if text and not is_unit_only(text) and (not path or path[-1] != text):
            path.append(text)
    return tuple(path)


def joined(path: tuple[str, ...] | list[str]) -> str:
    return PATH_SEP.join(path)
