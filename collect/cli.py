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
mail_app = typer.Typer(help="Check the mail settings.", no_args_is_help=True)
app.add_typer(mail_app, name="mail")

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


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
        try:
            problems = check_collection(c.ws.rules_dir, c.ws.templates_dir, cid)
        except CollectError as exc:
            if collection:
                raise
            problems = [exc.message]
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


@app.command("fetch")
def fetch_cmd() -> None:
    """Take every waiting message from the mailbox once: ingest, answer, move it; one line per message."""
    from collect.mail.cli_commands import run_fetch, setup_logging

    setup_logging(State.debug)
    for r in run_fetch(ctx()):
        out.print(Text(r.line()))


@app.command("watch")
def watch_cmd(
    interval: Annotated[float | None, typer.Option(help="Seconds between polls (default [mail] poll_seconds).")] = None,
    once: Annotated[bool, typer.Option("--once", help="One pass, then exit.")] = False,
) -> None:
    """Fetch, wait for mail (IMAP IDLE or polling), repeat until SIGTERM / Ctrl-C; one watcher per workspace."""
    from collect.mail.cli_commands import run_watch, setup_logging

    setup_logging(State.debug)
    run_watch(ctx(), interval, once)


@mail_app.command("test")
def mail_test_cmd(
    no_send: Annotated[bool, typer.Option("--no-send", help="Do not send the test message.")] = False,
) -> None:
    """Log in, list the folder, check the processed/failed folders, send a message to the mailbox itself."""
    from collect.mail.cli_commands import run_mail_test

    steps, ok = run_mail_test(ctx(), not no_send)
    for s in steps:
        out.print(Text.assemble(("✓ " if s.ok else "✗ ", "green" if s.ok else "red"), f"{s.step}: {s.message}"))
    if not ok:
        raise typer.Exit(1)


# -- following up ----------------------------------------------------------------------------------------------
RoundOpt = Annotated[str, typer.Option("--round", "-r", help="The round, e.g. 2026-10.")]


@app.command()
def status(
    collection: Annotated[str, typer.Argument(help="Collection id.")],
    round_id: RoundOpt,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per agency per line.")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV (UTF-8 with BOM) on standard output.")] = False,
) -> None:
    """Who has answered: each agency's state, grouped under supervising agencies, with completeness."""
    from collect.notify import TAIPEI
    from collect.status import STATE_LABELS, round_status

    st = round_status(ctx(), collection, round_id)
    if as_json:
        for r in st.rows:
            print(json.dumps(r.to_json(), ensure_ascii=False), flush=True)
        return
    if as_csv:
        import csv

        writer = csv.writer(sys.stdout)
        sys.stdout.write("\ufeff")
        writer.writerow(["agency", "name", "supervisor", "supervisor_name", "state", "last_received", "errors",
                         "warnings", "receipt", "last_reminded", "exempt_reason"])
        for r in st.rows:
            j = r.to_json()
            writer.writerow([j["agency"], j["name"], j["supervisor"], j["supervisor_name"], j["state"],
                             j["last_received"] or "", j["errors"], j["warnings"], j["receipt"] or "",
                             j["last_reminded"] or "", j["exempt_reason"] or ""])
        return
    table = Table(title=f"{st.collection.title} {round_id}（截止 {st.deadline or '未定'}）")
    for name in ("機關代碼", "機關名稱", "狀態", "最後收件", "錯誤", "警告", "收件編號", "最後催繳"):
        table.add_column(name, overflow="fold", no_wrap=name == "機關代碼")
    signoff = st.collection.meta.require_signoff
    current = None
    for r in st.rows:
        if r.supervisor != current:
            current = r.supervisor
            g = st.groups[r.supervisor]
            signed = ("・已簽核" if r.signed_off else "・未簽核") if signoff else ""
            table.add_row(Text(r.supervisor, style="bold"), Text(r.supervisor_name, style="bold"),
                          Text(f"通過 {g.accepted}/{g.in_scope}・準時 {g.on_time}/{g.in_scope}{signed}",
                               style="bold"), "", "", "", "", "")
        style = {"accepted": "green", "late": "yellow", "rejected": "red", "exempt": "dim"}.get(str(r.state), "")
        table.add_row(r.agency, Text(r.name), Text(STATE_LABELS[r.state], style=style),
                      f"{r.last_received.astimezone(TAIPEI):%Y-%m-%d %H:%M}" if r.last_received else "",
                      str(r.errors), str(r.warnings), r.receipt or "",
                      f"{r.last_reminded.astimezone(TAIPEI):%Y-%m-%d}" if r.last_reminded else "")
    out.print(table)
    t = st.total
    out.print(f"應填 {t.in_scope}；已收件 {t.received}；通過 {t.accepted}（準時 {t.on_time}）；免填報 {t.exempt}；"
              f"未完成 {len(st.missing)}")


