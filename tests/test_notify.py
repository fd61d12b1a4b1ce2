"""Receipts as the agency's mail client reads them: subject, threading, findings, the annotated copy attached."""

from __future__ import annotations

import email
import email.policy
import io
import re
from datetime import UTC, datetime
from email.message import EmailMessage

import openpyxl

from collect import findings as F
from collect.mail.compose import OutgoingAttachment, message_id_of, to_bytes
from collect.mail.message import parse_message
from collect.mail.notify import ReceiptFacts, decision_key, receipt_message
from collect.states import Verdict

OFFICE = "臺北市政府主計處"
TITLE = "嚴重特殊傳染性肺炎經費動支及執行情形"
PARENT = "CAF0001.agency@mail.gov.taipei"
ISSUE = "issue.0123456789abcdef.0a1b2c3d@dbas.gov.taipei"


def annotated_copy() -> bytes:
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "檢核結果"
    for r in range(1, 1500):
        ws.append([f"A{r:05d}", f"臺北市政府某機關{r}", r * 1234, "115/03/05"])
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def ten_findings() -> list[F.Finding]:
    found = [F.make("value.not_number", sheet="支出明細", cell=f"D{10 + i}", column="本期支出數（元）",
                    value=f"1,2{i}0元") for i in range(7)]
    found.append(F.make("value.required", sheet="支出明細", cell="C12", column="計畫名稱"))
    found.append(F.make("value.not_date", sheet="支出明細", cell="E13", column="動支日期", value="115/13/45"))
    found.append(F.make("compare.tenfold", sheet="支出明細", cell="G15", column="累計數", value="999999999",
                        detail="12,000"))
    return found


def facts(verdict: Verdict, **overrides: object) -> ReceiptFacts:
    values: dict[str, object] = dict(
        receipt="R20261005-000123", sha256="0a1b2c3d" + "0" * 56, verdict=verdict,
        file_name="A0101-臺北市政府秘書處-嚴重特殊傳染性肺炎經費動支及執行情形.xlsx",
        received_at=datetime(2026, 10, 5, 1, 30, tzinfo=UTC), to=["clerk@gov.taipei"], office=OFFICE,
        sender="collect@dbas.gov.taipei", agency_name="臺北市政府秘書處", collection_title=TITLE,
        round_label="115年10月", deadline="115/10/15", in_reply_to=f"<{PARENT}>", references=(f"<{ISSUE}>",),
    )
    values.update(overrides)
    return ReceiptFacts(**values)  # type: ignore[arg-type]


def read_back(msg: EmailMessage) -> tuple[bytes, EmailMessage]:
    raw = to_bytes(msg)
    back = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(back, EmailMessage)
    return raw, back


def test_rejected_receipt_reads_back_with_findings_threading_and_the_annotated_copy() -> None:
    data = annotated_copy()
    name = "R20261005-000123-A0101-臺北市政府秘書處-檢核結果.xlsx"
    found = ten_findings()
    raw, back = read_back(receipt_message(facts(Verdict.REJECTED, findings=found,
                                                annotated=OutgoingAttachment(name, data))))
    assert back["Subject"] == (f"【收件回覆】{TITLE}（115年10月）臺北市政府秘書處："
                               "退件，請修正後重新寄回（R20261005-000123）")
    [sender] = back["From"].addresses
    assert (sender.display_name, sender.addr_spec) == (OFFICE, "collect@dbas.gov.taipei")
    assert back["To"] == "clerk@gov.taipei"
    assert back["In-Reply-To"] == f"<{PARENT}>"
    assert back["References"].split() == [f"<{ISSUE}>", f"<{PARENT}>"]  # the thread, the agency's mail last
    assert back["Auto-Submitted"] == "auto-replied"
    assert back["Message-ID"] == "<R20261005-000123.0a1b2c3d@dbas.gov.taipei>"
    assert [p.get_content_type() for p in back.walk()] == [
        "multipart/mixed", "multipart/alternative", "text/plain", "text/html",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"]
    text = back.get_body(preferencelist=("plain",))
    html = back.get_body(preferencelist=("html",))
    assert text is not None and html is not None
    plain = text.get_content()
    assert "錯誤 9 項、警告 1 項" in plain  # compare.tenfold is a warning
    for finding in found:
        assert f"{finding.sheet}!{finding.cell}" in plain and finding.message in plain
    assert html.get_content().count("支出明細!") == 10
    assert f"附件「{name}」" in plain
    [attachment] = back.iter_attachments()
    assert attachment.get_filename() == name
    assert attachment.get_content() == data
    assert openpyxl.load_workbook(io.BytesIO(attachment.get_content())).sheetnames == ["檢核結果"]
    assert [(a.filename, a.data) for a in parse_message(raw).attachments] == [(name, data)]
    # RFC 5322 and RFC 2047 limits, 7-bit and CRLF throughout
    assert raw.isascii() and b"\n" not in raw.replace(b"\r\n", b"")
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    assert all(len(w) <= 75 for w in re.findall(rb"=\?[^?]+\?[bBqQ]\?[^?]*\?=", raw))


def test_accepted_receipt_has_no_attachment_and_says_nothing_more_is_needed() -> None:
    _, back = read_back(receipt_message(facts(Verdict.ACCEPTED)))
    assert back["Subject"] == f"【收件回覆】{TITLE}（115年10月）臺北市政府秘書處：通過（R20261005-000123）"
    assert [p.get_content_type() for p in back.walk()] == ["multipart/alternative", "text/plain", "text/html"]
    body = back.get_body(preferencelist=("plain",))
    assert body is not None and "無須再寄送" in body.get_content()
    assert list(back.iter_attachments()) == []
    assert back["Auto-Submitted"] == "auto-replied"


def test_a_changed_decision_gets_a_new_message_id_so_it_is_sent_again() -> None:
    first = receipt_message(facts(Verdict.ACCEPTED))
    again = facts(Verdict.REJECTED, findings=ten_findings())
    again.revision = decision_key(again)
    second = receipt_message(again)
    assert message_id_of(first) == "R20261005-000123.0a1b2c3d@dbas.gov.taipei"
    assert message_id_of(second) == f"R20261005-000123.0a1b2c3d.{again.revision}@dbas.gov.taipei"
    assert message_id_of(receipt_message(again)) == message_id_of(second)  # the same decision: the same id


def test_receipt_to_a_quarantined_sender_without_agency_name() -> None:
    _, back = read_back(receipt_message(facts(Verdict.QUARANTINED, agency_name="", collection_title="",
                                                round_label="", to=["unknown.person@example.com"])))
    assert back["Subject"] == "【收件回覆】暫存待確認（R20261005-000123）"
    body = back.get_body(preferencelist=("plain",))
    assert body is not None and body.get_content().startswith("您好：")
