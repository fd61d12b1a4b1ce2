"""The order of the stages of a round, in one place: ingest, then sign-offs and digests, and merge then report."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

from collect.follow.digest import Digest, send_due
from collect.follow.signoff import Applied, apply_pending
from collect.lake.quality import quality, quality_sheet
from collect.lake.store import sync
from collect.mail.outbox import Transport
from collect.receive.ingest import Ingestor, Outcome
from collect.receive.watch import MessageResult, WatchSummary, fetch_once, watch
from collect.report.merge import Merged, merge
from collect.report.workbooks import ReportFiles, write_reports
from collect.workspace import Context
from collect.xlsx.odf import convert_to_ods

log = logging.getLogger("collect.receive.watch")


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


@dataclass(frozen=True)
class AfterIngest:
    """What followed an ingest: the sign-off workbooks (核轉表) applied, and the digests sent when they were due."""

    applied: list[Applied] = field(default_factory=list)
    digests: list[Digest] = field(default_factory=list)

    def lines(self) -> list[str]:
        """One log line per thing done."""
        return [*(f"sign-off {a.receipt}: {a.supervisor} {a.collection} {a.round} signed off {len(a.signed)}, "
                  f"sent back {len(a.returned)}" for a in self.applied),
                *(f"digest {d.collection} {d.round} to {d.supervisor} {d.supervisor_name}: {len(d.changes)} "
                  f"change(s), {len(d.attachments)} attachment(s)" for d in self.digests)]


def after_ingest(ctx: Context, transport: Transport | None = None, *, digests: bool = False,
                 now: datetime | None = None) -> AfterIngest:
    """The stages after ingest, in order: the sign-off workbooks just accepted are applied (核轉 rows count, each
    退回 row mails its unit), then, with `digests` (each pass of `collect watch`), the digests due now are sent,
    each supervising agency's report slice written afresh first."""
    applied = apply_pending(ctx, transport=transport)
    sent = send_due(ctx, now, transport, refresh=lambda cid, r: make_report(ctx, cid, r, now)) if digests else []
    return AfterIngest(applied, sent)


@dataclass(frozen=True)
class Ingested:
    """One `collect ingest` run: what became of each file (a crash's leftovers first), and what followed."""

    outcomes: list[Outcome]
    after: AfterIngest


def ingest(ctx: Context, paths: Iterable[Path], *, transport: Transport | None = None,
           on_outcome: Callable[[Outcome], None] | None = None) -> Ingested:
    """Decide what a crash left undecided, then every file named (receipts go to outbox/mail), then apply the
    sign-off workbooks accepted (their notices go through `transport`)."""
    with Ingestor(ctx, on_outcome=on_outcome) as ing:
        outcomes = ing.resume() + ing.paths(paths)
    return Ingested(outcomes, after_ingest(ctx, transport))


@dataclass(frozen=True)
class Fetched:
    """One pass over the mailbox (`collect fetch`): each message's result, and what followed."""

    messages: list[MessageResult]
    after: AfterIngest


def fetch(ctx: Context, transport: Transport | None = None) -> Fetched:
    """One pass over the configured mailbox, then the sign-off workbooks accepted are applied."""
    messages = fetch_once(ctx)
    return Fetched(messages, after_ingest(ctx, transport))


def keep_watching(ctx: Context, *, interval: float | None = None, max_passes: int | None = None) -> WatchSummary:
    """`collect watch`: fetch and wait, for weeks; after each pass the sign-off workbooks are applied and the
    digests due are sent. A failure there is logged and tried again next pass: the watcher keeps ingesting."""

    def after_pass(transport: Transport | None) -> None:
        try:
            for line in after_ingest(ctx, transport, digests=True).lines():
                log.info(line)
        except Exception as exc:  # the watcher keeps ingesting; the next pass tries again
            log.error("digests and sign-offs not done: %s: %s", exc.__class__.__name__, exc)

    return watch(ctx, interval=interval, max_passes=max_passes, after_pass=after_pass)
