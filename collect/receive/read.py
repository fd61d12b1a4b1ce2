"""Read a returned file's bytes safely into a Book of raw cell values with their Excel positions."""

# Decisions (measured on this machine with python-calamine 0.9):
# - The file type comes from the content, never from the name.
# - OOXML/ODS packages are checked before any reader sees them: member count, each member's declared
#   size, total size, compression ratio; every XML part is decompressed once (which also proves the
#   declared sizes and CRCs honest) and refused if it holds a DOCTYPE or ENTITY declaration (no OOXML/ODF
#   part needs one).
# - A worksheet's claimed <dimension ref> is NOT trusted and NOT refused: calamine ignores it (a sheet
#   claiming A1:XFD1048576 with two cells reads in under a millisecond). What does hurt is the real
#   extent: calamine builds a dense grid from the first to the last cell holding a value, so values at A1
#   and XFD1048576 make it ask for 512 GB and abort the process. For .xlsx/.xlsm the XML is therefore
#   scanned for cell references beyond ZZ9999 (one fast regex with a literal prefix: 0.7 ms for 12,000
#   cells); a sheet that has such references is scanned again for the cells that hold something, and a
#   sheet whose real extent exceeds ReadLimits.max_cells (or max_rows) is refused as "file.suspicious".
#   For .xls, .xlsb and .ods that guard is the sandbox (memory limit -> Crashed -> "file.reader_failed");
#   calamine itself refuses the ODS row/column-repeat bomb tried here.
# - The sheets scanned are every part workbook.xml's relationships name as a sheet, whatever the part is called
#   (calamine reads "xl/foo", "xl/foo.dat" or "xl/data/sharedStrings.xml" as a worksheet when told to), and every
#   other XML part not known to hold no cells. Rows and cells without an r attribute are placed by order (as calamine
#   places them): a sheet holding one is walked exactly (2,000,000 rows in 3.6 s, then refused).
# - Shared strings are expanded by calamine into every cell that refers to them (one 3 MB string in 300 cells: 900 MB,
#   a MemoryError and a pyo3 panic): their expanded size is bounded by ReadLimits.max_text_bytes before it reads.
# - One malformed cell ("1,000" in a number cell, t="b" holding 2, an unknown error value or cell type, a shared
#   string that does not exist, a reference that is none), a bad <dimension> or row number make calamine refuse the
#   whole sheet: the sheet is then read again from a copy of its XML with those cells blanked (each a finding at its
#   cell, Book.findings) and those attributes dropped. Only a sheet calamine refused pays for the walk.
# - While a file is read, file descriptor 2 goes to /dev/null: pyo3 prints a panic (and Rust an allocation failure)
#   with its backtrace there, which reached the console that started the worker.

from __future__ import annotations

import codecs
import contextlib
import csv
import html
import io
import math
import os
import posixpath
import re
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any
from xml.etree import ElementTree

from openpyxl.utils import get_column_letter

from collect.findings import Finding, make

KINDS_READ = ("xlsx", "xlsm", "xlsb", "xls", "ods")
ZIP_KINDS = ("xlsx", "xlsm", "xlsb", "ods")
OLE_MAGIC = bytes.fromhex("d0cf11e0a1b11ae1")
MAX_MEMBERS = 10_000
RATIO_FLOOR = 1_000_000  # members smaller than this (uncompressed) are not held to max_ratio
CHUNK = 1 << 20


