"""OpenDocument spreadsheets (.ods): packages, cells by A1 address, a round's base converted once, agencies' copies."""

from __future__ import annotations

import bisect
import copy as copying
import hashlib
import io
import re
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from lxml import etree

from collect.errors import CollectError
from collect.rounds import roc_date
from collect.xlsx import libreoffice
from collect.xlsx.filling import ZipTemplate
from collect.xlsx.xmltext import dropped

MIMETYPE = b"application/vnd.oasis.opendocument.spreadsheet"
NS = {
    "office": "urn:oasis:names:tc:opendocument:xmlns:office:1.0",
    "table": "urn:oasis:names:tc:opendocument:xmlns:table:1.0",
    "text": "urn:oasis:names:tc:opendocument:xmlns:text:1.0",
    "style": "urn:oasis:names:tc:opendocument:xmlns:style:1.0",
    "fo": "urn:oasis:names:tc:opendocument:xmlns:xsl-fo-compatible:1.0",
    "calcext": "urn:org:documentfoundation:names:experimental:calc:xmlns:calcext:1.0",
    "dc": "http://purl.org/dc/elements/1.1/",
    "meta": "urn:oasis:names:tc:opendocument:xmlns:meta:1.0",
    "xlink": "http://www.w3.org/1999/xlink",
    "config": "urn:oasis:names:tc:opendocument:xmlns:config:1.0",
}


def q(name: str) -> str:
    """A prefixed name ("table:table-cell") as lxml's {namespace}local name."""
    prefix, local = name.split(":", 1)
    return f"{{{NS[prefix]}}}{local}"


TABLE, ROW, CELL, COVERED = q("table:table"), q("table:table-row"), q("table:table-cell"), q("table:covered-table-cell")
_ROW_GROUPS = {q("table:table-header-rows"), q("table:table-rows"), q("table:table-row-group")}
_ROWS_REPEATED, _COLS_REPEATED = q("table:number-rows-repeated"), q("table:number-columns-repeated")
_VALUE_ATTRS = [q(n) for n in ("office:value-type", "office:value", "office:date-value", "office:time-value",
                               "office:boolean-value", "office:string-value", "office:currency",
                               "calcext:value-type", "table:formula")]
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, remove_blank_text=False)
_A1 = re.compile(r"\$?([A-Za-z]{1,3})\$?([0-9]{1,7})")


class OdfError(CollectError):
    """An .ods collect cannot make or edit: LibreOffice missing or failing, a package without content.xml."""


def parse_a1(ref: str) -> tuple[int, int]:
    """'B7' -> (row 7, column 2), both 1-based."""
    m = _A1.fullmatch(ref.strip())
    if not m:
        raise ValueError(f"not a cell address: {ref!r}")
    col = 0
    for ch in m.group(1).upper():
        col = col * 26 + ord(ch) - 64
    return int(m.group(2)), col


def parse_xml(data: bytes) -> Any:
    """An lxml tree of a package part, parsed without entities or network access."""
    try:
        return etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise OdfError(f"XML that does not parse: {exc}") from None


def to_xml(root: Any) -> bytes:
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


