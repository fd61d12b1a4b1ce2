"""EWS (exchangelib, on-premises Exchange) at the HTTP level: a small Exchange 2016 that answers with the SOAP shapes a
real server sends, served through `responses` the way exchangelib's own tests mock EWS."""

from __future__ import annotations

import base64
import itertools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import pytest
from ingest_util import acct, agency_mail, attachments, fill, mail_text, rows
from mailserver import free_port

from collect.errors import MailError
from collect.forms.issuing import issue
from collect.mail.check import mail_test
from collect.mail.compose import OutgoingAttachment, compose
from collect.mail.ews import EwsMailbox, EwsTransport
from collect.mail.settings import MailConfig
from collect.receive.watch import fetch
from collect.states import Verdict
from collect.workspace import Context

exchangelib = pytest.importorskip("exchangelib")  # the optional extra collect[ews]; responses and lxml come along
responses = pytest.importorskip("responses")
etree = pytest.importorskip("lxml.etree")

S = "http://schemas.xmlsoap.org/soap/envelope/"
M = "http://schemas.microsoft.com/exchange/services/2006/messages"
T = "http://schemas.microsoft.com/exchange/services/2006/types"
NS = f'xmlns:m="{M}" xmlns:t="{T}"'
HOST = "mail.example.test"
ENDPOINT = f"https://{HOST}/EWS/Exchange.asmx"
USER = "TAIPEI\\collect"
PASSWORD = "ews-password"
MAILBOX = "collect@example.test"
AGENCY = "020004"


# -- a small Exchange Server 2016 ------------------------------------------------------------------------------------
@dataclass
class Folder:
    id: str
    name: str
    parent: str
    distinguished: str = ""


@dataclass
class Item:
    id: str
    folder: str
    mime: bytes
    changekey: str = "CQAAABYAAAD"


@dataclass
class Request:
    op: str  # the SOAP operation: FindItem, GetItem, MoveItem, ...
    body: Any  # its element under s:Body (lxml)
    user: str  # who authenticated ("" for none)

    def attr(self, path: str, name: str) -> str:
        found = self.body.find(path, {"m": M, "t": T})
        assert found is not None, (path, etree.tostring(self.body))
        return str(found.get(name))


