"""Normalise a data table and check it with the collection's pandera model: every problem becomes a cell finding."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pandas as pd
import pandera.pandas as pa

from collect import findings as F
from collect.errors import CollectionError
from collect.findings import Finding
from collect.forms.spec import Collection, ColumnSpec, IssuedFacts, RowRule, RuleEnv
from collect.normalise import normalise_column, normalise_value
from collect.receive.table import Table, shown
from collect.rounds import roc_date

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
    return values.astype(TEXT_DTYPE)  # None and <NA> become <NA>, anything else its str()


def _bound(value: Any) -> str:
    if isinstance(value, pd.Timestamp):
        return roc_date(value.date())
    if isinstance(value, int | float) and float(value).is_integer():
        return f"{int(value):,}"
    return str(value)


@dataclass(frozen=True)
class ToCheck:
    """One submission's table with what it is compared with: the agency's previous accepted rows and what was issued
    to it (collect.forms.issuing.issued_facts)."""

    table: Table
    previous: pd.DataFrame | None = None
    issued: IssuedFacts | None = None


# Rows of the i-th table of a batch are indexed i * ROW_SPAN + Excel row (Excel has 1,048,576 rows).
ROW_SPAN = 1 << 21


def validate(table: Table, coll: Collection, round_id: str, locale: str = "zh-TW",
             previous: pd.DataFrame | None = None, *, issued: IssuedFacts | None = None) -> Checked:
    """Normalise, coerce and validate lazily, so every problem is found in one pass.

    `issued` is what this agency's copy was prefilled with (collect.forms.issuing.issued_facts): table rules see its
    header fields, and locked prefilled cells and rows are held to it. Without it, table rules see every header
    field as None and the comparison with the issued prefill is skipped.
    """
    return validate_many([ToCheck(table, previous, issued)], coll, round_id, locale)[0]


def validate_many(items: Sequence[ToCheck], coll: Collection, round_id: str, locale: str = "zh-TW") -> list[Checked]:
    """`validate` for several submissions of one collection and round at once: their rows are normalised and
    checked by pandera together (its cost is mostly per call, not per row), uniqueness within each table."""
    if not items:
        return []
    tables = [item.table for item in items]
    out: list[list[Finding]] = [[] for _ in items]
    unconvertible: list[set[tuple[int, str]]] = [set() for _ in items]
    raw = pd.concat([t.raw.set_axis(t.raw.index + i * ROW_SPAN) for i, t in enumerate(tables)])

    values_of: dict[int, _RawValues] = {}

    def raw_at(i: int, row: int, key: str) -> Any:
        if i not in values_of:
            values_of[i] = _RawValues(tables[i])
        return values_of[i].at(row, key)

    def blame(index: Any, key: str) -> tuple[int, int, Table]:
        i, row = divmod(int(index), ROW_SPAN)
        unconvertible[i].add((row, key))
        return i, row, tables[i]

    typed: dict[str, pd.Series] = {}
    for col in coll.inputs:
        values, errors = normalise_column(raw[col.key], col.kind)
        for index, code in errors[errors.notna()].items():
            i, row, table = blame(index, col.key)
            out[i].append(F.make(str(code), locale, sheet=table.sheet, cell=table.cell(col.key, row),
                                 column=col.title, value=shown(raw_at(i, row, col.key))))
        if col.kind == "date":  # pandas holds dates from 1677 to 2262 only; 9999-12-31 must not crash the run
            far = values.map(_out_of_range).astype(bool)
            for index in values.index[far.to_numpy()]:
                i, row, table = blame(index, col.key)
                out[i].append(F.make("value.invalid", locale, sheet=table.sheet, cell=table.cell(col.key, row),
                                     column=col.title, value=shown(raw_at(i, row, col.key)),
                                     detail=DATE_RANGE_TEXT))
            values = values.where(~far, None)
        typed[col.key] = _typed(values, col)
    frame = pd.DataFrame(typed, index=raw.index)
    for col in coll.columns:
        if not col.is_input:
            frame[col.key] = pd.Series(pd.NA, index=raw.index, dtype="Float64")
    masked = frame  # the values rules see: a value that failed its own column's check is taken as blank
    if len(frame):
        cases = _failure_cases(frame[[c.key for c in coll.inputs]], coll, round_id)
        if cases is not None:
            cases, masked, skipped = _causes_only(cases, frame, coll, unconvertible)
            index = cases["index"].astype("Int64")
            cases = cases.assign(index=index % ROW_SPAN, _table=index // ROW_SPAN)
            for i, part in cases.groupby("_table", sort=False):
                out[int(i)].extend(_failures(part, tables[int(i)], coll, locale, unconvertible[int(i)]))
            for index, rule in skipped:
                i, row = divmod(index, ROW_SPAN)
                out[i].append(_skipped(rule, tables[i], row, coll, locale))
    checked: list[Checked] = []
    order = {c.key: i for i, c in enumerate(coll.columns)}
    titles = {c.title: c.key for c in coll.columns}
    start = 0
    for i, item in enumerate(items):
        table, found = item.table, out[i]
        rows = frame.iloc[start:start + len(table.raw)].set_axis(table.raw.index)
        seen_by_rules = masked.iloc[start:start + len(table.raw)].set_axis(table.raw.index)
        start += len(table.raw)
        if item.previous is not None and len(rows):
            found.extend(_compare(rows, item.previous, table, coll, locale))
        if len(rows):
            found.extend(_table_rules(seen_by_rules, table, coll, round_id, locale, item.issued))
        if item.issued is not None:
            found.extend(_against_issued(rows, table, coll, locale, item.issued, unconvertible[i]))
        if table.stated and len(rows):
            found.extend(_totals(rows, table, coll, locale, unconvertible[i]))
        found.sort(key=lambda f: (_row_of(f.cell), order.get(titles.get(f.column or "", ""), 99), f.code))
        checked.append(Checked(rows, found))
    return checked


def _causes_only(cases: pd.DataFrame, frame: pd.DataFrame, coll: Collection, unconvertible: list[set[tuple[int, str]]]
                 ) -> tuple[pd.DataFrame, pd.DataFrame, list[tuple[int, RowRule]]]:
    """Findings are causes, not consequences: a row rule is not judged on a row where a column it reads holds a
    value that failed its own column's check or could not be read. Returns the failure cases without such rules'
    failures, the frame table rules see (every such value taken as blank), and (row index, rule) of each skipped."""
    cases = cases.reset_index(drop=True)
    columns = cases[cases["schema_context"] == "Column"]
    bad: dict[int, set[str]] = {}
    for i, k in zip(columns["index"].tolist(), columns["column"].tolist(), strict=True):
        if not _missing(i) and str(k) in frame.columns:
            bad.setdefault(int(i), set()).add(str(k))
    masked = frame.copy() if bad else frame
    by_key: dict[str, list[int]] = {}
    for index, keys in bad.items():
        for key in keys:
            by_key.setdefault(key, []).append(index)
    for key, indexes in by_key.items():  # one masking per column (a cell at a time took 40 µs: 200,000 rows, 8 s)
        masked[key] = masked[key].mask(masked.index.isin(indexes))
    for table, cells in enumerate(unconvertible):
        for row, key in cells:
            bad.setdefault(table * ROW_SPAN + row, set()).add(key)
    by_message = {r.message: r for r in coll.rules}
    inputs = frozenset(c.key for c in coll.inputs)
    row_cases = cases[(cases["schema_context"] == "DataFrameSchema") & cases["index"].isin(list(bad))]
    drop: list[Any] = []
    skipped: set[tuple[int, str]] = set()
    for case, index, check in zip(row_cases.index.tolist(), row_cases["index"].tolist(), row_cases["check"].tolist(),
                                  strict=True):
        rule = by_message.get(str(check))
        if rule is not None and (rule.reads or inputs) & bad[int(index)]:
            drop.append(case)
            skipped.add((int(index), str(check)))
    return cases.drop(index=drop), masked, [(i, by_message[c]) for i, c in sorted(skipped)]


def _skipped(rule: RowRule, table: Table, row: int, coll: Collection, locale: str) -> Finding:
    """The note that a row rule was not judged, because a value it compares failed its own column's check."""
    col = coll.column(rule.column)
    message = (rule.message_en if locale == "en" else rule.message).rstrip("。.")
    return F.make("row.rule_skipped", locale, sheet=table.sheet, cell=table.cell(rule.column, row), column=col.title,
                  value=shown(table.raw.at[row, rule.column]), detail=message)


