"""`collect trend`: one money column across the rounds of a collection, in total, per supervising agency or agency."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from collect.archive import write_atomic
from collect.errors import CollectError, NotFound
from collect.lake.query import connect, run, view_name, views
from collect.lake.store import sync
from collect.report.merge import report_columns
from collect.report.summary import cjk_font, trend_png
from collect.rounds import roc_round_label
from collect.workspace import Context

BY = ("total", "supervisor", "agency")
CHART_LINES = 8  # the chart draws the largest groups of the last round; the table has them all


@dataclass(frozen=True)
class Trend:
    """A measure per round (columns) and group (rows), exact NT$ integers; None where a group had no row."""

    collection: str
    measure: str
    title: str  # the measure's zh-TW column title
    by: str
    rounds: tuple[str, ...]
    groups: tuple[tuple[str, str], ...]  # (code, name); ("", "合計") for the total
    values: dict[tuple[str, str], int | None]  # (code, round) -> sum

    @property
    def columns(self) -> list[str]:
        """The table's header: group code and name, one column per round (ROC label), the change since the last."""
        head = ["代碼", "名稱"] if self.by != "total" else ["名稱"]
        return [*head, *(roc_round_label(r) for r in self.rounds), "較上期增減"]

    def table(self) -> list[list[Any]]:
        """One row per group, then the 合計 row (the total over every group, per round)."""
        out = []
        groups = list(self.groups)
        if self.by != "total":
            groups.append(("", "合計"))
        for code, name in groups:
            values = [self.total(r) if (code, name) == ("", "合計") and self.by != "total"
                      else self.values.get((code, r)) for r in self.rounds]
            change = values[-1] - values[-2] if len(values) > 1 and values[-1] is not None \
                and values[-2] is not None else None
            out.append([*([code, name] if self.by != "total" else [name]), *values, change])
        return out

    def total(self, round_id: str) -> int | None:
        present = [v for (_, r), v in self.values.items() if r == round_id and v is not None]
        return sum(present) if present else None

    def records(self) -> list[dict[str, Any]]:
        """The long form: one record per round and group (for --json)."""
        return [{"round": r, "round_label": roc_round_label(r), "code": code, "name": name,
                 self.measure: self.values.get((code, r))} for code, name in self.groups for r in self.rounds]


def measure_key(ctx: Context, cid: str, measure: str) -> tuple[str, str]:
    """The (key, title) of a whole-number column named by key or zh-TW title; CollectError listing them if not."""
    columns = [c for c in report_columns(ctx.collection(cid)) if c.kind == "whole"]
    for c in columns:
        if measure in (c.key, c.title):
            return c.key, c.title
    listed = ", ".join(f"{c.key} ({c.title})" for c in columns if c.money) or "(none)"
    raise CollectError(f"{measure!r} is not an amount column of the collection {cid}.",
                       f"Use one of: {listed}.")


def trend(ctx: Context, cid: str, measure: str, by: str = "total", rounds: int | None = None) -> Trend:
    """The sum of `measure` per round (the last `rounds` issued rounds) and group, from the lake brought up to date."""
    if by not in BY:
        raise CollectError(f"--by {by!r} is not one of: {', '.join(BY)}.")
    key, title = measure_key(ctx, cid, measure)
    sync(ctx)
    con = connect(ctx)
    try:
        issued = [r[0] for r in run(con, "SELECT round FROM rounds WHERE collection = ? ORDER BY round",
                                    [cid]).rows]
        if not issued:
            raise NotFound(f"No round of {cid} has been issued.", f"Issue one with `collect issue {cid} --round R`.")
        window = tuple(issued[-rounds:] if rounds else issued)
        group = {"total": "'' AS code, '合計' AS name", "supervisor": "supervisor AS code, supervisor_name AS name",
                 "agency": "agency AS code, agency_name AS name"}[by]
        view = view_name("rows", cid)
        answer = run(con, f'SELECT round, {group}, CAST(SUM("{key}") AS HUGEINT) AS total FROM "{view}" '
                          f"WHERE round IN (SELECT unnest(?)) GROUP BY ALL ORDER BY code, round",
                     [list(window)]) if view in views(con) else None
    finally:
        con.close()
    values: dict[tuple[str, str], int | None] = {}
    names: dict[str, str] = {}
    for round_id, code, name, total in answer.rows if answer else []:
        values[(code, round_id)] = None if total is None else int(total)
        names[code] = name
    groups = tuple(sorted(names.items())) if by != "total" else (("", "合計"),)
    return Trend(cid, key, title, by, window, groups, values)


def chart(t: Trend, path: Path, font: str | None = None) -> Path:
    """A line chart of the trend (the largest groups of the last round, and the total) as a PNG at `path`."""
    last = t.rounds[-1]
    ranked = sorted((g for g in t.groups if g[0]), key=lambda g: -(t.values.get((g[0], last)) or 0))
    series: dict[str, list[int | None]] = {}
    for code, name in ranked[:CHART_LINES]:
        series[name if font else code] = [t.values.get((code, r)) for r in t.rounds]
    series["合計" if font else "total"] = [t.total(r) for r in t.rounds]
    labels = [roc_round_label(r) if font else r for r in t.rounds]
    png = trend_png(labels, series, t.title if font else t.measure, font)
    write_atomic(path, png)
    return path


def default_chart_path(ctx: Context, t: Trend) -> Path:
    return ctx.ws.outbox_dir / t.collection / f"趨勢-{t.measure}-{t.by}.png"


__all__ = ["Trend", "chart", "cjk_font", "default_chart_path", "measure_key", "trend"]
