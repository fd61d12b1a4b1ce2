"""The consolidated form's sentence fields: each printed sentence with the accepted returns' figures in its blanks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from collect.forms.sentence import render
from collect.forms.spec import Collection, Slot, sentence_parts


def sentence_sums(coll: Collection, rows: pd.DataFrame, sums: Mapping[str, Any]) -> dict[str, str]:
    """Cell -> its sentence as printed, each blank holding what the 彙整表 shows for it (`sums`: money and counts
    added up, texts listed) and each box of a choice the number of returns that marked it: 「□新申請項目（3）」."""
    keys = {c.key: c for c in coll.columns}
    out: dict[str, str] = {}
    for cell, template in coll.meta.sentences.items():
        values: dict[str, Any] = {}
        for part in sentence_parts(template):
            if not isinstance(part, Slot) or part.key not in keys or part.key in values:
                continue
            col = keys[part.key]
            if col.kind == "choice":
                marked = rows[col.key].value_counts() if col.key in rows else pd.Series(dtype="int64")
                values[col.key] = {option: f"（{int(marked.get(option, 0)):,}）" for option in col.choices or ()}
            else:
                values[col.key] = sums.get(col.key)
        out[cell] = render(template, values)
    return out
