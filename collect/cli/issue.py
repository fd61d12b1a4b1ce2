"""`collect issue`: stamp and (with --send) mail one workbook per agency in scope."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from collect.cli.common import app, ctx, err, out, parse_date


# -- issuing -----------------------------------------------------------------------------------------------------
@app.command("issue")
def issue_cmd(
    collection: Annotated[str, typer.Argument(help="Collection id, e.g. covid19.")],
    round_id: Annotated[str, typer.Option("--round", "-r", help="The round, e.g. 2026-10 (month) or 2026 (year).")],
    agency: Annotated[list[str] | None, typer.Option("--agency", "-a", help="Only these agency codes.")] = None,
    deadline: Annotated[str | None, typer.Option(help="Deadline, e.g. 2026-11-10 or 115/11/10.")] = None,
    prefill: Annotated[Path | None, typer.Option(help="CSV/xlsx keyed by 機關代碼 with rows to prefill.")] = None,
    send: Annotated[bool, typer.Option("--send", help="Mail each workbook to its agency's addresses.")] = False,
) -> None:
    """Stamp one locked, prefilled workbook per agency in scope into outbox/<collection>/<round>/issued/."""
    from collect.forms.issuing import issue

    c = ctx()
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err, transient=True, disable=not err.is_terminal) as bar:
        task = bar.add_task(f"issuing {collection} {round_id}", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        result = issue(c, collection, round_id, agencies=agency or (), deadline=parse_date(deadline),
                       prefill=prefill, progress=progress)
    table = Table(title=f"{result.collection.title}（{collection}）{round_id} 已發出")
    table.add_column("主管機關")
    table.add_column("機關數", justify="right")
    for name, n in result.by_supervisor.items():
        table.add_row(name, str(n))
    table.add_row("[bold]合計[/bold]", f"[bold]{len(result.issued)}[/bold]")
    out.print(table)
    out.print(f"deadline {result.deadline.isoformat()}; template version {result.collection.version}"
              f"{' (new)' if result.new_version else ''}; files in {result.out_dir}")
    if send:
        from collect.mail.notify import send_issue_notices

        sent = send_issue_notices(c, result)
        out.print(f"mailed {sent} workbooks")


