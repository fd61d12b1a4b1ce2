"""Composed mail means exactly what the stdlib's own builder wrote, and to_bytes writes what the stdlib's generator
writes, byte for byte: the fast paths of compose.py checked against the stdlib they replace."""

from __future__ import annotations

import base64
import email
import email.policy
import email.utils
import io
import re
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from email.header import decode_header, make_header
from email.headerregistry import Address
from email.message import EmailMessage, Message
from pathlib import Path
from typing import Any, cast

import openpyxl
import pytest

from collect.mail.compose import (
    POLICY,
    OutgoingAttachment,
    _angle,
    _bare,
    _filename_parameter,
    _name_parameter,
    _safe_name,
    compose,
    header_text,
    message_id_of,
    to_bytes,
)
from collect.mail.message import parse_message

TAIPEI = timezone(timedelta(hours=8))
NAME = "R20261005-000123-A0101-臺北市政府秘書處-檢核結果.xlsx"
LONG_NAME = "臺北市政府" * 70 + ".xlsx"  # over 900 percent-escaped bytes: RFC 2231 continuations
STDLIB_SAMPLES = Path(email.__file__).parent.parent / "test" / "test_email" / "data"


def stdlib_compose(
    *, sender: str, to: Sequence[str], subject: str, text: str, html: str | None = None, cc: Sequence[str] = (),
    attachments: Sequence[OutgoingAttachment] = (), in_reply_to: str | None = None, references: Sequence[str] = (),
    message_id: str | None = None, domain: str = "collect.example.test", date: datetime | None = None,
    sender_name: str | None = None,
) -> EmailMessage:
    """The message as compose built it with the stdlib's set_content / add_alternative / add_attachment."""
    msg = EmailMessage(policy=POLICY)
    msg["From"] = Address(display_name=sender_name, addr_spec=sender) if sender_name else sender
    msg["To"] = ", ".join(to)
    if cc:
        msg["Cc"] = ", ".join(cc)
    msg["Subject"] = subject
    when = date or datetime.now(TAIPEI)
    msg["Date"] = email.utils.format_datetime(when)
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
        msg.add_attachment(att.data, maintype=maintype or "application", subtype=subtype or "octet-stream",
                           cte="base64")
        *_, part = msg.iter_parts()
        del part["Content-Type"]
        del part["Content-Disposition"]
        name = _safe_name(att.filename)
        part.set_raw("Content-Type", f"{maintype or 'application'}/{subtype or 'octet-stream'};\r\n"
                                     f" name={_name_parameter(name)}")
        part.set_raw("Content-Disposition", f"attachment;\r\n {_filename_parameter(name)}")
    return msg


def xlsx(label: str) -> bytes:
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws["A1"] = "機關代碼"
    ws["B1"] = label
    for r in range(2, 200):
        ws.append([f"A{r:04d}", f"臺北市政府某機關{r}", r * 1234])
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


WORKBOOK = xlsx("receipt")
CHART = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4

