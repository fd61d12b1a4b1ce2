"""Parse one incoming message's raw bytes into its sender, threading ids and candidate workbooks."""

from __future__ import annotations

import binascii
import email
import email.policy
import email.utils
import hashlib
import quopri
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import Message
from typing import Any, Literal
from urllib.parse import unquote_to_bytes

import tnefparse

from collect.xlsx.archive import ZIP_ERRORS, Archive, Member

Via = Literal["direct", "forwarded", "tnef", "zip"]

WORKBOOK_EXTENSIONS: tuple[str, ...] = (".xlsx", ".xlsm", ".xls", ".ods", ".xlsb")
WORKBOOK_CONTENT_TYPES: dict[str, str] = {
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".xlsm": "application/vnd.ms-excel.sheet.macroEnabled.12",
    ".xls": "application/vnd.ms-excel",
    ".ods": "application/vnd.oasis.opendocument.spreadsheet",
    ".xlsb": "application/vnd.ms-excel.sheet.binary.macroEnabled.12",
}

# Limits. Nesting of multiparts and forwarded messages; zip bombs.
MAX_DEPTH = 12
ZIP_MAX_MEMBERS = 200
ZIP_MAX_RATIO = 100  # uncompressed / compressed, per member
ZIP_TOTAL_FACTOR = 4  # all members together may declare at most this many times max_attachment_bytes
ZIP_MAX_DEPTH = 3  # a zip inside a zip inside a zip is opened; one level deeper is not

_SIGNATURE_TYPES = frozenset({
    "application/pkcs7-signature", "application/x-pkcs7-signature", "application/pgp-signature",
    "application/pgp-keys", "text/vcard", "text/x-vcard", "text/directory",
})
_SIGNATURE_EXTENSIONS = (".p7s", ".asc", ".sig", ".vcf", ".gpg", ".pgp")
_TNEF_TYPES = frozenset({"application/ms-tnef", "application/vnd.ms-tnef"})
_ZIP_TYPES = frozenset({"application/zip", "application/x-zip-compressed", "application/x-zip"})
_MESSAGE_TYPES = frozenset({"message/rfc822", "message/global"})
_IMAGE_EXTENSIONS = (
    ".png", ".jpg", ".jpeg", ".gif", ".bmp", ".emf", ".wmf", ".tif", ".tiff", ".webp", ".heic", ".svg",
)
# Names with one of these extensions are what they say; anything else (no extension, .dat, .bin, odd
# ones) is sniffed. Sniffing a .doc or .msg could find an embedded workbook's stream names, hence the list.
_OTHER_EXTENSIONS = frozenset({
    ".pdf", ".doc", ".docx", ".docm", ".dot", ".dotx", ".ppt", ".pptx", ".pps", ".ppsx", ".odt", ".odp",
    ".odg", ".rtf", ".txt", ".csv", ".htm", ".html", ".xml", ".json", ".msg", ".eml", ".ics", ".vsd",
    ".vsdx", ".pub", ".mpp", ".odf", ".hwp", ".7z", ".rar", ".gz", ".tar", ".exe", ".dll", ".js",
    ".mp3", ".mp4", ".wav", ".avi", ".mov", ".zip", ".p7m", ".odb",
    *_IMAGE_EXTENSIONS, *_SIGNATURE_EXTENSIONS,
})
_OLE_WORKBOOK = re.compile(rb"(?i)(?:w\x00o\x00r\x00k\x00)?b\x00o\x00o\x00k\x00\x00\x00")
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


@dataclass(frozen=True)
class Attachment:
    """One candidate workbook found in a message."""

    filename: str  # decoded, best effort; a nameless one gets "附件<n>.<ext>"
    data: bytes
    content_type: str
    via: Via  # "direct" | "forwarded" (inside message/rfc822) | "tnef" (winmail.dat) | "zip"


@dataclass(frozen=True)
class Skipped:
    """One part of a message that is not taken as a workbook, with why."""

    filename: str
    reason: str  # inline-image | signature | too-large | tnef-failed | zip-failed | not-workbook


@dataclass(frozen=True)
class Incoming:
    """What one received message says: who, when, which thread, and its candidate workbooks."""

    message_id: str
    sender: str
    sender_name: str
    subject: str
    date: datetime | None
    references: tuple[str, ...]
    attachments: tuple[Attachment, ...]
    skipped: tuple[Skipped, ...]
    auth_results: tuple[str, ...] = ()  # every Authentication-Results header, topmost (latest added) first


