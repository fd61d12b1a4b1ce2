"""Fetching mail: one pass over the mailbox (`fetch`), the polling loop (`watch`), its lock, and outgoing retries."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from pathlib import Path
from types import FrameType
from typing import Any

from collect.archive import sha256_of
from collect.errors import CollectError, ConfigError
from collect.ledger import is_outage
from collect.mail.base import Connects, Mailbox, Transport, Waits
from collect.mail.compose import POLICY
from collect.mail.files import FilesMailbox
from collect.mail.message import Incoming, authentication_failure, parse_message
from collect.mail.registry import open_mailbox, open_transport
from collect.mail.settings import MailConfig, explain
from collect.receive.ingest import Envelope, Ingestor, Outcome, safe_text, shown_name
from collect.receive.sandbox import DEFAULT_PRELOAD, Sandbox
from collect.states import MailStage, Stage
from collect.workspace import Context

log = logging.getLogger("collect.receive.watch")

LOCK_NAME = "watch.lock"


class WatchLocked(CollectError):
    hint = "Only one watcher may run per workspace. Stop the other one first (systemctl stop collect-watch)."


@dataclass
class MessageResult:
    """What one pass did with one message: the files it held and their outcomes, or why it was set aside."""

    uid: str
    message_id: str
    sender: str
    subject: str
    outcomes: list[Outcome] = field(default_factory=list)
    error: str | None = None  # processing raised: moved to the failed folder, reason in the ledger
    set_aside: str | None = None  # recorded but not ingested (collect's own mail, automatic replies)
    quarantined: str | None = None  # the sender failed authentication: files held for staff, nothing sent back
    again: bool = False  # the ledger had it processed already (a crash came before the move): only moved now
    elsewhere: bool = False  # another watcher holds its claim: left to that watcher

    def line(self) -> str:
        """The one log line of this message."""
        who = f"message {self.uid} from {self.sender or '(no sender)'} {self.subject[:60]!r}"
        if self.error:
            return f"{who}: FAILED, moved to the failed folder: {self.error}"
        if self.set_aside:
            return f"{who}: set aside ({self.set_aside})"
        if self.quarantined:
            files = ", ".join(f"{o.file} {o.receipt}" for o in self.outcomes) or "no workbook"
            return f"{who}: quarantined, sender not authenticated ({self.quarantined}); nothing sent: {files}"
        if self.again:
            return f"{who}: processed before; moved to the processed folder"
        if self.elsewhere:
            return f"{who}: being processed by another watcher; left to it"
        if not self.outcomes:
            return f"{who}: no workbook attached; notice sent"
        parts = [f"{o.file} {o.verdict} {o.agency or ''} {o.receipt}".replace("  ", " ") for o in self.outcomes]
        return f"{who}: " + "; ".join(parts)


# -- one pass ---------------------------------------------------------------------------------------------------
def fetch_once(ctx: Context, on_message: Callable[[MessageResult], None] | None = None) -> list[MessageResult]:
    """`collect fetch`: retry queued outgoing mail, then one pass over the mailbox of collect.toml. Holds the
    watcher's lock, so it never runs beside `collect watch` (with a SQLite ledger; see watcher_lock)."""
    with watcher_lock(ctx):
        transport = open_transport(ctx)
        mailbox = open_mailbox(ctx)
        try:
            retry_outgoing(ctx, transport)
            return fetch_messages(ctx, mailbox, transport, on_message=on_message)
        finally:
            mailbox.close()
            if transport is not None:
                transport.close()


def fetch(ctx: Context, mailbox: Mailbox, transport: Transport | None = None, **kw: Any) -> list[Outcome]:
    """One pass over the mailbox: every waiting message ingested exactly once; the outcomes of its files."""
    return [o for r in fetch_messages(ctx, mailbox, transport, **kw) for o in r.outcomes]