# -- the package ---------------------------------------------------------------------------------------------------
def read_members(data: bytes, *, ods: bool = True) -> dict[str, bytes]:
    """Every member of an .ods package (any zip package with ods=False), in order; OdfError when it is not one."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            members = {info.filename: zf.read(info) for info in zf.infolist()}
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as exc:
        raise OdfError(f"not a readable zip package: {exc}") from None
    if ods and "content.xml" not in members:
        raise OdfError("no content.xml")
    return members


def is_ods(data: bytes) -> bool:
    """True for the bytes of an .ods package (its stored mimetype member comes first)."""
    return data[:4] == b"PK\x03\x04" and MIMETYPE in data[:200]


class OdsTemplate(ZipTemplate):
    """An .ods package whose unchanged members are compressed once; build() writes a copy with some parts replaced.
    The `mimetype` member goes first and stored, as ODF requires."""

    def __init__(self, members: Mapping[str, bytes]) -> None:
        now = datetime.now().timetuple()[:6]
        names = ["mimetype", *(n for n in members if n != "mimetype")]
        super().__init__([(name, members.get(name, MIMETYPE), now) for name in names], stored=frozenset({"mimetype"}))


# -- cells by address --------------------------------------------------------------------------------------------
def tables(root: Any) -> list[Any]:
    """The sheets (table:table) of a content.xml root, in order."""
    body = root.find(q("office:body"))
    sheet = body.find(q("office:spreadsheet")) if body is not None else None
    return [] if sheet is None else [t for t in sheet if t.tag == TABLE]


def table_named(root: Any, name: str) -> Any | None:
    for t in tables(root):
        if t.get(q("table:name")) == name:
            return t
    return None


def _row_elements(parent: Any) -> Iterator[Any]:
    for child in parent:
        if child.tag == ROW:
            yield child
        elif child.tag in _ROW_GROUPS:
            yield from _row_elements(child)


def _repeat(el: Any, attr: str) -> int:
    try:
        return max(1, int(el.get(attr) or 1))
    except ValueError:
        return 1


def _set_repeat(el: Any, attr: str, n: int) -> None:
    if n > 1:
        el.set(attr, str(n))
    elif attr in el.attrib:
        del el.attrib[attr]


def _split(el: Any, attr: str, offset: int) -> list[Any]:
    """A repeated run (`attr` says how many) split so the element at `offset` stands alone: the pieces in order."""
    n = _repeat(el, attr)
    if n == 1:
        return [el]
    counts = [c for c in (offset, 1, n - offset - 1) if c]
    pieces = []
    for count in counts:
        piece = copying.deepcopy(el)
        _set_repeat(piece, attr, count)
        piece.tail = None
        el.addprevious(piece)
        pieces.append(piece)
    el.getparent().remove(el)
    return pieces


class OdsSheet:
    """One sheet (table:table) addressed by 1-based row and column: rows found by bisection over their runs, and
    repeated runs split only where a cell is asked for; merged ranges indexed once."""

    def __init__(self, table: Any) -> None:
        self.table = table
        self._starts: list[int] = []
        self._rows: list[Any] = []
        at = 1
        for el in _row_elements(table):
            self._starts.append(at)
            self._rows.append(el)
            at += _repeat(el, _ROWS_REPEATED)
        self._end = at
        self._spans: list[tuple[int, int, int, int]] | None = None

    def row(self, row: int) -> Any:
        """The table:table-row of `row`, split out of a repeated run or added after the last row."""
        if row >= self._end:
            parent = self._rows[-1].getparent() if self._rows else self.table
            while self._end <= row:
                new = etree.SubElement(parent, ROW)
                etree.SubElement(new, CELL)
                self._starts.append(self._end)
                self._rows.append(new)
                self._end += 1
        i = bisect.bisect_right(self._starts, row) - 1
        el, start = self._rows[i], self._starts[i]
        if _repeat(el, _ROWS_REPEATED) == 1:
            return el
        pieces = _split(el, _ROWS_REPEATED, row - start)
        starts, at = [], start
        for piece in pieces:
            starts.append(at)
            at += _repeat(piece, _ROWS_REPEATED)
        self._rows[i:i + 1] = pieces
        self._starts[i:i + 1] = starts
        return pieces[starts.index(row)]

    def cell(self, row: int, col: int) -> Any:
        """The cell element (table-cell or covered-table-cell) at (row, col), split out of repeated runs."""
        row_el = self.row(row)
        at = 1
        for el in list(row_el):
            if el.tag not in (CELL, COVERED):
                continue
            n = _repeat(el, _COLS_REPEATED)
            if at <= col < at + n:
                pieces = _split(el, _COLS_REPEATED, col - at)
                return pieces[1 if col > at else 0] if len(pieces) > 1 else pieces[0]
            at += n
        new = None
        while at <= col:
            new = etree.SubElement(row_el, CELL)
            at += 1
        return new

    def anchor(self, row: int, col: int) -> tuple[int, int]:
        """The top-left cell of the merged range covering (row, col), or (row, col) when it is not covered."""
        if self._spans is None:
            self._spans = []
            for start, row_el in zip(self._starts, self._rows, strict=True):
                c = 1
                for el in row_el:
                    if el.tag not in (CELL, COVERED):
                        continue
                    down = int(el.get(q("table:number-rows-spanned")) or 1)
                    across = int(el.get(q("table:number-columns-spanned")) or 1)
                    if el.tag == CELL and (down > 1 or across > 1):
                        self._spans.append((start, c, start + down - 1, c + across - 1))
                    c += _repeat(el, _COLS_REPEATED)
        for top, left, bottom, right in self._spans:
            if top <= row <= bottom and left <= col <= right:
                return top, left
        return row, col


def set_value(cell: Any, value: Any, *, text: str | None = None) -> None:
    """Write a typed value into a cell (text, whole or decimal number, date, boolean); None empties it."""
    for attr in _VALUE_ATTRS:
        cell.attrib.pop(attr, None)
    for p in cell.findall(q("text:p")):
        cell.remove(p)
    if value is None or value == "":
        return
    if isinstance(value, bool):
        shown = "TRUE" if value else "FALSE"
        kind, attrs = "boolean", {"office:boolean-value": shown.lower()}
    elif isinstance(value, int | float | Decimal):
        kind, attrs, shown = "float", {"office:value": str(value)}, f"{value}"
    elif isinstance(value, datetime):
        kind, attrs, shown = "date", {"office:date-value": value.isoformat(timespec="seconds")}, roc_date(value.date())
    elif isinstance(value, date):
        kind, attrs, shown = "date", {"office:date-value": value.isoformat()}, roc_date(value)
    else:
        kind, attrs, shown = "string", {}, str(value)
    cell.set(q("office:value-type"), kind)
    for name, v in attrs.items():
        cell.set(q(name), v)
    cell.set(q("calcext:value-type"), kind)
    p = etree.SubElement(cell, q("text:p"))
    p.text = dropped(text if text is not None else shown)


# -- styles ------------------------------------------------------------------------------------------------------
class CellStyles:
    """A content.xml's automatic cell styles, and twins of them made on demand (another fill, protection)."""

    def __init__(self, root: Any) -> None:
        self.auto = root.find(q("office:automatic-styles"))
        if self.auto is None:
            self.auto = etree.Element(q("office:automatic-styles"))
            root.insert(0, self.auto)
        self._by_name = {s.get(q("style:name")): s for s in self.auto if s.tag == q("style:style")}
        self._twins: dict[tuple[str, str | None, bool | None], str] = {}

    def twin(self, name: str | None, *, fill: str | None = None, protect: bool | None = None) -> str:
        """The name of a style like `name` (a cell's style, None: the default) with `fill` (#rrggbb) and protection."""
        key = (name or "", fill, protect)
        if key in self._twins:
            return self._twins[key]
        source = self._by_name.get(name) if name else None
        if source is not None:
            style = copying.deepcopy(source)
        else:
            style = etree.Element(q("style:style"))
            style.set(q("style:family"), "table-cell")
            style.set(q("style:parent-style-name"), name or "Default")
        new_name = f"collect{len(self._twins) + 1}"
        while new_name in self._by_name:
            new_name += "x"
        style.set(q("style:name"), new_name)
        props = style.find(q("style:table-cell-properties"))
        if props is None:
            props = etree.Element(q("style:table-cell-properties"))
            style.insert(0, props)
        if fill is not None:
            props.set(q("fo:background-color"), fill)
            for image in props.findall(q("style:background-image")):
                props.remove(image)
        if protect is not None:
            props.set(q("style:cell-protect"), "protected" if protect else "none")
        style.tail = None
        self.auto.append(style)
        self._by_name[new_name] = style
        self._twins[key] = new_name
        return new_name

    def add(self, family: str, xml_children: str, name: str, *, master_page: str | None = None) -> str:
        """A new automatic style of `family` with children given as XML (in the office namespaces); its name."""
        while name in self._by_name:
            name += "x"
        decl = " ".join(f'xmlns:{p}="{u}"' for p, u in NS.items())
        page = f' style:master-page-name="{master_page}"' if master_page else ""
        style = etree.fromstring(f'<style:style {decl} style:name="{name}" style:family="{family}"{page}>'
                                 f"{xml_children}</style:style>", _PARSER)
        self.auto.append(style)
        self._by_name[name] = style
        return name


