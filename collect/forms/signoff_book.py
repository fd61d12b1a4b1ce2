"""The sign-off workbook (核轉表): written for one supervising agency and round, and checked when it comes back."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from collect import findings as F
from collect.counting import Count, count_agency, count_round
from collect.findings import Finding, has_errors
from collect.forms.spec import STAMP_SHEET, Collection
from collect.forms.stamp import PROP_PREFIX, STAMP_FIELDS, Stamp, make_stamp
from collect.ledger import SubmissionRow
from collect.rounds import TAIPEI, roc_date, roc_round_label
from collect.states import Verdict
from collect.workspace import Context
from collect.xlsx import book, properties, protection
from collect.xlsx.book import Alignment, Border, Font, PatternFill, Side, column_letter
from collect.xlsx.printing import PrintSetup, apply_openpyxl, footer, openpyxl_width
from collect.xlsx.style import MONEY_FORMAT

SUFFIX = ".signoff"  # the stamp's collection is "<collection>.signoff": its returns never mix with the units'
VERSION = "signoff-v1"
SHEET = "核轉表"
SIGNER_CELL, DATE_CELL = "B3", "D3"
HEADER_ROW = 5
FIRST_ROW = HEADER_ROW + 1
SIGN, RETURN = "核轉", "退回"
DECISION_CODES = {SIGN: "signed", RETURN: "returned"}
FIXED_TITLES = ("機關代碼", "機關名稱", "收件編號", "收件時間", "資料列數")
INPUT_FILL = PatternFill("solid", fgColor="FFF2CC")
HEADER_FILL = PatternFill("solid", fgColor="DDEBF7")
_THIN = Side(style="thin", color="808080")
BOX = Border(left=_THIN, right=_THIN, top=_THIN, bottom=_THIN)


def signoff_collection(cid: str) -> str:
    return cid + SUFFIX


def is_signoff(stamp: Stamp) -> bool:
    """True for a sign-off workbook's stamp (checked with the same HMAC as every stamp)."""
    return stamp.version == VERSION and stamp.collection.endswith(SUFFIX)


def collection_of(stamp: Stamp) -> str:
    return stamp.collection.removesuffix(SUFFIX)


@dataclass(frozen=True)
class UnitLine:
    """One unit's row: its counting (latest accepted, not sent back) return and that return's key totals."""

    agency: str
    name: str
    receipt: str
    received_at: datetime
    rows: int | None
    totals: dict[str, int | Decimal] = field(default_factory=dict)


def units_of(ctx: Context, supervisor: str) -> list[str]:
    """Every agency whose supervising agency (the root above it) is `supervisor`, itself included, in file order."""
    reg = ctx.registry
    return [a.code for a in reg.agencies.values() if reg.supervisor_of(a.code).code == supervisor]


def round_counts(ctx: Context, coll: Collection | str, round_id: str,
                 agencies: Iterable[str] = ()) -> dict[str, Count[SubmissionRow]]:
    """Every agency with a return in the round (and each of `agencies`) to its Count: which return counts and why
    (collect.counting), from the ledger's facts, the agency list's supervising agencies and the collection."""
    c = ctx.collection(coll) if isinstance(coll, str) else coll
    return count_round(ctx.ledger.counting_facts(c.id, round_id), _root_of(ctx), c.meta.require_signoff, agencies)


def agency_count(ctx: Context, cid: str, round_id: str, agency: str,
                 excluding: int | None = None) -> Count[SubmissionRow]:
    """One agency's Count in the round, leaving out the submission `excluding` (the one being decided)."""
    facts = ctx.ledger.counting_facts(cid, round_id, agency)
    return count_agency(agency, facts.submissions, facts, _root_of(ctx)(agency),
                        ctx.collection(cid).meta.require_signoff, excluding=excluding)


def _root_of(ctx: Context) -> Callable[[str], str | None]:
    reg = ctx.registry
    return lambda a: reg.supervisor_of(a).code if reg.get(a) is not None else None


