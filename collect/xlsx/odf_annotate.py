"""The annotated copy of an .ods return, as an .ods: failing cells filled and commented, a 檢核結果 sheet first."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from lxml import etree

from collect.findings import Finding, cut
from collect.xlsx.odf import (
    NS,
    TABLE,
    CellStyles,
    OdfError,
    OdsSheet,
    OdsTemplate,
    cell_style,
    parse_a1,
    parse_xml,
    q,
    read_members,
    table_named,
    tables,
    to_xml,
)
from collect.xlsx.xmltext import dropped

SUMMARY_SHEET = "檢核結果"
COMMENT_AUTHOR = "collect"
ERROR_RGB = "#ff9999"  # light red: an error on this cell (as the .xlsx copy)
WARNING_RGB = "#ffff99"  # light yellow: a warning on this cell
HEADER_RGB = "#d9d9d9"
HEADERS = ("序號", "嚴重度", "工作表", "儲存格", "欄位", "填寫值", "說明")
SEVERITY_LABEL = {"error": "錯誤", "warning": "警告"}
_CAPS_CM = (1.4, 1.8, 4.0, 2.4, 5.0, 5.0, 11.0)  # widest each summary column gets (A4 landscape, 1.5 cm margins)
_CM_PER_UNIT = 0.22  # one half-width character of the 10 pt body font
_MAX_MARKED = 10_000  # a finding on a huge range fills at most this many cells
_DECL = " ".join(f'xmlns:{p}="{u}"' for p, u in NS.items())


def annotate_ods(data: bytes, findings: Sequence[Finding], *, title: str = "",
                 summary_lines: Iterable[str] = ()) -> bytes:
    """The bytes of a new .ods: the agency's .ods return with each finding's cells filled (red for an error,
    yellow for a warning) and commented (office:annotation), and a 檢核結果 sheet first, opened first, listing every
    finding with a link to its cell. OdfError when the return is not an .ods that can be edited."""
    members = read_members(data)
    root = parse_xml(members["content.xml"])
    styles = CellStyles(root)
    located = _mark(root, styles, findings)
    names = [t.get(q("table:name")) or "" for t in tables(root)]
    summary_name = _unique(SUMMARY_SHEET, names)
    _insert_summary(root, styles, summary_name, findings, located, title, list(summary_lines))
    changed = {"content.xml": to_xml(root)}
    if "styles.xml" in members:
        changed["styles.xml"] = _with_landscape_page(members["styles.xml"])
    if "settings.xml" in members:
        changed["settings.xml"] = _active(members["settings.xml"], summary_name)
    return OdsTemplate({n: b for n, b in members.items() if not n.startswith("Thumbnails/")}).build(changed)


def _unique(name: str, taken: Sequence[str]) -> str:
    folded = {t.casefold() for t in taken}
    n, candidate = 2, name
    while candidate.casefold() in folded:
        candidate, n = f"{name} ({n})", n + 1
    return candidate


def _find_table(root: Any, name: str | None) -> Any | None:
    if not name:
        return None
    found = table_named(root, name)
    if found is not None:
        return found
    for t in tables(root):
        if (t.get(q("table:name")) or "").casefold() == name.casefold():
            return t
    return None


def _cells(ref: str) -> list[tuple[int, int]]:
    """The cells of "B7" or "B7:D9" (at most _MAX_MARKED), row by row."""
    first, _, last = ref.partition(":")
    r1, c1 = parse_a1(first)
    r2, c2 = parse_a1(last) if last else (r1, c1)
    out = []
    for r in range(min(r1, r2), max(r1, r2) + 1):
        for c in range(min(c1, c2), max(c1, c2) + 1):
            out.append((r, c))
            if len(out) >= _MAX_MARKED:
                return out
    return out


def _mark(root: Any, styles: CellStyles, findings: Sequence[Finding]) -> list[tuple[str, str] | None]:
    """Fill and comment each finding's cells; per finding, the (sheet, first cell) it was shown at, or None."""
    located: list[tuple[str, str] | None] = []
    grids: dict[int, OdsSheet] = {}
    comments: dict[tuple[int, int, int], tuple[Any, list[str]]] = {}
    severity: dict[tuple[int, int, int], str] = {}
    for f in findings:
        table = _find_table(root, f.sheet)
        try:
            cells = _cells(f.cell) if table is not None and f.cell else []
        except ValueError:
            cells = []
        if table is None or not cells:
            located.append(None)
            continue
        grid = grids.get(id(table)) or grids.setdefault(id(table), OdsSheet(table))
        anchors = list(dict.fromkeys(grid.anchor(r, c) for r, c in cells))
        for r, c in anchors:
            key = (id(table), r, c)
            if severity.get(key) != "error":
                severity[key] = f.severity
            if (r, c) == anchors[0]:
                comments.setdefault(key, (table, []))[1].append(
                    f"{SEVERITY_LABEL.get(f.severity, f.severity)}：{f.message}")
        located.append((str(table.get(q("table:name"))), str(f.cell).partition(":")[0].replace("$", "")))
    for (tid, r, c), sev in severity.items():
        table = grids[tid].table
        cell = grids[tid].cell(r, c)
        fill = ERROR_RGB if sev == "error" else WARNING_RGB
        cell.set(q("table:style-name"), styles.twin(cell_style(cell, table, c), fill=fill))
        if (tid, r, c) in comments:
            _comment(cell, comments[(tid, r, c)][1])
    return located


