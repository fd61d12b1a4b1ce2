"""The Microsoft Graph backend (msal + httpx) for Exchange Online; an optional extra, imported only when used."""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Callable, Iterator
from email import message_from_bytes
from email.message import EmailMessage
from typing import Any
from urllib.parse import quote

from collect.errors import ConfigError, MailError
from collect.mail.compose import POLICY, to_bytes
from collect.mail.settings import GRAPH_SCOPE, MailConfig, oauth_token, sentence

GRAPH_URL = "https://graph.microsoft.com/v1.0"
SEND_MIME_LIMIT = 3_500_000  # sendMail with a MIME body takes up to 4 MB of base64; bigger goes by upload session
UPLOAD_ABOVE = 3_000_000  # an attachment of 3 MB or more must go through an upload session
CHUNK = 320 * 1024 * 10  # upload-session chunks are multiples of 320 KiB
WELL_KNOWN = {"inbox": "inbox", "INBOX": "inbox"}


def _httpx() -> Any:
    try:
        import httpx
    except ImportError:
        raise ConfigError("[mail] backend = \"graph\" needs the httpx and msal packages.",
                          "Install the extra: pip install 'collect[graph]'.") from None
    return httpx


class GraphClient:
    """A small client over the few Graph calls collect needs, for one mailbox (a user or shared mailbox)."""

    def __init__(self, mailbox: str, token: Callable[[], str], *, http: Any = None, base: str = GRAPH_URL,
                 timeout: float = 60) -> None:
        if not mailbox:
            raise ConfigError("[mail] mailbox is empty: Graph needs the address of the mailbox collect reads.")
        httpx = _httpx()
        self.mailbox = mailbox
        self.base = base.rstrip("/")
        self._token = token
        self.http = http or httpx.Client(timeout=timeout)
        self._folders: dict[str, str] = {}

    @classmethod
    def from_config(cls, cfg: MailConfig) -> GraphClient:
        return cls(cfg.account, lambda: oauth_token(cfg, GRAPH_SCOPE), timeout=cfg.timeout)

    @property
    def user(self) -> str:
        return f"{self.base}/users/{quote(self.mailbox)}"

    def request(self, method: str, url: str, *, auth: bool = True, **kw: Any) -> Any:
        headers = dict(kw.pop("headers", {}) or {})
        if auth:
            headers["Authorization"] = f"Bearer {self._token()}"
        full = url if url.startswith("http") else f"{self.user}{url}"
        response = self.http.request(method, full, headers=headers, **kw)
        if response.status_code >= 400:
            raise MailError(sentence(_graph_error(response, method, full)))
        return response

    # folders
    def folder_id(self, path: str) -> str:
        """The id of a folder given as a path from the top ("collect/processed"); created when missing."""
        if path in WELL_KNOWN:
            return WELL_KNOWN[path]
        if path in self._folders:
            return self._folders[path]
        parent: str | None = None
        for name in path.split("/"):
            base = f"/mailFolders/{parent}/childFolders" if parent else "/mailFolders"
            escaped = name.replace("'", "''")
            found = self.request("GET", base, params={"$filter": f"displayName eq '{escaped}'",
                                                      "$select": "id,displayName"}).json().get("value", [])
            if found:
                parent = str(found[0]["id"])
            else:
                parent = str(self.request("POST", base, json={"displayName": name}).json()["id"])
        assert parent is not None
        self._folders[path] = parent
        return parent

    # messages
    def list_messages(self, folder: str, page: int = 50) -> Iterator[dict[str, Any]]:
        """Messages of a folder, oldest first (id, internetMessageId, receivedDateTime), following nextLink."""
        url: str | None = f"/mailFolders/{self.folder_id(folder)}/messages"
        params: dict[str, Any] | None = {"$select": "id,internetMessageId,receivedDateTime",
                                         "$orderby": "receivedDateTime asc", "$top": page}
        while url:
            body = self.request("GET", url, params=params).json()
            yield from body.get("value", [])
            url, params = body.get("@odata.nextLink"), None

    def raw(self, message_id: str) -> bytes:
        """The message's MIME content ($value): the raw RFC 5322 bytes."""
        return bytes(self.request("GET", f"/messages/{quote(message_id)}/$value").content)

    def move(self, message_id: str, folder: str) -> str:
        body = self.request("POST", f"/messages/{quote(message_id)}/move",
                            json={"destinationId": self.folder_id(folder)}).json()
        return str(body.get("id", ""))

    def send_mime(self, raw: bytes) -> None:
        """sendMail with the whole MIME message (kept as written: Message-ID, In-Reply-To, attachment names)."""
        self.request("POST", "/sendMail", content=base64.b64encode(raw), headers={"Content-Type": "text/plain"})

    def send_large(self, msg: EmailMessage) -> None:
        """A message too large for sendMail: a draft from the MIME without the big attachments, each big one
        uploaded in chunks through an upload session, then sent."""
        small = _without_large_attachments(msg)
        draft = self.request("POST", "/messages", content=base64.b64encode(to_bytes(small[0])),
                             headers={"Content-Type": "text/plain"}).json()
        draft_id = quote(str(draft["id"]))
        for name, data, ctype in small[1]:
            session = self.request("POST", f"/messages/{draft_id}/attachments/createUploadSession", json={
                "AttachmentItem": {"attachmentType": "file", "name": name, "size": len(data),
                                   "contentType": ctype}}).json()
            upload = str(session["uploadUrl"])
            for start in range(0, len(data), CHUNK):
                chunk = data[start:start + CHUNK]
                end = start + len(chunk) - 1
                self.request("PUT", upload, auth=False, content=chunk, headers={
                    "Content-Length": str(len(chunk)), "Content-Range": f"bytes {start}-{end}/{len(data)}",
                    "Content-Type": "application/octet-stream"})
        self.request("POST", f"/messages/{draft_id}/send")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.http.close()


