"""The order of the stages of a round, in one place: merge then report (and the summary built on them)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

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
    out_dir = ctx.ws.round_dir(cid, round_id) / "report"
    return ReportResult(merged, write_reports(merged.report, out_dir))
