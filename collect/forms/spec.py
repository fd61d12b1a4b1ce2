"""A collection: its rules (a pandera model in rules/<id>.py), its template, its scope, and checks that they agree."""

from __future__ import annotations

import inspect
import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pandera.pandas as pa

from collect.normalise import VALUE_KINDS
from collect.rounds import parse_round, round_end, round_start

KINDS = (*VALUE_KINDS, "formula", "total")  # a formula column is computed by the form, never typed
ID_RE = re.compile(r"^[a-z][a-z0-9_]{0,40}$")

# Defined names in a template (ASCII so every Excel and LibreOffice accepts them).
NAME_AGENCY_CODE = "COLLECT_AGENCY_CODE"
NAME_AGENCY_NAME = "COLLECT_AGENCY_NAME"
NAME_SUPERVISOR = "COLLECT_SUPERVISOR"
NAME_PERIOD = "COLLECT_PERIOD"
NAME_DEADLINE = "COLLECT_DEADLINE"
NAME_HEADER = "COLLECT_HEADER"
NAME_DATA = "COLLECT_DATA"
NAME_TOTALS = "COLLECT_TOTALS"  # optional: the form's total rows (never data; recomputed on return)
FIELD_PREFIX = "COLLECT_FIELD_"  # + the header field's key in capitals: a prefilled header-level value
IDENTITY_NAMES = {
    NAME_AGENCY_CODE: "機關代碼",
    NAME_AGENCY_NAME: "機關名稱",
    NAME_SUPERVISOR: "主管機關",
    NAME_PERIOD: "填報期間",
    NAME_DEADLINE: "截止日期",
}
STAMP_SHEET = "_collect"
LISTS_SHEET = "_lists"


# -- what a rules file uses ------------------------------------------------------------------------------------
def column(
    title: str,
    en: str = "",
    *,
    kind: str,
    required: bool = True,
    money: bool = False,
    unique: bool = False,
    isin: list[str] | None = None,
    ge: float | date | None = None,
    le: float | date | None = None,
    max_length: int | None = None,
    formula: str | None = None,
    not_after_round_end: bool = False,
    cumulative: bool = False,
    carry: bool = False,
    hint: str = "",
    width: float | None = None,
    compute: Callable[[pd.DataFrame], pd.Series] | None = None,
    locked_prefill: bool = False,
    not_before_round_start: bool = False,
    within_round_year: bool = False,
    after_round_year: bool = False,
    of: list[str] | tuple[str, ...] | None = None,
    ordinal: bool = False,
    cell: str | None = None,
    count_of: str | None = None,
) -> Any:
    """A pandera Field carrying what collect needs: the zh-TW/en title, its kind, and the checks.

    `formula` is an Excel formula with {key} for the same row's cell of another column (the column is then
    computed by the template and locked); `carry` prefills the column from the agency's previous accepted round;
    `cumulative` warns when the value went down from the previous round; `compute` gives a formula column's
    value from the other columns for reports (the template's formula is for the agency's eyes).
    `locked_prefill`: a cell of this column prefilled at issue time stays locked, and the returned value must still
    be the issued one (when the Meta.key column is so marked, a deleted prefilled row is an error too).
    Date bounds relative to the round, resolved by `Collection.schema_for(round_id)`: `not_after_round_end`,
    `not_before_round_start`, `within_round_year` (the round's fiscal year, Jan 1 - Dec 31) and
    `after_round_year` (from Jan 1 of the following year on).
    A form's own parts: `kind="total"` with `of=[keys]` is a subtotal or total (the sum of those inputs; never
    data, locked, recomputed on return, where a disagreeing total cell gets a warning; `of=[]` when the office
    computes it itself); `ordinal=True` marks a 項次 column (a row holding nothing else is a blank row);
    `cell="E6"` places the input at one cell of a grid or a field (a collection of `Meta(shape="cells")`).
    `count_of="f6"`: in the consolidated form (彙整表) this cell counts the accepted returns that reported a value
    in f6 (e.g. 校 beside 金額, where each agency is one school), instead of adding up what the agencies typed.
    """
    if kind == "total":
        keys = list(of or ())
        formula = "=SUM(" + ",".join(f"{{{k}}}" for k in keys) + ")" if keys else "="
        required = False

        def add_up(df: pd.DataFrame, keys: list[str] = keys) -> pd.Series:
            return df[keys].sum(axis=1, min_count=1) if keys else pd.Series(pd.NA, index=df.index, dtype="object")

        compute = add_up
    if kind not in KINDS:
        raise ValueError(f"kind {kind!r} is not one of {KINDS}")
    checks: dict[str, Any] = {}
    if isin is not None:
        checks["isin"] = list(isin)
    if ge is not None:
        checks["ge"] = pd.Timestamp(ge) if isinstance(ge, date) else ge
    if le is not None:
        checks["le"] = pd.Timestamp(le) if isinstance(le, date) else le
    if max_length is not None:
        checks["str_length"] = {"max_value": max_length}
    meta = {
        "kind": kind, "en": en or title, "money": money, "formula": formula, "round_end": not_after_round_end,
        "cumulative": cumulative, "carry": carry, "hint": hint, "width": width, "required": required,
        "compute": compute, "locked_prefill": locked_prefill, "round_start": not_before_round_start,
        "round_year": within_round_year, "after_year": after_round_year,
        "of": tuple(of or ()) if kind == "total" else None, "ordinal": ordinal, "cell": cell, "count_of": count_of,
    }
    return pa.Field(title=title, nullable=True if formula else not required, unique=unique,
                    metadata={"collect": meta}, **checks)


