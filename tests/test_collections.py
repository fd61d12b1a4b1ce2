"""The seven further collections: templates agree with rules, rounds issue with their prefill, returns are judged."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import openpyxl
import pandas as pd
import pytest
from conftest import SECRET, run_cli

from collect.errors import CollectError
from collect.follow.signoff import awaiting_signoff, counting_agencies, forward
from collect.forms.issuing import issue, issued_facts, read_prefill_file
from collect.forms.spec import Collection
from collect.receive.ingest import Ingestor, Outcome
from collect.receive.table import extract
from collect.receive.validate import validate
from collect.states import Verdict
from collect.workspace import Context, init_workspace

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "samples"
CONDITION = {1: "第1款：原列計畫費用因事實需要奉准修訂致原列經費不敷", 2: "第2款：原列計畫費用因增加業務量致增加經費",
             3: "第3款：因應政事臨時需要必須增加計畫及經費"}
NEW = ("review_public", "review_funds", "reserve1", "reserve2", "reserve2_table", "forward_subsidy", "retention")


# -- what the agencies send back -----------------------------------------------------------------------------------
# Each return: (collection, round, agency, prefill sample or None, {Excel row: {column key: value}}, rows to delete).
# Dates are typed as ROC text in the clean returns, in every date column.
@dataclass
class Return:
    name: str
    cid: str
    round_id: str
    agency: str
    prefill: str | None
    cells: dict[int, dict[str, Any]]
    delete_rows: tuple[int, ...] = ()
    expected: list[tuple[str, str, str]] = field(default_factory=list)  # (code, cell, severity)
    verdict: Verdict = Verdict.ACCEPTED
    roc_dates: set[str] = field(default_factory=set)  # date columns typed as ROC text


RETURNS = [
    Return("review_public-clean", "review_public", "2026-S1", "070000", "review_public-2026-S1.csv", {
        7: {"action": "已完成候車亭汰換規劃，115年起分三年編列預算辦理。", "status": "已辦理"},
        8: {"action": "已委託辦理費率評估，俟報告完成後送議會備查。", "status": "辦理中", "due": "115/12/31"},
    }, roc_dates={"due"}),
    Return("review_public-broken", "review_public", "2026-S1", "060000", "review_public-2026-S1.csv", {
        7: {"opinion": "（已自行改寫的意見）", "action": "加強稽查中。", "status": "已完成"},
        8: {"action": None, "status": "辦理中"},  # after deleting row 8 this is opinion 115-1-003
        9: {"opinion_no": "115-1-099", "opinion": "自行新增", "action": "說明", "status": "辦理中",
            "due": "114/12/31"},
    }, delete_rows=(8,), verdict=Verdict.REJECTED, expected=[
        ("prefill.changed", "B7", "error"), ("value.choice", "D7", "error"),
        ("prefill.row_missing", "A8", "error"), ("value.required", "C8", "error"), ("row.rule", "E8", "error"),
        ("prefill.row_added", "A9", "error"), ("value.min", "E9", "error"),
    ]),
    Return("review_funds-clean", "review_funds", "2026-S1", "135002", "review_funds-2026-S1.csv", {
        7: {"action": "已修正租金催收作業要點並按月追蹤欠租戶。", "status": "辦理中", "due": "民國115年6月30日"},
        8: {"action": "評估報告已於115年4月函送議會。", "status": "已辦理"},
    }, roc_dates={"due"}),
    Return("review_funds-broken", "review_funds", "2026-S1", "115001", "review_funds-2026-S1.csv", {
        7: {"budget": "臺北市立聯合醫院", "action": "已統一採購。", "status": "已辦理"},
        8: {"opinion_no": "115-2-999", "action": "檢討中。", "status": "辦理中", "due": "2025-12-31"},
    }, verdict=Verdict.REJECTED, expected=[
        ("prefill.changed", "A7", "error"),
        ("prefill.row_added", "B8", "error"), ("prefill.row_missing", "B8", "error"), ("value.min", "F8", "error"),
    ]),
    Return("reserve1-clean", "reserve1", "2026", "010000", "reserve1-2026.csv", {
        8: {"used_on": "115/03/05", "reason": "市政大樓空調緊急修繕", "subject": "一般行政－基本行政工作維持",
            "amount": 1_000_000, "approval_no": "府授主預字第1150001234號"},
        9: {"used_on": "115年7月1日", "reason": "颱風災後環境清理", "subject": "一般行政－基本行政工作維持",
            "amount": "2,500,000", "approval_no": "府授主預字第1150005678號"},
    }, roc_dates={"used_on"}),
    Return("reserve1-broken", "reserve1", "2026", "020000", "reserve1-2026.csv", {
        8: {"used_on": "114/12/31", "reason": "前一年度的支出", "subject": "民政業務", "amount": 100,
            "approval_no": "府授主預字第1" },
        9: {"used_on": "116/01/05", "reason": "次一年度的支出", "subject": "民政業務", "amount": 100,
            "approval_no": "府授主預字第2"},
        10: {"used_on": "115/05/01", "reason": "零元", "subject": "民政業務", "amount": 0,
             "approval_no": "府授主預字第3"},
        11: {"used_on": "115/06/01", "reason": "超過核定數", "subject": "民政業務", "amount": 999_000_000},
    }, verdict=Verdict.REJECTED, expected=[
        ("value.min", "A8", "error"), ("value.max", "A9", "error"), ("value.min", "D10", "error"),
        ("table.rule", "D11", "error"), ("value.required", "E11", "error"),
    ]),
    Return("reserve2-clean", "reserve2", "2026", "010000", None, {
        7: {"applied_on": "115.3.5", "project": "市政大樓耐震補強", "condition": CONDITION[1],
            "requested": 5_000_000, "approved": 4_800_000, "approved_on": "115.4.1",
            "approval_no": "府授主預字第1150002222號"},
        8: {"applied_on": "民國115年10月2日", "project": "颱風災害緊急應變",
            "condition": CONDITION[3], "requested": 2_000_000},
    }, roc_dates={"applied_on", "approved_on"}),
    Return("reserve2-broken", "reserve2", "2026", "020000", None, {
        7: {"applied_on": "115/03/05", "project": "里民活動中心修繕", "condition": CONDITION[2],
            "requested": 5_000_000, "approved": 6_000_000, "approved_on": "115/02/01", "approval_no": "府授1"},
        8: {"applied_on": "115/04/01", "project": "區公所資訊設備", "condition": CONDITION[2],
            "requested": 1_000_000, "approved": 1_000_000},
        9: {"applied_on": "115/05/01", "project": "其他", "condition": "第4款", "requested": 300_000},
    }, verdict=Verdict.REJECTED, expected=[
        ("row.rule", "E7", "error"), ("row.rule", "F7", "error"), ("row.rule", "F8", "error"),
        ("row.rule", "G8", "error"), ("value.choice", "C9", "error"),
    ]),
    # Two dates that cannot be read: each is the cause at its cell; the rules comparing them are not judged on them.
    Return("reserve2-unreadable-dates", "reserve2", "2026", "030000", None, {
        7: {"applied_on": "某天", "project": "里民活動中心修繕", "condition": CONDITION[2], "requested": 2_000_000,
            "approved": 1_000_000, "approved_on": "不明", "approval_no": "府授1"},
    }, verdict=Verdict.REJECTED, expected=[
        ("value.not_date", "A7", "error"), ("value.not_date", "F7", "error"), ("row.rule_skipped", "F7", "warning"),
    ]),
    Return("reserve2_table-clean", "reserve2_table", "2026", "110000", "reserve2_table-2026.csv", {
        7: {"spent": 10_000_000, "retained": 2_000_000, "remaining": 400_000},
        8: {"spent": 7_600_000, "retained": 0, "remaining": 0},
    }),
    Return("reserve2_table-broken", "reserve2_table", "2026", "060000", "reserve2_table-2026.csv", {
        7: {"spent": 10_000_000, "retained": 2_000_000, "remaining": 1},
        8: {"approved": 5_000_000, "spent": 5_000_000, "retained": 0, "remaining": 0},
        9: {"subject": "工程管理－其他", "approved": 100, "spent": -1, "retained": 0, "remaining": 101},
    }, verdict=Verdict.REJECTED, expected=[
        ("row.rule", "E7", "error"), ("prefill.changed", "B8", "error"), ("value.min", "C9", "error"),
    ]),
    # The previous quarter first (same ingest call, processed in order), so the cumulative comparison has a base.
    Return("forward_subsidy-previous", "forward_subsidy", "2025-Q4", "070002", "forward_subsidy-2026-Q1.csv", {
        7: {"spent": 5_000_000, "due": "115/12/31"},
        8: {"spent": 2_000_000, "due": "116/06/30"},
    }, roc_dates={"due"}),
    Return("forward_subsidy-clean", "forward_subsidy", "2026-Q1", "060001", "forward_subsidy-2026-Q1.csv", {
        7: {"spent": 150_000_000, "due": "116年12月31日"},
        8: {"spent": 0, "due": "民國117年6月30日"},
    }, roc_dates={"due"}),
    Return("forward_subsidy-broken", "forward_subsidy", "2026-Q1", "070002", "forward_subsidy-2026-Q1.csv", {
        7: {"spent": 4_000_000, "due": "115/12/31"},
        8: {"spent": 15_800_001, "due": "2016/12/31"},
    }, verdict=Verdict.REJECTED, expected=[
        ("compare.decreased", "D7", "warning"), ("row.rule", "D8", "error"), ("value.min", "F8", "error"),
    ]),
    Return("retention-clean", "retention", "2026", "040000", "retention-2026.csv", {
        7: {"amount": 30_000_000, "reason": "契約責任", "contract": "北市教工字第1150012345號契約",
            "pay_by": "116/03/31"},
    }, roc_dates={"pay_by"}),
    Return("retention-nothing", "retention", "2026", "070000", "retention-2026.csv", {},
           expected=[("table.rule_warning", "C7", "warning")]),
    Return("retention-broken", "retention", "2026", "060000", "retention-2026.csv", {
        7: {"amount": 13_000_000, "reason": "其他"},
        8: {"balance": 9_000_000, "amount": 1_000_000, "reason": "繼續經費", "contract": "北市工字第1號",
            "pay_by": None},
    }, verdict=Verdict.REJECTED, expected=[
        ("row.rule", "C7", "error"), ("value.choice", "D7", "error"), ("row.rule", "E7", "error"),
        ("row.rule", "F7", "error"), ("prefill.changed", "B8", "error"), ("row.rule", "F8", "error"),
    ]),
]
# The broken retention return also has a payment date inside the fiscal year on a third row it adds.
RETURNS[-1].cells[9] = {"subject": "自行新增科目", "balance": 500, "amount": 100, "reason": "契約責任",
                        "contract": "北市工字第2號", "pay_by": "115/12/31"}
RETURNS[-1].expected.append(("value.min", "F9", "error"))


@dataclass
class World:
    root: Path
    ctx: Context
    outcomes: dict[str, Outcome]
    issued: dict[tuple[str, str], list[str]]  # (collection, round) -> agency codes issued


def fill(coll: Collection, source: Path, target: Path, ret: Return) -> None:
    """What an agency does in Excel: type into the form (and maybe delete a row), then save."""
    assert coll.layout is not None
    letters = {c.key: openpyxl.utils.get_column_letter(coll.layout.first_col + i) for i, c in enumerate(coll.columns)}
    wb = openpyxl.load_workbook(source)
    ws = wb[coll.layout.sheet]
    for r in ret.delete_rows:
        ws.delete_rows(r)
    for r, values in ret.cells.items():
        for key, value in values.items():
            ws[f"{letters[key]}{r}"] = value
    wb.save(target)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One workspace: every round issued (with its sample prefill), every return filled and ingested at once."""
    base = tmp_path_factory.mktemp("collections")
    root = base / "ws"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("COLLECT_SECRET", SECRET)
        init_workspace(root)
        ctx = Context.open(root)
        issued: dict[tuple[str, str], list[str]] = {}
        wanted: dict[tuple[str, str, str | None], list[str]] = {}
        for ret in RETURNS:
            wanted.setdefault((ret.cid, ret.round_id, ret.prefill), []).append(ret.agency)
        paths: dict[tuple[str, str, str], Path] = {}
        for (cid, round_id, prefill), agencies in wanted.items():
            coll = ctx.collection(cid)
            only = () if coll.meta.scope == "prefill" else tuple(dict.fromkeys(agencies))
            result = issue(ctx, cid, round_id, agencies=only, prefill=SAMPLES / prefill if prefill else None,
                           today=date(2026, 3, 1))
            issued[(cid, round_id)] = [i.agency for i in result.issued]
            paths |= {(cid, round_id, i.agency): i.path for i in result.issued}
        inbox = base / "inbox"
        inbox.mkdir()
        files = []
        for ret in RETURNS:
            target = inbox / f"{ret.name}.xlsx"
            fill(ctx.collection(ret.cid), paths[(ret.cid, ret.round_id, ret.agency)], target, ret)
            files.append(target)
        with Ingestor(ctx) as ing:
            outcomes = {Path(o.file).stem: o for o in ing.paths(files)}
        yield World(root, ctx, outcomes, issued)
        ctx.close()


