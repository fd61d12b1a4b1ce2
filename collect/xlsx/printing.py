"""How every workbook collect writes prints: A4, narrow margins, one page wide (landscape when wider than portrait),
the header rows on every page, 製表時間 and page N of M in the footer. One description, applied by each writer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

A4: Final = 9  # the paper size code of Excel, openpyxl and xlsxwriter
# Column width units (Excel's character width) that fit across A4 portrait at 100%: a wider sheet prints landscape.
PORTRAIT_WIDTH: Final = 90
DEFAULT_COLUMN_WIDTH: Final = 9.0
MARGINS: Final = {"left": 0.4, "right": 0.4, "top": 0.6, "bottom": 0.6}  # inches
FOOTER_MARGIN: Final = 0.3


def footer(made: str) -> str:
    """The footer of a report sheet: 製表時間 at the left, page N of M in the middle, the sheet's name at the right."""
    return f"&L&8製表時間：{made}&C&8第 &P 頁，共 &N 頁&R&8&A"


@dataclass(frozen=True)
class PrintSetup:
    """One sheet's print setup. `title_rows` are 1-based (first, last) rows printed on every page."""

    landscape: bool = False
    fit_width: bool = True  # one page wide, as many pages down as it takes
    title_rows: tuple[int, int] | None = None
    footer: str | None = None
    centered: bool = False

    @classmethod
    def for_width(cls, width: float, **kw: Any) -> PrintSetup:
        """Landscape when the sheet's columns add up wider than A4 portrait."""
        return cls(landscape=width > PORTRAIT_WIDTH, **kw)


def openpyxl_width(ws: Any, columns: int | None = None) -> float:
    """The printed width of an openpyxl sheet's first `columns` columns (all by default), in character units."""
    from openpyxl.utils import get_column_letter

    n = ws.max_column if columns is None else columns
    dims = ws.column_dimensions
    return sum(float(dims[get_column_letter(c)].width or DEFAULT_COLUMN_WIDTH)
               if get_column_letter(c) in dims else DEFAULT_COLUMN_WIDTH for c in range(1, n + 1))


def apply_openpyxl(ws: Any, setup: PrintSetup) -> None:
    """Set an openpyxl worksheet up to print as `setup` says."""
    from openpyxl.worksheet.page import PageMargins
    from openpyxl.worksheet.properties import PageSetupProperties

    ws.page_setup.paperSize = A4
    ws.page_setup.orientation = "landscape" if setup.landscape else "portrait"
    if setup.fit_width:
        ws.sheet_properties.pageSetUpPr = PageSetupProperties(fitToPage=True)
        ws.page_setup.fitToWidth = 1
        ws.page_setup.fitToHeight = 0
    if setup.title_rows:
        ws.print_title_rows = f"{setup.title_rows[0]}:{setup.title_rows[1]}"
    if setup.centered:
        ws.print_options.horizontalCentered = True
    ws.page_margins = PageMargins(**MARGINS, footer=FOOTER_MARGIN)
    if setup.footer:
        _openpyxl_footer(ws, setup.footer)


def _openpyxl_footer(ws: Any, text: str) -> None:
    """openpyxl keeps a footer as three parts; "&L…&C…&R…" is split into them."""
    import re

    parts = dict(re.findall(r"&([LCR])((?:(?!&[LCR]).)*)", text)) or {"C": text}
    for key, part in (("L", ws.oddFooter.left), ("C", ws.oddFooter.center), ("R", ws.oddFooter.right)):
        if key in parts:
            body = parts[key]
            size = re.match(r"&(\d+)", body)
            if size:
                part.size = int(size.group(1))
                body = body[size.end():]
            part.text = body


def apply_xlsxwriter(ws: Any, setup: PrintSetup) -> None:
    """Set an xlsxwriter worksheet up to print as `setup` says (before the workbook is closed)."""
    ws.set_paper(A4)
    ws.set_margins(**MARGINS)
    if setup.landscape:
        ws.set_landscape()
    else:
        ws.set_portrait()
    if setup.fit_width:
        ws.fit_to_pages(1, 0)
    if setup.title_rows:
        ws.repeat_rows(setup.title_rows[0] - 1, setup.title_rows[1] - 1)
    if setup.centered:
        ws.center_horizontally()
    if setup.footer:
        ws.set_footer(setup.footer, {"margin": FOOTER_MARGIN})


def sheet_xml(setup: PrintSetup) -> tuple[str, str]:
    """The raw SpreadsheetML of `setup` for a sheet written as XML: (inside <sheetPr>, after <pageMargins>).
    Title rows are a defined name (_xlnm.Print_Titles) and are not part of a sheet's own XML."""
    fit = '<pageSetUpPr fitToPage="1"/>' if setup.fit_width else ""
    m = MARGINS
    tail = (f'<pageMargins left="{m["left"]}" right="{m["right"]}" top="{m["top"]}" bottom="{m["bottom"]}" '
            f'header="{FOOTER_MARGIN}" footer="{FOOTER_MARGIN}"/>'
            f'<pageSetup paperSize="{A4}" orientation="{"landscape" if setup.landscape else "portrait"}"'
            + (' fitToWidth="1" fitToHeight="0"' if setup.fit_width else "") + "/>")
    return fit, tail
