"""Stamped workbooks: the template locked, validated and prefilled once per round, then one patched copy per agency."""

from __future__ import annotations

import hashlib
import hmac
import io
import re
import struct
import zipfile
import zlib
from collections.abc import Callable, Mapping, Sequence
from copy import copy as shallow_copy
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import openpyxl
from openpyxl.packaging.custom import StringProperty
from openpyxl.styles import Protection
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.datavalidation import DataValidation

from collect.archive import write_atomic
from collect.forms.spec import (
    LISTS_SHEET,
    NAME_AGENCY_CODE,
    NAME_AGENCY_NAME,
    NAME_DEADLINE,
    NAME_PERIOD,
    NAME_SUPERVISOR,
    STAMP_SHEET,
    Collection,
    ColumnSpec,
    Layout,
)
from collect.forms.template import DATE_FORMAT, MONEY_FORMAT, PREFILL_FILL
from collect.rounds import roc_date, roc_round_label
from collect.xlsx.dates import to_serial

PROP_PREFIX = "collect."
STAMP_FIELDS = ("collection", "round", "agency", "version", "token")
_PLACEHOLDER = "@@collect:{}@@"


# -- the stamp ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Stamp:
    """What identifies a stamped workbook: collection, round, agency, template version and the HMAC token."""

    collection: str
    round: str
    agency: str
    version: str
    token: str

    def fields(self) -> dict[str, str]:
        return {f: getattr(self, f) for f in STAMP_FIELDS}


def make_token(secret: bytes, collection: str, round_id: str, agency: str, version: str) -> str:
    msg = "\x1f".join(("collect-stamp-v1", collection, round_id, agency, version)).encode("utf-8")
    return hmac.new(secret, msg, hashlib.sha256).hexdigest()[:32]


def make_stamp(secret: bytes, collection: str, round_id: str, agency: str, version: str) -> Stamp:
    return Stamp(collection, round_id, agency, version, make_token(secret, collection, round_id, agency, version))


def verify(stamp: Stamp, secret: bytes) -> bool:
    expected = make_token(secret, stamp.collection, stamp.round, stamp.agency, stamp.version)
    return hmac.compare_digest(expected, stamp.token)


# -- one agency's copy -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AgencyCopy:
    """What differs between two agencies' workbooks of the same round."""

    code: str
    name: str
    supervisor: str
    rows: Sequence[Mapping[str, Any]] = ()  # prefilled data rows: column key -> value
    fields: Mapping[str, Any] = field(default_factory=dict)  # header field key -> value (Meta.fields)


def file_name(code: str, name: str) -> str:
    safe = re.sub(r'[\\/:*?"<>|\s]+', "_", name).strip("._") or "agency"
    return f"{code}-{safe}.xlsx"


