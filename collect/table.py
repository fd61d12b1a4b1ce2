"""Find a returned workbook's data table and lift it into a frame indexed by Excel row, with structural findings."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from openpyxl.utils import get_column_letter, range_boundaries

from collect import findings as F
from collect.findings import Finding
from collect.normalise import is_total_row
from collect.read import Book, Sheet
from collect.spec import Collection

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
    rows: dict[int, list[Any]] = {}  # Excel row -> the input columns' raw values
    outside = 0
    lo, hi = max(0, lo_col - sheet.first_col), max(0, last_table_col - sheet.first_col + 1)
    for i in range(max(0, header_row + 1 - sheet.first_row), len(sheet.rows)):
        line, r = sheet.rows[i], sheet.first_row + i
        for start, part in ((sheet.first_col, line[:lo]), (last_table_col + 1, line[hi:])):
            for j, value in enumerate(part):
                if not blank(value):
                    outside += 1
                    if outside <= MAX_OUTSIDE_FINDINGS:
                        found.append(F.make("table.outside", locale, sheet=lay.sheet,
                                            cell=f"{get_column_letter(start + j)}{r}", value=shown(value)))
        values = [line[o] if 0 <= o < len(line) else None for o in offsets]
        if any(not blank(v) for v in values):
            rows[r] = values
    if any(r > limit_row for r in rows):
        found.append(F.make("table.too_many_rows", locale, sheet=lay.sheet, value=len(rows), detail=lay.max_rows))
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
    label_at = [(k, keys.index(k)) for k in label_keys]
    for r in list(rows):
        key = next((k for k, at in label_at if is_total_row(rows[r][at])), None)
        if key is not None:
            label = rows[r][keys.index(key)]
            found.append(F.make("table.total_row", locale, sheet=lay.sheet,
                                cell=f"{get_column_letter(positions[key])}{r}", column=coll.column(key).title,
                                value=shown(label)))
            del rows[r]
    if not rows:
        found.append(F.make("table.empty", locale, sheet=lay.sheet))
    raw = pd.DataFrame(list(rows.values()), index=pd.Index(list(rows), name="row", dtype="int64"), columns=keys,
                       dtype=object)
    letters = {k: get_column_letter(v) for k, v in positions.items()}
    return Table(lay.sheet, raw, letters, found, header_row)


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
