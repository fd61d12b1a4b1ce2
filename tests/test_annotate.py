"""Tests for the annotated copy of a returned workbook (collect.receive.annotate)."""

from __future__ import annotations

import datetime as dt
import io
import re
import shutil
import subprocess
import time
import zipfile
from dataclasses import astuple
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import openpyxl
import pytest
from conftest import convert
from openpyxl.comments import Comment
from openpyxl.styles import PatternFill, Protection
from openpyxl.utils import get_column_letter
from openpyxl.workbook.defined_name import DefinedName
from python_calamine import CalamineWorkbook

from collect.findings import Finding, make
from collect.receive.annotate import COMMENT_AUTHOR, ERROR_RGB, SUMMARY_SHEET, WARNING_RGB, annotate
from collect.receive.read import read_book

CORPUS = Path("/work/shared/corpus")
SOFFICE = shutil.which("soffice")
TITLE = "嚴重特殊傳染性肺炎經費動支及執行情形 115年10月 檢核結果"
HEADERS = ["序號", "嚴重度", "工作表", "儲存格", "欄位", "填寫值", "說明"]
GREY = "FFDDEBF7"


# --- helpers -----------------------------------------------------------------------------------------------


def returned_workbook(path: Path) -> bytes:
    """An agency's return as Excel would hold it: instructions, a protected form, a hidden stamp sheet."""
    wb = openpyxl.Workbook()
    info = wb.active
    assert info is not None
    info.title = "填表說明"
    info["A1"] = "請於 115年11月5日 前填妥寄回。"
    ws = wb.create_sheet("填報表")
    ws["A1"] = "嚴重特殊傳染性肺炎經費動支及執行情形"
    ws.merge_cells("A1:F1")
    for col, name in enumerate(["機關代碼", "機關名稱", "核定金額", "動支日期", "千元", "備註"], start=1):
        ws.cell(row=2, column=col, value=name)
    rows: list[list[Any]] = [
        ["A001", "臺北市政府衛生局", 1_200_000, dt.date(2026, 3, 5), "=C3/1000", "=1+1"],
        ["A002", "臺北市立聯合醫院", "1,000", "115/13/45", "=C4/1000", None],
        ["A003", "臺北市政府文化局", -5, dt.date(2026, 10, 1), "=C5/1000", "補列"],
        ["A004", "臺北市政府教育局", 30_000, dt.date(2026, 9, 30), "=C6/1000", None],
    ]
    unlocked = Protection(locked=False)
    for r, values in enumerate(rows, start=3):
        for c, value in enumerate(values, start=1):
            cell = ws.cell(row=r, column=c, value=value)
            if c in (3, 4, 6):
                cell.protection = unlocked
    ws["D3"].number_format = "[$-404]e/mm/dd"
    ws["F3"].data_type = "s"  # the agency typed "=1+1" as text
    ws["F3"].comment = Comment("承辦人：請參考附件", "王小明")
    ws["A6"].fill = PatternFill(fill_type="solid", fgColor=GREY)
    ws.protection.sheet = True
    ws.protection.password = "stamp-secret"
    stamp = wb.create_sheet("_stamp")
    stamp["A1"] = "token"
    stamp["B1"] = "c0ffee"
    stamp.sheet_state = "hidden"
    meta = wb.create_sheet("_meta")
    meta["A1"] = "v1"
    meta.sheet_state = "veryHidden"
    wb.active = 1
    wb.save(path)
    return path.read_bytes()


def findings_for_return() -> list[Finding]:
    return [
        make("value.not_number", sheet="填報表", cell="C4", column="核定金額", value="1,000"),
        make("value.not_date", sheet="填報表", cell="D4", column="動支日期", value="115/13/45"),
        make("value.min", sheet="填報表", cell="C5", column="核定金額", value=-5, detail=0),
        make("compare.decreased", sheet="填報表", cell="C5", column="核定金額", value=-5, detail="1,000"),
        make("compare.tenfold", sheet="填報表", cell="B6", column="機關名稱", value="=SUM(A1)", detail="x"),
        make("value.invalid", sheet="填報表", cell="F3", column="備註", value="=1+1", detail="不得為公式"),
        make("stamp.old_version", value="3"),
        make("table.sheet_missing", sheet="附表二", cell="A1"),
        make("value.required", sheet="填報表", cell="ZZ", column="備註"),
    ]


def summary_rows(ws: Any) -> tuple[int, list[list[Any]]]:
    """The header row number of the 檢核結果 table and the rows below it."""
    header = next(row[0].row for row in ws.iter_rows() if [c.value for c in row[:7]] == HEADERS)
    rows = [[c.value for c in row[:7]] for row in ws.iter_rows(min_row=header + 1)]
    return header, rows


def openpyxl_cells(data: bytes, sheet: str) -> dict[str, Any]:
    ws = openpyxl.load_workbook(io.BytesIO(data))[sheet]
    return {c.coordinate: c.value for row in ws.iter_rows() for c in row if c.value is not None}


