"""The round calendar: round ids, their periods, the previous round, ROC labels and dates, Taipei time."""

from __future__ import annotations

import datetime as dt

import pytest

from collect.errors import CollectionError
from collect.normalise import normalise_value
from collect.rounds import (
    TAIPEI,
    parse_round,
    previous_round,
    roc_date,
    roc_round_label,
    roc_time,
    round_end,
    round_start,
)


@pytest.mark.parametrize(
    ("round_id", "label"),
    [
        ("2026-10", "115年10月"),
        ("2026-03", "115年3月"),
        ("2026", "115年度"),
        ("2026-Q3", "115年第3季"),
        ("2026-Q1", "115年第1季"),
        ("2026-H1", "115年上半年"),
        ("2026-H2", "115年下半年"),
        ("2026-S1", "115年第1次審議"),
        ("2011-12", "100年12月"),
        ("1912", "1年度"),
    ],
)
def test_roc_round_label(round_id: str, label: str) -> None:
    assert roc_round_label(round_id) == label


@pytest.mark.parametrize(
    "round_id", ["2026-13", "2026-00", "2026-Q5", "2026-H3", "26-10", "1911", "115", "next", "2026-10-05", "2026-3"]
)
def test_bad_round_ids_are_refused_with_a_hint(round_id: str) -> None:
    with pytest.raises(CollectionError) as e:
        parse_round(round_id)
    assert e.value.hint


@pytest.mark.parametrize(
    ("round_id", "start", "end", "previous"),
    [
        ("2026-01", dt.date(2026, 1, 1), dt.date(2026, 1, 31), "2025-12"),
        ("2028-02", dt.date(2028, 2, 1), dt.date(2028, 2, 29), "2028-01"),
        ("2026-Q1", dt.date(2026, 1, 1), dt.date(2026, 3, 31), "2025-Q4"),
        ("2026-Q3", dt.date(2026, 7, 1), dt.date(2026, 9, 30), "2026-Q2"),
        ("2026-H1", dt.date(2026, 1, 1), dt.date(2026, 6, 30), "2025-H2"),
        ("2026-H2", dt.date(2026, 7, 1), dt.date(2026, 12, 31), "2026-H1"),
        ("2026-S1", dt.date(2026, 1, 1), dt.date(2026, 12, 31), "2025-S2"),
        ("2026", dt.date(2026, 1, 1), dt.date(2026, 12, 31), "2025"),
    ],
)
def test_a_round_covers_its_period_and_knows_the_one_before(
    round_id: str, start: dt.date, end: dt.date, previous: str
) -> None:
    assert (round_start(round_id), round_end(round_id), previous_round(round_id)) == (start, end, previous)


@pytest.mark.parametrize(
    ("day", "text"),
    [
        (dt.date(2026, 3, 5), "115/03/05"),
        (dt.date(2026, 12, 31), "115/12/31"),
        (dt.date(2010, 1, 2), "099/01/02"),
        (dt.datetime(2026, 3, 5, 23, 59), "115/03/05"),
    ],
)
def test_roc_dates_read_back_as_the_same_day(day: dt.date, text: str) -> None:
    assert roc_date(day) == text
    expected = day.date() if isinstance(day, dt.datetime) else day
    assert normalise_value(text, "date") == (expected, None)


def test_roc_time_is_taipei_time() -> None:
    moment = dt.datetime(2026, 3, 5, 16, 30, tzinfo=dt.UTC)  # 00:30 the next day in Taipei
    assert roc_time(moment) == "115/03/06 00:30"
    assert moment.astimezone(TAIPEI).utcoffset() == dt.timedelta(hours=8)
