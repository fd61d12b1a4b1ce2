"""The IMAP mailbox (imap-tools) and the SMTP transport (smtplib): TLS, STARTTLS or plain; password or XOAUTH2."""

from __future__ import annotations

import contextlib
import imaplib
import logging
import smtplib
import ssl
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from typing import Any

from collect.errors import ConfigError, MailError
from collect.mail.compose import to_bytes
from collect.mail.settings import OUTLOOK_SCOPE, MailConfig, explain, mail_password, oauth_token, smtp_password

log = logging.getLogger("collect.mail")


class ImapMailbox:
    """A folder on an IMAP server (imap-tools): TLS, STARTTLS or plain; password or XOAUTH2.

    Messages are read with BODY.PEEK (never marked seen), then moved (MOVE, else COPY + delete) to the processed
    or failed folder, which are created when missing. The hierarchy separator is the server's.
    """

    def __init__(self, cfg: MailConfig, *, ssl_context: ssl.SSLContext | None = None,
                 token: Callable[[], str] | None = None, batch: int = 50) -> None:
        self.cfg = cfg
        self.name = f"imap://{cfg.username}@{cfg.host}:{cfg.imap_port}/{cfg.folder}"
        self._ssl = ssl_context
        self._token = token
        self._batch = batch
        self._box: Any = None
        self._delim = "/"
        self._ready: set[str] = set()
        self._listed: set[str] = set()  # the uids the last pass listed: anything else waiting is new

    # connection
    def connect(self) -> Any:
        if self._box is not None:
            return self._box
        import imap_tools

        cfg = self.cfg
        if not cfg.host:
            raise ConfigError("[mail] host is empty: the IMAP server's name is needed.")
        where = f"IMAP {cfg.host}:{cfg.imap_port}, security = {cfg.security}"
        try:
            context = self._ssl or cfg.ssl_context()
            box: Any
            if cfg.security == "tls":
                box = imap_tools.MailBox(cfg.host, cfg.imap_port, timeout=cfg.timeout, ssl_context=context)
            elif cfg.security == "starttls":
                box = imap_tools.MailBoxStartTls(cfg.host, cfg.imap_port, timeout=cfg.timeout,
                                                 ssl_context=context)
            else:
                box = imap_tools.MailBoxUnencrypted(cfg.host, cfg.imap_port, timeout=cfg.timeout)
        except (OSError, imaplib.IMAP4.error) as exc:
            raise MailError(explain(exc, where)) from exc
        try:
            if cfg.auth == "xoauth2":
                token = self._token() if self._token else oauth_token(cfg, OUTLOOK_SCOPE)
                box.xoauth2(cfg.username, token, initial_folder=None)
            else:
                box.login(cfg.username, mail_password(cfg), initial_folder=None)
        except (OSError, imaplib.IMAP4.error, imap_tools.MailboxLoginError) as exc:
            with contextlib.suppress(Exception):
                box.client.shutdown()
            raise MailError(explain(exc, f"IMAP login as {cfg.username}")) from exc
        for info in box.folder.list("", "%"):
            if info.delim:
                self._delim = info.delim
                break
        try:
            box.folder.set(cfg.folder)
        except imap_tools.MailboxFolderSelectError as exc:
            with contextlib.suppress(Exception):
                box.logout()
            raise MailError(f"the folder {cfg.folder!r} is missing on {cfg.host} for {cfg.username}.",
                            "Check [mail] folder (INBOX is the usual one).") from exc
        self._box = box
        return box

    def server_folder(self, configured: str) -> str:
        """A configured folder path ("collect/processed") with the server's hierarchy separator."""
        return configured.replace("/", self._delim) if self._delim else configured

    def ensure_folder(self, configured: str) -> str:
        box = self.connect()
        name = self.server_folder(configured)
        if name in self._ready:
            return name
        if not box.folder.exists(name):
            parts = configured.split("/")
            for i in range(1, len(parts) + 1):
                partial = self._delim.join(parts[:i])
                if not box.folder.exists(partial):
                    box.folder.create(partial)
        self._ready.add(name)
        return name

    def close(self) -> None:
        box, self._box = self._box, None
        self._ready.clear()
        if box is not None:
            with contextlib.suppress(Exception):
                box.logout()
            with contextlib.suppress(Exception):
                box.client.shutdown()

    def uids(self) -> list[str]:
        box = self.connect()
        box.folder.set(self.cfg.folder)
        return list(box.uids("ALL"))

    # the interface
    def list_new(self) -> Iterator[tuple[str, bytes]]:
        box = self.connect()
        uids = self.uids()
        self._listed = set(uids)
        for uid in uids:
            typ, data = box.client.uid("FETCH", uid, "(BODY.PEEK[])")
            if typ != "OK":
                raise MailError(f"IMAP FETCH of message {uid} failed: {data!r}.")
            raw = next((part[1] for part in data if isinstance(part, tuple)), None)
            if raw is None:  # expunged meanwhile (another client took it)
                continue
            yield uid, bytes(raw)

    def mark_processed(self, uid: str) -> None:
        self._move(uid, self.cfg.processed_folder)

    def mark_failed(self, uid: str, reason: str) -> None:
        self._move(uid, self.cfg.failed_folder)

    def _move(self, uid: str, configured: str) -> None:
        target = self.ensure_folder(configured)
        box = self.connect()
        box.folder.set(self.cfg.folder)
        box.move(uid, target)

    def wait(self, timeout: float) -> bool:
        """Wait with IMAP IDLE (when the server offers it) until something arrives or `timeout` passes.
        Returns False when IDLE is not offered (the caller sleeps instead).

        The folder is selected and searched first, in the session that then idles: a message that arrived
        after the last pass listed the folder is already counted in that SELECT, so IDLE would never report it;
        the search finds it and the wait ends at once. One arriving after the search is reported by IDLE."""
        box = self.connect()
        if "IDLE" not in box.client.capabilities:
            return False
        box.folder.set(self.cfg.folder)
        if set(box.uids("ALL")) - self._listed:
            return True
        box.idle.wait(timeout=max(1.0, min(timeout, 29 * 60)))
        return True


