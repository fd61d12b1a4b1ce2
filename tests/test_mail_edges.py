"""The edges of mail, each through the CLI as a user runs it, against Dovecot and an SMTP server on 127.0.0.1: the
sender check that trusts the office's own Authentication-Results header (RFC 8601) and sends nothing back to a
forged sender; SMTP without a login for an internal relay; `collect mail test` telling a temporary server
failure from a refused login; one full stop at the end of every message; receipts for a burst that never wait for a
poll."""

from __future__ import annotations

import json
import smtplib
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest
from conftest import SECRET, run_cli
from ingest_util import acct, agency_mail, fill, rows
from mailserver import PASSWORD, MailServer, configure, start_watcher, wait_for

from collect.errors import MailError
from collect.findings import CATALOGUE, make
from collect.forms.issuing import issue
from collect.ledger import submissions
from collect.mail.settings import explain, sentence
from collect.workspace import Context, init_workspace

ROUND = "2026-10"
AGENCY = "020004"
TRUSTED = "mx.office.example.test"  # [mail] trust_authserv_id: the office's own receiving server


@dataclass
class Env:
    root: Path
    server: MailServer
    issued: Path
    made: Path

    def configure(self, user: str, **kw: Any) -> None:
        configure(self.root, self.server, user=user, **kw)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_cli("--workspace", str(self.root), *args, env={"COLLECT_MAIL_PASSWORD": PASSWORD})

    def replies_to(self, mid: str) -> list[Any]:
        """Every message the SMTP server took that answers `mid` (a receipt or a notice)."""
        found = []
        for _sender, to, data in list(self.server.smtp_received):
            msg = message_from_bytes(data, policy=policy.default)
            if mid.strip("<>") in str(msg.get("In-Reply-To", "")):
                found.append((to, msg))
        return found


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MailServer]:
    srv = MailServer(tmp_path_factory.mktemp("edges") / "srv").start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, server: MailServer) -> Iterator[Env]:
    base = tmp_path_factory.mktemp("edgesws")
    mp = pytest.MonkeyPatch()
    mp.setenv("COLLECT_SECRET", SECRET)
    root = base / "ws"
    init_workspace(root)
    ctx = Context.open(root)
    [issued] = issue(ctx, "covid19", ROUND, agencies=[AGENCY]).issued
    ctx.close()
    (base / "made").mkdir()
    yield Env(root, server, issued.path, base / "made")
    mp.undo()


def with_headers(raw: bytes, headers: list[str]) -> bytes:
    """The message as the office's server would pass it on: Authentication-Results headers on top, in order."""
    return b"".join(f"Authentication-Results: {h}\r\n".encode() for h in headers) + raw


# -- the sender check: Authentication-Results of the office's own server ---------------------------------------------
CASES = [
    # (case, headers top first, trust_authserv_id, workbook?, quarantine reason or None)
    ("dmarc=fail from the trusted server", [f"{TRUSTED}; spf=pass smtp.mailfrom=example.test; dkim=none; "
                                            "dmarc=fail (p=reject dis=none) header.from=example.test"],
     TRUSTED, True, "dmarc=fail for example.test"),
    ("spf=fail and no DKIM pass", [f"{TRUSTED} 1; spf=fail (1.2.3.4 is not allowed) smtp.mailfrom=example.test; "
                                   "dkim=none (no signature)"],
     TRUSTED, True, "spf=fail for example.test, no DKIM pass"),
    ("spf=fail but an aligned DKIM pass", [f"{TRUSTED}; spf=fail smtp.mailfrom=example.test; "
                                           "dkim=pass header.d=example.test header.s=sel"], TRUSTED, True, None),
    ("a failing header of another server is ignored", [f"{TRUSTED}; dmarc=pass header.from=example.test",
                                                       "mx.sender.test; dmarc=fail header.from=example.test"],
     TRUSTED, True, None),
    ("a passing header the sender forged below the real one", [
        f"{TRUSTED}; dmarc=fail header.from=example.test", f"{TRUSTED}; dmarc=pass header.from=example.test"],
     TRUSTED, True, "dmarc=fail for example.test"),
    ("no trusted server configured", [f"{TRUSTED}; dmarc=fail header.from=example.test"], "", True, None),
    ("a forged note without a workbook gets no notice", [f"{TRUSTED}; dmarc=fail header.from=example.test"],
     TRUSTED, False, "dmarc=fail for example.test"),
]


