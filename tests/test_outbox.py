"""Delivering outgoing mail: written whole to outbox/mail, recorded in the ledger before it is sent, sent once."""

from __future__ import annotations

import email
import email.policy
import json
import socket
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from collect.ledger import Ledger, LedgerOutdated, upgrade
from collect.mail.compose import OutgoingAttachment, compose, to_bytes
from collect.mail.imap import SmtpTransport
from collect.mail.outbox import deliver
from collect.mail.settings import MailConfig
from collect.receive.watch import retry_outgoing
from collect.workspace import Context

SUBJECT = "【收件回覆】嚴重特殊傳染性肺炎經費動支及執行情形（115年10月）臺北市政府秘書處：通過（R20261005-000001）"
WORKBOOK = b"PK\x03\x04" + bytes(range(256)) * 40


def receipt(n: int = 1, to: tuple[str, ...] = ("clerk@gov.taipei",)) -> Any:
    return compose(sender="collect@dbas.gov.taipei", sender_name="臺北市政府主計處", to=list(to), subject=SUBJECT,
                   text="通過。", html="<p>通過。</p>", in_reply_to="<CAF1@mail.gov.taipei>",
                   attachments=[OutgoingAttachment("R20261005-000001-檢核結果.xlsx", WORKBOOK)],
                   message_id=f"R20261005-{n:06d}.0a1b2c3d@dbas.gov.taipei")


@dataclass
class Smtp:
    """A real SMTP server on 127.0.0.1 that keeps what it receives and refuses on request."""

    port: int
    received: list[bytes] = field(default_factory=list)
    refuse: bool = False

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
        if self.refuse:
            return "451 4.3.0 try again later"
        self.received.append(envelope.original_content)
        return "250 OK"

    def transport(self) -> SmtpTransport:
        return SmtpTransport(MailConfig(smtp_host="127.0.0.1", smtp_port=self.port, smtp_security="none",
                                        sender="collect@dbas.gov.taipei", timeout=10))


