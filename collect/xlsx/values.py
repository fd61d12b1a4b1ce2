"""A sheet's values read fast (calamine), by Excel row and column: what a person sees already filled in a copy."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pandas as pd
from python_calamine import CalamineWorkbook


def sheet_values(data: bytes, sheet: str) -> dict[tuple[int, int], Any]:
    """(1-based row, column) -> value of every non-empty cell of `sheet` in the workbook `data` (dates as date or
    datetime, numbers as float or int); KeyError-free: a sheet that is not there reads as empty."""
    wb = CalamineWorkbook.from_filelike(io.BytesIO(data))
    if sheet not in wb.sheet_names:
        return {}
    grid = wb.get_sheet_by_name(sheet)
    if grid.start is None:
        return {}
    top, left = grid.start
    out: dict[tuple[int, int], Any] = {}
    for i, row in enumerate(grid.to_python(skip_empty_area=True)):
        for j, value in enumerate(row):
            if value is not None and value != "":
                out[(top + i + 1, left + j + 1)] = value
    return out


def first_sheet_frame(path: Path) -> pd.DataFrame:
    """A workbook's first sheet as a table (.xlsx, .xls, .ods): its first row the titles, every value an object."""
    return pd.read_excel(path, dtype=object, engine="calamine")