def calamine_cells(data: bytes) -> dict[str, dict[tuple[int, int], Any]]:
    """Every non-blank value of every sheet at its 0-based (row, column), as python-calamine reads it."""
    book = CalamineWorkbook.from_filelike(io.BytesIO(data))
    out: dict[str, dict[tuple[int, int], Any]] = {}
    for name in book.sheet_names:
        sheet = book.get_sheet_by_name(name)
        cells: dict[tuple[int, int], Any] = {}
        if sheet.start is not None:
            r0, c0 = sheet.start
            for r, values in enumerate(sheet.to_python()):
                for c, value in enumerate(values):
                    if value != "":
                        cells[(r0 + r, c0 + c)] = _same_kind(value)
        out[name] = cells
    return out


def _same_kind(value: Any) -> Any:
    """Dates compare by their calendar value whichever of date/datetime a reader returns for them."""
    if isinstance(value, dt.datetime) and value.time() == dt.time(0):
        return value.date()
    return value


def commented(ws: Any) -> dict[str, Any]:
    return {c.coordinate: c.comment for row in ws.iter_rows() for c in row if c.comment is not None}


def fill_rgb(cell: Any) -> str | None:
    return cell.fill.fgColor.rgb if cell.fill.fill_type == "solid" else None


def soffice_convert(src: Path, to: str, tmp_path: Path) -> Path:
    assert SOFFICE is not None
    outdir = tmp_path / f"converted-{to}"
    profile = tmp_path / "lo-profile"
    subprocess.run(
        [SOFFICE, f"-env:UserInstallation={profile.as_uri()}", "--headless", "--convert-to", to,
         "--outdir", str(outdir), str(src)],
        check=True, capture_output=True, timeout=180,
    )
    return outdir / f"{src.stem}.{to}"