CASES: dict[str, dict[str, Any]] = {
    "receipt with annotated copy": dict(
        sender="collect@dbas.gov.taipei", sender_name="臺北市政府主計處", to=["clerk@gov.taipei"],
        subject="【收件回覆】嚴重特殊傳染性肺炎經費動支及執行情形（115年10月）臺北市政府秘書處：退件，請修正後重新寄回"
                "（R20261005-000123）",
        text="臺北市政府秘書處承辦人您好：\n\n檢核結果：退件\n1. [錯誤] 支出明細!D10 本期支出數（元）：應為數字\n",
        html="<p>臺北市政府秘書處承辦人您好：</p>\n<table><tr><td>支出明細!D10</td></tr></table>\n",
        attachments=[OutgoingAttachment(NAME, WORKBOOK)], in_reply_to="<CAF123.agency@mail.gov.taipei>",
        references=("<issue.abc@dbas.gov.taipei>", "<CAF123.agency@mail.gov.taipei>"),
        message_id="R20261005-000123.0a1b2c3d@dbas.gov.taipei"),
    "accepted, text and html": dict(
        sender="collect@dbas.gov.taipei", sender_name="臺北市政府主計處", to=["clerk@gov.taipei"],
        subject="【收件回覆】臺北市政府秘書處：通過（R20261005-000124）", text="通過。\r\n\r\n臺北市政府主計處 敬上",
        html="<p>通過。</p>", in_reply_to="CAF124@mail.gov.taipei", message_id="<R20261005-000124.1@x.tw>"),
    "plain text only, ASCII everything": dict(
        sender="a@b.example", to=["c@d.example"], subject="collect mail test", text="ok"),
    "several recipients, cc, three files, long name": dict(
        sender="collect@dbas.gov.taipei", sender_name="DBAS, Taipei City (collect)",
        to=[f"unit{i}.contact@agency{i}.gov.taipei" for i in range(8)], cc=["chief@gov.taipei", "deputy@gov.taipei"],
        subject="【催繳通知】尚未完成填報", text="請儘速填報。" * 40, html="<p>" + "請儘速填報。" * 40 + "</p>",
        attachments=[OutgoingAttachment(NAME, WORKBOOK), OutgoingAttachment("summary.xlsx", b"PK\x03\x04" * 50),
                     OutgoingAttachment(LONG_NAME, WORKBOOK), OutgoingAttachment("chart.png", CHART, "image/png")]),
    "text and a file, no html": dict(
        sender="collect@dbas.gov.taipei", to=["x@y.tw"], subject="通知", text="",
        attachments=[OutgoingAttachment("a\"b.xlsx", b"")]),
    "odd subjects and names go through the stdlib": dict(
        sender="collect@dbas.gov.taipei", sender_name=" spaced name ", to=["Wang <wang@gov.taipei>"],
        subject="  A very long ASCII subject that the stdlib folds itself because it is far over the line limit",
        text="x", attachments=[OutgoingAttachment("data.bin", b"\x00\x01", "application/x-thing; version=2")]),
    "surrogate-free astral characters and a mixed subject": dict(
        sender="collect@dbas.gov.taipei", sender_name="臺北市政府主計處 (DBAS) 𠀀𠀁 " + "會計" * 30,
        to=["a@b.tw"], subject="Re: 𠀀𠀁𠀂 mixed 中文 and ASCII =?not-a-word?= " + "表" * 60, text="𠀀"),
}


def parsed(raw: bytes) -> EmailMessage:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def headers_of(part: Message) -> list[tuple[str, str]]:
    """Every header, decoded; what is random on both sides (a multipart's boundary, a generated Message-ID's
    left-hand side) is left out."""
    out = []
    for name, value in part.items():
        if name.lower() == "content-type" and part.get_content_maintype() == "multipart":
            value = part.get_content_type()
        elif name.lower() == "message-id" and re.fullmatch(r"<\d+\.\d+\.\d+@[^>]+>", str(value)):
            value = "<generated@" + str(value).split("@")[1]
        elif name.lower() == "from":  # the stdlib's reader puts a space between two encoded words of a name
            addresses = cast(Any, value).addresses
            value = " | ".join("".join(a.display_name.split()) + f" <{a.addr_spec}>" for a in addresses)
        out.append((name, str(value)))
    return out


@pytest.mark.parametrize("case", list(CASES))
def test_composed_message_reads_as_the_stdlib_built_one(case: str) -> None:
    args = dict(CASES[case], date=datetime(2026, 10, 5, 9, 30, tzinfo=TAIPEI))
    ours, theirs = parsed(to_bytes(compose(**args))), parsed(stdlib_compose(**args).as_bytes(policy=POLICY))
    ours_parts, their_parts = list(ours.walk()), list(theirs.walk())
    assert [p.get_content_type() for p in ours_parts] == [p.get_content_type() for p in their_parts]
    for mine, ref in zip(ours_parts, their_parts, strict=True):
        assert headers_of(mine) == headers_of(ref)  # same headers, same order, same decoded values
        if not mine.is_multipart():
            assert mine.get_payload() == ref.get_payload()  # the same base64 lines
            assert mine.get_payload(decode=True) == ref.get_payload(decode=True)
    assert ours["Subject"] == theirs["Subject"] == args["subject"].strip()
    assert [p.get_filename() for p in ours.iter_attachments()] == [
        _safe_name(a.filename) for a in args.get("attachments", [])]
    workbooks = [a for a in args.get("attachments", []) if a.filename.endswith(".xlsx")]
    assert [(a.filename, a.data) for a in parse_message(to_bytes(compose(**args))).attachments] == [
        (_safe_name(a.filename), a.data) for a in workbooks]