def _failure_cases(frame: pd.DataFrame, coll: Collection, round_id: str) -> pd.DataFrame | None:
    """pandera's failure cases for the rows of one or more tables (index: see ROW_SPAN), uniqueness checked
    within each table; None when every row passes."""
    schema, unique = _without_uniqueness(coll.schema_for(round_id))
    unique = [key for key in unique if key in frame.columns]
    cases: list[pd.DataFrame] = []
    try:
        schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        _raise_rule_errors(exc, coll)
        cases.append(exc.failure_cases)
    table_of = frame.index // ROW_SPAN
    for key in unique:
        values = frame[key]
        repeated = pd.DataFrame({"table": table_of, "value": values}).duplicated(keep=False) & values.notna()
        if repeated.any():
            cases.append(pd.DataFrame({"schema_context": "Column", "column": key, "check": "field_uniqueness",
                                       "check_number": None, "failure_case": values[repeated].astype(object),
                                       "index": values.index[repeated.to_numpy()]}).reset_index(drop=True))
    return pd.concat(cases, ignore_index=True) if cases else None


_WITHOUT_UNIQUENESS: dict[int, tuple[pa.DataFrameSchema, pa.DataFrameSchema, list[str]]] = {}


def _without_uniqueness(schema: pa.DataFrameSchema) -> tuple[pa.DataFrameSchema, list[str]]:
    """The schema with its columns' uniqueness checks left out (they are checked per table), and those columns;
    made once per schema (schema_for keeps each round's schema)."""
    if id(schema) not in _WITHOUT_UNIQUENESS:
        unique = [key for key, column in schema.columns.items() if column.unique]
        lax = schema.update_columns({key: {"unique": False} for key in unique}) if unique else schema
        _WITHOUT_UNIQUENESS[id(schema)] = (schema, lax, unique)  # the schema itself is kept, so its id stays its own
    _schema, lax, unique = _WITHOUT_UNIQUENESS[id(schema)]
    return lax, unique


