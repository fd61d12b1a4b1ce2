"""The annotated copy of a returned workbook: failing cells filled and commented, a 檢核結果 sheet first."""

from __future__ import annotations

import bisect
import codecs
import datetime as dt
import html
import io
import itertools
import math
import posixpath
import re
import unicodedata
import warnings
import xml.etree.ElementTree as ET
import zipfile
from array import array
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote
from xml.sax.saxutils import escape

import openpyxl
from openpyxl.cell.cell import Cell, MergedCell
from openpyxl.comments import Comment
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils.cell import get_column_letter, range_boundaries
from openpyxl.utils.exceptions import IllegalCharacterError
from openpyxl.workbook.views import BookView
from openpyxl.worksheet.hyperlink import Hyperlink
from openpyxl.worksheet.worksheet import Worksheet
from python_calamine import CalamineWorkbook, SheetTypeEnum, SheetVisibleEnum

from collect.findings import Finding, cut
from collect.xlsx.printing import PrintSetup, apply_openpyxl, sheet_xml

SUMMARY_SHEET = "檢核結果"
COMMENT_AUTHOR = "collect"
ERROR_RGB = "FFFF9999"  # light red: an error on this cell
WARNING_RGB = "FFFFFF99"  # light yellow: a warning on this cell
HEADERS = ("序號", "嚴重度", "工作表", "儲存格", "欄位", "填寫值", "說明")
SEVERITY_LABEL = {"error": "錯誤", "warning": "警告"}

_MAX_ROW = 1_048_576
_MAX_COL = 16_384
_MAX_FILLED_PER_FINDING = 10_000  # a finding on a huge range fills at most this many cells
_MAX_MERGE_ENTRIES = 1_000_000  # (merged range, row asked about) pairs indexed at most, for ranges that overlap
_OPENPYXL_KINDS = frozenset({"xlsx", "xlsm"})
_INVALID_TITLE_CHARS = str.maketrans({c: "_" for c in "[]:*?/\\"})


def error_fill() -> PatternFill:
    return PatternFill(fill_type="solid", fgColor=ERROR_RGB, bgColor=ERROR_RGB)


def warning_fill() -> PatternFill:
    return PatternFill(fill_type="solid", fgColor=WARNING_RGB, bgColor=WARNING_RGB)


def annotate(
    data: bytes,
    kind: str,
    findings: list[Finding],
    *,
    title: str = "",
    summary_lines: Iterable[str] = (),
    fast: bool = True,
    parts: Mapping[str, bytes] | None = None,
) -> bytes:
    """The bytes of a new .xlsx: the agency's workbook with failing cells marked and a 檢核結果 sheet first.

    `kind` is "xlsx", "xlsm", "xls", "ods" or "xlsb". xlsx/xlsm are annotated by patching the package's XML
    (`fast`: every part not marked is copied as it is, apart from what _safe_xml changes; only the parts the
    package's relationships reach are carried; VBA is dropped, the result is a plain .xlsx); a file the fast path
    does not handle goes through an openpyxl copy (formulas, styles and protection kept); other kinds, and files
    openpyxl cannot handle, become a copy of the values at the same addresses. If no reader can open the file, the
    result holds the 檢核結果 sheet only. On every path no part holds a character XML forbids, and a text value
    longer than MAX_COPY_CHARS is cut. `parts`: members of the package already decompressed
    (collect.receive.read.Book.parts), used instead of decompressing them again.
    """
    lines = list(summary_lines)
    if kind.lower() in _OPENPYXL_KINDS:
        if fast:
            try:
                return _annotate_fast(data, findings, title, lines, parts or {})
            except Exception:  # anything the fast path does not handle (or a bug in it): the openpyxl path
                pass
        try:
            return _annotate_openpyxl(data, findings, title, lines)
        except Exception:  # openpyxl raises KeyError/TypeError/ValueError... on odd files: copy the values
            pass
    try:
        wb, renamed = _value_copy(data)
    except Exception as exc:  # neither reader can open it: still answer with the list of findings
        wb = openpyxl.Workbook()
        wb.remove(wb.active)  # type: ignore[arg-type]
        lines.append(f"（無法複製原檔內容：{type(exc).__name__}）")
        renamed = {}
    return _finish(wb, findings, title, lines, renamed)


# --- the two ways of getting a workbook to annotate -------------------------------------------------------


def _annotate_openpyxl(data: bytes, findings: list[Finding], title: str, lines: list[str]) -> bytes:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "extension is not supported and will be removed" and the like
        wb = openpyxl.load_workbook(io.BytesIO(data), keep_vba=False, keep_links=True)
        return _finish(wb, findings, title, lines, {})


def _value_copy(data: bytes) -> tuple[openpyxl.Workbook, dict[str, str]]:
    """A new workbook holding every worksheet's values at their original addresses; {original: new} names."""
    book = CalamineWorkbook.from_filelike(io.BytesIO(data))
    wb = openpyxl.Workbook()
    wb.remove(wb.active)  # type: ignore[arg-type]
    renamed: dict[str, str] = {}
    taken: set[str] = set()
    for meta in book.sheets_metadata:
        if meta.typ not in (SheetTypeEnum.WorkSheet, SheetTypeEnum.DialogSheet, SheetTypeEnum.MacroSheet):
            continue
        name = _unique_title(_safe_title(meta.name), taken)
        taken.add(name.casefold())
        if name != meta.name:
            renamed[meta.name] = name
        ws = wb.create_sheet(name)
        if meta.visible == SheetVisibleEnum.Hidden:
            ws.sheet_state = "hidden"
        elif meta.visible == SheetVisibleEnum.VeryHidden:
            ws.sheet_state = "veryHidden"
        sheet = book.get_sheet_by_name(meta.name)
        _copy_values(ws, sheet.start, sheet.to_python(skip_empty_area=True))
        for (r1, c1), (r2, c2) in sheet.merged_cell_ranges or []:
            if (r1, c1) != (r2, c2):
                ws.merge_cells(start_row=r1 + 1, start_column=c1 + 1, end_row=r2 + 1, end_column=c2 + 1)
    if not wb.worksheets:
        raise ValueError("no worksheets")
    return wb, renamed


def _copy_values(ws: Worksheet, start: tuple[int, int] | None, grid: list[list[Any]]) -> None:
    if start is None:
        return
    row0, col0 = start
    widths: dict[int, float] = {}
    for r, values in enumerate(grid, start=row0 + 1):
        for c, value in enumerate(values, start=col0 + 1):
            if value is None or value == "":
                continue
            cell = ws.cell(row=r, column=c)
            _set_value(cell, value)
            shown = value.strftime("%Y-%m-%d %H:%M") if isinstance(value, dt.datetime) else str(value)
            widths[c] = max(widths.get(c, 0.0), float(_text_width(shown)))
    for c, width in widths.items():
        if width > 8:
            ws.column_dimensions[get_column_letter(c)].width = min(width + 2, 50)


def _set_value(cell: Cell | MergedCell, value: Any) -> None:
    """Store `value` as it is; text stays text even when it looks like a formula or holds control chars."""
    if isinstance(value, str):
        try:
            cell.value = value
        except IllegalCharacterError:
            cell.value = _clean_text(value)
        cell.data_type = "s"  # not "f" for "=1+1", not "e" for a typed "#N/A"
        return
    cell.value = value


# C0 control characters other than tab, line feed and carriage return cannot be in an XML part (a raw one makes the
# copy unopenable): each is shown as its symbol from Unicode's Control Pictures block (NUL as ␀, ESC as ␛), which
# Excel displays and which tells staff what the agency's file held; U+FFFE and U+FFFF (not characters) as �.
_VISIBLE = str.maketrans({**{c: 0x2400 + c for c in (*range(0, 9), 11, 12, *range(14, 32))},
                          0xFFFE: 0xFFFD, 0xFFFF: 0xFFFD})


def _clean_text(text: str) -> str:
    """`text` with every character XML cannot hold replaced by a visible symbol."""
    return text.translate(_VISIBLE)


def _safe_title(name: str) -> str:
    title = _clean_text(name).translate(_INVALID_TITLE_CHARS).strip("'")[:31]
    return title or "Sheet"


def _unique_title(title: str, taken: set[str]) -> str:
    if title.casefold() not in taken:
        return title
    n = 2
    while True:
        suffix = f" ({n})"
        candidate = title[: 31 - len(suffix)] + suffix
        if candidate.casefold() not in taken:
            return candidate
        n += 1


# --- annotating ------------------------------------------------------------------------------------------


@dataclass
class _Target:
    """Where one finding lands: the sheet, the cell range (1-based, inclusive), and the link location."""

    sheet: str
    min_col: int
    min_row: int
    max_col: int
    max_row: int
    location: str
    ws: Worksheet | None = None  # the openpyxl sheet, on the openpyxl path


def _finish(
    wb: openpyxl.Workbook, findings: list[Finding], title: str, lines: list[str], renamed: dict[str, str]
) -> bytes:
    order = {name: i for i, name in enumerate(wb.sheetnames)}
    targets = [_target(wb, f, renamed) for f in findings]
    _mark_cells(findings, targets)
    ranked = sorted(range(len(findings)), key=lambda i: _sort_key(findings[i], targets[i], order, i))
    _write_summary(wb, [(findings[i], targets[i]) for i in ranked], title, lines)
    out = io.BytesIO()
    wb.save(out)
    return _rewrite_parts(out.getvalue())


