"""Digests: each supervising agency's email about its units (by state, what changed), with its workbooks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any

from collect.follow.signoff import signoff_workbook
from collect.follow.status import AgencyStatus, RoundStatus, round_status
from collect.mail.compose import OutgoingAttachment, compose
from collect.mail.notify import domain_of, render
from collect.mail.outbox import Transport, deliver
from collect.rounds import TAIPEI, roc_round_label
from collect.states import STATE_LABELS, State
from collect.workspace import Context

# The digest's sections, in the order it lists them: (title, states).
SECTIONS = (("已通過", (State.ACCEPTED, State.LATE)), ("主管機關退回", (State.RETURNED,)),
            ("退件待補正", (State.REJECTED,)), ("已收件待確認", (State.RECEIVED,)), ("尚未繳交", (State.ISSUED,)),
            ("免填報", (State.EXEMPT,)))


@dataclass
class Digest:
    """One supervising agency's digest: its units by section, what changed since its last digest, attachments."""

    collection: str
    round: str
    supervisor: str
    supervisor_name: str
    to: tuple[str, ...]
    sections: dict[str, list[dict[str, Any]]]
    changes: list[str]
    attachments: list[str] = field(default_factory=list)
    snapshot: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None  # the .eml written when sent
    first: bool = False  # no digest was sent to it for this round before


