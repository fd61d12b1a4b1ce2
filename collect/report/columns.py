"""Column planning of the report: the input, every value converted once into Arrow columns, the three tables
(明細, 檢核例外, 未繳交) with their formats and print-ready widths."""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from collect.normalise import VALUE_KINDS
from collect.report.totals import Exact, isna
from collect.states import ANSWERED, STATE_LABELS, State
from collect.xlsx.dates import EPOCH
from collect.xlsx.writer import Col, Sheet

# Excel keeps 15 significant digits: a whole number at or above this is written as text so no digit is lost.
EXCEL_EXACT_LIMIT = 10**15
KINDS = (*VALUE_KINDS, "rate")  # a report column may also be a computed rate
ACCEPTED_STATES = tuple(str(s) for s in ANSWERED)
WHICH_TITLES = {"counting": "計入版本", "latest": "最新版本"}
SEVERITY_TITLES = {"error": "錯誤", "warning": "警告"}
WIDEST_COLUMN = 60  # a text column is never wider than this: longer texts wrap

ROW_KEYS = ("agency", "agency_name", "supervisor", "supervisor_name", "receipt")
_AGENCY_KEYS = ("agency", "agency_name", "supervisor", "supervisor_name", "state", "emails",
                "last_received", "last_reminded")
_FINDING_KEYS = ("agency", "agency_name", "supervisor", "receipt", "which", "code", "severity", "sheet",
                 "cell", "column", "value", "message", "amount")
_EXCEL_EPOCH = pd.Timestamp(EPOCH)

Cell = int | float | str | None  # a value ready for a worksheet: number, text, or nothing


@dataclass(frozen=True)
class ReportColumn:
    """One data column of the collection as the report shows it."""

    key: str
    title: str  # title in zh-TW, e.g. "核定經費"
    kind: str  # "whole" | "decimal" | "date" | "text" | "choice" | "code" | "rate" (float 0..1, shown as %)
    money: bool = False  # True for NT$ amounts: thousands separators, summed in 摘要


@dataclass
class ReportInput:
    """Everything the report shows: the merged rows, the agencies in scope and the findings of a round."""

    collection_id: str
    collection_title: str
    round_id: str
    round_label: str
    generated_at: datetime
    columns: list[ReportColumn]
    rows: pd.DataFrame
    agencies: pd.DataFrame
    findings: pd.DataFrame
    # The collection's execution rate as (numerator, denominator) money column keys, e.g. ("spent", "approved"):
    # shown per supervising agency and in total on 摘要 as the ratio of the exact sums.
    rate: tuple[str, str] | None = None
    # More sheets for every workbook (e.g. the consolidated form 彙整表), written right after 摘要: called with the
    # supervising agency's code (None for the master) and the print footer to use, it returns the sheets' plans.
    extra_sheets: Callable[[str | None, str], list[Sheet]] | None = None


@dataclass
class Table:
    """A sheet's table, column by column, with each column's format names (for numbers, for text)."""

    headers: list[str]
    columns: list[Col]
    formats: list[tuple[str, str]]
    widths: list[float]
    freeze_cols: int = 0
    empty_note: str = ""

    def __len__(self) -> int:
        return len(self.columns[0].texts) if self.columns else 0


@dataclass
class Values:
    """The detail rows' values converted once, for the workbooks and both exports."""

    texts: dict[str, pa.Array]  # the agency columns and the text columns, as Arrow strings (null where blank)
    wholes: dict[str, Exact]  # the whole-number columns, exact

    @classmethod
    def of(cls, inp: ReportInput) -> Values:
        rows = inp.rows
        texts = {key: strings(rows[key]) for key in ROW_KEYS}
        wholes: dict[str, Exact] = {}
        for col in inp.columns:
            if col.kind == "whole":
                wholes[col.key] = Exact.of(rows[col.key], col.key)
            elif col.kind not in ("date", "decimal", "rate"):
                texts[col.key] = strings(rows[col.key])
        return cls(texts, wholes)


@dataclass
class Prepared:
    """The report's tables and, for slicing them by supervising agency, each row's codes."""

    detail: Table
    exceptions: Table
    missing: Table
    row_supervisor: Codes  # supervisor code of each detail row
    row_agency: Codes
    finding_supervisor: np.ndarray
    finding_agency: np.ndarray
    missing_supervisor: np.ndarray
    missing_agency: np.ndarray
    agency_code: np.ndarray  # the agencies in scope
    agency_supervisor: np.ndarray
    agency_state: np.ndarray
    money_titles: list[str]
    money: list[Exact]
    supervisors: dict[str, str] = field(default_factory=dict)  # code -> name, sorted by code
    big_numbers: bool = False  # some whole number in the detail is written as text (beyond 15 digits)


