"""Excel's date numbers: a date or a datetime as the serial Excel stores (the 1900 system)."""

from __future__ import annotations

import datetime as dt
from typing import Final

EPOCH: Final = dt.datetime(1899, 12, 30)  # serial 0 for every serial from 61 on
EPOCH_DATE: Final = EPOCH.date()


def to_serial(value: dt.date | dt.datetime) -> int | float:
    """A date as Excel's whole day number; a datetime with its time of day as the fraction."""
    if isinstance(value, dt.datetime):
        delta = value.replace(tzinfo=None) - EPOCH
        return delta.days + delta.seconds / 86400
    return (value - EPOCH_DATE).days

