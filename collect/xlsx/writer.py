"""Bulk xlsx writing: a workbook planned as plain data (sheets of cells, tables of Arrow columns) written fast.

xlsxwriter writes each sheet's own cells, formats, widths, merged ranges, frozen panes, filters, charts and print
setup; the rows of a sheet's table (a `Block`, thousands to millions of rows) are rendered as sheet XML by
Arrow's string kernels a chunk of rows at a time (no Python loop per row or cell; Arrow and zlib release Python's
lock, so several workbooks can be written by threads) and spliced into xlsxwriter's package, their texts added to
its shared-string table. This is the only module of collect that talks to xlsxwriter.
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xlsxwriter
from openpyxl.utils import get_column_letter
from xlsxwriter.format import Format
from xlsxwriter.worksheet import Worksheet

from collect.xlsx.printing import PrintSetup, apply_xlsxwriter
from collect.xlsx.style import MONEY_FORMAT, RATE_FORMAT, ROC_DATE_FORMAT, ROC_DATETIME_FORMAT

# A cell's style: the name of a house style (HOUSE), or xlsxwriter format properties as sorted (name, value) pairs
# (`props`); "" or () is no style at all.
Style = str | tuple[tuple[str, Any], ...]

HOUSE: dict[str, dict[str, Any]] = {
    "money": {"num_format": MONEY_FORMAT},
    "whole": {"num_format": "0"},
    "bignum": {"align": "right"},
    "date": {"num_format": ROC_DATE_FORMAT},
    "datetime": {"num_format": ROC_DATETIME_FORMAT},
    "wrap": {"text_wrap": True},  # bottom-aligned like the cells beside it
    "rate": {"num_format": RATE_FORMAT},
    "header": {"bold": True, "bg_color": "#DDEBF7", "border": 1, "text_wrap": True, "valign": "vcenter"},
    "title": {"bold": True, "font_size": 16},
    "warning": {"bold": True, "font_color": "#C00000", "font_size": 12},
    "note": {"italic": True, "font_color": "#595959"},
    "section": {"bold": True, "font_size": 12},
    "total_label": {"bold": True, "top": 1},
    "total_money": {"bold": True, "top": 1, "num_format": MONEY_FORMAT},
    "total_rate": {"bold": True, "top": 1, "num_format": RATE_FORMAT},
    "total_bignum": {"bold": True, "top": 1, "align": "right"},
}
LINE_POINTS = 16  # a line of wrapped text, Chinese included
_CHUNK_ROWS = 50_000
_MAX_CELL_TEXT = 32_767
_MAIN_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG_NS = "http://schemas.openxmlformats.org/package/2006/relationships"
# Regular expressions for Arrow (RE2 syntax): characters XML 1.0 forbids, text Excel would read as an escape.
_ILLEGAL_XML = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x{fffe}\x{ffff}]"
_ESCAPED_LOOKALIKE = r"_(x[0-9A-Fa-f]{4}_)"


def props(**kw: Any) -> tuple[tuple[str, Any], ...]:
    """A style from xlsxwriter format properties (hashable, so each distinct style is made once per workbook)."""
    return tuple(sorted(kw.items()))


@dataclass
class Col:
    """One column of a table as Arrow arrays: per row a text, else a number, else a blank (null where not)."""

    texts: pa.Array  # string
    numbers: pa.Array | None = None  # int64 or float64; null where the row has a text or no number


@dataclass
class Block:
    """Table rows of a sheet, column by column from column A: `positions` of the columns' rows, in order, written
    on sheet rows `first_row` (1-based) down. Per column: the style of its numbers, of its texts, and of a blank
    cell (None: a blank writes nothing); `wrap` is the column's width where its texts wrap (the row then gets the
    height its lines need), `height` a fixed height of every row."""

    columns: list[Col]
    positions: np.ndarray
    first_row: int
    number_styles: list[Style]
    text_styles: list[Style]
    blank_styles: list[Style | None] | None = None
    wrap: list[float | None] | None = None
    height: float | None = None


@dataclass(frozen=True)
class Chart:
    """A bar chart of table ranges on its sheet (0-based cells): one series per value column."""

    series: list[tuple[tuple[int, int], tuple[int, int, int, int], tuple[int, int, int, int]]]  # name, cats, values
    title: str
    width: int
    height: int
    row: int
    col: int = 0


@dataclass
class Sheet:
    """One worksheet as plain data. Rows and columns are 0-based except a Block's first_row (a sheet row)."""

    name: str
    setup: PrintSetup
    cells: list[tuple[int, int, Any, Style]] = field(default_factory=list)
    merges: list[tuple[int, int, int, int, Any, Style]] = field(default_factory=list)
    widths: dict[int, float] = field(default_factory=dict)
    heights: dict[int, float] = field(default_factory=dict)
    scale: int | None = None
    page_breaks: list[int] = field(default_factory=list)
    freeze: tuple[int, int] | None = None
    autofilter: tuple[int, int, int, int] | None = None
    chart: Chart | None = None
    block: Block | None = None
    # True for a sheet that is a table: its <dimension> is set to the block's last row and column
    table_dimension: bool = False


