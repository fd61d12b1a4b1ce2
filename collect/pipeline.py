"""The order of the stages of a round, in one place: merge then report (and the summary built on them)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

from collect.lake.quality import quality, quality_sheet
from collect.lake.store import sync
from collect.report.merge import Merged, merge
from collect.report.workbooks import ReportFiles, write_reports
from collect.workspace import Context
from collect.xlsx.odf import convert_to_ods


@dataclass(frozen=True)
class ReportResult:
    merged: Merged
    files: ReportFiles
    ods: list[Path] = field(default_factory=list)  # the workbooks as .ods too, when the report's format is ods


def make_report(ctx: Context, cid: str, round_id: str, now: datetime | None = None,
                fmt: str | None = None) -> ReportResult:
    """Merge the counting returns of a round and write the master and supervising-agency reports; with `fmt`
    "ods" (default: collect.toml's [workspace] format) every workbook also as .ods, by one LibreOffice run."""
    with ctx.ledger.snapshot():  # one consistent state of the ledger while watchers ingest
        merged = merge(ctx, cid, round_id, now)
    sync(ctx, cid)  # the lake: this round's counting rows, and the 資料品質 sheet of every round so far
    merged = replace(merged, report=replace(merged.report, extra_sheets=quality_sheet(
        quality(ctx, cid, refresh=False), merged.report.extra_sheets)))
    out_dir = ctx.ws.round_dir(cid, round_id) / "report"
    files = write_reports(merged.report, out_dir)
    if (fmt or ctx.ws.settings.format) != "ods":
        return ReportResult(merged, files)
    return ReportResult(merged, files, convert_to_ods([files.master, *files.supervisors.values()], out_dir))
