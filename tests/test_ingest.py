"""Ingest end to end: stamped covid19 returns filled like an agency would, ingested, decided, archived and answered."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import openpyxl
import pandas as pd
import pytest
from conftest import SECRET, convert, run_cli, use_ledger
from ingest_util import (
    CSV_BYTES,
    HTML_BYTES,
    PDF_BYTES,
    PREVIOUS,
    ROUND,
    SHEET,
    acct,
    agency_mail,
    attachments,
    encrypt,
    entity_expansion,
    fill,
    foreign_workbook,
    json_lines,
    mail_text,
    read_mail,
    remove_stamp,
    row,
    rows,
    set_stamp_field,
    triples,
    zip_bomb,
)
from openpyxl.worksheet.worksheet import Worksheet

from collect.archive import sha256_of
from collect.forms.issuing import issue
from collect.receive.ingest import Ingestor, Outcome
from collect.receive.sandbox import Sandbox
from collect.states import Stage, Verdict
from collect.workspace import Context, init_workspace

# Who is used for what (all public agencies of the sample list, so all in covid19's scope).
BATCH = "020001"  # the failure-mode batch
COUNTING = "020002"  # accepted, then rejected
COMPARE = "020003"  # 2026-09 accepted, then 2026-10 compared with it
DONE_CLEAN, DONE_FAULTY, DONE_OTHER = "020004", "020005", "020006"
LO_XLSX, LO_ODS = "020007", "020008"
BAD_FILES = "020009"
RESUME = "020010"
REOPENED = "020011"
UNIT, SUPERVISOR = "010001", "010000"  # 010001 is supervised by 010000
SENT_BACK = "020013"  # accepted, sent back (退回) by 020000, then rejected
COPIES, MAIL_COPIES = "020014", "020015"  # the same file twice in one run
IN_SCOPE = [BATCH, COUNTING, COMPARE, DONE_CLEAN, DONE_FAULTY, DONE_OTHER, LO_XLSX, LO_ODS, BAD_FILES, RESUME, REOPENED,
             UNIT, SENT_BACK, COPIES, MAIL_COPIES]

CORPUS = Path("/work/shared/corpus")
JSON_KEYS = {"file", "sha256", "verdict", "collection", "round", "agency", "receipt", "findings"}


@dataclass
class Env:
    """The module's workspace: issued workbooks by agency (and round), an open context and one sandbox."""

    root: Path
    ctx: Context
    sandbox: Sandbox
    issued: dict[tuple[str, str], Path]
    made: Path

    def workbook(self, code: str, name: str, data: Any = (), round_id: str = ROUND, **kw: Any) -> Path:
        """A filled copy of `code`'s stamped workbook under made/<name>."""
        return fill(self.issued[(code, round_id)], self.made / name, data, **kw)

    def ingest(self, paths: list[Path]) -> list[Outcome]:
        with Ingestor(self.ctx, sandbox=self.sandbox) as ing:
            return ing.paths(paths)

    def cli(self, *args: str) -> Any:
        return run_cli("--workspace", str(self.root), *args)

    def mail_for(self, outcome: Outcome) -> Any:
        assert outcome.receipt_mail is not None, f"no receipt mail for {outcome.file}"
        return read_mail(outcome.receipt_mail)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    """Stamp covid19 once for the module: 2026-10 for every agency used here, 2026-09 for the comparison. Every
    test of the module runs on both ledgers: the workspace's SQLite file, then a PostgreSQL database."""
    base = tmp_path_factory.mktemp("ingest")
    root = base / "ws"
    mp = pytest.MonkeyPatch()  # module-scoped fixtures (the batch) ingest before any test's own environment
    mp.setenv("COLLECT_SECRET", SECRET)
    init_workspace(root)
    if request.param == "postgresql":
        use_ledger(root, request.getfixturevalue("pg_server").database())
    ctx = Context.open(root)
    issued: dict[tuple[str, str], Path] = {}
    for round_id, codes in ((PREVIOUS, [COMPARE]), (ROUND, IN_SCOPE)):
        result = issue(ctx, "covid19", round_id, agencies=codes)
        issued.update({(i.agency, round_id): i.path for i in result.issued})
    sandbox = Sandbox(workers=2)
    yield Env(root, ctx, sandbox, issued, base / "made")
    sandbox.close()
    ctx.close()
    mp.undo()


# -- one returned workbook per failure mode, all ingested in one run ------------------------------------------------
def _delete_category(ws: Worksheet) -> None:
    ws.delete_cols(3)


