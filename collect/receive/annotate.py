"""The annotated copy of a returned workbook, as a plan: which cells to mark and with what (a fill, a comment), and
the 檢核結果 sheet described once as data; collect.xlsx.patch applies the plan to the agency's own package."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from collect.findings import Finding
from collect.xlsx import copies
from collect.xlsx.addresses import absolute, cell_range, quote_sheet
from collect.xlsx.comments import COMMENT_AUTHOR
from collect.xlsx.package import Unsupported
from collect.xlsx.patch import CellKey, CellStyle, NewSheet, Row, Workbook
from collect.xlsx.printing import PrintSetup
from collect.xlsx.sheetxml import ERROR_RGB, WARNING_RGB
from collect.xlsx.xmltext import shown, text_width

__all__ = ["COMMENT_AUTHOR", "ERROR_RGB", "HEADERS", "MAX_COPY_CHARS", "SUMMARY_SHEET", "WARNING_RGB", "annotate"]

log = logging.getLogger(__name__)

SUMMARY_SHEET = "檢核結果"
HEADERS = ("序號", "嚴重度", "工作表", "儲存格", "欄位", "填寫值", "說明")
SEVERITY_LABEL = {"error": "錯誤", "warning": "警告"}
MAX_COPY_CHARS = 2_000  # a text value in the copy is cut to this many characters (a cell holds up to 32,767)

_MAX_FILLED_PER_FINDING = 10_000  # a finding on a huge range fills at most this many cells
_PATCHED_KINDS = frozenset({"xlsx", "xlsm"})


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

    `kind` is "xlsx", "xlsm", "xls", "ods" or "xlsb" (convert an .xls or .ods to .xlsx first to keep its formatting:
    collect.receive.convert). The plan is always applied by patching a package (collect.xlsx.patch: every part not
    marked is copied as it is apart from unsafe characters shown and text over MAX_COPY_CHARS cut; only the parts
    the package's relationships reach are carried; VBA is dropped, the result is a plain .xlsx). The package is the
    agency's own (xlsx/xlsm, when `fast`); where that cannot be patched, the one openpyxl writes from it (formulas,
    styles and protection kept); for other kinds, or when openpyxl cannot open it, a copy of its values at the same
    addresses; when no reader can open the file, an empty workbook: the 檢核結果 sheet only. Each way that fails is
    logged with its cause (a failure of the patcher itself as a warning, with its traceback). `parts`: members of
    the package already decompressed (collect.receive.read.Book.parts).
    """
    lines = list(summary_lines)
    ways: list[tuple[str, Callable[[], tuple[bytes, Mapping[str, bytes], dict[str, str]]]]] = []
    if kind.lower() in _PATCHED_KINDS:
        if fast:
            ways.append(("the agency's package", lambda: (data, parts or {}, {})))
        ways.append(("the package openpyxl rebuilt", lambda: (copies.rebuilt(data), {}, {})))
    ways.append(("a copy of the values", lambda: _values(data)))
    failed: Exception | None = None
    for label, source in ways:
        try:
            package, known, renamed = source()
        except Exception as exc:  # openpyxl or calamine cannot open this file: known of odd files, said why
            log.info("annotated copy: %s cannot be made (%s: %s); trying the next way", label, type(exc).__name__,
                     exc, exc_info=exc)
            failed = exc
            continue
        try:
            return _render(package, known, findings, title, lines, renamed)
        except Unsupported as exc:  # a package the patcher does not handle: known, said why
            log.info("annotated copy: %s is not patched (%s); trying the next way", label, exc)
            failed = exc
        except Exception as exc:  # the patcher failed where it did not expect to (a bug): with its traceback
            log.warning("annotated copy: patching %s failed (%s: %s); trying the next way", label,
                        type(exc).__name__, exc, exc_info=exc)
            failed = exc
    lines.append(f"（無法複製原檔內容：{type(failed).__name__}）")
    return _render(copies.empty(), {}, findings, title, lines, {})


def _values(data: bytes) -> tuple[bytes, Mapping[str, bytes], dict[str, str]]:
    copy, renamed = copies.value_copy(data)
    return copy, {}, renamed


# --- where each finding lands ----------------------------------------------------------------------------------