@dataclass(frozen=True)
class RowRule:
    """A whole-row check, blamed on one column's cell."""

    name: str
    column: str
    message: str
    message_en: str
    warning: bool
    reads: frozenset[str] | None = None  # the columns its function reads (df["key"]); None: unknown, so every one


PENDING_ROW_RULES: list[RowRule] = []


def columns_read(fn: Callable[..., Any]) -> frozenset[str] | None:
    """The keys a rule function reads from its frame, as written in its source (df["approved"]); None when the
    source cannot be read or names none."""
    try:
        source = inspect.getsource(fn)
        frame = list(inspect.signature(fn).parameters)[1]
    except (OSError, TypeError, ValueError, IndexError):
        return None
    name = re.escape(frame)
    found = re.findall(rf"""\b{name}\s*\[\s*["']([A-Za-z_]\w*)["']\s*\]|\b{name}\.([A-Za-z_]\w*)\b""", source)
    return frozenset(a or b for a, b in found) or None


def row_rule(column: str, message: str, message_en: str = "", *, warning: bool = False) -> Callable[..., Any]:
    """Decorate a `def rule(cls, df) -> Series[bool]` method: True where the row is fine (NA counts as fine)."""

    def wrap(fn: Callable[..., Any]) -> Any:
        name = fn.__name__
        PENDING_ROW_RULES.append(RowRule(name, column, message, message_en or message, warning, columns_read(fn)))

        def check(cls: Any, df: pd.DataFrame) -> pd.Series:
            return pd.Series(fn(cls, df), index=df.index).fillna(True).astype(bool)

        check.__name__ = name
        return pa.dataframe_check(name=name, error=message)(check)

    return wrap


@dataclass(frozen=True)
class TableRule:
    """A check that sees the whole table and the round's facts (header fields); blamed on one column.

    Its function returns a bool (the table as a whole: one finding on the column's last filled cell) or a
    Series[bool] indexed like the frame (True where the row is fine; NA counts as fine). The message may name
    header fields as {key}; they are shown as the form shows them (amounts with thousands separators).
    """

    name: str
    column: str
    message: str
    message_en: str
    warning: bool
    fn: Callable[..., Any]


PENDING_TABLE_RULES: list[TableRule] = []


def table_rule(column: str, message: str, message_en: str = "", *, warning: bool = False) -> Callable[..., Any]:
    """Decorate a `def rule(cls, df, env: RuleEnv) -> bool | Series[bool]` method (see TableRule)."""

    def wrap(fn: Callable[..., Any]) -> Any:
        PENDING_TABLE_RULES.append(TableRule(fn.__name__, column, message, message_en or message, warning, fn))
        return staticmethod(fn)

    return wrap