def write_workbook(path: Path, sheets: list[Sheet]) -> None:
    """Write the sheets, in order, as one xlsx package at `path`."""
    draft = path.with_name(path.name + ".draft")
    try:
        styles = _write_frame(draft, sheets)
        _splice(draft, path, sheets, styles)
    finally:
        draft.unlink(missing_ok=True)


class _Styles:
    """Styles made into xlsxwriter formats, each once per workbook."""

    def __init__(self, wb: xlsxwriter.Workbook) -> None:
        self.wb = wb
        self.made: dict[Style, Format | None] = {"": None, (): None}

    def get(self, style: Style | None) -> Format | None:
        if style is None:
            return None
        if style not in self.made:
            self.made[style] = self.wb.add_format(HOUSE[style] if isinstance(style, str) else dict(style))
        return self.made[style]

    def index(self, style: Style | None) -> int | None:
        return xf_index(self.get(style))


def xf_index(fmt: Format | None) -> int | None:
    """The style index a format gets in styles.xml (registered now, so the cells we render can name it).

    xlsxwriter has no public call for this; its `_get_xf_index` is used here and nowhere else, and
    tests/test_report.py checks it against the index xlsxwriter itself writes for a cell, so an upgrade that
    changes it fails there instead of styling cells wrongly.
    """
    if fmt is None:
        return None
    get_index = getattr(fmt, "_get_xf_index", None)
    if get_index is None:  # pragma: no cover - only after an xlsxwriter upgrade
        raise RuntimeError(f"xlsxwriter {xlsxwriter.__version__} no longer has Format._get_xf_index: "
                           "collect/xlsx/writer.py:xf_index needs another way to learn a format's style index")
    return int(get_index())


def _write_frame(path: Path, sheets: list[Sheet]) -> dict[tuple[int, int, str], int | None]:
    """xlsxwriter's part: every sheet but its block's rows. Returns the style index of each block style."""
    wb = xlsxwriter.Workbook(str(path), {
        "strings_to_formulas": False, "strings_to_urls": False, "strings_to_numbers": False, "in_memory": True,
    })
    indexes: dict[tuple[int, int, str], int | None] = {}
    try:
        styles = _Styles(wb)
        for s, sheet in enumerate(sheets):
            if sheet.block is not None:
                b = sheet.block
                for c in range(len(b.columns)):
                    indexes[(s, c, "n")] = styles.index(b.number_styles[c])
                    indexes[(s, c, "t")] = styles.index(b.text_styles[c])
                    blank = b.blank_styles[c] if b.blank_styles else None
                    indexes[(s, c, "b")] = None if blank is None else styles.index(blank)
        worksheets = [wb.add_worksheet(sheet.name) for sheet in sheets]
        for sheet, ws in zip(sheets, worksheets, strict=True):
            _write_sheet(wb, ws, sheet, styles)
    finally:
        wb.close()
    return indexes


