"""The one reader of cell values (python-calamine): each sheet's raw values and merged ranges, a sheet the reader
refuses read again with its malformed cells blanked, and what the reader raised as a ReadError."""

from __future__ import annotations

import contextlib
import html
import io
import math
import re
import zipfile
from dataclasses import dataclass, field
from typing import Any

from python_calamine import CalamineError, CalamineWorkbook, PasswordError, SheetTypeEnum, SheetVisibleEnum

from collect.findings import Finding, make
from collect.xlsx.addresses import a1, column_number, parse_a1
from collect.xlsx.guard import MAX_COLS, R_ATTR, ReadError, ReadLimits, label, replaced, shared_count


@dataclass
class Sheet:
    """One sheet's raw values; rows[i][j] is the cell at Excel row first_row + i, column first_col + j."""

    name: str
    visible: str  # "visible" | "hidden" | "veryhidden"
    first_row: int  # 1-based
    first_col: int  # 1-based
    rows: list[list[object]] = field(default_factory=list)
    merged: list[str] = field(default_factory=list)  # "B7:C7"; [] where the format does not tell

    def cell(self, address: str) -> object:
        """The raw value at an A1 address ("" when outside the read grid)."""
        row, col = parse_a1(address)
        i, j = row - self.first_row, col - self.first_col
        if 0 <= i < len(self.rows) and 0 <= j < len(self.rows[i]):
            return self.rows[i][j]
        return ""


def read_sheets(data: bytes, limits: ReadLimits, repair: Repairer | None = None) -> list[Sheet]:
    try:
        workbook = CalamineWorkbook.from_filelike(io.BytesIO(data))
    except BaseException as exc:
        raise reader_error(exc) from exc
    def visibility(value: Any) -> str:
        if value == SheetVisibleEnum.Hidden:
            return "hidden"
        return "veryhidden" if value == SheetVisibleEnum.VeryHidden else "visible"

    sheets: list[Sheet] = []
    cells = 0
    with workbook:
        for meta in workbook.sheets_metadata:
            visible = visibility(meta.visible)
            try:
                grid = workbook.get_sheet_by_name(meta.name)
            except BaseException as exc:
                if meta.typ != SheetTypeEnum.WorkSheet and isinstance(exc, Exception):
                    sheets.append(Sheet(meta.name, visible, 1, 1, [], []))
                    continue  # a chart or dialog sheet without cells calamine can give
                # one malformed cell (or row number, or dimension) need not cost the whole sheet: read it repaired
                repaired = repair.sheet(meta.name) if repair and isinstance(exc, CalamineError) else None
                if repaired is None:
                    raise reader_error(exc) from exc
                grid = repaired
            else:  # read, but a number cell holds NaN or infinity (no spreadsheet writes one): read it repaired
                if repair and repair.not_finite(meta.name):
                    grid = repair.sheet(meta.name) or grid
            start = grid.start
            if start is None:
                sheets.append(Sheet(meta.name, visible, 1, 1, [], []))
                continue
            cells += grid.height * grid.width
            if start[0] + grid.height > limits.max_rows:
                raise ReadError("file.suspicious", f"工作表「{meta.name}」超過 {limits.max_rows:,} 列")
            if cells > limits.max_cells:
                raise ReadError("file.too_large", f"超過 {limits.max_cells:,} 個儲存格")
            try:
                rows: list[list[Any]] = grid.to_python(skip_empty_area=True)
                ranges = grid.merged_cell_ranges or []
            except BaseException as exc:
                raise reader_error(exc) from exc
            merged = [f"{a1(r0 + 1, c0 + 1)}:{a1(r1 + 1, c1 + 1)}" for (r0, c0), (r1, c1) in ranges]
            sheets.append(Sheet(meta.name, visible, start[0] + 1, start[1] + 1, rows, merged))
    if repair:
        repair.close()
    return sheets


# --- malformed cells -------------------------------------------------------------------------------------------
_ELEMENT = re.compile(
    rb'(?P<dim><(?P<dp>(?:[A-Za-z_][\w.-]*:)?)dimension(?=[\s/>])[^>]*?(?:/>|>.*?</(?P=dp)dimension>))'
    rb'|(?P<row><(?:[A-Za-z_][\w.-]*:)?row(?=[\s/>])[^>]*>)'
    rb'|(?P<cell><(?P<p>(?:[A-Za-z_][\w.-]*:)?)c(?=[\s/>])(?P<attrs>[^>]*?)(?:/>|>(?P<body>.*?)</(?P=p)c>))', re.S)