class RoundBook:
    """A template prepared for one round: locked, validated, stamped with placeholders; copied per agency."""

    def __init__(self, coll: Collection, round_id: str, deadline: date) -> None:
        assert coll.layout is not None
        self.coll = coll
        self.layout: Layout = coll.layout
        self.round_id = round_id
        self.deadline = deadline
        self.letters = dict(self.layout.letters) or {
            c.key: get_column_letter(self.layout.first_col + i) for i, c in enumerate(coll.columns)}
        self._locked_style: dict[str, int] = {}  # locked_prefill column key -> xf index of its locked look
        self._members, self._data_part, self._stamp_part = self._build()
        self._zip = ZipTemplate([(name, data, info.date_time) for name, (info, data) in self._members.items()])

    # The base workbook is built once with openpyxl; each copy only rewrites three XML parts.
    def _build(self) -> tuple[dict[str, tuple[zipfile.ZipInfo, bytes]], str, str]:
        coll, lay = self.coll, self.layout
        wb = openpyxl.load_workbook(coll.template_path)
        ws = wb[lay.sheet]
        for key in (NAME_AGENCY_CODE, NAME_AGENCY_NAME, NAME_SUPERVISOR, NAME_PERIOD):
            if key in lay.identity:  # the visible identity cells are optional: the stamp is what identifies
                ws[lay.identity[key]].number_format = "@"
        if NAME_DEADLINE in lay.identity:
            ws[lay.identity[NAME_DEADLINE]].number_format = DATE_FORMAT
        for f in coll.meta.fields:
            cell = ws[lay.fields[f.key]]
            cell.number_format = (MONEY_FORMAT if f.money else DATE_FORMAT if f.kind == "date" else
                                  "@" if f.kind == "text" else cell.number_format)
            cell.protection = Protection(locked=True)
        lists = wb.create_sheet(LISTS_SHEET)
        lists.sheet_state = "hidden"
        list_col = 0
        data_rows = lay.data_rows
        in_sentence = coll.meta.sentence_keys()  # typed inside a printed sentence: the cell is open, no validation
        for col in coll.columns:
            if not col.is_input:
                continue
            if col.locked_prefill and coll.meta.fixed_rows:
                continue  # rows come only from the prefill: the whole column stays locked
            if col.key in lay.cells:  # a cell form: the input is one cell
                targets = [lay.cells[col.key]]
                rng = targets[0]
            else:
                letter = self.letters[col.key]
                targets = [f"{letter}{r}" for r in data_rows]
                rng = " ".join(_runs(letter, data_rows))
            for ref in targets:
                ws[ref].protection = Protection(locked=False)
            dv = None if col.key in in_sentence else self._validation(col, lists, list_col)
            if col.choices and dv is not None and dv.formula1 and dv.formula1.startswith("'"):
                list_col += 1
            if dv is not None:
                dv.add(rng)
                ws.add_data_validation(dv)
        for ref in coll.meta.sentences:  # a sentence field is typed in, even one holding only totals (checked)
            ws[ref].protection = Protection(locked=False)
        # Excel locks a cell by its own style, else its row's, else its column's. openpyxl drops empty cells of
        # the default style when it saves, so an unlocked row or column style (whole columns unlocked in Excel)
        # would unlock them: only the data range's input cells, unlocked one by one above, are for typing.
        for dim in [*ws.column_dimensions.values(), *ws.row_dimensions.values()]:
            if dim.has_style and not dim.protection.locked:
                dim.protection = Protection(locked=True)
        ws.protection.sheet = True
        ws.protection.formatColumns = False
        ws.protection.formatRows = False
        ws.protection.autoFilter = False
        for other in wb.worksheets:
            if other is not ws:
                other.protection.sheet = True
        stamp_ws = wb.create_sheet(STAMP_SHEET)
        for i, fname in enumerate(STAMP_FIELDS, start=1):
            stamp_ws.cell(i, 1, fname)
            stamp_ws.cell(i, 2).number_format = "@"
        stamp_ws.protection.sheet = True
        stamp_ws.sheet_state = "veryHidden"
        # A locked, greyed twin of each locked_prefill column's input style, for the cells render() prefills. The
        # twin is parked on the stamp sheet so openpyxl writes it to the style sheet; its index is stable.
        for i, col in enumerate(c for c in coll.columns if c.locked_prefill and c.is_input):
            source = ws[f"{self.letters[col.key]}{lay.data_first_row}"]
            twin = stamp_ws.cell(1, 4 + i)
            for part in ("font", "border", "alignment"):  # the input cell's look, through openpyxl's public styles
                setattr(twin, part, shallow_copy(getattr(source, part)))
            twin.number_format = source.number_format
            twin.protection = Protection(locked=True)
            twin.fill = PREFILL_FILL
            self._locked_style[col.key] = twin.style_id
        if not lists.max_row or (lists.max_column == 1 and lists["A1"].value is None):
            wb.remove(lists)
        wb.active = wb.sheetnames.index(lay.sheet)
        wb.security = openpyxl.workbook.protection.WorkbookProtection(lockStructure=True)
        for fname in STAMP_FIELDS:
            value = {"collection": coll.id, "round": self.round_id, "version": coll.version}.get(
                fname, _PLACEHOLDER.format(fname))
            props: Any = wb.custom_doc_props  # type: ignore[attr-defined]
            props.append(StringProperty(name=PROP_PREFIX + fname, value=value))
        buf = io.BytesIO()
        wb.save(buf)
        index = {ws_.title: i for i, ws_ in enumerate(wb.worksheets, start=1)}
        data_part = f"xl/worksheets/sheet{index[lay.sheet]}.xml"
        stamp_part = f"xl/worksheets/sheet{index[STAMP_SHEET]}.xml"
        members: dict[str, tuple[zipfile.ZipInfo, bytes]] = {}
        with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as zf:
            for info in zf.infolist():
                members[info.filename] = (info, zf.read(info))
        for part in (data_part, stamp_part):
            if part not in members:
                raise RuntimeError(f"openpyxl wrote no {part}")
        return members, data_part, stamp_part

    def _validation(self, col: ColumnSpec, lists: Any, list_col: int) -> DataValidation | None:
        title = col.title[:32]
        common: dict[str, Any] = dict(allow_blank=True, showErrorMessage=True, showInputMessage=True,
                                      promptTitle=title, errorTitle=f"{col.title} 填寫錯誤"[:32], errorStyle="stop")
        hint = (col.hint + " ") if col.hint else ""
        if col.choices:
            joined = ",".join(col.choices)
            if len(joined) <= 250 and not any("," in c or '"' in c for c in col.choices):
                formula = f'"{joined}"'
            else:
                letter = get_column_letter(list_col + 1)
                for i, choice in enumerate(col.choices, start=1):
                    lists.cell(i, list_col + 1, choice)
                formula = f"'{LISTS_SHEET}'!${letter}$1:${letter}${len(col.choices)}"
            shown = "、".join(col.choices)
            return DataValidation(type="list", formula1=formula, prompt=_cut(f"{hint}請從清單選擇：{shown}"),
                                  error=_cut(f"「{col.title}」只能選擇：{shown}"), **common)
        if col.kind == "date":
            lo_d, hi_d = col.date_bounds(self.round_id)
            lo = lo_d or date(1912, 1, 1)
            hi = hi_d or date(2111, 12, 31)
            return DataValidation(type="date", operator="between", formula1=str(to_serial(lo)),
                                  formula2=str(to_serial(hi)),
                                  prompt=_cut(f"{hint}請填日期，介於 {roc_date(lo)} 與 {roc_date(hi)} 之間（例如 "
                                              f"{roc_date(hi)}）。"),
                                  error=_cut(f"「{col.title}」應為 {roc_date(lo)} 至 {roc_date(hi)} 之間的日期。"),
                                  **common)
        if col.kind in ("whole", "decimal"):
            kind = "whole" if col.kind == "whole" else "decimal"
            lo_n = col.ge if col.ge is not None else -999_999_999_999_999
            hi_n = col.le if col.le is not None else 999_999_999_999_999
            unit = "新臺幣元，整數" if col.money else ("整數" if kind == "whole" else "數字")
            bound = f"，不可小於 {lo_n:,}" if col.ge is not None else ""
            return DataValidation(type=kind, operator="between", formula1=str(lo_n), formula2=str(hi_n),  # type: ignore[arg-type]
                                  prompt=_cut(f"{hint}請填{unit}{bound}。"),
                                  error=_cut(f"「{col.title}」應為{unit}{bound}。"), **common)
        if col.max_length:
            return DataValidation(type="textLength", operator="lessThanOrEqual", formula1=str(col.max_length),
                                  prompt=_cut(f"{hint}{'必填，' if col.required else ''}最多 {col.max_length} 個字。"),
                                  error=_cut(f"「{col.title}」最多 {col.max_length} 個字。"), **common)
        return None

    def render(self, copy: AgencyCopy, stamp: Stamp) -> bytes:
        """The bytes of one agency's stamped workbook."""
        lay = self.layout
        identity = {NAME_AGENCY_CODE: copy.code, NAME_AGENCY_NAME: copy.name, NAME_SUPERVISOR: copy.supervisor,
                    NAME_PERIOD: roc_round_label(self.round_id), NAME_DEADLINE: self.deadline}
        cells: dict[str, Any] = {lay.identity[name]: value for name, value in identity.items() if name in lay.identity}
        for key, value in copy.fields.items():
            if key in lay.fields and value is not None:
                cells[lay.fields[key]] = value
        if len(copy.rows) > lay.max_rows:
            raise ValueError(f"{copy.code}: {len(copy.rows)} prefilled rows exceed the form's {lay.max_rows}")
        styles: dict[str, int] = {}
        for row, r in zip(copy.rows, lay.data_rows, strict=False):
            for key, value in row.items():
                if key in self.letters and value is not None and self.coll.column(key).is_input:
                    ref = f"{self.letters[key]}{r}"
                    cells[ref] = value
                    if key in self._locked_style:
                        styles[ref] = self._locked_style[key]
        stamp_cells = {f"B{i}": v for i, v in enumerate(stamp.fields().values(), start=1)}
        changed: dict[str, bytes] = {
            self._data_part: self._fill_data(cells, styles),
            self._stamp_part: fill_cells(self._members[self._stamp_part][1], stamp_cells),
        }
        if "docProps/custom.xml" in self._members:
            custom = self._members["docProps/custom.xml"][1]
            for fname in ("agency", "token"):
                custom = custom.replace(_PLACEHOLDER.format(fname).encode(), escape(getattr(stamp, fname)).encode())
            changed["docProps/custom.xml"] = custom
        return self._zip.build(changed)

    def _fill_data(self, cells: dict[str, Any], styles: dict[str, int]) -> bytes:
        """Fill the data sheet; without prefilled rows only the part above the input rows is scanned."""
        xml = self._members[self._data_part][1]
        first = self.layout.data_first_row
        if any(int(re.sub(r"[A-Z]", "", ref)) >= first for ref in cells):
            return fill_cells(xml, cells, styles)
        cut = xml.find(f'<row r="{first}"'.encode())
        if cut < 0:
            return fill_cells(xml, cells, styles)
        return fill_cells(xml[:cut], cells, styles) + xml[cut:]


