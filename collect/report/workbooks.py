"""The master report of a round and one report per supervising agency (xlsx), plus Parquet and CSV exports."""

from __future__ import annotations

import codecs
import math
import os
import re
import unicodedata
import zipfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import xlsxwriter
from openpyxl.utils import get_column_letter
from xlsxwriter.format import Format
from xlsxwriter.worksheet import Worksheet

from collect.normalise import VALUE_KINDS
from collect.rounds import roc_date
from collect.states import ANSWERED, STATE_LABELS, State
from collect.xlsx.dates import EPOCH
from collect.xlsx.printing import PrintSetup, apply_xlsxwriter, footer
from collect.xlsx.style import ROC_DATE_FORMAT, ROC_DATETIME_FORMAT

# Excel's worksheet row limit, header row included. Tests lower it to exercise the split into 明細2, 明細3 ...
MAX_SHEET_ROWS = 1_048_576
# Excel keeps 15 significant digits: a whole number at or above this is written as text so no digit is lost.
EXCEL_EXACT_LIMIT = 10**15
# Characters that make a spreadsheet program treat a CSV field as a formula (OWASP "CSV injection").
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
# Files are written by several threads (at most MAX_WORKERS) once a round has this many detail cells.
PARALLEL_FROM_CELLS = 1_000_000
MAX_WORKERS = 4

KINDS = (*VALUE_KINDS, "rate")  # a report column may also be a computed rate
ACCEPTED_STATES = tuple(str(s) for s in ANSWERED)
WHICH_TITLES = {"counting": "計入版本", "latest": "最新版本"}
SEVERITY_TITLES = {"error": "錯誤", "warning": "警告"}

DETAIL_SHEET = "明細"
SUMMARY_SHEET = "摘要"
EXCEPTIONS_SHEET = "檢核例外"
MISSING_SHEET = "未繳交"
MONEY_CHART_SERIES = 3  # the chart on 摘要 shows at most this many money columns
RATE_TITLE = "執行率"
LINE_POINTS = 16  # a line of wrapped text, Chinese included
PORTRAIT_POINTS = 720  # the printable height of an A4 portrait page (less margins and footer), in points
WIDEST_COLUMN = 60  # a text column is never wider than this: longer texts wrap
# Real dates shown as ROC dates (115/03/05) by Excel and LibreOffice alike; the Parquet and CSV keep ISO dates.

_ROW_KEYS = ("agency", "agency_name", "supervisor", "supervisor_name", "receipt")
_AGENCY_KEYS = ("agency", "agency_name", "supervisor", "supervisor_name", "state", "emails",
                "last_received", "last_reminded")
_FINDING_KEYS = ("agency", "agency_name", "supervisor", "receipt", "which", "code", "severity", "sheet",
                 "cell", "column", "value", "message", "amount")
_UNSAFE_FILENAME = re.compile(r'[\\/:*?"<>|\x00-\x1f]')
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
    # More sheets for every workbook (e.g. the consolidated form 彙整表), written right after 摘要 by xlsxwriter:
    # called with the workbook, the supervising agency's code (None for the master) and the print footer to use.
    extra_sheets: Callable[[xlsxwriter.Workbook, str | None, str], None] | None = None


@dataclass(frozen=True)
class ReportFiles:
    """The files written: master workbook, one workbook per supervising agency (by code), Parquet, CSV."""

    master: Path
    supervisors: dict[str, Path]
    parquet: Path
    csv: Path


def master_name(inp: ReportInput) -> str:
    """The master workbook's file name, e.g. "covid19-2026-10-總表.xlsx"."""
    return _safe_filename(f"{inp.collection_id}-{inp.round_id}-總表.xlsx")


def export_stem(collection_id: str, round_id: str) -> str:
    """The Parquet and CSV exports' name without the suffix, e.g. "covid19-2026-10-明細"."""
    return _safe_filename(f"{collection_id}-{round_id}-{DETAIL_SHEET}")


def supervisor_file_name(inp: ReportInput, code: str, name: str) -> str:
    """A supervising agency's workbook name, e.g. "covid19-2026-10-379000000A-臺北市政府教育局.xlsx"."""
    return _safe_filename(f"{inp.collection_id}-{inp.round_id}-{code}-{name}.xlsx")


def write_reports(inp: ReportInput, out_dir: Path, *, workers: int | None = None) -> ReportFiles:
    """Write the master workbook, one workbook per supervising agency, and the Parquet and CSV exports.

    Every text cell is written as a string (never a formula or a link). In the CSV export only, a text
    value that begins with "=", "+", "-", "@", a tab or a carriage return is prefixed with a single quote "'"
    so that a spreadsheet program opening the CSV does not run it as a formula; numbers and dates are never
    prefixed. Whole numbers of 10**15 or more (beyond Excel's 15 significant digits) are written as text
    with thousands separators, so no digit is lost; sums are exact Python integers, never spreadsheet
    formulas. `workers` is the number of threads writing the files (their heavy work, in Arrow and zlib, runs
    outside Python's lock, so no process is forked); by default several are used only for large rounds.
    """
    _check_input(inp)
    out_dir.mkdir(parents=True, exist_ok=True)
    values = _Values.of(inp)
    data = _prepare(inp, values)
    stem = export_stem(inp.collection_id, inp.round_id)
    parquet_path = out_dir / f"{stem}.parquet"
    csv_path = out_dir / f"{stem}.csv"
    exports = (parquet_path.name, csv_path.name)

    master_path = out_dir / master_name(inp)
    jobs = [_plan(inp, data, _Slice.whole(data), master_path, None, exports)]
    supervisors: dict[str, Path] = {}
    for code, name in data.supervisors.items():
        path = out_dir / supervisor_file_name(inp, code, name)
        jobs.append(_plan(inp, data, _Slice.of_supervisor(data, code), path, (code, name), exports))
        supervisors[code] = path
    _POSITIONS.clear()
    if workers is None:
        cells = len(inp.rows) * len(data.detail.headers)
        workers = min(os.cpu_count() or 1, MAX_WORKERS) if cells >= PARALLEL_FROM_CELLS else 1
    _run([
        partial(_write_job, jobs[0]),  # the master first: the largest
        partial(_atomic, parquet_path, lambda tmp: pq.write_table(_arrow_table(inp, values), tmp)),
        partial(_atomic, csv_path, lambda tmp: _write_csv(inp, values, tmp)),
        *(partial(_write_job, job) for job in sorted(jobs[1:], key=lambda job: job.size, reverse=True)),
    ], workers)
    return ReportFiles(master_path, supervisors, parquet_path, csv_path)


# ----------------------------------------------------------------------------------------------------
# Preparation: every value is converted once, column by column, into Arrow arrays; the master and each
# supervising agency's workbook select their rows by position.


