"""Parsing incoming mail (as real clients write it) and composing outgoing mail, round-tripped."""

from __future__ import annotations

import base64
import email
import email.policy
import hashlib
import io
import smtplib
import socket
import struct
import zipfile
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import openpyxl
import pytest

from collect.mail.compose import OutgoingAttachment, compose, message_id_of, to_bytes
from collect.mail.message import Attachment, Skipped, is_workbook_name, parse_message, sniff_workbook, unpack_zip

CORPUS = Path("/work/shared/corpus")
XLS_FILE = CORPUS / "ExcelDataReader__src__TestData__Test10x10.xls"
OCTET = "application/octet-stream"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
NAME = "A0101-臺北市政府秘書處-填報表.xlsx"


# ----------------------------------------------------------------------------------- builders


def xlsx(label: str) -> bytes:
    """A real workbook written by openpyxl, different for every label."""
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws["A1"] = "機關代碼"
    ws["B1"] = label
    ws["A2"] = 1_234_567
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def encoded_word(text: str, charset: str = "UTF-8") -> bytes:
    """One RFC 2047 B-encoded word."""
    return b"=?" + charset.encode() + b"?B?" + base64.b64encode(text.encode(charset)) + b"?="


def b64(data: bytes) -> bytes:
    return base64.encodebytes(data).replace(b"\n", b"\r\n")


def part(headers: bytes, data: bytes, *, encode: bool = True) -> bytes:
    """One MIME body part: raw header lines (CRLF-separated) and its body."""
    if encode:
        return headers + b"\r\nContent-Transfer-Encoding: base64\r\n\r\n" + b64(data)
    return headers + b"\r\n\r\n" + data + b"\r\n"


TEXT_BODY = part(b"Content-Type: text/plain; charset=utf-8", "附件如上，請查收。".encode(), encode=True)


def message(*parts: bytes, headers: bytes | None = None, subtype: bytes = b"mixed",
            boundary: bytes = b"=_boundary_1") -> bytes:
    """A whole message: the given header block, then a multipart of the parts."""
    if headers is None:
        headers = (b"From: " + encoded_word("秘書處 王小明") + b" <Wang@Gov.Taipei>\r\n"
                   b"To: collect@collect.example.test\r\n"
                   b"Subject: " + encoded_word("回覆：填報表") + b"\r\n"
                   b"Date: Thu, 5 Mar 2026 10:15:00 +0800\r\n"
                   b"Message-ID: <agency-1@gov.taipei>\r\n")
    out = headers + b"MIME-Version: 1.0\r\nContent-Type: multipart/" + subtype + b'; boundary="' + boundary
    out += b'"\r\n\r\nThis is a multi-part message in MIME format.\r\n'
    for p in parts:
        out += b"--" + boundary + b"\r\n" + p + b"\r\n"
    return out + b"--" + boundary + b"--\r\n"


def workbook_part(name_headers: bytes, data: bytes, ctype: bytes = XLSX.encode()) -> bytes:
    return part(b"Content-Type: " + ctype + name_headers, data)


def only(incoming_attachments: tuple[Attachment, ...]) -> Attachment:
    assert len(incoming_attachments) == 1, incoming_attachments
    return incoming_attachments[0]


def tnef_object(level: int, name: int, kind: int, data: bytes) -> bytes:
    return struct.pack("<BHHI", level, name, kind, len(data)) + data + struct.pack("<H", sum(data) & 0xFFFF)


