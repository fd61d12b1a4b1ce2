"""Mail backends against real servers: Dovecot IMAP + aiosmtpd SMTP on 127.0.0.1, the files inbox, and Graph/EWS
at the HTTP level with recorded protocol responses."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from conftest import SECRET
from ingest_util import SHEET, acct, agency_mail, attachments, fill, mail_text, row, rows
from mailserver import OAUTH_TOKEN, PASSWORD, MailServer, configure

from collect.errors import MailError
from collect.forms.issuing import issue
from collect.mail.check import mail_test
from collect.mail.compose import OutgoingAttachment, compose, to_bytes
from collect.mail.files import FilesMailbox
from collect.mail.imap import ImapMailbox, SmtpTransport
from collect.mail.registry import open_mailbox
from collect.mail.settings import MailConfig
from collect.receive.watch import fetch, fetch_messages, retry_outgoing
from collect.states import Stage, Verdict
from collect.workspace import Context, init_workspace

ROUND = "2026-10"
CLEAN, FAULTY, STRANGER, AGAIN, FAILS, REFUSED, FILES, GRAPH = (
    "020004", "020005", "020006", "020007", "020008", "020009", "020010", "020011")
CODES = [CLEAN, FAULTY, STRANGER, AGAIN, FAILS, REFUSED, FILES, GRAPH]


@dataclass
class Env:
    root: Path
    server: MailServer
    issued: dict[str, Path]
    made: Path

    def workbook(self, code: str, name: str, data: Any) -> Path:
        return fill(self.issued[code], self.made / name, data)

    def context(self, user: str, **kw: Any) -> Context:
        """The workspace configured to read `user`'s mailbox (each test its own, so tests stay apart)."""
        configure(self.root, self.server, user=user, **kw)
        return Context.open(self.root)

    def send(self, sender: str, to: str, files: list[Path], subject: str = "回覆：填報資料") -> str:
        raw, mid = agency_mail(sender, files, subject=subject, to=to)
        self.server.send(raw, sender, [to])
        return mid.strip("<>")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MailServer]:
    srv = MailServer(tmp_path_factory.mktemp("mail") / "srv").start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, server: MailServer) -> Iterator[Env]:
    base = tmp_path_factory.mktemp("mailws")
    mp = pytest.MonkeyPatch()
    mp.setenv("COLLECT_SECRET", SECRET)
    mp.setenv("COLLECT_MAIL_PASSWORD", PASSWORD)
    root = base / "ws"
    init_workspace(root)
    ctx = Context.open(root)
    result = issue(ctx, "covid19", ROUND, agencies=CODES)
    ctx.close()
    yield Env(root, server, {i.agency: i.path for i in result.issued}, base / "made")
    mp.undo()


@pytest.fixture(autouse=True)
def _mail_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLLECT_MAIL_PASSWORD", PASSWORD)


def receipts(server: MailServer, user: str) -> list[EmailMessage]:
    return [m for m in server.messages(user) if "收件回覆" in str(m["Subject"])]