def test_check_passes_for_every_collection(world: World) -> None:
    done = run_cli("check", cwd=world.root)
    assert done.returncode == 0, done.stderr
    for cid in NEW:
        assert f"✓ {cid}" in done.stdout


@pytest.mark.parametrize("ret", RETURNS, ids=[r.name for r in RETURNS])
def test_return_is_judged_on_the_right_cells(world: World, ret: Return) -> None:
    outcome = world.outcomes[ret.name]
    got = sorted((f.code, f.cell or "", f.severity) for f in outcome.findings)
    assert got == sorted(ret.expected), [f.message for f in outcome.findings]
    assert outcome.verdict == ret.verdict
    assert (outcome.collection, outcome.round, outcome.agency) == (ret.cid, ret.round_id, ret.agency)


@pytest.mark.parametrize("cid", NEW)
def test_roc_dates_are_accepted_in_every_date_column(world: World, cid: str) -> None:
    coll = world.ctx.collection(cid)
    date_columns = {c.key for c in coll.columns if c.kind == "date"}
    clean = next(r for r in RETURNS if r.cid == cid and r.name.endswith("-clean"))
    assert date_columns <= clean.roc_dates
    row = world.ctx.ledger.submission(world.outcomes[clean.name].receipt)
    assert row is not None and row.verdict == Verdict.ACCEPTED and row.frame_path
    frame = pd.read_parquet(world.root / "state" / row.frame_path)
    for r, values in clean.cells.items():
        for key in date_columns & set(values):
            stored = frame.loc[frame["_row"] == r, key].iloc[0]
            assert isinstance(stored, pd.Timestamp) and stored.year >= 2026


