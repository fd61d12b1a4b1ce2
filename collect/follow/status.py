"""Who has answered a round: each agency's state, grouped under supervising agencies with completeness figures."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from collect.counting import Count
from collect.errors import NotFound
from collect.forms.signoff_book import round_counts
from collect.forms.spec import Collection
from collect.ledger import SubmissionRow
from collect.rounds import TAIPEI
from collect.states import ANSWERED, Counted, State
from collect.workspace import Context


@dataclass
class AgencyStatus:
    agency: str
    name: str
    kind: str
    supervisor: str
    supervisor_name: str
    emails: tuple[str, ...]
    state: State
    last_received: datetime | None
    errors: int
    warnings: int
    receipt: str | None  # the counting submission, else the latest decided one
    counting: SubmissionRow | None
    latest: SubmissionRow | None
    last_reminded: datetime | None
    exempt_reason: str | None
    signed_off: bool = False  # its counting return is signed off (核轉) by its supervising agency
    returned_reason: str | None = None  # why its supervising agency sent it back (state returned)
    counts: bool = False  # its counting return goes into the totals (signed off, where the collection requires it)

    def to_json(self) -> dict[str, Any]:
        return {
            "agency": self.agency, "name": self.name, "supervisor": self.supervisor,
            "supervisor_name": self.supervisor_name, "state": str(self.state),
            "last_received": self.last_received.isoformat() if self.last_received else None,
            "errors": self.errors, "warnings": self.warnings, "receipt": self.receipt,
            "last_reminded": self.last_reminded.isoformat() if self.last_reminded else None,
            "exempt_reason": self.exempt_reason, "signed_off": self.signed_off,
            "returned_reason": self.returned_reason,
        }


@dataclass
class Completeness:
    in_scope: int = 0
    received: int = 0  # anything came back
    accepted: int = 0  # valid: an accepted return counts (on time or late)
    on_time: int = 0
    exempt: int = 0
    signed_off: int = 0  # accepted and signed off by the supervising agency
    returned: int = 0  # sent back by the supervising agency

    @property
    def complete(self) -> int:
        """Agencies that need nothing more: accepted or exempt."""
        return self.accepted + self.exempt

    def add(self, s: AgencyStatus) -> None:
        self.in_scope += 1
        self.received += s.latest is not None
        self.accepted += s.state in ANSWERED
        self.on_time += s.state == State.ACCEPTED
        self.exempt += s.state == State.EXEMPT
        self.signed_off += s.signed_off
        self.returned += s.state == State.RETURNED

    @property
    def missing(self) -> int:
        """Agencies that still owe a return: nothing accepted (or sent back) and not exempt."""
        return self.in_scope - self.complete


@dataclass
class RoundStatus:
    collection: Collection
    round_id: str
    deadline: date | None
    rows: list[AgencyStatus]
    groups: dict[str, Completeness] = field(default_factory=dict)  # by supervising agency code
    total: Completeness = field(default_factory=Completeness)

    @property
    def missing(self) -> list[AgencyStatus]:
        return [r for r in self.rows if r.state not in (*ANSWERED, State.EXEMPT)]


def deadline_passed(deadline: date | None, moment: datetime) -> bool:
    return deadline is not None and moment > end_of_day(deadline)


def end_of_day(d: date) -> datetime:
    return datetime.combine(d + timedelta(days=1), time(0), tzinfo=TAIPEI)


def state_of(n: Count[SubmissionRow], deadline: date | None) -> State:
    """An agency's state in the round from its Count: late when its counting return came after the deadline."""
    if n.reason == Counted.EXEMPT:
        return State.EXEMPT
    if n.reason == Counted.RETURNED:
        return State.RETURNED
    if n.current is not None:
        return State.LATE if deadline_passed(deadline, n.current.received_at) else State.ACCEPTED
    if n.reason == Counted.REJECTED:
        return State.REJECTED
    return State.RECEIVED if n.reason == Counted.UNDECIDED else State.ISSUED


def round_status(ctx: Context, cid: str, round_id: str) -> RoundStatus:
    """Every agency in scope with its state, from one consistent state of the ledger (watchers may be ingesting)."""
    with ctx.ledger.snapshot():
        return _round_status(ctx, cid, round_id)


def _round_status(ctx: Context, cid: str, round_id: str) -> RoundStatus:
    coll = ctx.collection(cid)
    info = ctx.ledger.round_info(cid, round_id)
    issued = ctx.ledger.issued_for(cid, round_id)
    if info is None and not issued:
        raise NotFound(f"The round {cid} {round_id} has not been issued.",
                       f"Issue it with `collect issue {cid} --round {round_id}`.")
    deadline = date.fromisoformat(info["deadline"]) if info else None
    reminded = ctx.ledger.last_reminded(cid, round_id)
    reg = ctx.registry
    codes = [a.code for a in reg.in_scope(coll.in_scope_codes())]
    codes += [c for c in issued if c not in codes and reg.get(c) is not None]
    counts = round_counts(ctx, coll, round_id, codes)
    rows = []
    for code in codes:
        agency = reg.get(code)
        assert agency is not None
        sup = reg.supervisor_of(code)
        n = counts[code]
        shown = n.current or n.latest
        rows.append(AgencyStatus(
            code, agency.name, agency.kind, sup.code, sup.name, agency.emails, state_of(n, deadline),
            max((s.received_at for s in n.received), default=None), shown.errors if shown else 0,
            shown.warnings if shown else 0, shown.receipt if shown else None, n.current, n.latest,
            reminded.get(code), n.exempt_reason, n.signed, n.returned_reason, n.counts,
        ))
    result = RoundStatus(coll, round_id, deadline, rows)
    for r in rows:
        result.groups.setdefault(r.supervisor, Completeness()).add(r)
        result.total.add(r)
    return result


def set_exempt(ctx: Context, cid: str, round_id: str, codes: list[str], reason: str | None) -> list[str]:
    """Mark agencies exempt from a round (reason None clears it); returns the codes changed."""
    ctx.collection(cid)
    for code in codes:
        if ctx.registry.get(code) is None:
            raise NotFound(f"Agency {code} is not on the agency list.", "`collect agencies` lists every code.")
    for code in codes:
        ctx.ledger.set_exempt(cid, round_id, code, reason)
    return codes
