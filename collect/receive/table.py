"""Find a returned workbook's data table and lift it into a frame indexed by Excel row, with structural findings."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from collect import findings as F
from collect.findings import Finding
from collect.forms.spec import Collection, Layout
from collect.normalise import is_total_row
from collect.receive.read import Book, Sheet
from collect.receive.sentence import read_sentences
from collect.xlsx.addresses import column_index_from_string, get_column_letter, range_boundaries
from collect.xlsx.cells import clean, joined, path_of
from collect.xlsx.printed import FORMULA, printed_texts, printed_value, template_merges

HEADER_SEARCH_ROWS = 30
MAX_OUTSIDE_FINDINGS = 20
MAX_EXTRA_ROWS = 1_000  # rows under the form's last data row that are validated (all are counted in too_many_rows)


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
    return clean(value)


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
    cells: dict[str, str] = field(default_factory=dict)  # a cell form: key -> its own A1 cell
    # the totals as the return states them, to hold against its own inputs: A1 -> (column key, value as read);
    # a key starting with "*" is a total row's cell of that column
    stated: dict[str, tuple[str, Any]] = field(default_factory=dict)

    def cell(self, key: str, row: int) -> str:
        return self.cells[key] if key in self.cells else f"{self.letters[key]}{row}"


def extract(book: Book, coll: Collection, locale: str = "zh-TW") -> Table | list[Finding]:
    """The data table, or the findings that say why there is none."""
    lay = coll.layout
    assert lay is not None
    sheet = book.sheet(lay.sheet)
    if sheet is None:
        return [F.make("table.sheet_missing", locale, sheet=lay.sheet)]
    if lay.cells:
        return _extract_cells(sheet, coll, lay, locale)
    grid = Grid(sheet)
    # an .ods read reports no merged ranges: the header's are the template's (the return was issued from it)
    merged = Merged.of(sheet) if sheet.merged else Merged.of(replace(sheet, merged=template_merges(
        coll.template_path, lay.sheet)))
    header_row = _find_header(grid, merged, lay, coll)
    if header_row is None:
        return [F.make("table.header_missing", locale, sheet=lay.sheet,
                       detail="、".join(c.title for c in coll.columns[:4]))]
    delta = header_row - lay.header_row
    rows = range(lay.header_rows.start + delta, header_row + 1)
    found: list[Finding] = []
    positions: dict[str, int] = {}
    expected = {c.key: column_index_from_string(lay.letters[c.key]) if c.key in lay.letters
                else lay.first_col + i for i, c in enumerate(coll.columns)}
    wanted = {clean(c.title) for c in coll.columns}
    last_col = max([*expected.values(), grid.sheet.first_col + max(map(len, sheet.rows), default=0)])
    header_cols = {}
    for c in range(1, last_col + 1):
        path = clean(merged.path(grid, rows, c))
        if path and path not in header_cols and merged.top(header_row, c)[1] == c:
            header_cols[path] = c
    for col in coll.columns:
        expected_col = expected[col.key]
        title = clean(col.title)
        here = merged.path(grid, rows, expected_col)
        at = expected_col if clean(here) == title else header_cols.get(title)
        cell = f"{get_column_letter(expected_col)}{header_row}"
        if at == expected_col:
            positions[col.key] = at
        elif at is not None:
            positions[col.key] = at
            found.append(F.make("table.column_moved", locale, sheet=lay.sheet, cell=f"{get_column_letter(at)}"
                                f"{header_row}", column=col.title, detail=get_column_letter(expected_col)))
        elif here and clean(here) not in wanted:
            positions[col.key] = expected_col
            found.append(F.make("table.column_renamed", locale, sheet=lay.sheet, cell=cell, column=col.title,
                                value=here))
        else:
            found.append(F.make("table.column_missing", locale, sheet=lay.sheet, cell=cell, column=col.title))
    if any(f.code in ("table.column_missing",) for f in found):
        return found
    table_cols = set(positions.values())
    last_table_col = max(table_cols)
    first_data = lay.data_first_row + delta
    limit_row = lay.data_last_row + delta
    total_rows = {r + delta for r in lay.total_rows}
    inputs = [c for c in coll.columns if c.is_input]
    lo_col = min(table_cols)
    offsets = [positions[c.key] - sheet.first_col for c in inputs]
    keys = [c.key for c in inputs]
    first = max(0, first_data - sheet.first_row)
    cells = _block(sheet.rows[first:])  # the rows below the header, as one 2-D array
    filled = ~_BLANK(cells).astype(bool) if cells.size else np.zeros(cells.shape, dtype=bool)
    row_numbers = sheet.first_row + first + np.arange(cells.shape[0])
    _drop_printed(cells, filled, coll, lay, sheet.first_row + first - delta, sheet.first_col)
    lo, hi = max(0, lo_col - sheet.first_col), max(0, last_table_col - sheet.first_col + 1)
    around = [j for j in range(cells.shape[1]) if not lo <= j < hi]
    in_rows = row_numbers <= limit_row
    hits = np.nonzero(filled[:, around])  # left and right of the table, row by row
    for i, j in list(zip(*hits, strict=True))[:MAX_OUTSIDE_FINDINGS]:
        # beside a data row it may be data typed in the wrong place; under the table it is a note on the form
        found.append(F.make("table.outside" if in_rows[i] else "table.note", locale, sheet=lay.sheet,
                            value=shown(cells[i, around[j]])[:200],
                            cell=f"{get_column_letter(sheet.first_col + around[j])}{row_numbers[i]}"))
    picked = _columns(cells, offsets)
    counted = np.array([not c.ordinal for c in inputs], dtype=bool)
    filled_inputs = _columns(filled, offsets)
    # a row holding only a pre-numbered 項次 (or only formulas, which are not inputs) is a blank row
    keep = (filled_inputs[:, counted].any(axis=1) if counted.any() else filled_inputs.any(axis=1)) \
        & ~np.isin(row_numbers, list(total_rows))
    below = keep & ~in_rows
    if below.any():
        # under the table (form furniture, notes): rows that look like data are too many rows, the rest a note
        many = filled_inputs[below].sum(axis=1) >= 2
        if many.any():
            found.append(F.make("table.too_many_rows", locale, sheet=lay.sheet,
                                value=int((keep & in_rows).sum() + many.sum()), detail=lay.max_rows))
        for i in np.flatnonzero(below)[~many][:MAX_OUTSIDE_FINDINGS]:
            j = int(np.flatnonzero(filled_inputs[i])[0])
            found.append(F.make("table.note", locale, sheet=lay.sheet, value=shown(picked[i, j])[:200],
                                cell=f"{get_column_letter(positions[keys[j]])}{row_numbers[i]}"))
        # the rows past the form's last that are checked, to show the agency what is in them: the first
        # MAX_EXTRA_ROWS (200,000 rows made 1,000,000 findings, 1.3 GB and more than a minute; all are counted above)
        extra = np.flatnonzero(below)[many][:MAX_EXTRA_ROWS]
        keep = keep & (in_rows | np.isin(np.arange(len(keep)), extra))
    # text outside the table, beside it or under it, in reading order (row, then column), as on the sheet
    spots = [i for i, f in enumerate(found) if f.code in ("table.outside", "table.note")]
    ordered = sorted((found[i] for i in spots), key=lambda f: _reading_order(f.cell))
    for i, f in zip(spots, ordered, strict=True):
        found[i] = f
    numbers = row_numbers[keep]
    raw = pd.DataFrame(picked[keep], index=pd.Index(numbers, name="row", dtype="int64"), columns=keys, dtype=object)
    own = {m for m in lay.merged}
    for rng in sheet.merged:
        try:
            c1, r1, c2, r2 = range_boundaries(rng)
        except (ValueError, TypeError):
            continue
        if rng in own or (delta and r1 is not None and r2 is not None and _shifted(rng, -delta) in own):
            continue  # the form's own merged cells
        if r2 is not None and r2 > header_row and c1 is not None and c2 is not None and c1 <= last_table_col \
                and c2 >= min(table_cols) and (r1 or 0) <= limit_row:
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
    table = Table(lay.sheet, raw, letters, found, header_row)
    table.stated = _stated_totals(grid, coll, lay, letters, delta, list(raw.index))
    return table


def _extract_cells(sheet: Sheet, coll: Collection, lay: Layout, locale: str) -> Table | list[Finding]:
    """A grid's or a fields form's inputs, each at its own cell: one row, indexed by the table's first row."""
    inputs = [c for c in coll.inputs]
    values = [sheet.cell(lay.cells[c.key]) for c in inputs]
    values = [None if v == "" else v for v in values]
    sentences = read_sentences(coll, sheet.cell, lay.sheet, locale)  # blanks in printed sentences: their values
    values = [sentences.values.get(c.key, v) for c, v in zip(inputs, values, strict=True)]
    row = lay.data_first_row
    raw = pd.DataFrame([values], index=pd.Index([row], name="row", dtype="int64"),
                       columns=[c.key for c in inputs], dtype=object)
    found: list[Finding] = list(sentences.findings)
    if all(blank(v) for v in values) and not found:
        found.append(F.make("table.empty", locale, sheet=lay.sheet))
        raw = raw.iloc[0:0]
    table = Table(lay.sheet, raw, {}, found, lay.header_row, cells=dict(lay.cells))
    table.stated = {lay.cells[c.key]: (c.key, v) for c in coll.columns if c.is_total and c.key in lay.cells
                    if not blank(v := sheet.cell(lay.cells[c.key])) and v != ""} | sentences.stated
    return table


