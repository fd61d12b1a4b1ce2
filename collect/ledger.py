"""The ledger: what was issued, received, decided and sent, through SQLAlchemy Core (SQLite or PostgreSQL)."""

from __future__ import annotations

import contextvars
import hashlib
import json
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from collect.counting import RoundFacts, UnitDecision
from collect.errors import LedgerError
from collect.findings import Finding
from collect.states import MailStage, Stage, Verdict

MIGRATIONS = Path(__file__).parent / "migrations"
# The schema this collect knows: the head revision under migrations/versions (tests/test_ledger.py checks it).
SCHEMA_VERSION = "0003"
KNOWN_VERSIONS = ("0001", "0002", "0003")


class LedgerOutdated(LedgerError):
    hint = ("Run `collect upgrade` once (a SQLite ledger is copied beside itself first; back a PostgreSQL ledger up "
            "with pg_dump), then run the command again.")


class LedgerBusy(LedgerError):
    hint = "Wait until the other run has finished (see `collect status`), then run the command again if needed."


class LedgerTooNew(LedgerError):
    hint = "A newer collect wrote this ledger: install that version of collect (pip install -U collect) to use it."


metadata = sa.MetaData()

template_versions = sa.Table(
    "template_versions", metadata,
    sa.Column("collection", sa.String, primary_key=True),
    sa.Column("version", sa.String, primary_key=True),
    sa.Column("created_at", sa.String, nullable=False),
)

rounds = sa.Table(
    "rounds", metadata,
    sa.Column("collection", sa.String, primary_key=True),
    sa.Column("round", sa.String, primary_key=True),
    sa.Column("deadline", sa.String, nullable=False),
    sa.Column("version", sa.String, nullable=False),
    sa.Column("closed", sa.Boolean, nullable=False, default=False),
    sa.Column("created_at", sa.String, nullable=False),
)

issued = sa.Table(
    "issued", metadata,
    sa.Column("collection", sa.String, primary_key=True),
    sa.Column("round", sa.String, primary_key=True),
    sa.Column("agency", sa.String, primary_key=True),
    sa.Column("version", sa.String, nullable=False),
    sa.Column("token", sa.String, nullable=False),
    sa.Column("path", sa.String, nullable=False),
    sa.Column("issued_at", sa.String, nullable=False),
    sa.Column("sent_at", sa.String),
)

messages = sa.Table(
    "messages", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("message_key", sa.String, nullable=False, unique=True),
    sa.Column("sha256", sa.String, nullable=False),
    sa.Column("sender", sa.String, nullable=False),
    sa.Column("subject", sa.String, nullable=False),
    sa.Column("source", sa.String, nullable=False),
    sa.Column("received_at", sa.String, nullable=False),
    sa.Column("stage", sa.String, nullable=False),
    sa.Column("error", sa.String),
)

submissions = sa.Table(
    "submissions", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("receipt", sa.String, unique=True),
    sa.Column("sha256", sa.String, nullable=False, index=True),
    sa.Column("file_name", sa.String, nullable=False),
    sa.Column("sender", sa.String),
    sa.Column("message_id", sa.Integer, sa.ForeignKey("messages.id")),
    sa.Column("received_at", sa.String, nullable=False),
    sa.Column("stage", sa.String, nullable=False),
    sa.Column("processed_at", sa.String),
    sa.Column("kind", sa.String),
    sa.Column("collection", sa.String, index=True),
    sa.Column("round", sa.String),
    sa.Column("agency", sa.String),
    sa.Column("version", sa.String),
    sa.Column("verdict", sa.String),
    sa.Column("errors", sa.Integer, nullable=False, default=0),
    sa.Column("warnings", sa.Integer, nullable=False, default=0),
    sa.Column("rows", sa.Integer),
    sa.Column("duplicate_of", sa.String),
    sa.Column("frame_path", sa.String),
    sa.Column("annotated_path", sa.String),
    sa.Column("receipt_path", sa.String),
    sa.Column("error", sa.String),
)