def is_workbook_name(name: str) -> bool:
    """True when the file name ends in a workbook extension (.xlsx .xlsm .xls .ods .xlsb), any case."""
    return name.strip().lower().endswith(WORKBOOK_EXTENSIONS)


def sniff_workbook(data: bytes) -> str | None:
    """The workbook extension the bytes look like (".xlsx", ".xlsm", ".xlsb", ".ods", ".xls"), else None."""
    if data[:4] == b"PK\x03\x04":
        try:
            with Archive(data) as zf:
                names = zf.names()
                if "xl/workbook.bin" in names:
                    return ".xlsb"
                if "xl/workbook.xml" in names:
                    return ".xlsm" if "xl/vbaProject.bin" in names else ".xlsx"
                if ("mimetype" in names and zf.size("mimetype") < 200
                        and zf.read("mimetype").strip() == b"application/vnd.oasis.opendocument.spreadsheet"):
                    return ".ods"
                manifest = "META-INF/manifest.xml"
                if (manifest in names and zf.size(manifest) < 1_000_000
                        and b"opendocument.spreadsheet" in zf.read(manifest)):
                    return ".ods"
                ct = "[Content_Types].xml"
                if ct in names and zf.size(ct) < 1_000_000:
                    types = zf.read(ct)
                    if b"spreadsheetml.sheet.main" in types:
                        return ".xlsx"
                    if b"sheet.macroEnabled.main" in types:
                        return ".xlsm"
        except ZIP_ERRORS:
            return None
        return None
    if data[:8] == _OLE_MAGIC:
        # Directory entries hold stream names in UTF-16LE, null-padded, in any case.
        if _OLE_WORKBOOK.search(data):
            return ".xls"
        if "EncryptedPackage\0".encode("utf-16-le") in data:
            return ".xlsx"  # an encrypted OOXML file; reading it later says so
        return None
    if data[:2] in (b"\x09\x00", b"\x09\x02", b"\x09\x04") and 4 <= int.from_bytes(data[2:4], "little") <= 16:
        return ".xls"  # a bare BIFF2-4 stream (Excel 2.x-4.0), no OLE container
    return None


def parse_message(raw: bytes, *, max_attachment_bytes: int = 25_000_000) -> Incoming:
    """Parse raw RFC 5322 bytes once; never raises on odd or broken content."""
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    message_id = _first_id(_header_text(msg, "message-id")) or f"sha256:{hashlib.sha256(raw).hexdigest()}"
    sender_name, sender = _address(_header_text(msg, "from"))
    refs: list[str] = []
    for header in ("in-reply-to", "references"):
        for ref in _ids(_header_text(msg, header)):
            if ref not in refs:
                refs.append(ref)
    collector = _Collector(max_attachment_bytes)
    collector.walk(msg, "direct", 0)
    return Incoming(
        message_id=message_id,
        sender=sender,
        sender_name=sender_name,
        subject=_decode_words(_header_text(msg, "subject") or ""),
        date=_date(_header_text(msg, "date")),
        references=tuple(refs),
        attachments=tuple(collector.attachments),
        skipped=tuple(collector.skipped),
        auth_results=tuple(_header_texts(msg, "authentication-results")),
    )


# ---------------------------------------------------------------------------- sender authentication (RFC 8601)


@dataclass(frozen=True)
class AuthResult:
    """One method's result in an Authentication-Results header: "dmarc" "fail", with its properties
    ({"header.from": "example.test"})."""

    method: str
    result: str
    props: dict[str, str]


def parse_auth_results(value: str) -> tuple[str, list[AuthResult]]:
    """An Authentication-Results header's authserv-id (lower case) and its results; comments dropped."""
    text = value
    while True:
        stripped = re.sub(r"\([^()]*\)", " ", text)
        if stripped == text:
            break
        text = stripped
    parts = [p.strip() for p in text.split(";")]
    head = parts[0].split()
    authserv = head[0].lower() if head else ""
    results: list[AuthResult] = []
    for part in parts[1:]:
        tokens = part.split()
        if not tokens or "=" not in tokens[0]:
            continue  # "none": no method applied
        method, result = tokens[0].split("=", 1)
        props = {}
        for token in tokens[1:]:
            if "=" in token:
                key, val = token.split("=", 1)
                props[key.lower()] = val.strip('"').lower()
        results.append(AuthResult(method.split("/")[0].lower(), result.strip('"').lower(), props))
    return authserv, results