class ReadError(Exception):
    """A returned file that cannot be read; `code` is a catalogue code, `detail` a short zh-TW detail."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(code, detail)
        self.code = code
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.code}: {self.detail}" if self.detail else self.code

    def finding(self, locale: str = "zh-TW") -> Finding:
        """The whole-file finding for this error, message from the catalogue."""
        return make(self.code, locale, detail=self.detail)


@dataclass(frozen=True)
class ReadLimits:
    """Limits on what read_book accepts."""

    max_bytes: int = 50_000_000  # the file itself
    max_member_bytes: int = 200_000_000  # one package member, uncompressed (all members: twice this)
    max_ratio: float = 1000.0  # uncompressed / compressed, for members over RATIO_FLOOR (LibreOffice: up to ~180)
    max_cells: int = 20_000_000  # one sheet's real extent, and all sheets together
    max_rows: int = 1_048_576
    max_text_bytes: int = 100_000_000  # the text of all cells, shared strings expanded into each cell using them
    default_password: str = "VelvetSweatshop"


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


@dataclass
class Book:
    """A read workbook: its kind (from content), custom document properties and sheets in workbook order."""

    kind: str  # "xlsx" | "xlsm" | "xls" | "ods" | "xlsb"
    properties: dict[str, str]
    sheets: list[Sheet]
    # The XML parts that can hold cells (worksheets, and any part not known to hold none), as the package check
    # decompressed them (xlsx/xlsm), by name: the annotated copy starts from these instead of decompressing again.
    parts: dict[str, bytes] = field(default_factory=dict, repr=False)
    # what reading found in single cells (xlsx/xlsm): a value that could not be read, taken as blank so that the rest
    # of its sheet could be ("value.malformed", an error until the worker knows whether the cell is an input cell)
    findings: list[Finding] = field(default_factory=list)
    members: dict[str, str] = field(default_factory=dict)  # sheet name -> its part in `parts` (xlsx/xlsm)

    def sheet(self, name: str) -> Sheet | None:
        return next((s for s in self.sheets if s.name == name), None)


# --- cell addresses -------------------------------------------------------------------------------

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


# --- sniffing -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Sniffed:
    kind: str
    detail: str
    broken: bool = False  # the container itself is damaged (truncated zip, bad OLE)


def sniff(data: bytes) -> str:
    """The file's type from its content: a KINDS_READ kind, or "encrypted", "zip", "csv", "html", "pdf",
    "text", "image", "empty", "unknown"."""
    return _sniff(data).kind


def _sniff(data: bytes) -> _Sniffed:
    if not data:
        return _Sniffed("empty", "空檔案")
    if data[:4] in (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08"):
        return _sniff_zip(data)
    if data[:8] == OLE_MAGIC:
        return _sniff_ole(data)
    if data[:5] == b"%PDF-":
        return _Sniffed("pdf", "PDF 文件")
    image = _image_kind(data)
    if image:
        return _Sniffed("image", f"{image} 圖片")
    if len(data) >= 8 and data[0] == 0x09 and data[1] in (0x00, 0x02, 0x04) and data[3] == 0 and data[2] < 32:
        return _Sniffed("xls", "Excel 4.0 以前的舊格式")  # a bare BIFF2-4 stream, outside an OLE container
    text = _as_text(data)
    if text is None:
        return _Sniffed("unknown", "無法辨識的檔案格式")
    return _sniff_text(text)


def _sniff_zip(data: bytes) -> _Sniffed:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            names = set(zf.namelist())
            lower = {n.lower() for n in names}

            def small(name: str) -> bytes:
                info = zf.getinfo(name)
                return zf.read(name) if info.file_size <= 1_000_000 else b""

            if "[Content_Types].xml" in names:
                types = small("[Content_Types].xml")
                if "xl/workbook.bin" in lower:
                    return _Sniffed("xlsb", "Excel 二進位活頁簿")
                if "xl/workbook.xml" in lower or b"spreadsheetml" in types:
                    macro = b"macroEnabled" in types or "xl/vbaproject.bin" in lower
                    return _Sniffed("xlsm" if macro else "xlsx", "Excel 活頁簿")
                if "word/document.xml" in lower:
                    return _Sniffed("zip", "Word 文件")
                if "ppt/presentation.xml" in lower:
                    return _Sniffed("zip", "PowerPoint 簡報")
                return _Sniffed("zip", "其他 Office 文件")
            mimetype = small("mimetype").strip() if "mimetype" in names else b""
            if not mimetype and "META-INF/manifest.xml" in names:
                manifest = small("META-INF/manifest.xml")
                found = re.search(
                    rb'full-path="/"[^>]*media-type="([^"]+)"|media-type="([^"]+)"[^>]*full-path="/"',
                    manifest,
                )
                mimetype = (found.group(1) or found.group(2)) if found else b""
            if mimetype.startswith(b"application/vnd.oasis.opendocument.spreadsheet"):
                return _Sniffed("ods", "OpenDocument 試算表")
            if mimetype.startswith(b"application/vnd.oasis.opendocument.text"):
                return _Sniffed("zip", "OpenDocument 文字文件")
            if mimetype.startswith(b"application/vnd.oasis.opendocument"):
                return _Sniffed("zip", "OpenDocument 文件")
            if any(n.startswith("Index/") for n in names) or "Index.zip" in names:
                return _Sniffed("zip", "Apple Numbers 試算表")
            return _Sniffed("zip", "ZIP 壓縮檔，其中沒有 Excel 活頁簿")
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, NotImplementedError, OSError, KeyError,
            RuntimeError):
        return _Sniffed("zip", "檔案不完整或 ZIP 結構損毀", broken=True)


def _sniff_ole(data: bytes) -> _Sniffed:
    import olefile

    try:
        ole = olefile.OleFileIO(io.BytesIO(data))
        streams = {"/".join(parts).lower() for parts in ole.listdir(streams=True, storages=False)}
        ole.close()
    except Exception:
        return _Sniffed("xls", "Office 檔案結構損毀", broken=True)
    if "encryptedpackage" in streams:
        return _Sniffed("encrypted", "設有開啟密碼的 Office 檔案")
    if "workbook" in streams or "book" in streams:
        if "workbook" in streams:
            import msoffcrypto

            with contextlib.suppress(Exception):
                if msoffcrypto.OfficeFile(io.BytesIO(data)).is_encrypted():
                    return _Sniffed("encrypted", "設有開啟密碼的 Excel 97-2003 活頁簿")
        return _Sniffed("xls", "Excel 97-2003 活頁簿")
    if "worddocument" in streams:
        return _Sniffed("unknown", "Word 97-2003 文件")
    if "powerpoint document" in streams:
        return _Sniffed("unknown", "PowerPoint 97-2003 簡報")
    if any(s.startswith("__substg1.0_") for s in streams):
        return _Sniffed("unknown", "Outlook 郵件檔")
    return _Sniffed("unknown", "非 Excel 的 Office 檔案")


def _image_kind(data: bytes) -> str:
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "PNG"
    if data[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    if data[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1"):
        return "HEIC"
    if data[:2] == b"BM" and len(data) >= 26 and int.from_bytes(data[2:6], "little") == len(data):
        return "BMP"
    return ""


def _as_text(data: bytes) -> str | None:
    """The start of the data as text if it is text (UTF-8/16/32 or Big5), else None."""
    head = data[:65536]
    encodings: list[str]
    if head.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        encodings = ["utf-32"]
    elif head.startswith(codecs.BOM_UTF8):
        encodings = ["utf-8-sig"]
    elif head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encodings = ["utf-16"]
    elif b"\x00" in head[:4096]:
        if head[1:4] == b"\x00\x00\x00":
            encodings = ["utf-32-le"]
        elif head[:3] == b"\x00\x00\x00":
            encodings = ["utf-32-be"]
        elif head[1:2] == b"\x00":
            encodings = ["utf-16-le"]
        else:
            encodings = ["utf-16-be"]
    else:
        encodings = ["utf-8", "cp950"]
    for encoding in encodings:
        decoder = codecs.getincrementaldecoder(encoding)()
        try:
            text = decoder.decode(head, final=len(head) == len(data))
        except (UnicodeDecodeError, ValueError):
            continue
        sample = text[:8192]
        if not sample:
            continue
        odd = sum(1 for ch in sample if not (ch.isprintable() or ch in "\t\r\n\f\v"))
        if odd <= len(sample) * 0.02:
            return text
    return None


def _sniff_text(text: str) -> _Sniffed:
    start = text.lstrip("\ufeff \t\r\n")[:4096].lower()
    if start.startswith("<?xml"):
        if "urn:schemas-microsoft-com:office:spreadsheet" in start:
            return _Sniffed("text", "Excel 2003 XML 試算表（請另存為 .xlsx）")
        if "<html" in start:
            return _Sniffed("html", "HTML 網頁檔")
        return _Sniffed("text", "XML 文字檔")
    if start.startswith(("<!doctype html", "<html", "<table", "<head", "<body", "<meta")) or "<html" in start:
        return _Sniffed("html", "HTML 網頁檔")
    sample = text[:16384]
    if len(text) > len(sample) and "\n" in sample:
        sample = sample[: sample.rindex("\n")]
    for delimiter in (",", "\t", ";"):
        try:
            records = [r for r in csv.reader(io.StringIO(sample), delimiter=delimiter) if any(r)][:50]
        except csv.Error:
            continue
        if not records:
            continue
        widths = Counter(len(r) for r in records)
        common, seen = widths.most_common(1)[0]
        multi = sum(n for width, n in widths.items() if width > 1)
        if common > 1 and multi >= 0.8 * len(records) and seen >= 0.5 * len(records):
            return _Sniffed("csv", "CSV 文字檔")
    return _Sniffed("text", "純文字檔")


# --- decryption -----------------------------------------------------------------------------------

def decrypt_if_default(data: bytes, password: str = "VelvetSweatshop") -> bytes:
    """Decrypt with Excel's built-in default password; ReadError("file.encrypted") if that does not open it.

    Data that is not encrypted comes back unchanged."""
    import msoffcrypto

    try:
        office = msoffcrypto.OfficeFile(io.BytesIO(data))
        if not office.is_encrypted():
            return data
        office.load_key(password=password)
        out = io.BytesIO()
        office.decrypt(out)
    except Exception as exc:
        raise ReadError("file.encrypted", "設有開啟密碼") from exc
    return out.getvalue()


# --- package checks -------------------------------------------------------------------------------

# Parts that never hold cells (every other XML part of an .xlsx/.xlsm is scanned, wherever its sheets are).
_NOT_SHEET = re.compile(
    r"(?i)(sharedstrings|styles|theme\d*|workbook|\[content_types\]|core|app|custom)\.xml$"
)
# The start tag of a cell that is not self-closing (an empty styled cell "<c r="Z9" s="1"/>" holds no
# value, and calamine leaves such cells out of the grid).
# a cell that is not self-closing (<c .../> holds no value); its column letters and row number
# (attributes parsed as XML does: either quote, spaces around "=", letters in either case)
_CELL_TAG = re.compile(
    rb'<(?:[A-Za-z_][\w.-]*:)?c\s[^>]*?(?<![\w:.-])r\s*=\s*["\']([A-Za-z]{1,3})([0-9]{1,7})["\'][^>]*(?<!/)>')


def _label(row: int, col: int) -> str:
    """A cell's A1 address, or its row and column numbers where it lies beyond column ZZZ (A1 has no letters)."""
    return a1(row, col) if col <= 18_278 else f"第 {row:,} 列第 {col:,} 欄"


