"""Patch an .xlsx/.xlsm package in place: fill and comment cells, add a sheet described as data first and active;
every part not changed is copied as it is (made safe), VBA is dropped and the result is a plain .xlsx."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from collect.xlsx.addresses import get_column_letter, quote_sheet
from collect.xlsx.comments import add_comments, vml_blocks
from collect.xlsx.package import (
    CT_PART,
    CT_WORKBOOK,
    CT_WORKSHEET,
    MAIN_NS,
    REL_NS,
    RT_STYLES,
    RT_VBA,
    RT_WORKSHEET,
    XML_DECL,
    ContentTypes,
    Package,
    Unsupported,
    add_rels,
    remove_with_rels,
    workbook_part,
)
from collect.xlsx.printing import PrintSetup, sheet_xml
from collect.xlsx.sheetxml import Styles, WorksheetXml
from collect.xlsx.xmltext import esc, esc_attr, set_attrs

CellKey = tuple[str, int, int]  # (sheet name, row, column), 1-based


@dataclass(frozen=True)
class CellStyle:
    """How a cell of an added sheet looks: on the workbook's default font, made bold, resized or a link."""

    bold: bool = False
    size: str | None = None
    link: bool = False
    fill: str | None = None  # ARGB of a solid fill
    top: bool = False  # aligned to the top
    wrap: bool = False  # text wraps (aligned to the top)


@dataclass
class Row:
    number: int  # 1-based
    cells: list[tuple[int, str | int | None, CellStyle | None]]  # (column, value, style); text stays text
    height: float | None = None  # points; None: the default, one line


@dataclass
class NewSheet:
    """A sheet to add, as data: its rows, column widths, internal links, frozen rows, filter and print setup."""

    name: str
    rows: list[Row]
    widths: list[float]  # columns 1, 2, ...
    links: list[tuple[str, str, str]] = field(default_factory=list)  # (cell, location, text shown)
    frozen_rows: int = 0
    filter_ref: str | None = None  # "A4:G9"
    setup: PrintSetup = field(default_factory=PrintSetup)


