"""Commands about the workspace itself: init, upgrade, agencies, check, template new."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
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
def check(collection: Annotated[str | None, typer.Argument(help="Collection id; all when omitted.")] = None) -> None:
    """Verify that each collection's template and rules agree; list every mismatch."""
    from collect.forms.collection import check as check_collection

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
    from collect.forms.collection import load_collection
    from collect.forms.template import write_default

    c = ctx()
    coll = load_collection(c.ws.rules_dir, c.ws.templates_dir, collection, need_template=False)
    if coll.template_path.exists() and not force:
        raise CollectError(f"{coll.template_path} exists.", "Pass --force to overwrite it.")
    write_default(coll, coll.template_path)
    out.print(f"wrote {coll.template_path}")


