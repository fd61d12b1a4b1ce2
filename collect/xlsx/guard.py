"""A workbook package checked before any reader parses it (zip bombs, XML entity declarations, absurd sheet
extents, expanded shared strings), its parts read safely, its custom properties, and what a zip holds."""

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
import io
import posixpath
import re
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO
from xml.etree import ElementTree

from collect.findings import Finding, make
from collect.xlsx.addresses import a1, column_number

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



def zip_kind(data: bytes) -> tuple[str, str, bool]:
    """What a zip package holds: (a read kind or "zip", a short zh-TW description, whether the zip is damaged)."""
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
                    return "xlsb", "Excel 二進位活頁簿", False
                if "xl/workbook.xml" in lower or b"spreadsheetml" in types:
                    macro = b"macroEnabled" in types or "xl/vbaproject.bin" in lower
                    return ("xlsm" if macro else "xlsx"), "Excel 活頁簿", False
                if "word/document.xml" in lower:
                    return "zip", "Word 文件", False
                if "ppt/presentation.xml" in lower:
                    return "zip", "PowerPoint 簡報", False
                return "zip", "其他 Office 文件", False
            mimetype = small("mimetype").strip() if "mimetype" in names else b""
            if not mimetype and "META-INF/manifest.xml" in names:
                manifest = small("META-INF/manifest.xml")
                found = re.search(
                    rb'full-path="/"[^>]*media-type="([^"]+)"|media-type="([^"]+)"[^>]*full-path="/"',
                    manifest,
                )
                mimetype = (found.group(1) or found.group(2)) if found else b""
            if mimetype.startswith(b"application/vnd.oasis.opendocument.spreadsheet"):
                return "ods", "OpenDocument 試算表", False
            if mimetype.startswith(b"application/vnd.oasis.opendocument.text"):
                return "zip", "OpenDocument 文字文件", False
            if mimetype.startswith(b"application/vnd.oasis.opendocument"):
                return "zip", "OpenDocument 文件", False
            if any(n.startswith("Index/") for n in names) or "Index.zip" in names:
                return "zip", "Apple Numbers 試算表", False
            return "zip", "ZIP 壓縮檔，其中沒有 Excel 活頁簿", False
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, NotImplementedError, OSError, KeyError,
            RuntimeError):
        return "zip", "檔案不完整或 ZIP 結構損毀", True


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


def label(row: int, col: int) -> str:
    """A cell's A1 address, or its row and column numbers where it lies beyond column ZZZ (A1 has no letters)."""
    return a1(row, col) if col <= 18_278 else f"第 {row:,} 列第 {col:,} 欄"


def mb(n: float) -> str:
    return f"{n / 1_000_000:,.1f} MB"


def check_package(zf: zipfile.ZipFile, kind: str, limits: ReadLimits) -> tuple[dict[str, bytes], dict[str, str]]:
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
            raise ReadError("file.suspicious", f"「{info.filename}」解壓縮後達 {mb(info.file_size)}")
        if info.file_size > RATIO_FLOOR and info.file_size > limits.max_ratio * max(info.compress_size, 1):
            ratio = info.file_size / max(info.compress_size, 1)
            raise ReadError("file.suspicious", f"「{info.filename}」壓縮比 1:{ratio:,.0f}")
    if total > 2 * limits.max_member_bytes:
        raise ReadError("file.suspicious", f"解壓縮後共 {mb(total)}")
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
        box = value_extent(parts[info.filename])
        if box is None:
            continue
        top, left, bottom, right = box
        extent = (bottom - top + 1) * (right - left + 1)
        shown = f"{label(top, left)}:{label(bottom, right)}"
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
    for buffer in chunks(zf, info, xml):
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
R_ATTR = re.compile(rb'(?<![\w:.-])r\s*=\s*(["\'])(.*?)\1', re.S)
_A1 = re.compile(rb"([A-Za-z]{1,3})([0-9]{1,7})")


def value_extent(xml: bytes) -> tuple[int, int, int, int] | None:
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
        ref = R_ATTR.search(tag.group(2))
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
        rels = ElementTree.fromstring(b"".join(chunks(zf, rels_info, xml=True)))
        book = ElementTree.fromstring(b"".join(chunks(zf, book_info, xml=True)))
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

        sst = b"".join(chunks(zf, info, xml=True))
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
                            f"展開後達 {mb(total)}，上限 {mb(limits.max_text_bytes)}")


def chunks(zf: zipfile.ZipFile, info: zipfile.ZipInfo, xml: bool) -> Iterator[bytes]:
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


def properties(zf: zipfile.ZipFile, kind: str) -> dict[str, str]:
    """Custom document properties, name -> text; {} when there are none or they cannot be parsed."""
    try:
        if kind == "ods":
            return _odsproperties(zf)
        return _ooxmlproperties(zf)
    except (ElementTree.ParseError, KeyError, UnicodeDecodeError, ValueError, RuntimeError, zlib.error):
        return {}


def _ooxmlproperties(zf: zipfile.ZipFile) -> dict[str, str]:
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


def _odsproperties(zf: zipfile.ZipFile) -> dict[str, str]:
    if "meta.xml" not in zf.namelist():
        return {}
    root = ElementTree.fromstring(zf.read("meta.xml"))
    name_attr = "{urn:oasis:names:tc:opendocument:xmlns:meta:1.0}name"
    return {
        element.get(name_attr, ""): "".join(element.itertext())
        for element in root.iter()
        if _local(element.tag) == "user-defined" and element.get(name_attr)
    }


def replaced(data: bytes, member: str, content: bytes) -> bytes:
    """The package with one member's content replaced (stored uncompressed: it is read once)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as target:
        for info in source.infolist():
            target.writestr(info.filename, content if info.filename == member else source.read(info))
    return out.getvalue()


def shared_count(data: bytes) -> int:
    """How many shared strings there are (in the largest part that can hold them; 0 when there is none)."""
    counts = [0]
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        for info in zf.infolist():
            if info.filename.lower().endswith("sharedstrings.xml"):
                counts.append(len(_SI.findall(b"".join(chunks(zf, info, xml=True)))))
    return max(counts)


def package_facts(data: bytes, kind: str,
                  limits: ReadLimits) -> tuple[dict[str, bytes], dict[str, str], dict[str, str]]:
    """check_package and properties on the package's bytes: (parts scanned for cells, {sheet: part}, properties);
    a damaged zip is a ReadError("file.corrupt")."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            parts, members = check_package(zf, kind, limits)
            return parts, members, properties(zf, kind)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
        raise ReadError("file.corrupt", "ZIP 結構損毀") from exc