def supervisor_workbook(ctx: Context, cid: str, round_id: str, code: str) -> Path | None:
    """The supervising agency's own workbook: today the slice `collect report` wrote last
    (report/<collection>-<round>-<code>-*.xlsx), None before the first report. The one place to switch to the
    consolidated form."""
    found = sorted((ctx.ws.round_dir(cid, round_id) / "report").glob(f"{cid}-{round_id}-{code}-*.xlsx"),
                   key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def _unit(r: AgencyStatus) -> dict[str, Any]:
    return {"agency": r.agency, "name": r.name, "state": str(r.state), "label": STATE_LABELS[r.state],
            "receipt": r.receipt, "errors": r.errors, "signed_off": r.signed_off, "reason": r.returned_reason,
            "exempt_reason": r.exempt_reason}


def _snapshot(rows: list[AgencyStatus]) -> dict[str, Any]:
    return {r.agency: {"state": str(r.state), "receipt": r.receipt, "signed_off": r.signed_off} for r in rows}


def _without_signoff(snapshot: dict[str, Any]) -> dict[str, Any]:
    return {a: (v["state"], v["receipt"]) for a, v in snapshot.items()}


def _changes(rows: list[AgencyStatus], before: dict[str, Any] | None) -> list[str]:
    """One zh-TW line per unit whose state, counting receipt or sign-off changed since the last digest."""
    if before is None:
        return []
    out = []
    for r in rows:
        was = before.get(r.agency)
        now = _snapshot([r])[r.agency]
        if was == now or (was is not None and was["signed_off"] != now["signed_off"]
                          and (was["state"], was["receipt"]) == (now["state"], now["receipt"])):
            continue  # unchanged, or only signed off by the supervising agency itself
        label = STATE_LABELS[r.state]
        if was is None:
            out.append(f"{r.agency} {r.name}：新列入本期，{label}")
        elif was["signed_off"] and not now["signed_off"] and now["state"] in ("accepted", "late"):
            out.append(f"{r.agency} {r.name}：核轉後重新寄回（收件編號 {r.receipt}），需重新核轉")
        elif was["state"] != now["state"]:
            out.append(f"{r.agency} {r.name}：{STATE_LABELS[State(was['state'])]} → {label}"
                       + (f"（收件編號 {r.receipt}）" if r.receipt else ""))
        else:
            out.append(f"{r.agency} {r.name}：重新寄回（收件編號 {r.receipt}），{label}")
    return out


def plan(ctx: Context, cid: str, round_id: str, *, supervisors: list[str] | None = None,
         status: RoundStatus | None = None) -> list[Digest]:
    """The digests due for a round: one per supervising agency with something new since its last digest (all of
    them before the first). Nothing is written, sent or recorded."""
    st = status or round_status(ctx, cid, round_id)
    by_sup: dict[str, list[AgencyStatus]] = {}
    for r in st.rows:
        by_sup.setdefault(r.supervisor, []).append(r)
    out = []
    for code, rows in by_sup.items():
        if supervisors is not None and code not in supervisors:
            continue
        sup = ctx.registry.get(code)
        if sup is None or not sup.emails:
            continue
        last = ctx.ledger.last_digest(cid, round_id, code)
        snap = _snapshot(rows)
        if last is not None and _without_signoff(last["snapshot"]) == _without_signoff(snap):
            continue  # nothing new for this supervising agency (its own sign-offs are no news to it)
        sections = {title: [_unit(r) for r in rows if r.state in states] for title, states in SECTIONS}
        out.append(Digest(cid, round_id, code, sup.name, tuple(sup.emails), sections,
                          _changes(rows, last["snapshot"] if last else None), snapshot=snap, first=last is None))
    return out


Refresh = Callable[[str, str], Any]  # (collection, round) -> None: write the report the digests attach


def digest(ctx: Context, cid: str, round_id: str, *, send: bool = False, transport: Transport | None = None,
           supervisors: list[str] | None = None, now: datetime | None = None,
           refresh: Refresh | None = None) -> list[Digest]:
    """The digests due (see plan); with send=True each is mailed with the supervising agency's workbook (and, where
    the collection requires sign-off, a stamped sign-off workbook for its units not signed off yet) and recorded.
    `refresh` (the commands pass `collect report`'s) runs once first when any is due, so the workbooks are current."""
    coll = ctx.collection(cid)
    due = plan(ctx, cid, round_id, supervisors=supervisors)
    if not send or not due:
        return due
    if refresh is not None:
        refresh(cid, round_id)
    moment = now or datetime.now(UTC)
    settings = ctx.ws.settings
    label = roc_round_label(round_id)
    for d in due:
        files: list[OutgoingAttachment] = []
        book = supervisor_workbook(ctx, cid, round_id, d.supervisor)
        if book is not None:
            files.append(OutgoingAttachment(book.name, book.read_bytes()))
        signoff = signoff_workbook(ctx, coll, round_id, d.supervisor) if coll.meta.require_signoff else None
        if signoff is not None:
            files.append(OutgoingAttachment(*signoff))
        d.attachments = [f.filename for f in files]
        accepted = len(d.sections["已通過"])
        total = sum(len(v) for v in d.sections.values())
        values = dict(supervisor_name=d.supervisor_name, collection_title=coll.title, round_label=label,
                      sections=d.sections, changes=d.changes, first=d.first, workbook=book.name if book else None,
                      signoff=signoff[0] if signoff else None, require_signoff=coll.meta.require_signoff,
                      office=settings.office, accepted=accepted, total=total)
        stamp = moment.strftime("%Y%m%d%H%M%S")
        subject = f"【所屬機關填報彙整】{coll.title}（{label}）：{d.supervisor_name} 已通過 {accepted}/{total}"
        msg = compose(sender=settings.sender, sender_name=settings.office, to=list(d.to), subject=subject,
                      text=render("digest.txt.j2", **values), html=render("digest.html.j2", **values),
                      attachments=files,
                      message_id=f"digest.{cid}.{round_id}.{d.supervisor}.{stamp}@{domain_of(settings.sender)}",
                      domain=domain_of(settings.sender))
        sent = deliver(ctx.ledger, ctx.ws.mail_outbox, msg, "digest", transport)
        oid = ctx.ledger.outgoing_by_message_id(sent.message_id)
        ctx.ledger.record_digest(cid, round_id, d.supervisor, d.snapshot, oid["id"] if oid else None, moment)
        d.path = sent.path
    return due


def due_now(ctx: Context, now: datetime) -> list[tuple[str, str, list[str]]]:
    """(collection, round, supervising agencies) whose digest `collect watch` sends now: at the first
    [round] digest_at time (Taipei) passed today when none went out today, and, at any time, to a supervising
    agency whose last unit has just come in (all its units accepted or exempt, which its last digest did not show).
    Open rounds only."""
    local = now.astimezone(TAIPEI)
    slots = [datetime.combine(local.date(), time.fromisoformat(t), tzinfo=TAIPEI) for t in ctx.ws.settings.digest_at]
    slot_passed = any(s <= local for s in slots)
    day_start = datetime.combine(local.date(), time(0), tzinfo=TAIPEI)
    out = []
    for info in ctx.ledger.all_rounds():
        if info["closed"] or info["collection"] not in ctx.collection_ids():
            continue
        cid, round_id = info["collection"], info["round"]
        st = round_status(ctx, cid, round_id)
        chosen = []
        for code, group in st.groups.items():
            last = ctx.ledger.last_digest(cid, round_id, code)
            sent_today = last is not None and last["sent_at"] is not None and last["sent_at"] >= day_start
            complete_now = group.missing == 0
            shown_complete = last is not None and all(
                v["state"] in ("accepted", "late", "exempt") for v in last["snapshot"].values())
            if (slot_passed and not sent_today) or (complete_now and not shown_complete):
                chosen.append(code)
        if chosen:
            out.append((cid, round_id, chosen))
    return out


def send_due(ctx: Context, now: datetime | None = None, transport: Transport | None = None,
             refresh: Refresh | None = None) -> list[Digest]:
    """Send the digests due now (see due_now); each still only to a supervising agency with something new."""
    moment = now or datetime.now(UTC)
    sent: list[Digest] = []
    for cid, round_id, codes in due_now(ctx, moment):
        sent += digest(ctx, cid, round_id, send=True, transport=transport, supervisors=codes, now=moment,
                       refresh=refresh)
    return sent

