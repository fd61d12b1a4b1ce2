"""Normalise raw cell values by column kind: NT$ amounts, full-width digits, ROC dates, text and codes."""

from __future__ import annotations

import datetime as dt
import math
import re
import unicodedata
from decimal import Decimal
from typing import Any, Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from collect.rounds import ROC_OFFSET

ErrorCode = str

NOT_NUMBER: Final = "value.not_number"
NOT_WHOLE: Final = "value.not_whole"
NOT_DATE: Final = "value.not_date"
TOO_MANY_DIGITS: Final = "value.too_many_digits"
# A number written with more digits than this is a finding, never a computation (int(Decimal) of a million digits
# takes 41 s); NT$ amounts have at most 19.
MAX_DIGITS: Final = 30

# The kinds of value a column holds; one list, used by the rules format, the normaliser and the reports.
VALUE_KINDS: Final = ("whole", "decimal", "date", "text", "choice", "code")
KINDS: Final = frozenset(VALUE_KINDS)

# Whole numbers end up in a pandas "Int64" column, so they must fit in 64 bits.
WHOLE_MIN: Final = -(2**63)
WHOLE_MAX: Final = 2**63 - 1

# Excel serial numbers accepted in a date column (1900 date system: 1 = 1900-01-01, 2958465 = 9999-12-31;
# 60 is Excel's non-existent 1900-02-29). Integral numbers of 7 or 8 digits are read as compact dates
# (1150305, 20260305) instead, because that is what a person typing them into a General cell meant.
SERIAL_MIN: Final = 1
SERIAL_MAX: Final = 2958465
SERIAL_MAX_1904: Final = 2957003  # 1904 date system: 0 = 1904-01-01
ROC_YEAR_MAX: Final = 200

_EPOCH_1900: Final = np.datetime64("1899-12-30", "D")  # serials from 61 on (Excel counts 1900-02-29)
_EPOCH_1900_EARLY: Final = np.datetime64("1899-12-31", "D")  # serials 1..59
_EPOCH_1904: Final = np.datetime64("1904-01-01", "D")

_INVISIBLE_CHARS: Final = "\u200b\u200c\u200d\u2060\ufeff\u180e\u00ad"
_EDGES: Final = re.compile(rf"^[\s{_INVISIBLE_CHARS}]+|[\s{_INVISIBLE_CHARS}]+$")
_INVISIBLE: Final = re.compile(f"[{_INVISIBLE_CHARS}]")
_ALL_SPACE: Final = re.compile(rf"[\s{_INVISIBLE_CHARS}]+")
# The characters _EDGES strips (all of str.isspace() lies below U+3001), for a quick "nothing to strip" test.
_EDGE_SET: Final = frozenset(c for c in map(chr, range(0x3001)) if c.isspace()) | frozenset(_INVISIBLE_CHARS)
# A text that needs no normalising: not empty and none of those characters at either end (RE2, run by Arrow).
_EDGE_CLASS: Final = "".join(f"\\x{{{ord(c):x}}}" for c in sorted(_EDGE_SET))
_PLAIN_TEXT: Final = f"(?s)^[^{_EDGE_CLASS}](.*[^{_EDGE_CLASS}])?$"
# Dashes people (and word processors) use as a minus sign; NFKC leaves these alone.
_MINUS: Final = str.maketrans(dict.fromkeys("\u2212\u2010\u2011\u2012\u2013\ufe63\uff0d", "-"))

_PLAIN_INT: Final = re.compile(r"-?\d{1,18}")
# Column fast paths for the usual text numbers; anything else goes through normalise_value.
_FAST_WHOLE: Final = re.compile(r"-?(?:[0-9]{1,3}(?:,[0-9]{3}){1,5}|[0-9]{1,18})(?:\.0*)?")
_FAST_DECIMAL: Final = re.compile(r"-?(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.[0-9]+)?")
_NUMBER: Final = re.compile(
    r"""
    (?P<sign1>[-+])?\s*
    (?P<open1>\()?\s*
    (?P<sign2>[-+])?\s*
    (?:新臺幣|新台幣|NT\$|NTD|TWD|\$)?\s*
    (?P<sign3>[-+])?\s*
    (?P<open2>\()?\s*
    (?P<body>(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d*)?|\.\d+)\s*
    (?P<close2>\))?\s*
    (?:元整|元|NTD|TWD)?\s*
    (?P<close1>\))?
    """,
    re.VERBOSE | re.IGNORECASE,
)

