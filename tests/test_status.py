"""Who has answered a round: every state, the deadline in Taipei time, exemptions, completeness per supervisor."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from collect import findings as F
from collect.errors import NotFound
from collect.follow.status import RoundStatus, deadline_passed, end_of_day, round_status, set_exempt
from collect.forms.issuing import issue
from collect.states import ANSWERED, State, Verdict
from collect.workspace import Context

ROUND = "2026-10"
DEADLINE = date(2026, 11, 10)
# The deadline day ends at midnight in Taipei (UTC+8): 2026-11-10 16:00 UTC.
CUTOFF = datetime(2026, 11, 10, 16, 0, tzinfo=UTC)
ON_TIME = CUTOFF - timedelta(seconds=1)
LATE = CUTOFF + timedelta(seconds=1)
SUPERVISOR = "020000"  # 民政局 and its district offices (public agencies)
UNITS = ["020001", "020002", "020003", "020004", "020005", "020006", "020007", "020008"]


def receive(ctx: Context, agency: str, verdict: Verdict, at: datetime, *, errors: int = 0,
            warnings: int = 0) -> str:
    """One file from `agency` recorded in the ledger at `at` and decided (as ingest does); its receipt."""
    row = ctx.ledger.record_submission(f"{agency}-{at.isoformat()}-{verdict}", f"{agency}.xlsx",
                                       f"acct.{agency}@example.test", None, received_at=at)
    found = ([F.make("table.empty", sheet="填報表")] * errors
             + [F.make("stamp.old_version", value="abc", severity="warning")] * warnings)
    ctx.ledger.decide(row.id, verdict=verdict, found=found, collection="covid19", round=ROUND, agency=agency)
    assert row.receipt is not None
    return row.receipt


@pytest.fixture
def issued(ctx: Context) -> Context:
    issue(ctx, "covid19", ROUND, agencies=[SUPERVISOR, *UNITS], deadline=DEADLINE)
    return ctx


def by_agency(st: RoundStatus) -> dict[str, State]:
    return {r.agency: r.state for r in st.rows}


def test_deadline_ends_at_midnight_in_taipei() -> None:
    assert end_of_day(DEADLINE) == CUTOFF
    assert not deadline_passed(DEADLINE, CUTOFF)
    assert deadline_passed(DEADLINE, CUTOFF + timedelta(microseconds=1))
    assert not deadline_passed(DEADLINE, datetime(2026, 11, 10, 23, 59, tzinfo=UTC) - timedelta(hours=8))
    assert not deadline_passed(None, datetime(2030, 1, 1, tzinfo=UTC))  # no deadline: never late


def test_every_state_from_the_ledger(issued: Context) -> None:
    ctx = issued
    receive(ctx, "020002", Verdict.QUARANTINED, ON_TIME)  # came back, nothing decidable: received
    receive(ctx, "020003", Verdict.REJECTED, ON_TIME, errors=2)
    on_time = receive(ctx, "020004", Verdict.ACCEPTED, ON_TIME, warnings=1)
    receive(ctx, "020005", Verdict.REJECTED, ON_TIME, errors=1)
    late = receive(ctx, "020005", Verdict.ACCEPTED, LATE)
    counted = receive(ctx, "020006", Verdict.ACCEPTED, ON_TIME)
    receive(ctx, "020006", Verdict.REJECTED, LATE, errors=3)  # a later faulty resend does not undo the accepted
    receive(ctx, "020007", Verdict.ACCEPTED, ON_TIME)
    set_exempt(ctx, "covid19", ROUND, ["020007", "020008"], "本期無相關經費")

    st = round_status(ctx, "covid19", ROUND)
    assert st.deadline == DEADLINE
    states = by_agency(st)
    assert {code: states[code] for code in [SUPERVISOR, *UNITS]} == {
        SUPERVISOR: State.ISSUED, "020001": State.ISSUED, "020002": State.RECEIVED, "020003": State.REJECTED,
        "020004": State.ACCEPTED, "020005": State.LATE, "020006": State.ACCEPTED, "020007": State.EXEMPT,
        "020008": State.EXEMPT,
    }
    rows = {r.agency: r for r in st.rows}
    assert (rows["020003"].errors, rows["020003"].counting, rows["020003"].latest.verdict) == (2, None, "rejected")
    assert (rows["020004"].receipt, rows["020004"].warnings, rows["020004"].last_received) == (on_time, 1, ON_TIME)
    assert (rows["020005"].receipt, rows["020005"].errors) == (late, 0)  # the counting return is shown
    assert rows["020006"].receipt == counted and rows["020006"].last_received == LATE
    assert rows["020006"].latest.verdict == Verdict.REJECTED
    assert rows["020007"].exempt_reason == "本期無相關經費" and rows["020001"].exempt_reason is None
    assert rows["020001"].last_received is None and rows["020001"].receipt is None
    assert (rows["020002"].supervisor, rows["020002"].supervisor_name) == (SUPERVISOR, "臺北市政府民政局")
    assert [r.agency for r in st.missing if r.supervisor == SUPERVISOR][:4] == [SUPERVISOR, "020001", "020002",
                                                                                 "020003"]
    assert not {r.state for r in st.missing} & {*ANSWERED, State.EXEMPT}
    j = rows["020005"].to_json()
    assert (j["state"], j["receipt"], j["last_received"]) == ("late", late, LATE.isoformat())


def test_completeness_per_supervising_agency_and_in_total(issued: Context) -> None:
    ctx = issued
    receive(ctx, "020002", Verdict.QUARANTINED, ON_TIME)
    receive(ctx, "020003", Verdict.REJECTED, ON_TIME, errors=1)
    receive(ctx, "020004", Verdict.ACCEPTED, ON_TIME)
    receive(ctx, "020005", Verdict.ACCEPTED, LATE)
    receive(ctx, "010001", Verdict.ACCEPTED, ON_TIME)  # 秘書處's unit: in scope, though not issued here
    set_exempt(ctx, "covid19", ROUND, ["020006"], "裁撤")

    st = round_status(ctx, "covid19", ROUND)
    public = ctx.registry.in_scope("public")
    assert [r.agency for r in st.rows] == [a.code for a in public]  # every agency in scope, in file order
    assert sorted(st.groups) == sorted({ctx.registry.supervisor_of(a.code).code for a in public})
    g = st.groups[SUPERVISOR]
    units = sum(ctx.registry.supervisor_of(a.code).code == SUPERVISOR for a in public)
    assert (g.in_scope, g.received, g.accepted, g.on_time, g.exempt, g.complete) == (units, 4, 2, 1, 1, 3)
    other = st.groups["010000"]
    assert (other.accepted, other.on_time, other.received) == (1, 1, 1)
    t = st.total
    assert (t.in_scope, t.received, t.accepted, t.on_time, t.exempt) == (len(public), 5, 3, 2, 1)
    assert len(st.missing) == len(public) - 3 - 1
    assert sum(x.in_scope for x in st.groups.values()) == t.in_scope


def test_an_exemption_is_cleared_and_the_returns_count_again(issued: Context) -> None:
    ctx = issued
    receive(ctx, "020004", Verdict.ACCEPTED, LATE)
    assert set_exempt(ctx, "covid19", ROUND, ["020004", "020001"], "另案辦理") == ["020004", "020001"]
    st = round_status(ctx, "covid19", ROUND)
    assert by_agency(st)["020004"] == State.EXEMPT and st.groups[SUPERVISOR].exempt == 2
    set_exempt(ctx, "covid19", ROUND, ["020004", "020001"], None)
    st = round_status(ctx, "covid19", ROUND)
    states = by_agency(st)
    assert (states["020004"], states["020001"]) == (State.LATE, State.ISSUED)
    assert st.groups[SUPERVISOR].exempt == 0 and st.groups[SUPERVISOR].accepted == 1
    assert {r.exempt_reason for r in st.rows} == {None}
    with pytest.raises(NotFound, match="Agency 999999 is not on the agency list"):
        set_exempt(ctx, "covid19", ROUND, ["020001", "999999"], "x")
    assert by_agency(round_status(ctx, "covid19", ROUND))["020001"] == State.ISSUED  # nothing half-done


def test_status_of_a_round_never_issued_says_how_to_issue_it(ctx: Context) -> None:
    with pytest.raises(NotFound, match="The round covid19 2026-10 has not been issued") as raised:
        round_status(ctx, "covid19", ROUND)
    assert raised.value.hint == "Issue it with `collect issue covid19 --round 2026-10`."
