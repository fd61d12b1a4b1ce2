"""The demo round of every shipped collection besides covid19: clean returns accepted, mistakes caught, totals exact."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
from conftest import run_cli

from collect.demo import DemoResult, Plan, run_demo
from collect.follow.signoff import counting_agencies
from collect.follow.status import round_status
from collect.forms.spec import Collection
from collect.ledger import SubmissionRow
from collect.simulate import BLOCKING, MISTAKE_FINDINGS
from collect.states import ANSWERED, State, Verdict
from collect.workspace import Context

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
COLLECTIONS = ["property_diff", "reserve1", "reserve2", "reserve2_table", "forward_subsidy", "retention",
               "review_public", "review_funds"]
SIZE = 60  # agencies kept on the sample list for the collections that go to every (public) agency


def submissions(ctx: Context, coll: Collection, round_id: str) -> dict[str, list[SubmissionRow]]:
    out: dict[str, list[SubmissionRow]] = {}
    for s in ctx.ledger.submissions_for_round(coll.id, round_id):
        out.setdefault(s.agency or "", []).append(s)
    return out


def counting_frame(ctx: Context, coll: Collection, round_id: str) -> pd.DataFrame:
    """The stored rows of every return that counts (accepted and, where required, signed off): what the master
    report must add up to."""
    counting = counting_agencies(ctx, coll, round_id)
    st = round_status(ctx, coll.id, round_id)
    frames = [pd.read_parquet(ctx.ws.state_dir / r.counting.frame_path)
              for r in st.rows if r.agency in counting and r.counting is not None and r.counting.frame_path]
    assert frames, "some returns count"
    return pd.concat(frames, ignore_index=True)


def check_answers(plan: Plan, ctx: Context, coll: Collection, round_id: str) -> None:
    st = round_status(ctx, coll.id, round_id)
    state = {r.agency: r.state for r in st.rows}
    subs = submissions(ctx, coll, round_id)
    special = plan.never | plan.late | set(plan.faulty) | {plan.stranger, plan.exempt, plan.sent_back}
    clean = [c for c in state if c not in special]
    assert clean, "some agencies answer cleanly and on time"
    assert {c: state[c] for c in clean} == {c: State.ACCEPTED for c in clean}
    assert {state[c] for c in plan.late} == {State.LATE}
    assert {state[c] for c in plan.never} == {State.ISSUED}
    if plan.stranger:
        assert state[plan.stranger] == State.RECEIVED
        assert [s.verdict for s in subs[plan.stranger]] == [Verdict.QUARANTINED]
    if plan.exempt:
        assert state[plan.exempt] == State.EXEMPT
    # Where sign-off is required, one supervising agency sends a unit back in its 核轉表 (the demo's second tier).
    assert (plan.sent_back is not None) == coll.meta.require_signoff
    if plan.sent_back:
        assert state[plan.sent_back] == State.RETURNED
    assert any(m in BLOCKING for m in plan.faulty.values()), "at least one mistake gets a return rejected"
    for code, mistake in plan.faulty.items():
        mine = subs[code]
        first = mine[0]
        found = ctx.ledger.findings_of(first.id)
        expected = MISTAKE_FINDINGS[mistake]
        if mistake in BLOCKING:
            assert first.verdict == Verdict.REJECTED, (code, mistake)
            errors = [f for f in found if f.severity == "error"]
            assert expected in {f.code for f in errors}, (code, mistake, [f.code for f in errors])
            assert all(f.cell for f in errors), "every error names its cell"
            if mistake == "pasted_choice":
                assert any(str(f.value).endswith("費") for f in errors if f.code == "value.choice")
            if code in plan.corrected:
                assert [s.verdict for s in mine] == [Verdict.REJECTED, Verdict.ACCEPTED]
                assert state[code] == State.LATE  # the corrected file came after the deadline
            else:
                assert [s.verdict for s in mine] == [Verdict.REJECTED] and state[code] == State.REJECTED
        else:
            assert [s.verdict for s in mine] == [Verdict.ACCEPTED], (code, mistake, [f.code for f in found])
            assert state[code] == State.ACCEPTED
            if expected:
                assert expected in {f.code for f in found if f.severity == "warning"}


def check_report(result: DemoResult, ctx: Context, coll: Collection, round_id: str) -> None:
    master = result.outputs["master"]
    assert master.is_file()
    wb = openpyxl.load_workbook(master, read_only=True)
    summary = [list(r) for r in wb["摘要"].iter_rows(values_only=True)]
    header = next(r for r in summary if r and r[:2] == ["主管機關", "機關數"])
    total = next(r for r in summary[summary.index(header):] if r and r[0] == "合計")
    frame = counting_frame(ctx, coll, round_id)
    money = [c for c in coll.columns if c.money]
    assert bool(money) == (not coll.id.startswith("review_"))
    for col in money:
        if not col.is_input and col.title not in header:
            continue
        assert col.title in header, f"{col.title} is summed on 摘要"
        values = frame[col.key] if col.is_input else col.compute(frame) if col.compute else frame[col.key]
        expected = sum(int(v) for v in values.dropna())
        assert total[header.index(col.title)] == expected, col.title
        assert isinstance(total[header.index(col.title)], int)
    detail = list(wb["明細"].iter_rows(values_only=True))
    assert len([r for r in detail[1:] if r and r[0]]) == len(frame)
    st = round_status(ctx, coll.id, round_id)
    listed = {r[0] for r in list(wb["未繳交"].iter_rows(values_only=True))[1:] if r and r[0]}
    expected_missing = {r.agency for r in st.rows if r.state not in (*ANSWERED, State.EXEMPT)}
    assert listed == expected_missing == {r.agency for r in st.missing}
    plan = result.plan
    assert plan is not None
    still_rejected = {c for c, m in plan.faulty.items() if m in BLOCKING} - plan.corrected
    assert expected_missing == plan.never | still_rejected | ({plan.stranger} if plan.stranger else set()) | (
        {plan.sent_back} if plan.sent_back else set())


@pytest.mark.parametrize("cid", COLLECTIONS)
def test_demo_round_of_every_collection(cid: str, tmp_path: Path) -> None:
    lines: list[str] = []
    result = run_demo(tmp_path / "ws", collection=cid, now=NOW, agencies=SIZE, say=lines.append)
    assert result.plan is not None
    ctx = Context.open(result.workspace)
    try:
        coll = ctx.collection(cid)
        verdicts = Counter(s.verdict for s in ctx.ledger.submissions_for_round(cid, result.round_id))
        assert verdicts[Verdict.DUPLICATE] == 0, "no corrected resend is identical to the faulty file"
        assert verdicts[Verdict.ACCEPTED] > 0.7 * sum(verdicts.values()), verdicts
        assert verdicts[Verdict.REJECTED] == sum(m in BLOCKING for m in result.plan.faulty.values())
        text = "\n".join(lines)
        assert "verdicts: accepted" in text and str(result.outputs["master"]) in text
        check_answers(result.plan, ctx, coll, result.round_id)
        check_report(result, ctx, coll, result.round_id)
        if coll.meta.require_signoff:
            assert "signed off" in text and "sent back by its supervising agency" in text
    finally:
        ctx.close()


def test_prefilled_collection_demo_from_the_command_line(tmp_path: Path) -> None:
    """`collect demo --collection ID` runs a round of a prefill-scoped collection with locked prefilled cells."""
    done = run_cli("demo", "--workspace", str(tmp_path / "ws"), "--collection", "review_funds", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Issue review_funds 2026-S1" in done.stdout
    assert "prefilled from review_funds-2026-S1.csv" in done.stdout
    assert "rejected" in done.stdout and "duplicate" not in done.stdout
    assert (tmp_path / "ws" / "outbox" / "review_funds" / "2026-S1" / "report").is_dir()