def _comment(cell: Any, lines: list[str]) -> None:
    """An office:annotation on the cell (the first child, as ODF orders it), joined to one already there."""
    note = cell.find(q("office:annotation"))
    if note is None:
        note = etree.Element(q("office:annotation"))
        creator = etree.SubElement(note, q("dc:creator"))
        creator.text = COMMENT_AUTHOR
        cell.insert(0, note)
    for line in lines:
        p = etree.SubElement(note, q("text:p"))
        p.text = dropped(cut(line, 2_000))




def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _link(sheet: str, cell: str) -> str:
    quoted = sheet if re.fullmatch(r"\w+", sheet) else "'" + sheet.replace("'", "''") + "'"
    return f"#{quoted}.{cell}"


def _text_cell(text: str | None, style: str, link: str | None = None) -> str:
    if text is None or text == "":
        return f'<table:table-cell table:style-name="{style}"/>'
    lines = dropped(text).split("\n")
    if link is not None:
        body = (f'<text:p><text:a xlink:type="simple" xlink:href={quoteattr(link)}>{escape(lines[0])}</text:a>'
                "</text:p>")
    else:
        body = "".join(f"<text:p>{escape(line)}</text:p>" for line in lines)
    return (f'<table:table-cell table:style-name="{style}" office:value-type="string" '
            f'calcext:value-type="string">{body}</table:table-cell>')