def test_messages_name_the_rule_and_the_issued_values(world: World) -> None:
    by_cell = {f.cell: f.message for f in world.outcomes["reserve1-broken"].findings}
    appropriation = read_prefill_file(SAMPLES / "reserve1-2026.csv", world.ctx.collection("reserve1")).fields[
        "020000"]["appropriation"]
    assert by_cell["D11"] == f"動支金額合計超過第一預備金核定數 {appropriation:,} 元。"
    assert "115/01/01" in by_cell["A8"] and "115/12/31" in by_cell["A9"]
    review = {(f.code, f.cell): f.message for f in world.outcomes["review_public-broken"].findings}
    assert "115-1-002" in review["prefill.row_missing", "A8"] and "不可刪除" in review["prefill.row_missing", "A8"]
    assert "不可修改" in review["prefill.changed", "B7"] and "道路挖掘管理系統" in review["prefill.changed", "B7"]
    assert "115-1-099" in review["prefill.row_added", "A9"]
    retention = {f.cell: f.message for f in world.outcomes["retention-broken"].findings}
    assert "116/01/01" in retention["F9"]
    assert "8,300,000" in retention["B8"]


def test_prefill_scope_issues_exactly_the_agencies_in_the_file(world: World) -> None:
    for cid, round_id, sample in (("review_public", "2026-S1", "review_public-2026-S1.csv"),
                                  ("reserve2_table", "2026", "reserve2_table-2026.csv"),
                                  ("forward_subsidy", "2026-Q1", "forward_subsidy-2026-Q1.csv")):
        codes = read_prefill_file(SAMPLES / sample, world.ctx.collection(cid)).codes
        assert sorted(world.issued[(cid, round_id)]) == sorted(codes)
        assert set(world.ctx.ledger.issued_for(cid, round_id)) == set(codes)
    with pytest.raises(CollectError, match="prefill"):
        issue(world.ctx, "review_funds", "2026-S2")