def _domain_of(address: str) -> str:
    return address.rsplit("@", 1)[-1].lower() if "@" in address else address.lower()


def _aligned(one: str, other: str) -> bool:
    """Relaxed alignment (RFC 7489): the same domain, or one a subdomain of the other."""
    one, other = one.lower().rstrip("."), other.lower().rstrip(".")
    return bool(one and other) and (one == other or one.endswith("." + other) or other.endswith("." + one))


def authentication_failure(inc: Incoming, trusted: str) -> str | None:
    """Why the office's own mail server found the From address forged, else None.

    Only the topmost Authentication-Results header whose authserv-id is `trusted` ([mail] trust_authserv_id)
    counts: the receiving server puts its own on top (and must remove any a sender forged with its id), so
    others, added by senders or servers on the way, are ignored. Failed: dmarc=fail for the sender's domain, or
    spf=fail for it with no aligned dkim=pass."""
    if not trusted or not inc.sender:
        return None
    domain = _domain_of(inc.sender)
    for value in inc.auth_results:
        authserv, results = parse_auth_results(value)
        if authserv != trusted.lower():
            continue
        for r in results:
            if r.method == "dmarc" and r.result == "fail" and _aligned(r.props.get("header.from", domain), domain):
                return f"dmarc=fail for {domain}"
        dkim_pass = any(r.method == "dkim" and r.result == "pass"
                        and _aligned(r.props.get("header.d", r.props.get("header.i", "").lstrip("@")), domain)
                        for r in results)
        for r in results:
            if r.method == "spf" and r.result == "fail" and not dkim_pass:
                checked = _domain_of(r.props.get("smtp.mailfrom", "") or r.props.get("smtp.helo", "") or domain)
                if _aligned(checked, domain):
                    return f"spf=fail for {domain}, no DKIM pass"
        return None
    return None


# --------------------------------------------------------------------------------------------- headers


def _raw_header(part: Message, name: str) -> bytes | None:
    """The first header of that name as the bytes that arrived, unfolded (8-bit bytes kept)."""
    for key, value in part.raw_items():
        if key.lower() == name:
            text = value if isinstance(value, str) else str(value)
            return re.sub(rb"\r?\n(?=[ \t])", b"", text.encode("utf-8", "surrogateescape"))
    return None


def _header_texts(part: Message, name: str) -> list[str]:
    """Every header of that name, decoded and unfolded, in the order they stand."""
    found = []
    for key, value in part.raw_items():
        if key.lower() == name:
            text = value if isinstance(value, str) else str(value)
            raw = re.sub(rb"\r?\n(?=[ \t])", b"", text.encode("utf-8", "surrogateescape"))
            found.append(_decode_bytes(raw).strip())
    return found


def _header_text(part: Message, name: str) -> str | None:
    value = _raw_header(part, name)
    return None if value is None else _decode_bytes(value).strip()


_BIG5_NAMES = frozenset({
    "big5", "big-5", "x-big5", "cn-big5", "cp950", "ms950", "windows-950", "big5-hkscs", "big5hkscs",
})
_SINGLE_BYTE = re.compile(r"^(us-)?ascii$|^iso-?8859|^latin|^(windows|cp)-?125\d$")


def _charset_chain(charset: str | None) -> list[str]:
    cs = (charset or "").strip().strip('"').lower().split("*")[0]
    chain: list[str] = []
    if cs in _BIG5_NAMES:
        chain = ["cp950", "big5hkscs"]
    elif cs in {"gb2312", "gbk", "x-gbk", "cp936", "euc-cn", "gb18030"}:
        chain = ["gb18030"]
    elif cs in {"", "unknown-8bit", "x-unknown", "unknown", "default"}:
        chain = []
    elif _SINGLE_BYTE.search(cs):
        chain = ["utf-8", cs]  # mislabelled UTF-8 is far more common than real Latin-1 in names
    else:
        chain = [cs]
    return [*chain, "utf-8", "cp950", "big5hkscs", "gb18030"]


