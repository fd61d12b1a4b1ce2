"""The annotated copy of a returned workbook: failing cells filled and commented, a 檢核結果 sheet first."""

from __future__ import annotations

import datetime as dt
import io
import math
import re
import unicodedata
import warnings
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

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

from collect.findings import Finding

SUMMARY_SHEET = "檢核結果"
COMMENT_AUTHOR = "collect"
ERROR_RGB = "FFFF9999"  # light red: an error on this cell
WARNING_RGB = "FFFFFF99"  # light yellow: a warning on this cell
HEADERS = ("序號", "嚴重度", "工作表", "儲存格", "欄位", "填寫值", "說明")
SEVERITY_LABEL = {"error": "錯誤", "warning": "警告"}

_MAX_ROW = 1_048_576
_MAX_COL = 16_384
_MAX_FILLED_PER_FINDING = 10_000  # a finding on a huge range fills at most this many cells
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
) -> bytes:
    """The bytes of a new .xlsx: the agency's workbook with failing cells marked and a 檢核結果 sheet first.

    `kind` is "xlsx", "xlsm", "xls", "ods" or "xlsb". xlsx/xlsm are annotated in an openpyxl copy (formulas,
    styles and protection kept); other kinds, and files openpyxl cannot handle, become a copy of the values at
    the same addresses. If no reader can open the file, the result holds the 檢核結果 sheet only.
    """
    lines = list(summary_lines)
    if kind.lower() in _OPENPYXL_KINDS:
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


def _clean_text(text: str) -> str:
    return "".join(ch for ch in text if ch in "\t\n\r" or ord(ch) >= 32)


def _safe_title(name: str) -> str:
    title = name.translate(_INVALID_TITLE_CHARS).strip("'")[:31]
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

    ws: Worksheet
    min_col: int
    min_row: int
    max_col: int
    max_row: int
    location: str


@dataclass
class _Mark:
    messages: list[str] = field(default_factory=list)


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
    return _preserve_blank_text(out.getvalue())


_BLANK_TEXT = re.compile(rb"<t>([ \t\r\n]+)</t>")


def _preserve_blank_text(xlsx: bytes) -> bytes:
    """Mark whitespace-only text as preserved: openpyxl writes <t> </t>, which readers then load as blank."""
    with zipfile.ZipFile(io.BytesIO(xlsx)) as src:
        parts = [(info, src.read(info)) for info in src.infolist()]
    fixed = False
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info, body in parts:
            if info.filename.startswith("xl/") and info.filename.endswith(".xml") and b"<t>" in body:
                new = _BLANK_TEXT.sub(rb'<t xml:space="preserve">\1</t>', body)
                fixed = fixed or new != body
                body = new
            dst.writestr(info, body)
    return out.getvalue() if fixed else xlsx


def _sort_key(f: Finding, t: _Target | None, order: dict[str, int], i: int) -> tuple[int, int, int, int, int]:
    severity = 0 if f.severity == "error" else 1
    if t is not None:
        return (severity, order.get(t.ws.title, len(order)), t.min_row, t.min_col, i)
    if not f.sheet:
        return (severity, -1, 0, 0, i)  # whole-file findings first within their severity
    return (severity, len(order), 0, 0, i)


def _find_sheet(wb: openpyxl.Workbook, name: str, renamed: dict[str, str]) -> Worksheet | None:
    name = renamed.get(name, name)
    sheets = [ws for ws in wb.worksheets if isinstance(ws, Worksheet)]  # not chart sheets
    for ws in sheets:
        if ws.title == name:
            return ws
    folded = name.casefold()  # Excel's sheet names are case-insensitive
    for ws in sheets:
        if ws.title.casefold() == folded:
            return ws
    return None


def _target(wb: openpyxl.Workbook, f: Finding, renamed: dict[str, str]) -> _Target | None:
    if not f.sheet or not f.cell:
        return None
    ws = _find_sheet(wb, f.sheet, renamed)
    if ws is None:
        return None
    ref = f.cell.strip().replace("$", "").upper()
    try:
        min_col, min_row, max_col, max_row = range_boundaries(ref)
    except (ValueError, TypeError):
        return None
    if None in (min_col, min_row, max_col, max_row):
        return None  # whole rows or columns ("A:A", "3:3") are not a cell
    assert min_col is not None and min_row is not None and max_col is not None and max_row is not None
    if not (1 <= min_row <= max_row <= _MAX_ROW and 1 <= min_col <= max_col <= _MAX_COL):
        return None
    # Absolute form: LibreOffice takes 'Sheet'!C4 (or R1) for R1C1 and the link goes nowhere; $C$4 is safe.
    quoted = "'" + ws.title.replace("'", "''") + "'"
    location = f"{quoted}!{absolute_coordinate(min_col, min_row)}"
    if (min_col, min_row) != (max_col, max_row):
        location += f":{absolute_coordinate(max_col, max_row)}"
    return _Target(ws, min_col, min_row, max_col, max_row, location)


