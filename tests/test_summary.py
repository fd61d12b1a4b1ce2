"""The managers' summary of a real covid19 round (issued, returns ingested, report written): mail, page and chart."""

from __future__ import annotations

import email
import email.policy
import re
import shutil
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import SECRET
from ingest_util import ROUND, fill, row

from collect.forms.issuing import issue
from collect.pipeline import ReportResult, make_report
from collect.receive.ingest import Ingestor
from collect.report.summary import CJK_FONTS, NO_CJK_FONT, Summary, build, chart_png, cjk_font, summarise
from collect.report.workbooks import write_reports
from collect.workspace import Context, init_workspace

GOOD, ALSO_GOOD, BAD = "020001", "020002", "020003"
NOW = datetime(2026, 11, 3, 1, 30, tzinfo=UTC)


@dataclass
class Summarised:
    ctx: Context
    report: ReportResult
    summary: Summary


@pytest.fixture(scope="module")
def done(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Summarised]:
    base = tmp_path_factory.mktemp("summary")
    mp = pytest.MonkeyPatch()
    mp.setenv("COLLECT_SECRET", SECRET)
    init_workspace(base / "ws")
    ctx = Context.open(base / "ws")
    issued = {i.agency: i.path for i in issue(ctx, "covid19", ROUND, agencies=[GOOD, ALSO_GOOD, BAD]).issued}
    files = [fill(issued[GOOD], base / "good.xlsx", [row("口罩採購", approved=1_234_567, committed=1_000_000,
                                                          spent=900_000)]),
             fill(issued[ALSO_GOOD], base / "also.xlsx", [row("快篩試劑", approved=8_000_000_000,
                                                              committed=7_000_000_000, spent=6_543_210_987)]),
             fill(issued[BAD], base / "bad.xlsx", [row("設備採購", approved=5_000_000, committed=6_000_000)])]
    with Ingestor(ctx) as ing:
        ing.paths(files)
    rep = make_report(ctx, "covid19", ROUND, now=NOW)
    yield Summarised(ctx, rep, summarise(ctx, rep.merged, rep.files, send=True))
    ctx.close()
    mp.undo()


def read(path: Path) -> email.message.EmailMessage:
    msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert isinstance(msg, email.message.EmailMessage)
    return msg


def test_summary_mail_says_provisional_and_attaches_the_master_workbook(done: Summarised) -> None:
    msg = read(done.summary.path)
    total = done.report.merged.status.total
    assert str(msg["Subject"]) == (f"【彙整摘要】嚴重特殊傳染性肺炎經費動支及執行情形（115年10月）（暫定）已通過 "
                                   f"{total.accepted}/{total.in_scope}")
    assert total.accepted == 2
    assert [p.get_filename() for p in msg.iter_attachments()] == [done.report.files.master.name]
    attached = next(msg.iter_attachments()).get_content()
    assert attached == done.report.files.master.read_bytes()
    assert done.summary.sent_to == ("manager@example.test",)
    assert str(msg["To"]) == "manager@example.test"


def test_totals_are_exact_with_separators_in_text_and_html(done: Summarised) -> None:
    msg = read(done.summary.path)
    text = msg.get_body(("plain",)).get_content()
    html = done.summary.html.read_text(encoding="utf-8")
    for figure in (f"{1_234_567 + 8_000_000_000:,}", f"{900_000 + 6_543_210_987:,}"):
        assert figure in text and figure in html
    assert "尚有" in text and "暫定數" in text


def test_the_largest_error_is_listed_with_its_cell_and_the_chart_is_inline(done: Summarised) -> None:
    msg = read(done.summary.path)
    text = msg.get_body(("plain",)).get_content()
    assert "金額最大的檢核例外" in text
    assert "已動支數不可大於核定經費" in text and "F7" in text  # the rejected return's row rule, on its cell
    png = next(p for p in msg.walk() if p.get_content_type() == "image/png")
    assert png.get_payload(decode=True).startswith(b"\x89PNG")
    chart = done.summary.html.parent / "chart.png"
    assert chart.read_bytes() == png.get_payload(decode=True)
    assert 'src="chart.png"' in done.summary.html.read_text(encoding="utf-8")  # the page opens without the mail


