"""An OOXML package to patch: its parts (read safely, changed, added, removed), relationships, content types and
the workbook's sheet→part lookup; saved carrying only the parts its relationships reach."""

from __future__ import annotations

import io
import posixpath
import re
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote

from collect.xlsx.xmltext import UnreadablePart, attrs, esc_attr, safe_part

MAIN_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
REL_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PKG_REL_NS = "http://schemas.openxmlformats.org/package/2006/relationships"
RT_OFFICE_DOCUMENT = REL_NS + "/officeDocument"
RT_WORKSHEET = REL_NS + "/worksheet"
RT_STYLES = REL_NS + "/styles"
RT_COMMENTS = REL_NS + "/comments"
RT_VML = REL_NS + "/vmlDrawing"
RT_VBA = "http://schemas.microsoft.com/office/2006/relationships/vbaProject"
CT_PART = "[Content_Types].xml"
CT_WORKBOOK = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"
CT_WORKSHEET = "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"
CT_COMMENTS = "application/vnd.openxmlformats-officedocument.spreadsheetml.comments+xml"
CT_VML = "application/vnd.openxmlformats-officedocument.vmlDrawing"
XML_DECL = b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'

_MAX_PART_NAME = 255
_XML_SUFFIXES = (".xml", ".rels", ".vml")


class Unsupported(Exception):
    """A package the patcher does not handle (its message says what); the caller rebuilds it and patches that."""


def require_root(xml: bytes, tag: bytes) -> None:
    """The part's root element is `tag` without a namespace prefix (what the byte-level edits expect)."""
    if xml.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise Unsupported("UTF-16 part")
    if not re.search(rb"<" + tag + rb"[\s>/]", xml[:4096]):
        raise Unsupported(f"no plain <{tag.decode()}> root")


def is_xml(name: str) -> bool:
    return name.lower().endswith(_XML_SUFFIXES)


def safe_part_name(name: str) -> bool:
    """A member name a copy may carry: relative, normalised and plain (no "..", no backslash, drive or control
    character), and short."""
    if not name or len(name) > _MAX_PART_NAME or name.startswith("/") or "\\" in name or ":" in name:
        return False
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        return False
    return all(segment not in ("", ".", "..") for segment in name.split("/"))


class Package:
    """The parts of a zip package: read lazily, changed, added or removed, then written back in their order. A save
    carries only the parts reached through the package's relationships, under plain names, with every XML part made
    safe (xmltext.safe_part: unsafe characters shown, text over `max_chars` cut)."""

    def __init__(self, data: bytes, known: Mapping[str, bytes], max_chars: int) -> None:
        self.zip = zipfile.ZipFile(io.BytesIO(data))
        self.known = known  # members already decompressed, by name
        self.max_chars = max_chars
        self.infos = [i for i in self.zip.infolist() if not i.is_dir()]
        self.names = {i.filename for i in self.infos}
        if len({n.casefold() for n in self.names}) != len(self.infos):
            raise Unsupported("duplicate part names")
        self.changed: dict[str, bytes] = {}
        self.removed: set[str] = set()

    def exists(self, name: str) -> bool:
        return (name in self.names or name in self.changed) and name not in self.removed

    def read(self, name: str) -> bytes:
        if name in self.changed:
            return self.changed[name]
        if not self.exists(name):
            raise Unsupported(f"missing part {name}")
        body = self.known[name] if name in self.known else self.zip.read(name)
        if not is_xml(name):
            return body
        try:
            return safe_part(body, self.max_chars)
        except UnreadablePart as exc:
            raise Unsupported(str(exc)) from exc

    def write(self, name: str, body: bytes) -> None:
        self.changed[name] = body
        self.removed.discard(name)

    def remove(self, name: str) -> None:
        self.removed.add(name)
        self.changed.pop(name, None)

    def all_names(self) -> set[str]:
        return {n for n in self.names | set(self.changed) if self.exists(n)}

    def free_name(self, pattern: str) -> str:
        taken = {n.casefold() for n in self.names | set(self.changed)}
        n = 1
        while pattern.format(n).casefold() in taken:
            n += 1
        return pattern.format(n)

    def reachable(self) -> set[str]:
        """The parts reached from the package's relationships (with their own .rels parts) and [Content_Types].xml:
        what a save carries. A part no relationship names stays behind."""
        keep = {CT_PART}
        todo = [""]
        while todo:
            part = todo.pop()
            rels = rels_part(part)
            if self.exists(rels):
                keep.add(rels)
            for rel in read_rels(self, part):
                if not rel.external and rel.target not in keep and self.exists(rel.target):
                    keep.add(rel.target)
                    todo.append(rel.target)
        unsafe = next((name for name in keep if not safe_part_name(name)), None)
        if unsafe is not None:  # a relationship the copy cannot keep: openpyxl builds the package anew
            raise Unsupported(f"a part named {unsafe[:80]!r}")
        return keep

    def save(self) -> bytes:
        out = io.BytesIO()
        added = dict(self.changed)
        keep = self.reachable()
        if CT_PART in added:
            added[CT_PART] = _known_types(added[CT_PART], keep)
        when = (2026, 1, 1, 0, 0, 0)
        # level 1: deflating the agency's sheets again is most of this path's time; level 6 saves ~15% of bytes
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as dst:
            for info in self.infos:
                name = info.filename
                if name in self.removed or name not in keep:
                    continue
                body = added.pop(name, None)
                if body is None:
                    body = self.read(name)
                dst.writestr(zipfile.ZipInfo(name, when), body, zipfile.ZIP_DEFLATED, 1)  # no mode bits, no links
            for name, body in added.items():
                if name in keep:
                    dst.writestr(zipfile.ZipInfo(name, when), body, zipfile.ZIP_DEFLATED, 1)
        return out.getvalue()


