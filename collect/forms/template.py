"""Templates: read a template's layout from its defined names, check it against the rules, and write a tidy default."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from collect.errors import CollectionError
from collect.forms.spec import (
    IDENTITY_NAMES,
    NAME_AGENCY_CODE,
    NAME_AGENCY_NAME,
    NAME_DATA,
    NAME_DEADLINE,
    NAME_HEADER,
    NAME_PERIOD,
    NAME_SUPERVISOR,
    NAME_TOTALS,
    Collection,
    ColumnSpec,
    FormField,
    Layout,
)
from collect.xlsx import book
from collect.xlsx.book import (
    Alignment,
    Border,
    Font,
    PatternFill,
    Side,
    Worksheet,
    bounds,
    column_letter,
    define,
    destinations,
)
from collect.xlsx.cells import Merges, clean, joined, title_path
from collect.xlsx.printing import PrintSetup, apply_openpyxl, openpyxl_width
from collect.xlsx.protection import sheet_name
from collect.xlsx.style import MONEY_FORMAT, RATE_FORMAT, ROC_DATE_FORMAT

DATE_FORMAT = ROC_DATE_FORMAT


def layout_problems(path: Path, columns: Sequence[ColumnSpec], fields: Sequence[FormField] = (),
                     shape: str = "list") -> tuple[Layout | None, list[str]]:
    problems: list[str] = []
    if not path.is_file():
        return None, [f"{path}: the template file does not exist (`collect template new` or `collect adopt` "
                      f"writes one)."]
    try:
        wb = book.open_book(path)
    except Exception as exc:
        return None, [f"{path}: not a readable xlsx workbook ({exc.__class__.__name__}: {exc})."]
    names = destinations(wb)
    for name in (NAME_HEADER, NAME_DATA):
        if name not in names:
            problems.append(f"{path}: the defined name {name} (the data table's "
                            f"{'header rows' if name == NAME_HEADER else 'input rows'}) is missing.")
    if NAME_HEADER not in names or NAME_DATA not in names:
        return None, problems
    sheet, header_ref = names[NAME_HEADER]
    data_sheet, data_ref = names[NAME_DATA]
    if sheet not in wb.sheetnames:
        return None, [*problems, f"{path}: {NAME_HEADER} points at a missing sheet {sheet!r}."]
    h_min_col, h_min_row, h_max_col, h_max_row = bounds(header_ref)
    d_min_col, d_min_row, d_max_col, d_max_row = bounds(data_ref)
    if data_sheet != sheet or (d_min_col, d_max_col) != (h_min_col, h_max_col) or d_min_row <= h_max_row:
        problems.append(f"{path}: {NAME_DATA} ({data_sheet}!{data_ref}) must lie below {NAME_HEADER} "
                        f"({sheet}!{header_ref}) on the same sheet and span the same columns.")
    ws = wb[sheet]
    merges = Merges.of(ws)
    header_rows = range(h_min_row, h_max_row + 1)
    total_rows: tuple[int, ...] = ()
    if NAME_TOTALS in names:
        t_sheet, t_ref = names[NAME_TOTALS]
        total_rows = tuple(sorted({r for part in t_ref.split(",") for r in range(bounds(part)[1],
                                                                                  bounds(part)[3] + 1)}))
        if t_sheet != sheet or any(r <= h_max_row for r in total_rows):
            problems.append(f"{path}: {NAME_TOTALS} ({t_sheet}!{t_ref}) must lie below {NAME_HEADER} on the same "
                            f"sheet.")
    letters: dict[str, str] = {}
    cells: dict[str, str] = {}
    if shape == "cells":
        for col in columns:
            if not col.cell:
                problems.append(f"{path}: the field {col.key} ({col.title}) has no cell= (a Meta(shape=\"cells\") "
                                f"collection places every input at its own cell).")
                continue
            try:
                c_col, c_row, _c2, _r2 = bounds(col.cell)
            except ValueError:
                problems.append(f"{path}: the field {col.key} has cell={col.cell!r}, which is not a cell.")
                continue
            # a field may stand above the header too: a line of fields over the table (「全校班級數：＿班」)
            if not (c_row <= d_max_row and d_min_col <= c_col <= d_max_col):
                problems.append(f"{path}: the field {col.key} ({col.cell}) lies below {NAME_DATA} or beside the "
                                f"table's columns ({header_ref}, {data_ref}).")
            elif merges.is_covered(c_row, c_col):
                problems.append(f"{path}: the field {col.key} ({col.cell}) is inside the merged range "
                                f"{merges.ref(c_row, c_col)}; name its first cell.")
            cells[col.key] = col.cell.upper()
    else:
        heads = [c for c in range(h_min_col, h_max_col + 1)
                 if merges.starts_column(h_max_row, c) and title_path(ws, merges, header_rows, c)]
        titles = {c: joined(title_path(ws, merges, header_rows, c)) for c in heads}
        for i, col in enumerate(columns):
            c = heads[i] if i < len(heads) else None
            found = next((h for h in heads if clean(titles[h]) == clean(col.title)), None)
            if found is None:
                problems.append(f"{path}: the field {col.key} ({col.title}) has no column in the header "
                                f"{sheet}!{header_ref}.")
            elif c is None or clean(titles[c]) != clean(col.title):
                letter = column_letter(c) if c else column_letter(h_max_col + 1)
                problems.append(f"{path}: column {letter} of the header should be {col.title!r}, found "
                                f"{titles.get(c, '') if c else ''!r}.")
            if c is not None:
                letters[col.key] = column_letter(c)
        known = {clean(c.title) for c in columns}
        for c in heads:
            if clean(titles[c]) not in known:
                problems.append(f"{path}: the header column {column_letter(c)} ({titles[c]!r}) is not a field "
                                f"of the rules.")
    identity = {n: names[n][1] for n in IDENTITY_NAMES if n in names}
    for n, ref in identity.items():
        if names[n][0] != sheet:
            problems.append(f"{path}: the identity cell {n} must be on the sheet {sheet!r}.")
        if ":" in ref:
            identity[n] = ref.split(":")[0]
        held = ws[identity[n]].value if names[n][0] == sheet else None
        if held is not None and str(held).strip():
            problems.append(f"{path}: the identity cell {n} ({identity[n]}) holds the text {str(held)!r}; "
                            f"`collect issue` writes the agency's value there, so name the empty cell beside "
                            f"the label instead.")
    field_cells: dict[str, str] = {}
    data_rows = range(d_min_row, d_max_row + 1)
    for f in fields:
        if f.defined_name not in names:
            problems.append(f"{path}: the header field {f.title} ({f.key}) has no defined name {f.defined_name}.")
            continue
        f_sheet, f_ref = names[f.defined_name]
        if f_sheet != sheet:
            problems.append(f"{path}: the header field {f.defined_name} must be on the sheet {sheet!r}.")
            continue
        f_col, f_row, _c2, _r2 = bounds(f_ref)
        if f_row in data_rows and h_min_col <= f_col <= h_max_col:
            problems.append(f"{path}: the header field {f.defined_name} ({f_ref}) lies inside {NAME_DATA}.")
            continue
        field_cells[f.key] = f_ref.split(":")[0]
    layout = Layout(sheet, h_max_row, h_min_col, d_min_row, d_max_row, identity, field_cells,
                    header_first_row=h_min_row, letters=letters, total_rows=total_rows, cells=cells,
                    merged=frozenset(str(m) for m in ws.merged_cells.ranges if m.max_row > h_max_row))
    return layout, problems


def read_layout(path: Path, columns: Sequence[ColumnSpec], fields: Sequence[FormField] = (),
                shape: str = "list") -> Layout:
    layout, problems = layout_problems(path, columns, fields, shape)
    if problems or layout is None:
        raise CollectionError("The template does not agree with its rules:\n  " + "\n  ".join(problems))
    return layout


# -- a tidy default template -----------------------------------------------------------------------------------
THIN = Side(style="thin", color="808080")
BOX = Border(left=THIN, right=THIN, top=THIN, bottom=THIN)
HEADER_FILL = PatternFill("solid", fgColor="DDEBF7")
INPUT_FILL = PatternFill("solid", fgColor="FFFFF2")
PREFILL_FILL = PatternFill("solid", fgColor="EDEDED")  # prefilled by the office and locked (locked_prefill)
LABEL_FONT = Font(name="微軟正黑體", bold=True, size=11)
BODY_FONT = Font(name="微軟正黑體", size=11)


def write_default(coll: Collection, path: Path) -> Path:
    """Write a tidy template from the rules: identity block, header, input rows, number formats and formulas."""

    wb = book.new()
    ws = wb.worksheets[0]
    ws.title = sheet_name(coll.meta.sheet)  # Excel opens no sheet name over 31 characters or with []:*?/\
    n = len(coll.columns)
    last = column_letter(max(n, 4))
    ws["A1"] = coll.meta.title
    ws["A1"].font = Font(name="微軟正黑體", bold=True, size=16)
    ws.merge_cells(f"A1:{last}1")
    ws.row_dimensions[1].height = 28
    identity = [
        ("A2", "機關代碼", "B2", NAME_AGENCY_CODE), ("C2", "機關名稱", "D2", NAME_AGENCY_NAME),
        ("A3", "主管機關", "B3", NAME_SUPERVISOR), ("C3", "填報期間", "D3", NAME_PERIOD),
        ("A4", "截止日期", "B4", NAME_DEADLINE),
    ]
    for label_ref, label, value_ref, name in identity:
        ws[label_ref] = label
        ws[label_ref].font = LABEL_FONT
        ws[label_ref].alignment = Alignment(horizontal="right")
        ws[value_ref].font = BODY_FONT
        ws[value_ref].border = Border(bottom=THIN)
        define(wb, name, ws, value_ref)
    ws["C4"] = "說明"
    ws["C4"].font = LABEL_FONT
    ws["C4"].alignment = Alignment(horizontal="right")
    ws["D4"] = coll.meta.instructions or "請於淡黃色儲存格填寫；金額以新臺幣元為單位，填寫整數；日期可填 115/03/05。"
    ws["D4"].font = Font(name="微軟正黑體", size=10, color="595959")
    # Header fields (Meta.fields): two to a row from row 5 on, label then value, like the identity block.
    for i, f in enumerate(coll.meta.fields):
        row = 5 + i // 2
        label_ref, value_ref = (f"A{row}", f"B{row}") if i % 2 == 0 else (f"C{row}", f"D{row}")
        ws[label_ref] = f.title
        ws[label_ref].font = LABEL_FONT
        ws[label_ref].alignment = Alignment(horizontal="right", wrap_text=True)
        ws[value_ref].font = BODY_FONT
        ws[value_ref].border = Border(bottom=THIN)
        ws[value_ref].fill = PREFILL_FILL
        ws[value_ref].number_format = (MONEY_FORMAT if f.money else DATE_FORMAT if f.kind == "date" else
                                       "@" if f.kind == "text" else "General")
        define(wb, f.defined_name, ws, value_ref)
    header_row = 6 + (len(coll.meta.fields) + 1) // 2
    first = header_row + 1
    last_row = first + coll.meta.max_rows - 1
    for i, col in enumerate(coll.columns, start=1):
        letter = column_letter(i)
        cell = ws.cell(header_row, i, col.title)
        cell.font = LABEL_FONT
        cell.fill = HEADER_FILL
        cell.border = BOX
        cell.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
        width = col.width or (40 if col.kind == "text" and (col.max_length or 0) > 50 else
                              16 if col.kind in ("whole", "decimal", "date") else 12 if col.kind == "choice" else 20)
        ws.column_dimensions[letter].width = width
        fmt = (MONEY_FORMAT if col.money else DATE_FORMAT if col.kind == "date" else
               RATE_FORMAT if col.formula and "/" in col.formula else "@" if col.kind in ("text", "code") else
               "General")
        for r in range(first, last_row + 1):
            c = ws.cell(r, i)
            c.number_format = fmt
            c.border = BOX
            c.font = BODY_FONT
            if col.formula:
                c.value = formula_for(col.formula, coll.columns, r)
            else:
                c.fill = PREFILL_FILL if col.locked_prefill else INPUT_FILL
    ws.row_dimensions[header_row].height = 32
    ws.freeze_panes = f"A{first}"
    print_setup(ws, header_row)
    define(wb, NAME_HEADER, ws, f"A{header_row}:{column_letter(n)}{header_row}")
    define(wb, NAME_DATA, ws, f"A{first}:{column_letter(n)}{last_row}")
    ws.sheet_view.zoomScale = 100
    return book.save(wb, path)


def print_setup(ws: Worksheet, header_row: int) -> None:
    """How a default template prints: A4, one page wide (landscape when its columns are wider than portrait), the
    header row on every page, narrow margins, centred. Seen rendered: with no setup, covid19 printed on 15 portrait
    pages, four columns to a page, the 機關名稱 cut and the header on the first page only."""
    apply_openpyxl(ws, PrintSetup.for_width(openpyxl_width(ws), title_rows=(header_row, header_row), centered=True))


def formula_for(template: str, columns: Sequence[ColumnSpec], row: int) -> str:
    """Expand {key} in a column formula to the same row's cell of that column."""
    letters = {c.key: column_letter(i) for i, c in enumerate(columns, start=1)}
    return re.sub(r"\{(\w+)\}", lambda m: f"{letters[m.group(1)]}{row}", template)
