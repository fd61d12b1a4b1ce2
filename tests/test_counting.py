"""The counting rule alone (collect.counting): which of an agency's returns counts in a round, and why."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from collect.counting import RETURNED, SIGNED, Count, RoundFacts, UnitDecision, count_agency, count_round
from collect.receive.ingest import counting_note
from collect.states import Counted, Stage, Verdict

A, B, SUP = "020001", "020002", "020000"
T0 = datetime(2026, 10, 31, 17, 30, tzinfo=UTC)  # 115/11/01 01:30 in Taipei


@dataclass(frozen=True)
class Sub:
    """A submission as counting reads it."""

    id: int
    verdict: str | None
    agency: str | None = A
    stage: str = Stage.PROCESSED
    received_at: datetime = T0

    @property
    def receipt(self) -> str:
        return f"R20261031-{self.id:06d}"


def sub(i: int, verdict: str | None, agency: str | None = A, stage: str = Stage.PROCESSED) -> Sub:
    return Sub(i, verdict, agency, stage, T0 + timedelta(hours=i))


def count(subs: list[Sub], *, require_signoff: bool = False, supervisor: str | None = SUP,
          decisions: dict[str, UnitDecision] | None = None, signoffs: dict[str, datetime | None] | None = None,
          exempt: dict[str, str] | None = None, excluding: int | None = None) -> Count[Sub]:
    facts = RoundFacts(tuple(subs), decisions or {}, signoffs or {}, exempt or {})
    return count_agency(A, subs, facts, supervisor, require_signoff, excluding=excluding)


def test_the_latest_accepted_return_counts_and_a_later_rejected_one_does_not_displace_it() -> None:
    first, second, bad = sub(1, Verdict.ACCEPTED), sub(2, Verdict.ACCEPTED), sub(3, Verdict.REJECTED)
    n = count([first, second, bad, sub(4, Verdict.DUPLICATE)])
    assert (n.reason, n.current, n.accepted, n.latest, n.counts) == (Counted.COUNTS, second, second, bad, True)
    assert n.received[-1].verdict == Verdict.DUPLICATE


def test_only_decided_submissions_of_the_agency_are_read() -> None:
    n = count([sub(1, Verdict.ACCEPTED, stage=Stage.FAILED), sub(2, None, stage=Stage.RECEIVED),
               sub(3, Verdict.ACCEPTED, agency=B)])
    assert (n.reason, n.current, n.received) == (Counted.NOTHING, None, ())
    assert count([sub(1, Verdict.QUARANTINED)]).reason == Counted.UNDECIDED
    assert count([sub(1, Verdict.REJECTED)]).reason == Counted.REJECTED


def test_a_sent_back_return_does_not_count_and_no_earlier_one_comes_back() -> None:
    older, newer = sub(1, Verdict.ACCEPTED), sub(2, Verdict.ACCEPTED)
    n = count([older, newer], decisions={A: UnitDecision(A, newer.receipt, RETURNED, "金額有誤")})
    assert (n.reason, n.current, n.accepted, n.counts) == (Counted.RETURNED, None, newer, False)
    assert n.returned_reason == "金額有誤"
    # the agency sends again: the new version counts, the decision named the one before
    again = sub(3, Verdict.ACCEPTED)
    n = count([older, newer, again], decisions={A: UnitDecision(A, newer.receipt, RETURNED, "金額有誤")})
    assert (n.reason, n.current, n.returned_reason) == (Counted.COUNTS, again, None)


def test_with_sign_off_required_a_return_counts_once_signed_on_paper_or_by_receipt() -> None:
    first = sub(1, Verdict.ACCEPTED)
    n = count([first], require_signoff=True)
    assert (n.reason, n.counts, n.awaiting, n.signed) == (Counted.AWAITING_SIGNOFF, False, True, False)
    n = count([first], require_signoff=True, signoffs={SUP: T0 + timedelta(days=1)})
    assert (n.reason, n.counts, n.awaiting, n.signed_on_paper) == (Counted.COUNTS, True, False, True)
    n = count([first], require_signoff=True, decisions={A: UnitDecision(A, first.receipt, SIGNED)})
    assert (n.reason, n.counts, n.awaiting, n.signed_in_book) == (Counted.COUNTS, True, False, True)
    # a 核轉 of an earlier version does not cover the one sent since
    second = sub(2, Verdict.ACCEPTED)
    n = count([first, second], require_signoff=True, decisions={A: UnitDecision(A, first.receipt, SIGNED)})
    assert (n.current, n.counts, n.awaiting) == (second, False, True)
    # a paper sign-off covers it, but its supervising agency has not seen that version yet
    n = count([first, second], require_signoff=True, signoffs={SUP: T0 + timedelta(minutes=90)})
    assert (n.counts, n.awaiting) == (True, True)
    # an agency not on the list has no supervising agency whose paper sign-off covers it
    assert not count([first], require_signoff=True, supervisor=None, signoffs={SUP: T0}).counts


def test_without_sign_off_required_nothing_awaits_and_a_paper_sign_off_is_still_shown() -> None:
    n = count([sub(1, Verdict.ACCEPTED)], signoffs={SUP: T0})
    assert (n.counts, n.awaiting, n.signed) == (True, False, True)


def test_exempt_is_the_reason_and_an_accepted_return_still_counts() -> None:
    n = count([sub(1, Verdict.ACCEPTED)], exempt={A: "本期無相關經費"})
    assert (n.reason, n.exempt_reason, n.counts) == (Counted.EXEMPT, "本期無相關經費", True)
    assert count([], exempt={A: "x"}).reason == Counted.EXEMPT


def test_the_submission_being_decided_is_left_out() -> None:
    only = sub(1, Verdict.ACCEPTED)  # reprocessed: its own earlier verdict is not an "earlier version"
    n = count([only], excluding=only.id)
    assert (n.reason, n.accepted) == (Counted.NOTHING, None)


def test_a_round_lists_every_agency_with_a_return_and_each_silent_one_asked_for() -> None:
    subs = [sub(1, Verdict.ACCEPTED), sub(2, Verdict.REJECTED, agency=B), sub(3, Verdict.ACCEPTED, agency=None)]
    counts = count_round(RoundFacts(tuple(subs)), lambda a: SUP, False, ["020003"])
    assert {a: n.reason for a, n in counts.items()} == {
        "020003": Counted.NOTHING, A: Counted.COUNTS, B: Counted.REJECTED}


def test_the_rejected_receipts_note_names_the_earlier_version_in_taipei_roc_time() -> None:
    first = sub(0, Verdict.ACCEPTED)  # 2026-10-31 17:30 UTC
    assert counting_note(count([first])) == (
        f"貴機關先前於 115/11/01 01:30 通過的版本（收件編號 {first.receipt}）仍為本期計入的資料。")
    returned = count([first], decisions={A: UnitDecision(A, first.receipt, RETURNED, "金額有誤")})
    note = counting_note(returned)
    assert "仍為本期計入" not in note and "已由主管機關退回（退回理由：金額有誤），不計入本期" in note
    assert counting_note(count([first], require_signoff=True)).endswith("仍為本期有效的版本，待主管機關核轉後計入。")
    assert counting_note(count([sub(1, Verdict.REJECTED)])) == ""