def counting_submissions(ctx: Context, cid: str, round_id: str) -> dict[str, SubmissionRow]:
    """Agency -> its latest accepted return of the round, unless its supervising agency sent that one back."""
    return {a: n.current for a, n in round_counts(ctx, cid, round_id).items() if n.current is not None}


def unit_lines(ctx: Context, coll: Collection, round_id: str, supervisor: str) -> list[UnitLine]:
    """The supervisor's units with a counting return not signed off in a 核轉表 yet, each with the sums of the
    collection's money columns."""
    counts = round_counts(ctx, coll.id, round_id)
    money = [c for c in coll.columns if c.money]
    out = []
    for code in units_of(ctx, supervisor):
        n = counts.get(code)
        sub = n.current if n is not None and not n.signed_in_book else None
        if sub is None or not sub.receipt:
            continue
        totals: dict[str, int | Decimal] = {}
        if money and sub.frame_path and (ctx.ws.state_dir / sub.frame_path).is_file():
            frame = pq.read_table(ctx.ws.state_dir / sub.frame_path, columns=[c.key for c in money]).to_pandas()
            for c in money:
                values = [v for v in frame[c.key].tolist() if v is not None and not pd.isna(v)]
                total = sum((Decimal(str(v)) for v in values), Decimal(0))
                totals[c.key] = int(total) if total == total.to_integral_value() else total
        agency = ctx.registry.get(code)
        out.append(UnitLine(code, agency.name if agency else "", sub.receipt, sub.received_at, sub.rows, totals))
    return out


def decision_columns(coll: Collection) -> tuple[int, int]:
    """The 1-based columns of 核轉／退回 and 退回理由 in the collection's sign-off workbook."""
    n = len(FIXED_TITLES) + sum(c.money for c in coll.columns) + 2
    return n - 1, n


