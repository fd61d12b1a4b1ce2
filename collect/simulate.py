"""One simulated agency: it fills its stamped workbook as a person would (the right answers, or one realistic
mistake, then a corrected resend), saves it as Excel does or with LibreOffice, and a supervising agency answers its
核轉表. The demo, the dry round of `collect check` and the tests all fill workbooks through here."""

from __future__ import annotations

import random
import tempfile
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from itertools import chain, count
from pathlib import Path
from typing import Any

from collect.forms.issuing import issued_facts
from collect.forms.sentence import filled_sentences
from collect.forms.spec import Collection, ColumnSpec, IssuedFacts
from collect.rounds import roc_date, round_end, round_start
from collect.workspace import Context
from collect.xlsx import book, libreoffice
from collect.xlsx.filling import fill_sheet
from collect.xlsx.values import sheet_values

MISTAKES = ("fullwidth_amount", "roc_date", "pasted_choice", "spent_over", "total_row", "missing_value")
BLOCKING = {"pasted_choice", "spent_over", "missing_value"}
# a round with fewer faulty agencies than mistakes shows the blocking ones first
SMALL_ROUND_MISTAKES = ("pasted_choice", "fullwidth_amount", "missing_value", "roc_date", "spent_over", "total_row")
# the finding each mistake must produce (None: the return is still accepted, the value normalised)
MISTAKE_FINDINGS: dict[str, str | None] = {
    "fullwidth_amount": None, "roc_date": None, "pasted_choice": "value.choice", "spent_over": "row.rule",
    "total_row": "table.total_row", "missing_value": "value.required",
}


def generic_rows(coll: Collection, rng: random.Random, round_id: str,
                 issued: IssuedFacts | None = None) -> list[dict[str, Any]]:
    """Clean rows for one agency's copy: from the collection's `sample_rows` hook, else from its column rules
    (one row per prefilled row, keeping what was prefilled, when `issued` lists any)."""
    if coll.sample_rows is not None:
        return list(coll.sample_rows(rng, round_id, issued))
    prefilled = [dict(values) for _, values in issued.rows] if issued is not None else []
    rows = []
    for i in range(len(prefilled) or rng.randint(1, 4)):
        row: dict[str, Any] = dict(prefilled[i]) if prefilled else {}
        for col in coll.inputs:
            if row.get(col.key) is None:
                row[col.key] = _value_for(col, rng, round_id, i)
        rows.append(row)
    return rows


def _value_for(col: ColumnSpec, rng: random.Random, round_id: str, i: int) -> Any:
    if col.choices:
        return col.choices[i % len(col.choices)] if col.unique else rng.choice(col.choices)
    if col.kind == "whole":
        lo = int(col.ge) if col.ge is not None else 0
        return rng.randrange(lo, lo + 5_000_000, 1_000)
    if col.kind == "date":
        start, end = col.date_bounds(round_id)
        start = start or round_start(round_id)
        end = end if end is not None and end >= start else start + timedelta(days=365)
        return start + timedelta(days=rng.randrange(0, max(1, (end - start).days)))
    if col.kind == "decimal":
        return round(rng.uniform(0, 1000), 2)
    return f"{col.title}說明{i + 1}"[: col.max_length or 50]


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "")


def _own(coll: Collection, row: Mapping[str, Any], key: str, prefilled: Mapping[str, Any] | None) -> bool:
    """Whether the agency itself typed this value (an input column, not left as the office prefilled it)."""
    col = next((c for c in coll.columns if c.key == key), None)
    if col is None or not col.is_input or _blank(row.get(key)):
        return False
    return prefilled is None or _blank(prefilled.get(key)) or not same_value(prefilled[key], row[key])


