"""Merge: the latest accepted submission of every agency in a round, plus the findings, into one master frame."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from collect.errors import CollectionError
from collect.findings import Finding
from collect.follow.status import RoundStatus, round_status
from collect.forms.spec import Collection
from collect.ledger import SubmissionRow
from collect.report.consolidated import sheet_writer
from collect.report.workbooks import ReportColumn, ReportInput, rate_of
from collect.rounds import TAIPEI, roc_deadline, roc_round_label
from collect.workspace import Context


@dataclass
class Merged:
    """A round brought together: the report's input and the status it was built from."""

    status: RoundStatus
    report: ReportInput


def row_of(cell: str | None) -> int | None:
    digits = "".join(ch for ch in cell or "" if ch.isdigit())
    return int(digits) if digits else None


def report_columns(coll: Collection) -> list[ReportColumn]:
    out = []
    # a grid's every amount cell is a column: 摘要 sums only its outermost totals (the 彙整表 shows every cell)
    sources = {k for c in coll.columns for k in c.of or ()}
    for c in coll.columns:
        kind = coll.value_kind(c) if c.is_total else ("whole" if c.money else "rate") if c.formula else c.kind
        money = c.money and (coll.meta.shape != "cells" or (c.is_total and c.key not in sources))
        out.append(ReportColumn(c.key, c.title, kind, money))
    return out


def _frame(ctx: Context, sub: SubmissionRow, coll: Collection) -> pd.DataFrame:
    if not sub.frame_path:
        return pd.DataFrame()
    frame = pd.read_parquet(ctx.ws.state_dir / sub.frame_path)
    for c in coll.computed:
        frame[c.key] = c.compute(frame)  # type: ignore[misc]
    return frame


def execution_rate(coll: Collection) -> tuple[str, str] | None:
    """The collection's declared 執行率 (numerator, denominator), checked to name two of its money columns."""
    rate = coll.meta.execution_rate
    money = [c.key for c in coll.columns if c.money]
    if rate is not None and (len(rate) != 2 or not set(rate) <= set(money)):
        raise CollectionError(
            f"The collection {coll.id!r} declares execution_rate={rate!r}, which does not name two money columns.",
            f"Write Meta(execution_rate=(numerator, denominator)) with two of: {', '.join(money) or '(none)'}.")
    return rate


def merge(ctx: Context, cid: str, round_id: str, now: datetime | None = None) -> Merged:
    """The master frame (one row per data row of each counting submission) and the findings to report."""
    coll = ctx.collection(cid)
    rate = execution_rate(coll)
    st = round_status(ctx, cid, round_id)
    money = [c for c in coll.columns if c.money]
    tables: list[pa.Table] = []
    heads: list[dict[str, Any]] = []
    finding_rows: list[dict[str, Any]] = []
    for row in st.rows:
        head = {"agency": row.agency, "agency_name": row.name, "supervisor": row.supervisor,
                "supervisor_name": row.supervisor_name}
        if row.counting is not None and row.counts and row.counting.frame_path:
            table = pq.ParquetFile(ctx.ws.state_dir / row.counting.frame_path).read(use_threads=False)  # small files
            if table.num_rows:
                tables.append(table)
                heads.append({**head, "receipt": row.counting.receipt})
        seen: set[int] = set()
        for which, sub in (("counting", row.counting), ("latest", row.latest)):
            if sub is None or sub.id in seen:
                continue
            seen.add(sub.id)
            found = ctx.ledger.findings_of(sub.id)
            if not found:
                continue
            amounts = _amounts(_frame(ctx, sub, coll), found, money, coll)
            for f, amount in zip(found, amounts, strict=True):
                finding_rows.append({**head, "receipt": sub.receipt, "which": which, "code": f.code,
                                     "severity": f.severity, "sheet": f.sheet, "cell": f.cell, "column": f.column,
                                     "value": f.value, "message": f.message, "amount": amount})
    findings = pd.DataFrame(finding_rows, columns=["agency", "agency_name", "supervisor", "receipt", "which",
                                                   "code", "severity", "sheet", "cell", "column", "value",
                                                   "message", "amount"])
    findings["amount"] = findings["amount"].astype("Int64")
    agencies = pd.DataFrame([{
        "agency": r.agency, "agency_name": r.name, "kind": r.kind, "supervisor": r.supervisor,
        "supervisor_name": r.supervisor_name, "state": str(r.state), "emails": "; ".join(r.emails),
        "last_received": r.last_received, "last_reminded": r.last_reminded, "receipt": r.receipt,
        "errors": r.errors, "warnings": r.warnings,
    } for r in st.rows])
    rows = _rows(tables, heads, coll)
    report = ReportInput(
        collection_id=cid, collection_title=coll.title, round_id=round_id, round_label=roc_round_label(round_id),
        generated_at=(now or datetime.now(UTC)).astimezone(TAIPEI),  # managers read Taipei time
        columns=report_columns(coll), rows=rows, agencies=agencies, findings=findings,
        rate=rate, extra_sheets=sheet_writer(coll, rows, roc_round_label(round_id),
                                                roc_deadline(ctx.ledger.round_info(cid, round_id)))
        if coll.layout is not None else None,
    )
    return Merged(st, report)