def fetch_messages(ctx: Context, mailbox: Mailbox, transport: Transport | None = None, *,
                   ingestor: Ingestor | None = None, stop: Callable[[], bool] | None = None,
                   on_message: Callable[[MessageResult], None] | None = None) -> list[MessageResult]:
    """One pass: each waiting message goes through Ingestor.message (which archives and records it before its
    files are ingested, and returns [] for one already processed); only then is it moved to the processed folder.
    A message whose processing raises is recorded as failed with the reason and moved to the failed folder.
    Errors of the mailbox itself (connection, folders) propagate: the caller reconnects."""
    own = ingestor is None
    ing = ingestor or Ingestor(ctx, transport=transport)
    cfg = MailConfig.of(ctx.ws.settings)
    results: list[MessageResult] = []
    try:
        for uid, raw in mailbox.list_new():
            if stop is not None and stop():
                break
            if isinstance(mailbox, FilesMailbox) and mailbox.is_loose_file(uid):
                result = _loose_file(ctx, ing, mailbox, uid, raw)
            else:
                result = _one_message(ctx, ing, mailbox, cfg, uid, raw)
            results.append(result)
            if on_message is not None:
                on_message(result)
    finally:
        if own:
            ing.close()
    return results


def _one_message(ctx: Context, ing: Ingestor, mailbox: Mailbox, cfg: MailConfig, uid: str,
                 raw: bytes) -> MessageResult:
    inc = parse_message(raw, max_attachment_bytes=ctx.ws.settings.max_attachment_bytes)
    result = MessageResult(uid, inc.message_id, inc.sender, inc.subject)
    # several watchers on one mailbox (a PostgreSQL ledger): the one holding the message's claim processes it
    with ctx.ledger.claim(f"message:{inc.message_id}") as mine:
        if not mine:
            result.elsewhere = True
            return result
        return _claimed_message(ctx, ing, mailbox, cfg, uid, raw, inc, result)


def _claimed_message(ctx: Context, ing: Ingestor, mailbox: Mailbox, cfg: MailConfig, uid: str, raw: bytes,
                     inc: Incoming, result: MessageResult) -> MessageResult:
    source = f"{mailbox.name}#{uid}"
    aside = set_aside_reason(raw, inc.sender, bool(inc.attachments), cfg.sender)
    if aside is not None:
        result.set_aside = aside
        digest = ctx.archive.put(raw)
        mid, new = ctx.ledger.record_message_with_files(inc.message_id, digest, inc.sender, inc.subject, source, (),
                                                        inc.date)
        if new:
            ctx.ledger.set_message_stage(mid, Stage.PROCESSED, f"not ingested: {aside}")
        mailbox.mark_processed(uid)
        return result
    result.quarantined = authentication_failure(inc, cfg.trust_authserv_id)  # Ingestor.message quarantines it
    seen = ctx.ledger.message_by_key(inc.message_id)
    result.again = seen is not None and seen["stage"] == Stage.PROCESSED
    if seen is not None and seen["stage"] == Stage.FAILED:
        ctx.ledger.reopen_message(inc.message_id)  # staff put it back into the inbox: try again
    try:
        result.outcomes = ing.message(raw, source=source, parsed=inc)
    except Exception as exc:  # recorded and kept for staff; never dropped
        if is_outage(exc):  # the ledger went away, not the message's fault: left in the inbox for the next pass
            raise
        result.error = f"{exc.__class__.__name__}: {exc}"
        ctx.ledger.fail_message(inc.message_id, sha256_of(raw), inc.sender, inc.subject, source, result.error)
        mailbox.mark_failed(uid, result.error)
        return result
    mailbox.mark_processed(uid)
    return result


def _loose_file(ctx: Context, ing: Ingestor, mailbox: FilesMailbox, uid: str, data: bytes) -> MessageResult:
    """A workbook dropped into the inbox by hand: recorded under a key of its name and time, so a crash before the
    move does not ingest it twice, and a later re-drop of the same file is a new arrival (a duplicate)."""
    name = shown_name(Path(uid))
    key = safe_text(mailbox.file_key(uid))
    result = MessageResult(safe_text(uid), key, "", name)
    source = safe_text(f"{mailbox.name}#{uid}")
    try:
        digest = ctx.archive.put(data)
        files = ing.archived_files(name, data)  # a zip's workbooks, each its own submission
        mid, new = ctx.ledger.record_message_with_files(key, digest, "", name, source, files)
        if not new and ctx.ledger.message_stage(mid) == Stage.PROCESSED:
            result.again = True
        else:
            if not new:
                ctx.ledger.reopen_message(key)
            rows = [r for r in ctx.ledger.submissions_of_message(mid) if r.stage == Stage.RECEIVED]
            result.outcomes = ing.process(rows, Envelope())
            ctx.ledger.set_message_stage(mid, Stage.PROCESSED)
    except Exception as exc:
        result.error = f"{exc.__class__.__name__}: {exc}"
        ctx.ledger.fail_message(key, sha256_of(data), "", name, source, result.error)
        mailbox.mark_failed(uid, result.error)
        return result
    mailbox.mark_processed(uid)
    return result