def cell_style(cell: Any, table: Any, col: int) -> str | None:
    """The style a cell shows: its own, else its column's default cell style."""
    own = cell.get(q("table:style-name"))
    if own:
        return str(own)
    at = 1
    for el in table.iter(q("table:table-column")):
        n = _repeat(el, _COLS_REPEATED)
        if at <= col < at + n:
            found = el.get(q("table:default-cell-style-name"))
            return None if found in (None, "Default") else str(found)
        at += n
    return None


# -- issuing: the round's base converted once, one patched copy per agency --------------------------------------
PLACEHOLDER = "@@collect:{}@@"
PREFILL_RGB = "#ededed"  # the grey of a prefilled, locked cell (collect.forms.template.PREFILL_FILL)


class OdsCopies:
    """A round's stamped workbook as .ods: its .xlsx base (with PLACEHOLDER texts where agencies differ) converted
    by ONE LibreOffice run, then each agency's copy written by replacing the placeholders in content.xml and
    meta.xml (and, for prefilled header fields and rows, setting those cells)."""

    def __init__(self, base_xlsx: bytes, sheet: str, *, seconds: float = libreoffice.CONVERT_SECONDS,
                 cache: Path | None = None) -> None:
        """`cache`: a folder keeping each converted base by its content, so issuing the same round again (more
        agencies, a corrected copy) needs no LibreOffice run."""
        key = cache / f"{_content_key(base_xlsx)}.ods" if cache is not None else None
        converted = key.read_bytes() if key is not None and key.is_file() else None
        if converted is None:
            converted = libreoffice.convert_bytes(base_xlsx, "xlsx", "ods", seconds=seconds)
            if converted is not None and key is not None:
                key.parent.mkdir(parents=True, exist_ok=True)
                tmp = key.with_suffix(".tmp")
                tmp.write_bytes(converted)
                tmp.replace(key)
        if converted is None:
            raise OdfError("LibreOffice is not installed or could not convert the round's workbook to .ods.",
                           "Install it (apt-get install libreoffice-calc-nogui), or issue as .xlsx: [workspace] "
                           'format = "xlsx" in collect.toml.')
        members = read_members(converted)
        members.pop("Thumbnails/thumbnail.png", None)  # a picture of the placeholders
        if "META-INF/manifest.xml" in members:
            members["META-INF/manifest.xml"] = re.sub(
                rb'<manifest:file-entry manifest:full-path="Thumbnails/[^"]*"[^>]*/>', b"",
                members["META-INF/manifest.xml"])
        content = members["content.xml"]
        # the xlsx's workbook structure protection does not survive the conversion: set it again
        content = content.replace(b"<office:spreadsheet>", b'<office:spreadsheet table:structure-protected="true">', 1)
        self.sheet = sheet
        self.content = content
        self.meta = members.get("meta.xml", b"")
        self._zip = OdsTemplate(members)

    def render(self, texts: Mapping[str, str], cells: Mapping[str, Any] | None = None,
               locked: Sequence[str] = ()) -> bytes:
        """One agency's .ods: each PLACEHOLDER name in `texts` replaced by its text (in cells and document
        properties); `cells` (A1 on the data sheet -> value) written, those in `locked` greyed and locked."""
        content, meta = self.content, self.meta
        for name, value in texts.items():
            needle = PLACEHOLDER.format(name).encode()
            text = escape(dropped(value)).encode("utf-8")
            content = content.replace(needle, text)
            meta = meta.replace(needle, text)
        if cells:
            content = set_cells(content, self.sheet, cells, locked)
        return self._zip.build({"content.xml": content, "meta.xml": meta})