@dataclass(frozen=True)
class FormField:
    """A header-level value of a form (one per workbook, not per row), prefilled at issue time and locked.

    The template marks its cell with the defined name COLLECT_FIELD_<KEY>; the prefill file gives it in a column
    titled `title`; table rules read it from `RuleEnv.fields[key]`.
    """

    key: str
    title: str
    en: str = ""
    kind: str = "whole"  # whole, decimal, date, text
    money: bool = False

    @property
    def defined_name(self) -> str:
        return FIELD_PREFIX + self.key.upper()


def form_field(key: str, title: str, en: str = "", *, kind: str = "whole", money: bool = False) -> FormField:
    """A header-level value for Meta(fields=...)."""
    if kind not in ("whole", "decimal", "date", "text"):
        raise ValueError(f"a form field's kind is whole, decimal, date or text, not {kind!r}")
    if not re.match(r"^[a-z][a-z0-9_]{0,30}$", key):
        raise ValueError(f"a form field's key must be lower-case ASCII (it becomes a defined name): {key!r}")
    return FormField(key, title, en or title, kind, money)


@dataclass(frozen=True)
class Slot:
    """One place to fill in a sentence field: a blank (option None) or one box of a choice (the option it picks)."""

    key: str
    option: str | None = None


SLOT_RE = re.compile(r"\{([a-z][a-z0-9_]*)(?:=([^{}]*))?\}")


def sentence_parts(text: str) -> list[str | Slot]:
    """A sentence field's printed words and its slots, in order ({{ and }} are printed braces)."""
    parts: list[str | Slot] = []
    at = 0
    for m in SLOT_RE.finditer(text):
        if m.start() > at:
            parts.append(text[at:m.start()].replace("{{", "{").replace("}}", "}"))
        parts.append(Slot(m.group(1), m.group(2)))
        at = m.end()
    if at < len(text):
        parts.append(text[at:].replace("{{", "{").replace("}}", "}"))
    return parts


@dataclass(frozen=True)
class RuleEnv:
    """What a table rule may know besides the rows: the round and the header fields issued to this agency."""

    round_id: str
    fields: Mapping[str, Any]  # field key -> value issued (None when not known)

    @property
    def start(self) -> date:
        return round_start(self.round_id)

    @property
    def end(self) -> date:
        return round_end(self.round_id)


@dataclass(frozen=True)
class IssuedFacts:
    """What was prefilled into one agency's workbook that its return is held to (kept under state/issued/)."""

    fields: Mapping[str, Any]  # header field key -> value
    rows: tuple[tuple[int, Mapping[str, Any]], ...]  # (Excel row, {locked column key -> value})


@dataclass(frozen=True)
class Meta:
    """What a collection is besides its columns."""

    title: str
    title_en: str = ""
    scope: str | tuple[str, ...] = "all"  # "public", "funds", "all", "prefill" (agencies in the prefill file), codes
    period: str = "month"  # month, year, quarter, session, any
    deadline_days: int | None = None
    max_rows: int = 200
    key: str | None = None  # the column that identifies a row across rounds (for carry-over and comparisons)
    sheet: str = "填報表"
    old_version: str = "warning"  # what a return on a superseded template version gets: "warning" | "error"
    closed_round: str = "error"  # what a return for a closed round gets
    prefill_previous: bool = False
    instructions: str = ""
    require_signoff: bool = False
    fields: tuple[FormField, ...] = ()  # header-level prefilled values (see FormField)
    fixed_rows: bool = False  # True: a returned row whose key was not prefilled is an error (no rows added)
    # "list": a header over free rows (columns); "cells": every input is one cell of its own (a grid's crossings
    # of labelled rows and columns, or fields), named by `column(..., cell="E6")`; a return is one row.
    shape: str = "list"
    format: str = ""  # "xlsx" | "ods": the issued copies' file format ("": the workspace's, collect.toml)
    execution_rate: tuple[str, str] | None = None  # (numerator, denominator) money column keys: 執行率 in reports
    # a cells form's sentence fields: cell -> the sentence as printed, each blank written {key} (a column of the
    # model at that cell) and each box of a choice {key=option}, e.g. "全校班級數：{g4a}班" or
    # "{n10a=延續性辦理}，第{n10b}年 {n10a=新申請項目}" (see collect.forms.sentence)
    sentences: Mapping[str, str] = field(default_factory=dict)

    def sentence_keys(self) -> dict[str, str]:
        """Every key filled inside a sentence field -> the sentence's cell."""
        return {part.key: cell for cell, text in self.sentences.items() for part in sentence_parts(text)
                if isinstance(part, Slot)}


