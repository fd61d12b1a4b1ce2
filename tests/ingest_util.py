"""Helpers for the ingest tests: fill stamped covid19 workbooks like an agency would, build hostile files and mail."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any

from collect.simulate import type_cells
from collect.xlsx import book, properties
from collect.xlsx.book import Workbook, Worksheet

ROUND = "2026-10"
PREVIOUS = "2026-09"
SHEET = "填報表"
STAMP_SHEET = "_collect"
FIRST_ROW = 7  # the template's first data row (header in row 6)
# column key -> letter on the covid19 form (H is the execution-rate formula, never typed in)
LETTERS = {"item": "A", "name": "B", "category": "C", "source": "D", "approved": "E", "committed": "F",
           "spent": "G", "approved_on": "I", "note": "J"}


def acct(code: str) -> str:
    """The accountant's address of a sample agency (agencies.csv)."""
    return f"acct.{code}@example.test"


def row(name: Any = "口罩採購", *, item: Any = 1, category: Any = "防疫", source: Any = "市庫",
        approved: Any = 1_000_000, committed: Any = 800_000, spent: Any = 500_000,
        approved_on: Any = date(2026, 3, 5), note: Any = None) -> dict[str, Any]:
    """One data row as an agency types it; every value may be replaced by whatever the test needs."""
    return {"item": item, "name": name, "category": category, "source": source, "approved": approved,
            "committed": committed, "spent": spent, "approved_on": approved_on, "note": note}


def rows(n: int, prefix: str = "計畫") -> list[dict[str, Any]]:
    """n clean rows with distinct names."""
    return [row(f"{prefix}{i:03d}", item=i) for i in range(1, n + 1)]


