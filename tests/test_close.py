"""Closing a round through the CLI: a late return gets the round-closed answer; reopened, it is decided normally."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli
from ingest_util import ROUND, fill, json_lines, mail_text, read_mail, row, triples

from collect.errors import CollectionError, NotFound
from collect.follow.closing import RoundClosure, close_round, reopen_round, round_closed
from collect.states import Verdict
from collect.workspace import Context

LATE = "020001"  # sends after the close; staff reopen and reprocess the same file
RESEND = "020002"  # sends after the close; after the reopen sends a corrected copy again


@contextmanager
def _open(ws: Path) -> Iterator[Context]:
    c = Context.open(ws)
    try:
        yield c
    finally:
        c.close()


def cli(ws: Path, *args: str) -> tuple[int, str, str]:
    done = run_cli("--workspace", str(ws), *args)
    return done.returncode, done.stdout, done.stderr


def ingest(ws: Path, path: Path) -> dict[str, Any]:
    code, stdout, stderr = cli(ws, "ingest", str(path), "--json")
    assert code == 0, stderr
    [line] = json_lines(stdout)
    return line


def test_close_late_return_reopen_reprocess_and_resend(workspace: Path, tmp_path: Path) -> None:
    code, _, stderr = cli(workspace, "issue", "covid19", "--round", ROUND, "--agency", LATE, "--agency", RESEND)
    assert code == 0, stderr
    with _open(workspace) as c:
        issued = {a: workspace / v["path"] for a, v in c.ledger.issued_for("covid19", ROUND).items()}

    code, stdout, stderr = cli(workspace, "close", "covid19", "--round", ROUND)
    assert code == 0, stderr
    assert "covid19 2026-10: closed" in stdout
    code, stdout, _ = cli(workspace, "close", "covid19", "--round", ROUND)
    assert code == 0 and "already closed" in stdout
    code, stdout, _ = cli(workspace, "status", "covid19", "--round", ROUND)
    assert code == 0 and "已停止收件" in stdout

    late = ingest(workspace, fill(issued[LATE], tmp_path / "late.xlsx", [row()]))
    assert (late["verdict"], late["agency"], triples(late["findings"])) == (
        "rejected", LATE, [("stamp.round_closed", None, "error")])
    assert late["findings"][0]["message"] == "填報期間 115年10月 已截止收件。"
    first = ingest(workspace, fill(issued[RESEND], tmp_path / "first.xlsx", [row()]))
    assert (first["verdict"], triples(first["findings"])) == ("rejected", [("stamp.round_closed", None, "error")])
    with _open(workspace) as c:
        sub = c.ledger.submission(late["receipt"])
        assert sub is not None and sub.receipt_path
        receipt = read_mail(Path(sub.receipt_path))
        assert "退件" in receipt["Subject"] and late["receipt"] in receipt["Subject"]
        assert "已截止收件" in mail_text(receipt)
        assert c.ledger.latest_accepted("covid19", ROUND, LATE) is None

    code, stdout, stderr = cli(workspace, "reopen", "covid19", "--round", ROUND)
    assert code == 0, stderr
    assert "covid19 2026-10: reopened" in stdout
    code, stdout, _ = cli(workspace, "status", "covid19", "--round", ROUND)
    assert code == 0 and "已停止收件" not in stdout

    code, stdout, stderr = cli(workspace, "reprocess", late["receipt"], "--json")
    assert code == 0, stderr
    [again] = json_lines(stdout)
    assert (again["receipt"], again["verdict"], again["findings"]) == (late["receipt"], "accepted", [])
    resent = ingest(workspace, fill(issued[RESEND], tmp_path / "resent.xlsx", [row(note="更正")]))
    assert (resent["verdict"], resent["findings"]) == ("accepted", [])
    with _open(workspace) as c:
        assert not round_closed(c, "covid19", ROUND)
        for agency, receipt in ((LATE, late["receipt"]), (RESEND, resent["receipt"])):
            counting = c.ledger.latest_accepted("covid19", ROUND, agency)
            assert counting is not None and counting.receipt == receipt
            assert counting.verdict == Verdict.ACCEPTED


def test_closing_needs_an_issued_round_and_says_when_nothing_changed(ctx: Context) -> None:
    from collect.forms.issuing import issue

    with pytest.raises(NotFound, match="covid19 2026-10 has not been issued") as raised:
        close_round(ctx, "covid19", ROUND)
    assert "collect issue covid19 --round 2026-10" in raised.value.hint
    with pytest.raises(CollectionError, match="no collection 'nosuch'"):
        reopen_round(ctx, "nosuch", ROUND)
    issue(ctx, "covid19", ROUND, agencies=[LATE])
    assert not round_closed(ctx, "covid19", ROUND)
    assert reopen_round(ctx, "covid19", ROUND).changed is False
    assert close_round(ctx, "covid19", ROUND) == RoundClosure("covid19", ROUND, closed=True, changed=True)
    assert close_round(ctx, "covid19", ROUND).changed is False
    assert round_closed(ctx, "covid19", ROUND) and not round_closed(ctx, "covid19", "2026-11")
    assert reopen_round(ctx, "covid19", ROUND) == RoundClosure("covid19", ROUND, closed=False, changed=True)


def test_close_without_an_issued_round_fails_with_a_hint(workspace: Path) -> None:
    code, stdout, stderr = cli(workspace, "close", "covid19", "--round", ROUND)
    assert code == 1 and not stdout
    assert "has not been issued" in stderr and "hint:" in stderr and "Traceback" not in stderr


def test_a_collection_may_take_late_returns_with_a_warning(workspace: Path, tmp_path: Path) -> None:
    from collect.forms.issuing import issue
    from collect.receive.ingest import Ingestor

    rules = workspace / "rules" / "covid19.py"
    text = rules.read_text(encoding="utf-8")
    rules.write_text(text.replace('    deadline_days=10,\n', '    deadline_days=10,\n    closed_round="warning",\n'),
                     encoding="utf-8")
    with _open(workspace) as c:
        assert c.collection("covid19").meta.closed_round == "warning"
        [issued] = issue(c, "covid19", ROUND, agencies=[LATE]).issued
        close_round(c, "covid19", ROUND)
        with Ingestor(c) as ing:
            [outcome] = ing.paths([fill(issued.path, tmp_path / "late.xlsx", [row()])])
    assert (outcome.verdict, triples(outcome.findings)) == (Verdict.ACCEPTED, [("stamp.round_closed", None, "warning")])