def build_workbook(coll: Collection, round_id: str, supervisor: str, supervisor_name: str, lines: list[UnitLine],
                   secret: bytes, *, made: datetime | None = None) -> bytes:
    """A stamped, protected 核轉表: one row per unit, 核轉／退回 (a dropdown) and 退回理由 to fill, 核轉人 and
    核轉日期 above. It prints as every workbook collect writes: A4, one page wide, the header row on every page,
    製表時間 (`made`, now by default) and page N of M in the footer."""
    money = [c for c in coll.columns if c.money]
    titles = [*FIXED_TITLES, *(c.title for c in money), "核轉／退回", "退回理由"]
    decision_col, reason_col = len(titles) - 1, len(titles)
    last = column_letter(len(titles))
    # 機關名稱 as wide as the longest name (25 characters on the sample list), up to 52 units; a longer one wraps
    name_width = min(52, max([30, *(_shown_width(line.name) + 2 for line in lines)]))
    wb = book.new()
    ws = wb.active
    assert ws is not None
    ws.title = SHEET
    ws["A1"] = f"{coll.title}（{roc_round_label(round_id)}）核轉表"
    ws["A1"].font = Font(bold=True, size=14)
    ws["A2"] = f"主管機關：{supervisor} {supervisor_name}；請逐列選擇「核轉」或「退回」，退回者請填寫退回理由。"
    ws["A2"].alignment = Alignment(wrap_text=True, vertical="top")
    for row in (1, 2):  # across the table, so the instructions print whole (a cell's overflow stops at the page)
        ws.merge_cells(f"A{row}:{last}{row}")
    ws.row_dimensions[1].height = 24
    ws.row_dimensions[3].height = 20
    ws["A3"], ws["C3"] = "核轉人", "核轉日期"
    for ref in ("A3", "C3"):
        ws[ref].font = Font(bold=True)
        ws[ref].alignment = Alignment(horizontal="right")
    for ref in (SIGNER_CELL, DATE_CELL):
        protection.set_locked(ws[ref], False)
        ws[ref].fill = INPUT_FILL
        ws[ref].border = BOX
    for j, title in enumerate(titles, start=1):
        cell = ws.cell(HEADER_ROW, j, title)
        cell.font = Font(bold=True)
        cell.fill = HEADER_FILL
        cell.border = BOX
        cell.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
    ws.row_dimensions[HEADER_ROW].height = 32
    for i, line in enumerate(lines):
        r = FIRST_ROW + i
        received = line.received_at.astimezone(TAIPEI)
        values: list[Any] = [line.agency, line.name, line.receipt, f"{roc_date(received)} {received:%H:%M}",
                             line.rows]
        values += [line.totals.get(c.key) for c in money]
        for j, value in enumerate(values, start=1):
            cell = ws.cell(r, j, float(value) if isinstance(value, Decimal) else value)  # whole sums are int
            cell.border = BOX
            if j == 2 and _shown_width(line.name) > name_width:  # a name wider than its column: two lines
                cell.alignment = Alignment(wrap_text=True, vertical="center")
                ws.row_dimensions[r].height = 30
            if j in (1, 3, 4):
                cell.number_format = "@"
            elif j > len(FIXED_TITLES):
                cell.number_format = MONEY_FORMAT
        for j in (decision_col, reason_col):
            typed = ws.cell(r, j)
            protection.set_locked(typed, False)
            typed.fill = INPUT_FILL
            typed.border = BOX
            typed.alignment = Alignment(wrap_text=j == reason_col, vertical="top")
    if lines:
        dv = protection.validation("list", formula1=f'"{SIGN},{RETURN}"', title="核轉／退回",
                                   prompt="請選擇「核轉」或「退回」；退回者請於右欄填寫退回理由。",
                                   error_title="核轉／退回", error="請選擇「核轉」或「退回」。")
        letter = column_letter(decision_col)
        protection.add(ws, dv, f"{letter}{FIRST_ROW}:{letter}{FIRST_ROW + len(lines) - 1}")
    for j, width in enumerate([12, name_width, 18, 17, 10, *([16] * len(money)), 12, 36], start=1):
        ws.column_dimensions[column_letter(j)].width = width
    ws.freeze_panes = f"A{FIRST_ROW}"
    stamped = (made or datetime.now(TAIPEI)).astimezone(TAIPEI)
    apply_openpyxl(ws, PrintSetup.for_width(openpyxl_width(ws, len(titles)), title_rows=(HEADER_ROW, HEADER_ROW),
                                            footer=footer(f"{roc_date(stamped)} {stamped:%H:%M}")))
    protection.lock_sheet(ws, allow_resize=True)
    stamp = make_stamp(secret, signoff_collection(coll.id), round_id, supervisor, VERSION)
    stamp_ws = wb.create_sheet(STAMP_SHEET)
    for i, (name, value) in enumerate(stamp.fields().items(), start=1):
        stamp_ws.cell(i, 1, name)
        stamp_ws.cell(i, 2, value).number_format = "@"
    properties.set_strings(wb, {PROP_PREFIX + name: value for name, value in stamp.fields().items()})
    assert tuple(stamp.fields()) == STAMP_FIELDS
    protection.lock_sheet(stamp_ws)
    protection.hide(stamp_ws, very=True)
    return book.to_bytes(wb)


