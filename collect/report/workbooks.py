"""The master report of a round and one report per supervising agency (xlsx), plus Parquet and CSV exports.

Every workbook is planned first as plain data (a _Job, then xlsx.writer's sheets); writing a plan needs nothing
else, so workbooks are written by threads. The values are converted once (report.columns), summed exactly
(report.totals) and exported (report.exports).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from collect.report.columns import (
    ACCEPTED_STATES,
    EXCEL_EXACT_LIMIT,
    Prepared,
    ReportColumn,
    ReportInput,
    Table,
    Values,
    check_input,
    display_width,
    prepare,
)
from collect.report.exports import write_csv, write_parquet
from collect.report.totals import group_sums, rate_of
from collect.rounds import roc_date
from collect.xlsx.printing import PrintSetup, footer
from collect.xlsx.writer import LINE_POINTS, Block, Chart, Sheet, Style, write_workbook

# Excel's worksheet row limit, header row included. Tests lower it to exercise the split into 明細2, 明細3 ...
MAX_SHEET_ROWS = 1_048_576
# Files are written by several threads (at most MAX_WORKERS) once a round has this many detail cells.
PARALLEL_FROM_CELLS = 1_000_000
MAX_WORKERS = 4

DETAIL_SHEET = "明細"
SUMMARY_SHEET = "摘要"
EXCEPTIONS_SHEET = "檢核例外"
MISSING_SHEET = "未繳交"
MONEY_CHART_SERIES = 3  # the chart on 摘要 shows at most this many money columns
RATE_TITLE = "執行率"
PORTRAIT_POINTS = 720  # the printable height of an A4 portrait page (less margins and footer), in points
_UNSAFE_FILENAME = re.compile(r'[\\/:*?"<>|\x00-\x1f]')



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
    check_input(inp)
    out_dir.mkdir(parents=True, exist_ok=True)
    values = Values.of(inp)
    data = prepare(inp, values)
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
    if workers is None:
        cells = len(inp.rows) * len(data.detail.headers)
        workers = min(os.cpu_count() or 1, MAX_WORKERS) if cells >= PARALLEL_FROM_CELLS else 1
    _run([
        partial(_write_job, jobs[0]),  # the master first: the largest
        partial(_atomic, parquet_path, lambda tmp: write_parquet(inp, values, tmp)),
        partial(_atomic, csv_path, lambda tmp: write_csv(inp, values, tmp)),
        *(partial(_write_job, job) for job in sorted(jobs[1:], key=lambda job: job.size, reverse=True)),
    ], workers)
    return ReportFiles(master_path, supervisors, parquet_path, csv_path)


@dataclass
class _Slice:
    """Positions of the detail rows, findings, missing agencies and agencies in scope of one workbook."""

    rows: np.ndarray
    findings: np.ndarray
    missing: np.ndarray
    agencies: np.ndarray
    group: np.ndarray  # supervising agency of each agency in scope (for the table on 摘要)
    row_group: np.ndarray  # supervising agency of each detail row, as a number: its position in row_labels
    row_labels: list[str]

    @classmethod
    def whole(cls, data: Prepared) -> _Slice:
        return cls(np.arange(len(data.row_agency)), np.arange(len(data.finding_agency)),
                   np.arange(len(data.missing_agency)), np.arange(len(data.agency_code)),
                   data.agency_supervisor, data.row_supervisor.ids, data.row_supervisor.labels)

    @classmethod
    def of_supervisor(cls, data: Prepared, code: str) -> _Slice:
        """The supervising agency's units, its own row included even if the list files it under another."""

        def where(sup: np.ndarray, agency: np.ndarray) -> np.ndarray:
            return np.union1d(np.flatnonzero(sup == code), np.flatnonzero(agency == code))

        agencies = where(data.agency_supervisor, data.agency_code)
        rows = np.union1d(data.row_supervisor.positions(code), data.row_agency.positions(code))
        return cls(rows, where(data.finding_supervisor, data.finding_agency),
                   where(data.missing_supervisor, data.missing_agency), agencies,
                   np.full(len(agencies), code, dtype=object), np.zeros(len(rows), dtype=np.int64), [code])


# ----------------------------------------------------------------------------------------------------
# Workbooks: each planned as plain data (a _Job), then as the sheets xlsx.writer writes.


