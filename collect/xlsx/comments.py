"""Comments on cells, patched into a package: the comments part (the agency's own notes kept under ours) and the
VML drawing that shows each one."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET

from collect.xlsx.addresses import cell_range, get_column_letter
from collect.xlsx.package import (
    CT_COMMENTS,
    CT_VML,
    MAIN_NS,
    RT_COMMENTS,
    RT_VML,
    XML_DECL,
    ContentTypes,
    Package,
    Unsupported,
    add_rels,
    read_rels,
    require_root,
)
from collect.xlsx.sheetxml import WorksheetXml
from collect.xlsx.xmltext import esc, text_width

COMMENT_AUTHOR = "collect"
_THEIRS = "\n——\n"
_VML_NS = "urn:schemas-microsoft-com:vml"
_OFFICE_NS = "urn:schemas-microsoft-com:office:office"
_EXCEL_NS = "urn:schemas-microsoft-com:office:excel"
_SHAPES_PER_BLOCK = 1023  # VML shape ids come in blocks of 1024 per <o:idmap data="n">

for _prefix, _uri in (("v", _VML_NS), ("o", _OFFICE_NS), ("x", _EXCEL_NS)):
    ET.register_namespace(_prefix, _uri)


def comment_size(text: str) -> tuple[int, int]:
    """(width, height) in pixels of a comment box in which Chinese text is readable without resizing it."""
    width_px = 320
    chars_per_line = (width_px - 16) / 7  # half-width units at the 9 pt comment font
    lines = sum(max(1, math.ceil(text_width(line) / chars_per_line)) for line in text.split("\n"))
    return width_px, min(24 + 18 * lines, 600)


def vml_blocks(pkg: Package) -> int:
    """The first VML shape-id block that no drawing of the package uses."""
    used = [0]
    for name in pkg.all_names():
        if name.lower().endswith(".vml"):
            for data in re.findall(rb'idmap\b[^>]*?\sdata="([^"]*)"', pkg.read(name)):
                used += [int(n) for n in re.findall(rb"\d+", data)]
    return max(used) + 1


_SHAPETYPE = (
    '<v:shapetype id="_x0000_t202" coordsize="21600,21600" o:spt="202" path="m,l,21600r21600,l21600,xe">'
    '<v:stroke joinstyle="miter"/><v:path gradientshapeok="t" o:connecttype="rect"/></v:shapetype>'
)
_NS_DECLS = f'xmlns:v="{_VML_NS}" xmlns:o="{_OFFICE_NS}" xmlns:x="{_EXCEL_NS}"'


def _shape(shape_id: str, row: int, col: int, text: str, z: int, declare: bool) -> str:
    """The VML box of the comment on (row, col), 1-based."""
    width, height = comment_size(text)
    right = col + 1 + max(2, math.ceil(width / 64))
    bottom = row - 1 + max(2, math.ceil(height / 20))
    anchor = f"{col}, 15, {max(row - 2, 0)}, 10, {right}, 15, {bottom}, 4"
    decls = f" {_NS_DECLS}" if declare else ""
    return (
        f'<v:shape{decls} id="{shape_id}" type="#_x0000_t202" style="position:absolute;margin-left:59.25pt;'
        f'margin-top:1.5pt;width:{width}px;height:{height}px;z-index:{z};visibility:hidden" fillcolor="#ffffe1" '
        'o:insetmode="auto"><v:fill color2="#ffffe1"/><v:shadow on="t" color="black" obscured="t"/>'
        '<v:path o:connecttype="none"/><v:textbox style="mso-direction-alt:auto"><div style="text-align:left"></div>'
        '</v:textbox><x:ClientData ObjectType="Note"><x:MoveWithCells/><x:SizeWithCells/>'
        f"<x:Anchor>{anchor}</x:Anchor><x:AutoFill>False</x:AutoFill><x:Row>{row - 1}</x:Row>"
        f"<x:Column>{col - 1}</x:Column></x:ClientData></v:shape>"
    )


def _comment_xml(ref: str, author: int, text: str) -> bytes:
    body = f'<text><t xml:space="preserve">{esc(text)}</t></text>'
    return f'<comment ref="{ref}" authorId="{author}" shapeId="0">{body}</comment>'.encode()


def add_comments(pkg: Package, sheet: WorksheetXml, marks: dict[tuple[int, int], str], next_block: int,
                  types: ContentTypes) -> int:
    """Comment the marked cells of `sheet` (the agency's own comments kept); the next free VML block."""
    rels = read_rels(pkg, sheet.part)
    if any(r.type.endswith("/threadedComment") for r in rels):
        raise Unsupported("threaded comments")
    comments_rel = next((r for r in rels if r.type == RT_COMMENTS and not r.external), None)
    drawing_id = sheet.legacy_drawing_id()
    vml_rel = next((r for r in rels if r.id == drawing_id and not r.external), None) if drawing_id else None
    if drawing_id and (vml_rel is None or vml_rel.type != RT_VML):
        raise Unsupported("legacy drawing without its VML part")
    texts = dict(marks)

    # the comments part
    entries: dict[tuple[int, int], bytes] = {}
    if comments_rel is not None:
        body = pkg.read(comments_rel.target)
        require_root(body, b"comments")
        root = ET.fromstring(body)
        authors = [a.text or "" for a in root.iter(f"{{{MAIN_NS}}}author")]
        parsed = list(root.iter(f"{{{MAIN_NS}}}comment"))
        list_match = re.search(rb"<commentList\b[^>]*>(.*?)</commentList>", body, re.S)
        raw = re.findall(rb"<comment\b[^>]*?(?:/>|>.*?</comment>)", list_match[1], re.S) if list_match else []
        if len(raw) != len(parsed):
            raise Unsupported("comments part not understood")
        ours = authors.index(COMMENT_AUTHOR) if COMMENT_AUTHOR in authors else len(authors)
        for el, xml in zip(parsed, raw, strict=True):
            bounds = cell_range(el.get("ref", ""))
            if bounds is None:
                raise Unsupported("a comment without a cell")
            cell = (bounds[1], bounds[0])
            if cell in texts:
                author = authors[int(el.get("authorId", "0"))] if el.get("authorId", "0").isdigit() and int(
                    el.get("authorId", "0")) < len(authors) else ""
                theirs = "".join(t.text or "" for t in el.iter(f"{{{MAIN_NS}}}t"))
                if theirs and author != COMMENT_AUTHOR:
                    texts[cell] += _THEIRS + theirs  # keep the agency's own note under ours
            else:
                entries[cell] = xml
        for (row, col), text in texts.items():
            entries[(row, col)] = _comment_xml(f"{get_column_letter(col)}{row}", ours, text)
        new_list = b"<commentList>" + b"".join(entries[c] for c in sorted(entries)) + b"</commentList>"
        if list_match:
            body = body[: list_match.start()] + new_list + body[list_match.end() :]
        else:
            body = body.replace(b"</comments>", new_list + b"</comments>")
        if ours == len(authors):
            author_xml = f"<author>{esc(COMMENT_AUTHOR)}</author>".encode()
            if re.search(rb"<authors\s*/>", body):
                body = re.sub(rb"<authors\s*/>", b"<authors>" + author_xml + b"</authors>", body, count=1)
            elif b"</authors>" in body:
                body = body.replace(b"</authors>", author_xml + b"</authors>", 1)
            else:
                raise Unsupported("comments part without authors")
        pkg.write(comments_rel.target, body)
    else:
        for (row, col), text in texts.items():
            entries[(row, col)] = _comment_xml(f"{get_column_letter(col)}{row}", 0, text)
        part = pkg.free_name("xl/comments{}.xml")
        pkg.write(part, XML_DECL + (
            f'<comments xmlns="{MAIN_NS}"><authors><author>{esc(COMMENT_AUTHOR)}</author></authors><commentList>'
        ).encode() + b"".join(entries[c] for c in sorted(entries)) + b"</commentList></comments>")
        types.override(part, CT_COMMENTS)
        add_rels(pkg, sheet.part, [(RT_COMMENTS, part)])

    # the VML drawing: one box per commented cell
    need = len(texts)
    blocks = list(range(next_block, next_block + math.ceil(need / _SHAPES_PER_BLOCK)))
    ids = iter(f"_x0000_s{b * 1024 + i}" for b in blocks for i in range(1, _SHAPES_PER_BLOCK + 1))
    if vml_rel is not None:
        root = ET.fromstring(pkg.read(vml_rel.target))
        reuse: dict[tuple[int, int], str] = {}
        for shape in list(root.iter(f"{{{_VML_NS}}}shape")):
            data = shape.find(f"{{{_EXCEL_NS}}}ClientData")
            if data is None or data.get("ObjectType") != "Note":
                continue
            row, col = (int(data.findtext(f"{{{_EXCEL_NS}}}{tag}", "-9")) + 1 for tag in ("Row", "Column"))
            cell = (row, col)
            if cell in texts:
                reuse[cell] = shape.get("id") or next(ids)
                root.remove(shape)  # only top-level shapes are notes; a nested one raises ValueError: fall back
        idmap = root.find(f"{{{_OFFICE_NS}}}shapelayout/{{{_OFFICE_NS}}}idmap")
        if idmap is None:
            layout = ET.Element(f"{{{_OFFICE_NS}}}shapelayout", {f"{{{_VML_NS}}}ext": "edit"})
            idmap = ET.SubElement(layout, f"{{{_OFFICE_NS}}}idmap", {f"{{{_VML_NS}}}ext": "edit", "data": ""})
            root.insert(0, layout)
        old_blocks = (idmap.get("data") or "").replace(" ", ",").split(",")
        idmap.set("data", ",".join([*old_blocks, *map(str, blocks)]).strip(","))
        has_type = any(t.get("id") == "_x0000_t202" for t in root.iter(f"{{{_VML_NS}}}shapetype"))
        text = ET.tostring(root, encoding="unicode")
        shapes = "" if has_type else _SHAPETYPE.replace("<v:shapetype ", f"<v:shapetype {_NS_DECLS} ", 1)
        for z, ((row, col), comment) in enumerate(sorted(texts.items()), start=1):
            shapes += _shape(reuse.get((row, col)) or next(ids), row, col, comment, z, declare=True)
        end = text.rindex("</xml>")
        pkg.write(vml_rel.target, (text[:end] + shapes + text[end:]).encode())
    else:
        shapes = "".join(
            _shape(next(ids), row, col, comment, z, declare=False)
            for z, ((row, col), comment) in enumerate(sorted(texts.items()), start=1)
        )
        part = pkg.free_name("xl/drawings/vmlDrawing{}.vml")
        pkg.write(part, (
            f'<xml {_NS_DECLS}><o:shapelayout v:ext="edit"><o:idmap v:ext="edit" data="{",".join(map(str, blocks))}"/>'
            f"</o:shapelayout>{_SHAPETYPE}{shapes}</xml>"
        ).encode())
        types.default("vml", CT_VML)
        (rel_id,) = add_rels(pkg, sheet.part, [(RT_VML, part)])
        sheet.add_legacy_drawing(rel_id)
    return next_block + len(blocks)