def _shown_width(text: str) -> int:
    """The width of a text in column units: two for a full-width (CJK) character, one for another."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


# -- a returned sign-off workbook ---------------------------------------------------------------------------------
Cells = Callable[[int, int], Any]  # (1-based Excel row, column) -> the value as read


@dataclass
class Examined:
    """What a returned sign-off workbook says: the verdict, its findings and its decisions (one row per unit)."""

    verdict: Verdict
    findings: list[Finding]
    frame: pd.DataFrame  # index "row" (Excel row); agency, receipt, decision ("signed" | "returned"), reason, by, on


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d}"
    return str(value).strip()


def examine(ctx: Context, stamp: Stamp, cells: Cells | None, last_row: int, sender: str | None,
            locale: str = "zh-TW") -> Examined:
    """Check a returned sign-off workbook whose stamp verified: who sent it, each row's decision and reason, and
    that its rows still match the units' counting returns (else it is stale and nothing is applied)."""
    cid, supervisor = collection_of(stamp), stamp.agency
    columns = ["agency", "receipt", "decision", "reason", "by", "on"]
    empty = pd.DataFrame(columns=columns, index=pd.Index([], name="row", dtype="int64"))
    sup = ctx.registry.get(supervisor)
    if sup is None:
        return Examined(Verdict.UNIDENTIFIED, [F.make("stamp.unknown_agency", locale, value=supervisor)], empty)
    if cid not in ctx.collection_ids():
        return Examined(Verdict.UNIDENTIFIED, [F.make("stamp.unknown_collection", locale, value=cid)], empty)
    if sender is not None and sender.lower() not in {e.lower() for e in sup.emails}:
        return Examined(Verdict.QUARANTINED, [F.make("signoff.sender", locale, value=sender,
                                                      detail=f"{sup.code} {sup.name}")], empty)
    if cells is None:
        return Examined(Verdict.REJECTED, [F.make("table.sheet_missing", locale, sheet=SHEET)], empty)
    coll = ctx.collection(cid)
    decision_col, reason_col = decision_columns(coll)
    letter = column_letter
    found: list[Finding] = []
    by, on = _text(cells(3, 2)), _text(cells(3, 4))
    mine = set(units_of(ctx, supervisor))
    counting = counting_submissions(ctx, cid, stamp.round)
    decisions = ctx.ledger.unit_decisions(cid, stamp.round)
    records = []
    for r in range(FIRST_ROW, last_row + 1):
        agency, receipt = _text(cells(r, 1)), _text(cells(r, 3))
        choice, reason = _text(cells(r, decision_col)), _text(cells(r, reason_col))
        if not agency and not receipt and not choice and not reason:
            continue
        if agency not in mine:
            found.append(F.make("signoff.foreign_unit", locale, sheet=SHEET, cell=f"A{r}", column="機關代碼",
                                value=agency, detail=f"{sup.code} {sup.name}"))
            continue
        if choice and choice not in DECISION_CODES:
            found.append(F.make("signoff.decision", locale, sheet=SHEET, cell=f"{letter(decision_col)}{r}",
                                column="核轉／退回", value=choice))
            continue
        if not choice:
            found.append(F.make("signoff.undecided", locale, sheet=SHEET, cell=f"{letter(decision_col)}{r}",
                                column="核轉／退回", value=agency))
            continue
        current = counting.get(agency)
        if current is None or current.receipt != receipt:
            found.append(F.make("signoff.stale", locale, sheet=SHEET, cell=f"C{r}", column="收件編號", value=receipt,
                                detail=_what_changed(agency, receipt, current, decisions.get(agency))))
            continue
        if choice == RETURN and not reason:
            found.append(F.make("signoff.reason_required", locale, sheet=SHEET, cell=f"{letter(reason_col)}{r}",
                                column="退回理由", value=agency))
        records.append({"row": r, "agency": agency, "receipt": receipt, "decision": DECISION_CODES[choice],
                        "reason": reason or None, "by": by, "on": on})
    if records and not by:
        found.append(F.make("signoff.signer_required", locale, sheet=SHEET, cell=SIGNER_CELL, column="核轉人"))
    frame = pd.DataFrame.from_records(records, columns=["row", *columns]).set_index("row") if records else empty
    return Examined(Verdict.REJECTED if has_errors(found) else Verdict.ACCEPTED, found, frame)


def _what_changed(agency: str, receipt: str, current: SubmissionRow | None, decision: dict[str, Any] | None) -> str:
    if current is not None:
        return (f"{agency} 的收件編號 {receipt or '（空白）'} 已由 {current.receipt}"
                f"（{current.received_at.astimezone(TAIPEI):%Y-%m-%d %H:%M} 收件）取代")
    if decision and decision["decision"] == "returned":
        return f"{agency} 的收件編號 {receipt} 已退回，目前沒有待核轉的版本"
    return f"{agency} 目前沒有通過的收件（收件編號 {receipt or '（空白）'} 不計入）"
