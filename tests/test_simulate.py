"""The simulated agency (collect.simulate): what it types lands where a person would type it, the same whether the
workbook is patched or saved whole, and survives a LibreOffice save; it never retypes what the office prefilled."""

from __future__ import annotations

import random
from datetime import date, datetime
from pathlib import Path

import pytest

from collect.forms.issuing import issue
from collect.simulate import apply_mistake, cells_for, fill, generic_rows, prefilled_cells, saved_by_libreoffice
from collect.workspace import Context
from collect.xlsx.values import sheet_values

ROUND = "2026-10"


@pytest.fixture
def issued(ctx: Context) -> bytes:
    result = issue(ctx, "covid19", ROUND, agencies=["020001"], today=date(2026, 11, 1))
    return result.issued[0].path.read_bytes()


def typed(data: bytes) -> dict[str, object]:
    """A1 -> value of the data rows (7 on) of the covid19 form, dates as dates."""
    out: dict[str, object] = {}
    for (r, c), v in sheet_values(data, "填報表").items():
        if r >= 7 and c != 8:  # H is the execution-rate formula
            out[f"{'ABCDEFGHIJ'[c - 1]}{r}"] = v.date() if isinstance(v, datetime) else v
    return out


def test_rows_land_in_the_forms_data_rows_patched_or_saved_whole(ctx: Context, issued: bytes) -> None:
    coll = ctx.collection("covid19")
    rows = generic_rows(coll, random.Random(3), ROUND)
    assert rows and prefilled_cells(issued, coll) == {}  # nothing prefilled: the rows start at row 7
    cells = cells_for(coll, rows)
    assert min(int(ref[1:]) for ref in cells) == 7 and max(int(ref[1:]) for ref in cells) == 6 + len(rows)
    assert cells["B7"] == rows[0]["name"] and cells["E7"] == rows[0]["approved"]
    patched, saved = fill(issued, coll, rows), fill(issued, coll, rows, resave=True)
    assert typed(patched) == typed(saved)
    assert {k: v for k, v in typed(patched).items() if v not in ("", None)} == {
        k: (float(v) if isinstance(v, int) else v) for k, v in cells.items()}


def test_a_mistake_is_typed_as_an_agency_makes_it(ctx: Context, issued: bytes) -> None:
    coll = ctx.collection("covid19")
    rows = generic_rows(coll, random.Random(3), ROUND)
    wide = apply_mistake(rows, "fullwidth_amount", coll)
    amount = next(v for r in wide for v in r.values() if isinstance(v, str) and "，" in v)
    assert typed(fill(issued, coll, wide))["E7"] == amount  # text, full-width digits and commas, as typed
    assert apply_mistake(rows, "total_row", coll)[-1]["name"] == "合計"


def test_the_office_prefill_is_never_retyped(ctx: Context) -> None:
    coll = ctx.collection("covid19")  # key: 計畫名稱 (name)
    present = {7: {"name": "口罩採購", "approved": 100}}
    # The prefilled row by its key: what equals the prefill is left as it is, the rest is typed beside it; a row of
    # another key goes after the last prefilled row.
    assert cells_for(coll, [{"name": "快篩試劑", "approved": 7}, {"name": "口罩採購", "approved": 100.0, "spent": 5}],
                     present) == {"B8": "快篩試劑", "E8": 7, "G7": 5}
    with pytest.raises(ValueError, match=r"E7 already holds 100 in the issued workbook; the return has 200"):
        cells_for(coll, [{"name": "口罩採購", "approved": 200}], present)


def test_libreoffice_saves_what_the_agency_typed(ctx: Context, issued: bytes, tmp_path: Path) -> None:
    coll = ctx.collection("covid19")
    rows = generic_rows(coll, random.Random(5), ROUND)
    patched = fill(issued, coll, rows)
    (saved,) = saved_by_libreoffice({"020001": patched}).values()
    assert saved[:2] == b"PK" and saved != patched
    assert typed(saved) == typed(patched)
