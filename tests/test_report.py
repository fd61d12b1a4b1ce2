"""Tests of the master report: real xlsx, Parquet and CSV files written, then read back with other libraries."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime
from pathlib import Path
from typing import Any

import openpyxl
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from collect.report import workbooks as report
from collect.report.workbooks import ReportColumn, ReportInput, master_name, write_reports
from collect.xlsx.printing import PrintSetup
from collect.xlsx.writer import HOUSE, Sheet, xf_index

BIG = 9_007_199_254_740_993  # 2**53 + 1: a float cannot hold it
HYPERLINK = '=HYPERLINK("http://x")'
AT_SUM = "@SUM(A1)"

SUPERVISORS = {"A00": "臺北市政府教育局", "B00": "臺北市政府衛生局", "C00": "臺北市政府社會局"}
# agency, name, supervisor, state
AGENCIES = [
    ("A00", "臺北市政府教育局", "A00", "accepted"),
    ("A01", "臺北市立建國高級中學", "A00", "late"),
    ("A02", "臺北市立動物園", "A00", "rejected"),
    ("B00", "臺北市政府衛生局", "B00", "accepted"),
    ("B01", "臺北市立聯合醫院", "B00", "exempt"),
    ("C00", "臺北市政府社會局", "C00", "issued"),
    ("C01", "臺北市家庭暴力暨性侵害防治中心", "C00", "received"),
]
COLUMNS = [
    ReportColumn("item", "計畫項目", "text"),
    ReportColumn("approved", "核定經費", "whole", money=True),
    ReportColumn("spent", "實支數", "whole", money=True),
    ReportColumn("cases", "案件數", "whole"),
    ReportColumn("approved_on", "核定日期", "date"),
    ReportColumn("rate", "執行率", "rate"),
    ReportColumn("kind", "經費類別", "choice"),
]
# agency, item, approved, spent, cases, approved_on, rate, kind
ROWS = [
    ("A00", "防疫物資採購", BIG, 1_250_000, 3, date(2026, 3, 5), 0.5, "經常門"),
    ("A00", HYPERLINK, 2_000_000, 1_999_999, None, date(2026, 4, 1), 0.25, "資本門"),
    ("A01", AT_SUM, 3_500_000, None, 12, None, None, "經常門"),
    ("B00", "疫苗接種站", 40_000_000, 38_765_432, 7, date(2026, 10, 31), 0.969, "經常門"),
    ("B00", "-快篩試劑", 5, 5, 1, date(2026, 1, 2), 1.0, "資本門"),
]
GENERATED = datetime(2026, 11, 3, 9, 30)


def make_input(agencies: list[tuple[str, str, str, str]] = AGENCIES,
               rows: list[tuple[Any, ...]] = ROWS) -> ReportInput:
    names = {code: name for code, name, _, _ in agencies}
    sup_of = {code: sup for code, _, sup, _ in agencies}
    agency_frame = pd.DataFrame({
        "agency": [a[0] for a in agencies],
        "agency_name": [a[1] for a in agencies],
        "kind": ["公務機關"] * len(agencies),
        "supervisor": [a[2] for a in agencies],
        "supervisor_name": [SUPERVISORS[a[2]] for a in agencies],
        "state": [a[3] for a in agencies],
        "emails": [f"{a[0].lower()}@gov.taipei; boss.{a[0].lower()}@gov.taipei" for a in agencies],
        "last_received": [datetime(2026, 10, 30, 17, 5) if a[3] != "issued" else None for a in agencies],
        "last_reminded": [datetime(2026, 11, 1, 8, 0) if a[3] in ("issued", "rejected") else None
                          for a in agencies],
        "receipt": [f"R-{a[0]}" if a[3] in ("accepted", "late") else None for a in agencies],
        "errors": [0] * len(agencies),
        "warnings": [0] * len(agencies),
    })
    row_frame = pd.DataFrame({
        "agency": [r[0] for r in rows],
        "agency_name": [names[r[0]] for r in rows],
        "supervisor": [sup_of[r[0]] for r in rows],
        "supervisor_name": [SUPERVISORS[sup_of[r[0]]] for r in rows],
        "receipt": [f"R-{r[0]}" for r in rows],
        "item": [r[1] for r in rows],
        "approved": pd.array([r[2] for r in rows], dtype="Int64"),
        "spent": pd.array([r[3] for r in rows], dtype="Int64"),
        "cases": pd.array([r[4] for r in rows], dtype="Int64"),
        "approved_on": pd.to_datetime(pd.Series([r[5] for r in rows], dtype=object)),
        "rate": [r[6] for r in rows],
        "kind": [r[7] for r in rows],
    })
    findings = pd.DataFrame({
        "agency": ["A00", "B00", "A02", "A01"],
        "agency_name": ["臺北市政府教育局", "臺北市政府衛生局", "臺北市立動物園", "臺北市立建國高級中學"],
        "supervisor": ["A00", "B00", "A00", "A00"],
        "receipt": ["R-A00", "R-B00", "R-A02", "R-A01"],
        "which": ["counting", "counting", "latest", "counting"],
        "code": ["compare.tenfold", "row.rule_warning", "value.not_whole", "compare.decreased"],
        "severity": ["warning", "warning", "error", "warning"],
        "sheet": ["填報表"] * 4,
        "cell": ["C5", "D6", "C7", "D5"],
        "column": ["核定經費", "實支數", "核定經費", "實支數"],
        "value": ["2000000", "38765432", "=1+1", "0"],
        "message": ["請確認", "請確認", "「核定經費」應為整數（新臺幣元），填寫的是「=1+1」。", "請確認"],
        "amount": pd.array([2_000_000, 40_000_000, None, 3_500_000], dtype="Int64"),
    })
    return ReportInput("covid19", "嚴重特殊傳染性肺炎經費動支及執行情形", "2026-10", "115年10月", GENERATED,
                       COLUMNS, row_frame, agency_frame, findings)


def cell_int(value: Any) -> int:
    """A whole number as the report shows it: a number cell, or text with separators when beyond 15 digits."""
    if isinstance(value, str):
        return int(value.replace(",", ""))
    assert isinstance(value, int), f"{value!r} is not an exact integer"
    return value


def sheet_rows(path: Path, sheet: str) -> list[tuple[Any, ...]]:
    wb = openpyxl.load_workbook(path)
    return [tuple(r) for r in wb[sheet].iter_rows(values_only=True)]


def supervisor_table(path: Path) -> dict[str, tuple[Any, ...]]:
    """The table on 摘要: first-column label -> the row, from its header (主管機關) down to 合計."""
    rows = sheet_rows(path, "摘要")
    start = next(i for i, r in enumerate(rows) if r[0] == "主管機關")
    table: dict[str, tuple[Any, ...]] = {}
    for r in rows[start + 1:]:
        table[r[0]] = r
        if r[0] == "合計":
            break
    return table


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> report.ReportFiles:
    """The reports of the sample round, written once for the read-only tests below."""
    return write_reports(make_input(), tmp_path_factory.mktemp("out") / "report")


def test_files_are_named_for_the_round_and_each_supervising_agency(files):
    assert files.master.name == "covid19-2026-10-總表.xlsx" == master_name(make_input())
    assert {code: p.name for code, p in files.supervisors.items()} == {
        "A00": "covid19-2026-10-A00-臺北市政府教育局.xlsx",
        "B00": "covid19-2026-10-B00-臺北市政府衛生局.xlsx",
        "C00": "covid19-2026-10-C00-臺北市政府社會局.xlsx",
    }
    for path in [files.master, *files.supervisors.values(), files.parquet, files.csv]:
        assert path.is_file() and path.parent == files.master.parent
    assert not list(files.master.parent.glob(".*part")), "temporary files were left behind"
    assert openpyxl.load_workbook(files.master).sheetnames == ["摘要", "明細", "檢核例外", "未繳交"]


def test_summary_totals_are_exact_integer_sums(files):
    table = supervisor_table(files.master)
    approved = [r[2] for r in ROWS]
    spent = [r[3] for r in ROWS if r[3] is not None]
    total = table["合計"]
    assert cell_int(total[3]) == sum(approved) == BIG + 2_000_000 + 3_500_000 + 40_000_000 + 5
    assert cell_int(total[4]) == sum(spent)
    # Within Excel's 15 digits the sum is a real number cell, not text and not a formula.
    assert isinstance(total[4], int)
    assert total[1:3] == (7, 3)  # units in scope, accepted (late counts as accepted)

    assert list(table) == ["臺北市政府教育局", "臺北市政府衛生局", "臺北市政府社會局", "合計"]
    edu, health, social = table["臺北市政府教育局"], table["臺北市政府衛生局"], table["臺北市政府社會局"]
    assert (edu[1], edu[2], cell_int(edu[3]), cell_int(edu[4])) == (3, 2, BIG + 5_500_000, 3_249_999)
    assert (health[1], health[2], health[3], health[4]) == (2, 1, 40_000_005, 38_765_437)
    assert (social[1], social[2], social[3], social[4]) == (2, 0, 0, 0)
    # The sum beyond 15 digits keeps every digit as text instead of being rounded by Excel.
    assert edu[3] == f"{BIG + 5_500_000:,}"


def test_summary_shows_title_kpis_chart_and_no_formulas(files):
    wb = openpyxl.load_workbook(files.master)
    ws = wb["摘要"]
    rows = [tuple(r) for r in ws.iter_rows(values_only=True)]
    assert rows[0][0] == "嚴重特殊傳染性肺炎經費動支及執行情形　115年10月　總表"
    assert "115/11/03 09:30" in rows[1][0]  # ROC, as agencies and managers read dates
    kpis = {r[0]: r[1] for r in rows if r[0] and r[1] is not None and isinstance(r[1], int)}
    assert kpis["應填報機關數"] == 7
    assert kpis["已完成繳交（含逾期）"] == 3
    assert kpis["準時完成"] == 2
    assert kpis["免填報"] == 1
    assert kpis["尚未完成"] == 3
    assert kpis["資料列數"] == 5
    assert any(r[0] and "15 位有效數字" in r[0] for r in rows[:6])  # why one amount is shown as text
    assert len(ws._charts) == 1
    assert all(c.data_type != "f" for row in ws.iter_rows() for c in row)


def test_provisional_line_appears_only_while_agencies_are_missing(files, tmp_path):
    first_lines = [r[0] for r in sheet_rows(files.master, "摘要")[:5]]
    assert "尚有 3 個機關未完成繳交（截至 115/11/03 09:30），本表為暫定數。" in first_lines
    health_lines = [r[0] for r in sheet_rows(files.supervisors["B00"], "摘要")[:5]]
    assert not any(line and "暫定數" in line for line in health_lines)  # B00 accepted, B01 exempt
    edu_lines = [r[0] for r in sheet_rows(files.supervisors["A00"], "摘要")[:5]]
    assert "尚有 1 個機關未完成繳交（截至 115/11/03 09:30），本表為暫定數。" in edu_lines

    complete = [(c, n, s, "exempt" if st not in ("accepted", "late") else st) for c, n, s, st in AGENCIES]
    done = write_reports(make_input(agencies=complete), tmp_path)
    assert not any(r[0] and "暫定數" in str(r[0]) for r in sheet_rows(done.master, "摘要"))
    assert sheet_rows(done.master, "未繳交")[1:] == [("所有機關均已完成繳交。", None, None, None, None, None, None)]


def test_detail_sheet_holds_every_row_with_agency_columns_in_front(files):
    wb = openpyxl.load_workbook(files.master)
    ws = wb["明細"]
    rows = [tuple(r) for r in ws.iter_rows(values_only=True)]
    assert rows[0] == ("機關代碼", "機關名稱", "主管機關", "計畫項目", "核定經費", "實支數", "案件數", "核定日期",
                       "執行率", "經費類別")
    assert len(rows) == len(ROWS) + 1
    assert [r[:3] for r in rows[1:]] == [
        ("A00", "臺北市政府教育局", "臺北市政府教育局"),
        ("A00", "臺北市政府教育局", "臺北市政府教育局"),
        ("A01", "臺北市立建國高級中學", "臺北市政府教育局"),
        ("B00", "臺北市政府衛生局", "臺北市政府衛生局"),
        ("B00", "臺北市政府衛生局", "臺北市政府衛生局"),
    ]
    assert rows[4][4:10] == (40_000_000, 38_765_432, 7, datetime(2026, 10, 31), 0.969, "經常門")
    assert rows[3][5] is None and rows[3][7] is None  # blanks stay blank
    assert cell_int(rows[1][4]) == BIG
    money, day, rate = ws["E5"], ws["H5"], ws["I5"]
    assert money.number_format == "#,##0"
    assert day.is_date and day.number_format == "[$-404]e/mm/dd"  # shown as 115/10/31
    assert rate.number_format == "0.0%"
    assert ws.freeze_panes == "D2"
    assert ws.auto_filter.ref == "A1:J6"
    assert ws.column_dimensions["B"].width > ws.column_dimensions["A"].width  # Chinese names get room


def test_formula_looking_text_is_written_as_text_in_every_sheet(files):
    wb = openpyxl.load_workbook(files.master)
    found = {}
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            for c in row:
                assert c.data_type != "f", f"{ws.title}!{c.coordinate} became a formula"
                if c.value in (HYPERLINK, AT_SUM, "=1+1", "-快篩試劑"):
                    found[c.value] = c.data_type
        assert not ws._hyperlinks
    assert found == {HYPERLINK: "s", AT_SUM: "s", "=1+1": "s", "-快篩試劑": "s"}


def test_exceptions_list_largest_amounts_first_in_chinese(files):
    rows = sheet_rows(files.master, "檢核例外")
    assert rows[0] == ("機關代碼", "機關名稱", "主管機關", "收件編號", "類型", "嚴重度", "工作表", "儲存格",
                       "欄位", "填寫值", "說明")
    assert [(r[0], r[7]) for r in rows[1:]] == [("B00", "D6"), ("A01", "D5"), ("A00", "C5"), ("A02", "C7")]
    assert rows[4][2:6] == ("臺北市政府教育局", "R-A02", "最新版本", "錯誤")
    assert rows[1][4:6] == ("計入版本", "警告")


def test_missing_sheet_lists_exactly_the_agencies_not_accepted_nor_exempt(files):
    rows = sheet_rows(files.master, "未繳交")
    assert rows[0] == ("機關代碼", "機關名稱", "主管機關", "狀態", "聯絡信箱", "最後收件", "最後催繳")
    assert [r[:4] for r in rows[1:]] == [
        ("A02", "臺北市立動物園", "臺北市政府教育局", "退件待補正"),  # the same words as `collect status`
        ("C00", "臺北市政府社會局", "臺北市政府社會局", "已發出"),
        ("C01", "臺北市家庭暴力暨性侵害防治中心", "臺北市政府社會局", "已收件待確認"),
    ]
    assert rows[1][4] == "a02@gov.taipei; boss.a02@gov.taipei"
    assert rows[1][5:] == (datetime(2026, 10, 30, 17, 5), datetime(2026, 11, 1, 8, 0))
    assert rows[2][5] is None


def test_each_supervisor_file_holds_only_its_units(files):
    units = {"A00": {"A00", "A01", "A02"}, "B00": {"B00", "B01"}, "C00": {"C00", "C01"}}
    for code, path in files.supervisors.items():
        assert openpyxl.load_workbook(path).sheetnames == ["摘要", "明細", "檢核例外", "未繳交"]
        detail = sheet_rows(path, "明細")[1:]
        assert len(detail) == sum(1 for r in ROWS if r[0] in units[code])
        assert {r[0] for r in detail} <= units[code]
        assert {r[0] for r in sheet_rows(path, "檢核例外")[1:] if r[1]} <= units[code]
        assert {r[0] for r in sheet_rows(path, "未繳交")[1:] if r[1]} <= units[code]
        table = supervisor_table(path)
        assert list(table) == [SUPERVISORS[code], "合計"]
        assert table["合計"][1] == len(units[code])
        expected = sum(r[2] for r in ROWS if r[0] in units[code])
        assert cell_int(table["合計"][3]) == cell_int(table[SUPERVISORS[code]][3]) == expected
    assert sheet_rows(files.supervisors["A00"], "摘要")[0][0].endswith("臺北市政府教育局（A00）")
    assert [r[0] for r in sheet_rows(files.supervisors["C00"], "未繳交")[1:]] == ["C00", "C01"]
    assert sheet_rows(files.supervisors["C00"], "明細")[1:] == []


def test_supervising_agency_filed_under_another_is_still_in_its_own_file(tmp_path):
    # The education bureau's own row is filed under the city government, yet belongs in its own report.
    agencies = [("A00", "臺北市政府教育局", "C00", "accepted"), ("A01", "臺北市立建國高級中學", "A00", "late"),
                ("C00", "臺北市政府社會局", "C00", "accepted")]
    files = write_reports(make_input(agencies=agencies, rows=ROWS[:3]), tmp_path)
    assert [r[0] for r in sheet_rows(files.supervisors["A00"], "明細")[1:]] == ["A00", "A00", "A01"]


def test_parquet_keeps_exact_ints_and_dates(files):
    table = pq.read_table(files.parquet)
    assert table.schema.field("approved").type == pa.int64()
    assert table.schema.field("approved_on").type == pa.date32()
    assert table.schema.field("approved").metadata[b"title"] == "核定經費".encode()
    assert table.column("approved").to_pylist() == [r[2] for r in ROWS]
    assert table.column("spent").to_pylist() == [r[3] for r in ROWS]
    assert table.column("approved_on").to_pylist() == [r[5] for r in ROWS]
    assert table.column("item").to_pylist()[1] == HYPERLINK  # Parquet is data: no quote prefix
    assert table.column("agency").to_pylist() == [r[0] for r in ROWS]


def test_csv_has_bom_chinese_header_and_quoted_formula_text(files):
    raw = files.csv.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    frame = pd.read_csv(files.csv, encoding="utf-8-sig", dtype={"核定經費": "Int64", "實支數": "Int64"})
    assert list(frame.columns) == ["機關代碼", "機關名稱", "主管機關", "計畫項目", "核定經費", "實支數",
                                   "案件數", "核定日期", "執行率", "經費類別"]
    assert frame["核定經費"].tolist() == [r[2] for r in ROWS]
    assert frame["計畫項目"].tolist() == ["防疫物資採購", "'" + HYPERLINK, "'" + AT_SUM, "疫苗接種站", "'-快篩試劑"]
    assert frame["核定日期"].tolist()[0] == "2026-03-05"
    assert frame["機關名稱"].tolist()[2] == "臺北市立建國高級中學"


def test_detail_continues_on_further_sheets_when_one_is_full(monkeypatch, tmp_path):
    monkeypatch.setattr(report, "MAX_SHEET_ROWS", 3)  # header + 2 data rows per sheet
    files = write_reports(make_input(), tmp_path)
    wb = openpyxl.load_workbook(files.master)
    assert wb.sheetnames == ["摘要", "明細", "明細2", "明細3", "檢核例外", "檢核例外2", "未繳交", "未繳交2"]
    detail = []
    for name in ("明細", "明細2", "明細3"):
        rows = [tuple(r) for r in wb[name].iter_rows(values_only=True)]
        assert rows[0][:3] == ("機關代碼", "機關名稱", "主管機關")
        assert len(rows) <= 3
        detail += rows[1:]
    assert [r[0] for r in detail] == [r[0] for r in ROWS]
    assert [cell_int(r[4]) for r in detail] == [r[2] for r in ROWS]
    summary = [r[0] for r in wb["摘要"].iter_rows(values_only=True) if r[0]]
    note = next(line for line in summary if "明細共 5 列" in line)
    assert "「明細」、「明細2」、「明細3」" in note and files.parquet.name in note and files.csv.name in note
    # A supervising agency with fewer rows is not split.
    assert openpyxl.load_workbook(files.supervisors["B00"]).sheetnames[:3] == ["摘要", "明細", "檢核例外"]


def test_incomplete_input_and_fractional_money_are_refused(tmp_path):
    inp = make_input()
    with pytest.raises(ValueError, match="approved"):
        write_reports(replace(inp, rows=inp.rows.drop(columns=["approved"])), tmp_path)
    fractional = inp.rows.assign(approved=[1.5, 2.0, 3.0, 4.0, 5.0])
    with pytest.raises(ValueError, match="not a whole number"):
        write_reports(replace(inp, rows=fractional), tmp_path)
    assert not list(tmp_path.glob("*.xlsx"))


def test_workbooks_written_by_parallel_threads_match_those_written_one_by_one(files, tmp_path):
    parallel = write_reports(make_input(), tmp_path, workers=3)  # real threads, each writing whole files
    for mine, theirs in [(files.master, parallel.master),
                         *((files.supervisors[c], parallel.supervisors[c]) for c in files.supervisors)]:
        a, b = openpyxl.load_workbook(mine), openpyxl.load_workbook(theirs)
        assert a.sheetnames == b.sheetnames
        for name in a.sheetnames:
            assert list(a[name].iter_rows(values_only=True)) == list(b[name].iter_rows(values_only=True))


def test_texts_xml_cannot_hold_as_typed_still_open_and_read_back(tmp_path):
    texts = ["a<b>&c \"q\"", "tab\tand\x01control\x0bchars", "_x0041_ stays literal", "備" * 40_000]
    rows = [(code, text, *rest) for (code, _, *rest), text in zip(ROWS, texts, strict=False)]
    files = write_reports(make_input(rows=rows), tmp_path)
    for path in (files.master, files.supervisors["A00"]):
        wb = openpyxl.load_workbook(path)  # a package Excel would refuse does not load either
        assert wb.sheetnames == ["摘要", "明細", "檢核例外", "未繳交"]
    items = [r[3] for r in sheet_rows(files.master, "明細")[1:]]
    assert items == [texts[0], "tab\tandcontrolchars", "_x0041_ stays literal", "備" * 32_767]


def test_a_whole_number_beyond_64_bits_keeps_every_digit_everywhere(tmp_path):
    huge = 2**70  # beyond int64: kept as a Python int in an object column
    inp = make_input()
    inp.rows["approved"] = pd.array([huge, *inp.rows["approved"].tolist()[1:]], dtype=object)
    files = write_reports(inp, tmp_path)
    detail = sheet_rows(files.master, "明細")
    assert detail[1][4] == f"{huge:,}"  # text with separators: Excel would round a number this long
    assert cell_int(supervisor_table(files.master)["合計"][3]) == huge + sum(r[2] for r in ROWS[1:])
    assert pq.read_table(files.parquet).column("approved").to_pylist()[0] == huge
    frame = pd.read_csv(files.csv, encoding="utf-8-sig", dtype=str)
    assert frame["核定經費"].tolist()[0] == str(huge)


def test_every_sheet_prints_on_a4_one_page_wide_with_its_header_row_and_a_footer(files):
    for path in [files.master, *files.supervisors.values()]:
        wb = openpyxl.load_workbook(path)
        for ws in wb.worksheets:
            assert ws.page_setup.paperSize == 9, f"{path.name}!{ws.title} is not A4"
            assert "製表時間：115/11/03 09:30" in ws.oddFooter.left.text
            assert ws.oddFooter.center.text == "第 &P 頁，共 &N 頁"
            if ws.title == "摘要":  # a page of figures and, as they are few here, the chart below on the same page
                assert ws.page_setup.orientation == "portrait"
                assert 10 <= (ws.page_setup.scale or 100) <= 100  # xlsxwriter leaves 100 % out
                assert ws._charts and not ws.row_breaks.brk  # (tests/test_print.py: 25 of them, two pages)
            else:
                assert ws.sheet_properties.pageSetUpPr.fitToPage
                assert ws.page_setup.fitToWidth in (None, 1) and ws.page_setup.fitToHeight == 0  # 1 wide, any tall
                assert ws.print_title_rows == "$1:$1"
    assert openpyxl.load_workbook(files.master)["明細"].page_setup.orientation == "landscape"  # 10 wide columns


def test_widths_hold_the_longest_rendered_value_and_long_text_wraps(tmp_path):
    inp = make_input()
    long_message = "「核定經費」應為整數（新臺幣元），" * 8
    inp.findings.loc[0, "message"] = long_message
    wide = write_reports(inp, tmp_path)
    wb = openpyxl.load_workbook(wide.master)
    missing = wb["未繳交"]
    dates = missing.column_dimensions["F"]  # 最後收件 and 最後催繳 (one <col> element): "115/10/30 17:05"
    assert (dates.min, dates.max) == (6, 7) and dates.width >= 16
    for letter in ("F", "G"):
        assert missing[f"{letter}2"].number_format == "[$-404]e/mm/dd hh:mm"
    exceptions = wb["檢核例外"]
    cell = next(c for c in exceptions["K"] if c.value == long_message)
    assert cell.alignment.wrap_text and exceptions.column_dimensions["K"].width < 51
    assert exceptions.row_dimensions[cell.row].height >= 3 * 16  # tall enough for its lines
    assert not exceptions.row_dimensions[2 if cell.row != 2 else 3].height  # a one-line row keeps its height
    detail = wb["明細"]
    assert detail.column_dimensions["F"].width >= len("38,765,437")  # money with separators


def test_summary_shows_the_execution_rate_from_exact_sums(tmp_path):
    files = write_reports(replace(make_input(), rate=("spent", "approved")), tmp_path)
    rows = sheet_rows(files.master, "摘要")
    header = next(r for r in rows if r[0] == "主管機關")
    assert header[5] == "執行率"
    table = supervisor_table(files.master)
    assert table["臺北市政府衛生局"][5] == pytest.approx(38_765_437 / 40_000_005)
    assert table["臺北市政府社會局"][5] is None  # nothing approved: no rate, not 0 % nor an error
    assert table["合計"][5] == pytest.approx((1_250_000 + 1_999_999 + 38_765_432 + 5) / (BIG + 45_500_005))
    with pytest.raises(ValueError, match="two money columns"):
        write_reports(replace(make_input(), rate=("spent", "cases")), tmp_path)


def test_one_more_sheet_per_workbook_goes_right_after_the_summary(tmp_path):
    seen = []

    def consolidated(supervisor, footer):
        seen.append(supervisor)
        return [Sheet("彙整表", PrintSetup(footer=footer), cells=[(0, 0, f"彙整表 {supervisor or '全市'}", "")])]

    files = write_reports(replace(make_input(), extra_sheets=consolidated), tmp_path)
    assert sorted(seen, key=str) == sorted([None, "A00", "B00", "C00"], key=str)
    wb = openpyxl.load_workbook(files.supervisors["B00"])
    assert wb.sheetnames == ["摘要", "彙整表", "明細", "檢核例外", "未繳交"]
    assert wb["彙整表"]["A1"].value == "彙整表 B00"
    assert [r[0] for r in sheet_rows(files.supervisors["B00"], "明細")[1:]] == ["B00", "B00"]


def test_no_nan_none_or_nat_in_any_workbook_when_values_are_missing(tmp_path):
    inp = make_input()
    inp.findings.loc[1, ["cell", "column", "value", "sheet"]] = [None, float("nan"), pd.NA, None]
    inp.findings["amount"] = pd.array([None, None, None, 3], dtype="Int64")
    inp.agencies.loc[2, "last_received"] = pd.NaT
    inp.agencies["last_reminded"] = pd.NaT
    inp.rows.loc[1, "approved_on"] = pd.NaT
    inp.rows.loc[2, "kind"] = float("nan")
    files = write_reports(inp, tmp_path)
    for path in [files.master, *files.supervisors.values()]:
        wb = openpyxl.load_workbook(path)
        for ws in wb.worksheets:
            for row in ws.iter_rows(values_only=True):
                assert not any(str(v) in ("nan", "None", "NaT", "<NA>") for v in row if v is not None), row


def test_style_indexes_agree_with_those_xlsxwriter_writes(tmp_path):
    # xlsx.writer.xf_index asks xlsxwriter for a format's style index through its one non-public call; the rows
    # rendered name that index. If an xlsxwriter upgrade changes it, this fails instead of cells being styled wrongly.
    import re
    import zipfile

    import xlsxwriter

    path = tmp_path / "probe.xlsx"
    wb = xlsxwriter.Workbook(str(path))
    fmts = {name: wb.add_format(style) for name, style in HOUSE.items()}
    expected = {name: xf_index(fmt) for name, fmt in fmts.items()}
    ws = wb.add_worksheet()
    for r, fmt in enumerate(fmts.values()):
        ws.write_number(r, 0, 1, fmt)
    wb.close()
    sheet = zipfile.ZipFile(path).read("xl/worksheets/sheet1.xml").decode()
    written = {int(row): int(s) for row, s in re.findall(r'<c r="A(\d+)" s="(\d+)"', sheet)}
    assert {name: written[r + 1] for r, name in enumerate(fmts)} == expected
    assert xf_index(None) is None


def test_sheets_are_deflated(files):
    import zipfile

    with zipfile.ZipFile(files.master) as zf:
        assert zf.testzip() is None
        assert {i.compress_type for i in zf.infolist()} == {zipfile.ZIP_DEFLATED}


def test_a_long_column_title_wraps_in_a_header_row_tall_enough(tmp_path):
    inp = make_input()
    long_title = "嚴重特殊傳染性肺炎防治及紓困振興特別條例第十一條經費類別"
    columns = [replace(c, title=long_title) if c.key == "kind" else c for c in inp.columns]
    files = write_reports(replace(inp, columns=columns), tmp_path)
    ws = openpyxl.load_workbook(files.master)["明細"]
    assert ws["J1"].value == long_title and ws["J1"].alignment.wrap_text
    lines = -(-2 * len(long_title) // int(ws.column_dimensions["J"].width - 2))
    assert lines > 1 and ws.row_dimensions[1].height >= 16 * lines - 1  # xlsxwriter rounds to whole pixels