_ATTR = re.compile(rb'(?<![\w:.-])([\w:.-]+)\s*=\s*(["\'])(.*?)\2', re.S)
_V = re.compile(rb'<(?:[A-Za-z_][\w.-]*:)?v(?:\s[^>]*)?>(.*?)</(?:[A-Za-z_][\w.-]*:)?v>', re.S)
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
# a value the reader takes for NaN or infinity ("NaN", "inf", "1e999"): read as blank, it was 「必須填寫」
_NOT_FINITE = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?v>\s*[+-]?(?:[Nn][Aa][Nn]|[Ii][Nn][Ff]|[0-9.]+[eE]\+?[0-9]{3})")
_ERROR_VALUES = frozenset({"#DIV/0!", "#N/A", "#NAME?", "#NULL!", "#NUM!", "#REF!", "#VALUE!"})
_CELL_TYPES = frozenset({"n", "b", "e", "s", "str", "inlineStr", "d"})
_RANGE = re.compile(r"\$?[A-Za-z]{1,3}\$?[1-9][0-9]{0,6}(?::\$?[A-Za-z]{1,3}\$?[1-9][0-9]{0,6})?")
MAX_MALFORMED = 10_000  # cells named one by one per sheet (the worker lists 100 a column); the rest are counted


def _attrs(tag: bytes) -> dict[str, str]:
    return {m.group(1).decode("ascii", "replace"): html.unescape(m.group(3).decode("utf-8", "replace"))
            for m in _ATTR.finditer(tag)}


def _position(ref: str) -> tuple[int, int] | None:
    found = re.fullmatch(r"([A-Za-z]{1,3})([0-9]{1,7})", ref.strip())
    if not found:
        return None
    row, col = int(found.group(2)), column_number(found.group(1))
    return (row, col) if 1 <= row <= 1_048_576 and 1 <= col <= MAX_COLS else None


def _cell_problem(kind: str, text: str | None, shared: int) -> str:
    """What is wrong with a cell's value for its type ("" when nothing is), in words for the agency."""
    if kind not in _CELL_TYPES:
        return f"儲存格類型「{kind[:20]}」無法辨識"
    if text is None or text == "":
        return ""
    if kind == "n" and not _NUMBER.fullmatch(text):
        return "數值儲存格的內容不是數字"
    if kind == "n" and math.isinf(float(text)):
        return "數值超出範圍"
    if kind == "b" and text.strip().lower() not in ("0", "1", "true", "false"):
        return "是非值儲存格的內容不是 TRUE 或 FALSE"
    if kind == "e" and text.strip() not in _ERROR_VALUES:
        return "錯誤值無法辨識"
    if kind == "s" and not (text.strip().isdigit() and int(text.strip()) < shared):
        return "引用的共用字串不存在"
    return ""


@dataclass
class _Repaired:
    xml: bytes
    cells: list[tuple[str, str, str]]  # (A1, what was wrong, the value as written)
    structure: list[str]  # what was wrong with the sheet's rows or its dimension