def _write_sheet(wb: xlsxwriter.Workbook, ws: Worksheet, sheet: Sheet, styles: _Styles) -> None:
    apply_xlsxwriter(ws, sheet.setup)
    if sheet.scale is not None:
        ws.set_print_scale(sheet.scale)
    for c, width in sheet.widths.items():
        ws.set_column(c, c, width)
    for r, height in sheet.heights.items():
        ws.set_row(r, height)
    for r, c, value, style in sheet.cells:
        _write_value(ws, r, c, value, styles.get(style), blank=style not in ("", ()))
    for r1, c1, r2, c2, value, style in sheet.merges:
        ws.merge_range(r1, c1, r2, c2, "" if value is None else value, styles.get(style))
    if sheet.freeze is not None:
        ws.freeze_panes(*sheet.freeze)
    if sheet.autofilter is not None:
        ws.autofilter(*sheet.autofilter)
    if sheet.page_breaks:
        ws.set_h_pagebreaks(sheet.page_breaks)
    if sheet.chart is not None:
        _write_chart(wb, ws, sheet.name, sheet.chart)


def _write_value(ws: Worksheet, row: int, col: int, value: Any, fmt: Format | None, *, blank: bool) -> None:
    if value is None:
        if blank and fmt is not None:
            ws.write_blank(row, col, None, fmt)
    elif isinstance(value, str):
        ws.write_string(row, col, value, fmt)
    elif isinstance(value, bool):
        ws.write_boolean(row, col, value, fmt)
    elif isinstance(value, int | float):
        ws.write_number(row, col, value, fmt)
    elif isinstance(value, datetime):
        ws.write_datetime(row, col, value, fmt)
    elif isinstance(value, date):
        ws.write_datetime(row, col, datetime(value.year, value.month, value.day), fmt)
    else:
        ws.write(row, col, value, fmt)


def _write_chart(wb: xlsxwriter.Workbook, ws: Worksheet, name: str, spec: Chart) -> None:
    chart = wb.add_chart({"type": "bar"})
    if chart is None:  # pragma: no cover - xlsxwriter returns None only for unknown chart types
        return
    for title, cats, values in spec.series:
        chart.add_series({"name": [name, *title], "categories": [name, *cats], "values": [name, *values]})
    chart.set_title({"name": spec.title, "name_font": {"size": 12}})
    chart.set_x_axis({"num_format": MONEY_FORMAT, "major_gridlines": {"visible": True}})
    chart.set_y_axis({"reverse": True})  # the first row of the table on top, as in the table
    chart.set_legend({"position": "bottom"})
    chart.set_size({"width": spec.width, "height": spec.height})
    ws.insert_chart(spec.row, spec.col, chart)


# ----------------------------------------------------------------------------------------------------
# The blocks' rows, spliced into xlsxwriter's package.


def _sheet_parts(zf: zipfile.ZipFile) -> dict[str, str]:
    """Sheet name -> its part in the package."""
    book = ElementTree.fromstring(zf.read("xl/workbook.xml"))
    rels = ElementTree.fromstring(zf.read("xl/_rels/workbook.xml.rels"))
    targets = {r.get("Id"): r.get("Target", "") for r in rels.iter(f"{{{_PKG_NS}}}Relationship")}
    out: dict[str, str] = {}
    for sheet in book.iter(f"{{{_MAIN_NS}}}sheet"):
        target = targets[sheet.get(f"{{{_REL_NS}}}id")]
        out[str(sheet.get("name"))] = target.lstrip("/") if target.startswith("/") else f"xl/{target}"
    return out


def _xml_texts(texts: pa.Array) -> pa.Array:
    """Texts as XML character data: cut to Excel's cell limit, without the characters XML forbids, escaped."""
    texts = pc.utf8_slice_codeunits(texts, 0, _MAX_CELL_TEXT)
    texts = pc.replace_substring_regex(texts, _ILLEGAL_XML, "")
    for raw, escaped in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;")):
        texts = pc.replace_substring(texts, raw, escaped)
    return pc.replace_substring_regex(texts, _ESCAPED_LOOKALIKE, r"_x005F_\1")


def _utf8(strings: pa.Array) -> memoryview:
    """The UTF-8 bytes of an array's strings one after another, without copying (the array has no nulls)."""
    if not len(strings):
        return memoryview(b"")
    _, offsets, data = strings.buffers()
    kind = np.dtype(np.int64 if pa.types.is_large_string(strings.type) else np.int32)
    ends = np.frombuffer(offsets, dtype=kind, count=len(strings) + 1, offset=strings.offset * kind.itemsize)
    return memoryview(data)[int(ends[0]):int(ends[-1])] if data is not None else memoryview(b"")