_BLANK_TEXT = re.compile(rb"<t>([ \t\r\n]+)</t>")


def _rewrite_parts(xlsx: bytes) -> bytes:
    """openpyxl's package with long text cut (_safe_xml) and whitespace-only text marked as preserved (openpyxl
    writes <t> </t>, which readers then load as blank)."""
    with zipfile.ZipFile(io.BytesIO(xlsx)) as src:
        parts = [(info, src.read(info)) for info in src.infolist()]
    fixed = False
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info, body in parts:
            new = _safe_xml(body) if _is_xml(info.filename) else body
            if info.filename.startswith("xl/") and info.filename.endswith(".xml") and b"<t>" in new:
                new = _BLANK_TEXT.sub(rb'<t xml:space="preserve">\1</t>', new)
            fixed = fixed or new != body
            dst.writestr(info, new)
    return out.getvalue() if fixed else xlsx


def _sort_key(f: Finding, t: _Target | None, order: dict[str, int], i: int) -> tuple[int, int, int, int, int]:
    severity = 0 if f.severity == "error" else 1
    if t is not None:
        return (severity, order.get(t.sheet, len(order)), t.min_row, t.min_col, i)
    if not f.sheet:
        return (severity, -1, 0, 0, i)  # whole-file findings first within their severity
    return (severity, len(order), 0, 0, i)


def _find_name(names: Iterable[str], name: str) -> str | None:
    """The sheet called `name` among `names`, compared as Excel does (case-insensitively) if not exactly."""
    names = list(names)
    if name in names:
        return name
    folded = name.casefold()
    return next((n for n in names if n.casefold() == folded), None)


def _find_sheet(wb: openpyxl.Workbook, name: str, renamed: dict[str, str]) -> Worksheet | None:
    sheets = {ws.title: ws for ws in wb.worksheets if isinstance(ws, Worksheet)}  # not chart sheets
    found = _find_name(sheets, renamed.get(name, name))
    return None if found is None else sheets[found]


def _cell_range(ref: str) -> tuple[int, int, int, int] | None:
    """(min_col, min_row, max_col, max_row) of a cell or range address, or None for anything else."""
    try:
        min_col, min_row, max_col, max_row = range_boundaries(ref.strip().replace("$", "").upper())
    except (ValueError, TypeError):
        return None
    if min_col is None or min_row is None or max_col is None or max_row is None:
        return None  # whole rows or columns ("A:A", "3:3") are not a cell
    if not (1 <= min_row <= max_row <= _MAX_ROW and 1 <= min_col <= max_col <= _MAX_COL):
        return None
    return min_col, min_row, max_col, max_row


def _make_target(title: str, cell: str, ws: Worksheet | None = None) -> _Target | None:
    bounds = _cell_range(cell)
    if bounds is None:
        return None
    min_col, min_row, max_col, max_row = bounds
    # Absolute form: LibreOffice takes 'Sheet'!C4 (or R1) for R1C1 and the link goes nowhere; $C$4 is safe.
    location = f"{_quote_sheet(title)}!{absolute_coordinate(min_col, min_row)}"
    if (min_col, min_row) != (max_col, max_row):
        location += f":{absolute_coordinate(max_col, max_row)}"
    return _Target(title, min_col, min_row, max_col, max_row, location, ws)


def _quote_sheet(title: str) -> str:
    return "'" + title.replace("'", "''") + "'"


def _target(wb: openpyxl.Workbook, f: Finding, renamed: dict[str, str]) -> _Target | None:
    if not f.sheet or not f.cell:
        return None
    ws = _find_sheet(wb, f.sheet, renamed)
    return None if ws is None else _make_target(ws.title, f.cell, ws)


def absolute_coordinate(col: int, row: int) -> str:
    return f"${get_column_letter(col)}${row}"


def _anchor(ws: Worksheet, row: int, col: int) -> tuple[int, int]:
    """The top-left cell of the merged range holding (row, col), or (row, col) itself."""
    if isinstance(ws.cell(row=row, column=col), MergedCell):
        for rng in ws.merged_cells.ranges:
            if rng.min_row <= row <= rng.max_row and rng.min_col <= col <= rng.max_col:
                return rng.min_row, rng.min_col
    return row, col


_CellKey = tuple[str, int, int]  # (sheet title, row, column), 1-based


def _plan_marks(
    findings: list[Finding], targets: list[_Target | None], anchor: Callable[[_Target, int, int], tuple[int, int]]
) -> tuple[dict[_CellKey, str], dict[_CellKey, list[str]]]:
    """The severity to fill each marked cell with (the worst wins) and the comment lines of each commented cell."""
    comments: dict[_CellKey, list[str]] = {}
    fills: dict[_CellKey, str] = {}
    for f, t in zip(findings, targets, strict=True):
        if t is None:
            continue
        row, col = anchor(t, t.min_row, t.min_col)
        label = SEVERITY_LABEL.get(f.severity, f.severity)
        comments.setdefault((t.sheet, row, col), []).append(_clean_text(f"{label}：{f.message}"))
        count = 0
        for r in range(t.min_row, t.max_row + 1):
            for c in range(t.min_col, t.max_col + 1):
                cell_key = (t.sheet, *anchor(t, r, c))
                if fills.get(cell_key) != "error":
                    fills[cell_key] = "error" if f.severity == "error" else "warning"
                count += 1
                if count >= _MAX_FILLED_PER_FINDING:
                    break
            if count >= _MAX_FILLED_PER_FINDING:
                break
    return fills, comments


def _mark_cells(findings: list[Finding], targets: list[_Target | None]) -> None:
    sheets = {t.sheet: t.ws for t in targets if t is not None and t.ws is not None}

    def anchor(t: _Target, row: int, col: int) -> tuple[int, int]:
        assert t.ws is not None
        return _anchor(t.ws, row, col)

    fills, comments = _plan_marks(findings, targets, anchor)
    for (name, row, col), severity in fills.items():
        cell = sheets[name].cell(row=row, column=col)
        cell.fill = error_fill() if severity == "error" else warning_fill()
    for (name, row, col), messages in comments.items():
        cell = sheets[name].cell(row=row, column=col)
        text = "\n".join(messages)
        old = cell.comment
        if old is not None and old.content and old.author != COMMENT_AUTHOR:
            text += _THEIRS + old.content  # keep the agency's own note under ours
        cell.comment = _comment(text)


_THEIRS = "\n——\n"


def _comment_size(text: str) -> tuple[int, int]:
    """(width, height) in pixels of a comment box in which Chinese text is readable without resizing it."""
    width_px = 320
    chars_per_line = (width_px - 16) / 7  # half-width units at the 9 pt comment font
    lines = sum(max(1, math.ceil(_text_width(line) / chars_per_line)) for line in text.split("\n"))
    return width_px, min(24 + 18 * lines, 600)


def _comment(text: str) -> Comment:
    width, height = _comment_size(text)
    return Comment(text, COMMENT_AUTHOR, height=height, width=width)


def _text_width(text: str) -> int:
    """Display width in half-width units: CJK and full-width characters count 2."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


_SUMMARY_CAPS = (6, 8, 24, 12, 24, 30, 70)  # the widest each column of the 檢核結果 sheet gets (說明 always this)
_WRAPPED = range(4, 7)  # 欄位, 填寫值 and 說明 wrap
_LINE_POINTS = 16.5  # the height of one line of the 11 pt body font, Chinese included


def _summary_layout(rows: list[list[str | None]]) -> tuple[list[int], list[float | None]]:
    """The 檢核結果 sheet's column widths, and each finding row's height (None: one line). A row is as tall as its
    wrapped text needs: neither Excel nor LibreOffice grows a row for wrapped text when it opens a written file, so
    a long 說明 showed one line, cut at the page's edge."""
    widths = [_text_width(h) for h in HEADERS]
    for values in rows:
        widths = [max(w, _text_width(v or "")) for w, v in zip(widths, values, strict=True)]
    shown = [cap if c == len(HEADERS) - 1 else min(max(width + 2, 6), cap)
             for c, (width, cap) in enumerate(zip(widths, _SUMMARY_CAPS, strict=True))]
    heights: list[float | None] = []
    for values in rows:
        lines = max(sum(max(1, math.ceil(_text_width(part) / max(shown[c] - 1, 1)))
                        for part in (values[c] or "").split("\n")) for c in _WRAPPED)
        heights.append(lines * _LINE_POINTS if lines > 1 else None)
    return shown, heights


# --- the 檢核結果 sheet ------------------------------------------------------------------------------------


def _text_cell(ws: Worksheet, row: int, col: int, text: str | None) -> Cell | MergedCell:
    """A cell holding `text` as text (never as a formula)."""
    cell = ws.cell(row=row, column=col)
    if text is not None and text != "":
        cell.value = _clean_text(text)
        cell.data_type = "s"
    return cell