# -- IMAP + SMTP end to end -----------------------------------------------------------------------------------------
def test_done_means_three_returns_travel_smtp_imap_fetch_receipt_smtp_imap(env: Env) -> None:
    """Clean, faulty and a stranger's return: each answered in the sender's own mailbox, threaded, INBOX emptied."""
    me = "collect-done@example.test"
    clean = env.workbook(CLEAN, "clean.xlsx", rows(2))
    faulty = env.workbook(FAULTY, "faulty.xlsx", [
        row("口罩採購", item=1, category="防疫費"), row("快篩試劑", item=2, approved="一千"),
        row("防護衣", item=3, committed=900_000, spent=950_000), row("酒精", item=4, approved_on="115/13/45"),
        row(None, item=5)])
    other = env.workbook(STRANGER, "other.xlsx", rows(2))
    sent = {"clean.xlsx": (acct(CLEAN), env.send(acct(CLEAN), me, [clean])),
            "faulty.xlsx": (acct(FAULTY), env.send(acct(FAULTY), me, [faulty])),
            "other.xlsx": (acct(CLEAN), env.send(acct(CLEAN), me, [other]))}  # STRANGER's form from CLEAN's address
    ctx = env.context(me)
    cfg = MailConfig.of(ctx.ws.settings)
    box, smtp = ImapMailbox(cfg), SmtpTransport(cfg)
    try:
        outcomes = {o.file: o for o in fetch(ctx, box, smtp)}
    finally:
        box.close()
        smtp.close()
    assert {k: o.verdict for k, o in outcomes.items()} == {
        "clean.xlsx": Verdict.ACCEPTED, "faulty.xlsx": Verdict.REJECTED, "other.xlsx": Verdict.QUARANTINED}
    assert env.server.raw_messages(me) == []
    assert len(env.server.raw_messages(me, "collect/processed")) == 3

    by_receipt = {}
    for user in (acct(CLEAN), acct(FAULTY)):
        for m in receipts(env.server, user):
            by_receipt[re.search(r"R\d{8}-\d{6}", str(m["Subject"])).group(0)] = (user, m)  # type: ignore[union-attr]
    assert len(by_receipt) == 3
    for file, outcome in outcomes.items():
        user, msg = by_receipt[outcome.receipt]
        sender, mid = sent[file]
        assert user == sender
        assert msg["In-Reply-To"].strip("<>") == mid
    _, faulty_mail = by_receipt[outcomes["faulty.xlsx"].receipt]
    assert "退件" in str(faulty_mail["Subject"])
    assert sorted(re.findall(r"填報表!([A-Z]+[0-9]+)", mail_text(faulty_mail))) == ["B11", "C7", "E8", "G9", "I10"]
    [data] = attachments(faulty_mail).values()
    copy = openpyxl.load_workbook(io.BytesIO(data))
    assert copy[SHEET]["C7"].comment is not None and copy[SHEET]["C7"].value == "防疫費"
    _, held = by_receipt[outcomes["other.xlsx"].receipt]
    assert "暫存待確認" in str(held["Subject"])
    ctx.close()


def test_a_message_seen_again_after_a_crash_is_moved_not_ingested_twice(env: Env) -> None:
    """The watcher died after the ledger recorded the message but before the move: the copy still in INBOX
    gives no second submission and no second receipt."""
    me = "collect-again@example.test"
    path = env.workbook(AGAIN, "again.xlsx", rows(1))
    raw, _mid = agency_mail(acct(AGAIN), [path], to=me)
    env.server.append(me, raw)
    ctx = env.context(me)
    cfg = MailConfig.of(ctx.ws.settings)
    box, smtp = ImapMailbox(cfg), SmtpTransport(cfg)
    first = fetch_messages(ctx, box, smtp)
    env.server.append(me, raw)  # as if the move had never happened
    second = fetch_messages(ctx, box, smtp)
    box.close()
    smtp.close()
    assert [r.outcomes[0].verdict for r in first] == [Verdict.ACCEPTED]
    assert [(r.again, r.outcomes) for r in second] == [(True, [])]
    assert len(receipts(env.server, acct(AGAIN))) == 1
    assert len([s for s in ctx.ledger.submissions_for_round("covid19", ROUND) if s.agency == AGAIN]) == 1
    assert env.server.raw_messages(me) == []
    ctx.close()