@pytest.fixture(params=["fast", "fast-from-read", "openpyxl"])
def annotated(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[bytes, bytes]:
    """A return and its annotated copy, made by patching its package, by patching it from the sheets that read_book
    already decompressed (as ingest does), and by patching the package openpyxl rebuilds from it (what a package the
    patcher does not handle gets)."""
    data = returned_workbook(tmp_path / "return.xlsx")
    lines = ["結果：退回", "收件編號：R-42"]
    fast = request.param != "openpyxl"
    parts = read_book(data).parts if request.param == "fast-from-read" else None
    if parts is not None:
        assert {f"xl/worksheets/sheet{i}.xml" for i in range(1, 5)} <= set(parts)
    out = annotate(data, "xlsx", findings_for_return(), title=TITLE, summary_lines=lines, fast=fast, parts=parts)
    assert made_by_patching(data, out)  # every way: the 檢核結果 sheet is described once and written by the patcher
    return data, out


def made_by_patching(data: bytes, out: bytes) -> bool:
    """The patcher copies the sheets it does not mark and writes 檢核結果 with inline UTF-8 strings."""
    with zipfile.ZipFile(io.BytesIO(data)) as a, zipfile.ZipFile(io.BytesIO(out)) as b:
        sheets = [n for n in b.namelist() if n.startswith("xl/worksheets/") and n.endswith(".xml")]
        added = [n for n in sheets if n not in a.namelist()]
        return len(added) == 1 and '<t xml:space="preserve">序號</t>'.encode() in b.read(added[0])


# --- xlsx: the fast path and the openpyxl path -------------------------------------------------------------


def test_summary_sheet_is_first_active_and_lists_every_finding(annotated: tuple[bytes, bytes]) -> None:
    _, out = annotated
    wb = openpyxl.load_workbook(io.BytesIO(out))
    assert wb.sheetnames == [SUMMARY_SHEET, "填表說明", "填報表", "_stamp", "_meta"]
    assert wb.active is not None and wb.active.title == SUMMARY_SHEET
    assert [ws.title for ws in wb.worksheets if ws.sheet_view.tabSelected] == [SUMMARY_SHEET]
    ws = wb[SUMMARY_SHEET]
    assert ws["A1"].value == TITLE
    assert [ws["A2"].value, ws["A3"].value] == ["結果：退回", "收件編號：R-42"]
    header, rows = summary_rows(ws)
    assert ws.freeze_panes == f"A{header + 1}"
    expected = findings_for_return()
    assert [r[0] for r in rows] == list(range(1, len(expected) + 1))
    listed = sorted(tuple(x or "" for x in r[1:]) for r in rows)
    wanted = sorted(
        tuple(x or "" for x in ({"error": "錯誤", "warning": "警告"}[f.severity], *astuple(f)[3:], f.message))
        for f in expected
    )
    assert listed == wanted
    # errors first (whole-file, then by sheet, row, column; unknown places last), then warnings likewise
    assert [(r[1], r[2], r[3]) for r in rows] == [
        ("錯誤", "填報表", "F3"),
        ("錯誤", "填報表", "C4"),
        ("錯誤", "填報表", "D4"),
        ("錯誤", "填報表", "C5"),
        ("錯誤", "附表二", "A1"),
        ("錯誤", "填報表", "ZZ"),
        ("警告", None, None),
        ("警告", "填報表", "C5"),
        ("警告", "填報表", "B6"),
    ]
    assert ws.column_dimensions["G"].width >= 60  # 說明 holds whole Chinese sentences


def test_summary_links_point_at_the_failing_cells(annotated: tuple[bytes, bytes]) -> None:
    _, out = annotated
    ws = openpyxl.load_workbook(io.BytesIO(out))[SUMMARY_SHEET]
    header, rows = summary_rows(ws)
    for offset, row in enumerate(rows, start=1):
        link = ws.cell(row=header + offset, column=4).hyperlink
        if row[2] == "填報表" and row[3] != "ZZ":
            column, number = re.fullmatch(r"([A-Z]+)(\d+)", row[3]).groups()  # type: ignore[union-attr]
            assert link is not None and link.location == f"'填報表'!${column}${number}"
            assert not link.target  # internal: no external relationship Excel would treat as a file
        else:
            assert link is None  # whole-file finding, missing sheet, malformed cell: listed only


def test_comments_and_fills_sit_on_exactly_the_failing_cells(annotated: tuple[bytes, bytes]) -> None:
    data, out = annotated
    before = openpyxl.load_workbook(io.BytesIO(data))["填報表"]
    ws = openpyxl.load_workbook(io.BytesIO(out))["填報表"]
    found = {f.cell: f for f in findings_for_return() if f.sheet == "填報表"}
    notes = commented(ws)
    assert set(notes) == {"C4", "D4", "C5", "B6", "F3"}
    assert all(n.author == COMMENT_AUTHOR for n in notes.values())
    assert notes["C4"].text == "錯誤：" + found["C4"].message
    both = [f.message for f in findings_for_return() if f.cell == "C5"]
    assert notes["C5"].text.split("\n") == ["錯誤：" + both[0], "警告：" + both[1]]
    assert found["F3"].message in notes["F3"].text and "承辦人：請參考附件" in notes["F3"].text
    with zipfile.ZipFile(io.BytesIO(out)) as z:
        vml = "".join(z.read(n).decode() for n in z.namelist() if n.endswith(".vml"))
    widths = [int(w) for w in re.findall(r"width:(\d+)px", vml)]
    assert len(widths) == 5 and min(widths) >= 240  # comment boxes wide enough for a Chinese sentence
    assert fill_rgb(ws["C4"]) == ERROR_RGB and fill_rgb(ws["D4"]) == ERROR_RGB
    assert fill_rgb(ws["C5"]) == ERROR_RGB  # an error and a warning: the worst wins
    assert fill_rgb(ws["B6"]) == WARNING_RGB
    assert fill_rgb(ws["F3"]) == ERROR_RGB
    for row in before.iter_rows():
        for cell in row:
            if cell.coordinate not in notes:
                assert fill_rgb(ws[cell.coordinate]) == fill_rgb(cell), cell.coordinate
    assert fill_rgb(ws["A6"]) == GREY


def test_agency_data_is_unchanged(annotated: tuple[bytes, bytes]) -> None:
    data, out = annotated
    for sheet in ["填表說明", "填報表", "_stamp", "_meta"]:
        assert openpyxl_cells(out, sheet) == openpyxl_cells(data, sheet), sheet
    before, after = calamine_cells(data), calamine_cells(out)
    assert {k: v for k, v in after.items() if k != SUMMARY_SHEET} == before
    wb_in = openpyxl.load_workbook(io.BytesIO(data))
    wb_out = openpyxl.load_workbook(io.BytesIO(out))
    form, copy = wb_in["填報表"], wb_out["填報表"]
    assert copy["E3"].value == "=C3/1000" and copy["E3"].data_type == "f"
    assert copy["F3"].value == "=1+1" and copy["F3"].data_type == "s"
    assert copy["D3"].is_date and copy["D3"].number_format == "[$-404]e/mm/dd"
    assert copy.protection.sheet and copy.protection.password == form.protection.password
    assert [(c.coordinate, c.protection.locked) for row in copy.iter_rows(max_row=6) for c in row] == [
        (c.coordinate, c.protection.locked) for row in form.iter_rows(max_row=6) for c in row
    ]
    assert [str(r) for r in copy.merged_cells.ranges] == ["A1:F1"]
    assert wb_out["_stamp"].sheet_state == "hidden" and wb_out["_meta"].sheet_state == "veryHidden"


def test_formula_looking_text_in_findings_stays_text(annotated: tuple[bytes, bytes]) -> None:
    _, out = annotated
    ws = openpyxl.load_workbook(io.BytesIO(out))[SUMMARY_SHEET]
    header, rows = summary_rows(ws)
    typed = [header + i for i, r in enumerate(rows, start=1) if r[5] in ("=SUM(A1)", "=1+1")]
    assert [ws.cell(row=r, column=6).value for r in typed] == ["=1+1", "=SUM(A1)"]
    assert all(ws.cell(row=r, column=6).data_type == "s" for r in typed)
    assert calamine_cells(out)[SUMMARY_SHEET][(typed[1] - 1, 5)] == "=SUM(A1)"  # text, not a formula


def test_original_bytes_are_not_touched_and_output_is_plain_xlsx(tmp_path: Path) -> None:
    src = CORPUS / "calamine__tests__issue221.xlsm"
    data = src.read_bytes()
    out = annotate(data, "xlsm", [Finding("value.invalid", "error", "不符規定", "Sheet1", "B2")])
    assert src.read_bytes() == data
    assert made_by_patching(data, out)
    with zipfile.ZipFile(io.BytesIO(out)) as z:
        types = z.read("[Content_Types].xml").decode()
    assert "macroEnabled" not in types and "spreadsheetml.sheet.main+xml" in types
    wb = openpyxl.load_workbook(io.BytesIO(out))
    assert wb.sheetnames == [SUMMARY_SHEET, "Sheet1"]
    assert wb["Sheet1"]["B2"].value == "Cell_B2" and wb["Sheet1"]["B2"].comment is not None
    assert {k: v for k, v in calamine_cells(out).items() if k != SUMMARY_SHEET} == calamine_cells(data)


def test_merged_cells_ranges_and_loose_addresses(tmp_path: Path) -> None:
    data = returned_workbook(tmp_path / "return.xlsx")
    findings = [
        Finding("row.rule", "warning", "標題被修改", "填報表", "C1"),  # inside the merged title A1:F1
        Finding("row.rule", "error", "整列有誤", "填報表", "A4:B4"),
        Finding("row.rule", "error", "小寫位址", "填報表", "$d$6"),
        Finding("row.rule", "error", "工作表名稱大小寫不同", "_STAMP", "B1"),
        Finding("row.rule", "error", "超出範圍", "填報表", "A0"),
    ]
    out = annotate(data, "xlsx", findings)
    wb = openpyxl.load_workbook(io.BytesIO(out))
    ws = wb["填報表"]
    assert set(commented(ws)) == {"A1", "A4", "D6", "F3"}  # F3 holds the agency's own comment
    assert commented(ws)["A1"].text == "警告：標題被修改"
    assert fill_rgb(ws["A1"]) == WARNING_RGB
    assert fill_rgb(ws["A4"]) == ERROR_RGB and fill_rgb(ws["B4"]) == ERROR_RGB
    assert fill_rgb(ws["D6"]) == ERROR_RGB
    assert wb["_stamp"]["B1"].comment is not None and fill_rgb(wb["_stamp"]["B1"]) == ERROR_RGB
    summary = wb[SUMMARY_SHEET]
    header, rows = summary_rows(summary)
    links = {r[3]: summary.cell(row=header + i, column=4).hyperlink for i, r in enumerate(rows, start=1)}
    assert links["A4:B4"] is not None and links["A4:B4"].location == "'填報表'!$A$4:$B$4"
    assert links["$d$6"] is not None and links["$d$6"].location == "'填報表'!$D$6"
    assert links["A0"] is None


def test_sheet_names_with_quotes_and_a_previous_summary_sheet(tmp_path: Path) -> None:
    wb = openpyxl.Workbook()
    old = wb.active
    assert old is not None
    old.title = SUMMARY_SHEET  # the agency sent back the annotated copy of its last submission
    old["A1"] = "舊的檢核結果"
    ws = wb.create_sheet("O'Neil 表")
    ws["B2"] = 5
    path = tmp_path / "again.xlsx"
    wb.save(path)
    out = annotate(path.read_bytes(), "xlsx", [Finding("value.min", "error", "太小", "O'Neil 表", "B2")])
    back = openpyxl.load_workbook(io.BytesIO(out))
    assert back.sheetnames == [f"{SUMMARY_SHEET} (2)", SUMMARY_SHEET, "O'Neil 表"]
    assert back[SUMMARY_SHEET]["A1"].value == "舊的檢核結果"
    summary = back[f"{SUMMARY_SHEET} (2)"]
    header, _ = summary_rows(summary)
    link = summary.cell(row=header + 1, column=4).hyperlink
    assert link is not None and link.location == "'O''Neil 表'!$B$2"


def test_no_findings_says_so(tmp_path: Path) -> None:
    data = returned_workbook(tmp_path / "return.xlsx")
    wb = openpyxl.load_workbook(io.BytesIO(annotate(data, "xlsx", [], title=TITLE)))
    summary = wb[SUMMARY_SHEET]
    assert "沒有發現任何問題。" in [c.value for c in summary["A"]]
    assert summary_rows(summary)[1] == []
    assert set(commented(wb["填報表"])) == {"F3"}


# --- value-copy path: xls, ods, files openpyxl cannot open -------------------------------------------------


def test_xls_from_the_corpus_keeps_values_at_their_addresses() -> None:
    data = (CORPUS / "apache-poi__test-data__spreadsheet__27852.xls").read_bytes()  # Sheet1 starts at C3
    findings = [
        Finding("value.invalid", "error", "姓名不符", "Sheet1", "E6", "姓名", "john"),
        Finding("compare.tenfold", "warning", "合計偏高", "Sheet1", "C7", "合計", "35"),
    ]
    out = annotate(data, "xls", findings, title="xls")
    assert {k: v for k, v in calamine_cells(out).items() if k != SUMMARY_SHEET} == calamine_cells(data)
    wb = openpyxl.load_workbook(io.BytesIO(out))
    assert wb.sheetnames == [SUMMARY_SHEET, "Sheet1", "Sheet2", "Sheet3"]
    ws = wb["Sheet1"]
    assert ws["E6"].value == "john" and ws["C7"].value == 35
    assert set(commented(ws)) == {"E6", "C7"}
    assert fill_rgb(ws["E6"]) == ERROR_RGB and fill_rgb(ws["C7"]) == WARNING_RGB


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("calamine__tests__date.xls", "xls"),  # dates and a duration
        ("ExcelDataReader__src__TestData__Test_BlankHeader.xls", "xls"),  # data starts on row 2
        ("ExcelDataReader__src__TestData__TestChess.xlsb", "xlsb"),
        ("ExcelDataReader__src__TestData__roo_1900_base.xlsb", "xlsb"),
    ],
)
def test_other_corpus_files_keep_every_value(name: str, kind: str) -> None:
    data = (CORPUS / name).read_bytes()
    first = CalamineWorkbook.from_filelike(io.BytesIO(data)).sheet_names[0]
    out = annotate(data, kind, [Finding("row.rule", "error", "請確認", first, "B3")])
    assert {k: v for k, v in calamine_cells(out).items() if k != SUMMARY_SHEET} == calamine_cells(data)
    ws = openpyxl.load_workbook(io.BytesIO(out))[first]
    assert set(commented(ws)) == {"B3"} and fill_rgb(ws["B3"]) == ERROR_RGB