def _mb(n: float) -> str:
    return f"{n / 1_000_000:,.1f} MB"


def _check_package(zf: zipfile.ZipFile, kind: str, limits: ReadLimits) -> tuple[dict[str, bytes], dict[str, str]]:
    """Refuse zip bombs, XML entity tricks and absurd sheet extents before any reader parses the package; the
    content of the parts scanned for cells, by name, and each sheet's part (xlsx/xlsm), by sheet name."""
    infos = zf.infolist()
    if len(infos) > MAX_MEMBERS:
        raise ReadError("file.suspicious", f"壓縮檔內含 {len(infos):,} 個項目")
    repeated = [name for name, n in Counter(i.filename for i in infos).items() if n > 1]
    if repeated:  # which copy a reader takes is up to the reader: the file says two things at once
        raise ReadError("file.suspicious", f"壓縮檔內有重複的項目名稱「{repeated[0][:80]}」")
    total = 0
    for info in infos:
        total += info.file_size
        if info.file_size > limits.max_member_bytes:
            raise ReadError("file.suspicious", f"「{info.filename}」解壓縮後達 {_mb(info.file_size)}")
        if info.file_size > RATIO_FLOOR and info.file_size > limits.max_ratio * max(info.compress_size, 1):
            ratio = info.file_size / max(info.compress_size, 1)
            raise ReadError("file.suspicious", f"「{info.filename}」壓縮比 1:{ratio:,.0f}")
    if total > 2 * limits.max_member_bytes:
        raise ReadError("file.suspicious", f"解壓縮後共 {_mb(total)}")
    sheets = _sheet_members(zf, infos) if kind in ("xlsx", "xlsm") else {}
    sheet_members = set(sheets.values())
    far_sheets = []
    parts: dict[str, bytes] = {}
    for info in infos:
        name = info.filename.lower()
        sheet_part = kind in ("xlsx", "xlsm") and not info.is_dir() and (
            info.filename in sheet_members or (name.endswith(".xml") and not _NOT_SHEET.search(name)))
        if info.is_dir() or not (sheet_part or name.endswith((".xml", ".rels", ".bin", ".vml"))):
            continue
        xml = sheet_part or not name.endswith(".bin")
        rows, cols, content = _scan_member(zf, info, xml=xml, cells=sheet_part)
        if sheet_part:
            parts[info.filename] = content
        if rows > limits.max_rows or rows * cols > limits.max_cells:
            far_sheets.append(info)
    cells = 0
    for info in far_sheets:  # a reference far out, or cells placed by order: where the values really are decides
        box = _value_extent(parts[info.filename])
        if box is None:
            continue
        top, left, bottom, right = box
        extent = (bottom - top + 1) * (right - left + 1)
        shown = f"{_label(top, left)}:{_label(bottom, right)}"
        if right > MAX_COLS:
            raise ReadError("file.suspicious", f"工作表資料範圍 {shown} 超過 Excel 的 {MAX_COLS:,} 欄")
        if bottom > limits.max_rows or extent > limits.max_cells:
            raise ReadError("file.suspicious", f"工作表資料範圍 {shown} 過大（{extent:,} 個儲存格）")
        cells += extent
    if cells > limits.max_cells:
        raise ReadError("file.too_large", f"共 {cells:,} 個儲存格")
    if kind in ("xlsx", "xlsm"):
        _check_shared_strings(zf, infos, parts, {part: name for name, part in sheets.items()}, limits)
    return parts, sheets