def _stated_totals(grid: Grid, coll: Collection, lay: Layout, letters: dict[str, str], delta: int,
                   rows: list[int]) -> dict[str, tuple[str, Any]]:
    """The totals as the return states them (cached results of the form's formulas, or typed): A1 -> (key, value).
    A total column's cells in the data rows, and the total rows' cells of every number column."""
    stated: dict[str, tuple[str, Any]] = {}
    for col in coll.columns:
        letter = letters.get(col.key)
        if letter is None:
            continue
        c = column_index_from_string(letter)
        if col.is_total:
            for r in rows:
                v = grid.get(r, c)
                if not blank(v):
                    stated[f"{letter}{r}"] = (col.key, v)
        if col.kind in ("whole", "decimal") or col.is_total:
            for r in lay.total_rows:
                v = grid.get(r + delta, c)
                if not blank(v) and not col.ordinal:
                    stated[f"{letter}{r + delta}"] = ("*" + col.key, v)
    return stated


def _reading_order(cell: str | None) -> tuple[int, int]:
    letters = "".join(ch for ch in cell or "" if ch.isalpha())
    digits = "".join(ch for ch in cell or "" if ch.isdigit())
    return (int(digits) if digits else 0, column_index_from_string(letters) if letters else 0)


def _shifted(rng: str, rows: int) -> str:
    c1, r1, c2, r2 = range_boundaries(rng)
    return f"{get_column_letter(c1 or 1)}{(r1 or 1) + rows}:{get_column_letter(c2 or 1)}{(r2 or 1) + rows}"


