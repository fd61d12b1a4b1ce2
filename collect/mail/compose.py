"""Compose outgoing mail whose Chinese subjects and attachment names show correctly in Outlook and webmail."""

from __future__ import annotations

import base64
import email.policy
import email.utils
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.generator import BytesGenerator
from email.headerregistry import Address
from email.message import EmailMessage
from io import BytesIO
from typing import Any
from urllib.parse import quote

XLSX_CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

# CRLF line endings; headers we fold ourselves (attachment names, References) are sent as written. The
# stdlib would otherwise re-encode a quoted `name="=?UTF-8?B?...?="` as RFC 2231, which Outlook ignores.
POLICY = email.policy.SMTP.clone(refold_source="none")

_WORD_BYTES = 45  # 45 bytes -> 60 base64 characters -> a 72-character encoded word (RFC 2047 allows 75)
_SINGLE_LINE_LIMIT = 900  # a filename*= value longer than this is split into RFC 2231 continuations
_RFC2231_SAFE = "!#$&+^`|"  # attribute-char beyond what quote() keeps (letters, digits, _.-~)
_LINE = 78  # RFC 5322's recommended line length: the headers written here stay within it

# Headers are written here already encoded and folded (set_raw), and the generator copies such headers as they
# are. The stdlib's own folding of a Chinese subject or sender name (encoded words sized character by
# character) cost more than all the rest of a receipt. Whatever is not plainly safe to write by hand still
# goes through the stdlib, as before.
_PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9_%+-]+(?:\.[A-Za-z0-9_%+-]+)*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\Z")
_PLAIN_MESSAGE_ID = re.compile(r"<[!-;=?-~]+>\Z")  # printable ASCII, no spaces, no angle brackets inside
_PLAIN_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*\Z")
_PRINTABLE_ASCII = re.compile(r"[ -~]*\Z")
_UNSAFE_TEXT = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")  # control characters and lone surrogates
_NEWLINES = re.compile(r"\r\n|\r|\n")  # what the stdlib generator turns into the policy's line separator


@dataclass(frozen=True)
class OutgoingAttachment:
    """One file to attach to an outgoing message."""

    filename: str
    data: bytes
    content_type: str = XLSX_CONTENT_TYPE


def compose(
    *,
    sender: str,
    to: Sequence[str],
    subject: str,
    text: str,
    html: str | None = None,
    cc: Sequence[str] = (),
    attachments: Sequence[OutgoingAttachment] = (),
    in_reply_to: str | None = None,
    references: Sequence[str] = (),
    message_id: str | None = None,
    domain: str = "collect.example.test",
    date: datetime | None = None,
    sender_name: str | None = None,
) -> EmailMessage:
    """Build a UTF-8 message: text (and html as an alternative), attachments, threading headers.

    Send it with `to_bytes` (or smtplib, which uses the message's own policy): a plain `as_bytes()`
    with the default policy would refold the attachment headers.
    """
    msg = _Part(policy=POLICY)
    _set_from(msg, sender, sender_name)
    _set_addresses(msg, "To", to)
    if cc:
        _set_addresses(msg, "Cc", cc)
    _set_unstructured(msg, "Subject", subject)
    when = date or datetime.now(UTC)
    msg.set_raw("Date", email.utils.format_datetime(when if when.tzinfo else when.astimezone()))
    mid = _angle(message_id) if message_id else email.utils.make_msgid(domain=domain)
    if _PLAIN_MESSAGE_ID.match(mid) and len(mid) <= _SINGLE_LINE_LIMIT:
        msg.said("Message-ID", mid, mid)
    else:
        msg["Message-ID"] = mid
    refs = [_bare(r) for r in references if _bare(r)]
    if in_reply_to and _bare(in_reply_to):
        parent = _bare(in_reply_to)
        msg.set_raw("In-Reply-To", f"<{parent}>")
        if parent in refs:
            refs.remove(parent)
        refs.append(parent)
    if refs:
        msg.set_raw("References", "\r\n ".join(f"<{r}>" for r in refs))

    # The tree, headers and header order that set_content / add_alternative / add_attachment build (MIME-Version
    # included where they put it), built directly: their parsing of every header they set cost more than the rest.
    body = _text_part("plain", text)
    if html is not None:
        body = _multipart("alternative", [body, _text_part("html", html, mime_version=True)])
    if attachments:
        msg.set_raw("MIME-Version", "1.0")
        msg.adopt(_multipart("mixed", [body, *(_attachment_part(att) for att in attachments)]))
    elif html is not None:
        msg.set_raw("MIME-Version", "1.0")
        msg.adopt(body)
    else:
        msg.adopt(body)
        msg.set_raw("MIME-Version", "1.0")
    return msg