def _graph_error(response: Any, method: str, url: str) -> str:
    try:
        err = response.json().get("error", {})
        detail = f"{err.get('code', '')}: {err.get('message', '')}"
    except Exception:
        detail = response.text[:200]
    what = {401: "authentication failed (token refused)", 403: "access denied (the app lacks Mail.ReadWrite / "
            "Mail.Send, or an application access policy excludes this mailbox)", 404: "not found (mailbox or "
            "folder missing)", 429: "throttled by Microsoft Graph; try again later"}.get(response.status_code,
                                                                                      "request failed")
    return f"Graph {method} {url.split('?')[0]}: {response.status_code} {what}: {detail}"


def _without_large_attachments(msg: EmailMessage) -> tuple[EmailMessage, list[tuple[str, bytes, str]]]:
    copy = message_from_bytes(to_bytes(msg), policy=POLICY)
    assert isinstance(copy, EmailMessage)
    large: list[tuple[str, bytes, str]] = []
    for part in list(copy.walk()):
        if not isinstance(part, EmailMessage) or part.get_content_disposition() != "attachment":
            continue
        data = part.get_payload(decode=True)
        if isinstance(data, bytes) and len(data) >= UPLOAD_ABOVE:
            large.append((part.get_filename() or "attachment.bin", data, part.get_content_type()))
            parent = _parent_of(copy, part)
            if parent is not None:
                payload = parent.get_payload()
                assert isinstance(payload, list)
                payload.remove(part)
    return copy, large


def _parent_of(root: EmailMessage, child: EmailMessage) -> EmailMessage | None:
    for part in root.walk():
        payload = part.get_payload()
        if isinstance(payload, list) and any(p is child for p in payload):
            return part
    return None


class GraphMailbox:
    """A Graph mailbox folder: list, raw MIME, move to the processed or failed folder."""

    def __init__(self, client: GraphClient, cfg: MailConfig) -> None:
        self.client = client
        self.cfg = cfg
        self.name = f"graph://{client.mailbox}/{cfg.folder}"

    def connect(self) -> None:
        self.client.folder_id(self.cfg.folder)

    def uids(self) -> list[str]:
        return [str(m["id"]) for m in self.client.list_messages(self.cfg.folder)]

    def list_new(self) -> Iterator[tuple[str, bytes]]:
        for uid in self.uids():
            yield uid, self.client.raw(uid)

    def ensure_folder(self, path: str) -> str:
        return self.client.folder_id(path)

    def mark_processed(self, uid: str) -> None:
        self.client.move(uid, self.cfg.processed_folder)

    def mark_failed(self, uid: str, reason: str) -> None:
        self.client.move(uid, self.cfg.failed_folder)

    def close(self) -> None:
        return None


class GraphTransport:
    """Sends as the Graph mailbox: MIME as written, or through a draft and upload sessions when large."""

    def __init__(self, client: GraphClient) -> None:
        self.client = client

    def send(self, msg: EmailMessage, recipients: list[str]) -> None:
        raw = to_bytes(msg)
        if len(raw) * 4 // 3 <= SEND_MIME_LIMIT:
            self.client.send_mime(raw)
        else:
            self.client.send_large(msg)

    def close(self) -> None:
        self.client.close()