@pytest.mark.parametrize("case", list(CASES))
def test_composed_message_is_clean_rfc_5322(case: str) -> None:
    raw = to_bytes(compose(**CASES[case]))
    assert raw.isascii() and b"\n" not in raw.replace(b"\r\n", b"")
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    for word in re.findall(r"=\?[^?]+\?[bBqQ]\?[^?]*\?=", raw.decode("ascii")):
        assert len(word) <= 75, word
    for line in head.split("\r\n"):  # the headers written here stay within RFC 5322's 78 characters
        if line.startswith(("Subject:", "From:", "To:", "Cc:")) or line.startswith(" =?utf-8?b?"):
            assert len(line) <= 78, line


def test_subject_and_sender_name_encoded_words_split_between_characters() -> None:
    subject = "𠀀" * 5 + "臺北市政府主計處" * 12 + "𠀀" * 7  # 4-byte and 3-byte characters across word edges
    for name in ("臺北市政府主計處", "𠀀臺北市政府主計處會計室人事室", "臺北市政府主計處" * 4):
        msg = compose(sender="collect@dbas.gov.taipei", sender_name=name, to=["a@b.tw"], subject=subject, text="x")
        raw = to_bytes(msg)
        words = re.findall(rb"=\?utf-8\?b\?([A-Za-z0-9+/=]+)\?=", raw)
        assert len(words) > 8
        for word in words:
            base64.b64decode(word).decode("utf-8")  # every word holds whole characters
        back = parsed(raw)
        assert back["Subject"] == subject
        reference = parsed(stdlib_compose(sender="collect@dbas.gov.taipei", sender_name=name, to=["a@b.tw"],
                                          subject=subject, text="x").as_bytes(policy=POLICY))
        assert back["From"].addresses[0].addr_spec == "collect@dbas.gov.taipei"
        ours, theirs = (m["From"].addresses[0].display_name for m in (back, reference))
        assert ours.replace(" ", "") == theirs.replace(" ", "") == name
        if len(name.encode()) <= 45:  # one encoded word: read exactly, by any reader
            assert ours == name
        # as RFC 2047 reads it (mail clients): no space between two encoded words
        unfolded = re.search(rb"(?:^|\r\n)From: (.*?)\r\n(?! )", raw, re.S)
        assert unfolded is not None
        value = unfolded.group(1).decode("ascii").replace("\r\n", "")
        assert str(make_header(decode_header(value))) == f"{name} <collect@dbas.gov.taipei>"


def test_a_line_break_in_a_subject_is_refused_as_before() -> None:
    for subject in ("收件\r\nBcc: victim@example.test", "a\nb"):
        with pytest.raises(ValueError):
            compose(sender="a@b.tw", to=["c@d.tw"], subject=subject, text="x")
        with pytest.raises(ValueError):
            stdlib_compose(sender="a@b.tw", to=["c@d.tw"], subject=subject, text="x")


def test_header_text_and_content_type_follow_later_changes() -> None:
    msg = compose(**CASES["receipt with annotated copy"])
    assert header_text(msg, "Subject") == CASES["receipt with annotated copy"]["subject"] == str(msg["Subject"])
    assert header_text(msg, "To") == "clerk@gov.taipei" == str(msg["To"])
    assert message_id_of(msg) == "R20261005-000123.0a1b2c3d@dbas.gov.taipei"
    del msg["Subject"]
    msg["Subject"] = "另一個主旨"
    msg.replace_header("To", "other@gov.taipei")
    assert header_text(msg, "Subject") == "另一個主旨" and header_text(msg, "To") == "other@gov.taipei"
    assert msg.get_content_type() == "multipart/mixed"
    msg.set_boundary("changed-boundary")
    assert msg.get_boundary() == "changed-boundary"
    assert b"\r\n--changed-boundary--\r\n" in to_bytes(msg)
    text = next(p for p in msg.walk() if p.get_content_type() == "text/plain")
    text.replace_header("Content-Type", "text/x-other")
    assert text.get_content_type() == "text/x-other"
    again = parsed(to_bytes(msg))
    assert again["Subject"] == "另一個主旨" and "text/x-other" in [p.get_content_type() for p in again.walk()]