class SmtpTransport:
    """Sends through an SMTP server (TLS, STARTTLS or plain; password or XOAUTH2); keeps one connection open."""

    def __init__(self, cfg: MailConfig, *, ssl_context: ssl.SSLContext | None = None,
                 token: Callable[[], str] | None = None) -> None:
        self.cfg = cfg
        self._ssl = ssl_context
        self._token = token
        self._smtp: smtplib.SMTP | None = None

    @property
    def where(self) -> str:
        return f"SMTP {self.cfg.smtp_host or self.cfg.host}:{self.cfg.smtp_port_}, security = {self.cfg.smtp_security}"

    def connect(self) -> smtplib.SMTP:
        if self._smtp is not None:
            return self._smtp
        cfg = self.cfg
        host = cfg.smtp_host or cfg.host
        if not host:
            raise ConfigError("[mail] smtp_host is empty: the SMTP server's name is needed.")
        smtp: smtplib.SMTP | None = None
        try:
            context = self._ssl or cfg.ssl_context()
            if cfg.smtp_security == "tls":
                smtp = smtplib.SMTP_SSL(host, cfg.smtp_port_, timeout=cfg.timeout, context=context)
            else:
                smtp = smtplib.SMTP(host, cfg.smtp_port_, timeout=cfg.timeout)
                if cfg.smtp_security == "starttls":
                    smtp.starttls(context=context)
            smtp.ehlo_or_helo_if_needed()
            user = cfg.smtp_user  # "" with [mail] smtp_login = false: a relay that takes no login
            if cfg.auth == "xoauth2" and user:
                token = self._token() if self._token else oauth_token(cfg, OUTLOOK_SCOPE)
                blob = f"user={user}\x01auth=Bearer {token}\x01\x01"
                smtp.auth("XOAUTH2", lambda _challenge=None: blob, initial_response_ok=True)
            elif user:
                password = smtp_password(cfg)
                if password:
                    smtp.login(user, password)
        except (OSError, smtplib.SMTPException) as exc:
            if smtp is not None:
                with contextlib.suppress(Exception):
                    smtp.close()
            raise MailError(explain(exc, self.where)) from exc
        self._smtp = smtp
        return smtp

    def send(self, msg: EmailMessage, recipients: list[str]) -> None:
        """Send once; a dropped connection is reopened and the message tried once more."""
        data = _wire_bytes(msg)
        sender = self.cfg.sender
        for attempt in (1, 2):
            smtp = self.connect()
            try:
                refused = smtp.sendmail(sender, recipients, data)
            except (smtplib.SMTPServerDisconnected, ConnectionResetError, BrokenPipeError) as exc:
                self.close()
                if attempt == 2:
                    raise MailError(explain(exc, self.where)) from exc
                continue
            except (OSError, smtplib.SMTPException) as exc:
                self.close()
                raise MailError(explain(exc, self.where)) from exc
            if refused:
                log.warning("SMTP refused some recipients of %s: %s", msg.get("Message-ID"), refused)
            return

    def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            with contextlib.suppress(Exception):
                smtp.quit()
            with contextlib.suppress(Exception):
                smtp.close()


def _wire_bytes(msg: EmailMessage) -> bytes:
    """The bytes to send: Bcc removed, our folded headers kept (compose.POLICY)."""
    if "Bcc" in msg:
        msg = _copy(msg)
        del msg["Bcc"]
    return to_bytes(msg)


def _copy(msg: EmailMessage) -> EmailMessage:
    from email import message_from_bytes

    from collect.mail.compose import POLICY

    copied = message_from_bytes(to_bytes(msg), policy=POLICY)
    assert isinstance(copied, EmailMessage)
    return copied
