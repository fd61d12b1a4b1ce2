"""Tests for safe reading of returned files (collect.receive.read) and the worker sandbox (collect.receive.sandbox)."""

from __future__ import annotations

import datetime
import io
import os
import pickle
import re
import sys
import threading
import time
import types
import zipfile
from pathlib import Path

import openpyxl
import pytest
from msoffcrypto.format.ooxml import OOXMLFile
from openpyxl.packaging.custom import IntProperty, StringProperty

from collect.findings import CATALOGUE
from collect.receive.read import (
    ReadError,
    ReadLimits,
    decrypt_if_default,
    read_book,
    sniff,
)
from collect.receive.sandbox import Crashed, Limits, Sandbox, TimedOut, WorkerError

CORPUS = Path("/work/shared/corpus")


# --- helpers run inside sandbox workers (module level, so they pickle by reference) ------------------------------

class Panicky(BaseException):
    """Like pyo3's PanicException: a BaseException that is not an Exception."""


def chore(task: str) -> str:
    kind, _, arg = task.partition(":")
    if kind == "ok":
        return f"done {arg} in {os.getpid()}"
    if kind == "abort":
        os.abort()
    if kind == "sleep":
        time.sleep(float(arg))
        return "woke up"
    if kind == "memory":
        hog = bytearray(int(arg))
        return f"allocated {len(hog)}"
    if kind == "panic":
        raise Panicky("reader panicked: no entry found for key")
    if kind == "value":
        raise ValueError(arg)
    if kind == "unpicklable":
        return threading.Lock()  # type: ignore[return-value]
    raise AssertionError(task)


# --- helpers that build files -----------------------------------------------------------------------------------

