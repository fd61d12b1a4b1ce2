"""The workspace and its settings: collect.toml, environment overrides, and the secret kept out of both."""

from __future__ import annotations

import os
import re
import secrets as _secrets
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from collect.errors import ConfigError, SecretMissing

CONFIG_NAME = "collect.toml"
KEY_NAME = "collect.key"
ENV_PREFIX = "COLLECT_"

DEFAULT_TOML = """\
# collect workspace settings. Secrets never go here: the stamp key comes from COLLECT_SECRET or state/collect.key,
# mail passwords from the environment (COLLECT_MAIL_PASSWORD) or the system keyring.

[workspace]
locale = "zh-TW"                 # zh-TW or en: the language of messages to agencies and managers
office = "臺北市政府主計處"        # who sends the forms, as agencies read it
agencies = "agencies.csv"        # the agency list (CSV or xlsx), relative to this folder
ledger = ""                      # SQLAlchemy URL; empty = sqlite file state/ledger.sqlite
archive = ""                     # folder of received bytes; empty = state/archive (an office: one shared folder)
sender = "collect@example.test"  # the From address of everything collect sends
format = "xlsx"                  # xlsx or ods (ODF, CNS 15251): the issued copies' and the report's file format

[round]
deadline_days = 14               # default deadline: this many days after issuing
digest_at = ["09:00"]            # Taipei times at which `collect watch` sends supervising agencies their digest
signoff_remind_days = 3          # remind a supervising agency this many days after its last unit was accepted

[mail]
backend = "files"                # files (outgoing .eml into outbox/mail, incoming from inbox/); imap, ews, graph
inbox = "inbox"
max_attachment_mb = 25
smtp_login = true                # false: send through an internal SMTP relay that takes no login
trust_authserv_id = ""           # the office's receiving server: its Authentication-Results headers (RFC 8601)
                                 # decide the sender check (dmarc=fail: quarantined, nothing sent back)

[report]
managers = ["manager@example.test"]

[savings]
hours_fill = 1                   # person-hours an agency spends filling one round by hand (collect savings)
hours_check = 16                 # person-hours a supervising agency spends checking and rolling up one round
"""

# section -> key -> (type, default)
_SCHEMA: dict[str, dict[str, tuple[type | tuple[type, ...], Any]]] = {
    "workspace": {
        "locale": (str, "zh-TW"),
        "office": (str, "臺北市政府主計處"),
        "agencies": (str, "agencies.csv"),
        "ledger": (str, ""),
        "archive": (str, ""),
        "sender": (str, "collect@example.test"),
        "key_file": (str, ""),
        "format": (str, "xlsx"),
    },
    "round": {"deadline_days": (int, 14), "digest_at": (list, ["09:00"]), "signoff_remind_days": (int, 3)},
    "mail": {
        "backend": (str, "files"),
        "inbox": (str, "inbox"),
        "max_attachment_mb": ((int, float), 25),
        "host": (str, ""),
        "port": (int, 0),
        "security": (str, "tls"),
        "username": (str, ""),
        "smtp_host": (str, ""),
        "smtp_port": (int, 0),
        "smtp_security": (str, "starttls"),
        "folder": (str, "INBOX"),
        "processed_folder": (str, "collect/processed"),
        "failed_folder": (str, "collect/failed"),
        "poll_seconds": ((int, float), 60),
        "auth": (str, "password"),
        "tenant": (str, ""),
        "client_id": (str, ""),
        "server": (str, ""),
        "mailbox": (str, ""),
        "smtp_username": (str, ""),
        "ca_file": (str, ""),
        "timeout": ((int, float), 60),
        "smtp_login": (bool, True),
        "trust_authserv_id": (str, ""),
    },
    "report": {"managers": (list, ["manager@example.test"])},
    "savings": {"hours_fill": ((int, float), 1), "hours_check": ((int, float), 16)},
}
# The [mail] defaults by key, for code that builds mail settings directly (collect.mail.settings.MailConfig).
MAIL_DEFAULTS: dict[str, Any] = {key: default for key, (_kind, default) in _SCHEMA["mail"].items()}
_CHOICES = {
    ("workspace", "locale"): ("zh-TW", "en"),
    ("workspace", "format"): ("xlsx", "ods"),
    ("mail", "backend"): ("files", "imap", "ews", "graph"),
    ("mail", "security"): ("tls", "starttls", "none"),
    ("mail", "smtp_security"): ("tls", "starttls", "none"),
    ("mail", "auth"): ("password", "xoauth2"),
}