DATE_RANGE_TEXT = "日期的年份應在 1678 至 2261 年之間"
_FIRST_DAY, _LAST_DAY = pd.Timestamp.min.date() + timedelta(days=1), pd.Timestamp.max.date()


def _out_of_range(value: Any) -> bool:
    if isinstance(value, datetime):
        value = value.date()
    return isinstance(value, date) and not _FIRST_DAY <= value <= _LAST_DAY


def _raise_rule_errors(exc: pa.errors.SchemaErrors, coll: Collection) -> None:
    """A check that raised (a bug in rules/<id>.py) is the office's failure, not the agency's: never pass it."""
    for err in exc.schema_errors:
        if err.reason_code == pa.errors.SchemaErrorReason.CHECK_ERROR:
            name = getattr(err.check, "error", None) or getattr(err.check, "name", None) or "?"
            cause = " ".join(str(err.failure_cases).split())[:200]
            raise CollectionError(f"A rule of collection {coll.id} failed while checking a return: {name}: {cause}",
                                  f"Fix rules/{coll.id}.py (`collect check {coll.id}`), then "
                                  "`collect reprocess RECEIPT` the submissions marked failed.")


_DIGITS = re.compile(r"[0-9]+")


def _missing(index: Any) -> bool:
    """A failure case's index that names no row (a table-wide case): pd.isna's cost, 1.5 µs, was a tenth of the whole
    at 1,000,000 cases."""
    return index is None or index is pd.NA or (isinstance(index, float) and index != index)