@dataclass(frozen=True)
class Merged:
    """A returned sheet's merged ranges (as the reader reports them): which cell shows which value."""

    anchor: dict[tuple[int, int], tuple[int, int]]

    @classmethod
    def of(cls, sheet: Sheet) -> Merged:
        anchor: dict[tuple[int, int], tuple[int, int]] = {}
        for rng in sheet.merged:
            try:
                c1, r1, c2, r2 = range_boundaries(rng)
            except (ValueError, TypeError):
                continue
            if c1 is None or r1 is None or c2 is None or r2 is None or (r2 - r1 + 1) * (c2 - c1 + 1) > 10_000:
                continue
            for r in range(r1, r2 + 1):
                for c in range(c1, c2 + 1):
                    anchor[(r, c)] = (r1, c1)
        return cls(anchor)

    def top(self, row: int, col: int) -> tuple[int, int]:
        return self.anchor.get((row, col), (row, col))

    def path(self, grid: Grid, rows: range, col: int) -> str:
        """A header column's title path in the return, made as the template's is (xlsx.cells.path_of)."""
        return joined(path_of(grid.get, self.top, rows, col))


_BLANK = np.frompyfunc(blank, 1, 1)


def _drop_printed(cells: np.ndarray, filled: np.ndarray, coll: Collection, lay: Layout, first_row: int,
                  first_col: int) -> None:
    """What the form itself prints under its header (a notes block or signature line inside the borders, an
    example row, a prompt, a formula) is furniture wherever it is drawn: left as printed, it is not data."""
    if not cells.size:
        return
    for (r, c), text in printed_texts(coll.template_path, lay.sheet, lay.header_row).items():
        i, j = r - first_row, c - first_col
        if 0 <= i < cells.shape[0] and 0 <= j < cells.shape[1] and filled[i, j] and (
                text == FORMULA or printed_value(cells[i, j]) == text):
            filled[i, j] = False  # the value stays: a printed label of a row the agency fills is that row's


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