def _write_summary(
    wb: openpyxl.Workbook, rows: list[tuple[Finding, _Target | None]], title: str, lines: list[str]
) -> None:
    taken = {ws.title.casefold() for ws in wb.worksheets}
    ws = wb.create_sheet(_unique_title(SUMMARY_SHEET, taken), 0)
    # printed on A4 landscape, one page wide: the 說明 column stays on the page of its finding
    apply_openpyxl(ws, PrintSetup(landscape=True))
    bold = Font(bold=True)
    _text_cell(ws, 1, 1, title or SUMMARY_SHEET).font = Font(bold=True, size=14)
    r = 2
    for line in lines:
        _text_cell(ws, r, 1, line)
        r += 1
    if not rows:
        _text_cell(ws, r, 1, "沒有發現任何問題。")
        r += 1
    header_row = r + 1
    for c, name in enumerate(HEADERS, start=1):
        cell = _text_cell(ws, header_row, c, name)
        cell.font = bold
        cell.fill = PatternFill(fill_type="solid", fgColor="FFD9D9D9")
    link_font = Font(color="FF0563C1", underline="single")
    wrap = Alignment(wrap_text=True, vertical="top")
    top = Alignment(vertical="top")
    table = [_summary_values(n, f, t) for n, (f, t) in enumerate(rows, start=1)]
    widths, heights = _summary_layout(table)
    for n, ((f, t), values, height) in enumerate(zip(rows, table, heights, strict=True), start=1):
        row = header_row + n
        ws.cell(row=row, column=1, value=n).alignment = top
        for c, text in enumerate(values[1:], start=2):
            cell = _text_cell(ws, row, c, text)
            cell.alignment = wrap if c - 1 in _WRAPPED else top
        if height is not None:
            ws.row_dimensions[row].height = height
        ws.cell(row=row, column=2).fill = error_fill() if f.severity == "error" else warning_fill()
        if t is not None:
            link = ws.cell(row=row, column=4)
            link.hyperlink = Hyperlink(ref=link.coordinate, location=t.location, display=f.cell)
            link.font = link_font
    for c, width in enumerate(widths, start=1):
        ws.column_dimensions[get_column_letter(c)].width = width
    ws.freeze_panes = ws.cell(row=header_row + 1, column=1)
    if rows:
        ws.auto_filter.ref = f"A{header_row}:{get_column_letter(len(HEADERS))}{header_row + len(rows)}"
    _make_active_first(wb, ws)


def _summary_values(n: int, f: Finding, t: _Target | None) -> list[str | None]:
    """One finding's row of the 檢核結果 sheet, as text: 序號, 嚴重度, 工作表, 儲存格, 欄位, 填寫值, 說明."""
    sheet_name = t.sheet if t is not None else f.sheet
    return [str(n), SEVERITY_LABEL.get(f.severity, f.severity), sheet_name, f.cell, f.column,
            None if f.value is None else str(f.value), f.message]


def _make_active_first(wb: openpyxl.Workbook, ws: Worksheet) -> None:
    for name in wb.sheetnames:  # a second selected tab would make Excel open the sheets grouped
        other = wb[name]
        views = other.views if isinstance(other, Worksheet) else getattr(other, "sheetViews", None)
        for view in getattr(views, "sheetView", None) or []:
            view.tabSelected = other is ws
    wb.active = ws
    if not wb.views:
        wb.views.append(BookView())
    wb.views[0].firstSheet = 0


# --- the fast path: patch the package's XML, copy every other part as it is -----------------------------------

_MAIN_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG_REL_NS = "http://schemas.openxmlformats.org/package/2006/relationships"
_VML_NS = "urn:schemas-microsoft-com:vml"
_OFFICE_NS = "urn:schemas-microsoft-com:office:office"
_EXCEL_NS = "urn:schemas-microsoft-com:office:excel"
_RT_OFFICE_DOCUMENT = _REL_NS + "/officeDocument"
_RT_WORKSHEET = _REL_NS + "/worksheet"
_RT_STYLES = _REL_NS + "/styles"
_RT_COMMENTS = _REL_NS + "/comments"
_RT_VML = _REL_NS + "/vmlDrawing"
_RT_VBA = "http://schemas.microsoft.com/office/2006/relationships/vbaProject"
_CT_PART = "[Content_Types].xml"
_CT_WORKBOOK = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"
_CT_WORKSHEET = "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"
_CT_COMMENTS = "application/vnd.openxmlformats-officedocument.spreadsheetml.comments+xml"
_CT_VML = "application/vnd.openxmlformats-officedocument.vmlDrawing"
_XML_DECL = b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
_SHAPES_PER_BLOCK = 1023  # VML shape ids come in blocks of 1024 per <o:idmap data="n">

_ROW_TAG = re.compile(rb'<row\b[^>]*?\sr="(\d+)"[^>]*?(/?)>')
_CELL = re.compile(rb"<c\b[^>]*?(?:/>|>.*?</c>)", re.S)
_CELL_REF = re.compile(rb'\sr="([A-Z]{1,3})(\d+)"')
_ATTR = re.compile(rb'([\w:.-]+)\s*=\s*(?:"([^"]*)"|\'([^\']*)\')')
_AFTER_LEGACY_DRAWING = re.compile(
    rb"<(?:legacyDrawingHF|drawingHF|picture|oleObjects|controls|webPublishItems|tableParts|extLst|\w+:AlternateContent)\b"
)

for _prefix, _uri in (("v", _VML_NS), ("o", _OFFICE_NS), ("x", _EXCEL_NS)):
    ET.register_namespace(_prefix, _uri)


class _Unsupported(Exception):
    """The fast path does not handle this package; the openpyxl path does."""


def _esc(text: str) -> str:
    return escape(_clean_text(text))


def _esc_attr(text: str) -> str:
    return escape(_clean_text(text), {'"': "&quot;"})


def _attrs(tag: bytes) -> dict[str, str]:
    """The attributes of a start tag, by qualified name, undecoded apart from UTF-8."""
    return {m[1].decode(): (m[2] if m[2] is not None else m[3]).decode() for m in _ATTR.finditer(tag)}


def _set_attrs(tag: bytes, values: dict[str, str]) -> bytes:
    """`tag` (a start tag, maybe self-closing) with these attributes set; None-valued ones removed."""
    for name, value in values.items():
        pattern = re.compile(rb"\s" + re.escape(name.encode()) + rb'\s*=\s*(?:"[^"]*"|\'[^\']*\')')
        new = f' {name}="{value}"'.encode()
        if pattern.search(tag):
            tag = pattern.sub(lambda _m, new=new: new, tag, count=1)  # type: ignore[misc]
        else:
            end = len(tag) - (2 if tag.endswith(b"/>") else 1)
            tag = tag[:end] + new + tag[end:]
    return tag


def _drop_attr(tag: bytes, name: str) -> bytes:
    return re.sub(rb"\s" + re.escape(name.encode()) + rb'\s*=\s*(?:"[^"]*"|\'[^\']*\')', b"", tag, count=1)


def _require_root(xml: bytes, tag: bytes) -> None:
    """The part's root element is `tag` without a namespace prefix (what the byte-level edits below expect)."""
    if xml.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise _Unsupported("UTF-16 part")
    if not re.search(rb"<" + tag + rb"[\s>/]", xml[:4096]):
        raise _Unsupported(f"no plain <{tag.decode()}> root")


def _col_number(letters: bytes) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + ch - 64
    return n


# --- what the copy carries: known parts under plain names, no control characters, long text cut ----------------

MAX_COPY_CHARS = 2_000  # a text value in the copy is cut to this many characters (a cell holds up to 32,767)
_MAX_PART_NAME = 255
_XML_SUFFIXES = (".xml", ".rels", ".vml")
_CONTROL_BYTES = bytes([*range(0, 9), 11, 12, *range(14, 32)])
_ILLEGAL_REF = rb"&#0*(?:[0-8]|1[124-9]|2[0-9]|3[01]);|&#[xX]0*(?:[0-8bBcCeEfF]|1[0-9a-fA-F]|[fF]{3}[eEfF]);"
_ILLEGAL_XML = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f]|\xef\xbf[\xbe\xbf]|" + _ILLEGAL_REF)  # U+FFFE/F in UTF-8
_ILLEGAL_REF_FOUND = re.compile(_ILLEGAL_REF)
_LONG_TEXT = re.compile(rb">([^<]{%d,})<" % MAX_COPY_CHARS)  # bytes: a text of more characters has at least as many


def _is_xml(name: str) -> bool:
    return name.lower().endswith(_XML_SUFFIXES)


def _safe_part_name(name: str) -> bool:
    """A member name the copy may carry: relative, normalised and plain (no "..", no backslash, drive or control
    character), and short."""
    if not name or len(name) > _MAX_PART_NAME or name.startswith("/") or "\\" in name or ":" in name:
        return False
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        return False
    return all(segment not in ("", ".", "..") for segment in name.split("/"))


def _visible_control(m: re.Match[bytes]) -> bytes:
    found = m[0]
    if found.startswith(b"&#"):
        digits = found[2:-1]
        code = int(digits[1:], 16) if digits[:1] in (b"x", b"X") else int(digits)
    else:
        code = found[0] if len(found) == 1 else 0xFFFF
    return chr(code).translate(_VISIBLE).encode()


def _xml_text(raw: bytes) -> str:
    """The characters of an XML text node (UTF-8, references resolved): by expat (a million references in 0.1 s,
    where a Python callback per reference took 0.8 s), or by html.unescape where expat finds it malformed."""
    try:
        return ET.fromstring(b"<t>" + raw + b"</t>").text or ""
    except ET.ParseError:
        return html.unescape(raw.decode("utf-8", "replace"))