def _merge(ws: Worksheet) -> None:
    ws.merge_cells("J7:J8")


TWO = [row("口罩採購", item=1), row("快篩試劑", item=2, category="紓困", source="中央補助")]
DATES = ["115/03/05", "115.3.5", "115年3月5日", "民國115年3月5日"]

Expected = list[tuple[str, str | None, str]]
# deleting 類別 (column C) shifts every later column one to the left
SHIFTED: Expected = [("table.column_missing", "C6", "error"), *[("table.column_moved", f"{c}6", "error")
                                                                for c in "CDEFGHI"]]
# name -> (rows, fill keywords, verdict, exact (code, cell, severity) findings)
CASES: dict[str, tuple[Any, dict[str, Any], Verdict, Expected]] = {
    "clean": (TWO, {}, Verdict.ACCEPTED, []),
    "text_amounts": ([row("口罩採購", approved="１,２３４", committed="NT$1,000", spent="1,000")], {},
                     Verdict.ACCEPTED, []),
    "roc_dates": ([row(f"計畫{i}", item=i, approved_on=d) for i, d in enumerate(DATES, start=1)], {},
                  Verdict.ACCEPTED, []),
    "choice": ([row(category="防疫費")], {}, Verdict.REJECTED, [("value.choice", "C7", "error")]),
    "spent_over_committed": ([row(committed=800_000, spent=900_000)], {}, Verdict.REJECTED,
                             [("row.rule", "G7", "error")]),
    "committed_over_approved": ([row(approved=1_000_000, committed=1_200_000, spent=100_000)], {},
                                Verdict.REJECTED, [("row.rule", "F7", "error")]),
    "required": ([row(source=None)], {}, Verdict.REJECTED, [("value.required", "D7", "error")]),
    "not_number": ([row(approved="一千")], {}, Verdict.REJECTED, [("value.not_number", "E7", "error")]),
    "not_whole": ([row(committed=12.5, spent=10)], {}, Verdict.REJECTED, [("value.not_whole", "F7", "error")]),
    "date_after_round": ([row(approved_on=date(2026, 11, 1))], {}, Verdict.REJECTED, [("value.max", "I7", "error")]),
    "date_before_2020": ([row(approved_on=date(2019, 12, 31))], {}, Verdict.REJECTED,
                         [("value.min", "I7", "error")]),
    "date_far_future": ([row(approved_on=date(9999, 12, 31))], {}, Verdict.REJECTED,
                        [("value.invalid", "I7", "error")]),
    "too_long": ([row("計" * 101)], {}, Verdict.REJECTED, [("value.too_long", "B7", "error")]),
    "duplicate_name": ([row("口罩採購", item=1), row("口罩採購", item=2)], {}, Verdict.REJECTED,
                       [("value.duplicate", "B7", "error"), ("value.duplicate", "B8", "error")]),
    "total_row": ([*TWO, row("合計", item=None, category=None, source=None, approved=2_000_000, committed=None,
                             spent=None, approved_on=None)], {}, Verdict.ACCEPTED,
                  [("table.total_row", "B9", "warning")]),
    "total_in_first_column": ([*TWO, row(None, item="總計", category=None, source=None, approved=2_000_000,
                                         committed=None, spent=None, approved_on=None)], {}, Verdict.ACCEPTED,
                              [("table.total_row", "A9", "warning")]),
    "outside": (TWO, {"cells": {"M8": "另計 5,000 元"}}, Verdict.REJECTED, [("table.outside", "M8", "error")]),
    # an agency that pre-numbers 項次 and fills two rows: the numbered rows are blank rows, not 56 missing values
    "prenumbered": (TWO, {"cells": {f"A{r}": r - 6 for r in range(9, 17)}}, Verdict.ACCEPTED, []),
    # a note typed under the table (and one beside it, lower down): one warning at its own cell each, no extra rows
    "note_below": (TWO, {"cells": {"B210": "備註：本月無其他支出", "K215": "承辦人 王小明"}}, Verdict.ACCEPTED,
                   [("table.note", "B210", "warning"), ("table.note", "K215", "warning")]),
    "renamed_header": (TWO, {"cells": {"E6": "核定金額"}}, Verdict.REJECTED,
                       [("table.column_renamed", "E6", "error")]),
    "deleted_column": (TWO, {"edit": _delete_category}, Verdict.REJECTED,
                       SHIFTED),
    "merged": (TWO, {"edit": _merge}, Verdict.REJECTED, [("table.merged", "J7", "error")]),
    "too_many_rows": (rows(201), {}, Verdict.REJECTED, [("table.too_many_rows", None, "error")]),
    "empty": ([], {}, Verdict.REJECTED, [("table.empty", None, "error")]),
    "agency_code_changed": (TWO, {"cells": {"B2": COUNTING}}, Verdict.TAMPERED,
                            [("stamp.identity_changed", "B2", "error")]),
    "stamp_changed": (TWO, {"book_edit": lambda wb: set_stamp_field(wb, "agency", COUNTING)}, Verdict.TAMPERED,
                      [("stamp.invalid", None, "error")]),
    "stamp_removed": (TWO, {"book_edit": remove_stamp}, Verdict.UNIDENTIFIED, [("stamp.missing", None, "error")]),
}