@dataclass
class FakeExchange:
    """Answers EWS requests for one mailbox: Basic authentication (the auth-type probe gets a 401 that offers it),
    ServerVersionInfo in every SOAP header, folders by id or distinguished name, items with their MIME content."""

    password: str = PASSWORD
    folders: dict[str, Folder] = field(default_factory=dict)
    items: dict[str, Item] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    sent: list[Request] = field(default_factory=list)
    move_errors: dict[str, str] = field(default_factory=dict)  # item id -> ResponseCode of a failed move
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        for folder in (Folder("AQMkRoot", "", "", "root"),
                       Folder("AQMkTop", "最上層資訊存放區", "AQMkRoot", "msgfolderroot"),
                       Folder("AQMkInbox", "收件匣", "AQMkTop", "inbox"),
                       Folder("AQMkSent", "寄件備份", "AQMkTop", "sentitems")):
            self.folders[folder.id] = folder

    # test helpers
    def deliver(self, raw: bytes) -> str:
        item_id = f"AAMkItem{next(self._ids)}="
        self.items[item_id] = Item(item_id, "AQMkInbox", raw)
        return item_id

    def add_folder(self, path: str) -> Folder:
        parent = "AQMkTop"
        for name in path.split("/"):
            existing = [f for f in self.folders.values() if f.parent == parent and f.name == name]
            if existing:
                parent = existing[0].id
                continue
            folder = Folder(f"AQMkFolder{next(self._ids)}", name, parent)
            self.folders[folder.id] = folder
            parent = folder.id
        return self.folders[parent]

    def path_of(self, folder_id: str) -> str:
        parts = []
        while folder_id != "AQMkTop":
            folder = self.folders[folder_id]
            parts.append(folder.name)
            folder_id = folder.parent
        return "/".join(reversed(parts))

    def in_folder(self, path: str) -> list[bytes]:
        return [i.mime for i in self.items.values() if self.path_of(i.folder) == path]

    def ops(self) -> list[str]:
        return [r.op for r in self.requests]

    def of(self, op: str) -> list[Request]:
        return [r for r in self.requests if r.op == op]

    # HTTP
    def install(self, rsps: Any) -> None:
        rsps.add_callback(responses.POST, ENDPOINT, callback=self.callback)

    def callback(self, request: Any) -> tuple[int, dict[str, str], bytes]:
        body = request.body if isinstance(request.body, bytes) else str(request.body).encode()
        op = etree.fromstring(body).find(f"{{{S}}}Body")[0]
        name = etree.QName(op).localname
        auth = request.headers.get("Authorization", "")
        user, password = "", ""
        if auth.startswith("Basic "):
            user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
        self.requests.append(Request(name, op, user))
        challenge = {"WWW-Authenticate": f'Basic realm="{HOST}"'}
        if not user or password != self.password:
            return 401, challenge, b""
        handler = getattr(self, name)
        return 200, {"Content-Type": "text/xml; charset=utf-8"}, envelope(handler(op))

    # operations
    def resolve(self, ref: Any) -> Folder | None:
        key = ref.get("Id")
        if etree.QName(ref).localname == "DistinguishedFolderId":
            return next((f for f in self.folders.values() if f.distinguished == key), None)
        return self.folders.get(key)

    def ConvertId(self, op: Any) -> str:  # the version probe: a dummy id, answered with an error and the header
        return response("ConvertId", error("ConvertIdResponseMessage", "ErrorInvalidIdMalformed", "Id is malformed."))

    def GetFolder(self, op: Any) -> str:
        out = []
        for ref in op.find(f"{{{M}}}FolderIds"):
            folder = self.resolve(ref)
            if folder is None:
                out.append(error("GetFolderResponseMessage", "ErrorFolderNotFound",
                                 "The specified folder could not be found in the store."))
            else:
                out.append(ok("GetFolderResponseMessage", f"<m:Folders>{folder_xml(folder)}</m:Folders>"))
        return response("GetFolder", *out)

    def FindFolder(self, op: Any) -> str:
        [parent] = [self.resolve(r) for r in op.find(f"{{{M}}}ParentFolderIds")]
        assert parent is not None
        deep = op.get("Traversal") == "Deep"
        found = [f for f in self.folders.values() if f.id != parent.id and (
            f.parent == parent.id or (deep and self.path_from(f, parent.id)))]
        return response("FindFolder", ok("FindFolderResponseMessage",
                        f'<m:RootFolder IndexedPagingOffset="{len(found)}" TotalItemsInView="{len(found)}" '
                        f'IncludesLastItemInRange="true"><t:Folders>{"".join(map(folder_xml, found))}</t:Folders>'
                        "</m:RootFolder>"))

    def path_from(self, folder: Folder, ancestor: str) -> bool:
        while folder.parent:
            if folder.parent == ancestor:
                return True
            folder = self.folders[folder.parent]
        return False

    def CreateFolder(self, op: Any) -> str:
        parent = self.resolve(op.find(f"{{{M}}}ParentFolderId")[0])
        assert parent is not None
        out = []
        for element in op.find(f"{{{M}}}Folders"):
            name = element.findtext(f"{{{T}}}DisplayName")
            if any(f.parent == parent.id and f.name.casefold() == str(name).casefold()
                   for f in self.folders.values()):  # Exchange compares folder names without case
                out.append(error("CreateFolderResponseMessage", "ErrorFolderExists",
                                 "A folder with the specified name already exists."))
                continue
            folder = Folder(f"AQMkFolder{next(self._ids)}", str(name), parent.id)
            self.folders[folder.id] = folder
            out.append(ok("CreateFolderResponseMessage", f'<m:Folders><t:Folder><t:FolderId Id="{folder.id}" '
                                                         'ChangeKey="AQAAABYAAAA"/></t:Folder></m:Folders>'))
        return response("CreateFolder", *out)

    def FindItem(self, op: Any) -> str:
        [folder] = [self.resolve(r) for r in op.find(f"{{{M}}}ParentFolderIds")]
        assert folder is not None
        view = op.find(f"{{{M}}}IndexedPageItemView")
        offset, limit = int(view.get("Offset")), int(view.get("MaxEntriesReturned"))
        found = [i for i in self.items.values() if i.folder == folder.id]
        page = found[offset:offset + limit]
        inner = "".join(f'<t:Message><t:ItemId Id="{i.id}" ChangeKey="{i.changekey}"/></t:Message>' for i in page)
        last = "true" if offset + len(page) >= len(found) else "false"
        return response("FindItem", ok("FindItemResponseMessage",
                        f'<m:RootFolder IndexedPagingOffset="{offset + len(page)}" TotalItemsInView="{len(found)}" '
                        f'IncludesLastItemInRange="{last}"><t:Items>{inner}</t:Items></m:RootFolder>'))

    def GetItem(self, op: Any) -> str:
        out = []
        for ref in op.find(f"{{{M}}}ItemIds"):
            item = self.items.get(ref.get("Id"))
            if item is None:
                out.append(error("GetItemResponseMessage", "ErrorItemNotFound",
                                 "The specified object was not found in the store."))
                continue
            mime = base64.b64encode(item.mime).decode()
            out.append(ok("GetItemResponseMessage", f'<m:Items><t:Message><t:MimeContent CharacterSet="UTF-8">{mime}'
                                                    f'</t:MimeContent><t:ItemId Id="{item.id}" '
                                                    f'ChangeKey="{item.changekey}"/></t:Message></m:Items>'))
        return response("GetItem", *out)

    def MoveItem(self, op: Any) -> str:
        target = self.resolve(op.find(f"{{{M}}}ToFolderId")[0])
        assert target is not None
        out = []
        for ref in op.find(f"{{{M}}}ItemIds"):
            item = self.items.get(ref.get("Id"))
            code = self.move_errors.get(str(ref.get("Id")), "" if item is not None else "ErrorItemNotFound")
            if code or item is None:
                out.append(error("MoveItemResponseMessage", code,
                                 "The specified object was not found in the store."))
                continue
            del self.items[item.id]
            moved = Item(f"AAMkMoved{next(self._ids)}=", target.id, item.mime)
            self.items[moved.id] = moved
            out.append(ok("MoveItemResponseMessage", f'<m:Items><t:Message><t:ItemId Id="{moved.id}" '
                                                     f'ChangeKey="{moved.changekey}"/></t:Message></m:Items>'))
        return response("MoveItem", *out)

    def CreateItem(self, op: Any) -> str:
        request = self.requests[-1]
        if op.get("MessageDisposition") in ("SendAndSaveCopy", "SendOnly"):
            self.sent.append(request)
        return response("CreateItem", ok("CreateItemResponseMessage", "<m:Items/>"))


