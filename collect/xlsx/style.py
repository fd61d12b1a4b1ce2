"""The house style of every workbook collect writes: number formats (the ROC date among them), fonts and fills."""

from __future__ import annotations

from typing import Final

# Real dates shown as ROC dates (115/03/05) by Excel and LibreOffice alike ([$-30404] shows a Japanese era).
ROC_DATE_FORMAT: Final = "[$-404]e/mm/dd"
ROC_DATETIME_FORMAT: Final = "[$-404]e/mm/dd hh:mm"
MONEY_FORMAT: Final = "#,##0"
RATE_FORMAT: Final = "0.0%"
