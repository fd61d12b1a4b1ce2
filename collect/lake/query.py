"""`collect query`: DuckDB over the lake, with views named after the glossary (rows_<collection>, submissions, ...)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from collect.errors import CollectError
from collect.lake.store import HISTORY, LEDGER_TABLES, ROWS, lake_dir, sync
from collect.workspace import Context


class QueryError(CollectError):
    hint = ("Check the SQL (DuckDB's dialect). `collect query \"SHOW TABLES\"` lists the views; "
            "`collect query \"DESCRIBE rows_covid19\"` lists a view's columns; docs/lake.md has examples.")


@dataclass(frozen=True)
class QueryResult:
    """A query's answer: column names and rows of Python values (HUGEINT and BIGINT as int, DECIMAL as Decimal)."""

    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, r, strict=True)) for r in self.rows]


def _literal(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def view_name(table: str, cid: str) -> str:
    """rows_<collection> or history_<collection>; a collection id that is not a plain word gets underscores."""
    return f"{table}_{re.sub(r'[^0-9A-Za-z_]', '_', cid)}"


def connect(ctx: Context) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with one view per lake table: rows_<collection> (what counts), history_<collection>
    (every accepted version), submissions, findings, agencies and rounds."""
    base = lake_dir(ctx)
    con = duckdb.connect(":memory:")
    for table in (ROWS, HISTORY):
        for folder in sorted((base / table).glob("collection=*")):
            if any(folder.glob("round=*/data.parquet")):
                source = _literal(folder / "round=*" / "data.parquet")
                con.execute(f"CREATE VIEW {_ident(view_name(table, folder.name.removeprefix('collection=')))} AS "
                            f"SELECT * FROM read_parquet({source}, union_by_name = true, hive_partitioning = false)")
    for name in LEDGER_TABLES:
        path = base / f"{name}.parquet"
        if path.is_file():
            con.execute(f"CREATE VIEW {_ident(name)} AS SELECT * FROM read_parquet({_literal(path)})")
    return con


def views(con: duckdb.DuckDBPyConnection) -> list[str]:
    return sorted(r[0] for r in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall())


def run(con: duckdb.DuckDBPyConnection, sql: str,
        params: Sequence[Any] | dict[str, Any] | None = None) -> QueryResult:
    """Run one SQL statement; DuckDB's own message (and the views there are) when it cannot."""
    try:
        cur = con.execute(sql, params) if params is not None else con.execute(sql)
        description = cur.description
        rows = cur.fetchall() if description else []
    except duckdb.Error as exc:
        message = str(exc).strip()
        raise QueryError(f"DuckDB could not run the query: {message}",
                         f"{QueryError.hint} Views: {', '.join(views(con)) or '(none yet)'}.") from exc
    return QueryResult(tuple(d[0] for d in description or ()), rows)


def query(ctx: Context, sql: str) -> QueryResult:
    """Bring the lake up to date, then run `sql` over it."""
    if not sql.strip():
        raise QueryError("The query is empty.")
    sync(ctx)
    con = connect(ctx)
    try:
        return run(con, sql)
    finally:
        con.close()
