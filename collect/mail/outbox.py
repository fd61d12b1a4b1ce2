"""Deliver outgoing mail once: record it in the ledger, keep the .eml in outbox/mail, and send it on real backends."""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import getaddresses
from pathlib import Path

from collect.archive import write_atomic
from collect.ledger import Ledger, now
from collect.mail.base import Transport
from collect.mail.compose import header_text, message_id_of, to_bytes


@dataclass(frozen=True)
class Delivered:
    path: Path
    message_id: str
    recipients: tuple[str, ...]
    new: bool  # False when the same Message-ID was delivered before (nothing sent again)
    error: str | None = None
    outgoing_id: int | None = None  # its row in the ledger's outgoing table


def recipients_of(msg: EmailMessage) -> list[str]:
    values = [header_text(msg, h) for h in ("To", "Cc", "Bcc")]
    return [addr for _name, addr in getaddresses(values) if addr]


def deliver(ledger: Ledger, mail_dir: Path, msg: EmailMessage, kind: str,
            transport: Transport | None = None) -> Delivered:
    """Write the message to outbox/mail and record it; send it when a transport is given. Idempotent per Message-ID.

    The order is what makes a crash harmless: the .eml is written whole (temporary name, fsync, rename) before
    the ledger row that points at it; a transport sends only a recorded message (a crash before its `sent` mark
    leaves it queued for `retry_outgoing`). Without a transport nothing is sent, so the row is written done."""
    mid = message_id_of(msg)
    recipients = recipients_of(msg)
    # a claim on the Message-ID: another process (a second watcher, a colleague) delivering the same message at the
    # same moment is waited for, and then finds it delivered
    with ledger.claim(f"outgoing:{mid}", wait=True):
        return _deliver(ledger, mail_dir, msg, kind, transport, mid, recipients)


def _deliver(ledger: Ledger, mail_dir: Path, msg: EmailMessage, kind: str, transport: Transport | None, mid: str,
             recipients: list[str]) -> Delivered:
    seen = ledger.outgoing_by_message_id(mid)
    if seen is not None:
        return Delivered(Path(seen["path"]), mid, tuple(recipients), False, seen.get("last_error"), int(seen["id"]))
    stamp = now().strftime("%Y%m%d-%H%M%S")
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", mid.split("@")[0])[:60]
    path = mail_dir / f"{stamp}-{kind}-{safe}.eml"
    write_atomic(path, to_bytes(msg))
    subject = header_text(msg, "Subject")
    if transport is None:
        oid = ledger.record_outgoing(kind, mid, recipients, subject, str(path), sent=True)
        return Delivered(path, mid, tuple(recipients), True, None, oid)
    oid = ledger.record_outgoing(kind, mid, recipients, subject, str(path))
    error = None
    try:
        transport.send(msg, recipients)
        ledger.outgoing_done(oid)
    except Exception as exc:  # recorded and retried later; never lost
        error = f"{exc.__class__.__name__}: {exc}"
        ledger.outgoing_done(oid, error)
    return Delivered(path, mid, tuple(recipients), True, error, oid)