def test_xlsx_openpyxl_cannot_open_falls_back_to_a_value_copy() -> None:
    data = (CORPUS / "calamine__tests__issue_530.xlsx").read_bytes()
    with pytest.raises(KeyError):
        openpyxl.load_workbook(io.BytesIO(data))
    sheet = "出勤分类组织汇总表"
    out = annotate(data, "xlsx", [Finding("value.required", "error", "「姓名」必須填寫。", sheet, "B2")])
    assert {k: v for k, v in calamine_cells(out).items() if k != SUMMARY_SHEET} == calamine_cells(data)
    ws = openpyxl.load_workbook(io.BytesIO(out))[sheet]
    assert ws["B2"].comment is not None and ws["B2"].comment.text == "錯誤：「姓名」必須填寫。"


def test_unreadable_file_still_gives_the_list_of_findings() -> None:
    findings = [make("file.corrupt", detail="zip")]
    out = annotate(b"PK\x03\x04 not really a workbook", "xlsx", findings, summary_lines=["結果：退回"])
    wb = openpyxl.load_workbook(io.BytesIO(out))
    assert wb.sheetnames == [SUMMARY_SHEET]
    _, rows = summary_rows(wb[SUMMARY_SHEET])
    assert [r[6] for r in rows] == [findings[0].message]


