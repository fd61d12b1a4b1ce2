"""Tests for collect.normalise: amounts, decimals, ROC dates, text, codes, total rows and ROC labels."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest
from python_calamine import CalamineWorkbook

from collect.findings import CATALOGUE
from collect.normalise import (
    NOT_DATE,
    NOT_NUMBER,
    NOT_WHOLE,
    is_total_row,
    normalise_column,
    normalise_value,
)

MARCH_5 = dt.date(2026, 3, 5)
BLANKS = [None, "", "   ", "\u3000", "\u00a0", "\u200b", " \t\u3000\u00a0\n", float("nan"), pd.NA, pd.NaT]


def test_error_codes_are_in_the_catalogue() -> None:
    for code in (NOT_NUMBER, NOT_WHOLE, NOT_DATE):
        assert CATALOGUE[code][0] == "error"


# ------------------------------------------------------------------------------------------------ whole


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (1234, 1234),
        (1234.0, 1234),
        (-5.0, -5),
        (0, 0),
        ("1234", 1234),
        ("1,234,567", 1234567),
        ("1，234", 1234),
        ("１２３４", 1234),
        ("１，２３４，５６７", 1234567),
        ("NT$1,234", 1234),
        ("NT$ 1,234", 1234),
        ("nt$1,234", 1234),
        ("NT＄1,234", 1234),
        ("$1,234", 1234),
        ("＄１２３", 123),
        ("NTD 1,234", 1234),
        ("1,234 NTD", 1234),
        ("1,234元", 1234),
        ("新臺幣1,234元", 1234),
        ("新台幣 1,234 元", 1234),
        ("  1,234  ", 1234),
        ("\u30001,234\u3000", 1234),
        ("\u00a01234\u200b", 1234),
        ("(1,234)", -1234),
        ("（１，２３４）", -1234),
        ("(NT$1,234)", -1234),
        ("NT$(1,234)", -1234),
        ("-1,234", -1234),
        ("−1,234", -1234),
        ("－１２３４", -1234),
        ("-NT$1,234", -1234),
        ("NT$-1,234", -1234),
        ("+12", 12),
        ("1234.0", 1234),
        ("1234.00", 1234),
        ("1,234.00", 1234),
        ("1234.", 1234),
        ("-0", 0),
        ("0001234", 1234),
        ("9223372036854775807", 2**63 - 1),
        (np.int64(7), 7),
        (np.float64(8.0), 8),
        (Decimal("12.000"), 12),
    ],
)
def test_whole_accepts(raw: object, expected: int) -> None:
    value, error = normalise_value(raw, "whole")
    assert error is None
    assert value == expected
    assert type(value) is int


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (1234.5, NOT_WHOLE),
        ("1234.5", NOT_WHOLE),
        ("1,234.50", NOT_WHOLE),
        ("NT$0.5", NOT_WHOLE),
        (np.float64(0.1), NOT_WHOLE),
        ("一千", NOT_NUMBER),
        ("壹仟元", NOT_NUMBER),
        ("abc", NOT_NUMBER),
        ("1,2,3x", NOT_NUMBER),
        ("1,2,3", NOT_NUMBER),
        ("12,34", NOT_NUMBER),
        ("1 234", NOT_NUMBER),
        ("1.234.567", NOT_NUMBER),
        ("--5", NOT_NUMBER),
        ("-(5)", NOT_NUMBER),
        ("(5", NOT_NUMBER),
        ("5)", NOT_NUMBER),
        ("NT$", NOT_NUMBER),
        ("元", NOT_NUMBER),
        ("NaN", NOT_NUMBER),
        ("nan", NOT_NUMBER),
        ("inf", NOT_NUMBER),
        ("Infinity", NOT_NUMBER),
        ("1e5", NOT_NUMBER),
        ("5%", NOT_NUMBER),
        ("#DIV/0!", NOT_NUMBER),
        ("-", NOT_NUMBER),
        (float("inf"), NOT_NUMBER),
        (float("-inf"), NOT_NUMBER),
        (True, NOT_NUMBER),
        (False, NOT_NUMBER),
        (np.bool_(True), NOT_NUMBER),
        (MARCH_5, NOT_NUMBER),
        (dt.datetime(2026, 3, 5, 10, 0), NOT_NUMBER),
        (dt.time(10, 0), NOT_NUMBER),
        (dt.timedelta(hours=3), NOT_NUMBER),
        ("99999999999999999999", NOT_NUMBER),  # does not fit the Int64 column
        (10**30, NOT_NUMBER),
        (1e30, NOT_NUMBER),
    ],
)
def test_whole_rejects(raw: object, code: str) -> None:
    assert normalise_value(raw, "whole") == (None, code)


# ------------------------------------------------------------------------------------------------ decimal


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (0.1, "0.1"),
        ("0.1", "0.1"),
        ("０．１", "0.1"),
        (1234.5, "1234.5"),
        (1234, "1234"),
        ("1,234.56", "1234.56"),
        ("NT$1,234.50元", "1234.50"),
        ("(12.5)", "-12.5"),
        ("−0.25", "-0.25"),
        (".5", "0.5"),
        ("1234.00", "1234.00"),
        (np.float64(0.3), "0.3"),
        (Decimal("7.25"), "7.25"),
    ],
)
def test_decimal_accepts_exactly(raw: object, expected: str) -> None:
    value, error = normalise_value(raw, "decimal")
    assert error is None
    assert isinstance(value, Decimal)
    assert value == Decimal(expected)
    assert str(value) == expected


def test_decimal_of_float_cell_is_what_excel_shows_not_the_binary_float() -> None:
    value, _ = normalise_value(0.1, "decimal")
    assert value == Decimal("0.1")
    assert value != Decimal.from_float(0.1)  # the binary float is 0.1000000000000000055511151231257827...


def test_a_column_of_tenths_sums_exactly() -> None:
    values, errors = normalise_column(pd.Series([0.1] * 10 + ["0.1"] * 10), "decimal")
    assert errors.isna().all()
    assert sum(values) == Decimal("2.0")
    assert sum([0.1] * 20) != 2.0  # what a float sum would have given


@pytest.mark.parametrize("zero", ["-0", "-0.00", -0.0, "(0)"])
def test_negative_zero_has_no_sign(zero: object) -> None:
    value, _ = normalise_value(zero, "decimal")
    assert not str(value).startswith("-")


@pytest.mark.parametrize(
    "raw", ["NaN", "sNaN", "Infinity", "-inf", float("inf"), "abc", True, "1/2", MARCH_5]
)
def test_decimal_rejects(raw: object) -> None:
    assert normalise_value(raw, "decimal") == (None, NOT_NUMBER)


def test_decimal_nan_value_is_rejected() -> None:
    assert normalise_value(Decimal("NaN"), "decimal") == (None, NOT_NUMBER)


# ------------------------------------------------------------------------------------------------ dates


@pytest.mark.parametrize(
    "raw",
    [
        MARCH_5,
        dt.datetime(2026, 3, 5),
        dt.datetime(2026, 3, 5, 17, 30),
        pd.Timestamp("2026-03-05 08:00"),
        np.datetime64("2026-03-05"),
        "2026-03-05",
        "2026/3/5",
        "2026/03/05",
        "2026.3.5",
        "20260305",
        "2026年3月5日",
        "2026-03-05 00:00:00",
        "2026-03-05T10:15",
        "115/03/05",
        "115/3/5",
        "115.3.5",
        "115-03-05",
        "115年3月5日",
        "115 年 3 月 5 日",
        "民國115年3月5日",
        "中華民國115年3月5日",
        "民國115/03/05",
        "1150305",
        "１１５／０３／０５",
        "１１５年３月５日",
        "１１５０３０５",
        "２０２６－０３－０５",
        "\u3000115/03/05\u00a0",
        46086,  # Excel serial number of 2026-03-05
        46086.0,
        46086.75,  # a date and a time of day
        1150305.0,  # typed as a number into a General cell
        20260305.0,
    ],
)
def test_date_accepts(raw: object) -> None:
    assert normalise_value(raw, "date") == (MARCH_5, None)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("099/01/02", dt.date(2010, 1, 2)),
        ("民國99年1月2日", dt.date(2010, 1, 2)),
        ("民國1年1月1日", dt.date(1912, 1, 1)),
        ("200/12/31", dt.date(2111, 12, 31)),
        ("0990102", dt.date(2010, 1, 2)),
        ("113/02/29", dt.date(2024, 2, 29)),
    ],
)
def test_roc_year_range(raw: str, expected: dt.date) -> None:
    assert normalise_value(raw, "date") == (expected, None)


@pytest.mark.parametrize(
    "raw",
    [
        "115/02/30",
        "2026/13/45",
        "2026-02-29",
        "115/13/01",
        "115/00/10",
        "201/01/01",  # ROC years stop at 200
        "000/01/01",
        "26/03/05",  # two-digit years are ambiguous
        "99/3/5",
        "26年3月5日",
        "民國2026年3月5日",
        "260305",
        "3/5/2026",
        "2026/03-05",
        "115/3",
        "明天",
        "abc",
        "0115/03/05",
        "1150230",
        "20261345",
        True,
        dt.time(10, 0),
        dt.timedelta(days=3),
        float("inf"),
        0,
        -1,
        60,  # Excel's 1900-02-29, which never existed
        2958466,
        1e12,
        1150305.5,
    ],
)
def test_date_rejects(raw: object) -> None:
    assert normalise_value(raw, "date") == (None, NOT_DATE)


@pytest.mark.parametrize(
    ("serial", "expected"),
    [
        (1, dt.date(1900, 1, 1)),
        (59, dt.date(1900, 2, 28)),
        (61, dt.date(1900, 3, 1)),
        (45658, dt.date(2025, 1, 1)),
    ],
)
def test_excel_serials_follow_the_1900_system_with_its_leap_year_bug(serial: int, expected: dt.date) -> None:
    assert normalise_value(serial, "date") == (expected, None)
    assert normalise_value(float(serial), "date") == (expected, None)
    values, errors = normalise_column(pd.Series([float(serial)]), "date")
    assert values.tolist() == [expected] and errors.tolist() == [None]


def test_1904_date_system_on_request() -> None:
    assert normalise_value(0, "date", date1904=True) == (dt.date(1904, 1, 1), None)
    assert normalise_value(46086 - 1462, "date", date1904=True) == (MARCH_5, None)
    values, errors = normalise_column(pd.Series([0.0, 60.0, 44624.0]), "date", date1904=True)
    assert values.tolist() == [dt.date(1904, 1, 1), dt.date(1904, 3, 1), MARCH_5]
    assert errors.tolist() == [None, None, None]


# ---------------------------------------------------------------------------------------- text, choice, code


@pytest.mark.parametrize("kind", ["whole", "decimal", "date", "text", "choice", "code"])
@pytest.mark.parametrize("blank", BLANKS, ids=repr)
def test_blanks_are_none_without_error(kind: str, blank: object) -> None:
    assert normalise_value(blank, kind) == (None, None)


@pytest.mark.parametrize("kind", ["text", "choice"])
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  臺北市政府 ", "臺北市政府"),
        ("\u3000臺北市立動物園\u3000", "臺北市立動物園"),
        ("\u00a0衛生局\u200b", "衛生局"),
        ("\ufeff是", "是"),
        ("臺北 市", "臺北 市"),  # inner space is the user's
        ("臺北\u3000市", "臺北\u3000市"),
        ("ＡＢＣ股份有限公司", "ＡＢＣ股份有限公司"),  # no NFKC: full-width letters stay
        ("㈱", "㈱"),
        ("１２３", "１２３"),
        (123, "123"),
        (123.0, "123"),
        (1.5, "1.5"),
        (0.1, "0.1"),
        (True, "TRUE"),
        (MARCH_5, "2026-03-05"),
        (dt.datetime(2026, 3, 5), "2026-03-05"),
    ],
)
def test_text_and_choice_are_only_stripped(kind: str, raw: object, expected: str) -> None:
    assert normalise_value(raw, kind) == (expected, None)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("A0101", "A0101"),
        ("a0101", "A0101"),
        ("  A0101\u3000", "A0101"),
        ("Ａ０１０１", "A0101"),
        ("0123", "0123"),
        ("００１２３", "00123"),
        ("\u200b0123\u200b", "0123"),
        (123.0, "123"),
        (123, "123"),
        (np.float64(379000000.0), "379000000"),
        ("379000000", "379000000"),
    ],
)
def test_code(raw: object, expected: str) -> None:
    assert normalise_value(raw, "code") == (expected, None)


def test_unknown_kind_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown column kind"):
        normalise_value("1", "money")
    with pytest.raises(ValueError, match="unknown column kind"):
        normalise_column(pd.Series(["1"]), "money")


# ------------------------------------------------------------------------------------------------ columns


def test_mixed_column_keeps_the_excel_row_index() -> None:
    raw = pd.Series(["1,234", 56.0, None, "(7)", 8.5, "一千"], index=[7, 8, 12, 13, 20, 21], name="金額")
    values, errors = normalise_column(raw, "whole")
    assert values.dtype == "Int64"
    assert list(values.index) == [7, 8, 12, 13, 20, 21] and list(errors.index) == [7, 8, 12, 13, 20, 21]
    assert values.name == "金額"
    assert values.loc[7] == 1234 and values.loc[8] == 56 and values.loc[13] == -7
    assert values.isna().tolist() == [False, False, True, False, True, True]
    assert errors.to_dict() == {7: None, 8: None, 12: None, 13: None, 20: NOT_WHOLE, 21: NOT_NUMBER}


def test_short_column_with_non_default_index() -> None:
    values, errors = normalise_column(
        pd.Series(["115/03/05", 46086.0, "2026/02/30"], index=[7, 8, 12]), "date"
    )
    assert values.to_dict() == {7: MARCH_5, 8: MARCH_5, 12: None}
    assert errors.to_dict() == {7: None, 8: None, 12: NOT_DATE}
    assert values.dtype == object


@pytest.mark.parametrize(
    ("series", "kind", "expected_values", "expected_errors"),
    [
        (
            pd.Series([1.0, np.nan, 2.5, np.inf]),
            "whole",
            [1, None, None, None],
            [None, None, NOT_WHOLE, NOT_NUMBER],
        ),
        (pd.Series([1, None, 3], dtype="Int64"), "whole", [1, None, 3], [None, None, None]),
        (pd.Series([1, 2], dtype="int64"), "decimal", [Decimal(1), Decimal(2)], [None, None]),
        (pd.Series(["1", None, "x"], dtype="str"), "whole", [1, None, None], [None, None, NOT_NUMBER]),
        (pd.Series(["a0101", None], dtype="str"), "code", ["A0101", None], [None, None]),
        (pd.Series([True, False]), "whole", [None, None], [NOT_NUMBER, NOT_NUMBER]),
        (pd.Series([10**30, 5], dtype=object), "whole", [None, 5], [NOT_NUMBER, None]),
        (pd.Series([2**64 - 1, 5], dtype="uint64"), "whole", [None, 5], [NOT_NUMBER, None]),
        (pd.Series([7, None], dtype="UInt8"), "whole", [7, None], [None, None]),
        (pd.Series([pd.Timestamp("2026-03-05"), pd.NaT]), "date", [MARCH_5, None], [None, None]),
        (pd.Series(["是", "否", None], dtype="category"), "choice", ["是", "否", None], [None, None, None]),
        (pd.Series([], dtype=object), "whole", [], []),
    ],
)
def test_column_dtypes(
    series: pd.Series, kind: str, expected_values: list[object], expected_errors: list[str | None]
) -> None:
    values, errors = normalise_column(series, kind)
    assert [None if pd.isna(v) else v for v in values] == expected_values
    assert errors.tolist() == expected_errors


@pytest.mark.parametrize("kind", ["text", "choice", "code", "decimal", "date"])
def test_blank_cells_are_none_not_nan(kind: str) -> None:
    values, errors = normalise_column(pd.Series(["", None, "\u3000", float("nan")], index=[3, 4, 5, 6]), kind)
    assert values.dtype == object
    assert values.tolist() == [None, None, None, None]
    assert errors.tolist() == [None, None, None, None]


SAMPLES: list[object] = [
    "1,234", "1234", "-1234", "1,234.00", "1,234.50", " 12 ", "１２３", "(1,234)", "NT$5", "abc", "",
    "  ", "\u3000", "0.1", "0123", "a0101", "A0101\u200b", "115/03/05", "1150305", "20260305", "2026/02/30",
    "是", " 否 ", 1234.0, 0.1, 2.5, -0.0, float("nan"), float("inf"), 46086.0, 60.0, 1150305.0, 1e30, 1234,
    10**30, None, True, MARCH_5, dt.datetime(2026, 3, 5, 9), dt.time(9), pd.NA, np.float64(3.0), np.int64(4),
    Decimal("2.50"),
]  # fmt: skip


@pytest.mark.parametrize("kind", ["whole", "decimal", "date", "text", "choice", "code"])
def test_column_agrees_with_value_by_value(kind: str) -> None:
    """The vectorised paths give exactly what normalise_value gives for each cell."""
    rng = np.random.default_rng(7)
    cells = [SAMPLES[i] for i in rng.integers(0, len(SAMPLES), 500)]
    index = pd.RangeIndex(2, 502)
    values, errors = normalise_column(pd.Series(cells, index=index, dtype=object), kind)
    expected = [normalise_value(c, kind) for c in cells]
    got_values = [None if v is pd.NA else v for v in values.tolist()]
    assert got_values == [e[0] for e in expected]
    assert [type(v) for v in got_values] == [type(e[0]) for e in expected]
    assert errors.tolist() == [e[1] for e in expected]
    assert list(values.index) == list(index)


def test_numbers_only_column_agrees_with_value_by_value() -> None:
    cells = [
        1234.0,
        0.5,
        -3.0,
        np.nan,
        46086.0,
        1150305.0,
        20260305.0,
        59.0,
        60.0,
        61.0,
        1e7 + 0.5,
        np.inf,
        0.0,
    ]
    for kind in ("whole", "decimal", "date", "text", "code"):
        values, errors = normalise_column(pd.Series(cells, dtype="float64"), kind)
        expected = [normalise_value(c, kind) for c in cells]
        assert [None if v is pd.NA else v for v in values.tolist()] == [e[0] for e in expected], kind
        assert errors.tolist() == [e[1] for e in expected], kind


def test_values_read_back_from_a_real_workbook(tmp_path: Path) -> None:
    """Cells as an agency leaves them, written by openpyxl and read by python-calamine."""
    path = tmp_path / "returned.xlsx"
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(["機關代碼", "金額", "比率", "日期", "備註"])
    ws.append(["0123", 1234, 0.1, dt.date(2026, 3, 5), "\u3000一般\u3000"])
    ws.append(["A0101", "1,234,567", "0.25", "115/03/05", None])
    ws.append([None, None, None, None, None])  # a blank row in the middle
    ws.append(["ａ０１０２", "(NT$500)", 12.5, "１１５年３月５日", "合計"])
    ws.append([379000000, 1234.5, "abc", "115/02/30", 7])
    ws.append(["B0001", "一千", "1e3", 46086, "ok"])
    ws["D2"].number_format = "yyyy-mm-dd"
    ws["E7"].value = "=1/0"
    wb.save(path)

    grid = CalamineWorkbook.from_path(str(path)).get_sheet_by_index(0).to_python()
    rows = list(range(2, len(grid) + 1))  # Excel row numbers of the data rows (the grid starts at A1 here)
    frame = pd.DataFrame(grid[1:], columns=grid[0], index=rows, dtype=object)

    codes, code_err = normalise_column(frame["機關代碼"], "code")
    amounts, amount_err = normalise_column(frame["金額"], "whole")
    rates, rate_err = normalise_column(frame["比率"], "decimal")
    dates, date_err = normalise_column(frame["日期"], "date")
    notes, _ = normalise_column(frame["備註"], "text")

    assert codes.to_dict() == {2: "0123", 3: "A0101", 4: None, 5: "A0102", 6: "379000000", 7: "B0001"}
    assert code_err.isna().all()
    assert amounts.astype(object).where(amounts.notna(), None).to_dict() == {
        2: 1234,
        3: 1234567,
        4: None,
        5: -500,
        6: None,
        7: None,
    }
    assert amount_err.to_dict() == {2: None, 3: None, 4: None, 5: None, 6: NOT_WHOLE, 7: NOT_NUMBER}
    assert rates.to_dict() == {
        2: Decimal("0.1"),
        3: Decimal("0.25"),
        4: None,
        5: Decimal("12.5"),
        6: None,
        7: None,
    }
    assert rate_err.to_dict() == {2: None, 3: None, 4: None, 5: None, 6: NOT_NUMBER, 7: NOT_NUMBER}
    assert dates.to_dict() == {2: MARCH_5, 3: MARCH_5, 4: None, 5: MARCH_5, 6: None, 7: MARCH_5}
    assert date_err.to_dict() == {2: None, 3: None, 4: None, 5: None, 6: NOT_DATE, 7: None}
    assert notes.loc[2] == "一般" and notes.loc[6] == "7"
    assert [r for r, label in frame["備註"].items() if is_total_row(label)] == [5]


# ------------------------------------------------------------------------------------------------ labels


@pytest.mark.parametrize(
    "label",
    ["合計", "小計", "總計", "總額", "合 計", "合\u3000計", " 總　計 ", "Total", "TOTAL", "total ", "合計："],
)
def test_total_rows(label: str) -> None:
    assert is_total_row(label)


@pytest.mark.parametrize("label", ["合計金額", "本月合計數", "臺北市", "", None, 0, 1234.0, "Totally", "計"])
def test_not_total_rows(label: object) -> None:
    assert not is_total_row(label)


def test_a_text_column_trims_every_edge_character_as_a_single_value_would() -> None:
    from collect.normalise import _EDGE_SET

    edges = sorted(_EDGE_SET)
    texts = ["計畫名稱", "a\u200bb", "x", *(f"{c}計畫" for c in edges), *(f"計畫{c}" for c in edges)]
    values, errors = normalise_column(pd.Series(texts, dtype=object), "text")
    assert values.tolist() == [normalise_value(t, "text")[0] for t in texts]
    assert values.tolist()[:3] == ["計畫名稱", "a\u200bb", "x"]
    assert set(values.tolist()[3:]) == {"計畫"}
    assert errors.isna().all()