def check_input(inp: ReportInput) -> None:
    """Refuse an input the report cannot show exactly (a ValueError naming every problem)."""
    problems: list[str] = []
    for col in inp.columns:
        if col.kind not in KINDS:
            problems.append(f"column {col.key!r} has unknown kind {col.kind!r}")
        if col.money and col.kind != "whole":
            problems.append(f"money column {col.key!r} must be of kind 'whole'")
    money_keys = {c.key for c in inp.columns if c.money}
    if inp.rate is not None and not set(inp.rate) <= money_keys:
        problems.append(f"the execution rate {inp.rate} must name two money columns")
    for frame_name, frame, keys in (
        ("rows", inp.rows, [*ROW_KEYS, *(c.key for c in inp.columns)]),
        ("agencies", inp.agencies, list(_AGENCY_KEYS)),
        ("findings", inp.findings, list(_FINDING_KEYS)),
    ):
        missing = [k for k in keys if k not in frame.columns]
        if missing:
            problems.append(f"{frame_name} lacks columns {missing}")
    if problems:
        raise ValueError("report input is incomplete: " + "; ".join(problems))


def codes(series: pd.Series) -> np.ndarray:
    """Agency codes as an object array of str ("" where missing), for fast comparisons."""
    values = series.to_numpy(dtype=object, na_value=None)
    if all(v is None or v.__class__ is str for v in values):
        return np.where(pd.isna(values), "", values).astype(object)
    return np.array(["" if isna(v) else str(v) for v in values], dtype=object)


_NONE = np.array([], dtype=np.int64)


@dataclass
class Codes:
    """The agency codes of many rows as small numbers: row i has code labels[ids[i]] ("" where blank). No Python
    string per row: a round of 430 x 10,000 rows keeps two int64 arrays, not millions of objects."""

    ids: np.ndarray  # int64
    labels: list[str]
    _where: dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def of(cls, texts: pa.Array) -> Codes:
        encoded = pc.fill_null(texts, "").dictionary_encode()
        return cls(encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64),
                   [str(v) for v in encoded.dictionary.to_pylist()])

    def __len__(self) -> int:
        return len(self.ids)

    def positions(self, code: str) -> np.ndarray:
        """The rows with `code`, in order (every code's found at the first call)."""
        if not self._where and len(self.ids):
            order = np.argsort(self.ids, kind="stable")
            bounds = np.cumsum(np.bincount(self.ids, minlength=len(self.labels)))[:-1]
            self._where = dict(zip(self.labels, np.split(order, bounds), strict=True))
        return self._where.get(code, _NONE)


