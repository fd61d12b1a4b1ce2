"""The order of the stages of a round, in one place: merge then report (and the summary built on them)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from collect.lake.quality import quality, quality_sheet
from collect.lake.store import sync
from collect.report.merge import Merged, merge
from collect.report.workbooks import ReportFiles, write_reports
from collect.workspace import Context


@dataclass(frozen=True)
class ReportResult:
    merged: Merged
    files: ReportFiles


def make_report(ctx: Context, cid: str, round_id: str, now: datetime | None = None) -> ReportResult:
    """Merge the counting returns of a round and write the master and supervising-agency reports."""
    with ctx.ledger.snapshot():  # one consistent state of the ledger while watchers ingest
        merged = merge(ctx, cid, round_id, now)
    sync(ctx, cid)  # the lake: this round's counting rows, and the 資料品質 sheet of every round so far
    merged = replace(merged, report=replace(merged.report, extra_sheets=quality_sheet(
        quality(ctx, cid, refresh=False), merged.report.extra_sheets)))
    out_dir = ctx.ws.round_dir(cid, round_id) / "report"
    return ReportResult(merged, write_reports(merged.report, out_dir))