@pytest.fixture
def smtp() -> Iterator[Smtp]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = Smtp(port)
    controller = Controller(server, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield server
    finally:
        controller.stop()


def rows(ledger: Ledger) -> list[dict[str, Any]]:
    with ledger.begin() as c:
        return [dict(r._mapping) for r in c.exec_driver_sql("SELECT * FROM outgoing ORDER BY id")]


def test_files_backend_writes_the_eml_and_records_it_sent_once(ctx: Context) -> None:
    msg = receipt()
    done = deliver(ctx.ledger, ctx.ws.mail_outbox, msg, "receipt")
    assert done.new and done.error is None and done.recipients == ("clerk@gov.taipei",)
    assert done.path.parent == ctx.ws.mail_outbox and done.path.name.endswith("-receipt-R20261005-000001.0a1b2c3d.eml")
    raw = done.path.read_bytes()
    assert raw == to_bytes(msg)
    back = email.message_from_bytes(raw, policy=email.policy.default)
    assert back["Subject"] == SUBJECT and back["In-Reply-To"] == "<CAF1@mail.gov.taipei>"
    [row] = rows(ctx.ledger)
    assert (row["kind"], row["message_id"], row["stage"], row["attempts"], row["last_error"]) == (
        "receipt", "R20261005-000001.0a1b2c3d@dbas.gov.taipei", "sent", 1, None)
    assert row["subject"] == SUBJECT  # decoded, as staff read it in `collect status`
    assert json.loads(row["recipients"]) == ["clerk@gov.taipei"] and row["path"] == str(done.path)
    assert row["sent_at"] is not None and ctx.ledger.queued_outgoing() == [] and done.outgoing_id == row["id"]
    # The same message again (a rerun after a crash): nothing new is written or recorded.
    again = deliver(ctx.ledger, ctx.ws.mail_outbox, receipt(), "receipt")
    assert not again.new and again.path == done.path and again.outgoing_id == done.outgoing_id
    assert len(list(ctx.ws.mail_outbox.glob("*.eml"))) == 1 and len(rows(ctx.ledger)) == 1
    assert not [p for p in ctx.ws.mail_outbox.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_smtp_sends_the_archived_bytes_once(ctx: Context, smtp: Smtp) -> None:
    transport = smtp.transport()
    try:
        done = deliver(ctx.ledger, ctx.ws.mail_outbox, receipt(to=("a@gov.taipei", "b@gov.taipei")), "receipt",
                       transport)
        assert done.new and done.error is None
        assert not deliver(ctx.ledger, ctx.ws.mail_outbox, receipt(), "receipt", transport).new
    finally:
        transport.close()
    [sent] = smtp.received
    assert sent.replace(b"\r\n", b"\n") == done.path.read_bytes().replace(b"\r\n", b"\n")
    [row] = rows(ctx.ledger)
    assert (row["stage"], row["attempts"]) == ("sent", 1)
    assert json.loads(row["recipients"]) == ["a@gov.taipei", "b@gov.taipei"]


def test_a_refused_send_is_kept_queued_and_retried_not_resent_by_a_rerun(ctx: Context, smtp: Smtp) -> None:
    transport = smtp.transport()
    smtp.refuse = True
    try:
        done = deliver(ctx.ledger, ctx.ws.mail_outbox, receipt(), "receipt", transport)
        assert done.new and done.error is not None and "451" in done.error
        [queued] = ctx.ledger.queued_outgoing()
        assert queued["attempts"] == 1 and "451" in queued["last_error"] and Path(queued["path"]).is_file()
        smtp.refuse = False
        rerun = deliver(ctx.ledger, ctx.ws.mail_outbox, receipt(), "receipt", transport)
        assert not rerun.new and smtp.received == []  # a rerun does not send: retrying is the queue's job
        assert [r.error for r in retry_outgoing(ctx, transport)] == [None]
        assert retry_outgoing(ctx, transport) == []
    finally:
        transport.close()
    assert len(smtp.received) == 1
    [row] = rows(ctx.ledger)
    assert (row["stage"], row["attempts"], row["last_error"]) == ("sent", 2, None)


CRASH = textwrap.dedent("""
    import os, sys
    from collect.mail.compose import OutgoingAttachment, compose
    from collect.mail.outbox import deliver
    from collect.workspace import Context

    class Dies:
        def send(self, msg, recipients):
            os._exit(3)  # the process dies after recording, before the message leaves

    ctx = Context.open(sys.argv[1])
    msg = compose(sender="collect@dbas.gov.taipei", to=["clerk@gov.taipei"], subject="收件回覆", text="通過。",
                  message_id="crash.1@dbas.gov.taipei")
    deliver(ctx.ledger, ctx.ws.mail_outbox, msg, "receipt", Dies())
""")


def test_a_crash_before_sending_leaves_the_message_queued_and_it_is_sent_once(ctx: Context, smtp: Smtp) -> None:
    proc = subprocess.run([sys.executable, "-c", CRASH, str(ctx.ws.root)], capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 3, proc.stderr
    [queued] = ctx.ledger.queued_outgoing()
    assert queued["message_id"] == "crash.1@dbas.gov.taipei" and queued["attempts"] == 0
    eml = Path(queued["path"])
    assert email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)["Subject"] == "收件回覆"
    transport = smtp.transport()
    try:
        again = compose(sender="collect@dbas.gov.taipei", to=["clerk@gov.taipei"], subject="收件回覆", text="通過。",
                        message_id="crash.1@dbas.gov.taipei")
        assert not deliver(ctx.ledger, ctx.ws.mail_outbox, again, "receipt", transport).new
        assert [r.error for r in retry_outgoing(ctx, transport)] == [None]
    finally:
        transport.close()
    assert len(smtp.received) == 1 and b"crash.1@dbas.gov.taipei" in smtp.received[0]
    assert ctx.ledger.queued_outgoing() == []


def test_a_ledger_from_before_the_message_id_index_gets_it(tmp_path: Path) -> None:
    """A ledger of schema 0001 (no index) is refused until `collect upgrade` (collect.ledger.upgrade) adds it."""
    path = tmp_path / "state" / "ledger.sqlite"
    Ledger(f"sqlite:///{path}").close()
    with sqlite3.connect(path) as db:
        db.execute("DROP INDEX ix_outgoing_message_id")  # as a ledger made by an earlier version
        db.execute("UPDATE alembic_version SET version_num = '0001'")
    with pytest.raises(LedgerOutdated):
        Ledger(f"sqlite:///{path}")
    upgrade(f"sqlite:///{path}")
    ledger = Ledger(f"sqlite:///{path}")
    try:
        for n in range(3):
            deliver(ledger, tmp_path / "outbox" / "mail", receipt(n), "receipt")
        assert ledger.outgoing_by_message_id("R20261005-000002.0a1b2c3d@dbas.gov.taipei") is not None
        assert ledger.outgoing_by_message_id("nothing@here") is None
    finally:
        ledger.close()
    with sqlite3.connect(path) as db:
        plan = db.execute("EXPLAIN QUERY PLAN SELECT * FROM outgoing WHERE message_id = ?", ("x",)).fetchall()
    assert "ix_outgoing_message_id" in str(plan)
