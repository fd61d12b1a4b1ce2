"""Data quality over time, per agency: how often its first return was rejected, its frequent findings, days late."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from collect.lake.query import QueryResult, connect, run, views
from collect.lake.store import sync
from collect.workspace import Context
from collect.xlsx.table_out import table_sheet
from collect.xlsx.writer import Sheet

TOP_CODES = 3
# the quality rows' columns and their zh-TW titles (the master report's sheet, `collect quality`)
COLUMNS = {"agency": "機關代碼", "agency_name": "機關名稱", "supervisor": "主管機關代碼",
           "supervisor_name": "主管機關", "rounds": "填報期數", "first_rejected": "首次退件期數",
           "first_rejected_rate": "首次退件率", "late_rounds": "逾期期數", "days_late": "逾期天數合計",
           "max_days_late": "最多逾期天數", "top_findings": "最常見檢核代碼"}

# Per round and agency: its first decided return (accepted or rejected) and its first accepted one; days late is
# the Taipei date of the first accepted return after the round's deadline (0 when on time or never accepted).
QUALITY_SQL = """
WITH decided AS (
    SELECT s.*, r.deadline,
           row_number() OVER (PARTITION BY s.collection, s.round, s.agency ORDER BY s.received_at, s.receipt) AS nth
    FROM submissions s JOIN rounds r USING (collection, round)
    WHERE s.verdict IN ('accepted', 'rejected') AND s.agency IS NOT NULL AND ($collection IS NULL
          OR s.collection = $collection)
), per_round AS (
    SELECT collection, round, agency,
           bool_or(nth = 1 AND verdict = 'rejected') AS first_rejected,
           greatest(0, coalesce(date_diff('day', any_value(deadline),
               CAST(min(received_at) FILTER (WHERE verdict = 'accepted') AS DATE)), 0)) AS days_late
    FROM decided GROUP BY ALL
), codes AS (
    SELECT d.agency, f.code, count(*) AS n
    FROM findings f JOIN decided d ON f.receipt = d.receipt GROUP BY ALL
), top_codes AS (
    SELECT agency, string_agg(code || '×' || n, '、' ORDER BY n DESC, code) AS top_findings
    FROM (SELECT *, row_number() OVER (PARTITION BY agency ORDER BY n DESC, code) AS k FROM codes)
    WHERE k <= $top GROUP BY agency
)
SELECT p.agency, a.agency_name, a.supervisor, a.supervisor_name,
       count(*) AS rounds,
       count(*) FILTER (WHERE p.first_rejected) AS first_rejected,
       round(count(*) FILTER (WHERE p.first_rejected) / count(*), 4) AS first_rejected_rate,
       count(*) FILTER (WHERE p.days_late > 0) AS late_rounds,
       CAST(sum(p.days_late) AS BIGINT) AS days_late,
       CAST(max(p.days_late) AS BIGINT) AS max_days_late,
       coalesce(t.top_findings, '') AS top_findings
FROM per_round p LEFT JOIN agencies a USING (agency) LEFT JOIN top_codes t USING (agency)
GROUP BY ALL
ORDER BY first_rejected_rate DESC, days_late DESC, p.agency
"""


def quality(ctx: Context, collection: str | None = None, *, refresh: bool = True) -> QueryResult:
    """One row per agency that has returned anything (of one collection, or all): rounds with a decided return,
    rounds whose first return was rejected (and that share), rounds late and days late, its most frequent
    finding codes. `refresh=False` reads the lake as it is (when the caller has just synced it)."""
    if refresh:
        sync(ctx)
    con = connect(ctx)
    try:
        if not {"submissions", "rounds", "findings", "agencies"} <= set(views(con)):
            return QueryResult(tuple(COLUMNS), [])
        return run(con, QUALITY_SQL, {"collection": collection, "top": TOP_CODES})
    finally:
        con.close()


def quality_table(result: QueryResult) -> tuple[list[str], list[list[Any]]]:
    """The rows under their zh-TW titles (the share of first returns rejected as a fraction, shown as a %)."""
    return [COLUMNS.get(c, c) for c in result.columns], [list(r) for r in result.rows]


QUALITY_SHEET = "資料品質"
RATE_TITLE = COLUMNS["first_rejected_rate"]


SheetWriter = Callable[[str | None, str], list[Sheet]]  # (supervising agency or None, footer) -> its sheets


def quality_sheet(result: QueryResult, before: SheetWriter | None = None) -> SheetWriter:
    """The report's extra-sheet hook (ReportInput.extra_sheets) with a 資料品質 sheet after `before`'s sheets: the
    city's agencies in the master report, a supervising agency's own units in its workbook."""
    columns, rows = quality_table(result)
    at = result.columns.index("supervisor")

    def write(supervisor: str | None, footer: str) -> list[Sheet]:
        mine = rows if supervisor is None else [r for r in rows if r[at] == supervisor]
        earlier = before(supervisor, footer) if before is not None else []
        return [*earlier, table_sheet(QUALITY_SHEET, columns, mine, footer, rate_columns=[RATE_TITLE])]

    return write
