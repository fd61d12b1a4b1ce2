"""Commands that take returns in: ingest, reprocess, fetch, watch, mail test."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from collect.cli.common import Options, app, ctx, mail_app, out, setup_logging


# -- receiving --------------------------------------------------------------------------------------------------
@app.command("ingest")
def ingest_cmd(
    paths: Annotated[list[Path], typer.Argument(help="Returned workbooks, .eml messages, or folders of them.")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per file per line.")] = False,
) -> None:
    """Archive, identify, read, validate and answer every returned file; print one line per file."""
    from collect.cli.common import transport_for
    from collect.pipeline import ingest

    c = ctx()
    done = ingest(c, paths, transport=transport_for(c))
    render_outcomes(done.outcomes, as_json)
    if not as_json:
        render_applied(done.after.applied)


def render_applied(applied: list[Any]) -> None:
    """One line per sign-off workbook (核轉表) applied: how many units it signed off and sent back."""
    for a in applied:
        out.print(f"核轉表 {a.receipt}（{a.supervisor}）：核轉 {len(a.signed)}、退回 {len(a.returned)}"
                  + (f"（{', '.join(a.returned)}）" if a.returned else ""))


@app.command()
def reprocess(
    receipt: Annotated[str, typer.Argument(help="The receipt id of the submission, e.g. R20261127-000012.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the outcome as JSON.")] = False,
) -> None:
    """Process an archived submission again (after fixing the rules or the agency list)."""
    from collect.receive.ingest import Ingestor

    with Ingestor(ctx()) as ing:
        outcome = ing.reprocess(receipt)
    render_outcomes([outcome], as_json)


VERDICT_STYLE = {"accepted": "green", "rejected": "red", "duplicate": "dim", "unidentified": "magenta",
                 "tampered": "magenta", "quarantined": "yellow", "unreadable": "red"}


def render_outcomes(outcomes: list[Any], as_json: bool) -> None:
    if as_json:
        for o in outcomes:
            print(json.dumps(o.to_json(), ensure_ascii=False), flush=True)
        return
    table = Table(title=f"{len(outcomes)} file(s)")
    for name in ("file", "verdict", "collection", "round", "agency", "receipt", "errors", "warnings", "first finding"):
        table.add_column(name, overflow="fold")
    for o in outcomes:
        errors = sum(f.severity == "error" for f in o.findings)
        first = o.findings[0] if o.findings else None
        table.add_row(
            Text(o.file), Text(str(o.verdict), style=VERDICT_STYLE.get(str(o.verdict), "")), o.collection or "",
            o.round or "", o.agency or "", o.receipt, str(errors), str(len(o.findings) - errors),
            Text(f"{first.cell or ''} {first.message}".strip() if first else ""))
    out.print(table)


@app.command("fetch")
def fetch_cmd() -> None:
    """Take every waiting message from the mailbox once: ingest, answer, move it; one line per message."""
    from collect.cli.common import transport_for
    from collect.pipeline import fetch

    setup_logging(Options.debug)
    c = ctx()
    done = fetch(c, transport_for(c))
    for r in done.messages:
        out.print(Text(r.line()))
    render_applied(done.after.applied)


@app.command("watch")
def watch_cmd(
    interval: Annotated[float | None, typer.Option(help="Seconds between polls (default [mail] poll_seconds).")] = None,
    once: Annotated[bool, typer.Option("--once", help="One pass, then exit.")] = False,
) -> None:
    """Fetch, wait for mail (IMAP IDLE or polling), repeat until SIGTERM / Ctrl-C; one watcher per workspace."""
    from collect.pipeline import keep_watching

    setup_logging(Options.debug)
    keep_watching(ctx(), interval=interval, max_passes=1 if once else None)


@mail_app.command("test")
def mail_test_cmd(
    no_send: Annotated[bool, typer.Option("--no-send", help="Do not send the test message.")] = False,
) -> None:
    """Log in, list the folder, check the processed/failed folders, send a message to the mailbox itself."""
    from collect.mail.check import mail_test

    steps = mail_test(ctx(), send=not no_send)
    ok = all(s.ok for s in steps)
    for s in steps:
        out.print(Text.assemble(("✓ " if s.ok else "✗ ", "green" if s.ok else "red"), f"{s.step}: {s.message}"))
    if not ok:
        raise typer.Exit(1)