def tnef_blob(files: list[tuple[bytes, bytes]], *, codepage: int | None = 950,
              long_names: list[str] | None = None, subject: bytes | None = None) -> bytes:
    """A winmail.dat as Outlook writes it: version, OEM code page, then per file rendering, title, data.

    long_names adds PR_ATTACH_LONG_FILENAME (UTF-16) in the attachment's MAPI properties, as Outlook
    does when the 8.3 title is not the real name.
    """
    blob = struct.pack("<IH", 0x223E9F78, 0x0101)
    blob += tnef_object(1, 0x9006, 0x0008, struct.pack("<I", 0x10000))
    if codepage is not None:
        blob += tnef_object(1, 0x9007, 0x0006, struct.pack("<II", codepage, 0))
    if subject is not None:
        blob += tnef_object(1, 0x8004, 0x0001, subject + b"\x00")
    for i, (title, data) in enumerate(files):
        blob += tnef_object(2, 0x9002, 0x0006, b"\x00" * 14)
        blob += tnef_object(2, 0x8010, 0x0001, title + b"\x00")
        blob += tnef_object(2, 0x800F, 0x0006, data)
        if long_names:
            value = (long_names[i] + "\x00").encode("utf-16-le")
            value += b"\x00" * (-len(value) % 4)
            props = struct.pack("<IHHII", 1, 0x001F, 0x3707, 1, len(value)) + value
            blob += tnef_object(2, 0x9005, 0x0006, props)
    return blob


