"""A return's sentence fields read: each blank's value and each choice's marked box out of the cell's text.

Check-mark cells (「V選」, a choice of the one option V) read any mark an agency types (✓, ○, ■ …) as V.

Called by collect.receive.table for a cells form with `Meta.sentences`. The values go on as the cells' raw values
(normalised and validated by kind like any input); a total written in a sentence is held against its parts (a number,
else an error there); a sentence whose printed words were changed, or a question with two boxes marked, is a finding
at its cell.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from collect import findings as F
from collect.findings import Finding
from collect.forms.sentence import CHECKED, expected, is_mark, pattern
from collect.forms.spec import Collection, Slot, sentence_parts
from collect.normalise import normalise_value


@dataclass
class Read:
    """What the sentence fields of one return hold."""

    values: dict[str, Any] = field(default_factory=dict)  # input key -> the text written in its blank (None: none)
    stated: dict[str, tuple[str, Any]] = field(default_factory=dict)  # cell -> (total key, the total written)
    findings: list[Finding] = field(default_factory=list)


def read_sentences(coll: Collection, value_at: Callable[[str], Any], sheet: str, locale: str = "zh-TW") -> Read:
    """Each sentence field's values in a returned sheet (`value_at(A1)` gives a cell's value as read)."""
    out = Read()
    keys = {c.key: c for c in coll.columns}
    for cell, template in coll.meta.sentences.items():
        slots = [p for p in sentence_parts(template) if isinstance(p, Slot) and p.key in keys]
        inputs = list(dict.fromkeys(p.key for p in slots if keys[p.key].is_input))
        out.values.update(dict.fromkeys(inputs))
        raw = value_at(cell)
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            continue  # the whole sentence cleared: every blank is blank
        got = pattern(template).match(raw if isinstance(raw, str) else str(raw))
        if got is None and len(inputs) == 1 and _answer_alone(raw, keys[inputs[0]].kind):
            out.values[inputs[0]] = raw  # 「全校班級數：＿＿班」 typed over whole with its one answer: that answer
            continue
        if got is None:
            titles = "、".join(dict.fromkeys(keys[p.key].title for p in slots))
            out.findings.append(F.make("field.sentence_changed", locale, sheet=sheet, cell=cell,
                                       column=titles[:60], value=str(raw), detail=expected(template).strip()))
            continue
        for key, text in got.blanks.items():
            if key not in keys:
                continue
            if keys[key].is_input:
                out.values[key] = text
            elif keys[key].is_total and text is not None:
                if normalise_value(text, "decimal")[1] is not None:  # 「一萬二」 where the sentence's total is
                    out.findings.append(F.make("value.not_number", locale, sheet=sheet, cell=cell,
                                               column=keys[key].title, value=text))
                else:
                    out.stated[cell] = (key, text)
        for key, options in got.marked.items():
            if key not in keys:
                continue
            if len(options) > 1:
                out.findings.append(F.make("field.two_choices", locale, sheet=sheet, cell=cell,
                                           column=keys[key].title, value="、".join(options)))
            out.values[key] = options[0] if len(options) == 1 else None
    lay = coll.layout
    for col in coll.inputs:  # a 「V選」 cell (isin=["V"]): any mark reads as V
        if col.choices == (CHECKED,) and lay is not None and col.key in lay.cells and col.key not in out.values:
            value = value_at(lay.cells[col.key])
            if is_mark(value):
                out.values[col.key] = CHECKED
    return out


def _answer_alone(raw: Any, kind: str) -> bool:
    """A one-blank sentence typed over whole with what looks like the answer alone: a number for a number, a date
    for a date, a text without a label's colon for a text."""
    if kind in ("whole", "decimal", "date"):
        return normalise_value(raw, "decimal" if kind != "date" else "date")[1] is None
    return kind in ("text", "code") and isinstance(raw, str) and not any(ch in raw for ch in "：:")