def test_each_part_answers_what_the_stdlib_reads_from_its_headers() -> None:
    msg = compose(**CASES["several recipients, cc, three files, long name"])
    for part in msg.walk():
        assert part.get_content_type() == Message.get_content_type(part)
        assert part.get_boundary() == Message.get_boundary(part)
    for name in ("To", "Cc", "Subject", "Message-ID", "From", "Bcc"):
        assert header_text(msg, name) == str(msg.get(name, ""))


def received_messages() -> list[bytes]:
    """Mail as other programs write it: the stdlib's own sample messages, and a few shapes made here."""
    samples = sorted(STDLIB_SAMPLES.glob("msg_*.txt")) if STDLIB_SAMPLES.is_dir() else []
    made = [
        b"Subject: cr only\rContent-Type: text/plain\r\rline one\rline two\r",
        b"Subject: mixed endings\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n"
        + "第一行\r\n第二行\n第三行\r".encode(),
        b"Subject: =?big5?b?pl+lzQ==?=\r\nContent-Type: text/plain; charset=big5\r\n\r\n" + "收件".encode("cp950"),
        b"Content-Type: multipart/mixed; boundary=XX\r\n\r\npreamble here\r\n--XX\r\nContent-Type: text/plain\r\n\r\n"
        b"hi\r\n--XX\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\nbody\r\n--XX--\r\nepilogue\r\n",
        b"Content-Type: multipart/signed; boundary=S; protocol=x\r\n\r\n--S\r\nContent-Type: text/plain\r\n\r\n"
        b"signed text\r\n--S\r\nContent-Type: application/pgp-signature\r\n\r\nsig\r\n--S--\r\n",
        b"From: x@y\r\nSubject: no body at all\r\n\r\n",
    ]
    return [p.read_bytes() for p in samples] + made


def test_to_bytes_writes_what_the_stdlib_generator_writes() -> None:
    messages = received_messages()
    assert len(messages) >= 6
    for raw in messages:
        for policy in (POLICY, email.policy.default):
            msg = email.message_from_bytes(raw, policy=policy)
            assert isinstance(msg, EmailMessage)
            assert to_bytes(msg) == msg.as_bytes(policy=POLICY)
    for args in CASES.values():
        msg = compose(**args)
        assert to_bytes(msg) == msg.as_bytes(policy=POLICY)
        if args is not CASES["odd subjects and names go through the stdlib"]:
            # and the stdlib, reading the bytes back, writes the very same bytes again
            assert email.message_from_bytes(to_bytes(msg), policy=POLICY).as_bytes(policy=POLICY) == to_bytes(msg)


def test_the_stdlib_generator_internals_compose_relies_on_are_still_there() -> None:
    """compose._Generator, the one place that uses BytesGenerator's internals, overrides `_write_lines` and
    `_handle_text` (`_writeBody`) and reads `_NL` and `_mangle_from_`: an upgrade of Python that renames one of
    them fails here, instead of sending mail written some other way."""
    from email.generator import BytesGenerator
    from io import BytesIO

    from collect.mail.compose import POLICY

    for name in ("_write_lines", "_handle_text", "_writeBody"):
        assert callable(getattr(BytesGenerator, name, None)), f"BytesGenerator.{name} is gone"
    seen: dict[str, object] = {}

    class Probe(BytesGenerator):
        def _write_lines(self, lines: str) -> None:
            seen["nl"], seen["mangle"] = self._NL, self._mangle_from_  # type: ignore[attr-defined]
            super()._write_lines(lines)  # type: ignore[misc]

        def _handle_text(self, msg: object) -> None:
            seen["text"] = True
            super()._handle_text(msg)  # type: ignore[misc]

        _writeBody = _handle_text

    msg = compose(sender="collect@example.test", to=["a@example.test"], subject="s", text="本文\n")
    Probe(BytesIO(), mangle_from_=False, policy=POLICY).flatten(msg)
    assert seen == {"nl": "\r\n", "mangle": False, "text": True}