def _known_types(xml: bytes, keep: set[str]) -> bytes:
    """[Content_Types].xml without the overrides of parts the copy does not carry."""
    kept = {name.casefold() for name in keep}

    def override(m: re.Match[bytes]) -> bytes:
        part = unquote(attrs(m[0][: m[0].index(b">") + 1]).get("PartName", "")).lstrip("/")
        return m[0] if part.casefold() in kept else b""

    return re.sub(rb"<Override\b[^>]*?(?:/>|>\s*</Override>)", override, xml)


# --- relationships ----------------------------------------------------------------------------------------------


@dataclass
class Rel:
    id: str
    type: str
    target: str  # the part name it points to (resolved), or the raw target when external
    external: bool


def rels_part(part: str) -> str:
    folder, _, base = part.rpartition("/")
    return f"{folder}/_rels/{base}.rels" if folder else f"_rels/{base}.rels"


def _resolve(part: str, target: str) -> str:
    target = unquote(target)
    if target.startswith("/"):
        return target[1:]
    folder = part.rpartition("/")[0]
    return posixpath.normpath(posixpath.join(folder, target)) if folder else posixpath.normpath(target)


def _relative(part: str, target_part: str) -> str:
    return posixpath.relpath(target_part, part.rpartition("/")[0] or ".")


def read_rels(pkg: Package, part: str) -> list[Rel]:
    path = rels_part(part)
    if not pkg.exists(path):
        return []
    root = ET.fromstring(pkg.read(path))
    rels = []
    for el in root.iter(f"{{{PKG_REL_NS}}}Relationship"):
        external = el.get("TargetMode") == "External"
        target = el.get("Target", "")
        resolved = target if external else _resolve(part, target)
        rels.append(Rel(el.get("Id", ""), el.get("Type", ""), resolved, external))
    return rels


def add_rels(pkg: Package, part: str, new: list[tuple[str, str]]) -> list[str]:
    """Add relationships (type, target part) from `part`; their ids."""
    path = rels_part(part)
    existing = {r.id for r in read_rels(pkg, part)}
    ids, xml = [], []
    n = 1
    for rel_type, target in new:
        while f"rId{n}" in existing:
            n += 1
        existing.add(f"rId{n}")
        ids.append(f"rId{n}")
        xml.append(f'<Relationship Id="rId{n}" Type="{rel_type}" Target="{esc_attr(_relative(part, target))}"/>')
    if pkg.exists(path):
        body = pkg.read(path)
        require_root(body, b"Relationships")
        end = body.rindex(b"</Relationships>")
        pkg.write(path, body[:end] + "".join(xml).encode() + body[end:])
    else:
        pkg.write(path, XML_DECL + f'<Relationships xmlns="{PKG_REL_NS}">{"".join(xml)}</Relationships>'.encode())
    return ids


