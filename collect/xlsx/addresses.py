"""Cell and range addresses (A1, $A$1, 'Sheet'!A1): openpyxl's utilities, re-exported from this one module."""

from __future__ import annotations

import re

from openpyxl.utils.cell import (
    column_index_from_string,
    coordinate_from_string,
    get_column_letter,
    range_boundaries,
)

__all__ = [
    "a1",
    "absolute",
    "cell_range",
    "column_index_from_string",
    "column_number",
    "coordinate_from_string",
    "get_column_letter",
    "parse_a1",
    "quote_sheet",
    "range_boundaries",
]

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


def column_number(letters: str) -> int:
    """"A" -> 1, "AA" -> 27."""
    number = 0
    for ch in letters.upper():
        number = number * 26 + ord(ch) - 64
    return number


def a1(row: int, col: int) -> str:
    """1-based row and column -> "B7"."""
    return f"{get_column_letter(col)}{row}"


def parse_a1(address: str) -> tuple[int, int]:
    """"B7" -> (7, 2)."""
    found = re.fullmatch(r"\$?([A-Za-z]{1,3})\$?([0-9]+)", address.strip())
    if not found:
        raise ValueError(f"not an A1 cell address: {address!r}")
    return int(found.group(2)), column_number(found.group(1))
