"""The consolidated form (彙整表): the collection's own form, in its own layout, with the accepted figures added up.

A grid or fields form gets every numeric input cell summed exactly over the accepted returns (text cells list
what was written); a list form gets every accepted row under the form's header, its totals recomputed. The
template is read once (xlsx.formsheet) and planned into each report workbook's sheet (written by xlsx.writer)
with its column widths, row heights, merged ranges, fonts, borders, fills and number formats; no stamp, no
protection. A list's rows are one block of Arrow columns, rendered in bulk like the 明細.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from collect.forms.spec import (
    NAME_AGENCY_CODE,
    NAME_AGENCY_NAME,
    NAME_DEADLINE,
    NAME_PERIOD,
    NAME_SUPERVISOR,
    Collection,
)
from collect.report.columns import cells_col, date_col, float_col, strings, whole_col
from collect.report.fields_sum import sentence_sums
from collect.report.totals import Exact, as_decimal, decimal_sum, exact_total, isna
from collect.xlsx.formsheet import FormCell, FormSheet, column_number, position
from collect.xlsx.printing import PrintSetup
from collect.xlsx.style import MONEY_FORMAT, ROC_DATE_FORMAT
from collect.xlsx.writer import Block, Col, Sheet, Style

SHEET = "彙整表"
MAX_LISTED = 5  # a text cell of a summed grid lists at most this many distinct answers
# A list form lists at most this many accepted rows (its totals still add up every row): beyond, the 明細 sheet
# and the Parquet/CSV export hold them all, and the sheet says so under its totals.
MAX_LISTED_ROWS = 20_000


def _shown(value: Decimal | None) -> int | float | None:
    """An exact sum as a worksheet number: whole sums stay integers."""
    if value is None:
        return None
    return int(value) if value == value.to_integral_value() else float(value)


def _text(values: list[Any]) -> str | None:
    distinct = list(dict.fromkeys(str(v).strip() for v in values if not isna(v) and str(v).strip()
                                  and str(v) != "nan"))
    if not distinct:
        return None
    more = len(distinct) - MAX_LISTED
    return "、".join(distinct[:MAX_LISTED]) + (f" 等 {len(distinct)} 項" if more > 0 else "")


def sheet_writer(coll: Collection, rows: pd.DataFrame, period: str = "",
                 deadline: str = "") -> Callable[[str | None, str], list[Sheet]]:
    """The report's extra-sheet hook: the 彙整表 sheet for the city (None) or one supervising agency (its code); the
    form's identity block says whose consolidation it is, for which period and deadline."""
    lay = coll.layout
    assert lay is not None
    alike = range(0) if lay.cells or not lay.data_rows else range(lay.data_rows[0], lay.data_rows[-1] + 1)
    template = _Template(FormSheet.read(coll.template_path, lay.sheet, alike), coll)
    codes = rows["supervisor"].astype(object).where(rows["supervisor"].notna(), "").astype(str) \
        if "supervisor" in rows else pd.Series([""] * len(rows), dtype=object)
    positions = pd.Series(np.arange(len(rows))).groupby(codes.to_numpy(), sort=False).indices if len(rows) else {}

    def write(supervisor: str | None, footer: str) -> list[Sheet]:
        mine = rows if supervisor is None else rows.iloc[positions.get(supervisor, np.array([], dtype=np.int64))]
        return [template.sheet(mine, footer, identity(supervisor, mine, period, deadline))]

    return write


def identity(supervisor: str | None, rows: pd.DataFrame, period: str, deadline: str) -> dict[str, str]:
    """What the form's identity cells show on a consolidated form (defined name -> text): the agencies it adds up,
    never the empty cells an agency fills in."""
    count = rows["agency"].nunique() if "agency" in rows else 0
    if supervisor is None:
        code, name, over = "（全市）", f"全市彙整（{count:,} 個機關）", "（全部主管機關）"
    else:
        names = rows["supervisor_name"].dropna().astype(str) if "supervisor_name" in rows else pd.Series([])
        over = names.iloc[0] if len(names) else supervisor
        code, name = supervisor, f"{over}所屬機關彙整（{count:,} 個機關）"
    return {NAME_AGENCY_CODE: code, NAME_AGENCY_NAME: name, NAME_SUPERVISOR: over, NAME_PERIOD: period,
            NAME_DEADLINE: deadline}