_TIME_SUFFIX: Final = re.compile(r"(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)$")
_ROC_PREFIX: Final = re.compile(r"^(?:中華)?民國\s*")
_DATE_CJK: Final = re.compile(r"(\d{1,4})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*日?")
_DATE_SEP: Final = re.compile(r"(\d{1,4})([-/.])(\d{1,2})\2(\d{1,2})")
_DATE_COMPACT: Final = re.compile(r"\d{7,8}")

_TOTAL_WORDS: Final = frozenset(
    {"合計", "小計", "總計", "總額", "合计", "小计", "总计", "总额", "total", "subtotal", "grandtotal"}
)

_NONE, _STR, _FLOAT, _INT, _DATE, _DATETIME, _OTHER = range(7)


class _TypeGroups(dict[type, int]):
    """Type -> group; any other type is _OTHER (so that lookups can run in map(), at C speed)."""

    def __missing__(self, key: type) -> int:
        return _OTHER


_TYPE_GROUP: Final = _TypeGroups({
    type(None): _NONE,
    str: _STR,
    float: _FLOAT,
    np.float64: _FLOAT,
    int: _INT,
    np.int64: _INT,
    dt.date: _DATE,
    dt.datetime: _DATETIME,
})



# ---------------------------------------------------------------------------------------------- helpers


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown column kind {kind!r}; expected one of {sorted(KINDS)}")


def _is_missing(raw: object) -> bool:
    """None, pandas' missing markers and NaN (how pandas stores a blank in a number column)."""
    if raw is None or raw is pd.NA or raw is pd.NaT:
        return True
    if isinstance(raw, float | np.floating):
        return math.isnan(raw)
    return isinstance(raw, np.datetime64) and bool(np.isnat(raw))


def _strip(text: str) -> str:
    """Surrounding whitespace (incl. U+3000 and NBSP) and zero-width characters removed; inner text kept."""
    return _EDGES.sub("", text)


def _fold(text: str) -> str:
    """NFKC (full-width digits and punctuation), dashes as minus, invisible characters dropped, stripped."""
    if not text.isascii():
        text = _INVISIBLE.sub("", unicodedata.normalize("NFKC", text).translate(_MINUS))
    return text.strip()


def _as_text(raw: object) -> str:
    """What a non-text cell would read as in Excel (123.0 -> "123", a date -> "2026-03-05")."""
    if isinstance(raw, bool | np.bool_):
        return "TRUE" if raw else "FALSE"
    if isinstance(raw, int | np.integer):
        return str(int(raw))
    if isinstance(raw, float | np.floating):
        x = float(raw)
        return str(int(x)) if x.is_integer() else repr(x)
    if isinstance(raw, dt.datetime):
        return raw.date().isoformat() if raw.time() == dt.time(0) else raw.isoformat(sep=" ")
    if isinstance(raw, dt.date | dt.time):
        return raw.isoformat()
    return str(raw)


def _zero_unsigned(value: Decimal) -> Decimal:
    return abs(value) if value.is_zero() else value


# ---------------------------------------------------------------------------------------------- numbers


def _parse_number_text(text: str) -> Decimal | None:
    """'NT$1,234', '(1,234)', '−12.50元', '１，２３４' -> Decimal; None if it is not a number."""
    s = _fold(text)
    if _PLAIN_INT.fullmatch(s):
        return _zero_unsigned(Decimal(s))
    m = _NUMBER.fullmatch(s)
    if m is None:
        return None
    opens = (m["open1"] is not None) + (m["open2"] is not None)
    closes = (m["close1"] is not None) + (m["close2"] is not None)
    signs = [g for g in (m["sign1"], m["sign2"], m["sign3"]) if g is not None]
    if opens != closes or opens + len(signs) > 1:
        return None  # unbalanced parentheses or two sign marks such as "-(1,234)"
    value = Decimal(m["body"].replace(",", ""))
    if opens or signs == ["-"]:
        value = -value
    return _zero_unsigned(value)