findings = sa.Table(
    "findings", metadata,
    sa.Column("submission_id", sa.Integer, sa.ForeignKey("submissions.id"), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("code", sa.String, nullable=False),
    sa.Column("severity", sa.String, nullable=False),
    sa.Column("sheet", sa.String),
    sa.Column("cell", sa.String),
    sa.Column("column", sa.String),
    sa.Column("value", sa.String),
    sa.Column("message", sa.String, nullable=False),
)

exemptions = sa.Table(
    "exemptions", metadata,
    sa.Column("collection", sa.String, primary_key=True),
    sa.Column("round", sa.String, primary_key=True),
    sa.Column("agency", sa.String, primary_key=True),
    sa.Column("reason", sa.String, nullable=False),
    sa.Column("at", sa.String, nullable=False),
)

reminders = sa.Table(
    "reminders", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("collection", sa.String, nullable=False),
    sa.Column("round", sa.String, nullable=False),
    sa.Column("agency", sa.String, nullable=False),
    sa.Column("kind", sa.String, nullable=False),
    sa.Column("recipients", sa.String, nullable=False),
    sa.Column("sent_at", sa.String, nullable=False),
    sa.Column("outgoing_id", sa.Integer),
)

outgoing = sa.Table(
    "outgoing", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String, nullable=False),
    sa.Column("message_id", sa.String, nullable=False),
    sa.Column("recipients", sa.String, nullable=False),
    sa.Column("subject", sa.String, nullable=False),
    sa.Column("path", sa.String, nullable=False),
    sa.Column("stage", sa.String, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("last_error", sa.String),
    sa.Column("created_at", sa.String, nullable=False),
    sa.Column("sent_at", sa.String),
)
# Every delivery looks its Message-ID up first (sent once only): without an index that is a scan of all mail ever sent.
# Revision 0002 adds it to older ledgers.
outgoing_by_mid = sa.Index("ix_outgoing_message_id", outgoing.c.message_id)

signoffs = sa.Table(
    "signoffs", metadata,
    sa.Column("collection", sa.String, primary_key=True),
    sa.Column("round", sa.String, primary_key=True),
    sa.Column("supervisor", sa.String, primary_key=True),
    sa.Column("by", sa.String, nullable=False),
    sa.Column("note", sa.String),
    sa.Column("at", sa.String, nullable=False),
)

# One row per sign-off workbook row applied: a unit's counting receipt signed off (核轉) or sent back (退回) by its
# supervising agency. The latest row of an agency decides; `source` is the sign-off workbook's own receipt.
unit_signoffs = sa.Table(
    "unit_signoffs", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("collection", sa.String, nullable=False, index=True),
    sa.Column("round", sa.String, nullable=False),
    sa.Column("supervisor", sa.String, nullable=False),
    sa.Column("agency", sa.String, nullable=False),
    sa.Column("receipt", sa.String, nullable=False),
    sa.Column("decision", sa.String, nullable=False),  # "signed" | "returned"
    sa.Column("reason", sa.String),
    sa.Column("by", sa.String, nullable=False),
    sa.Column("source", sa.String, nullable=False, index=True),
    sa.Column("at", sa.String, nullable=False),
)

# One row per digest sent to a supervising agency: what it listed (JSON), so the next one says what changed.
digests = sa.Table(
    "digests", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("collection", sa.String, nullable=False),
    sa.Column("round", sa.String, nullable=False),
    sa.Column("supervisor", sa.String, nullable=False),
    sa.Column("snapshot", sa.String, nullable=False),
    sa.Column("sent_at", sa.String, nullable=False),
    sa.Column("outgoing_id", sa.Integer),
)


def now() -> datetime:
    return datetime.now(UTC)


def stamp_time(moment: datetime | None = None) -> str:
    return (moment or now()).astimezone(UTC).isoformat(timespec="seconds")


def parse_time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


@dataclass(frozen=True)
class SubmissionRow:
    """One submission as the ledger holds it."""

    id: int
    receipt: str | None
    sha256: str
    file_name: str
    sender: str | None
    received_at: datetime
    stage: str
    collection: str | None
    round: str | None
    agency: str | None
    verdict: str | None
    errors: int
    warnings: int
    rows: int | None
    duplicate_of: str | None
    frame_path: str | None
    annotated_path: str | None
    receipt_path: str | None
    message_id: int | None
    kind: str | None
    version: str | None

    @classmethod
    def of(cls, row: Any) -> SubmissionRow:
        m = row._mapping
        return cls(
            m["id"], m["receipt"], m["sha256"], m["file_name"], m["sender"], parse_time(m["received_at"]) or now(),
            m["stage"], m["collection"], m["round"], m["agency"], m["verdict"], m["errors"] or 0,
            m["warnings"] or 0, m["rows"], m["duplicate_of"], m["frame_path"], m["annotated_path"],
            m["receipt_path"], m["message_id"], m["kind"], m["version"],
        )


class Ledger:
    """The database of a workspace; callers never see SQL dialects, so PostgreSQL can replace SQLite."""

    def __init__(self, url: str, *, check: bool = True) -> None:
        """Open the ledger at `url`; a new (empty) one is created at the current schema. With `check` (every command
        but `collect upgrade`), a ledger of an older or newer schema is refused with a hint."""
        self.url = url
        # (thread, claim file) pairs held through _file_claim: a thread's claim inside its own claim on the same file
        # must not wait for itself; another Ledger (as another process would) still contends
        self._held_slots: set[tuple[int, str]] = set()
        self._current: contextvars.ContextVar[Connection | None] = contextvars.ContextVar(
            f"ledger-{id(self)}", default=None)
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        try:
            backend = sa.engine.make_url(url).get_backend_name()
            sqlite = backend == "sqlite"
            # pre-ping: a pooled connection that a database restart cut is replaced instead of failing a command;
            # a server that does not answer fails the command after 10 s instead of hanging it
            args = {"connect_timeout": 10} if backend == "postgresql" else {}
            self.engine: Engine = sa.create_engine(url, future=True, pool_pre_ping=not sqlite, connect_args=args)
            if sqlite:
                sa.event.listen(self.engine, "connect", _sqlite_pragmas)
            if check:
                self._ready()
        except sa.exc.SQLAlchemyError as exc:
            raise LedgerError(f"Cannot open the ledger at {_safe(url)}: {exc.__class__.__name__}: {exc}") from exc
        except ImportError as exc:  # the database's driver is not installed
            raise LedgerError(f"Cannot open the ledger at {_safe(url)}: its driver is missing ({exc}).",
                              "For PostgreSQL install collect with its driver: pip install \"collect[postgres]\" "
                              "(psycopg 3), and use a postgresql+psycopg:// URL.") from exc

    @property
    def dialect(self) -> str:
        """"sqlite" or "postgresql"."""
        return str(self.engine.dialect.name)

    @property
    def shared(self) -> bool:
        """True for a database server that several machines share (PostgreSQL): the database, not the workspace's
        file lock, keeps concurrent watchers and staff apart."""
        return self.dialect != "sqlite"

    def _ready(self) -> None:
        """Create a new ledger at the current schema, or check that an existing one is at it."""
        with self.engine.connect() as c:
            if schema_version(c) == SCHEMA_VERSION:
                return
        with self.engine.begin() as c:  # two first commands at once on a new ledger: one creates it
            if self.dialect == "postgresql":
                c.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _claim_key("collect:schema")})
            elif self.dialect == "sqlite":
                c.exec_driver_sql("BEGIN IMMEDIATE")
            version = schema_version(c)
            if version == SCHEMA_VERSION:
                return
            if version is None and not sa.inspect(c).has_table("messages"):
                metadata.create_all(c)
                _stamp(c, SCHEMA_VERSION)
                return
        _refuse(self.url, version)

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """One transaction; inside `snapshot()` the snapshot's own."""
        current = self._current.get()
        if current is not None:
            yield current
            return
        with self.engine.begin() as conn:
            yield conn

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Every ledger read in this block (this thread) sees one consistent state: one transaction, REPEATABLE
        READ on PostgreSQL, one read transaction on SQLite. For readers (status, report): write outside it."""
        if self._current.get() is not None:
            yield
            return
        with self.engine.connect() as conn:
            if self.dialect == "postgresql":
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                if self.dialect == "sqlite":  # pysqlite begins no transaction for reads: begin it, and read once,
                    conn.exec_driver_sql("BEGIN")  # so the snapshot starts here
                    conn.exec_driver_sql("SELECT count(*) FROM sqlite_master")
                token = self._current.set(conn)
                try:
                    yield
                finally:
                    self._current.reset(token)

    @contextmanager
    def claim(self, name: str, *, wait: bool = False) -> Iterator[bool]:
        """Hold the claim `name` (a message, an outgoing Message-ID, a round's mailing) while the block runs: True
        when this process has it, False when another process holds it (with `wait`, wait for it instead).

        PostgreSQL: a session advisory lock, so processes on every machine sharing the ledger see it, and the server
        drops it when its holder dies (even by SIGKILL). SQLite: an OS lock on one of 1,024 files beside the ledger
        (one machine); the OS drops it when its holder dies. Claims are for keeping two processes from doing one thing
        twice; what was done is always checked again in the ledger once the claim is held."""
        if self.dialect == "postgresql":
            with self._pg_claim(name, wait) as got:
                yield got
        else:
            with self._file_claim(name, wait) as got:
                yield got

    @contextmanager
    def hold(self, name: str, doing: str) -> Iterator[None]:
        """Like claim, but a claim held elsewhere is refused (LedgerBusy) with `doing` in the message."""
        with self.claim(name) as got:
            if not got:
                raise LedgerBusy(f"Another process is {doing} right now (claim {name!r} on the ledger).")
            yield

    @contextmanager
    def _pg_claim(self, name: str, wait: bool) -> Iterator[bool]:
        key = _claim_key(name)
        conn = self.engine.connect()
        try:
            if wait:
                conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": key})
                got = True
            else:
                got = bool(conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())
            conn.commit()  # the session lock outlives the transaction
        except BaseException:
            conn.invalidate()
            conn.close()
            raise
        try:
            yield got
        finally:
            try:
                if got:
                    conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                    conn.commit()
            except sa.exc.SQLAlchemyError:
                conn.invalidate()  # never hand a connection that may still hold the lock back to the pool
            finally:
                conn.close()

    @contextmanager
    def _file_claim(self, name: str, wait: bool) -> Iterator[bool]:
        database = sa.engine.make_url(self.url).database
        try:
            import fcntl
        except ImportError:  # Windows: one process at a time is the operator's care
            yield True
            return
        if not database or database == ":memory:":
            yield True
            return
        folder = Path(database).with_name(Path(database).name + ".claims")
        folder.mkdir(parents=True, exist_ok=True)
        slot = (threading.get_ident(), f"{_claim_key(name) % 1024:04d}")
        if slot in self._held_slots:
            # two claims of one thread on one file (a round's mailing, then a Message-ID hashed to the same file):
            # the file is this thread's already; a second lock on it would wait for itself forever
            yield True
            return
        fd = os.open(folder / slot[1], os.O_RDWR | os.O_CREAT, 0o644)
        got = False
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
                got = True
            except BlockingIOError:
                got = False
            if got:
                self._held_slots.add(slot)
            yield got
        finally:
            if got:
                self._held_slots.discard(slot)
            os.close(fd)  # closing the descriptor releases the lock

    def close(self) -> None:
        self.engine.dispose()

    # -- issuing -----------------------------------------------------------------------------------------------
    def record_version(self, collection: str, version: str) -> bool:
        """Remember a template version; True when it is new."""
        with self.begin() as c:
            exists = c.execute(
                sa.select(template_versions.c.version).where(
                    template_versions.c.collection == collection, template_versions.c.version == version
                )
            ).first()
            if exists:
                return False
            c.execute(template_versions.insert().values(collection=collection, version=version,
                                                        created_at=stamp_time()))
            return True

    def upsert_round(self, collection: str, round_id: str, deadline: str, version: str) -> None:
        with self.begin() as c:
            key = (rounds.c.collection == collection) & (rounds.c.round == round_id)
            if c.execute(sa.select(rounds.c.round).where(key)).first():
                c.execute(rounds.update().where(key).values(deadline=deadline, version=version))
            else:
                c.execute(rounds.insert().values(collection=collection, round=round_id, deadline=deadline,
                                                 version=version, closed=False, created_at=stamp_time()))

    def round_info(self, collection: str, round_id: str) -> dict[str, Any] | None:
        with self.begin() as c:
            row = c.execute(sa.select(rounds).where(rounds.c.collection == collection,
                                                    rounds.c.round == round_id)).first()
            return dict(row._mapping) if row else None

    def set_round_closed(self, collection: str, round_id: str, closed: bool) -> None:
        with self.begin() as c:
            c.execute(rounds.update().where(rounds.c.collection == collection, rounds.c.round == round_id)
                      .values(closed=closed))

    def record_issued(self, collection: str, round_id: str, entries: Sequence[tuple[str, str, str, str]]) -> None:
        """entries: (agency, version, token, path); re-issuing replaces the earlier row."""
        stamp = stamp_time()
        with self.begin() as c:
            for agency, version, token, path in entries:
                c.execute(issued.delete().where(issued.c.collection == collection, issued.c.round == round_id,
                                                issued.c.agency == agency))
                c.execute(issued.insert().values(collection=collection, round=round_id, agency=agency,
                                                 version=version, token=token, path=path, issued_at=stamp))

    def issued_for(self, collection: str, round_id: str) -> dict[str, dict[str, Any]]:
        with self.begin() as c:
            rows = c.execute(sa.select(issued).where(issued.c.collection == collection, issued.c.round == round_id))
            return {r.agency: dict(r._mapping) for r in rows}

    def mark_sent(self, collection: str, round_id: str, agency: str) -> None:
        with self.begin() as c:
            c.execute(issued.update().where(issued.c.collection == collection, issued.c.round == round_id,
                                            issued.c.agency == agency).values(sent_at=stamp_time()))

    # -- receiving ---------------------------------------------------------------------------------------------
    def record_message_with_files(self, message_key: str, sha256: str, sender: str, subject: str, source: str,
                                  files: Sequence[tuple[str, str]], received_at: datetime | None = None,
                                  ) -> tuple[int, bool]:
        """Record a raw message and its files (name, sha256) in one transaction; (id, is_new). When another process
        records the same message at the same moment, its unique key makes one of them the first, the other sees it."""
        try:
            with self.begin() as c:
                row = c.execute(sa.select(messages.c.id).where(messages.c.message_key == message_key)).first()
                if row:
                    return int(row.id), False
                res = c.execute(messages.insert().values(
                    message_key=message_key, sha256=sha256, sender=sender, subject=subject, source=source,
                    received_at=stamp_time(received_at), stage=Stage.RECEIVED))
                mid = _new_id(res)
                for name, digest in files:
                    self._insert_submission(c, digest, name, sender, mid, received_at)
                return mid, True
        except sa.exc.IntegrityError:
            if self._current.get() is not None:
                raise
            with self.begin() as c:
                return int(c.execute(sa.select(messages.c.id)
                                     .where(messages.c.message_key == message_key)).scalar_one()), False

    def message_stage(self, message_id: int) -> str:
        with self.begin() as c:
            return str(c.execute(sa.select(messages.c.stage).where(messages.c.id == message_id)).scalar_one())

    def set_message_stage(self, message_id: int, stage: Stage, error: str | None = None) -> None:
        with self.begin() as c:
            c.execute(messages.update().where(messages.c.id == message_id).values(stage=stage, error=error))

    def record_submission(self, sha256: str, file_name: str, sender: str | None, message_id: int | None,
                          received_at: datetime | None = None) -> SubmissionRow:
        """Record a received file (already archived) before anything else happens to it."""
        with self.begin() as c:
            sid = self._insert_submission(c, sha256, file_name, sender, message_id, received_at)
            return SubmissionRow.of(c.execute(sa.select(submissions).where(submissions.c.id == sid)).one())

    @staticmethod
    def _insert_submission(c: Connection, sha256: str, file_name: str, sender: str | None, message_id: int | None,
                           received_at: datetime | None) -> int:
        res = c.execute(submissions.insert().values(
            sha256=sha256, file_name=file_name, sender=sender, message_id=message_id,
            received_at=stamp_time(received_at), stage=Stage.RECEIVED, errors=0, warnings=0))
        sid = _new_id(res)
        day = (received_at or now()).astimezone(UTC).strftime("%Y%m%d")
        c.execute(submissions.update().where(submissions.c.id == sid).values(receipt=f"R{day}-{sid:06d}"))
        return sid

    def submissions_of_message(self, message_id: int) -> list[SubmissionRow]:
        with self.begin() as c:
            rows = c.execute(sa.select(submissions).where(submissions.c.message_id == message_id)
                             .order_by(submissions.c.id))
            return [SubmissionRow.of(r) for r in rows]

    def first_with_hash(self, sha256: str, before_id: int) -> SubmissionRow | None:
        """The earliest decided submission with these bytes that counts as a real arrival (not quarantined)."""
        with self.begin() as c:
            row = c.execute(
                sa.select(submissions).where(
                    submissions.c.sha256 == sha256, submissions.c.id < before_id,
                    submissions.c.stage == Stage.PROCESSED,
                    submissions.c.verdict.notin_([Verdict.DUPLICATE, Verdict.QUARANTINED]),
                ).order_by(submissions.c.id)
            ).first()
            return SubmissionRow.of(row) if row else None

    def decide(self, sid: int, *, verdict: Verdict, found: Sequence[Finding], **values: Any) -> None:
        """Store the verdict and the findings of a submission in one transaction."""
        errors = sum(f.severity == "error" for f in found)
        with self.begin() as c:
            c.execute(findings.delete().where(findings.c.submission_id == sid))
            if found:
                c.execute(findings.insert(), [
                    dict(submission_id=sid, seq=i, code=f.code, severity=f.severity, sheet=f.sheet, cell=f.cell,
                         column=f.column, value=f.value, message=f.message) for i, f in enumerate(found)])
            c.execute(submissions.update().where(submissions.c.id == sid).values(
                verdict=verdict, errors=errors, warnings=len(found) - errors, stage=Stage.PROCESSED,
                processed_at=stamp_time(), **values))

    def fail_submission(self, sid: int, error: str) -> None:
        with self.begin() as c:
            c.execute(submissions.update().where(submissions.c.id == sid).values(stage=Stage.FAILED, error=error))

    def submission(self, receipt_or_id: str | int) -> SubmissionRow | None:
        with self.begin() as c:
            cond = (submissions.c.id == receipt_or_id) if isinstance(receipt_or_id, int) else (
                submissions.c.receipt == receipt_or_id)
            row = c.execute(sa.select(submissions).where(cond)).first()
            return SubmissionRow.of(row) if row else None

    def findings_of(self, sid: int) -> list[Finding]:
        with self.begin() as c:
            rows = c.execute(sa.select(findings).where(findings.c.submission_id == sid).order_by(findings.c.seq))
            return [Finding.from_dict(dict(r._mapping)) for r in rows]

    def submissions_for_round(self, collection: str, round_id: str, *, agency: str | None = None,
                              processed: bool = False) -> list[SubmissionRow]:
        """A round's submissions in arrival order: one agency's only, when given; decided ones only, if `processed`."""
        cond = [submissions.c.collection == collection, submissions.c.round == round_id]
        if agency is not None:
            cond.append(submissions.c.agency == agency)
        if processed:
            cond.append(submissions.c.stage == Stage.PROCESSED)
        with self.begin() as c:
            rows = c.execute(sa.select(submissions).where(*cond).order_by(submissions.c.id))
            return [SubmissionRow.of(r) for r in rows]

    def pending_submissions(self) -> list[SubmissionRow]:
        """Recorded but never decided: what a crash left behind."""
        with self.begin() as c:
            rows = c.execute(sa.select(submissions).where(submissions.c.stage == Stage.RECEIVED)
                             .order_by(submissions.c.id))
            return [SubmissionRow.of(r) for r in rows]

    def latest_accepted(self, collection: str, round_id: str, agency: str) -> SubmissionRow | None:
        with self.begin() as c:
            row = c.execute(sa.select(submissions).where(
                submissions.c.collection == collection, submissions.c.round == round_id,
                submissions.c.agency == agency, submissions.c.verdict == Verdict.ACCEPTED,
            ).order_by(submissions.c.id.desc())).first()
            return SubmissionRow.of(row) if row else None

    # -- staff decisions and outgoing mail -----------------------------------------------------------------------
    def set_exempt(self, collection: str, round_id: str, agency: str, reason: str | None) -> None:
        with self.begin() as c:
            c.execute(exemptions.delete().where(exemptions.c.collection == collection,
                                                exemptions.c.round == round_id, exemptions.c.agency == agency))
            if reason is not None:
                c.execute(exemptions.insert().values(collection=collection, round=round_id, agency=agency,
                                                     reason=reason, at=stamp_time()))

    def exemptions_for(self, collection: str, round_id: str) -> dict[str, str]:
        with self.begin() as c:
            rows = c.execute(sa.select(exemptions).where(exemptions.c.collection == collection,
                                                         exemptions.c.round == round_id))
            return {r.agency: r.reason for r in rows}

    def record_outgoing(self, kind: str, message_id: str, recipients: Sequence[str], subject: str,
                        path: str, *, sent: bool = False) -> int:
        """Record a message whose file is written: queued for its transport, or with `sent` already done (the files
        backend has nothing to send), in one transaction instead of a queued row and its update."""
        stamp = stamp_time()
        done: dict[str, Any] = {"stage": MailStage.SENT, "attempts": 1, "sent_at": stamp} if sent else {
            "stage": MailStage.QUEUED, "attempts": 0}
        with self.begin() as c:
            res = c.execute(outgoing.insert(), dict(
                kind=kind, message_id=message_id, recipients=json.dumps(list(recipients)), subject=subject,
                path=path, created_at=stamp, last_error=None, sent_at=None) | done)
            return _new_id(res)

    def outgoing_done(self, oid: int, error: str | None = None) -> None:
        with self.begin() as c:
            values: dict[str, Any] = {"attempts": outgoing.c.attempts + 1}
            if error is None:
                values |= {"stage": MailStage.SENT, "sent_at": stamp_time(), "last_error": None}
            else:
                values |= {"last_error": error}
            c.execute(outgoing.update().where(outgoing.c.id == oid).values(**values))

    def outgoing_by_message_id(self, message_id: str) -> dict[str, Any] | None:
        with self.begin() as c:
            row = c.execute(_OUTGOING_BY_MID, {"mid": message_id}).first()
            return dict(row._mapping) if row else None

    def queued_outgoing(self) -> list[dict[str, Any]]:
        with self.begin() as c:
            rows = c.execute(sa.select(outgoing).where(outgoing.c.stage == MailStage.QUEUED).order_by(outgoing.c.id))
            return [dict(r._mapping) for r in rows]

    def record_reminder(self, collection: str, round_id: str, agency: str, kind: str,
                        recipients: Sequence[str], outgoing_id: int | None) -> None:
        with self.begin() as c:
            c.execute(reminders.insert().values(collection=collection, round=round_id, agency=agency, kind=kind,
                                                recipients=json.dumps(list(recipients)), sent_at=stamp_time(),
                                                outgoing_id=outgoing_id))

    def last_reminded(self, collection: str, round_id: str, kind: str | None = None) -> dict[str, datetime]:
        """Agency -> when it was last reminded in the round (of that kind only, when given)."""
        with self.begin() as c:
            query = (sa.select(reminders.c.agency, sa.func.max(reminders.c.sent_at))
                     .where(reminders.c.collection == collection, reminders.c.round == round_id))
            if kind is not None:
                query = query.where(reminders.c.kind == kind)
            rows = c.execute(query.group_by(reminders.c.agency))
            return {r[0]: parse_time(r[1]) or now() for r in rows}

    def record_signoff(self, collection: str, round_id: str, supervisor: str, by: str, note: str | None) -> None:
        with self.begin() as c:
            c.execute(signoffs.delete().where(signoffs.c.collection == collection, signoffs.c.round == round_id,
                                              signoffs.c.supervisor == supervisor))
            c.execute(signoffs.insert().values(collection=collection, round=round_id, supervisor=supervisor,
                                               by=by, note=note, at=stamp_time()))

    def signoffs_for(self, collection: str, round_id: str) -> dict[str, dict[str, Any]]:
        with self.begin() as c:
            rows = c.execute(sa.select(signoffs).where(signoffs.c.collection == collection,
                                                       signoffs.c.round == round_id))
            return {r.supervisor: dict(r._mapping) for r in rows}

    # -- the second tier: sign-off workbooks and digests (collect.follow) --------------------------------------------
    def record_unit_decisions(self, collection: str, round_id: str, supervisor: str, by: str, source: str,
                              decisions: Sequence[tuple[str, str, str, str | None]]) -> None:
        """(agency, receipt, "signed" | "returned", reason) rows of one applied sign-off workbook, in one step."""
        at = stamp_time()
        with self.begin() as c:
            for agency, receipt, decision, reason in decisions:
                c.execute(unit_signoffs.insert().values(
                    collection=collection, round=round_id, supervisor=supervisor, agency=agency, receipt=receipt,
                    decision=decision, reason=reason, by=by, source=source, at=at))

    def unit_decisions(self, collection: str, round_id: str) -> dict[str, dict[str, Any]]:
        """Agency -> its latest sign-off decision of the round (receipt, decision, reason, by, at, source)."""
        with self.begin() as c:
            rows = c.execute(sa.select(unit_signoffs).where(unit_signoffs.c.collection == collection,
                                                            unit_signoffs.c.round == round_id)
                             .order_by(unit_signoffs.c.id))
            return {r.agency: dict(r._mapping) for r in rows}

    def counting_facts(self, collection: str, round_id: str, agency: str | None = None) -> RoundFacts[SubmissionRow]:
        """What collect.counting needs of a round (of one agency's returns only, when given), from one consistent
        state: the processed submissions in arrival order, the units' latest sign-off decisions, the paper
        sign-offs and the exemptions."""
        with self.snapshot():
            subs = self.submissions_for_round(collection, round_id, agency=agency, processed=True)
            decisions = {a: UnitDecision(a, d["receipt"], d["decision"], d["reason"])
                         for a, d in self.unit_decisions(collection, round_id).items()}
            paper = {code: parse_time(rec["at"]) for code, rec in self.signoffs_for(collection, round_id).items()}
            return RoundFacts(tuple(subs), decisions, paper, self.exemptions_for(collection, round_id))

    def decisions_applied(self, source: str) -> bool:
        with self.begin() as c:
            return c.execute(sa.select(unit_signoffs.c.id).where(unit_signoffs.c.source == source)).first() is not None

    def unit_signoff_pairs(self) -> list[tuple[str, str, str]]:
        """Every (collection, round, supervisor) with a sign-off by workbook or on paper."""
        with self.begin() as c:
            a = c.execute(sa.select(unit_signoffs.c.collection, unit_signoffs.c.round, unit_signoffs.c.supervisor)
                          .distinct())
            b = c.execute(sa.select(signoffs.c.collection, signoffs.c.round, signoffs.c.supervisor))
            return sorted({(r[0], r[1], r[2]) for r in [*a, *b]})

    def accepted_of_collection(self, collection: str) -> list[SubmissionRow]:
        """Every accepted submission of a collection, any round, oldest first."""
        with self.begin() as c:
            rows = c.execute(sa.select(submissions).where(submissions.c.collection == collection,
                                                          submissions.c.verdict == Verdict.ACCEPTED)
                             .order_by(submissions.c.id))
            return [SubmissionRow.of(r) for r in rows]

    def record_digest(self, collection: str, round_id: str, supervisor: str, snapshot: dict[str, Any],
                      outgoing_id: int | None, at: datetime | None = None) -> None:
        with self.begin() as c:
            c.execute(digests.insert().values(collection=collection, round=round_id, supervisor=supervisor,
                                              snapshot=json.dumps(snapshot, ensure_ascii=False, sort_keys=True),
                                              sent_at=stamp_time(at), outgoing_id=outgoing_id))

    def last_digest(self, collection: str, round_id: str, supervisor: str) -> dict[str, Any] | None:
        """The latest digest sent to a supervising agency for a round: its snapshot (parsed) and sent_at."""
        with self.begin() as c:
            row = c.execute(sa.select(digests).where(digests.c.collection == collection, digests.c.round == round_id,
                                                     digests.c.supervisor == supervisor)
                            .order_by(digests.c.id.desc()).limit(1)).first()
            if row is None:
                return None
            return {**dict(row._mapping), "snapshot": json.loads(row.snapshot), "sent_at": parse_time(row.sent_at)}

    def all_rounds(self) -> list[dict[str, Any]]:
        with self.begin() as c:
            return [dict(r._mapping) for r in c.execute(sa.select(rounds).order_by(rounds.c.collection,
                                                                                   rounds.c.round))]

    def accepted_pairs(self) -> list[tuple[str, str, str]]:
        """Every (collection, round, agency) with an accepted return."""
        with self.begin() as c:
            rows = c.execute(sa.select(submissions.c.collection, submissions.c.round, submissions.c.agency)
                             .where(submissions.c.verdict == Verdict.ACCEPTED).distinct())
            return [(r[0], r[1], r[2]) for r in rows if r[0] and r[1] and r[2]]

    # -- mail backends: failed messages and their retry (collect.receive.watch) ---------------------------------------
    def message_by_key(self, message_key: str) -> dict[str, Any] | None:
        with self.begin() as c:
            row = c.execute(sa.select(messages).where(messages.c.message_key == message_key)).first()
            return dict(row._mapping) if row else None

    def fail_message(self, message_key: str, sha256: str, sender: str, subject: str, source: str,
                     error: str) -> int:
        """Record that a message could not be processed (stage failed, with the reason); never dropped.

        Its files still undecided are marked failed too. Returns the message row's id."""
        with self.begin() as c:
            row = c.execute(sa.select(messages.c.id).where(messages.c.message_key == message_key)).first()
            if row is None:
                res = c.execute(messages.insert().values(
                    message_key=message_key, sha256=sha256, sender=sender, subject=subject, source=source,
                    received_at=stamp_time(), stage=Stage.FAILED, error=error))
                return _new_id(res)
            mid = int(row.id)
            c.execute(messages.update().where(messages.c.id == mid).values(stage=Stage.FAILED, error=error))
            c.execute(submissions.update().where(submissions.c.message_id == mid,
                                                 submissions.c.stage == Stage.RECEIVED)
                      .values(stage=Stage.FAILED, error=error))
            return mid

    def reopen_message(self, message_key: str) -> bool:
        """A failed message that arrives again (staff moved it back to the inbox) is processed again: its stage
        and its failed files go back to received. True when there was something to reopen."""
        with self.begin() as c:
            row = c.execute(sa.select(messages.c.id, messages.c.stage)
                            .where(messages.c.message_key == message_key)).first()
            if row is None or row.stage != Stage.FAILED:
                return False
            c.execute(messages.update().where(messages.c.id == row.id).values(stage=Stage.RECEIVED, error=None))
            c.execute(submissions.update().where(submissions.c.message_id == row.id,
                                                 submissions.c.stage == Stage.FAILED)
                      .values(stage=Stage.RECEIVED, error=None))
            return True

    def failed_messages(self) -> list[dict[str, Any]]:
        with self.begin() as c:
            rows = c.execute(sa.select(messages).where(messages.c.stage == Stage.FAILED).order_by(messages.c.id))
            return [dict(r._mapping) for r in rows]


def is_outage(exc: BaseException) -> bool:
    """True when the database itself failed (unreachable, restarted, locked), not the thing being recorded: the
    caller leaves the message or file as it is, to be tried again, instead of marking it failed."""
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError)


# -- the schema's version and its migrations ---------------------------------------------------------------------------
def schema_version(conn: Connection) -> str | None:
    """The ledger's schema revision (Alembic's alembic_version), None for a new ledger or one older than migrations."""
    if not sa.inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()


def _stamp(conn: Connection, version: str) -> None:
    from alembic.runtime.migration import MigrationContext

    mc = MigrationContext.configure(conn)
    mc.stamp(_scripts(), version)


def _scripts() -> Any:
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(MIGRATIONS))


