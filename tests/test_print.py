"""The demo round's reports as a person sees them: printed through LibreOffice to PDF, pages counted, text read."""

from __future__ import annotations

import email
import email.policy
import re
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import openpyxl
import pytest
from conftest import SECRET, convert

from collect.demo import DemoResult, run_demo
from collect.forms.signoff_book import UnitLine, build_workbook
from collect.workspace import Context

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
A4_PORTRAIT = (595, 842)  # points, rounded
A4_LANDSCAPE = (842, 595)
BROKEN = ("nan", "None", "NaT")  # what pandas leaves where nothing was to be shown


@dataclass
class Page:
    number: int
    sheet: str  # from the footer, which ends with the sheet's name
    size: tuple[int, int]
    text: str


@dataclass
class Printed:
    demo: DemoResult
    workbooks: list[Path]  # the master first, then one supervising agency's
    pages: dict[str, list[Page]]  # workbook file name -> its printed pages
    pdfs: list[Path]
    issued: Path  # the PDF of one agency's issued workbook, as the agency prints the form


def poppler(tool: str) -> str:
    found = shutil.which(tool)
    if not found:
        pytest.fail(f"{tool} is not installed: run .ci/run or apt-get install poppler-utils")
    return found


def printed_pages(pdf: Path) -> list[tuple[tuple[int, int], str]]:
    """Each page's size in points and its text."""
    info = subprocess.run([poppler("pdfinfo"), "-f", "1", "-l", "9999", str(pdf)], capture_output=True, text=True,
                          check=True).stdout
    sizes = [(round(float(w)), round(float(h)))
             for w, h in re.findall(r"Page +\d+ size: +([\d.]+) x ([\d.]+) pts", info)]
    text = subprocess.run([poppler("pdftotext"), "-layout", str(pdf), "-"], capture_output=True, text=True,
                          check=True).stdout
    return list(zip(sizes, text.split("\f")[:len(sizes)], strict=True))


def pages_of(pdf: Path) -> list[Page]:
    pages = printed_pages(pdf)
    out = []
    for n, (size, page) in enumerate(pages, start=1):
        # The footer's line (LibreOffice also writes the text of a chart clipped off a page, after it).
        footer = next((line.strip() for line in page.splitlines() if "製表時間" in line and "頁" in line), "")
        assert "製表時間：115/11/27 17:00" in footer and f"第 {n} 頁，共 {len(pages)} 頁" in footer, footer
        out.append(Page(n, footer.split()[-1], size, page))
    return out


@pytest.fixture(scope="module")
def printed(tmp_path_factory: pytest.TempPathFactory) -> Printed:
    mp = pytest.MonkeyPatch()
    mp.setenv("COLLECT_SECRET", SECRET)
    try:
        demo = run_demo(tmp_path_factory.mktemp("demo") / "ws", now=NOW)
    finally:
        mp.undo()
    report = demo.outputs["master"].parent
    education = next(report.glob("*-臺北市政府教育局.xlsx"))
    workbooks = [demo.outputs["master"], education]
    issued = min(demo.workspace.glob("outbox/*/*/issued/*.xlsx"))
    *pdfs, form = convert([*workbooks, issued], "pdf", tmp_path_factory.mktemp("pdf"))  # one LibreOffice run
    return Printed(demo, workbooks, {wb.name: pages_of(pdf) for wb, pdf in zip(workbooks, pdfs, strict=True)}, pdfs,
                   form)