@dataclass(frozen=True)
class ColumnSpec:
    key: str
    title: str
    en: str
    kind: str
    required: bool
    money: bool
    unique: bool
    choices: tuple[str, ...] | None
    ge: Any
    le: Any
    max_length: int | None
    formula: str | None
    round_end: bool
    cumulative: bool
    carry: bool
    hint: str
    width: float | None
    compute: Callable[[pd.DataFrame], pd.Series] | None = None
    locked_prefill: bool = False
    round_start: bool = False
    round_year: bool = False
    after_year: bool = False
    of: tuple[str, ...] | None = None  # a total: the keys it adds up (None: not a total)
    ordinal: bool = False  # 項次: a row with nothing else filled is blank
    cell: str | None = None  # a cell form's input cell (its merged range's anchor)
    count_of: str | None = None  # 彙整表: count the returns with a value in this key instead of summing

    @property
    def is_input(self) -> bool:
        return self.formula is None

    @property
    def is_total(self) -> bool:
        return self.of is not None

    def date_bounds(self, round_id: str) -> tuple[date | None, date | None]:
        """The tightest (earliest, latest) dates this column accepts in a round; None where unbounded."""
        lo: date | None = self.ge.date() if isinstance(self.ge, pd.Timestamp) else None
        hi: date | None = self.le.date() if isinstance(self.le, pd.Timestamp) else None
        if self.kind != "date":
            return lo, hi
        year = parse_round(round_id)[0]
        if self.round_start:
            lo = max(d for d in (lo, round_start(round_id)) if d is not None)
        if self.round_year:
            lo = max(d for d in (lo, date(year, 1, 1)) if d is not None)
            hi = min(d for d in (hi, date(year, 12, 31)) if d is not None)
        if self.after_year:
            lo = max(d for d in (lo, date(year + 1, 1, 1)) if d is not None)
        if self.round_end:
            hi = min(d for d in (hi, round_end(round_id)) if d is not None)
        return lo, hi

    @property
    def round_dependent(self) -> bool:
        return self.round_end or self.round_start or self.round_year or self.after_year


def sentence_problems(meta: Meta, columns: tuple[ColumnSpec, ...]) -> list[str]:
    """What is wrong with Meta.sentences against the model's fields: each {key} a field at the sentence's cell,
    each box {key=option} one of that field's choices."""
    by_key = {c.key: c for c in columns}
    problems = []
    for cell, text in meta.sentences.items():
        for part in sentence_parts(text):
            if not isinstance(part, Slot):
                continue
            col = by_key.get(part.key)
            if col is None:
                problems.append(f"the sentence at {cell} names {{{part.key}}}, which is not a field.")
            elif (col.cell or "").upper() != cell.upper():
                problems.append(f"the field {part.key} has cell={col.cell!r}, but its sentence is at {cell}.")
            elif part.option is not None and part.option not in (col.choices or ()):
                problems.append(f"the box {{{part.key}={part.option}}} at {cell}: {part.option!r} is not one of "
                                f"{part.key}'s isin={list(col.choices or ())}.")
    return problems


@dataclass(frozen=True)
class Layout:
    """Where things are in the template: found through its defined names."""

    sheet: str
    header_row: int
    first_col: int  # 1-based
    data_first_row: int
    data_last_row: int
    identity: dict[str, str]  # defined name -> A1 cell on `sheet` (the visible identity cells are optional)
    fields: dict[str, str] = field(default_factory=dict)  # header field key -> A1 cell on `sheet`
    header_first_row: int = 0  # a header of several rows starts here (0: the header is header_row alone)
    letters: dict[str, str] = field(default_factory=dict)  # list column key -> its column letter
    total_rows: tuple[int, ...] = ()  # the form's total rows inside or under the data range: never data
    cells: dict[str, str] = field(default_factory=dict)  # a cell form's key -> A1 cell
    merged: frozenset[str] = frozenset()  # the form's own merged ranges below the header (not the agency's doing)

    @property
    def header_rows(self) -> range:
        return range(self.header_first_row or self.header_row, self.header_row + 1)

    @property
    def data_rows(self) -> list[int]:
        return [r for r in range(self.data_first_row, self.data_last_row + 1) if r not in self.total_rows]

    @property
    def max_rows(self) -> int:
        return self.data_last_row - self.data_first_row + 1 - len(self.total_rows)