def _to_decimal(raw: object) -> tuple[Decimal | None, ErrorCode | None]:
    if isinstance(raw, bool | np.bool_):
        return None, NOT_NUMBER
    if isinstance(raw, int | np.integer):
        return Decimal(int(raw)), None
    if isinstance(raw, float | np.floating):
        x = float(raw)
        if not math.isfinite(x):
            return None, NOT_NUMBER
        return _zero_unsigned(Decimal(repr(x))), None
    if isinstance(raw, Decimal):
        return (_zero_unsigned(raw), None) if raw.is_finite() else (None, NOT_NUMBER)
    if isinstance(raw, str):
        if len(raw) > MAX_DIGITS and sum(map(str.isdigit, raw)) > MAX_DIGITS:
            return None, TOO_MANY_DIGITS
        value = _parse_number_text(raw)
        return (value, None) if value is not None else (None, NOT_NUMBER)
    return None, NOT_NUMBER


def _to_whole(raw: object) -> tuple[int | None, ErrorCode | None]:
    if isinstance(raw, str):
        s = raw.strip()
        if _PLAIN_INT.fullmatch(s):  # the common case, without Decimal
            return int(s), None
    elif isinstance(raw, int | np.integer) and not isinstance(raw, bool | np.bool_):
        n = int(raw)
        return (n, None) if WHOLE_MIN <= n <= WHOLE_MAX else (None, NOT_NUMBER)
    elif isinstance(raw, float | np.floating):
        x = float(raw)
        if not math.isfinite(x):
            return None, NOT_NUMBER
        if not x.is_integer():
            return None, NOT_WHOLE
        n = int(x)
        return (n, None) if WHOLE_MIN <= n <= WHOLE_MAX else (None, NOT_NUMBER)
    value, error = _to_decimal(raw)
    if value is None:
        return None, error
    if value != value.to_integral_value():
        return None, NOT_WHOLE
    n = int(value)
    return (n, None) if WHOLE_MIN <= n <= WHOLE_MAX else (None, NOT_NUMBER)


# ---------------------------------------------------------------------------------------------- dates


def _year(digits: str, roc_marked: bool) -> int | None:
    """A year field as written: 3 digits (or any ROC-marked 1-3) = ROC, 4 digits = Gregorian, else None."""
    year = int(digits)
    if roc_marked or len(digits) == 3:
        return year + ROC_OFFSET if len(digits) <= 3 and 1 <= year <= ROC_YEAR_MAX else None
    if len(digits) == 4 and year >= 1900:
        return year
    return None  # two-digit years are ambiguous (26 = 2026 or ROC 26 = 1937): refuse


def _make_date(year: int | None, month: str, day: str) -> dt.date | None:
    if year is None:
        return None
    try:
        return dt.date(year, int(month), int(day))
    except ValueError:
        return None


def _parse_date_text(text: str) -> dt.date | None:
    s = _fold(text)
    s = _TIME_SUFFIX.sub("", s).strip()
    prefixed = _ROC_PREFIX.match(s)
    if prefixed:
        s = s[prefixed.end() :]
    roc_marked = prefixed is not None
    if m := _DATE_SEP.fullmatch(s):
        return _make_date(_year(m[1], roc_marked), m[3], m[4])
    if m := _DATE_CJK.fullmatch(s):
        return _make_date(_year(m[1], roc_marked), m[2], m[3])
    if _DATE_COMPACT.fullmatch(s):
        if len(s) == 7:
            return _make_date(_year(s[:3], True), s[3:5], s[5:])
        if not roc_marked:
            return _make_date(_year(s[:4], False), s[4:6], s[6:])
    return None


def _serial_bounds(date1904: bool) -> tuple[int, int]:
    return (0, SERIAL_MAX_1904) if date1904 else (SERIAL_MIN, SERIAL_MAX)