def set_aside_reason(raw: bytes, sender: str, has_workbook: bool, own_address: str) -> str | None:
    """Why a message is recorded but not ingested (no receipt, no notice), else None.

    collect's own mail (the `collect mail test` message, a receipt that came back) and automatic replies
    without a workbook would otherwise be answered with a notice, and two robots can answer each other forever."""
    headers = BytesHeaderParser(policy=POLICY).parsebytes(raw)
    if headers.get("X-Collect-Test"):
        return "a `collect mail test` message"
    if sender and own_address and sender.lower() == own_address.lower():
        return f"sent by collect's own address {own_address}"
    auto = str(headers.get("Auto-Submitted", "")).strip().lower()
    automatic = (auto not in ("", "no") or headers.get("X-Autoreply") or headers.get("X-Autorespond")
                 or str(headers.get("Precedence", "")).strip().lower() in ("bulk", "junk", "auto_reply", "list"))
    if automatic and not has_workbook:
        return f"an automatic reply ({auto or 'Precedence/X-Autoreply'})"
    ctype = str(headers.get("Content-Type", "")).lower()
    if "report-type=delivery-status" in ctype.replace(" ", "").replace('"', "") and not has_workbook:
        return "a delivery status notification (a message collect sent was not delivered; see it in the folder)"
    return None


# -- outgoing retries -------------------------------------------------------------------------------------------
@dataclass
class RetryResult:
    message_id: str
    recipients: list[str]
    error: str | None


def retry_outgoing(ctx: Context, transport: Transport | None, *,
                   due: Callable[[dict[str, Any]], bool] | None = None) -> list[RetryResult]:
    """Send again every outgoing message still queued (a failed send, or a crash before sending); each attempt is
    counted and its error recorded in the ledger. `due(row)` may hold some back (backoff). Nothing with files."""
    if transport is None:
        return []
    results = []
    for row in ctx.ledger.queued_outgoing():
        if due is not None and not due(row):
            continue
        # another process sending it right now (its first delivery, another watcher's retry) keeps it
        with ctx.ledger.claim(f"outgoing:{row['message_id']}") as mine:
            now_row = ctx.ledger.outgoing_by_message_id(row["message_id"]) if mine else None
            if now_row is None or now_row["stage"] != MailStage.QUEUED:
                continue
            results.append(_retry_one(ctx, transport, now_row))
    return results


def _retry_one(ctx: Context, transport: Transport, row: dict[str, Any]) -> RetryResult:
    recipients = list(json.loads(row["recipients"]))
    try:
        data = Path(row["path"]).read_bytes()
        msg = message_from_bytes(data, policy=POLICY)
        assert isinstance(msg, EmailMessage)
        transport.send(msg, recipients)
    except Exception as exc:
        error = f"{exc.__class__.__name__}: {exc}"
        ctx.ledger.outgoing_done(int(row["id"]), error)
        return RetryResult(row["message_id"], recipients, error)
    ctx.ledger.outgoing_done(int(row["id"]))
    return RetryResult(row["message_id"], recipients, None)


class RetrySchedule:
    """Backoff for queued outgoing mail: after n failed attempts wait base·2ⁿ⁻¹ seconds (at most `cap`)."""

    def __init__(self, clock: Callable[[], float], base: float = 30.0, cap: float = 3600.0) -> None:
        self.clock, self.base, self.cap = clock, base, cap
        self._next: dict[int, float] = {}

    def due(self, row: dict[str, Any]) -> bool:
        return self.clock() >= self._next.get(int(row["id"]), 0.0)

    def failed(self, oid: int, attempts: int) -> None:
        self._next[oid] = self.clock() + min(self.cap, self.base * 2 ** max(0, attempts - 1))