def prepare(inp: ReportInput, values: Values) -> Prepared:
    rows, agencies = inp.rows, inp.agencies
    naive = _naive_converter(inp.generated_at)
    row_supervisor = Codes.of(values.texts["supervisor"])

    row_pairs = pa.table({"code": pc.fill_null(values.texts["supervisor"], ""),  # distinct, in order of rows
                          "name": values.texts["supervisor_name"]}).group_by(["code", "name"], use_threads=False)
    pairs = (pd.DataFrame({"code": codes(agencies["supervisor"]), "name": agencies["supervisor_name"].to_numpy()}),
             row_pairs.aggregate([]).to_pandas())
    supervisors: dict[str, str] = {}
    for named in pairs:  # each code's first name, the agency list first
        named = named[(named["code"] != "") & named["name"].notna()].drop_duplicates("code")
        for code, name in zip(named["code"].tolist(), named["name"].tolist(), strict=True):
            supervisors.setdefault(code, str(name))
    for named in pairs:
        for code in pd.unique(named["code"]):
            if code:
                supervisors.setdefault(code, code)
    supervisors = dict(sorted(supervisors.items()))

    big = False
    headers = ["機關代碼", "機關名稱", "主管機關"]
    columns: list[Col] = [Col(values.texts["agency"]), Col(values.texts["agency_name"]),
                           Col(values.texts["supervisor_name"])]
    formats: list[tuple[str, str]] = [("", ""), ("", ""), ("", "")]
    money_titles: list[str] = []
    money: list[Exact] = []
    for col in inp.columns:
        series = rows[col.key]
        headers.append(col.title)
        if col.kind == "whole":
            exact = values.wholes[col.key]
            cells, col_big = whole_col(exact, col.money)
            big = big or col_big
            columns.append(cells)
            formats.append(("money" if col.money else "whole", "bignum"))
            if col.money:
                money_titles.append(col.title)
                money.append(exact)
        elif col.kind == "date":
            columns.append(date_col(series))
            formats.append(("date", ""))
        elif col.kind in ("decimal", "rate"):
            columns.append(float_col(series))
            formats.append(("rate" if col.kind == "rate" else "", ""))
        else:
            columns.append(Col(values.texts[col.key]))
            formats.append(("", ""))
    widths, formats = widths_of(headers, columns, formats)
    detail = Table(headers, columns, formats, widths, freeze_cols=3)

    findings = inp.findings.sort_values("amount", ascending=False, na_position="last", kind="stable")
    sup_names: list[Cell] = [supervisors.get(c, c) for c in codes(findings["supervisor"])]
    ex_cells: tuple[list[Cell], ...] = (
        _texts(findings["agency"]), _texts(findings["agency_name"]), list(sup_names),
        _texts(findings["receipt"]),
        [WHICH_TITLES.get(str(v), str(v)) for v in findings["which"].tolist()],
        [SEVERITY_TITLES.get(str(v), str(v)) for v in findings["severity"].tolist()],
        *(_texts(findings[key]) for key in ("sheet", "cell", "column", "value", "message")),
    )
    ex_columns = [cells_col(c) for c in ex_cells]
    ex_headers = ["機關代碼", "機關名稱", "主管機關", "收件編號", "類型", "嚴重度", "工作表", "儲存格",
                  "欄位", "填寫值", "說明"]
    widths, ex_formats = widths_of(ex_headers, ex_columns, [("", "")] * len(ex_headers), widest=50)
    exceptions = Table(ex_headers, ex_columns, ex_formats, widths, freeze_cols=2, empty_note="本期無檢核例外。")

    agency_state = codes(agencies["state"])
    not_done = ~np.isin(agency_state, [*ACCEPTED_STATES, State.EXEMPT])
    missing = agencies[not_done].sort_values(["supervisor", "agency"], kind="stable")
    mi_headers = ["機關代碼", "機關名稱", "主管機關", "狀態", "聯絡信箱", "最後收件", "最後催繳"]
    mi_columns = [cells_col(c) for c in (
        _texts(missing["agency"]), _texts(missing["agency_name"]),
        [supervisors.get(c, c) for c in codes(missing["supervisor"])],
        [STATE_LABELS[State(str(v))] for v in missing["state"].tolist()],
        _texts(missing["emails"]),
        [_datetime_cell(v, naive) for v in missing["last_received"].tolist()],
        [_datetime_cell(v, naive) for v in missing["last_reminded"].tolist()],
    )]
    widths, mi_formats = widths_of(mi_headers, mi_columns, [("", "")] * 5 + [("datetime", "")] * 2)
    missing_table = Table(mi_headers, mi_columns, mi_formats, widths, freeze_cols=2,
                           empty_note="所有機關均已完成繳交。")

    return Prepared(
        detail=detail, exceptions=exceptions, missing=missing_table,
        row_supervisor=row_supervisor, row_agency=Codes.of(values.texts["agency"]),
        finding_supervisor=codes(findings["supervisor"]), finding_agency=codes(findings["agency"]),
        missing_supervisor=codes(missing["supervisor"]), missing_agency=codes(missing["agency"]),
        agency_code=codes(agencies["agency"]), agency_supervisor=codes(agencies["supervisor"]),
        agency_state=agency_state, money_titles=money_titles, money=money,
        supervisors=supervisors, big_numbers=big,
    )


def _texts(series: pd.Series) -> list[Cell]:
    return [None if isna(v) else str(v) for v in series.tolist()]


