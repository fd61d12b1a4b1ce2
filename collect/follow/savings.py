"""The savings table: person-hours saved by agencies filling and supervising agencies checking, from the ledger."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from collect.workspace import Context

HOURS_PER_PERSON_MONTH = 176


@dataclass(frozen=True)
class SavingsRow:
    """One collection's year (or the total, collection ""): rounds run, fills, checks and the hours they save."""

    collection: str
    title: str
    rounds: int
    fills: int  # (round, agency) pairs with an accepted return
    checks: int  # (round, supervising agency) pairs with a sign-off, by workbook or on paper
    hours_fill: Decimal
    hours_check: Decimal

    @property
    def hours(self) -> Decimal:
        return self.hours_fill + self.hours_check

    @property
    def person_months(self) -> Decimal:
        return (self.hours / HOURS_PER_PERSON_MONTH).quantize(Decimal("0.1"), ROUND_HALF_UP)


def savings(ctx: Context, year: int) -> list[SavingsRow]:
    """Per collection with a round of `year` (round ids starting with the year), then the total: each fill times
    [savings] hours_fill and each check times hours_check (collect.toml; defaults 1 and 16 hours)."""
    per_fill = Decimal(str(ctx.ws.settings.hours_fill))
    per_check = Decimal(str(ctx.ws.settings.hours_check))
    rounds: dict[str, set[str]] = {}
    for info in ctx.ledger.all_rounds():
        if str(info["round"]).startswith(str(year)):
            rounds.setdefault(info["collection"], set()).add(info["round"])
    fills: dict[str, int] = {}
    for cid, round_id, _agency in ctx.ledger.accepted_pairs():
        if round_id in rounds.get(cid, ()):
            fills[cid] = fills.get(cid, 0) + 1
    checks: dict[str, int] = {}
    for cid, round_id, _sup in ctx.ledger.unit_signoff_pairs():
        if round_id in rounds.get(cid, ()):
            checks[cid] = checks.get(cid, 0) + 1
    out = []
    known = set(ctx.collection_ids())
    for cid in sorted(rounds):
        title = ctx.collection(cid).title if cid in known else ""
        out.append(SavingsRow(cid, title, len(rounds[cid]), fills.get(cid, 0), checks.get(cid, 0),
                              fills.get(cid, 0) * per_fill, checks.get(cid, 0) * per_check))
    out.append(SavingsRow("", "合計", sum(r.rounds for r in out), sum(r.fills for r in out),
                          sum(r.checks for r in out), sum((r.hours_fill for r in out), Decimal(0)),
                          sum((r.hours_check for r in out), Decimal(0))))
    return out
