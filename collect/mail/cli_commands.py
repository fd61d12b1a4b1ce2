"""The bodies of `collect fetch`, `collect watch` and `collect mail test`, taking already-parsed arguments."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

from collect.mail.backends import Step, mail_test, open_mailbox, open_transport
from collect.watch import LOCK_NAME, MessageResult, WatchLock, WatchSummary, fetch_messages, retry_outgoing, watch
from collect.workspace import Context

LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"


def setup_logging(debug: bool = False, stream: Any = None) -> None:
    """One line per event on stderr (journald adds its own time stamp, so this one is for people at a terminal)."""
    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO, format=LOG_FORMAT,
                        stream=stream or sys.stderr, force=True)
    for noisy in ("imap_tools", "exchangelib", "httpx", "httpcore", "msal", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def run_fetch(ctx: Context, on_message: Callable[[MessageResult], None] | None = None) -> list[MessageResult]:
    """`collect fetch`: retry queued outgoing mail, then one pass over the mailbox of collect.toml. Holds the
    watcher's lock, so it never runs beside `collect watch`."""
    with WatchLock(ctx.ws.state_dir / LOCK_NAME):
        transport = open_transport(ctx)
        mailbox = open_mailbox(ctx)
        try:
            retry_outgoing(ctx, transport)
            return fetch_messages(ctx, mailbox, transport, on_message=on_message)
        finally:
            mailbox.close()
            closer = getattr(transport, "close", None)
            if closer is not None:
                closer()


def run_watch(ctx: Context, interval: float | None = None, once: bool = False) -> WatchSummary:
    """`collect watch`: fetch, wait (IDLE or poll), repeat, until SIGTERM / Ctrl-C; `once` = a single pass."""
    return watch(ctx, interval=interval, max_passes=1 if once else None)


def run_mail_test(ctx: Context, send: bool = True) -> tuple[list[Step], bool]:
    """`collect mail test`: the steps and whether all passed (the command exits 1 when one failed)."""
    steps = mail_test(ctx, send=send)
    return steps, all(s.ok for s in steps)