def ods_return(tmp_path: Path) -> tuple[bytes, Path]:
    """An .ods return made by LibreOffice from a workbook whose data starts at B3."""
    if SOFFICE is None:
        pytest.skip("LibreOffice (soffice) is not installed")
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "填報表"
    ws["B3"] = "機關名稱"
    ws["C3"] = "核定金額"
    ws["D3"] = "動支日期"
    ws["E3"] = "備註"
    ws["B4"] = "臺北市政府衛生局"
    ws["C4"] = 1_200_000
    ws["D4"] = dt.date(2026, 3, 5)
    ws["E4"] = "=1+1"
    ws["E4"].data_type = "s"
    ws["B5"] = "臺北市立聯合醫院"
    ws["C5"] = "一千"
    hidden = wb.create_sheet("_stamp")
    hidden["A1"] = "token"
    hidden.sheet_state = "hidden"
    src = tmp_path / "return.xlsx"
    wb.save(src)
    ods = soffice_convert(src, "ods", tmp_path)
    return ods.read_bytes(), ods


def test_ods_return_is_copied_and_annotated(tmp_path: Path) -> None:
    data, _ = ods_return(tmp_path)
    findings = [
        make("value.not_number", sheet="填報表", cell="C5", column="核定金額", value="一千"),
        make("compare.tenfold", sheet="填報表", cell="C4", column="核定金額", value=1_200_000, detail="1"),
    ]
    out = annotate(data, "ods", findings, title=TITLE)
    assert {k: v for k, v in calamine_cells(out).items() if k != SUMMARY_SHEET} == calamine_cells(data)
    wb = openpyxl.load_workbook(io.BytesIO(out))
    assert wb.sheetnames == [SUMMARY_SHEET, "填報表", "_stamp"]
    assert wb["_stamp"].sheet_state == "hidden"
    ws = wb["填報表"]
    assert ws["B4"].value == "臺北市政府衛生局" and ws["C4"].value == 1_200_000
    assert ws["D4"].is_date and ws["D4"].value == dt.datetime(2026, 3, 5)
    assert ws["E4"].value == "=1+1" and ws["E4"].data_type == "s"
    assert set(commented(ws)) == {"C4", "C5"}
    assert fill_rgb(ws["C5"]) == ERROR_RGB and fill_rgb(ws["C4"]) == WARNING_RGB
    summary = wb[SUMMARY_SHEET]
    header, _ = summary_rows(summary)
    link = summary.cell(row=header + 1, column=4).hyperlink
    assert link is not None and link.location == "'填報表'!$C$5"




# --- the fast path: what it keeps, what it adds, what LibreOffice makes of it ------------------------------


def form_with_gaps(path: Path) -> bytes:
    """A form whose unlocked input columns C:D hold blank cells that the sheet XML does not contain at all."""
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "填報表"
    ws.append(["機關代碼", "機關名稱", "核定金額", "動支日期"])
    for i in range(3, 8):
        ws.cell(row=i, column=1, value=f"A00{i}")
        ws.cell(row=i, column=2, value="臺北市政府")
    ws["C3"] = 100
    ws.column_dimensions["C"].protection = Protection(locked=False)  # a column style: blank cells stay editable
    ws.column_dimensions["D"].protection = Protection(locked=False)
    ws.protection.sheet = True
    ws.print_area = "A1:D7"
    other = wb.create_sheet("附表")
    other["A1"] = "附表"
    wb.defined_names["本表合計"] = DefinedName("本表合計", attr_text="'附表'!$A$1")
    other.defined_names["附表範圍"] = DefinedName("附表範圍", attr_text="'附表'!$A$1:$B$2")
    wb.save(path)
    return path.read_bytes()


