"""Trimming a workbook's empty styled cells right of its last used column (LibreOffice writes 1,024 a row)."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

from openpyxl.utils import column_index_from_string, get_column_letter

SPARE = 50  # a sheet with at most this many value-less columns right of its last used one is left as it is
_CELL = re.compile(rb'<c r="([A-Z]+)(\d+)"[^>]*?(?:/>|>(.*?)</c>)', re.S)
_MERGE = re.compile(rb'<mergeCell ref="[A-Z]+\d+:([A-Z]+)\d+"')
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
    last = widest = 1
    for m in _CELL.finditer(xml):
        body = m.group(3) or b""
        col = column_index_from_string(m.group(1).decode())
        widest = max(widest, col)
        if b"<v" in body or b"<f" in body or b"<is" in body:
            last = max(last, col)
    for m in _MERGE.finditer(xml):
        last = max(last, column_index_from_string(m.group(1).decode()))
    if widest <= last + SPARE:
        return xml

    def keep(m: re.Match[bytes]) -> bytes:
        return m.group(0) if column_index_from_string(m.group(1).decode()) <= last else b""

    out = _CELL.sub(keep, xml)
    letter = get_column_letter(last).encode()
    return _DIMENSION.sub(lambda m: b'<dimension ref="' + m.group(1) + b":" + letter + m.group(3) + b'"', out, 1)