def apply_mistake(rows: list[dict[str, Any]], mistake: str, coll: Collection,
                  prefilled: Mapping[str, Mapping[str, Any]] | None = None) -> list[dict[str, Any]]:
    """One realistic mistake, as agencies make them, in a cell the agency fills itself (never in one the office
    prefilled). `prefilled` maps a row's key value to what was prefilled in it. Returns rows equal to the given
    ones when the mistake does not apply to this collection or these rows."""
    rows = [dict(r) for r in rows]
    if not rows:
        return rows
    key = coll.meta.key
    pre = prefilled or {}

    def before(row: Mapping[str, Any]) -> Mapping[str, Any] | None:
        return pre.get(str(row.get(key))) if key else None

    def first_own(cols: Sequence[ColumnSpec], test: Callable[[Any], bool]) -> tuple[dict[str, Any], str] | None:
        for row in rows:
            for c in cols:
                if _own(coll, row, c.key, before(row)) and test(row[c.key]):
                    return row, c.key
        return None

    money = [c for c in coll.inputs if c.money]
    if mistake == "fullwidth_amount":
        hit = first_own(money, lambda v: isinstance(v, int) and not isinstance(v, bool))
        if hit:
            wide = str.maketrans("0123456789,", "０１２３４５６７８９，")
            hit[0][hit[1]] = f"{hit[0][hit[1]]:,}".translate(wide)
    elif mistake == "roc_date":
        hit = first_own([c for c in coll.inputs if c.kind == "date"], lambda v: isinstance(v, date))
        if hit:
            hit[0][hit[1]] = roc_date(hit[0][hit[1]])
    elif mistake == "pasted_choice":
        choices = [c for c in coll.inputs if c.choices]
        hit = first_own(choices, lambda v: True)
        if hit:
            col = coll.column(hit[1])
            hit[0][hit[1]] = col.choices[0] + "費" if col.choices else "其他"
    elif mistake == "spent_over":
        first = rows[0]
        if "spent" in first and "committed" in first and _own(coll, first, "spent", before(first)):
            first["spent"] = first["committed"] + 250_000
    elif mistake == "total_row":
        # a total row only makes sense under amounts, and not where every row's key cell is locked
        text = next((c for c in coll.inputs if c.kind == "text"), None)
        if text is not None and money and not coll.meta.fixed_rows:
            total: dict[str, Any] = {text.key: "合計"}
            for c in money:
                total[c.key] = sum(int(r[c.key]) for r in rows if isinstance(r.get(c.key), int))
            rows.append(total)
    elif mistake == "missing_value":
        required = [c for c in coll.inputs if c.required]
        hit = first_own([c for c in required if c.money] + [c for c in required if not c.money], lambda v: True)
        if hit:
            hit[0][hit[1]] = None
    return rows


def choose_mistake(rows: list[dict[str, Any]], preferred: str, coll: Collection,
                   prefilled: Mapping[str, Mapping[str, Any]] | None = None) -> tuple[str | None, list[dict[str, Any]]]:
    """The preferred mistake if it applies to these rows, else the next one (in MISTAKES order, a blocking one for a
    blocking one first) that does; (None, rows) when none applies."""
    at = MISTAKES.index(preferred)
    cycle = MISTAKES[at:] + MISTAKES[:at]
    alike = [m for m in cycle if (m in BLOCKING) == (preferred in BLOCKING)]
    for mistake in alike + [m for m in cycle if m not in alike]:
        bad = apply_mistake(rows, mistake, coll, prefilled)
        if bad != rows:
            return mistake, bad
    return None, rows


def same_value(a: Any, b: Any) -> bool:
    """Whether two cell values are the same as a user reads them (1 == 1.0, a date == its midnight datetime)."""
    if isinstance(a, datetime):
        a = a.date()
    if isinstance(b, datetime):
        b = b.date()
    if isinstance(a, int | float | Decimal) and isinstance(b, int | float | Decimal) \
            and not isinstance(a, bool) and not isinstance(b, bool):
        try:
            return Decimal(str(a)) == Decimal(str(b))
        except InvalidOperation:
            return False
    if isinstance(a, str) and isinstance(b, str):
        return a.strip() == b.strip()
    return bool(a == b)


def _columns(coll: Collection) -> dict[str, int]:
    """Column key -> its 1-based column on the form (the layout's letters, else the columns in order)."""
    lay = coll.layout
    assert lay is not None
    if lay.letters:
        return {k: book.column_index(v) for k, v in lay.letters.items()}
    return {c.key: lay.first_col + i for i, c in enumerate(coll.columns)}


