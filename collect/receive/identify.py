"""Identify a returned workbook by its stamp (document properties, else the hidden sheet) and check it is intact."""

from __future__ import annotations

from dataclasses import dataclass

from collect import findings as F
from collect.findings import Finding
from collect.forms.spec import IDENTITY_NAMES, NAME_AGENCY_CODE, STAMP_SHEET, Collection
from collect.forms.stamp import PROP_PREFIX, STAMP_FIELDS, Stamp, verify
from collect.receive.read import Book
from collect.receive.table import Grid, title_of
from collect.xlsx.addresses import column_index_from_string, coordinate_from_string


@dataclass(frozen=True)
class Identified:
    stamp: Stamp
    source: str  # "properties" | "sheet"


def read_stamp(book: Book) -> Identified | None:
    """The stamp as found, unverified: document properties first, else the hidden _collect sheet."""
    props = {k.removeprefix(PROP_PREFIX): str(v).strip() for k, v in book.properties.items()
             if k.startswith(PROP_PREFIX)}
    if all(props.get(f) for f in STAMP_FIELDS):
        return Identified(Stamp(*(props[f] for f in STAMP_FIELDS)), "properties")
    sheet = book.sheet(STAMP_SHEET)
    if sheet is not None:
        grid = Grid(sheet)
        values = {str(grid.get(r, 1) or "").strip(): grid.get(r, 2) for r in range(1, len(STAMP_FIELDS) + 3)}
        fields = {f: _text(values.get(f)) for f in STAMP_FIELDS}
        if all(fields.values()):
            return Identified(Stamp(*(fields[f] for f in STAMP_FIELDS)), "sheet")
    return None


def _text(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return "" if value is None else str(value).strip()


def describe(book: Book) -> str:
    """What a file without a stamp holds, in a few words, for the unidentified message."""
    names = [s.name for s in book.sheets if s.visible == "visible"][:5]
    return f"收到 {book.kind} 活頁簿，含工作表：{'、'.join(names) or '無'}，但沒有本處的識別資訊"


def check_stamp(found: Identified, secret: bytes, locale: str) -> Finding | None:
    if not verify(found.stamp, secret):
        s = found.stamp  # what the file claims, kept for staff; nothing is attributed to that agency
        return F.make("stamp.invalid", locale, value=f"{s.collection} {s.round} {s.agency} {s.version}")
    return None


def check_identity(book: Book, coll: Collection, stamp: Stamp, locale: str) -> list[Finding]:
    """The agency code on the form must still say what the stamp says."""
    lay = coll.layout
    assert lay is not None
    sheet = book.sheet(lay.sheet)
    ref = lay.identity.get(NAME_AGENCY_CODE)
    if sheet is None or not ref:
        return []
    letters, row = coordinate_from_string(ref)
    value = Grid(sheet).get(row, column_index_from_string(letters))
    if title_of(_text(value)) == title_of(stamp.agency):
        return []
    return [F.make("stamp.identity_changed", locale, sheet=lay.sheet, cell=ref,
                   column=IDENTITY_NAMES[NAME_AGENCY_CODE], value=_text(value), expected=stamp.agency)]
