"""Stamped workbooks: the template locked, validated and prefilled once per round, then one patched copy per agency."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

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
from collect.xlsx import book, properties, protection
from collect.xlsx.book import Worksheet, column_letter
from collect.xlsx.dates import to_serial
from collect.xlsx.filling import ZipTemplate, fill_cells, parts

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
            c.key: column_letter(self.layout.first_col + i) for i, c in enumerate(coll.columns)}
        self._locked_style: dict[str, int] = {}  # locked_prefill column key -> xf index of its locked look
        self._members, self._data_part, self._stamp_part = self._build()
        self._zip = ZipTemplate([(name, data, when) for name, (when, data) in self._members.items()])

    # The base workbook is built once with openpyxl; each copy only rewrites three XML parts.
    def _build(self) -> tuple[dict[str, tuple[tuple[int, ...], bytes]], str, str]:
        coll, lay = self.coll, self.layout
        wb = book.open_book(coll.template_path)
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
            protection.set_locked(cell, True)
        lists = wb.create_sheet(LISTS_SHEET)
        protection.hide(lists)
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
                protection.set_locked(ws[ref], False)
            dv = None if col.key in in_sentence else self._validation(col, lists, list_col + 1)
            if col.choices and dv is not None and dv.formula1 and dv.formula1.startswith("'"):
                list_col += 1
            if dv is not None:
                protection.add(ws, dv, rng)
        for ref in coll.meta.sentences:  # a sentence field is typed in, even one holding only totals (checked)
            protection.set_locked(ws[ref], False)
        protection.lock_row_and_column_styles(ws)  # only the input cells unlocked one by one above are for typing
        protection.lock_sheet(ws, allow_resize=True, allow_filter=True)
        for other in wb.worksheets:
            if other is not ws:
                protection.lock_sheet(other)
        stamp_ws = wb.create_sheet(STAMP_SHEET)
        for i, fname in enumerate(STAMP_FIELDS, start=1):
            stamp_ws.cell(i, 1, fname)
            stamp_ws.cell(i, 2).number_format = "@"
        protection.lock_sheet(stamp_ws)
        protection.hide(stamp_ws, very=True)
        # A locked, greyed twin of each locked_prefill column's input style, for the cells render() prefills. The
        # twin is parked on the stamp sheet so openpyxl writes it to the style sheet; its index is stable.
        for i, col in enumerate(c for c in coll.columns if c.locked_prefill and c.is_input):
            twin = stamp_ws.cell(1, 4 + i)
            book.copy_look(ws[f"{self.letters[col.key]}{lay.data_first_row}"], twin)  # the input cell's look
            protection.set_locked(twin, True)
            twin.fill = PREFILL_FILL
            self._locked_style[col.key] = twin.style_id
        if not lists.max_row or (lists.max_column == 1 and lists["A1"].value is None):
            wb.remove(lists)
        wb.active = wb.sheetnames.index(lay.sheet)
        protection.lock_structure(wb)
        known = {"collection": coll.id, "round": self.round_id, "version": coll.version}
        properties.set_strings(wb, {PROP_PREFIX + f: known.get(f, _PLACEHOLDER.format(f)) for f in STAMP_FIELDS})
        index = {ws_.title: i for i, ws_ in enumerate(wb.worksheets, start=1)}
        data_part = f"xl/worksheets/sheet{index[lay.sheet]}.xml"
        stamp_part = f"xl/worksheets/sheet{index[STAMP_SHEET]}.xml"
        members = parts(book.to_bytes(wb))
        for part in (data_part, stamp_part):
            if part not in members:
                raise RuntimeError(f"openpyxl wrote no {part}")
        return members, data_part, stamp_part

    def _validation(self, col: ColumnSpec, lists: Worksheet, list_col: int) -> Any:
        """The data validation of an input column (None for a free text); a long list of choices goes down column
        `list_col` of the hidden lists sheet."""
        common: dict[str, Any] = dict(title=col.title, error_title=f"{col.title} 填寫錯誤")
        hint = (col.hint + " ") if col.hint else ""
        if col.choices:
            formula = protection.inline_list(col.choices) or protection.sheet_list(lists, list_col, col.choices)
            shown = "、".join(col.choices)
            return protection.validation("list", formula1=formula, prompt=f"{hint}請從清單選擇：{shown}",
                                         error=f"「{col.title}」只能選擇：{shown}", **common)
        if col.kind == "date":
            lo_d, hi_d = col.date_bounds(self.round_id)
            lo = lo_d or date(1912, 1, 1)
            hi = hi_d or date(2111, 12, 31)
            return protection.validation("date", operator="between", formula1=str(to_serial(lo)),
                                         formula2=str(to_serial(hi)),
                                         prompt=f"{hint}請填日期，介於 {roc_date(lo)} 與 {roc_date(hi)} 之間（例如 "
                                                f"{roc_date(hi)}）。",
                                         error=f"「{col.title}」應為 {roc_date(lo)} 至 {roc_date(hi)} 之間的日期。",
                                         **common)
        if col.kind in ("whole", "decimal"):
            lo_n = col.ge if col.ge is not None else -999_999_999_999_999
            hi_n = col.le if col.le is not None else 999_999_999_999_999
            unit = "新臺幣元，整數" if col.money else ("整數" if col.kind == "whole" else "數字")
            bound = f"，不可小於 {lo_n:,}" if col.ge is not None else ""
            return protection.validation(col.kind, operator="between", formula1=str(lo_n), formula2=str(hi_n),
                                         prompt=f"{hint}請填{unit}{bound}。",
                                         error=f"「{col.title}」應為{unit}{bound}。", **common)
        if col.max_length:
            return protection.validation("textLength", operator="lessThanOrEqual", formula1=str(col.max_length),
                                         prompt=f"{hint}{'必填，' if col.required else ''}最多 {col.max_length} 個字。",
                                         error=f"「{col.title}」最多 {col.max_length} 個字。", **common)
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
