"""Read a returned file's bytes safely into a Book of raw cell values with their Excel positions."""

# How (and what was measured): collect.xlsx.guard checks a package before any reader parses it, and
# collect.xlsx.reader reads the cells with python-calamine. Here: the file's type from its content (never its
# name), the default-password decryption, the Book, and the cells the reader sees as empty though they are not.

from __future__ import annotations

import codecs
import contextlib
import csv
import html
import io
import os
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from collect.findings import Finding
from collect.xlsx.guard import ReadError, ReadLimits, mb, package_facts, zip_kind
from collect.xlsx.reader import Repairer, Sheet, read_sheets, reader_error

__all__ = ["KINDS_READ", "Book", "ReadError", "ReadLimits", "Sheet", "Unread", "decrypt_if_default", "read_book",
           "sniff", "unread_cells"]

KINDS_READ = ("xlsx", "xlsm", "xlsb", "xls", "ods")
ZIP_KINDS = ("xlsx", "xlsm", "xlsb", "ods")
OLE_MAGIC = bytes.fromhex("d0cf11e0a1b11ae1")
_DEFAULT_LIMITS = ReadLimits()



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
        return _Sniffed(*zip_kind(data))
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


# --- reading --------------------------------------------------------------------------------------

def read_book(data: bytes, limits: ReadLimits = _DEFAULT_LIMITS) -> Book:
    """Read a returned file's bytes; ReadError (with a catalogue code) for anything that cannot be read."""
    try:
        with _stderr_muted():
            return _read_book(data, limits)
    except ReadError:
        raise
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # a safety net: no file may escape with anything but a ReadError
        raise reader_error(exc) from exc


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
        raise ReadError("file.too_large", f"{mb(len(data))}，上限 {mb(limits.max_bytes)}")
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
    repair: Repairer | None = None
    if found.kind in ZIP_KINDS:
        parts, members, properties = package_facts(data, found.kind, limits)
        if found.kind in ("xlsx", "xlsm"):
            repair = Repairer(data, members, parts)
    sheets = read_sheets(data, limits, repair)
    return Book(found.kind, properties, sheets, parts, repair.findings if repair else [], members)


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

