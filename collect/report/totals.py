"""Exact money totals of a report: whole NT$ amounts as int64 or Python ints, other figures as Decimal, never floats."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

INT64_MAX = 2**63 - 1


def isna(value: Any) -> bool:
    """None, pandas' NA and NaT, a float NaN."""
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


def as_int(value: Any, key: str) -> int | None:
    """A whole number exactly, refusing anything with a fraction (money must never be rounded silently)."""
    if isna(value):
        return None
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, Decimal | float | np.floating) and value == int(value):
        return int(value)
    raise ValueError(f"column {key!r} holds {value!r}, which is not a whole number")


def as_decimal(value: Any) -> Decimal | None:
    """A figure as an exact Decimal (a float by its shortest repr); None for a blank, a bool or a text."""
    if isna(value) or isinstance(value, bool):
        return None
    if isinstance(value, int | Decimal | np.integer):
        return Decimal(int(value)) if isinstance(value, np.integer) else Decimal(value)
    if isinstance(value, float | np.floating):
        return Decimal(repr(float(value)))
    try:
        return Decimal(str(value))
    except ArithmeticError:
        return None


def decimal_sum(values: Iterable[Any]) -> Decimal | None:
    """The exact sum of the figures among `values`; None when there is none."""
    numbers = [n for v in values if (n := as_decimal(v)) is not None]
    return sum(numbers, Decimal(0)) if numbers else None


@dataclass
class Exact:
    """A whole-number column's exact values: int64 where they fit, Python ints by position where they do not."""

    values: np.ndarray  # int64 (0 where missing or beyond int64)
    present: np.ndarray  # bool
    beyond: dict[int, int]  # position -> value too large for int64

    @classmethod
    def of(cls, series: pd.Series, key: str) -> Exact:
        """Vectorised for integer dtypes, value by value otherwise."""
        if pd.api.types.is_integer_dtype(series.dtype):
            present = series.notna().to_numpy(dtype=bool)
            return cls(series.to_numpy(dtype=np.int64, na_value=0), present, {})
        ints = [as_int(v, key) for v in series.tolist()]
        values = np.zeros(len(ints), dtype=np.int64)
        present = np.zeros(len(ints), dtype=bool)
        beyond: dict[int, int] = {}
        for i, v in enumerate(ints):
            if v is None:
                continue
            present[i] = True
            if -INT64_MAX <= v <= INT64_MAX:
                values[i] = v
            else:
                beyond[i] = v
        return cls(values, present, beyond)


def group_sums(money: list[Exact], rows: np.ndarray, index: np.ndarray, codes: list[str]) -> dict[str, list[int]]:
    """Exact sums of each money column over the rows at `rows`, per group (row i of them is in group
    codes[index[i]]); a group appears once some row of it has an amount in some column."""
    sums: dict[str, list[int]] = {}
    if not len(rows):
        return sums
    for m, exact in enumerate(money):
        values = exact.values[rows]
        present = exact.present[rows]
        peak = int(np.abs(values).max()) if len(values) else 0
        if peak * len(values) < INT64_MAX:  # int64 sums cannot overflow: exact
            totals = np.zeros(len(codes), dtype=np.int64)
            np.add.at(totals, index, np.where(present, values, 0))
            by_code = dict(zip(codes, totals.tolist(), strict=True))
        else:
            by_code = {}
            for g, v, ok in zip(index.tolist(), values.tolist(), present.tolist(), strict=True):
                if ok:
                    by_code[codes[g]] = by_code.get(codes[g], 0) + int(v)
        seen = {codes[g] for g in np.unique(index[present]).tolist()}
        if exact.beyond:
            for i, position in enumerate(rows.tolist()):
                if position in exact.beyond:
                    code = codes[index[i]]
                    by_code[code] = by_code.get(code, 0) + exact.beyond[position]
                    seen.add(code)
        for code in seen:
            sums.setdefault(code, [0] * len(money))[m] = by_code.get(code, 0)
    return sums


def column_total(series: pd.Series, key: str) -> int:
    """The exact sum of a whole-number column (0 when it has no amount)."""
    exact = Exact.of(series, key)
    return sum(exact.values[exact.present].tolist()) + sum(exact.beyond.values())


def rate_of(numerator: int, denominator: int) -> float | None:
    """An execution rate from exact sums; None where the denominator is not positive."""
    return numerator / denominator if denominator > 0 else None


def by_supervisor(agencies: pd.DataFrame, rows: pd.DataFrame, money: list[str],
                  rate: tuple[str, str] | None) -> list[dict[str, Any]]:
    """Exact sums of every money column per supervising agency, in list order, and the grand total last (what the
    summary mail shows): supervisor, name, in_scope, accepted, each money key, rate."""
    exact = [Exact.of(rows[key], key) for key in money]
    codes = rows["supervisor"].astype(object).where(rows["supervisor"].notna(), "").astype(str).to_numpy()
    index, labels = pd.factorize(codes)
    sums = group_sums(exact, np.arange(len(rows)), index, [str(label) for label in labels])
    out: list[dict[str, Any]] = []
    for (code, name), group in agencies.groupby(["supervisor", "supervisor_name"], sort=False):
        entry: dict[str, Any] = {"supervisor": code, "name": name, "in_scope": len(group),
                                 "accepted": int(group["state"].isin(["accepted", "late"]).sum())}
        entry.update(zip(money, sums.get(str(code), [0] * len(money)), strict=True))
        out.append(entry)
    total: dict[str, Any] = {"supervisor": "", "name": "合計", "in_scope": len(agencies),
                             "accepted": sum(e["accepted"] for e in out)}
    for key in money:
        total[key] = sum(e[key] for e in out)
    out.append(total)
    for entry in out:  # the execution rate from the exact sums (None where nothing is approved)
        entry["rate"] = rate_of(entry[rate[0]], entry[rate[1]]) if rate else None
    return out


def exact_total(series: pd.Series) -> Decimal | None:
    """The exact sum of a column's figures (vectorised for whole numbers); None when it has none."""
    if pd.api.types.is_integer_dtype(series.dtype):
        exact = Exact.of(series, str(series.name))
        if not exact.present.any():
            return None
        return Decimal(sum(exact.values[exact.present].tolist()) + sum(exact.beyond.values()))
    return decimal_sum(series.tolist())