@dataclass
class _Col:
    """One column of a table as Arrow arrays: per row a text, else a number, else a blank (null where not)."""

    texts: pa.Array  # string
    numbers: pa.Array | None = None  # int64 or float64; null where the row has a text or no number

    def sample(self, n: int) -> list[Cell]:
        texts = self.texts.slice(0, n).to_pylist()
        numbers = self.numbers.slice(0, n).to_pylist() if self.numbers is not None else [None] * len(texts)
        return [text if text is not None else number for text, number in zip(texts, numbers, strict=True)]


@dataclass
class _Table:
    """A sheet's table, column by column, with each column's format names (for numbers, for text)."""

    headers: list[str]
    columns: list[_Col]
    formats: list[tuple[str, str]]
    widths: list[float]
    freeze_cols: int = 0
    empty_note: str = ""

    def __len__(self) -> int:
        return len(self.columns[0].texts) if self.columns else 0


@dataclass
class _Money:
    """A money column's exact values: int64 where they fit, Python ints by position where they do not."""

    values: np.ndarray  # int64 (0 where missing or beyond int64)
    present: np.ndarray  # bool
    beyond: dict[int, int]  # position -> value too large for int64


@dataclass
class _Values:
    """The detail rows' values converted once, for the workbooks and both exports."""

    texts: dict[str, pa.Array]  # the agency columns and the text columns, as Arrow strings (null where blank)
    wholes: dict[str, _Money]  # the whole-number columns, exact

    @classmethod
    def of(cls, inp: ReportInput) -> _Values:
        rows = inp.rows
        texts = {key: _strings(rows[key]) for key in _ROW_KEYS}
        wholes: dict[str, _Money] = {}
        for col in inp.columns:
            if col.kind == "whole":
                wholes[col.key] = _int_values(rows[col.key], col.key)
            elif col.kind not in ("date", "decimal", "rate"):
                texts[col.key] = _strings(rows[col.key])
        return cls(texts, wholes)


@dataclass
class _Data:
    detail: _Table
    exceptions: _Table
    missing: _Table
    row_supervisor: np.ndarray  # supervisor code of each detail row
    row_agency: np.ndarray
    finding_supervisor: np.ndarray
    finding_agency: np.ndarray
    missing_supervisor: np.ndarray
    missing_agency: np.ndarray
    agency_code: np.ndarray  # the agencies in scope
    agency_supervisor: np.ndarray
    agency_state: np.ndarray
    money_titles: list[str]
    money: list[_Money]
    supervisors: dict[str, str] = field(default_factory=dict)  # code -> name, sorted by code
    big_numbers: bool = False  # some whole number in the detail is written as text (beyond 15 digits)


@dataclass
class _Slice:
    """Positions of the detail rows, findings, missing agencies and agencies in scope of one workbook."""

    rows: np.ndarray
    findings: np.ndarray
    missing: np.ndarray
    agencies: np.ndarray
    group: np.ndarray  # supervising agency of each agency in scope (for the table on 摘要)
    row_group: np.ndarray  # supervising agency of each detail row

    @classmethod
    def whole(cls, data: _Data) -> _Slice:
        return cls(np.arange(len(data.row_agency)), np.arange(len(data.finding_agency)),
                   np.arange(len(data.missing_agency)), np.arange(len(data.agency_code)),
                   data.agency_supervisor, data.row_supervisor)

    @classmethod
    def of_supervisor(cls, data: _Data, code: str) -> _Slice:
        """The supervising agency's units, its own row included even if the list files it under another."""

        def where(sup: np.ndarray, agency: np.ndarray) -> np.ndarray:
            return np.union1d(_positions(sup).get(code, _NONE), _positions(agency).get(code, _NONE))

        agencies = where(data.agency_supervisor, data.agency_code)
        rows = where(data.row_supervisor, data.row_agency)
        return cls(rows, where(data.finding_supervisor, data.finding_agency),
                   where(data.missing_supervisor, data.missing_agency), agencies,
                   np.full(len(agencies), code, dtype=object), np.full(len(rows), code, dtype=object))


_NONE = np.array([], dtype=np.int64)
_POSITIONS: dict[int, tuple[np.ndarray, dict[str, np.ndarray]]] = {}


def _positions(codes: np.ndarray) -> dict[str, np.ndarray]:
    """Each code's positions in `codes` (computed once per array, kept while the array lives)."""
    cached = _POSITIONS.get(id(codes))
    if cached is not None and cached[0] is codes:
        return cached[1]
    found = {str(k): np.asarray(v, dtype=np.int64)
             for k, v in pd.Series(np.arange(len(codes))).groupby(codes, sort=False).indices.items()} if len(
        codes) else {}
    _POSITIONS[id(codes)] = (codes, found)
    return found


def _check_input(inp: ReportInput) -> None:
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
        ("rows", inp.rows, [*_ROW_KEYS, *(c.key for c in inp.columns)]),
        ("agencies", inp.agencies, list(_AGENCY_KEYS)),
        ("findings", inp.findings, list(_FINDING_KEYS)),
    ):
        missing = [k for k in keys if k not in frame.columns]
        if missing:
            problems.append(f"{frame_name} lacks columns {missing}")
    if problems:
        raise ValueError("report input is incomplete: " + "; ".join(problems))


def _codes(series: pd.Series) -> np.ndarray:
    """Agency codes as an object array of str ("" where missing), for fast comparisons."""
    values = series.to_numpy(dtype=object, na_value=None)
    if all(v is None or v.__class__ is str for v in values):
        return np.where(pd.isna(values), "", values).astype(object)
    return np.array(["" if _isna(v) else str(v) for v in values], dtype=object)


def _code_array(texts: pa.Array) -> np.ndarray:
    """_codes of an Arrow string array."""
    return np.asarray(pc.fill_null(texts, "").to_numpy(zero_copy_only=False), dtype=object)