def test_a_message_that_fails_goes_to_the_failed_folder_with_its_reason_and_can_be_retried(
        env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    me = "collect-fails@example.test"
    path = env.workbook(FAILS, "fails.xlsx", rows(1))
    env.send(acct(FAILS), me, [path])
    ctx = env.context(me)
    key = ctx.ws.key_path
    hidden = key.with_name("hidden.key")
    monkeypatch.delenv("COLLECT_SECRET")
    key.rename(hidden)  # no stamp key at all: checking the stamp raises
    cfg = MailConfig.of(ctx.ws.settings)
    box, smtp = ImapMailbox(cfg), SmtpTransport(cfg)
    try:
        [result] = fetch_messages(ctx, box, smtp)
    finally:
        hidden.rename(key)
        monkeypatch.setenv("COLLECT_SECRET", SECRET)
    assert result.error is not None and "SecretMissing" in result.error
    assert env.server.raw_messages(me) == [] and len(env.server.raw_messages(me, "collect/failed")) == 1
    [failed] = ctx.ledger.failed_messages()
    assert failed["stage"] == Stage.FAILED and "stamp key" in failed["error"]
    assert receipts(env.server, acct(FAILS)) == []

    with env.server.imap(me) as conn:  # staff fixed the cause and put the message back
        conn.select('"collect/failed"')
        conn.uid("MOVE", "1:*", "INBOX")
    [again] = fetch_messages(ctx, box, smtp)
    box.close()
    smtp.close()
    assert [o.verdict for o in again.outcomes] == [Verdict.ACCEPTED]
    assert ctx.ledger.failed_messages() == []
    assert len(receipts(env.server, acct(FAILS))) == 1
    ctx.close()


def test_a_refused_send_stays_queued_with_its_error_and_is_retried_once(env: Env) -> None:
    me = "collect-refused@example.test"
    path = env.workbook(REFUSED, "refused.xlsx", rows(1))
    env.send(acct(REFUSED), me, [path])
    ctx = env.context(me)
    cfg = MailConfig.of(ctx.ws.settings)
    box, smtp = ImapMailbox(cfg), SmtpTransport(cfg)
    env.server.smtp_refuse = True
    try:
        [outcome] = fetch(ctx, box, smtp)
    finally:
        env.server.smtp_refuse = False
    [queued] = ctx.ledger.queued_outgoing()
    assert "451" in queued["last_error"] and queued["attempts"] == 1
    assert receipts(env.server, acct(REFUSED)) == []
    assert [r.error for r in retry_outgoing(ctx, smtp)] == [None]
    assert retry_outgoing(ctx, smtp) == []
    box.close()
    smtp.close()
    [receipt] = receipts(env.server, acct(REFUSED))
    assert outcome.receipt in str(receipt["Subject"])
    assert ctx.ledger.outgoing_by_message_id(queued["message_id"])["stage"] == "sent"  # type: ignore[index]
    ctx.close()


# -- TLS, STARTTLS, OAuth, and what `collect mail test` says ------------------------------------------------------
def test_mail_test_passes_over_tls_and_starttls_with_a_private_ca_and_its_message_is_set_aside(env: Env) -> None:
    me = "collect-tls@example.test"
    ctx = env.context(me, security="tls", smtp_security="starttls", ca_file=str(env.server.cert))
    steps = mail_test(ctx)
    assert [(s.step, s.ok) for s in steps] == [("settings", True), ("login", True), ("list", True),
                                               ("folders", True), ("send", True)], steps
    [arrived] = env.server.messages(me)
    assert arrived["X-Collect-Test"] == "1"
    box = open_mailbox(ctx)
    [result] = fetch_messages(ctx, box, None)
    box.close()
    assert result.set_aside and not result.outcomes
    assert env.server.raw_messages(me) == [] and len(env.server.raw_messages(me, "collect/processed")) == 1
    ctx.close()


@pytest.mark.parametrize(("case", "words"), [
    ("password", "authentication failed"),
    ("closed port", "connection refused"),
    ("tls on a plain port", "TLS handshake failed"),
    ("untrusted certificate", "TLS certificate not trusted"),
    ("missing folder", "folder 'Nowhere' is missing"),
])
def test_mail_test_says_what_failed_in_a_system_administrators_words(env: Env, monkeypatch: pytest.MonkeyPatch,
                                                                     case: str, words: str) -> None:
    settings: dict[str, Any] = {}
    if case == "password":
        monkeypatch.setenv("COLLECT_MAIL_PASSWORD", "wrong")
    elif case == "closed port":
        from mailserver import free_port

        settings["port"] = free_port()
    elif case == "tls on a plain port":
        settings |= {"security": "tls", "port": env.server.imap_port, "ca_file": str(env.server.cert)}
    elif case == "untrusted certificate":
        settings["security"] = "tls"
    elif case == "missing folder":
        settings["folder"] = "Nowhere"
    ctx = env.context("collect-diag@example.test", **settings)
    steps = mail_test(ctx, send=False)
    failed = [s for s in steps if not s.ok]
    assert failed and words in failed[0].message, steps
    ctx.close()


def test_smtp_with_xoauth2_sends_with_the_token_and_reports_a_refused_one(env: Env,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = env.context("collect-oauth@example.test", auth="xoauth2")
    cfg = MailConfig.of(ctx.ws.settings)
    msg = compose(sender=cfg.sender, to=["oauth-rcpt@example.test"], subject="token", text="hello",
                  message_id="oauth-1@example.test")
    monkeypatch.setenv("COLLECT_MAIL_OAUTH_TOKEN", OAUTH_TOKEN)
    good = SmtpTransport(cfg)
    good.send(msg, ["oauth-rcpt@example.test"])
    good.close()
    assert [m["Message-ID"] for m in env.server.messages("oauth-rcpt@example.test")] == ["<oauth-1@example.test>"]
    monkeypatch.setenv("COLLECT_MAIL_OAUTH_TOKEN", "expired")
    bad = SmtpTransport(cfg)
    with pytest.raises(MailError, match="authentication failed"):
        bad.send(msg, ["oauth-rcpt@example.test"])
    ctx.close()


# -- the files backend ----------------------------------------------------------------------------------------------
def test_files_backend_reads_a_maildir_eml_files_and_dropped_workbooks_once(env: Env) -> None:
    ctx = env.context("unused@example.test", backend="files")
    inbox = ctx.ws.inbox_dir
    for sub in ("new", "cur", "tmp"):
        (inbox / sub).mkdir(parents=True, exist_ok=True)
    clean = env.workbook(FILES, "files-clean.xlsx", rows(1))
    raw, _ = agency_mail(acct(FILES), [clean])
    (inbox / "new" / "1700000000.M1.host").write_bytes(raw)
    note, _ = agency_mail(acct(FILES), [], subject="請問截止日")
    (inbox / "note.eml").write_bytes(note)
    shutil.copyfile(env.workbook(FILES, "files-dropped.xlsx", rows(2)), inbox / "files-dropped.xlsx")
    box = FilesMailbox(inbox)
    results = fetch_messages(ctx, box, None)
    assert sorted((r.uid, [str(o.verdict) for o in r.outcomes]) for r in results) == [
        ("files-dropped.xlsx", ["accepted"]), ("new/1700000000.M1.host", ["accepted"]), ("note.eml", [])]
    assert sorted(p.name for p in (inbox / "processed").iterdir()) == [
        "1700000000.M1.host", "files-dropped.xlsx", "note.eml"]
    assert list((inbox / "new").iterdir()) == [] and fetch_messages(ctx, box, None) == []
    kinds = sorted(p.name.split("-")[2] for p in ctx.ws.mail_outbox.glob("*.eml")
                   if acct(FILES) in p.read_text(errors="replace"))
    assert kinds == ["notice", "receipt", "receipt"]  # the note got a "no workbook found" notice
    ctx.close()


# -- Microsoft Graph at the HTTP level (respx) ----------------------------------------------------------------------
GRAPH_USER = "https://graph.microsoft.com/v1.0/users/collect%40example.test"


def test_graph_lists_pages_reads_raw_mime_moves_and_the_pipeline_answers(env: Env) -> None:
    respx = pytest.importorskip("respx")
    httpx = pytest.importorskip("httpx")
    from collect.mail.graph import GraphClient, GraphMailbox, GraphTransport

    path = env.workbook(GRAPH, "graph.xlsx", rows(1))
    raw1, _ = agency_mail(acct(GRAPH), [path], to="collect@example.test")
    raw2, _ = agency_mail(acct(GRAPH), [], subject="只是問候", to="collect@example.test")
    moves: list[tuple[str, str]] = []
    sent: list[bytes] = []
    with respx.mock(assert_all_called=True) as router:
        router.get(f"{GRAPH_USER}/mailFolders", params={"$filter": "displayName eq 'collect'"}).respond(
            json={"value": []})
        router.post(f"{GRAPH_USER}/mailFolders", json={"displayName": "collect"}).respond(201, json={"id": "F-collect"})
        router.get(f"{GRAPH_USER}/mailFolders/F-collect/childFolders").respond(
            json={"value": [{"id": "F-processed", "displayName": "processed"}]})
        router.get(f"{GRAPH_USER}/mailFolders/inbox/messages", params={"$top": "50"}).respond(json={
            "value": [{"id": "AAA=1", "internetMessageId": "<1@x>"}],
            "@odata.nextLink": f"{GRAPH_USER}/mailFolders/inbox/messages?$skiptoken=2"})
        router.get(f"{GRAPH_USER}/mailFolders/inbox/messages", params={"$skiptoken": "2"}).respond(
            json={"value": [{"id": "AAA=2", "internetMessageId": "<2@x>"}]})
        router.get(f"{GRAPH_USER}/messages/AAA%3D1/$value").respond(content=raw1)
        router.get(f"{GRAPH_USER}/messages/AAA%3D2/$value").respond(content=raw2)

        def move(request: Any) -> Any:
            moves.append((request.url.path.split("/")[-2], json.loads(request.content)["destinationId"]))
            return httpx.Response(201, json={"id": "moved"})

        router.post(url__regex=rf"{re.escape(GRAPH_USER)}/messages/[^/]+/move").mock(side_effect=move)

        def send_mail(request: Any) -> Any:
            assert request.headers["Authorization"] == "Bearer T0KEN"
            sent.append(base64.b64decode(request.content))
            return httpx.Response(202)

        router.post(f"{GRAPH_USER}/sendMail").mock(side_effect=send_mail)
        cfg = MailConfig(backend="graph", mailbox="collect@example.test", processed_folder="collect/processed")
        client = GraphClient("collect@example.test", lambda: "T0KEN", http=httpx.Client())
        ctx = env.context("collect@example.test")
        results = fetch_messages(ctx, GraphMailbox(client, cfg), GraphTransport(client))
    assert [[str(o.verdict) for o in r.outcomes] for r in results] == [["accepted"], []]
    assert moves == [("AAA=1", "F-processed"), ("AAA=2", "F-processed")]
    replies = [message_from_bytes(b, policy=policy.default) for b in sent]
    assert sorted(str(m["To"]) for m in replies) == [acct(GRAPH)] * 2
    assert all(m["In-Reply-To"] for m in replies)
    ctx.close()


def test_graph_sends_a_large_attachment_through_an_upload_session_in_320k_chunks() -> None:
    respx = pytest.importorskip("respx")
    httpx = pytest.importorskip("httpx")
    from collect.mail.graph import CHUNK, GraphClient, GraphTransport

    big = bytes(range(256)) * (7_000_000 // 256)
    msg = compose(sender="collect@example.test", to=["acct.010000@example.test"], subject="大檔案",
                  text="附件", attachments=[OutgoingAttachment("總表.xlsx", big)],
                  message_id="big-1@example.test", in_reply_to="<orig@agency>")
    uploaded: dict[int, bytes] = {}
    drafts: list[bytes] = []
    with respx.mock(assert_all_called=True) as router:
        def draft(request: Any) -> Any:
            drafts.append(base64.b64decode(request.content))
            return httpx.Response(201, json={"id": "D1"})

        router.post(f"{GRAPH_USER}/messages").mock(side_effect=draft)
        router.post(f"{GRAPH_USER}/messages/D1/attachments/createUploadSession").respond(
            json={"uploadUrl": "https://upload.example.test/session/1"})

        def put(request: Any) -> Any:
            assert "Authorization" not in request.headers
            first, rest = request.headers["Content-Range"].removeprefix("bytes ").split("-")
            uploaded[int(first)] = request.content
            assert rest.endswith(f"/{len(big)}")
            return httpx.Response(200 if int(rest.split("/")[0]) + 1 < len(big) else 201, json={})

        router.put("https://upload.example.test/session/1").mock(side_effect=put)
        router.post(f"{GRAPH_USER}/messages/D1/send").respond(202)
        GraphTransport(GraphClient("collect@example.test", lambda: "T", http=httpx.Client())).send(
            msg, ["acct.010000@example.test"])
    assert b"".join(uploaded[k] for k in sorted(uploaded)) == big
    assert all(len(v) % (320 * 1024) == 0 for k, v in uploaded.items() if k != max(uploaded))
    assert len(uploaded) == -(-len(big) // CHUNK)
    [draft_mime] = drafts
    parsed = message_from_bytes(draft_mime, policy=policy.default)
    assert parsed["In-Reply-To"] == "<orig@agency>" and parsed["Message-ID"] == "<big-1@example.test>"
    assert len(draft_mime) < 100_000  # the big attachment went by upload session, not in the draft


def test_msal_client_credentials_token_for_graph(monkeypatch: pytest.MonkeyPatch) -> None:
    responses = pytest.importorskip("responses")
    pytest.importorskip("msal")
    from collect.mail import settings as backends

    monkeypatch.setenv("COLLECT_GRAPH_CLIENT_SECRET", "s3cret")
    monkeypatch.setattr(backends, "_msal_apps", {})
    cfg = MailConfig(backend="graph", tenant="contoso.example", client_id="app-1", mailbox="collect@example.test")
    authority = "https://login.microsoftonline.com/contoso.example"
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.get(re.compile(r"https://login\.microsoftonline\.com/common/discovery/instance.*"), json={
            "tenant_discovery_endpoint": f"{authority}/v2.0/.well-known/openid-configuration",
            "metadata": [{"preferred_network": "login.microsoftonline.com", "aliases": ["login.microsoftonline.com"]}]})
        rsps.get(f"{authority}/v2.0/.well-known/openid-configuration", json={
            "token_endpoint": f"{authority}/oauth2/v2.0/token",
            "authorization_endpoint": f"{authority}/oauth2/v2.0/authorize",
            "issuer": f"{authority}/v2.0"})
        rsps.post(f"{authority}/oauth2/v2.0/token", json={"access_type": "Bearer", "token_type": "Bearer",
                                                         "expires_in": 3600, "access_token": "GRAPH-TOKEN"})
        assert backends.oauth_token(cfg, backends.GRAPH_SCOPE) == "GRAPH-TOKEN"
        token_calls = [c for c in rsps.calls if c.request.url.endswith("/token")]
        assert len(token_calls) == 1
        body = str(token_calls[0].request.body)
        assert "client_credentials" in body and "graph.microsoft.com" in body
        assert backends.oauth_token(cfg, backends.GRAPH_SCOPE) == "GRAPH-TOKEN"  # cached
        assert len([c for c in rsps.calls if c.request.url.endswith("/token")]) == 1


def test_wire_bytes_keep_our_folded_headers_and_drop_bcc() -> None:
    from collect.mail.imap import _wire_bytes

    msg = compose(sender="collect@example.test", to=["a@example.test"], subject="主旨", text="x",
                  attachments=[OutgoingAttachment("臺北市政府主計處檢核結果.xlsx", b"PK\x03\x04")])
    msg["Bcc"] = "hidden@example.test"
    data = _wire_bytes(msg)
    assert b"hidden@example.test" not in data
    assert data.replace(b"\r\nBcc: hidden@example.test", b"") == to_bytes(msg).replace(
        b"Bcc: hidden@example.test\r\n", b"")


def test_ews_refuses_exchange_online_and_points_to_graph(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("exchangelib")
    from collect.errors import ConfigError
    from collect.mail.ews import ews_account

    cfg = MailConfig(backend="ews", server="outlook.office365.com", username="collect@example.test")
    with pytest.raises(ConfigError, match="April 2027") as info:
        ews_account(cfg)
    assert "graph" in info.value.hint


def test_mail_settings_have_one_set_of_defaults() -> None:
    """MailConfig's field defaults (used when code builds one directly) are the [mail] defaults of collect.toml."""
    from dataclasses import fields

    from collect.config import _SCHEMA
    from collect.mail.settings import MailConfig

    declared = {name: default for name, (_kind, default) in _SCHEMA["mail"].items()}
    mine = {f.name: f.default for f in fields(MailConfig) if f.name != "sender"}
    assert set(mine) <= set(declared)
    assert {name: declared[name] for name in mine} == mine
