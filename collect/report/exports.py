"""The report's data exports: the detail rows as Parquet (typed, exact) and as CSV (for a spreadsheet program)."""

from __future__ import annotations

import codecs
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from collect.report.columns import ReportInput, Values
from collect.report.totals import as_int, isna

# Characters that make a spreadsheet program treat a CSV field as a formula (OWASP "CSV injection").
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_FORMULA_START = r"^[=+\-@\t\r]"  # FORMULA_PREFIXES


def write_parquet(inp: ReportInput, values: Values, path: Path) -> None:
    """The detail as Parquet: whole numbers exact (int64, or decimal128 beyond it), dates as dates."""
    pq.write_table(_arrow_table(inp, values), path)


def _arrow_table(inp: ReportInput, values: Values) -> pa.Table:
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
                ints = [as_int(v, col.key) for v in series.tolist()]
                array = pa.array([None if v is None else Decimal(v) for v in ints], type=pa.decimal128(38, 0))
            else:
                array = pa.array(exact.values, type=pa.int64(), mask=~exact.present)
        elif col.kind == "date":
            array = _dates(series)
        elif col.kind == "rate":
            array = _floats(series)
        elif col.kind == "decimal":
            decimals = [None if isna(v) else v for v in series.tolist()]
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
    return pa.array([None if isna(v) else float(v) for v in series.tolist()], type=pa.float64())


def _csv_texts(texts: pa.Array) -> pa.Array:
    """Texts for the CSV export, a formula-looking one with a leading quote."""
    risky = pc.fill_null(pc.match_substring_regex(texts, _FORMULA_START), False)
    return pc.if_else(risky, pc.binary_join_element_wise("'", texts, ""), texts)


def write_csv(inp: ReportInput, values: Values, path: Path) -> None:
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
            value = (pa.array([None if isna(v) else str(as_int(v, col.key)) for v in series.tolist()], pa.string())
                     if exact.beyond else pa.array(exact.values, pa.int64(), mask=~exact.present))
        elif col.kind == "date":
            value = _dates(series).cast(pa.string())  # ISO: 2026-03-05
        elif col.kind in ("decimal", "rate"):
            numeric = pd.api.types.is_float_dtype(series.dtype) or pd.api.types.is_integer_dtype(series.dtype)
            value = (_floats(series).cast(pa.string()) if numeric
                     else pa.array([None if isna(v) else str(v) for v in series.tolist()], pa.string()))
        else:
            value = _csv_texts(values.texts[col.key])
        out[col.title] = value
    with open(path, "wb") as fh:
        fh.write(codecs.BOM_UTF8)
        pcsv.write_csv(pa.table(out), fh, pcsv.WriteOptions(eol="\r\n"))
