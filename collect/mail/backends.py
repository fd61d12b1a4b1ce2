"""Mail backends: one mailbox interface (list new raw messages, move them on) and transports; files, IMAP/SMTP."""

from __future__ import annotations

import contextlib
import imaplib
import logging
import os
import smtplib
import socket
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any, NamedTuple, Protocol, runtime_checkable

from collect.config import MAIL_DEFAULTS
from collect.errors import ConfigError, MailError
from collect.mail.compose import to_bytes

log = logging.getLogger("collect.mail")

SPREADSHEET_SUFFIXES = (".xlsx", ".xlsm", ".xls", ".ods", ".xlsb")
OUTLOOK_SCOPE = "https://outlook.office365.com/.default"  # IMAP and SMTP with OAuth (XOAUTH2) on Exchange Online
GRAPH_SCOPE = "https://graph.microsoft.com/.default"
KEYRING_SERVICE = "collect"


# -- the interface ---------------------------------------------------------------------------------------------------
@runtime_checkable
class Mailbox(Protocol):
    """Where incoming mail waits. Every backend hands over raw RFC 5322 bytes."""

    name: str  # for log lines, e.g. "imap://collect@mail.example.test/INBOX"

    def list_new(self) -> Iterator[tuple[str, bytes]]:
        """(uid, raw) of every message waiting in the folder, oldest first; fetched lazily."""
        ...

    def mark_processed(self, uid: str) -> None:
        """Move the message out of the way into the processed folder (after the ledger has it)."""
        ...

    def mark_failed(self, uid: str, reason: str) -> None:
        """Move the message into the failed folder, for staff; never delete it."""
        ...

    def close(self) -> None: ...


class Step(NamedTuple):
    """One step of `collect mail test`: what was tried, whether it worked, and what a system administrator reads."""

    step: str
    ok: bool
    message: str


# -- settings and secrets --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MailConfig:
    """The [mail] section, typed (defaults: collect.toml's); secrets are looked up separately (environment, then
    keyring)."""

    backend: str = MAIL_DEFAULTS["backend"]
    inbox: str = MAIL_DEFAULTS["inbox"]
    host: str = MAIL_DEFAULTS["host"]
    port: int = MAIL_DEFAULTS["port"]
    security: str = MAIL_DEFAULTS["security"]
    username: str = MAIL_DEFAULTS["username"]
    smtp_host: str = MAIL_DEFAULTS["smtp_host"]
    smtp_port: int = MAIL_DEFAULTS["smtp_port"]
    smtp_security: str = MAIL_DEFAULTS["smtp_security"]
    smtp_username: str = MAIL_DEFAULTS["smtp_username"]
    folder: str = MAIL_DEFAULTS["folder"]
    processed_folder: str = MAIL_DEFAULTS["processed_folder"]
    failed_folder: str = MAIL_DEFAULTS["failed_folder"]
    poll_seconds: float = MAIL_DEFAULTS["poll_seconds"]
    auth: str = MAIL_DEFAULTS["auth"]
    tenant: str = MAIL_DEFAULTS["tenant"]
    client_id: str = MAIL_DEFAULTS["client_id"]
    server: str = MAIL_DEFAULTS["server"]
    mailbox: str = MAIL_DEFAULTS["mailbox"]
    ca_file: str = MAIL_DEFAULTS["ca_file"]
    timeout: float = MAIL_DEFAULTS["timeout"]
    sender: str = "collect@example.test"

    @classmethod
    def of(cls, settings: Any) -> MailConfig:
        """From a workspace's Settings (collect.config.Settings)."""
        mail = dict(settings.mail)
        known = {k: mail[k] for k in cls.__dataclass_fields__ if k in mail}
        return cls(**known, sender=settings.sender)

    @property
    def imap_port(self) -> int:
        return self.port or {"tls": 993, "starttls": 143, "none": 143}[self.security]

    @property
    def smtp_port_(self) -> int:
        return self.smtp_port or {"tls": 465, "starttls": 587, "none": 25}[self.smtp_security]

    @property
    def account(self) -> str:
        """The mailbox collect reads and sends as: [mail] mailbox, else the username, else the sender."""
        return self.mailbox or self.username or self.sender

    def ssl_context(self) -> ssl.SSLContext:
        """The system's trusted CAs, plus [mail] ca_file for a private CA (common on government networks)."""
        context = ssl.create_default_context()
        if self.ca_file:
            path = Path(self.ca_file).expanduser()
            if not path.is_file():
                raise ConfigError(f"[mail] ca_file = {self.ca_file!r}: no such file.",
                                  "Name a PEM file holding the CA certificate(s) of the mail server.")
            context.load_verify_locations(cafile=str(path))
        return context