# -- the lock ---------------------------------------------------------------------------------------------------
def watcher_lock(ctx: Context) -> contextlib.AbstractContextManager[Any]:
    """One watcher per workspace (WatchLock) with a SQLite ledger. A ledger on a database server (PostgreSQL) is
    shared by watchers on several machines: the lock gives way to the database, where each message is claimed
    (Ledger.claim) and recorded under a unique key, so none is ingested twice or lost."""
    if ctx.ledger.shared:
        return contextlib.nullcontext()
    return WatchLock(ctx.ws.state_dir / LOCK_NAME)


class WatchLock:
    """One watcher per workspace: an OS lock on state/watch.lock holding pid, host and start time.

    The OS releases the lock when the process dies (even by SIGKILL), so a stale file never blocks a restart."""

    def __init__(self, path: Path, clock: Callable[[], datetime] | None = None) -> None:
        self.path = path
        self._fd: int | None = None
        self._now = clock or (lambda: datetime.now(UTC))

    def holder(self) -> dict[str, Any]:
        try:
            return dict(json.loads(self.path.read_text(encoding="utf-8") or "{}"))
        except (OSError, ValueError):
            return {}

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if not _try_lock(fd):
            os.close(fd)
            who = self.holder()
            raise WatchLocked(
                f"Another watcher is running for this workspace: pid {who.get('pid', '?')} on "
                f"{who.get('host', '?')}, since {who.get('started', '?')} (lock {self.path}).")
        info = {"pid": os.getpid(), "host": socket.gethostname(), "started": self._now().isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, json.dumps(info).encode("utf-8"))
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)  # closing the descriptor releases the lock

    def __enter__(self) -> WatchLock:
        self.acquire()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release()


