"""The managers' summary of a round: completeness, totals by supervising agency, largest exceptions, a chart."""

from __future__ import annotations

import io
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from collect.archive import write_atomic
from collect.mail.compose import OutgoingAttachment, compose
from collect.mail.notify import domain_of, render
from collect.mail.outbox import Transport, deliver
from collect.report.merge import Merged, totals_by_supervisor
from collect.report.workbooks import ReportFiles
from collect.rounds import roc_date, roc_time
from collect.workspace import Context

TOP_EXCEPTIONS = 10
CJK_FONTS = ("Noto Sans CJK TC", "Noto Sans TC", "Microsoft JhengHei", "PingFang TC", "Noto Sans CJK JP",
             "Noto Serif CJK TC", "AR PL UMing TW", "WenQuanYi Zen Hei")


@dataclass(frozen=True)
class Summary:
    path: Path  # the .eml written for review
    html: Path  # the HTML body alone, to open in a browser
    sent_to: tuple[str, ...]  # empty unless sent


def chart_png(totals: list[dict[str, Any]], key: str, title: str) -> bytes:
    """A horizontal bar chart of one money column by supervising agency (names when a CJK font exists)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import font_manager
    from matplotlib import pyplot as plt

    available = {f.name for f in font_manager.fontManager.ttflist}
    font = next((f for f in CJK_FONTS if f in available), None)
    rows = [t for t in totals if t["supervisor"]]
    labels = [t["name"] if font else t["supervisor"] for t in rows]
    values = [t[key] / 1_000_000 for t in rows]  # display only: NT$ millions; the figures in the mail are exact
    height = max(3.0, 0.32 * len(rows) + 1.2)
    with plt.rc_context({"font.family": [font] if font else ["DejaVu Sans"], "axes.unicode_minus": False}):
        fig, ax = plt.subplots(figsize=(8, height), dpi=110)
        ax.barh(labels[::-1], values[::-1], color="#2F6EBA")
        ax.set_xlabel(f"{title}（新臺幣百萬元）" if font else f"{key} (NT$ million)")
        ax.grid(axis="x", color="#DDDDDD")
        ax.set_axisbelow(True)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        plt.close(fig)
    return buf.getvalue()


def build(ctx: Context, merged: Merged, files: ReportFiles) -> tuple[EmailMessage, str]:
    """The summary email (HTML with the chart inline, the master workbook attached) and its HTML body."""
    rep, st = merged.report, merged.status
    money = [c for c in rep.columns if c.money]
    totals = totals_by_supervisor(rep)
    f = rep.findings
    top = f[f["severity"] == "error"].sort_values("amount", ascending=False, na_position="last").head(
        TOP_EXCEPTIONS) if len(f) else f
    missing = st.missing
    values = dict(
        title=rep.collection_title, round_label=rep.round_label, generated=roc_time(rep.generated_at),
        deadline=roc_date(st.deadline) if st.deadline else "", total=st.total, missing=len(missing),
        missing_names=[m.name for m in missing[:15]], money=money, totals=totals,
        rows=len(rep.rows), top=top.to_dict("records"), office=ctx.ws.settings.office,
        has_chart=bool(money), master=files.master.name,
        fmt=lambda v: "" if v is None or v != v else f"{int(v):,}",
    )
    html = render("summary.html.j2", **values)
    text = render("summary.txt.j2", **values)
    settings = ctx.ws.settings
    provisional = "（暫定）" if missing else ""
    subject = f"【彙整摘要】{rep.collection_title}（{rep.round_label}）{provisional}已通過 {st.total.accepted}/" \
              f"{st.total.in_scope}"
    msg = compose(
        sender=settings.sender, sender_name=settings.office, to=list(settings.managers), subject=subject, text=text,
        html=html, attachments=[OutgoingAttachment(files.master.name, files.master.read_bytes())],
        message_id=f"summary.{rep.collection_id}.{rep.round_id}.{rep.generated_at:%Y%m%d%H%M%S}@"
                   f"{domain_of(settings.sender)}",
        domain=domain_of(settings.sender),
    )
    if money:
        png = chart_png(totals, money[0].key, money[0].title)
        body = msg.get_body(("html",))
        if body is not None:
            body.add_related(png, maintype="image", subtype="png", cid="<chart@collect>",
                             filename="chart.png", disposition="inline")
    return msg, html


def summarise(ctx: Context, merged: Merged, files: ReportFiles, *, send: bool = False,
              transport: Transport | None = None) -> Summary:
    """Write the summary for review into the report folder; with send, also mail it to the managers."""
    msg, html = build(ctx, merged, files)
    out_dir = files.master.parent
    from collect.mail.compose import to_bytes

    eml = out_dir / "summary.eml"
    write_atomic(eml, to_bytes(msg))
    page = out_dir / "summary.html"
    write_atomic(page, html.replace("cid:chart@collect", "chart.png").encode("utf-8"))
    chart = next((p for p in msg.walk() if p.get_content_type() == "image/png"), None)
    if chart is not None:
        write_atomic(out_dir / "chart.png", chart.get_payload(decode=True))  # type: ignore[arg-type]
    sent: tuple[str, ...] = ()
    if send:
        deliver(ctx.ledger, ctx.ws.mail_outbox, msg, "summary", transport)
        sent = tuple(ctx.ws.settings.managers)
    return Summary(eml, page, sent)
