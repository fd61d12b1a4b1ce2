"""The round calendar: round ids (2026-10, 2026-Q3, 2026-H1, 2026-S1, 2026), their periods, ROC dates, Taipei time."""

from __future__ import annotations

import calendar
import re
from datetime import date, datetime, timedelta, timezone
from typing import Any

from collect.errors import CollectionError

TAIPEI = timezone(timedelta(hours=8))
ROC_OFFSET = 1911  # ROC year = Gregorian year - 1911

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
    if year <= ROC_OFFSET:
        raise CollectionError(f"The round {round_id!r} is before the ROC calendar (1912).",
                              "Write the Gregorian year: 2026, not 115.")
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
    roc = year - ROC_OFFSET
    if kind == "month":
        return f"{roc}年{n}月"
    if kind == "quarter":
        return f"{roc}年第{n}季"
    if kind == "half":
        return f"{roc}年{'上' if n == 1 else '下'}半年"
    if kind == "session":
        return f"{roc}年第{n}次審議"
    return f"{roc}年度"


def roc_deadline(info: dict[str, Any] | None) -> str:
    """A round's deadline as the ledger records it (Ledger.round_info), as an ROC date; "" for no such round."""
    return roc_date(datetime.fromisoformat(info["deadline"])) if info else ""


def roc_date(d: date | datetime) -> str:
    """A date as agencies write it: date(2026, 3, 5) -> "115/03/05"; three-digit years (099/01/02) so that
    the normaliser reads them back (a two-digit year is refused as ambiguous)."""
    if isinstance(d, datetime):
        d = d.date()
    return f"{d.year - ROC_OFFSET:03d}/{d.month:02d}/{d.day:02d}"


def roc_time(moment: datetime) -> str:
    """A moment in Taipei time as agencies read it: "115/03/05 14:30"."""
    t = moment.astimezone(TAIPEI)
    return f"{roc_date(t)} {t.hour:02d}:{t.minute:02d}"
