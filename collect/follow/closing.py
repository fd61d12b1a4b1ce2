"""Closing a round to late returns and reopening it: the ledger's flag that ingest answers with stamp.round_closed."""

from __future__ import annotations

from dataclasses import dataclass

from collect.errors import NotFound
from collect.workspace import Context


@dataclass(frozen=True)
class RoundClosure:
    """A round's closed flag after `close_round` or `reopen_round`; `changed` is False when it already was so."""

    collection: str
    round_id: str
    closed: bool
    changed: bool


def round_closed(ctx: Context, cid: str, round_id: str) -> bool:
    """True when the round is closed: a return for it is then answered with stamp.round_closed."""
    info = ctx.ledger.round_info(cid, round_id)
    return bool(info and info["closed"])


def close_round(ctx: Context, cid: str, round_id: str) -> RoundClosure:
    """Close an issued round: every later return gets the round-closed finding (an error unless the rules'
    Meta(closed_round="warning") says otherwise); what was decided before stays as it is."""
    return _set_closed(ctx, cid, round_id, True)


def reopen_round(ctx: Context, cid: str, round_id: str) -> RoundClosure:
    """Reopen a closed round: returns are decided normally again (`collect reprocess` re-decides a closed one)."""
    return _set_closed(ctx, cid, round_id, False)


def _set_closed(ctx: Context, cid: str, round_id: str, closed: bool) -> RoundClosure:
    ctx.collection(cid)  # an unknown collection is NotFound with its own hint
    info = ctx.ledger.round_info(cid, round_id)
    if info is None:
        raise NotFound(f"The round {cid} {round_id} has not been issued.",
                       f"Issue it with `collect issue {cid} --round {round_id}`; "
                       f"`collect status {cid} --round ROUND` shows an issued round.")
    changed = bool(info["closed"]) != closed
    if changed:
        ctx.ledger.set_round_closed(cid, round_id, closed)
    return RoundClosure(cid, round_id, closed, changed)
