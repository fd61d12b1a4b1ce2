"""What adopt understood, as a picture: a collection's inputs shaded by kind on its own template, totals and
computed cells grey, furniture plain, each input's name in a note; staff confirm the model at a glance."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from collect.forms.spec import Collection, ColumnSpec
from collect.xlsx.shading import Mark, Picture, Swatch, render, shade

# kind -> (fill, what the legend says, the label written into an empty input cell)
KINDS: dict[str, tuple[str, str, str]] = {
    "money": ("C6EFCE", "金額（新臺幣元，整數）", "金額"),
    "whole": ("DDEBF7", "整數（人數、班數、件數…）", "整數"),
    "decimal": ("BDD7EE", "數值（可有小數）", "數值"),
    "date": ("E4DFEC", "日期（民國或西元）", "日期"),
    "text": ("FFF2CC", "文字", "文字"),
    "choice": ("FCE4D6", "選項（下拉選單）", "選項"),
    "total": ("D9D9D9", "合計、小計或公式：系統計算，不必填", "自動計算"),
    "prefill": ("EDEDED", "系統預填（機關代碼、名稱、期間…）", "預填"),
}


def _kind_of(col: ColumnSpec) -> str:
    if col.is_total or col.formula is not None:
        return "total"
    if col.locked_prefill:
        return "prefill"
    if col.choices:
        return "choice"
    if col.money:
        return "money"
    return col.kind if col.kind in KINDS else "text"


def _note(col: ColumnSpec, kind: str) -> str:
    extra = f"；選項：{'、'.join(col.choices)}" if col.choices else ""
    need = "必填" if col.required else "選填"
    return f"{col.title}\n鍵：{col.key}（{KINDS[kind][1]}，{need}{extra}）"


def marks_for(coll: Collection) -> list[Mark]:
    """Every place of the template the collection reads or computes, as the model describes it."""
    lay = coll.layout
    if lay is None:
        return []
    marks: list[Mark] = []
    for col in coll.columns:
        kind = _kind_of(col)
        fill, _, label = KINDS[kind]
        if col.cell:
            marks.append(Mark(lay.sheet, col.cell, fill, label, _note(col, kind)))
        elif col.key in lay.letters:
            letter = lay.letters[col.key]
            ref = f"{letter}{lay.data_first_row}:{letter}{lay.data_last_row}"
            marks.append(Mark(lay.sheet, ref, fill, label, _note(col, kind)))
    for row in lay.total_rows:
        for letter in lay.letters.values():
            marks.append(Mark(lay.sheet, f"{letter}{row}", KINDS["total"][0], ""))
    by_key = {f.key: f for f in coll.fields}
    for key, ref in lay.fields.items():
        f = by_key.get(key)
        marks.append(Mark(lay.sheet, ref, KINDS["prefill"][0], KINDS["prefill"][2],
                          f"{f.title if f else key}\n鍵：{key}（系統預填）"))
    for name, ref in lay.identity.items():
        marks.append(Mark(lay.sheet, ref, KINDS["prefill"][0], KINDS["prefill"][2], f"{name}（系統預填）"))
    return marks


def legend_for(coll: Collection) -> list[Swatch]:
    counts = Counter(_kind_of(c) for c in coll.columns)
    lay = coll.layout
    if lay is not None:
        counts["prefill"] += len(lay.fields) + len(lay.identity)
    return [Swatch(fill, meaning, counts[k]) for k, (fill, meaning, _) in KINDS.items() if counts[k]]


def picture_dir(outbox: Path, cid: str) -> Path:
    return outbox / "forms" / cid


def picture_path(outbox: Path, cid: str) -> Path:
    """Where `draw` puts a collection's PDF."""
    return picture_dir(outbox, cid) / f"{cid}-model.pdf"


def draw(coll: Collection, outdir: Path) -> Picture:
    """outdir/<id>-model.xlsx, .pdf and -N.png: the template with the model drawn on it (see KINDS)."""
    outdir.mkdir(parents=True, exist_ok=True)
    title = f"{coll.title}（{coll.id}）：collect 讀到的表單"
    xlsx = shade(coll.template_path, marks_for(coll), legend_for(coll), title, outdir / f"{coll.id}-model.xlsx")
    return render(xlsx, outdir)
