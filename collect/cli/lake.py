"""Commands over the data lake (every counting row of every round): query, trend, quality."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from collect.cli.common import app, ctx, out


def _plain(value: Any) -> Any:
    """A value for JSON: exact integers stay integers, a Decimal keeps its digits as text, dates are ISO."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _shown(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, int | Decimal) and (isinstance(value, int) or value == value.to_integral_value()):
        return f"{int(value):,}"
    if isinstance(value, float):
        return "" if value != value else f"{value:,.4g}"
    return str(value)


def render(columns: Sequence[str], rows: Sequence[Sequence[Any]], *, as_csv: bool, as_json: bool,
           xlsx: Path | None, sheet: str, title: str | None = None, rates: Sequence[str] = ()) -> None:
    """One table: a rich table on the terminal, or CSV / JSON on stdout, or a workbook."""
    if xlsx is not None:
        from collect.xlsx.table_out import write_table

        out.print(f"{len(rows)} rows written to {write_table(xlsx, columns, rows, sheet, rate_columns=rates)}")
    elif as_csv:
        w = csv.writer(sys.stdout, lineterminator="\n")
        w.writerow(columns)
        w.writerows([["" if v is None else _plain(v) for v in r] for r in rows])
    elif as_json:
        sys.stdout.write(json.dumps([{c: _plain(v) for c, v in zip(columns, r, strict=True)} for r in rows],
                                    ensure_ascii=False, indent=1) + "\n")
    else:
        table = Table(title=title, show_lines=False)
        for i, c in enumerate(columns):
            numeric = any(isinstance(r[i], int | float | Decimal) and not isinstance(r[i], bool) for r in rows)
            table.add_column(str(c), justify="right" if numeric else "left")
        for r in rows:
            table.add_row(*(_shown(v) for v in r))
        out.print(table)


lake_app = typer.Typer(help="The data lake (state/lake/): every counting row of every round.", no_args_is_help=True)
app.add_typer(lake_app, name="lake")


@lake_app.command("sync")
def lake_sync(
    collection: Annotated[str | None, typer.Argument(help="Collection id (default: every collection).")] = None,
) -> None:
    """Bring state/lake/ up to date with the ledger now (query, trend, quality and report do it themselves): for
    tools that read its Parquet files directly, e.g. from a timer after `collect watch`."""
    from collect.lake.store import lake_dir, sync

    c = ctx()
    done = sync(c, collection)
    rebuilt = ", ".join(f"{cid} {r}" for cid, r in done.rebuilt) or "none"
    out.print(f"{lake_dir(c)}: {done.rounds} rounds, written again: {rebuilt} ({done.seconds:.1f} s)")


CsvOpt = Annotated[bool, typer.Option("--csv", help="CSV on stdout.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="JSON on stdout (a list of records).")]
XlsxOpt = Annotated[Path | None, typer.Option("--xlsx", help="Write the table to this workbook.")]


@app.command()
def query(
    sql: Annotated[str, typer.Argument(help="SQL (DuckDB) over the views rows_<collection>, history_<collection>, "
                                            "submissions, findings, agencies, rounds.")],
    as_csv: CsvOpt = False,
    as_json: JsonOpt = False,
    xlsx: XlsxOpt = None,
) -> None:
    """Query the data lake: every counting row of every round and the ledger's tables, brought up to date first.

    Example: collect query "SELECT round, supervisor_name, sum(spent) FROM rows_covid19 GROUP BY ALL ORDER BY 1"
    """
    from collect.lake.query import query as run_query

    result = run_query(ctx(), sql)
    render(result.columns, result.rows, as_csv=as_csv, as_json=as_json, xlsx=xlsx, sheet="查詢結果")


@app.command()
def trend(
    collection: Annotated[str, typer.Argument(help="Collection id.")],
    measure: Annotated[str, typer.Option("--measure", "-m", help="The amount column (key or title, e.g. spent "
                                                                 "or 實支數).")],
    by: Annotated[str, typer.Option("--by", help="total, supervisor or agency.")] = "total",
    rounds: Annotated[int | None, typer.Option("--rounds", "-n", help="The last N issued rounds (default: all).",
                                               min=1)] = None,
    chart: Annotated[Path | None, typer.Option("--chart", help="Where to write the chart (PNG; default: "
                                                               "outbox/<collection>/趨勢-<measure>-<by>.png).")] = None,
    as_csv: CsvOpt = False,
    as_json: JsonOpt = False,
    xlsx: XlsxOpt = None,
) -> None:
    """An amount across rounds, in total or per supervising agency or agency, exact, with the change since the
    previous round, and a chart."""
    from collect.lake.trend import chart as draw
    from collect.lake.trend import cjk_font, default_chart_path
    from collect.lake.trend import trend as make_trend

    c = ctx()
    t = make_trend(c, collection, measure, by, rounds)
    png = draw(t, chart or default_chart_path(c, t), cjk_font())
    if as_json:
        sys.stdout.write(json.dumps(t.records(), ensure_ascii=False, indent=1) + "\n")
        return
    render(t.columns, t.table(), as_csv=as_csv, as_json=False, xlsx=xlsx, sheet="趨勢",
           title=f"{collection} {t.title}（新臺幣元）")
    if not as_csv:
        out.print(f"chart {png}")


@app.command()
def quality(
    collection: Annotated[str | None, typer.Argument(help="Collection id (default: every collection).")] = None,
    as_csv: CsvOpt = False,
    as_json: JsonOpt = False,
    xlsx: XlsxOpt = None,
) -> None:
    """Data quality over time, per agency: rounds whose first return was rejected, frequent findings, days late."""
    from collect.lake.quality import RATE_TITLE, quality_table
    from collect.lake.quality import quality as rows_of

    result = rows_of(ctx(), collection)
    if as_json or as_csv:
        render(result.columns, result.rows, as_csv=as_csv, as_json=as_json, xlsx=None, sheet="")
        return
    columns, rows = quality_table(result)
    if xlsx is not None:
        render(columns, rows, as_csv=False, as_json=False, xlsx=xlsx, sheet="資料品質", rates=[RATE_TITLE])
        return
    shown = [c for c in ("agency", "agency_name", "rounds", "first_rejected", "first_rejected_rate", "late_rounds",
                         "days_late", "top_findings")]  # the terminal's width: the whole row in --csv and --xlsx
    at = [result.columns.index(c) for c in shown]
    render([columns[i] for i in at], [[f"{r[i]:.0%}" if result.columns[i] == "first_rejected_rate" else r[i]
                                       for i in at] for r in rows], as_csv=False, as_json=False, xlsx=None, sheet="")