def test_issued_copies_lock_the_prefill_and_carry_header_fields(world: World) -> None:
    outbox = world.root / "outbox"
    review = openpyxl.load_workbook(next((outbox / "review_public" / "2026-S1" / "issued").glob("060000-*.xlsx")))
    ws = review["填報表"]
    assert ws["A7"].value == "115-1-001" and ws["A7"].protection.locked and ws["B7"].protection.locked
    assert not ws["C7"].protection.locked and not ws["D7"].protection.locked and not ws["E7"].protection.locked
    assert ws.protection.sheet
    retention = openpyxl.load_workbook(next((outbox / "retention" / "2026" / "issued").glob("060000-*.xlsx")))
    ws = retention["填報表"]
    assert ws["A7"].protection.locked and ws["B7"].value == 12_650_000 and ws["B7"].protection.locked
    assert not ws["A9"].protection.locked and not ws["B9"].protection.locked  # rows the agency may add
    reserve1 = openpyxl.load_workbook(next((outbox / "reserve1" / "2026" / "issued").glob("010000-*.xlsx")))
    cell = reserve1.defined_names["COLLECT_FIELD_APPROPRIATION"]
    sheet, ref = next(iter(cell.destinations))
    field_cell = reserve1[sheet][ref.replace("$", "")]
    assert field_cell.value == 13_250_000 and field_cell.protection.locked and field_cell.number_format == "#,##0"
    facts = issued_facts(world.ctx, world.ctx.collection("reserve1"), "2026", "010000")
    assert facts is not None and facts.fields == {"appropriation": 13_250_000}


