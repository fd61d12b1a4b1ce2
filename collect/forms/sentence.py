"""Sentence fields: inputs printed inside a sentence (「全校班級數：＿＿班」, 「【　　】棟」, 「□是 □否」).

A cell whose printed text has blanks (runs of ＿ or _, runs of spaces before a unit or after a label's colon, empty
【 】 or （ ）, a label ending in a colon) or boxes (□ options) is a field cell. Each blank becomes a named input whose
kind comes from its label and unit (班/人/間/棟/坪 -> whole, 元 or 新臺幣 -> money, 日期 -> date, else text); the boxes
of one question become one choice. The sentence is kept as a template, the printed words with {key} at each blank
and {key=option} at each box (`collect.forms.spec.Meta.sentences`), and an agency's return is matched against it:
tolerant of spacing, full/half width, and of typing over the blank characters.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from collect.forms.budget import budget_tables, linked_total
from collect.forms.spec import Meta, Slot, sentence_parts
from collect.xlsx.cells import Merges

# marks an agency types in or over a box to pick it (after NFKC: Ｖ -> V, Ｏ -> O)
MARKS = "VvOoXx×✓✔✗○〇●◎■☑☒√"
BOXES = "□☐"
MONEY_UNITS = ("元", "千元", "萬元")
MONEY_WORDS = ("新台幣", "新臺幣", "金額", "經費", "補助款")
COUNT_UNITS = ("班", "人", "間", "棟", "坪", "場", "案", "次", "校", "所", "件", "名", "位", "戶", "套", "台", "輛",
               "座", "張", "個", "冊", "本", "項", "週", "天", "小時", "年", "月", "日", "學年度", "學期")
PLACE_UNITS = ("縣(市)", "縣市", "鄉鎮市區", "鄉(鎮)", "市(區)", "鄉", "鎮", "區", "國民", "學")
TOTAL_WORDS = ("合計", "總計", "總額", "共計", "小計")
NOT_FIELDS = ("說明", "備註", "附註", "註")  # 「填表說明：」 heads notes, it is no field
SEPARATORS = "、，,；;。\n"
MAX_TEXT = 2_000  # a returned cell longer than this is not matched (a sentence is a few lines)

_RUN = r"[_＿]+|[ \u3000\u00a0]{2,}"
_EMPTY_BRACKETS = r"【[ \u3000_＿]*】|（[ \u3000_＿]*）|\([ \u3000_＿]*\)"
_TOKEN = re.compile(rf"(?P<brackets>{_EMPTY_BRACKETS})|(?P<run>{_RUN})|(?P<box>[{BOXES}])[ \u3000]*"
                    rf"(?P<option>[^\s{BOXES}{re.escape(SEPARATORS)}]+)")
_GAP = r"[\s_]*"


@dataclass
class Blank:
    """One input found in a printed sentence."""

    key: str
    title: str
    kind: str  # whole, date, text, choice, total
    money: bool = False
    unit: str | None = None
    options: list[str] = field(default_factory=list)  # a choice's options, in print order
    of: tuple[str, ...] | None = None  # a total: the blanks of the same sentence it adds up


@dataclass
class Found:
    """A field cell: its template (Meta.sentences) and its inputs."""

    cell: str
    template: str
    blanks: list[Blank]
    ref: str = ""  # the cell's merged range on the form (the cell itself when it is not merged)

    def inputs(self) -> list[dict[str, Any]]:
        """Each blank as the keyword arguments of adopt's Input, at the field's cell."""
        return [dict(key=b.key, title=b.title, ref=self.ref or self.cell, kind=b.kind, money=b.money,
                     required=b.kind == "choice", ge=0 if b.kind == "whole" else None, choices=tuple(b.options),
                     of=b.of, unit=b.unit, cell=self.cell) for b in self.blanks]


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


def _unit_after(text: str) -> str | None:
    """The unit printed right after a blank: 「班」, 「元」, 「縣(市)」, 「學年度」; None when the words are no unit."""
    t = _fold(text).lstrip(" ")
    for unit in sorted((*MONEY_UNITS, *COUNT_UNITS, *PLACE_UNITS), key=len, reverse=True):
        u = _fold(unit)
        if t.startswith(u) or t.replace(" ", "").startswith(u):
            return unit
    return None


def _label_before(text: str) -> str:
    """The words a blank follows, back to the previous separator; a leading 「申請補助：」 is cut off."""
    text = text.rstrip(" \u3000\u00a0\n")
    cut = max(text.rfind(s) for s in SEPARATORS)
    label = text[cut + 1:]
    label = re.sub(r"^\s*(?:\d+|[一二三四五六七八九十]+)[.、．)]", "", label)  # a note's number: 「4.」「一、」
    label = label.strip(" \u3000\u00a0：:")
    if "：" in label or ":" in label:
        pieces = [p.strip(" \u3000") for p in re.split(r"[：:]", label)]
        label = pieces[-2] if pieces[-1] in ("", "新台幣", "新臺幣", "NT$") else pieces[-1]
    return re.sub(r"[ \u3000\u00a0]+", "", label)


def _kind(label: str, unit: str | None) -> tuple[str, bool]:
    """(kind, money) of a blank from its label and unit."""
    if unit in MONEY_UNITS or any(w in label for w in MONEY_WORDS):
        return "whole", True
    if "日期" in label or "年月日" in label:
        return "date", False
    if unit in COUNT_UNITS:
        return "whole", False
    return "text", False


def _escape(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


def parse(text: str, cell: str) -> Found | None:
    """The blanks and boxes of a printed cell text, or None when it has none (a title, a label, a note)."""
    if not isinstance(text, str) or not text.strip() or ("{" in text and "}" in text):
        return None
    base = cell.lower()
    out: list[str] = []
    blanks: list[Blank] = []
    choice: Blank | None = None
    previous: Blank | None = None
    lead = ""  # the sentence's first label: 「本校共有【　　】棟【　　】坪」 titles its second blank 本校共有（坪）
    at = last = 0  # the end of the text taken into the template; of the last blank or box

    def new_key() -> str:
        return f"{base}{chr(ord('a') + len(blanks))}" if len(blanks) < 26 else f"{base}_{len(blanks)}"

    tokens = list(_TOKEN.finditer(text))
    for i, m in enumerate(tokens):
        before = text[at:m.start()]
        if m.group("box"):
            between = before if choice is not None else ""
            if choice is None or "：" in between or ":" in between:
                label = _label_before(text[last:m.start()])
                choice = Blank(new_key(), label, "choice")
                blanks.append(choice)
            choice.options.append(m.group("option"))
            out.append(_escape(before) + "{" + choice.key + "=" + m.group("option") + "}")
            at = last = m.end()
            continue
        following = text[m.end():tokens[i + 1].start() if i + 1 < len(tokens) else len(text)]
        unit = _unit_after(following)
        words = text[last:m.start()]
        if previous is not None and previous.unit and words.lstrip().startswith(previous.unit):
            words = words.lstrip()[len(previous.unit):]  # 「【　　】棟【　　】坪」: 棟 is the first blank's
        label = _label_before(words)
        labelled = bool(re.search(r"[：:][ \u3000]*$", text[:m.start()]))
        spaces = not m.group("run" if m.group("run") else "brackets").strip(" \u3000\u00a0")
        if m.group("run") and spaces and unit is None and not (labelled and not following.strip(" \u3000")):
            continue  # spaces between words (「經常門   小計」, 「金   額」): layout, no blank
        if any(label.endswith(w) for w in NOT_FIELDS):
            continue
        kind, money = _kind(label or lead, unit)
        title = (label + "＿" + unit if len(label) == 1 and unit else label) or (
            f"{lead}（{unit}）" if lead and unit else unit or lead)
        if not title:
            continue
        lead = lead or label
        key = new_key()
        previous = Blank(key, title, kind, money, unit)
        blanks.append(previous)
        shown = m.group(0)
        slot = "{" + key + "}"
        if m.group("brackets"):
            slot = shown[0] + slot + shown[-1]
        out.append(_escape(before) + slot)
        at = last = m.end()
    rest = text[at:]
    # a label ending in a colon at the end of a line: the agency writes after it (「學校所在地區：」)
    lines = rest.split("\n")
    last_line = max((n for n, line in enumerate(lines) if line.strip()), default=-1)
    for n, line in enumerate(lines):  # (only the last line: 「指標一：」 over its description heads it)
        stripped = line.rstrip(" \u3000")
        if n == last_line and re.search(r"[：:]$", stripped) and len(_label_before(stripped)) >= 2 and not any(
                _label_before(stripped).endswith(w) for w in NOT_FIELDS):
            label = _label_before(stripped)
            key = new_key()
            blanks.append(Blank(key, label, *_kind(label, None)))
            lines[n] = _escape(stripped) + "{" + key + "}"
        else:
            lines[n] = _escape(line)
    out.append("\n".join(lines))
    if not blanks:
        return None
    for b in blanks:
        if b.kind == "choice" and not b.title:
            b.title = "／".join(b.options)
    amounts = [b for b in blanks if b.money]
    for i, b in enumerate(blanks):
        if b.money and any(w in b.title for w in TOTAL_WORDS):
            parts = tuple(x.key for x in amounts if blanks.index(x) < i and x.kind != "total")
            if parts:
                b.kind, b.of = "total", parts
    return Found(cell, "".join(out), blanks)


# -- matching a returned text against the template --------------------------------------------------------------------
@dataclass
class Match:
    """What an agency wrote in a sentence field: each blank's text, each choice's marked options."""

    blanks: dict[str, str | None]
    marked: dict[str, list[str]]


def _literal(text: str) -> str:
    out = []
    for ch in _fold(text):
        if ch.isspace() or ch == "_":
            continue
        out.append(re.escape(ch) + ("?" if ch in "【】()[]" else ""))
    return _GAP.join(out)


@dataclass(frozen=True)
class Pattern:
    """A sentence template compiled for matching."""

    regex: re.Pattern[str]
    slots: tuple[tuple[str, Slot], ...]  # group name -> slot

    @classmethod
    def of(cls, template: str) -> Pattern:
        # (regex, absorbs spaces at its start, at its end): a gap [\s_]* goes only between two pieces that do not,
        # so no two patterns compete for the same spaces (competing ones backtracked for minutes on 4,000 characters)
        pieces: list[tuple[str, bool, bool]] = []
        slots: list[tuple[str, Slot]] = []
        marks = re.escape(BOXES + _fold(MARKS))
        for i, part in enumerate(sentence_parts(template)):
            if isinstance(part, str):
                if _literal(part):
                    pieces.append((_literal(part), False, False))
                continue
            slots.append((f"s{i}", part))
            if part.option is None:
                pieces.append((f"(?P<s{i}>.*?)", True, True))
            else:
                pieces.append((f"(?P<s{i}>[\\s_{marks}]*){_literal(part.option)}", True, False))
        out = [] if pieces and pieces[0][1] else [_GAP]
        for n, (regex, _lead, trail) in enumerate(pieces):
            out.append(regex)
            following = pieces[n + 1][1] if n + 1 < len(pieces) else False
            if not trail and not following:
                out.append(_GAP)
        return cls(re.compile("".join(out), re.DOTALL), tuple(slots))

    def match(self, text: str) -> Match | None:
        """The values in a returned text, or None when the printed words were changed."""
        if len(text) > MAX_TEXT:
            return None
        m = self.regex.fullmatch(_fold(text))
        if m is None:
            return None
        blanks: dict[str, str | None] = {}
        marked: dict[str, list[str]] = {}
        for group, slot in self.slots:
            got = m.group(group) or ""
            if slot.option is None:
                blanks[slot.key] = got.strip(" \t\r\n_\u3000") or None
            else:
                marked.setdefault(slot.key, [])
                if any(ch in _fold(MARKS) for ch in got):
                    marked[slot.key].append(slot.option)
        return Match(blanks, marked)


_PATTERNS: dict[str, Pattern] = {}


def pattern(template: str) -> Pattern:
    if template not in _PATTERNS:
        _PATTERNS[template] = Pattern.of(template)
    return _PATTERNS[template]


# -- writing a sentence with values -------------------------------------------------------------------------------
def render(template: str, values: Mapping[str, Any], *, mark: str = "■", empty: str = "＿＿") -> str:
    """The sentence with each blank's value (`empty` where there is none) and a mark in the chosen box; a choice's
    value may also be a mapping option -> text shown after the box (the consolidated form's counts)."""
    out = []
    for part in sentence_parts(template):
        if isinstance(part, str):
            out.append(part)
            continue
        value = values.get(part.key)
        if part.option is None:
            out.append(empty if value is None or value == "" else _shown(value))
        elif isinstance(value, Mapping):
            out.append(f"{BOXES[0]}{part.option}{value.get(part.option, '')}")
        else:
            out.append(f"{mark if value == part.option else BOXES[0]}{part.option}")
    return "".join(out)


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int | Decimal) or (isinstance(value, float) and value.is_integer()):
        number = Decimal(value) if not isinstance(value, float) else Decimal(int(value))
        return f"{number:,}" if number == number.to_integral_value() else str(number)
    return str(value)