def to_bytes(msg: EmailMessage) -> bytes:
    """SMTP-ready bytes: CRLF line endings, every line within 998 bytes, our folded headers kept."""
    fp = BytesIO()
    _Generator(fp, mangle_from_=False, policy=POLICY).flatten(msg)
    return fp.getvalue()


def header_text(msg: EmailMessage, name: str) -> str:
    """`str(msg.get(name, ""))`, without parsing the header again when `compose` wrote it and it is unchanged."""
    if isinstance(msg, _Part):
        known = msg.said_text(name)
        if known is not None:
            return known
    return str(msg.get(name, ""))


def message_id_of(msg: EmailMessage) -> str:
    """The Message-ID without its angle brackets ("" when there is none)."""
    return _bare(header_text(msg, "Message-ID"))


class _Generator(BytesGenerator):
    """The stdlib's BytesGenerator, writing a text body in one call rather than two calls a line.

    The one place that uses the generator's internals (`_write_lines`, `_handle_text`/`_writeBody`, `_NL`,
    `_mangle_from_`): tests/test_mail_compose.py fails loudly when an upgrade of Python renames them.

    The same bytes as `msg.as_bytes(policy=POLICY)` (tests/test_mail_compose.py compares them on composed and on
    received messages): the stdlib splits a body at every line break and writes each line and a line separator,
    which one substitution does as well; for a base64 attachment of 100 KB that loop was most of the writing.
    """

    def _write_lines(self, lines: str) -> None:
        if not lines:
            return
        nl = self._NL  # type: ignore[attr-defined]  # set by flatten()
        self.write(lines.replace("\n", nl) if "\r" not in lines else _NEWLINES.sub(nl, lines))

    def _handle_text(self, msg: EmailMessage) -> None:
        # An ASCII body has no surrogates, so the stdlib writes it as it is, but first parses the message's
        # Content-Transfer-Encoding (in get_payload) only to not use it. A part built here knows its body.
        payload = msg.body if isinstance(msg, _Part) else None
        if payload is not None and payload.isascii() and not self._mangle_from_:  # type: ignore[attr-defined]
            self._write_lines(payload)
        else:
            super()._handle_text(msg)  # type: ignore[misc]

    _writeBody = _handle_text


class _Part(EmailMessage):
    """A message or part built here. It remembers what the headers it wrote say, and answers from that while the
    header is still the very value it wrote: the stdlib parses a header again at every question (the generator
    asks for a part's Content-Type four times, delivery for the Subject, Message-ID and recipients)."""

    _said: dict[str, tuple[Any, str]] | None = None  # lower-case name -> (the raw value written, its text)
    body: str | None = None  # the text payload as set here (None for a multipart, or one set with a charset)
    _ct_type = "text/plain"
    _ct_boundary: str | None = None

    def said(self, name: str, raw: str, text: str) -> None:
        """Write a header as it is (raw), remembering that it reads as `text`."""
        self.set_raw(name, raw)
        if self._said is None:
            self._said = {}
        self._said[name.lower()] = (raw, text)

    def said_text(self, name: str) -> str | None:
        """The remembered text of a header, when its first occurrence is still the value written; else None."""
        known = self._said.get(name.lower()) if self._said else None
        if known is None:
            return None
        lower = name.lower()
        for key, value in self.raw_items():
            if key.lower() == lower:
                return known[1] if value is known[0] else None
        return None

    def set_payload(self, payload: Any, charset: Any = None) -> None:
        super().set_payload(payload, charset)
        self.body = payload if isinstance(payload, str) and charset is None else None

    def typed(self, raw: str, content_type: str, boundary: str | None = None) -> None:
        self.said("Content-Type", raw, content_type)
        self._ct_type, self._ct_boundary = content_type, boundary

    def adopt(self, part: _Part) -> None:
        """Take a part's headers and payload (how make_mixed/make_alternative leave the message itself)."""
        for name, value in part.raw_items():
            self.set_raw(name, value)
        if part._said:
            self._said = {**(self._said or {}), **part._said}
        self._ct_type, self._ct_boundary = part._ct_type, part._ct_boundary
        self.set_payload(part.get_payload())

    def get_content_type(self) -> str:
        return self._ct_type if self.said_text("Content-Type") is not None else super().get_content_type()

    def get_boundary(self, failobj: Any = None) -> Any:
        if self._ct_boundary is not None and self.said_text("Content-Type") is not None:
            return self._ct_boundary
        return super().get_boundary(failobj)