@dataclass
class _Template:
    """The template's form sheet, kept for every workbook of the report."""

    form: FormSheet
    coll: Collection

    @property
    def max_row(self) -> int:
        lay = self.coll.layout
        assert lay is not None
        return max(self.form.last_row, lay.data_last_row, *lay.total_rows)

    def sheet(self, rows: pd.DataFrame, footer: str, shown: dict[str, str]) -> Sheet:
        coll, form = self.coll, self.form
        lay = coll.layout
        assert lay is not None
        values: dict[tuple[int, int], Any] = {  # (template row, col) -> the value to show
            position(ref): shown[name] for name, ref in lay.identity.items() if shown.get(name)}
        first_data = lay.data_first_row
        listed = 0
        if lay.cells:
            sums = self._cell_sums(rows)
            for key, ref in lay.cells.items():  # inputs and totals alike: every key of a cell form has its cell
                values[position(ref)] = sums.get(key)
            values |= {position(ref): text for ref, text in sentence_sums(coll, rows, sums).items()}
        else:
            listed = min(len(rows), MAX_LISTED_ROWS)
        extra = max(0, listed - len(lay.data_rows))  # a list with more accepted rows than the form has
        max_row = self.max_row
        # rows of the template, each to its row of the sheet
        target = {r: r + extra if r > lay.data_last_row else r for r in range(1, max_row + 1)}
        data_rows = set(lay.data_rows) if not lay.cells else set()
        out = Sheet(SHEET, PrintSetup.for_width(form.printed_width, title_rows=(lay.header_rows.start,
                                                                                lay.header_row), footer=footer),
                    widths={c - 1: w for c, w in form.widths.items()},
                    heights={target[r] - 1: h for r, h in form.heights.items() if r <= max_row and r not in data_rows})
        for r in range(1, max_row + 1):
            if r in data_rows:
                continue  # a list's data rows are one block, below
            for c in range(1, form.last_col + 1):
                if form.merges.is_covered(r, c):
                    continue
                cell = form.cell(r, c)
                if (r, c) in values:
                    value = values[(r, c)]
                elif isinstance(cell.value, str) and cell.value.startswith("="):
                    value = None  # the form's formulas: their results are written where collect computes them
                else:
                    value = cell.value
                self._put(out, target[r], c, value, cell)
        if not lay.cells:
            sample = lay.data_rows[0] if lay.data_rows else first_data
            out.block = self._list_block(rows.iloc[:listed], sample, first_data)
            self._total_rows(out, rows, target)
            if len(rows) > listed:
                note = (f"本表列出前 {listed:,} 列（共 {len(rows):,} 列），合計含全部各列；完整資料見「明細」"
                        f"工作表及 Parquet/CSV 檔，各列所屬機關亦見「明細」（順序相同）。")
            else:
                note = f"本表共 {len(rows):,} 列，各列所屬機關見「明細」工作表（順序相同）。"
            # below everything written: the form's last row (moved down) and the last listed row
            last = max(target[max_row], first_data + max(listed, len(lay.data_rows)) - 1)
            out.cells.append((last + 1, 0, note, ""))  # 0-based: one blank row between
        for (r1, c1, r2, c2) in form.merges.extent.values():
            if r1 in data_rows or r2 in data_rows:
                continue
            first = form.cell(r1, c1)
            value = values.get((r1, c1), first.value)
            if isinstance(value, str) and value.startswith("="):
                value = None
            # a merged range may reach below the sheet's last written row: it moves down like the rows it spans
            out.merges.append((target.get(r1, r1 + extra) - 1, c1 - 1, target.get(r2, r2 + extra) - 1, c2 - 1, value,
                               self._style(value, first)))
        return out

    @staticmethod
    def _style(value: Any, cell: FormCell) -> Style:
        """The form cell's style for a figure: a date shown as ROC, a whole number of 1,000 or more grouped where
        the form prints it as General (a merged cell, such as 金額 over two columns, too)."""
        dated = isinstance(value, date) and not cell.is_date
        general = not cell.has_style or cell.number_format in ("General", "@")
        grouped = isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 1000 and general
        return cell.style(ROC_DATE_FORMAT if dated else MONEY_FORMAT if grouped else None)

    @staticmethod
    def _put(out: Sheet, row: int, col: int, value: Any, cell: FormCell) -> None:
        if value is None and not cell.has_style:
            return
        out.cells.append((row - 1, col - 1, value, _Template._style(value, cell)))

    def _cell_sums(self, rows: pd.DataFrame) -> dict[str, Any]:
        sums: dict[str, Any] = {}
        for col in self.coll.columns:
            if col.kind in ("text", "choice", "code", "date"):
                sums[col.key] = _text(rows[col.key].tolist()) if col.key in rows else None
            elif col.count_of is not None:  # the rule says: count the returns that reported the other cell
                counted = [n for v in rows[col.count_of].tolist() if (n := as_decimal(v)) is not None and n != 0] \
                    if col.count_of in rows else []
                sums[col.key] = Decimal(len(counted)) if len(rows) else None
            elif not col.is_total:
                sums[col.key] = decimal_sum(rows[col.key].tolist()) if col.key in rows else None
        for col in self.coll.computed:
            if col.is_total:
                parts = [sums.get(k) for k in col.of or ()]
                known = [p for p in parts if isinstance(p, Decimal)]
                sums[col.key] = sum(known, Decimal(0)) if known and col.of else None
        return {k: (_shown(v) if isinstance(v, Decimal) else v) for k, v in sums.items()}

    def _list_block(self, listed: pd.DataFrame, sample: int, first: int) -> Block:
        """The listed rows, and the form's empty rows below them, as one block in the style of the form's first
        data row; 項次 numbers the rows of this form 1, 2, 3 (each agency's own numbers stay in 明細)."""
        coll, form = self.coll, self.form
        lay = coll.layout
        assert lay is not None
        count = max(len(listed), len(lay.data_rows))
        key_at = {column_number(v): k for k, v in lay.letters.items()}
        specs = {c.key: c for c in coll.columns}
        columns: list[Col] = []
        number_styles: list[Style] = []
        text_styles: list[Style] = []
        blank_styles: list[Style | None] = []
        for c in range(1, form.last_col + 1):
            look = form.cell(sample, c)
            key = key_at.get(c)
            spec = specs.get(key) if key else None
            kind = coll.value_kind(spec) if spec is not None else ""
            general = not look.has_style or look.number_format in ("General", "@")
            if spec is not None and spec.ordinal:
                col = Col(pa.nulls(len(listed), pa.string()), pa.array(np.arange(1, len(listed) + 1)))
            elif key is not None and key in listed:
                col = _column(listed[key], kind)
            else:
                col = Col(pa.nulls(len(listed), pa.string()))
            columns.append(_padded(col, count))
            number = (MONEY_FORMAT if kind == "whole" and general else
                      ROC_DATE_FORMAT if kind == "date" and not look.is_date else None)
            number_styles.append(look.style(number))
            text_styles.append(look.style())
            blank_styles.append(look.style() if look.has_style else None)
        return Block(columns, np.arange(count), first, number_styles, text_styles, blank_styles,
                     height=form.heights.get(sample))

    def _total_rows(self, out: Sheet, rows: pd.DataFrame, target: dict[int, int]) -> None:
        coll, lay = self.coll, self.coll.layout
        assert lay is not None
        letters = {k: column_number(v) for k, v in lay.letters.items()}
        for r in lay.total_rows:
            for col in coll.columns:
                c = letters.get(col.key)
                kind = coll.value_kind(col)
                if c is None or kind not in ("whole", "decimal") or col.ordinal:
                    continue
                total = exact_total(rows[col.key]) if col.key in rows else None
                self._put(out, target[r], c, _shown(total), self.form.cell(r, c))


def _column(series: pd.Series, kind: str) -> Col:
    """A listed column of the form as worksheet cells: numbers, ROC dates (serial days), or texts."""
    try:
        if kind == "whole":
            return whole_col(Exact.of(series, str(series.name)), False)[0]
        if kind in ("decimal", "formula", "rate"):
            return float_col(series)
        if kind == "date":
            return date_col(series)
        if kind in ("text", "choice", "code"):
            return Col(strings(series))
    except (ValueError, TypeError, ArithmeticError):
        pass  # not the kind the form says: every value as it is
    return cells_col([None if isna(v) else v if isinstance(v, int | float | str) and not isinstance(v, bool)
                      else str(v) for v in series.tolist()])


def _padded(col: Col, count: int) -> Col:
    """The column with blanks to `count` rows."""
    more = count - len(col.texts)
    if more <= 0:
        return col
    texts = pa.concat_arrays([col.texts.cast(pa.string()), pa.nulls(more, pa.string())])
    numbers = None if col.numbers is None else pa.concat_arrays([col.numbers, pa.nulls(more, col.numbers.type)])
    return Col(texts, numbers)