def _refuse(url: str, version: str | None) -> None:
    where = _safe(url)
    if version is None:
        raise LedgerOutdated(f"The ledger at {where} was made by a collect older than schema migrations; this "
                             f"collect needs schema {SCHEMA_VERSION}.")
    if version in KNOWN_VERSIONS:
        raise LedgerOutdated(f"The ledger at {where} has schema {version}; this collect needs {SCHEMA_VERSION}.")
    raise LedgerTooNew(f"The ledger at {where} has schema {version}, newer than this collect knows "
                       f"({SCHEMA_VERSION}).")


@dataclass(frozen=True)
class Upgrade:
    """What `collect upgrade` did: the schema before and after, and the SQLite copy made first (if any)."""

    before: str | None
    after: str
    backup: Path | None


def upgrade(url: str, *, moment: datetime | None = None) -> Upgrade:
    """Migrate the ledger at `url` to this collect's schema (SCHEMA_VERSION) with Alembic, in one transaction.

    A SQLite ledger is first copied beside itself (SQLite's backup API, so a WAL is included); a ledger made before
    migrations is recognised as revision 0001. A ledger already current is left alone; a newer one is refused."""
    from alembic import command
    from alembic.config import Config

    ledger = Ledger(url, check=False)
    try:
        with ledger.engine.connect() as c:
            before = schema_version(c)
            legacy = before is None and sa.inspect(c).has_table("messages")
        if before == SCHEMA_VERSION:
            return Upgrade(before, SCHEMA_VERSION, None)
        if before is not None and before not in KNOWN_VERSIONS:
            _refuse(url, before)
        backup = None
        if ledger.dialect == "sqlite" and (before is not None or legacy):
            backup = _sqlite_copy(Path(sa.engine.make_url(url).database or ""), before or "0000", moment)
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        with ledger.engine.begin() as c:
            cfg.attributes["connection"] = c
            if legacy:
                command.stamp(cfg, "0001")
            command.upgrade(cfg, "head")
            after = schema_version(c) or ""
        return Upgrade(before, after, backup)
    except sa.exc.SQLAlchemyError as exc:
        raise LedgerError(f"Cannot upgrade the ledger at {_safe(url)}: {exc.__class__.__name__}: {exc}") from exc
    finally:
        ledger.close()


def _sqlite_copy(path: Path, version: str, moment: datetime | None) -> Path:
    """A consistent copy of a SQLite ledger beside it: ledger.sqlite.schema-0001-20261202T031500Z.bak."""
    target = path.with_name(f"{path.name}.schema-{version}-{(moment or now()).strftime('%Y%m%dT%H%M%SZ')}.bak")
    src, dst = sqlite3.connect(path), sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()
    return target


def _claim_key(name: str) -> int:
    """A 64-bit advisory-lock key for a claim's name."""
    return int.from_bytes(hashlib.blake2b(name.encode("utf-8"), digest_size=8).digest(), "big", signed=True)


def _safe(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return url


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


_OUTGOING_BY_MID = sa.select(outgoing).where(outgoing.c.message_id == sa.bindparam("mid")).order_by(outgoing.c.id)


def _new_id(result: Any) -> int:
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])