# A cell reference beyond column ZZ or row 9,999 (any attribute ending in r= counts: a false alarm only costs the
# exact scan below). A sheet without one has all its cells within A1:ZZ9999, which calamine reads safely.
_FAR_REF = re.compile(rb'(?<![\w:.-])r\s*=\s*["\'](?:([A-Za-z]{3})([0-9]+)|([A-Za-z]{1,2})([0-9]{5,}))["\']')
# A row or cell start tag without an r attribute: the reader places it by order (the row after the last, the column
# after the last), so 20,000 cells without r in one row reach far past ZZ: such a sheet is walked exactly.
_NO_REF = re.compile(rb'<(?:[A-Za-z_][\w.-]*:)?(?:c|row)(?=[\s/>])(?![^>]*?(?<![\w:.-])r\s*=)')
NEAR_ROWS, NEAR_COLS = 9_999, 702
MAX_COLS = 16_384


def _scan_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, *, xml: bool,
                 cells: bool) -> tuple[int, int, bytes]:
    """Decompress one member (proving its size and CRC) and refuse DTDs in XML; for a sheet, return bounds
    (rows, columns) of where its cells can be, from its far cell references (unbounded when a row or cell has no
    reference), and its content (0, 0, b"" for other members)."""
    bottom = right = 0
    pieces: list[bytes] = []
    for buffer in _chunks(zf, info, xml):
        if cells:
            pieces.append(buffer)
            found = _FAR_REF.findall(buffer)
            if found:  # 600,000 far references (200,000 rows) in 0.2 s, where one parse_a1 each took 2 s
                bottom = max(bottom, *(int(r3 or r2) for _c3, r3, _c2, r2 in found))
                letters = {c3 or c2 for c3, _r3, c2, _r2 in found}
                right = max(right, *(column_number(c.decode("ascii")) for c in letters))
            if _NO_REF.search(buffer):
                bottom = right = 1 << 40
    if not cells:
        return 0, 0, b""
    return max(bottom, NEAR_ROWS), max(right, NEAR_COLS), b"".join(pieces)