@dataclass(frozen=True)
class Settings:
    """The typed content of collect.toml after defaults and environment overrides."""

    locale: str = "zh-TW"
    office: str = "臺北市政府主計處"
    agencies: str = "agencies.csv"
    ledger: str = ""
    archive: str = ""
    sender: str = "collect@example.test"
    key_file: str = ""
    format: str = "xlsx"  # "xlsx" | "ods": issued copies (unless the collection or agency says) and reports
    deadline_days: int = 14
    mail: dict[str, Any] = field(default_factory=dict)
    managers: tuple[str, ...] = ("manager@example.test",)
    digest_at: tuple[str, ...] = ("09:00",)
    signoff_remind_days: int = 3
    hours_fill: float = 1
    hours_check: float = 16

    @property
    def max_attachment_bytes(self) -> int:
        """The largest file collect takes, by mail or otherwise ([mail] max_attachment_mb, in bytes)."""
        return int(float(self.mail.get("max_attachment_mb", MAIL_DEFAULTS["max_attachment_mb"])) * 1_000_000)


@dataclass(frozen=True)
class Workspace:
    """A folder holding collect.toml, the agency list, templates_xlsx/, rules/, outbox/ and state/."""

    root: Path
    settings: Settings

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    @property
    def archive_dir(self) -> Path:
        """state/archive, or [workspace] archive (relative to the workspace): one folder that several share."""
        return self.root / self.settings.archive if self.settings.archive else self.state_dir / "archive"

    @property
    def outbox_dir(self) -> Path:
        return self.root / "outbox"

    @property
    def rules_dir(self) -> Path:
        return self.root / "rules"

    @property
    def templates_dir(self) -> Path:
        return self.root / "templates_xlsx"

    @property
    def agencies_path(self) -> Path:
        return self.root / self.settings.agencies

    @property
    def inbox_dir(self) -> Path:
        return self.root / str(self.settings.mail.get("inbox", "inbox"))

    @property
    def mail_outbox(self) -> Path:
        return self.outbox_dir / "mail"

    @property
    def ledger_url(self) -> str:
        if self.settings.ledger:
            return self.settings.ledger
        return f"sqlite:///{self.state_dir / 'ledger.sqlite'}"

    @property
    def key_path(self) -> Path:
        if self.settings.key_file:
            return Path(self.settings.key_file).expanduser()
        return self.state_dir / KEY_NAME

    def round_dir(self, collection: str, round_id: str) -> Path:
        return self.outbox_dir / collection / round_id

    def secret(self) -> bytes:
        """The stamp key: COLLECT_SECRET, else the key file; never collect.toml."""
        env = os.environ.get(ENV_PREFIX + "SECRET")
        if env:
            return env.encode("utf-8")
        try:
            key = self.key_path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            raise SecretMissing(
                f"No stamp key: COLLECT_SECRET is not set and {self.key_path} does not exist.",
                f"Create one with `collect init {self.root}` (it keeps existing files), or set COLLECT_SECRET.",
            ) from None
        if not key:
            raise SecretMissing(f"The key file {self.key_path} is empty.")
        return key.encode("utf-8")


_SECRET_KEYS = {
    "password": "the environment (COLLECT_MAIL_PASSWORD) or the system keyring",
    "client_secret": "the environment or the system keyring",
    "secret": "COLLECT_SECRET in the environment or the key file state/collect.key",
}
_TYPE_NAMES = {bool: "true or false", int: "a whole number", float: "a number", str: "a text in quotes",
               list: "a list [...]"}