def _date_from_number(x: float, date1904: bool) -> dt.date | None:
    if not math.isfinite(x):
        return None
    if 1_000_000 <= x < 100_000_000:  # typed compact date, e.g. 1150305 or 20260305
        return _parse_date_text(str(int(x))) if x.is_integer() else None
    lo, hi = _serial_bounds(date1904)
    serial = math.floor(x)  # a fraction is the time of day
    if not lo <= serial <= hi:
        return None
    if date1904:
        return dt.date(1904, 1, 1) + dt.timedelta(days=serial)
    if serial == 60:
        return None  # 1900-02-29 does not exist
    start = dt.date(1899, 12, 31) if serial < 60 else dt.date(1899, 12, 30)
    return start + dt.timedelta(days=serial)


def _to_date(raw: object, date1904: bool) -> dt.date | None:
    if isinstance(raw, dt.datetime):
        return raw.date()
    if isinstance(raw, dt.date):
        return raw
    if isinstance(raw, str):
        return _parse_date_text(raw)
    if isinstance(raw, np.datetime64):
        return pd.Timestamp(raw).date()
    if isinstance(raw, bool | np.bool_):
        return None
    if isinstance(raw, int | np.integer | float | np.floating):
        return _date_from_number(float(raw), date1904)
    return None


# ---------------------------------------------------------------------------------------------- public API


def normalise_value(
    raw: object, kind: str, *, date1904: bool = False
) -> tuple[object | None, ErrorCode | None]:
    """One raw cell value -> (normalised value, None) or (None, error code); blanks give (None, None).

    whole -> int, decimal -> Decimal, date -> datetime.date, text/choice/code -> str. NaN counts as blank
    (pandas stores a blank number cell so); infinities and text such as "NaN" are errors. `date1904` reads
    serial numbers in Excel's 1904 date system.
    """
    _check_kind(kind)
    if _is_missing(raw):
        return None, None
    if isinstance(raw, str) and not _strip(raw):
        return None, None
    if kind == "whole":
        return _to_whole(raw)
    if kind == "decimal":
        return _to_decimal(raw)
    if kind == "date":
        value = _to_date(raw, date1904)
        return (value, None) if value is not None else (None, NOT_DATE)
    if kind == "code":
        code = (_fold(raw) if isinstance(raw, str) else _as_text(raw)).upper()
        return code or None, None
    text = _strip(raw) if isinstance(raw, str) else _as_text(raw)
    return text or None, None


class _Column:
    """The output arrays of one column being normalised; whole numbers kept as int64 data + mask."""

    def __init__(self, n: int, kind: str) -> None:
        self.kind = kind
        self.errors = np.full(n, None, dtype=object)
        if kind == "whole":
            self.data = np.zeros(n, dtype=np.int64)
            self.mask = np.ones(n, dtype=bool)
        else:
            self.values = np.full(n, None, dtype=object)

    def put(self, where: np.ndarray, values: list[Any], errors: list[ErrorCode | None]) -> None:
        """Per-value results for positions `where`."""
        self.errors[where] = np.array(errors, dtype=object)
        if self.kind == "whole":
            ok = np.array([v is not None for v in values], dtype=bool)
            self.data[where[ok]] = np.array([v for v in values if v is not None], dtype=np.int64)
            self.mask[where[ok]] = False
        else:
            self.values[where] = _object_array(values)

    def series(self, index: pd.Index, name: Any) -> tuple[pd.Series, pd.Series]:
        if self.kind == "whole":
            out = pd.Series(pd.arrays.IntegerArray(self.data, self.mask), index=index, name=name)
        else:
            out = pd.Series(self.values, index=index, name=name, dtype=object)
        return out, pd.Series(self.errors, index=index, name=name, dtype=object)


