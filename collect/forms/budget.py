"""A budget table inside a form (經費概算表: 類別／項目／單位／單價／數量／金額): its rows, its 小計／合計, its rule.

Application forms carry a small budget table inside the form's own block. Found by its header row (a row whose
cells say 單價, 數量 and 金額), it is read as a table of its own: each empty cell of a row is an input (單價 and 金額
money, 數量 a count, the other columns text), a row that says 小計 or 合計 is a total of the 金額 above it, a row
spanning the table with a label (一、親職教育活動) starts a section, and 單價×數量=金額 is a row rule. A sentence
field's amount that names a section or a subtotal (「經常門經費：＿＿元」) is then that section's total, computed
from the table and held against what the agency wrote.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from collect.xlsx.cells import Merges, clean

PRICE, QUANTITY, AMOUNT = "單價", "數量", "金額"
TOTAL_WORDS = ("小計", "合計", "總計")
NOTE_WORDS = ("備註", "附註")
MAX_LABEL = 20  # a longer printed text in a row is a note, not the row's label
_NUMBERING = re.compile(r"^\s*(?:[一二三四五六七八九十]+|\d+)[、.．)]\s*")


@dataclass
class Section:
    """Rows of a budget table that a sentence may name: a section (一、親職教育活動) or a 小計 row (經常門 小計)."""

    label: str
    amounts: tuple[str, ...]  # the 金額 keys it adds up (a 小計: its own key)


@dataclass
class Budget:
    """One budget table found in a form."""

    inputs: list[dict[str, Any]]  # adopt Input keyword arguments, in reading order
    cells: set[str]  # the input and total cells of its rows (the grid's own guesses there are dropped)
    products: list[tuple[str, str, str, str]]  # (金額 key, 單價 key, 數量 key, the row's title): 單價×數量=金額
    sections: list[Section] = field(default_factory=list)


def _letter(col: int) -> str:
    out = ""
    while col:
        col, rest = divmod(col - 1, 26)
        out = chr(65 + rest) + out
    return out


def _header(ws: Any, merges: Merges, r: int, cols: tuple[int, int]) -> list[tuple[int, int, str]] | None:
    """The budget header in row r: (first col, last col, title) per column, or None when r is no budget header."""
    heads = []
    for c in range(cols[0], cols[1] + 1):
        if merges.top(r, c) != (r, c):
            continue
        text = clean(ws.cell(r, c).value)
        if text:
            last = merges.extent.get((r, c), (r, c, r, c))[3]
            heads.append((c, last, text))
    titles = [t for _a, _b, t in heads]
    if all(any(w in t for t in titles) for w in (PRICE, QUANTITY, AMOUNT)):
        return heads
    return None


def budget_tables(ws: Any, merges: Merges, rows: tuple[int, int], cols: tuple[int, int]) -> list[Budget]:
    """The budget tables inside a form's block (rows and columns, first and last)."""
    out = []
    for r in range(rows[0], rows[1] + 1):
        heads = _header(ws, merges, r, cols)
        if heads is not None:
            out.append(_body(ws, merges, r, heads, rows[1]))
    return out


