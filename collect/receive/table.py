"""Find a returned workbook's data table and lift it into a frame indexed by Excel row, with structural findings."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from openpyxl.utils import get_column_letter, range_boundaries

from collect import findings as F
from collect.findings import Finding
from collect.forms.spec import Collection
from collect.normalise import is_total_row
from collect.receive.read import Book, Sheet

HEADER_SEARCH_ROWS = 30
MAX_OUTSIDE_FINDINGS = 20


@dataclass
class Grid:
    """A sheet's values addressed by 1-based Excel row and column, whatever offset the reader used."""

    sheet: Sheet

    def get(self, row: int, col: int) -> Any:
        r = row - self.sheet.first_row
        c = col - self.sheet.first_col
        if r < 0 or c < 0 or r >= len(self.sheet.rows):
            return None
        line = self.sheet.rows[r]
        return line[c] if c < len(line) else None

    @property
    def last_row(self) -> int:
        return self.sheet.first_row + len(self.sheet.rows) - 1



def blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def title_of(value: Any) -> str:
    return "" if blank(value) else unicodedata.normalize("NFKC", str(value)).replace(" ", "").strip()


def shown(value: Any) -> str:
    """A cell value as the agency typed it, for messages."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return "" if value is None else str(value)


@dataclass
class Table:
    """The data table of one returned workbook."""

    sheet: str
    raw: pd.DataFrame  # input columns by key, raw values, index = Excel row
    letters: dict[str, str]  # column key -> column letter where it was read
    findings: list[Finding] = field(default_factory=list)
    header_row: int = 0

    def cell(self, key: str, row: int) -> str:
        return f"{self.letters[key]}{row}"


def extract(book: Book, coll: Collection, locale: str = "zh-TW") -> Table | list[Finding]:
    """The data table, or the findings that say why there is none."""
    lay = coll.layout
    assert lay is not None
    sheet = book.sheet(lay.sheet)
    if sheet is None:
        return [F.make("table.sheet_missing", locale, sheet=lay.sheet)]
    grid = Grid(sheet)
    wanted = {title_of(c.title): c for c in coll.columns}
    header_row = _find_header(grid, lay.header_row, set(wanted))
    if header_row is None:
        return [F.make("table.header_missing", locale, sheet=lay.sheet,
                       detail="、".join(c.title for c in coll.columns[:4]))]
    found: list[Finding] = []
    positions: dict[str, int] = {}
    header_cols = {title_of(grid.get(header_row, c)): c
                   for c in range(1, lay.first_col + len(coll.columns) + 40) if title_of(grid.get(header_row, c))}
    for i, col in enumerate(coll.columns):
        expected_col = lay.first_col + i
        at = header_cols.get(title_of(col.title))
        here = grid.get(header_row, expected_col)
        cell = f"{get_column_letter(expected_col)}{header_row}"
        if at == expected_col:
            positions[col.key] = at
        elif at is not None:
            positions[col.key] = at
            found.append(F.make("table.column_moved", locale, sheet=lay.sheet, cell=f"{get_column_letter(at)}"
                                f"{header_row}", column=col.title, detail=get_column_letter(expected_col)))
        elif not blank(here) and title_of(here) not in wanted:
            positions[col.key] = expected_col
            found.append(F.make("table.column_renamed", locale, sheet=lay.sheet, cell=cell, column=col.title,
                                value=shown(here)))
        else:
            found.append(F.make("table.column_missing", locale, sheet=lay.sheet, cell=cell, column=col.title))
    if any(f.code in ("table.column_missing",) for f in found):
        return found
    table_cols = set(positions.values())
    last_table_col = max(table_cols)
    first_data = header_row + 1
    limit_row = first_data + lay.max_rows - 1
    inputs = [c for c in coll.columns if c.is_input]
    lo_col = min(table_cols)
    offsets = [positions[c.key] - sheet.first_col for c in inputs]
    keys = [c.key for c in inputs]
    first = max(0, header_row + 1 - sheet.first_row)
    cells = _block(sheet.rows[first:])  # the rows below the header, as one 2-D array
    filled = ~_BLANK(cells).astype(bool)
    lo, hi = max(0, lo_col - sheet.first_col), max(0, last_table_col - sheet.first_col + 1)
    around = [j for j in range(cells.shape[1]) if not lo <= j < hi]
    hits = np.nonzero(filled[:, around])  # row by row, left of the table then right of it
    for i, j in list(zip(*hits, strict=True))[:MAX_OUTSIDE_FINDINGS]:
        found.append(F.make("table.outside", locale, sheet=lay.sheet, value=shown(cells[i, around[j]]),
                            cell=f"{get_column_letter(sheet.first_col + around[j])}{sheet.first_row + first + i}"))
    picked = _columns(cells, offsets)
    keep = _columns(filled, offsets).any(axis=1)
    numbers = sheet.first_row + first + np.flatnonzero(keep)
    raw = pd.DataFrame(picked[keep], index=pd.Index(numbers, name="row", dtype="int64"), columns=keys, dtype=object)
    if (raw.index > limit_row).any():
        found.append(F.make("table.too_many_rows", locale, sheet=lay.sheet, value=len(raw), detail=lay.max_rows))
    for rng in sheet.merged:
        try:
            c1, _r1, c2, r2 = range_boundaries(rng)
        except (ValueError, TypeError):
            continue
        if r2 is not None and r2 > header_row and c1 is not None and c2 is not None and c1 <= last_table_col \
                and c2 >= min(table_cols):
            found.append(F.make("table.merged", locale, sheet=lay.sheet, cell=rng.split(":")[0], detail=rng))
    first_text = next((c.key for c in inputs if c.kind == "text"), None)
    # 合計 is typed under the first text column, or under the first column (項次) as on paper forms
    label_keys = list(dict.fromkeys(k for k in (first_text, inputs[0].key if inputs else None) if k))
    marks = [raw[k].map(is_total_row).to_numpy(dtype=bool) for k in label_keys]
    totals = np.logical_or.reduce(marks) if marks else np.zeros(len(raw), dtype=bool)
    for pos in np.flatnonzero(totals):
        key = next(k for k, mark in zip(label_keys, marks, strict=True) if mark[pos])
        found.append(F.make("table.total_row", locale, sheet=lay.sheet,
                            cell=f"{get_column_letter(positions[key])}{raw.index[pos]}", column=coll.column(key).title,
                            value=shown(raw.iat[pos, keys.index(key)])))
    raw = raw[~totals]
    if raw.empty:
        found.append(F.make("table.empty", locale, sheet=lay.sheet))
    letters = {k: get_column_letter(v) for k, v in positions.items()}
    return Table(lay.sheet, raw, letters, found, header_row)


_BLANK = np.frompyfunc(blank, 1, 1)


def _block(lines: list[list[Any]]) -> np.ndarray:
    """Rows of cell values as a 2-D object array, short rows padded with None."""
    width = max(map(len, lines), default=0)
    if all(len(line) == width for line in lines):
        block = np.empty((len(lines), width), dtype=object)
        block[:] = lines  # row lists of one width: copied in one step
        return block
    block = np.full((len(lines), width), None, dtype=object)
    for i, line in enumerate(lines):
        block[i, : len(line)] = line
    return block


def _columns(block: np.ndarray, offsets: list[int]) -> np.ndarray:
    """The block's columns at `offsets`, in that order; an offset outside the block gives a column of None."""
    width = block.shape[1]
    empty = np.full(block.shape[0], None, dtype=object) if block.dtype == object else np.zeros(block.shape[0], bool)
    parts = [block[:, o] if 0 <= o < width else empty for o in offsets]
    return np.stack(parts, axis=1) if parts else np.empty((block.shape[0], 0), dtype=block.dtype)


def _find_header(grid: Grid, expected: int, titles: set[str]) -> int | None:
    """The row holding most of the expected titles, looking first where the template put it."""
    need = max(2, len(titles) // 2)
    order = [expected] + [r for r in range(1, min(grid.last_row, expected + HEADER_SEARCH_ROWS) + 1)
                          if r != expected]
    for r in order:
        seen = {title_of(v) for rr, _c, v in _row_cells(grid, r)} & titles
        if len(seen) >= need:
            return r
    return None


def _row_cells(grid: Grid, row: int) -> Iterator[tuple[int, int, Any]]:
    r = row - grid.sheet.first_row
    if 0 <= r < len(grid.sheet.rows):
        for c, value in enumerate(grid.sheet.rows[r], start=grid.sheet.first_col):
            if not blank(value):
                yield row, c, value