class ZipTemplate:
    """A zip package whose unchanged members are compressed once; build() writes a copy with some parts replaced."""

    def __init__(self, members: list[tuple[str, bytes, tuple[int, ...]]]) -> None:
        self._members = [(name, _dos_time(when), *_pack(data)) for name, data, when in members]

    def build(self, changed: Mapping[str, bytes]) -> bytes:
        out = io.BytesIO()
        central = []
        for name, (dtime, ddate), crc, size, packed in self._members:
            if name in changed:
                crc, size, packed = _pack(changed[name])
            raw_name = name.encode("utf-8")
            flags = 0x800 if not raw_name.isascii() else 0
            offset = out.tell()
            out.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, flags, 8, dtime, ddate, crc, len(packed), size,
                                  len(raw_name), 0))
            out.write(raw_name)
            out.write(packed)
            central.append(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, flags, 8, dtime, ddate, crc,
                                       len(packed), size, len(raw_name), 0, 0, 0, 0, 0, offset) + raw_name)
        start = out.tell()
        for entry in central:
            out.write(entry)
        out.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(central), len(central), out.tell() - start, start,
                              0))
        return out.getvalue()


def _pack(data: bytes) -> tuple[int, int, bytes]:
    deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
    return zlib.crc32(data), len(data), deflate.compress(data) + deflate.flush()