_TAG = re.compile(rb'<(?:[A-Za-z_][\w.-]*:)?(c|row)(?=[\s/>])([^>]*?)(/?)>')
_R_ATTR = re.compile(rb'(?<![\w:.-])r\s*=\s*(["\'])(.*?)\1', re.S)
_A1 = re.compile(rb"([A-Za-z]{1,3})([0-9]{1,7})")


def _value_extent(xml: bytes) -> tuple[int, int, int, int] | None:
    """The box (top, left, bottom, right) of a sheet's cells that hold something (not self-closing), each placed as
    the reader places it: at its own reference, else after the cell (or row) before it; None when it has none."""
    if not _NO_REF.search(xml):  # every cell at its own reference: one findall, no walk
        found = _CELL_TAG.findall(xml)
        if not found:
            return None
        rows = [int(r) for _c, r in found]
        cols = [column_number(c.decode("ascii")) for c in {c for c, _r in found}]
        return min(rows), min(cols), max(rows), max(cols)
    top = left = 1 << 62
    bottom = right = 0
    row = col = 0
    for tag in _TAG.finditer(xml):
        ref = _R_ATTR.search(tag.group(2))
        if tag.group(1) == b"row":
            value = ref.group(2).strip() if ref else b""
            row = int(value) if value.isdigit() else row + 1
            col = 0
            continue
        own = _A1.fullmatch(ref.group(2).strip()) if ref else None
        if own:
            row, col = int(own.group(2)), column_number(own.group(1).decode("ascii"))
        else:
            col += 1
        if not tag.group(3):
            top, bottom, left, right = min(top, row), max(bottom, row), min(left, col), max(right, col)
    return (top, left, bottom, right) if bottom else None


_REL_NAMES = ("xl/_rels/workbook.xml.rels",)
_MAIN_NS = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_REL_NS = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
_SI = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?si(?=[\s/>])")
_S_CELL = re.compile(rb'<(?:[A-Za-z_][\w.-]*:)?c\s[^>]*?(?<![\w:.-])t\s*=\s*["\']s["\'][^>]*>\s*'
                     rb'(?:<(?:[A-Za-z_][\w.-]*:)?f\b[^>]*?(?:/>|>.*?</(?:[A-Za-z_][\w.-]*:)?f>)\s*)?'
                     rb'<(?:[A-Za-z_][\w.-]*:)?v>\s*([0-9]{1,12})\s*<', re.S)


def _resolve(target: str) -> list[str]:
    """The member names a workbook relationship's target can mean: as the reader takes it ("xl/" + target, or the
    target without its leading "/") and normalised ("worksheets/../x.xml" -> "xl/x.xml")."""
    target = target.strip()
    literal = target[1:] if target.startswith("/") else target if target.lower().startswith("xl/") else f"xl/{target}"
    return list(dict.fromkeys([literal, posixpath.normpath(literal)]))


def _sheet_members(zf: zipfile.ZipFile, infos: list[zipfile.ZipInfo]) -> dict[str, str]:
    """Sheet name -> member name of each sheet workbook.xml names, through its relationships, whatever the part is
    called ("xl/foo", "xl/data/sharedStrings.xml"); names matched as the reader does and also case-insensitively."""
    by_lower = {i.filename.lower(): i for i in infos}
    rels_info, book_info = by_lower.get(_REL_NAMES[0]), by_lower.get("xl/workbook.xml")
    if rels_info is None or book_info is None:
        return {}
    try:
        rels = ElementTree.fromstring(b"".join(_chunks(zf, rels_info, xml=True)))
        book = ElementTree.fromstring(b"".join(_chunks(zf, book_info, xml=True)))
    except (ElementTree.ParseError, ValueError):
        return {}
    targets = {rel.get("Id"): rel.get("Target") or "" for rel in rels}
    out: dict[str, str] = {}
    for sheet in book.iter(f"{_MAIN_NS}sheet"):
        for candidate in _resolve(targets.get(sheet.get(f"{_REL_NS}id"), "")):
            info = by_lower.get(candidate.lower())
            if info is not None:
                out[sheet.get("name") or ""] = info.filename
                break
    return out


