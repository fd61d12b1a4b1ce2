"""Commands about the workspace itself: init, upgrade, agencies, check, template new."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from collect.cli.common import app, ctx, err, out, template_app
from collect.errors import CollectError


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
def upgrade() -> None:
    """Migrate the ledger to this collect's schema after an upgrade of collect (a SQLite ledger is copied first)."""
    from collect.ledger import upgrade as upgrade_ledger

    c = ctx()
    done = upgrade_ledger(c.ws.ledger_url)
    if done.before == done.after:
        out.print(f"the ledger is already at schema {done.after}; nothing changed")
        return
    if done.backup is not None:
        out.print(f"copied the ledger to {done.backup}")
    out.print(f"ledger schema {done.before or 'from before migrations'} → {done.after}")


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
def check(
    collection: Annotated[str | None, typer.Argument(help="Collection id; all when omitted.")] = None,
    dry_round: Annotated[bool, typer.Option("--dry-round/--no-dry-round", help="Also issue, fill and ingest a "
                                            "sample return in a scratch workspace (default: yes).")] = True,
) -> None:
    """Verify each collection: its template and rules agree, and a dry round (issue, fill, ingest) works."""
    from collect.dryround import check_collections
    from collect.forms.picture import picture_path

    c = ctx()
    ids = [collection] if collection else c.collection_ids()
    if collection and collection not in ids:
        raise CollectError(f"There is no collection {collection!r}.", "`collect check` lists every collection.")
    results = check_collections(c, ids, dry_run=dry_round, strict=collection is not None)
    for r in results:
        if r.problems:
            err.print(f"[red]✗ {r.cid}[/red]: {len(r.problems)} problem(s)")
            for p in r.problems:
                err.print(Text(f"  - {p}"))
        else:
            how = f"; dry round: {r.dry_round}" if r.dry_round else ""
            out.print(f"[green]✓ {r.cid}[/green]: template and rules agree{how}")
        if collection:
            drawn = picture_path(c.ws.outbox_dir, r.cid)
            out.print(Text(f"  see what collect reads: {drawn}" if drawn.is_file() else
                           f"  see what collect reads: collect picture {r.cid}"))
    if any(r.problems for r in results):
        raise typer.Exit(1)


@app.command()
def adopt(
    form: Annotated[Path, typer.Argument(help="The office's form as it is printed: .xlsx, .xls or .ods.")],
    cid: Annotated[str, typer.Option("--id", help="The new collection's id, e.g. edu_grid.")],
    title: Annotated[str | None, typer.Option(help="The collection's title (default: the form's own).")] = None,
    scope: Annotated[str, typer.Option(help="Who fills it: public, funds or all.")] = "public",
    period: Annotated[str, typer.Option(help="Its rounds: month, quarter, half, year, session or any.")] = "any",
    sheet: Annotated[str | None, typer.Option(help="The sheet holding the form (default: the one with the "
                                                   "table).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing collection of that id.")] = False,
) -> None:
    """Adopt a form as printed: templates_xlsx/ID.xlsx (same look, names added) and rules/ID.py (one line per input)."""
    from collect.forms.adopt import adopt as adopt_form

    c = ctx()
    done = adopt_form(form, cid, c.ws.rules_dir, c.ws.templates_dir, title=title, scope=scope, period=period,
                      sheet=sheet, force=force)
    plan = done.plan
    shape = "list (free rows under a header)" if plan.shape == "list" else "grid (labelled rows; every input a cell)"
    out.print(f"{done.cid}: {shape} on sheet {plan.sheet!r}; header rows {plan.header[0]}-{plan.header[1]}, "
              f"data rows {plan.data[0]}-{plan.data[1]}"
              + (f", total rows {', '.join(map(str, plan.totals))}" if plan.totals else ""))
    table = Table(title=f"{len(plan.inputs)} input(s) and total(s)")
    for name in ("cell", "title path", "kind", "required", "role"):
        table.add_column(name, overflow="fold")
    for i in plan.inputs:
        kind = i.kind + (" money" if i.money else "") + (" 項次" if i.ordinal else "")
        role = ("total of " + ",".join(i.of) if i.of else "total (office computes)") if i.kind == "total" else "input"
        table.add_row(i.ref, Text(i.title), kind, "yes" if i.required else "", Text(role))
    out.print(table)
    if plan.unsure:
        out.print(f"[yellow]{len(plan.unsure)} guess(es) to confirm[/yellow] (edit one word in {done.rules}):")
        for u in plan.unsure:
            out.print(Text(f"  - {u}"))
    out.print(f"wrote {done.template} and {done.rules}")
    _draw_picture(done.cid)
    out.print(f"next: collect check {done.cid}")


def _draw_picture(cid: str) -> None:
    """Draw what collect understood of a collection's form, and say where the picture is."""
    from collect.errors import CollectionError
    from collect.forms.picture import draw, picture_dir

    c = ctx()
    try:
        coll = c.collection(cid)
    except CollectionError as exc:  # `collect check` explains what is wrong with it
        err.print(Text(f"no picture of {cid}: {exc}"))
        return
    pic = draw(coll, picture_dir(c.ws.outbox_dir, cid))
    if pic.pdf is None:
        out.print(Text(f"the form as collect reads it: {pic.xlsx} (LibreOffice is not installed: no PDF)"))
    else:
        pages = f" and {len(pic.pngs)} PNG page(s) beside it" if pic.pngs else ""
        out.print(Text(f"the form as collect reads it, inputs shaded by kind: {pic.pdf}{pages}"))


@app.command()
def picture(
    collection: Annotated[str, typer.Argument(help="Collection id.")],
) -> None:
    """Draw the form as collect reads it: inputs shaded by kind, totals grey, each input named in a note (PDF, PNG)."""
    c = ctx()
    if collection not in c.collection_ids():
        raise CollectError(f"There is no collection {collection!r}.", "`collect check` lists every collection.")
    _draw_picture(collection)


@template_app.command("new")
def template_new(
    collection: Annotated[str, typer.Argument(help="Collection id (rules/<id>.py must exist).")],
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing template.")] = False,
) -> None:
    """Write a tidy default template for a collection from its rules, for staff to restyle in Excel."""
    from collect.forms.collection import load_collection
    from collect.forms.template import write_default

    c = ctx()
    coll = load_collection(c.ws.rules_dir, c.ws.templates_dir, collection, need_template=False)
    if coll.template_path.exists() and not force:
        raise CollectError(f"{coll.template_path} exists.", "Pass --force to overwrite it.")
    write_default(coll, coll.template_path)
    out.print(f"wrote {coll.template_path}")


