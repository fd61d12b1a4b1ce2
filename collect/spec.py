"""A collection: its rules (a pandera model in rules/<id>.py), its template, its scope, and checks that they agree."""

from __future__ import annotations

import calendar
import hashlib
import importlib.util
import random
import re
import sys
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd
import pandera.pandas as pa

from collect.errors import CollectionError

KINDS = ("whole", "decimal", "date", "text", "choice", "code", "formula")
ID_RE = re.compile(r"^[a-z][a-z0-9_]{0,40}$")

# Defined names in a template (ASCII so every Excel and LibreOffice accepts them).
NAME_AGENCY_CODE = "COLLECT_AGENCY_CODE"
NAME_AGENCY_NAME = "COLLECT_AGENCY_NAME"
NAME_SUPERVISOR = "COLLECT_SUPERVISOR"
NAME_PERIOD = "COLLECT_PERIOD"
NAME_DEADLINE = "COLLECT_DEADLINE"
NAME_HEADER = "COLLECT_HEADER"
NAME_DATA = "COLLECT_DATA"
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
    """
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


_PENDING_RULES: list[RowRule] = []


def row_rule(column: str, message: str, message_en: str = "", *, warning: bool = False) -> Callable[..., Any]:
    """Decorate a `def rule(cls, df) -> Series[bool]` method: True where the row is fine (NA counts as fine)."""

    def wrap(fn: Callable[..., Any]) -> Any:
        name = fn.__name__
        _PENDING_RULES.append(RowRule(name, column, message, message_en or message, warning))

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


_PENDING_TABLE_RULES: list[TableRule] = []


def table_rule(column: str, message: str, message_en: str = "", *, warning: bool = False) -> Callable[..., Any]:
    """Decorate a `def rule(cls, df, env: RuleEnv) -> bool | Series[bool]` method (see TableRule)."""

    def wrap(fn: Callable[..., Any]) -> Any:
        _PENDING_TABLE_RULES.append(TableRule(fn.__name__, column, message, message_en or message, warning, fn))
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

    @property
    def is_input(self) -> bool:
        return self.formula is None

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


@dataclass(frozen=True)
class Layout:
    """Where things are in the template: found through its defined names."""

    sheet: str
    header_row: int
    first_col: int  # 1-based
    data_first_row: int
    data_last_row: int
    identity: dict[str, str]  # defined name -> A1 cell on `sheet`
    fields: dict[str, str] = field(default_factory=dict)  # header field key -> A1 cell on `sheet`

    @property
    def max_rows(self) -> int:
        return self.data_last_row - self.data_first_row + 1


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


# -- rounds ----------------------------------------------------------------------------------------------------
ROUND_RE = re.compile(r"^(\d{4})(?:-(\d{2})|-Q([1-4])|-H([12])|-S(\d{1,2}))?$")


def parse_round(round_id: str) -> tuple[int, str, int | None]:
    m = ROUND_RE.match(round_id)
    if not m:
        raise CollectionError(
            f"The round {round_id!r} is not understood.",
            "Use 2026-10 for a month, 2026 for a year, 2026-Q3 for a quarter, 2026-H1 for a half, 2026-S1 for a "
            "budget session.",
        )
    year = int(m.group(1))
    if m.group(2):
        month = int(m.group(2))
        if not 1 <= month <= 12:
            raise CollectionError(f"The round {round_id!r} names month {month}.", "Months run from 01 to 12.")
        return year, "month", month
    if m.group(3):
        return year, "quarter", int(m.group(3))
    if m.group(4):
        return year, "half", int(m.group(4))
    if m.group(5):
        return year, "session", int(m.group(5))
    return year, "year", None


def round_end(round_id: str) -> date:
    """The last day of the period a round covers."""
    year, kind, n = parse_round(round_id)
    if kind == "month" and n:
        return date(year, n, calendar.monthrange(year, n)[1])
    if kind == "quarter" and n:
        return date(year, n * 3, calendar.monthrange(year, n * 3)[1])
    if kind == "half" and n:
        return date(year, 6, 30) if n == 1 else date(year, 12, 31)
    return date(year, 12, 31)


def round_start(round_id: str) -> date:
    year, kind, n = parse_round(round_id)
    if kind == "month" and n:
        return date(year, n, 1)
    if kind == "quarter" and n:
        return date(year, n * 3 - 2, 1)
    if kind == "half" and n == 2:
        return date(year, 7, 1)
    return date(year, 1, 1)


def previous_round(round_id: str) -> str:
    year, kind, n = parse_round(round_id)
    if kind == "month" and n:
        return f"{year - 1}-12" if n == 1 else f"{year}-{n - 1:02d}"
    if kind == "quarter" and n:
        return f"{year - 1}-Q4" if n == 1 else f"{year}-Q{n - 1}"
    if kind == "half" and n:
        return f"{year - 1}-H2" if n == 1 else f"{year}-H1"
    if kind == "session" and n:
        return f"{year - 1}-S2" if n == 1 else f"{year}-S{n - 1}"
    return str(year - 1)


def roc_round_label(round_id: str) -> str:
    """The round as a user reads it: 2026-10 -> 115年10月, 2026 -> 115年度."""
    year, kind, n = parse_round(round_id)
    roc = year - 1911
    if kind == "month":
        return f"{roc}年{n}月"
    if kind == "quarter":
        return f"{roc}年第{n}季"
    if kind == "half":
        return f"{roc}年{'上' if n == 1 else '下'}半年"
    if kind == "session":
        return f"{roc}年第{n}次審議"
    return f"{roc}年度"


def roc_date(d: date) -> str:
    return f"{d.year - 1911}/{d.month:02d}/{d.day:02d}"


# -- loading ---------------------------------------------------------------------------------------------------
def collection_ids(rules_dir: Path) -> list[str]:
    return sorted(p.stem for p in rules_dir.glob("*.py") if ID_RE.match(p.stem))


def _import_rules(cid: str, path: Path) -> Any:
    name = f"collect_rules_{cid}_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise CollectionError(f"Cannot load the rules file {path}.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    _PENDING_RULES.clear()
    _PENDING_TABLE_RULES.clear()
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(name, None)
        tb = traceback.extract_tb(exc.__traceback__)
        where = next((f"line {fr.lineno}" for fr in reversed(tb) if fr.filename == str(path)), "")
        raise CollectionError(
            f"The rules file {path} does not import{' (' + where + ')' if where else ''}: "
            f"{exc.__class__.__name__}: {exc}",
            "Fix the rules file; run it with `python -c 'import runpy; runpy.run_path(\"FILE\")'` to see the "
            "full error, or use --debug.",
        ) from exc
    module.__dict__["__collect_rules__"] = tuple(_PENDING_RULES)
    module.__dict__["__collect_table_rules__"] = tuple(_PENDING_TABLE_RULES)
    _PENDING_RULES.clear()
    _PENDING_TABLE_RULES.clear()
    return module


def _columns_of(model: type[pa.DataFrameModel], path: Path) -> tuple[ColumnSpec, ...]:
    schema = model.to_schema()
    out = []
    for key, col in schema.columns.items():
        meta = (col.metadata or {}).get("collect")
        if not meta or not col.title:
            raise CollectionError(f"{path}: the field {key!r} was not declared with collect.spec.column(...).")
        stats = {c.name: c.statistics for c in col.checks}
        choices = stats.get("isin", {}).get("allowed_values")
        ge = stats.get("greater_than_or_equal_to", {}).get("min_value")
        le = stats.get("less_than_or_equal_to", {}).get("max_value")
        max_length = stats.get("str_length", {}).get("max_value")
        out.append(ColumnSpec(
            key=str(key), title=col.title, en=meta["en"], kind=meta["kind"], required=meta["required"],
            money=meta["money"], unique=col.unique, choices=tuple(choices) if choices else None, ge=ge, le=le,
            max_length=max_length, formula=meta["formula"], round_end=meta["round_end"],
            cumulative=meta["cumulative"], carry=meta["carry"], hint=meta["hint"], width=meta["width"],
            compute=meta.get("compute"),
            locked_prefill=meta.get("locked_prefill", False), round_start=meta.get("round_start", False),
            round_year=meta.get("round_year", False), after_year=meta.get("after_year", False),
        ))
    return tuple(out)


def version_of(template_path: Path, rules_path: Path) -> str:
    digest = hashlib.sha256()
    for p in (template_path, rules_path):
        digest.update(p.read_bytes() if p.exists() else b"")
    return digest.hexdigest()[:12]


def load_collection(rules_dir: Path, templates_dir: Path, cid: str, *, need_template: bool = True) -> Collection:
    """Load rules/<cid>.py and (when need_template) the layout of templates_xlsx/<cid>.xlsx."""
    rules_path = rules_dir / f"{cid}.py"
    template_path = templates_dir / f"{cid}.xlsx"
    if not rules_path.is_file():
        known = ", ".join(collection_ids(rules_dir)) or "none"
        raise CollectionError(f"There is no collection {cid!r}: {rules_path} does not exist (known: {known}).")
    return _load_cached(rules_path, template_path, cid, need_template, version_of(template_path, rules_path))


@cache
def _load_cached(rules_path: Path, template_path: Path, cid: str, need_template: bool, version: str) -> Collection:
    module = _import_rules(cid, rules_path)
    meta = getattr(module, "META", None)
    models = [v for v in vars(module).values()
              if isinstance(v, type) and issubclass(v, pa.DataFrameModel) and v is not pa.DataFrameModel
              and v.__module__ == module.__name__]
    if not isinstance(meta, Meta) or len(models) != 1:
        raise CollectionError(f"{rules_path} must define META = Meta(...) and exactly one pandera DataFrameModel "
                              f"(found {len(models)}).")
    columns = _columns_of(models[0], rules_path)
    rules = tuple(module.__dict__["__collect_rules__"])
    table_rules = tuple(module.__dict__.get("__collect_table_rules__", ()))
    keys = {c.key for c in columns}
    for r in rules:
        if r.column not in keys:
            raise CollectionError(f"{rules_path}: row rule {r.name} blames column {r.column!r}, which is not a field.")
    for t in table_rules:
        if t.column not in keys:
            raise CollectionError(f"{rules_path}: table rule {t.name} blames column {t.column!r}, which is not a "
                                  f"field.")
    field_keys = [f.key for f in meta.fields]
    if len(set(field_keys)) != len(field_keys):
        raise CollectionError(f"{rules_path}: META.fields names a key twice.")
    if meta.scope == "prefill" and meta.prefill_previous:
        raise CollectionError(f"{rules_path}: a collection scoped by its prefill file cannot also carry the previous "
                              f"round over (prefill_previous).")
    layout = None
    if need_template:  # without: the rules alone, so `check` can list a broken template's every problem
        from collect.template import read_layout

        layout = read_layout(template_path, columns, meta.fields)
    hook = getattr(module, "sample_rows", None)
    return Collection(cid, meta, models[0], columns, rules, rules_path, template_path, version, layout, table_rules,
                      hook if callable(hook) else None)