def _body(ws: Any, merges: Merges, header: int, heads: list[tuple[int, int, str]], last_row: int) -> Budget:
    first, amount_col = heads[0][0], next(a for a, _b, t in heads if AMOUNT in t)
    role = {a: (PRICE if PRICE in t else QUANTITY if QUANTITY in t else AMOUNT if AMOUNT in t else t)
            for a, _b, t in heads}
    budget = Budget([], set(), [])
    section = ""
    since: list[str] = []  # 金額 keys since the section began or the last 小計
    every: list[str] = []
    subtotals: list[str] = []
    n = 0
    for r in range(header + 1, last_row + 1):
        top = merges.top(r, first)
        wide = merges.extent.get(top, (*top, *top))[3] >= amount_col
        text = ws.cell(*top).value
        if wide:
            label = str(text or "").strip()
            if not label or "：" in label or ":" in label:
                break  # the sentence under the table (「申請補助金額合計新臺幣：＿＿元」) ends it
            if top == (r, first):
                if since and section:
                    budget.sections.append(Section(section, tuple(since)))
                section, since = _NUMBERING.sub("", clean(label)), []
            continue
        printed = {a: clean(ws.cell(*merges.top(r, a)).value) for a, _b, _t in heads}
        words = [t for a, t in printed.items() if t and merges.top(r, a) == (r, a) and role[a] not in (
            PRICE, QUANTITY, AMOUNT) and "單位" not in role[a] and _label_like(ws.cell(r, a).value)]
        label = " › ".join(words)
        if any(w in label for w in TOTAL_WORDS):
            key = f"{_letter(amount_col)}{r}".lower()
            grand = not any(w in label for w in ("小計",)) and bool(subtotals)
            parts = tuple(subtotals) if grand else tuple(since)
            budget.cells.add(f"{_letter(amount_col)}{r}")
            budget.inputs.append(dict(key=key, title=f"{section + ' › ' if section else ''}{label} › 金額",
                                      ref=f"{_letter(amount_col)}{r}", kind="total", money=True, of=parts,
                                      cell=f"{_letter(amount_col)}{r}"))
            if "小計" in label:
                subtotals.append(key)
                budget.sections.append(Section(re.sub("|".join(TOTAL_WORDS), "", clean(label)), (key,)))
            since = []
            continue
        n += 1
        row_title = f"{section + ' › ' if section else ''}{label or f'第{n}列'}"
        keys: dict[str, str] = {}
        for a, _b, title in heads:
            if merges.top(r, a) != (r, a) or printed[a] or any(w in title for w in NOTE_WORDS):
                continue  # a printed 項目 or 單價, a note merged down the rows: the form's own words
            key = f"{_letter(a)}{r}".lower()
            kind = role[a]
            budget.cells.add(f"{_letter(a)}{r}")
            budget.inputs.append(dict(
                key=key, title=f"{row_title} › {title}", ref=f"{_letter(a)}{r}",
                kind="whole" if kind in (PRICE, QUANTITY, AMOUNT) else "text", money=kind in (PRICE, AMOUNT),
                ge=0 if kind in (PRICE, QUANTITY, AMOUNT) else None, cell=f"{_letter(a)}{r}"))
            keys[kind] = key
        if AMOUNT in keys:
            since.append(keys[AMOUNT])
            every.append(keys[AMOUNT])
            if PRICE in keys and QUANTITY in keys:
                budget.products.append((keys[AMOUNT], keys[PRICE], keys[QUANTITY], row_title))
    if since and section:
        budget.sections.append(Section(section, tuple(since)))
    return budget


def _label_like(value: Any) -> bool:
    """A printed text that names a row (鐘點費, 經常門 小計), not a note or a sentence left in a cell."""
    text = str(value or "").strip()
    return bool(text) and len(clean(text)) <= MAX_LABEL and "\n" not in text and not any(ch in text for ch in "：:")


def linked_total(label: str, sections: list[Section]) -> tuple[str, ...] | None:
    """The 金額 keys a sentence's amount adds up when its label names a section or a 小計 of a budget table
    (「經常門經費」 names 經常門 小計; 「親職教育活動」 names 一、親職教育活動), else None."""
    plain = clean(label)
    named = [s for s in sections if s.label and (s.label in plain or plain in s.label)]
    if len(named) != 1:
        return None
    return named[0].amounts


def product_rules(products: list[tuple[str, str, str, str]]) -> list[str]:
    """The rules file's row rules: 金額 = 單價 × 數量 on each budget row that has all three (a warning)."""
    lines = []
    for amount, price, quantity, title in products:
        lines += [
            "",
            f'    @row_rule("{amount}", "「{title}」的金額應為單價乘以數量。", warning=True)',
            f"    def {amount}_is_price_times_quantity(cls, df: pd.DataFrame) -> pd.Series:",
            f'        return df["{amount}"] == df["{price}"] * df["{quantity}"]',
        ]
    return lines
