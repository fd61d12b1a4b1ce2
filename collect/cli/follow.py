"""Commands that follow a round up: status, exempt, remind, forward, close, reopen."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from collect.cli.common import RoundOpt, app, ctx, out, transport_for

# -- following up ----------------------------------------------------------------------------------------------



@app.command()
def status(
    collection: Annotated[str, typer.Argument(help="Collection id.")],
    round_id: RoundOpt,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per agency per line.")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV (UTF-8 with BOM) on standard output.")] = False,
    supervisor: Annotated[str | None, typer.Option("--supervisor", "-s",
                                                   help="List one supervising agency's units only.")] = None,
    by_agency: Annotated[bool, typer.Option("--agencies", help="List every agency, not one line per "
                                                                "supervising agency.")] = False,
) -> None:
    """Who has answered: per supervising agency, units accepted, signed off, sent back and missing; --supervisor
    CODE (or --agencies) lists each unit with its state."""
    from collect.follow.closing import round_closed
    from collect.follow.status import round_status
    from collect.rounds import TAIPEI
    from collect.states import STATE_LABELS

    c = ctx()
    st = round_status(c, collection, round_id)
    closed = round_closed(c, collection, round_id)
    if supervisor is not None:
        st.rows = [r for r in st.rows if r.supervisor == supervisor]
        if not st.rows:
            raise typer.BadParameter(f"{supervisor} is not a supervising agency with units in this round",
                                     param_hint="--supervisor")
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
    signoff = st.collection.meta.require_signoff
    closed_note = (f"本期已停止收件：之後收到的檔案一律退件（重新開放：collect reopen {collection} --round "
                   f"{round_id}）") if closed else ""
    title = f"{st.collection.title} {round_id}（截止 {st.deadline or '未定'}）" + ("・已停止收件" if closed else "")
    if supervisor is None and not by_agency:
        tier = Table(title=f"{title}：主管機關")
        for name in ("主管機關", "名稱", "應填", "通過", "已核轉", "退回", "未完成", "免填報"):
            tier.add_column(name, overflow="fold", no_wrap=name == "主管機關")
        names = {r.supervisor: r.supervisor_name for r in st.rows}
        for code, g in st.groups.items():
            tier.add_row(code, Text(names.get(code, "")), str(g.in_scope), str(g.accepted),
                         str(g.signed_off) if signoff else "—", str(g.returned), str(g.missing), str(g.exempt))
        out.print(tier)
        t = st.total
        out.print(f"應填 {t.in_scope}；已收件 {t.received}；通過 {t.accepted}（準時 {t.on_time}）"
                  + (f"；已核轉 {t.signed_off}" if signoff else "") + f"；退回 {t.returned}；免填報 {t.exempt}；"
                  f"未完成 {len(st.missing)}")
        if closed_note:
            out.print(closed_note)
        return
    table = Table(title=title)
    for name in ("機關代碼", "機關名稱", "狀態", "最後收件", "錯誤", "警告", "收件編號", "最後催繳"):
        table.add_column(name, overflow="fold", no_wrap=name == "機關代碼")
    current = None
    for r in st.rows:
        if r.supervisor != current:
            current = r.supervisor
            g = st.groups[r.supervisor]
            signed = f"・已核轉 {g.signed_off}/{g.accepted}" if signoff else ""
            table.add_row(Text(r.supervisor, style="bold"), Text(r.supervisor_name, style="bold"),
                          Text(f"通過 {g.accepted}/{g.in_scope}・準時 {g.on_time}/{g.in_scope}{signed}",
                               style="bold"), "", "", "", "", "")
        style = {"accepted": "green", "late": "yellow", "rejected": "red", "returned": "red",
                 "exempt": "dim"}.get(str(r.state), "")
        label = STATE_LABELS[r.state] + ("・已核轉" if signoff and r.signed_off else "")
        table.add_row(r.agency, Text(r.name), Text(label, style=style),
                      f"{r.last_received.astimezone(TAIPEI):%Y-%m-%d %H:%M}" if r.last_received else "",
                      str(r.errors), str(r.warnings), r.receipt or "",
                      f"{r.last_reminded.astimezone(TAIPEI):%Y-%m-%d}" if r.last_reminded else "")
    out.print(table)
    t = st.total
    out.print(f"應填 {t.in_scope}；已收件 {t.received}；通過 {t.accepted}（準時 {t.on_time}）；免填報 {t.exempt}；"
              f"未完成 {len(st.missing)}")
    if closed_note:
        out.print(closed_note)


@app.command()
def exempt(
    collection: Annotated[str, typer.Argument(help="Collection id.")],
    round_id: RoundOpt,
    agency: Annotated[list[str], typer.Option("--agency", "-a", help="Agency code(s) to exempt.")],
    reason: Annotated[str | None, typer.Option(help="Why (recorded in the ledger).")] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Remove the exemption instead.")] = False,
) -> None:
    """Mark agencies exempt from a round (with a reason), or clear it; exempt agencies are never reminded."""
    from collect.follow.status import set_exempt

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
    from collect.follow import remind as reminding

    c = ctx()
    items = reminding.plan(c, collection, round_id) if dry_run else reminding.remind(c, collection, round_id,
                                                                                     transport=transport_for(c))
    table = Table(title=f"{'would remind' if dry_run else 'reminded'}: {len(items)}")
    for name in ("機關代碼", "機關名稱", "類型", "收件者", "副本", "附件／待修正"):
        table.add_column(name, overflow="fold")
    for r in items:
        what = Path(r.attachment).name if r.attachment else f"{r.findings} 項待修正"
        what = f"{r.findings} 個單位待核轉" if r.kind == "signoff" else what
        kind = {"never": "未繳交", "rejected": "退件", "returned": "主管機關退回", "signoff": "待核轉"}[r.kind]
        table.add_row(r.agency, Text(r.name), kind, ", ".join(r.to),
                      ", ".join(r.cc), Text(what))
    out.print(table)



@app.command("forward")
def forward_cmd(
    collection: Annotated[str, typer.Argument(help="Collection id, e.g. review_public.")],
    round_id: RoundOpt,
    supervisor: Annotated[str, typer.Option("--supervisor", "-s", help="The supervising agency's code.")],
    by: Annotated[str, typer.Option("--by", help="Who signs off (name or title).")],
    note: Annotated[str | None, typer.Option(help="A note kept with the sign-off.")] = None,
) -> None:
    """Record a supervising agency's sign-off of its units' returns (needed where the collection requires it)."""
    from collect.follow.signoff import forward

    done = forward(ctx(), collection, round_id, supervisor, by, note)
    out.print(f"{done.supervisor} {done.supervisor_name}: {collection} {round_id} signed off by {done.by}; "
              f"{len(done.units)} unit(s) with accepted returns now count")


@app.command("close")
def close_cmd(
    collection: Annotated[str, typer.Argument(help="Collection id.")],
    round_id: RoundOpt,
) -> None:
    """Close a round to late returns: each one that arrives later is rejected (退件) as the round is closed."""
    from collect.follow.closing import close_round

    done = close_round(ctx(), collection, round_id)
    out.print(f"{collection} {round_id}: {'closed' if done.changed else 'already closed'}; "
              "later returns get the round-closed answer")


@app.command("reopen")
def reopen_cmd(
    collection: Annotated[str, typer.Argument(help="Collection id.")],
    round_id: RoundOpt,
) -> None:
    """Reopen a closed round: returns are decided normally again (`collect reprocess RECEIPT` for a closed one)."""
    from collect.follow.closing import reopen_round

    done = reopen_round(ctx(), collection, round_id)
    out.print(f"{collection} {round_id}: {'reopened' if done.changed else 'already open'}; "
              "returns are decided normally")


@app.command("digest")
def digest_cmd(
    collection: Annotated[str, typer.Argument(help="Collection id.")],
    round_id: RoundOpt,
    send: Annotated[bool, typer.Option("--send", help="Mail and record them (else: list what would go).")] = False,
    supervisor: Annotated[list[str] | None, typer.Option("--supervisor", "-s",
                                                         help="Only these supervising agencies.")] = None,
) -> None:
    """Each supervising agency's digest: its units by state, what changed, its workbook and sign-off workbook
    (核轉表); only to those with something new. --send writes the round's report first, so the workbooks are
    current."""
    from collect.follow.digest import digest
    from collect.pipeline import make_report

    c = ctx()
    items = digest(c, collection, round_id, send=send, transport=transport_for(c) if send else None,
                   supervisors=supervisor or None, refresh=lambda cid, r: make_report(c, cid, r))
    table = Table(title=f"{'sent' if send else 'would send'}: {len(items)} digest(s)")
    for name in ("主管機關", "名稱", "通過", "退回", "未完成", "變動", "附件"):
        table.add_column(name, overflow="fold")
    for d in items:
        units = sum(len(v) for v in d.sections.values())
        table.add_row(d.supervisor, Text(d.supervisor_name), f"{len(d.sections['已通過'])}/{units}",
                      str(len(d.sections["主管機關退回"])),
                      str(sum(len(d.sections[k]) for k in ("退件待補正", "已收件待確認", "尚未繳交"))),
                      Text("；".join(d.changes) or ("首次通知" if d.first else "")), Text("、".join(d.attachments)))
    out.print(table)


@app.command("savings")
def savings_cmd(
    year: Annotated[int, typer.Option("--year", help="Rounds whose id starts with this year, e.g. 2026.")],
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV (UTF-8 with BOM) on standard output.")] = False,
) -> None:
    """Person-hours saved in a year, from the ledger: fills and supervising agencies' checks times the hours in
    collect.toml [savings], in person-months (176 hours)."""
    from collect.follow.savings import savings

    rows = savings(ctx(), year)
    head = ["collection", "title", "rounds", "fills", "checks", "hours_fill", "hours_check", "hours",
            "person_months"]
    if as_csv:
        import csv

        sys.stdout.write("\ufeff")
        writer = csv.writer(sys.stdout)
        writer.writerow(head)
        for r in rows:
            writer.writerow([r.collection, r.title, r.rounds, r.fills, r.checks, r.hours_fill, r.hours_check,
                             r.hours, r.person_months])
        return
    table = Table(title=f"{year} 年節省人力（1 人月 = 176 小時）")
    for name in ("填報項目", "名稱", "期數", "填報次數", "核轉次數", "填報時數", "核轉彙整時數", "合計時數", "人月"):
        table.add_column(name, overflow="fold", justify="left" if name in ("填報項目", "名稱") else "right")
    for r in rows:
        table.add_row(r.collection, Text(r.title), str(r.rounds), str(r.fills), str(r.checks), str(r.hours_fill),
                      str(r.hours_check), str(r.hours), str(r.person_months))
    out.print(table)
