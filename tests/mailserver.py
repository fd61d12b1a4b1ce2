"""A private mail system for tests: Dovecot (IMAP, IMAPS, STARTTLS) and an aiosmtpd SMTP server on 127.0.0.1."""

from __future__ import annotations

import contextlib
import datetime as dt
import imaplib
import os
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
PASSWORD = "mail-test-password"
OAUTH_TOKEN = "test-oauth-token"  # the bearer token the SMTP server accepts with AUTH XOAUTH2
DOMAIN = "example.test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 / localhost: (cert.pem, key.pem); the cert is also the CA file."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                    x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    os.chmod(key_path, 0o600)
    return cert_path, key_path


_CONFIG = """\
base_dir = {store}/run
state_dir = {store}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = {user}
default_internal_group = {group}
default_login_user = {login_user}
mail_location = maildir:{store}/mail/%u/Maildir:LAYOUT=fs
first_valid_uid = 1
first_valid_gid = 1
mail_uid = {uid}
mail_gid = {gid}
mail_privileged_group =
namespace inbox {{
  inbox = yes
  separator = /
}}
{passdb}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={store}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps_port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
}}
service pop3-login {{
  chroot =
}}
service submission-login {{
  chroot =
}}
"""


class _Deliver:
    """The SMTP server's handler: each accepted message is appended (IMAP APPEND) to every recipient's INBOX."""

    def __init__(self, server: MailServer) -> None:
        self.server = server

    async def handle_DATA(self, _server: SMTPServer, _session: Session, envelope: Envelope) -> str:
        data = envelope.original_content or b""
        if self.server.smtp_refuse:
            return "451 4.3.0 temporarily refusing mail (test)"
        for rcpt in envelope.rcpt_tos:
            self.server.append(rcpt, data)
        self.server.smtp_received.append((envelope.mail_from or "", list(envelope.rcpt_tos), data))
        return "250 OK delivered"

    async def auth_XOAUTH2(self, server: SMTPServer, args: list[str]) -> AuthResult:
        import base64

        blob = args[1] if len(args) > 1 else await server.challenge_auth("", encode_to_b64=False)
        if isinstance(blob, bytes):
            blob = blob.decode()
        text = base64.b64decode(blob).decode()
        fields = dict(p.split("=", 1) for p in text.split("\x01") if "=" in p)
        ok = fields.get("auth") == f"Bearer {OAUTH_TOKEN}"
        self.server.smtp_logins.append("XOAUTH2")
        return AuthResult(success=ok, handled=False, auth_data=fields.get("user"))


_STATIC_PASSDB = """passdb {{
  driver = static
  args = password={password}
}}"""
# A password check that reports a temporary failure (checkpassword's exit code 111), as a broken LDAP or database
# behind Dovecot does: every login ends in "NO [UNAVAILABLE] Temporary authentication failure".
_BROKEN_PASSDB = """passdb {{
  driver = checkpassword
  args = {store}/checkpassword-tempfail
}}"""