def _safe_xml(body: bytes) -> bytes:
    """An XML part as the copy carries it: every character XML cannot hold shown visibly (_clean_text), and text
    longer than MAX_COPY_CHARS cut as findings cut a value (「…（共 N 字）」): in shared and inline strings,
    comments, and cell values (a long number or date becomes that text). Any other node is left as it is."""
    utf16 = body.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or body[:2] in (b"<\x00", b"\x00<")
    if utf16:
        try:
            body = body.decode("utf-16").encode()
        except UnicodeDecodeError as exc:
            raise _Unsupported("a UTF-16 part that does not decode") from exc
    if _has_illegal(body):
        body = _ILLEGAL_XML.sub(_visible_control, body)
    if _LONG_TEXT.search(body):
        body = _cut_long_text(body)
    return body.decode().encode("utf-16") if utf16 else body


def _has_illegal(body: bytes) -> bool:
    """Whether _ILLEGAL_XML occurs in `body`, found in three quick passes (its one search takes 3 times longer)."""
    if len(body.translate(None, _CONTROL_BYTES)) != len(body):
        return True
    return b"\xef\xbf\xbe" in body or b"\xef\xbf\xbf" in body or _ILLEGAL_REF_FOUND.search(body) is not None


def _cut_long_text(body: bytes) -> bytes:
    pieces: list[bytes] = []
    pos = 0
    for m in _LONG_TEXT.finditer(body):
        text = _xml_text(m[1])
        if len(text) <= MAX_COPY_CHARS:
            continue
        opened = body.rfind(b"<", 0, m.start())
        name = re.match(rb"<([\w:.-]+)", body[opened : m.start() + 1])
        local = name[1].rpartition(b":")[2] if name else b""
        if local not in (b"t", b"v"):
            continue  # a formula, a defined name...: not a value shown; left as the agency had it
        shown = escape(cut(text, MAX_COPY_CHARS)).encode()
        if local == b"v":
            cell = max(body.rfind(b"<c ", 0, opened), body.rfind(b"<c>", 0, opened))
            tag_end = body.find(b">", cell) + 1
            tag = body[cell:tag_end]
            if cell < pos or tag_end > opened or tag.endswith(b"/>") or body.find(b"</c>", tag_end, opened) >= 0:
                continue  # not a cell's value (a chart's cache ...)
            if _attrs(tag).get("t") not in ("str", "inlineStr"):  # a number, date, boolean... of that length
                pieces += [body[pos:cell], _set_attrs(tag, {"t": "str"})]
                pos = tag_end
        pieces += [body[pos : m.start(1)], shown]
        pos = m.end(1)
    if not pieces:
        return body
    pieces.append(body[pos:])
    return b"".join(pieces)


class _Package:
    """The parts of a zip package: read lazily, changed, added or removed, then written back in their order. The
    copy carries only the parts reached through the package's relationships, under plain names, with every XML
    part made safe (_safe_xml)."""

    def __init__(self, data: bytes, known: Mapping[str, bytes]) -> None:
        self.zip = zipfile.ZipFile(io.BytesIO(data))
        self.known = known  # members already decompressed, by name
        self.infos = [i for i in self.zip.infolist() if not i.is_dir()]
        self.names = {i.filename for i in self.infos}
        if len({n.casefold() for n in self.names}) != len(self.infos):
            raise _Unsupported("duplicate part names")
        self.changed: dict[str, bytes] = {}
        self.removed: set[str] = set()

    def exists(self, name: str) -> bool:
        return (name in self.names or name in self.changed) and name not in self.removed

    def read(self, name: str) -> bytes:
        if name in self.changed:
            return self.changed[name]
        if not self.exists(name):
            raise _Unsupported(f"missing part {name}")
        body = self.known[name] if name in self.known else self.zip.read(name)
        return _safe_xml(body) if _is_xml(name) else body

    def write(self, name: str, body: bytes) -> None:
        self.changed[name] = body
        self.removed.discard(name)

    def remove(self, name: str) -> None:
        self.removed.add(name)
        self.changed.pop(name, None)

    def free_name(self, pattern: str) -> str:
        taken = {n.casefold() for n in self.names | set(self.changed)}
        n = 1
        while pattern.format(n).casefold() in taken:
            n += 1
        return pattern.format(n)

    def reachable(self) -> set[str]:
        """The parts reached from the package's relationships (with their own .rels parts) and [Content_Types].xml:
        what the copy carries. A part no relationship names stays behind."""
        keep = {_CT_PART}
        todo = [""]
        while todo:
            part = todo.pop()
            rels = _rels_part(part)
            if self.exists(rels):
                keep.add(rels)
            for rel in _read_rels(self, part):
                if not rel.external and rel.target not in keep and self.exists(rel.target):
                    keep.add(rel.target)
                    todo.append(rel.target)
        unsafe = next((name for name in keep if not _safe_part_name(name)), None)
        if unsafe is not None:  # a relationship the copy cannot keep: openpyxl builds the package anew
            raise _Unsupported(f"a part named {unsafe[:80]!r}")
        return keep

    def save(self) -> bytes:
        out = io.BytesIO()
        added = dict(self.changed)
        keep = self.reachable()
        if _CT_PART in added:
            added[_CT_PART] = _known_types(added[_CT_PART], keep)
        when = (2026, 1, 1, 0, 0, 0)
        # level 1: deflating the agency's sheets again is most of this path's time; level 6 saves ~15% of bytes
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as dst:
            for info in self.infos:
                name = info.filename
                if name in self.removed or name not in keep:
                    continue
                body = added.pop(name, None)
                if body is None:
                    body = self.read(name)
                dst.writestr(zipfile.ZipInfo(name, when), body, zipfile.ZIP_DEFLATED, 1)  # no mode bits, no links
            for name, body in added.items():
                if name in keep:
                    dst.writestr(zipfile.ZipInfo(name, when), body, zipfile.ZIP_DEFLATED, 1)
        return out.getvalue()


def _known_types(xml: bytes, keep: set[str]) -> bytes:
    """[Content_Types].xml without the overrides of parts the copy does not carry."""
    kept = {name.casefold() for name in keep}

    def override(m: re.Match[bytes]) -> bytes:
        part = unquote(_attrs(m[0][: m[0].index(b">") + 1]).get("PartName", "")).lstrip("/")
        return m[0] if part.casefold() in kept else b""

    return re.sub(rb"<Override\b[^>]*?(?:/>|>\s*</Override>)", override, xml)


@dataclass
class _Rel:
    id: str
    type: str
    target: str  # the part name it points to (resolved), or the raw target when external
    external: bool


def _rels_part(part: str) -> str:
    folder, _, base = part.rpartition("/")
    return f"{folder}/_rels/{base}.rels" if folder else f"_rels/{base}.rels"


def _resolve(part: str, target: str) -> str:
    target = unquote(target)
    if target.startswith("/"):
        return target[1:]
    folder = part.rpartition("/")[0]
    return posixpath.normpath(posixpath.join(folder, target)) if folder else posixpath.normpath(target)


def _relative(part: str, target_part: str) -> str:
    return posixpath.relpath(target_part, part.rpartition("/")[0] or ".")


def _read_rels(pkg: _Package, part: str) -> list[_Rel]:
    path = _rels_part(part)
    if not pkg.exists(path):
        return []
    root = ET.fromstring(pkg.read(path))
    rels = []
    for el in root.iter(f"{{{_PKG_REL_NS}}}Relationship"):
        external = el.get("TargetMode") == "External"
        target = el.get("Target", "")
        resolved = target if external else _resolve(part, target)
        rels.append(_Rel(el.get("Id", ""), el.get("Type", ""), resolved, external))
    return rels


def _add_rels(pkg: _Package, part: str, new: list[tuple[str, str]]) -> list[str]:
    """Add relationships (type, target part) from `part`; their ids."""
    path = _rels_part(part)
    existing = {r.id for r in _read_rels(pkg, part)}
    ids, xml = [], []
    n = 1
    for rel_type, target in new:
        while f"rId{n}" in existing:
            n += 1
        existing.add(f"rId{n}")
        ids.append(f"rId{n}")
        xml.append(f'<Relationship Id="rId{n}" Type="{rel_type}" Target="{_esc_attr(_relative(part, target))}"/>')
    if pkg.exists(path):
        body = pkg.read(path)
        _require_root(body, b"Relationships")
        end = body.rindex(b"</Relationships>")
        pkg.write(path, body[:end] + "".join(xml).encode() + body[end:])
    else:
        pkg.write(path, _XML_DECL + f'<Relationships xmlns="{_PKG_REL_NS}">{"".join(xml)}</Relationships>'.encode())
    return ids


def _remove_rel(pkg: _Package, part: str, rel_id: str) -> None:
    path = _rels_part(part)
    body = pkg.read(path)
    pattern = rb'<Relationship\b[^>]*\sId="' + re.escape(rel_id.encode()) + rb'"[^>]*?(?:/>|>\s*</Relationship>)'
    pkg.write(path, re.sub(pattern, b"", body, count=1))