def ods_notes(path: Path) -> dict[str, dict[str, str]]:
    """{sheet: {cell: note text}} of an .ods as LibreOffice wrote it."""
    ns = {
        "table": "urn:oasis:names:tc:opendocument:xmlns:table:1.0",
        "office": "urn:oasis:names:tc:opendocument:xmlns:office:1.0",
        "text": "urn:oasis:names:tc:opendocument:xmlns:text:1.0",
    }
    t = "{" + ns["table"] + "}"
    with zipfile.ZipFile(path) as z:
        root = ElementTree.fromstring(z.read("content.xml"))
    out: dict[str, dict[str, str]] = {}
    for table in root.iter(f"{t}table"):
        notes: dict[str, str] = {}
        r = 0
        for row in table.iter(f"{t}table-row"):
            c = 0
            for cell in row:
                if cell.tag not in (f"{t}table-cell", f"{t}covered-table-cell"):
                    continue
                note = cell.find("office:annotation", ns)
                if note is not None:
                    text = "\n".join("".join(p.itertext()) for p in note.findall("text:p", ns))
                    notes[f"{get_column_letter(c + 1)}{r + 1}"] = text
                c += int(cell.get(f"{t}number-columns-repeated", "1"))
            r += int(row.get(f"{t}number-rows-repeated", "1"))
        out[table.get(f"{t}name", "")] = notes
    return out


GAP_FINDINGS = [
    make("value.required", sheet="填報表", cell="C5", column="核定金額"),
    make("value.required", sheet="填報表", cell="D7", column="動支日期"),
    make("value.required", sheet="填報表", cell="D12", column="動支日期"),  # a row the XML does not hold
]


@pytest.fixture(scope="module")
def fast_outputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[bytes, bytes, Path]]:
    """Fast-path copies of several returns, each also converted to .ods in one LibreOffice run."""
    tmp = tmp_path_factory.mktemp("fast")
    cases: dict[str, tuple[bytes, list[Finding]]] = {}
    cases["return"] = (returned_workbook(tmp / "return.xlsx"), findings_for_return())
    cases["gaps"] = (form_with_gaps(tmp / "gaps.xlsx"), GAP_FINDINGS)
    excel = (CORPUS / "openpyxl-theorchard-mirror__openpyxl__comments__tests__data__comments.xlsx").read_bytes()
    cases["excel_comments"] = (excel, [
        Finding("row.rule", "error", "請確認", "Sheet1", "A1"),  # the agency's note is on A1 already
        Finding("row.rule", "warning", "新的", "Sheet1", "B3"),
    ])
    outs: dict[str, tuple[bytes, bytes, Path]] = {}
    paths = []
    for name, (data, found) in cases.items():
        out = annotate(data, "xlsx", found, title=TITLE)
        assert made_by_patching(data, out), name
        path = tmp / f"{name}-annotated.xlsx"
        path.write_bytes(out)
        paths.append(path)
        outs[name] = (data, out, path)
    for (name, (data, out, _)), ods in zip(list(outs.items()), convert(paths, "ods", tmp / "ods"), strict=True):
        outs[name] = (data, out, ods)
    return outs


def test_fast_path_copies_what_it_does_not_mark(fast_outputs: dict[str, tuple[bytes, bytes, Path]]) -> None:
    data, out, _ = fast_outputs["return"]
    with zipfile.ZipFile(io.BytesIO(data)) as a, zipfile.ZipFile(io.BytesIO(out)) as b:
        same = {n for n in a.namelist() if n in b.namelist() and a.read(n) == b.read(n)}
        added = set(b.namelist()) - set(a.namelist())
    assert {"xl/theme/theme1.xml", "docProps/app.xml", "xl/worksheets/sheet1.xml", "xl/worksheets/sheet3.xml",
            "xl/worksheets/sheet4.xml"} <= same  # 填表說明, _stamp and _meta were not touched
    assert added == {"xl/worksheets/sheet5.xml"}  # the 檢核結果 sheet; the agency's comments part was reused


def test_fast_path_output_opens_in_libreoffice_with_notes_and_links(
    fast_outputs: dict[str, tuple[bytes, bytes, Path]],
) -> None:
    _, _, ods = fast_outputs["return"]
    notes = ods_notes(ods)["填報表"]
    assert set(notes) == {"F3", "C4", "D4", "C5", "B6"}
    assert notes["C4"] == "錯誤：" + findings_for_return()[0].message
    assert "承辦人：請參考附件" in notes["F3"] and notes["F3"].startswith("錯誤：")
    with zipfile.ZipFile(ods) as z:
        content = z.read("content.xml").decode()
    links = re.findall(r'<text:a xlink:href="([^"]*)"', content)
    cells = ("$F$3", "$C$4", "$D$4", "$C$5", "$C$5", "$B$6")
    assert sorted(links) == sorted(f"#&apos;填報表&apos;.{c}" for c in cells)
    assert calamine_cells(ods.read_bytes())["填報表"][(4, 2)] == -5  # LibreOffice still sees the data
    assert CalamineWorkbook.from_filelike(io.BytesIO(ods.read_bytes())).sheet_names[0] == SUMMARY_SHEET


