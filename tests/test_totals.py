"""The report's one totals module: every money sum exact, past int64 and past Excel's 15 digits."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from collect.report.totals import Exact, by_supervisor, column_total, decimal_sum, exact_total, group_sums

BIG = 2**63 + 5  # beyond int64


def test_group_sums_are_exact_beyond_int64():
    exact = Exact.of(pd.Series([BIG, 1, None, 2**62, 2**62], dtype=object), "approved")
    assert exact.beyond == {0: BIG}
    sums = group_sums([exact], np.arange(5), np.array([0, 0, 1, 2, 2]), ["A", "B", "C"])
    assert sums == {"A": [BIG + 1], "C": [2**63]}  # B reported nothing: no entry; C's int64 sum would overflow
    assert column_total(pd.Series([BIG, 1, None], dtype=object), "approved") == BIG + 1


def test_a_fraction_in_a_money_column_is_refused_not_rounded():
    with pytest.raises(ValueError, match="not a whole number"):
        Exact.of(pd.Series([1, Decimal("2.5")], dtype=object), "approved")


def test_decimal_figures_add_up_exactly():
    assert decimal_sum([0.1, 0.2, None, "x", Decimal("0.3")]) == Decimal("0.6")
    assert decimal_sum([None, float("nan")]) is None
    assert exact_total(pd.Series([10**15, 1, None], dtype="Int64")) == Decimal(10**15 + 1)
    assert exact_total(pd.Series([None], dtype="Int64")) is None


def test_by_supervisor_counts_units_and_sums_money_with_the_rate_from_the_sums():
    agencies = pd.DataFrame({"agency": ["A1", "A2", "B1"], "supervisor": ["A", "A", "B"],
                             "supervisor_name": ["教育局", "教育局", "衛生局"],
                             "state": ["accepted", "missing", "late"]})
    rows = pd.DataFrame({"supervisor": ["A", "A", "B", "Z"],
                         "approved": pd.array([100, 300, 0, 7], dtype="Int64"),
                         "spent": pd.array([50, None, 0, 7], dtype="Int64")})
    out = by_supervisor(agencies, rows, ["approved", "spent"], ("spent", "approved"))
    assert [(e["name"], e["in_scope"], e["accepted"], e["approved"], e["spent"]) for e in out] == [
        ("教育局", 2, 1, 400, 50), ("衛生局", 1, 1, 0, 0), ("合計", 3, 2, 400, 50)]  # Z is in no agency's scope
    assert [e["rate"] for e in out] == [0.125, None, 0.125]
