"""The few program errors collect raises, each with a message and a hint; agency mistakes are findings, not errors."""

from __future__ import annotations


class CollectError(Exception):
    """A failure of the program or its set-up: shown as one message and a hint, exit code 1."""

    hint = ""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        if hint is not None:
            self.hint = hint

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class ConfigError(CollectError):
    hint = "Check collect.toml (see README, 'Configuration'); `collect init DIR` writes a fresh one."


class SecretMissing(CollectError):
    hint = "Run `collect init` to create a key file, or set COLLECT_SECRET in the environment."


class AgencyListInvalid(CollectError):
    hint = "Fix the rows listed above in the agency list and run the command again."


class CollectionError(CollectError):
    hint = "Run `collect check` to list every mismatch between the template and its rules."


class LedgerError(CollectError):
    hint = "Check the ledger URL in collect.toml and that its folder is writable."


class MailError(CollectError):
    hint = "Run `collect mail test` to check the mail settings end to end."


class NotFound(CollectError):
    hint = "Check the name or id; `collect status` lists what the ledger knows."