def test_agency_comments_are_kept_and_ours_go_on_top(fast_outputs: dict[str, tuple[bytes, bytes, Path]]) -> None:
    data, out, ods = fast_outputs["excel_comments"]
    before = commented(openpyxl.load_workbook(io.BytesIO(data))["Sheet1"])
    after = commented(openpyxl.load_workbook(io.BytesIO(out))["Sheet1"])
    assert set(after) == set(before) | {"B3"}
    assert after["A1"].text == "錯誤：請確認\n——\n" + before["A1"].text and after["A1"].author == COMMENT_AUTHOR
    assert after["B3"].text == "警告：新的"
    for cell in set(before) - {"A1"}:  # the agency's other notes: same text, same author
        assert (after[cell].text, after[cell].author) == (before[cell].text, before[cell].author)
    in_lo = ods_notes(ods)["Sheet1"]
    assert set(in_lo) == set(after) and in_lo["B3"] == "警告：新的" and in_lo["A1"].startswith("錯誤：請確認")
    assert {k: v for k, v in calamine_cells(out).items() if k != SUMMARY_SHEET} == calamine_cells(data)


def test_blank_cells_missing_from_the_xml_are_created_marked_and_stay_editable(
    fast_outputs: dict[str, tuple[bytes, bytes, Path]],
) -> None:
    data, out, ods = fast_outputs["gaps"]
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        sheet = z.read("xl/worksheets/sheet1.xml").decode()
    assert 'r="C5"' not in sheet and 'r="D7"' not in sheet and 'r="12"' not in sheet
    ws = openpyxl.load_workbook(io.BytesIO(out))["填報表"]
    for ref in ("C5", "D7", "D12"):
        assert fill_rgb(ws[ref]) == ERROR_RGB, ref
        assert ws[ref].comment is not None and ws[ref].comment.text.startswith("錯誤：「"), ref
        assert ws[ref].protection.locked is False, ref  # the unlocked column style carried over
        assert ws[ref].value is None
    assert ws["A5"].protection.locked is True and fill_rgb(ws["A5"]) is None
    assert set(ods_notes(ods)["填報表"]) == {"C5", "D7", "D12"}
    assert {k: v for k, v in calamine_cells(out).items() if k != SUMMARY_SHEET} == calamine_cells(data)


def test_sheet_scoped_names_and_print_areas_follow_their_sheets(
    fast_outputs: dict[str, tuple[bytes, bytes, Path]],
) -> None:
    _, out, _ = fast_outputs["gaps"]
    wb = openpyxl.load_workbook(io.BytesIO(out))
    assert wb.sheetnames == [SUMMARY_SHEET, "填報表", "附表"]
    assert wb["填報表"].print_area == "'填報表'!$A$1:$D$7"
    assert "附表範圍" in wb["附表"].defined_names and "附表範圍" not in wb["填報表"].defined_names
    assert wb["附表"].defined_names["附表範圍"].attr_text == "'附表'!$A$1:$B$2"
    assert wb.defined_names["本表合計"].attr_text == "'附表'!$A$1"
    assert not wb[SUMMARY_SHEET].defined_names.get("附表範圍")


def thousand_row_return(rows: int) -> bytes:
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "填報表"
    ws.append(["機關代碼", "機關名稱", "核定金額", "動支日期", "千元", "備註"])
    for i in range(rows):
        ws.append([f"A{i:05d}", "臺北市政府衛生局", 1000 + i, "115/03/05", f"=C{i + 2}/1000", None])
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def test_two_hundred_findings_on_a_thousand_rows() -> None:
    data = thousand_row_return(1000)
    found = [
        make("value.not_number", sheet="填報表", cell=f"{'CD'[i % 2]}{2 + i * 5}", column="核定金額", value=str(i))
        for i in range(200)
    ]
    out = annotate(data, "xlsx", found, title=TITLE)
    assert made_by_patching(data, out)
    wb = openpyxl.load_workbook(io.BytesIO(out))
    ws = wb["填報表"]
    notes = commented(ws)
    assert set(notes) == {f.cell for f in found}
    assert all(fill_rgb(ws[f.cell or ""]) == ERROR_RGB for f in found)
    assert sum(fill_rgb(c) is not None for row in ws.iter_rows() for c in row) == 200
    assert notes["D7"].text == "錯誤：" + found[1].message
    header, rows = summary_rows(wb[SUMMARY_SHEET])
    assert len(rows) == 200 and [r[3] for r in rows[:3]] == ["C2", "D7", "C12"]
    links = [wb[SUMMARY_SHEET].cell(row=header + i, column=4).hyperlink for i in range(1, 201)]
    assert all(link is not None for link in links)
    assert {k: v for k, v in calamine_cells(out).items() if k != SUMMARY_SHEET} == calamine_cells(data)