def response(op: str, *messages: str) -> str:
    return f"<m:{op}Response {NS}><m:ResponseMessages>{''.join(messages)}</m:ResponseMessages></m:{op}Response>"


def ok(tag: str, inner: str = "") -> str:
    return f'<m:{tag} ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode>{inner}</m:{tag}>'


def error(tag: str, code: str, text: str) -> str:
    return (f'<m:{tag} ResponseClass="Error"><m:MessageText>{text}</m:MessageText><m:ResponseCode>{code}'
            f"</m:ResponseCode><m:DescriptiveLinkKey>0</m:DescriptiveLinkKey></m:{tag}>")


def folder_xml(folder: Folder) -> str:
    parent = f'<t:ParentFolderId Id="{folder.parent}" ChangeKey="AQAAAA=="/>' if folder.parent else ""
    return (f'<t:Folder><t:FolderId Id="{folder.id}" ChangeKey="AQAAAA=="/>{parent}<t:FolderClass>IPF.Note'
            f"</t:FolderClass><t:DisplayName>{escape(folder.name)}</t:DisplayName><t:TotalCount>0</t:TotalCount>"
            "<t:ChildFolderCount>0</t:ChildFolderCount><t:UnreadCount>0</t:UnreadCount></t:Folder>")


def envelope(body: str) -> bytes:
    """The SOAP envelope of Exchange Server 2016 CU (15.1.2507): the version in every response header."""
    return (f'<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="{S}"><s:Header><h:ServerVersionInfo '
            'MajorVersion="15" MinorVersion="1" MajorBuildNumber="2507" MinorBuildNumber="6" Version="V2017_07_11" '
            f'xmlns:h="{T}" xmlns="{T}" xmlns:xsd="http://www.w3.org/2001/XMLSchema" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"/></s:Header>'
            f"<s:Body>{body}</s:Body></s:Envelope>").encode()


# -- fixtures ----------------------------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def _fresh_exchangelib(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """exchangelib caches a protocol (auth type, version, sessions) per endpoint: each test starts cold."""
    monkeypatch.setenv("COLLECT_MAIL_PASSWORD", PASSWORD)
    exchangelib.close_connections()
    yield
    exchangelib.close_connections()


@pytest.fixture
def exchange() -> Iterator[FakeExchange]:
    server = FakeExchange()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        server.install(rsps)
        yield server


