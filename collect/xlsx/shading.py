"""A template drawn as a picture of its model: cells shaded and labelled, a legend sheet first, rendered to PDF and
PNG pages through LibreOffice (and poppler's pdftoppm, where installed)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import openpyxl
from openpyxl.cell.cell import MergedCell
from openpyxl.comments import Comment
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import range_boundaries

from collect.xlsx import libreoffice
from collect.xlsx.printing import PrintSetup, apply_openpyxl

PNG_DPI = 60


@dataclass(frozen=True)
class Mark:
    """One place of the form as the model sees it: `ref` (A1 or A1:B9 on `sheet`) filled with `fill` (RGB hex),
    `label` written into its first cell where the form leaves it empty, `note` as that cell's comment."""

    sheet: str
    ref: str
    fill: str
    label: str
    note: str = ""


@dataclass(frozen=True)
class Swatch:
    """A legend line: the colour, what it means, how many places carry it."""

    fill: str
    meaning: str
    count: int


@dataclass(frozen=True)
class Picture:
    xlsx: Path
    pdf: Path | None
    pngs: tuple[Path, ...]


def shade(template: Path, marks: Sequence[Mark], legend: Sequence[Swatch], title: str, out: Path) -> Path:
    """Write a copy of `template` with every mark drawn and a 圖例 sheet first; returns `out`."""
    wb = openpyxl.load_workbook(template)
    for mark in marks:
        if mark.sheet not in wb.sheetnames:
            continue
        ws = wb[mark.sheet]
        c1, r1, c2, r2 = range_boundaries(mark.ref)
        fill = PatternFill("solid", fgColor=mark.fill)
        for r in range(r1 or 1, (r2 or r1 or 1) + 1):
            for c in range(c1 or 1, (c2 or c1 or 1) + 1):
                ws.cell(r, c).fill = fill
        first = ws.cell(r1 or 1, c1 or 1)
        if isinstance(first, MergedCell):
            continue
        if first.value in (None, "") and mark.label:
            first.value = mark.label
            first.font = Font(size=8, color="595959", italic=True)
            first.alignment = Alignment(wrap_text=True, vertical="center")
        if mark.note:
            first.comment = Comment(mark.note, "collect")
    legend_ws = wb.create_sheet("圖例", 0)
    legend_ws["A1"] = title
    legend_ws["A1"].font = Font(bold=True, size=14)
    legend_ws["A2"] = "有底色者為填報處，依種類著色；灰色為系統計算或預填；無底色者為表單文字，不讀。"
    legend_ws["A3"] = "每個填報處的名稱與檢核方式見其註解。"
    for i, head in enumerate(("圖例", "意義", "處數"), start=1):
        legend_ws.cell(4, i, head).font = Font(bold=True)
    for row, sw in enumerate(legend, start=5):
        legend_ws.cell(row, 1).fill = PatternFill("solid", fgColor=sw.fill)
        legend_ws.cell(row, 2, sw.meaning)
        legend_ws.cell(row, 3, sw.count)
    legend_ws.column_dimensions["A"].width = 10
    legend_ws.column_dimensions["B"].width = 46
    legend_ws.column_dimensions["C"].width = 8
    apply_openpyxl(legend_ws, PrintSetup())
    for sheet in wb.worksheets:
        sheet.protection.sheet = False
    out.parent.mkdir(parents=True, exist_ok=True)
    wb.save(out)
    return out


def render(xlsx: Path, outdir: Path) -> Picture:
    """`xlsx` rendered to `outdir`/<stem>.pdf by LibreOffice and to PNG pages (<stem>-1.png …) by pdftoppm; either
    is missing where its program is not installed."""
    with tempfile.TemporaryDirectory(prefix="collect-picture-") as tmp:
        (made,) = libreoffice.convert([xlsx], "pdf", Path(tmp), seconds=120)
        if made is None:
            return Picture(xlsx, None, ())
        pdf = outdir / f"{xlsx.stem}.pdf"
        shutil.move(made, pdf)
    for old in outdir.glob(f"{xlsx.stem}-*.png"):
        old.unlink()
    pdftoppm = shutil.which("pdftoppm")
    if pdftoppm:
        subprocess.run([pdftoppm, "-png", "-r", str(PNG_DPI), str(pdf), str(outdir / xlsx.stem)],
                       capture_output=True, timeout=120, check=False)
    return Picture(xlsx, pdf, tuple(sorted(outdir.glob(f"{xlsx.stem}-*.png"))))