@dataclass
class _Target:
    """Where one finding lands: the sheet, the cell range (1-based, inclusive), and the link location."""

    sheet: str
    min_col: int
    min_row: int
    max_col: int
    max_row: int
    location: str


def _find_name(names: Iterable[str], name: str) -> str | None:
    """The sheet called `name` among `names`, compared as Excel does (case-insensitively) if not exactly."""
    names = list(names)
    if name in names:
        return name
    folded = name.casefold()
    return next((n for n in names if n.casefold() == folded), None)


def _target(f: Finding, sheets: list[str], renamed: dict[str, str]) -> _Target | None:
    """The finding's place in the copy: its sheet under the name the copy shows, its cell or range."""
    if not f.sheet or not f.cell:
        return None
    title = _find_name(sheets, renamed.get(f.sheet) or shown(f.sheet))
    bounds = cell_range(f.cell)
    if title is None or bounds is None:
        return None
    min_col, min_row, max_col, max_row = bounds
    location = f"{quote_sheet(title)}!{absolute(min_col, min_row)}"
    if (min_col, min_row) != (max_col, max_row):
        location += f":{absolute(max_col, max_row)}"
    return _Target(title, min_col, min_row, max_col, max_row, location)


def _sort_key(f: Finding, t: _Target | None, order: dict[str, int], i: int) -> tuple[int, int, int, int, int]:
    severity = 0 if f.severity == "error" else 1
    if t is not None:
        return (severity, order.get(t.sheet, len(order)), t.min_row, t.min_col, i)
    if not f.sheet:
        return (severity, -1, 0, 0, i)  # whole-file findings first within their severity
    return (severity, len(order), 0, 0, i)


def _plan_marks(
    findings: list[Finding], targets: list[_Target | None], anchor: Callable[[str, int, int], tuple[int, int]]
) -> tuple[dict[CellKey, str], dict[CellKey, list[str]]]:
    """The severity to fill each marked cell with (the worst wins) and the comment lines of each commented cell;
    a cell inside a merged range is marked at the range's top-left cell (`anchor`)."""
    comments: dict[CellKey, list[str]] = {}
    fills: dict[CellKey, str] = {}
    for f, t in zip(findings, targets, strict=True):
        if t is None:
            continue
        row, col = anchor(t.sheet, t.min_row, t.min_col)
        label = SEVERITY_LABEL.get(f.severity, f.severity)
        comments.setdefault((t.sheet, row, col), []).append(shown(f"{label}：{f.message}"))
        count = 0
        for r in range(t.min_row, t.max_row + 1):
            for c in range(t.min_col, t.max_col + 1):
                cell_key = (t.sheet, *anchor(t.sheet, r, c))
                if fills.get(cell_key) != "error":
                    fills[cell_key] = "error" if f.severity == "error" else "warning"
                count += 1
                if count >= _MAX_FILLED_PER_FINDING:
                    break
            if count >= _MAX_FILLED_PER_FINDING:
                break
    return fills, comments


def _render(package: bytes, known: Mapping[str, bytes], findings: list[Finding], title: str, lines: list[str],
            renamed: dict[str, str]) -> bytes:
    book = Workbook(package, known, MAX_COPY_CHARS)
    targets = [_target(f, book.worksheets, renamed) for f in findings]
    asked: dict[str, set[int]] = {}
    for t in targets:
        if t is not None:  # the rows _plan_marks asks about (it marks at most _MAX_FILLED_PER_FINDING cells)
            last = min(t.max_row, t.min_row + _MAX_FILLED_PER_FINDING)
            asked.setdefault(t.sheet, set()).update(range(t.min_row, last + 1))
    for name, rows in asked.items():
        book.index_merges(name, rows)
    fills, comments = _plan_marks(findings, targets, book.anchor)
    order = {name: i for i, name in enumerate(book.names)}
    ranked = sorted(range(len(findings)), key=lambda i: _sort_key(findings[i], targets[i], order, i))
    name = copies.unique_title(SUMMARY_SHEET, {n.casefold() for n in book.names})
    summary = summary_sheet(name, [(findings[i], targets[i]) for i in ranked], title, lines)
    return book.render(fills, {cell: "\n".join(texts) for cell, texts in comments.items()}, summary)