def _decode_bytes(data: bytes, charset: str | None = None) -> str:
    """Decode with the declared charset, else UTF-8, else Big5 (cp950), else GB18030; never raises."""
    if data.isascii():
        return data.decode("ascii")
    for codec in _charset_chain(charset):
        try:
            return data.decode(codec)
        except (LookupError, ValueError, TypeError):  # unknown or bogus charset names too
            continue
    return data.decode("utf-8", "replace")


_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=")


def _word_bytes(encoding: str, text: str) -> bytes | None:
    try:
        if encoding in "bB":
            text = text.rstrip("=")
            return binascii.a2b_base64(text + "=" * (-len(text) % 4))
        return quopri.decodestring(text.replace("_", " ").encode("ascii"), header=False)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return None


def _decode_words(text: str) -> str:
    """Decode RFC 2047 encoded words anywhere in text (also inside quotes, as Outlook writes them).

    Adjacent words in one charset are joined before decoding, so a character split across two words
    (a common encoder bug) comes back whole.
    """
    out: list[str] = []
    pending = b""
    pending_cs: str | None = None
    pos = 0
    previous_was_word = False
    for match in _ENCODED_WORD.finditer(text):
        gap = text[pos:match.start()]
        decoded = _word_bytes(match.group(2), match.group(3))
        if decoded is None:
            continue  # left as it is: it stays inside the next gap
        charset = match.group(1).split("*")[0].lower()
        if gap and not (previous_was_word and gap.isspace()):
            if pending:
                out.append(_decode_bytes(pending, pending_cs))
                pending = b""
            out.append(gap)
        if pending and charset != pending_cs:
            out.append(_decode_bytes(pending, pending_cs))
            pending = b""
        pending += decoded
        pending_cs = charset
        pos = match.end()
        previous_was_word = True
    if pending:
        out.append(_decode_bytes(pending, pending_cs))
    out.append(text[pos:])
    return "".join(out).replace("\r", "").replace("\n", "")


_PARAM = re.compile(rb';\s*([^\s=;"]+)\s*=\s*("(?:[^"\\]|\\.)*"?|[^;]*)', re.S)


def _params(header: bytes | None) -> dict[str, bytes]:
    """Parameters of a MIME header as raw bytes, names lower-cased, quotes removed."""
    params: dict[str, bytes] = {}
    if not header:
        return params
    for match in _PARAM.finditer(header):
        key = match.group(1).decode("ascii", "replace").lower()
        value = match.group(2).strip()
        if value.startswith(b'"'):
            value = value[1:-1] if value.endswith(b'"') and len(value) > 1 else value[1:]
            # Unescape only \" and \\: a Big5 character's second byte may be a bare 0x5C.
            value = re.sub(rb'\\(["\\])', rb"\1", value)
        params.setdefault(key, value)
    return params


def _extended(value: bytes) -> tuple[str | None, bytes]:
    """Split an RFC 2231 value charset'language'%XX into its charset and decoded bytes."""
    parts = value.split(b"'", 2)
    if len(parts) == 3:
        return parts[0].decode("ascii", "replace") or None, unquote_to_bytes(parts[2])
    return None, unquote_to_bytes(value)


def _param_text(params: dict[str, bytes], base: str) -> str:
    """The decoded value of one parameter: RFC 2231 (continued or not), else plain with RFC 2047 words."""
    pieces: dict[int, tuple[bytes, bool]] = {}
    pattern = re.compile(re.escape(base) + r"\*(\d+)(\*?)$")
    for key, value in params.items():
        match = pattern.match(key)
        if match:
            pieces[int(match.group(1))] = (value, bool(match.group(2)))
    if pieces:
        charset: str | None = None
        data = b""
        for index in sorted(pieces):
            value, encoded = pieces[index]
            if encoded and index == min(pieces):
                charset, chunk = _extended(value)
            elif encoded:
                chunk = unquote_to_bytes(value)
            else:
                chunk = value
            data += chunk
        return _decode_bytes(data, charset)
    if base + "*" in params:
        charset, data = _extended(params[base + "*"])
        return _decode_bytes(data, charset)
    if base in params:
        return _decode_words(_decode_bytes(params[base]))
    return ""


_UNSAFE = re.compile(r"[\x00-\x1f\x7f]")


def _clean_name(name: str) -> str:
    name = _UNSAFE.sub("", name).strip().strip('"').strip()
    return re.split(r"[\\/]", name)[-1].strip()


