"""Commands that report a round: report, summary; and the demo round."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from collect.cli.common import Options, RoundOpt, app, ctx, out, transport_for


@app.command()
def report(
    collection: Annotated[str, typer.Argument(help="Collection id.")],
    round_id: RoundOpt,
    fmt: Annotated[str | None, typer.Option("--format", help="xlsx, or ods: every workbook also as ODF (.ods), "
                                            "by one LibreOffice run (default: collect.toml's [workspace] format).")
                                            ] = None,
) -> None:
    """Write the master workbook, one workbook per supervising agency, and Parquet/CSV into the report folder."""
    from collect.pipeline import make_report

    if fmt not in (None, "xlsx", "ods"):
        raise typer.BadParameter(f"{fmt!r}: expected xlsx or ods.", param_hint="--format")
    result = make_report(ctx(), collection, round_id, fmt=fmt)
    f = result.files
    out.print(f"master report   {f.master}")
    out.print(f"supervisors     {len(f.supervisors)} workbooks in {f.master.parent}")
    if result.ods:
        out.print(f"as ODF          {len(result.ods)} .ods workbooks beside them ({result.ods[0].name}, ...)")
    out.print(f"data            {f.parquet.name}, {f.csv.name}")
    t = result.merged.status.total
    if result.merged.status.missing:
        out.print(f"[yellow]provisional: {len(result.merged.status.missing)} of {t.in_scope} agencies have no "
                  "accepted return yet[/yellow]")


@app.command()
def summary(
    collection: Annotated[str, typer.Argument(help="Collection id.")],
    round_id: RoundOpt,
    send: Annotated[bool, typer.Option("--send", help="Mail it to the managers in collect.toml.")] = False,
) -> None:
    """The managers' summary email (completeness, totals, largest exceptions, chart, master workbook attached)."""
    from collect.pipeline import make_report
    from collect.report.summary import summarise

    c = ctx()
    result = make_report(c, collection, round_id)
    s = summarise(c, result.merged, result.files, send=send, transport=transport_for(c) if send else None)
    out.print(f"summary written to {s.path} (open {s.html} in a browser to review)")
    for warning in s.warnings:
        out.print(f"[yellow]{warning}[/yellow]")
    if s.sent_to:
        out.print(f"sent to {', '.join(s.sent_to)}")


@app.command()
def demo(
    workspace: Annotated[Path | None, typer.Option("--workspace", "-w", help="Where to make the demo workspace "
                                                   "(default: a new folder under outbox/demo/).")] = None,
    collection: Annotated[str, typer.Option(help="Which collection's round to run.")] = "covid19",
    agencies: Annotated[int | None, typer.Option(help="Cut the sample agency list to about this many agencies "
                                                      "in scope (default: all of it).", min=5)] = None,
    rounds: Annotated[int, typer.Option(help="Run this many rounds, the earlier ones first (for `collect query` "
                                             "and `collect trend`).", min=1, max=12)] = 1,
) -> None:
    """Run a complete round on the embedded defaults in a fresh workspace: issue, answers, receipts, report."""
    from collect.demo import run_demo

    def say(line: str) -> None:
        out.print(Text(line))

    result = run_demo(workspace or Options.workspace, collection, say=say, agencies=agencies, rounds=rounds)
    out.print("\nseconds per step: " + "; ".join(f"{i}. {s.seconds:.1f}" for i, s in enumerate(result.steps, 1)))
    out.print(f"done in {result.seconds:.1f} s. Open the master report: {result.outputs['master']}")
    out.print(f"and the managers' summary: {result.outputs['summary']}")