def _row_of(cell: str | None) -> int:
    digits = _DIGITS.search(cell or "")
    return int(digits.group()) if digits else 0


def _failures(cases: pd.DataFrame, table: Table, coll: Collection, locale: str,
              unconvertible: set[tuple[int, str]]) -> list[Finding]:
    """Map pandera's failure cases to findings on the cell of the value at fault."""
    by_title = {c.key: c for c in coll.columns}
    rules = {r.message: r for r in coll.rules}
    out: list[Finding] = []
    seen: set[tuple[str, int, str, str]] = set()
    raw = _RawValues(table)
    # plain lists: iterating pandas' Arrow-backed columns row by row costs 1 µs a value
    for context, column, index, case_check in zip(*(cases[c].tolist() for c in (
            "schema_context", "column", "index", "check")), strict=True):
        key = str(column)
        if key not in by_title or _missing(index):
            continue
        row = int(index)
        col = by_title[key]
        check = str(case_check)
        name = ""
        if context == "DataFrameSchema":
            # pandera lists a failing row once per column but leaves out the columns that are blank there, which
            # is often the blamed one (a required-if value left out): any column's case names the row.
            rule = rules.get(check)
            if rule is None or rule.column not in by_title:
                continue
            key, col, name = rule.column, by_title[rule.column], rule.name
            code = "row.rule_warning" if rule.warning else "row.rule"
            message = rule.message_en if locale == "en" else rule.message
            finding = F.make(code, locale, sheet=table.sheet, cell=table.cell(key, row), column=col.title,
                             value=shown(raw.at(row, key)), detail=message)
        else:
            if (row, key) in unconvertible:
                continue
            code, detail = _code_for(check, col)
            finding = F.make(code, locale, sheet=table.sheet, cell=table.cell(key, row), column=col.title,
                             value=_value(raw.at(row, key), code), detail=detail)
        marker = (finding.code, row, key, name)
        if marker not in seen:
            seen.add(marker)
            out.append(finding)
    return out


class _RawValues:
    """A table's raw values by (Excel row, key) for many look-ups: pandas' .at costs 20 µs a cell, this 1 µs."""

    def __init__(self, table: Table) -> None:
        self.table = table
        self.position = {int(row): i for i, row in enumerate(table.raw.index)}
        self.columns: dict[str, Any] = {}

    def at(self, row: int, key: str) -> Any:
        if key not in self.columns:
            self.columns[key] = self.table.raw[key].to_numpy(dtype=object)
        return self.columns[key][self.position[row]]


def _value(raw: Any, code: str) -> Any:
    if code == "value.too_long":
        return len(str(raw).strip())
    return shown(raw)


def _check_bound(check: str, col: ColumnSpec) -> str | None:
    """The bound named in pandera's check text, e.g. "less_than_or_equal_to(2026-10-31 00:00:00)" -> 115/10/31.

    Round-dependent bounds (the round's last day) exist only in the check, not in the column's spec."""
    found = re.fullmatch(r"[a-z_]+\((.+)\)", check)
    if not found:
        return None
    arg = found.group(1)
    try:
        if col.kind == "date":
            return _bound(pd.Timestamp(arg))
        number = Decimal(arg)
    except (ValueError, ArithmeticError):
        return None
    return _bound(int(number)) if number == number.to_integral_value() else str(number)


def _code_for(check: str, col: ColumnSpec) -> tuple[str, Any]:
    if check == "not_nullable":
        return "value.required", ""
    if check.startswith("isin"):
        return "value.choice", "、".join(col.choices or ())
    if check.startswith("greater_than"):
        return "value.min", _check_bound(check, col) or _bound(col.ge)
    if check.startswith("less_than"):
        return "value.max", _check_bound(check, col) or (_bound(col.le) if col.le is not None else "本期期末")
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