def _text_part(subtype: str, text: str, mime_version: bool = False) -> _Part:
    """What set_content(text, subtype, charset="utf-8", cte="base64") writes: CRLF lines, base64, 76 a line."""
    part = _Part(policy=POLICY)
    part.typed(f'text/{subtype}; charset="utf-8"', f"text/{subtype}")
    part.set_raw("Content-Transfer-Encoding", "base64")
    if mime_version:
        part.set_raw("MIME-Version", "1.0")
    part.set_payload(_base64_lines(b"\r\n".join(text.encode("utf-8").splitlines()) + b"\r\n"))
    return part


def _attachment_part(att: OutgoingAttachment) -> _Part:
    """Base64, 76 characters a line; the name twice: RFC 2047 in Content-Type, RFC 2231 in Content-Disposition."""
    ods = att.filename.lower().endswith(".ods") and att.content_type == XLSX_CONTENT_TYPE  # an .ods copy or receipt
    content_type = "application/vnd.oasis.opendocument.spreadsheet" if ods else att.content_type
    maintype, _, subtype = content_type.partition("/")
    ctype = f"{maintype or 'application'}/{subtype or 'octet-stream'}"
    name = _safe_name(att.filename)
    raw = f"{ctype};\r\n name={_name_parameter(name)}"
    part = _Part(policy=POLICY)
    part.set_raw("Content-Transfer-Encoding", "base64")
    part.set_raw("MIME-Version", "1.0")
    if _PLAIN_TYPE.match(ctype):
        part.typed(raw, ctype.lower())
    else:  # a content type with parameters of its own ...: the stdlib reads it
        part.set_raw("Content-Type", raw)
    part.set_raw("Content-Disposition", f"attachment;\r\n {_filename_parameter(name)}")
    part.set_payload(_base64_lines(att.data))
    return part


def _multipart(subtype: str, parts: list[_Part]) -> _Part:
    """A multipart whose boundary cannot occur inside it: every body in it is base64 and no header line starts with
    "--", and each boundary is a fresh random token of one length, so none is a prefix of another."""
    boundary = f"=_{secrets.token_hex(16)}"
    part = _Part(policy=POLICY)
    part.typed(f'multipart/{subtype};\r\n boundary="{boundary}"', f"multipart/{subtype}", boundary)
    part.set_payload(parts)
    return part


def _base64_lines(data: bytes) -> str:
    """What base64.encodebytes writes (76 characters a line, each ended by a newline), in fewer steps."""
    if not data:
        return ""
    encoded = base64.b64encode(data)
    return (b"\n".join([encoded[i:i + 76] for i in range(0, len(encoded), 76)]) + b"\n").decode("ascii")


def _set_from(msg: _Part, sender: str, sender_name: str | None) -> None:
    if not _PLAIN_ADDRESS.match(sender):
        msg["From"] = Address(display_name=sender_name, addr_spec=sender) if sender_name else sender
    elif not sender_name:
        msg.set_raw("From", sender)
    elif _PRINTABLE_ASCII.match(sender_name) and sender_name == sender_name.strip():
        shown = str(Address(display_name=sender_name, addr_spec=sender))  # quoted when it needs to be
        if len(shown) + len("From: ") <= _LINE and "=?" not in shown:
            msg.set_raw("From", shown)
        else:
            msg["From"] = Address(display_name=sender_name, addr_spec=sender)
    elif _UNSAFE_TEXT.search(sender_name) is None and not sender_name.isascii():
        # A name over 15 Chinese characters takes several words. RFC 2047 readers (mail clients) drop the space
        # between them; the stdlib's reader keeps one, for its own folding of such a name as well. Its folding
        # also wrote 76-character words there, one more than RFC 2047 allows; these are at most 72.
        words = _encoded_words(sender_name, first=len("From: "))
        last = words.rsplit("\n", 1)[-1]  # the line the address follows
        gap = "\r\n " if len(last) + len(sender) + 3 > _LINE else " "
        msg.set_raw("From", f"{words}{gap}<{sender}>")
    else:
        msg["From"] = Address(display_name=sender_name, addr_spec=sender)