def fill(issued: Path, out: Path, data: Sequence[Mapping[str, Any]] = (), *,
         cells: Mapping[str, Any] | None = None, edit: Callable[[Worksheet], None] | None = None,
         book_edit: Callable[[Workbook], None] | None = None) -> Path:
    """Copy a stamped workbook with `data` typed from row 7, then `cells` (A1 -> value) and any edits applied, saved
    as Excel saves it (collect.simulate, as every simulated agency)."""
    typed = {f"{LETTERS[key]}{FIRST_ROW + i}": value for i, values in enumerate(data) for key, value in values.items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(type_cells(issued.read_bytes(), SHEET, {**typed, **(cells or {})}, edit=edit,
                               book_edit=book_edit))
    return out


def set_stamp_field(wb: Workbook, name: str, value: str) -> None:
    """Change one stamp field both in the custom document properties and in the hidden _collect sheet."""
    properties.set_strings(wb, {f"collect.{name}": value})
    sheet = wb[STAMP_SHEET]
    for r in range(1, sheet.max_row + 1):
        if sheet.cell(r, 1).value == name:
            sheet.cell(r, 2).value = value


def remove_stamp(wb: Workbook) -> None:
    """Drop every trace of the stamp: the custom properties and the hidden sheet."""
    properties.remove(wb, "collect.")
    del wb[STAMP_SHEET]


def foreign_workbook(path: Path) -> Path:
    """A workbook the office never issued: two sheets of someone's own numbers."""
    wb = book.new()
    ws = wb.active
    assert ws is not None
    ws.title = "經費明細"
    ws.append(["計畫名稱", "核定經費"])
    ws.append(["口罩採購", 1000])
    wb.create_sheet("備註")["A1"] = "自製表格"
    wb.save(path)
    return path


# -- hostile or broken files ------------------------------------------------------------------------------------
def encrypt(data: bytes, password: str) -> bytes:
    """The workbook encrypted as Excel does with a file-open password (Agile encryption)."""
    from msoffcrypto.format.ooxml import OOXMLFile

    out = io.BytesIO()
    OOXMLFile(io.BytesIO(data)).encrypt(password, out)
    return out.getvalue()


def zip_bomb() -> bytes:
    """A valid-looking .xlsx whose one worksheet inflates to 300 MB of zeros (about 300 KB compressed)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr("[Content_Types].xml", _CONTENT_TYPES)
        zf.writestr("_rels/.rels", _RELS)
        zf.writestr("xl/workbook.xml", _WORKBOOK)
        zf.writestr("xl/_rels/workbook.xml.rels", _WB_RELS)
        with zf.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as fh:
            fh.write(b'<?xml version="1.0"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/'
                     b'2006/main"><sheetData/></worksheet><!--')
            chunk = b"0" * (1 << 20)
            for _ in range(300):
                fh.write(chunk)
            fh.write(b"-->")
    return buf.getvalue()


def entity_expansion() -> bytes:
    """A small .xlsx whose worksheet declares nested entities ("billion laughs")."""
    lol = ['<!ENTITY lol "lol">'] + [f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
                                     for i in range(1, 10)]
    sheet = ('<?xml version="1.0"?><!DOCTYPE lolz [' + "".join(lol) + ']><worksheet xmlns="http://schemas.'
             'openxmlformats.org/spreadsheetml/2006/main"><sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>'
             '&lol9;</t></is></c></row></sheetData></worksheet>')
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("[Content_Types].xml", _CONTENT_TYPES)
        zf.writestr("_rels/.rels", _RELS)
        zf.writestr("xl/workbook.xml", _WORKBOOK)
        zf.writestr("xl/_rels/workbook.xml.rels", _WB_RELS)
        zf.writestr("xl/worksheets/sheet1.xml", sheet)
    return buf.getvalue()


PDF_BYTES = (b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\n"
             b"trailer<</Root 1 0 R>>\n%%EOF\n")
CSV_BYTES = "計畫名稱,核定經費,實支數\n口罩採購,1000,500\n快篩試劑,2000,800\n".encode()
HTML_BYTES = ("<!DOCTYPE html><html><head><meta charset='utf-8'></head><body><table><tr><td>計畫名稱</td>"
              "<td>核定經費</td></tr><tr><td>口罩採購</td><td>1000</td></tr></table></body></html>").encode()

_CONTENT_TYPES = ('<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/'
                  '2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-'
                  'package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
                  '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-'
                  'officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" '
                  'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
                  '</Types>')
_RELS = ('<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/'
         '2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
         'relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>')
_WORKBOOK = ('<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.openxmlformats.org/'
             'spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
             '<sheets><sheet name="填報表" sheetId="1" r:id="rId1"/></sheets></workbook>')
_WB_RELS = ('<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/'
            '2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/'
            '2006/relationships/worksheet" Target="worksheets/sheet1.xml"/></Relationships>')


# -- mail -------------------------------------------------------------------------------------------------------
XLSX_TYPE = ("application", "vnd.openxmlformats-officedocument.spreadsheetml.sheet")


def agency_mail(sender: str, files: Iterable[Path], *, subject: str = "回覆：填報資料",
                to: str = "collect@example.test") -> tuple[bytes, str]:
    """A real RFC 5322 message from `sender` with the workbooks attached; returns (raw bytes, Message-ID)."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = "Fri, 27 Nov 2026 09:30:00 +0800"
    mid = make_msgid(domain=sender.rsplit("@", 1)[-1])
    msg["Message-ID"] = mid
    msg.set_content("檢附本機關填報資料，請查收。")
    for path in files:
        msg.add_attachment(path.read_bytes(), maintype=XLSX_TYPE[0], subtype=XLSX_TYPE[1], filename=path.name)
    return msg.as_bytes(policy=policy.SMTP), mid


def read_mail(path: Path) -> EmailMessage:
    """An .eml from outbox/mail, parsed the way the design says every message is parsed."""
    msg = message_from_bytes(path.read_bytes(), policy=policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def mail_text(msg: EmailMessage) -> str:
    """The plain-text body of a receipt."""
    body = msg.get_body(preferencelist=("plain",))
    assert body is not None
    return str(body.get_content())


def attachments(msg: EmailMessage) -> dict[str, bytes]:
    """Attachment file name -> bytes."""
    out: dict[str, bytes] = {}
    for part in msg.iter_attachments():
        assert isinstance(part, EmailMessage)
        data = part.get_content()
        out[str(part.get_filename())] = data if isinstance(data, bytes) else str(data).encode()
    return out


def triples(findings: Iterable[Any]) -> list[tuple[str, str | None, str]]:
    """(code, cell, severity) of each finding, for exact comparisons; works on Finding and on JSON dicts."""
    out = []
    for f in findings:
        d = f if isinstance(f, dict) else f.to_dict()
        out.append((d["code"], d["cell"], d["severity"]))
    return out


def json_lines(stdout: str) -> list[dict[str, Any]]:
    """The JSON objects `collect ingest --json` printed, one per non-empty line (a line that is not JSON fails)."""
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]
