"""Reminders: every agency in scope without an accepted return is mailed; accepted and exempt ones never are."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from collect.findings import Finding
from collect.follow.signoff import awaiting_signoff, signoff_workbook
from collect.follow.status import AgencyStatus, deadline_passed, round_status
from collect.mail.compose import OutgoingAttachment, compose
from collect.mail.notify import domain_of, render
from collect.mail.outbox import Transport, deliver
from collect.rounds import roc_date, roc_round_label
from collect.states import ANSWERED, State
from collect.workspace import Context


@dataclass(frozen=True)
class Reminder:
    agency: str
    name: str
    kind: str  # "never" (nothing accepted or rejected yet: the workbook again) | "rejected" (the latest findings)
    #            | "returned" (its supervising agency sent its accepted return back: the reason)
    #            | "signoff" (a supervising agency's units await its sign-off; findings = how many)
    to: tuple[str, ...]
    cc: tuple[str, ...]
    attachment: str | None
    findings: int
    path: Path | None = None


def plan(ctx: Context, cid: str, round_id: str, now: datetime | None = None) -> list[Reminder]:
    """Who would get what; nothing is sent or recorded."""
    moment = now or datetime.now(UTC)
    return [r for r, _ in _plan(ctx, cid, round_id, moment)] + _signoff_plan(ctx, cid, round_id, moment)


def _signoff_plan(ctx: Context, cid: str, round_id: str, now: datetime) -> list[Reminder]:
    """Supervising agencies with units awaiting their sign-off [round] signoff_remind_days or more after their
    last unit was accepted, and not reminded since: each gets its own reminder with a fresh sign-off workbook."""
    coll = ctx.collection(cid)
    if not coll.meta.require_signoff:
        return []
    waiting = awaiting_signoff(ctx, coll, round_id)
    if not waiting:
        return []
    st = round_status(ctx, cid, round_id)
    reminded = ctx.ledger.last_reminded(cid, round_id, "signoff")
    after = timedelta(days=ctx.ws.settings.signoff_remind_days)
    out = []
    for code, units in sorted(waiting.items()):
        last = max((r.counting.received_at for r in st.rows if r.supervisor == code and r.counting), default=None)
        sup = ctx.registry.get(code)
        if last is None or sup is None or not sup.emails or now - last < after:
            continue
        if code in reminded and reminded[code] >= last:
            continue
        out.append(Reminder(code, sup.name, "signoff", tuple(sup.emails), (), None, len(units)))
    return out


def _plan(ctx: Context, cid: str, round_id: str, now: datetime) -> list[tuple[Reminder, AgencyStatus]]:
    st = round_status(ctx, cid, round_id)
    overdue = deadline_passed(st.deadline, now)
    issued = ctx.ledger.issued_for(cid, round_id)
    out = []
    for row in st.rows:
        if row.state in (*ANSWERED, State.EXEMPT) or not row.emails:
            continue
        kind = {State.REJECTED: "rejected", State.RETURNED: "returned"}.get(row.state, "never")
        cc: tuple[str, ...] = ()
        if overdue and row.supervisor != row.agency:
            sup = ctx.registry.get(row.supervisor)
            cc = tuple(sup.emails) if sup else ()
        path = issued.get(row.agency, {}).get("path")
        found = ctx.ledger.findings_of(row.latest.id) if kind == "rejected" and row.latest else []
        out.append((Reminder(row.agency, row.name, kind, row.emails, cc,
                             path if kind == "never" else None, len(found)), row))
    return out


def remind(ctx: Context, cid: str, round_id: str, *, now: datetime | None = None,
           transport: Transport | None = None) -> list[Reminder]:
    """Mail and record a reminder to every agency in scope without an accepted return. Two staff reminding one
    round at the same moment (on any machine sharing the ledger): the second is refused (LedgerBusy), not sent twice."""
    with ctx.ledger.hold(f"remind:{cid}:{round_id}", f"sending the reminders of {cid} {round_id}"):
        return _remind(ctx, cid, round_id, now, transport)


def _remind(ctx: Context, cid: str, round_id: str, now: datetime | None, transport: Transport | None) -> list[Reminder]:
    moment = now or datetime.now(UTC)
    coll = ctx.collection(cid)
    st_deadline = ctx.ledger.round_info(cid, round_id)
    deadline = roc_date(datetime.fromisoformat(st_deadline["deadline"]).date()) if st_deadline else ""
    settings = ctx.ws.settings
    done = []
    for item, row in _plan(ctx, cid, round_id, moment):
        found: list[Finding] = ctx.ledger.findings_of(row.latest.id) if item.kind == "rejected" and row.latest else []
        values = dict(agency_name=row.name, kind=item.kind, collection_title=coll.title,
                      round_label=roc_round_label(round_id), receipt=row.receipt, deadline=deadline,
                      overdue=bool(item.cc), supervisor_name=row.supervisor_name, office=settings.office,
                      findings=[f.to_dict() for f in found], reason=row.returned_reason)
        attachments = []
        if item.attachment:
            p = ctx.ws.root / item.attachment
            if p.is_file():
                attachments.append(OutgoingAttachment(p.name, p.read_bytes()))
        subject = (f"【催繳通知】{coll.title}（{roc_round_label(round_id)}）"
                   f"{'逾期未繳' if item.cc else '尚未完成填報'}：{row.name}")
        stamp = moment.strftime("%Y%m%d%H%M%S")
        msg = compose(sender=settings.sender, sender_name=settings.office, to=list(item.to), cc=list(item.cc),
                      subject=subject, text=render("remind.txt.j2", **values),
                      html=render("remind.html.j2", **values), attachments=attachments,
                      message_id=f"remind.{cid}.{round_id}.{row.agency}.{stamp}@{domain_of(settings.sender)}",
                      domain=domain_of(settings.sender))
        sent = deliver(ctx.ledger, ctx.ws.mail_outbox, msg, "reminder", transport)
        oid = ctx.ledger.outgoing_by_message_id(sent.message_id)
        ctx.ledger.record_reminder(cid, round_id, row.agency, item.kind, [*item.to, *item.cc],
                                   oid["id"] if oid else None)
        done.append(Reminder(item.agency, item.name, item.kind, item.to, item.cc, item.attachment, len(found),
                             sent.path))
    for item in _signoff_plan(ctx, cid, round_id, moment):
        done.append(_remind_signoff(ctx, cid, round_id, item, moment, transport))
    return done


def _remind_signoff(ctx: Context, cid: str, round_id: str, item: Reminder, moment: datetime,
                    transport: Transport | None) -> Reminder:
    coll, settings = ctx.collection(cid), ctx.ws.settings
    book = signoff_workbook(ctx, coll, round_id, item.agency)
    values = dict(supervisor_name=item.name, collection_title=coll.title, round_label=roc_round_label(round_id),
                  units=item.findings, days=settings.signoff_remind_days, workbook=book[0] if book else None,
                  office=settings.office)
    subject = f"【核轉催辦】{coll.title}（{roc_round_label(round_id)}）：{item.name} 尚有 {item.findings} 個單位待核轉"
    msg = compose(sender=settings.sender, sender_name=settings.office, to=list(item.to), subject=subject,
                  text=render("signoff_remind.txt.j2", **values),
                  attachments=[OutgoingAttachment(*book)] if book else [],
                  message_id=f"remind-signoff.{cid}.{round_id}.{item.agency}.{moment:%Y%m%d%H%M%S}"
                             f"@{domain_of(settings.sender)}",
                  domain=domain_of(settings.sender))
    sent = deliver(ctx.ledger, ctx.ws.mail_outbox, msg, "reminder", transport)
    oid = ctx.ledger.outgoing_by_message_id(sent.message_id)
    ctx.ledger.record_reminder(cid, round_id, item.agency, "signoff", list(item.to), oid["id"] if oid else None)
    return Reminder(item.agency, item.name, "signoff", item.to, (), book[0] if book else None, item.findings,
                    sent.path)