def _set_addresses(msg: _Part, name: str, addresses: Sequence[str]) -> None:
    if not addresses or not all(_PLAIN_ADDRESS.match(a) for a in addresses):
        msg[name] = ", ".join(addresses)
        return
    one_line = ", ".join(addresses)
    msg.said(name, one_line if len(name) + 2 + len(one_line) <= _LINE else ",\r\n ".join(addresses), one_line)


def _set_unstructured(msg: _Part, name: str, text: str) -> None:
    """As it is when it is short plain ASCII, else UTF-8 encoded words; anything unusual goes to the stdlib."""
    if _UNSAFE_TEXT.search(text) is not None:
        msg[name] = text  # the stdlib's handling (it refuses line breaks)
    elif not text.isascii():
        msg.said(name, _encoded_words(text, first=len(name) + 2), text)
    elif text == text.strip() and "=?" not in text and "  " not in text and len(name) + 2 + len(text) <= _LINE:
        msg.said(name, text, text)
    else:
        msg[name] = text


def _encoded_words(text: str, first: int) -> str:
    """RFC 2047 B-encoded UTF-8 words split between characters, folded so that every line stays within 78
    characters (the first starts `first` characters in) and every word within 72."""
    data = text.encode("utf-8")
    words: list[str] = []
    pos, room = 0, first
    while pos < len(data):
        limit = min(_WORD_BYTES, max(4, (_LINE - room - 12) // 4 * 3))  # 12 = len("=?utf-8?b?") + len("?=")
        cut = min(pos + limit, len(data))
        while cut < len(data) and data[cut] & 0xC0 == 0x80:  # never split a UTF-8 character
            cut -= 1
        words.append(f"=?utf-8?b?{base64.b64encode(data[pos:cut]).decode('ascii')}?=")
        pos, room = cut, 1
    return "\r\n ".join(words)


def _bare(message_id: str) -> str:
    return message_id.strip().strip("<>").strip()


def _angle(message_id: str) -> str:
    return f"<{_bare(message_id)}>"


def _safe_name(name: str) -> str:
    cleaned = "".join(ch for ch in name if ch >= " " and ch != "\x7f").strip()
    return cleaned or "attachment.bin"


def _plain(name: str) -> bool:
    return name.isascii() and '"' not in name and "\\" not in name and len(name) <= _SINGLE_LINE_LIMIT


def _name_parameter(name: str) -> str:
    """Content-Type's name=: quoted ASCII, else RFC 2047 words inside the quotes (what Outlook reads)."""
    if _plain(name):
        return f'"{name}"'
    words: list[bytes] = []
    chunk = b""
    for char in name:
        encoded = char.encode("utf-8")
        if chunk and len(chunk) + len(encoded) > _WORD_BYTES:
            words.append(chunk)
            chunk = b""
        chunk += encoded
    if chunk:
        words.append(chunk)
    return '"' + "\r\n ".join(
        f"=?UTF-8?B?{base64.b64encode(w).decode('ascii')}?=" for w in words
    ) + '"'


def _filename_parameter(name: str) -> str:
    """Content-Disposition's filename: quoted ASCII, else RFC 2231 `filename*=UTF-8''...`."""
    if _plain(name):
        return f'filename="{name}"'
    value = quote(name.encode("utf-8"), safe=_RFC2231_SAFE)
    if len(value) <= _SINGLE_LINE_LIMIT:
        return f"filename*=UTF-8''{value}"
    pieces: list[str] = []
    rest = value
    while rest:
        cut = min(70, len(rest))
        while cut < len(rest) and "%" in rest[cut - 2:cut]:  # never split a %XX escape
            cut -= 1
        pieces.append(rest[:cut])
        rest = rest[cut:]
    return ";\r\n ".join(
        f"filename*{i}*={'UTF-8' + chr(39) * 2 if i == 0 else ''}{piece}" for i, piece in enumerate(pieces)
    )
