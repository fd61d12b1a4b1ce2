"""Trimming a workbook's empty styled cells right of its last used column (LibreOffice writes 1,024 a row)."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

from openpyxl.utils import column_index_from_string, get_column_letter

SPARE = 50  # a sheet with at most this many value-less columns right of its last used one is left as it is
SPARE_ROWS = 300  # ... and value-less rows are kept this far below its last used row (a list's empty rows)
_ROW = re.compile(rb'<row r="(\d+)"[^>]*?(?:/>|>(.*?)</row>)', re.S)
_CELL = re.compile(rb'<c r="([A-Z]+)(\d+)"[^>]*?(?:/>|>(.*?)</c>)', re.S)
_MERGE = re.compile(rb'<mergeCell ref="[A-Z]+\d+:([A-Z]+)(\d+)"')
_DIMENSION = re.compile(rb'<dimension ref="([A-Z]+\d+):([A-Z]+)(\d+)"')


def trim_columns(source: Path, target: Path) -> bool:
    """Write `source` to `target` without the value-less cells right of each sheet's last column that holds a
    value or a merged range (a converted .ods styles whole rows out to column AMJ, which makes openpyxl load millions
    of empty cells). A sheet with no more than SPARE such columns is kept as it is. True when anything was
    trimmed; `target` is a plain copy otherwise."""
    trimmed = False
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename.startswith("xl/worksheets/sheet") and info.filename.endswith(".xml"):
                new = _trim(data)
                trimmed = trimmed or new is not data
                data = new
            zout.writestr(info, data)
    return trimmed


def _trim(xml: bytes) -> bytes:
    index: dict[bytes, int] = {}

    def col(letters: bytes) -> int:
        if letters not in index:
            index[letters] = column_index_from_string(letters.decode())
        return index[letters]

    last = widest = last_row = 1
    for m in _CELL.finditer(xml):
        c = col(m.group(1))
        widest = max(widest, c)
        body = m.group(3)
        if body and (b"<v" in body or b"<f" in body or b"<is" in body):
            last = max(last, c)
            last_row = max(last_row, int(m.group(2)))
    for m in _MERGE.finditer(xml):
        last = max(last, col(m.group(1)))
        last_row = max(last_row, int(m.group(2)))
    if widest <= last + SPARE:
        return xml

    def keep(m: re.Match[bytes]) -> bytes:
        return m.group(0) if col(m.group(1)) <= last else b""

    def keep_row(m: re.Match[bytes]) -> bytes:
        return m.group(0) if int(m.group(1)) <= last_row + SPARE_ROWS else b""

    out = _ROW.sub(keep_row, _CELL.sub(keep, xml))
    letter = get_column_letter(last).encode()
    return _DIMENSION.sub(lambda m: b'<dimension ref="' + m.group(1) + b":" + letter + m.group(3) + b'"', out, 1)