@pytest.fixture(scope="module")
def batch(env: Env) -> dict[str, Outcome]:
    """Every case file plus a foreign workbook, ingested in one Ingestor run (the normal case)."""
    paths = [env.workbook(BATCH, f"{name}.xlsx", data, **kw) for name, (data, kw, _v, _f) in CASES.items()]
    paths.append(foreign_workbook(env.made / "foreign.xlsx"))
    outcomes = env.ingest(paths)
    assert [o.file for o in outcomes] == [p.name for p in paths]
    return {Path(o.file).stem: o for o in outcomes}


@pytest.mark.parametrize("case", list(CASES))
def test_each_failure_mode_gets_exactly_its_findings(batch: dict[str, Outcome], case: str) -> None:
    _data, _kw, verdict, expected = CASES[case]
    outcome = batch[case]
    assert (outcome.verdict, triples(outcome.findings)) == (verdict, expected)
    identified = case not in ("stamp_removed", "stamp_changed")  # a stamp that does not verify names nobody
    assert (outcome.collection, outcome.round, outcome.agency) == (
        ("covid19", ROUND, BATCH) if identified else (None, None, None))


def test_findings_name_the_column_and_the_value_typed(batch: dict[str, Outcome]) -> None:
    choice = batch["choice"].findings[0]
    assert (choice.sheet, choice.column, choice.value) == (SHEET, "類別", "防疫費")
    assert "防疫、紓困、振興" in choice.message
    assert batch["not_number"].findings[0].value == "一千"
    assert "已動支數不可大於核定經費" in batch["committed_over_approved"].findings[0].message
    assert "實支數不可大於已動支數" in batch["spent_over_committed"].findings[0].message
    assert batch["too_long"].findings[0].message == "「計畫名稱」最多 100 個字，填寫了 101 個字。"
    assert batch["too_many_rows"].findings[0].message == "資料列數 201 超過上限 200 列。"
    assert "另計 5,000 元" in batch["outside"].findings[0].message
    renamed = batch["renamed_header"].findings[0]
    assert "核定經費" in renamed.message and "核定金額" in renamed.message
    changed = batch["agency_code_changed"].findings[0]
    assert BATCH in changed.message and COUNTING in changed.message
    assert "合計" in batch["total_row"].findings[0].message
    forged = batch["stamp_changed"]
    assert COUNTING in (forged.findings[0].value or "")  # what it claimed, for staff
    assert forged.receipt_mail is None  # nobody is written to on a forged stamp's word


def test_dates_after_the_round_and_before_2020_say_the_bound(batch: dict[str, Outcome]) -> None:
    assert "109/01/01" in batch["date_before_2020"].findings[0].message
    late = batch["date_after_round"].findings[0].message
    assert "115/10/31" in late, late


def test_normalised_amounts_and_roc_dates_are_stored_exactly(env: Env, batch: dict[str, Outcome]) -> None:
    def frame(case: str) -> pd.DataFrame:
        sub = env.ctx.ledger.submission(batch[case].receipt)
        assert sub is not None and sub.frame_path
        return pd.read_parquet(env.ctx.ws.state_dir / sub.frame_path)

    amounts = frame("text_amounts").iloc[0]
    assert (amounts["approved"], amounts["committed"], amounts["spent"]) == (1234, 1000, 1000)
    dates = frame("roc_dates")
    assert [d.date() for d in dates["approved_on"]] == [date(2026, 3, 5)] * 4
    totals = frame("total_row")
    assert list(totals["name"]) == ["口罩採購", "快篩試劑"]  # the typed 合計 row is left out


def test_unidentified_messages_name_what_was_found(batch: dict[str, Outcome]) -> None:
    removed = batch["stamp_removed"].findings[0].message
    assert "填報表" in removed and "識別資訊" in removed
    foreign = batch["foreign"]
    assert foreign.verdict == Verdict.UNIDENTIFIED
    assert triples(foreign.findings) == [("stamp.missing", None, "error")]
    assert "經費明細" in foreign.findings[0].message and "備註" in foreign.findings[0].message


