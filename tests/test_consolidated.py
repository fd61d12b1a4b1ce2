"""The 彙整表 of a list form: the accepted rows under the form's header, written in bulk, numbered, capped."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import openpyxl
import pandas as pd

from collect.forms.collection import load_collection
from collect.forms.template import write_default
from collect.report import consolidated
from collect.xlsx.writer import write_workbook

REPO = Path(__file__).resolve().parent.parent


def _covid19(tmp_path: Path):
    (tmp_path / "rules").mkdir()
    (tmp_path / "templates_xlsx").mkdir()
    shutil.copy(REPO / "rules" / "covid19.py", tmp_path / "rules" / "covid19.py")
    coll = load_collection(tmp_path / "rules", tmp_path / "templates_xlsx", "covid19", need_template=False)
    write_default(coll, tmp_path / "templates_xlsx" / "covid19.xlsx")
    return load_collection(tmp_path / "rules", tmp_path / "templates_xlsx", "covid19")


def _rows(coll, n: int) -> pd.DataFrame:
    data: dict[str, object] = {"agency": [f"A{i % 7:02d}" for i in range(n)], "agency_name": "某機關",
                               "supervisor": ["S1" if i % 2 else "S2" for i in range(n)],
                               "supervisor_name": "某局", "receipt": "R"}
    for c in coll.columns:
        kind = coll.value_kind(c)
        if kind == "whole":
            data[c.key] = pd.array([10**14 + i for i in range(n)], dtype="Int64")  # beyond float's exact sums
        elif kind == "date":
            data[c.key] = [pd.Timestamp(date(2026, 3, 5))] * n
        elif kind == "decimal":
            data[c.key] = [0.5] * n
        else:
            data[c.key] = [f"計畫{i}" for i in range(n)]
    return pd.DataFrame(data)


def test_a_list_longer_than_the_form_lists_up_to_the_cap_numbered_and_says_so(tmp_path, monkeypatch):
    coll = _covid19(tmp_path)
    lay = coll.layout
    form_rows = len(lay.data_rows)
    n = form_rows + 30
    monkeypatch.setattr(consolidated, "MAX_LISTED_ROWS", form_rows + 20)
    rows = _rows(coll, n)
    path = tmp_path / "out.xlsx"
    write_workbook(path, consolidated.sheet_writer(coll, rows, "115年10月", "115/11/10")(None, "&C第 &P 頁"))
    ws = openpyxl.load_workbook(path)["彙整表"]
    letters = lay.letters
    money = next(c for c in coll.columns if c.money)
    first = lay.data_first_row
    listed = [ws[f"{letters[money.key]}{first + i}"].value for i in range(form_rows + 20)]
    assert listed == [10**14 + i for i in range(form_rows + 20)]  # the first MAX_LISTED_ROWS, in order
    assert ws[f"{letters[money.key]}{first + form_rows + 20}"].value is None
    ordinal = next((c for c in coll.columns if c.ordinal), None)
    if ordinal is not None:  # 項次 numbers the rows of this form
        assert [ws[f"{letters[ordinal.key]}{first + i}"].value for i in (0, 1, form_rows + 19)] == [1, 2,
                                                                                                   form_rows + 20]
    text = next(c for c in coll.columns if coll.value_kind(c) == "text" and not c.ordinal)
    assert ws[f"{letters[text.key]}{first + 3}"].value == "計畫3"
    assert ws[f"{letters[text.key]}{first}"].number_format == ws[f"{letters[text.key]}{first + 3}"].number_format
    values = [[c.value for c in row] for row in ws.iter_rows()]
    notes = [v for row in values for v in row if isinstance(v, str) and v.startswith("本表列出前")]
    assert notes == [f"本表列出前 {form_rows + 20:,} 列（共 {n:,} 列），合計含全部各列；完整資料見「明細」工作表及 "
                     f"Parquet/CSV 檔，各列所屬機關亦見「明細」（順序相同）。"]