class _ContentTypes:
    def __init__(self, xml: bytes) -> None:
        _require_root(xml, b"Types")
        self.xml = xml

    def override(self, part: str, content_type: str) -> None:
        name = re.escape(("/" + part).encode())
        pattern = re.compile(rb'<Override\b[^>]*\sPartName="' + name + rb'"[^>]*?/>', re.I)
        new = f'<Override PartName="/{_esc_attr(part)}" ContentType="{content_type}"/>'.encode()
        if pattern.search(self.xml):
            self.xml = pattern.sub(lambda _m: new, self.xml, count=1)
        else:
            self.xml = self.xml.replace(b"</Types>", new + b"</Types>")

    def drop(self, part: str) -> None:
        name = re.escape(("/" + part).encode())
        self.xml = re.sub(rb'<Override\b[^>]*\sPartName="' + name + rb'"[^>]*?/>', b"", self.xml, flags=re.I)

    def default(self, extension: str, content_type: str) -> None:
        if not re.search(rb'<Default\b[^>]*\sExtension="' + extension.encode() + rb'"', self.xml, re.I):
            new = f'<Default Extension="{extension}" ContentType="{content_type}"/>'.encode()
            self.xml = self.xml.replace(b"</Types>", new + b"</Types>")


class _Styles:
    """styles.xml with fills, fonts and cell formats appended (existing indexes never move)."""

    def __init__(self, xml: bytes) -> None:
        _require_root(xml, b"styleSheet")
        self.xml = xml
        self.blocks: dict[bytes, tuple[int, int, list[bytes]]] = {}
        for tag, item in ((b"fonts", b"font"), (b"fills", b"fill"), (b"cellXfs", b"xf")):
            m = re.search(rb"<" + tag + rb"\b[^>]*>(.*?)</" + tag + rb">", xml, re.S)
            if m is None:
                raise _Unsupported(f"styles.xml has no <{tag.decode()}>")
            items = re.findall(rb"<" + item + rb"\b[^>]*?(?:/>|>.*?</" + item + rb">)", m[1], re.S)
            self.blocks[tag] = (m.start(1), m.end(1), items)
        self.added: dict[bytes, list[bytes]] = {b"fonts": [], b"fills": [], b"cellXfs": []}
        self._restyled: dict[tuple[int, str], int] = {}
        self._fills: dict[str, int] = {}

    def _append(self, tag: bytes, item: bytes) -> int:
        self.added[tag].append(item)
        return len(self.blocks[tag][2]) + len(self.added[tag]) - 1

    def solid_fill(self, rgb: str) -> int:
        if rgb not in self._fills:
            colours = f'<fgColor rgb="{rgb}"/><bgColor rgb="{rgb}"/>'
            xml = f'<fill><patternFill patternType="solid">{colours}</patternFill></fill>'
            self._fills[rgb] = self._append(b"fills", xml.encode())
        return self._fills[rgb]

    def restyle(self, style: int, severity: str) -> int:
        """The index of a cell format like `style` but filled for `severity`."""
        key = (style, severity)
        if key not in self._restyled:
            xfs = self.blocks[b"cellXfs"][2]
            if not 0 <= style < len(xfs):
                raise _Unsupported(f"cell format {style} does not exist")
            xf = xfs[style]
            tag_end = xf.index(b">") + 1
            fill = self.solid_fill(ERROR_RGB if severity == "error" else WARNING_RGB)
            start = _set_attrs(xf[:tag_end], {"fillId": str(fill), "applyFill": "1"})
            self._restyled[key] = self._append(b"cellXfs", start + xf[tag_end:])
        return self._restyled[key]

    def font(self, *, bold: bool = False, size: str | None = None, link: bool = False) -> int:
        """A font like the workbook's default font, made bold, resized or link-coloured."""
        fonts = self.blocks[b"fonts"][2]
        base = fonts[0] if fonts else b"<font/>"
        closed = base.endswith(b"</font>")
        inner = base[base.index(b">") + 1 : -len(b"</font>")] if closed else b""
        head = b""
        if bold:
            inner = re.sub(rb"<b\b[^>]*?(?:/>|>.*?</b>)", b"", inner, flags=re.S)
            head += b"<b/>"
        if link:
            inner = re.sub(rb"<(?:u|color)\b[^>]*?(?:/>|>.*?</(?:u|color)>)", b"", inner, flags=re.S)
            head += b"<u/>"
            inner += b'<color rgb="FF0563C1"/>'
        if size is not None:
            inner = re.sub(rb"<sz\b[^>]*?(?:/>|>.*?</sz>)", b"", inner, flags=re.S)
            head += f'<sz val="{size}"/>'.encode()
        return self._append(b"fonts", b"<font>" + head + inner + b"</font>")

    def cell_format(self, font: int = 0, fill: int = 0, alignment: str = "") -> int:
        applied = ' applyFont="1"' * (font != 0) + ' applyFill="1"' * (fill != 0)
        applied += ' applyAlignment="1"' * bool(alignment)
        body = f"<alignment {alignment}/></xf>" if alignment else ""
        xf = f'<xf numFmtId="0" fontId="{font}" fillId="{fill}" borderId="0" xfId="0"{applied}' + (
            f">{body}" if body else "/>"
        )
        return self._append(b"cellXfs", xf.encode())

    def render(self) -> bytes:
        xml = self.xml
        for tag in sorted(self.blocks, key=lambda t: -self.blocks[t][0]):  # from the end: offsets stay valid
            start, end, items = self.blocks[tag]
            if not self.added[tag]:
                continue
            xml = xml[:end] + b"".join(self.added[tag]) + xml[end:]
            open_start = xml.rindex(b"<" + tag, 0, start)
            open_tag = xml[open_start:start]
            count = len(items) + len(self.added[tag])
            xml = xml[:open_start] + _set_attrs(open_tag, {"count": str(count)}) + xml[start:]
        return xml


# -- one worksheet -------------------------------------------------------------------------------------------


