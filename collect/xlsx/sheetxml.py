"""A worksheet's XML and the workbook's styles, patched in place: cell fills on top of each cell's own format, a
comment drawing's anchor, the selected tab; fonts, fills and cell formats appended to styles.xml."""

from __future__ import annotations

import bisect
import itertools
import re
from array import array
from collections.abc import Iterable

from collect.xlsx.addresses import cell_range, get_column_letter
from collect.xlsx.package import REL_NS, Unsupported, require_root
from collect.xlsx.xmltext import attrs, drop_attr, set_attrs

ERROR_RGB = "FFFF9999"  # light red: an error on this cell
WARNING_RGB = "FFFFFF99"  # light yellow: a warning on this cell
MAX_MERGE_ENTRIES = 1_000_000  # (merged range, row asked about) pairs indexed at most, for ranges that overlap

_ROW_TAG = re.compile(rb'<row\b[^>]*?\sr="(\d+)"[^>]*?(/?)>')
_CELL = re.compile(rb"<c\b[^>]*?(?:/>|>.*?</c>)", re.S)
_CELL_REF = re.compile(rb'\sr="([A-Z]{1,3})(\d+)"')
_AFTER_LEGACY_DRAWING = re.compile(
    rb"<(?:legacyDrawingHF|drawingHF|picture|oleObjects|controls|webPublishItems|tableParts|extLst|\w+:AlternateContent)\b"
)


def _col_number(letters: bytes) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + ch - 64
    return n


class Styles:
    """styles.xml with fills, fonts and cell formats appended (existing indexes never move)."""

    def __init__(self, xml: bytes) -> None:
        require_root(xml, b"styleSheet")
        self.xml = xml
        self.blocks: dict[bytes, tuple[int, int, list[bytes]]] = {}
        for tag, item in ((b"fonts", b"font"), (b"fills", b"fill"), (b"cellXfs", b"xf")):
            m = re.search(rb"<" + tag + rb"\b[^>]*>(.*?)</" + tag + rb">", xml, re.S)
            if m is None:
                raise Unsupported(f"styles.xml has no <{tag.decode()}>")
            items = re.findall(rb"<" + item + rb"\b[^>]*?(?:/>|>.*?</" + item + rb">)", m[1], re.S)
            self.blocks[tag] = (m.start(1), m.end(1), items)
        self.added: dict[bytes, list[bytes]] = {b"fonts": [], b"fills": [], b"cellXfs": []}
        self._restyled: dict[tuple[int, str], int] = {}
        self._fills: dict[str, int] = {}

    def _append(self, tag: bytes, item: bytes) -> int:
        self.added[tag].append(item)
        return len(self.blocks[tag][2]) + len(self.added[tag]) - 1

    def solid_fill(self, rgb: str) -> int:
        if rgb not in self._fills:
            colours = f'<fgColor rgb="{rgb}"/><bgColor rgb="{rgb}"/>'
            xml = f'<fill><patternFill patternType="solid">{colours}</patternFill></fill>'
            self._fills[rgb] = self._append(b"fills", xml.encode())
        return self._fills[rgb]

    def restyle(self, style: int, severity: str) -> int:
        """The index of a cell format like `style` but filled for `severity`."""
        key = (style, severity)
        if key not in self._restyled:
            xfs = self.blocks[b"cellXfs"][2]
            if not 0 <= style < len(xfs):
                raise Unsupported(f"cell format {style} does not exist")
            xf = xfs[style]
            tag_end = xf.index(b">") + 1
            fill = self.solid_fill(ERROR_RGB if severity == "error" else WARNING_RGB)
            start = set_attrs(xf[:tag_end], {"fillId": str(fill), "applyFill": "1"})
            self._restyled[key] = self._append(b"cellXfs", start + xf[tag_end:])
        return self._restyled[key]

    def font(self, *, bold: bool = False, size: str | None = None, link: bool = False) -> int:
        """A font like the workbook's default font, made bold, resized or link-coloured."""
        fonts = self.blocks[b"fonts"][2]
        base = fonts[0] if fonts else b"<font/>"
        closed = base.endswith(b"</font>")
        inner = base[base.index(b">") + 1 : -len(b"</font>")] if closed else b""
        head = b""
        if bold:
            inner = re.sub(rb"<b\b[^>]*?(?:/>|>.*?</b>)", b"", inner, flags=re.S)
            head += b"<b/>"
        if link:
            inner = re.sub(rb"<(?:u|color)\b[^>]*?(?:/>|>.*?</(?:u|color)>)", b"", inner, flags=re.S)
            head += b"<u/>"
            inner += b'<color rgb="FF0563C1"/>'
        if size is not None:
            inner = re.sub(rb"<sz\b[^>]*?(?:/>|>.*?</sz>)", b"", inner, flags=re.S)
            head += f'<sz val="{size}"/>'.encode()
        return self._append(b"fonts", b"<font>" + head + inner + b"</font>")

    def cell_format(self, font: int = 0, fill: int = 0, alignment: str = "") -> int:
        applied = ' applyFont="1"' * (font != 0) + ' applyFill="1"' * (fill != 0)
        applied += ' applyAlignment="1"' * bool(alignment)
        body = f"<alignment {alignment}/></xf>" if alignment else ""
        xf = f'<xf numFmtId="0" fontId="{font}" fillId="{fill}" borderId="0" xfId="0"{applied}' + (
            f">{body}" if body else "/>"
        )
        return self._append(b"cellXfs", xf.encode())

    def render(self) -> bytes:
        xml = self.xml
        for tag in sorted(self.blocks, key=lambda t: -self.blocks[t][0]):  # from the end: offsets stay valid
            start, end, items = self.blocks[tag]
            if not self.added[tag]:
                continue
            xml = xml[:end] + b"".join(self.added[tag]) + xml[end:]
            open_start = xml.rindex(b"<" + tag, 0, start)
            open_tag = xml[open_start:start]
            count = len(items) + len(self.added[tag])
            xml = xml[:open_start] + set_attrs(open_tag, {"count": str(count)}) + xml[start:]
        return xml