def test_receipts_go_to_the_agency_and_unknown_files_get_none(env: Env, batch: dict[str, Outcome]) -> None:
    msg = env.mail_for(batch["choice"])
    assert msg["To"].addresses[0].addr_spec == acct(BATCH)
    assert "退件" in msg["Subject"] and batch["choice"].receipt in msg["Subject"]
    assert "填報表!C7" in mail_text(msg) and "檢核結果：退件" in mail_text(msg)
    accepted = env.mail_for(batch["clean"])
    assert "通過" in accepted["Subject"] and "檢核結果：通過" in mail_text(accepted)
    assert batch["foreign"].receipt_mail is None  # no sender and no agency: nobody to answer


def test_nothing_lost_every_file_archived_and_recorded(env: Env, batch: dict[str, Outcome]) -> None:
    for outcome in batch.values():
        sub = env.ctx.ledger.submission(outcome.receipt)
        assert sub is not None and sub.stage == Stage.PROCESSED and sub.verdict == outcome.verdict
        assert outcome.sha256 in env.ctx.archive
        assert sha256_of(env.ctx.archive.get(outcome.sha256)) == outcome.sha256
        assert env.ctx.archive.get(outcome.sha256) == (env.made / outcome.file).read_bytes()
        assert triples(env.ctx.ledger.findings_of(sub.id)) == triples(outcome.findings)


def test_reingesting_a_file_is_a_duplicate_pointing_at_the_first_receipt(env: Env,
                                                                           batch: dict[str, Outcome]) -> None:
    first = batch["clean"]
    again = env.ingest([env.made / "clean.xlsx"])[0]
    assert (again.verdict, again.duplicate_of, again.agency) == (Verdict.DUPLICATE, first.receipt, BATCH)
    assert again.receipt != first.receipt
    text = mail_text(env.mail_for(again))
    assert first.receipt in text and "重複" in env.mail_for(again)["Subject"]
    counting = env.ctx.ledger.latest_accepted("covid19", ROUND, BATCH)
    assert counting is not None and counting.verdict == Verdict.ACCEPTED


def test_reprocess_redecides_an_archived_submission_and_answers_again(env: Env) -> None:
    """A return that came in while the round was closed is rejected; staff reopen the round and reprocess it."""
    path = env.workbook(REOPENED, "reopened.xlsx", TWO)
    env.ctx.ledger.set_round_closed("covid19", ROUND, True)
    try:
        [closed] = env.ingest([path])
    finally:
        env.ctx.ledger.set_round_closed("covid19", ROUND, False)
    assert (closed.verdict, triples(closed.findings)) == (Verdict.REJECTED, [("stamp.round_closed", None, "error")])
    assert "退件" in env.mail_for(closed)["Subject"]

    done = env.cli("reprocess", closed.receipt, "--json")
    assert done.returncode == 0, done.stderr
    [line] = json_lines(done.stdout)
    assert (line["receipt"], line["verdict"], line["findings"]) == (closed.receipt, "accepted", [])
    sub = env.ctx.ledger.submission(closed.receipt)
    assert sub is not None and sub.verdict == Verdict.ACCEPTED and sub.errors == 0
    assert env.ctx.ledger.findings_of(sub.id) == []
    counting = env.ctx.ledger.latest_accepted("covid19", ROUND, REOPENED)
    assert counting is not None and counting.receipt == closed.receipt
    # the agency hears the new verdict: a second receipt, not the first one again
    assert sub.receipt_path and Path(sub.receipt_path) != closed.receipt_mail
    again = read_mail(Path(sub.receipt_path))
    assert "通過" in again["Subject"] and closed.receipt in again["Subject"]
    assert "退件" in env.mail_for(closed)["Subject"]  # the first receipt is kept as it was sent
    with Ingestor(env.ctx, sandbox=env.sandbox) as ing:
        same = ing.reprocess(closed.receipt)  # the same decision again: nothing new to tell the agency
    assert same.verdict == Verdict.ACCEPTED and same.receipt_mail == Path(sub.receipt_path)
    assert len([p for p in env.ctx.ws.mail_outbox.glob("*.eml") if closed.receipt in p.name]) == 2