@pytest.mark.parametrize(("case", "headers", "trusted", "workbook", "reason"), CASES, ids=[c[0] for c in CASES])
def test_the_sender_check_trusts_only_the_offices_authentication_results(
        env: Env, case: str, headers: list[str], trusted: str, workbook: bool, reason: str | None) -> None:
    me = f"collect-auth{[c[0] for c in CASES].index(case)}@example.test"
    env.configure(me, trust_authserv_id=trusted)
    book = fill(env.issued, env.made / f"{me}.xlsx", rows(1, prefix=f"{me}計畫"))
    raw, mid = agency_mail(acct(AGENCY), [book] if workbook else [], to=me)
    env.server.send(with_headers(raw, headers), acct(AGENCY), [me])

    done = env.cli("fetch")
    assert done.returncode == 0, done.stderr
    line = " ".join(done.stdout.split())
    replies = env.replies_to(mid)
    ctx = Context.open(env.root)
    with ctx.ledger.begin() as c:
        subs = [r for r in c.execute(submissions.select()) if r.file_name == book.name]
    found = [(f.code, f.cell, f.message) for s in subs for f in ctx.ledger.findings_of(s.id)]
    ctx.close()
    assert env.server.raw_messages(me) == [] and len(env.server.raw_messages(me, "collect/processed")) == 1
    if reason is None:
        assert "quarantined" not in line and "accepted 020004" in line, line
        assert [s.verdict for s in subs] == ["accepted"] and [to for to, _ in replies] == [[acct(AGENCY)]]
        return
    assert f"quarantined, sender not authenticated ({reason}); nothing sent" in line, line
    assert replies == []  # no receipt, no notice: the From address may not be the sender's
    if workbook:
        assert [s.verdict for s in subs] == ["quarantined"]
        assert found == [("sender.unauthenticated", None,
                          f"寄件者 {acct(AGENCY)} 未通過本處郵件伺服器的寄件網域驗證（{reason}），可能為偽冒寄件者；"
                          "檔案已暫存待人工確認，不回覆此寄件地址。")]
    else:
        assert subs == [] and "nothing sent: no workbook" in line


def test_collect_ingest_of_a_saved_message_applies_the_same_sender_check(env: Env) -> None:
    """`collect ingest x.eml` (a message staff saved from their mail program): a forged one is quarantined with the
    reason and answered to nobody; the same message with a passing header of the trusted server is accepted."""
    me = "collect-eml@example.test"
    env.configure(me, trust_authserv_id=TRUSTED)
    paths: list[Path] = []
    mids: list[str] = []
    for verdict in ("fail", "pass"):
        book = fill(env.issued, env.made / f"eml-{verdict}.xlsx", rows(1, prefix=f"eml{verdict}計畫"))
        raw, mid = agency_mail(acct(AGENCY), [book], to=me)
        path = env.made / f"saved-{verdict}.eml"
        path.write_bytes(with_headers(raw, [f"{TRUSTED}; dmarc={verdict} header.from=example.test"]))
        paths.append(path)
        mids.append(mid)
    done = env.cli("ingest", "--json", *map(str, paths))
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert [(d["file"], d["verdict"], [(f["code"], f["cell"]) for f in d["findings"]]) for d in lines] == [
        ("eml-fail.xlsx", "quarantined", [("sender.unauthenticated", None)]),
        ("eml-pass.xlsx", "accepted", [])]
    assert "dmarc=fail for example.test" in lines[0]["findings"][0]["message"]
    ctx = Context.open(env.root)  # `collect ingest` writes receipts to the outbox; none for the forged sender
    receipts = [ctx.ledger.submission(d["receipt"]).receipt_path for d in lines]  # type: ignore[union-attr]
    ctx.close()
    assert receipts[0] is None and receipts[1] is not None
    assert f"In-Reply-To: {mids[1]}" in Path(receipts[1]).read_text(encoding="utf-8", errors="replace")


# -- SMTP: a relay that takes no login ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("smtp_login", "logins"), [(None, ["PLAIN"]), (False, [])])
def test_smtp_login_false_sends_through_a_relay_without_logging_in(env: Env, smtp_login: bool | None,
                                                                   logins: list[str]) -> None:
    me = f"collect-relay-{smtp_login}@example.test".lower()
    extra = {} if smtp_login is None else {"smtp_login": smtp_login}
    env.configure(me, **extra)
    before = len(env.server.smtp_logins)
    done = env.cli("mail", "test")  # COLLECT_MAIL_PASSWORD is set either way
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"✓ send: sent a test message from collect@example.test to {me}" in done.stdout
    assert env.server.smtp_logins[before:] == logins
    assert [m["X-Collect-Test"] for m in env.server.messages(me)] == ["1"]


def test_a_relay_that_offers_no_login_is_explained_with_the_setting(env: Env) -> None:
    """smtplib's refusal when the relay offers no AUTH names the setting that fixes it."""
    exc = smtplib.SMTPNotSupportedError("SMTP AUTH extension not supported by server.")
    assert explain(exc, "SMTP relay:25") == ("the SMTP server does not offer that (SMTP relay:25): SMTP AUTH extension "
                                             "not supported by server. For a relay that takes no login, set [mail] "
                                             "smtp_login = false.")


