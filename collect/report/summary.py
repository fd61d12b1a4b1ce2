"""The managers' summary of a round: completeness, totals by supervising agency, largest exceptions, a chart."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq

from collect.archive import write_atomic
from collect.errors import CollectionError
from collect.mail.compose import OutgoingAttachment, compose
from collect.mail.notify import domain_of, render
from collect.mail.outbox import Transport, deliver
from collect.report.merge import Merged
from collect.report.totals import by_supervisor, column_total, rate_of
from collect.report.workbooks import ReportFiles, ReportInput, export_stem
from collect.rounds import previous_round, roc_date, roc_round_label, roc_time
from collect.workspace import Context

TOP_EXCEPTIONS = 10
CJK_FONTS = ("Noto Sans CJK TC", "Noto Sans TC", "Microsoft JhengHei", "PingFang TC", "Noto Sans CJK JP",
             "Noto Serif CJK TC", "AR PL UMing TW", "WenQuanYi Zen Hei")
# Font files that hold Traditional Chinese, by name (lower case, without "-" and "_"): found on disk when
# matplotlib's font cache was built before they were installed.
CJK_FILES = ("notosanscjk", "notoserifcjk", "notosanstc", "notoseriftc", "sourcehansans", "sourcehanserif",
             "msjh", "mingliu", "pingfang", "uming", "ukai", "wqyzenhei", "wqymicrohei", "droidsansfallback")
CJK_PACKAGE = "fonts-noto-cjk"
NO_CJK_FONT = (f"No Chinese (CJK) font was found, so the summary's chart names supervising agencies by their codes. "
               f"Install one and run again: sudo apt-get install {CJK_PACKAGE}")


@dataclass(frozen=True)
class Summary:
    path: Path  # the .eml written for review
    html: Path  # the HTML body alone, to open in a browser
    sent_to: tuple[str, ...]  # empty unless sent
    warnings: tuple[str, ...] = field(default=())  # for the person running the command, e.g. NO_CJK_FONT


def cjk_font() -> str | None:
    """The family name of a font with Traditional Chinese for the chart, or None when the machine has none.

    matplotlib lists the fonts its cache knew when it was built; a cache older than the CJK fonts (a fresh
    install) lists none, so the font files on disk are looked at too and a match is added to the font manager.
    """
    from matplotlib import font_manager

    known = {f.name: f.fname for f in font_manager.fontManager.ttflist}
    found = next((name for name in CJK_FONTS if name in known), None)
    if found is not None:
        return found
    for path in sorted(font_manager.findSystemFonts()):
        simple = Path(path).name.lower().replace("-", "").replace("_", "")
        if any(hint in simple for hint in CJK_FILES):
            font_manager.fontManager.addfont(path)
            return str(font_manager.FontProperties(fname=path).get_name())
    return None


def chart_png(totals: list[dict[str, Any]], key: str, title: str, font: str | None = None) -> bytes:
    """A horizontal bar chart of one money column by supervising agency (names when a CJK font is given)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

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


TREND_ROUNDS = 6  # the summary's trend chart: this round and up to five reported rounds before it


def trend_png(labels: list[str], series: dict[str, list[int | None]], title: str, font: str | None = None) -> bytes:
    """A line chart of NT$ amounts across rounds (one line per series; a gap where a round has none)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    with plt.rc_context({"font.family": [font] if font else ["DejaVu Sans"], "axes.unicode_minus": False}):
        fig, ax = plt.subplots(figsize=(8, 3.6 if len(series) < 3 else 4.8), dpi=110)
        for name, values in series.items():  # display only: NT$ millions; the tables carry the exact figures
            ax.plot(labels, [float("nan") if v is None else v / 1_000_000 for v in values], marker="o", label=name)
        ax.set_ylabel(f"{title}（新臺幣百萬元）" if font else f"{title} (NT$ million)")
        ax.grid(axis="y", color="#DDDDDD")
        if len(series) > 1:
            ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        plt.close(fig)
    return buf.getvalue()


def round_trend(ctx: Context, rep: ReportInput, key: str) -> tuple[list[str], list[int | None]] | None:
    """The rounds and this round's exact total of one money column after those of the rounds before it that have a
    report (their Parquet exports, as `previous_report` reads), oldest first; None when no earlier round has one."""
    rounds: list[str] = [rep.round_id]
    totals: list[int | None] = [sum(int(v) for v in rep.rows[key].dropna())]
    round_id = rep.round_id
    for _ in range(TREND_ROUNDS - 1):
        try:
            round_id = previous_round(round_id)
        except CollectionError:
            break
        path = ctx.ws.round_dir(rep.collection_id, round_id) / "report" / \
            f"{export_stem(rep.collection_id, round_id)}.parquet"
        if not path.is_file():
            continue
        table = pq.read_table(path, columns=[key]) if key in pq.read_schema(path).names else None
        rounds.insert(0, round_id)
        totals.insert(0, None if table is None else int(pc.sum(table.column(key)).as_py() or 0))
    return (rounds, totals) if len(rounds) > 1 else None


def _blank(value: Any) -> bool:
    """Nothing to show: None, pandas' NA and NaT, a float NaN."""
    if value is None or value.__class__.__name__ in ("NAType", "NaTType"):
        return True
    return isinstance(value, float) and math.isnan(value)


def fmt_amount(value: Any) -> str:
    """An NT$ amount with thousands separators; "" for nothing (never "nan")."""
    return "" if _blank(value) else f"{int(value):,}"


def fmt_change(value: Any) -> str:
    """A change in NT$ with its sign: "+1,234", "-56", "0"."""
    return "" if _blank(value) else (f"{int(value):+,}" if value else "0")


