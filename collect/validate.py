"""Normalise a data table and check it with the collection's pandera model: every problem becomes a cell finding."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pandas as pd
import pandera.pandas as pa

from collect import findings as F
from collect.findings import Finding
from collect.normalise import normalise_column
from collect.spec import Collection, ColumnSpec
from collect.table import Table, shown

TEXT_DTYPE = "string[pyarrow]"


@dataclass
class Checked:
    """The outcome of validating one table: typed rows (index = Excel row) and findings."""

    frame: pd.DataFrame
    findings: list[Finding]


def _typed(values: pd.Series, col: ColumnSpec) -> pd.Series:
    if col.kind == "whole":
        return values.astype("Int64")
    if col.kind == "decimal":
        return pd.to_numeric(values.map(lambda v: None if v is None or v is pd.NA else float(v)), errors="coerce")
    if col.kind == "date":
        return pd.to_datetime(values.map(lambda v: v if isinstance(v, date | datetime) else None)).astype(
            "datetime64[ns]")
    return values.map(lambda v: None if v is None or v is pd.NA else str(v)).astype(TEXT_DTYPE)


def _bound(value: Any) -> str:
    if isinstance(value, pd.Timestamp):
        d = value.date()
        return f"{d.year - 1911}/{d.month:02d}/{d.day:02d}"
    if isinstance(value, int | float) and float(value).is_integer():
        return f"{int(value):,}"
    return str(value)


def validate(table: Table, coll: Collection, round_id: str, locale: str = "zh-TW",
             previous: pd.DataFrame | None = None) -> Checked:
    """Normalise, coerce and validate lazily, so every problem is found in one pass."""
    out: list[Finding] = []
    raw = table.raw
    typed: dict[str, pd.Series] = {}
    unconvertible: set[tuple[int, str]] = set()
    sheet = table.sheet
    for col in coll.inputs:
        values, errors = normalise_column(raw[col.key], col.kind)
        bad = errors[errors.notna()]
        for row, code in bad.items():
            unconvertible.add((int(row), col.key))
            out.append(F.make(str(code), locale, sheet=sheet, cell=table.cell(col.key, int(row)), column=col.title,
                              value=shown(raw.at[row, col.key])))
        typed[col.key] = _typed(values, col)
    frame = pd.DataFrame(typed, index=raw.index)
    for col in coll.columns:
        if not col.is_input:
            frame[col.key] = pd.Series(pd.NA, index=raw.index, dtype="Float64")
    schema = coll.schema_for(round_id)
    if len(frame):
        try:
            schema.validate(frame[[c.key for c in coll.inputs]], lazy=True)
        except pa.errors.SchemaErrors as exc:
            out.extend(_failures(exc.failure_cases, table, coll, locale, unconvertible))
    if previous is not None and len(frame):
        out.extend(_compare(frame, previous, table, coll, locale))
    order = {c.key: i for i, c in enumerate(coll.columns)}
    titles = {c.title: c.key for c in coll.columns}
    out.sort(key=lambda f: (_row_of(f.cell), order.get(titles.get(f.column or "", ""), 99), f.code))
    return Checked(frame, out)


def _row_of(cell: str | None) -> int:
    digits = "".join(ch for ch in cell or "" if ch.isdigit())
    return int(digits) if digits else 0


def _failures(cases: pd.DataFrame, table: Table, coll: Collection, locale: str,
              unconvertible: set[tuple[int, str]]) -> list[Finding]:
    """Map pandera's failure cases to findings on the cell of the value at fault."""
    by_title = {c.key: c for c in coll.columns}
    rules = {r.message: r for r in coll.rules}
    out: list[Finding] = []
    seen: set[tuple[str, int, str]] = set()
    for case in cases.itertuples(index=False):
        key = str(case.column)
        index = case.index
        if key not in by_title or index is None or pd.isna(index):
            continue
        row = int(index)
        col = by_title[key]
        check = str(case.check)
        if case.schema_context == "DataFrameSchema":
            rule = rules.get(check)
            if rule is None or rule.column != key:
                continue
            code = "row.rule_warning" if rule.warning else "row.rule"
            message = rule.message_en if locale == "en" else rule.message
            finding = F.make(code, locale, sheet=table.sheet, cell=table.cell(key, row), column=col.title,
                             value=shown(table.raw.at[row, key]), detail=message)
        else:
            if (row, key) in unconvertible:
                continue
            code, detail = _code_for(check, col)
            finding = F.make(code, locale, sheet=table.sheet, cell=table.cell(key, row), column=col.title,
                             value=_value(table, key, row, code), detail=detail)
        marker = (finding.code, row, key)
        if marker not in seen:
            seen.add(marker)
            out.append(finding)
    return out


def _value(table: Table, key: str, row: int, code: str) -> Any:
    raw = table.raw.at[row, key]
    if code == "value.too_long":
        return len(str(raw).strip())
    return shown(raw)


def _code_for(check: str, col: ColumnSpec) -> tuple[str, Any]:
    if check == "not_nullable":
        return "value.required", ""
    if check.startswith("isin"):
        return "value.choice", "、".join(col.choices or ())
    if check.startswith("greater_than"):
        return "value.min", _bound(col.ge)
    if check.startswith("less_than"):
        return "value.max", _bound(col.le) if col.le is not None else "本期期末"
    if check.startswith("str_length"):
        return "value.too_long", col.max_length
    if "uniqueness" in check or check.startswith("unique"):
        return "value.duplicate", ""
    return "value.invalid", check


def _compare(frame: pd.DataFrame, previous: pd.DataFrame, table: Table, coll: Collection,
             locale: str) -> list[Finding]:
    """Warnings against the agency's previous accepted round: a cumulative amount that went down, tenfold changes."""
    key = coll.meta.key
    if not key or key not in previous.columns or key not in frame.columns:
        return []
    prev = previous.dropna(subset=[key]).drop_duplicates(subset=[key]).set_index(key)
    out: list[Finding] = []
    money = [c for c in coll.inputs if c.money and c.key in prev.columns]
    for row, rec in frame.iterrows():
        k = rec[key]
        if k is pd.NA or k is None or k not in prev.index:
            continue
        for col in money:
            now, before = rec[col.key], prev.at[k, col.key]
            if now is pd.NA or before is pd.NA or pd.isna(now) or pd.isna(before):
                continue
            now_i, before_i = Decimal(int(now)), Decimal(int(before))
            cell = table.cell(col.key, int(row))
            if col.cumulative and now_i < before_i:
                out.append(F.make("compare.decreased", locale, sheet=table.sheet, cell=cell, column=col.title,
                                  value=f"{now_i:,}", detail=f"{before_i:,}"))
            elif now_i and before_i and (abs(now_i) > 10 * abs(before_i) or abs(before_i) > 10 * abs(now_i)):
                out.append(F.make("compare.tenfold", locale, sheet=table.sheet, cell=cell, column=col.title,
                                  value=f"{now_i:,}", detail=f"{before_i:,}"))
    return out