def xlsx_bytes(build: object = None) -> bytes:
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "資料"
    ws["A1"] = "機關"
    ws["B1"] = "金額"
    ws["A2"] = "臺北市政府主計處"
    ws["B2"] = 1234567
    if callable(build):
        build(wb)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def rewrite_zip(data: bytes, change: dict[str, bytes]) -> bytes:
    """The same package with some members' bytes replaced (or added)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, change.get(info.filename, zin.read(info.filename)))
        for name, content in change.items():
            if name not in zin.namelist():
                zout.writestr(name, content)
    return out.getvalue()


def sheet_xml(data: bytes) -> str:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return zf.read("xl/worksheets/sheet1.xml").decode()


def encrypt(data: bytes, password: str) -> bytes:
    out = io.BytesIO()
    OOXMLFile(io.BytesIO(data)).encrypt(password, out)
    return out.getvalue()


def refused(data: bytes, limits: ReadLimits = ReadLimits()) -> ReadError:  # noqa: B008
    with pytest.raises(ReadError) as caught:
        read_book(data, limits)
    assert caught.value.code in CATALOGUE
    return caught.value


# --- type from content ------------------------------------------------------------------------------------------

def test_zero_bytes_is_empty() -> None:
    assert sniff(b"") == "empty"
    assert refused(b"").code == "file.empty"


def test_truncated_xlsx_is_corrupt() -> None:
    data = xlsx_bytes()
    error = refused(data[: len(data) // 2])
    assert error.code == "file.corrupt"
    assert "檔案已損毀" in error.finding().message


def test_csv_named_xlsx_is_refused_as_csv(tmp_path: Path) -> None:
    path = tmp_path / "回報.xlsx"
    path.write_text("機關代碼,金額\nA001,1000\nA002,2500\n", encoding="utf-8")
    data = path.read_bytes()
    assert sniff(data) == "csv"
    error = refused(data)
    assert (error.code, error.detail) == ("file.not_spreadsheet", "CSV 文字檔")
    assert "收到的是 CSV 文字檔" in error.finding().message


def test_big5_csv_is_recognised() -> None:
    assert sniff("機關,金額\r\n主計處,100\r\n工務局,200\r\n".encode("cp950")) == "csv"


def test_html_named_xlsx_is_refused_as_html(tmp_path: Path) -> None:
    path = tmp_path / "回報.xlsx"
    path.write_text("<html><body><table><tr><td>1</td></tr></table></body></html>", encoding="utf-8")
    data = path.read_bytes()
    assert sniff(data) == "html"
    error = refused(data)
    assert error.code == "file.not_spreadsheet"
    assert "HTML" in error.detail


def test_pdf_is_refused_as_pdf() -> None:
    data = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n"
    assert sniff(data) == "pdf"
    error = refused(data)
    assert (error.code, error.detail) == ("file.not_spreadsheet", "PDF 文件")


def test_image_and_other_zip_are_not_spreadsheets() -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(64)
    assert sniff(png) == "image"
    assert refused(png).code == "file.not_spreadsheet"
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("photo.txt", "not a workbook")
    assert sniff(out.getvalue()) == "zip"
    assert refused(out.getvalue()).detail == "ZIP 壓縮檔，其中沒有 Excel 活頁簿"


def test_real_xlsx_named_xls_is_read(tmp_path: Path) -> None:
    path = tmp_path / "回報.xls"
    path.write_bytes(xlsx_bytes())
    book = read_book(path.read_bytes())
    assert book.kind == "xlsx"
    sheet = book.sheet("資料")
    assert sheet is not None
    assert sheet.cell("A2") == "臺北市政府主計處"
    assert sheet.cell("B2") == 1234567


def test_macro_workbook_is_xlsm() -> None:
    data = xlsx_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        types = zf.read("[Content_Types].xml")
    types = types.replace(
        b"spreadsheetml.sheet.main+xml", b"ms-excel.sheet.macroEnabled.main+xml"
    ).replace(b"application/vnd.openxmlformats-officedocument.ms-excel", b"application/vnd.ms-excel")
    assert sniff(rewrite_zip(data, {"[Content_Types].xml": types})) == "xlsm"


def test_too_large_file_is_refused_before_parsing() -> None:
    error = refused(xlsx_bytes(), ReadLimits(max_bytes=1000))
    assert error.code == "file.too_large"


# --- hostile packages -------------------------------------------------------------------------------------------

def test_zip_bomb_member_over_size_limit_is_suspicious() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        with zipfile.ZipFile(io.BytesIO(xlsx_bytes())) as src:
            for info in src.infolist():
                zf.writestr(info.filename, src.read(info.filename))
        with zf.open("xl/worksheets/sheet2.xml", "w", force_zip64=True) as member:
            block = bytes(16 << 20)
            for _ in range(16):  # 256 MB of zeros, about 250 KB compressed
                member.write(block)
    data = out.getvalue()
    assert len(data) < 2_000_000
    error = refused(data)
    assert error.code == "file.suspicious"
    assert "sheet2.xml" in error.detail


def test_high_compression_ratio_is_suspicious() -> None:
    data = rewrite_zip(xlsx_bytes(), {"xl/media/padding.xml": b" " * 30_000_000})
    error = refused(data)
    assert error.code == "file.suspicious"
    assert "壓縮比" in error.detail


def test_billion_laughs_shared_strings_is_suspicious() -> None:
    lol = "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10))
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol0 "lol">' + lol + "]>"
        '<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" count="1" uniqueCount="1">'
        "<si><t>&lol9;</t></si></sst>"
    ).encode()

    def shared(wb: openpyxl.Workbook) -> None:
        ws = wb.active
        assert ws is not None
        ws["C3"] = "shared"

    data = rewrite_zip(xlsx_bytes(shared), {"xl/sharedStrings.xml": bomb})
    error = refused(data)
    assert error.code == "file.suspicious"
    assert "sharedStrings.xml" in error.detail


def test_doctype_in_utf16_part_is_found() -> None:
    part = '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE x [<!ENTITY a "b">]><x/>'.encode("utf-16")
    data = rewrite_zip(xlsx_bytes(), {"docProps/custom.xml": part})
    assert refused(data).code == "file.suspicious"


def test_claimed_dimension_is_ignored_and_values_read() -> None:
    data = xlsx_bytes()
    xml = re.sub(r'<dimension ref="[^"]*"', '<dimension ref="A1:XFD1048576"', sheet_xml(data))
    assert 'ref="A1:XFD1048576"' in xml
    book = read_book(rewrite_zip(data, {"xl/worksheets/sheet1.xml": xml.encode()}))
    sheet = book.sheets[0]
    assert (sheet.first_row, sheet.first_col) == (1, 1)
    assert sheet.rows == [["機關", "金額"], ["臺北市政府主計處", 1234567]]


def far_extent_xlsx() -> bytes:
    def far(wb: openpyxl.Workbook) -> None:
        ws = wb.active
        assert ws is not None
        ws["XFD1048576"] = "x"

    return xlsx_bytes(far)


def test_real_extent_of_a_million_rows_by_all_columns_is_suspicious() -> None:
    error = refused(far_extent_xlsx())  # calamine alone would ask for 512 GB and abort
    assert error.code == "file.suspicious"
    assert "A1:XFD1048576" in error.detail


def test_far_value_with_a_small_real_extent_is_read() -> None:
    def far_down(wb: openpyxl.Workbook) -> None:
        ws = wb.active
        assert ws is not None
        ws["A1"] = "top"
        ws["B20000"] = "bottom"  # beyond row 9,999: the exact extent (40,000 cells) decides, and it is fine

    sheet = read_book(xlsx_bytes(far_down)).sheets[0]
    assert sheet.cell("A1") == "top" and sheet.cell("B20000") == "bottom"


def test_empty_styled_cell_far_away_does_not_count() -> None:
    data = xlsx_bytes()
    xml = sheet_xml(data).replace(
        "</sheetData>", '<row r="1048576"><c r="XFD1048576" s="0"/></row></sheetData>'
    )
    book = read_book(rewrite_zip(data, {"xl/worksheets/sheet1.xml": xml.encode()}))
    assert len(book.sheets[0].rows) == 2


# --- encryption -------------------------------------------------------------------------------------------------

def test_encrypted_with_other_password_is_refused() -> None:
    data = encrypt(xlsx_bytes(), "s3cret")
    assert sniff(data) == "encrypted"
    error = refused(data)
    assert error.code == "file.encrypted"
    assert "密碼" in error.finding().message
    with pytest.raises(ReadError):
        decrypt_if_default(data)


def test_encrypted_with_default_password_is_read() -> None:
    data = encrypt(xlsx_bytes(), "VelvetSweatshop")
    assert sniff(data) == "encrypted"
    book = read_book(data)
    assert book.kind == "xlsx"
    assert book.sheets[0].cell("B2") == 1234567


def test_corpus_encrypted_samples() -> None:
    password_xlsx = CORPUS / "ExcelDataReader__src__TestData__standard_AES256_SHA1_ECB_pwd_password.xlsx"
    assert refused(password_xlsx.read_bytes()).code == "file.encrypted"
    # An .xls encrypted with Excel's default password opens.
    book = read_book((CORPUS / "PhpSpreadsheet__tests__data__Reader__XLS__pwtest3.xls").read_bytes())
    assert book.kind == "xls"
    assert book.properties == {}
    assert any(row for sheet in book.sheets for row in sheet.rows)


# --- what a good workbook gives ---------------------------------------------------------------------------------

def test_positions_properties_visibility_merges_dates() -> None:
    def build(wb: openpyxl.Workbook) -> None:
        ws = wb.create_sheet("填報")
        ws["B7"] = 5
        ws["C8"] = datetime.date(2026, 3, 5)
        ws["D9"] = "１２３"
        ws.merge_cells("B10:C10")
        ws["B10"] = "合併"
        wb.create_sheet("_stamp").sheet_state = "hidden"
        wb.create_sheet("_secret").sheet_state = "veryHidden"
        props = wb.custom_doc_props  # type: ignore[attr-defined]
        props.append(StringProperty(name="collect.agency", value="A001 臺北市政府主計處"))
        props.append(IntProperty(name="collect.version", value=3))

    book = read_book(xlsx_bytes(build))
    assert book.properties == {"collect.agency": "A001 臺北市政府主計處", "collect.version": "3"}
    assert [(s.name, s.visible) for s in book.sheets] == [
        ("資料", "visible"), ("填報", "visible"), ("_stamp", "hidden"), ("_secret", "veryhidden"),
    ]
    sheet = book.sheet("填報")
    assert sheet is not None
    assert (sheet.first_row, sheet.first_col) == (7, 2)
    assert sheet.rows[0][0] == 5
    assert sheet.cell("B7") == 5
    assert sheet.cell("D9") == "１２３"
    assert sheet.cell("A1") == ""
    assert isinstance(sheet.cell("C8"), datetime.date)
    assert sheet.cell("C8") == datetime.date(2026, 3, 5)
    assert sheet.merged == ["B10:C10"]
    assert book.sheet("沒有這張") is None
    hidden = book.sheet("_stamp")
    assert hidden is not None and hidden.rows == []


def ods_bytes(content_rows: str, user_defined: str) -> bytes:
    office = "urn:oasis:names:tc:opendocument:xmlns:office:1.0"
    content = (
        f'<?xml version="1.0" encoding="UTF-8"?><office:document-content xmlns:office="{office}" '
        'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
        'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.2">'
        '<office:body><office:spreadsheet><table:table table:name="資料">'
        f"{content_rows}</table:table></office:spreadsheet></office:body></office:document-content>"
    )
    meta = (
        f'<?xml version="1.0" encoding="UTF-8"?><office:document-meta xmlns:office="{office}" '
        'xmlns:meta="urn:oasis:names:tc:opendocument:xmlns:meta:1.0" office:version="1.2">'
        f"<office:meta>{user_defined}</office:meta></office:document-meta>"
    )
    manifest = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0">'
        '<manifest:file-entry manifest:full-path="/" '
        'manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/>'
        '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/>'
        '<manifest:file-entry manifest:full-path="meta.xml" manifest:media-type="text/xml"/>'
        "</manifest:manifest>"
    )
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet", zipfile.ZIP_STORED)
        zf.writestr("META-INF/manifest.xml", manifest)
        zf.writestr("content.xml", content)
        zf.writestr("meta.xml", meta)
    return out.getvalue()


def test_ods_values_and_user_defined_properties() -> None:
    cell = '<table:table-cell office:value-type="float" office:value="42"><text:p>42</text:p></table:table-cell>'
    rows = f'<table:table-row><table:table-cell/>{cell}</table:table-row>'
    props = (
        '<meta:user-defined meta:name="collect.round">2026-10</meta:user-defined>'
        '<meta:user-defined meta:name="collect.version" meta:value-type="float">3</meta:user-defined>'
    )
    book = read_book(ods_bytes(rows, props))
    assert book.kind == "ods"
    assert book.properties == {"collect.round": "2026-10", "collect.version": "3"}
    sheet = book.sheets[0]
    assert sheet.name == "資料"
    assert sheet.cell("B1") == 42
    assert sheet.merged == []


def test_read_error_pickles_and_names_its_finding() -> None:
    error = pickle.loads(pickle.dumps(ReadError("file.corrupt", "ZIP 結構損毀")))
    assert (error.code, error.detail) == ("file.corrupt", "ZIP 結構損毀")
    assert error.finding("en").message.startswith("The file is damaged")
    assert error.finding().cell is None


# --- the sandbox ------------------------------------------------------------------------------------------------

def test_sandbox_survives_abort_hang_memory_and_panics() -> None:
    limits = Limits(memory_bytes=1_200_000_000, seconds=3)
    with Sandbox(workers=2, limits=limits) as sandbox:
        tasks = [
            "ok:1", "abort", "ok:2", "sleep:30", "memory:3000000000", "panic", "ok:3", "value:bad cell",
            "unpicklable",
        ]
        results = sandbox.map(chore, tasks)
        assert str(results[0]).startswith("done 1")
        assert isinstance(results[1], Crashed)
        assert "SIGABRT" in str(results[1])
        assert str(results[2]).startswith("done 2")
        assert isinstance(results[3], TimedOut)
        assert isinstance(results[4], Crashed)
        assert "memory" in str(results[4])
        assert isinstance(results[5], Panicky) and not isinstance(results[5], Exception)
        assert "no entry found" in str(results[5])
        assert str(results[6]).startswith("done 3")
        assert isinstance(results[7], ValueError) and str(results[7]) == "bad cell"
        assert isinstance(results[8], WorkerError) and "lock" in str(results[8])

        # A task the worker cannot even unpickle (its function lives in a module only the parent has).
        ghost = types.ModuleType("ghost_module")
        exec("def work(item):\n    return item\n", ghost.__dict__)
        sys.modules["ghost_module"] = ghost
        try:
            lost = sandbox.map(ghost.work, ["x"])
        finally:
            del sys.modules["ghost_module"]
        assert isinstance(lost[0], WorkerError) and "ghost_module" in str(lost[0])

        started = sandbox.started
        again = sandbox.map(chore, ["ok:4", "ok:5", "ok:6"])
        assert [str(r).split(" in ")[0] for r in again] == ["done 4", "done 5", "done 6"]
        assert sandbox.started == started  # the same workers served the second call


def test_corpus_sweep_every_file_reads_or_is_refused(workspace: Path) -> None:
    # Imported here: the sandbox's workers import this module to find `chore`, and must stay quick to start.
    from collect.receive.worker import Job, as_examination, examine_batch
    from collect.states import Verdict

    files = sorted(p for p in CORPUS.iterdir() if p.is_file())
    items = [p.read_bytes() for p in files]
    # The corpus holds a file that kills calamine's .xls reader (a real out-of-memory abort); two of our
    # own go in the same call: a workbook whose real extent is absurd and one that is fine. Each file goes
    # through the worker's examination, the path `collect ingest` takes.
    jobs = [[Job(str(workspace), b"", data, None, "")] for data in [*items, far_extent_xlsx(), xlsx_bytes()]]
    with Sandbox(workers=2, limits=Limits(seconds=30), preload=("collect.receive.worker",)) as sandbox:
        results = [as_examination(r[0] if isinstance(r, list) else r, "zh-TW")
                   for r in sandbox.map(examine_batch, jobs)]
    assert len(results) == len(files) + 2
    far, fine = results[-2:]
    assert far.verdict == Verdict.UNREADABLE and far.findings[0].code == "file.suspicious"
    assert fine.verdict == Verdict.UNIDENTIFIED and fine.kind == "xlsx"  # read: it just carries no stamp
    results = results[:-2]
    books = [r for r in results if r.verdict != Verdict.UNREADABLE]
    errors = {p.name: r.findings[0] for p, r in zip(files, results, strict=True) if r.verdict == Verdict.UNREADABLE}
    assert all(e.code in CATALOGUE for e in errors.values())
    assert len(files) >= 290
    assert len(books) >= 200  # measured: 215 of 302 read
    kinds = {b.kind for b in books}
    assert kinds == {"xlsx", "xlsm", "xlsb", "xls", "ods"}
    codes = {e.code for e in errors.values()}
    assert {"file.encrypted", "file.not_spreadsheet", "file.empty", "file.reader_failed"} <= codes
    oom = errors["ExcelDataReader__src__TestData__Test_git_issue_382_oom.xls"]
    assert oom.code == "file.reader_failed"
    assert errors["calamine__tests__pass_protected.xlsx"].code == "file.encrypted"
    assert "CSV 文字檔" in errors["roo__test__files__csvtypes.csv"].message
