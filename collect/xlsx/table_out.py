"""A plain table as a sheet (a query's answer, the lake's data-quality rows): header row, exact amounts, ROC dates."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import xlsxwriter

from collect.xlsx.printing import PrintSetup, apply_xlsxwriter
from collect.xlsx.style import MONEY_FORMAT, RATE_FORMAT, ROC_DATE_FORMAT, ROC_DATETIME_FORMAT

EXACT_LIMIT = 2**53  # Excel keeps 15 significant digits: a larger whole number is written as text, never rounded


def add_table_sheet(wb: xlsxwriter.Workbook, name: str, columns: Sequence[str], rows: Sequence[Sequence[Any]],
                    footer: str | None = None, rate_columns: Sequence[str] = ()) -> None:
    """One sheet named `name` (cut to Excel's 31 characters): a bold header row on every printed page, whole
    numbers with thousands separators, dates as ROC dates, the columns in `rate_columns` as percentages."""
    ws = wb.add_worksheet(name[:31])
    bold = wb.add_format({"bold": True, "bg_color": "#DDEBF7", "border": 1, "text_wrap": True})
    formats = {"money": wb.add_format({"num_format": MONEY_FORMAT}), "date": wb.add_format(
        {"num_format": ROC_DATE_FORMAT}), "time": wb.add_format({"num_format": ROC_DATETIME_FORMAT}),
        "rate": wb.add_format({"num_format": RATE_FORMAT})}
    widths = [max(8.0, min(40.0, len(str(c)) * 2.0 + 2)) for c in columns]
    for j, title in enumerate(columns):
        ws.write_string(0, j, str(title), bold)
    rates = {columns.index(c) for c in rate_columns if c in columns}
    for i, row in enumerate(rows, start=1):
        for j, value in enumerate(row):
            _write(ws, i, j, value, formats, j in rates)
            if isinstance(value, str):
                widths[j] = max(widths[j], min(40.0, len(value) * 1.8 + 2))
    for j, width in enumerate(widths):
        ws.set_column(j, j, width)
    ws.freeze_panes(1, 0)
    apply_xlsxwriter(ws, PrintSetup.for_width(sum(widths), title_rows=(1, 1), footer=footer))


def _write(ws: Any, i: int, j: int, value: Any, formats: dict[str, Any], rate: bool) -> None:
    if value is None:
        return
    if isinstance(value, bool):
        ws.write_boolean(i, j, value)
    elif isinstance(value, int) or (isinstance(value, Decimal) and value == value.to_integral_value()):
        whole = int(value)
        if abs(whole) >= EXACT_LIMIT:
            ws.write_string(i, j, f"{whole:,}")
        else:
            ws.write_number(i, j, whole, formats["money"])
    elif isinstance(value, float | Decimal):
        if value == value:  # not NaN
            ws.write_number(i, j, float(value), formats["rate"] if rate else None)
    elif isinstance(value, datetime):
        ws.write_datetime(i, j, value.replace(tzinfo=None), formats["time"])
    elif isinstance(value, date):
        ws.write_datetime(i, j, datetime.combine(value, datetime.min.time()), formats["date"])
    else:
        ws.write_string(i, j, str(value))


def write_table(path: Path, columns: Sequence[str], rows: Sequence[Sequence[Any]], sheet: str = "查詢結果",
                footer: str | None = None, rate_columns: Sequence[str] = ()) -> Path:
    """A workbook of one table sheet at `path` (written to a temporary name first, then renamed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.xlsx")
    wb = xlsxwriter.Workbook(str(tmp), {"strings_to_numbers": False, "strings_to_formulas": False,
                                        "strings_to_urls": False})
    try:
        add_table_sheet(wb, sheet, columns, rows, footer, rate_columns)
    finally:
        wb.close()
    tmp.replace(path)
    return path