def prefilled_cells(issued: bytes, coll: Collection) -> dict[int, dict[str, Any]]:
    """What the issued workbook already holds in its data rows: Excel row -> {input column key -> value}."""
    lay = coll.layout
    assert lay is not None
    if lay.cells:
        return {}
    values = sheet_values(issued, lay.sheet)
    columns = _columns(coll)
    out: dict[int, dict[str, Any]] = {}
    for col in coll.columns:
        if not col.is_input or col.key not in columns:
            continue
        for r in range(lay.data_first_row, lay.data_last_row + 1):
            value = values.get((r, columns[col.key]))
            if _blank(value):
                continue
            if isinstance(value, float) and value.is_integer() and col.kind == "whole":
                value = int(value)
            elif isinstance(value, datetime):
                value = value.date()
            out.setdefault(r, {})[col.key] = value
    return out


def agency_facts(ctx: Context, coll: Collection, round_id: str, agency: str,
                 issued: bytes) -> IssuedFacts | None:
    """What the agency finds prefilled in its copy: the issued facts (header fields, locked cells) and every other
    value the office prefilled (e.g. forward_subsidy's editable amounts); None when nothing was."""
    facts = issued_facts(ctx, coll, round_id, agency)
    cells = prefilled_cells(issued, coll)
    if facts is None and not cells:
        return None
    locked = {r: dict(v) for r, v in facts.rows} if facts is not None else {}
    rows = tuple((r, {**cells.get(r, {}), **locked.get(r, {})}) for r in sorted(set(cells) | set(locked)))
    return IssuedFacts(facts.fields if facts is not None else {}, rows)


def prefilled_by_key(coll: Collection, facts: IssuedFacts | None) -> dict[str, dict[str, Any]]:
    """The prefilled rows by their key value (for apply_mistake)."""
    key = coll.meta.key
    if facts is None or key is None:
        return {}
    return {str(v[key]): dict(v) for _, v in facts.rows if not _blank(v.get(key))}


