"""The watcher: its lock, clean stops, reconnecting after a server restart, and exactly-once under SIGKILL."""

from __future__ import annotations

import json
import logging
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import SECRET
from ingest_util import acct, agency_mail, fill, row, rows
from mailserver import PASSWORD, MailServer, configure, start_watcher, wait_for

from collect.forms.issuing import issue
from collect.ledger import messages, submissions
from collect.mail.files import FilesMailbox
from collect.receive.watch import LOCK_NAME, StopFlag, WatchLock, WatchLocked, watch
from collect.workspace import Context

ROUND = "2026-10"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MailServer]:
    srv = MailServer(tmp_path_factory.mktemp("watchmail") / "srv").start()
    yield srv
    srv.stop()


@pytest.fixture(autouse=True)
def _mail_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLLECT_MAIL_PASSWORD", PASSWORD)




# -- the lock and clean stops ---------------------------------------------------------------------------------------
def test_a_second_watcher_names_the_holder_and_exits_1_and_sigterm_stops_cleanly(workspace: Path,
                                                                                tmp_path: Path) -> None:
    log = tmp_path / "watch.log"
    first = start_watcher(workspace, log)
    try:
        lock = workspace / "state" / LOCK_NAME
        wait_for(lambda: lock.exists() and str(first.pid) in lock.read_text(), 60, "the lock")
        second = subprocess.run([sys.executable, "-m", "collect", "--workspace", str(workspace), "watch"],
                                capture_output=True, text=True, timeout=60,
                                env={**os.environ, "COLLECT_SECRET": SECRET})
        assert second.returncode == 1
        assert f"pid {first.pid}" in second.stderr and os.uname().nodename in second.stderr
        first.send_signal(signal.SIGTERM)
        assert first.wait(30) == 0
    finally:
        if first.poll() is None:
            first.kill()
    assert "stopped after" in log.read_text()
    with WatchLock(lock):  # released: the next watcher gets it
        pass


def test_the_lock_of_a_killed_watcher_does_not_block_the_next(workspace: Path, tmp_path: Path) -> None:
    proc = start_watcher(workspace, tmp_path / "w.log")
    lock = workspace / "state" / LOCK_NAME
    wait_for(lambda: lock.exists() and str(proc.pid) in lock.read_text(), 60, "the lock")
    proc.kill()
    proc.wait(10)
    with WatchLock(lock) as held:
        assert json.loads(lock.read_text())["pid"] == os.getpid()
        with pytest.raises(WatchLocked, match=f"pid {os.getpid()}"):
            WatchLock(lock).acquire()
        assert held is not None


def test_watch_polls_the_files_inbox_with_the_sleep_it_is_given(ctx: Context, caplog: pytest.LogCaptureFixture,
                                                               tmp_path: Path) -> None:
    """Each wait is the injected sleep; mail dropped between passes is taken on the next pass; one log line each."""
    result = issue(ctx, "covid19", ROUND, agencies=["020004"])
    book = fill(result.issued[0].path, tmp_path / "r.xlsx", rows(1))
    inbox = ctx.ws.inbox_dir
    waits: list[float] = []
    stop = StopFlag()

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 1:
            raw, _ = agency_mail(acct("020004"), [book])
            (inbox / "one.eml").write_bytes(raw)
        elif len(waits) == 2:
            note, _ = agency_mail(acct("020004"), [], subject="補充說明")
            (inbox / "two.eml").write_bytes(note)
        else:
            stop.set()

    with caplog.at_level(logging.INFO, logger="collect.receive.watch"):
        summary = watch(ctx, mailbox_factory=lambda: FilesMailbox(inbox), interval=7, sleep=sleep, stop=stop,
                        install_signals=False)
    assert waits == [7, 7, 7]
    # 5 passes: a pass that found mail is followed at once by another (mail may have landed meanwhile), no wait
    assert (summary.passes, summary.messages, summary.files, summary.failed) == (5, 2, 1, 0)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("message ")]
    assert len(lines) == 2 and "accepted 020004" in lines[0] and "no workbook" in lines[1]
    assert sorted(p.name for p in (inbox / "processed").iterdir()) == ["one.eml", "two.eml"]