# --- the 檢核結果 sheet, as data ----------------------------------------------------------------------------------

_SUMMARY_CAPS = (6, 8, 24, 12, 24, 30, 70)  # the widest each column of the 檢核結果 sheet gets (說明 always this)
_WRAPPED = range(4, 7)  # 欄位, 填寫值 and 說明 wrap
_LINE_POINTS = 16.5  # the height of one line of the 11 pt body font, Chinese included
_TITLE = CellStyle(bold=True, size="14")
_HEADER = CellStyle(bold=True, fill="FFD9D9D9")
_TOP = CellStyle(top=True)
_WRAP = CellStyle(wrap=True)
_LINK = CellStyle(link=True, top=True)
_SEVERITY = {"error": CellStyle(fill=ERROR_RGB, top=True), "warning": CellStyle(fill=WARNING_RGB, top=True)}


def _summary_layout(rows: list[list[str | None]]) -> tuple[list[float], list[float | None]]:
    """The 檢核結果 sheet's column widths, and each finding row's height (None: one line). A row is as tall as its
    wrapped text needs: neither Excel nor LibreOffice grows a row for wrapped text when it opens a written file, so
    a long 說明 showed one line, cut at the page's edge."""
    widths = [text_width(h) for h in HEADERS]
    for values in rows:
        widths = [max(w, text_width(v or "")) for w, v in zip(widths, values, strict=True)]
    fitted = [cap if c == len(HEADERS) - 1 else min(max(width + 2, 6), cap)
              for c, (width, cap) in enumerate(zip(widths, _SUMMARY_CAPS, strict=True))]
    heights: list[float | None] = []
    for values in rows:
        lines = max(sum(max(1, math.ceil(text_width(part) / max(fitted[c] - 1, 1)))
                        for part in (values[c] or "").split("\n")) for c in _WRAPPED)
        heights.append(lines * _LINE_POINTS if lines > 1 else None)
    return [float(w) for w in fitted], heights


def _summary_values(n: int, f: Finding, t: _Target | None) -> list[str | None]:
    """One finding's row of the 檢核結果 sheet, as text: 序號, 嚴重度, 工作表, 儲存格, 欄位, 填寫值, 說明."""
    sheet_name = t.sheet if t is not None else f.sheet
    return [str(n), SEVERITY_LABEL.get(f.severity, f.severity), sheet_name, f.cell, f.column,
            None if f.value is None else str(f.value), f.message]


def summary_sheet(name: str, rows: list[tuple[Finding, _Target | None]], title: str, lines: list[str]) -> NewSheet:
    """The 檢核結果 sheet: the title, the summary lines, then one row per finding (in `rows`' order) under a frozen
    header with a filter, each placed finding's 儲存格 a link to its cell; printed on A4 landscape, one page wide
    (說明 stays on the page of its finding)."""
    out = [Row(1, [(1, title or SUMMARY_SHEET, _TITLE)])]
    r = 2
    for line in [*lines, *([] if rows else ["沒有發現任何問題。"])]:
        out.append(Row(r, [(1, line, None)]))
        r += 1
    header_row = r + 1
    out.append(Row(header_row, [(c, text, _HEADER) for c, text in enumerate(HEADERS, start=1)]))
    table = [_summary_values(n, f, t) for n, (f, t) in enumerate(rows, start=1)]
    widths, heights = _summary_layout(table)
    links: list[tuple[str, str, str]] = []
    for n, ((f, t), values, height) in enumerate(zip(rows, table, heights, strict=True), start=1):
        row = header_row + n
        cells: list[tuple[int, str | int | None, CellStyle | None]] = [(1, n, _TOP)]
        for c, value in enumerate(values[1:], start=2):
            if c == 2:
                style = _SEVERITY["error" if f.severity == "error" else "warning"]
            elif c == 4 and t is not None:
                style = _LINK
            else:
                style = _WRAP if c - 1 in _WRAPPED else _TOP
            cells.append((c, value, style))
        out.append(Row(row, cells, height))
        if t is not None:
            links.append((f"D{row}", t.location, f.cell or ""))
    filter_ref = f"A{header_row}:G{header_row + len(rows)}" if rows else None
    return NewSheet(name, out, widths, links, header_row, filter_ref, PrintSetup(landscape=True))
