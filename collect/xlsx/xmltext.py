"""The one policy for characters XML cannot hold: which they are, how they are shown, dropped or found in a part."""

from __future__ import annotations

import codecs
import html
import re
import unicodedata
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape

from collect.findings import cut

# C0 control characters other than tab, line feed and carriage return cannot be in an XML 1.0 part (a raw one makes
# a workbook unopenable), nor can U+FFFE and U+FFFF (not characters).
UNSAFE_CODES = frozenset({*range(0, 9), 11, 12, *range(14, 32), 0xFFFE, 0xFFFF})
UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")

# The documented form, in the annotated copy: each control character shown as its symbol from Unicode's Control
# Pictures block (NUL as ␀, ESC as ␛), which Excel displays and which tells staff what the agency's file held;
# U+FFFE and U+FFFF as �.
_VISIBLE = str.maketrans({**{c: 0x2400 + c for c in UNSAFE_CODES if c < 32}, 0xFFFE: 0xFFFD, 0xFFFF: 0xFFFD})


def shown(text: str) -> str:
    """`text` with every character XML cannot hold replaced by a visible symbol."""
    return text.translate(_VISIBLE)


def dropped(text: str) -> str:
    """`text` without the characters XML cannot hold (for text no one reads back as the agency's: stamps, reports)."""
    return UNSAFE.sub("", text)


def esc(text: str) -> str:
    """`text` shown (shown()) and escaped for an XML text node."""
    return escape(shown(text))


def esc_attr(text: str) -> str:
    """`text` shown (shown()) and escaped for a double-quoted XML attribute."""
    return escape(shown(text), {'"': "&quot;"})


# --- the same characters in the bytes of a part, raw or as character references -------------------------------

_CONTROL_BYTES = bytes(c for c in UNSAFE_CODES if c < 32)
_UNSAFE_REF = rb"&#0*(?:[0-8]|1[124-9]|2[0-9]|3[01]);|&#[xX]0*(?:[0-8bBcCeEfF]|1[0-9a-fA-F]|[fF]{3}[eEfF]);"
_UNSAFE_XML = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f]|\xef\xbf[\xbe\xbf]|" + _UNSAFE_REF)  # U+FFFE/F in UTF-8
_UNSAFE_REF_FOUND = re.compile(_UNSAFE_REF)
_ATTR = re.compile(rb'([\w:.-]+)\s*=\s*(?:"([^"]*)"|\'([^\']*)\')')


class UnreadablePart(Exception):
    """A part whose encoding cannot be made safe (a UTF-16 part that does not decode)."""


def attrs(tag: bytes) -> dict[str, str]:
    """The attributes of a start tag, by qualified name, undecoded apart from UTF-8."""
    return {m[1].decode(): (m[2] if m[2] is not None else m[3]).decode() for m in _ATTR.finditer(tag)}


def set_attrs(tag: bytes, values: dict[str, str]) -> bytes:
    """`tag` (a start tag, maybe self-closing) with these attributes set."""
    for name, value in values.items():
        pattern = re.compile(rb"\s" + re.escape(name.encode()) + rb'\s*=\s*(?:"[^"]*"|\'[^\']*\')')
        new = f' {name}="{value}"'.encode()
        if pattern.search(tag):
            tag = pattern.sub(lambda _m, new=new: new, tag, count=1)  # type: ignore[misc]
        else:
            end = len(tag) - (2 if tag.endswith(b"/>") else 1)
            tag = tag[:end] + new + tag[end:]
    return tag


def drop_attr(tag: bytes, name: str) -> bytes:
    return re.sub(rb"\s" + re.escape(name.encode()) + rb'\s*=\s*(?:"[^"]*"|\'[^\']*\')', b"", tag, count=1)


def _visible(m: re.Match[bytes]) -> bytes:
    found = m[0]
    if found.startswith(b"&#"):
        digits = found[2:-1]
        code = int(digits[1:], 16) if digits[:1] in (b"x", b"X") else int(digits)
    else:
        code = found[0] if len(found) == 1 else 0xFFFF
    return shown(chr(code)).encode()


def has_unsafe(body: bytes) -> bool:
    """Whether an unsafe character, raw or as a reference, is in `body`, found in three quick passes (one regular
    expression search takes 3 times longer)."""
    if len(body.translate(None, _CONTROL_BYTES)) != len(body):
        return True
    return b"\xef\xbf\xbe" in body or b"\xef\xbf\xbf" in body or _UNSAFE_REF_FOUND.search(body) is not None


def text_of(raw: bytes) -> str:
    """The characters of an XML text node (UTF-8, references resolved): by expat (a million references in 0.1 s,
    where a Python callback per reference took 0.8 s), or by html.unescape where expat finds it malformed."""
    try:
        return ET.fromstring(b"<t>" + raw + b"</t>").text or ""
    except ET.ParseError:
        return html.unescape(raw.decode("utf-8", "replace"))


def safe_part(body: bytes, max_chars: int) -> bytes:
    """An XML part with every character XML cannot hold shown visibly (shown()), and text longer than `max_chars`
    cut as findings cut a value (「…（共 N 字）」): in shared and inline strings, comments, and cell values (a long
    number or date becomes that text). Any other node is left as it is."""
    utf16 = body.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or body[:2] in (b"<\x00", b"\x00<")
    if utf16:
        try:
            body = body.decode("utf-16").encode()
        except UnicodeDecodeError as exc:
            raise UnreadablePart("a UTF-16 part that does not decode") from exc
    if has_unsafe(body):
        body = _UNSAFE_XML.sub(_visible, body)
    if re.search(rb">([^<]{%d,})<" % max_chars, body):
        body = _cut_long_text(body, max_chars)
    return body.decode().encode("utf-16") if utf16 else body


def _cut_long_text(body: bytes, max_chars: int) -> bytes:
    pieces: list[bytes] = []
    pos = 0
    for m in re.finditer(rb">([^<]{%d,})<" % max_chars, body):  # bytes: a text of more characters has as many
        text = text_of(m[1])
        if len(text) <= max_chars:
            continue
        opened = body.rfind(b"<", 0, m.start())
        name = re.match(rb"<([\w:.-]+)", body[opened : m.start() + 1])
        local = name[1].rpartition(b":")[2] if name else b""
        if local not in (b"t", b"v"):
            continue  # a formula, a defined name...: not a value shown; left as the agency had it
        new = escape(cut(text, max_chars)).encode()
        if local == b"v":
            cell = max(body.rfind(b"<c ", 0, opened), body.rfind(b"<c>", 0, opened))
            tag_end = body.find(b">", cell) + 1
            tag = body[cell:tag_end]
            if cell < pos or tag_end > opened or tag.endswith(b"/>") or body.find(b"</c>", tag_end, opened) >= 0:
                continue  # not a cell's value (a chart's cache ...)
            if attrs(tag).get("t") not in ("str", "inlineStr"):  # a number, date, boolean... of that length
                pieces += [body[pos:cell], set_attrs(tag, {"t": "str"})]
                pos = tag_end
        pieces += [body[pos : m.start(1)], new]
        pos = m.end(1)
    if not pieces:
        return body
    pieces.append(body[pos:])
    return b"".join(pieces)


def text_width(text: str) -> int:
    """Display width in half-width units: CJK and full-width characters count 2."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)
