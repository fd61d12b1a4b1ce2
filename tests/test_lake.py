"""The data lake over three real covid19 rounds (issued, filled, ingested, reported): totals, resends, query, trend."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import openpyxl
import pyarrow.parquet as pq
import pytest
from conftest import SECRET, run_cli
from ingest_util import fill, row

from collect.forms.issuing import issue
from collect.lake import store
from collect.lake.quality import quality
from collect.lake.query import QueryError, query
from collect.lake.store import partition_path, sync
from collect.lake.trend import trend
from collect.pipeline import ReportResult, make_report
from collect.receive.ingest import Ingestor
from collect.report.merge import totals_by_supervisor
from collect.report.summary import round_trend, summarise
from collect.rounds import TAIPEI
from collect.workspace import Context, init_workspace

pytestmark = pytest.mark.xdist_group("lake")  # one worker builds the three rounds once

ROUNDS = ("2026-08", "2026-09", "2026-10")
AGENCIES = ("020001", "020002", "030001")  # two under 民政局 (020000), one under 財政局 (030000)
LATE_DEADLINE = date(2026, 11, 10)  # 2026-10 was due then: every return of it arrives late


def spent_of(agency: str, k: int) -> int:
    """What an agency has spent by round k (cumulative): distinct per agency and round, so a mix-up shows."""
    return 100_000 * (k + 1) + int(agency[-1]) * 1_111


@dataclass
class Lake:
    ctx: Context
    root: Path
    reports: dict[str, ReportResult]
    first_sync: tuple[tuple[str, str], ...]
    resend_sync: tuple[tuple[str, str], ...]
    resent_receipts: tuple[str, str]  # 030001's two accepted returns of 2026-10, earlier then later


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lake]:
    base = tmp_path_factory.mktemp("lake")
    mp = pytest.MonkeyPatch()
    mp.setenv("COLLECT_SECRET", SECRET)
    init_workspace(base / "ws")
    ctx = Context.open(base / "ws")
    reports: dict[str, ReportResult] = {}
    for k, round_id in enumerate(ROUNDS):
        deadline = LATE_DEADLINE if round_id == "2026-10" else None
        issued = {i.agency: i.path for i in issue(ctx, "covid19", round_id, agencies=list(AGENCIES),
                                                   deadline=deadline).issued}
        files = []
        for a in AGENCIES:
            committed = 2_000_000 if (a, round_id) == ("020002", "2026-09") else 900_000  # > approved: rejected
            files.append(fill(issued[a], base / round_id / f"{a}.xlsx", [
                row("口罩採購", approved=1_000_000, committed=committed, spent=spent_of(a, k)),
                row("快篩試劑", item=2, approved=5_000_000_000, committed=4_000_000_000, spent=3_000_000_001)]))
        with Ingestor(ctx) as ing:
            ing.paths(files)
        if round_id == "2026-09":  # 020002 corrects its rejected return
            fixed = fill(issued["020002"], base / round_id / "020002-fixed.xlsx", [
                row("口罩採購", approved=1_000_000, committed=900_000, spent=spent_of("020002", k)),
                row("快篩試劑", item=2, approved=5_000_000_000, committed=4_000_000_000, spent=3_000_000_001)])
            with Ingestor(ctx) as ing:
                ing.paths([fixed])
        reports[round_id] = make_report(ctx, "covid19", round_id)
    first = sync(ctx).rebuilt
    # 030001 resends 2026-10 with more spent: the later accepted version replaces the earlier one
    issued_path = ctx.ws.round_dir("covid19", "2026-10") / "issued"
    book = next(p for p in issued_path.iterdir() if p.name.startswith("030001"))
    resend = fill(book, base / "2026-10" / "030001-resend.xlsx", [
        row("口罩採購", approved=1_000_000, committed=900_000, spent=777_777),
        row("快篩試劑", item=2, approved=5_000_000_000, committed=4_000_000_000, spent=3_000_000_001)])
    earlier = ctx.ledger.latest_accepted("covid19", "2026-10", "030001")
    with Ingestor(ctx) as ing:
        ing.paths([resend])
    later = ctx.ledger.latest_accepted("covid19", "2026-10", "030001")
    assert earlier is not None and later is not None and earlier.receipt and later.receipt
    again = sync(ctx).rebuilt
    reports["2026-10"] = make_report(ctx, "covid19", "2026-10")
    yield Lake(ctx, base / "ws", reports, first, again, (earlier.receipt, later.receipt))
    ctx.close()
    mp.undo()


def test_the_lake_totals_per_round_equal_each_rounds_master_report_exactly(lake: Lake) -> None:
    answer = query(lake.ctx, "SELECT round, supervisor, sum(approved), sum(committed), sum(spent), count(*) "
                             "FROM rows_covid19 GROUP BY ALL ORDER BY 1, 2")
    got = {(r[0], r[1]): r[2:] for r in answer.rows}
    assert {k[0] for k in got} == set(ROUNDS)
    for round_id, rep in lake.reports.items():
        for t in totals_by_supervisor(rep.merged.report):
            if t["supervisor"] and t["accepted"]:
                n = int((rep.merged.report.rows["supervisor"] == t["supervisor"]).sum())
                assert got[(round_id, t["supervisor"])] == (t["approved"], t["committed"], t["spent"], n)
    # exact beyond float: 3 agencies x NT$3,000,000,001 plus the small amounts, summed as HUGEINT
    total = query(lake.ctx, "SELECT sum(spent) FROM rows_covid19 WHERE round = '2026-10'").rows[0][0]
    assert isinstance(total, int)
    assert total == 3 * 3_000_000_001 + spent_of("020001", 2) + spent_of("020002", 2) + 777_777


def test_a_resend_replaces_the_earlier_version_which_stays_in_history(lake: Lake) -> None:
    earlier, later = lake.resent_receipts
    now = query(lake.ctx, "SELECT DISTINCT receipt FROM rows_covid19 WHERE agency = '030001' AND round = '2026-10'")
    assert now.rows == [(later,)]
    spent = query(lake.ctx, "SELECT spent FROM rows_covid19 WHERE agency = '030001' AND round = '2026-10' "
                            "AND name = '口罩採購'").rows
    assert spent == [(777_777,)]
    kept = query(lake.ctx, "SELECT receipt, counts, count(*) FROM history_covid19 WHERE agency = '030001' AND "
                           "round = '2026-10' GROUP BY ALL ORDER BY receipt")
    assert kept.rows == [(earlier, False, 2), (later, True, 2)]
    # only the round that changed was written again; the others were left as they were
    assert set(lake.first_sync) <= {("covid19", r) for r in ROUNDS}
    assert lake.resend_sync == (("covid19", "2026-10"),)
    assert sync(lake.ctx).rebuilt == ()


def test_partitions_are_whole_files_with_no_temporary_left_and_carry_agency_and_times(lake: Lake) -> None:
    path = partition_path(lake.ctx, "rows", "covid19", "2026-09")
    assert path.parent.name == "round=2026-09" and path.parent.parent.name == "collection=covid19"
    assert [p.name for p in path.parent.iterdir()] == ["data.parquet"]
    table = pq.read_table(path)
    assert table.schema.field("agency_name").metadata[b"title"].decode() == "機關名稱"
    frame = table.to_pandas()
    assert sorted(set(frame["agency"])) == sorted(AGENCIES)
    assert set(frame["supervisor_name"]) == {"臺北市政府民政局", "臺北市政府財政局"}
    assert frame["accepted_at"].notna().all() and (frame["accepted_at"] >= frame["received_at"]).all()


def test_the_ledgers_tables_answer_in_the_lake(lake: Lake) -> None:
    rejected = query(lake.ctx, "SELECT s.agency, s.round, f.code, f.cell FROM submissions s JOIN findings f "
                               "USING (receipt) WHERE s.verdict = 'rejected'")
    assert {(r[0], r[1]) for r in rejected.rows} == {("020002", "2026-09")}
    assert any(r[3] == "F7" for r in rejected.rows)  # 已動支數 of the first row
    names = query(lake.ctx, "SELECT agency_name FROM agencies WHERE agency = '030001'").rows
    assert names == [("臺北市稅捐稽徵處",)]
    assert query(lake.ctx, "SELECT count(*) FROM rounds WHERE collection = 'covid19'").rows == [(3,)]


def test_trend_per_supervisor_is_exact_and_names_the_change(lake: Lake) -> None:
    t = trend(lake.ctx, "covid19", "實支數", "supervisor", rounds=2)
    assert t.rounds == ("2026-09", "2026-10")
    assert t.columns == ["代碼", "名稱", "115年9月", "115年10月", "較上期增減"]
    table = {r[0]: r for r in t.table()}
    civil = 2 * 3_000_000_001 + spent_of("020001", 1) + spent_of("020002", 1)
    civil_now = 2 * 3_000_000_001 + spent_of("020001", 2) + spent_of("020002", 2)
    assert table["020000"] == ["020000", "臺北市政府民政局", civil, civil_now, civil_now - civil]
    assert table[""][1] == "合計"
    assert table[""][3] == civil_now + 3_000_000_001 + 777_777


def test_quality_counts_the_first_rejected_and_the_days_late(lake: Lake) -> None:
    rows = {r["agency"]: r for r in quality(lake.ctx, "covid19").records()}
    assert rows["020002"]["rounds"] == 3 and rows["020002"]["first_rejected"] == 1
    assert rows["020002"]["first_rejected_rate"] == pytest.approx(1 / 3, abs=1e-4)
    assert rows["020002"]["top_findings"].startswith("row.")
    today = datetime.now(UTC).astimezone(TAIPEI).date()
    for a in AGENCIES:
        assert rows[a]["late_rounds"] == 1
        assert rows[a]["days_late"] == (today - LATE_DEADLINE).days
    assert rows["020001"]["first_rejected"] == 0


def test_bad_sql_is_a_clean_error(lake: Lake) -> None:
    with pytest.raises(QueryError) as raised:
        query(lake.ctx, "SELECT nope FROM rows_covid19")
    assert "nope" in raised.value.message and "rows_covid19" in raised.value.hint
    done = run_cli("query", "SELEC round FROM rows_covid19", cwd=lake.root)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "error: DuckDB could not run the query" in done.stderr and "SELEC" in done.stderr
    assert "hint:" in done.stderr and "rows_covid19" in done.stderr


def test_query_output_reads_back_as_csv_json_and_xlsx(lake: Lake, tmp_path: Path) -> None:
    sql = "SELECT round, sum(spent) AS spent FROM rows_covid19 GROUP BY 1 ORDER BY 1"
    expected = [(r[0], r[1]) for r in query(lake.ctx, sql).rows]
    as_csv = run_cli("query", sql, "--csv", cwd=lake.root)
    assert as_csv.returncode == 0, as_csv.stderr
    assert [(r["round"], int(r["spent"])) for r in csv.DictReader(io.StringIO(as_csv.stdout))] == expected
    as_json = run_cli("query", sql, "--json", cwd=lake.root)
    assert [(r["round"], r["spent"]) for r in json.loads(as_json.stdout)] == expected
    book = tmp_path / "查詢.xlsx"
    done = run_cli("query", sql, "--xlsx", str(book), cwd=lake.root)
    assert done.returncode == 0, done.stderr
    ws = openpyxl.load_workbook(book).active
    assert ws is not None
    assert [c.value for c in ws[1]] == ["round", "spent"]
    assert [(r[0], r[1]) for r in ws.iter_rows(min_row=2, values_only=True)] == expected
    assert ws["B2"].number_format == "#,##0"


def test_trend_command_prints_the_table_writes_a_chart_and_reads_back(lake: Lake, tmp_path: Path) -> None:
    chart = tmp_path / "trend.png"
    done = run_cli("trend", "covid19", "--measure", "spent", "--by", "supervisor", "--chart", str(chart),
                   "--csv", cwd=lake.root)
    assert done.returncode == 0, done.stderr
    rows = list(csv.reader(io.StringIO(done.stdout)))
    assert rows[0] == ["代碼", "名稱", "115年8月", "115年9月", "115年10月", "較上期增減"]
    total = next(r for r in rows if r[1] == "合計")
    assert int(total[4]) == query(lake.ctx, "SELECT sum(spent) FROM rows_covid19 WHERE round = '2026-10'").rows[0][0]
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    as_json = run_cli("trend", "covid19", "-m", "spent", "--json", cwd=lake.root)
    records = json.loads(as_json.stdout)
    assert [r["round"] for r in records] == list(ROUNDS) and all(isinstance(r["spent"], int) for r in records)
    bad = run_cli("trend", "covid19", "-m", "備註", cwd=lake.root)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr and "spent (實支數)" in bad.stderr


def test_the_master_report_shows_data_quality_per_agency(lake: Lake) -> None:
    rep = lake.reports["2026-10"]
    wb = openpyxl.load_workbook(rep.files.master, read_only=True)
    rows = list(wb["資料品質"].iter_rows(values_only=True))
    assert rows[0][:2] == ("機關代碼", "機關名稱") and "首次退件率" in rows[0]
    by_code = {r[0]: dict(zip(rows[0], r, strict=True)) for r in rows[1:]}
    assert set(by_code) == set(AGENCIES)
    assert by_code["020002"]["首次退件期數"] == 1 and by_code["020001"]["首次退件期數"] == 0
    civil = openpyxl.load_workbook(rep.files.supervisors["030000"], read_only=True)
    assert [r[0] for r in civil["資料品質"].iter_rows(min_row=2, values_only=True)] == ["030001"]


def test_the_managers_summary_carries_a_trend_across_reported_rounds(lake: Lake) -> None:
    rep = lake.reports["2026-10"]
    found = round_trend(lake.ctx, rep.merged.report, "spent")
    assert found is not None
    rounds, totals = found
    assert rounds == list(ROUNDS)
    lake_totals = query(lake.ctx, "SELECT round, sum(spent) FROM rows_covid19 GROUP BY 1 ORDER BY 1").rows
    assert list(zip(rounds, totals, strict=True)) == lake_totals
    s = summarise(lake.ctx, rep.merged, rep.files)
    html = s.html.read_text(encoding="utf-8")
    assert 'src="trend.png"' in html and "實支數歷期趨勢" in html
    assert (s.html.parent / "trend.png").read_bytes()[:4] == b"\x89PNG"
    assert "與上期（115年9月）比較" in html


def test_every_query_example_in_docs_lake_runs(lake: Lake) -> None:
    text = (Path(__file__).resolve().parent.parent / "docs" / "lake.md").read_text(encoding="utf-8")
    examples = re.findall(r'collect query "(.*?)"', text, re.S)
    assert len(examples) >= 7
    for sql in examples:
        query(lake.ctx, sql)  # a QueryError fails the test with DuckDB's message


def test_a_sync_that_fails_midway_leaves_every_partition_whole(lake: Lake, monkeypatch: pytest.MonkeyPatch) -> None:
    path = partition_path(lake.ctx, "rows", "covid19", "2026-09")
    before = path.read_bytes()
    written: list[str] = []

    def half_then_fail(table: object, where: io.BytesIO) -> None:
        where.write(b"PAR1 half a partition")
        written.append("x")
        raise OSError("disk full")

    monkeypatch.setattr(store, "LAKE_VERSION", store.LAKE_VERSION + 1)  # every partition is due again
    monkeypatch.setattr(store.pq, "write_table", half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        sync(lake.ctx)
    assert written and path.read_bytes() == before
    assert not [p for p in path.parent.parent.rglob("*") if p.is_file() and p.name != "data.parquet"]
    monkeypatch.undo()
    assert query(lake.ctx, "SELECT count(*) FROM rows_covid19 WHERE round = '2026-09'").rows == [(6,)]


def test_lake_sync_on_demand_writes_nothing_when_nothing_changed(lake: Lake) -> None:
    done = run_cli("lake", "sync", cwd=lake.root)
    assert done.returncode == 0, done.stderr
    assert "3 rounds, written again: none" in done.stdout


def test_a_workspace_with_no_round_yet_answers_cleanly(workspace: Path) -> None:
    empty = run_cli("query", "SELECT count(*) AS n FROM submissions", "--json", cwd=workspace)
    assert empty.returncode == 0, empty.stderr
    assert json.loads(empty.stdout) == [{"n": 0}]
    missing = run_cli("trend", "covid19", "--measure", "spent", cwd=workspace)
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert "No round of covid19 has been issued" in missing.stderr and "collect issue covid19" in missing.stderr
    unknown = run_cli("query", "SELECT * FROM rows_nosuch", cwd=workspace)
    assert unknown.returncode == 1 and "rows_nosuch" in unknown.stderr and "Traceback" not in unknown.stderr