def _filename(part: Message) -> str:
    """The attachment's name: Content-Disposition filename, else Content-Type name, decoded."""
    candidates = [
        _param_text(_params(_raw_header(part, "content-disposition")), "filename"),
        _param_text(_params(_raw_header(part, "content-type")), "name"),
    ]
    names = [_clean_name(c) for c in candidates if c and _clean_name(c)]
    if not names:
        try:
            fallback = part.get_filename()
        except Exception:  # the stdlib's parameter parser on a broken header
            fallback = None
        return _clean_name(fallback) if fallback else ""
    clean = [n for n in names if "\ufffd" not in n]
    return (clean or names)[0]


def _first_id(value: str | None) -> str:
    if not value:
        return ""
    ids = _ids(value)
    return ids[0] if ids else value.strip().strip("<>").strip()


def _ids(value: str | None) -> list[str]:
    if not value:
        return []
    found = re.findall(r"<([^<>\s]+)>", value)
    if not found:  # some clients drop the angle brackets
        found = [token for token in value.split() if "@" in token]
    return found


def _address(value: str | None) -> tuple[str, str]:
    if not value:
        return "", ""
    try:
        pairs = email.utils.getaddresses([value])
    except (ValueError, IndexError, TypeError):
        pairs = []
    for name, addr in pairs:
        if addr:
            return _decode_words(name).strip(), addr.strip().lower()
    return "", ""


def _date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (ValueError, TypeError, IndexError, OverflowError):
        return None
    if parsed is None:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


# --------------------------------------------------------------------------------------------- parts


def _extension(name: str) -> str:
    lower = name.strip().lower()
    dot = lower.rfind(".")
    return lower[dot:] if dot > 0 else ""