def _dos_time(when: tuple[int, ...]) -> tuple[int, int]:
    year, month, day, hour, minute, second = (tuple(when) + (0,) * 6)[:6]
    return (hour << 11) | (minute << 5) | (second // 2), (max(year, 1980) - 1980) << 9 | (month << 5) | day


def _runs(letter: str, rows: Sequence[int]) -> list[str]:
    """A column's rows as ranges of consecutive rows: E7:E22 E24:E30 (the form's total rows left out)."""
    out: list[str] = []
    start = prev = None
    for r in [*rows, None]:
        if r is not None and prev is not None and r == prev + 1:
            prev = r
            continue
        if start is not None:
            out.append(f"{letter}{start}" if start == prev else f"{letter}{start}:{letter}{prev}")
        start = prev = r
    return out


def _cut(text: str, limit: int = 255) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# openpyxl writes an empty cell as <c .../> with xml.etree and as <c ...></c> when lxml is installed.
_EMPTY_CELL = re.compile(rb'<c r="([A-Z]{1,3}[0-9]{1,7})"((?: [a-z]+="[^"]*")*)\s*(?:/>|></c>)')


def cell_xml(ref: str, attrs: str, value: Any, style: int | None = None) -> str:
    """One filled <c> element; strings go inline so sharedStrings.xml never changes; `style` replaces its xf."""
    attrs = re.sub(r' t="[^"]*"', "", attrs)
    if style is not None:
        attrs = re.sub(r' s="[^"]*"', "", attrs) + f' s="{style}"'
    if isinstance(value, bool):
        return f'<c r="{ref}"{attrs} t="b"><v>{int(value)}</v></c>'
    if isinstance(value, int | float | Decimal):
        return f'<c r="{ref}"{attrs}><v>{value}</v></c>'
    if isinstance(value, date | datetime):
        return f'<c r="{ref}"{attrs}><v>{to_serial(value)}</v></c>'
    text = escape(_xml_safe(str(value)))
    return f'<c r="{ref}"{attrs} t="inlineStr"><is><t xml:space="preserve">{text}</t></is></c>'


def _xml_safe(text: str) -> str:
    return re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f]", "", text)