def test_watch_reconnects_after_the_imap_server_restarts(server: MailServer, workspace: Path, tmp_path: Path,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    me = "collect-restart@example.test"
    configure(workspace, server, user=me)
    ctx = Context.open(workspace)
    result = issue(ctx, "covid19", ROUND, agencies=["020004", "020005"])
    books = {i.agency: fill(i.path, tmp_path / f"{i.agency}.xlsx", rows(1)) for i in result.issued}
    server.send(agency_mail(acct("020004"), [books["020004"]], to=me)[0], acct("020004"), [me])
    stop = StopFlag()
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 1:  # the server restarts while we wait; new mail arrives meanwhile
            server.stop_imap()
            server.start_imap()
            server.send(agency_mail(acct("020005"), [books["020005"]], to=me)[0], acct("020005"), [me])
        elif len(waits) > 8 or (server.raw_messages(me) == []
                                and len(server.raw_messages(me, "collect/processed")) == 2):
            stop.set()

    with caplog.at_level(logging.INFO, logger="collect.receive.watch"):
        summary = watch(ctx, interval=0.5, sleep=sleep, stop=stop, idle=False, install_signals=False,
                        backoff=(0.1, 1.0))
    ctx.close()
    assert summary.reconnects >= 1 and summary.files == 2 and summary.failed == 0
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "mail unavailable" in text and "reconnected to imap://" in text
    assert len([m for m in server.messages(acct("020005")) if "收件回覆" in str(m["Subject"])]) == 1


# -- chaos: SIGKILL at random moments ----------------------------------------------------------------------------------
CHAOS_AGENCIES = [f"02{n:04d}" for n in range(1, 11)]  # 10 public agencies of the sample list
CHAOS_MESSAGES = 200
CHAOS_KILLS = 6


def test_chaos_sigkill_loses_nothing_and_ingests_nothing_twice(server: MailServer, workspace: Path,
                                                               tmp_path: Path) -> None:
    """~200 messages (returns and notes), the watcher killed with SIGKILL 6 times at random moments mid-stream and
    restarted: every message yields exactly one submission per attachment and exactly one receipt, INBOX is empty."""
    rng = random.Random(20261127)
    me = "collect-chaos@example.test"
    configure(workspace, server, user=me, poll_seconds=0.2)
    ctx = Context.open(workspace)
    issued = {i.agency: i.path for i in issue(ctx, "covid19", ROUND, agencies=CHAOS_AGENCIES).issued}
    ctx.close()
    books = {}
    for code in CHAOS_AGENCIES:  # two versions per agency: a clean one and one with an error
        books[(code, 0)] = fill(issued[code], tmp_path / f"{code}-a.xlsx", rows(2, prefix=f"{code}計畫"))
        books[(code, 1)] = fill(issued[code], tmp_path / f"{code}-b.xlsx",
                                [row(f"{code}口罩", item=1), row(f"{code}快篩", item=2, approved="一千")])
    sent: dict[str, tuple[str, int]] = {}  # Message-ID -> (sender, attachments)
    for n in range(CHAOS_MESSAGES):
        code = CHAOS_AGENCIES[n % len(CHAOS_AGENCIES)]
        kind = n % 5
        files = [] if kind == 4 else [books[(code, 0)]] if kind in (0, 1) else [books[(code, 1)]] if kind == 2 \
            else [books[(code, 0)], books[(code, 1)]]
        raw, mid = agency_mail(acct(code), files, to=me, subject=f"第{n}封")
        server.send(raw, acct(code), [me])
        sent[mid.strip("<>")] = (acct(code), len(files))

    log = tmp_path / "chaos.log"
    started = time.monotonic()
    kills = 0
    for _ in range(CHAOS_KILLS):
        proc = start_watcher(workspace, log)
        before = log.read_text().count(" message ")
        try:  # kill at a random moment once messages flow (so that kills land mid-stream, not during start-up)
            wait_for(lambda b=before, p=proc: log.read_text().count(" message ") > b or p.poll() is not None,
                     90, "the watcher to take a message")
            time.sleep(rng.uniform(0.0, 1.0))
        finally:
            proc.kill()
            proc.wait(10)
        kills += 1
    proc = start_watcher(workspace, log)
    try:
        def finished() -> bool:
            return server.raw_messages(me) == [] and _queued(workspace) == 0
        try:
            wait_for(finished, 400, "the last watcher to empty INBOX")
        except AssertionError as exc:
            tail = " | ".join(log.read_text(errors="replace").splitlines()[-8:])
            raise AssertionError(f"{exc}; watcher alive: {proc.poll() is None}; log tail: {tail}") from None
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    seconds = time.monotonic() - started

    ctx = Context.open(workspace)
    with ctx.ledger.begin() as c:
        msg_rows = {r.message_key: r for r in c.execute(messages.select())}
        sub_rows = list(c.execute(submissions.select()))
    ctx.close()
    per_message = Counter(r.message_id for r in sub_rows)
    duplicates = 0
    for mid, (_sender, n_files) in sent.items():
        assert mid in msg_rows, f"message {mid} never recorded"
        assert msg_rows[mid].stage == "processed", (mid, msg_rows[mid].stage, msg_rows[mid].error)
        duplicates += abs(per_message.get(msg_rows[mid].id, 0) - n_files)
    assert len(msg_rows) == CHAOS_MESSAGES
    assert all(r.stage == "processed" for r in sub_rows)

    # the mailboxes: one receipt per submission (by its receipt id), one notice per note; copies counted apart
    receipt_ids: Counter[str] = Counter()
    notice_for: Counter[str] = Counter()
    copies = 0
    for code in CHAOS_AGENCIES:
        seen: Counter[str] = Counter()
        for m in server.messages(acct(code)):
            if str(m["In-Reply-To"]).strip("<>") not in sent:
                continue  # the server is shared by the session's tests: count only answers to this test's mail
            seen[str(m["Message-ID"])] += 1
            if seen[str(m["Message-ID"])] > 1:
                copies += 1  # the same message sent again after a kill between the server's 250 and the ledger
                continue
            found = re.search(r"R\d{8}-\d{6}", str(m["Subject"]))
            if found:
                receipt_ids[found.group(0)] += 1
            else:
                notice_for[str(m["In-Reply-To"]).strip("<>")] += 1
    expected_receipts = {r.receipt for r in sub_rows}
    duplicates += sum(n - 1 for n in receipt_ids.values()) + sum(n - 1 for n in notice_for.values())
    notes = {mid for mid, (_s, n) in sent.items() if n == 0}
    doubled = {k: n for k, n in (receipt_ids + notice_for).items() if n > 1}
    short = {m: (n, abs(per_message.get(msg_rows[m].id, 0) - n)) for m, (_s, n) in sent.items()
             if per_message.get(msg_rows[m].id, 0) != n}
    print(f"\nchaos: {CHAOS_MESSAGES} messages, {len(sub_rows)} submissions, {kills} SIGKILLs, {seconds:.1f} s, "
          f"duplicates {duplicates}, re-sent copies of one receipt {copies}")
    assert set(receipt_ids) == expected_receipts
    assert set(notice_for) == notes
    assert duplicates == 0, f"answered more than once: {doubled}; submissions not matching attachments: {short}"
    assert copies <= kills  # at most one re-send per kill (same Message-ID; mail clients show it once)
    assert server.raw_messages(me) == []
    # every message reached the processed folder (a kill during MOVE, which Dovecot does as copy + expunge, can
    # leave a second copy there; the ledger, not the folder, is what counts)
    processed = Counter(str(m["Message-ID"]).strip("<>") for m in server.messages(me, "collect/processed"))
    assert set(processed) == set(sent)
    print(f"chaos: extra copies in the processed folder {sum(processed.values()) - len(processed)}")


def _queued(root: Path) -> int:
    ctx = Context.open(root)
    try:
        return len(ctx.ledger.queued_outgoing())
    finally:
        ctx.close()