# -- collect mail test: a temporary failure is not a wrong password ------------------------------------------------
def test_mail_test_tells_a_temporary_server_failure_from_a_refused_login(env: Env, tmp_path: Path) -> None:
    broken = MailServer(tmp_path / "broken", imap_auth_broken=True).start()
    try:
        configure(env.root, broken, user="collect-temp@example.test")
        done = env.cli("mail", "test", "--no-send")
    finally:
        broken.stop()
    assert done.returncode == 1
    [failed] = [line for line in done.stdout.splitlines() if line.startswith("✗")]
    assert failed == ("✗ login: the IMAP server had a temporary failure (IMAP login as collect-temp@example.test) "
                      "([UNAVAILABLE] Temporary authentication failure): the user name and password were not "
                      "refused; try again later, and if it lasts, ask the mail server's administrator.")

    env.configure("collect-wrong@example.test")
    done = run_cli("--workspace", str(env.root), "mail", "test", "--no-send",
                   env={"COLLECT_MAIL_PASSWORD": "wrong"})
    assert done.returncode == 1
    [failed] = [line for line in done.stdout.splitlines() if line.startswith("✗")]
    assert failed == ("✗ login: authentication failed (IMAP login as collect-wrong@example.test): wrong user name "
                      "or password, or the account may not use IMAP (the server said: Authentication failed).")


# -- one full stop at the end of every message ---------------------------------------------------------------------
@pytest.mark.parametrize("code", sorted(CATALOGUE))
def test_every_finding_message_ends_with_one_full_stop(code: str) -> None:
    _severity, zh, en = CATALOGUE[code]
    for template, stop in ((zh, "。"), (en, ".")):
        assert template == "{detail}" or (template.endswith(stop) and not template[:-1].endswith((".", "。"))), \
            (code, template)
    for detail in ("合計不符", "合計不符。", "合計不符。。", "Totals differ.."):
        for locale, stop in (("zh-TW", "。"), ("en", ".")):
            message = make(code, locale, column="實支數", value="1", detail=detail, expected="2", count="3").message
            assert message.endswith(stop) and not message[:-1].endswith((".", "。")), (code, locale, message)


@pytest.mark.parametrize("exc", [
    smtplib.SMTPResponseException(554, b"5.7.1 Relay access denied."),
    smtplib.SMTPAuthenticationError(535, b"5.7.8 Authentication credentials invalid."),
    smtplib.SMTPAuthenticationError(454, b"4.7.0 Temporary authentication failure."),
    MailError("Microsoft Graph said: throttled."),
    ConnectionRefusedError(111, "Connection refused"),
    OSError(113, "No route to host."),
    ValueError("odd."),
], ids=lambda e: type(e).__name__)
def test_every_mail_explanation_ends_with_one_full_stop(exc: BaseException) -> None:
    said = explain(exc, "SMTP mail.example.test:587")
    assert said.endswith(".") and not said.endswith(".."), said
    assert sentence("fine") == "fine." and sentence("fine...") == "fine." and sentence("好。。") == "好。"


def test_a_temporary_smtp_login_failure_is_not_called_a_refused_password() -> None:
    said = explain(smtplib.SMTPAuthenticationError(454, b"4.7.0 Temporary authentication failure"), "SMTP x:587")
    assert said == ("the SMTP server had a temporary failure logging in (SMTP x:587): it said 454 4.7.0 Temporary "
                    "authentication failure; the password was not refused, try again later.")


# -- receipts that never wait for a poll -----------------------------------------------------------------------------
BURST = 12


def test_a_burst_is_answered_without_waiting_for_a_poll(env: Env) -> None:
    """`collect watch` with a 10-minute poll: a burst of messages sent while it idles is answered in full long
    before any poll (mail that lands during a pass is seen by the look before it idles again)."""
    me = "collect-burst@example.test"
    env.configure(me, poll_seconds=600)
    books = [fill(env.issued, env.made / f"burst{n}.xlsx", rows(1, prefix=f"第{n}批")) for n in range(BURST)]
    log = env.made / "burst.log"
    proc = start_watcher(env.root, log, interval=None)  # the workspace's 10-minute poll
    try:
        wait_for(lambda: "watching" in log.read_text(errors="replace"), 60, "the watcher to start")
        time.sleep(1.0)  # idling now
        mids = []
        started = time.monotonic()
        for book in books:
            raw, mid = agency_mail(acct(AGENCY), [book], to=me)
            env.server.send(raw, acct(AGENCY), [me])
            mids.append(mid)
        wait_for(lambda: all(env.replies_to(m) for m in mids), 120, "a receipt for every message of the burst")
        took = time.monotonic() - started
    finally:
        proc.terminate()
        proc.wait(30)
    assert took < 120 and env.server.raw_messages(me) == []
    assert len(env.server.raw_messages(me, "collect/processed")) == BURST