def secret(name: str, user: str = "", *, env: dict[str, str] | None = None) -> str | None:
    """COLLECT_<NAME> from the environment, else the system keyring (service "collect", key "<name>:<user>").

    A headless server has no keyring backend; then only the environment counts. Never collect.toml.
    """
    environ = os.environ if env is None else env
    value = environ.get(f"COLLECT_{name.upper()}")
    if value:
        return value
    try:
        import keyring  # optional

        found = keyring.get_password(KEYRING_SERVICE, f"{name.lower()}:{user}")
    except Exception:  # no keyring installed, or no backend (headless): the environment is the answer
        return None
    return found or None


def mail_password(cfg: MailConfig) -> str:
    value = secret("MAIL_PASSWORD", cfg.username)
    if not value:
        raise MailError(f"No password for the mailbox {cfg.username or '(no username)'}: COLLECT_MAIL_PASSWORD "
                        "is not set and the system keyring has none.",
                        "Set COLLECT_MAIL_PASSWORD in the service's environment (systemd: EnvironmentFile=), or "
                        "`keyring set collect mail_password:USER` where a keyring exists.")
    return value


def smtp_password(cfg: MailConfig) -> str | None:
    return secret("SMTP_PASSWORD", cfg.smtp_username or cfg.username) or secret("MAIL_PASSWORD", cfg.username)


_msal_apps: dict[tuple[str, str], Any] = {}


def oauth_token(cfg: MailConfig, scope: str, *, http_client: Any = None) -> str:
    """A bearer token: COLLECT_MAIL_OAUTH_TOKEN when set, else msal client credentials (tenant, client_id and
    COLLECT_GRAPH_CLIENT_SECRET). msal caches the token in memory until it is about to expire."""
    ready = secret("MAIL_OAUTH_TOKEN", cfg.username)
    if ready and scope != GRAPH_SCOPE:
        return ready
    if not (cfg.tenant and cfg.client_id):
        raise ConfigError("OAuth needs [mail] tenant and client_id (the Entra ID app registration).",
                          "Add tenant = \"<tenant id or domain>\" and client_id = \"<app id>\" under [mail].")
    client_secret = secret("GRAPH_CLIENT_SECRET", cfg.client_id)
    if not client_secret:
        raise MailError("No client secret for the app registration: COLLECT_GRAPH_CLIENT_SECRET is not set.",
                        "Set COLLECT_GRAPH_CLIENT_SECRET in the service's environment.")
    try:
        import msal
    except ImportError:
        raise ConfigError("OAuth with Microsoft Entra ID needs the msal package.",
                          "Install the extra: pip install 'collect[graph]'.") from None
    key = (cfg.tenant, cfg.client_id)
    app = _msal_apps.get(key)
    if app is None:
        kwargs: dict[str, Any] = {"client_credential": client_secret,
                                  "authority": f"https://login.microsoftonline.com/{cfg.tenant}"}
        if http_client is not None:
            kwargs["http_client"] = http_client
        app = msal.ConfidentialClientApplication(cfg.client_id, **kwargs)
        _msal_apps[key] = app
    result = app.acquire_token_for_client(scopes=[scope])
    if "access_token" not in result:
        raise MailError(f"Microsoft Entra ID refused a token: {result.get('error')}: "
                        f"{result.get('error_description', '')}".strip(),
                        "Check tenant, client_id, the client secret and the app's API permissions "
                        "(Mail.ReadWrite, Mail.Send as application permissions, admin-consented).")
    return str(result["access_token"])