def test_annotated_copy_marks_the_failing_cells_and_keeps_the_values(env: Env, batch: dict[str, Outcome]) -> None:
    outcome = batch["duplicate_name"]
    files = attachments(env.mail_for(outcome))
    [(name, data)] = files.items()
    assert name.endswith(".xlsx") and outcome.receipt in name
    copy = openpyxl.load_workbook(io.BytesIO(data))
    assert copy.sheetnames[0] == "檢核結果"
    sheet = copy[SHEET]
    for cell in ("B7", "B8"):
        comment = sheet[cell].comment
        assert comment is not None and "重複" in comment.text
    original = openpyxl.load_workbook(env.made / "duplicate_name.xlsx")[SHEET]
    for r in range(1, 10):
        for c in range(1, 11):
            if c == 8:  # the execution-rate formula: the copy may hold its value
                continue
            assert sheet.cell(r, c).value == original.cell(r, c).value, sheet.cell(r, c).coordinate


# -- mail ------------------------------------------------------------------------------------------------------------
def test_done_means_clean_faulty_and_foreign_sender(env: Env) -> None:
    """Three returns by mail: the clean one accepted, the faulty one lists exactly its five cells, the third held."""
    clean = env.workbook(DONE_CLEAN, "done-clean.xlsx", TWO)
    faulty = env.workbook(DONE_FAULTY, "done-faulty.xlsx", [
        row("口罩採購", item=1, category="防疫費"),  # C7 not in the list
        row("快篩試劑", item=2, approved="一千"),  # E8 not a number
        row("防護衣", item=3, committed=900_000, spent=950_000),  # G9 spent above committed
        row("酒精", item=4, approved_on="115/13/45"),  # I10 not a date
        row(None, item=5),  # B11 required
    ])
    other = env.workbook(DONE_OTHER, "done-other.xlsx", TWO)
    inbox = env.made / "done-inbox"
    inbox.mkdir()
    sent = {}
    for name, sender, path in (("1-clean.eml", acct(DONE_CLEAN), clean), ("2-faulty.eml", acct(DONE_FAULTY), faulty),
                               ("3-other.eml", acct(DONE_CLEAN), other)):
        raw, mid = agency_mail(sender, [path])
        (inbox / name).write_bytes(raw)
        sent[path.name] = (sender, mid)
    outcomes = {o.file: o for o in env.ingest([inbox])}
    assert {k: o.verdict for k, o in outcomes.items()} == {
        "done-clean.xlsx": Verdict.ACCEPTED, "done-faulty.xlsx": Verdict.REJECTED,
        "done-other.xlsx": Verdict.QUARANTINED}

    for file, outcome in outcomes.items():  # the three messages were decided together, each answered on its own
        sub = env.ctx.ledger.submission(outcome.receipt)
        assert sub is not None and sub.message_id is not None
        assert env.ctx.ledger.message_stage(sub.message_id) == Stage.PROCESSED
        msg = env.mail_for(outcome)
        sender, mid = sent[file]
        assert [a.addr_spec for a in msg["To"].addresses] == [sender]
        assert msg["In-Reply-To"] == mid and mid in msg["References"]
        assert outcome.receipt in msg["Subject"]

    clean_mail = env.mail_for(outcomes["done-clean.xlsx"])
    assert "通過" in clean_mail["Subject"] and not attachments(clean_mail)

    faulty_out = outcomes["done-faulty.xlsx"]
    five = [("value.required", "B11", "error"), ("value.choice", "C7", "error"),
            ("value.not_number", "E8", "error"), ("row.rule", "G9", "error"), ("value.not_date", "I10", "error")]
    assert sorted(triples(faulty_out.findings)) == sorted(five)
    faulty_mail = env.mail_for(faulty_out)
    assert "退件" in faulty_mail["Subject"]
    text = mail_text(faulty_mail)
    listed = re.findall(r"填報表!([A-Z]+[0-9]+)", text)
    assert sorted(listed) == sorted(cell for _c, cell, _s in five)
    assert "錯誤 5 項、警告 0 項" in text
    [data] = attachments(faulty_mail).values()
    copy = openpyxl.load_workbook(io.BytesIO(data))
    assert copy.sheetnames[0] == "檢核結果"
    for _code, cell, _sev in five:
        assert copy[SHEET][cell].comment is not None, cell
    original = openpyxl.load_workbook(faulty)[SHEET]
    for cell in ("B7", "C7", "E8", "F9", "G9", "I10", "A11"):
        assert copy[SHEET][cell].value == original[cell].value

    held = outcomes["done-other.xlsx"]
    assert triples(held.findings) == [("sender.unknown", None, "error")]
    assert acct(DONE_CLEAN) in held.findings[0].message
    held_mail = env.mail_for(held)
    assert "暫存待確認" in held_mail["Subject"]
    assert not attachments(held_mail)  # no annotated copy goes to an address we do not know
    assert env.ctx.ledger.latest_accepted("covid19", ROUND, DONE_OTHER) is None