@dataclass
class _Sheets:
    """One table cut into sheets of at most `per_sheet` data rows; `positions` are this workbook's rows."""

    names: list[str]
    table: Table
    positions: np.ndarray
    per_sheet: int


@dataclass
class _Job:
    path: Path
    title: str
    stamp: str
    notes: list[tuple[str, str]]  # (style name, text) lines under the title
    kpis: list[tuple[str, int]]
    money_titles: list[str]
    groups: list[tuple[str, int, int, list[int]]]  # supervising agency name, units, accepted, money sums
    totals: tuple[int, int, list[int]]  # units, accepted, money sums
    detail: _Sheets
    exceptions: _Sheets
    missing: _Sheets
    rate: tuple[int, int] | None = None  # positions of the execution rate's numerator and denominator in the sums
    supervisor: str | None = None  # the supervising agency's code; None for the master
    extra_sheets: Callable[[str | None, str], list[Sheet]] | None = None

    @property
    def footer(self) -> str:
        """The print footer of every sheet: when it was made, and the page of how many."""
        return footer(self.stamp)

    @property
    def size(self) -> int:
        return len(self.detail.positions) + len(self.exceptions.positions)


def _sheets(base: str, table: Table, positions: np.ndarray) -> _Sheets:
    per_sheet = MAX_SHEET_ROWS - 1
    count = max(1, -(-len(positions) // per_sheet))
    names = [base if i == 0 else f"{base}{i + 1}" for i in range(count)]
    return _Sheets(names, table, positions, per_sheet)


def _plan(inp: ReportInput, data: Prepared, part: _Slice, path: Path, supervisor: tuple[str, str] | None,
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
    sums = group_sums(data.money, part.rows, part.row_group, part.row_labels)
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


def _write_job(job: _Job) -> Path:
    """Write one planned workbook (in a thread of its own when writing in parallel)."""
    sheets = [_summary_sheet(job)]
    if job.extra_sheets is not None:  # e.g. the consolidated form, right after 摘要
        sheets += job.extra_sheets(job.supervisor, job.footer)
    for table in (job.detail, job.exceptions, job.missing):
        sheets += _table_sheets(table, job.footer)
    _atomic(job.path, lambda tmp: write_workbook(tmp, sheets))
    return job.path


def _table_sheets(sheets: _Sheets, made: str) -> list[Sheet]:
    """A table's sheets: header row, widths, frozen panes, autofilter, print setup, and its rows as a block."""
    table, per_sheet = sheets.table, sheets.per_sheet
    out: list[Sheet] = []
    setup = PrintSetup.for_width(sum(table.widths), title_rows=(1, 1), footer=made)
    lines = max((math.ceil(display_width(t) / max(1.0, w - 2)) for t, w in zip(table.headers, table.widths,
                                                                                strict=True)), default=1)
    for index, name in enumerate(sheets.names):
        sheet = Sheet(name, setup, freeze=(1, table.freeze_cols), table_dimension=True,
                      cells=[(0, c, title, "header") for c, title in enumerate(table.headers)],
                      widths=dict(enumerate(table.widths)))
        if lines > 1:  # a long title wraps: the header row as tall as it needs
            sheet.heights[0] = LINE_POINTS * lines
        lo = index * per_sheet
        positions = sheets.positions[lo:lo + per_sheet]
        if not len(positions):
            if index == 0 and table.empty_note:
                sheet.cells.append((1, 0, table.empty_note, "note"))
        else:
            sheet.autofilter = (0, 0, len(positions), len(table.headers) - 1)
            sheet.block = Block(table.columns, positions, 2, [n for n, _ in table.formats],
                                [t for _, t in table.formats],
                                wrap=[w if t == "wrap" else None for (_, t), w in zip(table.formats, table.widths,
                                                                                      strict=True)])
        out.append(sheet)
    return out


def _px(width: float) -> int:
    """A column width in Excel's character units as pixels, at most: 7 px a character in Excel (Calibri 11), about
    9.3 in LibreOffice where Calibri is missing and DejaVu Sans stands in (seen rendering to PDF); a little more
    than the wider, so the page fits in both."""
    return int(width * 10 + 5)


def _summary_sheet(job: _Job) -> Sheet:
    """The front sheet, printed portrait: title, notes, KPIs and the table by supervising agency on the first
    page, the chart below it when both fit, else whole on a page of its own (a manual page break; the print scale
    fits the columns to the page width, since Excel ignores page breaks under "fit to pages")."""
    n_money = len(job.money_titles)
    headers = ["主管機關", "機關數", "已完成", *job.money_titles, *([RATE_TITLE] if job.rate else [])]
    names = [g[0] for g in job.groups]
    name_width = max([display_width(t) for t in ["主管機關", *names, *(label for label, _ in job.kpis)]])
    money_widths = [max(display_width(title), *(len(f"{v:,}") for v in [*(g[3][m] for g in job.groups),
                                                                        job.totals[2][m]]))
                    for m, title in enumerate(job.money_titles)]
    widths = [name_width * 1.1 + 2, 8.0, 8.0, *(max(12.0, w * 1.1 + 2) for w in money_widths),
              *([9.0] if job.rate else [])]
    sheet_px = sum(_px(w) for w in widths)
    page_px = int((8.27 - 0.8) * 96)  # A4 portrait less the margins
    scale = max(10, min(100, page_px * 100 // sheet_px))
    sheet = Sheet(SUMMARY_SHEET, PrintSetup(fit_width=False, footer=job.footer), widths=dict(enumerate(widths)),
                  scale=scale)
    cells = sheet.cells

    def money(row: int, col: int, value: int, number: Style, text: Style) -> None:
        big = abs(value) >= EXCEL_EXACT_LIMIT
        cells.append((row, col, f"{value:,}" if big else value, text if big else number))

    def rate(row: int, sums: list[int], style: Style) -> None:
        value = rate_of(sums[job.rate[0]], sums[job.rate[1]]) if job.rate is not None else None
        if value is not None:
            cells.append((row, 3 + n_money, value, style))

    cells += [(0, 0, job.title, "title"), (1, 0, f"產製時間：{job.stamp}", "note")]
    row = 2
    for style, text in job.notes:
        cells.append((row, 0, text, style))
        row += 1
    row += 1
    cells.append((row, 0, "填報概況", "section"))
    for label, value in job.kpis:
        row += 1
        cells += [(row, 0, label, ""), (row, 1, value, "money")]
    row += 2
    cells.append((row, 0, "各主管機關金額（新臺幣元）", "section"))
    row += 1
    cells += [(row, c, title, "header") for c, title in enumerate(headers)]
    header_row = row
    for name, units, done, sums in job.groups:
        row += 1
        cells += [(row, 0, name, ""), (row, 1, units, ""), (row, 2, done, "")]
        for m, value in enumerate(sums):
            money(row, 3 + m, value, "money", "bignum")
        rate(row, sums, "rate")
    last = row
    row += 1
    cells += [(row, 0, "合計", "total_label"), (row, 1, job.totals[0], "total_label"),
              (row, 2, job.totals[1], "total_label")]
    for m, value in enumerate(job.totals[2]):
        money(row, 3 + m, value, "total_money", "total_bignum")
    rate(row, job.totals[2], "total_rate")

    if n_money and job.groups:
        page_high = int((11.69 - 1.4) * 96 * 100 / scale)  # a portrait page, in the sheet's pixels
        high = min(page_high, 120 + 18 * len(job.groups) * min(n_money, MONEY_CHART_SERIES))
        chart_row = row + 2
        # A chart is anchored to the cells under it, which xlsxwriter finds at 7 px a character: as wide as the
        # table in those pixels, it ends at the table's right edge in every program, inside the page.
        sheet.chart = Chart([((header_row, 3 + m), (header_row + 1, 0, last, 0), (header_row + 1, 3 + m, last, 3 + m))
                             for m in range(min(n_money, MONEY_CHART_SERIES))], "各主管機關金額（新臺幣元）",
                            sum(int(w * 7 + 0.5) + 5 for w in widths), high, chart_row)
        if (chart_row * LINE_POINTS + high * 0.75) * scale / 100 > PORTRAIT_POINTS:
            sheet.page_breaks = [chart_row]  # the chart starts a page: never cut across two
    return sheet


def _run(tasks: list[Callable[[], object]], workers: int) -> None:
    """Run the writing tasks, in this order, in `workers` threads."""
    if workers <= 1:
        for task in tasks:
            task()
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for _ in pool.map(lambda task: task(), tasks):
            pass


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