def zip_bytes(members: list[tuple[str, bytes]], *, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in members:
            zf.writestr(name, data)
    return buf.getvalue()


def zip_with_big5_name(name: str, data: bytes) -> bytes:
    """A zip as Windows' built-in tool in Taiwan writes it: a Big5 member name, no UTF-8 flag."""
    raw_name = name.encode("cp950")
    placeholder = b"P" * (len(raw_name) - 5) + b".xlsx"
    archive = zip_bytes([(placeholder.decode("ascii"), data)])
    assert archive.count(placeholder) == 2  # local header and central directory
    return archive.replace(placeholder, raw_name)


# ----------------------------------------------------------------------------------- headers


def test_headers_sender_subject_date_threading_and_no_attachment() -> None:
    raw = (b"From: " + encoded_word("臺北市政府秘書處 王小明") + b" <Wang.XM@Gov.Taipei>\r\n"
           b"To: collect@collect.example.test\r\n"
           b"Subject: " + encoded_word("回覆：嚴重特殊傳染性肺炎") + b"\r\n"
           b" " + encoded_word("經費填報") + b"\r\n"
           b"Date: Thu, 5 Mar 2026 10:15:00 +0800\r\n"
           b"Message-ID: <CAF=abc123@mail.gmail.com>\r\n"
           b"In-Reply-To: <receipt-9@collect.example.test>\r\n"
           b"References: <issue-1@collect.example.test>\r\n <receipt-9@collect.example.test>\r\n"
           b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
           + "已填寫完畢，附件忘了附。\r\n".encode())
    inc = parse_message(raw)
    assert inc.message_id == "CAF=abc123@mail.gmail.com"
    assert inc.sender == "wang.xm@gov.taipei"
    assert inc.sender_name == "臺北市政府秘書處 王小明"
    assert inc.subject == "回覆：嚴重特殊傳染性肺炎經費填報"
    assert inc.date == datetime(2026, 3, 5, 10, 15, tzinfo=timezone(timedelta(hours=8)))
    assert inc.date is not None and inc.date.utcoffset() == timedelta(hours=8)
    assert inc.references == ("receipt-9@collect.example.test", "issue-1@collect.example.test")
    assert inc.attachments == ()
    assert inc.skipped == ()


def test_missing_message_id_garbled_date_and_no_from() -> None:
    raw = b"Subject: test\r\nDate: someday soon\r\n\r\nbody\r\n"
    inc = parse_message(raw)
    assert inc.message_id == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert inc.date is None
    assert (inc.sender, inc.sender_name) == ("", "")
    assert inc.references == ()


def test_raw_8bit_big5_subject_and_sender_name() -> None:
    raw = (b"From: " + "主計處".encode("cp950") + b" <a@b.gov.tw>\r\nSubject: "
           + "功能別預算".encode("cp950") + b"\r\n\r\nx\r\n")
    inc = parse_message(raw)
    assert inc.subject == "功能別預算"
    assert (inc.sender, inc.sender_name) == ("a@b.gov.tw", "主計處")


# ----------------------------------------------------------------------------------- attachments


def test_several_workbooks_octet_stream_and_name_only_in_content_type() -> None:
    first, second, third = xlsx("一"), xlsx("二"), xlsx("三")
    raw = message(
        TEXT_BODY,
        workbook_part(b'; name="A0101.xlsx"\r\nContent-Disposition: attachment; filename="A0101.xlsx"',
                      first),
        workbook_part(b'; name="A0102.xlsx"\r\nContent-Disposition: attachment; filename="A0102.xlsx"',
                      second, ctype=OCTET.encode()),
        workbook_part(b'; name="A0103.XLSX"', third),  # no Content-Disposition at all
    )
    inc = parse_message(raw)
    assert [(a.filename, a.data, a.content_type, a.via) for a in inc.attachments] == [
        ("A0101.xlsx", first, XLSX, "direct"),
        ("A0102.xlsx", second, OCTET, "direct"),
        ("A0103.XLSX", third, XLSX, "direct"),
    ]
    assert inc.skipped == ()


def test_outlook_rfc2047_inside_quotes_utf8_and_big5() -> None:
    a, b = xlsx("a"), xlsx("b")
    utf8 = encoded_word(NAME)
    big5_name = "臺北市政府功能別預算表.xls"
    big5 = encoded_word(big5_name, "big5")
    q_name = b"=?utf-8?Q?" + "".join(f"={byte:02X}" for byte in "預算_2026 年.xlsx".encode()).encode() + b"?="
    raw = message(
        workbook_part(b'; name="' + utf8 + b'"\r\nContent-Disposition: attachment;\r\n filename="'
                      + utf8 + b'"', a),
        workbook_part(b'; name="' + q_name + b'"', b),  # Q encoding, as Lotus Notes gateways write it
        workbook_part(b';\r\n\tname="' + big5 + b'"\r\nContent-Disposition: attachment;\r\n\tfilename="'
                      + big5 + b'"', b, ctype=b"application/vnd.ms-excel"),
    )
    inc = parse_message(raw)
    assert [(x.filename, x.data) for x in inc.attachments] == [(NAME, a), ("預算_2026 年.xlsx", b), (big5_name, b)]


def test_encoded_words_split_inside_a_character_are_joined() -> None:
    """Some encoders cut a long name into words at a byte count, splitting a UTF-8 character."""
    data = xlsx("split")
    encoded = NAME.encode()
    cut = encoded.index("府".encode()) + 1  # in the middle of 府
    halves = (encoded[:cut], encoded[cut:])
    words = b" ".join(b"=?utf-8?B?" + base64.b64encode(chunk) + b"?=" for chunk in halves)
    disposition = b'\r\nContent-Disposition: attachment; filename="' + words + b'"'
    raw = message(workbook_part(b'; name="x"' + disposition, data))
    assert only(parse_message(raw).attachments).filename == NAME


def test_rfc2231_simple_and_continuations() -> None:
    a, b = xlsx("2231a"), xlsx("2231b")
    pct = "".join(f"%{byte:02X}" for byte in NAME.encode())
    half = len(pct) // 2
    half -= half % 3  # keep %XX escapes whole
    raw = message(
        workbook_part(b"\r\nContent-Disposition: attachment; filename*=UTF-8''" + pct.encode(), a),
        workbook_part(b"\r\nContent-Disposition: attachment;\r\n filename*0*=UTF-8''" + pct[:half].encode()
                      + b";\r\n filename*1*=" + pct[half:].encode(), b),
    )
    inc = parse_message(raw)
    found = [(x.filename, x.data, x.via) for x in inc.attachments]
    assert found == [(NAME, a, "direct"), (NAME, b, "direct")]


def test_raw_utf8_and_raw_big5_bytes_in_headers() -> None:
    """Old webmail puts the name's bytes straight into the header; Big5 even with a 0x5C second byte."""
    a, b = xlsx("utf8"), xlsx("big5")
    big5_name = "功能別許可表.xlsx"  # 功 and 許 end in byte 0x5C, a backslash
    assert b"\\" in big5_name.encode("cp950")
    raw = message(
        workbook_part(b'; name="' + NAME.encode() + b'"\r\nContent-Disposition: attachment; filename="'
                      + NAME.encode() + b'"', a),
        workbook_part(b'; name="' + big5_name.encode("cp950") + b'"\r\nContent-Disposition: attachment; '
                      b'filename="' + big5_name.encode("cp950") + b'"', b, ctype=OCTET.encode()),
    )
    inc = parse_message(raw)
    assert [(x.filename, x.data) for x in inc.attachments] == [(NAME, a), (big5_name, b)]


def test_forwarded_message_and_forward_of_a_forward() -> None:
    inner_data, deep_data = xlsx("forwarded"), xlsx("deep")
    innermost = message(
        workbook_part(b"; name=\"deep.xlsx\"\r\nContent-Disposition: attachment; filename=\"deep.xlsx\"",
                      deep_data),
        headers=b"From: a@b\r\nSubject: original\r\n", boundary=b"=_inner_2")
    inner = message(
        TEXT_BODY,
        workbook_part(b'; name="fw.xlsx"\r\nContent-Disposition: attachment; filename="fw.xlsx"', inner_data),
        part(b"Content-Type: message/rfc822\r\nContent-Disposition: attachment", innermost, encode=False),
        headers=b"From: b@c\r\nSubject: FW: original\r\n", boundary=b"=_inner_1")
    raw = message(TEXT_BODY, part(b"Content-Type: message/rfc822", inner, encode=False))
    inc = parse_message(raw)
    assert [(a.filename, a.data, a.via) for a in inc.attachments] == [
        ("fw.xlsx", inner_data, "forwarded"), ("deep.xlsx", deep_data, "forwarded")]
    assert inc.message_id == "agency-1@gov.taipei"  # the outer message's, not the forwarded one's


def test_forwarded_message_sent_base64_and_as_eml_file() -> None:
    a, b = xlsx("b64-fwd"), xlsx("eml")
    inner = message(workbook_part(b'; name="in.xlsx"', a), headers=b"Subject: inner\r\n", boundary=b"=_i")
    eml = message(workbook_part(b'; name="eml.xlsx"', b), headers=b"Subject: eml\r\n", boundary=b"=_e")
    raw = message(
        part(b"Content-Type: message/rfc822", inner),  # base64 transfer encoding, as some clients do
        part('Content-Type: application/octet-stream; name="FW: 填報.eml"'.encode(), eml),
    )
    inc = parse_message(raw)
    assert [(x.filename, x.data, x.via) for x in inc.attachments] == [
        ("in.xlsx", a, "forwarded"), ("eml.xlsx", b, "forwarded")]


def test_winmail_dat_with_big5_title_and_with_unicode_long_name() -> None:
    a, b = xlsx("tnef-a"), xlsx("tnef-b")
    big5_title = "功能別預算表.xlsx"
    blob1 = tnef_blob([(big5_title.encode("cp950"), a)])
    blob2 = tnef_blob([(b"A0101~1.XLS", b)], codepage=1252, long_names=[NAME])
    raw = message(
        TEXT_BODY,
        part(b'Content-Type: application/ms-tnef; name="winmail.dat"\r\n'
             b'Content-Disposition: attachment; filename="winmail.dat"', blob1),
        part(b'Content-Type: application/vnd.ms-tnef; name="winmail.dat"', blob2),
    )
    inc = parse_message(raw)
    found = [(x.filename, x.data, x.via) for x in inc.attachments]
    assert found == [(big5_title, a, "tnef"), (NAME, b, "tnef")]
    assert inc.skipped == ()


def test_winmail_dat_that_tnefparse_cannot_read_is_still_opened() -> None:
    """No OEM code page and a Big5 subject: tnefparse 1.4 raises; the fallback reader takes the file."""
    data = xlsx("fallback")
    blob = tnef_blob([("預算表.xlsx".encode("cp950"), data)], codepage=None, subject="填報".encode("cp950"))
    raw = message(part(b'Content-Type: application/ms-tnef; name="winmail.dat"', blob))
    attachment = only(parse_message(raw).attachments)
    assert (attachment.filename, attachment.data, attachment.via) == ("預算表.xlsx", data, "tnef")


def test_winmail_dat_garbage_is_skipped_not_raised() -> None:
    garbage = b"\x78\x9f\x3e\x22" + b"\xff" * 40  # right signature, nonsense after it
    raw = message(
        part(b'Content-Type: application/ms-tnef; name="winmail.dat"', b"not tnef at all"),
        part(b'Content-Type: application/ms-tnef; name="winmail.dat"', garbage),
    )
    inc = parse_message(raw)
    assert inc.attachments == ()
    assert inc.skipped == (Skipped("winmail.dat", "tnef-failed"), Skipped("winmail.dat", "tnef-failed"))


def test_zip_of_workbooks_with_utf8_and_big5_names() -> None:
    a, b, c = xlsx("zip-a"), xlsx("zip-b"), xlsx("zip-c")
    utf8_zip = zip_bytes([
        (f"回報/{NAME}", a),
        ("說明.txt", "請見附件".encode()),
        ("old.zip", zip_bytes([("x.xlsx", c)])),
        ("__MACOSX/回報/._" + NAME, b"\x00\x05\x16\x07 AppleDouble"),
        ("noext", c),  # a workbook whose name lost its extension is found by its content
    ])
    big5_zip = zip_with_big5_name("功能別預算表.xlsx", b)
    raw = message(
        part(b'Content-Type: application/zip; name="all.zip"', utf8_zip),
        part(b'Content-Type: application/x-zip-compressed; name="' + "報表.zip".encode("cp950") + b'"',
             big5_zip),
    )
    inc = parse_message(raw)
    assert [(x.filename, x.data, x.via) for x in inc.attachments] == [
        (NAME, a, "zip"), ("x.xlsx", c, "zip"), ("noext", c, "zip"), ("功能別預算表.xlsx", b, "zip")]
    assert inc.skipped == (Skipped("說明.txt", "not-workbook"),)  # the nested old.zip is opened


def test_nested_zips_open_to_three_levels() -> None:
    a = xlsx("deep")
    level3 = zip_bytes([("三.xlsx", a)])
    level4 = zip_bytes([("four.zip", zip_bytes([("四.xlsx", a)]))])
    outer = zip_bytes([("二.zip", zip_bytes([("三.zip", level3), ("deeper.zip", level4)]))])
    attachments, skipped = unpack_zip("一.zip", outer)
    assert [(x.filename, x.data) for x in attachments] == [("三.xlsx", a)]
    assert skipped == (Skipped("four.zip", "zip-failed"),)  # a fourth level is not opened


def test_zip_bombs_and_broken_zips_are_refused() -> None:
    bomb = zip_bytes([("bomb.xlsx", b"\x00" * 3_000_000), ("ok.xlsx", xlsx("ok"))])
    crowd = zip_bytes([(f"f{i}.xlsx", b"x") for i in range(250)], compression=zipfile.ZIP_STORED)
    big = zip_bytes([("big.xlsx", bytes(range(256)) * 160)])
    raw = message(
        part(b'Content-Type: application/zip; name="bomb.zip"', bomb),
        part(b'Content-Type: application/zip; name="crowd.zip"', crowd),
        part(b'Content-Type: application/zip; name="broken.zip"', bomb[: len(bomb) // 2]),
        part(b'Content-Type: application/zip; name="big.zip"', big),
    )
    inc = parse_message(raw, max_attachment_bytes=30_000)
    assert [x.filename for x in inc.attachments] == ["ok.xlsx"]
    assert inc.skipped == (
        Skipped("bomb.xlsx", "too-large"),
        Skipped("crowd.zip", "zip-failed"),
        Skipped("broken.zip", "zip-failed"),
        Skipped("big.xlsx", "too-large"),
    )
    ratio_only = parse_message(message(part(b'Content-Type: application/zip; name="r.zip"', bomb)))
    assert Skipped("bomb.xlsx", "zip-failed") in ratio_only.skipped
    assert [x.filename for x in ratio_only.attachments] == ["ok.xlsx"]


def test_inline_images_signatures_and_other_documents_are_skipped() -> None:
    data = xlsx("kept")
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 20
    related = (b'Content-Type: multipart/related; boundary="=_rel"\r\n\r\n'
               b"--=_rel\r\n"
               + part(b"Content-Type: text/html; charset=utf-8", b"<img src=cid:logo>", encode=False)
               + b"--=_rel\r\n" + part(b"Content-Type: image/png\r\nContent-ID: <logo>\r\n"
                                       b'Content-Disposition: inline; filename="image001.png"', png)
               + b"\r\n--=_rel\r\n"
               + part(b"Content-Type: application/octet-stream\r\nContent-ID: <x1>", b"\x01\x02")
               + b"\r\n--=_rel--\r\n")
    raw = message(
        related,
        part(b'Content-Type: application/pkcs7-signature; name="smime.p7s"', b"0\x82\x01"),
        part(b'Content-Type: text/x-vcard; name="wang.vcf"\r\n'
             b'Content-Disposition: attachment; filename="wang.vcf"', b"BEGIN:VCARD\r\nEND:VCARD\r\n"),
        part(b'Content-Type: application/pgp-signature; name="signature.asc"', b"-----BEGIN PGP"),
        part(b'Content-Type: application/pdf; name="' + "公文.pdf".encode() + b'"', b"%PDF-1.7"),
        part(b"Content-Type: application/vnd.openxmlformats-officedocument.wordprocessingml.document;"
             b' name="memo.docx"', zip_bytes([("word/document.xml", b"<w/>")])),
        # Apple Mail sends attachments inline; a workbook stays a workbook.
        workbook_part(b'; name="inline.xlsx"\r\nContent-Disposition: inline; filename="inline.xlsx"\r\n'
                      b"Content-ID: <abc>", data),
        subtype=b"signed",
    )
    inc = parse_message(raw)
    assert [(a.filename, a.data) for a in inc.attachments] == [("inline.xlsx", data)]
    assert inc.skipped == (
        Skipped("image001.png", "inline-image"),
        Skipped("附件2", "inline-image"),
        Skipped("smime.p7s", "signature"),
        Skipped("wang.vcf", "signature"),
        Skipped("signature.asc", "signature"),
        Skipped("公文.pdf", "not-workbook"),
        Skipped("memo.docx", "not-workbook"),
    )


def test_attachment_over_the_limit_is_skipped_without_its_data() -> None:
    data = xlsx("big")
    raw = message(workbook_part(b'; name="big.xlsx"', data),
                  workbook_part(b'; name="small.xls"', b"\xd0" * 10))
    inc = parse_message(raw, max_attachment_bytes=len(data) - 1)
    assert inc.skipped == (Skipped("big.xlsx", "too-large"),)
    assert [(a.filename, a.data) for a in inc.attachments] == [("small.xls", b"\xd0" * 10)]


def test_workbooks_without_a_usable_name_are_found_by_content() -> None:
    xls = XLS_FILE.read_bytes()
    data = xlsx("nameless")
    raw = message(
        TEXT_BODY,
        part(b"Content-Type: application/octet-stream", data),
        part(b'Content-Type: application/octet-stream; name="ATT00001.dat"', xls),
        part(b"Content-Type: application/octet-stream", xls),
        part(b"Content-Type: application/octet-stream", b"%PDF-1.4 not a workbook"),
        part(b'Content-Type: application/octet-stream; name="report.doc"', xls),  # an OLE file named .doc
    )
    inc = parse_message(raw)
    assert [(a.filename, a.data, a.content_type) for a in inc.attachments] == [
        ("附件1.xlsx", data, OCTET), ("ATT00001.dat", xls, OCTET), ("附件3.xls", xls, OCTET)]
    assert inc.skipped == (Skipped("附件4", "not-workbook"), Skipped("report.doc", "not-workbook"))


def test_is_workbook_name_and_sniffing() -> None:
    assert all(is_workbook_name(n) for n in ("a.xlsx", "B.XLSM", "c.xls", "d.ods", "e.xlsb", " 填報.Xlsx "))
    assert not any(is_workbook_name(n) for n in ("a.xlsx.pdf", "a.csv", "xlsx", "a.zip", ""))
    assert sniff_workbook(xlsx("s")) == ".xlsx"
    assert sniff_workbook(XLS_FILE.read_bytes()) == ".xls"
    assert sniff_workbook(zip_bytes([("word/document.xml", b"<w/>")])) is None
    assert sniff_workbook(b"PK\x03\x04 truncated") is None


# ----------------------------------------------------------------------------------- compose


def agency_reply() -> tuple[str, tuple[str, ...]]:
    return "agency-2@gov.taipei", ("issue-1@collect.example.test", "receipt-1@collect.example.test")


def composed_receipt(**overrides: object) -> tuple[bytes, list[OutgoingAttachment]]:
    attachments = [
        OutgoingAttachment(NAME, xlsx("receipt")),
        OutgoingAttachment("summary.xlsx", xlsx("summary")),
    ]
    parent, refs = agency_reply()
    args: dict[str, object] = dict(
        sender="collect@collect.example.test", sender_name="臺北市政府主計處", to=["wang@gov.taipei"],
        cc=["chief@gov.taipei"], subject="收件回條：A0101 臺北市政府秘書處 2026-10（錯誤 3 項）",
        text="您好：\n附件為標示錯誤儲存格的填報表。",
        html="<p>您好：</p><p>附件為標示錯誤儲存格的填報表。</p>",
        attachments=attachments, in_reply_to=parent, references=refs,
        date=datetime(2026, 10, 5, 9, 30, tzinfo=timezone(timedelta(hours=8))),
    )
    args.update(overrides)
    return to_bytes(compose(**args)), attachments  # type: ignore[arg-type]


def test_compose_round_trips_through_parse_message() -> None:
    raw, attachments = composed_receipt()
    inc = parse_message(raw)
    assert [(a.filename, a.data, a.content_type) for a in inc.attachments] == [
        (a.filename, a.data, a.content_type) for a in attachments]
    assert inc.subject == "收件回條：A0101 臺北市政府秘書處 2026-10（錯誤 3 項）"
    assert (inc.sender, inc.sender_name) == ("collect@collect.example.test", "臺北市政府主計處")
    assert inc.date == datetime(2026, 10, 5, 9, 30, tzinfo=timezone(timedelta(hours=8)))
    parent, refs = agency_reply()
    assert inc.references == (parent, *refs)
    assert inc.message_id.endswith("@collect.example.test")


def test_compose_headers_are_readable_by_outlook_and_webmail() -> None:
    raw, _ = composed_receipt()
    # Both forms of the Chinese name: RFC 2231 on Content-Disposition, RFC 2047 in quotes on Content-Type.
    pct = "".join(f"%{b:02X}" if b >= 0x80 else chr(b) for b in NAME.encode())
    assert b"filename*=UTF-8''" + pct.encode() in raw
    assert b'name="=?UTF-8?B?' in raw
    assert b'filename="summary.xlsx"' in raw and b'name="summary.xlsx"' in raw
    assert b"\nSubject: =?utf-8?" in raw
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    assert b"\n" not in raw.replace(b"\r\n", b"")  # CRLF everywhere
    assert raw.isascii()  # 7-bit clean: no server needs 8BITMIME
    # An independent reader, the stdlib's, sees the same names in both parameters.
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    files = [p for p in msg.walk() if p.get_content_disposition() == "attachment"]
    assert [p.get_filename() for p in files] == [NAME, "summary.xlsx"]
    assert [p["Content-Type"].params["name"] for p in files] == [NAME, "summary.xlsx"]
    assert msg["Cc"] == "chief@gov.taipei"


def test_compose_structure_threading_and_message_id() -> None:
    parent, refs = agency_reply()
    raw, _ = composed_receipt(message_id="<receipt-2@collect.example.test>")
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert [p.get_content_type() for p in msg.walk()] == [
        "multipart/mixed", "multipart/alternative", "text/plain", "text/html", XLSX, XLSX]
    text, html = (p for p in msg.walk() if p.get_content_maintype() == "text")
    assert text.get_content().replace("\r\n", "\n").strip() == "您好：\n附件為標示錯誤儲存格的填報表。"
    assert "<p>您好：</p>" in html.get_content()
    assert msg["In-Reply-To"] == f"<{parent}>"
    assert msg["References"].split() == [f"<{r}>" for r in (*refs, parent)]
    assert message_id_of(msg) == "receipt-2@collect.example.test"
    assert parse_message(raw).message_id == "receipt-2@collect.example.test"


def test_compose_plain_text_only_and_a_very_long_name() -> None:
    long_name = "臺北市政府" * 70 + ".xlsx"  # over 900 percent-escaped bytes: RFC 2231 continuations
    data = xlsx("long")
    msg = compose(sender="collect@collect.example.test", to=["a@b.tw"], subject="通知", text="純文字",
                  attachments=[OutgoingAttachment(long_name, data)], domain="finance.gov.taipei")
    raw = to_bytes(msg)
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    assert b"filename*0*=UTF-8''" in raw
    inc = parse_message(raw)
    assert [(a.filename, a.data) for a in inc.attachments] == [(long_name, data)]
    assert message_id_of(msg).endswith("@finance.gov.taipei")
    assert inc.references == ()
    assert inc.date is not None and abs(inc.date - datetime.now(UTC)) < timedelta(days=1)
    simple = email.message_from_bytes(to_bytes(compose(sender="a@b", to=["c@d"], subject="s", text="t")),
                                      policy=email.policy.default)
    assert simple.get_content_type() == "text/plain"
    assert "In-Reply-To" not in simple and "References" not in simple


def test_composed_message_survives_a_real_smtp_hop() -> None:
    """smtplib.send_message (which serialises with the message's own policy) through a local aiosmtpd."""
    aiosmtpd_controller = pytest.importorskip("aiosmtpd.controller")
    received: list[bytes] = []

    class Handler:
        async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
            received.append(envelope.original_content)  # type: ignore[attr-defined]
            return "250 OK"

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = aiosmtpd_controller.Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        data = xlsx("smtp")
        msg = compose(sender="collect@collect.example.test", to=["wang@gov.taipei"], subject="收件回條",
                      text="附件", attachments=[OutgoingAttachment(NAME, data)])
        with smtplib.SMTP("127.0.0.1", port) as smtp:
            smtp.send_message(msg)
    finally:
        controller.stop()
    assert len(received) == 1
    inc = parse_message(received[0])
    assert [(a.filename, a.data) for a in inc.attachments] == [(NAME, data)]
    assert b'name="=?UTF-8?B?' in received[0]
    assert inc.subject == "收件回條"
