"""The picture of what adopt understood: a real form adopted by `collect adopt`, drawn with its inputs shaded by
kind, totals grey and furniture plain, rendered to PDF and PNG pages; `collect check` points to it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import openpyxl
import pytest
from conftest import run_cli

from collect.forms.picture import KINDS
from collect.workspace import Context, init_workspace

REALFORMS = Path(__file__).resolve().parents[2] / "shared" / "realforms"
FORM = "28-表II-1 補助項目經費彙整統計表.xls"


@pytest.fixture(scope="module")
def drawn(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    if not (REALFORMS / FORM).is_file():
        pytest.fail(f"{REALFORMS / FORM} is missing: the real forms come with ../shared beside the checkout")
    root = tmp_path_factory.mktemp("picture") / "ws"
    init_workspace(root, collections=[])
    done = run_cli("adopt", str(REALFORMS / FORM), "--id", "subsidy_grid", "--period", "year", cwd=root)
    assert done.returncode == 0, done.stderr
    return root, done.stdout


def test_adopt_draws_the_form_with_every_input_shaded_by_its_kind(drawn: tuple[Path, str]) -> None:
    root, stdout = drawn
    pdf = root / "outbox" / "forms" / "subsidy_grid" / "subsidy_grid-model.pdf"
    assert str(pdf) in stdout.replace("\n", "")
    coll = Context.open(root).collection("subsidy_grid")
    wb = openpyxl.load_workbook(pdf.with_suffix(".xlsx"))
    assert wb.sheetnames[0] == "圖例"
    ws = wb[coll.layout.sheet if coll.layout else ""]
    money = [c for c in coll.columns if c.money and c.cell and not c.is_total]
    totals = [c for c in coll.columns if c.is_total and c.cell]
    assert money and totals
    for col in money:
        cell = ws[col.cell or ""]
        assert cell.fill.fgColor.rgb.endswith(KINDS["money"][0]), col.cell
        assert cell.value == "金額" and cell.comment is not None and col.key in cell.comment.text
    for col in totals:
        assert ws[col.cell or ""].fill.fgColor.rgb.endswith(KINDS["total"][0]), col.cell
    # furniture stays as printed: a row label and the signature line carry none of the model's colours
    palette = {fill for fill, _, _ in KINDS.values()}
    for row in ws.iter_rows():
        for cell in row:
            if isinstance(cell.value, str) and ("承辦人" in cell.value or cell.value.strip() == "項次"):
                assert not any(str(cell.fill.fgColor.rgb).endswith(p) for p in palette), cell.coordinate
    legend = {wb["圖例"].cell(r, 2).value: wb["圖例"].cell(r, 3).value for r in range(5, 12)}
    assert legend[KINDS["money"][1]] == len(money)


def test_the_picture_is_a_readable_pdf_with_png_pages(drawn: tuple[Path, str]) -> None:
    root, _ = drawn
    folder = root / "outbox" / "forms" / "subsidy_grid"
    pdf = folder / "subsidy_grid-model.pdf"
    assert pdf.is_file()
    if shutil.which("pdftotext"):
        text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True,
                              check=True).stdout
        assert "圖例" in text and "金額（新臺幣元，整數）" in text and KINDS["total"][1] in text
        assert text.count("金額") > 30  # each money input labelled where the form leaves it empty
        assert "###" not in text and "nan" not in text.lower().split()
    if shutil.which("pdftoppm"):
        assert sorted(p.name for p in folder.glob("*.png")) == ["subsidy_grid-model-1.png", "subsidy_grid-model-2.png"]


def test_check_points_to_the_picture_and_picture_redraws_it(drawn: tuple[Path, str]) -> None:
    root, _ = drawn
    pdf = root / "outbox" / "forms" / "subsidy_grid" / "subsidy_grid-model.pdf"
    done = run_cli("check", "subsidy_grid", "--no-dry-round", cwd=root)
    assert done.returncode == 0, done.stderr
    assert f"see what collect reads: {pdf}" in done.stdout.replace("\n", "")
    pdf.unlink()
    again = run_cli("picture", "subsidy_grid", cwd=root)
    assert again.returncode == 0 and pdf.is_file(), again.stderr
    missing = run_cli("picture", "nosuch", cwd=root)
    assert missing.returncode == 1 and "There is no collection" in missing.stderr
