"""Merge: real covid19 returns issued, filled, ingested, then brought together into the master frame and report."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
from conftest import SECRET
from ingest_util import ROUND, fill, row

from collect.errors import CollectionError
from collect.forms.issuing import issue
from collect.pipeline import ReportResult, make_report
from collect.receive.ingest import Ingestor
from collect.report.merge import Merged, execution_rate, merge, totals_by_supervisor
from collect.states import Verdict
from collect.workspace import Context, init_workspace

BLANK_NOTES, WITH_NOTES, REJECTED, SILENT = "020001", "020002", "020003", "020004"
NOW = datetime(2026, 11, 3, 1, 30, tzinfo=UTC)
# Rows as the agencies type them. BLANK_NOTES leaves the note column empty in every row (its stored frame has no
# text in that column at all); WITH_NOTES writes one, and an approved amount of 0 (no execution rate).
BLANK_ROWS = [row("口罩採購", item=1, approved=1_000_000, committed=800_000, spent=500_000),
              row("快篩試劑", item=2, approved=2_500_000, committed=2_500_000, spent=1_250_000)]
NOTE_ROWS = [row("防疫旅館", item=1, approved=987_654_321_000, committed=900_000_000_000, spent=123_456_789_012,
                 note="依核定計畫執行"),
             row("宣導印製", item=2, approved=0, committed=0, spent=0, approved_on=date(2026, 10, 1))]


@dataclass
class Round:
    ctx: Context
    merged: Merged
    report: ReportResult


@pytest.fixture(scope="module")
def done(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Round]:
    base = tmp_path_factory.mktemp("merge")
    mp = pytest.MonkeyPatch()
    mp.setenv("COLLECT_SECRET", SECRET)
    init_workspace(base / "ws")
    ctx = Context.open(base / "ws")
    issued = {i.agency: i.path for i in issue(ctx, "covid19", ROUND,
                                              agencies=[BLANK_NOTES, WITH_NOTES, REJECTED, SILENT]).issued}
    made = base / "made"
    files = [fill(issued[BLANK_NOTES], made / "blank.xlsx", BLANK_ROWS),
             fill(issued[WITH_NOTES], made / "notes.xlsx", NOTE_ROWS),
             fill(issued[REJECTED], made / "bad.xlsx", [row("設備採購", approved="一百萬")])]
    with Ingestor(ctx) as ing:
        outcomes = ing.paths(files)
    assert [o.verdict for o in outcomes] == [Verdict.ACCEPTED, Verdict.ACCEPTED, Verdict.REJECTED]
    merged = merge(ctx, "covid19", ROUND, NOW)
    yield Round(ctx, merged, make_report(ctx, "covid19", ROUND, now=NOW))
    ctx.close()
    mp.undo()


def test_rows_are_every_accepted_row_with_its_agency_in_list_order(done: Round) -> None:
    rows = done.merged.report.rows
    assert rows["agency"].tolist() == [BLANK_NOTES] * 2 + [WITH_NOTES] * 2
    assert rows["name"].tolist() == ["口罩採購", "快篩試劑", "防疫旅館", "宣導印製"]
    names = {r.agency: r.name for r in done.merged.status.rows}
    assert rows["agency_name"].tolist() == [names[BLANK_NOTES]] * 2 + [names[WITH_NOTES]] * 2
    receipts = {r.agency: r.counting.receipt for r in done.merged.status.rows if r.counting is not None}
    assert rows["receipt"].tolist() == [receipts[BLANK_NOTES]] * 2 + [receipts[WITH_NOTES]] * 2
    assert list(rows.columns[:5]) == ["agency", "agency_name", "supervisor", "supervisor_name", "receipt"]
    # A column one agency left empty throughout and another filled stays one text column.
    assert rows["note"].isna().tolist() == [True, True, False, True]
    assert rows["note"].tolist()[2] == "依核定計畫執行"
    assert rows["approved_on"].tolist()[3] == pd.Timestamp(2026, 10, 1)


def test_money_stays_exact_integers_and_the_rate_is_computed_per_row(done: Round) -> None:
    rows = done.merged.report.rows
    for key in ("approved", "committed", "spent"):
        assert str(rows[key].dtype) == "Int64"
        assert rows[key].tolist() == [r[key] for r in [*BLANK_ROWS, *NOTE_ROWS]]
    rates = rows["rate"].tolist()
    assert rates[:3] == [0.5, 0.5, 123_456_789_012 / 987_654_321_000]
    assert pd.isna(rates[3])  # nothing approved: no rate rather than a division by zero
    totals = {t["supervisor"]: t for t in totals_by_supervisor(done.merged.report)}
    assert totals[""]["approved"] == 1_000_000 + 2_500_000 + 987_654_321_000
    assert isinstance(totals[""]["spent"], int)


def test_a_rejected_return_brings_its_findings_but_no_rows(done: Round) -> None:
    findings = done.merged.report.findings
    assert REJECTED not in set(done.merged.report.rows["agency"])
    mine = findings[findings["agency"] == REJECTED]
    assert len(mine) >= 1 and set(mine["severity"]) == {"error"} and set(mine["which"]) == {"latest"}
    assert "E7" in set(mine["cell"])  # the approved amount typed in words, on the first data row


def test_the_report_shows_the_merged_rows_and_the_agencies_still_missing(done: Round) -> None:
    wb = openpyxl.load_workbook(done.report.files.master, read_only=True)
    detail = list(wb["明細"].iter_rows(values_only=True))
    assert [r[0] for r in detail[1:]] == [BLANK_NOTES] * 2 + [WITH_NOTES] * 2
    header = detail[0]
    assert [r[header.index("核定經費")] for r in detail[1:]] == [1_000_000, 2_500_000, 987_654_321_000, 0]
    missing = {r[0] for r in list(wb["未繳交"].iter_rows(values_only=True))[1:]}
    assert {REJECTED, SILENT} <= missing and not {BLANK_NOTES, WITH_NOTES} & missing  # all in scope are listed
    assert Path(done.report.files.csv).read_bytes().startswith(b"\xef\xbb\xbf")


def test_the_declared_execution_rate_is_the_ratio_of_exact_sums(done: Round) -> None:
    assert done.merged.report.rate == ("spent", "approved")  # rules/covid19.py declares it
    totals = {t["supervisor"]: t for t in totals_by_supervisor(done.merged.report)}
    assert totals[""]["rate"] == (500_000 + 1_250_000 + 123_456_789_012) / (1_000_000 + 2_500_000 + 987_654_321_000)
    coll = done.ctx.collection("covid19")
    wrong = replace(coll, meta=replace(coll.meta, execution_rate=("spent", "note")))
    with pytest.raises(CollectionError, match="does not name two money columns") as raised:
        execution_rate(wrong)
    assert "approved, committed, spent" in raised.value.hint


def test_a_finding_without_an_amount_in_its_cell_takes_the_largest_on_its_row(done: Round) -> None:
    findings = done.merged.report.findings
    mine = findings[(findings["agency"] == REJECTED) & (findings["cell"] == "E7")]
    assert len(mine) == 1
    # The approved amount was typed in words (no amount): the row's largest money amount stands for it.
    assert not pd.isna(mine["amount"].iloc[0]) and int(mine["amount"].iloc[0]) > 0