def _object_array(values: list[Any]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _put_floats(col: _Column, where: np.ndarray, x: np.ndarray, date1904: bool) -> None:
    """Vectorised float cells (NaN = blank) at positions `where`."""
    kind = col.kind
    blank = np.isnan(x)
    finite = np.isfinite(x)
    if kind == "whole":
        integral = finite & (np.floor(x) == x)
        fits = integral & (x >= -(2.0**63)) & (x < 2.0**63)
        col.errors[where[~finite & ~blank]] = NOT_NUMBER
        col.errors[where[finite & ~integral]] = NOT_WHOLE
        col.errors[where[integral & ~fits]] = NOT_NUMBER
        col.data[where[fits]] = x[fits].astype(np.int64)
        col.mask[where[fits]] = False
    elif kind == "decimal":
        col.errors[where[~finite & ~blank]] = NOT_NUMBER
        decimals = [_zero_unsigned(Decimal(repr(v))) for v in x[finite].tolist()]
        col.values[where[finite]] = _object_array(decimals)
    elif kind == "date":
        lo, hi = _serial_bounds(date1904)
        serial = np.floor(np.where(finite, x, -1.0))
        compact = finite & (x >= 1_000_000) & (x < 100_000_000)
        ok = finite & ~compact & (serial >= lo) & (serial <= hi)
        if not date1904:
            ok &= serial != 60
        days = serial[ok].astype(np.int64).astype("timedelta64[D]")
        if date1904:
            dates = _EPOCH_1904 + days
        else:
            dates = np.where(serial[ok] < 60, _EPOCH_1900_EARLY + days, _EPOCH_1900 + days)
        col.values[where[ok]] = dates.astype("datetime64[D]").astype(object)
        col.errors[where[~ok & ~blank & ~compact]] = NOT_DATE
        if compact.any():
            parsed = [_date_from_number(v, date1904) for v in x[compact].tolist()]
            col.put(where[compact], parsed, [None if d is not None else NOT_DATE for d in parsed])
    else:
        texts = [_as_text(v) for v in x[~blank].tolist()]
        col.values[where[~blank]] = _object_array([t.upper() for t in texts] if kind == "code" else texts)


def _put_ints(col: _Column, where: np.ndarray, n: np.ndarray, date1904: bool) -> None:
    """Vectorised int64 cells at positions `where`."""
    if col.kind == "whole":
        col.data[where] = n
        col.mask[where] = False
    elif col.kind == "date":
        _put_floats(col, where, n.astype(np.float64), date1904)
    elif col.kind == "decimal":
        col.values[where] = _object_array([Decimal(v) for v in n.tolist()])
    else:
        col.values[where] = _object_array([str(v) for v in n.tolist()])


_SLOW: Final = object()  # a fast path's "not mine, parse it fully"


def _fast_whole(text: str) -> object:
    if _FAST_WHOLE.fullmatch(text):
        return int(text.partition(".")[0].replace(",", ""))
    return _SLOW


def _fast_decimal(text: str) -> object:
    if len(text) <= MAX_DIGITS and _FAST_DECIMAL.fullmatch(text):
        return _zero_unsigned(Decimal(text.replace(",", "")))
    return _SLOW


def _fast_text(text: str) -> object:
    if text and text[0] not in _EDGE_SET and text[-1] not in _EDGE_SET:
        return text
    return _SLOW


def _fast_code(text: str) -> object:
    if text.isascii():
        return text.strip().upper() or None
    return _SLOW


_FAST: Final[dict[str, Any]] = {
    "whole": _fast_whole,
    "decimal": _fast_decimal,
    "text": _fast_text,
    "choice": _fast_text,
    "code": _fast_code,
}


def _put_strings(col: _Column, where: np.ndarray, texts: np.ndarray, date1904: bool) -> None:
    """str cells at positions `where`: the kind's fast path where it applies, full parsing for the rest."""
    fast = _FAST.get(col.kind)
    if fast is None:  # dates: few distinct values in a column, so parse each distinct text once
        _put_each(col, where, texts, date1904, memo=True)
        return
    if fast is _fast_text:  # the usual case, at C speed: plain texts stay as they are
        plain = _plain_texts(texts)
        col.put(where[plain], texts[plain].tolist(), [None] * int(plain.sum()))
        _put_each(col, where[~plain], texts[~plain], date1904, memo=False)
        return
    values = [fast(t) for t in texts.tolist()]
    slow = np.fromiter((v is _SLOW for v in values), dtype=bool, count=len(values))
    done = ~slow
    if done.all():
        col.put(where, values, [None] * len(values))
        return
    col.put(where[done], [v for v in values if v is not _SLOW], [None] * int(done.sum()))
    _put_each(col, where[slow], texts[slow], date1904, memo=False)


def _plain_texts(texts: np.ndarray) -> np.ndarray:
    """Which of these str values _fast_text would keep as they are, tested by one vectorised regex."""
    try:
        matched = pc.match_substring_regex(pa.array(texts, type=pa.string()), _PLAIN_TEXT)
    except (pa.ArrowException, UnicodeEncodeError):  # e.g. a lone surrogate: one by one
        return np.fromiter((_fast_text(t) is not _SLOW for t in texts.tolist()), dtype=bool, count=len(texts))
    return np.asarray(matched.to_numpy(zero_copy_only=False), dtype=bool)


def _put_each(col: _Column, where: np.ndarray, raws: np.ndarray, date1904: bool, memo: bool) -> None:
    """Per-value parsing for positions `where`; `memo` reuses results for repeated values."""
    if not len(where):
        return
    results: list[tuple[object | None, ErrorCode | None]]
    if memo:
        cache: dict[Any, tuple[object | None, ErrorCode | None]] = {}
        results = []
        for raw in raws.tolist():
            hit = cache.get(raw)
            if hit is None:
                hit = cache[raw] = normalise_value(raw, col.kind, date1904=date1904)
            results.append(hit)
    else:
        results = [normalise_value(raw, col.kind, date1904=date1904) for raw in raws.tolist()]
    col.put(where, [r[0] for r in results], [r[1] for r in results])


def normalise_column(values: pd.Series, kind: str, *, date1904: bool = False) -> tuple[pd.Series, pd.Series]:
    """A column of raw cell values -> (normalised values, error codes), both on the column's own index.

    Output dtypes: whole -> "Int64" (<NA> for blank or wrong); decimal -> object of Decimal; date -> object of
    datetime.date; text/choice/code -> object of str. Blank and wrong cells hold None (<NA> for whole). The
    error series is object dtype: an error code, or None where the cell is fine or blank. Columns of numbers
    are converted vectorised; only text and unusual cells are parsed one by one (repeated text once).
    """
    _check_kind(kind)
    n = len(values)
    col = _Column(n, kind)
    everywhere = np.arange(n)
    dtype = values.dtype
    if pd.api.types.is_float_dtype(dtype):
        _put_floats(col, everywhere, values.to_numpy(dtype=np.float64, na_value=np.nan), date1904)
        return col.series(values.index, values.name)
    if pd.api.types.is_signed_integer_dtype(dtype) or (
        pd.api.types.is_unsigned_integer_dtype(dtype) and not (values > WHOLE_MAX).any()
    ):  # unsigned numbers beyond int64 would wrap around: those go value by value below
        missing = values.isna().to_numpy()
        ints = values.to_numpy(dtype=np.int64, na_value=0)
        _put_ints(col, everywhere[~missing], ints[~missing], date1904)
        return col.series(values.index, values.name)

    raws = values.to_numpy(dtype=object)
    types = np.fromiter(map(_TYPE_GROUP.__getitem__, map(type, raws)), dtype=np.int8, count=n)
    is_str = types == _STR
    is_float = types == _FLOAT
    is_int = types == _INT
    is_none = types == _NONE
    if is_float.any():
        _put_floats(col, everywhere[is_float], raws[is_float].astype(np.float64), date1904)
    if is_int.any():
        try:
            ints = raws[is_int].astype(np.int64)
        except OverflowError:
            _put_each(col, everywhere[is_int], raws[is_int], date1904, memo=False)
        else:
            _put_ints(col, everywhere[is_int], ints, date1904)
    if is_str.any():
        _put_strings(col, everywhere[is_str], raws[is_str], date1904)
    other = ~(is_str | is_float | is_int | is_none)
    if kind == "date":  # real Excel dates, as python-calamine returns them
        is_date, is_datetime = types == _DATE, types == _DATETIME
        col.values[everywhere[is_date]] = raws[is_date]
        col.values[everywhere[is_datetime]] = _object_array([d.date() for d in raws[is_datetime].tolist()])
        other &= ~(is_date | is_datetime)
    _put_each(col, everywhere[other], raws[other], date1904, memo=False)
    return col.series(values.index, values.name)


def is_total_row(value: object) -> bool:
    """True for a total-row label: 合計, 小計, 總計, 總額 (spaces inside allowed) or "Total", any case."""
    if not isinstance(value, str):
        return False
    text = _ALL_SPACE.sub("", unicodedata.normalize("NFKC", value))
    return text.rstrip(":").casefold() in _TOTAL_WORDS
