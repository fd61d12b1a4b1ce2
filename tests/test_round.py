"""A whole round through the demo: status, reminders, the master report and the summary agree with the ledger."""

from __future__ import annotations

import email
import email.policy
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import openpyxl
import pandas as pd
import pytest

from collect.demo import DemoResult, run_demo
from collect.follow.status import round_status
from collect.states import ANSWERED, State, Verdict
from collect.workspace import Context

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def demo(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoResult]:
    """The demo's round, on the workspace's SQLite ledger and then on a PostgreSQL database (COLLECT_LEDGER, set
    for as long as the module's tests use it)."""
    import os

    os.environ.setdefault("COLLECT_SECRET", "test-secret-not-for-production")
    mp = pytest.MonkeyPatch()
    if request.param == "postgresql":
        mp.setenv("COLLECT_LEDGER", request.getfixturevalue("pg_server").database())
    lines: list[str] = []
    result = run_demo(tmp_path_factory.mktemp("demo") / "ws", say=lines.append, now=NOW)
    result.lines = lines  # type: ignore[attr-defined]
    yield result
    mp.undo()


@pytest.fixture(scope="module")
def dctx(demo: DemoResult) -> Context:
    return Context.open(demo.workspace)


def accepted_frames(ctx: Context, cid: str, round_id: str) -> pd.DataFrame:
    """Every counting submission's stored rows, straight from the ledger: what the report must add up."""
    st = round_status(ctx, cid, round_id)
    frames = [pd.read_parquet(ctx.ws.state_dir / r.counting.frame_path).assign(agency=r.agency)
              for r in st.rows if r.counting is not None and r.counting.frame_path]
    return pd.concat(frames, ignore_index=True)


def test_demo_prints_every_step_and_where_outputs_are(demo: DemoResult) -> None:
    text = "\n".join(demo.lines)  # type: ignore[attr-defined]
    for step in ("Issue covid19 2026-10", "Ingest the inbox", "Status and reminders", "Master report"):
        assert step in text
    assert str(demo.outputs["master"]) in text
    for path in demo.outputs.values():
        assert path.exists()


def test_demo_round_has_every_kind_of_answer(demo: DemoResult, dctx: Context) -> None:
    subs = dctx.ledger.submissions_for_round("covid19", "2026-10")
    verdicts = Counter(s.verdict for s in subs)
    assert verdicts[Verdict.ACCEPTED] > 100
    assert verdicts[Verdict.REJECTED] >= 3
    assert verdicts[Verdict.QUARANTINED] == 1
    st = round_status(dctx, "covid19", "2026-10")
    states = Counter(r.state for r in st.rows)
    assert states[State.LATE] >= 1 and states[State.ISSUED] >= 1 and states[State.EXEMPT] == 1
    assert states[State.REJECTED] >= 1
    corrected = [r for r in st.rows if r.counting is not None and r.latest is not None
                 and any(s.verdict == Verdict.REJECTED for s in subs if s.agency == r.agency)]
    assert corrected, "some faulty agencies resent a corrected file that now counts"


def test_master_totals_equal_the_accepted_inputs_exactly(demo: DemoResult, dctx: Context) -> None:
    wb = openpyxl.load_workbook(demo.outputs["master"], read_only=True)
    summary = [list(r) for r in wb["摘要"].iter_rows(values_only=True)]
    header = next(r for r in summary if r and "核定經費" in r)
    total = next(r for r in summary if r and r[0] == "合計")
    inputs = accepted_frames(dctx, "covid19", "2026-10")
    for title, key in (("核定經費", "approved"), ("已動支數", "committed"), ("實支數", "spent")):
        expected = sum(int(v) for v in inputs[key].dropna())
        assert total[header.index(title)] == expected
    detail = list(wb["明細"].iter_rows(values_only=True))
    assert detail[0][:3] == ("機關代碼", "機關名稱", "主管機關")
    assert len(detail) - 1 == len(inputs)


def test_missing_sheet_and_status_agree_with_the_ledger(demo: DemoResult, dctx: Context) -> None:
    st = round_status(dctx, "covid19", "2026-10")
    wb = openpyxl.load_workbook(demo.outputs["master"], read_only=True)
    rows = list(wb["未繳交"].iter_rows(values_only=True))
    listed = {r[0] for r in rows[1:] if r and r[0]}
    expected = {r.agency for r in st.rows if r.state not in (*ANSWERED, State.EXEMPT)}
    assert listed == expected
    for r in st.rows:
        counting = dctx.ledger.latest_accepted("covid19", "2026-10", r.agency)
        assert (r.counting.receipt if r.counting else None) == (counting.receipt if counting else None)
    first = [c for row in wb["摘要"].iter_rows(max_row=6, values_only=True) for c in row if c]
    assert any(f"尚有 {len(expected)} 個機關未完成繳交" in str(c) for c in first)


