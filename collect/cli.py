"""The `collect` command line: each command parses, calls one library function, renders, and sets the exit code."""

from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from collect.errors import CollectError
from collect.workspace import Context

app = typer.Typer(
    name="collect",
    help="Issue stamped Excel forms to agencies, validate their returns, answer them, and merge the results.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)
template_app = typer.Typer(help="Work with collection templates.", no_args_is_help=True)
app.add_typer(template_app, name="template")

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


class State:
    workspace: Path | None = None
    debug = False


def ctx() -> Context:
    return Context.open(State.workspace)


@app.callback()
def main_options(
    workspace: Annotated[Path | None, typer.Option(
        "--workspace", "-w", help="The workspace folder (default: the current folder; COLLECT_WORKSPACE overrides).",
        envvar="COLLECT_WORKSPACE")] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of program failures.")] = False,
) -> None:
    """collect: the office's collections of agency spreadsheets, from issue to master report."""
    State.workspace = workspace
    State.debug = debug


def parse_date(text: str | None) -> date | None:
    if text is None:
        return None
    from collect.normalise import normalise_value

    value, error = normalise_value(text, "date")
    if error or not isinstance(value, date):
        raise typer.BadParameter(f"{text!r} is not a date (use 2026-11-10 or 115/11/10).")
    return value


# -- workspace ---------------------------------------------------------------------------------------------------
@app.command()
def init(directory: Annotated[Path, typer.Argument(help="Folder for the new workspace (created if missing).")]) -> None:
    """Create a workspace with collect.toml, the sample agency list, the collections and a stamp key."""
    from collect.workspace import init_workspace

    created = init_workspace(directory)
    for path in created:
        out.print(f"created {path}")
    out.print(f"workspace ready at {directory.resolve()}" if created else f"{directory} already complete; "
              "nothing changed")


@app.command()
def agencies(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per agency per line.")] = False,
) -> None:
    """List the agencies as a tree under their supervising agencies, with counts."""
    c = ctx()
    reg = c.registry
    if as_json:
        for a in reg.agencies.values():
            out.print_json(json.dumps({"code": a.code, "name": a.name, "kind": a.kind, "supervisor": a.supervisor,
                                       "emails": list(a.emails), "active": a.active}, ensure_ascii=False))
        return
    rows = reg.tree_rows()
    tree = Tree(f"{c.ws.agencies_path.name}")
    for sup, units in rows:
        public = sum(u.kind == "公務機關" for u in [sup, *units] if u.active)
        funds = sum(u.kind == "特種基金" for u in [sup, *units] if u.active)
        branch = tree.add(f"[bold]{sup.code} {sup.name}[/bold]  公務機關 {public}・特種基金 {funds}")
        for u in units:
            flag = "" if u.active else "  (停用)"
            branch.add(f"{u.code} {u.name}  {u.kind}{flag}")
    out.print(tree)
    active = [a for a in reg.agencies.values() if a.active]
    out.print(f"主管機關 {len(rows)}；公務機關 {sum(a.kind == '公務機關' for a in active)}；"
              f"特種基金 {sum(a.kind == '特種基金' for a in active)}；合計 {len(active)}（啟用中）")


@app.command()
def check(collection: Annotated[str | None, typer.Argument(help="Collection id; all when omitted.")] = None) -> None:
    """Verify that each collection's template and rules agree; list every mismatch."""
    from collect.template import check as check_collection

    c = ctx()
    ids = [collection] if collection else c.collection_ids()
    bad = 0
    for cid in ids:
        problems = check_collection(c.ws.rules_dir, c.ws.templates_dir, cid)
        if problems:
            bad += 1
            err.print(f"[red]✗ {cid}[/red]: {len(problems)} mismatch(es)")
            for p in problems:
                err.print(f"  - {p}")
        else:
            out.print(f"[green]✓ {cid}[/green]: template and rules agree")
    if bad:
        raise typer.Exit(1)


@template_app.command("new")
def template_new(
    collection: Annotated[str, typer.Argument(help="Collection id (rules/<id>.py must exist).")],
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing template.")] = False,
) -> None:
    """Write a tidy default template for a collection from its rules, for staff to restyle in Excel."""
    from collect.spec import load_collection
    from collect.template import write_default

    c = ctx()
    coll = load_collection(c.ws.rules_dir, c.ws.templates_dir, collection, need_template=False)
    if coll.template_path.exists() and not force:
        raise CollectError(f"{coll.template_path} exists.", "Pass --force to overwrite it.")
    write_default(coll, coll.template_path)
    out.print(f"wrote {coll.template_path}")


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
    from collect.issuing import issue

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
        from collect.notify import send_issue_notices

        sent = send_issue_notices(c, result)
        out.print(f"mailed {sent} workbooks")


# -- receiving --------------------------------------------------------------------------------------------------
@app.command("ingest")
def ingest_cmd(
    paths: Annotated[list[Path], typer.Argument(help="Returned workbooks, .eml messages, or folders of them.")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per file per line.")] = False,
) -> None:
    """Archive, identify, read, validate and answer every returned file; print one line per file."""
    from collect.ingest import Ingestor

    c = ctx()
    with Ingestor(c) as ing:
        outcomes = ing.resume() + ing.paths(paths)
    render_outcomes(outcomes, as_json)


@app.command()
def reprocess(
    receipt: Annotated[str, typer.Argument(help="The receipt id of the submission, e.g. R20261127-000012.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the outcome as JSON.")] = False,
) -> None:
    """Process an archived submission again (after fixing the rules or the agency list)."""
    from collect.ingest import Ingestor

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


def fail(message: str, hint: str = "") -> None:
    err.print(Text.assemble(("error: ", "red"), message))
    if hint:
        err.print(Text.assemble(("hint: ", "yellow"), hint))
    sys.exit(1)


def main() -> None:
    """Entry point: program failures print one message and a hint (traceback only with --debug), exit 1."""
    debug = "--debug" in sys.argv
    try:
        app()
    except CollectError as exc:
        if debug:
            raise
        fail(exc.message, exc.hint)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception as exc:
        if debug:
            raise
        fail(f"an unexpected failure: {exc.__class__.__name__}: {exc}",
             "run the command again with --debug for the traceback, and report it.")
