"""The ledger on SQLite and on a real PostgreSQL: what it records, its schema revisions and `collect upgrade`,
claims and snapshots for several processes at once."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import run_cli

from collect import ledger as ledger_mod
from collect.findings import Finding
from collect.ledger import (
    SCHEMA_VERSION,
    Ledger,
    LedgerBusy,
    LedgerOutdated,
    LedgerTooNew,
    schema_version,
    upgrade,
)
from collect.states import MailStage, Stage, Verdict

FIXTURES = Path(__file__).parent / "fixtures"
WHEN = datetime(2026, 11, 5, 2, 30, tzinfo=UTC)


@pytest.fixture
def led(ledger_url: str) -> Ledger:
    ledger = Ledger(ledger_url)
    yield ledger
    ledger.close()


# -- what it records -----------------------------------------------------------------------------------------------
def test_rounds_versions_and_issued(led: Ledger) -> None:
    assert led.record_version("covid", "v1") is True
    assert led.record_version("covid", "v1") is False
    led.upsert_round("covid", "2026-10", "2026-11-10", "v1")
    led.upsert_round("covid", "2026-10", "2026-11-12", "v2")
    info = led.round_info("covid", "2026-10")
    assert info is not None
    assert (info["deadline"], info["version"], info["closed"]) == ("2026-11-12", "v2", False)
    led.set_round_closed("covid", "2026-10", True)
    assert led.round_info("covid", "2026-10")["closed"] is True  # type: ignore[index]
    assert led.round_info("covid", "2026-11") is None

    led.record_issued("covid", "2026-10", [("A001", "v1", "t1", "a.xlsx"), ("A002", "v1", "t2", "b.xlsx")])
    led.record_issued("covid", "2026-10", [("A001", "v2", "t3", "c.xlsx")])  # re-issue replaces
    issued = led.issued_for("covid", "2026-10")
    assert sorted(issued) == ["A001", "A002"]
    assert (issued["A001"]["version"], issued["A001"]["token"], issued["A001"]["sent_at"]) == ("v2", "t3", None)
    led.mark_sent("covid", "2026-10", "A001")
    assert led.issued_for("covid", "2026-10")["A001"]["sent_at"] is not None


def test_a_message_is_recorded_once_with_its_files_and_receipts(led: Ledger) -> None:
    mid, new = led.record_message_with_files("<m1@x>", "aa" * 32, "a@x", "經費表", "imap#1",
                                             [("一.xlsx", "bb" * 32), ("二.xlsx", "cc" * 32)], WHEN)
    assert new is True
    again, new_again = led.record_message_with_files("<m1@x>", "aa" * 32, "a@x", "經費表", "imap#1",
                                                     [("一.xlsx", "bb" * 32)], WHEN)
    assert (again, new_again) == (mid, False)
    rows = led.submissions_of_message(mid)
    assert [r.file_name for r in rows] == ["一.xlsx", "二.xlsx"]
    assert [r.receipt for r in rows] == [f"R20261105-{r.id:06d}" for r in rows]
    assert {r.stage for r in rows} == {Stage.RECEIVED}
    assert [r.id for r in led.pending_submissions()] == [r.id for r in rows]
    assert led.message_stage(mid) == Stage.RECEIVED


def test_decide_keeps_findings_in_order_and_the_latest_accepted_counts(led: Ledger) -> None:
    first = led.record_submission("dd" * 32, "A001.xlsx", "a@x", None, WHEN)
    found = [Finding("cell-required", "error", "必填欄位未填寫", "表1", "C7", "金額", None),
             Finding("sum-mismatch", "warning", "合計不符", "表1", "D20", "合計", "1,000")]
    led.decide(first.id, verdict=Verdict.REJECTED, found=found, collection="covid", round="2026-10", agency="A001")
    assert led.findings_of(first.id) == found
    decided = led.submission(first.receipt or "")
    assert decided is not None
    assert (decided.verdict, decided.errors, decided.warnings, decided.stage) == (
        Verdict.REJECTED, 1, 1, Stage.PROCESSED)
    assert led.latest_accepted("covid", "2026-10", "A001") is None

    second = led.record_submission("ee" * 32, "A001.xlsx", "a@x", None, WHEN)
    led.decide(second.id, verdict=Verdict.ACCEPTED, found=[], collection="covid", round="2026-10", agency="A001")
    third = led.record_submission("ee" * 32, "A001 (1).xlsx", "a@x", None, WHEN)
    assert led.first_with_hash("ee" * 32, third.id).id == second.id  # type: ignore[union-attr]
    latest = led.latest_accepted("covid", "2026-10", "A001")
    assert latest is not None and latest.id == second.id
    assert [r.id for r in led.submissions_for_round("covid", "2026-10")] == [first.id, second.id]


def test_a_failed_message_is_kept_and_can_be_reopened(led: Ledger) -> None:
    mid, _ = led.record_message_with_files("<m2@x>", "aa" * 32, "a@x", "s", "imap#2", [("f.xlsx", "bb" * 32)])
    assert led.fail_message("<m2@x>", "aa" * 32, "a@x", "s", "imap#2", "ValueError: boom") == mid
    assert [m["message_key"] for m in led.failed_messages()] == ["<m2@x>"]
    assert {r.stage for r in led.submissions_of_message(mid)} == {Stage.FAILED}
    assert led.reopen_message("<m2@x>") is True
    assert led.reopen_message("<m2@x>") is False
    assert led.message_by_key("<m2@x>")["stage"] == Stage.RECEIVED  # type: ignore[index]
    assert {r.stage for r in led.submissions_of_message(mid)} == {Stage.RECEIVED}


def test_outgoing_mail_reminders_exemptions_and_signoffs(led: Ledger) -> None:
    queued = led.record_outgoing("receipt", "<o1@c>", ["a@x", "b@x"], "收件回執", "o1.eml")
    sent = led.record_outgoing("notice", "<o2@c>", ["a@x"], "通知", "o2.eml", sent=True)
    assert [r["id"] for r in led.queued_outgoing()] == [queued]
    led.outgoing_done(queued, "SMTPServerDisconnected: gone")
    row = led.outgoing_by_message_id("<o1@c>")
    assert row is not None
    assert (row["stage"], row["attempts"], row["last_error"]) == (MailStage.QUEUED, 1, "SMTPServerDisconnected: gone")
    led.outgoing_done(queued)
    assert led.queued_outgoing() == []
    assert led.outgoing_by_message_id("<o2@c>")["id"] == sent  # type: ignore[index]
    assert led.outgoing_by_message_id("<none@c>") is None

    led.record_reminder("covid", "2026-10", "A001", "first", ["a@x"], sent)
    assert list(led.last_reminded("covid", "2026-10")) == ["A001"]
    led.set_exempt("covid", "2026-10", "A002", "本期無經費")
    assert led.exemptions_for("covid", "2026-10") == {"A002": "本期無經費"}
    led.set_exempt("covid", "2026-10", "A002", None)
    assert led.exemptions_for("covid", "2026-10") == {}
    led.record_signoff("covid", "2026-10", "S01", "staff", "核轉")
    led.record_signoff("covid", "2026-10", "S01", "chief", None)
    assert led.signoffs_for("covid", "2026-10")["S01"]["by"] == "chief"


# -- several processes at once ---------------------------------------------------------------------------------------
def test_the_same_message_recorded_at_once_by_eight_threads_is_new_once(led: Ledger) -> None:
    results: list[tuple[int, bool]] = []
    barrier = threading.Barrier(8)

    def record() -> None:
        barrier.wait()
        results.append(led.record_message_with_files("<race@x>", "aa" * 32, "a@x", "s", "imap#9",
                                                     [("f.xlsx", "bb" * 32)]))

    threads = [threading.Thread(target=record) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 8
    assert sum(new for _, new in results) == 1
    assert len({mid for mid, _ in results}) == 1
    assert len(led.submissions_of_message(results[0][0])) == 1


def test_a_claim_is_held_by_one_process_and_freed_when_it_dies(led: Ledger, ledger_url: str) -> None:
    """PostgreSQL: an advisory lock on the server; SQLite: an OS lock on a file beside the ledger."""
    other = Ledger(ledger_url)
    try:
        with led.claim("message:<x>") as got:
            assert got is True
            with other.claim("message:<x>") as theirs:
                assert theirs is False
            with other.claim("message:<y>") as different:
                assert different is True
        with other.claim("message:<x>") as after:
            assert after is True
        # a holder killed with SIGKILL: the server drops its claim with its connection
        code = ("import sys, time; from collect.ledger import Ledger\n"
                "with Ledger(sys.argv[1]).claim('message:<z>') as got:\n"
                "    print(got, flush=True); time.sleep(60)\n")
        proc = subprocess.Popen([sys.executable, "-c", code, ledger_url], stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "True"
            with other.claim("message:<z>") as held:
                assert held is False
        finally:
            proc.kill()
            proc.wait()
        for _ in range(50):
            with other.claim("message:<z>") as freed:
                if freed:
                    break
            threading.Event().wait(0.1)
        assert freed is True
        with led.claim("remind:covid19:2026-10"), pytest.raises(LedgerBusy, match="reminding"), \
                other.hold("remind:covid19:2026-10", "reminding covid19 2026-10"):
            pass
    finally:
        other.close()


def test_a_snapshot_reads_one_state_while_another_process_writes(led: Ledger, ledger_url: str) -> None:
    led.record_submission("aa" * 32, "one.xlsx", None, None)
    writer = Ledger(ledger_url)
    try:
        with led.snapshot():
            before = len(led.pending_submissions())
            writer.record_submission("bb" * 32, "two.xlsx", None, None)
            assert len(writer.pending_submissions()) == 2
            assert len(led.pending_submissions()) == before == 1
        assert len(led.pending_submissions()) == 2
    finally:
        writer.close()


# -- schema revisions and `collect upgrade` ----------------------------------------------------------------------
def test_a_new_ledger_is_at_the_head_revision_and_matches_the_tables(led: Ledger, ledger_url: str) -> None:
    from alembic.script import ScriptDirectory

    assert ScriptDirectory(str(ledger_mod.MIGRATIONS)).get_current_head() == SCHEMA_VERSION
    assert tuple(s.revision for s in reversed(list(
        ScriptDirectory(str(ledger_mod.MIGRATIONS)).walk_revisions()))) == ledger_mod.KNOWN_VERSIONS
    with led.engine.connect() as c:
        assert schema_version(c) == SCHEMA_VERSION


def test_the_migrations_build_the_same_schema_as_the_tables(ledger_url: str) -> None:
    """An empty database migrated from revision 0001 has what `metadata` describes: nothing to autogenerate."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    done = upgrade(ledger_url)
    assert (done.before, done.after, done.backup) == (None, SCHEMA_VERSION, None)
    engine = sa.create_engine(ledger_url)
    try:
        with engine.connect() as c:
            diff = compare_metadata(MigrationContext.configure(c), ledger_mod.metadata)
        assert diff == []
    finally:
        engine.dispose()
    Ledger(ledger_url).close()  # and it opens


