"""`collect adopt`: read the office's printed form as it is and infer its model (list or grid, totals, furniture).

The form is not restructured: its sheet is analysed as a person reads it. A bordered block with a header of one or
more rows (merged cells give each column a title path) holds either free rows (a list) or rows the form labels
itself (a grid, whose input cells become named cells). Rows and columns whose words say 合計/小計/總計 are totals;
everything outside the block (titles, 單位： lines, notes, signature lines) is furniture. The result is a plan that
`write_collection` turns into templates_xlsx/<id>.xlsx (the same workbook plus defined names) and rules/<id>.py.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

from collect.errors import CollectionError
from collect.forms.budget import product_rules
from collect.forms.sentence import check_cells, form_fields, literal_sentences
from collect.forms.spec import ID_RE, NAME_DATA, NAME_HEADER, NAME_TOTALS
from collect.normalise import is_total_row
from collect.xlsx import book, libreoffice
from collect.xlsx.book import MergedCell, Workbook, Worksheet
from collect.xlsx.book import column_letter as get_column_letter
from collect.xlsx.cells import Merges, bordered, clean, is_unit_only, joined, label_path, title_path, unit_of
from collect.xlsx.trim import trim_columns

TOTAL_WORDS = ("合計", "小計", "總計", "總額", "共計")
ORDINAL_TITLES = {"項次", "編號", "序號", "序", "No", "No.", "NO"}
REMARK_WORDS = ("備註", "說明", "附註")
OPTIONAL_WORDS = ("ifapplicable", "optional", "如有", "選填", "(若有)")  # a title that says it may stay blank
DATE_WORDS = ("日期", "年月日")
RATE_WORDS = ("百分比", "比率", "%", "％", "率")
MONEY_WORDS = ("金額", "經費", "預算", "決算", "支出", "收入", "經常門", "資本門", "補助款", "費用", "價")
MONEY_UNITS = {"元", "千元", "萬元", "新臺幣元"}
COUNT_WORDS = ("人數", "數量", "校數", "班數", "件數", "次數", "車數", "數")
COUNT_UNITS = {"人", "班", "校", "座", "次", "件", "輛", "台", "間", "所", "戶", "位", "名", "家", "張", "個"}
MEASURE_UNITS = {"km", "公里", "c.c.", "cc", "公尺", "m", "平方公尺", "公斤", "kg", "小時"}
CODE_WORDS = ("代號", "代碼", "編號", "統一編號")
# A title that names a source, a name, a kind or a place is text, whatever money word it holds (經費來源, 計畫名稱);
# so is a category (國別, 性別, 班別, 群別), whatever unit the sheet states.
TEXT_ENDINGS = ("來源", "名稱", "單位", "類別", "類型", "方式", "狀況", "地點", "對象", "內容", "事由", "用途", "別")
MAX_HEADER_ROWS = 8
FREE_ROWS = 200  # the free rows of a list whose form draws only its header
# a row of the bordered area that starts with one of these is a notes block or a signature line: furniture, and the
# table's rows end above it (附註, 填表說明, 資料來源; 承辦人, 主任, 校長, 機關長官)
NOTE_STARTS = ("附註", "註：", "註:", "說明", "填表說明", "資料來源", "備考", "Note", "Notes")
SIGNATURE_WORDS = ("承辦人", "填表人", "審核", "主任", "校長", "局長", "處長", "機關長官", "主辦", "會計", "覆核",
                   "核章", "簽章", "首長")


@dataclass
class Input:
    """One thing an agency fills or the form computes: a list column, or a grid's or a field's cell."""

    key: str
    title: str  # the title path, joined with " › "
    ref: str  # list: the column's data range, e.g. E7:E23; cell: its cell (or merged range), e.g. E8:E9
    kind: str  # whole, decimal, date, text, choice, code, total
    money: bool = False
    required: bool = False
    ordinal: bool = False
    ge: float | None = None
    choices: tuple[str, ...] = ()
    of: tuple[str, ...] | None = None  # a total: the keys it adds up; () when adopt could not tell
    unit: str | None = None
    cell: str | None = None  # a cell form's own cell (anchor), None in a list
    max_length: int | None = None  # a text's limit: a text-length validation with its prompt (必填，最多 N 個字)
    unsure: list[str] = field(default_factory=list)


@dataclass
class Plan:
    """What adopt inferred from one form."""

    sheet: str
    shape: str  # "list" or "cells" (a grid: every input is a named cell)
    header: tuple[int, int]  # first and last header row
    columns: tuple[int, int]  # first and last column of the table
    data: tuple[int, int]  # first and last data row (a list's free rows; a grid's labelled rows)
    totals: tuple[int, ...]  # total rows (excluded from data)
    labels: tuple[int, int] | None  # a grid's label columns
    inputs: list[Input]
    unit_cells: dict[str, str] = field(default_factory=dict)  # input cell -> unit text printed in it (moved out)
    sheet_unit: tuple[str, ...] = ()  # the units a 單位：人 line above the table states for every number in it
    notes: list[str] = field(default_factory=list)
    sentences: dict[str, str] = field(default_factory=dict)  # a field cell -> its template (Meta.sentences)
    products: list[tuple[str, str, str, str]] = field(default_factory=list)  # budget rows: 單價×數量=金額 rules

    @property
    def unsure(self) -> list[str]:
        return [*self.notes, *(f"{i.ref}「{i.title}」：{u}" for i in self.inputs for u in i.unsure)]


# -- reading the office's file ----------------------------------------------------------------------------------------
def as_xlsx(path: Path, work: Path) -> Path:
    """The form as .xlsx: an .xlsx as it is; .xls, .ods (and .xlsm) converted once with LibreOffice."""
    if not path.is_file():
        raise CollectionError(f"{path} does not exist.", "Give the path of the office's form (.xlsx, .xls or .ods).")
    suffix = path.suffix.lower()
    if suffix == ".xlsx":
        return path
    if suffix not in (".xls", ".ods", ".xlsm", ".xlsb"):
        raise CollectionError(f"{path.name} is not a spreadsheet collect can adopt.",
                              "Save the form as .xlsx, .xls or .ods.")
    if libreoffice.binary() is None:
        raise CollectionError(f"{path.name} must be converted to .xlsx, and LibreOffice is not installed.",
                              "Install it (Debian: apt-get install libreoffice-calc-nogui), or save the form as "
                              ".xlsx in Excel and adopt that.")
    source = work / f"form{suffix}"  # a plain name: LibreOffice's output takes the input's stem
    shutil.copyfile(path, source)
    libreoffice.convert([source], "xlsx", work, seconds=120, profile=work / "lo-profile")
    out = work / "form.xlsx"
    if not out.is_file():
        raise CollectionError(f"LibreOffice did not convert {path.name} to .xlsx.",
                              "Open the form, save it as .xlsx, and adopt that.")
    return out


def pick_sheet(wb: Workbook, name: str | None = None) -> Worksheet:
    """The sheet named, else the one with the most bordered cells (a form's table is drawn with borders)."""
    if name is not None:
        if name not in wb.sheetnames:
            raise CollectionError(f"The form has no sheet {name!r}.", f"Its sheets: {', '.join(wb.sheetnames)}.")
        return wb[name]
    scored = [(_score(ws), -i, ws) for i, ws in enumerate(wb.worksheets) if ws.sheet_state == "visible"]
    best = max(scored, key=lambda t: (t[0], t[1]), default=(0, 0, None))
    if best[0] == 0:  # no borders anywhere (an upload format): the first sheet with a row of column titles
        best = next(((1, 0, ws) for ws in wb.worksheets if ws.sheet_state == "visible"
                     and _unbordered_header(ws, Merges.of(ws))), best)
    if best[0] == 0 or best[2] is None:
        raise CollectionError("No sheet of the form has a table drawn with borders.",
                              "Draw the table's grid lines (borders) in Excel, or name the sheet with --sheet.")
    return best[2]


@lru_cache(maxsize=64)
def _bordered_cells(ws: Worksheet) -> tuple[tuple[int, int], ...]:
    """(row, column) of every bordered cell of the sheet, found once per sheet."""
    return tuple((c.row, c.column) for row in ws.iter_rows() for c in row
                 if c.row is not None and c.column is not None and bordered(c))


def _score(ws: Worksheet) -> int:
    """How much of a form a sheet is: its bordered cells, and five for each cell a dropdown or limit is set on (an
    input place); a lookup list (one column of choices) scores its cells only."""
    cells = len(_bordered_cells(ws))
    validated = 0
    for dv in ws.data_validations.dataValidation:
        for rng in dv.sqref.ranges:
            c1, r1, c2, r2 = rng.bounds
            validated += min((c2 - c1 + 1) * (r2 - r1 + 1), 10_000)
    return cells + 5 * validated


# -- the analysis ----------------------------------------------------------------------------------------------------
def analyse(ws: Worksheet) -> Plan:
    """Infer the form's table, header, shape, inputs, totals and furniture from the sheet as printed."""
    merges = Merges.of(ws)
    notes: list[str] = []
    block = _table_block(ws, merges) or _unbordered_header(ws, merges)
    if block is None:
        raise CollectionError(f"The sheet {ws.title!r} has no table drawn with borders, nor a row of column "
                              "titles.", "Draw the table's grid lines (borders), then adopt the form again.")
    drawn, bottom, c1, c2 = block
    top = _header_top(ws, merges, drawn, bottom, c1, c2)
    h2 = _header_bottom(ws, merges, top, bottom, c1, c2)
    if h2 >= bottom:  # only the header is drawn (an upload format): the rows under it are the list's free rows
        bottom = h2 + FREE_ROWS
        notes.append(f"{get_column_letter(c1)}{h2 + 1}:{get_column_letter(c2)}{bottom}：表格只畫了標題列，其下 "
                     f"{FREE_ROWS} 列設為填寫列（可在規則檔改 max_rows）")
    bottom = _body_end(ws, merges, h2, bottom, c1, c2)
    start = h2 + 1
    while start < bottom and _instruction_row(ws, merges, start, c1, c2):
        start += 1  # instruction rows under the header (what each column wants): furniture, not data
    second = _second_table(ws, merges, start, bottom, c1, c2)
    if second is not None:  # free rows, then another table drawn in the same borders (公務統計 表-6)
        first_text = next((t for c in range(c1, c2 + 1) if (t := clean(ws.cell(*merges.top(second, c)).value))), "")
        notes.append(f"{get_column_letter(c1)}{second}:{get_column_letter(c2)}{bottom}：同一框線內的第二個表"
                     f"（「{first_text[:20]}」起）未納入本收集，保留為印好的內容，不收填寫值；要收集它，請把它另存"
                     f"為一個工作表再採用")
        bottom = second - 1
    body = range(start, bottom + 1)
    if not body:
        raise CollectionError(f"The table on {ws.title!r} ({get_column_letter(c1)}{top}:{get_column_letter(c2)}"
                              f"{bottom}) has a header but no rows below it.",
                              "Give the form at least one empty row under its header.")
    totals = tuple(r for r in body if _is_total_label_row(ws, merges, r, c1, c2))
    label_cols = _label_columns(ws, merges, body, totals, c1, c2)
    last_data = bottom if label_cols else max((r for r in body if r not in totals), default=start)
    plan = Plan(sheet=ws.title, shape="cells" if label_cols else "list", header=(top, h2), columns=(c1, c2),
                data=(start, last_data), totals=totals, labels=label_cols, inputs=[],
                sheet_unit=_sheet_unit(ws, top, c1, c2))
    plan.notes.extend(notes)
    plan.inputs = _grid_cells(ws, merges, plan) if label_cols else _list_columns(ws, merges, plan)
    if plan.shape == "cells":  # inputs in sentences (「全校班級數：＿＿班」, □是 □否), budget tables (單價, 數量, 金額)
        # from the drawn table's top: a line of fields inside it above the header (全校班級數：＿班) too
        extra = form_fields(ws, merges, (drawn, plan.data[1]), plan.columns)
        plan.inputs = [i for i in plan.inputs if i.cell not in extra.cells] + [Input(**a) for a in extra.inputs]
        plan.sentences, plan.products = extra.sentences, extra.products
        check_cells(plan.inputs)  # a 「V選」 cell: a choice of one mark
    _break_cycles(plan.inputs)
    if not any(i.kind != "total" for i in plan.inputs):
        area = f"{get_column_letter(c1)}{plan.data[0]}:{get_column_letter(c2)}{plan.data[1]}"
        printed = [f"{ws.cell(r, c).coordinate}「{clean(ws.cell(r, c).value)[:20]}」" for r in range(*plan.data)
                   for c in range(c1, c2 + 1) if clean(ws.cell(r, c).value) and not merges.is_covered(r, c)][:3]
        raise CollectionError(f"The table on {ws.title!r} (rows {area}) has no cell for an agency to fill: every "
                              f"cell under its header is a label, a total or printed text"
                              + (f" ({', '.join(printed)})" if printed else "") + ".",
                              "Leave the cells the agency fills empty (or with only a unit such as (人)), or name "
                              "the sheet that holds the form with --sheet.")
    return plan


def left_out(wb: Workbook, ws: Worksheet, plan: Plan) -> list[str]:
    """What the collection does not take in, said with its cells: the tables of the other sheets and a second table
    on the form's sheet (a collection holds one table; adopt another with --sheet, or as a collection of its own)."""
    out = []
    for other in wb.worksheets:
        if other is ws or other.sheet_state != "visible":
            continue
        merges = Merges.of(other)
        block = _table_block(other, merges) or _unbordered_header(other, merges)
        if (block is not None and block[1] > block[0]) or (block is not None and _unbordered_header(other, merges)):
            top, bottom, c1, c2 = block
            out.append(f"工作表「{other.title}」的表（{get_column_letter(c1)}{top}:{get_column_letter(c2)}{bottom}）"
                       f"未納入本收集，保留為說明；要收集它，另以 --sheet \"{other.title}\" 採用為一個收集")
    merges = Merges.of(ws)
    for top, bottom, c1, c2 in _bordered_runs(ws, merges):
        if bottom - top >= 2 and (bottom < plan.header[0] or top > plan.data[1] + len(plan.totals) + 1):
            out.append(f"{get_column_letter(c1)}{top}:{get_column_letter(c2)}{bottom}：同一工作表上的另一個表未納入"
                       f"本收集，保留為印好的內容（不收填寫值）")
    return out


def _unbordered_header(ws: Worksheet, merges: Merges) -> tuple[int, int, int, int] | None:
    """A table drawn without borders (HMRC's, an upload format): the first row of three or more column titles side
    by side with nothing but titles, examples or blanks under it; (row, row, first col, last col)."""
    best: tuple[int, int, int, int] | None = None
    for row in ws.iter_rows(max_row=60):
        cols = [c.column for c in row if isinstance(c.value, str) and clean(c.value) and c.column is not None
                and _one_column(merges, c.row or 0, c.column)]
        if len(cols) >= 3 and max(cols) - min(cols) + 1 <= 2 * len(cols):
            r = row[0].row or 0
            if best is None or len(cols) > best[3] - best[2] + 1:
                best = (r, r, min(cols), max(cols))
    return best


def _one_column(merges: Merges, r: int, c: int) -> bool:
    """True for a cell of its own or the anchor of a range merged down one column (not a line merged across)."""
    r1, c1, _, c2 = merges.extent.get(merges.top(r, c), (r, c, r, c))
    return (r1, c1) == (r, c) and c1 == c2


def _break_cycles(inputs: list[Input]) -> None:
    """A total that would add itself up (through other totals) is not guessed: it is left for the office to say."""
    of = {i.key: i.of or () for i in inputs if i.kind == "total"}

    def reaches(start: str) -> bool:
        seen: set[str] = set()
        todo = list(of.get(start, ()))
        while todo:
            k = todo.pop()
            if k == start:
                return True
            if k not in seen:
                seen.add(k)
                todo.extend(of.get(k, ()))
        return False

    guessed_first = sorted((i for i in inputs if i.kind == "total"), key=lambda i: not i.unsure)
    for i in guessed_first:
        if i.of and reaches(i.key):
            i.of = ()
            of[i.key] = ()
            i.unsure = ["合計格無法判斷由哪些格加總：鎖定留白，由本處計算（可在規則檔寫 of=[...]）"]


def _table_block(ws: Worksheet, merges: Merges) -> tuple[int, int, int, int] | None:
    """(top, bottom, first col, last col) of the largest run of rows with two or more bordered cells."""
    runs = _bordered_runs(ws, merges)
    return max(runs, key=lambda t: t[1] - t[0]) if runs else None


def _bordered_runs(ws: Worksheet, merges: Merges) -> list[tuple[int, int, int, int]]:
    """Each run of consecutive rows with two or more bordered cells: (top, bottom, first col, last col)."""
    rows: dict[int, list[int]] = {}
    anchors: dict[int, set[tuple[int, int]]] = {}
    for r, c in _bordered_cells(ws):
        rows.setdefault(r, []).append(c)
        anchors.setdefault(r, set()).add(merges.top(r, c))
    # a row of the table has two or more bordered cells that are not one merged range (a boxed title line is not)
    rows = {r: cols for r, cols in rows.items() if len(anchors[r]) >= 2}
    runs: list[tuple[int, int]] = []
    start = prev = None
    for r in sorted(rows):
        if start is None or prev is None or r != prev + 1:
            if start is not None and prev is not None:
                runs.append((start, prev))
            start = r
        prev = r
    if start is not None and prev is not None:
        runs.append((start, prev))
    out = []
    for top, bottom in runs:
        cols = [c for r in range(top, bottom + 1) for c in rows.get(r, [])]
        out.append((top, bottom, min(cols), max(cols)))
    return out


def _texts_across(ws: Worksheet, merges: Merges, r: int, c1: int, c2: int) -> tuple[int, int]:
    """(columns whose cell, or the merged range over it, holds a printed text; distinct such ranges) on row r."""
    n, anchors = 0, set()
    for c in range(c1, c2 + 1):
        anchor = merges.top(r, c)
        value = ws.cell(*anchor).value
        if isinstance(value, str) and clean(value) and not value.startswith("=") and not _is_prompt(clean(value)):
            n += 1
            anchors.add(anchor)
    return n, len(anchors)


def _is_prompt(text: str) -> bool:
    """A field's printed prompt, not a title: 校名：, 校名：<校名>, <學年度>學年度 第<學期>學期, 填表日期：＿＿."""
    return bool(re.match(r"^[^:：]{1,10}[:：]", text)) or ("<" in text and ">" in text) or "＿" in text or \
        "__" in text


def _header_top(ws: Worksheet, merges: Merges, top: int, bottom: int, c1: int, c2: int) -> int:
    """The header's first row: the bordered area's first row, unless it starts with a title block (a 表號／編製機關
    box, a title merged across the table, a line of fields): then the first row, below those, whose titles run
    across the table (half its columns or more, in two or more cells)."""
    width = c2 - c1 + 1

    def across(r: int) -> bool:
        n, distinct = _texts_across(ws, merges, r, c1, c2)
        return n * 2 >= width and distinct >= 2

    if across(top):
        return top
    for r in range(top + 1, min(bottom, top + 2 * MAX_HEADER_ROWS)):
        if across(r):
            return r
    return top


def _second_table(ws: Worksheet, merges: Merges, start: int, bottom: int, c1: int, c2: int) -> int | None:
    """The first row of a second table under a list's free rows (two or more empty rows, then printed titles), or
    None: a grid's rows carry their labels from the first, so a grid is never cut."""
    empty = 0
    for r in range(start, bottom + 1):
        if _is_total_label_row(ws, merges, r, c1, c2):
            continue
        n, distinct = _texts_across(ws, merges, r, c1, c2)
        if n == 0:
            empty += 1
            continue
        return r if empty >= 2 and distinct >= 2 else None
    return None


def _sheet_unit(ws: Worksheet, top: int, c1: int, c2: int) -> tuple[str, ...]:
    """The units a 單位：人 (單位：班、人; 單位：新臺幣元) line above the table states, or ()."""
    for row in ws.iter_rows(min_row=1, max_row=top, min_col=c1, max_col=c2 + 2):
        for c in row:
            m = re.search(r"單位[:：]\s*(\S+)", clean(c.value).replace("：", ":")) if isinstance(c.value, str) else None
            if m:
                return tuple(u for u in re.split(r"[、,，/及與]", m.group(1)) if u)
    return ()


def _starts_notes(ws: Worksheet, merges: Merges, r: int, c1: int, c2: int) -> bool:
    first = next((t for c in range(c1, c2 + 1) if (t := clean(ws.cell(*merges.top(r, c)).value))), "")
    return first.startswith(NOTE_STARTS) or any(first.startswith(w) for w in SIGNATURE_WORDS)


def _body_end(ws: Worksheet, merges: Merges, h2: int, bottom: int, c1: int, c2: int) -> int:
    """The table's last row: the bordered area's, or the row above a notes block or signature line drawn inside it."""
    for r in range(h2 + 2, bottom + 1):
        if _starts_notes(ws, merges, r, c1, c2):
            return r - 1
    return bottom


def _header_bottom(ws: Worksheet, merges: Merges, top: int, bottom: int, c1: int, c2: int) -> int:
    """The header's last row: the first row, extended over every merged range that starts within it."""
    h2 = top
    changed = True
    while changed:
        changed = False
        for c in range(c1, c2 + 1):
            for r in range(top, h2 + 1):
                b = merges.bottom(r, c)
                if merges.top(r, c)[0] >= top and b > h2 and b < bottom and b - top < MAX_HEADER_ROWS:
                    h2, changed = b, True
    # a row of units or leaf titles under a one-row header (e.g. 金額 over (元)) belongs to the header when the
    # rows below it are empty
    while h2 + 1 < bottom and _units_row(ws, merges, h2 + 1, c1, c2):
        h2 += 1
    # a leaf row of titles under the merged ones (經常門／資本門／合計, 男／女／計): every column titled, none a total
    while h2 + 1 < bottom and h2 + 1 - top < MAX_HEADER_ROWS and _titles_row(ws, merges, h2 + 1, c1, c2):
        h2 += 1
    return h2


def _instruction_row(ws: Worksheet, merges: Merges, r: int, c1: int, c2: int) -> bool:
    """A row of sentences under the header, one per column (what to type there), e.g. CMS's and HMRC's templates."""
    texts = [clean(ws.cell(r, c).value) for c in range(c1, c2 + 1) if not merges.is_covered(r, c)
             and isinstance(ws.cell(r, c).value, str) and not str(ws.cell(r, c).value).startswith("=")]
    texts = [t for t in texts if t]
    return len(texts) * 2 >= (c2 - c1 + 1) and len(texts) >= 2 and sum(map(len, texts)) >= 25 * len(texts)


def _titles_row(ws: Worksheet, merges: Merges, r: int, c1: int, c2: int) -> bool:
    n, distinct = _texts_across(ws, merges, r, c1, c2)
    return n == c2 - c1 + 1 and distinct >= 2 and not _is_total_label_row(ws, merges, r, c1, c2) and \
        not _instruction_row(ws, merges, r, c1, c2)


def _units_row(ws: Worksheet, merges: Merges, r: int, c1: int, c2: int) -> bool:
    texts = [clean(ws.cell(r, c).value) for c in range(c1, c2 + 1) if not merges.is_covered(r, c)]
    texts = [t for t in texts if t]
    return bool(texts) and all(is_unit_only(t) for t in texts) and not any(
        clean(ws.cell(r + 1, c).value) for c in range(c1, c2 + 1))


def _is_total_label_row(ws: Worksheet, merges: Merges, r: int, c1: int, c2: int) -> bool:
    first = next((t for c in range(c1, c2 + 1) if (t := clean(ws.cell(*merges.top(r, c)).value))), "")
    return is_total_row(first)


def _label_columns(ws: Worksheet, merges: Merges, body: range, totals: tuple[int, ...], c1: int,
                   c2: int) -> tuple[int, int] | None:
    """A grid's label columns (left of the inputs, holding text in the body rows), or None for a list."""
    rows = [r for r in body if r not in totals]
    last = None
    for c in range(c1, c2 + 1):
        texts = [shown_ for r in rows if (shown_ := clean(ws.cell(*merges.top(r, c)).value))]
        labels = [t for t in texts if not is_unit_only(t)]
        if len(labels) >= max(2, len(rows) // 3):
            last = c
        else:
            break
    return (c1, last) if last is not None else None


def _header_paths(ws: Worksheet, merges: Merges, plan: Plan, cols: range) -> dict[int, tuple[str, ...]]:
    rows = range(plan.header[0], plan.header[1] + 1)
    return {c: title_path(ws, merges, rows, c) for c in cols}


def _common_prefix(paths: Sequence[tuple[str, ...]]) -> int:
    if len(paths) < 2:
        return 0
    n = 0
    for parts in zip(*paths, strict=False):
        if len(set(parts)) != 1:
            break
        n += 1
    return min(n, min(len(p) for p in paths) - 1)


def _kind(path: tuple[str, ...], unit: str | None, number_format: str, choices: tuple[str, ...],
          sheet_unit: tuple[str, ...] = ()) -> dict[str, Any]:
    """The kind of an input from its title path's words, its unit, its cell's number format and dropdown."""
    words = "".join(path)
    leaf = path[-1] if path else ""
    unsure: list[str] = []
    if choices:
        return dict(kind="choice", choices=choices, unsure=unsure)
    hint = words.lower()
    if re.search(r"\(yes/no\)|yes/no\)?$", hint):  # a format hint in the title (HMRC's "(yes/no)")
        return dict(kind="choice", choices=("yes", "no"), unsure=unsure)
    if re.search(r"yyyy-mm-dd|dd/mm/yyyy|mm/dd/yyyy|yyyy/mm/dd", hint):
        return dict(kind="date", unsure=unsure)
    if leaf in ORDINAL_TITLES:
        return dict(kind="whole", ordinal=True, ge=0, unsure=unsure)
    if any(w in leaf for w in REMARK_WORDS) or (unit is None and any(leaf.endswith(w) for w in TEXT_ENDINGS)):
        return dict(kind="text", unsure=unsure)
    if any(w in leaf for w in DATE_WORDS) or (re.search(r"[ymde]{2}.*[md]", number_format.lower() or "") and \
            "#" not in number_format):
        return dict(kind="date", unsure=unsure)
    if any(w in words for w in RATE_WORDS) or unit in ("%", "％"):
        unsure.append("比率以小數（0.5）或百分數（50）填寫未定，已設為可含小數的數字")
        return dict(kind="decimal", ge=0, unsure=unsure)
    if unit in MONEY_UNITS or any(w in words for w in MONEY_WORDS):
        return dict(kind="whole", money=True, ge=0, unsure=unsure)
    if unit in COUNT_UNITS or leaf in COUNT_UNITS or any(leaf.endswith(w) for w in COUNT_WORDS):
        return dict(kind="whole", ge=0, unsure=unsure)
    if unit is not None and unit.lower() in MEASURE_UNITS:
        return dict(kind="decimal", ge=0, unsure=unsure)
    if any(leaf.endswith(w) for w in CODE_WORDS):
        return dict(kind="code", unsure=unsure)
    if sheet_unit and all(u in COUNT_UNITS for u in sheet_unit):
        return dict(kind="whole", ge=0, unsure=unsure)
    if sheet_unit and all(u in MONEY_UNITS for u in sheet_unit):
        return dict(kind="whole", money=True, ge=0, unsure=unsure)
    if "#" in number_format or number_format in ("0", "0.00"):
        unsure.append("依儲存格數字格式判為數字")
        return dict(kind="decimal", unsure=unsure)
    if not unit:
        unsure.append("標題未說明種類，設為文字")
    return dict(kind="text", unsure=unsure)


def _choices(ws: Worksheet, ref: str) -> tuple[str, ...]:
    """The dropdown's choices at a cell: listed in the validation, or fed from a range of another sheet (a hidden
    list sheet, a defined name), as CMS's and DfE's templates do."""
    for dv in ws.data_validations.dataValidation:
        if dv.type == "list" and dv.formula1 and ref in dv.sqref:
            if dv.formula1.startswith('"'):
                return tuple(x.strip() for x in dv.formula1.strip('"').split(",") if x.strip())
            return _range_values(ws, dv.formula1.lstrip("="))
    return ()


def _range_values(ws: Worksheet, source: str) -> tuple[str, ...]:
    wb = ws.parent
    if wb is None:
        return ()
    if source in wb.defined_names:
        dests = list(wb.defined_names[source].destinations)
        if len(dests) != 1:
            return ()
        sheet, ref = dests[0]
    elif "!" in source:
        sheet, ref = source.rsplit("!", 1)
        sheet = sheet.strip("'").replace("''", "'")
    else:
        sheet, ref = ws.title, source
    if sheet not in wb.sheetnames:
        return ()
    try:
        cells = wb[sheet][ref.replace("$", "")]
    except (ValueError, KeyError):
        return ()
    rows = cells if isinstance(cells, tuple) else ((cells,),)
    values = [c.value for row in rows for c in (row if isinstance(row, tuple) else (row,))]
    return tuple(str(v).strip() for v in values if v is not None and str(v).strip())[:200]


def _is_total_path(path: tuple[str, ...]) -> bool:
    return any(_is_total_word(p) for p in path)


def _total_sources(paths: dict[int, tuple[str, ...]], col: int, candidates: Sequence[int]) -> tuple[int, ...] | None:
    """The columns a total column adds up, or None when it cannot be told.

    A total leaf (教育部核定金額 › 經常門, 資本門, 合計) adds the columns left of it under the same parent; a total
    group (國民中學 › 校, 國民小學 › 校, 小計 › 校) adds the same leaf under the sibling groups left of it."""
    path = paths[col]
    if any(w in "".join(path) for w in RATE_WORDS):
        return None  # a total of rates is not a sum
    leaf_total = _is_total_word(path[-1])
    group = next((i for i, p in enumerate(path[:-1]) if _is_total_word(p)), None)
    if leaf_total:
        parent = path[:-1]
        found = [c for c in candidates if c < col and paths[c][:-1] == parent and not _is_total_path(paths[c])]
        if len(found) < 2 and len(parent) >= 1:  # 計 beside 男／女 (left or right), under a total group or not
            found = [c for c in candidates if c != col and paths[c][:-1] == parent and not _is_total_word(paths[c][-1])]
    elif group is not None:
        parent, leaf = path[:group], path[-1]

        def sibling(c: int) -> bool:
            return (paths[c][: len(parent)] == parent and paths[c][-1] == leaf and len(paths[c]) == len(path)
                    and not _is_total_path(paths[c]))

        found = [c for c in candidates if c < col and sibling(c)]
        if len(found) < 2:  # a 總計 group printed first: the same leaf under the groups right of it
            found = [c for c in candidates if c > col and sibling(c)]
    else:
        return None
    return tuple(found) if len(found) >= 2 else None


def _is_total_word(title: str) -> bool:
    return any(w in title for w in TOTAL_WORDS) or title in ("計", "合", "Total", "TOTAL", "total")


def _key(letter: str, row: int | None = None) -> str:
    return f"{letter.lower()}{row}" if row is not None else f"col_{letter.lower()}"


def _list_columns(ws: Worksheet, merges: Merges, plan: Plan) -> list[Input]:
    c1, c2 = plan.columns
    paths = _header_paths(ws, merges, plan, range(c1, c2 + 1))
    cols = [c for c in range(c1, c2 + 1) if paths[c] and merges.starts_column(plan.header[1], c)]
    cut = _common_prefix([paths[c] for c in cols]) if len(cols) > 2 else 0
    first, last = plan.data
    out: list[Input] = []
    for c in cols:
        letter = get_column_letter(c)
        path = paths[c]
        unit = unit_of(path[-1]) or next((unit_of(p) for p in reversed(path) if unit_of(p)), None)
        sample = ws.cell(first, c)
        info = _kind(path, unit, sample.number_format or "", _choices(ws, sample.coordinate), plan.sheet_unit)
        title = joined(path[cut:])
        inp = Input(_key(letter), title, f"{letter}{first}:{letter}{last}", unit=unit, **info)
        inp.required = inp.kind != "total" and not inp.ordinal and not any(w in path[-1] for w in REMARK_WORDS) \
            and not any(w in path[-1].lower() for w in OPTIONAL_WORDS)
        out.append(inp)
    by_col = {c: i for c, i in zip(cols, out, strict=True)}
    for c, inp in by_col.items():
        if _is_total_path(paths[c]):
            src = _total_sources(paths, c, cols)
            inp.kind, inp.required, inp.choices = "total", False, ()
            inp.of = tuple(by_col[s].key for s in src) if src else ()
            inp.money = inp.money or any(by_col[s].money for s in src or ())
            inp.unsure = [] if src else ["合計欄無法判斷由哪些欄加總：鎖定留白，由本處計算（可在規則檔寫 of=[...]）"]
    return out


def _grid_cells(ws: Worksheet, merges: Merges, plan: Plan) -> list[Input]:
    assert plan.labels is not None
    l1, l2 = plan.labels
    c1, c2 = plan.columns
    first, last = plan.data
    paths = _header_paths(ws, merges, plan, range(c1, c2 + 1))
    input_cols = [c for c in range(l2 + 1, c2 + 1) if paths[c] and merges.starts_column(plan.header[1], c)]
    cut = _common_prefix([paths[c] for c in input_cols]) if len(input_cols) > 2 else 0
    rows = [r for r in range(first, last + 1)]
    label_cols = range(l1, l2 + 1)
    out: list[Input] = []
    by_cell: dict[tuple[int, int], Input] = {}
    computed: set[tuple[int, int]] = set()
    for r in rows:
        for c in input_cols:
            if merges.is_covered(r, c):
                continue
            anchor_ref = merges.ref(r, c)
            bottom_row = merges.bottom(r, c)
            labels = [label_path(ws, merges, rr, label_cols) for rr in range(r, bottom_row + 1)]
            n = _common_prefix(labels) if len(labels) > 1 else len(labels[0])
            row_path = labels[0][: max(n, 1)] if len(labels) > 1 else labels[0]
            col_path = paths[c][cut:]
            letter = get_column_letter(c)
            cell = ws.cell(r, c)
            text = clean(cell.value)
            unit = unit_of(text) if is_unit_only(text) else None
            formula = isinstance(cell.value, str) and cell.value.startswith("=")
            if unit is not None:
                plan.unit_cells[cell.coordinate] = text
            elif formula or (isinstance(cell.value, int | float) and not isinstance(cell.value, bool)):
                pass  # a printed formula is a computed cell; a printed 0 where the agency writes is its prompt
            elif text:
                continue  # a printed text in the input area (e.g. a ✓ the office filled): furniture
            total_row = r in plan.totals
            leaf_unit = unit or unit_of(col_path[-1]) if col_path else unit
            info = _kind(col_path, leaf_unit, cell.number_format or "", _choices(ws, cell.coordinate),
                         plan.sheet_unit)
            title = joined(row_path + col_path)
            inp = Input(_key(letter, r), title, anchor_ref, cell=cell.coordinate, unit=leaf_unit, **info)
            if total_row or _is_total_path(col_path) or any(w in (row_path[-1] if row_path else "")
                                                              for w in TOTAL_WORDS):
                inp.kind = "total"
            elif formula:  # C＝A÷B×100％ as the office printed it: kept, locked, computed by its own formula
                inp.kind, inp.of, inp.required, inp.choices = "total", (), False, ()
                inp.unsure = [f"印好的公式 {str(cell.value)[:40]}：保留為計算格（鎖定）"]
                computed.add((r, c))
            by_cell[(r, c)] = inp
            out.append(inp)
    # what each total adds up
    for (r, c), inp in by_cell.items():
        if inp.kind != "total" or (r, c) in computed:
            continue
        src: list[Input] = []
        row_path = label_path(ws, merges, r, label_cols)
        guess = False
        if r in plan.totals:  # a 總計 row: the column's cells above (totals too, in a total column)
            own_total = _is_total_path(paths[c][cut:])
            src = [by_cell[(rr, c)] for rr in rows if (rr, c) in by_cell and rr not in plan.totals
                   and (own_total or by_cell[(rr, c)].kind != "total")]
        elif _is_total_path(paths[c][cut:]):
            cols = _total_sources(paths, c, input_cols)
            src = [by_cell[(r, cc)] for cc in cols or () if (r, cc) in by_cell]
            if not src:  # 合計 of the rows it spans: the total column left of it, over those rows
                left = [cc for cc in input_cols if cc < c and _is_total_path(paths[cc][cut:])]
                if left:
                    src = [by_cell[(rr, left[-1])] for rr in range(r, merges.bottom(r, c) + 1)
                           if (rr, left[-1]) in by_cell]
                    guess = bool(src)
        elif row_path and any(w in row_path[-1] for w in TOTAL_WORDS):
            parent = row_path[:-1]
            src = [by_cell[(rr, c)] for rr in rows if rr < r and (rr, c) in by_cell
                   and label_path(ws, merges, rr, label_cols)[: len(parent)] == parent
                   and by_cell[(rr, c)].kind != "total"
                   and not any(w in label_path(ws, merges, rr, label_cols)[-1] for w in TOTAL_WORDS)]
            if len(src) < 2:
                src = []
        if src and not any(w in "".join((*row_path[-1:], *paths[c][cut:])) for w in RATE_WORDS):
            inp.of = tuple(s.key for s in src)
            inp.money = any(s.money for s in src)
            inp.unsure = ["依標題與合併範圍推定其加總的格，請確認"] if guess or (
                r not in plan.totals and not _is_total_path(paths[c][cut:])) else []
        else:
            inp.of = ()
            inp.unsure = ["合計格無法判斷由哪些格加總：鎖定留白，由本處計算（可在規則檔寫 of=[...]）"]
        inp.kind, inp.required, inp.choices, inp.ordinal = "total", False, (), False
    return out


# -- writing the collection ----------------------------------------------------------------------------------------
def write_template(source: Path | Workbook, plan: Plan, target: Path) -> None:
    """The form as printed, plus defined names; unit-only texts leave the input cells for their number format, and
    totals whose sources are known get their formulas, so the agency sees them add up. `source`: the form's file,
    or the workbook adopt analysed (loaded once)."""
    wb = book.open_book(source) if isinstance(source, Path) else source
    ws = wb[plan.sheet]
    c1, c2 = plan.columns

    def define(name: str, ref: str) -> None:
        book.define(wb, name, ws, ref)

    for name in list(wb.defined_names):
        if name.upper().startswith("COLLECT_"):
            del wb.defined_names[name]
    first, last = get_column_letter(c1), get_column_letter(c2)
    define(NAME_HEADER, f"{first}{plan.header[0]}:{last}{plan.header[1]}")
    define(NAME_DATA, f"{first}{plan.data[0]}:{last}{plan.data[1]}")
    if plan.totals:
        define(NAME_TOTALS, ",".join(f"{first}{r}:{last}{r}" for r in plan.totals))
    for coordinate, text in plan.unit_cells.items():
        cell = ws[coordinate]
        cell.value = None
        unit = unit_of(text) or ""
        kind = next((i.kind for i in plan.inputs if i.cell == coordinate), "whole")
        cell.number_format = f'#,##0"({unit})"' if kind in ("whole", "total") else f'0.##"({unit})"'
    keys = {i.key: i for i in plan.inputs}
    for inp in plan.inputs:
        if inp.kind != "total" or not inp.of or inp.cell in plan.sentences:
            continue  # a total inside a sentence field is typed there (and checked on return)
        if plan.shape == "cells" and inp.cell:
            _put(ws, inp.cell, _sum_formula(",".join(str(keys[k].cell) for k in inp.of if keys[k].cell)))
        else:
            letter = inp.ref.split(":")[0].rstrip("0123456789")
            for r in range(plan.data[0], plan.data[1] + 1):
                _put(ws, f"{letter}{r}", _sum_formula(
                    ",".join(f"{keys[k].ref.split(':')[0].rstrip('0123456789')}{r}" for k in inp.of)))
    if plan.shape == "list":
        rows = [r for r in range(plan.data[0], plan.data[1] + 1) if r not in plan.totals]
        for r in plan.totals:  # the total row adds up each number column (a 總計 row printed above the rows too)
            for inp in plan.inputs:
                if inp.kind in ("whole", "decimal", "total") and not inp.ordinal and rows:
                    letter = inp.ref.split(":")[0].rstrip("0123456789")
                    _put(ws, f"{letter}{r}", _sum_formula(f"{letter}{rows[0]}:{letter}{rows[-1]}"))
    target.parent.mkdir(parents=True, exist_ok=True)
    wb.save(target)


def _put(ws: Worksheet, ref: str, formula: str) -> None:
    """A formula into a cell of the form; a cell inside a merged range (a label merged over the row) keeps it."""
    cell = ws[ref]
    if not isinstance(cell, MergedCell):
        cell.value = formula


def _text_limit(i: Input) -> int:
    """A text input's limit: a code is short, a remark long, any other text a line or two."""
    if i.kind == "code":
        return 20
    return 200 if any(w in i.title.rsplit(" › ", 1)[-1] for w in REMARK_WORDS) else 100


def _sum_formula(refs: str) -> str:
    """A total that stays blank until one of its sources is typed, so an empty form shows no column of 0."""
    return f'=IF(COUNT({refs})=0,"",SUM({refs}))'


def _q(value: Any) -> str:
    """A Python literal in the house style (double quotes), Chinese kept readable."""
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_q(v) for v in value) + "]"
    return repr(value)


def rules_text(plan: Plan, cid: str, title: str, source_name: str, scope: str, period: str) -> str:
    """rules/<id>.py: a pandera model, one readable line per column (a list) or per cell (a grid)."""
    lines = [
        f'"""{title} ({cid}): adopted from {source_name} by `collect adopt` on {date.today().isoformat()}.',
        "",
        "Each line is one input of the form: its title path, kind and checks. Correct a guess by editing one word;",
        "add row rules (@row_rule) and table rules (@table_rule) as for any collection (docs/forms.md).",
        '"""',
        "",
        "import pandas as pd",
        "import pandera.pandas as pa",
        "from pandera.typing import Series",
        "",
        "from collect.forms.spec import Meta, column" + (", row_rule" if plan.products else ""),
        "",
        "META = Meta(",
        f"    title={_q(title)},",
        f"    scope={_q(scope)},",
        f"    period={_q(period)},",
        f"    sheet={_q(plan.sheet)},",
        f"    shape={_q(plan.shape)},",
        f"    max_rows={plan.data[1] - plan.data[0] + 1},",
        *literal_sentences(plan.sentences),
        ")",
        "",
        "",
        f"class {''.join(p.title() for p in cid.split('_'))}(pa.DataFrameModel):",
    ]
    dtype = {"whole": "pd.Int64Dtype", "total": "pd.Int64Dtype", "decimal": "float", "date": "pd.Timestamp"}
    for i in plan.inputs:
        args = [_q(i.title), f"kind={_q(i.kind)}"]
        if i.kind == "total":
            args.append(f"of={_q(list(i.of or ()))}")
            if i.money:
                args.append("money=True")
        else:
            args.append(f"required={i.required}")
            if i.money:
                args.append("money=True")
            if i.ordinal:
                args.append("ordinal=True")
            if i.ge is not None:
                args.append(f"ge={i.ge:g}")
            if i.choices:
                args.append(f"isin={_q(list(i.choices))}")
            if i.kind in ("text", "code"):
                args.append(f"max_length={i.max_length or _text_limit(i)}")
        if i.cell:
            args.append(f"cell={_q(i.cell)}")
        t = "str" if i.kind in ("text", "choice", "code") else dtype.get(i.kind, "str")
        if i.kind == "total" and not i.money and any(
                k.kind == "decimal" for k in plan.inputs if k.key in (i.of or ())):
            t = "float"
        note = f"  # {i.ref}" + (f"; 單位 {i.unit}" if i.unit else "") + ("; 待確認" if i.unsure else "")
        lines.append(f"    {i.key}: Series[{t}] = column({', '.join(args)}){note}")
    lines += product_rules(plan.products)
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Adopted:
    cid: str
    plan: Plan
    template: Path
    rules: Path


def adopt(form: Path, cid: str, rules_dir: Path, templates_dir: Path, *, title: str | None = None,
          scope: str = "public", period: str = "any", sheet: str | None = None, force: bool = False) -> Adopted:
    """Adopt the office's form: write templates_xlsx/<cid>.xlsx and rules/<cid>.py; return what was inferred."""
    if not ID_RE.match(cid):
        raise CollectionError(f"{cid!r} is not a collection id.",
                              "Use lower-case letters, digits and _ starting with a letter, e.g. edu_grid.")
    template, rules = templates_dir / f"{cid}.xlsx", rules_dir / f"{cid}.py"
    if not force and (template.exists() or rules.exists()):
        raise CollectionError(f"The collection {cid} exists already ({rules}).",
                              "Choose another --id, or pass --force to replace it.")
    with tempfile.TemporaryDirectory(prefix="collect-adopt-") as tmp:
        xlsx = as_xlsx(form, Path(tmp))
        if trim_columns(xlsx, Path(tmp) / "trimmed.xlsx"):
            xlsx = Path(tmp) / "trimmed.xlsx"
        try:
            wb = book.open_book(xlsx)
        except Exception as exc:
            raise CollectionError(f"{form.name} could not be read as a workbook ({exc.__class__.__name__}).",
                                  "Open it in Excel or LibreOffice and save it again.") from None
        ws = pick_sheet(wb, sheet)
        plan = analyse(ws)
        plan.notes.extend(left_out(wb, ws, plan))
        name = title or _title_of(ws, plan) or form.stem
        write_template(wb, plan, template)
        _bordered_cells.cache_clear()  # the cache holds the workbook's sheets
    rules.parent.mkdir(parents=True, exist_ok=True)
    rules.write_text(rules_text(plan, cid, name, form.name, scope, period), encoding="utf-8")
    return Adopted(cid, plan, template, rules)


def _title_of(ws: Worksheet, plan: Plan) -> str:
    """The form's title: the longest text above the table (its 表 number line is shorter)."""
    texts = [clean(c.value) for row in ws.iter_rows(min_row=1, max_row=plan.header[0] - 1) for c in row
             if isinstance(c.value, str)]
    texts = [t for t in texts if not t.endswith("：") and "：" not in t[:6]]
    return max(texts, key=len, default="")[:60]