def absolute_coordinate(col: int, row: int) -> str:
    return f"${get_column_letter(col)}${row}"


def _anchor(ws: Worksheet, row: int, col: int) -> tuple[int, int]:
    """The top-left cell of the merged range holding (row, col), or (row, col) itself."""
    if isinstance(ws.cell(row=row, column=col), MergedCell):
        for rng in ws.merged_cells.ranges:
            if rng.min_row <= row <= rng.max_row and rng.min_col <= col <= rng.max_col:
                return rng.min_row, rng.min_col
    return row, col


def _mark_cells(findings: list[Finding], targets: list[_Target | None]) -> None:
    comments: dict[tuple[int, int, int], _Mark] = {}
    sheets: dict[int, Worksheet] = {}
    fills: dict[tuple[int, int, int], str] = {}
    for f, t in zip(findings, targets, strict=True):
        if t is None:
            continue
        key = id(t.ws)
        sheets[key] = t.ws
        row, col = _anchor(t.ws, t.min_row, t.min_col)
        mark = comments.setdefault((key, row, col), _Mark())
        label = SEVERITY_LABEL.get(f.severity, f.severity)
        mark.messages.append(f"{label}：{f.message}")
        count = 0
        for r in range(t.min_row, t.max_row + 1):
            for c in range(t.min_col, t.max_col + 1):
                cell_key = (key, *_anchor(t.ws, r, c))
                if fills.get(cell_key) != "error":
                    fills[cell_key] = "error" if f.severity == "error" else "warning"
                count += 1
                if count >= _MAX_FILLED_PER_FINDING:
                    break
            if count >= _MAX_FILLED_PER_FINDING:
                break
    for (key, row, col), severity in fills.items():
        cell = sheets[key].cell(row=row, column=col)
        cell.fill = error_fill() if severity == "error" else warning_fill()
    for (key, row, col), mark in comments.items():
        cell = sheets[key].cell(row=row, column=col)
        text = "\n".join(_clean_text(m) for m in mark.messages)
        old = cell.comment
        if old is not None and old.content and old.author != COMMENT_AUTHOR:
            text += "\n——\n" + old.content  # keep the agency's own note under ours
        cell.comment = _comment(text)


def _comment(text: str) -> Comment:
    """A comment sized so that Chinese text is readable without resizing it (openpyxl sizes are pixels)."""
    width_px = 320
    chars_per_line = (width_px - 16) / 7  # half-width units at the 9 pt comment font
    lines = sum(max(1, math.ceil(_text_width(line) / chars_per_line)) for line in text.split("\n"))
    return Comment(text, COMMENT_AUTHOR, height=min(24 + 18 * lines, 600), width=width_px)


def _text_width(text: str) -> int:
    """Display width in half-width units: CJK and full-width characters count 2."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


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
    widths = [_text_width(h) for h in HEADERS]
    for n, (f, t) in enumerate(rows, start=1):
        row = header_row + n
        sheet_name = t.ws.title if t is not None else f.sheet
        values: list[str | None] = [
            None, SEVERITY_LABEL.get(f.severity, f.severity), sheet_name, f.cell, f.column, f.value, f.message
        ]
        ws.cell(row=row, column=1, value=n).alignment = top
        for c, text in enumerate(values[1:], start=2):
            cell = _text_cell(ws, row, c, text)
            cell.alignment = wrap if c >= 5 else top
            widths[c - 1] = max(widths[c - 1], _text_width(text or ""))
        ws.cell(row=row, column=2).fill = error_fill() if f.severity == "error" else warning_fill()
        if t is not None:
            link = ws.cell(row=row, column=4)
            link.hyperlink = Hyperlink(ref=link.coordinate, location=t.location, display=f.cell)
            link.font = link_font
    caps = (6, 8, 24, 12, 24, 30, 70)
    for c, (width, cap) in enumerate(zip(widths, caps, strict=True), start=1):
        shown = cap if c == len(HEADERS) else min(max(width + 2, 6), cap)
        ws.column_dimensions[get_column_letter(c)].width = shown
    ws.freeze_panes = ws.cell(row=header_row + 1, column=1)
    if rows:
        ws.auto_filter.ref = f"A{header_row}:{get_column_letter(len(HEADERS))}{header_row + len(rows)}"
    _make_active_first(wb, ws)


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