def test_supervising_agencys_address_is_accepted(env: Env) -> None:
    path = env.workbook(UNIT, "unit-by-supervisor.xlsx", TWO)
    raw, _mid = agency_mail(f"head.{SUPERVISOR}@example.test", [path])
    eml = env.made / "unit-by-supervisor.eml"
    eml.write_bytes(raw)
    [outcome] = env.ingest([eml])
    assert (outcome.verdict, outcome.agency, outcome.findings) == (Verdict.ACCEPTED, UNIT, [])
    assert env.mail_for(outcome)["To"].addresses[0].addr_spec == f"head.{SUPERVISOR}@example.test"


def test_a_rejected_return_leaves_the_accepted_one_counting(env: Env) -> None:
    good = env.workbook(COUNTING, "counting-good.xlsx", TWO)
    bad = env.workbook(COUNTING, "counting-bad.xlsx", [row(category="防疫費")])
    first, second = env.ingest([good, bad])
    assert (first.verdict, second.verdict) == (Verdict.ACCEPTED, Verdict.REJECTED)
    counting = env.ctx.ledger.latest_accepted("covid19", ROUND, COUNTING)
    assert counting is not None and counting.receipt == first.receipt
    text = mail_text(env.mail_for(second))
    assert first.receipt in text and "仍為本期計入的資料" in text


def test_a_rejected_return_after_a_sent_back_one_says_nothing_counts_in_taipei_roc_dates(env: Env) -> None:
    """The accepted version came by mail at 00:30 Taipei time (16:30 the day before in UTC); its supervising agency
    sent it back; the next return is rejected. Its receipt must not say the sent-back version still counts, and
    dates that version as the agency does: 115/11/27 00:30, not 2026-11-26."""
    good = env.workbook(SENT_BACK, "sent-back-good.xlsx", TWO)
    raw, _mid = agency_mail(acct(SENT_BACK), [good])
    eml = env.made / "sent-back-good.eml"
    eml.write_bytes(raw.replace(b"Date: Fri, 27 Nov 2026 09:30:00 +0800", b"Date: Fri, 27 Nov 2026 00:30:00 +0800"))
    [first] = env.ingest([eml])
    assert first.verdict == Verdict.ACCEPTED
    env.ctx.ledger.record_unit_decisions("covid19", ROUND, "020000", "民政局會計室", "R-test-signoff",
                                         [(SENT_BACK, first.receipt, "returned", "核定金額與公文不符")])
    bad = env.workbook(SENT_BACK, "sent-back-bad.xlsx", [row(category="防疫費")])
    [second] = env.ingest([bad])
    assert second.verdict == Verdict.REJECTED
    text = mail_text(env.mail_for(second))
    assert "仍為本期計入的資料" not in text
    assert f"先前於 115/11/27 00:30 通過的版本（收件編號 {first.receipt}）已由主管機關退回" in text
    assert "核定金額與公文不符" in text and "本期目前沒有計入的資料" in text
    assert "2026-11-26" not in text


def test_two_copies_of_a_file_in_one_run_are_one_decision_and_one_duplicate(env: Env) -> None:
    a = env.workbook(COPIES, "copies-a.xlsx", TWO)
    b = env.made / "copies-b.xlsx"
    b.write_bytes(a.read_bytes())
    first, copy = env.ingest([a, b])
    assert (first.verdict, copy.verdict) == (Verdict.ACCEPTED, Verdict.DUPLICATE)
    assert (copy.duplicate_of, copy.agency, copy.collection, copy.round) == (first.receipt, COPIES, "covid19", ROUND)
    assert first.receipt != copy.receipt
    assert "通過" in env.mail_for(first)["Subject"] and "重複" in env.mail_for(copy)["Subject"]
    assert first.receipt in mail_text(env.mail_for(copy))
    accepted = [s for s in env.ctx.ledger.submissions_for_round("covid19", ROUND)
                if s.agency == COPIES and s.verdict == Verdict.ACCEPTED]
    assert [s.receipt for s in accepted] == [first.receipt]