class _Sheet:
    """A worksheet's XML and what the fast path needs of it: merged ranges, column styles."""

    def __init__(self, part: str, xml: bytes) -> None:
        _require_root(xml, b"worksheet")
        self.part = part
        self.xml = xml
        if not re.search(rb"<sheetData\b", xml):
            raise _Unsupported("no <sheetData>")
        self.merged = [
            b for b in (_cell_range(m.decode()) for m in re.findall(rb'<mergeCell\b[^>]*?\sref="([^"]+)"', xml))
            if b is not None
        ]
        self.changed = False
        self.by_row: dict[int, list[tuple[int, int, int]]] | None = None  # row -> (first col, last col, first row)
        self.starts: dict[int, list[int]] = {}

    def index_merges(self, rows: Iterable[int]) -> None:
        """Index the merged ranges by the rows `anchor` will be asked about: one pass over the ranges, then one
        bisection per cell (a scan of every range per cell took 14 s for 1,800 marks and 200,000 ranges)."""
        wanted = sorted(set(rows))
        by_row: dict[int, list[tuple[int, int, int]]] = {}
        budget = _MAX_MERGE_ENTRIES
        for min_col, min_row, max_col, max_row in self.merged:
            lo, hi = bisect.bisect_left(wanted, min_row), bisect.bisect_right(wanted, max_row)
            budget -= hi - lo
            if budget < 0:
                break  # ranges overlapping by the thousand (Excel writes none): the rest are not honoured
            for r in wanted[lo:hi]:
                by_row.setdefault(r, []).append((min_col, max_col, min_row))
        self.by_row = {r: sorted(found) for r, found in by_row.items()}
        self.starts = {r: [first for first, _, _ in found] for r, found in self.by_row.items()}

    def anchor(self, row: int, col: int) -> tuple[int, int]:
        """The top-left cell of the merged range holding (row, col), or (row, col) itself."""
        if self.by_row is None:  # not indexed: every range looked at
            inside = ((r0, c0) for c0, r0, c1, r1 in self.merged if r0 <= row <= r1 and c0 <= col <= c1)
            return next(inside, (row, col))
        found = self.by_row.get(row)
        if found:
            i = bisect.bisect_right(self.starts[row], col) - 1
            if i >= 0 and col <= found[i][1]:
                return found[i][2], found[i][0]
        return row, col

    def column_styles(self, head: bytes) -> list[tuple[int, int, int]]:
        styles = []
        for tag in re.findall(rb"<col\b[^>]*>", head):
            a = _attrs(tag)
            if "style" in a:
                styles.append((int(a.get("min", "0")), int(a.get("max", "0")), int(a["style"])))
        return styles

    def untab(self) -> None:
        """No longer the selected tab (the 檢核結果 sheet is)."""
        head_end = self.xml.find(b"<sheetData")
        head = self.xml[:head_end]
        new = re.sub(rb'tabSelected="(?:1|true)"', b'tabSelected="0"', head)
        if new != head:
            self.xml = new + self.xml[head_end:]
            self.changed = True

    def fill(self, cells: dict[tuple[int, int], str], styles: _Styles) -> None:
        """Give each (row, col) the fill of its severity on top of its own format; create absent cells."""
        xml = self.xml
        m = re.search(rb"<sheetData\b[^>]*?(/?)>", xml)
        assert m is not None
        if m[1]:
            xml = xml[: m.start()] + b"<sheetData></sheetData>" + xml[m.end() :]
            m = re.search(rb"<sheetData\b[^>]*?(/?)>", xml)
            assert m is not None
        start = m.end()
        end = xml.rfind(b"</sheetData>")
        if end < start:
            raise _Unsupported("no </sheetData>")
        col_styles = self.column_styles(xml[: m.start()])
        # Every row indexed once (its number and where its tag starts), then found by bisection: one pass over
        # the sheet whatever the number of marked rows (a search per row scanned to the end for each absent one).
        numbers, starts = array("q"), array("q")
        for found in _ROW_TAG.finditer(xml, start, end):
            numbers.append(int(found[1]))
            starts.append(found.start())
        if len(numbers) != xml.count(b"<row", start, end):
            raise _Unsupported("a row without its number")
        if any(a >= b for a, b in itertools.pairwise(numbers)):
            raise _Unsupported("rows out of order")
        by_row: dict[int, dict[int, str]] = {}
        for (row, col), severity in cells.items():
            by_row.setdefault(row, {})[col] = severity

        def locate(row: int) -> tuple[re.Match[bytes] | None, int]:
            """The row's start tag, or None and where a new row goes."""
            i = bisect.bisect_left(numbers, row)
            if i == len(numbers):
                return None, end
            if numbers[i] != row:
                return None, starts[i]
            return _ROW_TAG.match(xml, starts[i]), starts[i]

        pieces: list[bytes] = []
        pos = 0
        grown: list[tuple[int, int]] = []
        for row in sorted(by_row):
            tag, at = locate(row)
            if at < pos:
                raise _Unsupported("rows out of order")
            if tag is not None:
                if tag[2]:
                    body, row_end = b"", tag.end()
                else:
                    close = xml.index(b"</row>", tag.end())
                    body, row_end = xml[tag.end() : close], close + len(b"</row>")
                new_tag, new_body = self._fill_row(row, tag[0], body, by_row[row], col_styles, styles, grown)
                pieces += [xml[pos:at], new_tag[:-2] + b">" if tag[2] else new_tag, new_body, b"</row>"]
                pos = row_end
            else:
                _, new_body = self._fill_row(row, b"", b"", by_row[row], col_styles, styles, grown)
                pieces += [xml[pos:at], f'<row r="{row}">'.encode(), new_body, b"</row>"]
                pos = at
        pieces.append(xml[pos:])
        self.xml = self._grow_dimension(b"".join(pieces), grown)
        self.changed = True

    def _fill_row(
        self,
        row: int,
        tag: bytes,
        body: bytes,
        wanted: dict[int, str],
        col_styles: list[tuple[int, int, int]],
        styles: _Styles,
        grown: list[tuple[int, int]],
    ) -> tuple[bytes, bytes]:
        row_attrs = _attrs(tag)
        row_style = int(row_attrs["s"]) if row_attrs.get("customFormat") in ("1", "true") and "s" in row_attrs else None
        pieces: list[bytes] = []
        pos = 0
        todo = sorted(wanted)
        inserted = False

        def blank(col: int) -> bytes:
            style = row_style
            if style is None:
                style = next((s for lo, hi, s in col_styles if lo <= col <= hi), 0)
            grown.append((row, col))
            ref = f"{get_column_letter(col)}{row}"
            return f'<c r="{ref}" s="{styles.restyle(style, wanted[col])}"/>'.encode()

        last_col = 0
        for m in _CELL.finditer(body):
            ref = _CELL_REF.search(m[0], 0, m[0].index(b">"))
            if ref is None or int(ref[2]) != row:
                raise _Unsupported("a cell without its address")
            col = _col_number(ref[1])
            if col <= last_col:
                raise _Unsupported("cells out of order")
            last_col = col
            while todo and todo[0] < col:
                pieces += [body[pos : m.start()], blank(todo.pop(0))]
                pos = m.start()
                inserted = True
            if todo and todo[0] == col:
                todo.pop(0)
                cell = m[0]
                tag_end = cell.index(b">") + 1
                start = cell[:tag_end]
                style = int(_attrs(start).get("s", "0"))
                start = _set_attrs(start, {"s": str(styles.restyle(style, wanted[col]))})
                pieces += [body[pos : m.start()], start, cell[tag_end:]]
                pos = m.end()
        tail = body[pos:]
        ext = tail.find(b"<extLst")
        cut = ext if ext >= 0 else len(tail)
        pieces.append(tail[:cut])
        while todo:
            pieces.append(blank(todo.pop(0)))
            inserted = True
        pieces.append(tail[cut:])
        if inserted and tag:
            tag = _drop_attr(tag, "spans")  # an optional hint, now wrong
        return tag, b"".join(pieces)

    def _grow_dimension(self, xml: bytes, cells: list[tuple[int, int]]) -> bytes:
        if not cells:
            return xml
        m = re.search(rb'<dimension\b[^>]*?\sref="([^"]*)"[^>]*>', xml)
        if m is None:
            return xml
        bounds = _cell_range(m[1].decode())
        if bounds is None:
            return xml
        min_col, min_row, max_col, max_row = bounds
        for row, col in cells:
            min_col, min_row = min(min_col, col), min(min_row, row)
            max_col, max_row = max(max_col, col), max(max_row, row)
        ref = f"{get_column_letter(min_col)}{min_row}:{get_column_letter(max_col)}{max_row}"
        return xml[: m.start(1)] + ref.encode() + xml[m.end(1) :]

    def add_legacy_drawing(self, rel_id: str) -> None:
        sheet_data_end = max(self.xml.rfind(b"</sheetData>"), 0)
        m = _AFTER_LEGACY_DRAWING.search(self.xml, sheet_data_end)
        at = m.start() if m else self.xml.rindex(b"</worksheet>")
        tag = f'<legacyDrawing xmlns:r="{_REL_NS}" r:id="{rel_id}"/>'.encode()
        self.xml = self.xml[:at] + tag + self.xml[at:]
        self.changed = True

    def legacy_drawing_id(self) -> str | None:
        m = re.search(rb'<legacyDrawing\b[^>]*?\s[\w]+:id="([^"]+)"', self.xml)
        return m[1].decode() if m else None


# -- comments: the comments part and its VML drawing ---------------------------------------------------------


def _vml_blocks(pkg: _Package) -> int:
    """The first VML shape-id block that no drawing of the package uses."""
    used = [0]
    for name in pkg.names | set(pkg.changed):
        if name.lower().endswith(".vml") and pkg.exists(name):
            for data in re.findall(rb'idmap\b[^>]*?\sdata="([^"]*)"', pkg.read(name)):
                used += [int(n) for n in re.findall(rb"\d+", data)]
    return max(used) + 1


_SHAPETYPE = (
    '<v:shapetype id="_x0000_t202" coordsize="21600,21600" o:spt="202" path="m,l,21600r21600,l21600,xe">'
    '<v:stroke joinstyle="miter"/><v:path gradientshapeok="t" o:connecttype="rect"/></v:shapetype>'
)
_NS_DECLS = f'xmlns:v="{_VML_NS}" xmlns:o="{_OFFICE_NS}" xmlns:x="{_EXCEL_NS}"'


def _shape(shape_id: str, row: int, col: int, text: str, z: int, declare: bool) -> str:
    """The VML box of the comment on (row, col), 1-based."""
    width, height = _comment_size(text)
    right = col + 1 + max(2, math.ceil(width / 64))
    bottom = row - 1 + max(2, math.ceil(height / 20))
    anchor = f"{col}, 15, {max(row - 2, 0)}, 10, {right}, 15, {bottom}, 4"
    decls = f" {_NS_DECLS}" if declare else ""
    return (
        f'<v:shape{decls} id="{shape_id}" type="#_x0000_t202" style="position:absolute;margin-left:59.25pt;'
        f'margin-top:1.5pt;width:{width}px;height:{height}px;z-index:{z};visibility:hidden" fillcolor="#ffffe1" '
        'o:insetmode="auto"><v:fill color2="#ffffe1"/><v:shadow on="t" color="black" obscured="t"/>'
        '<v:path o:connecttype="none"/><v:textbox style="mso-direction-alt:auto"><div style="text-align:left"></div>'
        '</v:textbox><x:ClientData ObjectType="Note"><x:MoveWithCells/><x:SizeWithCells/>'
        f"<x:Anchor>{anchor}</x:Anchor><x:AutoFill>False</x:AutoFill><x:Row>{row - 1}</x:Row>"
        f"<x:Column>{col - 1}</x:Column></x:ClientData></v:shape>"
    )


def _comment_xml(ref: str, author: int, text: str) -> bytes:
    body = f'<text><t xml:space="preserve">{_esc(text)}</t></text>'
    return f'<comment ref="{ref}" authorId="{author}" shapeId="0">{body}</comment>'.encode()