def test_reminders_never_go_to_accepted_or_exempt_agencies(demo: DemoResult, dctx: Context) -> None:
    st = round_status(dctx, "covid19", "2026-10")
    done = {r.agency for r in st.rows if r.state in (*ANSWERED, State.EXEMPT)}
    reminded = {r.agency for r in st.rows if r.last_reminded is not None}
    assert reminded, "the demo sent reminders"
    assert not reminded & done
    assert reminded == {r.agency for r in st.missing}
    mails = [email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
             for p in sorted(dctx.ws.mail_outbox.glob("*-reminder-*.eml"))]
    assert len(mails) == len(reminded)
    never = next(m for m in mails if any(part.get_filename() for part in m.iter_attachments()))
    assert never["Cc"], "after the deadline the supervising agency is copied"
    assert "催繳" in str(never["Subject"])


def test_supervisor_workbooks_hold_only_their_units(demo: DemoResult, dctx: Context) -> None:
    """Every supervising agency's workbook: its units' accepted rows, all of them, and no one else's."""
    report_dir = demo.outputs["master"].parent
    files = sorted(report_dir.glob("covid19-2026-10-??????-*.xlsx"))
    st = round_status(dctx, "covid19", "2026-10")
    inputs = accepted_frames(dctx, "covid19", "2026-10")
    codes = {path.name.split("-")[3]: path for path in files}
    assert len(files) == 25 and set(codes) == set(st.groups)
    for code, path in codes.items():
        detail = [r for r in list(openpyxl.load_workbook(path, read_only=True)["明細"].iter_rows(values_only=True))[1:]
                  if r and r[0]]
        assert detail, f"{path.name} has no detail rows"
        units = {r.agency for r in st.rows if r.supervisor == code and r.counting is not None}
        assert {str(r[0]) for r in detail} == units, path.name
        assert len(detail) == int(inputs["agency"].isin(units).sum()), path.name


def test_receipts_and_summary_open(demo: DemoResult, dctx: Context) -> None:
    receipts = sorted(dctx.ws.mail_outbox.glob("*-receipt-*.eml"))
    assert len(receipts) >= 130
    msg = email.message_from_bytes(receipts[0].read_bytes(), policy=email.policy.default)
    assert msg["In-Reply-To"] and "收件回覆" in str(msg["Subject"])
    summary = email.message_from_bytes((demo.outputs["master"].parent / "summary.eml").read_bytes(),
                                       policy=email.policy.default)
    assert "彙整摘要" in str(summary["Subject"])
    body = summary.get_body(("html",))
    assert body is not None and "各主管機關彙整金額" in body.get_content()
    names = [p.get_filename() for p in summary.iter_attachments()]
    assert demo.outputs["master"].name in names
    assert any(p.get_content_type() == "image/png" for p in summary.walk())


def test_formula_looking_text_stays_text(demo: DemoResult, dctx: Context, tmp_path: Path) -> None:
    from collect.pipeline import make_report
    from collect.receive.ingest import Ingestor
    from collect.simulate import fill

    coll = dctx.collection("covid19")
    agency = next(r for r in round_status(dctx, "covid19", "2026-10").rows if r.state == State.ISSUED)
    issued = dctx.ledger.issued_for("covid19", "2026-10")[agency.agency]["path"]
    rows = [{"name": "=HYPERLINK(\"http://x.example\",\"點我\")", "category": "防疫", "source": "市庫",
             "approved": 100, "committed": 50, "spent": 10, "approved_on": datetime(2026, 1, 5).date(),
             "note": "@SUM(A1)"}]
    path = tmp_path / "formula.xlsx"
    path.write_bytes(fill((dctx.ws.root / issued).read_bytes(), coll, rows))
    with Ingestor(dctx) as ing:
        [outcome] = ing.paths([path])
    assert outcome.verdict == Verdict.ACCEPTED, outcome.findings
    rep = make_report(dctx, "covid19", "2026-10", now=NOW)
    ws = openpyxl.load_workbook(rep.files.master)["明細"]
    cells = [c for row in ws.iter_rows() for c in row if isinstance(c.value, str) and c.value[:1] in "=@"]
    assert {c.value for c in cells} >= {rows[0]["name"], "@SUM(A1)"}
    assert all(c.data_type == "s" for c in cells)