def test_one_message_with_the_same_attachment_twice_is_one_decision_and_one_duplicate(env: Env) -> None:
    path = env.workbook(MAIL_COPIES, "mail-copies.xlsx", TWO)
    raw, _mid = agency_mail(acct(MAIL_COPIES), [path, path])
    eml = env.made / "mail-copies.eml"
    eml.write_bytes(raw)
    first, copy = env.ingest([eml])
    assert (first.verdict, copy.verdict) == (Verdict.ACCEPTED, Verdict.DUPLICATE)
    assert copy.duplicate_of == first.receipt
    subjects = [str(env.mail_for(o)["Subject"]) for o in (first, copy)]
    assert "通過" in subjects[0] and "重複" in subjects[1]
    assert [s.verdict for s in env.ctx.ledger.submissions_for_round("covid19", ROUND)
            if s.agency == MAIL_COPIES] == [Verdict.ACCEPTED, Verdict.DUPLICATE]


def test_compare_with_the_previous_round_warns(env: Env) -> None:
    before = env.workbook(COMPARE, "compare-09.xlsx", [row("口罩採購", approved=1_000_000, committed=800_000,
                                                           spent=500_000, approved_on=date(2026, 3, 5))],
                          round_id=PREVIOUS)
    now = env.workbook(COMPARE, "compare-10.xlsx", [row("口罩採購", approved=11_000_000, committed=800_000,
                                                        spent=400_000, approved_on=date(2026, 3, 5))])
    first, second = env.ingest([before, now])
    assert (first.verdict, first.round, first.findings) == (Verdict.ACCEPTED, PREVIOUS, [])
    assert second.verdict == Verdict.ACCEPTED
    assert triples(second.findings) == [("compare.tenfold", "E7", "warning"), ("compare.decreased", "G7", "warning")]
    assert "500,000" in second.findings[1].message and "400,000" in second.findings[1].message


# -- LibreOffice ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def libreoffice(env: Env) -> dict[str, Path]:
    """Returns saved by LibreOffice: one as .xlsx, one as .ods (one conversion run per target format)."""
    a = env.workbook(LO_XLSX, "lo-a.xlsx", TWO)
    b = env.workbook(LO_ODS, "lo-b.xlsx", [row("防疫旅館", approved="NT$1,000", committed=900, spent=800,
                                               approved_on="115/03/05")])
    [xlsx] = convert([a], "xlsx", env.made / "lo")
    [ods] = convert([b], "ods", env.made / "lo")
    return {"xlsx": xlsx, "ods": ods}


def test_returns_saved_by_libreoffice_are_accepted(env: Env, libreoffice: dict[str, Path]) -> None:
    outcomes = env.ingest([libreoffice["xlsx"], libreoffice["ods"]])
    assert [(o.verdict, o.agency, o.findings) for o in outcomes] == [
        (Verdict.ACCEPTED, LO_XLSX, []), (Verdict.ACCEPTED, LO_ODS, [])]
    sub = env.ctx.ledger.submission(outcomes[1].receipt)
    assert sub is not None and sub.kind == "ods" and sub.rows == 1