class Workbook:
    """An .xlsx/.xlsm package opened to be patched; Unsupported for what the byte-level edits do not handle (the
    caller then rebuilds the package with openpyxl and patches that)."""

    def __init__(self, data: bytes, known: Mapping[str, bytes], max_chars: int) -> None:
        self.pkg = Package(data, known, max_chars)
        self.types = ContentTypes(self.pkg.read(CT_PART))
        if re.search(rb"macrosheet|dialogsheet", self.types.xml, re.I):
            raise Unsupported("macro or dialog sheets")
        self.book = workbook_part(self.pkg)
        styles_rel = next((r for r in self.book.rels.values() if r.type == RT_STYLES and not r.external), None)
        if styles_rel is None:
            raise Unsupported("no styles part")
        self.styles_part = styles_rel.target
        self.styles = Styles(self.pkg.read(self.styles_part))
        self.sheets: dict[str, WorksheetXml] = {}

    @property
    def names(self) -> list[str]:
        """Every sheet's name, in the workbook's order."""
        return self.book.names

    @property
    def worksheets(self) -> list[str]:
        """The names of the sheets that hold cells (not chart sheets)."""
        return list(self.book.worksheets)

    def _sheet(self, name: str) -> WorksheetXml:
        if name not in self.sheets:
            part = self.book.worksheets[name]
            self.sheets[name] = WorksheetXml(part, self.pkg.read(part))
        return self.sheets[name]

    def index_merges(self, name: str, rows: Iterable[int]) -> None:
        """Prepare anchor() for these rows of a sheet: one pass over its merged ranges."""
        self._sheet(name).index_merges(rows)

    def anchor(self, name: str, row: int, col: int) -> tuple[int, int]:
        """The top-left cell of the merged range holding (row, col) on the sheet, or (row, col) itself."""
        return self._sheet(name).anchor(row, col)

    def render(self, fills: dict[CellKey, str], comments: dict[CellKey, str], first: NewSheet) -> bytes:
        """The package with each cell of `fills` filled for its severity ("error" or "warning") on top of its own
        format, each cell of `comments` commented (the agency's own note kept below), and `first` added as the first,
        active sheet."""
        by_sheet: dict[str, dict[tuple[int, int], str]] = {}
        for (name, row, col), severity in fills.items():
            by_sheet.setdefault(name, {})[(row, col)] = severity
        notes: dict[str, dict[tuple[int, int], str]] = {}
        for (name, row, col), text in comments.items():
            notes.setdefault(name, {})[(row, col)] = text
        for name in self.book.worksheets:
            self._sheet(name).untab()
        for name, cells in by_sheet.items():
            self._sheet(name).fill(cells, self.styles)
        next_block = vml_blocks(self.pkg)
        for name, marks in notes.items():
            next_block = add_comments(self.pkg, self._sheet(name), marks, next_block, self.types)
        for s in self.sheets.values():
            if s.changed:
                self.pkg.write(s.part, s.xml)
        self._add_first(first)
        # VBA goes: the copy is a plain .xlsx whatever came in
        for rel in [r for r in self.book.rels.values() if r.type == RT_VBA and not r.external]:
            remove_with_rels(self.pkg, self.types, self.book.part, rel)
        self.types.override(self.book.part, CT_WORKBOOK)
        self.pkg.write(self.styles_part, self.styles.render())
        self.pkg.write(CT_PART, self.types.xml)
        return self.pkg.save()

    def _add_first(self, sheet: NewSheet) -> None:
        folder = self.book.part.rpartition("/")[0]
        part = self.pkg.free_name(f"{folder}/worksheets/sheet{{}}.xml" if folder else "worksheets/sheet{}.xml")
        self.pkg.write(part, sheet_part(sheet, self.styles))
        self.types.override(part, CT_WORKSHEET)
        (rel_id,) = add_rels(self.pkg, self.book.part, [(RT_WORKSHEET, part)])
        filter_name = None
        if sheet.filter_ref:
            a, b = (_absolute_ref(ref) for ref in sheet.filter_ref.split(":"))
            area = f"{quote_sheet(sheet.name)}!{a}:{b}"
            filter_name = f'<definedName name="_xlnm._FilterDatabase" localSheetId="0" hidden="1">{esc(area)}'
            filter_name += "</definedName>"
        xml = self.pkg.read(self.book.part)
        self.pkg.write(self.book.part, _first_sheet(xml, sheet.name, max(self.book.sheet_ids, default=0) + 1, rel_id,
                                                    filter_name))


def _absolute_ref(ref: str) -> str:
    m = re.fullmatch(r"([A-Z]+)(\d+)", ref)
    assert m is not None
    return f"${m[1]}${m[2]}"


