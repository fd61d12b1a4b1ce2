"""The second tier through the files backend: digests to supervising agencies, their sign-off workbooks (核轉表)
ingested like any return, 退回 told to the unit, resend, fresh sign-off, and the report counting exactly those."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from conftest import SECRET, run_cli
from ingest_util import ROUND, acct, agency_mail, attachments, fill, mail_text, read_mail, rows

from collect.config import parse_settings
from collect.errors import ConfigError
from collect.follow import digest as digesting
from collect.follow import remind as reminding
from collect.follow.savings import savings
from collect.follow.signoff import apply_pending, counting_agencies
from collect.follow.status import round_status
from collect.forms.issuing import issue
from collect.forms.signoff_book import FIRST_ROW, SHEET
from collect.pipeline import make_report
from collect.receive.ingest import Ingestor, Outcome
from collect.receive.sandbox import Sandbox
from collect.rounds import TAIPEI
from collect.states import State, Verdict
from collect.workspace import Context, init_workspace

SUP, UNITS = "020000", ("020001", "020002", "020003")
OTHER_SUP, OTHER_UNIT = "010000", "010001"
DECISION, REASON = "I", "J"  # covid19 has three money columns: 5 fixed + 3 + 核轉／退回 + 退回理由


@dataclass
class World:
    root: Path
    ctx: Context
    sandbox: Sandbox
    issued: dict[str, Path]
    made: Path

    def send(self, sender: str, files: list[Path]) -> list[Outcome]:
        raw, _ = agency_mail(sender, files)
        with Ingestor(self.ctx, sandbox=self.sandbox) as ing:
            return ing.message(raw, "test")

    def unit_return(self, code: str, name: str, n: int = 2) -> Outcome:
        path = fill(self.issued[code], self.made / f"{name}.xlsx", rows(n, prefix=name))
        (outcome,) = self.send(acct(code), [path])
        return outcome


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("tier")
    root = base / "ws"
    mp = pytest.MonkeyPatch()
    mp.setenv("COLLECT_SECRET", SECRET)
    init_workspace(root)
    rules = root / "rules" / "covid19.py"
    rules.write_text(rules.read_text(encoding="utf-8").replace(
        "prefill_previous=True,", "prefill_previous=True,\n    require_signoff=True,"), encoding="utf-8")
    ctx = Context.open(root)
    result = issue(ctx, "covid19", ROUND, agencies=[*UNITS, OTHER_UNIT])
    sandbox = Sandbox(workers=1)
    yield World(root, ctx, sandbox, {i.agency: i.path for i in result.issued}, base / "made")
    sandbox.close()
    ctx.close()
    mp.undo()


def signoff_attachment(d: digesting.Digest) -> tuple[str, bytes]:
    assert d.path is not None
    files = attachments(read_mail(d.path))
    name = next(n for n in files if n.endswith("核轉表.xlsx"))
    return name, files[name]


def filled(world: World, name: str, data: bytes, decisions: dict[str, tuple[str, str | None]],
           signer: str | None = "民政局會計室 王主任", edit: Any = None) -> Path:
    """The supervising agency fills its 核轉表: decision and reason by unit code, signer and date."""
    wb = openpyxl.load_workbook(io.BytesIO(data))
    ws = wb[SHEET]
    for r in range(FIRST_ROW, ws.max_row + 1):
        code = ws[f"A{r}"].value
        if code in decisions:
            ws[f"{DECISION}{r}"], ws[f"{REASON}{r}"] = decisions[code]
    ws["B3"], ws["D3"] = signer, "115/11/12"
    if edit is not None:
        edit(ws)
    path = world.made / name
    path.parent.mkdir(parents=True, exist_ok=True)
    wb.save(path)
    return path


@pytest.fixture(scope="module")
def trip(world: World) -> World:
    """The whole trip, once per module (and per xdist worker): the tests after it start where it ends."""
    two_tier_trip(world)
    return world


@pytest.fixture(scope="module")
def other_unit(trip: World) -> Outcome:
    """010001 (under 010000) returns after the trip: 010000 then has a unit waiting for its sign-off."""
    return trip.unit_return(OTHER_UNIT, "other-unit")


def test_two_tier_trip(trip: World) -> None:
    assert counting_agencies(trip.ctx, "covid19", ROUND) == set(UNITS)


def two_tier_trip(world: World) -> None:
    ctx = world.ctx
    first = {code: world.unit_return(code, f"first-{code}") for code in UNITS}
    assert {o.verdict for o in first.values()} == {Verdict.ACCEPTED}
    assert counting_agencies(ctx, "covid19", ROUND) == set()  # nothing signed off yet
    make_report(ctx, "covid19", ROUND)

    # The digest to 020000: three of its 26 public units accepted (the round is in scope for all of them).
    sent = digesting.digest(ctx, "covid19", ROUND, send=True)
    mine = next(d for d in sent if d.supervisor == SUP)
    assert mine.to == ("acct.020000@example.test", "head.020000@example.test")
    assert [u["agency"] for u in mine.sections["已通過"]] == list(UNITS)
    msg = read_mail(mine.path) if mine.path else None
    assert msg is not None and "已通過 3/26" in str(msg["Subject"])
    files = attachments(msg)
    assert any(n.startswith(f"covid19-{ROUND}-{SUP}-") and not n.endswith("核轉表.xlsx") for n in files)  # its slice
    _, book = signoff_attachment(mine)
    ws = openpyxl.load_workbook(io.BytesIO(book))[SHEET]
    assert [ws[f"A{r}"].value for r in range(FIRST_ROW, FIRST_ROW + 3)] == list(UNITS)
    assert ws[f"C{FIRST_ROW}"].value == first["020001"].receipt
    assert ws[f"F{FIRST_ROW}"].value == 2_000_000  # 核定經費 of two rows of 1,000,000
    # Nothing new: no second digest.
    assert digesting.plan(ctx, "covid19", ROUND, supervisors=[SUP]) == []

    # 退回 without a reason: rejected, the cell named.
    no_reason = filled(world, "no-reason.xlsx", book, {"020002": ("退回", None)})
    (o,) = world.send(acct(SUP), [no_reason])
    assert o.verdict == Verdict.REJECTED
    assert [(f.code, f.cell) for f in o.findings if f.severity == "error"] == [
        ("signoff.reason_required", f"{REASON}{FIRST_ROW + 1}")]
    # From a unit's address instead of the supervising agency's: held for staff.
    (o,) = world.send(acct("020001"), [filled(world, "wrong-sender.xlsx", book, {"020001": ("核轉", None)})])
    assert o.verdict == Verdict.QUARANTINED and [f.code for f in o.findings] == ["signoff.sender"]
    # Naming another supervising agency's unit.
    def foreign(ws: Any) -> None:
        ws[f"A{FIRST_ROW + 2}"] = OTHER_UNIT
    (o,) = world.send(acct(SUP), [filled(world, "foreign.xlsx", book, {"020003": ("核轉", None)}, edit=foreign)])
    assert o.verdict == Verdict.REJECTED
    assert [(f.code, f.cell, f.severity) for f in o.findings] == [
        ("signoff.undecided", f"{DECISION}{FIRST_ROW}", "warning"),
        ("signoff.undecided", f"{DECISION}{FIRST_ROW + 1}", "warning"),
        ("signoff.foreign_unit", f"A{FIRST_ROW + 2}", "error")]
    assert apply_pending(ctx) == []  # nothing accepted: nothing applied
    assert counting_agencies(ctx, "covid19", ROUND) == set()

    # The real one: 020002 sent back with a reason, the others signed off.
    decided = {"020001": ("核轉", None), "020002": ("退回", "實支數與會計月報不符，請更正"), "020003": ("核轉", None)}
    (o,) = world.send(acct(SUP), [filled(world, "signoff-1.xlsx", book, decided)])
    assert o.verdict == Verdict.ACCEPTED and o.collection == "covid19.signoff" and o.agency == SUP
    (applied,) = apply_pending(ctx)
    assert applied.signed == ("020001", "020003") and applied.returned == ("020002",)
    assert apply_pending(ctx) == []  # applied once
    told = read_mail(applied.notices[0])
    assert told["To"] == "acct.020002@example.test" and "acct.020000@example.test" in str(told["Cc"])
    assert "實支數與會計月報不符，請更正" in mail_text(told) and attachments(told)
    st = {r.agency: r for r in round_status(ctx, "covid19", ROUND).rows}
    assert st["020002"].state == State.RETURNED and st["020002"].returned_reason == "實支數與會計月報不符，請更正"
    assert st["020001"].signed_off and not st["020002"].signed_off
    assert counting_agencies(ctx, "covid19", ROUND) == {"020001", "020003"}

    # 020002 resends; the old 核轉表 is now stale and answered with what changed.
    again = world.unit_return("020002", "second-020002", n=3)
    assert again.verdict == Verdict.ACCEPTED
    (o,) = world.send(acct(SUP), [filled(world, "stale.xlsx", book, {"020002": ("核轉", None)})])
    assert o.verdict == Verdict.REJECTED
    assert [(f.code, f.cell) for f in o.findings if f.severity == "error"] == [("signoff.stale", f"C{FIRST_ROW + 1}")]
    assert again.receipt in next(f.message for f in o.findings if f.code == "signoff.stale")
    assert "020002" not in counting_agencies(ctx, "covid19", ROUND)

    # The next digest says what changed and carries a 核轉表 with only 020002.
    make_report(ctx, "covid19", ROUND)
    (second,) = digesting.digest(ctx, "covid19", ROUND, send=True, supervisors=[SUP])
    assert any("020002" in c for c in second.changes)
    _, book2 = signoff_attachment(second)
    ws2 = openpyxl.load_workbook(io.BytesIO(book2))[SHEET]
    assert ws2[f"A{FIRST_ROW}"].value == "020002" and ws2[f"A{FIRST_ROW + 1}"].value is None
    assert ws2[f"C{FIRST_ROW}"].value == again.receipt
    (o,) = world.send(acct(SUP), [filled(world, "signoff-2.xlsx", book2, {"020002": ("核轉", None)})])
    assert o.verdict == Verdict.ACCEPTED
    (applied,) = apply_pending(ctx)
    assert applied.signed == ("020002",)
    assert counting_agencies(ctx, "covid19", ROUND) == set(UNITS)

    # The report counts exactly the signed-off units: 2 + 3 + 2 rows.
    report = make_report(ctx, "covid19", ROUND)
    merged_rows = report.merged.report.rows
    assert sorted(set(merged_rows["agency"])) == list(UNITS) and len(merged_rows) == 7
    (row_020002,) = [r for r in round_status(ctx, "covid19", ROUND).rows if r.agency == "020002"]
    assert row_020002.state == State.ACCEPTED and row_020002.signed_off



# The tests below start where the trip ends.
def test_status_in_two_tiers(trip: World) -> None:
    world = trip
    tier = run_cli("--workspace", str(world.root), "status", "covid19", "--round", ROUND)
    assert tier.returncode == 0, tier.stderr
    line = next(ln for ln in tier.stdout.splitlines() if SUP in ln)
    assert [c.strip() for c in line.split("│")[3:9]] == ["26", "3", "3", "0", "23", "0"]
    assert "已核轉 3" in tier.stdout
    one = run_cli("--workspace", str(world.root), "status", "covid19", "--round", ROUND, "--supervisor", SUP, "--json")
    assert one.returncode == 0, one.stderr
    rows = [json.loads(x) for x in one.stdout.splitlines()]
    assert len(rows) == 26 and {r["supervisor"] for r in rows} == {SUP}
    assert [(r["agency"], r["state"], r["signed_off"]) for r in rows if r["agency"] in UNITS] == [
        ("020001", "accepted", True), ("020002", "accepted", True), ("020003", "accepted", True)]


def test_savings_counts_fills_and_checks(trip: World) -> None:
    world = trip
    (row_, total) = savings(world.ctx, 2026)
    assert (row_.collection, row_.rounds, row_.fills, row_.checks) == ("covid19", 1, 3, 1)
    assert row_.hours == 3 + 16 and total.hours == 19 and str(total.person_months) == "0.1"
    got = run_cli("--workspace", str(world.root), "savings", "--year", "2026", "--csv")
    assert got.returncode == 0, got.stderr
    lines = list(csv.reader(io.StringIO(got.stdout.lstrip("\ufeff"))))
    assert lines[0][:5] == ["collection", "title", "rounds", "fills", "checks"]
    assert lines[1][0] == "covid19" and lines[1][2:] == ["1", "3", "1", "3", "16", "19", "0.1"]
    assert savings(world.ctx, 2025) == [savings(world.ctx, 2025)[0]] and savings(world.ctx, 2025)[0].hours == 0


def test_a_supervising_agency_slow_to_sign_off_gets_its_own_reminder(trip: World, other_unit: Outcome) -> None:
    ctx = trip.ctx
    accepted = other_unit
    assert accepted.verdict == Verdict.ACCEPTED
    at = ctx.ledger.submission(accepted.receipt)
    assert at is not None
    early = [r for r in reminding.plan(ctx, "covid19", ROUND, now=at.received_at + timedelta(days=2))
             if r.kind == "signoff"]
    assert early == []  # [round] signoff_remind_days = 3 by default
    late = at.received_at + timedelta(days=3, minutes=1)
    planned = [r for r in reminding.plan(ctx, "covid19", ROUND, now=late) if r.kind == "signoff"]
    assert [(r.agency, r.to, r.findings) for r in planned] == [
        (OTHER_SUP, ("acct.010000@example.test", "head.010000@example.test"), 1)]
    done = [r for r in reminding.remind(ctx, "covid19", ROUND, now=late) if r.kind == "signoff"]
    assert len(done) == 1 and done[0].path is not None
    msg = read_mail(done[0].path)
    assert "待核轉" in str(msg["Subject"]) and any(n.endswith("核轉表.xlsx") for n in attachments(msg))
    assert [r for r in reminding.plan(ctx, "covid19", ROUND, now=late + timedelta(days=1))
            if r.kind == "signoff"] == []  # reminded since its last unit came in


def test_watch_sends_digests_at_the_set_time_and_only_with_news(trip: World, other_unit: Outcome) -> None:
    ctx = trip.ctx
    day = datetime.combine(datetime.now(TAIPEI).date() + timedelta(days=30), time(0), tzinfo=TAIPEI)
    # 08:00: before [round] digest_at 09:00, and no supervising agency has just completed: nothing due.
    assert digesting.due_now(ctx, day.replace(hour=8)) == []
    # 09:30: every supervising agency of the open round is due; only 010000 has news (010001 came in).
    sent = digesting.send_due(ctx, day.replace(hour=9, minute=30))
    assert [d.supervisor for d in sent] == [OTHER_SUP]
    assert [c.split("：")[0] for c in sent[0].changes] == [f"{OTHER_UNIT} 臺北市政府市政大樓公共事務管理中心"]
    assert "已發出 → 已通過" in sent[0].changes[0] and any(n.endswith("核轉表.xlsx") for n in sent[0].attachments)
    # Later the same day: 010000 had its digest today; nobody else has news.
    assert digesting.send_due(ctx, day.replace(hour=15)) == []
    assert OTHER_SUP not in [c for _, _, codes in digesting.due_now(ctx, day.replace(hour=15)) for c in codes]


def test_digest_times_and_savings_hours_are_checked_in_collect_toml(tmp_path: Path) -> None:
    good = parse_settings('[round]\ndigest_at = ["08:30", "16:00"]\nsignoff_remind_days = 5\n'
                          '[savings]\nhours_fill = 1.5\nhours_check = 20\n', tmp_path / "collect.toml")
    assert good.digest_at == ("08:30", "16:00") and good.signoff_remind_days == 5
    assert (good.hours_fill, good.hours_check) == (1.5, 20)
    with pytest.raises(ConfigError, match=r"\[round\] digest_at: expected a list of Taipei times"):
        parse_settings('[round]\ndigest_at = ["9am"]\n', tmp_path / "collect.toml")
    with pytest.raises(ConfigError, match=r"\[savings\] hours_check"):
        parse_settings('[savings]\nhours_check = "16"\n', tmp_path / "collect.toml")


def test_a_unit_resending_after_its_sign_off_needs_a_fresh_one(trip: World) -> None:
    """Last in the file: it changes 020000's units (each xdist worker runs a module's tests in file order)."""
    ctx = trip.ctx
    again = trip.unit_return("020001", "resent-020001", n=1)
    assert again.verdict == Verdict.ACCEPTED
    rows_ = {r.agency: r for r in round_status(ctx, "covid19", ROUND).rows}
    assert rows_["020001"].state == State.ACCEPTED and not rows_["020001"].signed_off
    assert counting_agencies(ctx, "covid19", ROUND) == {"020002", "020003"}
    (d,) = digesting.plan(ctx, "covid19", ROUND, supervisors=[SUP])
    assert d.changes == [f"020001 臺北市松山區公所：核轉後重新寄回（收件編號 {again.receipt}），需重新核轉"]


def test_the_pipeline_applies_a_returned_signoff_then_sends_the_digests_due(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """collect.pipeline, as `collect ingest` and each pass of `collect watch` run it: the files decided, then the
    sign-off workbook just accepted applied, then (watch) the digests due sent with their report written."""
    from collect.follow.signoff import signoff_workbook
    from collect.pipeline import after_ingest, ingest

    monkeypatch.setenv("COLLECT_SECRET", SECRET)
    root = tmp_path / "ws"
    init_workspace(root)
    ctx = Context.open(root)
    try:
        (issued,) = issue(ctx, "covid19", ROUND, agencies=["020001"]).issued
        unit = fill(issued.path, tmp_path / "unit.xlsx", rows(2))
        done = ingest(ctx, [unit])
        assert [o.verdict for o in done.outcomes] == [Verdict.ACCEPTED] and done.after.applied == []
        made = signoff_workbook(ctx, "covid19", ROUND, SUP)
        assert made is not None
        wb = openpyxl.load_workbook(io.BytesIO(made[1]))
        ws = wb[SHEET]
        assert ws[f"A{FIRST_ROW}"].value == "020001"
        ws[f"{DECISION}{FIRST_ROW}"], ws["B3"], ws["D3"] = "核轉", "民政局會計室 王主任", "115/11/12"
        wb.save(tmp_path / made[0])
        done = ingest(ctx, [tmp_path / made[0]])
        assert [o.verdict for o in done.outcomes] == [Verdict.ACCEPTED]
        [applied] = done.after.applied
        assert (applied.supervisor, applied.signed, applied.returned) == (SUP, ("020001",), ())
        assert ingest(ctx, []).after.applied == []  # applied once
        day = datetime.combine(datetime.now(TAIPEI).date() + timedelta(days=30), time(9, 30), tzinfo=TAIPEI)
        after = after_ingest(ctx, digests=True, now=day)
        assert after.applied == [] and SUP in [d.supervisor for d in after.digests]
        assert any(line.startswith(f"digest covid19 {ROUND} to {SUP} ") for line in after.lines())
        assert (ctx.ws.round_dir("covid19", ROUND) / "report").is_dir()  # the slices the digests carry
        assert after_ingest(ctx, digests=True, now=day + timedelta(hours=1)).digests == []  # sent today already
    finally:
        ctx.close()