def _prepare(inp: ReportInput, values: _Values) -> _Data:
    rows, agencies = inp.rows, inp.agencies
    naive = _naive_converter(inp.generated_at)
    row_supervisor = _code_array(values.texts["supervisor"])

    row_pairs = pa.table({"code": pc.fill_null(values.texts["supervisor"], ""),  # distinct, in order of rows
                          "name": values.texts["supervisor_name"]}).group_by(["code", "name"], use_threads=False)
    pairs = (pd.DataFrame({"code": _codes(agencies["supervisor"]), "name": agencies["supervisor_name"].to_numpy()}),
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
    columns: list[_Col] = [_Col(values.texts["agency"]), _Col(values.texts["agency_name"]),
                           _Col(values.texts["supervisor_name"])]
    formats: list[tuple[str, str]] = [("", ""), ("", ""), ("", "")]
    money_titles: list[str] = []
    money: list[_Money] = []
    for col in inp.columns:
        series = rows[col.key]
        headers.append(col.title)
        if col.kind == "whole":
            exact = values.wholes[col.key]
            cells, col_big = _whole_col(exact, col.money)
            big = big or col_big
            columns.append(cells)
            formats.append(("money" if col.money else "whole", "bignum"))
            if col.money:
                money_titles.append(col.title)
                money.append(exact)
        elif col.kind == "date":
            columns.append(_date_col(series))
            formats.append(("date", ""))
        elif col.kind in ("decimal", "rate"):
            columns.append(_float_col(series))
            formats.append(("rate" if col.kind == "rate" else "", ""))
        else:
            columns.append(_Col(values.texts[col.key]))
            formats.append(("", ""))
    widths, formats = _widths(headers, columns, formats)
    detail = _Table(headers, columns, formats, widths, freeze_cols=3)

    findings = inp.findings.sort_values("amount", ascending=False, na_position="last", kind="stable")
    sup_names: list[Cell] = [supervisors.get(c, c) for c in _codes(findings["supervisor"])]
    ex_cells: tuple[list[Cell], ...] = (
        _texts(findings["agency"]), _texts(findings["agency_name"]), list(sup_names),
        _texts(findings["receipt"]),
        [WHICH_TITLES.get(str(v), str(v)) for v in findings["which"].tolist()],
        [SEVERITY_TITLES.get(str(v), str(v)) for v in findings["severity"].tolist()],
        *(_texts(findings[key]) for key in ("sheet", "cell", "column", "value", "message")),
    )
    ex_columns = [_cells_col(c) for c in ex_cells]
    ex_headers = ["機關代碼", "機關名稱", "主管機關", "收件編號", "類型", "嚴重度", "工作表", "儲存格",
                  "欄位", "填寫值", "說明"]
    widths, ex_formats = _widths(ex_headers, ex_columns, [("", "")] * len(ex_headers), widest=50)
    exceptions = _Table(ex_headers, ex_columns, ex_formats, widths, freeze_cols=2, empty_note="本期無檢核例外。")

    agency_state = _codes(agencies["state"])
    not_done = ~np.isin(agency_state, [*ACCEPTED_STATES, State.EXEMPT])
    missing = agencies[not_done].sort_values(["supervisor", "agency"], kind="stable")
    mi_headers = ["機關代碼", "機關名稱", "主管機關", "狀態", "聯絡信箱", "最後收件", "最後催繳"]
    mi_columns = [_cells_col(c) for c in (
        _texts(missing["agency"]), _texts(missing["agency_name"]),
        [supervisors.get(c, c) for c in _codes(missing["supervisor"])],
        [STATE_LABELS[State(str(v))] for v in missing["state"].tolist()],
        _texts(missing["emails"]),
        [_datetime_cell(v, naive) for v in missing["last_received"].tolist()],
        [_datetime_cell(v, naive) for v in missing["last_reminded"].tolist()],
    )]
    widths, mi_formats = _widths(mi_headers, mi_columns, [("", "")] * 5 + [("datetime", "")] * 2)
    missing_table = _Table(mi_headers, mi_columns, mi_formats, widths, freeze_cols=2,
                           empty_note="所有機關均已完成繳交。")

    return _Data(
        detail=detail, exceptions=exceptions, missing=missing_table,
        row_supervisor=row_supervisor, row_agency=_code_array(values.texts["agency"]),
        finding_supervisor=_codes(findings["supervisor"]), finding_agency=_codes(findings["agency"]),
        missing_supervisor=_codes(missing["supervisor"]), missing_agency=_codes(missing["agency"]),
        agency_code=_codes(agencies["agency"]), agency_supervisor=_codes(agencies["supervisor"]),
        agency_state=agency_state, money_titles=money_titles, money=money,
        supervisors=supervisors, big_numbers=big,
    )


def _isna(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


def _texts(series: pd.Series) -> list[Cell]:
    return [None if _isna(v) else str(v) for v in series.tolist()]


def _strings(series: pd.Series) -> pa.Array:
    """Texts as an Arrow string array, null where missing; a value that is not text becomes str(value)."""
    try:
        texts = pa.array(series, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        texts = None
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    if texts is None or not (pa.types.is_string(texts.type) or pa.types.is_large_string(texts.type)
                             or pa.types.is_null(texts.type)):
        texts = pa.array([None if _isna(v) else str(v) for v in series.tolist()], pa.string())
    return texts.cast(pa.string())


def _cells_col(cells: Sequence[Cell]) -> _Col:
    """A column from cells of any kind (text, number, blank)."""
    texts = pa.array([v if isinstance(v, str) else None for v in cells], pa.string())
    numbers = pa.array([float(v) if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
                        else None for v in cells], pa.float64())
    return _Col(texts, numbers)


def _as_int(value: Any, key: str) -> int | None:
    """A whole number exactly, refusing anything with a fraction (money must never be rounded silently)."""
    if _isna(value):
        return None
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, Decimal | float | np.floating) and value == int(value):
        return int(value)
    raise ValueError(f"column {key!r} holds {value!r}, which is not a whole number")


_INT64_MAX = 2**63 - 1


def _int_values(series: pd.Series, key: str) -> _Money:
    """A whole-number column's exact values (vectorised for integer dtypes, value by value otherwise)."""
    if pd.api.types.is_integer_dtype(series.dtype):
        present = series.notna().to_numpy(dtype=bool)
        return _Money(series.to_numpy(dtype=np.int64, na_value=0), present, {})
    ints = [_as_int(v, key) for v in series.tolist()]
    values = np.zeros(len(ints), dtype=np.int64)
    present = np.zeros(len(ints), dtype=bool)
    beyond: dict[int, int] = {}
    for i, v in enumerate(ints):
        if v is None:
            continue
        present[i] = True
        if -_INT64_MAX <= v <= _INT64_MAX:
            values[i] = v
        else:
            beyond[i] = v
    return _Money(values, present, beyond)


def _whole_col(exact: _Money, money: bool) -> tuple[_Col, bool]:
    """Numbers, except whole numbers beyond Excel's 15 digits: text (with separators for money)."""
    big = exact.present & (np.abs(exact.values) >= EXCEL_EXACT_LIMIT)
    has = exact.present & ~big
    if not big.any() and not exact.beyond:
        return _Col(pa.nulls(len(has), pa.string()), pa.array(exact.values, pa.int64(), mask=~has)), False
    texts = np.full(len(exact.values), None, dtype=object)
    for i in [*np.flatnonzero(big).tolist(), *exact.beyond]:
        v = exact.beyond.get(i, int(exact.values[i]))
        texts[i] = f"{v:,}" if money else str(v)
    if exact.beyond:
        has[list(exact.beyond)] = False
    return _Col(pa.array(texts, pa.string()), pa.array(exact.values, pa.int64(), mask=~has)), True


def _float_col(series: pd.Series) -> _Col:
    if pd.api.types.is_float_dtype(series.dtype) or pd.api.types.is_integer_dtype(series.dtype):
        numbers = series.to_numpy(dtype=np.float64, na_value=np.nan)
        has = np.isfinite(numbers)
        texts = np.full(len(numbers), None, dtype=object)
        odd = np.flatnonzero(~has & ~np.isnan(numbers))  # infinities: shown as text
        for i in odd.tolist():
            texts[i] = str(numbers[i])
        return _Col(pa.array(texts, pa.string()), pa.array(numbers, pa.float64(), mask=~has))
    return _cells_col([_as_float(v) for v in series.tolist()])


def _as_float(value: Any) -> Cell:
    if _isna(value):
        return None
    if isinstance(value, int | float | Decimal | np.number):
        number = float(value)
        return number if math.isfinite(number) else str(value)
    return str(value)


def _date_col(series: pd.Series) -> _Col:
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
    return _Col(pa.array(texts, pa.string()), pa.array(serial, pa.float64(), mask=~ok))


def _naive_converter(reference: datetime) -> Callable[[datetime], datetime]:
    """Time stamps shown in the generation time's zone (Excel has no zones)."""
    zone: tzinfo | None = reference.tzinfo

    def convert(value: datetime) -> datetime:
        if value.tzinfo is None:
            return value
        return (value.astimezone(zone) if zone is not None else value).replace(tzinfo=None)

    return convert


def _datetime_cell(value: Any, naive: Callable[[datetime], datetime]) -> Cell:
    if _isna(value):
        return None
    if isinstance(value, datetime):
        local = naive(pd.Timestamp(value).to_pydatetime())
        return float((pd.Timestamp(local) - _EXCEL_EPOCH) / pd.Timedelta(days=1))
    return str(value)


def _display_width(text: str) -> int:
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


def _widths(headers: list[str], columns: list[_Col], formats: list[tuple[str, str]],
            widest: int = WIDEST_COLUMN) -> tuple[list[float], list[tuple[str, str]]]:
    """Each column's width from its longest rendered value (every row, numbers as formatted, so none shows ###),
    and the formats with text that does not fit `widest` set to wrap."""
    widths: list[float] = []
    wrapped: list[tuple[str, str]] = []
    for title, col, (number, text) in zip(headers, columns, formats, strict=True):
        longest = max(_text_width(col.texts), min(_display_width(title), 16))  # long titles wrap in the header
        if col.numbers is not None:
            longest = max(longest, _number_width(col.numbers, number))
        if longest > widest and not text:
            text = "wrap"
        widths.append(float(min(max(longest * 1.1 + 2, 8), widest)))
        wrapped.append((number, text))
    return widths, wrapped


# ----------------------------------------------------------------------------------------------------
# Workbooks. Every workbook is planned first as plain data (a _Job); writing a job needs nothing else, so
# jobs run in threads. xlsxwriter writes each workbook's summary sheet and the header row, widths, frozen
# panes and autofilter of each table sheet; the table rows themselves are rendered here as sheet XML by
# Arrow's string kernels, a chunk of rows at a time (no Python loop per row or cell, and Arrow and zlib
# release Python's lock), their texts added to the shared-string table.


@dataclass
class _Sheets:
    """One table cut into sheets of at most `per_sheet` data rows; `positions` are this workbook's rows."""

    names: list[str]
    table: _Table
    positions: np.ndarray
    per_sheet: int


@dataclass
class _Job:
    path: Path
    title: str
    stamp: str
    notes: list[tuple[str, str]]  # (format name, text) lines under the title
    kpis: list[tuple[str, int]]
    money_titles: list[str]
    groups: list[tuple[str, int, int, list[int]]]  # supervising agency name, units, accepted, money sums
    totals: tuple[int, int, list[int]]  # units, accepted, money sums
    detail: _Sheets
    exceptions: _Sheets
    missing: _Sheets
    rate: tuple[int, int] | None = None  # positions of the execution rate's numerator and denominator in the sums
    supervisor: str | None = None  # the supervising agency's code; None for the master
    extra_sheets: Callable[[xlsxwriter.Workbook, str | None, str], None] | None = None

    @property
    def footer(self) -> str:
        """The print footer of every sheet: when it was made, and the page of how many."""
        return footer(self.stamp)

    @property
    def size(self) -> int:
        return len(self.detail.positions) + len(self.exceptions.positions)


def _sheets(base: str, table: _Table, positions: np.ndarray) -> _Sheets:
    per_sheet = MAX_SHEET_ROWS - 1
    count = max(1, -(-len(positions) // per_sheet))
    names = [base if i == 0 else f"{base}{i + 1}" for i in range(count)]
    return _Sheets(names, table, positions, per_sheet)


def _group_sums(data: _Data, part: _Slice) -> dict[str, list[int]]:
    """Exact sums of each money column per supervising agency of the slice's rows."""
    n_money = len(data.money)
    sums: dict[str, list[int]] = {}
    if not len(part.rows):
        return sums
    groups, labels = pd.factorize(part.row_group)  # each row's supervising agency as a number
    codes = [str(label) for label in labels]
    for m, exact in enumerate(data.money):
        values = exact.values[part.rows]
        present = exact.present[part.rows]
        peak = int(np.abs(values).max()) if len(values) else 0
        if peak * len(values) < _INT64_MAX:  # int64 sums cannot overflow: exact
            totals = np.zeros(len(codes), dtype=np.int64)
            np.add.at(totals, groups, np.where(present, values, 0))
            by_code = dict(zip(codes, totals.tolist(), strict=True))
        else:
            by_code = {}
            for code, v, ok in zip(part.row_group.tolist(), values.tolist(), present.tolist(), strict=True):
                if ok:
                    by_code[code] = by_code.get(code, 0) + int(v)
        seen = {codes[g] for g in np.unique(groups[present]).tolist()}
        if exact.beyond:
            where = {int(p): i for i, p in enumerate(part.rows.tolist()) if int(p) in exact.beyond}
            for position, i in where.items():
                code = str(part.row_group[i])
                by_code[code] = by_code.get(code, 0) + exact.beyond[position]
                seen.add(code)
        for code in seen:
            sums.setdefault(code, [0] * n_money)[m] = by_code.get(code, 0)
    return sums


def _plan(inp: ReportInput, data: _Data, part: _Slice, path: Path, supervisor: tuple[str, str] | None,
          exports: tuple[str, str]) -> _Job:
    """Everything one workbook shows, computed exactly (Python ints) from the slice of the prepared data."""
    states = data.agency_state[part.agencies]
    accepted = int(np.isin(states, ACCEPTED_STATES).sum())
    exempt = int((states == "exempt").sum())
    missing = len(states) - accepted - exempt
    units: dict[str, int] = {}
    done: dict[str, int] = {}
    for code, state in zip(part.group.tolist(), states.tolist(), strict=True):
        units[code] = units.get(code, 0) + 1
        done[code] = done.get(code, 0) + (state in ACCEPTED_STATES)
    n_money = len(data.money)
    sums = _group_sums(data, part)
    groups = [(data.supervisors.get(code, code) or "（未指定主管機關）", units.get(code, 0),
               done.get(code, 0), sums.get(code, [0] * n_money)) for code in sorted(set(units) | set(sums))]
    totals = [sum(g[3][m] for g in groups) for m in range(n_money)]

    stamp = f"{roc_date(inp.generated_at)} {inp.generated_at:%H:%M}"  # as agencies read it: 115/11/03 09:30
    scope = "總表" if supervisor is None else f"{supervisor[1]}（{supervisor[0]}）"
    detail = _sheets(DETAIL_SHEET, data.detail, part.rows)
    notes: list[tuple[str, str]] = []
    if missing:
        notes.append(("warning", f"尚有 {missing} 個機關未完成繳交（截至 {stamp}），本表為暫定數。"))
    if len(detail.names) > 1:
        notes.append(("warning",
                      f"明細共 {len(part.rows):,} 列，超過 Excel 單一工作表上限 {detail.per_sheet:,} 列，"
                      f"已依序分置於工作表「{'」、「'.join(detail.names)}」；"
                      f"完整資料另見 {exports[0]}（Parquet）及 {exports[1]}（CSV）。"))
    if data.big_numbers or any(abs(v) >= EXCEL_EXACT_LIMIT for g in groups for v in [*g[3], *totals]):
        notes.append(("note", "註：達 16 位數以上的數值超過 Excel 可精確保存的 15 位有效數字，"
                              "以文字呈現以保留完整數值。"))
    kpis = [("應填報機關數", len(states)), ("已完成繳交（含逾期）", accepted),
            ("準時完成", int((states == "accepted").sum())), ("免填報", exempt), ("尚未完成", missing),
            ("資料列數", len(part.rows))]
    return _Job(path, f"{inp.collection_title}　{inp.round_label}　{scope}", stamp, notes, kpis,
                data.money_titles, groups, (len(states), accepted, totals), detail,
                _sheets(EXCEPTIONS_SHEET, data.exceptions, part.findings),
                _sheets(MISSING_SHEET, data.missing, part.missing), _rate_positions(inp),
                None if supervisor is None else supervisor[0], inp.extra_sheets)


def _rate_positions(inp: ReportInput) -> tuple[int, int] | None:
    if inp.rate is None:
        return None
    keys = [c.key for c in inp.columns if c.money]
    return keys.index(inp.rate[0]), keys.index(inp.rate[1])


def rate_of(numerator: int, denominator: int) -> float | None:
    """An execution rate from exact sums; None where the denominator is not positive."""
    return numerator / denominator if denominator > 0 else None


def _formats(wb: xlsxwriter.Workbook) -> dict[str, Format | None]:
    formats: dict[str, Format | None] = {
        "": None,
        "money": wb.add_format({"num_format": "#,##0"}),
        "whole": wb.add_format({"num_format": "0"}),
        "bignum": wb.add_format({"align": "right"}),
        "date": wb.add_format({"num_format": ROC_DATE_FORMAT}),
        "datetime": wb.add_format({"num_format": ROC_DATETIME_FORMAT}),
        "wrap": wb.add_format({"text_wrap": True}),  # bottom-aligned like the cells beside it
        "rate": wb.add_format({"num_format": "0.0%"}),
        "header": wb.add_format({"bold": True, "bg_color": "#DDEBF7", "border": 1, "text_wrap": True,
                                 "valign": "vcenter"}),
        "title": wb.add_format({"bold": True, "font_size": 16}),
        "warning": wb.add_format({"bold": True, "font_color": "#C00000", "font_size": 12}),
        "note": wb.add_format({"italic": True, "font_color": "#595959"}),
        "section": wb.add_format({"bold": True, "font_size": 12}),
        "total_label": wb.add_format({"bold": True, "top": 1}),
        "total_money": wb.add_format({"bold": True, "top": 1, "num_format": "#,##0"}),
        "total_rate": wb.add_format({"bold": True, "top": 1, "num_format": "0.0%"}),
        "total_bignum": wb.add_format({"bold": True, "top": 1, "align": "right"}),
    }
    return formats


def _xf(fmt: Format | None) -> int | None:
    """The style index a format gets in styles.xml (registered now, so the cells we render can name it).

    xlsxwriter has no public call for this; its `_get_xf_index` is used here and nowhere else, and
    tests/test_report.py checks it against the index xlsxwriter itself writes for a cell, so an upgrade that
    changes it fails there instead of styling cells wrongly.
    """
    if fmt is None:
        return None
    get_index = getattr(fmt, "_get_xf_index", None)
    if get_index is None:  # pragma: no cover - only after an xlsxwriter upgrade
        raise RuntimeError(f"xlsxwriter {xlsxwriter.__version__} no longer has Format._get_xf_index: "
                           "collect/report/workbooks.py:_xf needs another way to learn a format's style index")
    return int(get_index())


def _write_job(job: _Job) -> Path:
    """Write one planned workbook (in a thread of its own when writing in parallel)."""

    def build(tmp: Path) -> None:
        draft = tmp.with_name(tmp.name + ".draft")
        try:
            styles = _write_frame(job, draft)
            _splice(job, draft, tmp, styles)
        finally:
            draft.unlink(missing_ok=True)

    _atomic(job.path, build)
    return job.path


def _write_frame(job: _Job, path: Path) -> dict[str, int | None]:
    """xlsxwriter's part: the summary, and each table sheet's header, widths, frozen panes and autofilter."""
    wb = xlsxwriter.Workbook(str(path), {
        "strings_to_formulas": False, "strings_to_urls": False, "strings_to_numbers": False, "in_memory": True,
    })
    try:
        fmts = _formats(wb)
        styles = {name: _xf(fmt) for name, fmt in fmts.items()}
        summary = wb.add_worksheet(SUMMARY_SHEET)
        if job.extra_sheets is not None:  # e.g. the consolidated form, right after 摘要
            job.extra_sheets(wb, job.supervisor, job.footer)
        tables = [(sheets, [wb.add_worksheet(n) for n in sheets.names])
                  for sheets in (job.detail, job.exceptions, job.missing)]
        _write_summary(wb, summary, fmts, job)
        for sheets, worksheets in tables:
            _write_table_frame(worksheets, sheets, fmts, job)
    finally:
        wb.close()
    return styles


def _write_table_frame(worksheets: list[Worksheet], sheets: _Sheets, fmts: dict[str, Format | None],
                       job: _Job) -> None:
    table, per_sheet = sheets.table, sheets.per_sheet
    header = fmts["header"]
    for index, ws in enumerate(worksheets):
        _page_setup(ws, job, sum(table.widths), table=True)
        count = min(per_sheet, max(0, len(sheets.positions) - index * per_sheet))
        for c, (title, width) in enumerate(zip(table.headers, table.widths, strict=True)):
            ws.set_column(c, c, width)
            ws.write_string(0, c, title, header)
        lines = max((math.ceil(_display_width(t) / max(1.0, w - 2)) for t, w in zip(table.headers, table.widths,
                                                                                     strict=True)), default=1)
        if lines > 1:  # a long title wraps: the header row as tall as it needs
            ws.set_row(0, LINE_POINTS * lines)
        ws.freeze_panes(1, table.freeze_cols)
        if not count:
            if index == 0 and table.empty_note:
                ws.write_string(1, 0, table.empty_note, fmts["note"])
            continue
        ws.autofilter(0, 0, count, len(table.headers) - 1)


_MAIN_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG_NS = "http://schemas.openxmlformats.org/package/2006/relationships"
# Regular expressions for Arrow (RE2 syntax): characters XML 1.0 forbids, text Excel would read as an escape.
_ILLEGAL_XML = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x{fffe}\x{ffff}]"
_ESCAPED_LOOKALIKE = r"_(x[0-9A-Fa-f]{4}_)"
_FORMULA_START = r"^[=+\-@\t\r]"  # FORMULA_PREFIXES
_CHUNK_ROWS = 50_000
_MAX_CELL_TEXT = 32_767


def _sheet_parts(zf: zipfile.ZipFile) -> dict[str, str]:
    """Sheet name -> its part in the package."""
    book = ElementTree.fromstring(zf.read("xl/workbook.xml"))
    rels = ElementTree.fromstring(zf.read("xl/_rels/workbook.xml.rels"))
    targets = {r.get("Id"): r.get("Target", "") for r in rels.iter(f"{{{_PKG_NS}}}Relationship")}
    out: dict[str, str] = {}
    for sheet in book.iter(f"{{{_MAIN_NS}}}sheet"):
        target = targets[sheet.get(f"{{{_REL_NS}}}id")]
        out[str(sheet.get("name"))] = target.lstrip("/") if target.startswith("/") else f"xl/{target}"
    return out


def _xml_texts(texts: pa.Array) -> pa.Array:
    """Texts as XML character data: cut to Excel's cell limit, without the characters XML forbids, escaped."""
    texts = pc.utf8_slice_codeunits(texts, 0, _MAX_CELL_TEXT)
    texts = pc.replace_substring_regex(texts, _ILLEGAL_XML, "")
    for raw, escaped in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;")):
        texts = pc.replace_substring(texts, raw, escaped)
    return pc.replace_substring_regex(texts, _ESCAPED_LOOKALIKE, r"_x005F_\1")


def _utf8(strings: pa.Array) -> memoryview:
    """The UTF-8 bytes of an array's strings one after another, without copying (the array has no nulls)."""
    if not len(strings):
        return memoryview(b"")
    _, offsets, data = strings.buffers()
    kind = np.dtype(np.int64 if pa.types.is_large_string(strings.type) else np.int32)
    ends = np.frombuffer(offsets, dtype=kind, count=len(strings) + 1, offset=strings.offset * kind.itemsize)
    return memoryview(data)[int(ends[0]):int(ends[-1])] if data is not None else memoryview(b"")


@dataclass
class _Rendered:
    """A workbook's table texts as shared strings: the distinct texts, and each column's index per row."""

    strings: pa.Array  # large_string, distinct
    codes: dict[tuple[int, int], pa.Array]  # (table number, column number) -> index per position, null: no text
    references: int


def _shared_strings(tables: list[_Sheets]) -> _Rendered:
    pieces: list[pa.Array] = []
    where: list[tuple[int, int]] = []
    for t, sheets in enumerate(tables):
        positions = pa.array(sheets.positions, pa.int64())
        for c, col in enumerate(sheets.table.columns):
            pieces.append(col.texts.take(positions).cast(pa.large_string()))
            where.append((t, c))
    lengths = [len(p) for p in pieces]
    joined = pa.concat_arrays(pieces)
    del pieces
    encoded = joined.dictionary_encode()
    codes: dict[tuple[int, int], pa.Array] = {}
    start = 0
    for key, length in zip(where, lengths, strict=True):
        codes[key] = encoded.indices.slice(start, length)
        start += length
    return _Rendered(encoded.dictionary, codes, len(joined) - joined.null_count)


def _render_rows(sheets: _Sheets, t: int, rendered: _Rendered, offset: int, styles: dict[str, int | None],
                 lo: int, hi: int, first_row: int) -> pa.Array:
    """The <row> elements of positions lo..hi of the table (one string each), the first on sheet row `first_row`.

    Built column by column with Arrow's string kernels: a cell is a shared-string index where the row has a
    text, else a number, else nothing.
    """
    table = sheets.table
    positions = pa.array(sheets.positions[lo:hi], pa.int64())
    numbers_ = [f' s="{styles[n]}"' if styles.get(n) is not None else "" for n, _ in table.formats]
    texts_ = [f' s="{styles[x]}"' if styles.get(x) is not None else "" for _, x in table.formats]
    rows = pc.cast(pa.array(np.arange(first_row, first_row + hi - lo, dtype=np.int64)), pa.string())
    parts: list[Any] = ['<row r="', rows, '"', _row_heights(table, positions), ">"]
    for c, col in enumerate(table.columns):
        cell = f'<c r="{get_column_letter(c + 1)}'
        codes = pc.add(rendered.codes[(t, c)].slice(lo, hi - lo).cast(pa.int64()), offset)
        parts.append(pc.binary_join_element_wise(cell, rows, f'"{texts_[c]} t="s"><v>', pc.cast(codes, pa.string()),
                                                 "</v></c>", ""))
        if col.numbers is not None:
            numbers = pc.cast(col.numbers.take(positions), pa.string())
            parts.append(pc.binary_join_element_wise(cell, rows, f'"{numbers_[c]}><v>', numbers, "</v></c>", ""))
    return pc.binary_join_element_wise(*parts, "</row>", "", null_handling="replace", null_replacement="")


def _row_heights(table: _Table, positions: pa.Array) -> pa.Array | str:
    """Each row's height attribute: as many lines as its longest wrapped text needs (LibreOffice keeps a row one
    line tall on opening, cutting the rest off), nothing for a row of one line."""
    lines: pa.Array | None = None
    for col, (_, text), width in zip(table.columns, table.formats, table.widths, strict=True):
        if text != "wrap":
            continue
        texts = pc.fill_null(col.texts.take(positions), "")
        wide = pc.divide(pc.add(pc.binary_length(texts), pc.utf8_length(texts)), 2)  # CJK 2, ASCII 1
        need = pc.ceil(pc.divide(pc.cast(wide, pa.float64()), max(1.0, width - 2)))
        lines = need if lines is None else pc.max_element_wise(lines, need)
    if lines is None:
        return ""
    heights = pc.cast(pc.multiply(pc.max_element_wise(lines, 1.0), LINE_POINTS), pa.int64())
    attribute = pc.binary_join_element_wise(' ht="', pc.cast(heights, pa.string()), '" customHeight="1"', "")
    return pc.if_else(pc.greater(lines, 1.0), attribute, "")


def _splice(job: _Job, draft: Path, out: Path, styles: dict[str, int | None]) -> None:
    """Copy xlsxwriter's package, adding every table's rows to its sheets and its texts to the string table."""
    tables = [job.detail, job.exceptions, job.missing]
    rendered = _shared_strings(tables)
    # Members opened by name take the archive's method and level: deflate at level 1, fast, since the sheets are
    # large and compress well anyway.
    with zipfile.ZipFile(draft) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as dst:
        parts = _sheet_parts(src)
        targets: dict[str, tuple[int, int]] = {}  # part -> (table number, sheet number)
        for t, sheets in enumerate(tables):
            for s, name in enumerate(sheets.names):
                targets[parts[name]] = (t, s)
        sst = src.read("xl/sharedStrings.xml").decode("utf-8")
        unique_before = int(re.search(r'uniqueCount="(\d+)"', sst).group(1))  # type: ignore[union-attr]
        count_before = int(re.search(r' count="(\d+)"', sst).group(1))  # type: ignore[union-attr]
        for info in src.infolist():
            if info.filename == "xl/sharedStrings.xml":
                continue
            data = src.read(info)
            target = targets.get(info.filename)
            if target is None:
                dst.writestr(info, data)
                continue
            t, s = target
            sheets = tables[t]
            lo = s * sheets.per_sheet
            hi = min(len(sheets.positions), lo + sheets.per_sheet)
            xml = data.decode("utf-8")
            if hi <= lo:
                dst.writestr(info, data)
                continue
            last = f"{get_column_letter(len(sheets.table.headers))}{hi - lo + 1}"
            xml = re.sub(r'<dimension ref="[^"]*"/>', f'<dimension ref="A1:{last}"/>', xml, count=1)
            head, tail = xml.split("</sheetData>", 1)
            with dst.open(info.filename, "w", force_zip64=True) as fh:
                fh.write(head.encode("utf-8"))
                for start in range(lo, hi, _CHUNK_ROWS):
                    stop = min(hi, start + _CHUNK_ROWS)
                    fh.write(_utf8(_render_rows(sheets, t, rendered, unique_before, styles, start, stop,
                                                2 + start - lo)))
                fh.write(("</sheetData>" + tail).encode("utf-8"))
        with dst.open("xl/sharedStrings.xml", "w", force_zip64=True) as fh:
            head, tail = sst.rsplit("</sst>", 1)
            head = re.sub(r' count="\d+"', f' count="{count_before + rendered.references}"', head, count=1)
            head = re.sub(r'uniqueCount="\d+"', f'uniqueCount="{unique_before + len(rendered.strings)}"', head,
                          count=1)
            fh.write(head.encode("utf-8"))
            start_item, end_item, nothing = (pa.scalar(x, pa.large_string())
                                             for x in ('<si><t xml:space="preserve">', "</t></si>", ""))
            for start in range(0, len(rendered.strings), _CHUNK_ROWS):
                items = _xml_texts(rendered.strings.slice(start, _CHUNK_ROWS))
                fh.write(_utf8(pc.binary_join_element_wise(start_item, items, end_item, nothing)))
            fh.write(("</sst>" + tail).encode("utf-8"))


def _px(width: float) -> int:
    """A column width in Excel's character units as pixels, at most: 7 px a character in Excel (Calibri 11), about
    9.3 in LibreOffice where Calibri is missing and DejaVu Sans stands in (seen rendering to PDF); a little more
    than the wider, so the page fits in both."""
    return int(width * 10 + 5)


def _page_setup(ws: Worksheet, job: _Job, width: float, *, table: bool) -> None:
    """A4, narrow margins, the footer; a table sheet also one page wide, landscape when wider than portrait,
    its header row repeated on every page."""
    if table:
        apply_xlsxwriter(ws, PrintSetup.for_width(width, title_rows=(1, 1), footer=job.footer))
    else:
        apply_xlsxwriter(ws, PrintSetup(fit_width=False, footer=job.footer))


def _write_summary(wb: xlsxwriter.Workbook, ws: Worksheet, fmts: dict[str, Format | None], job: _Job) -> None:
    """The front sheet, printed portrait: title, notes, KPIs and the table by supervising agency on the first
    page, the chart below it when both fit, else whole on a page of its own (a manual page break; the print scale
    fits the columns to the page width, since Excel ignores page breaks under "fit to pages")."""
    n_money = len(job.money_titles)
    headers = ["主管機關", "機關數", "已完成", *job.money_titles, *([RATE_TITLE] if job.rate else [])]
    names = [g[0] for g in job.groups]
    name_width = max([_display_width(t) for t in ["主管機關", *names, *(label for label, _ in job.kpis)]])
    money_widths = [max(_display_width(title), *(len(f"{v:,}") for v in [*(g[3][m] for g in job.groups),
                                                                         job.totals[2][m]]))
                    for m, title in enumerate(job.money_titles)]
    widths = [name_width * 1.1 + 2, 8.0, 8.0, *(max(12.0, w * 1.1 + 2) for w in money_widths),
              *([9.0] if job.rate else [])]
    for c, w in enumerate(widths):
        ws.set_column(c, c, w)
    sheet_px = sum(_px(w) for w in widths)
    page_px = int((8.27 - 0.8) * 96)  # A4 portrait less the margins
    scale = max(10, min(100, page_px * 100 // sheet_px))
    _page_setup(ws, job, sum(widths), table=False)
    ws.set_portrait()
    ws.set_print_scale(scale)

    ws.write_string(0, 0, job.title, fmts["title"])
    ws.write_string(1, 0, f"產製時間：{job.stamp}", fmts["note"])
    row = 2
    for style, text in job.notes:
        ws.write_string(row, 0, text, fmts[style])
        row += 1

    row += 1
    ws.write_string(row, 0, "填報概況", fmts["section"])
    for label, value in job.kpis:
        row += 1
        ws.write_string(row, 0, label)
        ws.write_number(row, 1, value, fmts["money"])

    row += 2
    ws.write_string(row, 0, "各主管機關金額（新臺幣元）", fmts["section"])
    row += 1
    for c, title in enumerate(headers):
        ws.write_string(row, c, title, fmts["header"])
    header_row = row
    for name, units, done, sums in job.groups:
        row += 1
        ws.write_string(row, 0, name)
        ws.write_number(row, 1, units)
        ws.write_number(row, 2, done)
        for m, value in enumerate(sums):
            _write_int(ws, row, 3 + m, value, fmts["money"], fmts["bignum"])
        _write_rate(ws, row, 3 + n_money, job.rate, sums, fmts["rate"])
    last = row
    row += 1
    ws.write_string(row, 0, "合計", fmts["total_label"])
    ws.write_number(row, 1, job.totals[0], fmts["total_label"])
    ws.write_number(row, 2, job.totals[1], fmts["total_label"])
    for m, value in enumerate(job.totals[2]):
        _write_int(ws, row, 3 + m, value, fmts["total_money"], fmts["total_bignum"])
    _write_rate(ws, row, 3 + n_money, job.rate, job.totals[2], fmts["total_rate"])

    if n_money and job.groups:
        chart = wb.add_chart({"type": "bar"})
        if chart is None:  # pragma: no cover - xlsxwriter returns None only for unknown chart types
            return
        for m in range(min(n_money, MONEY_CHART_SERIES)):
            chart.add_series({
                "name": [SUMMARY_SHEET, header_row, 3 + m],
                "categories": [SUMMARY_SHEET, header_row + 1, 0, last, 0],
                "values": [SUMMARY_SHEET, header_row + 1, 3 + m, last, 3 + m],
            })
        chart.set_title({"name": "各主管機關金額（新臺幣元）", "name_font": {"size": 12}})
        chart.set_x_axis({"num_format": "#,##0", "major_gridlines": {"visible": True}})
        chart.set_y_axis({"reverse": True})  # the first supervising agency on top, as in the table
        chart.set_legend({"position": "bottom"})
        page_high = int((11.69 - 1.4) * 96 * 100 / scale)  # a portrait page, in the sheet's pixels
        high = min(page_high, 120 + 18 * len(job.groups) * min(n_money, MONEY_CHART_SERIES))
        # A chart is anchored to the cells under it, which xlsxwriter finds at 7 px a character: as wide as the
        # table in those pixels, it ends at the table's right edge in every program, inside the page.
        chart.set_size({"width": sum(int(w * 7 + 0.5) + 5 for w in widths), "height": high})
        chart_row = row + 2
        if (chart_row * LINE_POINTS + high * 0.75) * scale / 100 > PORTRAIT_POINTS:
            ws.set_h_pagebreaks([chart_row])  # the chart starts a page: never cut across two
        ws.insert_chart(chart_row, 0, chart)


def _write_rate(ws: Worksheet, row: int, col: int, rate: tuple[int, int] | None, sums: list[int],
                fmt: Format | None) -> None:
    if rate is None:
        return
    value = rate_of(sums[rate[0]], sums[rate[1]])
    if value is not None:
        ws.write_number(row, col, value, fmt)


def _write_int(ws: Worksheet, row: int, col: int, value: int, number: Format | None,
               text: Format | None) -> None:
    if abs(value) >= EXCEL_EXACT_LIMIT:
        ws.write_string(row, col, f"{value:,}", text)
    else:
        ws.write_number(row, col, value, number)


def _run(tasks: list[Callable[[], object]], workers: int) -> None:
    """Run the writing tasks, in this order, in `workers` threads."""
    if workers <= 1:
        for task in tasks:
            task()
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for _ in pool.map(lambda task: task(), tasks):
            pass


# ----------------------------------------------------------------------------------------------------
# Parquet and CSV.


def _arrow_table(inp: ReportInput, values: _Values) -> pa.Table:
    rows = inp.rows
    arrays: list[pa.Array] = []
    fields: list[pa.Field] = []
    titles = {"agency": "機關代碼", "agency_name": "機關名稱", "supervisor": "主管機關代碼",
              "supervisor_name": "主管機關", "receipt": "收件編號"}
    for key, title in titles.items():
        arrays.append(values.texts[key])
        fields.append(pa.field(key, pa.string(), metadata={"title": title}))
    for col in inp.columns:
        series = rows[col.key]
        if col.kind == "whole":
            exact = values.wholes[col.key]
            if exact.beyond:  # beyond int64: exact as decimals
                ints = [_as_int(v, col.key) for v in series.tolist()]
                array = pa.array([None if v is None else Decimal(v) for v in ints], type=pa.decimal128(38, 0))
            else:
                array = pa.array(exact.values, type=pa.int64(), mask=~exact.present)
        elif col.kind == "date":
            array = _dates(series)
        elif col.kind == "rate":
            array = _floats(series)
        elif col.kind == "decimal":
            decimals = [None if _isna(v) else v for v in series.tolist()]
            if all(v is None or isinstance(v, Decimal) for v in decimals):
                array = pa.array(decimals)
            else:
                array = _floats(series)
        else:
            array = values.texts[col.key]
        arrays.append(array)
        fields.append(pa.field(col.key, array.type, metadata={"title": col.title, "kind": col.kind,
                                                              "money": str(col.money).lower()}))
    metadata = {"collection": inp.collection_id, "collection_title": inp.collection_title,
                "round": inp.round_id, "round_label": inp.round_label,
                "generated_at": inp.generated_at.isoformat()}
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields, metadata=metadata))


def _dates(series: pd.Series) -> pa.Array:
    """Dates (date32), null where the value is not a date."""
    return pa.array(pd.to_datetime(series, errors="coerce").to_numpy(dtype="datetime64[D]"), type=pa.date32())


def _floats(series: pd.Series) -> pa.Array:
    if pd.api.types.is_float_dtype(series.dtype) or pd.api.types.is_integer_dtype(series.dtype):
        numbers = series.to_numpy(dtype=np.float64, na_value=np.nan)
        return pa.array(numbers, pa.float64(), mask=np.isnan(numbers))
    return pa.array([None if _isna(v) else float(v) for v in series.tolist()], type=pa.float64())


def _csv_texts(texts: pa.Array) -> pa.Array:
    """Texts for the CSV export, a formula-looking one with a leading quote."""
    risky = pc.fill_null(pc.match_substring_regex(texts, _FORMULA_START), False)
    return pc.if_else(risky, pc.binary_join_element_wise("'", texts, ""), texts)


def _write_csv(inp: ReportInput, values: _Values, path: Path) -> None:
    """The detail as CSV: UTF-8 with a BOM (for Excel), CRLF line ends, texts quoted."""
    rows = inp.rows
    out: dict[str, pa.Array] = {
        "機關代碼": _csv_texts(values.texts["agency"]),
        "機關名稱": _csv_texts(values.texts["agency_name"]),
        "主管機關": _csv_texts(values.texts["supervisor_name"]),
    }
    for col in inp.columns:
        series = rows[col.key]
        if col.kind == "whole":
            exact = values.wholes[col.key]
            value = (pa.array([None if _isna(v) else str(_as_int(v, col.key)) for v in series.tolist()], pa.string())
                     if exact.beyond else pa.array(exact.values, pa.int64(), mask=~exact.present))
        elif col.kind == "date":
            value = _dates(series).cast(pa.string())  # ISO: 2026-03-05
        elif col.kind in ("decimal", "rate"):
            numeric = pd.api.types.is_float_dtype(series.dtype) or pd.api.types.is_integer_dtype(series.dtype)
            value = (_floats(series).cast(pa.string()) if numeric
                     else pa.array([None if _isna(v) else str(v) for v in series.tolist()], pa.string()))
        else:
            value = _csv_texts(values.texts[col.key])
        out[col.title] = value
    with open(path, "wb") as fh:
        fh.write(codecs.BOM_UTF8)
        pcsv.write_csv(pa.table(out), fh, pcsv.WriteOptions(eol="\r\n"))


# ----------------------------------------------------------------------------------------------------
# Files.


def _safe_filename(name: str) -> str:
    return _UNSAFE_FILENAME.sub("_", name).strip(" .")


def _atomic(path: Path, write: Callable[[Path], object]) -> None:
    """Write through a temporary file in the same folder so a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.part")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


__all__ = ["MAX_SHEET_ROWS", "ReportColumn", "ReportFiles", "ReportInput", "export_stem", "master_name", "rate_of",
           "supervisor_file_name", "write_reports"]