def strings(series: pd.Series) -> pa.Array:
    """Texts as an Arrow string array, null where missing; a value that is not text becomes str(value)."""
    try:
        texts = pa.array(series, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        texts = None
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    if texts is None or not (pa.types.is_string(texts.type) or pa.types.is_large_string(texts.type)
                             or pa.types.is_null(texts.type)):
        texts = pa.array([None if isna(v) else str(v) for v in series.tolist()], pa.string())
    return texts.cast(pa.string())


def cells_col(cells: Sequence[Cell]) -> Col:
    """A column from cells of any kind (text, number, blank)."""
    texts = pa.array([v if isinstance(v, str) else None for v in cells], pa.string())
    numbers = pa.array([float(v) if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
                        else None for v in cells], pa.float64())
    return Col(texts, numbers)


def whole_col(exact: Exact, money: bool) -> tuple[Col, bool]:
    """Numbers, except whole numbers beyond Excel's 15 digits: text (with separators for money)."""
    big = exact.present & (np.abs(exact.values) >= EXCEL_EXACT_LIMIT)
    has = exact.present & ~big
    if not big.any() and not exact.beyond:
        return Col(pa.nulls(len(has), pa.string()), pa.array(exact.values, pa.int64(), mask=~has)), False
    texts = np.full(len(exact.values), None, dtype=object)
    for i in [*np.flatnonzero(big).tolist(), *exact.beyond]:
        v = exact.beyond.get(i, int(exact.values[i]))
        texts[i] = f"{v:,}" if money else str(v)
    if exact.beyond:
        has[list(exact.beyond)] = False
    return Col(pa.array(texts, pa.string()), pa.array(exact.values, pa.int64(), mask=~has)), True


def float_col(series: pd.Series) -> Col:
    if pd.api.types.is_float_dtype(series.dtype) or pd.api.types.is_integer_dtype(series.dtype):
        numbers = series.to_numpy(dtype=np.float64, na_value=np.nan)
        has = np.isfinite(numbers)
        texts = np.full(len(numbers), None, dtype=object)
        odd = np.flatnonzero(~has & ~np.isnan(numbers))  # infinities: shown as text
        for i in odd.tolist():
            texts[i] = str(numbers[i])
        return Col(pa.array(texts, pa.string()), pa.array(numbers, pa.float64(), mask=~has))
    return cells_col([_as_float(v) for v in series.tolist()])


def _as_float(value: Any) -> Cell:
    if isna(value):
        return None
    if isinstance(value, int | float | Decimal | np.number):
        number = float(value)
        return number if math.isfinite(number) else str(value)
    return str(value)


def date_col(series: pd.Series) -> Col:
    """Excel serial day numbers; text where the value is not a date Excel can hold."""
    parsed = pd.to_datetime(series, errors="coerce")
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_localize(None)
    serial = ((parsed - _EXCEL_EPOCH) / pd.Timedelta(days=1)).to_numpy(dtype=np.float64, na_value=np.nan)
    blank = series.isna().to_numpy(dtype=bool)
    ok = ~blank & (serial >= 61)  # not NaN (not a date), nor before 1900-03-01 where Excel's calendar is off
    texts = np.full(len(serial), None, dtype=object)
    for i in np.flatnonzero(~blank & ~ok).tolist():
        original = series.iat[i]
        texts[i] = original.isoformat() if isinstance(original, date) else str(original)
    return Col(pa.array(texts, pa.string()), pa.array(serial, pa.float64(), mask=~ok))


def _naive_converter(reference: datetime) -> Callable[[datetime], datetime]:
    """Time stamps shown in the generation time's zone (Excel has no zones)."""
    zone: tzinfo | None = reference.tzinfo

    def convert(value: datetime) -> datetime:
        if value.tzinfo is None:
            return value
        return (value.astimezone(zone) if zone is not None else value).replace(tzinfo=None)

    return convert


def _datetime_cell(value: Any, naive: Callable[[datetime], datetime]) -> Cell:
    if isna(value):
        return None
    if isinstance(value, datetime):
        local = naive(pd.Timestamp(value).to_pydatetime())
        return float((pd.Timestamp(local) - _EXCEL_EPOCH) / pd.Timedelta(days=1))
    return str(value)


def display_width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _text_width(texts: pa.Array) -> int:
    """The widest text of a column in character units: a CJK character (3 bytes in UTF-8) counts 2, ASCII 1."""
    if not len(texts) or texts.null_count == len(texts):
        return 0
    first_line = pc.replace_substring_regex(texts, r"[\r\n].*", "")  # a line break wraps anyway
    wide = pc.add(pc.binary_length(first_line), pc.utf8_length(first_line))
    return int(pc.max(wide).as_py() or 0) // 2


def _number_width(numbers: pa.Array, kind: str) -> int:
    """The widest number of a column as its format renders it (money with separators, dates as ROC)."""
    if kind == "date":
        return 9  # 115/10/31
    if kind == "datetime":
        return 15  # 115/10/31 17:05
    if not len(numbers) or numbers.null_count == len(numbers):
        return 0
    bounds = pc.min_max(numbers)
    widest = 0
    for v in (bounds["min"].as_py(), bounds["max"].as_py()):
        if kind == "money":
            widest = max(widest, len(f"{round(v):,}"))
        elif kind == "rate":
            widest = max(widest, len(f"{v:.1%}"))
        elif kind == "whole":
            widest = max(widest, len(str(round(v))))
        else:  # General: up to 11 characters
            widest = max(widest, min(len(repr(v)), 11))
    return widest


def widths_of(headers: list[str], columns: list[Col], formats: list[tuple[str, str]],
            widest: int = WIDEST_COLUMN) -> tuple[list[float], list[tuple[str, str]]]:
    """Each column's width from its longest rendered value (every row, numbers as formatted, so none shows ###),
    and the formats with text that does not fit `widest` set to wrap."""
    widths: list[float] = []
    wrapped: list[tuple[str, str]] = []
    for title, col, (number, text) in zip(headers, columns, formats, strict=True):
        longest = max(_text_width(col.texts), min(display_width(title), 16))  # long titles wrap in the header
        if col.numbers is not None:
            longest = max(longest, _number_width(col.numbers, number))
        if longest > widest and not text:
            text = "wrap"
        widths.append(float(min(max(longest * 1.1 + 2, 8), widest)))
        wrapped.append((number, text))
    return widths, wrapped