@pytest.mark.parametrize("rows", [1_000, 10_000])
def test_fast_and_openpyxl_paths_mark_the_same_cells(rows: int) -> None:
    """Both paths agree; the time each takes is printed (run with -s), never asserted."""
    data = thousand_row_return(rows)
    found = [make("value.min", sheet="填報表", cell=f"C{2 + i * (rows // 10)}", column="核定金額", value=-1,
                  detail=0) for i in range(10)]
    results = {}
    for fast in (True, False):
        start = time.perf_counter()
        results[fast] = annotate(data, "xlsx", found, title=TITLE, fast=fast)
        print(f"annotate {rows} rows, 10 findings, {'fast' if fast else 'openpyxl'} path: "
              f"{(time.perf_counter() - start) * 1000:.0f} ms")
    marked = []
    for out in results.values():
        ws = openpyxl.load_workbook(io.BytesIO(out), read_only=False)["填報表"]
        marked.append(({c: n.text for c, n in commented(ws).items()},
                       {c.coordinate for row in ws.iter_rows() for c in row if fill_rgb(c)}))
    assert marked[0] == marked[1] and len(marked[0][0]) == 10


def test_summary_sheet_prints_one_page_wide_on_a4_landscape(annotated: tuple[bytes, bytes]) -> None:
    """Seen rendered: the 說明 column of 檢核結果 printed on a page of its own, away from its finding."""
    ws = openpyxl.load_workbook(io.BytesIO(annotated[1])).worksheets[0]
    assert ws.title == "檢核結果"
    assert ws.sheet_properties.pageSetUpPr.fitToPage
    assert (ws.page_setup.orientation, ws.page_setup.fitToWidth, ws.page_setup.fitToHeight) == ("landscape", 1, 0)
    assert str(ws.page_setup.paperSize) == "9"


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "openpyxl"])
def test_a_long_message_gets_the_lines_it_needs(tmp_path: Path, fast: bool) -> None:
    """Seen rendered: a 說明 longer than its column showed one line, cut at the page's edge (neither Excel nor
    LibreOffice grows a row for wrapped text when it opens a written file). Its row is now as tall as its lines."""
    data = returned_workbook(tmp_path / "return.xlsx")
    short = make("value.required", sheet="填報表", cell="E7", column="核定經費")
    long = make("value.choice", sheet="填報表", cell="C8", column="類別", value="不存在的類別" * 30,
                detail="防疫、紓困、振興")
    out = annotate(data, "xlsx", [short, long], title=TITLE, fast=fast)
    assert made_by_patching(data, out)
    ws = openpyxl.load_workbook(io.BytesIO(out)).worksheets[0]
    rows = {ws.cell(row=r, column=4).value: r for r in range(1, ws.max_row + 1)}
    width = ws.column_dimensions["G"].width
    lines = -(-sum(2 if ord(ch) > 0x2E7F else 1 for ch in long.message) // (width - 1))
    assert lines >= 3
    assert ws.row_dimensions[rows["C8"]].height >= lines * 15
    assert ws.row_dimensions[rows["E7"]].height in (None, 15)  # one line: the sheet's default


def _with_member(data: bytes, name: str, edit: Any) -> bytes:
    """The package with one member's text changed by `edit`."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            body = src.read(info)
            dst.writestr(info.filename, edit(body.decode()).encode() if info.filename == name else body)
    return out.getvalue()


def test_a_package_the_patcher_does_not_handle_is_logged_with_why_and_still_marked(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """No styles part: the patcher says so in the log, openpyxl rebuilds the package, and that is patched."""
    data = _with_member(returned_workbook(tmp_path / "return.xlsx"), "xl/_rels/workbook.xml.rels",
                        lambda xml: re.sub(r'<Relationship [^>]*"styles.xml"[^>]*/>', "", xml))
    caplog.set_level("INFO", logger="collect.receive.annotate")
    out = annotate(data, "xlsx", findings_for_return()[:1], title=TITLE)
    said = [r for r in caplog.records if r.name == "collect.receive.annotate"]
    assert [(r.levelname, "no styles part" in r.getMessage()) for r in said] == [("INFO", True)]
    ws = openpyxl.load_workbook(io.BytesIO(out))["填報表"]
    assert fill_rgb(ws["C4"]) == ERROR_RGB and ws["C4"].comment is not None


def test_a_failure_of_the_patcher_is_logged_with_its_traceback_never_swallowed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A sheet id that is no number makes the patcher fail where it did not expect to: that is a warning with the
    exception attached (a bug shows in the log), and the agency still gets its copy with the list of findings."""
    data = _with_member(returned_workbook(tmp_path / "return.xlsx"), "xl/workbook.xml",
                        lambda xml: xml.replace('sheetId="1"', 'sheetId="one"', 1))
    caplog.set_level("INFO", logger="collect.receive.annotate")
    out = annotate(data, "xlsx", findings_for_return(), title=TITLE)
    failed = [r for r in caplog.records if r.name == "collect.receive.annotate" and r.levelname == "WARNING"]
    message = failed[0].getMessage() if failed else ""
    assert "patching the agency's package" in message and "ValueError" in message
    assert failed[0].exc_info is not None and isinstance(failed[0].exc_info[1], ValueError)
    wb = openpyxl.load_workbook(io.BytesIO(out))
    assert wb.sheetnames[0] == SUMMARY_SHEET
    assert len(summary_rows(wb[SUMMARY_SHEET])[1]) == len(findings_for_return())