def test_errors_show_their_amount_and_nothing_reads_nan(done: Summarised) -> None:
    msg = read(done.summary.path)
    text = msg.get_body(("plain",)).get_content()
    html = done.summary.html.read_text(encoding="utf-8")
    line = next(x for x in text.splitlines() if "F7" in x)
    assert "6,000,000" in line  # the committed amount in the failing cell, not an empty column
    for page in (text, html):
        assert not re.search(r"\b(nan|None|NaT)\b", page)


def test_the_execution_rate_and_the_change_from_the_previous_round(done: Summarised, tmp_path: Path) -> None:
    rep = done.report.merged.report
    approved = 1_234_567 + 8_000_000_000
    spent = 900_000 + 6_543_210_987
    text = read(done.summary.path).get_body(("plain",)).get_content()
    assert f"執行率 {spent / approved:.1%}" in text  # the ratio of the exact sums, in the 合計 line
    html = done.summary.html.read_text(encoding="utf-8")
    assert "<th style=\"border:1px solid #999;padding:4px 8px\">執行率</th>" in html
    assert "與上期" not in html  # no report of 2026-09 yet

    # The previous round's report: the same agencies with half the amounts.
    before = rep.rows.copy()
    for key in ("approved", "committed", "spent"):
        before[key] = before[key] // 2
    previous = replace(rep, round_id="2026-09", round_label="115年9月", rows=before)
    write_reports(previous, done.ctx.ws.round_dir("covid19", "2026-09") / "report")
    _, html = build(done.ctx, done.report.merged, done.report.files)
    assert "與上期（115年9月）比較" in html
    half = approved // 2
    assert re.search(rf"核定經費</td>\s*<td[^>]*>{approved:,}</td>\s*<td[^>]*>{half:,}</td>\s*"
                     rf"<td[^>]*>\+{approved - half:,}</td>", html)
    assert re.search(r"執行率</td>.*?個百分點", html, re.S)


def test_the_chart_finds_a_cjk_font_by_its_file_when_the_font_cache_predates_it(monkeypatch) -> None:
    from matplotlib import font_manager

    stale = [f for f in font_manager.fontManager.ttflist if f.name not in CJK_FONTS and "CJK" not in f.name]
    monkeypatch.setattr(font_manager.fontManager, "ttflist", stale)  # a cache built before fonts-noto-cjk
    font = cjk_font()
    assert font is not None and ("CJK" in font or font in CJK_FONTS)
    totals = [{"supervisor": "A", "name": "臺北市政府教育局", "x": 5_000_000},
              {"supervisor": "", "name": "合計", "x": 5_000_000}]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warns "Glyph ... missing from font" when it draws boxes
        assert chart_png(totals, "x", "核定經費", font).startswith(b"\x89PNG")


def test_without_any_cjk_font_the_summary_says_which_package_to_install(done: Summarised, monkeypatch,
                                                                          tmp_path: Path) -> None:
    from matplotlib import font_manager

    stale = [f for f in font_manager.fontManager.ttflist if f.name not in CJK_FONTS and "CJK" not in f.name]
    monkeypatch.setattr(font_manager.fontManager, "ttflist", stale)
    monkeypatch.setattr(font_manager, "findSystemFonts", lambda *a, **k: [])
    assert cjk_font() is None
    master = tmp_path / done.report.files.master.name
    shutil.copy(done.report.files.master, master)
    summary = summarise(done.ctx, done.report.merged, replace(done.report.files, master=master))
    assert summary.warnings == (NO_CJK_FONT,)
    assert "sudo apt-get install fonts-noto-cjk" in NO_CJK_FONT
    assert done.summary.warnings == ()  # this machine has one
