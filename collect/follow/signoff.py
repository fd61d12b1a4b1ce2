"""Supervising agencies' sign-off (主管機關核轉) of their units' returns, and which agencies' returns count."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd

from collect.archive import write_atomic
from collect.errors import CollectError, NotFound
from collect.forms.signoff_book import (
    build_workbook,
    counting_submissions,
    round_counts,
    signoff_collection,
    unit_lines,
)
from collect.forms.spec import Collection
from collect.ledger import SubmissionRow, parse_time
from collect.mail.compose import OutgoingAttachment, compose
from collect.mail.notify import domain_of, render
from collect.mail.outbox import Transport, deliver
from collect.rounds import parse_round, roc_deadline, roc_round_label
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
    accepted = [a for a, n in round_counts(ctx, c, round_id).items() if n.accepted is not None]
    out: dict[str, SignOff] = {}
    for code, rec in ctx.ledger.signoffs_for(c.id, round_id).items():
        sup = reg.get(code)
        units = tuple(sorted(a for a in accepted if reg.get(a) is not None and reg.supervisor_of(a).code == code))
        out[code] = SignOff(c.id, round_id, code, sup.name if sup else "", rec["by"], rec.get("note"),
                            parse_time(rec.get("at")), units)
    return out


def counting_agencies(ctx: Context, coll: Collection | str, round_id: str) -> set[str]:
    """The agencies whose latest accepted return counts in the round's totals.

    A return its supervising agency sent back (退回) never counts. When the collection has
    Meta(require_signoff=True), an accepted return counts only once its supervising agency (the root above it; a
    supervising agency's own return included) has signed it off: on paper (`collect forward`) or in a sign-off
    workbook naming that very return's receipt.
    """
    c = _coll(ctx, coll)
    reg = ctx.registry
    return {a for a, n in round_counts(ctx, c, round_id).items()
            if n.counts and (not c.meta.require_signoff or reg.get(a) is not None)}


def awaiting_signoff(ctx: Context, coll: Collection | str, round_id: str) -> dict[str, list[str]]:
    """Supervising agency code -> its units with an accepted return that does not count yet for want of a
    sign-off, or that arrived after the sign-off (the supervisor has not seen that version). Empty when the
    collection does not require sign-off."""
    c = _coll(ctx, coll)
    reg = ctx.registry
    out: dict[str, list[str]] = {}
    for agency, n in sorted(round_counts(ctx, c, round_id).items()):
        if n.awaiting and reg.get(agency) is not None:
            out.setdefault(reg.supervisor_of(agency).code, []).append(agency)
    return out


# -- sign-off workbooks (核轉表) --------------------------------------------------------------------------------------
def signoff_workbook(ctx: Context, coll: Collection | str, round_id: str, supervisor: str) -> tuple[str, bytes] | None:
    """(file name, bytes) of a stamped sign-off workbook for the supervisor's units with a counting return that
    is not signed off yet; None when there is none to sign."""
    c = _coll(ctx, coll)
    sup = ctx.registry.get(supervisor)
    lines = unit_lines(ctx, c, round_id, supervisor)
    if sup is None or not lines:
        return None
    data = build_workbook(c, round_id, supervisor, sup.name, lines, ctx.ws.secret())
    name = f"{c.id}-{round_id}-{supervisor}-核轉表.xlsx"
    write_atomic(ctx.ws.round_dir(c.id, round_id) / "signoff" / name, data)
    return name, data


@dataclass(frozen=True)
class Applied:
    """One accepted sign-off workbook applied: the units it signed off and sent back, and the notices sent."""

    receipt: str  # the sign-off workbook's own receipt
    collection: str
    round: str
    supervisor: str
    by: str
    signed: tuple[str, ...]
    returned: tuple[str, ...]
    notices: tuple[Path, ...]


def apply_pending(ctx: Context, *, transport: Transport | None = None) -> list[Applied]:
    """Apply every accepted sign-off workbook not applied yet (each once): 核轉 rows are recorded as signed off;
    each 退回 row sends the unit the reason and its workbook, and its return no longer counts."""
    done = []
    for cid in ctx.collection_ids():
        for sub in ctx.ledger.accepted_of_collection(signoff_collection(cid)):
            if sub.receipt and sub.frame_path and not ctx.ledger.decisions_applied(sub.receipt):
                done.append(_apply(ctx, cid, sub, transport))
    return done


def _apply(ctx: Context, cid: str, sub: SubmissionRow, transport: Transport | None) -> Applied:
    assert sub.round and sub.agency and sub.receipt and sub.frame_path
    frame = pd.read_parquet(ctx.ws.state_dir / sub.frame_path)
    counting = counting_submissions(ctx, cid, sub.round)
    rows = [r for r in frame.to_dict("records")
            if r["agency"] in counting and counting[r["agency"]].receipt == r["receipt"]]  # still current
    by = next((str(r["by"]) for r in rows if r.get("by")), "")
    ctx.ledger.record_unit_decisions(cid, sub.round, sub.agency, by or sub.agency, sub.receipt,
                                     [(r["agency"], r["receipt"], r["decision"], r.get("reason")) for r in rows])
    notices = []
    for r in rows:
        if r["decision"] == "returned":
            notices.append(_tell_returned(ctx, cid, sub.round, sub.agency, counting[r["agency"]],
                                          str(r.get("reason") or ""), transport))
    return Applied(sub.receipt, cid, sub.round, sub.agency, by,
                   tuple(r["agency"] for r in rows if r["decision"] == "signed"),
                   tuple(r["agency"] for r in rows if r["decision"] == "returned"), tuple(notices))


def _tell_returned(ctx: Context, cid: str, round_id: str, supervisor: str, unit_sub: SubmissionRow, reason: str,
                   transport: Transport | None) -> Path:
    """The unit's email: its supervising agency sent its return back, why, and its workbook to correct."""
    coll, reg, settings = ctx.collection(cid), ctx.registry, ctx.ws.settings
    assert unit_sub.agency is not None
    unit, sup = reg.get(unit_sub.agency), reg.get(supervisor)
    assert unit is not None and sup is not None
    if unit_sub.annotated_path and Path(unit_sub.annotated_path).is_file():
        attachment = OutgoingAttachment(Path(unit_sub.annotated_path).name, Path(unit_sub.annotated_path).read_bytes())
    else:
        attachment = OutgoingAttachment(unit_sub.file_name, ctx.archive.get(unit_sub.sha256))
    values = dict(agency_name=unit.name, supervisor_name=sup.name, collection_title=coll.title,
                  round_label=roc_round_label(round_id), receipt=unit_sub.receipt, reason=reason,
                  deadline=roc_deadline(ctx.ledger.round_info(cid, round_id)),
                  office=settings.office)
    msg = compose(sender=settings.sender, sender_name=settings.office, to=list(unit.emails), cc=list(sup.emails),
                  subject=f"【主管機關退回】{coll.title}（{roc_round_label(round_id)}）：{unit.name}",
                  text=render("signoff_return.txt.j2", **values), html=render("signoff_return.html.j2", **values),
                  attachments=[attachment],
                  message_id=f"returned.{cid}.{round_id}.{unit.code}.{unit_sub.receipt}@{domain_of(settings.sender)}",
                  domain=domain_of(settings.sender))
    return deliver(ctx.ledger, ctx.ws.mail_outbox, msg, "returned", transport).path
