"""Cell and range addresses (A1, $A$1, 'Sheet'!A1): openpyxl's utilities, re-exported from this one module."""

from __future__ import annotations

from openpyxl.utils.cell import (
    column_index_from_string,
    coordinate_from_string,
    get_column_letter,
    range_boundaries,
)

__all__ = ["absolute", "cell_range", "column_index_from_string", "coordinate_from_string", "get_column_letter",
           "quote_sheet", "range_boundaries"]

MAX_ROW = 1_048_576
MAX_COL = 16_384


def cell_range(ref: str) -> tuple[int, int, int, int] | None:
    """(min_col, min_row, max_col, max_row) of a cell or range address, or None for anything else (whole rows or
    columns, addresses beyond Excel's grid, text that is no address)."""
    try:
        min_col, min_row, max_col, max_row = range_boundaries(ref.strip().replace("$", "").upper())
    except (ValueError, TypeError):
        return None
    if min_col is None or min_row is None or max_col is None or max_row is None:
        return None  # whole rows or columns ("A:A", "3:3") are not a cell
    if not (1 <= min_row <= max_row <= MAX_ROW and 1 <= min_col <= max_col <= MAX_COL):
        return None
    return min_col, min_row, max_col, max_row


def absolute(col: int, row: int) -> str:
    """$C$4: LibreOffice takes 'Sheet'!C4 (or R1) for R1C1 in a link, and the link goes nowhere; $C$4 is safe."""
    return f"${get_column_letter(col)}${row}"


def quote_sheet(title: str) -> str:
    return "'" + title.replace("'", "''") + "'"