_SCHEMAS: dict[tuple[str, str, str, str], pa.DataFrameSchema] = {}


@dataclass(frozen=True)
class Collection:
    id: str
    meta: Meta
    model: type[pa.DataFrameModel]
    columns: tuple[ColumnSpec, ...]
    rules: tuple[RowRule, ...]
    rules_path: Path
    template_path: Path
    version: str
    layout: Layout | None = field(default=None)
    table_rules: tuple[TableRule, ...] = ()
    # rules/<id>.py's optional `def sample_rows(rng, round_id, issued: IssuedFacts | None) -> list[dict]`: clean,
    # plausible rows for one agency's copy (the demo's simulated agencies use it); None when the file has none.
    sample_rows: Callable[[random.Random, str, IssuedFacts | None], list[dict[str, Any]]] | None = field(
        default=None, compare=False)

    @property
    def title(self) -> str:
        return self.meta.title

    @property
    def fields(self) -> tuple[FormField, ...]:
        return self.meta.fields

    @property
    def locked_columns(self) -> tuple[ColumnSpec, ...]:
        return tuple(c for c in self.columns if c.locked_prefill and c.is_input)

    def column(self, key: str) -> ColumnSpec:
        return next(c for c in self.columns if c.key == key)

    @property
    def inputs(self) -> tuple[ColumnSpec, ...]:
        return tuple(c for c in self.columns if c.is_input)

    @property
    def computed(self) -> tuple[ColumnSpec, ...]:
        """The columns a report computes (formulas, totals), each after the totals it adds up."""
        pending = [c for c in self.columns if c.compute is not None]
        done: set[str] = {c.key for c in self.columns if c.compute is None}
        order: list[ColumnSpec] = []
        while pending:
            ready = [c for c in pending if all(k in done for k in c.of or ())] or pending[:1]
            for c in ready:
                order.append(c)
                done.add(c.key)
                pending.remove(c)
        return tuple(order)

    def value_kind(self, col: ColumnSpec) -> str:
        """The kind of value a column holds in a report: a total is whole when all it adds up is whole."""
        if not col.is_total:
            return col.kind
        leaves = [self.value_kind(self.column(k)) for k in col.of or () if k != col.key]
        return "whole" if col.money or (leaves and all(k == "whole" for k in leaves)) else "decimal"

    def schema_for(self, round_id: str) -> pa.DataFrameSchema:
        """The pandera schema with round-dependent date bounds (see `column`) filled in; built once per round."""
        key = (self.id, self.version, str(self.rules_path), round_id)
        if key not in _SCHEMAS:
            _SCHEMAS[key] = self._schema_for(round_id)
        return _SCHEMAS[key]

    def _schema_for(self, round_id: str) -> pa.DataFrameSchema:
        schema = self.model.to_schema()
        end = pd.Timestamp(round_end(round_id))
        updates: dict[str, dict[str, Any]] = {}
        for col in self.columns:
            if not col.round_dependent:
                continue
            checks = list(schema.columns[col.key].checks)
            if col.round_end:
                checks.append(pa.Check.le(end))
            lo, hi = col.date_bounds(round_id)
            if (col.round_start or col.round_year or col.after_year) and lo is not None:
                checks.append(pa.Check.ge(pd.Timestamp(lo)))
            if col.round_year and hi is not None:
                checks.append(pa.Check.le(pd.Timestamp(hi)))
            updates[col.key] = {"checks": checks}
        formulas = [c.key for c in self.columns if c.formula]
        return schema.update_columns(updates).remove_columns(formulas) if updates or formulas else schema

    def in_scope_codes(self) -> str | list[str]:
        """The scope for Registry.in_scope; a "prefill" scope is known per round only (the issued list), so []."""
        if self.meta.scope == "prefill":
            return []
        return list(self.meta.scope) if isinstance(self.meta.scope, tuple) else self.meta.scope