def sheet_part(sheet: NewSheet, styles: Styles) -> bytes:
    """The worksheet XML of `sheet` (inline strings only), its formats appended to `styles`."""
    formats: dict[CellStyle, int] = {}
    fonts: dict[tuple[bool, str | None, bool], int] = {}

    def style_of(style: CellStyle) -> int:
        if style not in formats:
            font_key = (style.bold, style.size, style.link)
            if any(font_key) and font_key not in fonts:
                fonts[font_key] = styles.font(bold=style.bold, size=style.size, link=style.link)
            alignment = 'vertical="top" wrapText="1"' if style.wrap else 'vertical="top"' if style.top else ""
            formats[style] = styles.cell_format(font=fonts.get(font_key, 0),
                                                fill=styles.solid_fill(style.fill) if style.fill else 0,
                                                alignment=alignment)
        return formats[style]

    def cell(ref: str, value: str | int | None, style: CellStyle | None) -> str:
        s = f' s="{style_of(style)}"' if style is not None else ""
        if isinstance(value, int):
            return f'<c r="{ref}"{s}><v>{value}</v></c>'
        if value is None or value == "":
            return f'<c r="{ref}"{s}/>' if s else ""
        return f'<c r="{ref}"{s} t="inlineStr"><is><t xml:space="preserve">{esc(value)}</t></is></c>'

    rows: list[str] = []
    last_row = 1
    for row in sheet.rows:
        cells = "".join(cell(f"{get_column_letter(c)}{row.number}", v, s) for c, v, s in row.cells)
        tall = f' ht="{row.height:g}" customHeight="1"' if row.height is not None else ""
        rows.append(f'<row r="{row.number}"{tall}>{cells}</row>')
        last_row = max(last_row, row.number)
    cols = "".join(f'<col min="{c}" max="{c}" width="{w}" customWidth="1"/>'
                   for c, w in enumerate(sheet.widths, start=1))
    last_col = get_column_letter(max(len(sheet.widths), 1))
    if sheet.frozen_rows:
        top = f"A{sheet.frozen_rows + 1}"
        view = (f'<sheetView tabSelected="1" workbookViewId="0"><pane ySplit="{sheet.frozen_rows}" topLeftCell="{top}" '
                f'activePane="bottomLeft" state="frozen"/><selection pane="bottomLeft" activeCell="{top}" '
                f'sqref="{top}"/></sheetView>')
    else:
        view = '<sheetView tabSelected="1" workbookViewId="0"/>'
    links = "".join(f'<hyperlink ref="{ref}" location="{esc_attr(location)}" display="{esc_attr(shown)}"/>'
                    for ref, location, shown in sheet.links)
    fit, page = sheet_xml(sheet.setup)
    xml = (
        f'<worksheet xmlns="{MAIN_NS}" xmlns:r="{REL_NS}"><sheetPr>{fit}</sheetPr>'
        f'<dimension ref="A1:{last_col}{last_row}"/><sheetViews>{view}</sheetViews>'
        f'<sheetFormatPr defaultRowHeight="15"/>' + (f"<cols>{cols}</cols>" if cols else "")
        + f'<sheetData>{"".join(rows)}</sheetData>'
        + (f'<autoFilter ref="{sheet.filter_ref}"/>' if sheet.filter_ref else "")
        + (f"<hyperlinks>{links}</hyperlinks>" if links else "")
        + page + "</worksheet>"
    )
    return XML_DECL + xml.encode()


def _first_sheet(xml: bytes, name: str, sheet_id: int, rel_id: str, filter_name: str | None) -> bytes:
    """workbook.xml with a new first sheet, made the active tab; sheet-scoped names shifted by one position."""
    xml = re.sub(rb"<definedNames\s*/>", b"", xml, count=1)  # openpyxl writes an empty one
    names = re.search(rb"<definedNames\b[^>]*>(.*?)</definedNames>", xml, re.S)
    if names:
        shifted = re.sub(rb'localSheetId="(\d+)"', lambda m: b'localSheetId="%d"' % (int(m[1]) + 1), names[1])
        if filter_name:
            shifted = filter_name.encode() + shifted
        xml = xml[: names.start(1)] + shifted + xml[names.end(1) :]
    elif filter_name:
        after = [m.end() for m in re.finditer(rb"</sheets>|</functionGroups>|</externalReferences>", xml)]
        if not after:
            raise Unsupported("no </sheets>")
        at = max(after)
        xml = xml[:at] + b"<definedNames>" + filter_name.encode() + b"</definedNames>" + xml[at:]
    sheets = re.search(rb"<sheets\b[^>]*>", xml)
    if sheets is None:
        raise Unsupported("no <sheets>")
    new = f'<sheet xmlns:r="{REL_NS}" name="{esc_attr(name)}" sheetId="{sheet_id}" r:id="{rel_id}"/>'.encode()
    xml = xml[: sheets.end()] + new + xml[sheets.end() :]
    view = re.search(rb"<workbookView\b[^>]*>", xml)
    if view is not None:
        xml = xml[: view.start()] + set_attrs(view[0], {"activeTab": "0", "firstSheet": "0"}) + xml[view.end() :]
    else:
        at = xml.index(b"<sheets")
        xml = xml[:at] + b'<bookViews><workbookView activeTab="0" firstSheet="0"/></bookViews>' + xml[at:]
    return xml
