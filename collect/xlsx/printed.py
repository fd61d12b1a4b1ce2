"""What a template prints below its header (notes, signature lines, example rows, prompts) and its merged ranges,
read once per template file."""

from __future__ import annotations

from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import openpyxl

from collect.xlsx.cells import clean

FORMULA = "="  # a printed formula: whatever value it shows is the form's, not the agency's


def printed_value(value: Any) -> str:
    """A value as compared with what the template prints: text cleaned as a title, numbers as 1 for 1.0, dates ISO."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).upper()
    if isinstance(value, int | float):
        return f"{float(value):.12g}"
    if isinstance(value, datetime | date):
        return value.isoformat()[:10]
    return clean(value)


def printed_texts(template: Path, sheet: str, below: int) -> dict[tuple[int, int], str]:
    """(row, column) -> the printed value of every non-blank cell of `sheet` under row `below`; FORMULA for a
    formula. {} when the template or the sheet cannot be read."""
    texts = _read(*_key(template), sheet)[0]
    return {k: v for k, v in texts.items() if k[0] > below}


def template_merges(template: Path, sheet: str) -> list[str]:
    """The merged ranges of the template's sheet ("B7:C7"): a return read from .ods reports none of its own."""
    return list(_read(*_key(template), sheet)[1])


def _key(template: Path) -> tuple[str, int]:
    try:
        return str(template), template.stat().st_mtime_ns
    except OSError:
        return str(template), 0


@lru_cache(maxsize=32)
def _read(path: str, stamp: int, sheet: str) -> tuple[dict[tuple[int, int], str], tuple[str, ...]]:
    del stamp  # part of the cache key only: a changed template is read again
    try:
        wb = openpyxl.load_workbook(path)
    except Exception:
        return {}, ()
    if sheet not in wb.sheetnames:
        return {}, ()
    ws = wb[sheet]
    out: dict[tuple[int, int], str] = {}
    for row in ws.iter_rows():
        for c in row:
            value = c.value
            if value is None or c.row is None or c.column is None:
                continue
            if isinstance(value, str) and value.startswith("="):
                out[(c.row, c.column)] = FORMULA
            elif text := printed_value(value):
                out[(c.row, c.column)] = text
    return out, tuple(str(r) for r in ws.merged_cells.ranges)
