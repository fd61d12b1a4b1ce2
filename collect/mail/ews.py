"""The EWS backend (exchangelib) for on-premises Exchange only; an optional extra, imported only when used.

Exchange Online has blocked EWS by default since October 2026 and ends it in April 2027: use Graph there.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

from collect.errors import ConfigError, MailError
from collect.mail.compose import to_bytes
from collect.mail.settings import MailConfig, explain, mail_password, sentence


def _exchangelib() -> Any:
    try:
        import exchangelib
    except ImportError:
        raise ConfigError("[mail] backend = \"ews\" needs the exchangelib package.",
                          "Install the extra: pip install 'collect[ews]'. (Exchange Online: use backend = "
                          "\"graph\"; EWS there is blocked by default since October 2026 and ends in April "
                          "2027.)") from None
    return exchangelib


def ews_account(cfg: MailConfig, *, version: Any = None) -> Any:
    """An exchangelib Account on [mail] server (the host of /EWS/Exchange.asmx), no autodiscover."""
    xl = _exchangelib()
    if not cfg.server:
        raise ConfigError("[mail] server is empty: EWS needs the Exchange server's host name.")
    if cfg.server.lower().endswith(("outlook.office365.com", "outlook.office.com")):
        raise ConfigError("EWS on Exchange Online is blocked by default since October 2026 and ends in April 2027.",
                          "Use [mail] backend = \"graph\" (or imap with auth = \"xoauth2\") for Exchange Online.")
    credentials = xl.Credentials(cfg.username, mail_password(cfg))
    config = xl.Configuration(server=cfg.server, credentials=credentials, version=version)
    return xl.Account(primary_smtp_address=cfg.account, config=config, autodiscover=False,
                      access_type=xl.DELEGATE)


@contextlib.contextmanager
def _ews_failures(cfg: MailConfig) -> Iterator[None]:
    """exchangelib's and the network's failures as a MailError in a system administrator's words."""
    xl = _exchangelib()
    try:
        yield
    except (xl.errors.EWSError, OSError) as exc:
        where = f"EWS https://{cfg.server}/EWS/Exchange.asmx as {cfg.username}"
        raise MailError(sentence(_ews_failure(exc, where))) from exc


def _ews_failure(exc: BaseException, where: str) -> str:
    if isinstance(exc, _exchangelib().errors.UnauthorizedError):  # HTTP 401 (or a locked-out account)
        return (f"authentication failed ({where}): {sentence(str(exc))} Check [mail] username (DOMAIN\\user or "
                "user@domain) and the password, and that the account may use EWS.")
    cause: BaseException | None = exc
    seen: set[int] = set()
    while cause is not None and id(cause) not in seen:  # requests -> urllib3 -> the socket's own error
        seen.add(id(cause))
        if isinstance(cause, ssl.SSLError | ConnectionRefusedError | ConnectionResetError | socket.gaierror
                      | TimeoutError):
            return explain(cause, where)
        cause = cause.__cause__ or cause.__context__
    return f"{exc.__class__.__name__} ({where}): {exc}"


class EwsMailbox:
    """A folder of an on-premises Exchange mailbox through EWS: items' MIME content, moved by id."""

    def __init__(self, cfg: MailConfig, account: Any = None) -> None:
        self.cfg = cfg
        self._account = account
        self.name = f"ews://{cfg.account}@{cfg.server}/{cfg.folder}"
        self._folders: dict[str, Any] = {}

    @property
    def account(self) -> Any:
        if self._account is None:
            self._account = ews_account(self.cfg)
        return self._account

    def connect(self) -> None:
        with _ews_failures(self.cfg):
            self.folder(self.cfg.folder)

    def folder(self, path: str) -> Any:
        """INBOX is the inbox; other paths are folders under the inbox's parent (top of the mailbox), created when
        missing."""
        if path in self._folders:
            return self._folders[path]
        xl = _exchangelib()
        if path.upper() == "INBOX":
            found = self.account.inbox
        else:
            found = self.account.inbox.parent
            for name in path.split("/"):
                children = {str(f.name).casefold(): f for f in found.children}  # Exchange: case-insensitive
                if name.casefold() in children:
                    found = children[name.casefold()]
                else:
                    created = xl.Folder(parent=found, name=name)
                    created.save()
                    found = created
        self._folders[path] = found
        return found

    def uids(self) -> list[str]:
        with _ews_failures(self.cfg):
            items = self.folder(self.cfg.folder).all().order_by("datetime_received").only("id", "changekey")
            return [f"{i.id}\t{i.changekey}" for i in items]

    def list_new(self) -> Iterator[tuple[str, bytes]]:
        for uid in self.uids():
            item_id, changekey = uid.split("\t", 1)
            with _ews_failures(self.cfg):
                items = list(self.account.fetch(ids=[(item_id, changekey)], only_fields=["mime_content"]))
            item = items[0] if items else None
            if item is None or isinstance(item, Exception):
                continue
            yield uid, bytes(item.mime_content)

    def ensure_folder(self, path: str) -> Any:
        with _ews_failures(self.cfg):
            return self.folder(path)

    def _move(self, uid: str, path: str) -> None:
        item_id, changekey = uid.split("\t", 1)
        with _ews_failures(self.cfg):
            results = self.account.bulk_move(ids=[(item_id, changekey)], to_folder=self.folder(path))
        for r in results:
            if isinstance(r, Exception):
                raise MailError(sentence(f"EWS could not move the message to {path}: {r}"))

    def mark_processed(self, uid: str) -> None:
        self._move(uid, self.cfg.processed_folder)

    def mark_failed(self, uid: str, reason: str) -> None:
        self._move(uid, self.cfg.failed_folder)

    def close(self) -> None:
        if self._account is not None:
            with contextlib.suppress(Exception):
                self._account.protocol.close()


class EwsTransport:
    """Sends through EWS with the message's MIME content (a copy saved in Sent Items)."""

    def __init__(self, cfg: MailConfig, account: Any = None) -> None:
        self.cfg = cfg
        self._account = account

    def send(self, msg: EmailMessage, recipients: list[str]) -> None:
        xl = _exchangelib()
        if self._account is None:
            self._account = ews_account(self.cfg)
        with _ews_failures(self.cfg):
            item = xl.Message(account=self._account, folder=self._account.sent, mime_content=to_bytes(msg))
            item.send_and_save()

    def close(self) -> None:
        if self._account is not None:
            with contextlib.suppress(Exception):
                self._account.protocol.close()
