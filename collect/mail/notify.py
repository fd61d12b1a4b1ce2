"""Emails rendered with jinja2 (zh-TW first): receipts, issue notices, reminders and manager summaries."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from functools import cache
from hashlib import sha256
from typing import Any

import jinja2
from markupsafe import escape as html_escape

from collect.findings import Finding
from collect.mail.compose import OutgoingAttachment, compose
from collect.mail.message import Incoming
from collect.rounds import roc_time
from collect.states import Verdict

MAX_LISTED = 50

VERDICT_LABELS = {
    Verdict.ACCEPTED: ("通過", "#2E7D32", "accepted"),
    Verdict.REJECTED: ("退件，請修正後重新寄回", "#C00000", "rejected: please correct and resend"),
    Verdict.DUPLICATE: ("重複寄送", "#555555", "duplicate"),
    Verdict.UNIDENTIFIED: ("無法識別", "#C00000", "not identified"),
    Verdict.TAMPERED: ("識別資訊不符", "#C00000", "identity does not verify"),
    Verdict.QUARANTINED: ("暫存待確認", "#9C6500", "held for review"),
    Verdict.UNREADABLE: ("無法讀取", "#C00000", "unreadable"),
}

NEXT_STEPS = {
    Verdict.ACCEPTED: ("本次資料已通過檢核並列入彙整，無須再寄送。"
                       "如需更正，請修改同一檔案後重新寄回，以最新通過之版本為準。"),
    Verdict.REJECTED: "請依下列說明修正標示的儲存格後，將同一檔案重新寄回本信箱（請勿變更工作表結構或另存其他格式）。"
                      "{deadline}",
    Verdict.DUPLICATE: "此檔案與先前收件編號 {duplicate_of} 的檔案內容完全相同，已不重複處理；該次的檢核結果仍然有效。",
    Verdict.UNIDENTIFIED: "請使用本處寄發給貴機關的填報檔案填寫後寄回；如遺失原檔，請回覆本信索取。",
    Verdict.TAMPERED: ("檔案的識別資訊遭到修改或不屬於貴機關，無法列入彙整。"
                       "請使用本處寄發的原始填報檔案重新填寫後寄回。"),
    Verdict.QUARANTINED: "寄件信箱不是該機關登記的聯絡信箱，檔案已暫存，待本處人工確認後處理，不會列入彙整。"
                         "如您是該機關承辦人，請改由登記的信箱寄送，或請主管機關通知本處更新聯絡信箱。",
    Verdict.UNREADABLE: "系統無法讀取此檔案，請依下列說明處理後，將本處寄發的填報檔案重新寄回。",
}


@cache
def env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("collect", "templates"),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "html.j2"), default_for_string=False),
        trim_blocks=False, lstrip_blocks=False, keep_trailing_newline=True,
    )


@cache
def template(name: str) -> jinja2.Template:
    """A template compiled once per process (the package's templates do not change while it runs)."""
    return env().get_template(name)


def render(name: str, **values: Any) -> str:
    return template(name).render(**values)


def domain_of(address: str) -> str:
    return address.rsplit("@", 1)[-1] if "@" in address else "collect.example.test"


@dataclass
class ReceiptFacts:
    """Everything a receipt says; built by ingest, rendered here."""

    receipt: str
    sha256: str
    verdict: Verdict
    file_name: str
    received_at: datetime
    to: list[str]
    office: str
    sender: str
    agency_name: str = ""
    collection_title: str = ""
    round_label: str = ""
    deadline: str = ""
    findings: list[Finding] = field(default_factory=list)
    duplicate_of: str | None = None
    counting_note: str = ""
    copy_note: str = ""  # why the annotated copy is not attached (too large for mail), when it is not
    annotated: OutgoingAttachment | None = None
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    revision: str = ""  # set when a reprocess changed the decision: a new Message-ID, so the new receipt is sent


def decision_key(f: ReceiptFacts) -> str:
    """A short digest of the decision a receipt announces (verdict, duplicate-of, findings)."""
    parts = [str(f.verdict), f.duplicate_of or "", *(f"{x.code}|{x.sheet}|{x.cell}|{x.value}" for x in f.findings)]
    return sha256("\n".join(parts).encode("utf-8")).hexdigest()[:8]


def receipt_message(f: ReceiptFacts) -> EmailMessage:
    """The receipt email: verdict, findings table, what to do next, the annotated copy attached."""
    label, color, _en = VERDICT_LABELS[f.verdict]
    errors = sum(x.severity == "error" for x in f.findings)
    deadline = f"截止日期為 {f.deadline}。" if f.deadline else ""
    listed = [dict(x.to_dict(), severity_label="錯誤" if x.severity == "error" else "警告") for x in f.findings]
    values = dict(
        greeting=f"{f.agency_name}承辦人您好：" if f.agency_name else "您好：",
        agency_name=f.agency_name, received=roc_time(f.received_at), file_name=f.file_name, receipt=f.receipt,
        collection_title=f.collection_title, round_label=f.round_label, verdict_label=label, verdict_color=color,
        errors=errors, warnings=len(f.findings) - errors,
        next_step=NEXT_STEPS[f.verdict].format(deadline=deadline, duplicate_of=f.duplicate_of or ""),
        counting_note=f.counting_note, copy_note=f.copy_note, findings=listed, shown=MAX_LISTED,
        more=len(listed) > MAX_LISTED,
        annotated=f.annotated.filename if f.annotated else None, office=f.office,
    )
    who = f"{f.agency_name}：" if f.agency_name else ""
    form = f"{f.collection_title}（{f.round_label}）" if f.collection_title else ""
    subject = f"【收件回覆】{form}{who}{label}（{f.receipt}）"
    values["subject"] = subject
    msg = compose(
        sender=f.sender, sender_name=f.office, to=f.to, subject=subject,
        text=render("receipt.txt.j2", **values), html=render("receipt.html.j2", **values),
        attachments=[f.annotated] if f.annotated else [], in_reply_to=f.in_reply_to, references=f.references,
        message_id=f"{f.receipt}.{f.sha256[:8]}{'.' + f.revision if f.revision else ''}@{domain_of(f.sender)}",
        domain=domain_of(f.sender),
        date=datetime.now(UTC),
    )
    msg.set_raw("Auto-Submitted", "auto-replied")  # RFC 3834: autoresponders must not answer a receipt
    return msg


def nothing_found_message(settings: Any, inc: Incoming, too_large: list[str], max_bytes: int) -> EmailMessage:
    """A polite answer to a message with no workbook in it, or with workbooks over the size limit."""
    if too_large:
        body = (f"本處已收到您的來信「{inc.subject}」，但附件 {'、'.join(too_large)} 超過 {max_bytes // 1_000_000} MB "
                "的上限，未予處理。請刪除多餘的工作表或圖片後重新寄送，或將檔案壓縮成 zip 後寄送。")
    else:
        body = (f"本處已收到您的來信「{inc.subject}」，但信中沒有找到 Excel 填報檔案（.xlsx、.xls、.ods）。"
                "如要繳交資料，請將本處寄發的填報檔案填寫後，以附件方式寄回。")
    text = f"您好：\n\n{body}\n\n{settings.office} 敬上\n（本信由系統自動寄出。）\n"
    html = (f"<!doctype html><html lang=\"zh-Hant\"><body><p>您好：</p><p>{html_escape(body)}</p>"
            f"<p>{html_escape(settings.office)} 敬上</p></body></html>")
    msg = compose(
        sender=settings.sender, sender_name=settings.office, to=[inc.sender],
        subject=f"【收件回覆】未找到填報檔案：{inc.subject}", text=text, html=html, in_reply_to=inc.message_id,
        references=inc.references,
        message_id=f"notice.{sha256(inc.message_id.encode()).hexdigest()[:16]}@{domain_of(settings.sender)}",
        domain=domain_of(settings.sender),
    )
    msg.set_raw("Auto-Submitted", "auto-replied")
    return msg


def issue_notice(settings: Any, *, to: list[str], agency_name: str, collection_title: str, round_label: str,
                 deadline: str, attachment: OutgoingAttachment, message_id: str) -> EmailMessage:
    """The email that carries an agency's stamped workbook."""
    values = dict(agency_name=agency_name, collection_title=collection_title, round_label=round_label,
                  deadline=deadline, file_name=attachment.filename, office=settings.office)
    subject = f"【填報通知】{collection_title}（{round_label}）請於 {deadline} 前填報：{agency_name}"
    return compose(sender=settings.sender, sender_name=settings.office, to=to, subject=subject,
                   text=render("issue.txt.j2", **values), html=render("issue.html.j2", **values),
                   attachments=[attachment], message_id=message_id, domain=domain_of(settings.sender))


def send_issue_notices(ctx: Any, result: Any, transport: Any = None) -> int:
    """Mail every stamped workbook of an issue run to its agency's addresses; once per workbook version. Two staff
    sending one round's workbooks at the same moment: the second is refused (LedgerBusy), not sent twice."""
    cid, round_id = result.collection.id, result.round_id
    with ctx.ledger.hold(f"issue:{cid}:{round_id}", f"issuing {cid} {round_id}"):
        return _send_issue_notices(ctx, result, transport)


def _send_issue_notices(ctx: Any, result: Any, transport: Any) -> int:
    from collect.mail.outbox import deliver
    from collect.rounds import roc_date, roc_round_label

    sent = 0
    for item in result.issued:
        agency = ctx.registry.get(item.agency)
        if agency is None or not agency.emails:
            continue
        attachment = OutgoingAttachment(item.path.name, item.path.read_bytes())
        msg = issue_notice(
            ctx.ws.settings, to=list(agency.emails), agency_name=agency.name,
            collection_title=result.collection.title, round_label=roc_round_label(result.round_id),
            deadline=roc_date(result.deadline), attachment=attachment,
            message_id=f"issue.{item.stamp.token[:16]}.{sha256(attachment.data).hexdigest()[:8]}@"
                       f"{domain_of(ctx.ws.settings.sender)}",
        )
        done = deliver(ctx.ledger, ctx.ws.mail_outbox, msg, "issue", transport)
        if done.error is None:
            ctx.ledger.mark_sent(result.collection.id, result.round_id, item.agency)
            sent += 1
    return sent