# -- one worksheet -------------------------------------------------------------------------------------------


class WorksheetXml:
    """A worksheet's XML and what the fast path needs of it: merged ranges, column styles."""

    def __init__(self, part: str, xml: bytes) -> None:
        require_root(xml, b"worksheet")
        self.part = part
        self.xml = xml
        if not re.search(rb"<sheetData\b", xml):
            raise Unsupported("no <sheetData>")
        self.merged = [
            b for b in (cell_range(m.decode()) for m in re.findall(rb'<mergeCell\b[^>]*?\sref="([^"]+)"', xml))
            if b is not None
        ]
        self.changed = False
        self.by_row: dict[int, list[tuple[int, int, int]]] | None = None  # row -> (first col, last col, first row)
        self.starts: dict[int, list[int]] = {}

    def index_merges(self, rows: Iterable[int]) -> None:
        """Index the merged ranges by the rows `anchor` will be asked about: one pass over the ranges, then one
        bisection per cell (a scan of every range per cell took 14 s for 1,800 marks and 200,000 ranges)."""
        wanted = sorted(set(rows))
        by_row: dict[int, list[tuple[int, int, int]]] = {}
        budget = MAX_MERGE_ENTRIES
        for min_col, min_row, max_col, max_row in self.merged:
            lo, hi = bisect.bisect_left(wanted, min_row), bisect.bisect_right(wanted, max_row)
            budget -= hi - lo
            if budget < 0:
                break  # ranges overlapping by the thousand (Excel writes none): the rest are not honoured
            for r in wanted[lo:hi]:
                by_row.setdefault(r, []).append((min_col, max_col, min_row))
        self.by_row = {r: sorted(found) for r, found in by_row.items()}
        self.starts = {r: [first for first, _, _ in found] for r, found in self.by_row.items()}

    def anchor(self, row: int, col: int) -> tuple[int, int]:
        """The top-left cell of the merged range holding (row, col), or (row, col) itself."""
        if self.by_row is None:  # not indexed: every range looked at
            inside = ((r0, c0) for c0, r0, c1, r1 in self.merged if r0 <= row <= r1 and c0 <= col <= c1)
            return next(inside, (row, col))
        found = self.by_row.get(row)
        if found:
            i = bisect.bisect_right(self.starts[row], col) - 1
            if i >= 0 and col <= found[i][1]:
                return found[i][2], found[i][0]
        return row, col

    def column_styles(self, head: bytes) -> list[tuple[int, int, int]]:
        styles = []
        for tag in re.findall(rb"<col\b[^>]*>", head):
            a = attrs(tag)
            if "style" in a:
                styles.append((int(a.get("min", "0")), int(a.get("max", "0")), int(a["style"])))
        return styles

    def untab(self) -> None:
        """No longer the selected tab (the 檢核結果 sheet is)."""
        head_end = self.xml.find(b"<sheetData")
        head = self.xml[:head_end]
        new = re.sub(rb'tabSelected="(?:1|true)"', b'tabSelected="0"', head)
        if new != head:
            self.xml = new + self.xml[head_end:]
            self.changed = True

    def fill(self, cells: dict[tuple[int, int], str], styles: Styles) -> None:
        """Give each (row, col) the fill of its severity on top of its own format; create absent cells."""
        xml = self.xml
        m = re.search(rb"<sheetData\b[^>]*?(/?)>", xml)
        assert m is not None
        if m[1]:
            xml = xml[: m.start()] + b"<sheetData></sheetData>" + xml[m.end() :]
            m = re.search(rb"<sheetData\b[^>]*?(/?)>", xml)
            assert m is not None
        start = m.end()
        end = xml.rfind(b"</sheetData>")
        if end < start:
            raise Unsupported("no </sheetData>")
        col_styles = self.column_styles(xml[: m.start()])
        # Every row indexed once (its number and where its tag starts), then found by bisection: one pass over
        # the sheet whatever the number of marked rows (a search per row scanned to the end for each absent one).
        numbers, starts = array("q"), array("q")
        for found in _ROW_TAG.finditer(xml, start, end):
            numbers.append(int(found[1]))
            starts.append(found.start())
        if len(numbers) != xml.count(b"<row", start, end):
            raise Unsupported("a row without its number")
        if any(a >= b for a, b in itertools.pairwise(numbers)):
            raise Unsupported("rows out of order")
        by_row: dict[int, dict[int, str]] = {}
        for (row, col), severity in cells.items():
            by_row.setdefault(row, {})[col] = severity

        def locate(row: int) -> tuple[re.Match[bytes] | None, int]:
            """The row's start tag, or None and where a new row goes."""
            i = bisect.bisect_left(numbers, row)
            if i == len(numbers):
                return None, end
            if numbers[i] != row:
                return None, starts[i]
            return _ROW_TAG.match(xml, starts[i]), starts[i]

        pieces: list[bytes] = []
        pos = 0
        grown: list[tuple[int, int]] = []
        for row in sorted(by_row):
            tag, at = locate(row)
            if at < pos:
                raise Unsupported("rows out of order")
            if tag is not None:
                if tag[2]:
                    body, row_end = b"", tag.end()
                else:
                    close = xml.index(b"</row>", tag.end())
                    body, row_end = xml[tag.end() : close], close + len(b"</row>")
                new_tag, new_body = self._fill_row(row, tag[0], body, by_row[row], col_styles, styles, grown)
                pieces += [xml[pos:at], new_tag[:-2] + b">" if tag[2] else new_tag, new_body, b"</row>"]
                pos = row_end
            else:
                _, new_body = self._fill_row(row, b"", b"", by_row[row], col_styles, styles, grown)
                pieces += [xml[pos:at], f'<row r="{row}">'.encode(), new_body, b"</row>"]
                pos = at
        pieces.append(xml[pos:])
        self.xml = self._grow_dimension(b"".join(pieces), grown)
        self.changed = True

    def _fill_row(
        self,
        row: int,
        tag: bytes,
        body: bytes,
        wanted: dict[int, str],
        col_styles: list[tuple[int, int, int]],
        styles: Styles,
        grown: list[tuple[int, int]],
    ) -> tuple[bytes, bytes]:
        row_attrs = attrs(tag)
        row_style = int(row_attrs["s"]) if row_attrs.get("customFormat") in ("1", "true") and "s" in row_attrs else None
        pieces: list[bytes] = []
        pos = 0
        todo = sorted(wanted)
        inserted = False

        def blank(col: int) -> bytes:
            style = row_style
            if style is None:
                style = next((s for lo, hi, s in col_styles if lo <= col <= hi), 0)
            grown.append((row, col))
            ref = f"{get_column_letter(col)}{row}"
            return f'<c r="{ref}" s="{styles.restyle(style, wanted[col])}"/>'.encode()

        last_col = 0
        for m in _CELL.finditer(body):
            ref = _CELL_REF.search(m[0], 0, m[0].index(b">"))
            if ref is None or int(ref[2]) != row:
                raise Unsupported("a cell without its address")
            col = _col_number(ref[1])
            if col <= last_col:
                raise Unsupported("cells out of order")
            last_col = col
            while todo and todo[0] < col:
                pieces += [body[pos : m.start()], blank(todo.pop(0))]
                pos = m.start()
                inserted = True
            if todo and todo[0] == col:
                todo.pop(0)
                cell = m[0]
                tag_end = cell.index(b">") + 1
                start = cell[:tag_end]
                style = int(attrs(start).get("s", "0"))
                start = set_attrs(start, {"s": str(styles.restyle(style, wanted[col]))})
                pieces += [body[pos : m.start()], start, cell[tag_end:]]
                pos = m.end()
        tail = body[pos:]
        ext = tail.find(b"<extLst")
        cut = ext if ext >= 0 else len(tail)
        pieces.append(tail[:cut])
        while todo:
            pieces.append(blank(todo.pop(0)))
            inserted = True
        pieces.append(tail[cut:])
        if inserted and tag:
            tag = drop_attr(tag, "spans")  # an optional hint, now wrong
        return tag, b"".join(pieces)

    def _grow_dimension(self, xml: bytes, cells: list[tuple[int, int]]) -> bytes:
        if not cells:
            return xml
        m = re.search(rb'<dimension\b[^>]*?\sref="([^"]*)"[^>]*>', xml)
        if m is None:
            return xml
        bounds = cell_range(m[1].decode())
        if bounds is None:
            return xml
        min_col, min_row, max_col, max_row = bounds
        for row, col in cells:
            min_col, min_row = min(min_col, col), min(min_row, row)
            max_col, max_row = max(max_col, col), max(max_row, row)
        ref = f"{get_column_letter(min_col)}{min_row}:{get_column_letter(max_col)}{max_row}"
        return xml[: m.start(1)] + ref.encode() + xml[m.end(1) :]

    def add_legacy_drawing(self, rel_id: str) -> None:
        sheet_data_end = max(self.xml.rfind(b"</sheetData>"), 0)
        m = _AFTER_LEGACY_DRAWING.search(self.xml, sheet_data_end)
        at = m.start() if m else self.xml.rindex(b"</worksheet>")
        tag = f'<legacyDrawing xmlns:r="{REL_NS}" r:id="{rel_id}"/>'.encode()
        self.xml = self.xml[:at] + tag + self.xml[at:]
        self.changed = True

    def legacy_drawing_id(self) -> str | None:
        m = re.search(rb'<legacyDrawing\b[^>]*?\s[\w]+:id="([^"]+)"', self.xml)
        return m[1].decode() if m else None
