"""`collect mail test`: the mail settings checked end to end, each step in words a system administrator reads."""

from __future__ import annotations

import os
import time
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

from collect.mail.base import Connects, HasFolders, Mailbox, Step, Transport, uids_of
from collect.mail.compose import compose
from collect.mail.registry import open_mailbox, open_transport
from collect.mail.settings import MailConfig, explain


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
        if isinstance(box, Connects):
            box.connect()
        steps.append(Step("login", True, f"logged in to {box.name}"))
        started = time.monotonic()
        count = sum(1 for _ in uids_of(box))
        steps.append(Step("list", True, f"{count} message(s) waiting in {cfg.folder} "
                                        f"({time.monotonic() - started:.1f} s)"))
        if isinstance(box, HasFolders):
            for folder in (cfg.processed_folder, cfg.failed_folder):
                box.ensure_folder(folder)
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
            sender.close()
    return steps