def test_without_the_issued_facts_the_table_still_validates(world: World) -> None:
    """Without issued= (an older ingest), table rules see no header fields and nothing is compared."""
    from collect.receive.read import read_book

    coll = world.ctx.collection("reserve1")
    book = read_book((world.root.parent / "inbox" / "reserve1-broken.xlsx").read_bytes())
    table = extract(book, coll)
    assert not isinstance(table, list)
    codes = sorted((f.code, f.cell) for f in validate(table, coll, "2026").findings)
    assert ("row.rule", "D11") not in codes and ("value.min", "D10") in codes


def test_signoff_decides_which_returns_count(world: World) -> None:
    ctx = world.ctx
    # review_public requires the supervising agency's sign-off; 070000 is its own supervising agency.
    assert counting_agencies(ctx, "review_public", "2026-S1") == set()
    assert awaiting_signoff(ctx, "review_public", "2026-S1") == {"070000": ["070000"]}
    with pytest.raises(CollectError, match="not a supervising agency"):
        forward(ctx, "review_public", "2026-S1", "070001", "王科長")
    done = forward(ctx, "review_public", "2026-S1", "070000", "交通局會計室 王主任", "已核閱")
    assert done.units == ("070000",) and done.by == "交通局會計室 王主任" and done.note == "已核閱"
    assert counting_agencies(ctx, "review_public", "2026-S1") == {"070000"}
    assert awaiting_signoff(ctx, "review_public", "2026-S1") == {}
    # reserve1 does not require sign-off: every accepted return counts, rejected ones do not.
    assert counting_agencies(ctx, "reserve1", "2026") == {"010000"}