class _Collector:
    """Walks a message tree once, sorting every leaf into attachments or skipped."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.attachments: list[Attachment] = []
        self.skipped: list[Skipped] = []
        self.count = 0

    def _number(self) -> int:
        self.count += 1
        return self.count

    def skip(self, name: str, reason: str) -> None:
        self.skipped.append(Skipped(filename=name, reason=reason))

    def walk(self, part: Message, via: Via, depth: int) -> None:
        if depth > MAX_DEPTH:
            return
        ctype = part.get_content_type()
        if ctype in _MESSAGE_TYPES:
            for forwarded in _inner_messages(part):
                self.walk(forwarded, "forwarded", depth + 1)
            return
        if part.is_multipart():
            payload = part.get_payload()
            if isinstance(payload, list):
                for sub in payload:
                    if isinstance(sub, Message):
                        self.walk(sub, via, depth + 1)
            return
        name = _filename(part)
        disposition = (_raw_header(part, "content-disposition") or b"").split(b";")[0].strip().lower()
        if part.get_content_maintype() == "text" and not name and disposition != b"attachment":
            return  # a body
        try:
            data = part.get_payload(decode=True)
        except Exception:  # a broken transfer encoding
            data = None
        if not isinstance(data, bytes):
            data = b""
        if name.lower().endswith(".eml"):
            inner: Message | None
            try:
                inner = email.message_from_bytes(data, policy=email.policy.default)
            except Exception:
                inner = None
            if inner is not None and len(inner.keys()) > 0:
                self.walk(inner, "forwarded", depth + 1)
                return
        inline = disposition == b"inline" or _raw_header(part, "content-id") is not None
        self.consider(name, data, ctype, via, inline=inline, depth=depth)

    def consider(self, name: str, data: bytes, ctype: str, via: Via, *, inline: bool, depth: int) -> None:
        """Sort one file: signature, winmail.dat, workbook, zip, image, or something else."""
        number = self._number()
        ext = _extension(name)
        shown = name or f"附件{number}"
        if ctype in _SIGNATURE_TYPES or ext in _SIGNATURE_EXTENSIONS:
            self.skip(shown, "signature")
            return
        if ctype in _TNEF_TYPES or name.lower() == "winmail.dat":
            if len(data) > self.max_bytes:
                self.skip(shown, "too-large")
            else:
                self.tnef(shown, data, depth)
            return
        kind = ext if ext in WORKBOOK_EXTENSIONS else None
        if kind is None and ext not in _OTHER_EXTENSIONS:
            kind = sniff_workbook(data)
        if kind is None and ext == ".zip":
            kind = sniff_workbook(data)  # a workbook renamed .zip is still a workbook
        if kind is not None:
            if len(data) > self.max_bytes:
                self.skip(name or f"附件{number}{kind}", "too-large")
            else:
                self.attachments.append(Attachment(name or f"附件{number}{kind}", data, ctype, via))
            return
        if ext == ".zip" or (ctype in _ZIP_TYPES and not ext):
            if len(data) > self.max_bytes:
                self.skip(shown, "too-large")
            else:
                self.zip(shown, data, 1)
            return
        if ctype.startswith("image/") or ext in _IMAGE_EXTENSIONS or (inline and not name):
            self.skip(shown, "inline-image")
            return
        self.skip(shown, "not-workbook")

    # ------------------------------------------------------------------ zip

    def zip(self, name: str, data: bytes, depth: int) -> None:
        """Take the workbook members of a zip, refusing bombs; nested zips are opened to ZIP_MAX_DEPTH levels, each
        within the same limits on size, ratio and member count."""
        try:
            with Archive(data) as zf:
                infos = [m for m in zf.members() if not _is_junk(m.raw)]
                if len(infos) > ZIP_MAX_MEMBERS:
                    self.skip(name, "zip-failed")
                    return
                budget = ZIP_TOTAL_FACTOR * self.max_bytes
                for info in infos:
                    budget -= self._zip_member(zf, info, budget, depth)
        except ZIP_ERRORS:
            self.skip(name, "zip-failed")

    def _zip_member(self, zf: Archive, info: Member, budget: int, depth: int) -> int:
        """Take or skip one member; returns the bytes read, counted against the whole zip's budget."""
        member = _clean_name(info.name)
        ext = _extension(member)
        if ext == ".zip" and depth >= ZIP_MAX_DEPTH:
            self.skip(member, "zip-failed")  # nested too deep
            return 0
        if ext not in WORKBOOK_EXTENSIONS and ext in _OTHER_EXTENSIONS and ext != ".zip":
            self.skip(member, "not-workbook")
            return 0
        if info.size > self.max_bytes:
            self.skip(member, "too-large")
            return 0
        if info.size > budget:
            self.skip(member, "zip-failed")  # the members together unpack to too much
            return 0
        if info.encrypted:
            self.skip(member, "zip-failed")  # encrypted member
            return 0
        if info.size > 1_000_000 and info.size > ZIP_MAX_RATIO * max(info.compressed, 1):
            self.skip(member, "zip-failed")
            return 0
        try:
            content = zf.read_member(info, self.max_bytes)
        except ZIP_ERRORS:
            self.skip(member, "zip-failed")
            return 0
        if content is None:
            self.skip(member, "zip-failed")
            return 0
        if ext == ".zip" and sniff_workbook(content) is None:
            self.zip(member, content, depth + 1)
            return len(content)
        kind = ext if ext in WORKBOOK_EXTENSIONS else sniff_workbook(content)
        if kind is None:
            self.skip(member, "not-workbook")
            return len(content)
        number = self._number()
        self.attachments.append(Attachment(
            member or f"附件{number}{kind}", content, WORKBOOK_CONTENT_TYPES[kind], "zip"))
        return len(content)

    # ------------------------------------------------------------------ tnef

    def tnef(self, name: str, data: bytes, depth: int) -> None:
        """Take the files inside Outlook's winmail.dat; tnefparse is guarded, with a small fallback."""
        files: list[tuple[str, bytes]] | None
        if depth > MAX_DEPTH:  # a winmail.dat inside a winmail.dat inside ...
            self.skip(name, "tnef-failed")
            return
        try:
            files = _tnef_files(data)
        except Exception:  # tnefparse 1.4 raises on Big5 names and odd blobs
            files = None
        if not files:
            # Nothing from tnefparse: our reader either finds the files or shows the blob is broken
            # (a well-formed winmail.dat holding only a rich-text body gives an empty list).
            try:
                files = _tnef_files_fallback(data)
            except Exception:
                files = None
        if files is None:
            self.skip(name, "tnef-failed")
            return
        for inner_name, content in files:
            ctype = WORKBOOK_CONTENT_TYPES.get(_extension(inner_name), "application/octet-stream")
            self.consider(inner_name, content, ctype, "tnef", inline=False, depth=depth + 1)


