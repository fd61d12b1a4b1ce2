"""Supervising agencies' sign-off (主管機關核轉) of their units' returns, and which agencies' returns count."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from collect.errors import CollectError, NotFound
from collect.forms.spec import Collection
from collect.ledger import parse_time
from collect.rounds import parse_round
from collect.states import Verdict
from collect.workspace import Context


@dataclass(frozen=True)
class SignOff:
    """One supervising agency's sign-off of a round, with the units whose accepted returns it covers."""

    collection: str
    round: str
    supervisor: str
    supervisor_name: str
    by: str
    note: str | None
    at: datetime | None
    units: tuple[str, ...]  # agencies under the supervisor with an accepted return when asked


def _coll(ctx: Context, coll: Collection | str) -> Collection:
    return ctx.collection(coll) if isinstance(coll, str) else coll


def _accepted(ctx: Context, coll: Collection, round_id: str) -> dict[str, datetime]:
    """Agency -> when its latest accepted return of the round arrived."""
    out: dict[str, datetime] = {}
    for s in ctx.ledger.submissions_for_round(coll.id, round_id):
        if s.verdict == Verdict.ACCEPTED and s.agency:
            out[s.agency] = s.received_at
    return out


def forward(ctx: Context, collection: str, round_id: str, supervisor_code: str, by: str,
            note: str | None = None) -> SignOff:
    """Record that a supervising agency has checked its units' returns of a round and forwards them.

    Signing again replaces the earlier sign-off (its time moves on). The supervisor must be a supervising agency
    (a root of the agency list) and the round must have been issued.
    """
    coll = ctx.collection(collection)
    parse_round(round_id)
    reg = ctx.registry
    agency = reg.get(supervisor_code)
    if agency is None:
        raise NotFound(f"Agency {supervisor_code} is not on the agency list.", "`collect agencies` lists the codes.")
    if agency.supervisor is not None:
        root = reg.supervisor_of(agency.code)
        raise CollectError(f"{agency.code} {agency.name} is not a supervising agency; its returns are signed off by "
                           f"{root.code} {root.name}.", f"Run the command with {root.code}.")
    if not by.strip():
        raise CollectError("A sign-off needs the name or title of who signs (--by).")
    if ctx.ledger.round_info(coll.id, round_id) is None and not ctx.ledger.issued_for(coll.id, round_id):
        raise NotFound(f"The round {coll.id} {round_id} has not been issued.",
                       f"Issue it with `collect issue {coll.id} --round {round_id}`.")
    ctx.ledger.record_signoff(coll.id, round_id, agency.code, by.strip(), (note or "").strip() or None)
    return signoffs(ctx, coll, round_id)[agency.code]


def signoffs(ctx: Context, coll: Collection | str, round_id: str) -> dict[str, SignOff]:
    """The sign-offs recorded for a round, by supervising agency code."""
    c = _coll(ctx, coll)
    reg = ctx.registry
    accepted = _accepted(ctx, c, round_id)
    out: dict[str, SignOff] = {}
    for code, rec in ctx.ledger.signoffs_for(c.id, round_id).items():
        sup = reg.get(code)
        units = tuple(sorted(a for a in accepted if reg.get(a) is not None and reg.supervisor_of(a).code == code))
        out[code] = SignOff(c.id, round_id, code, sup.name if sup else "", rec["by"], rec.get("note"),
                            parse_time(rec.get("at")), units)
    return out


def counting_agencies(ctx: Context, coll: Collection | str, round_id: str) -> set[str]:
    """The agencies whose latest accepted return counts in the round's totals.

    When the collection has Meta(require_signoff=True), an accepted return counts only once its supervising
    agency (the root above it; a supervising agency's own return included) has signed off.
    """
    c = _coll(ctx, coll)
    accepted = set(_accepted(ctx, c, round_id))
    if not c.meta.require_signoff:
        return accepted
    reg = ctx.registry
    signed = set(ctx.ledger.signoffs_for(c.id, round_id))
    return {a for a in accepted if reg.get(a) is not None and reg.supervisor_of(a).code in signed}


def awaiting_signoff(ctx: Context, coll: Collection | str, round_id: str) -> dict[str, list[str]]:
    """Supervising agency code -> its units with an accepted return that does not count yet for want of a
    sign-off, or that arrived after the sign-off (the supervisor has not seen that version). Empty when the
    collection does not require sign-off."""
    c = _coll(ctx, coll)
    if not c.meta.require_signoff:
        return {}
    reg = ctx.registry
    signed = {code: parse_time(rec.get("at")) for code, rec in ctx.ledger.signoffs_for(c.id, round_id).items()}
    out: dict[str, list[str]] = {}
    for agency, received in sorted(_accepted(ctx, c, round_id).items()):
        if reg.get(agency) is None:
            continue
        root = reg.supervisor_of(agency).code
        at = signed.get(root)
        if root not in signed or (at is not None and received > at):
            out.setdefault(root, []).append(agency)
    return out