def _insert_summary(root: Any, styles: CellStyles, name: str, findings: Sequence[Finding],
                    located: Sequence[tuple[str, str] | None], title: str, lines: list[str]) -> None:
    bold = ('<style:text-properties fo:font-weight="bold" style:font-weight-asian="bold" '
            'style:font-weight-complex="bold"/>')
    top = '<style:table-cell-properties style:vertical-align="top"/>'
    wrap = '<style:table-cell-properties fo:wrap-option="wrap" style:vertical-align="top"/>'
    s_title = styles.add("table-cell", '<style:text-properties fo:font-size="14pt" style:font-size-asian="14pt" '
                         'fo:font-weight="bold" style:font-weight-asian="bold"/>', "collectTitle")
    s_plain = styles.add("table-cell", top, "collectTop")
    s_wrap = styles.add("table-cell", wrap, "collectWrap")
    s_head = styles.add("table-cell", f'<style:table-cell-properties fo:background-color="{HEADER_RGB}"/>{bold}',
                        "collectHead")
    s_error = styles.add("table-cell", f'<style:table-cell-properties fo:background-color="{ERROR_RGB}" '
                         'style:vertical-align="top"/>', "collectError")
    s_warning = styles.add("table-cell", f'<style:table-cell-properties fo:background-color="{WARNING_RGB}" '
                           'style:vertical-align="top"/>', "collectWarning")
    s_link = styles.add("table-cell", top + '<style:text-properties fo:color="#0563c1" '
                        'style:text-underline-style="solid" style:text-underline-width="auto" '
                        'style:text-underline-color="font-color"/>', "collectLink")
    s_row = styles.add("table-row", '<style:table-row-properties style:use-optimal-row-height="true"/>', "collectRow")
    s_table = styles.add("table", '<style:table-properties table:display="true" style:writing-mode="lr-tb"/>',
                         "collectTable", master_page=_MASTER)
    table_rows = [[str(n), SEVERITY_LABEL.get(f.severity, f.severity), (loc[0] if loc else f.sheet), f.cell,
                   f.column, None if f.value is None else cut(str(f.value)), f.message]
                  for n, (f, loc) in enumerate(zip(findings, located, strict=True), start=1)]
    widths = [_width(h) for h in HEADERS]
    for values in table_rows:
        widths = [max(w, _width(v or "")) for w, v in zip(widths, values, strict=True)]
    cols = []
    for i, (w, cap) in enumerate(zip(widths, _CAPS_CM, strict=True)):
        width = min(cap, max(1.2, (w + 2) * _CM_PER_UNIT))
        col_style = styles.add("table-column", f'<style:table-column-properties style:column-width="{width:.2f}cm"/>',
                               f"collectCol{i}")
        cols.append(f'<table:table-column table:style-name="{col_style}"/>')
    rows = [f'<table:table-row table:style-name="{s_row}">{_text_cell(title or SUMMARY_SHEET, s_title)}'
            "</table:table-row>"]
    for line in [*lines, *([] if findings else ["沒有發現任何問題。"])]:
        rows.append(f'<table:table-row table:style-name="{s_row}">{_text_cell(line, s_plain)}</table:table-row>')
    rows.append("<table:table-row><table:table-cell/></table:table-row>")
    rows.append("<table:table-row>" + "".join(_text_cell(h, s_head) for h in HEADERS) + "</table:table-row>")
    for (f, loc), values in zip(zip(findings, located, strict=True), table_rows, strict=True):
        cells = [f'<table:table-cell table:style-name="{s_plain}" office:value-type="float" office:value="{values[0]}" '
                 f'calcext:value-type="float"><text:p>{values[0]}</text:p></table:table-cell>',
                 _text_cell(values[1], s_error if f.severity == "error" else s_warning),
                 _text_cell(values[2], s_plain),
                 _text_cell(values[3], s_link if loc else s_plain, _link(*loc) if loc else None),
                 *(_text_cell(v, s_wrap) for v in values[4:])]
        rows.append(f'<table:table-row table:style-name="{s_row}">{"".join(cells)}</table:table-row>')
    xml = (f'<table:table {_DECL} table:name={quoteattr(name)} table:style-name="{s_table}">{"".join(cols)}'
           f'{"".join(rows)}</table:table>')
    summary = etree.fromstring(xml)
    body = root.find(q("office:body"))
    sheet = body.find(q("office:spreadsheet")) if body is not None else None
    if sheet is None:
        raise OdfError("the .ods has no office:spreadsheet")
    first = next((t for t in sheet if t.tag == TABLE), None)
    if first is not None:
        first.addprevious(summary)
    else:
        sheet.append(summary)


_MASTER = "collectSummary"
_PAGE = "collectLandscape"


def _with_landscape_page(styles_xml: bytes) -> bytes:
    """styles.xml with an A4 landscape page layout, one page wide, and a master page using it (the summary's)."""
    layout = (f'<style:page-layout style:name="{_PAGE}"><style:page-layout-properties fo:page-width="29.7cm" '
              'fo:page-height="21cm" style:print-orientation="landscape" fo:margin-top="1.5cm" '
              'fo:margin-bottom="1.5cm" fo:margin-left="1.5cm" fo:margin-right="1.5cm" style:scale-to-X="1"/>'
              "</style:page-layout>")
    master = f'<style:master-page style:name="{_MASTER}" style:page-layout-name="{_PAGE}"/>'
    out = styles_xml
    if b"<office:automatic-styles>" in out:
        out = out.replace(b"<office:automatic-styles>", b"<office:automatic-styles>" + layout.encode(), 1)
    elif b"<office:automatic-styles/>" in out:
        out = out.replace(b"<office:automatic-styles/>",
                          b"<office:automatic-styles>" + layout.encode() + b"</office:automatic-styles>", 1)
    else:
        return styles_xml
    if b"<office:master-styles>" in out:
        return out.replace(b"<office:master-styles>", b"<office:master-styles>" + master.encode(), 1)
    if b"<office:master-styles/>" in out:
        return out.replace(b"<office:master-styles/>",
                           b"<office:master-styles>" + master.encode() + b"</office:master-styles>", 1)
    return styles_xml


def _active(settings_xml: bytes, name: str) -> bytes:
    """settings.xml with the summary as the sheet shown when the file opens."""
    return re.sub(rb'(<config:config-item config:name="ActiveTable" config:type="string">)[^<]*(</config:config-item>)',
                  lambda m: m.group(1) + escape(name).encode("utf-8") + m.group(2), settings_xml, count=1)