def set_cells(content: bytes, sheet: str, cells: Mapping[str, Any], locked: Sequence[str] = ()) -> bytes:
    """content.xml with `cells` (A1 on `sheet` -> value) written; those in `locked` greyed and locked, as the .xlsx
    copy shows a prefilled locked_prefill cell."""
    root = parse_xml(content)
    table = table_named(root, sheet)
    if table is None:
        raise OdfError(f"the .ods has no sheet {sheet}")
    styles = CellStyles(root)
    grid = OdsSheet(table)
    lock = set(locked)
    for ref, value in cells.items():
        row, col = parse_a1(ref)
        cell = grid.cell(row, col)
        set_value(cell, value)
        if ref in lock:
            cell.set(q("table:style-name"), styles.twin(cell_style(cell, table, col), fill=PREFILL_RGB, protect=True))
    return to_xml(root)


def _content_key(xlsx: bytes) -> str:
    """A digest of a package's members, leaving out docProps/core.xml (it holds the time it was written)."""
    digest = hashlib.sha256()
    for name, body in sorted(read_members(xlsx, ods=False).items()):
        if name != "docProps/core.xml":
            digest.update(name.encode() + b"\0" + hashlib.sha256(body).digest())
    return digest.hexdigest()[:32]


def ods_name(xlsx_name: str) -> str:
    """A workbook's file name with the .ods suffix instead of .xlsx."""
    return re.sub(r"\.xlsx$", "", xlsx_name) + ".ods"


def convert_to_ods(paths: Sequence[Path], outdir: Path) -> list[Path]:
    """Workbooks converted to .ods by ONE LibreOffice run (the report's), written into `outdir`; OdfError when
    LibreOffice made none of them."""
    made = libreoffice.convert(paths, "ods", outdir, seconds=max(libreoffice.CONVERT_SECONDS, 10.0 * len(paths)))
    missing = [str(p) for p, m in zip(paths, made, strict=True) if m is None]
    if missing:
        raise OdfError(f"LibreOffice made no .ods of {', '.join(missing)}.",
                       "Install LibreOffice (apt-get install libreoffice-calc-nogui), or write the report as .xlsx.")
    return [m for m in made if m is not None]