def _add_comments(pkg: _Package, sheet: _Sheet, marks: dict[tuple[int, int], list[str]], next_block: int,
                  types: _ContentTypes) -> int:
    """Comment the marked cells of `sheet` (the agency's own comments kept); the next free VML block."""
    rels = _read_rels(pkg, sheet.part)
    if any(r.type.endswith("/threadedComment") for r in rels):
        raise _Unsupported("threaded comments")
    comments_rel = next((r for r in rels if r.type == _RT_COMMENTS and not r.external), None)
    drawing_id = sheet.legacy_drawing_id()
    vml_rel = next((r for r in rels if r.id == drawing_id and not r.external), None) if drawing_id else None
    if drawing_id and (vml_rel is None or vml_rel.type != _RT_VML):
        raise _Unsupported("legacy drawing without its VML part")
    texts = {cell: "\n".join(lines) for cell, lines in marks.items()}

    # the comments part
    entries: dict[tuple[int, int], bytes] = {}
    if comments_rel is not None:
        body = pkg.read(comments_rel.target)
        _require_root(body, b"comments")
        root = ET.fromstring(body)
        authors = [a.text or "" for a in root.iter(f"{{{_MAIN_NS}}}author")]
        parsed = list(root.iter(f"{{{_MAIN_NS}}}comment"))
        list_match = re.search(rb"<commentList\b[^>]*>(.*?)</commentList>", body, re.S)
        raw = re.findall(rb"<comment\b[^>]*?(?:/>|>.*?</comment>)", list_match[1], re.S) if list_match else []
        if len(raw) != len(parsed):
            raise _Unsupported("comments part not understood")
        ours = authors.index(COMMENT_AUTHOR) if COMMENT_AUTHOR in authors else len(authors)
        for el, xml in zip(parsed, raw, strict=True):
            bounds = _cell_range(el.get("ref", ""))
            if bounds is None:
                raise _Unsupported("a comment without a cell")
            cell = (bounds[1], bounds[0])
            if cell in texts:
                author = authors[int(el.get("authorId", "0"))] if el.get("authorId", "0").isdigit() and int(
                    el.get("authorId", "0")) < len(authors) else ""
                theirs = "".join(t.text or "" for t in el.iter(f"{{{_MAIN_NS}}}t"))
                if theirs and author != COMMENT_AUTHOR:
                    texts[cell] += _THEIRS + theirs  # keep the agency's own note under ours
            else:
                entries[cell] = xml
        for (row, col), text in texts.items():
            entries[(row, col)] = _comment_xml(f"{get_column_letter(col)}{row}", ours, text)
        new_list = b"<commentList>" + b"".join(entries[c] for c in sorted(entries)) + b"</commentList>"
        if list_match:
            body = body[: list_match.start()] + new_list + body[list_match.end() :]
        else:
            body = body.replace(b"</comments>", new_list + b"</comments>")
        if ours == len(authors):
            author_xml = f"<author>{_esc(COMMENT_AUTHOR)}</author>".encode()
            if re.search(rb"<authors\s*/>", body):
                body = re.sub(rb"<authors\s*/>", b"<authors>" + author_xml + b"</authors>", body, count=1)
            elif b"</authors>" in body:
                body = body.replace(b"</authors>", author_xml + b"</authors>", 1)
            else:
                raise _Unsupported("comments part without authors")
        pkg.write(comments_rel.target, body)
    else:
        for (row, col), text in texts.items():
            entries[(row, col)] = _comment_xml(f"{get_column_letter(col)}{row}", 0, text)
        part = pkg.free_name("xl/comments{}.xml")
        pkg.write(part, _XML_DECL + (
            f'<comments xmlns="{_MAIN_NS}"><authors><author>{_esc(COMMENT_AUTHOR)}</author></authors><commentList>'
        ).encode() + b"".join(entries[c] for c in sorted(entries)) + b"</commentList></comments>")
        types.override(part, _CT_COMMENTS)
        _add_rels(pkg, sheet.part, [(_RT_COMMENTS, part)])

    # the VML drawing: one box per commented cell
    need = len(texts)
    blocks = list(range(next_block, next_block + math.ceil(need / _SHAPES_PER_BLOCK)))
    ids = iter(f"_x0000_s{b * 1024 + i}" for b in blocks for i in range(1, _SHAPES_PER_BLOCK + 1))
    if vml_rel is not None:
        root = ET.fromstring(pkg.read(vml_rel.target))
        reuse: dict[tuple[int, int], str] = {}
        for shape in list(root.iter(f"{{{_VML_NS}}}shape")):
            data = shape.find(f"{{{_EXCEL_NS}}}ClientData")
            if data is None or data.get("ObjectType") != "Note":
                continue
            row, col = (int(data.findtext(f"{{{_EXCEL_NS}}}{tag}", "-9")) + 1 for tag in ("Row", "Column"))
            cell = (row, col)
            if cell in texts:
                reuse[cell] = shape.get("id") or next(ids)
                root.remove(shape)  # only top-level shapes are notes; a nested one raises ValueError: fall back
        idmap = root.find(f"{{{_OFFICE_NS}}}shapelayout/{{{_OFFICE_NS}}}idmap")
        if idmap is None:
            layout = ET.Element(f"{{{_OFFICE_NS}}}shapelayout", {f"{{{_VML_NS}}}ext": "edit"})
            idmap = ET.SubElement(layout, f"{{{_OFFICE_NS}}}idmap", {f"{{{_VML_NS}}}ext": "edit", "data": ""})
            root.insert(0, layout)
        old_blocks = (idmap.get("data") or "").replace(" ", ",").split(",")
        idmap.set("data", ",".join([*old_blocks, *map(str, blocks)]).strip(","))
        has_type = any(t.get("id") == "_x0000_t202" for t in root.iter(f"{{{_VML_NS}}}shapetype"))
        text = ET.tostring(root, encoding="unicode")
        shapes = "" if has_type else _SHAPETYPE.replace("<v:shapetype ", f"<v:shapetype {_NS_DECLS} ", 1)
        for z, ((row, col), comment) in enumerate(sorted(texts.items()), start=1):
            shapes += _shape(reuse.get((row, col)) or next(ids), row, col, comment, z, declare=True)
        end = text.rindex("</xml>")
        pkg.write(vml_rel.target, (text[:end] + shapes + text[end:]).encode())
    else:
        shapes = "".join(
            _shape(next(ids), row, col, comment, z, declare=False)
            for z, ((row, col), comment) in enumerate(sorted(texts.items()), start=1)
        )
        part = pkg.free_name("xl/drawings/vmlDrawing{}.vml")
        pkg.write(part, (
            f'<xml {_NS_DECLS}><o:shapelayout v:ext="edit"><o:idmap v:ext="edit" data="{",".join(map(str, blocks))}"/>'
            f"</o:shapelayout>{_SHAPETYPE}{shapes}</xml>"
        ).encode())
        types.default("vml", _CT_VML)
        (rel_id,) = _add_rels(pkg, sheet.part, [(_RT_VML, part)])
        sheet.add_legacy_drawing(rel_id)
    return next_block + len(blocks)


# -- the 檢核結果 sheet as XML ---------------------------------------------------------------------------------


def _summary_sheet_xml(
    rows: list[tuple[Finding, _Target | None]], title: str, lines: list[str], styles: _Styles
) -> tuple[bytes, str | None]:
    """The 檢核結果 worksheet (inline strings only) and the range of its table's filter, if any."""
    bold = styles.font(bold=True)
    s_title = styles.cell_format(font=styles.font(bold=True, size="14"))
    s_header = styles.cell_format(font=bold, fill=styles.solid_fill("FFD9D9D9"))
    s_top = styles.cell_format(alignment='vertical="top"')
    s_wrap = styles.cell_format(alignment='vertical="top" wrapText="1"')
    s_link = styles.cell_format(font=styles.font(link=True), alignment='vertical="top"')
    s_sev = {
        "error": styles.cell_format(fill=styles.solid_fill(ERROR_RGB), alignment='vertical="top"'),
        "warning": styles.cell_format(fill=styles.solid_fill(WARNING_RGB), alignment='vertical="top"'),
    }

    def text(ref: str, value: str | None, style: int | None = None) -> str:
        s = f' s="{style}"' if style is not None else ""
        if value is None or value == "":
            return f'<c r="{ref}"{s}/>' if s else ""
        return f'<c r="{ref}"{s} t="inlineStr"><is><t xml:space="preserve">{_esc(value)}</t></is></c>'

    out: list[str] = [f'<row r="1">{text("A1", title or SUMMARY_SHEET, s_title)}</row>']
    r = 2
    for line in [*lines, *([] if rows else ["沒有發現任何問題。"])]:
        out.append(f'<row r="{r}">{text(f"A{r}", line)}</row>')
        r += 1
    header_row = r + 1
    letters = [get_column_letter(c) for c in range(1, len(HEADERS) + 1)]
    out.append(f'<row r="{header_row}">' + "".join(
        text(f"{col}{header_row}", name, s_header) for col, name in zip(letters, HEADERS, strict=True)
    ) + "</row>")
    links: list[str] = []
    table = [_summary_values(n, f, t) for n, (f, t) in enumerate(rows, start=1)]
    shown, heights = _summary_layout(table)
    for n, ((f, t), values, height) in enumerate(zip(rows, table, heights, strict=True), start=1):
        row = header_row + n
        cells = [f'<c r="A{row}" s="{s_top}"><v>{n}</v></c>']
        for c, value in enumerate(values[1:], start=2):
            if c == 2:
                style = s_sev["error" if f.severity == "error" else "warning"]
            elif c == 4 and t is not None:
                style = s_link
            else:
                style = s_wrap if c - 1 in _WRAPPED else s_top
            cells.append(text(f"{letters[c - 1]}{row}", value, style))
        tall = f' ht="{height:g}" customHeight="1"' if height is not None else ""
        out.append(f'<row r="{row}"{tall}>{"".join(cells)}</row>')
        if t is not None:
            location, display = _esc_attr(t.location), _esc_attr(f.cell or "")
            links.append(f'<hyperlink ref="D{row}" location="{location}" display="{display}"/>')
    cols = "".join(f'<col min="{c}" max="{c}" width="{w}" customWidth="1"/>' for c, w in enumerate(shown, start=1))
    last = header_row + len(rows)
    top = f"A{header_row + 1}"
    view = (
        f'<sheetViews><sheetView tabSelected="1" workbookViewId="0"><pane ySplit="{header_row}" topLeftCell="{top}" '
        f'activePane="bottomLeft" state="frozen"/><selection pane="bottomLeft" activeCell="{top}" sqref="{top}"/>'
        "</sheetView></sheetViews>"
    )
    filter_ref = f"A{header_row}:{letters[-1]}{last}" if rows else None
    # printed on A4 landscape, one page wide (as the openpyxl path sets it): 說明 stays beside its finding
    fit, page = sheet_xml(PrintSetup(landscape=True))
    xml = (
        f'<worksheet xmlns="{_MAIN_NS}" xmlns:r="{_REL_NS}"><sheetPr>{fit}</sheetPr>'
        f'<dimension ref="A1:{letters[-1]}{max(last, header_row)}"/>'
        f'{view}<sheetFormatPr defaultRowHeight="15"/><cols>{cols}</cols><sheetData>{"".join(out)}</sheetData>'
        + (f'<autoFilter ref="{filter_ref}"/>' if filter_ref else "")
        + (f"<hyperlinks>{''.join(links)}</hyperlinks>" if links else "")
        + page + "</worksheet>"
    )
    return _XML_DECL + xml.encode(), filter_ref