def _try_lock(fd: int) -> bool:
    try:
        import fcntl
    except ImportError:  # Windows: lock one byte far past the data
        import msvcrt

        os.lseek(fd, 1 << 20, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
        except OSError:
            return False
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


# -- the loop ---------------------------------------------------------------------------------------------------
class _Interrupted(BaseException):
    """Raised by the signal handler to leave a wait (sleep or IMAP IDLE) at once."""


class StopFlag:
    """Set by SIGTERM / Ctrl-C (or a test); a wait in progress ends at once, a message in progress completes."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.waiting = False

    def set(self) -> None:
        self.event.set()

    def __call__(self) -> bool:
        return self.event.is_set()

    def handler(self, signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s: stopping after the current message", signal.Signals(signum).name)
        self.event.set()
        if self.waiting:
            raise _Interrupted()


@dataclass
class WatchSummary:
    passes: int = 0
    messages: int = 0
    failed: int = 0
    reconnects: int = 0
    files: int = 0


@contextlib.contextmanager
def _signals(flag: StopFlag, install: bool) -> Iterator[None]:
    if not install or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, flag.handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def watch(ctx: Context, *, mailbox_factory: Callable[[], Mailbox] | None = None,
          transport: Transport | None = None, interval: float | None = None,
          clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], Any] | None = None,
          stop: StopFlag | None = None, max_passes: int | None = None, idle: bool = True,
          backoff: tuple[float, float] = (1.0, 300.0), install_signals: bool = True,
          on_message: Callable[[MessageResult], None] | None = None,
          after_pass: Callable[[Transport | None], Any] | None = None) -> WatchSummary:
    """Fetch, then wait for mail (IMAP IDLE where offered, else poll every `interval` seconds), until stopped.

    Holds the workspace's lock with a SQLite ledger (a second watcher raises WatchLocked; see watcher_lock). The
    sandbox's workers start with the watcher, not with the first message. After a pass that found mail it looks
    again at once before it waits. A lost
    connection or a server restart is logged and retried with backoff (`backoff` = first delay, cap). Queued
    outgoing mail is retried each pass.
    SIGTERM and Ctrl-C stop it cleanly after the current message. One log line per message.
    `after_pass(transport)` runs after each pass's fetch (the commands use it for digests and sign-offs).
    `mailbox_factory` defaults to the backend of collect.toml; `transport` too when None and the backend sends."""
    cfg = MailConfig.of(ctx.ws.settings)
    every = float(interval if interval is not None else cfg.poll_seconds)
    flag = stop or StopFlag()
    pause = sleep or flag.event.wait
    factory = mailbox_factory or (lambda: open_mailbox(ctx))
    if transport is None and mailbox_factory is None:
        transport = open_transport(ctx)
    summary = WatchSummary()
    schedule = RetrySchedule(clock)

    def wait(seconds: float) -> None:
        flag.waiting = True
        try:
            if not flag():
                pause(seconds)
        except _Interrupted:
            pass
        finally:
            flag.waiting = False

    def note(result: MessageResult) -> None:
        summary.messages += 1
        summary.files += len(result.outcomes)
        if result.error:
            summary.failed += 1
            log.error(result.line())
        else:
            log.info(result.line())
        if on_message is not None:
            on_message(result)

    with watcher_lock(ctx), _signals(flag, install_signals), \
            Sandbox(preload=(*DEFAULT_PRELOAD, "collect.receive.ingest")) as sandbox, \
            Ingestor(ctx, sandbox=sandbox, transport=transport) as ing:
        log.info("watching %s (pid %d, every %.1f s)", "mail" if mailbox_factory else cfg.backend, os.getpid(),
                 every)
        mailbox: Mailbox | None = None
        failures = 0
        try:
            while not flag():
                try:
                    if mailbox is None:
                        mailbox = factory()
                        if isinstance(mailbox, Connects):
                            mailbox.connect()
                        if failures:
                            log.info("reconnected to %s", mailbox.name)
                    for r in retry_outgoing(ctx, transport, due=schedule.due):
                        if r.error:
                            row = ctx.ledger.outgoing_by_message_id(r.message_id) or {}
                            schedule.failed(int(row.get("id", 0)), int(row.get("attempts", 1)))
                            log.warning("outgoing %s to %s not sent yet: %s", r.message_id, ", ".join(r.recipients),
                                        r.error)
                        else:
                            log.info("outgoing %s sent to %s", r.message_id, ", ".join(r.recipients))
                    handled = fetch_messages(ctx, mailbox, transport, ingestor=ing, stop=flag, on_message=note)
                    if after_pass is not None:
                        after_pass(transport)
                    failures = 0
                except (ConfigError, WatchLocked):
                    raise
                except Exception as exc:
                    failures += 1
                    summary.reconnects += 1
                    delay = min(backoff[1], backoff[0] * 2 ** (failures - 1))
                    where = mailbox.name if mailbox is not None else cfg.backend
                    log.warning("mail unavailable (%s): %s; trying again in %.0f s", where, explain(exc), delay)
                    if mailbox is not None:
                        with contextlib.suppress(Exception):
                            mailbox.close()
                    mailbox = None
                    wait(delay)
                    continue
                summary.passes += 1
                if max_passes is not None and summary.passes >= max_passes:
                    break
                if flag():
                    break
                if handled:  # mail may have landed while this pass worked: look again before waiting
                    continue
                waited = False
                if idle and isinstance(mailbox, Waits):
                    flag.waiting = True
                    try:
                        waited = bool(mailbox.wait(every))
                    except _Interrupted:
                        waited = True
                    except Exception as exc:  # the connection dropped while idling: reconnect on the next turn
                        log.warning("IDLE ended: %s", explain(exc))
                        with contextlib.suppress(Exception):
                            mailbox.close()
                        mailbox = None
                        waited = True
                    finally:
                        flag.waiting = False
                if not waited:
                    wait(every)
        finally:
            if mailbox is not None:
                with contextlib.suppress(Exception):
                    mailbox.close()
            if transport is not None:
                with contextlib.suppress(Exception):
                    transport.close()
    log.info("stopped after %d pass(es), %d message(s), %d failed", summary.passes, summary.messages, summary.failed)
    return summary