def expected(template: str) -> str:
    """The sentence as printed, for a message: 「親職教育活動：＿＿元」."""
    return render(template, {})


def filled_sentences(meta: Meta, values: Mapping[str, Any]) -> dict[str, str]:
    """cell -> the sentence with the given values typed in (as an agency fills it), for each sentence field."""
    return {cell: render(text, values) for cell, text in meta.sentences.items()}


# -- adopt: the hook in collect.forms.adopt.analyse --------------------------------------------------------------------
@dataclass
class FormFields:
    """What a cells form holds besides its grid: sentence fields, check marks and budget tables."""

    inputs: list[dict[str, Any]]  # adopt Input keyword arguments
    cells: set[str]  # the cells these inputs take (the grid's own guesses there give way)
    sentences: dict[str, str]  # Meta.sentences
    products: list[tuple[str, str, str, str]]  # budget rows' 單價×數量=金額 (collect.forms.budget.product_rules)


def form_fields(ws: Any, merges: Merges, rows: tuple[int, int], cols: tuple[int, int]) -> FormFields:
    """The budget tables and the sentence fields in a form's block; a sentence's amount that names a section or a
    小計 of a budget table becomes that part's total (「經常門經費：＿＿元」 = 經常門 小計)."""
    budgets = budget_tables(ws, merges, rows, cols)
    out = FormFields([a for b in budgets for a in b.inputs], {c for b in budgets for c in b.cells}, {},
                     [p for b in budgets for p in b.products])
    sections = [s for b in budgets for s in b.sections]
    for found in sentence_fields(ws, merges, rows, cols):
        if found.cell in out.cells:
            continue
        for blank in found.blanks:
            parts = linked_total(blank.title, sections) if blank.money and blank.kind != "total" else None
            if parts:
                blank.kind, blank.of = "total", parts
        out.inputs += found.inputs()
        out.cells.add(found.cell)
        out.sentences[found.cell] = found.template
    return out


