"""Many copies of one workbook, fast: its package read once, unchanged parts compressed once, and a worksheet part's
empty cells filled in its raw XML (how each agency's stamped copy, and a simulated agency's answer, are written)."""

from __future__ import annotations

import io
import re
import struct
import zipfile
import zlib
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from xml.sax.saxutils import escape

from collect.xlsx.dates import to_serial
from collect.xlsx.package import Package, Unsupported, workbook_part
from collect.xlsx.xmltext import dropped

NO_CUT = 2**31  # the lookup reads the workbook's XML whole: nothing in it is cut


def parts(data: bytes) -> dict[str, tuple[tuple[int, ...], bytes]]:
    """The package's parts in order: name -> (its zip date_time, its bytes)."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {info.filename: (info.date_time, zf.read(info)) for info in zf.infolist()}


def sheet_part(data: bytes, sheet: str) -> str:
    """The part name of the worksheet titled `sheet` (xl/worksheets/sheet3.xml), through the workbook's
    relationships (package.workbook_part); ValueError when the package has no such sheet."""
    try:
        worksheets = workbook_part(Package(data, {}, max_chars=NO_CUT)).worksheets
    except Unsupported as exc:
        raise ValueError(f"no sheet {sheet}: {exc}") from None
    if sheet not in worksheets:
        raise ValueError(f"no sheet {sheet}")
    return worksheets[sheet]


def fill_sheet(data: bytes, sheet: str, cells: Mapping[str, Any]) -> bytes:
    """The workbook `data` with the empty cells of `sheet` filled (see fill_cells); every other part unchanged."""
    name = sheet_part(data, sheet)
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            body = src.read(info)
            dst.writestr(info, fill_cells(body, cells) if info.filename == name else body)
    return out.getvalue()


class ZipTemplate:
    """A zip package whose unchanged members are compressed once; build() writes a copy with some parts replaced.
    The members named in `stored` are kept uncompressed (an .ods package's `mimetype`, as ODF requires)."""

    def __init__(self, members: list[tuple[str, bytes, tuple[int, ...]]], stored: frozenset[str] = frozenset()) -> None:
        self._members = [(name, _dos_time(when), *_pack(data, stored=name in stored)) for name, data, when in members]

    def build(self, changed: Mapping[str, bytes]) -> bytes:
        out = io.BytesIO()
        central = []
        for name, (dtime, ddate), method, crc, size, packed in self._members:
            if name in changed:
                method, crc, size, packed = _pack(changed[name])
            raw_name = name.encode("utf-8")
            flags = 0x800 if not raw_name.isascii() else 0
            offset = out.tell()
            out.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, flags, method, dtime, ddate, crc, len(packed),
                                  size, len(raw_name), 0))
            out.write(raw_name)
            out.write(packed)
            central.append(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, flags, method, dtime, ddate, crc,
                                       len(packed), size, len(raw_name), 0, 0, 0, 0, 0, offset) + raw_name)
        start = out.tell()
        for entry in central:
            out.write(entry)
        out.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(central), len(central), out.tell() - start, start,
                              0))
        return out.getvalue()


def _pack(data: bytes, *, stored: bool = False) -> tuple[int, int, int, bytes]:
    """(zip method, CRC-32, size, the member's bytes as written): stored as they are, or deflated."""
    if stored:
        return 0, zlib.crc32(data), len(data), data
    deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
    return 8, zlib.crc32(data), len(data), deflate.compress(data) + deflate.flush()


def _dos_time(when: tuple[int, ...]) -> tuple[int, int]:
    year, month, day, hour, minute, second = (tuple(when) + (0,) * 6)[:6]
    return (hour << 11) | (minute << 5) | (second // 2), (max(year, 1980) - 1980) << 9 | (month << 5) | day


# openpyxl writes an empty cell as <c .../> with xml.etree and as <c ...></c> when lxml is installed.
_EMPTY_CELL = re.compile(rb'<c r="([A-Z]{1,3}[0-9]{1,7})"((?: [a-z]+="[^"]*")*)\s*(?:/>|></c>)')


def cell_xml(ref: str, attrs: str, value: Any, style: int | None = None) -> str:
    """One filled <c> element; strings go inline so sharedStrings.xml never changes; `style` replaces its xf."""
    attrs = re.sub(r' t="[^"]*"', "", attrs)
    if style is not None:
        attrs = re.sub(r' s="[^"]*"', "", attrs) + f' s="{style}"'
    if isinstance(value, bool):
        return f'<c r="{ref}"{attrs} t="b"><v>{int(value)}</v></c>'
    if isinstance(value, int | float | Decimal):
        return f'<c r="{ref}"{attrs}><v>{value}</v></c>'
    if isinstance(value, date | datetime):
        return f'<c r="{ref}"{attrs}><v>{to_serial(value)}</v></c>'
    text = escape(dropped(str(value)))
    return f'<c r="{ref}"{attrs} t="inlineStr"><is><t xml:space="preserve">{text}</t></is></c>'


def fill_cells(xml: bytes, cells: Mapping[str, Any], styles: Mapping[str, int] | None = None) -> bytes:
    """Fill empty (styled) cells of a worksheet part in place; every target cell must exist as an empty <c/>.

    `styles` gives some of those cells another xf index (e.g. the locked look of a prefilled locked cell).
    """
    remaining = dict(cells)
    restyle = styles or {}

    def sub(m: re.Match[bytes]) -> bytes:
        ref = m.group(1).decode()
        if ref not in remaining:
            return m.group(0)
        return cell_xml(ref, m.group(2).decode(), remaining.pop(ref), restyle.get(ref)).encode("utf-8")

    out = _EMPTY_CELL.sub(sub, xml)
    if remaining:
        raise ValueError(f"the template has no empty styled cell at {', '.join(sorted(remaining))}")
    return out