@app.command()
def exempt(
    collection: Annotated[str, typer.Argument(help="Collection id.")],
    round_id: RoundOpt,
    agency: Annotated[list[str], typer.Option("--agency", "-a", help="Agency code(s) to exempt.")],
    reason: Annotated[str | None, typer.Option(help="Why (recorded in the ledger).")] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Remove the exemption instead.")] = False,
) -> None:
    """Mark agencies exempt from a round (with a reason), or clear it; exempt agencies are never reminded."""
    from collect.status import set_exempt

    if not clear and not reason:
        raise typer.BadParameter("give --reason (or --clear)")
    codes = set_exempt(ctx(), collection, round_id, agency, None if clear else reason)
    out.print(f"{'cleared' if clear else 'exempted'}: {', '.join(codes)}")


@app.command()
def remind(
    collection: Annotated[str, typer.Argument(help="Collection id.")],
    round_id: RoundOpt,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List who would get what; send nothing.")] = False,
) -> None:
    """Mail a reminder to every agency in scope without an accepted return (supervisor copied after the deadline)."""
    from collect import remind as reminding

    c = ctx()
    items = reminding.plan(c, collection, round_id) if dry_run else reminding.remind(c, collection, round_id,
                                                                                     transport=transport_for(c))
    table = Table(title=f"{'would remind' if dry_run else 'reminded'}: {len(items)}")
    for name in ("機關代碼", "機關名稱", "類型", "收件者", "副本", "附件／待修正"):
        table.add_column(name, overflow="fold")
    for r in items:
        what = Path(r.attachment).name if r.attachment else f"{r.findings} 項待修正"
        table.add_row(r.agency, Text(r.name), "未繳交" if r.kind == "never" else "退件", ", ".join(r.to),
                      ", ".join(r.cc), Text(what))
    out.print(table)


@app.command()
def report(
    collection: Annotated[str, typer.Argument(help="Collection id.")],
    round_id: RoundOpt,
) -> None:
    """Write the master workbook, one workbook per supervising agency, and Parquet/CSV into the report folder."""
    from collect.pipeline import make_report

    result = make_report(ctx(), collection, round_id)
    f = result.files
    out.print(f"master report   {f.master}")
    out.print(f"supervisors     {len(f.supervisors)} workbooks in {f.master.parent}")
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
    from collect.summary import summarise

    c = ctx()
    result = make_report(c, collection, round_id)
    s = summarise(c, result.merged, result.files, send=send, transport=transport_for(c) if send else None)
    out.print(f"summary written to {s.path} (open {s.html} in a browser to review)")
    if s.sent_to:
        out.print(f"sent to {', '.join(s.sent_to)}")


@app.command()
def demo(
    workspace: Annotated[Path | None, typer.Option("--workspace", "-w", help="Where to make the demo workspace "
                                                   "(default: a new folder under outbox/demo/).")] = None,
    collection: Annotated[str, typer.Option(help="Which collection's round to run.")] = "covid19",
    agencies: Annotated[int | None, typer.Option(help="Cut the sample agency list to about this many agencies "
                                                      "in scope (default: all of it).", min=5)] = None,
) -> None:
    """Run a complete round on the embedded defaults in a fresh workspace: issue, answers, receipts, report."""
    from collect.demo import run_demo

    def say(line: str) -> None:
        out.print(Text(line))

    result = run_demo(workspace or State.workspace, collection, say=say, agencies=agencies)
    out.print("\nseconds per step: " + "; ".join(f"{i}. {s.seconds:.1f}" for i, s in enumerate(result.steps, 1)))
    out.print(f"done in {result.seconds:.1f} s. Open the master report: {result.outputs['master']}")
    out.print(f"and the managers' summary: {result.outputs['summary']}")


@app.command("forward")
def forward_cmd(
    collection: Annotated[str, typer.Argument(help="Collection id, e.g. review_public.")],
    round_id: RoundOpt,
    supervisor: Annotated[str, typer.Option("--supervisor", "-s", help="The supervising agency's code.")],
    by: Annotated[str, typer.Option("--by", help="Who signs off (name or title).")],
    note: Annotated[str | None, typer.Option(help="A note kept with the sign-off.")] = None,
) -> None:
    """Record a supervising agency's sign-off of its units' returns (needed where the collection requires it)."""
    from collect.signoff import forward

    done = forward(ctx(), collection, round_id, supervisor, by, note)
    out.print(f"{done.supervisor} {done.supervisor_name}: {collection} {round_id} signed off by {done.by}; "
              f"{len(done.units)} unit(s) with accepted returns now count")


def transport_for(c: Context) -> Any:
    """The configured backend's sender, or None for the files backend (messages stay in outbox/mail)."""
    if c.ws.settings.mail.get("backend", "files") == "files":
        return None
    from collect.mail.backends import open_transport

    return open_transport(c)


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