def ews_config(**kw: Any) -> MailConfig:
    values: dict[str, Any] = {"backend": "ews", "server": HOST, "username": USER, "mailbox": MAILBOX, **kw}
    return MailConfig(**values)


def use_ews(root: Path, **extra: Any) -> None:
    """Point a workspace's [mail] section at the Exchange server (as an administrator would in collect.toml)."""
    values: dict[str, Any] = {"backend": "ews", "server": HOST, "username": USER, "mailbox": MAILBOX, **extra}
    lines = ["[mail]"] + [f"{k} = {json.dumps(v, ensure_ascii=False)}" for k, v in values.items()]
    path = root / "collect.toml"
    text = re.sub(r"(?ms)^\[mail\]\n.*?(?=^\[|\Z)", lambda _m: "\n".join(lines) + "\n\n",
                  path.read_text(encoding="utf-8"))
    path.write_text(text, encoding="utf-8")


def parse(raw: bytes) -> EmailMessage:
    msg = message_from_bytes(raw, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


# -- reading the inbox -----------------------------------------------------------------------------------------
def test_listing_the_inbox_returns_each_messages_mime_bytes_exactly(exchange: FakeExchange) -> None:
    first = ("From: acct.020004@example.test\r\nTo: collect@example.test\r\nSubject: =?utf-8?b?5aGr5aCx?=\r\n"
             "Message-ID: <one@example.test>\r\n\r\n第一封\r\n").encode()
    second = b"From: x@example.test\r\nSubject: binary\r\n\r\n" + bytes(range(256)) + b"  \r\n\r\n"
    ids = [exchange.deliver(first), exchange.deliver(second)]
    box = EwsMailbox(ews_config())
    listed = list(box.list_new())
    box.close()
    assert [raw for _uid, raw in listed] == [first, second]
    assert [uid.split("\t")[0] for uid, _raw in listed] == ids
    # no autodiscover: every request went to the configured server; one unauthenticated probe found Basic, then
    # the version probe, then the inbox
    assert exchange.requests[0].user == "" and {r.user for r in exchange.requests[1:]} == {USER}
    assert exchange.ops()[:2] == ["ConvertId", "ConvertId"]
    [find] = exchange.of("FindItem")
    assert find.attr("m:ParentFolderIds/t:DistinguishedFolderId", "Id") == "inbox"
    assert find.body.findtext(f".//{{{T}}}EmailAddress") == MAILBOX
    assert find.attr("m:SortOrder/t:FieldOrder", "Order") == "Ascending"
    assert find.attr("m:SortOrder/t:FieldOrder/t:FieldURI", "FieldURI") == "item:DateTimeReceived"
    gets = exchange.of("GetItem")
    assert [g.attr("m:ItemIds/t:ItemId", "Id") for g in gets] == ids
    assert all(g.attr("m:ItemShape/t:AdditionalProperties/t:FieldURI", "FieldURI") == "item:MimeContent"
               for g in gets)


# -- moving ------------------------------------------------------------------------------------------------------
def test_mark_processed_creates_the_missing_folders_then_moves_the_item_there(exchange: FakeExchange) -> None:
    first = exchange.deliver(b"Subject: 1\r\n\r\n1\r\n")
    second = exchange.deliver(b"Subject: 2\r\n\r\n2\r\n")
    box = EwsMailbox(ews_config())
    uids = box.uids()
    box.mark_processed(uids[0])
    created = [(c.body.findtext(f".//{{{T}}}DisplayName"), c.body.find(f"{{{M}}}ParentFolderId")[0])
               for c in exchange.of("CreateFolder")]
    # "collect" at the top of the mailbox (beside the inbox), "processed" inside it
    assert [(name, etree.QName(parent).localname, parent.get("Id")) for name, parent in created] == [
        ("collect", "DistinguishedFolderId", "msgfolderroot"),
        ("processed", "FolderId", exchange.add_folder("collect").id)]
    processed = exchange.add_folder("collect/processed")  # the one the server created, found by its path
    [move] = exchange.of("MoveItem")
    assert move.attr("m:ItemIds/t:ItemId", "Id") == first
    assert move.attr("m:ToFolderId/t:FolderId", "Id") == processed.id
    assert exchange.in_folder("collect/processed") == [b"Subject: 1\r\n\r\n1\r\n"]
    assert [uid.split("\t")[0] for uid in box.uids()] == [second]
    assert exchange.in_folder("收件匣") == [b"Subject: 2\r\n\r\n2\r\n"]

    box.mark_processed(box.uids()[0])  # the folder is known now: one more MoveItem, nothing created
    box.close()
    assert len(exchange.of("CreateFolder")) == 2
    assert [m.attr("m:ToFolderId/t:FolderId", "Id") for m in exchange.of("MoveItem")] == [processed.id] * 2
    assert exchange.in_folder("收件匣") == [] and len(exchange.in_folder("collect/processed")) == 2


def test_mark_failed_moves_the_item_into_the_existing_failed_folder(exchange: FakeExchange) -> None:
    failed = exchange.add_folder("collect/failed")
    raw = b"Subject: broken\r\n\r\nx\r\n"
    item = exchange.deliver(raw)
    box = EwsMailbox(ews_config())
    [uid] = box.uids()
    box.mark_failed(uid, "SecretMissing: no stamp key")
    box.close()
    assert exchange.of("CreateFolder") == []
    [move] = exchange.of("MoveItem")
    assert (move.attr("m:ItemIds/t:ItemId", "Id"), move.attr("m:ToFolderId/t:FolderId", "Id")) == (item, failed.id)
    assert exchange.in_folder("collect/failed") == [raw] and exchange.in_folder("收件匣") == []


def test_folders_an_administrator_made_in_other_case_are_used_not_created_again(exchange: FakeExchange) -> None:
    processed = exchange.add_folder("Collect/Processed")  # made by hand in Outlook
    raw = b"Subject: 1\r\n\r\n1\r\n"
    exchange.deliver(raw)
    box = EwsMailbox(ews_config())
    [uid] = box.uids()
    box.mark_processed(uid)
    box.close()
    assert exchange.of("CreateFolder") == []
    assert exchange.of("MoveItem")[0].attr("m:ToFolderId/t:FolderId", "Id") == processed.id
    assert exchange.in_folder("Collect/Processed") == [raw]


def test_a_move_the_server_refuses_is_a_mail_error_naming_the_folder(exchange: FakeExchange) -> None:
    item = exchange.deliver(b"Subject: gone\r\n\r\nx\r\n")
    exchange.move_errors[item] = "ErrorItemNotFound"  # another client took it meanwhile
    box = EwsMailbox(ews_config())
    [uid] = box.uids()
    with pytest.raises(MailError, match="EWS could not move the message to collect/processed") as info:
        box.mark_processed(uid)
    box.close()
    assert "not found" in info.value.message


# -- sending -----------------------------------------------------------------------------------------------------
def test_send_creates_the_item_with_send_and_save_copy_carrying_the_messages_mime(exchange: FakeExchange) -> None:
    workbook = b"PK\x03\x04" + bytes(range(256)) * 40
    msg = compose(sender=MAILBOX, to=["acct.020004@example.test"], subject="收件回覆：防疫經費執行情形（115年10月）",
                  text="已收到貴機關填報資料。",
                  attachments=[OutgoingAttachment("臺北市政府主計處檢核結果.xlsx", workbook)],
                  message_id="ews-send-1@example.test", in_reply_to="<orig-1@example.test>")
    transport = EwsTransport(ews_config())
    transport.send(msg, ["acct.020004@example.test"])
    [create] = exchange.sent
    assert create.body.get("MessageDisposition") == "SendAndSaveCopy"
    saved = create.body.find(f"{{{M}}}SavedItemFolderId")[0]
    assert exchange.resolve(saved) is exchange.folders["AQMkSent"]  # the copy goes to Sent Items
    [mime] = create.body.findall(f"{{{M}}}Items/{{{T}}}Message/{{{T}}}MimeContent")
    sent = parse(base64.b64decode(mime.text))
    assert sent["Subject"] == "收件回覆：防疫經費執行情形（115年10月）"
    assert sent["Message-ID"] == "<ews-send-1@example.test>" and sent["In-Reply-To"] == "<orig-1@example.test>"
    assert [str(a) for a in sent["To"].addresses] == ["acct.020004@example.test"]
    assert attachments(sent) == {"臺北市政府主計處檢核結果.xlsx": workbook}
    assert mail_text(sent).strip() == "已收到貴機關填報資料。"



# -- what `collect mail test` says --------------------------------------------------------------------------------
def test_mail_test_passes_creates_the_folders_and_sends_its_message_through_ews(exchange: FakeExchange,
                                                                                workspace: Path) -> None:
    exchange.deliver(b"Subject: waiting\r\n\r\nx\r\n")
    use_ews(workspace)
    ctx = Context.open(workspace)
    steps = mail_test(ctx)
    ctx.close()
    assert [(s.step, s.ok) for s in steps] == [("settings", True), ("login", True), ("list", True),
                                               ("folders", True), ("send", True)], steps
    assert "1 message(s) waiting in INBOX" in steps[2].message
    assert {exchange.path_of(f.id) for f in exchange.folders.values() if f.name in ("collect", "processed", "failed")
            } == {"collect", "collect/processed", "collect/failed"}
    [create] = exchange.sent
    test_message = parse(base64.b64decode(create.body.findtext(f".//{{{T}}}MimeContent")))
    assert test_message["X-Collect-Test"] == "1" and str(test_message["To"]) == MAILBOX


def test_a_refused_password_is_reported_as_authentication_failed(exchange: FakeExchange, workspace: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLLECT_MAIL_PASSWORD", "wrong")
    use_ews(workspace)
    ctx = Context.open(workspace)
    steps = mail_test(ctx)
    ctx.close()
    assert [(s.step, s.ok) for s in steps] == [("settings", True), ("login", False), ("send", False)], steps
    for step in steps[1:]:
        assert step.message.startswith(f"authentication failed (EWS {ENDPOINT} as {USER}): "), step
        assert "Check [mail] username" in step.message
    # the server saw the configured user with the wrong password, answered 401 and was asked for nothing else
    assert {r.user for r in exchange.requests} == {"", USER}
    assert set(exchange.ops()) == {"ConvertId"} and exchange.sent == []


@pytest.mark.parametrize(("server", "words"), [
    ("127.0.0.1:{port}", "connection refused (EWS https://127.0.0.1:{port}/EWS/Exchange.asmx as TAIPEI\\collect): "
                         "nothing listens there"),
    ("ews.nowhere.invalid", "the host name does not resolve (EWS https://ews.nowhere.invalid/EWS/Exchange.asmx"),
])
def test_an_unreachable_server_is_reported_in_a_system_administrators_words(workspace: Path, server: str,
                                                                            words: str) -> None:
    port = free_port()  # nothing listens there: a real refused connection, no mock
    use_ews(workspace, server=server.format(port=port))
    ctx = Context.open(workspace)
    steps = mail_test(ctx)
    ctx.close()
    assert [(s.step, s.ok) for s in steps] == [("settings", True), ("login", False), ("send", False)], steps
    assert all(s.message.startswith(words.format(port=port)) for s in steps[1:]), steps


# -- the whole pass: an agency's return read from Exchange, answered through Exchange -----------------------------
def test_fetch_over_ews_ingests_an_agencys_return_and_answers_through_ews(exchange: FakeExchange,
                                                                         workspace: Path) -> None:
    ctx = Context.open(workspace)
    [issued] = issue(ctx, "covid19", "2026-10", agencies=[AGENCY]).issued
    ctx.close()
    workbook = fill(issued.path, workspace.parent / "made" / "防疫經費.xlsx", rows(2))
    sender = acct(AGENCY)
    raw, mid = agency_mail(sender, [workbook], to=MAILBOX)
    exchange.deliver(raw)
    use_ews(workspace)
    ctx = Context.open(workspace)
    cfg = MailConfig.of(ctx.ws.settings)
    box, transport = EwsMailbox(cfg), EwsTransport(cfg)
    try:
        [outcome] = fetch(ctx, box, transport)
    finally:
        box.close()
    assert (outcome.verdict, outcome.agency, outcome.file) == (Verdict.ACCEPTED, AGENCY, "防疫經費.xlsx")
    [submission] = ctx.ledger.submissions_for_round("covid19", "2026-10")
    assert (submission.agency, submission.verdict, submission.receipt, submission.rows) == (
        AGENCY, "accepted", outcome.receipt, 2)
    assert submission.sender == sender
    ctx.close()
    # the message left the inbox for collect/processed, exactly as it arrived
    assert exchange.in_folder("收件匣") == [] and exchange.in_folder("collect/processed") == [raw]
    [create] = exchange.sent
    assert create.body.get("MessageDisposition") == "SendAndSaveCopy"
    receipt = parse(base64.b64decode(create.body.findtext(f".//{{{T}}}MimeContent")))
    assert [str(a.addr_spec) for a in receipt["To"].addresses] == [sender]
    assert receipt["In-Reply-To"] == mid
    assert outcome.receipt in str(receipt["Subject"]) and "收件回覆" in str(receipt["Subject"])
    assert outcome.receipt in mail_text(receipt)