def remove_rel(pkg: Package, part: str, rel_id: str) -> None:
    path = rels_part(part)
    body = pkg.read(path)
    pattern = rb'<Relationship\b[^>]*\sId="' + re.escape(rel_id.encode()) + rb'"[^>]*?(?:/>|>\s*</Relationship>)'
    pkg.write(path, re.sub(pattern, b"", body, count=1))


def remove_with_rels(pkg: Package, types: ContentTypes, owner: str, rel: Rel) -> None:
    """Remove the part `rel` (from `owner`) points to, the parts it points to in turn, and the relationship."""
    for inner in read_rels(pkg, rel.target):
        if not inner.external and pkg.exists(inner.target):
            pkg.remove(inner.target)
            types.drop(inner.target)
    if pkg.exists(rels_part(rel.target)):
        pkg.remove(rels_part(rel.target))
    if pkg.exists(rel.target):
        pkg.remove(rel.target)
    types.drop(rel.target)
    remove_rel(pkg, owner, rel.id)


class ContentTypes:
    """[Content_Types].xml, edited in place."""

    def __init__(self, xml: bytes) -> None:
        require_root(xml, b"Types")
        self.xml = xml

    def override(self, part: str, content_type: str) -> None:
        name = re.escape(("/" + part).encode())
        pattern = re.compile(rb'<Override\b[^>]*\sPartName="' + name + rb'"[^>]*?/>', re.I)
        new = f'<Override PartName="/{esc_attr(part)}" ContentType="{content_type}"/>'.encode()
        if pattern.search(self.xml):
            self.xml = pattern.sub(lambda _m: new, self.xml, count=1)
        else:
            self.xml = self.xml.replace(b"</Types>", new + b"</Types>")

    def drop(self, part: str) -> None:
        name = re.escape(("/" + part).encode())
        self.xml = re.sub(rb'<Override\b[^>]*\sPartName="' + name + rb'"[^>]*?/>', b"", self.xml, flags=re.I)

    def default(self, extension: str, content_type: str) -> None:
        if not re.search(rb'<Default\b[^>]*\sExtension="' + extension.encode() + rb'"', self.xml, re.I):
            new = f'<Default Extension="{extension}" ContentType="{content_type}"/>'.encode()
            self.xml = self.xml.replace(b"</Types>", new + b"</Types>")


# --- the workbook part and its sheets ------------------------------------------------------------------------


@dataclass
class WorkbookPart:
    """The workbook part of a package: its name and XML, its relationships by id, its sheets' names in order, and
    the part of each worksheet (chart sheets have none)."""

    part: str
    xml: bytes
    rels: dict[str, Rel]
    names: list[str]
    worksheets: dict[str, str]
    sheet_ids: list[int]


def workbook_part(pkg: Package) -> WorkbookPart:
    """The sheet→part lookup of a transitional SpreadsheetML package; Unsupported for anything else."""
    office = [r for r in read_rels(pkg, "") if r.type == RT_OFFICE_DOCUMENT and not r.external]
    if len(office) != 1:
        raise Unsupported("no transitional officeDocument relationship (strict OOXML?)")
    part = office[0].target
    xml = pkg.read(part)
    require_root(xml, b"workbook")
    root = ET.fromstring(xml)
    if root.tag != f"{{{MAIN_NS}}}workbook":
        raise Unsupported("not a transitional workbook")
    rels = {r.id: r for r in read_rels(pkg, part)}
    names: list[str] = []
    worksheets: dict[str, str] = {}
    ids: list[int] = []
    for el in root.iterfind(f"{{{MAIN_NS}}}sheets/{{{MAIN_NS}}}sheet"):
        name, rel = el.get("name", ""), rels.get(el.get(f"{{{REL_NS}}}id", ""))
        if rel is None:
            raise Unsupported(f"sheet {name} has no part")
        names.append(name)
        ids.append(int(el.get("sheetId", "0")))
        if rel.type == RT_WORKSHEET and not rel.external:
            worksheets[name] = rel.target
    return WorkbookPart(part, xml, rels, names, worksheets, ids)
