"""The [mail] settings (MailConfig), their secrets (environment, keyring, OAuth) and failures explained in words."""

from __future__ import annotations

import imaplib
import os
import re
import smtplib
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from collect.config import MAIL_DEFAULTS
from collect.errors import ConfigError, MailError

OUTLOOK_SCOPE = "https://outlook.office365.com/.default"  # IMAP and SMTP with OAuth (XOAUTH2) on Exchange Online
GRAPH_SCOPE = "https://graph.microsoft.com/.default"
KEYRING_SERVICE = "collect"


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
    smtp_login: bool = MAIL_DEFAULTS["smtp_login"]
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
    trust_authserv_id: str = MAIL_DEFAULTS["trust_authserv_id"]
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

    @property
    def smtp_user(self) -> str:
        """Who collect logs in to SMTP as; "" when it sends without a login ([mail] smtp_login = false, or no
        user at all: an internal relay that trusts the office's network)."""
        return (self.smtp_username or self.username) if self.smtp_login else ""

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


# -- secrets ---------------------------------------------------------------------------------------------------------
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
        raise MailError(sentence(f"Microsoft Entra ID refused a token: {result.get('error')}: "
                                 f"{result.get('error_description', '')}".strip()),
                        "Check tenant, client_id, the client secret and the app's API permissions "
                        "(Mail.ReadWrite, Mail.Send as application permissions, admin-consented).")
    return str(result["access_token"])


# -- explaining failures --------------------------------------------------------------------------------------------
def sentence(text: str) -> str:
    """`text` ending in exactly one full stop (a server's own reply often brings one of its own)."""
    text = text.rstrip()
    stripped = text.rstrip(".。 ")
    if not stripped:
        return text
    return stripped + ("。" if text.endswith("。") else ".")


# RFC 5530 response codes an IMAP server puts in a refused LOGIN / AUTHENTICATE.
_IMAP_CODE = re.compile(r"\[([A-Z-]+)\]")
_IMAP_TEMPORARY = {"UNAVAILABLE", "SERVERBUG", "INUSE", "LIMIT"}
_IMAP_REFUSED = {"AUTHENTICATIONFAILED", "AUTHORIZATIONFAILED", "EXPIRED", "PRIVACYREQUIRED", "CONTACTADMIN"}


def imap_code(exc: BaseException) -> str:
    """The RFC 5530 response code in an IMAP failure ("UNAVAILABLE", "AUTHENTICATIONFAILED"), else ""."""
    found = _IMAP_CODE.search(str(exc))
    return found.group(1) if found else ""


def explain(exc: BaseException, where: str = "") -> str:
    """What went wrong, in the words a system administrator uses (connection refused, TLS handshake, ...); one
    sentence, ending in one full stop."""
    return sentence(_explain(exc, where))


def _explain(exc: BaseException, where: str) -> str:
    at = f" ({where})" if where else ""
    if isinstance(exc, MailError):
        return exc.message
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (f"TLS certificate not trusted{at}: {exc.verify_message}. If the server uses a private CA, "
                "name its PEM file in [mail] ca_file")
    if isinstance(exc, ssl.SSLError):
        return (f"TLS handshake failed{at}: {exc.reason or exc}. Check that security matches the port "
                "(tls for 993/465, starttls for 143/587)")
    if isinstance(exc, ConnectionRefusedError):
        return f"connection refused{at}: nothing listens there, or a firewall rejects it"
    if isinstance(exc, socket.gaierror):
        return f"the host name does not resolve{at}: {exc.strerror}"
    if isinstance(exc, TimeoutError | socket.timeout):
        return f"no answer in time{at}: a firewall may drop the packets, or the server is overloaded"
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        if 400 <= exc.smtp_code < 500:
            return (f"the SMTP server had a temporary failure logging in{at}: it said {exc.smtp_code} "
                    f"{_text(exc.smtp_error)}; the password was not refused, try again later")
        return f"authentication failed{at}: the server said {exc.smtp_code} {_text(exc.smtp_error)}"
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return (f"the SMTP server does not offer that{at}: {sentence(str(exc))} For a relay that takes no login, "
                "set [mail] smtp_login = false")
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        refused = ", ".join(f"{r} ({c} {_text(m)})" for r, (c, m) in exc.recipients.items())
        return f"the SMTP server refused every recipient{at}: {refused}"
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"the SMTP server answered {exc.smtp_code} {_text(exc.smtp_error)}{at}"
    if isinstance(exc, smtplib.SMTPServerDisconnected | ConnectionResetError | BrokenPipeError):
        return f"the server closed the connection{at}"
    login_error = type(exc).__name__ == "MailboxLoginError"
    if login_error or isinstance(exc, imaplib.IMAP4.error):
        code = imap_code(exc)
        said = _imap_said(exc)
        if code in _IMAP_TEMPORARY:
            return (f"the IMAP server had a temporary failure{at} ([{code}] {said}): the user name and password "
                    "were not refused; try again later, and if it lasts, ask the mail server's administrator")
        if code in _IMAP_REFUSED or login_error or "auth" in str(exc).lower():
            return (f"authentication failed{at}: wrong user name or password, or the account may not use IMAP "
                    f"(the server said: {said})")
    if type(exc).__name__ == "MailboxFolderSelectError":
        return f"the folder is missing on the server{at}: {exc}"
    if isinstance(exc, OSError):
        return f"network error{at}: {exc.strerror or exc}"
    return f"{exc.__class__.__name__}{at}: {exc}"


def _imap_said(exc: BaseException) -> str:
    """The server's own words in an IMAP failure, without imap-tools' wrapping ("Response status ... : [b'...']")."""
    text = str(exc)
    found = re.search(r"""\[b?['"](.*?)['"]\]""", text, re.S)
    said = found.group(1) if found else text
    said = _IMAP_CODE.sub("", said).strip()
    said = re.sub(r"\s*\[[^\]]*\]$", "", said)  # Dovecot's "[host:time]" for its log
    return sentence(said).rstrip(".") or "no reason given"


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