def unpack_zip(name: str, data: bytes, *, max_attachment_bytes: int = 25_000_000) -> tuple[
        tuple[Attachment, ...], tuple[Skipped, ...]]:
    """The workbooks inside a zip file that did not come by mail (a folder, the command line, the files backend),
    under the same limits as a zip attachment; with what was left out and why."""
    collector = _Collector(max_attachment_bytes)
    if len(data) > max_attachment_bytes:
        collector.skip(name, "too-large")
    else:
        collector.zip(name, data, 1)
    return tuple(collector.attachments), tuple(collector.skipped)


def _inner_messages(part: Message) -> Iterator[Message]:
    """The message(s) inside a message/rfc822 part, also when sent base64 or quoted-printable."""
    cte = (part.get("Content-Transfer-Encoding") or "").strip().lower()
    payload = part.get_payload()
    if cte in {"base64", "quoted-printable"}:
        # The stdlib parsed the encoded text as a message; turn it back into text and decode it.
        text = b""
        if isinstance(payload, list) and payload and isinstance(payload[0], Message):
            text = payload[0].as_bytes(policy=email.policy.default.clone(linesep="\n"))
        elif isinstance(payload, str):
            text = payload.encode("ascii", "surrogateescape")
        try:
            raw = (binascii.a2b_base64(re.sub(rb"[^A-Za-z0-9+/=]", b"", text)) if cte == "base64"
                   else quopri.decodestring(text))
        except (binascii.Error, ValueError):
            return
        yield email.message_from_bytes(raw, policy=email.policy.default)
        return
    if isinstance(payload, list):
        for item in payload:
            if isinstance(item, Message):
                yield item
    elif isinstance(payload, str) and payload.strip():
        raw = payload.encode("utf-8", "surrogateescape")
        yield email.message_from_bytes(raw, policy=email.policy.default)


def _is_junk(name: str) -> bool:
    base = name.replace("\\", "/").split("/")[-1]
    return name.startswith("__MACOSX/") or base.startswith("._") or base in {".DS_Store", "Thumbs.db"}


def _tnef_files(data: bytes) -> list[tuple[str, bytes]]:
    """Files inside a TNEF blob via tnefparse, decoding the names ourselves (its .name assumes UTF-8)."""
    tnef: Any = tnefparse.TNEF(data, do_checksum=False)
    files: list[tuple[str, bytes]] = []
    titles: list[str] | None = None
    for i, att in enumerate(tnef.attachments):
        name = ""
        for attr in att.mapi_attrs:
            if attr.name == 0x3707:  # PR_ATTACH_LONG_FILENAME
                value = attr.data
                name = value if isinstance(value, str) else _decode_bytes(bytes(value), tnef.codepage)
                break
        if not name:
            # The short title: tnefparse's .name decodes it as UTF-8, which a Big5 (cp950) title is not; then the
            # title as our own reader decodes it, in the message's code page.
            try:
                name = att.name
            except UnicodeDecodeError:
                if titles is None:
                    titles = [title for title, _data in (_tnef_files_fallback(data) or [])]
                name = titles[i] if i < len(titles) else ""
        content = att.data if isinstance(att.data, bytes) else b""
        files.append((_clean_name(name.strip("\x00")), content))
    return files


def _tnef_files_fallback(data: bytes) -> list[tuple[str, bytes]] | None:
    """A minimal TNEF reader for what tnefparse cannot decode: attachment titles and data only."""
    if len(data) < 6 or struct.unpack_from("<I", data, 0)[0] != 0x223E9F78:
        return None
    offset = 6
    codepage: str | None = None
    files: list[list[Any]] = []
    while offset + 9 <= len(data):
        level, name, _kind, length = struct.unpack_from("<BHHI", data, offset)
        body = data[offset + 9: offset + 9 + length]
        offset += 9 + length + 2
        if len(body) < length:
            return None
        if name == 0x9007 and len(body) >= 4:  # OEM code page
            codepage = f"cp{struct.unpack_from('<I', body, 0)[0]}"
        if level != 2:
            continue
        if name == 0x9002:  # attachment rendering data: a new attachment starts
            files.append([b"", b""])
        elif files and name == 0x8010:  # title
            files[-1][0] = body
        elif files and name == 0x800F:  # data
            files[-1][1] = body
    return [(_clean_name(_decode_bytes(title.rstrip(b"\x00"), codepage)), content)
            for title, content in files]

