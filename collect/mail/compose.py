"""Compose outgoing mail whose Chinese subjects and attachment names show correctly in Outlook and webmail."""

from __future__ import annotations

import base64
import email.policy
import email.utils
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from urllib.parse import quote

XLSX_CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

# CRLF line endings; headers we fold ourselves (attachment names, References) are sent as written. The
# stdlib would otherwise re-encode a quoted `name="=?UTF-8?B?...?="` as RFC 2231, which Outlook ignores.
POLICY = email.policy.SMTP.clone(refold_source="none")

_WORD_BYTES = 45  # 45 bytes -> 60 base64 characters -> a 72-character encoded word (RFC 2047 allows 75)
_SINGLE_LINE_LIMIT = 900  # a filename*= value longer than this is split into RFC 2231 continuations
_RFC2231_SAFE = "!#$&+^`|"  # attribute-char beyond what quote() keeps (letters, digits, _.-~)


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
    msg = EmailMessage(policy=POLICY)
    msg["From"] = Address(display_name=sender_name, addr_spec=sender) if sender_name else sender
    msg["To"] = ", ".join(to)
    if cc:
        msg["Cc"] = ", ".join(cc)
    msg["Subject"] = subject
    when = date or datetime.now(UTC)
    msg["Date"] = email.utils.format_datetime(when if when.tzinfo else when.astimezone())
    msg["Message-ID"] = _angle(message_id) if message_id else email.utils.make_msgid(domain=domain)
    refs = [_bare(r) for r in references if _bare(r)]
    if in_reply_to and _bare(in_reply_to):
        parent = _bare(in_reply_to)
        msg.set_raw("In-Reply-To", f"<{parent}>")
        if parent in refs:
            refs.remove(parent)
        refs.append(parent)
    if refs:
        msg.set_raw("References", "\r\n ".join(f"<{r}>" for r in refs))

    msg.set_content(text, subtype="plain", charset="utf-8", cte="base64")
    if html is not None:
        msg.add_alternative(html, subtype="html", charset="utf-8", cte="base64")
    for att in attachments:
        maintype, _, subtype = att.content_type.partition("/")
        msg.add_attachment(att.data, maintype=maintype or "application",
                           subtype=subtype or "octet-stream", cte="base64")
        *_, part = msg.iter_parts()
        del part["Content-Type"]
        del part["Content-Disposition"]
        name = _safe_name(att.filename)
        part.set_raw("Content-Type", f"{maintype or 'application'}/{subtype or 'octet-stream'};\r\n"
                                     f" name={_name_parameter(name)}")
        part.set_raw("Content-Disposition", f"attachment;\r\n {_filename_parameter(name)}")
    return msg


def to_bytes(msg: EmailMessage) -> bytes:
    """SMTP-ready bytes: CRLF line endings, every line within 998 bytes, our folded headers kept."""
    return msg.as_bytes(policy=POLICY)


def message_id_of(msg: EmailMessage) -> str:
    """The Message-ID without its angle brackets ("" when there is none)."""
    return _bare(str(msg.get("Message-ID", "")))


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