_HEAD_KEYS = ("agency", "agency_name", "supervisor", "supervisor_name", "receipt")
# Arrow to pandas: whole numbers stay exact (nullable Int64), texts stay in Arrow memory (no Python objects).
_PANDAS_TYPES = {pa.int64(): pd.Int64Dtype(), pa.float64(): pd.Float64Dtype(),
                 pa.string(): pd.StringDtype("pyarrow"), pa.large_string(): pd.StringDtype("pyarrow")}


def _rows(tables: list[pa.Table], heads: list[dict[str, Any]], coll: Collection) -> pd.DataFrame:
    """The counting returns' rows, one Arrow concatenation turned into one frame; formula columns computed once."""
    keys = [c.key for c in coll.columns]
    stored = [k for k in keys if any(k in t.column_names for t in tables)]
    parts = [t.select([k for k in stored if k in t.column_names]).replace_schema_metadata(None) for t in tables]
    data = pa.concat_tables(parts, promote_options="permissive") if parts else pa.table(
        {k: pa.array([], pa.null()) for k in stored})
    which = pa.array(np.repeat(np.arange(len(tables), dtype=np.int32), [t.num_rows for t in tables]))
    columns = {key: pc.take(pa.array([h[key] for h in heads], pa.string()), which) for key in _HEAD_KEYS}
    columns.update({k: data.column(k) for k in stored})
    rows = pa.table(columns).to_pandas(types_mapper=_PANDAS_TYPES.get)
    for c in coll.columns:
        if c.key not in rows.columns:
            rows[c.key] = pd.NA
    for c in coll.computed:
        if len(rows):
            rows[c.key] = c.compute(rows)  # type: ignore[misc]  # the same row's cells, all rows at once
    for c in coll.columns:
        if coll.value_kind(c) == "whole" or (c.formula and c.money):
            rows[c.key] = rows[c.key].astype("Int64")
    return rows[[*_HEAD_KEYS, *keys]]


def _amounts(frame: pd.DataFrame, found: list[Finding], money: list[Any], coll: Collection) -> list[int | None]:
    """For each finding, the NT$ amount it concerns, to sort the largest first: its own cell when that is money
    and holds an amount, else the largest money amount on its row, else its value when that is a money amount."""
    by_row = frame.set_index("_row") if len(frame) and money and "_row" in frame.columns else None
    titles = {c.title: c.key for c in money}
    out: list[int | None] = []
    for f in found:
        r = row_of(f.cell)
        key = titles.get(f.column or "")
        amount: int | None = None
        if by_row is not None and r is not None and r in by_row.index:
            rec = by_row.loc[r]
            if isinstance(rec, pd.DataFrame):  # the same row twice: take the first
                rec = rec.iloc[0]
            own = _whole(rec[key]) if key and key in rec.index else None
            values = [v for v in (_whole(rec[c.key]) for c in money if c.key in rec.index) if v is not None]
            amount = own if own is not None else (max(values, key=abs) if values else None)
        if amount is None and key:
            amount = _whole(f.value)
        out.append(amount)
    return out


def _whole(value: Any) -> int | None:
    """A whole NT$ amount from a stored value or a finding's value as typed ("1,234,567"); None otherwise."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, str):
        text = value.replace(",", "").replace("，", "").strip()
        return int(text) if text.lstrip("-").isdigit() and len(text) < 40 else None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return int(value) if number.is_integer() else None


def totals_by_supervisor(report: ReportInput) -> list[dict[str, Any]]:
    """Exact integer sums of every money column per supervising agency, in list order, and the grand total last."""
    money = [c for c in report.columns if c.money]
    out = []
    rows = report.rows
    for (code, name), group in report.agencies.groupby(["supervisor", "supervisor_name"], sort=False):
        mine = rows[rows["supervisor"] == code]
        entry: dict[str, Any] = {"supervisor": code, "name": name, "in_scope": len(group),
                                 "accepted": int(group["state"].isin(["accepted", "late"]).sum())}
        for c in money:
            entry[c.key] = sum(int(v) for v in mine[c.key].dropna())
        out.append(entry)
    total: dict[str, Any] = {"supervisor": "", "name": "合計", "in_scope": len(report.agencies),
                             "accepted": sum(e["accepted"] for e in out)}
    for c in money:
        total[c.key] = sum(e[c.key] for e in out)
    out.append(total)
    for entry in out:  # the collection's execution rate from the exact sums (None where nothing is approved)
        entry["rate"] = rate_of(entry[report.rate[0]], entry[report.rate[1]]) if report.rate else None
    return out