def fmt_rate(value: Any) -> str:
    return "" if _blank(value) else f"{value:.1%}"


def _records(frame: Any) -> list[dict[str, Any]]:
    """Rows as dicts for a template, every missing value None (pandas hands NaN, NA and NaT)."""
    return [{k: None if _blank(v) else v for k, v in rec.items()} for rec in frame.to_dict("records")]


@dataclass(frozen=True)
class Change:
    """One figure of the round beside the previous round's."""

    title: str
    now: str
    before: str
    change: str


def previous_report(ctx: Context, rep: ReportInput) -> tuple[str, list[Change]] | None:
    """The change from the previous round's report (its Parquet export), when that report exists: each money
    column's total and the execution rate. None when there is no previous round's report."""
    try:
        prev = previous_round(rep.round_id)
    except CollectionError:
        return None
    path = ctx.ws.round_dir(rep.collection_id, prev) / "report" / f"{export_stem(rep.collection_id, prev)}.parquet"
    if not path.is_file():
        return None
    table = pq.read_table(path)
    money = [c for c in rep.columns if c.money]
    now = {c.key: column_total(rep.rows[c.key], c.key) for c in money}
    before: dict[str, int | None] = {}
    for c in money:
        if c.key in table.column_names:
            before[c.key] = int(pc.sum(table.column(c.key)).as_py() or 0)
        else:
            before[c.key] = None
    out = []
    for c in money:
        then = before[c.key]
        out.append(Change(c.title, fmt_amount(now[c.key]), fmt_amount(then),
                          fmt_change(None if then is None else now[c.key] - then)))
    if rep.rate is not None:
        num, den = rep.rate
        rate_now = rate_of(now[num], now[den])
        b_num, b_den = before.get(num), before.get(den)
        rate_before = rate_of(b_num, b_den) if b_num is not None and b_den is not None else None
        points = (f"{(rate_now - rate_before) * 100:+.1f} 個百分點"
                  if rate_now is not None and rate_before is not None else "")
        out.append(Change("執行率", fmt_rate(rate_now), fmt_rate(rate_before), points))
    return roc_round_label(prev), out


def build(ctx: Context, merged: Merged, files: ReportFiles, font: str | None = None) -> tuple[EmailMessage, str]:
    """The summary email (HTML with the chart inline, the master workbook attached) and its HTML body."""
    rep, st = merged.report, merged.status
    money = [c for c in rep.columns if c.money]
    totals = by_supervisor(rep.agencies, rep.rows, [c.key for c in money], rep.rate)
    f = rep.findings
    top = f[f["severity"] == "error"].sort_values("amount", ascending=False, na_position="last").head(
        TOP_EXCEPTIONS) if len(f) else f
    missing = st.missing
    previous = previous_report(ctx, rep)
    values = dict(
        title=rep.collection_title, round_label=rep.round_label, generated=roc_time(rep.generated_at),
        deadline=roc_date(st.deadline) if st.deadline else "", total=st.total, missing=len(missing),
        missing_names=[m.name for m in missing[:15]], money=money, totals=totals,
        rows=len(rep.rows), top=_records(top), office=ctx.ws.settings.office,
        has_chart=bool(money), master=files.master.name, has_rate=rep.rate is not None,
        previous_label=previous[0] if previous else "", changes=previous[1] if previous else [],
        fmt=fmt_amount, fmt_rate=fmt_rate,
    )
    # the trend across rounds of what is spent (the execution rate's numerator, else the first money column)
    spent = next((c for c in money if rep.rate and c.key == rep.rate[0]), money[0]) if money else None
    trend = round_trend(ctx, rep, spent.key) if spent else None
    values.update(has_trend=trend is not None, trend_title=spent.title if spent else "")
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
        png = chart_png(totals, money[0].key, money[0].title, font)
        body = msg.get_body(("html",))
        if body is not None:
            body.add_related(png, maintype="image", subtype="png", cid="<chart@collect>",
                             filename="chart.png", disposition="inline")
            if trend is not None:
                labels = [roc_round_label(r) if font else r for r in trend[0]]
                name = spent.title if font and spent else spent.key if spent else ""
                body.add_related(trend_png(labels, {name: trend[1]}, name, font),
                                 maintype="image", subtype="png", cid="<trend@collect>", filename="trend.png",
                                 disposition="inline")
    return msg, html


def summarise(ctx: Context, merged: Merged, files: ReportFiles, *, send: bool = False,
              transport: Transport | None = None) -> Summary:
    """Write the summary for review into the report folder; with send, also mail it to the managers."""
    money = any(c.money for c in merged.report.columns)
    font = cjk_font() if money else None
    msg, html = build(ctx, merged, files, font)
    out_dir = files.master.parent
    from collect.mail.compose import to_bytes

    eml = out_dir / "summary.eml"
    write_atomic(eml, to_bytes(msg))
    page = out_dir / "summary.html"
    write_atomic(page, html.replace("cid:chart@collect", "chart.png").replace("cid:trend@collect", "trend.png")
                 .encode("utf-8"))
    for image in (p for p in msg.walk() if p.get_content_type() == "image/png"):  # chart.png, trend.png
        write_atomic(out_dir / str(image.get_filename()), image.get_payload(decode=True))  # type: ignore[arg-type]
    sent: tuple[str, ...] = ()
    if send:
        deliver(ctx.ledger, ctx.ws.mail_outbox, msg, "summary", transport)
        sent = tuple(ctx.ws.settings.managers)
    return Summary(eml, page, sent, (NO_CJK_FONT,) if money and font is None else ())