# -- the fast path as a whole --------------------------------------------------------------------------------


def _annotate_fast(data: bytes, findings: list[Finding], title: str, lines: list[str],
                   parts: Mapping[str, bytes]) -> bytes:
    pkg = _Package(data, parts)
    types = _ContentTypes(pkg.read(_CT_PART))
    if re.search(rb"macrosheet|dialogsheet", types.xml, re.I):
        raise _Unsupported("macro or dialog sheets")
    office = [r for r in _read_rels(pkg, "") if r.type == _RT_OFFICE_DOCUMENT and not r.external]
    if len(office) != 1:
        raise _Unsupported("no transitional officeDocument relationship (strict OOXML?)")
    wb_part = office[0].target
    wb_xml = pkg.read(wb_part)
    _require_root(wb_xml, b"workbook")
    wb_root = ET.fromstring(wb_xml)
    if wb_root.tag != f"{{{_MAIN_NS}}}workbook":
        raise _Unsupported("not a transitional workbook")
    wb_rels = {r.id: r for r in _read_rels(pkg, wb_part)}
    names: list[str] = []
    worksheets: dict[str, str] = {}
    for el in wb_root.iterfind(f"{{{_MAIN_NS}}}sheets/{{{_MAIN_NS}}}sheet"):
        name, rel = el.get("name", ""), wb_rels.get(el.get(f"{{{_REL_NS}}}id", ""))
        if rel is None:
            raise _Unsupported(f"sheet {name} has no part")
        names.append(name)
        if rel.type == _RT_WORKSHEET and not rel.external:
            worksheets[name] = rel.target
    if not names:
        raise _Unsupported("no sheets")
    styles_rel = next((r for r in wb_rels.values() if r.type == _RT_STYLES and not r.external), None)
    if styles_rel is None:
        raise _Unsupported("no styles part")
    styles = _Styles(pkg.read(styles_rel.target))

    sheets: dict[str, _Sheet] = {}

    def sheet(name: str) -> _Sheet:
        if name not in sheets:
            sheets[name] = _Sheet(worksheets[name], pkg.read(worksheets[name]))
        return sheets[name]

    targets: list[_Target | None] = []
    for f in findings:
        found = _find_name(worksheets, _clean_text(f.sheet)) if f.sheet and f.cell else None  # names as shown
        targets.append(_make_target(found, f.cell) if found is not None and f.cell else None)
    rows: dict[str, set[int]] = {}
    for t in targets:
        if t is not None:  # the rows _plan_marks asks about (it marks at most _MAX_FILLED_PER_FINDING cells)
            last = min(t.max_row, t.min_row + _MAX_FILLED_PER_FINDING)
            rows.setdefault(t.sheet, set()).update(range(t.min_row, last + 1))
    for name, asked in rows.items():
        sheet(name).index_merges(asked)
    fills, comments = _plan_marks(findings, targets, lambda t, r, c: sheet(t.sheet).anchor(r, c))
    by_sheet: dict[str, dict[tuple[int, int], str]] = {}
    for (name, row, col), severity in fills.items():
        by_sheet.setdefault(name, {})[(row, col)] = severity
    notes: dict[str, dict[tuple[int, int], list[str]]] = {}
    for (name, row, col), messages in comments.items():
        notes.setdefault(name, {})[(row, col)] = messages
    for name in worksheets:
        sheet(name).untab()
    for name, cells in by_sheet.items():
        sheet(name).fill(cells, styles)
    next_block = _vml_blocks(pkg)
    for name, marks in notes.items():
        next_block = _add_comments(pkg, sheet(name), marks, next_block, types)
    for s in sheets.values():
        if s.changed:
            pkg.write(s.part, s.xml)

    # the 檢核結果 sheet, first and active
    order = {name: i for i, name in enumerate(names)}
    ranked = sorted(range(len(findings)), key=lambda i: _sort_key(findings[i], targets[i], order, i))
    summary_name = _unique_title(SUMMARY_SHEET, {n.casefold() for n in names})
    xml, filter_ref = _summary_sheet_xml([(findings[i], targets[i]) for i in ranked], title, lines, styles)
    folder = wb_part.rpartition("/")[0]
    part = pkg.free_name(f"{folder}/worksheets/sheet{{}}.xml" if folder else "worksheets/sheet{}.xml")
    pkg.write(part, xml)
    types.override(part, _CT_WORKSHEET)
    (rel_id,) = _add_rels(pkg, wb_part, [(_RT_WORKSHEET, part)])
    sheet_ids = [int(el.get("sheetId", "0")) for el in wb_root.iterfind(f"{{{_MAIN_NS}}}sheets/{{{_MAIN_NS}}}sheet")]
    filter_name = None
    if filter_ref:
        a, b = filter_ref.split(":")
        area = f"{_quote_sheet(summary_name)}!{_absolute(a)}:{_absolute(b)}"
        filter_name = f'<definedName name="_xlnm._FilterDatabase" localSheetId="0" hidden="1">{_esc(area)}'
        filter_name += "</definedName>"
    wb_xml = _first_sheet(wb_xml, summary_name, max(sheet_ids, default=0) + 1, rel_id, filter_name)

    # VBA goes: the copy is a plain .xlsx whatever came in
    for rel in [r for r in wb_rels.values() if r.type == _RT_VBA and not r.external]:
        for inner in _read_rels(pkg, rel.target):
            if not inner.external and pkg.exists(inner.target):
                pkg.remove(inner.target)
                types.drop(inner.target)
        if pkg.exists(_rels_part(rel.target)):
            pkg.remove(_rels_part(rel.target))
        if pkg.exists(rel.target):
            pkg.remove(rel.target)
        types.drop(rel.target)
        _remove_rel(pkg, wb_part, rel.id)
    types.override(wb_part, _CT_WORKBOOK)
    pkg.write(wb_part, wb_xml)
    pkg.write(styles_rel.target, styles.render())
    pkg.write(_CT_PART, types.xml)
    return pkg.save()


def _absolute(ref: str) -> str:
    m = re.fullmatch(r"([A-Z]+)(\d+)", ref)
    assert m is not None
    return f"${m[1]}${m[2]}"


def _first_sheet(xml: bytes, name: str, sheet_id: int, rel_id: str, filter_name: str | None) -> bytes:
    """workbook.xml with a new first sheet, made the active tab; sheet-scoped names shifted by one position."""
    xml = re.sub(rb"<definedNames\s*/>", b"", xml, count=1)  # openpyxl writes an empty one
    names = re.search(rb"<definedNames\b[^>]*>(.*?)</definedNames>", xml, re.S)
    if names:
        shifted = re.sub(rb'localSheetId="(\d+)"', lambda m: b'localSheetId="%d"' % (int(m[1]) + 1), names[1])
        if filter_name:
            shifted = filter_name.encode() + shifted
        xml = xml[: names.start(1)] + shifted + xml[names.end(1) :]
    elif filter_name:
        after = [m.end() for m in re.finditer(rb"</sheets>|</functionGroups>|</externalReferences>", xml)]
        if not after:
            raise _Unsupported("no </sheets>")
        at = max(after)
        xml = xml[:at] + b"<definedNames>" + filter_name.encode() + b"</definedNames>" + xml[at:]
    sheets = re.search(rb"<sheets\b[^>]*>", xml)
    if sheets is None:
        raise _Unsupported("no <sheets>")
    new = f'<sheet xmlns:r="{_REL_NS}" name="{_esc_attr(name)}" sheetId="{sheet_id}" r:id="{rel_id}"/>'.encode()
    xml = xml[: sheets.end()] + new + xml[sheets.end() :]
    view = re.search(rb"<workbookView\b[^>]*>", xml)
    if view is not None:
        xml = xml[: view.start()] + _set_attrs(view[0], {"activeTab": "0", "firstSheet": "0"}) + xml[view.end() :]
    else:
        at = xml.index(b"<sheets")
        xml = xml[:at] + b'<bookViews><workbookView activeTab="0" firstSheet="0"/></bookViews>' + xml[at:]
    return xml