def _legacy(ledger_url: str, tmp_path: Path) -> str:
    """The ledger that collect made before migrations (tests/fixtures), loaded into `ledger_url`'s database."""
    if ledger_url.startswith("sqlite"):
        path = tmp_path / "old" / "ledger.sqlite"
        path.parent.mkdir()
        shutil.copyfile(FIXTURES / "ledger-before-migrations.sqlite", path)
        return f"sqlite:///{path}"
    import psycopg

    dsn = sa.engine.make_url(ledger_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute((FIXTURES / "ledger-before-migrations.postgresql.sql").read_text(encoding="utf-8"))
    return ledger_url


def test_the_fixture_sql_is_the_fixture_file() -> None:
    conn = sqlite3.connect(":memory:")
    conn.executescript((FIXTURES / "ledger-before-migrations.sqlite.sql").read_text(encoding="utf-8"))
    kept = sqlite3.connect(FIXTURES / "ledger-before-migrations.sqlite")
    for table in ("messages", "submissions", "findings", "outgoing", "issued"):
        assert conn.execute(f"SELECT * FROM {table}").fetchall() == kept.execute(f"SELECT * FROM {table}").fetchall()


def test_a_ledger_from_before_migrations_is_refused_then_upgraded_and_works(ledger_url: str, tmp_path: Path) -> None:
    url = _legacy(ledger_url, tmp_path)
    with pytest.raises(LedgerOutdated, match="older than schema migrations") as refused:
        Ledger(url)
    assert "collect upgrade" in refused.value.hint

    moment = datetime(2026, 12, 2, 3, 15, tzinfo=UTC)
    done = upgrade(url, moment=moment)
    assert (done.before, done.after) == (None, SCHEMA_VERSION)
    if url.startswith("sqlite"):
        assert done.backup == tmp_path / "old" / "ledger.sqlite.schema-0000-20261202T031500Z.bak"
        copy = sqlite3.connect(done.backup)
        assert copy.execute("SELECT count(*) FROM submissions").fetchone() == (1,)
        assert copy.execute("SELECT name FROM sqlite_master WHERE name='alembic_version'").fetchone() is None
    else:
        assert done.backup is None
    assert upgrade(url).backup is None  # already current: nothing to do

    led = Ledger(url)
    try:
        sub = led.submission("R20261105-000001")
        assert sub is not None
        assert (sub.verdict, sub.agency, sub.errors) == (Verdict.REJECTED, "A001", 1)
        assert led.findings_of(sub.id)[0].cell == "C7"
        assert led.exemptions_for("covid", "2026-10") == {"A002": "本期無經費"}
        assert led.round_info("covid", "2026-10")["closed"] is False  # type: ignore[index]
        # new rows get new ids after the old ones (PostgreSQL's sequences came along)
        mid, new = led.record_message_with_files("<after-upgrade@x>", "ff" * 32, "a@x", "s", "imap#3",
                                                 [("g.xlsx", "ee" * 32)])
        assert new and mid == 2
        assert [r.id for r in led.submissions_of_message(mid)] == [2]
        oid = led.record_outgoing("receipt", "<r2@c>", ["a@x"], "收件回執", "r2.eml")
        assert oid == 2 and led.outgoing_by_message_id("<r2@c>")["id"] == 2  # type: ignore[index]
        with led.engine.connect() as c:
            assert "ix_outgoing_message_id" in {i["name"] for i in sa.inspect(c).get_indexes("outgoing")}
    finally:
        led.close()


def test_a_ledger_of_an_older_revision_is_refused_and_upgraded(ledger_url: str) -> None:
    Ledger(ledger_url).close()
    engine = sa.create_engine(ledger_url)
    with engine.begin() as c:
        c.execute(sa.text("DROP INDEX ix_outgoing_message_id"))  # what revisions 0002 and 0003 add
        c.execute(sa.text("DROP TABLE digests"))
        c.execute(sa.text("DROP TABLE unit_signoffs"))
        c.execute(sa.text("UPDATE alembic_version SET version_num = '0001'"))
    engine.dispose()
    with pytest.raises(LedgerOutdated, match="has schema 0001; this collect needs 0003"):
        Ledger(ledger_url)
    done = upgrade(ledger_url)
    assert (done.before, done.after) == ("0001", SCHEMA_VERSION)
    assert (done.backup is not None) == ledger_url.startswith("sqlite")
    led = Ledger(ledger_url)
    with led.engine.connect() as c:
        assert "ix_outgoing_message_id" in {i["name"] for i in sa.inspect(c).get_indexes("outgoing")}
        assert {"digests", "unit_signoffs"} <= set(sa.inspect(c).get_table_names())
    led.close()


def test_a_ledger_newer_than_collect_is_refused_by_open_and_by_upgrade(ledger_url: str) -> None:
    Ledger(ledger_url).close()
    engine = sa.create_engine(ledger_url)
    with engine.begin() as c:
        c.execute(sa.text("UPDATE alembic_version SET version_num = '0099'"))
    engine.dispose()
    with pytest.raises(LedgerTooNew, match="schema 0099, newer than this collect knows"):
        Ledger(ledger_url)
    with pytest.raises(LedgerTooNew):
        upgrade(ledger_url)


def test_commands_refuse_an_old_ledger_with_the_hint_and_collect_upgrade_fixes_it(
        workspace: Path, tmp_path: Path) -> None:
    shutil.copyfile(FIXTURES / "ledger-before-migrations.sqlite", workspace / "state" / "ledger.sqlite")
    refused = run_cli("status", "covid19", "--round", "2026-10", cwd=workspace)
    assert refused.returncode == 1
    assert "older than schema migrations" in refused.stderr and "collect upgrade" in refused.stderr
    assert "Traceback" not in refused.stderr
    done = run_cli("upgrade", cwd=workspace)
    assert done.returncode == 0, done.stderr
    assert "0003" in done.stdout and "ledger.sqlite.schema-0000-" in done.stdout
    assert len(list((workspace / "state").glob("ledger.sqlite.schema-0000-*.bak"))) == 1
    again = run_cli("upgrade", cwd=workspace)
    assert again.returncode == 0 and "already" in again.stdout


def test_a_second_staff_reminding_the_same_round_at_once_is_refused_and_nothing_is_sent_twice(
        any_workspace: Path) -> None:
    from collect.forms.issuing import issue
    from collect.workspace import Context

    ctx = Context.open(any_workspace)
    try:
        issue(ctx, "covid19", "2026-10", agencies=["020001", "020002"])
        with ctx.ledger.claim("remind:covid19:2026-10") as held:  # a colleague's `collect remind` is running
            assert held
            refused = run_cli("remind", "covid19", "--round", "2026-10", cwd=any_workspace)
        assert refused.returncode == 1
        assert "Another process is sending the reminders of covid19 2026-10" in refused.stderr
        assert "Traceback" not in refused.stderr
        assert ctx.ledger.last_reminded("covid19", "2026-10") == {}
        assert not list((any_workspace / "outbox" / "mail").glob("*.eml"))
        with ctx.ledger.claim("remind:covid19:2026-10") as free:  # and the refused run left no claim behind
            assert free
    finally:
        ctx.close()


def test_a_claim_inside_a_claim_never_waits_for_itself(led: Ledger) -> None:
    """A round's mailing holds one claim while each message claims its Message-ID: two names that land on one claim
    file (SQLite) must not make the process wait for itself (seen: `collect remind` hung)."""
    from collect.ledger import _claim_key

    first = "remind:covid19:2026-10"
    second = next(f"<m{i}@example.test>" for i in range(100_000)
                  if _claim_key(f"<m{i}@example.test>") % 1024 == _claim_key(first) % 1024)
    with led.claim(first) as outer, led.claim(second) as inner:  # without waiting: a self-wait fails fast
        assert outer and inner
    with led.claim(second) as again:  # and both are free afterwards
        assert again