def _check_shared_strings(zf: zipfile.ZipFile, infos: list[zipfile.ZipInfo], parts: dict[str, bytes],
                          names: dict[str, str], limits: ReadLimits) -> None:
    """Refuse a workbook whose shared strings, expanded into the cells that use them, exceed limits.max_text_bytes:
    the reader copies a shared string into every cell that refers to it (one 3 MB string in 300 cells: 900 MB, a
    MemoryError and a panic in the reader). Each string's size is bounded by its XML's (an upper bound)."""
    for info in infos:
        if not info.filename.lower().endswith("sharedstrings.xml") or info.file_size == 0:
            continue
        if not any(info.file_size * content.count(b"v>") > limits.max_text_bytes for content in parts.values()):
            continue  # even if every value were the whole part: within the limit
        import numpy as np

        sst = b"".join(_chunks(zf, info, xml=True))
        starts = np.array([m.start() for m in _SI.finditer(sst)] + [len(sst)], dtype=np.int64)
        sizes = np.diff(starts)
        total, worst, worst_part, worst_refs = 0, 0, "", 0
        for part, content in parts.items():
            refs = np.array([int(i) for i in _S_CELL.findall(content)], dtype=np.int64)
            refs = refs[refs < len(sizes)]
            expanded = int(sizes[refs].sum()) if len(refs) else 0
            total += expanded
            if expanded > worst:
                worst, worst_part, worst_refs = expanded, part, len(refs)
        if total > limits.max_text_bytes:
            sheet = names.get(worst_part, worst_part)
            raise ReadError("file.suspicious", f"工作表「{sheet[:80]}」的 {worst_refs:,} 個儲存格引用共用字串，"
                            f"展開後達 {_mb(total)}，上限 {_mb(limits.max_text_bytes)}")


def _chunks(zf: zipfile.ZipFile, info: zipfile.ZipInfo, xml: bool) -> Iterator[bytes]:
    """A member's decompressed content in pieces that each end before a "<" (so no tag is cut in two),
    refusing an XML part that holds a DOCTYPE or ENTITY declaration; damage becomes a ReadError."""
    needles: list[bytes] = []
    carry = tail = b""
    try:
        stream: IO[bytes]
        with zf.open(info) as stream:
            first = True
            while True:
                chunk = stream.read(CHUNK)
                if not chunk:
                    break
                if first and xml:
                    needles = _needles(chunk)
                first = False
                for needle in needles:
                    if needle in chunk or needle in tail + chunk[:32]:  # the seam, without copying the chunk
                        raise ReadError(
                            "file.suspicious", f"「{info.filename}」含 XML 實體宣告（DOCTYPE/ENTITY）"
                        )
                tail = chunk[-32:]
                buffer = carry + chunk
                cut = buffer.rfind(b"<")
                if cut < 0 or len(buffer) - cut > CHUNK:
                    cut = len(buffer)
                yield buffer[:cut]
                carry = buffer[cut:]
            if carry:
                yield carry
    except ReadError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise ReadError("file.corrupt", f"「{info.filename}」資料損毀") from exc
    except NotImplementedError as exc:
        raise ReadError("file.corrupt", f"「{info.filename}」使用不支援的壓縮方式") from exc
    except RuntimeError as exc:  # encrypted zip member
        raise ReadError("file.encrypted", f"「{info.filename}」以密碼加密") from exc


def _needles(first_chunk: bytes) -> list[bytes]:
    plain = [b"<!DOCTYPE", b"<!ENTITY"]
    if first_chunk.startswith(codecs.BOM_UTF16_LE) or first_chunk[:4] == b"<\x00?\x00":
        return [n.decode().encode("utf-16-le") for n in plain]
    if first_chunk.startswith(codecs.BOM_UTF16_BE) or first_chunk[:4] == b"\x00<\x00?":
        return [n.decode().encode("utf-16-be") for n in plain]
    return plain


# --- properties -----------------------------------------------------------------------------------

def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _properties(zf: zipfile.ZipFile, kind: str) -> dict[str, str]:
    """Custom document properties, name -> text; {} when there are none or they cannot be parsed."""
    try:
        if kind == "ods":
            return _ods_properties(zf)
        return _ooxml_properties(zf)
    except (ElementTree.ParseError, KeyError, UnicodeDecodeError, ValueError, RuntimeError, zlib.error):
        return {}


def _ooxml_properties(zf: zipfile.ZipFile) -> dict[str, str]:
    names = set(zf.namelist())
    part = "docProps/custom.xml"
    if "_rels/.rels" in names:
        rels = ElementTree.fromstring(zf.read("_rels/.rels"))
        for rel in rels:
            if rel.get("Type", "").endswith("/custom-properties") and rel.get("Target"):
                part = rel.get("Target", part).lstrip("/")
    if part not in names:
        return {}
    root = ElementTree.fromstring(zf.read(part))
    properties: dict[str, str] = {}
    for prop in root:
        name = prop.get("name")
        if _local(prop.tag) != "property" or name is None:
            continue
        values = list(prop)
        properties[name] = "".join(values[0].itertext()) if values else ""
    return properties


