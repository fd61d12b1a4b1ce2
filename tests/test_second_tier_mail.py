"""The second tier through the Dovecot (IMAP) and SMTP test servers, with the commands a user runs: units return,
the digest reaches the supervising agency with its slice and 核轉表, one unit is sent back, resends, is signed off
again, and the report counts exactly the signed-off units."""

from __future__ import annotations

import io
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from conftest import SECRET, run_cli
from ingest_util import ROUND, acct, agency_mail, attachments, fill, mail_text, rows
from mailserver import PASSWORD, MailServer, configure

from collect.follow.signoff import counting_agencies
from collect.follow.status import round_status
from collect.forms.issuing import issue
from collect.forms.signoff_book import FIRST_ROW, SHEET
from collect.states import State
from collect.workspace import Context

SUP, UNITS = "020000", ("020001", "020002", "020003")
ME = "collect-tier@example.test"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MailServer]:
    srv = MailServer(tmp_path_factory.mktemp("tiermail") / "srv").start()
    yield srv
    srv.stop()


def cli(root: Path, *args: str) -> str:
    done = run_cli("--workspace", str(root), *args, env={"COLLECT_SECRET": SECRET, "COLLECT_MAIL_PASSWORD": PASSWORD})
    assert done.returncode == 0, done.stderr + done.stdout
    return done.stdout


def latest(server: MailServer, user: str, subject: str) -> EmailMessage:
    found = [m for m in server.messages(user) if subject in str(m["Subject"])]
    assert found, f"no message with {subject!r} for {user}"
    return found[-1]


def signoff_book(msg: EmailMessage) -> bytes:
    return next(data for name, data in attachments(msg).items() if name.endswith("核轉表.xlsx"))


def fill_signoff(data: bytes, path: Path, decisions: dict[str, tuple[str, str | None]]) -> Path:
    wb = openpyxl.load_workbook(io.BytesIO(data))
    ws = wb[SHEET]
    for r in range(FIRST_ROW, ws.max_row + 1):
        if ws[f"A{r}"].value in decisions:
            ws[f"I{r}"], ws[f"J{r}"] = decisions[ws[f"A{r}"].value]
    ws["B3"], ws["D3"] = "民政局會計室 王主任", "115/11/12"
    wb.save(path)
    return path


def test_two_tier_trip_through_imap_and_smtp(server: MailServer, workspace: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLLECT_MAIL_PASSWORD", PASSWORD)
    configure(workspace, server, user=ME)
    toml = workspace / "collect.toml"
    toml.write_text(toml.read_text(encoding="utf-8").replace('sender = "collect@example.test"', f'sender = "{ME}"'),
                    encoding="utf-8")
    rules = workspace / "rules" / "covid19.py"
    rules.write_text(rules.read_text(encoding="utf-8").replace(
        "prefill_previous=True,", "prefill_previous=True,\n    require_signoff=True,"), encoding="utf-8")
    with _opened(workspace) as ctx:
        issued = {i.agency: i.path for i in issue(ctx, "covid19", ROUND, agencies=list(UNITS)).issued}

    def send(sender: str, path: Path) -> None:
        server.send(agency_mail(sender, [path], to=ME)[0], sender, [ME])

    for code in UNITS:
        send(acct(code), fill(issued[code], tmp_path / f"{code}.xlsx", rows(2, prefix=code)))
    cli(workspace, "fetch")
    cli(workspace, "report", "covid19", "--round", ROUND)
    cli(workspace, "digest", "covid19", "--round", ROUND, "--send", "--supervisor", SUP)

    digest = latest(server, acct(SUP), "所屬機關填報彙整")
    names = list(attachments(digest))
    assert any(n.startswith(f"covid19-{ROUND}-{SUP}-") and not n.endswith("核轉表.xlsx") for n in names)
    assert "020002" in mail_text(digest) and "核轉表" in mail_text(digest)
    decisions = {"020001": ("核轉", None), "020002": ("退回", "實支數與會計月報不符"), "020003": ("核轉", None)}
    first = fill_signoff(signoff_book(digest), tmp_path / "signoff-1.xlsx", decisions)
    send(acct(SUP), first)
    out = cli(workspace, "fetch")
    assert "核轉 2、退回 1（020002）" in out

    told = latest(server, acct("020002"), "主管機關退回")
    assert "實支數與會計月報不符" in mail_text(told) and attachments(told)
    assert any("主管機關退回" in str(m["Subject"]) for m in server.messages(acct(SUP)))  # copied
    with _opened(workspace) as ctx:
        st = {r.agency: r.state for r in round_status(ctx, "covid19", ROUND).rows}
        assert st["020002"] == State.RETURNED
        assert counting_agencies(ctx, "covid19", ROUND) == {"020001", "020003"}

    send(acct("020002"), fill(issued["020002"], tmp_path / "020002-again.xlsx", rows(3, prefix="again")))
    cli(workspace, "fetch")
    cli(workspace, "report", "covid19", "--round", ROUND)
    cli(workspace, "digest", "covid19", "--round", ROUND, "--send", "--supervisor", SUP)
    second = latest(server, acct(SUP), "所屬機關填報彙整")
    assert second["Message-ID"] != digest["Message-ID"] and "020002" in mail_text(second)
    send(acct(SUP), fill_signoff(signoff_book(second), tmp_path / "signoff-2.xlsx", {"020002": ("核轉", None)}))
    assert "核轉 1、退回 0" in cli(workspace, "fetch")

    cli(workspace, "report", "covid19", "--round", ROUND)
    with _opened(workspace) as ctx:
        assert counting_agencies(ctx, "covid19", ROUND) == set(UNITS)
    csv_path = next((workspace / "outbox" / "covid19" / ROUND / "report").glob("*.csv"))
    text = csv_path.read_text(encoding="utf-8-sig")
    assert sum(1 for line in text.splitlines()[1:] if line) == 2 + 3 + 2


class _opened:
    """A context opened and closed around a block."""

    def __init__(self, root: Path) -> None:
        self.ctx = Context.open(root)

    def __enter__(self) -> Context:
        return self.ctx

    def __exit__(self, *_exc: Any) -> None:
        self.ctx.close()