# -- explaining failures --------------------------------------------------------------------------------------------
def explain(exc: BaseException, where: str = "") -> str:
    """What went wrong, in the words a system administrator uses (connection refused, TLS handshake, ...)."""
    at = f" ({where})" if where else ""
    if isinstance(exc, MailError):
        return exc.message
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (f"TLS certificate not trusted{at}: {exc.verify_message}. If the server uses a private CA, "
                "name its PEM file in [mail] ca_file.")
    if isinstance(exc, ssl.SSLError):
        return (f"TLS handshake failed{at}: {exc.reason or exc}. Check that security matches the port "
                "(tls for 993/465, starttls for 143/587).")
    if isinstance(exc, ConnectionRefusedError):
        return f"connection refused{at}: nothing listens there, or a firewall rejects it."
    if isinstance(exc, socket.gaierror):
        return f"the host name does not resolve{at}: {exc.strerror}."
    if isinstance(exc, TimeoutError | socket.timeout):
        return f"no answer in time{at}: a firewall may drop the packets, or the server is overloaded."
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return f"authentication failed{at}: the server said {exc.smtp_code} {_text(exc.smtp_error)}."
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return f"the SMTP server does not offer that{at}: {exc}."
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        refused = ", ".join(f"{r} ({c} {_text(m)})" for r, (c, m) in exc.recipients.items())
        return f"the SMTP server refused every recipient{at}: {refused}."
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"the SMTP server answered {exc.smtp_code} {_text(exc.smtp_error)}{at}."
    if isinstance(exc, smtplib.SMTPServerDisconnected | ConnectionResetError | BrokenPipeError):
        return f"the server closed the connection{at}."
    if type(exc).__name__ == "MailboxLoginError" or (isinstance(exc, imaplib.IMAP4.error)
                                                     and "auth" in str(exc).lower()):
        return f"authentication failed{at}: wrong user name or password, or the account may not use IMAP."
    if type(exc).__name__ == "MailboxFolderSelectError":
        return f"the folder is missing on the server{at}: {exc}."
    if isinstance(exc, OSError):
        return f"network error{at}: {exc.strerror or exc}."
    return f"{exc.__class__.__name__}{at}: {exc}"


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


# -- files ----------------------------------------------------------------------------------------------------------
class FilesMailbox:
    """The inbox folder: a Maildir (new/, cur/) or .eml and workbook files dropped there by hand.

    Processed ones move to inbox/processed/, failed ones to inbox/failed/ with a `.reason.txt` beside them.
    A workbook dropped by hand is not a message: its uid ends with its suffix, see `is_loose_file`.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.name = f"files:{root}"
        self.processed = root / "processed"
        self.failed = root / "failed"

    def list_new(self) -> Iterator[tuple[str, bytes]]:
        if not self.root.is_dir():
            return
        found: list[Path] = []
        for sub in ("new", "cur"):
            folder = self.root / sub
            if folder.is_dir():
                found += [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]
        found += [p for p in self.root.iterdir() if p.is_file() and not p.name.startswith(".")
                  and p.suffix.lower() in (".eml", ".zip", *SPREADSHEET_SUFFIXES)]
        found.sort(key=lambda p: (p.stat().st_mtime_ns, p.name))
        for path in found:
            try:
                data = path.read_bytes()
            except FileNotFoundError:  # taken by someone else meanwhile
                continue
            yield str(path.relative_to(self.root)), data

    @staticmethod
    def is_loose_file(uid: str) -> bool:
        """True for a workbook (or a zip of them) dropped by hand (not wrapped in a message)."""
        return Path(uid).suffix.lower() in (".zip", *SPREADSHEET_SUFFIXES) and "/" not in uid.replace("\\", "/")

    def file_key(self, uid: str) -> str:
        """A stable key for a dropped file: its name and modification time (a later re-drop is a new arrival)."""
        path = self.root / uid
        return f"file:{uid}:{path.stat().st_mtime_ns}"

    def _move(self, uid: str, target: Path) -> Path:
        source = self.root / uid
        target.mkdir(parents=True, exist_ok=True)
        name = Path(uid).name
        dest = target / name
        n = 1
        while dest.exists():
            dest = target / f"{Path(name).stem}.{n}{Path(name).suffix}"
            n += 1
        os.replace(source, dest)
        return dest

    def mark_processed(self, uid: str) -> None:
        self._move(uid, self.processed)

    def mark_failed(self, uid: str, reason: str) -> None:
        dest = self._move(uid, self.failed)
        dest.with_name(dest.name + ".reason.txt").write_text(reason + "\n", encoding="utf-8")

    def close(self) -> None:
        return None


# -- IMAP -----------------------------------------------------------------------------------------------------------
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
        for uid in self.uids():
            typ, data = box.client.uid("FETCH", uid, "(BODY.PEEK[])")
            if typ != "OK":
                raise MailError(f"IMAP FETCH of message {uid} failed: {data!r}")
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
        Returns False when IDLE is not offered (the caller sleeps instead)."""
        box = self.connect()
        if "IDLE" not in box.client.capabilities:
            return False
        box.folder.set(self.cfg.folder)
        box.idle.wait(timeout=max(1.0, min(timeout, 29 * 60)))
        return True


# -- SMTP -----------------------------------------------------------------------------------------------------------
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
            user = cfg.smtp_username or cfg.username
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