def cells_for(coll: Collection, rows: Sequence[Mapping[str, Any]],
              present: Mapping[int, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """Where an agency types its rows (column key -> value): A1 -> value.

    A cell form takes the first row's values at its fields' cells. In a list, a row whose key value was prefilled
    goes into that prefilled row; the others take the form's next data rows after the last prefilled one. A value
    equal to what the workbook already holds is left as it is; a different one in a filled cell is refused
    (ValueError): an agency cannot retype the office's prefilled cells.
    """
    lay = coll.layout
    assert lay is not None
    if lay.cells:
        first = rows[0] if rows else {}
        sentences = coll.meta.sentences
        typed = {lay.cells[c.key]: _excel(first[c.key]) for c in coll.inputs
                 if c.key in lay.cells and lay.cells[c.key] not in sentences and not _blank(first.get(c.key))}
        # a sentence field: its blanks filled in the printed words
        return typed | (filled_sentences(coll.meta, first) if sentences else {})
    present = present or {}
    columns = _columns(coll)
    key = coll.meta.key
    slots = {str(v[key]): r for r, v in present.items() if key and not _blank(v.get(key))}
    last = max(present, default=lay.data_first_row - 1)
    free = chain((r for r in lay.data_rows if r > last), count(lay.data_last_row + 1))  # past the form: refused
    cells: dict[str, Any] = {}
    for row in rows:
        at = slots.pop(str(row.get(key)), None) if key and not _blank(row.get(key)) else None
        if at is None:
            at = next(free)
        for k, value in row.items():
            if _blank(value) or k not in columns or not coll.column(k).is_input:
                continue
            ref = f"{book.column_letter(columns[k])}{at}"
            held = present.get(at, {}).get(k)
            if held is not None:
                if same_value(held, value):
                    continue
                raise ValueError(f"{ref} already holds {held!r} in the issued workbook; the return has {value!r}")
            cells[ref] = _excel(value)
    return cells


def _excel(value: Any) -> Any:
    """A value as a spreadsheet holds it: a whole Decimal as int, another as float."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def type_cells(issued: bytes, sheet: str, cells: Mapping[str, Any], *, resave: bool = True,
               edit: Callable[[book.Worksheet], None] | None = None,
               book_edit: Callable[[book.Workbook], None] | None = None) -> bytes:
    """The workbook `issued` with `cells` (A1 -> value) typed on `sheet`. `resave`: opened and saved whole again, as
    Excel saves it (any `edit` of the sheet or `book_edit` of the workbook made on the way); else only the typed
    cells are written into the workbook as it was issued (fast: what the demo's 142 agencies do)."""
    if resave or edit is not None or book_edit is not None:
        return book.typed(issued, sheet, cells, edit=edit, book_edit=book_edit)
    return fill_sheet(issued, sheet, cells)


def fill(issued: bytes, coll: Collection, rows: Sequence[Mapping[str, Any]], *, resave: bool = False) -> bytes:
    """An agency's return: its stamped workbook with its rows typed in (see cells_for)."""
    assert coll.layout is not None
    present = prefilled_cells(issued, coll)
    return type_cells(issued, coll.layout.sheet, cells_for(coll, rows, present), resave=resave)


def saved_by_libreoffice(files: Mapping[str, bytes], seconds: float = 180.0) -> dict[str, bytes]:
    """Returns opened and saved by LibreOffice, as some agencies do: name -> the bytes it saved; {} when LibreOffice
    is not installed, and a file it could not save is left out."""
    if libreoffice.binary() is None or not files:
        return {}
    with tempfile.TemporaryDirectory(prefix="collect-simulate-") as tmp:
        names = sorted(files)
        sources = [Path(tmp) / "in" / f"{name}.xlsx" for name in names]
        sources[0].parent.mkdir()
        for name, path in zip(names, sources, strict=True):
            path.write_bytes(files[name])
        made = libreoffice.convert(sources, "xlsx:Calc MS Excel 2007 XML", Path(tmp) / "out", seconds=seconds)
        return {name: path.read_bytes() for name, path in zip(names, made, strict=True) if path is not None}


# -- the dry round of `collect check`: one valid answer ---------------------------------------------------------
def sample_rows(coll: Collection, round_id: str) -> list[dict[str, Any]]:
    """A valid answer: the collection's `sample_rows` hook's first two rows where it has one, else one row of a
    value each column accepts (a cell form: every input cell)."""
    assert coll.layout is not None
    if not coll.layout.cells and coll.sample_rows:
        rows = list(coll.sample_rows(random.Random(1), round_id, None))[:2]
        if rows:
            return rows
    return [{c.key: sample_value(c, round_id) for c in coll.inputs}]


def sample_value(col: ColumnSpec, round_id: str) -> Any:
    """A value the column accepts, as a person types it."""
    if col.choices:
        return col.choices[0]
    if col.kind == "date":
        lo, hi = col.date_bounds(round_id)
        day = hi or min(round_end(round_id), date.today())
        return max(day, lo) if lo else day
    if col.kind in ("whole", "decimal"):
        least: float = float(col.ge) if col.ge is not None else 0.0
        number = max(least, 1000.0 if col.money else 1.0)
        if col.le is not None:
            number = min(number, float(col.le))
        return int(number) if col.kind == "whole" else number
    if col.kind == "code":
        return "A001"[: col.max_length or 4]
    text = "測試資料"
    return text[: col.max_length] if col.max_length else text


# -- a supervising agency answers its 核轉表 ----------------------------------------------------------------------
def answer_signoff(data: bytes, coll: Collection, decide: Callable[[str], str | None], signer: str,
                   on: date) -> bytes:
    """A 核轉表 filled by its supervising agency: each unit's row 核轉, or 退回 with the reason `decide(unit)` gives;
    核轉人 and 核轉日期 (ROC) above."""
    from collect.forms.signoff_book import DATE_CELL, FIRST_ROW, RETURN, SHEET, SIGN, SIGNER_CELL, decision_columns

    decision_col, reason_col = decision_columns(coll)

    def decide_all(ws: book.Worksheet) -> None:
        for r in range(FIRST_ROW, ws.max_row + 1):
            unit = ws.cell(r, 1).value
            if not unit:
                continue
            reason = decide(str(unit))
            ws.cell(r, decision_col, SIGN if reason is None else RETURN)
            if reason is not None:
                ws.cell(r, reason_col, reason)
        ws[SIGNER_CELL], ws[DATE_CELL] = signer, roc_date(on)

    return type_cells(data, SHEET, {}, edit=decide_all)