def _ods_properties(zf: zipfile.ZipFile) -> dict[str, str]:
    if "meta.xml" not in zf.namelist():
        return {}
    root = ElementTree.fromstring(zf.read("meta.xml"))
    name_attr = "{urn:oasis:names:tc:opendocument:xmlns:meta:1.0}name"
    return {
        element.get(name_attr, ""): "".join(element.itertext())
        for element in root.iter()
        if _local(element.tag) == "user-defined" and element.get(name_attr)
    }


# --- reading --------------------------------------------------------------------------------------

def read_book(data: bytes, limits: ReadLimits = ReadLimits()) -> Book:
    """Read a returned file's bytes; ReadError (with a catalogue code) for anything that cannot be read."""
    try:
        with _stderr_muted():
            return _read_book(data, limits)
    except ReadError:
        raise
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # a safety net: no file may escape with anything but a ReadError
        raise _reader_error(exc) from exc


@contextlib.contextmanager
def _stderr_muted() -> Iterator[None]:
    """File descriptor 2 sent to /dev/null while a file is read: a panic in the Rust reader (pyo3 prints the message
    and a backtrace before raising PanicException, or before aborting on an allocation failure) must not reach the
    console that started the worker; the panic's message still reaches the finding."""
    try:
        saved = os.dup(2)
    except OSError:  # no stderr to protect
        yield
        return
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, 2)
        finally:
            os.close(null)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _read_book(data: bytes, limits: ReadLimits) -> Book:
    if not data:
        raise ReadError("file.empty", "0 位元組")
    if len(data) > limits.max_bytes:
        raise ReadError("file.too_large", f"{_mb(len(data))}，上限 {_mb(limits.max_bytes)}")
    found = _sniff(data)
    if found.kind == "encrypted" and not found.broken:
        data = decrypt_if_default(data, limits.default_password)
        found = _sniff(data)
        if found.kind == "encrypted":
            raise ReadError("file.encrypted", "設有開啟密碼")
    if found.broken:
        raise ReadError("file.corrupt", found.detail)
    if found.kind not in KINDS_READ:
        raise ReadError("file.not_spreadsheet", found.detail)
    if found.kind == "xls" and data[:8] != OLE_MAGIC:
        raise ReadError("file.reader_failed", found.detail)
    properties: dict[str, str] = {}
    parts: dict[str, bytes] = {}
    members: dict[str, str] = {}
    repair: _Repairer | None = None
    if found.kind in ZIP_KINDS:
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                parts, members = _check_package(zf, found.kind, limits)
                properties = _properties(zf, found.kind)
                if found.kind in ("xlsx", "xlsm"):
                    repair = _Repairer(data, members, parts)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
            raise ReadError("file.corrupt", "ZIP 結構損毀") from exc
    sheets = _read_sheets(data, limits, repair)
    return Book(found.kind, properties, sheets, parts, repair.findings if repair else [], members)


def _read_sheets(data: bytes, limits: ReadLimits, repair: _Repairer | None = None) -> list[Sheet]:
    import python_calamine as calamine

    try:
        workbook = calamine.CalamineWorkbook.from_filelike(io.BytesIO(data))
    except BaseException as exc:
        raise _reader_error(exc) from exc
    def visibility(value: Any) -> str:
        if value == calamine.SheetVisibleEnum.Hidden:
            return "hidden"
        return "veryhidden" if value == calamine.SheetVisibleEnum.VeryHidden else "visible"

    sheets: list[Sheet] = []
    cells = 0
    with workbook:
        for meta in workbook.sheets_metadata:
            visible = visibility(meta.visible)
            try:
                grid = workbook.get_sheet_by_name(meta.name)
            except BaseException as exc:
                if meta.typ != calamine.SheetTypeEnum.WorkSheet and isinstance(exc, Exception):
                    sheets.append(Sheet(meta.name, visible, 1, 1, [], []))
                    continue  # a chart or dialog sheet without cells calamine can give
                # one malformed cell (or row number, or dimension) need not cost the whole sheet: read it repaired
                repaired = repair.sheet(meta.name) if repair and isinstance(exc, calamine.CalamineError) else None
                if repaired is None:
                    raise _reader_error(exc) from exc
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
                raise _reader_error(exc) from exc
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
                    edits.append((m.start(), m.end(), _R_ATTR.sub(b"", tag, count=1)))
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
            address = _label(row, col)
            edits.append((m.start(), m.end(), b"<" + m.group("p") + b'c r="' + address.encode() + b'"/>'
                          if col <= 18_278 else b""))
            cells.append((address, problem, text or ""))
    pieces, last = [], 0
    for begin, end, replacement in edits:
        pieces += [xml[last:begin], replacement]
        last = end
    pieces.append(xml[last:])
    return _Repaired(b"".join(pieces), cells, structure)


