"""Workbooks to patch when the agency's own package cannot be: rebuilt by openpyxl, a copy of its values read by
calamine, or an empty workbook."""

from __future__ import annotations

import datetime as dt
import io
import re
import warnings
import zipfile
from typing import Any

import openpyxl
from openpyxl.cell.cell import Cell, MergedCell
from openpyxl.utils.exceptions import IllegalCharacterError
from openpyxl.worksheet.worksheet import Worksheet
from python_calamine import CalamineWorkbook, SheetTypeEnum, SheetVisibleEnum

from collect.xlsx.addresses import get_column_letter
from collect.xlsx.package import CT_WORKBOOK, MAIN_NS, PKG_REL_NS, REL_NS, RT_OFFICE_DOCUMENT, RT_STYLES, XML_DECL
from collect.xlsx.xmltext import shown, text_width

_INVALID_TITLE_CHARS = str.maketrans({c: "_" for c in "[]:*?/\\"})
_BLANK_TEXT = re.compile(rb"<t>([ \t\r\n]+)</t>")


def rebuilt(data: bytes) -> bytes:
    """The workbook loaded and saved again by openpyxl (formulas, styles, comments and protection kept; VBA, threaded
    comments and parts openpyxl does not know dropped), whitespace-only text marked as preserved (openpyxl writes
    <t> </t>, which readers then load as blank)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "extension is not supported and will be removed" and the like
        wb = openpyxl.load_workbook(io.BytesIO(data), keep_vba=False, keep_links=True)
        out = io.BytesIO()
        wb.save(out)
    with zipfile.ZipFile(io.BytesIO(out.getvalue())) as src:
        parts = [(info, src.read(info)) for info in src.infolist()]
    fixed = io.BytesIO()
    with zipfile.ZipFile(fixed, "w", zipfile.ZIP_DEFLATED) as dst:
        for info, body in parts:
            if info.filename.startswith("xl/") and info.filename.endswith(".xml") and b"<t>" in body:
                body = _BLANK_TEXT.sub(rb'<t xml:space="preserve">\1</t>', body)
            dst.writestr(info, body)
    return fixed.getvalue()


def value_copy(data: bytes) -> tuple[bytes, dict[str, str]]:
    """A new .xlsx holding every worksheet's values at their original addresses (merged ranges and visibility kept),
    and {original: new} sheet names where a name could not be kept."""
    book = CalamineWorkbook.from_filelike(io.BytesIO(data))
    wb = openpyxl.Workbook()
    wb.remove(wb.active)  # type: ignore[arg-type]
    renamed: dict[str, str] = {}
    taken: set[str] = set()
    for meta in book.sheets_metadata:
        if meta.typ not in (SheetTypeEnum.WorkSheet, SheetTypeEnum.DialogSheet, SheetTypeEnum.MacroSheet):
            continue
        name = unique_title(_safe_title(meta.name), taken)
        taken.add(name.casefold())
        if name != meta.name:
            renamed[meta.name] = name
        ws = wb.create_sheet(name)
        if meta.visible == SheetVisibleEnum.Hidden:
            ws.sheet_state = "hidden"
        elif meta.visible == SheetVisibleEnum.VeryHidden:
            ws.sheet_state = "veryHidden"
        sheet = book.get_sheet_by_name(meta.name)
        _copy_values(ws, sheet.start, sheet.to_python(skip_empty_area=True))
        for (r1, c1), (r2, c2) in sheet.merged_cell_ranges or []:
            if (r1, c1) != (r2, c2):
                ws.merge_cells(start_row=r1 + 1, start_column=c1 + 1, end_row=r2 + 1, end_column=c2 + 1)
    if not wb.worksheets:
        raise ValueError("no worksheets")
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue(), renamed


def _copy_values(ws: Worksheet, start: tuple[int, int] | None, grid: list[list[Any]]) -> None:
    if start is None:
        return
    row0, col0 = start
    widths: dict[int, float] = {}
    for r, values in enumerate(grid, start=row0 + 1):
        for c, value in enumerate(values, start=col0 + 1):
            if value is None or value == "":
                continue
            _set_value(ws.cell(row=r, column=c), value)
            text = value.strftime("%Y-%m-%d %H:%M") if isinstance(value, dt.datetime) else str(value)
            widths[c] = max(widths.get(c, 0.0), float(text_width(text)))
    for c, width in widths.items():
        if width > 8:
            ws.column_dimensions[get_column_letter(c)].width = min(width + 2, 50)


def _set_value(cell: Cell | MergedCell, value: Any) -> None:
    """Store `value` as it is; text stays text even when it looks like a formula or holds control chars."""
    if isinstance(value, str):
        try:
            cell.value = value
        except IllegalCharacterError:
            cell.value = shown(value)
        cell.data_type = "s"  # not "f" for "=1+1", not "e" for a typed "#N/A"
        return
    cell.value = value


def _safe_title(name: str) -> str:
    title = shown(name).translate(_INVALID_TITLE_CHARS).strip("'")[:31]
    return title or "Sheet"


def unique_title(title: str, taken: set[str]) -> str:
    """`title`, or `title (2)`, `title (3)`... cut to Excel's 31 characters: one no name in `taken` (casefolded) has."""
    if title.casefold() not in taken:
        return title
    n = 2
    while True:
        suffix = f" ({n})"
        candidate = title[: 31 - len(suffix)] + suffix
        if candidate.casefold() not in taken:
            return candidate
        n += 1


def empty() -> bytes:
    """A workbook without sheets, for a sheet to be added to (no reader could open the agency's file)."""
    styles = (
        f'<styleSheet xmlns="{MAIN_NS}"><fonts count="1"><font><sz val="11"/><name val="Calibri"/></font></fonts>'
        '<fills count="2"><fill><patternFill patternType="none"/></fill><fill><patternFill patternType="gray125"/>'
        '</fill></fills><borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
        '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
        '<cellXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/></cellXfs>'
        '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles></styleSheet>'
    )
    parts = {
        "[Content_Types].xml": (
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            f'<Override PartName="/xl/workbook.xml" ContentType="{CT_WORKBOOK}"/>'
            '<Override PartName="/xl/styles.xml" '
            'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/></Types>'),
        "_rels/.rels": (f'<Relationships xmlns="{PKG_REL_NS}"><Relationship Id="rId1" Type="{RT_OFFICE_DOCUMENT}" '
                        'Target="xl/workbook.xml"/></Relationships>'),
        "xl/workbook.xml": f'<workbook xmlns="{MAIN_NS}" xmlns:r="{REL_NS}"><sheets></sheets></workbook>',
        "xl/_rels/workbook.xml.rels": (f'<Relationships xmlns="{PKG_REL_NS}"><Relationship Id="rId1" '
                                       f'Type="{RT_STYLES}" Target="styles.xml"/></Relationships>'),
        "xl/styles.xml": styles,
    }
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, xml in parts.items():
            zf.writestr(name, XML_DECL + xml.encode())
    return out.getvalue()