def fill_cells(xml: bytes, cells: Mapping[str, Any], styles: Mapping[str, int] | None = None) -> bytes:
    """Fill empty (styled) cells of a worksheet part in place; every target cell must exist as an empty <c/>.

    `styles` gives some of those cells another xf index (e.g. the locked look of a prefilled locked cell).
    """
    remaining = dict(cells)
    restyle = styles or {}

    def sub(m: re.Match[bytes]) -> bytes:
        ref = m.group(1).decode()
        if ref not in remaining:
            return m.group(0)
        return cell_xml(ref, m.group(2).decode(), remaining.pop(ref), restyle.get(ref)).encode("utf-8")

    out = _EMPTY_CELL.sub(sub, xml)
    if remaining:
        raise ValueError(f"the template has no empty styled cell at {', '.join(sorted(remaining))}")
    return out


@dataclass(frozen=True)
class Issued:
    agency: str
    path: Path
    stamp: Stamp


def issue_round(
    coll: Collection,
    round_id: str,
    deadline: date,
    copies: Sequence[AgencyCopy],
    secret: bytes,
    out_dir: Path,
    progress: Callable[[AgencyCopy], None] | None = None,
) -> list[Issued]:
    """Write one stamped workbook per agency into out_dir; returns what was written."""
    book = RoundBook(coll, round_id, deadline)
    done = []
    for copy in copies:
        stamp = make_stamp(secret, coll.id, round_id, copy.code, coll.version)
        path = out_dir / file_name(copy.code, copy.name)
        write_atomic(path, book.render(copy, stamp))
        done.append(Issued(copy.code, path, stamp))
        if progress:
            progress(copy)
    return done
