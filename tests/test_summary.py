"""The managers' summary of a real covid19 round (issued, returns ingested, report written): mail, page and chart."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import SECRET
from ingest_util import ROUND, fill, row

from collect.forms.issuing import issue
from collect.pipeline import ReportResult, make_report
from collect.receive.ingest import Ingestor
from collect.report.summary import Summary, summarise
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