@dataclass
class _Rendered:
    """A workbook's block texts as shared strings: the distinct texts, and each column's index per row."""

    strings: pa.Array  # large_string, distinct
    # (sheet number, column number) -> index per position, null: no text; a column without any text is left out
    codes: dict[tuple[int, int], pa.Array]
    references: int


def _shared_strings(blocks: dict[int, Block]) -> _Rendered:
    pieces: list[pa.Array] = []
    where: list[tuple[int, int]] = []
    for s, block in blocks.items():
        positions = pa.array(block.positions, pa.int64())
        every = len(block.positions) == len(block.columns[0].texts) and bool(
            (block.positions == np.arange(len(block.positions))).all())  # the whole table, in order: no copy
        for c, col in enumerate(block.columns):
            if col.texts.null_count == len(col.texts):
                continue  # no text at all (a number column, mostly): no part in the string table
            pieces.append((col.texts if every else col.texts.take(positions)).cast(pa.large_string()))
            where.append((s, c))
    if not pieces:
        return _Rendered(pa.array([], pa.large_string()), {}, 0)
    lengths = [len(p) for p in pieces]
    joined = pa.concat_arrays(pieces)
    del pieces
    references = len(joined) - joined.null_count
    encoded = joined.dictionary_encode()
    del joined
    codes: dict[tuple[int, int], pa.Array] = {}
    start = 0
    for key, length in zip(where, lengths, strict=True):
        codes[key] = encoded.indices.slice(start, length)
        start += length
    return _Rendered(encoded.dictionary, codes, references)


def _attr(index: int | None) -> str:
    return f' s="{index}"' if index is not None else ""


def _render_rows(block: Block, s: int, rendered: _Rendered, offset: int, styles: dict[tuple[int, int, str],
                 int | None], lo: int, hi: int) -> pa.Array:
    """The <row> elements of positions lo..hi of the block (one string each).

    Built column by column with Arrow's string kernels: a cell is a shared-string index where the row has a
    text, else a number, else a styled blank or nothing.
    """
    positions = pa.array(block.positions[lo:hi], pa.int64())
    first = block.first_row + lo
    rows = pc.cast(pa.array(np.arange(first, first + hi - lo, dtype=np.int64)), pa.string())
    height = f' ht="{block.height:g}" customHeight="1"' if block.height else _row_heights(block, positions)
    parts: list[Any] = ['<row r="', rows, '"', height, ">"]
    for c, col in enumerate(block.columns):
        cell = f'<c r="{get_column_letter(c + 1)}'
        has_text: Any = False
        if (s, c) in rendered.codes:
            codes = rendered.codes[(s, c)].slice(lo, hi - lo)
            has_text = pc.is_valid(codes)
            codes = pc.add(codes.cast(pa.int64()), offset)
            parts.append(pc.binary_join_element_wise(cell, rows, f'"{_attr(styles[(s, c, "t")])} t="s"><v>',
                                                     pc.cast(codes, pa.string()), "</v></c>", ""))
        has_number: Any = False
        if col.numbers is not None and col.numbers.null_count < len(col.numbers):
            numbers = col.numbers.take(positions)
            has_number = pc.is_valid(numbers)
            parts.append(pc.binary_join_element_wise(cell, rows, f'"{_attr(styles[(s, c, "n")])}><v>',
                                                     pc.cast(numbers, pa.string()), "</v></c>", ""))
        blank = styles[(s, c, "b")]
        if blank is not None:
            present = [p for p in (has_text, has_number) if p is not False]
            empty = pc.invert(pc.or_(*present)) if len(present) == 2 else pc.invert(present[0]) if present else \
                pa.array(np.ones(hi - lo, dtype=bool))
            parts.append(pc.if_else(empty, pc.binary_join_element_wise(cell, rows, f'"{_attr(blank)}/>', ""),
                                    pa.scalar(None, pa.string())))
    return pc.binary_join_element_wise(*parts, "</row>", "", null_handling="replace", null_replacement="")