def _repair(xml: bytes, shared: int) -> _Repaired:
    """A sheet's XML with each malformed cell blanked (kept at its place, holding nothing), each invalid row number and
    an invalid dimension dropped (the reader then places rows by order, as Excel does); what was wrong, where."""
    edits: list[tuple[int, int, bytes]] = []
    cells: list[tuple[str, str, str]] = []
    structure: list[str] = []
    row = col = 0
    for m in _ELEMENT.finditer(xml):
        if m.group("dim"):
            ref = _attrs(m.group("dim")).get("ref", "")
            if not _RANGE.fullmatch(ref):
                edits.append((m.start(), m.end(), b""))
                structure.append(f"工作表範圍標示「{ref[:40]}」無效")
            continue
        if m.group("row"):
            tag = m.group("row")
            number = _attrs(tag).get("r")
            if number is not None and number.strip().isdigit() and 1 <= int(number) <= 1_048_576:
                row = int(number)
            else:
                row += 1
                if number is not None:
                    edits.append((m.start(), m.end(), R_ATTR.sub(b"", tag, count=1)))
                    structure.append(f"第 {row:,} 列的列號「{number[:20]}」無效")
            col = 0
            continue
        attrs = _attrs(m.group("attrs"))
        cell_ref = attrs.get("r")
        at = _position(cell_ref) if cell_ref is not None else None
        if at is not None:
            row, col = at
        else:
            col += 1
        problem = f"儲存格位置標示「{cell_ref[:20]}」無效" if cell_ref is not None and at is None else ""
        value = _V.search(m.group("body") or b"")
        text = html.unescape(value.group(1).decode("utf-8", "replace")) if value else None
        problem = problem or _cell_problem(attrs.get("t", "n"), text, shared)
        if problem:
            address = label(row, col)
            edits.append((m.start(), m.end(), b"<" + m.group("p") + b'c r="' + address.encode() + b'"/>'
                          if col <= 18_278 else b""))
            cells.append((address, problem, text or ""))
    pieces, last = [], 0
    for begin, end, replacement in edits:
        pieces += [xml[last:begin], replacement]
        last = end
    pieces.append(xml[last:])
    return _Repaired(b"".join(pieces), cells, structure)


class Repairer:
    """Reads again, from a repaired copy of its XML, a worksheet of an .xlsx/.xlsm that the reader refused."""

    def __init__(self, data: bytes, members: dict[str, str], parts: dict[str, bytes]) -> None:
        self.data = data
        self.members = members  # sheet name -> member name
        self.parts = parts
        self.findings: list[Finding] = []
        self.opened: list[Any] = []

    def not_finite(self, name: str) -> bool:
        """Whether the sheet's XML may hold a number the reader takes for NaN or infinity (then it is repaired)."""
        member = self.members.get(name)
        return member is not None and _NOT_FINITE.search(self.parts.get(member, b"")) is not None

    def sheet(self, name: str) -> Any:
        """The sheet's grid read from the repaired package, or None when nothing could be repaired or it still fails."""
        member = self.members.get(name)
        if member is None or member not in self.parts:
            return None
        fixed = _repair(self.parts[member], shared_count(self.data))
        if not fixed.cells and not fixed.structure:
            return None
        data = replaced(self.data, member, fixed.xml)
        try:
            workbook = CalamineWorkbook.from_filelike(io.BytesIO(data))
            self.opened.append(workbook)
            grid = workbook.get_sheet_by_name(name)
        except Exception:
            return None
        self.data, self.parts[member] = data, fixed.xml  # a later sheet is repaired on top; the annotated copy too
        for address, problem, text in fixed.cells[:MAX_MALFORMED]:
            self.findings.append(make("value.malformed", sheet=name, cell=address, value=text, detail=problem))
        rest = len(fixed.cells) - MAX_MALFORMED
        notes = fixed.structure[:3] + ([f"另有 {rest:,} 個儲存格內容無法讀取，已當作空白"] if rest > 0 else [])
        if notes:
            self.findings.append(make("sheet.repaired", sheet=name, detail="；".join(notes)))
        return grid

    def close(self) -> None:
        for workbook in self.opened:
            with contextlib.suppress(Exception):
                workbook.close()


def reader_error(exc: BaseException) -> ReadError:
    """Map what the reader raised to a ReadError (KeyboardInterrupt and SystemExit pass through)."""
    if isinstance(exc, KeyboardInterrupt | SystemExit):
        raise exc
    message = " ".join(str(exc).split())[:120]
    if isinstance(exc, PasswordError):
        return ReadError("file.encrypted", "設有密碼")
    if isinstance(exc, MemoryError):
        return ReadError("file.reader_failed", "記憶體不足")
    if isinstance(exc, CalamineError | ValueError | OSError | UnicodeError | zipfile.BadZipFile):
        return ReadError("file.corrupt", f"內容無法解析：{message}" if message else "內容無法解析")
    # pyo3's PanicException (a BaseException) and anything unexpected: the reader itself failed.
    return ReadError("file.reader_failed", f"{type(exc).__name__}: {message}")