# -- hostile and broken files through the CLI --------------------------------------------------------------------
def test_broken_and_hostile_files_each_get_their_verdict(env: Env) -> None:
    d = env.made / "bad"
    d.mkdir(parents=True)
    plain = env.workbook(BAD_FILES, "bad-plain.xlsx", TWO).read_bytes()
    files: dict[str, bytes] = {
        "encrypted.xlsx": encrypt(plain, "s3cret-pw"),
        "velvet.xlsx": encrypt(env.workbook(BAD_FILES, "bad-velvet-src.xlsx", [row("加密預設")]).read_bytes(),
                               "VelvetSweatshop"),
        "truncated.xlsx": plain[: len(plain) // 2],
        "zero.xlsx": b"",
        "really-xlsx.xls": env.workbook(BAD_FILES, "bad-named-xls.xlsx", [row("副檔名錯")]).read_bytes(),
        "csv.xlsx": CSV_BYTES,
        "html.xlsx": HTML_BYTES,
        "pdf.xlsx": PDF_BYTES,
        "bomb.xlsx": zip_bomb(),
        "entities.xlsx": entity_expansion(),
        # kills calamine's reader (a real out-of-memory abort): its batch fails, then it alone is blamed
        "oom.xls": (CORPUS / "ExcelDataReader__src__TestData__Test_git_issue_382_oom.xls").read_bytes(),
    }
    paths = []
    for name, data in files.items():
        (d / name).write_bytes(data)
        paths.append(d / name)
    done = env.cli("ingest", "--json", *map(str, paths))
    assert done.returncode == 0, done.stderr
    lines = json_lines(done.stdout)
    assert [line["file"] for line in lines] == list(files)
    for line in lines:
        assert set(line) == JSON_KEYS
        assert line["sha256"] == sha256_of(files[line["file"]])
    got = {line["file"]: (line["verdict"], [f["code"] for f in line["findings"]]) for line in lines}
    assert got == {
        "encrypted.xlsx": ("unreadable", ["file.encrypted"]),
        "velvet.xlsx": ("accepted", []),
        "truncated.xlsx": ("unreadable", ["file.corrupt"]),
        "zero.xlsx": ("unreadable", ["file.empty"]),
        "really-xlsx.xls": ("accepted", []),
        "csv.xlsx": ("unreadable", ["file.not_spreadsheet"]),
        "html.xlsx": ("unreadable", ["file.not_spreadsheet"]),
        "pdf.xlsx": ("unreadable", ["file.not_spreadsheet"]),
        "bomb.xlsx": ("unreadable", ["file.suspicious"]),
        "entities.xlsx": ("unreadable", ["file.suspicious"]),
        "oom.xls": ("unreadable", ["file.reader_failed"]),
    }
    message = {line["file"]: line["findings"][0]["message"] for line in lines if line["findings"]}
    assert "密碼" in message["encrypted.xlsx"]
    assert "CSV" in message["csv.xlsx"] and "HTML" in message["html.xlsx"] and "PDF" in message["pdf.xlsx"]
    # nothing lost: every file, readable or not, is archived under its hash and has its ledger row
    for line in lines:
        sub = env.ctx.ledger.submission(line["receipt"])
        assert sub is not None and sub.verdict == line["verdict"] and sub.file_name == line["file"]
        assert env.ctx.archive.get(line["sha256"]) == files[line["file"]]


def test_a_crash_before_deciding_is_resumed_exactly_once(env: Env) -> None:
    data = env.workbook(RESUME, "resume.xlsx", TWO).read_bytes()
    digest = env.ctx.archive.put(data)
    pending = env.ctx.ledger.record_submission(digest, "resume.xlsx", None, None)  # ... and then the crash
    assert pending.receipt is not None
    later = env.workbook(RESUME, "resume-later.xlsx", [row("之後寄來")])
    first = env.cli("ingest", "--json", str(later))
    assert first.returncode == 0, first.stderr
    lines = json_lines(first.stdout)
    assert [(x["receipt"], x["file"], x["verdict"]) for x in lines] == [
        (pending.receipt, "resume.xlsx", "accepted"), (lines[1]["receipt"], "resume-later.xlsx", "accepted")]
    assert env.ctx.ledger.pending_submissions() == []
    with Ingestor(env.ctx, sandbox=env.sandbox) as ing:
        assert ing.resume() == []  # the next run finds nothing left to decide
    mails = [p for p in env.ctx.ws.mail_outbox.glob("*.eml") if pending.receipt in p.name]
    assert len(mails) == 1


def test_a_rule_that_raises_fails_the_submission_for_staff_instead_of_passing_it(workspace: Path, tmp_path: Path,
                                                                                  env: Env) -> None:
    """A typo in rules/covid19.py must not let returns through unchecked, nor block every later run."""
    rules = workspace / "rules" / "covid19.py"
    good_rules = rules.read_text(encoding="utf-8")
    broken = good_rules.replace('df["spent"] <= df["committed"]', 'df["spent"] <= df["commited"]')
    assert broken != good_rules
    rules.write_text(broken, encoding="utf-8")
    ctx = Context.open(workspace)
    [issued] = issue(ctx, "covid19", ROUND, agencies=[RESUME]).issued
    path = fill(issued.path, tmp_path / "return.xlsx", [row(committed=800_000, spent=900_000)])

    done = run_cli("--workspace", str(workspace), "ingest", "--json", str(path))
    assert done.returncode == 1
    assert "commited" in done.stderr and "rules/covid19.py" in done.stderr
    sub = ctx.ledger.submission(1)  # the workspace's first and only submission
    assert sub is not None and sub.stage == Stage.FAILED and sub.verdict is None and sub.receipt is not None
    assert ctx.archive.get(sub.sha256) == path.read_bytes()
    assert ctx.ledger.pending_submissions() == []  # not retried by every later `collect ingest`
    ctx.close()

    rules.write_text(good_rules, encoding="utf-8")  # staff fix the rule and reprocess the failed submission
    ctx = Context.open(workspace)  # a new command, so the rules are read again
    with Ingestor(ctx, sandbox=env.sandbox) as ing:
        fixed = ing.reprocess(sub.receipt)
    ctx.close()
    assert fixed.verdict == Verdict.REJECTED
    assert ("row.rule", "G7", "error") in triples(fixed.findings)
