"""Choosing the configured backend (`open_mailbox`, `open_transport`) and `collect mail test`."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

from collect.errors import ConfigError
from collect.mail import exchange
from collect.mail.backends import FilesMailbox, ImapMailbox, Mailbox, MailConfig, SmtpTransport, Step, explain
from collect.mail.compose import compose
from collect.mail.outbox import Transport


# -- choosing a backend ---------------------------------------------------------------------------------------------
def open_mailbox(ctx: Any) -> Mailbox:
    """The mailbox [mail] backend names, for the workspace `ctx` (collect.workspace.Context)."""
    cfg = MailConfig.of(ctx.ws.settings)
    if cfg.backend == "files":
        return FilesMailbox(ctx.ws.inbox_dir)
    if cfg.backend == "imap":
        return ImapMailbox(cfg)
    if cfg.backend == "graph":
        return exchange.GraphMailbox(exchange.GraphClient.from_config(cfg), cfg)
    if cfg.backend == "ews":
        return exchange.EwsMailbox(cfg)
    raise ConfigError(f"[mail] backend = {cfg.backend!r}: expected files, imap, ews or graph.")


def open_transport(ctx: Any) -> Transport | None:
    """The sender for [mail] backend; None for files (outgoing mail stays as .eml in outbox/mail)."""
    cfg = MailConfig.of(ctx.ws.settings)
    if cfg.backend == "files":
        return None
    if cfg.backend == "imap":
        return SmtpTransport(cfg)
    if cfg.backend == "graph":
        return exchange.GraphTransport(exchange.GraphClient.from_config(cfg))
    if cfg.backend == "ews":
        return exchange.EwsTransport(cfg)
    raise ConfigError(f"[mail] backend = {cfg.backend!r}: expected files, imap, ews or graph.")


# -- collect mail test ----------------------------------------------------------------------------------------------
def test_message(cfg: MailConfig) -> EmailMessage:
    """The message `collect mail test` sends to the mailbox itself (fetch recognises and sets it aside)."""
    domain = cfg.sender.rsplit("@", 1)[-1] if "@" in cfg.sender else "collect.example.test"
    msg = compose(sender=cfg.sender, to=[cfg.account], subject="collect mail test 郵件設定測試",
                  text="collect 郵件設定測試訊息，可刪除。\nA test message from `collect mail test`; delete it.\n",
                  message_id=make_msgid(idstring="mailtest", domain=domain), domain=domain)
    msg["X-Collect-Test"] = "1"
    msg["Auto-Submitted"] = "auto-generated"
    return msg


def mail_test(ctx: Any, *, send: bool = True, mailbox: Mailbox | None = None,
              transport: Transport | None = None) -> list[Step]:
    """Check the mail settings end to end: connect and log in, list the folder, send a message to itself.

    Each step says what failed in words a system administrator understands; the first failure stops the rest
    of that side (receiving or sending).
    """
    steps: list[Step] = []
    try:
        cfg = MailConfig.of(ctx.ws.settings)
    except Exception as exc:
        return [Step("settings", False, str(exc))]
    steps.append(Step("settings", True, f"backend = {cfg.backend}"))
    if cfg.backend == "files":
        inbox = ctx.ws.inbox_dir
        ok = inbox.is_dir() and os.access(inbox, os.W_OK)
        steps.append(Step("inbox", ok, f"{inbox} {'is a writable folder' if ok else 'is missing or not writable'}"))
        out = ctx.ws.mail_outbox
        out.mkdir(parents=True, exist_ok=True)
        steps.append(Step("outbox", os.access(out, os.W_OK), f"outgoing mail is written to {out}"))
        return steps
    box: Mailbox | None = mailbox
    try:
        if box is None:
            box = open_mailbox(ctx)
        connect = getattr(box, "connect", None)
        if connect is not None:
            connect()
        steps.append(Step("login", True, f"logged in to {box.name}"))
        started = time.monotonic()
        count = sum(1 for _ in _uids_only(box))
        steps.append(Step("list", True, f"{count} message(s) waiting in {cfg.folder} "
                                        f"({time.monotonic() - started:.1f} s)"))
        ensure = getattr(box, "ensure_folder", None)
        if ensure is not None:
            for folder in (cfg.processed_folder, cfg.failed_folder):
                ensure(folder)
            steps.append(Step("folders", True, f"{cfg.processed_folder} and {cfg.failed_folder} exist"))
    except Exception as exc:
        steps.append(Step("login" if len(steps) == 1 else "list", False, explain(exc)))
    finally:
        if box is not None and mailbox is None:
            box.close()
    if not send:
        return steps
    sender = transport
    try:
        if sender is None:
            sender = open_transport(ctx)
        assert sender is not None
        msg = test_message(cfg)
        sender.send(msg, [cfg.account])
        steps.append(Step("send", True, f"sent a test message from {cfg.sender} to {cfg.account}"))
    except Exception as exc:
        steps.append(Step("send", False, explain(exc)))
    finally:
        if transport is None and sender is not None:
            closer = getattr(sender, "close", None)
            if closer:
                closer()
    return steps


def _uids_only(box: Mailbox) -> Iterator[str]:
    """The uids waiting, without downloading bodies when the backend can avoid it."""
    lister = getattr(box, "uids", None)
    if lister is not None:
        yield from lister()
        return
    for uid, _raw in box.list_new():
        yield uid

