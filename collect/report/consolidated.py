"""The consolidated form (彙整表): the collection's own form, in its own layout, with the accepted figures added up.

A grid or fields form gets every numeric input cell summed exactly over the accepted returns (text cells list
what was written); a list form gets every accepted row under the form's header, its totals recomputed. The
template is read with openpyxl once and copied into the report workbook (written by xlsxwriter) with its column
widths, row heights, merged ranges, fonts, borders, fills and number formats; no stamp, no protection.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import openpyxl
import pandas as pd
import xlsxwriter
from openpyxl.cell.cell import Cell as XlCell
from openpyxl.utils import column_index_from_string, get_column_letter
from openpyxl.utils.cell import coordinate_to_tuple
from xlsxwriter.format import Format
from xlsxwriter.worksheet import Worksheet

from collect.forms.spec import (
    NAME_AGENCY_CODE,
    NAME_AGENCY_NAME,
    NAME_DEADLINE,
    NAME_PERIOD,
    NAME_SUPERVISOR,
    Collection,
)
from collect.xlsx.cells import Merges, bordered
from collect.xlsx.printing import PrintSetup, apply_xlsxwriter, openpyxl_width
from collect.xlsx.style import ROC_DATE_FORMAT

SHEET = "彙整表"
MAX_LISTED = 5  # a text cell of a summed grid lists at most this many distinct answers
# A list form lists at most this many accepted rows (its totals still add up every row): beyond, the 明細 sheet
# and the Parquet/CSV export hold them all, and the sheet says so under its totals.
MAX_LISTED_ROWS = 20_000
_BORDERS = {"thin": 1, "medium": 2, "dashed": 3, "dotted": 4, "thick": 5, "double": 6, "hair": 7,
            "mediumDashed": 8, "dashDot": 9, "mediumDashDot": 10, "dashDotDot": 11, "mediumDashDotDot": 12,
            "slantDashDot": 13}


def _number(value: Any) -> Decimal | None:
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, bool):
        return None
    if isinstance(value, int | Decimal):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    try:
        return Decimal(str(value))
    except ArithmeticError:
        return None


def _shown(value: Decimal | None) -> int | float | None:
    """An exact sum as a worksheet number: whole sums stay integers."""
    if value is None:
        return None
    return int(value) if value == value.to_integral_value() else float(value)


def _text(values: list[Any]) -> str | None:
    distinct = list(dict.fromkeys(str(v).strip() for v in values if v is not None and v is not pd.NA
                                  and str(v).strip() and str(v) != "nan"))
    if not distinct:
        return None
    more = len(distinct) - MAX_LISTED
    return "、".join(distinct[:MAX_LISTED]) + (f" 等 {len(distinct)} 項" if more > 0 else "")


@dataclass
class _Style:
    """openpyxl cell styles turned into xlsxwriter formats, each made once per workbook."""

    wb: xlsxwriter.Workbook
    made: dict[tuple[Any, ...], Format]

    def of(self, cell: XlCell | None, number_format: str | None = None) -> Format | None:
        if cell is None or not cell.has_style:
            return self._get((), {"num_format": number_format} if number_format else {})
        f, a, b, fill = cell.font, cell.alignment, cell.border, cell.fill
        props: dict[str, Any] = {}
        if f is not None:
            if f.name:
                props["font_name"] = f.name
            if f.sz:
                props["font_size"] = float(f.sz)
            if f.b:
                props["bold"] = True
            if f.i:
                props["italic"] = True
            if f.u:
                props["underline"] = 1
            rgb = getattr(f.color, "rgb", None) if f.color is not None else None
            if isinstance(rgb, str) and len(rgb) == 8 and rgb != "FF000000":
                props["font_color"] = "#" + rgb[2:]
        if a is not None:
            if a.horizontal in ("left", "center", "right", "fill", "justify", "centerContinuous", "distributed"):
                props["align"] = {"centerContinuous": "center_across"}.get(a.horizontal, a.horizontal)
            if a.vertical in ("top", "center", "bottom", "justify", "distributed"):
                props["valign"] = {"center": "vcenter"}.get(a.vertical, a.vertical)
            if a.wrap_text:
                props["text_wrap"] = True
        for side in ("left", "right", "top", "bottom"):
            style = getattr(getattr(b, side, None), "style", None)
            if style in _BORDERS:
                props[side] = _BORDERS[style]
        if fill is not None and fill.fill_type == "solid":
            rgb = getattr(fill.fgColor, "rgb", None)
            if isinstance(rgb, str) and len(rgb) == 8:
                props["bg_color"] = "#" + rgb[2:]
        fmt = number_format or cell.number_format
        if fmt and fmt != "General":
            props["num_format"] = fmt
        return self._get(tuple(sorted(props.items())), props)

    def _get(self, key: tuple[Any, ...], props: dict[str, Any]) -> Format:
        if key not in self.made:
            self.made[key] = self.wb.add_format(props)
        return self.made[key]


def sheet_writer(coll: Collection, rows: pd.DataFrame, period: str = "",
                 deadline: str = "") -> Callable[[xlsxwriter.Workbook, str | None, str], None]:
    """The report's extra-sheet hook: a 彙整表 sheet for the city (None) or one supervising agency (its code); the
    form's identity block says whose consolidation it is, for which period and deadline."""
    template = _Template.read(coll.template_path, coll)

    def write(wb: xlsxwriter.Workbook, supervisor: str | None, footer: str) -> None:
        mine = rows if supervisor is None else rows[rows["supervisor"].astype(str) == supervisor]
        template.write(wb, coll, mine, footer, identity(supervisor, mine, period, deadline))

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
    """The template's form sheet as openpyxl read it, kept for every workbook of the report."""

    ws: Any
    merges: Merges
    max_row: int
    max_col: int

    @classmethod
    def read(cls, path: Path, coll: Collection) -> _Template:
        assert coll.layout is not None
        wb = openpyxl.load_workbook(path)
        ws = wb[coll.layout.sheet]
        used = [(c.row or 1, c.column or 1) for row in ws.iter_rows() for c in row
                if c.value is not None or (c.has_style and bordered(c, ("left", "bottom")))]
        last_col = max((col for _r, col in used), default=1)
        last_row = max((r for r, _c in used), default=1)
        return cls(ws, Merges.of(ws), max(last_row, coll.layout.data_last_row, *coll.layout.total_rows),
                   min(last_col, 200))

    def write(self, wb: xlsxwriter.Workbook, coll: Collection, rows: pd.DataFrame, footer: str,
              shown: dict[str, str]) -> None:
        lay = coll.layout
        assert lay is not None
        out = wb.add_worksheet(SHEET)
        style = _Style(wb, {})
        values: dict[tuple[int, int], Any] = {  # (template row, col) -> the value to show
            coordinate_to_tuple(ref): shown[name] for name, ref in lay.identity.items() if shown.get(name)}
        extra = 0  # a list with more accepted rows than the form has: the rows below move down
        first_data = lay.data_first_row
        if lay.cells:
            sums = self._cell_sums(coll, rows)
            for key, ref in lay.cells.items():  # inputs and totals alike: every key of a cell form has its cell
                values[coordinate_to_tuple(ref)] = sums.get(key)
            listed: list[dict[str, Any]] = []
        else:
            listed = rows.head(MAX_LISTED_ROWS).to_dict("records")
            extra = max(0, len(listed) - len(lay.data_rows))
        # rows of the template, each to its row of the sheet
        target = {r: r + extra if r > lay.data_last_row else r for r in range(1, self.max_row + 1)}
        for c in range(1, self.max_col + 1):
            dim = self.ws.column_dimensions.get(get_column_letter(c))
            if dim is not None and dim.width:
                out.set_column(c - 1, c - 1, float(dim.width))
        for r in range(1, self.max_row + 1):
            dim = self.ws.row_dimensions.get(r)
            height = float(dim.height) if dim is not None and dim.height else None
            if height:
                out.set_row(target[r] - 1, height)
        data_rows = set(lay.data_rows)
        letters = {k: column_index_from_string(v) for k, v in lay.letters.items()}
        sample_row = lay.data_rows[0] if lay.data_rows else first_data
        for r in range(1, self.max_row + 1):
            if not lay.cells and r in data_rows:
                continue  # a list's data rows are written below, one per accepted row
            for c in range(1, self.max_col + 1):
                if self.merges.is_covered(r, c):
                    continue
                cell = self.ws.cell(r, c)
                if (r, c) in values:
                    value = values[(r, c)]
                elif isinstance(cell.value, str) and cell.value.startswith("="):
                    value = None  # the form's formulas: their results are written where collect computes them
                else:
                    value = cell.value
                self._put(out, style, target[r], c, value, cell)
        if not lay.cells:
            self._list_rows(out, style, coll, listed, sample_row, letters, first_data)
            self._total_rows(out, style, coll, rows, letters, target)
            if len(rows) > len(listed):
                note = (f"本表列出前 {len(listed):,} 列（共 {len(rows):,} 列），合計含全部各列；完整資料見「明細」"
                        f"工作表及 Parquet/CSV 檔，各列所屬機關亦見「明細」（順序相同）。")
            else:
                note = f"本表共 {len(rows):,} 列，各列所屬機關見「明細」工作表（順序相同）。"
            # below everything written: the form's last row (moved down) and the last listed row
            last = max(target[self.max_row], first_data + max(len(listed), len(lay.data_rows)) - 1)
            out.write_string(last + 1, 0, note)  # 0-based: one blank row between
        for (r1, c1, r2, c2) in self.merges.extent.values():
            if not lay.cells and (r1 in data_rows or r2 in data_rows):
                continue
            first = self.ws.cell(r1, c1)
            value = values.get((r1, c1), first.value)
            if isinstance(value, str) and value.startswith("="):
                value = None
            # a merged range may reach below the sheet's last written row: it moves down like the rows it spans
            out.merge_range(target.get(r1, r1 + extra) - 1, c1 - 1, target.get(r2, r2 + extra) - 1, c2 - 1,
                            "" if value is None else value,
                            style.of(first))
        apply_xlsxwriter(out, PrintSetup.for_width(openpyxl_width(self.ws, self.max_col),
                                                   title_rows=(lay.header_rows.start, lay.header_row), footer=footer))

    def _put(self, out: Worksheet, style: _Style, row: int, col: int, value: Any, cell: XlCell | None) -> None:
        dated = isinstance(value, date) and (cell is None or not cell.is_date)
        general = cell is None or cell.number_format in ("General", "@")
        grouped = isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 1000 and general
        fmt = style.of(cell, ROC_DATE_FORMAT if dated else "#,##0" if grouped else None)
        if value is None:
            if fmt is not None and cell is not None and cell.has_style:
                out.write_blank(row - 1, col - 1, None, fmt)
            return
        if isinstance(value, str):
            out.write_string(row - 1, col - 1, value, fmt)
        elif isinstance(value, bool):
            out.write_boolean(row - 1, col - 1, value, fmt)
        elif isinstance(value, int | float):
            out.write_number(row - 1, col - 1, value, fmt)
        elif isinstance(value, datetime | date):
            out.write_datetime(row - 1, col - 1, value if isinstance(value, datetime) else
                               datetime(value.year, value.month, value.day), fmt)
        else:
            out.write(row - 1, col - 1, value, fmt)

    def _cell_sums(self, coll: Collection, rows: pd.DataFrame) -> dict[str, Any]:
        sums: dict[str, Any] = {}
        for col in coll.columns:
            if col.kind in ("text", "choice", "code", "date"):
                sums[col.key] = _text(rows[col.key].tolist()) if col.key in rows else None
            elif col.count_of is not None:  # the rule says: count the returns that reported the other cell
                counted = [n for v in rows[col.count_of].tolist() if (n := _number(v)) is not None and n != 0] \
                    if col.count_of in rows else []
                sums[col.key] = Decimal(len(counted)) if len(rows) else None
            elif not col.is_total:
                numbers = [n for v in (rows[col.key].tolist() if col.key in rows else []) if (n := _number(v))
                           is not None]
                sums[col.key] = sum(numbers, Decimal(0)) if numbers else None
        for col in coll.computed:
            if col.is_total:
                parts = [sums.get(k) for k in col.of or ()]
                known = [p for p in parts if isinstance(p, Decimal)]
                sums[col.key] = sum(known, Decimal(0)) if known and col.of else None
        return {k: (_shown(v) if isinstance(v, Decimal) else v) for k, v in sums.items()}

    def _list_rows(self, out: Worksheet, style: _Style, coll: Collection, listed: list[dict[str, Any]],
                   sample_row: int, letters: dict[str, int], first: int) -> None:
        lay = coll.layout
        assert lay is not None
        count = max(len(listed), len(lay.data_rows))
        key_at = {v: k for k, v in letters.items()}
        cols = [(c, key_at.get(c), self.ws.cell(sample_row, c)) for c in range(1, self.max_col + 1)]
        ordinal = {c.key for c in coll.columns if c.ordinal}  # 項次 numbers the rows of this form, not an agency's
        for i in range(count):
            r = first + i
            rec = {**listed[i], **dict.fromkeys(ordinal, i + 1)} if i < len(listed) else {}
            for c, key, look in cols:
                self._put(out, style, r, c, _cell_value(rec.get(key)) if key else None, look)

    def _total_rows(self, out: Worksheet, style: _Style, coll: Collection, rows: pd.DataFrame,
                    letters: dict[str, int], target: dict[int, int]) -> None:
        lay = coll.layout
        assert lay is not None
        for r in lay.total_rows:
            for col in coll.columns:
                c = letters.get(col.key)
                if c is None or coll.value_kind(col) not in ("whole", "decimal") or col.ordinal:
                    continue
                numbers = [n for v in rows[col.key].tolist() if (n := _number(v)) is not None] \
                    if col.key in rows else []
                total = sum(numbers, Decimal(0)) if numbers else None
                self._put(out, style, target[r], c, _shown(total), self.ws.cell(r, c))


def _cell_value(value: Any) -> Any:
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if isinstance(value, Decimal):
        return _shown(value)
    if hasattr(value, "item"):  # numpy scalars
        value = value.item()
    if isinstance(value, int | float | str):
        return value
    return str(value)
