"""Which return counts: for each agency of a round, its counting return and why, decided once from plain facts."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, Protocol, TypeVar

from collect.states import Counted, Stage, Verdict

SIGNED, RETURNED = "signed", "returned"  # a supervising agency's decision on one unit's return (核轉, 退回)


class Return(Protocol):
    """What counting reads of a submission (collect.ledger.SubmissionRow is one)."""

    @property
    def id(self) -> int: ...
    @property
    def receipt(self) -> str | None: ...
    @property
    def agency(self) -> str | None: ...
    @property
    def verdict(self) -> str | None: ...
    @property
    def stage(self) -> str: ...
    @property
    def received_at(self) -> datetime: ...


R = TypeVar("R", bound=Return)


@dataclass(frozen=True)
class UnitDecision:
    """A supervising agency's latest decision on one unit's return, by receipt, from a sign-off workbook."""

    agency: str
    receipt: str
    decision: str  # SIGNED | RETURNED
    reason: str | None = None


@dataclass(frozen=True)
class RoundFacts(Generic[R]):
    """Everything counting needs of one round, as the ledger holds it (Ledger.counting_facts)."""

    submissions: tuple[R, ...]  # in arrival order (ledger id)
    decisions: Mapping[str, UnitDecision] = field(default_factory=dict)  # agency -> its latest unit decision
    signoffs: Mapping[str, datetime | None] = field(default_factory=dict)  # supervisor -> paper sign-off time
    exempt: Mapping[str, str] = field(default_factory=dict)  # agency -> the reason staff gave


@dataclass(frozen=True)
class Count(Generic[R]):
    """One agency's answer: which of its returns counts and why.

    `current` is its latest accepted return unless its supervising agency sent that one back (退回): the version
    the agency stands by, listed in its 核轉表. `counts` says whether `current` goes into the round's totals: always,
    unless the collection requires sign-off and it is not signed off yet. An exempt agency's accepted return still
    counts (its reason is EXEMPT, its figures are merged as before)."""

    agency: str
    reason: Counted
    current: R | None = None
    accepted: R | None = None  # the latest accepted return, sent back or not
    latest: R | None = None  # the latest decided return, else the latest received
    received: tuple[R, ...] = ()  # every processed return of the agency, oldest first
    counts: bool = False
    signed_on_paper: bool = False  # `current` is covered by its supervising agency's sign-off (`collect forward`)
    signed_in_book: bool = False  # `current` is signed off (核轉) by receipt in a 核轉表
    awaiting: bool = False  # `current` needs a sign-off its supervising agency has not given for this version
    returned_reason: str | None = None  # why `accepted` was sent back
    exempt_reason: str | None = None

    @property
    def signed(self) -> bool:
        """`current` is signed off by its supervising agency, on paper or in a 核轉表."""
        return self.signed_on_paper or self.signed_in_book


def count_agency(agency: str, returns: Iterable[R], facts: RoundFacts[R], supervisor: str | None,
                 require_signoff: bool, *, excluding: int | None = None) -> Count[R]:
    """The agency's Count from its returns (any order); `supervisor` is the root above it (None: not on the
    agency list, so no paper sign-off covers it); `excluding` leaves one submission out (the one being decided)."""
    mine = sorted((s for s in returns if s.agency == agency and s.stage == Stage.PROCESSED and s.id != excluding),
                  key=lambda s: s.id)
    decided = [s for s in mine if s.verdict in (Verdict.ACCEPTED, Verdict.REJECTED)]
    accepted = next((s for s in reversed(decided) if s.verdict == Verdict.ACCEPTED), None)
    latest = decided[-1] if decided else (mine[-1] if mine else None)
    decision = facts.decisions.get(agency)
    on_accepted = decision is not None and accepted is not None and decision.receipt == accepted.receipt
    returned = on_accepted and decision is not None and decision.decision == RETURNED
    current = None if returned else accepted
    in_book = on_accepted and decision is not None and decision.decision == SIGNED and current is not None
    paper = current is not None and supervisor is not None and supervisor in facts.signoffs
    at = facts.signoffs.get(supervisor) if supervisor is not None else None
    awaiting = require_signoff and current is not None and not in_book and (
        not paper or (at is not None and current.received_at > at))  # a newer version than the one signed
    counts = current is not None and (paper or in_book or not require_signoff)
    exempt = facts.exempt.get(agency)
    if exempt is not None:
        reason = Counted.EXEMPT
    elif returned:
        reason = Counted.RETURNED
    elif current is not None:
        reason = Counted.COUNTS if counts else Counted.AWAITING_SIGNOFF
    elif decided:
        reason = Counted.REJECTED
    elif mine:
        reason = Counted.UNDECIDED
    else:
        reason = Counted.NOTHING
    return Count(agency, reason, current, accepted, latest, tuple(mine), counts, paper, in_book, awaiting,
                 decision.reason if returned and decision is not None else None, exempt)


def count_round(facts: RoundFacts[R], supervisor_of: Callable[[str], str | None], require_signoff: bool,
                agencies: Iterable[str] = ()) -> dict[str, Count[R]]:
    """Every agency with a return in the round, and each of `agencies` (in scope, maybe silent), to its Count."""
    by_agency: dict[str, list[R]] = {}
    for s in facts.submissions:
        if s.agency:
            by_agency.setdefault(s.agency, []).append(s)
    codes = list(dict.fromkeys([*agencies, *by_agency]))
    return {a: count_agency(a, by_agency.get(a, ()), facts, supervisor_of(a), require_signoff) for a in codes}
