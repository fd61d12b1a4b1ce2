"""What every mail backend is: a Mailbox and a Transport, and the optional abilities a backend declares."""

from __future__ import annotations

from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any, NamedTuple, Protocol, runtime_checkable

SPREADSHEET_SUFFIXES = (".xlsx", ".xlsm", ".xls", ".ods", ".xlsb")


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


@runtime_checkable
class Transport(Protocol):
    """Something that sends a message (SMTP, EWS, Graph); the files backend has none."""

    def send(self, msg: EmailMessage, recipients: list[str]) -> None: ...

    def close(self) -> None: ...


# -- optional abilities: a backend that has one says so by having these methods; callers test with isinstance ----
@runtime_checkable
class Connects(Protocol):
    """Opens its connection (and logs in) up front, so a wrong setting shows before the first message."""

    def connect(self) -> Any: ...


@runtime_checkable
class HasFolders(Protocol):
    """Has server-side folders: the processed and failed folders are made when missing."""

    def ensure_folder(self, path: str) -> Any: ...


@runtime_checkable
class ListsUids(Protocol):
    """Lists the waiting messages' uids without downloading their bodies."""

    def uids(self) -> list[str]: ...


@runtime_checkable
class Waits(Protocol):
    """Can wait for new mail (IMAP IDLE). `wait` returns False when the server cannot (the caller sleeps)."""

    def wait(self, timeout: float) -> bool: ...


def uids_of(box: Mailbox) -> Iterator[str]:
    """The uids waiting, without downloading bodies when the backend can avoid it."""
    if isinstance(box, ListsUids):
        yield from box.uids()
        return
    for uid, _raw in box.list_new():
        yield uid


class Step(NamedTuple):
    """One step of `collect mail test`: what was tried, whether it worked, and what a system administrator reads."""

    step: str
    ok: bool
    message: str