def _find_header(grid: Grid, merged: Merged, lay: Layout, coll: Collection) -> int | None:
    """The header's last row: where the template put it, else the nearest row below or above whose title paths
    match most of the expected titles (an agency inserted or deleted rows above the table)."""
    titles = {clean(c.title) for c in coll.columns}
    need = max(2, len(titles) // 2) if len(titles) > 1 else 1
    depth = lay.header_row - lay.header_rows.start
    order = [lay.header_row] + [r for r in range(1 + depth, min(grid.last_row, lay.header_row + HEADER_SEARCH_ROWS) + 1)
                                if r != lay.header_row]
    width = grid.sheet.first_col + max(map(len, grid.sheet.rows), default=0)
    for r in order:
        rows = range(r - depth, r + 1)
        seen = {clean(merged.path(grid, rows, c)) for c in range(1, width + 1)} & titles
        if len(seen) >= need:
            return r
    return None


def place_read_findings(found: list[Finding], table: Table, coll: Collection, locale: str = "zh-TW") -> list[Finding]:
    """Reading's findings at single cells (collect.receive.read.Book.findings) placed in the table: a malformed value
    in an input cell below the header is an error in that column (the cell was read as blank); elsewhere, a warning."""
    inputs = {c.key for c in coll.inputs}
    by_cell = {ref: key for key, ref in table.cells.items() if key in inputs}
    by_letter = {letter: key for key, letter in table.letters.items() if key in inputs}
    out = []
    outside: list[Finding] = []
    for f in found:
        if f.code != "value.malformed":
            out.append(f)
            continue
        key = None
        if f.sheet == table.sheet and f.cell:
            letters = "".join(ch for ch in f.cell if ch.isalpha())
            row = int("".join(ch for ch in f.cell if ch.isdigit()) or 0)
            key = by_cell.get(f.cell) or (by_letter.get(letters) if row > table.header_row and not table.cells
                                          else None)
        if key:
            out.append(replace(f, severity="error", column=coll.column(key).title))
        else:
            outside.append(replace(f, severity="warning"))
    out += outside[:MAX_OUTSIDE_FINDINGS]
    if len(outside) > MAX_OUTSIDE_FINDINGS:
        out.append(F.make("sheet.repaired", locale, sheet=outside[0].sheet,
                          detail=f"另有 {len(outside) - MAX_OUTSIDE_FINDINGS:,} 個表格外的儲存格內容無法讀取，已略過"))
    return out


# a cell whose value collect could not read, taken as blank: malformed XML, a formula without a saved result collect
# did not compute, an Excel error value
UNREAD = frozenset({"value.malformed", "value.formula_no_result", "value.formula_error", "value.error_value",
                    "field.sentence_changed", "field.two_choices"})  # (a sentence field's values are read out of it)


def causes_first(found: list[Finding]) -> list[Finding]:
    """At a cell whose value could not be read (UNREAD), taken as blank, the findings that blank causes (「必須填寫」)
    are consequences, not causes, and are left out."""
    unread = {(f.sheet, f.cell) for f in found if f.code in UNREAD}
    if not unread:
        return found
    return [f for f in found if f.code in UNREAD or (f.sheet, f.cell) not in unread]