class _Repairer:
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
        import python_calamine as calamine

        member = self.members.get(name)
        if member is None or member not in self.parts:
            return None
        fixed = _repair(self.parts[member], self._shared_count())
        if not fixed.cells and not fixed.structure:
            return None
        data = _replaced(self.data, member, fixed.xml)
        try:
            workbook = calamine.CalamineWorkbook.from_filelike(io.BytesIO(data))
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

    def _shared_count(self) -> int:
        """How many shared strings there are (in the largest part that can hold them; 0 when there is none)."""
        counts = [0]
        with zipfile.ZipFile(io.BytesIO(self.data)) as zf:
            for info in zf.infolist():
                if info.filename.lower().endswith("sharedstrings.xml"):
                    counts.append(len(_SI.findall(b"".join(_chunks(zf, info, xml=True)))))
        return max(counts)

    def close(self) -> None:
        for workbook in self.opened:
            with contextlib.suppress(Exception):
                workbook.close()


def _replaced(data: bytes, member: str, content: bytes) -> bytes:
    """The package with one member's content replaced (stored uncompressed: it is read once, here)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as target:
        for info in source.infolist():
            target.writestr(info.filename, content if info.filename == member else source.read(info))
    return out.getvalue()


def _reader_error(exc: BaseException) -> ReadError:
    """Map what the reader raised to a ReadError (KeyboardInterrupt and SystemExit pass through)."""
    import python_calamine as calamine

    if isinstance(exc, KeyboardInterrupt | SystemExit):
        raise exc
    message = " ".join(str(exc).split())[:120]
    if isinstance(exc, calamine.PasswordError):
        return ReadError("file.encrypted", "設有密碼")
    if isinstance(exc, MemoryError):
        return ReadError("file.reader_failed", "記憶體不足")
    if isinstance(exc, calamine.CalamineError | ValueError | OSError | UnicodeError | zipfile.BadZipFile):
        return ReadError("file.corrupt", f"內容無法解析：{message}" if message else "內容無法解析")
    # pyo3's PanicException (a BaseException) and anything unexpected: the reader itself failed.
    return ReadError("file.reader_failed", f"{type(exc).__name__}: {message}")


# --- cells the reader sees as empty: formulas without a saved result, Excel error values ----------------------------
_CELL = re.compile(rb"<c\b([^>]*?)(/?)>")
_CELL_BODY_END = re.compile(rb"</c>")
_REF = re.compile(rb"""\br\s*=\s*(["'])([A-Za-z]{1,3}[0-9]{1,7})\1""")
_FORMULA = re.compile(rb"<f\b[^>]*?(?:/>|>(.*?)</f>)", re.S)
_VALUE = re.compile(rb"<v>\s*[^<\s]")


@dataclass
class Unread:
    """The cells of an .xlsx/.xlsm the reader sees as empty though they are not, by sheet name, then A1 address."""

    formulas: dict[str, dict[str, str]] = field(default_factory=dict)  # a formula with no saved result: its text
    errors: dict[str, dict[str, tuple[str, str]]] = field(default_factory=dict)  # an Excel error: (formula, value)


def unread_cells(book: Book) -> Unread:
    """Formulas without a saved result (a workbook written by a program, never opened in Excel) and Excel error values
    (#DIV/0!, #N/A ..., computed by Excel or typed), in one pass over each sheet's XML as the package check kept it."""
    out = Unread()
    for name, member in book.members.items():
        xml = book.parts.get(member, b"")
        if b"<f" not in xml and b"<v>#" not in xml:
            continue
        formulas, errors = _unread(xml)
        if formulas:
            out.formulas[name] = formulas
        if errors:
            out.errors[name] = errors
    return out


_ERROR_CELL = re.compile(rb"""\bt\s*=\s*["']e["']""")
_ERROR_VALUE = re.compile(rb"<v>\s*(#[A-Z0-9/!?]{2,8})\s*</v>")


def _unread(xml: bytes) -> tuple[dict[str, str], dict[str, tuple[str, str]]]:
    """In one sheet's XML: {address: formula} of the cells with an <f> and no <v> holding something, and
    {address: (formula or "", error value)} of the cells of type "e"."""
    formulas: dict[str, str] = {}
    errors: dict[str, tuple[str, str]] = {}
    for cell in _CELL.finditer(xml):
        if cell.group(2):  # <c .../>: empty
            continue
        end = _CELL_BODY_END.search(xml, cell.end())
        if end is None:
            break
        body = xml[cell.end():end.start()]
        ref = _REF.search(cell.group(1))
        if ref is None:
            continue
        address = ref.group(2).decode().upper()
        formula = _FORMULA.search(body)
        text = html.unescape((formula.group(1) or b"").decode("utf-8", "replace")) if formula else ""
        error = _ERROR_VALUE.search(body) if _ERROR_CELL.search(cell.group(1)) else None
        if error is not None:
            errors[address] = ("=" + text if text else "", error.group(1).decode("ascii"))
        elif formula is not None and not _VALUE.search(body):
            formulas[address] = "=" + text if text else "（共用公式）"
    return formulas, errors