def _row_heights(block: Block, positions: pa.Array) -> pa.Array | str:
    """Each row's height attribute: as many lines as its longest wrapped text needs (LibreOffice keeps a row one
    line tall on opening, cutting the rest off), nothing for a row of one line."""
    lines: pa.Array | None = None
    for col, width in zip(block.columns, block.wrap or [], strict=False):
        if width is None:
            continue
        texts = pc.fill_null(col.texts.take(positions), "")
        wide = pc.divide(pc.add(pc.binary_length(texts), pc.utf8_length(texts)), 2)  # CJK 2, ASCII 1
        need = pc.ceil(pc.divide(pc.cast(wide, pa.float64()), max(1.0, width - 2)))
        lines = need if lines is None else pc.max_element_wise(lines, need)
    if lines is None:
        return ""
    heights = pc.cast(pc.multiply(pc.max_element_wise(lines, 1.0), LINE_POINTS), pa.int64())
    attribute = pc.binary_join_element_wise(' ht="', pc.cast(heights, pa.string()), '" customHeight="1"', "")
    return pc.if_else(pc.greater(lines, 1.0), attribute, "")


_ROW_START = re.compile(r'<row r="(\d+)"')


def _splice(draft: Path, out: Path, sheets: list[Sheet], styles: dict[tuple[int, int, str], int | None]) -> None:
    """Copy xlsxwriter's package, adding every block's rows to its sheet and its texts to the string table."""
    blocks = {s: sheet.block for s, sheet in enumerate(sheets)
              if sheet.block is not None and len(sheet.block.positions)}
    rendered = _shared_strings(blocks)
    # Members opened by name take the archive's method and level: deflate at level 1, fast, since the sheets are
    # large and compress well anyway.
    with zipfile.ZipFile(draft) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as dst:
        parts = _sheet_parts(src)
        targets = {parts[sheets[s].name]: s for s in blocks}
        sst = src.read("xl/sharedStrings.xml").decode("utf-8")  # every workbook has texts: titles, headers
        unique_before = int(re.search(r'uniqueCount="(\d+)"', sst).group(1))  # type: ignore[union-attr]
        count_before = int(re.search(r' count="(\d+)"', sst).group(1))  # type: ignore[union-attr]
        for info in src.infolist():
            if info.filename == "xl/sharedStrings.xml":
                continue
            data = src.read(info)
            s = targets.get(info.filename)
            if s is None:
                dst.writestr(info, data)
                continue
            block, sheet = blocks[s], sheets[s]
            xml = data.decode("utf-8").replace("<sheetData/>", "<sheetData></sheetData>")
            if sheet.table_dimension:
                last = f"{get_column_letter(len(block.columns))}{block.first_row + len(block.positions) - 1}"
                xml = re.sub(r'<dimension ref="[^"]*"/>', f'<dimension ref="A1:{last}"/>', xml, count=1)
            head, tail = xml.split("</sheetData>", 1)
            after = ""  # the rows xlsxwriter wrote below the block
            for m in _ROW_START.finditer(head):
                if int(m.group(1)) >= block.first_row:
                    head, after = head[:m.start()], head[m.start():]
                    break
            with dst.open(info.filename, "w", force_zip64=True) as fh:
                fh.write(head.encode("utf-8"))
                for start in range(0, len(block.positions), _CHUNK_ROWS):
                    stop = min(len(block.positions), start + _CHUNK_ROWS)
                    fh.write(_utf8(_render_rows(block, s, rendered, unique_before, styles, start, stop)))
                fh.write((after + "</sheetData>" + tail).encode("utf-8"))
        with dst.open("xl/sharedStrings.xml", "w", force_zip64=True) as fh:
            head, tail = sst.rsplit("</sst>", 1)
            head = re.sub(r' count="\d+"', f' count="{count_before + rendered.references}"', head, count=1)
            head = re.sub(r'uniqueCount="\d+"', f'uniqueCount="{unique_before + len(rendered.strings)}"', head,
                          count=1)
            fh.write(head.encode("utf-8"))
            start_item, end_item, nothing = (pa.scalar(x, pa.large_string())
                                             for x in ('<si><t xml:space="preserve">', "</t></si>", ""))
            for start in range(0, len(rendered.strings), _CHUNK_ROWS):
                items = _xml_texts(rendered.strings.slice(start, _CHUNK_ROWS))
                fh.write(_utf8(pc.binary_join_element_wise(start_item, items, end_item, nothing)))
            fh.write(("</sst>" + tail).encode("utf-8"))