def test_the_summary_sheet_prints_on_two_a4_pages_with_the_chart_whole_on_the_second(printed: Printed) -> None:
    pages = printed.pages[printed.workbooks[0].name]
    summary = [p for p in pages if p.sheet == "摘要"]
    assert [p.number for p in summary] == [1, 2]  # 142 agencies, 25 supervising agencies: table, then chart
    assert all(p.size == A4_PORTRAIT for p in summary)
    first = summary[0].text
    # The table by supervising agency is whole on page 1, names and amounts on the same lines.
    assert "主管機關" in first and re.search(r"^\s*合計\s+142\s+\d+\s+[\d,]+", first, re.M)
    assert re.search(r"臺北市政府教育局\s+\d+\s+\d+\s+[\d,]{9,}", first)
    assert "執行率" in first and re.search(r"合計.*\d+\.\d%", first)
    assert "各主管機關金額（新臺幣元）" in summary[1].text  # the chart's title, on its own page
    # Nothing is drawn on page 1 below the table (LibreOffice puts the chart's clipped text there, not ink).
    ink = ink_by_band(printed.pdfs[0], 1)
    table_end = max(i for i, band in enumerate(ink[:len(ink) * 3 // 4]) if band > 0.001)
    assert table_end < len(ink) * 0.6 and max(ink[table_end + 2:-3]) < 0.001, ink
    chart = ink_by_band(printed.pdfs[0], 2)
    assert sum(1 for band in chart if band > 0.001) > len(chart) // 2  # the chart fills page 2
    # One supervising agency's workbook: its one line and the chart fit on one page together.
    assert [p.number for p in printed.pages[printed.workbooks[1].name] if p.sheet == "摘要"] == [1]


def ink_by_band(pdf: Path, page: int, bands: int = 40) -> list[float]:
    """The share of dark pixels in each horizontal band of a page, top to bottom (rendered by pdftoppm)."""
    gray = subprocess.run([poppler("pdftoppm"), "-gray", "-r", "30", "-f", str(page), "-l", str(page), str(pdf)],
                          capture_output=True, check=True).stdout
    header = gray.split(b"\n", 3)  # P5, width height, max value, pixels
    width, height = map(int, header[1].split())
    pixels = header[3]
    out = []
    for b in range(bands):
        rows = pixels[b * height // bands * width:(b + 1) * height // bands * width]
        out.append(sum(1 for v in rows if v < 128) / max(1, len(rows)))
    return out


def test_table_sheets_print_one_page_wide_in_landscape_with_the_header_on_every_page(printed: Printed) -> None:
    pages = printed.pages[printed.workbooks[0].name]
    detail = [p for p in pages if p.sheet == "明細"]
    assert len(detail) >= 2
    for page in detail:
        assert page.size == A4_LANDSCAPE
        head = next(line for line in page.text.splitlines() if line.strip())
        # Every column on the page, the last one included: fit to one page wide.
        assert head.split()[:2] == ["機關代碼", "機關名稱"] and head.split()[-2:] == ["核定日期", "備註"], head
    assert {p.sheet for p in pages} == {"摘要", "彙整表", "資料品質", "明細", "檢核例外", "未繳交"}  # 彙整表: the form
    for page in (p for p in pages if p.sheet == "資料品質"):  # the lake's sheet: one page wide, its header on each
        words = next(line for line in page.text.splitlines() if line.strip()).split()
        assert words[:2] == ["機關代碼", "機關名稱"] and words[-1] == "最常見檢核代碼", words
    assert all(p.size in (A4_LANDSCAPE, A4_PORTRAIT) for p in pages if p.sheet == "彙整表")


def test_no_cell_renders_as_hashes_and_dates_are_roc(printed: Printed) -> None:
    for name, pages in printed.pages.items():
        for page in pages:
            assert "###" not in page.text, f"{name} page {page.number} ({page.sheet}) shows ###"
    pages = printed.pages[printed.workbooks[0].name]
    missing = "\n".join(p.text for p in pages if p.sheet == "未繳交")
    assert re.search(r"115/1[01]/\d\d \d\d:\d\d", missing)  # 最後收件 and 最後催繳, whole
    detail = "\n".join(p.text for p in pages if p.sheet == "明細")
    assert re.search(r"\b1(09|1[0-5])/\d\d/\d\d\b", detail)  # 核定日期 as ROC
    assert not re.search(r"\b20\d\d/\d\d/\d\d\b", detail + missing)


def test_long_messages_wrap_inside_their_column(printed: Printed) -> None:
    wb = openpyxl.load_workbook(printed.workbooks[0])
    ws = wb["檢核例外"]
    longest = max((c for c in ws["K"][1:] if c.value), key=lambda c: len(c.value))
    assert len(longest.value) > 40
    assert longest.alignment.wrap_text
    assert ws.column_dimensions["K"].width < 51  # 50 and the padding xlsxwriter adds
    pages = printed.pages[printed.workbooks[0].name]
    exceptions = "\n".join(p.text for p in pages if p.sheet == "檢核例外")
    # The sender finding's message is longer than its column: printed whole over two lines, not clipped.
    assert "登記的聯絡信箱" in exceptions and "人工確認" in exceptions


def test_no_nan_none_or_nat_anywhere_a_person_reads(printed: Printed) -> None:
    report = printed.workbooks[0].parent
    for path in sorted(report.glob("*.xlsx")):
        wb = openpyxl.load_workbook(path)
        for ws in wb.worksheets:
            for row in ws.iter_rows(values_only=True):
                for value in row:
                    assert value not in BROKEN, f"{path.name}!{ws.title} shows {value!r}"
    for pages in printed.pages.values():
        for page in pages:
            assert not re.search(r"\b(nan|None|NaT)\b", page.text), page.text
    assert not re.search(r"\b(nan|None|NaT)\b", (report / "summary.html").read_text(encoding="utf-8"))
    mail = printed.demo.workspace / "outbox" / "mail"  # receipts, reminders, digests and the summary
    sent = sorted(mail.rglob("*.eml"))
    assert len(sent) > 100
    for eml in sent:
        msg = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
        for part in msg.walk():
            if part.get_content_type() in ("text/plain", "text/html"):
                assert not re.search(r"\b(nan|None|NaT)\b", part.get_content()), eml.name


def test_the_issued_form_prints_one_page_wide_with_its_header_on_every_page(printed: Printed) -> None:
    """Seen rendered: the issued covid19 workbook printed on 15 portrait pages, four columns to a page, 機關名稱 cut
    and the header on the first page only. Now: A4 landscape, every column on each page, the header repeated."""
    sizes, pages = zip(*printed_pages(printed.issued), strict=True)
    assert set(sizes) == {A4_LANDSCAPE} and 2 <= len(pages) <= 6  # 200 input rows
    assert all("計畫名稱" in page and "備註" in page for page in pages)  # the first column title and the last
    assert "機關名稱" in pages[0] and re.search(r"臺北市\S+(區公所|局|處|會|院|館|所|隊|中心)", pages[0])


def test_the_consolidated_form_says_whose_figures_it_adds_up(printed: Printed) -> None:
    """Seen: the 彙整表's identity block printed empty (機關代碼, 機關名稱, 主管機關, 填報期間, 截止日期: the cells an
    agency fills in). The city's form and a supervising agency's say whose returns they add up, the period and the
    deadline."""
    city, education = (printed.pages[wb.name] for wb in printed.workbooks)
    first = {name: next(p.text for p in pages if p.sheet == "彙整表") for name, pages in
             (("city", city), ("education", education))}
    assert re.search(r"全市彙整（\d+ 個機關）", first["city"]) and "（全部主管機關）" in first["city"]
    assert re.search(r"臺北市政府教育局所屬機關彙整（\d+ 個機關）", first["education"])
    for text in first.values():
        assert "115年10月" in text and re.search(r"截止日期\s+\d{3}/\d{2}/\d{2}", text), text[:400]
    # 項次 numbers the consolidated form's rows 1, 2, 3 ... (each agency's own numbers stay in 明細)
    items = [int(m) for p in city if p.sheet == "彙整表" for m in re.findall(r"^\s*(\d+)\s+\D", p.text, re.M)]
    assert items == list(range(1, len(items) + 1)) and len(items) > 200  # more rows than the form has: all listed
    assert re.search(r"本表共 [\d,]+ 列，各列所屬機關見「明細」工作表（順序相同）。", "".join(p.text for p in city))


def test_the_signoff_workbook_prints_one_page_wide_with_its_header_on_every_page(ctx: Context, tmp_path: Path) -> None:
    """Seen rendered: the 核轉表 printed on 6 portrait pages, its money columns and 核轉／退回 on pages of their own
    with no header, the instructions cut at the page edge, 收件時間 as 2026-11-20. Now: A4 landscape, every column
    on each page, the header row repeated, 製表時間 and page N of M in the footer, times as ROC."""
    coll = ctx.collection("covid19")
    when = datetime(2026, 11, 20, 1, 30, tzinfo=UTC)
    longest = "臺北市立木柵國民小學附設補習學校代辦經費（已停辦）"  # the longest name on the sample list
    lines = [UnitLine(f"04{i:04d}", longest if i == 7 else f"臺北市立第{i}國民中學", f"R20261120-{i:06d}",
                      when + timedelta(minutes=7 * i), i, {c.key: 123_456_789_012 if i == 5 else 1_234_567 * i
                                                           for c in coll.columns if c.money})
             for i in range(1, 71)]
    data = build_workbook(coll, "2026-10", "040000", "臺北市政府教育局", lines, b"k" * 32, made=NOW)
    path = tmp_path / "040000-核轉表.xlsx"
    path.write_bytes(data)
    ws = openpyxl.load_workbook(path)["核轉表"]
    assert ws.page_setup.paperSize == 9 and ws.page_setup.orientation == "landscape"
    assert ws.sheet_properties.pageSetUpPr is not None and ws.sheet_properties.pageSetUpPr.fitToPage
    assert (ws.page_setup.fitToWidth, ws.page_setup.fitToHeight) == (1, 0)
    assert ws.print_title_rows == "$5:$5"  # the header row
    (pdf,) = convert([path], "pdf", tmp_path / "pdf")
    pages = printed_pages(pdf)
    assert len(pages) >= 2 and {size for size, _ in pages} == {A4_LANDSCAPE}
    for n, (_size, text) in enumerate(pages, start=1):
        head = next(line for line in text.splitlines() if "機關代碼" in line)
        # Every column on every page, the header first: fit to one page wide, the header row repeated.
        assert head.split()[:2] == ["機關代碼", "機關名稱"] and head.split()[-2:] == ["核轉／退回", "退回理由"], head
        footer = next(line for line in text.splitlines() if "製表時間" in line)
        assert "製表時間：115/11/27 17:00" in footer and f"第 {n} 頁，共 {len(pages)} 頁" in footer, footer
        assert "###" not in text and not re.search(r"\b2026-\d\d-\d\d\b", text)
    everything = "\n".join(text for _, text in pages)
    assert "退回者請填寫退回理由。" in everything  # the instructions whole
    assert longest in everything and "123,456,789,012" in everything  # the longest name and sum, not cut
    assert re.search(r"040001\s+臺北市立第1國民中學\s+R20261120-000001\s+115/11/20 09:37\s+1\s+1,234,567", everything)
    assert sum(1 for line in everything.splitlines() if re.match(r"\s*04\d{4}\s", line)) == 70  # every unit once