def _check(section: str, key: str, value: Any, path: Path) -> Any:
    expected, _ = _SCHEMA[section][key]
    if (isinstance(value, bool) and expected is not bool) or not isinstance(value, expected):
        names = ("a number" if expected == (int, float) else
                 _TYPE_NAMES.get(expected, expected.__name__) if isinstance(expected, type) else
                 " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in expected))
        raise ConfigError(f"{path}: [{section}] {key} = {value!r}: expected {names}.")
    choices = _CHOICES.get((section, key))
    if choices and value not in choices:
        raise ConfigError(f"{path}: [{section}] {key} = {value!r}: expected one of {', '.join(choices)}.")
    items: list[Any] = value if isinstance(value, list) else []
    if key == "managers" and not all(isinstance(v, str) and "@" in v for v in items):
        raise ConfigError(f"{path}: [report] managers: expected a list of email addresses, got {value!r}.")
    if key == "digest_at" and not all(isinstance(v, str) and re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", v)
                                      for v in items):
        raise ConfigError(f"{path}: [round] digest_at: expected a list of Taipei times like \"09:00\", got {value!r}.")
    return value


def parse_settings(text: str, path: Path) -> Settings:
    """Settings from collect.toml's text; every error names the key, the file and what was expected."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}.") from None
    values: dict[str, Any] = {}
    mail: dict[str, Any] = {k: d for k, (_, d) in _SCHEMA["mail"].items()}
    for section, body in data.items():
        if section not in _SCHEMA:
            raise ConfigError(f"{path}: unknown section [{section}]; expected one of {', '.join(_SCHEMA)}.")
        if not isinstance(body, dict):
            raise ConfigError(f"{path}: {section} must be a [section].")
        for key, value in body.items():
            if key in _SECRET_KEYS:  # before the unknown-key check: none of them is in the schema
                raise ConfigError(f"{path}: [{section}] {key}: secrets never go in collect.toml; expected "
                                  f"{_SECRET_KEYS[key]} instead. Remove the line.")
            if key not in _SCHEMA[section]:
                known = ", ".join(_SCHEMA[section])
                raise ConfigError(f"{path}: unknown key {key!r} in [{section}]; expected one of {known}.")
            _check(section, key, value, path)
            if section == "mail":
                mail[key] = value
            elif key in ("managers", "digest_at"):
                values[key] = tuple(value)
            else:
                values[key] = value
    env_locale = os.environ.get(ENV_PREFIX + "LOCALE")
    if env_locale:
        values["locale"] = _check("workspace", "locale", env_locale, Path("$COLLECT_LOCALE"))
    env_ledger = os.environ.get(ENV_PREFIX + "LEDGER")
    if env_ledger:
        values["ledger"] = env_ledger
    env_archive = os.environ.get(ENV_PREFIX + "ARCHIVE")
    if env_archive:
        values["archive"] = env_archive
    return Settings(mail=mail, **values)


def find_root(explicit: str | Path | None = None) -> Path:
    """The workspace folder: --workspace, else COLLECT_WORKSPACE, else the current folder."""
    chosen = explicit or os.environ.get(ENV_PREFIX + "WORKSPACE") or Path.cwd()
    return Path(chosen).expanduser().resolve()


def load_workspace(root: str | Path | None = None) -> Workspace:
    """Open the workspace at `root` (see find_root); its collect.toml must exist."""
    folder = find_root(root)
    path = folder / CONFIG_NAME
    if not path.is_file():
        raise ConfigError(
            f"{folder} is not a collect workspace: {CONFIG_NAME} is missing.",
            f"Create one with `collect init {folder}`, or pass --workspace DIR.",
        )
    return Workspace(folder, parse_settings(path.read_text(encoding="utf-8"), path))


def ensure_key(ws: Workspace) -> Path:
    """Create the key file (mode 0600) when there is none; return its path."""
    path = ws.key_path
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(_secrets.token_urlsafe(32) + "\n")
    return path