# -- table rules and the issued prefill ----------------------------------------------------------------------------
class _Keep(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _field_text(value: Any) -> str:
    if value is None or value is pd.NA:
        return "（未提供）"
    if isinstance(value, pd.Timestamp):
        value = value.date()
    if isinstance(value, date):
        return roc_date(value)
    if isinstance(value, int | Decimal) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def _table_rules(frame: pd.DataFrame, table: Table, coll: Collection, round_id: str, locale: str,
                 issued: IssuedFacts | None) -> list[Finding]:
    """Run the collection's @table_rule checks with the round and the issued header fields."""
    if not coll.table_rules:
        return []
    fields: dict[str, Any] = {f.key: None for f in coll.meta.fields}
    fields.update(issued.fields if issued is not None else {})
    env = RuleEnv(round_id, fields)
    texts = _Keep({k: _field_text(v) for k, v in fields.items()})
    inputs = frame[[c.key for c in coll.inputs]]
    out: list[Finding] = []
    for rule in coll.table_rules:
        col = coll.column(rule.column)
        result = rule.fn(coll.model, inputs.copy(), env)
        template = rule.message_en if locale == "en" else rule.message
        try:
            message = template.format_map(texts)
        except (ValueError, IndexError, AttributeError):
            message = template
        if isinstance(result, pd.Series):
            ok = result.reindex(frame.index).astype("boolean").fillna(True).astype(bool)
            rows = [int(r) for r in ok.index[~ok.to_numpy()]]
        else:
            if result is None or result is pd.NA or bool(result):
                continue
            filled = frame.index[frame[rule.column].notna().to_numpy()]
            rows = [int(filled[-1] if len(filled) else frame.index[-1])]
        code = "table.rule_warning" if rule.warning else "table.rule"
        for row in rows:
            raw = table.raw.at[row, rule.column] if rule.column in table.raw.columns else None
            out.append(F.make(code, locale, sheet=table.sheet, cell=table.cell(rule.column, row), column=col.title,
                              value=shown(raw), detail=message))
    return out


def _comparable(value: Any, kind: str) -> Any:
    """A value reduced so that what was issued and what came back compare equal when the agency left it alone."""
    if value is None or value is pd.NA or (isinstance(value, float) and pd.isna(value)):
        return None
    if kind == "whole":
        return int(value)
    if kind == "decimal":
        return round(float(value), 6)
    if kind == "date":
        return pd.Timestamp(value).date()
    return " ".join(str(value).split())


def _against_issued(frame: pd.DataFrame, table: Table, coll: Collection, locale: str, issued: IssuedFacts,
                    unconvertible: set[tuple[int, str]]) -> list[Finding]:
    """Hold a return to what was prefilled and locked: no prefilled row deleted, no locked value changed.

    Rows are matched by Meta.key when the key column is locked_prefill, else by their Excel row.
    """
    locked = coll.locked_columns
    if not locked:
        return []
    key = coll.meta.key
    key_col = coll.column(key) if key is not None else None
    by_key = key_col is not None and key_col.locked_prefill
    out: list[Finding] = []
    en = locale == "en"
    returned: dict[Any, int] = {}
    if by_key and key_col is not None:
        for row, value in frame[key_col.key].items():
            ck = _comparable(value, key_col.kind)
            if ck is not None:
                returned.setdefault(ck, int(row))
    issued_keys: set[Any] = set()
    for issued_row, values in issued.rows:
        if by_key and key_col is not None:
            expected_key = values.get(key_col.key)
            if expected_key is None:
                continue
            ck = _comparable(expected_key, key_col.kind)
            issued_keys.add(ck)
            where = returned.get(ck)
            if where is None:
                detail = (f"The prefilled {key_col.en} {expected_key} (row {issued_row}) is missing: rows we "
                          f"prefilled may not be deleted and their {key_col.en} may not be changed." if en else
                          f"本處預填的{key_col.title}「{expected_key}」（第 {issued_row} 列）不見了：預填的列不可刪除，"
                          f"{key_col.title}也不可修改。")
                out.append(F.make("prefill.row_missing", locale, sheet=table.sheet,
                                  cell=table.cell(key_col.key, issued_row), column=key_col.title,
                                  value=shown(_raw_at(table, issued_row, key_col.key)), detail=detail))
                continue
        else:
            where = issued_row
            if where not in frame.index:
                first = next(iter(values))
                col = coll.column(first)
                detail = (f"Row {issued_row} was prefilled by us and may not be deleted." if en else
                          f"第 {issued_row} 列為本處預填，不可刪除。")
                out.append(F.make("prefill.row_missing", locale, sheet=table.sheet, cell=table.cell(first, issued_row),
                                  column=col.title, value="", detail=detail))
                continue
        for col in locked:
            if (by_key and col.key == key) or col.key not in values or (where, col.key) in unconvertible:
                continue
            expected = values[col.key]
            if _comparable(frame.at[where, col.key], col.kind) == _comparable(expected, col.kind):
                continue
            was = _field_text(expected)
            detail = (f"{col.en} was prefilled by us and may not be changed (it was {was})." if en else
                      f"「{col.title}」為本處預填，不可修改（原為「{was}」）。")
            out.append(F.make("prefill.changed", locale, sheet=table.sheet, cell=table.cell(col.key, where),
                              column=col.title, value=shown(_raw_at(table, where, col.key)), detail=detail))
    if coll.meta.fixed_rows and by_key and key_col is not None:
        for ck, row in returned.items():
            if ck not in issued_keys:
                detail = (f"{key_col.en} {ck} is not on the list we prefilled; this form takes no added rows." if en
                          else f"{key_col.title}「{ck}」不在本處預填的清單中；本表不可自行新增列。")
                out.append(F.make("prefill.row_added", locale, sheet=table.sheet, cell=table.cell(key_col.key, row),
                                  column=key_col.title, value=shown(_raw_at(table, row, key_col.key)), detail=detail))
    return out


def _raw_at(table: Table, row: int, key: str) -> Any:
    if row in table.raw.index and key in table.raw.columns:
        return table.raw.at[row, key]
    return None


def _totals(rows: pd.DataFrame, table: Table, coll: Collection, locale: str,
            unconvertible: set[tuple[int, str]]) -> list[Finding]:
    """The form's totals as the return states them, held against its own inputs: a warning at each total cell that
    disagrees (totals are never data: the report recomputes them). A total whose inputs could not be read is not
    checked (the cause is reported at the input, not its consequence here)."""
    bad_keys = {key for _row, key in unconvertible}
    by_key = {c.key: c for c in coll.columns}

    def value_of(key: str, row: int | None) -> Decimal | None:
        col = by_key[key]
        if col.is_total:
            parts = [value_of(k, row) for k in col.of or ()]
            known = [p for p in parts if p is not None]
            return sum(known, Decimal(0)) if known else None
        if key in bad_keys:
            raise LookupError(key)
        series = rows[key] if row is None else rows.loc[[row], key]
        numbers = [Decimal(str(v)) for v in series.dropna().tolist()]
        return sum(numbers, Decimal(0)) if numbers else None

    found: list[Finding] = []
    single = len(rows) == 1 and bool(table.cells)
    for ref, (key, stated) in table.stated.items():
        whole_column = key.startswith("*")
        col = by_key[key.lstrip("*")]
        if not col.is_total and not whole_column:
            continue
        number, error = normalise_value(stated, "decimal")
        if error or number is None:
            continue
        row = None if whole_column or single else _row_of(ref)
        if row is not None and row not in rows.index:
            continue
        total: Decimal | None
        try:
            if whole_column and col.is_total:
                total = sum((v for r in rows.index if (v := value_of(col.key, int(r))) is not None), Decimal(0))
            else:
                total = value_of(col.key, row)
        except LookupError:
            continue
        if total is None or Decimal(str(number)) == total:
            continue
        found.append(F.make("total.mismatch", locale, sheet=table.sheet, cell=ref, column=col.title,
                            value=shown(stated), detail=f"{total:,}"))
    return found