def sentence_fields(ws: Any, merges: Merges, rows: tuple[int, int], cols: tuple[int, int]) -> list[Found]:
    """The field cells of a sheet's block (rows and columns, first and last): each cell (a merged range's first)
    whose printed text has blanks or boxes."""
    out = []
    for r in range(rows[0], rows[1] + 1):
        for c in range(cols[0], cols[1] + 1):
            if merges.is_covered(r, c):
                continue
            cell = ws.cell(r, c)
            found = parse(cell.value, cell.coordinate) if isinstance(cell.value, str) else None
            if found is not None:
                found.ref = merges.ref(r, c)
                out.append(found)
    return out


CHECK_WORDS = ("V選", "v選", "勾選", "打V", "打v", "打勾", "請勾")
CHECKED = "V"  # a check-mark cell's one choice: any mark an agency types there reads as it


def check_cells(inputs: list[Any]) -> None:
    """Grid inputs whose title says the cell takes a mark (「V選」, 勾選, 打勾) become a choice of one option, V: a
    dropdown on issue, and on return any of V v ✓ ✔ ○ O X ■ ☑ (collect.receive.sentence) reads as V."""
    for inp in inputs:
        if inp.kind in ("text", "whole", "decimal", "code") and any(w in inp.title for w in CHECK_WORDS):
            inp.kind, inp.choices, inp.money, inp.ge = "choice", (CHECKED,), False, None
            inp.unsure = []


def is_mark(value: Any) -> bool:
    """A check mark as agencies type it: V, v, ✓, ✔, ○, O, X, ■, ☑ … (full-width too)."""
    text = _fold(str(value)).strip() if isinstance(value, str) else ""
    return len(text) == 1 and text in _fold(MARKS)


def literal_sentences(sentences: Mapping[str, str]) -> list[str]:
    """Meta(...)'s `sentences=` lines for a rules file: one line per field cell, the template readable as printed."""
    if not sentences:
        return []
    lines = ["    sentences={"]
    lines += [f"        {json.dumps(cell)}: {json.dumps(text, ensure_ascii=False)},"
              for cell, text in sentences.items()]
    lines.append("    },")
    return lines
