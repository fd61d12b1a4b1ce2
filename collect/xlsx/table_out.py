"""A plain table as a sheet (a query's answer, the lake's data-quality rows): header row, exact amounts, ROC dates;
described as a writer.Sheet, so it is written like every other report sheet."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from collect.xlsx.printing import PrintSetup
from collect.xlsx.writer import Sheet, Style, write_workbook

EXACT_LIMIT = 2**53  # Excel keeps 15 significant digits: a larger whole number is written as text, never rounded


def table_sheet(name: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], footer: str | None = None,
                rate_columns: Sequence[str] = ()) -> Sheet:
    """One sheet named `name` (cut to Excel's 31 characters): a bold header row on every printed page, whole
    numbers with thousands separators, dates as ROC dates, the columns in `rate_columns` as percentages."""
    widths = [max(8.0, min(40.0, len(str(c)) * 2.0 + 2)) for c in columns]
    cells: list[tuple[int, int, Any, Style]] = [(0, j, str(title), "header") for j, title in enumerate(columns)]
    rates = {columns.index(c) for c in rate_columns if c in columns}
    for i, row in enumerate(rows, start=1):
        for j, value in enumerate(row):
            cell = _cell(value, j in rates)
            if cell is not None:
                cells.append((i, j, *cell))
            if isinstance(value, str):
                widths[j] = max(widths[j], min(40.0, len(value) * 1.8 + 2))
    setup = PrintSetup.for_width(sum(widths), title_rows=(1, 1), footer=footer)
    return Sheet(name[:31], setup, cells=cells, widths=dict(enumerate(widths)), freeze=(1, 0))


def _cell(value: Any, rate: bool) -> tuple[Any, Style] | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return value, ""
    if isinstance(value, int) or (isinstance(value, Decimal) and value == value.to_integral_value()):
        whole = int(value)
        return (f"{whole:,}", "bignum") if abs(whole) >= EXACT_LIMIT else (whole, "money")
    if isinstance(value, float | Decimal):
        return (float(value), "rate" if rate else "") if value == value else None  # NaN: nothing
    if isinstance(value, datetime):
        return value.replace(tzinfo=None), "datetime"
    if isinstance(value, date):
        return value, "date"
    return str(value), ""


def write_table(path: Path, columns: Sequence[str], rows: Sequence[Sequence[Any]], sheet: str = "查詢結果",
                footer: str | None = None, rate_columns: Sequence[str] = ()) -> Path:
    """A workbook of one table sheet at `path` (written to a temporary name first, then renamed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.xlsx")
    write_workbook(tmp, [table_sheet(sheet, columns, rows, footer, rate_columns)])
    tmp.replace(path)
    return path