def _authenticator(server: MailServer) -> Any:
    def authenticate(_server: Any, _session: Any, _envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        server.smtp_logins.append(mechanism)
        if isinstance(auth_data, LoginPassword):
            return AuthResult(success=auth_data.password.decode() == PASSWORD)
        return AuthResult(success=mechanism == "XOAUTH2" and auth_data is not None)
    return authenticate


@dataclass
class MailServer:
    """Dovecot + aiosmtpd under `root`; every user@example.test exists, with password PASSWORD."""

    root: Path
    imap_port: int = 0
    imaps_port: int = 0
    smtp_port: int = 0
    smtps_tls_port: int = 0
    cert: Path = Path()
    store: Path = Path()
    smtp_refuse: bool = False
    smtp_received: list[tuple[str, list[str], bytes]] = field(default_factory=list)
    smtp_logins: list[str] = field(default_factory=list)  # the AUTH mechanism of every SMTP login tried
    imap_auth_broken: bool = False  # Dovecot answers every login with a temporary failure
    _dovecot: subprocess.Popen[bytes] | None = None
    _smtp: Controller | None = None

    @property
    def config(self) -> Path:
        return self.root / "dovecot.conf"

    def start(self) -> MailServer:
        import grp
        import pwd
        import tempfile

        self.root.mkdir(parents=True, exist_ok=True)
        # Mailboxes and sockets live in a folder of their own that Dovecot's unprivileged users can reach (pytest
        # keeps its temporary folders at mode 0700 and resets that mode when another session starts).
        self.store = Path(tempfile.mkdtemp(prefix="collect-mail-"))
        os.chmod(self.store, 0o711)
        for sub in ("run", "state", "mail"):
            (self.store / sub).mkdir(exist_ok=True)
        os.chmod(self.store / "run", 0o755)
        self.cert, key = make_certificate(self.root)
        self.imap_port, self.imaps_port, self.smtp_port = free_port(), free_port(), free_port()
        uid, gid = os.getuid(), os.getgid()
        root_user = uid == 0
        me, my_group = pwd.getpwuid(uid).pw_name, grp.getgrgid(gid).gr_name
        internal = "dovecot" if root_user and _user_exists("dovecot") else me
        login = "dovenull" if root_user and _user_exists("dovenull") else me
        if root_user:  # Dovecot never gives mail access as root: mailboxes belong to its own user
            uid, gid = pwd.getpwnam(internal).pw_uid, pwd.getpwnam(internal).pw_gid
            os.chown(self.store / "mail", uid, gid)
        if self.imap_auth_broken:
            script = self.store / "checkpassword-tempfail"
            script.write_text("#!/bin/sh\nexit 111\n", encoding="utf-8")
            os.chmod(script, 0o755)
        self.config.write_text(_CONFIG.format(
            root=self.root, store=self.store, cert=self.cert, key=key, user=internal,
            group=_group_of(internal) or my_group, login_user=login, uid=uid, gid=gid,
            passdb=(_BROKEN_PASSDB if self.imap_auth_broken else _STATIC_PASSDB).format(password=PASSWORD,
                                                                                          store=self.store),
            imap_port=self.imap_port, imaps_port=self.imaps_port), encoding="utf-8")
        self.start_imap()
        self._smtp = Controller(_Deliver(self), hostname="127.0.0.1", port=self.smtp_port,
                                authenticator=_authenticator(self), auth_require_tls=False,
                                tls_context=self.server_tls(), require_starttls=False)
        self._smtp.start()
        return self

    def server_tls(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.root / "key.pem")
        return context

    def client_tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert))

    def start_imap(self) -> None:
        self._dovecot = subprocess.Popen([DOVECOT, "-F", "-c", str(self.config)], stdin=subprocess.DEVNULL,
                                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self._dovecot.poll() is not None:
                out = self._dovecot.stdout.read().decode(errors="replace") if self._dovecot.stdout else ""
                raise RuntimeError(f"dovecot exited {self._dovecot.returncode}: {out}\n{self.log()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.imap_port), 0.5) as s:
                if s.recv(100).startswith(b"* OK"):
                    return
            time.sleep(0.05)
        raise RuntimeError(f"dovecot did not start: {self.log()}")

    def stop_imap(self) -> None:
        proc, self._dovecot = self._dovecot, None
        if proc is None or proc.poll() is not None:
            return
        children = _children(proc.pid)  # mail processes outlive the master: a restart must cut every connection
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        for pid in children:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        if proc.stdout:
            proc.stdout.close()

    def stop(self) -> None:
        if self._smtp is not None:
            self._smtp.stop()
            self._smtp = None
        self.stop_imap()
        if self.store != Path():
            shutil.rmtree(self.store, ignore_errors=True)

    def log(self) -> str:
        path = self.root / "dovecot.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    # -- helpers for tests --------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def imap(self, user: str) -> Iterator[imaplib.IMAP4]:
        conn = imaplib.IMAP4("127.0.0.1", self.imap_port, timeout=30)
        try:
            conn.login(user, PASSWORD)
            yield conn
        finally:
            with contextlib.suppress(Exception):
                conn.logout()

    def append(self, user: str, raw: bytes, folder: str = "INBOX") -> None:
        with self.imap(user) as conn:
            if folder != "INBOX":
                conn.create(folder)
            typ, data = conn.append(folder, "", imaplib.Time2Internaldate(time.time()), raw)
            if typ != "OK":
                raise RuntimeError(f"APPEND for {user} failed: {data!r}")

    def messages(self, user: str, folder: str = "INBOX") -> list[EmailMessage]:
        return [message_from_bytes(raw, policy=policy.default) for raw in self.raw_messages(user, folder)]

    def raw_messages(self, user: str, folder: str = "INBOX") -> list[bytes]:
        with self.imap(user) as conn:
            typ, _ = conn.select(f'"{folder}"', readonly=True)
            if typ != "OK":
                return []
            typ, data = conn.uid("SEARCH", "ALL")
            uids = data[0].split() if data and data[0] else []
            out = []
            for uid in uids:
                typ, parts = conn.uid("FETCH", uid, "(BODY.PEEK[])")
                for part in parts:
                    if isinstance(part, tuple):
                        out.append(part[1])
            return out

    def folders(self, user: str) -> list[str]:
        with self.imap(user) as conn:
            _typ, data = conn.list()
            names = []
            for line in data:
                if isinstance(line, bytes):
                    names.append(line.decode().rsplit(' "/" ', 1)[-1].strip('"'))
            return names

    def send(self, raw: bytes, sender: str, recipients: list[str]) -> None:
        with smtplib.SMTP("127.0.0.1", self.smtp_port, timeout=30) as smtp:
            smtp.sendmail(sender, recipients, raw)


def _children(parent: int) -> list[int]:
    """The pids whose parent is `parent` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = (entry / "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[1]) == parent:
                found.append(int(entry.name))
    return found


def _user_exists(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _group_of(name: str) -> str | None:
    import grp
    import pwd

    try:
        return grp.getgrgid(pwd.getpwnam(name).pw_gid).gr_name
    except KeyError:
        return None


def start_mail_server(root: Path) -> MailServer:
    return MailServer(root).start()


def configure(root: Path, server: MailServer, *, user: str = "collect@example.test", security: str = "none",
              smtp_security: str = "none", backend: str = "imap", **extra: Any) -> None:
    """Point a workspace's [mail] section at the test servers (ports chosen to match the security asked for)."""
    import re

    port = server.imaps_port if security == "tls" else server.imap_port
    values: dict[str, Any] = {"backend": backend, "inbox": "inbox", "host": "127.0.0.1", "port": port,
                              "security": security, "username": user, "smtp_host": "127.0.0.1",
                              "smtp_port": server.smtp_port, "smtp_security": smtp_security, "poll_seconds": 1,
                              "timeout": 10, **extra}
    lines = ["[mail]"] + [f"{k} = {str(v).lower()}" if isinstance(v, bool) else f"{k} = {v!r}"
                          if isinstance(v, int | float) else f'{k} = "{v}"' for k, v in values.items()]
    path = root / "collect.toml"
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"(?ms)^\[mail\]\n.*?(?=^\[|\Z)", "\n".join(lines) + "\n\n", text)
    path.write_text(text, encoding="utf-8")


def start_watcher(root: Path, log: Path, interval: float | None = 0.2) -> subprocess.Popen[bytes]:
    """`collect watch` as a real process, as a user starts it, on its workspace's own settings and ledger, polling
    every `interval` seconds (None: the workspace's [mail] poll_seconds); its output appended to `log`."""
    from conftest import SECRET

    env = {**os.environ, "COLLECT_SECRET": SECRET, "COLLECT_MAIL_PASSWORD": PASSWORD}
    for name in ("COLLECT_WORKSPACE", "COLLECT_LEDGER"):
        env.pop(name, None)
    with open(log, "ab") as fh:
        poll = () if interval is None else ("--interval", str(interval))
        return subprocess.Popen([sys.executable, "-m", "collect", "--workspace", str(root), "watch", *poll],
                                stdout=fh, stderr=fh, env=env)


def wait_for(predicate: Any, timeout: float, what: str, every: float = 0.05) -> None:
    """Return once predicate() holds, looking every `every` seconds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")
