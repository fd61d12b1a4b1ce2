"""Adopting the office's real forms as published (.xls, ../shared/realforms): `collect adopt`, `collect check`'s dry
round, then a round of five agencies filled through openpyxl and LibreOffice, ingested, decided and reported."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from conftest import convert, run_cli

from collect.forms.adopt import analyse, pick_sheet
from collect.workspace import Context, init_workspace

REALFORMS = Path(__file__).resolve().parents[2] / "shared" / "realforms"
FORMS = {  # collection id -> the published file
    "vehicles": "25-表A-6-3縣市現有交通車調查表.xls",
    "subsidy_grid": "28-表II-1 補助項目經費彙整統計表.xls",
    "results": "36-縣市填報 (二)發展學校特色執行成果.xls",
    "indicators": "6-表I-1指標界定調查紀錄表.xls",
}
ROUND = "2026-10"
# one worker adopts the four forms once (LibreOffice converts each), for every test of this module
pytestmark = pytest.mark.xdist_group("adopt")
AGENCIES = ["020001", "020002", "020003", "020004", "020005"]


def test_this_module_runs_on_one_worker(request: pytest.FixtureRequest) -> None:
    """Under pytest-xdist (`make test`), --dist loadgroup keeps the module on one worker, so the forms are adopted once
    (it stopped doing so silently with pytest 9.2; pyproject.toml says why pytest is held below it)."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        assert request.node.nodeid.endswith("@adopt")


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace that adopted every real form from its .xls, as a user runs it (no hand edit, no Python)."""
    if not REALFORMS.is_dir():
        pytest.fail(f"{REALFORMS} is missing: the real forms come with ../shared beside the checkout")
    root = tmp_path_factory.mktemp("adopt") / "ws"
    init_workspace(root, collections=[])
    for cid, name in FORMS.items():
        done = run_cli("adopt", str(REALFORMS / name), "--id", cid, cwd=root)
        assert done.returncode == 0, done.stderr
        assert f"next: collect check {cid}" in done.stdout
    return root


def test_adopt_writes_a_template_with_the_same_look_and_a_readable_rules_file(ws: Path) -> None:
    for cid in FORMS:
        rules = (ws / "rules" / f"{cid}.py").read_text(encoding="utf-8")
        assert "from collect.forms.spec import Meta, column" in rules
        wb = openpyxl.load_workbook(ws / "templates_xlsx" / f"{cid}.xlsx")
        assert {"COLLECT_HEADER", "COLLECT_DATA"} <= set(wb.defined_names)
    source = openpyxl.load_workbook(convert([REALFORMS / FORMS["subsidy_grid"]], "xlsx", ws.parent / "src")[0])
    adopted = openpyxl.load_workbook(ws / "templates_xlsx" / "subsidy_grid.xlsx")
    a, b = source["Sheet1"], adopted["Sheet1"]
    assert {str(r) for r in a.merged_cells.ranges} == {str(r) for r in b.merged_cells.ranges}
    assert [(k, d.width) for k, d in sorted(a.column_dimensions.items())] == \
        [(k, d.width) for k, d in sorted(b.column_dimensions.items())]
    assert b["B10"].value == "修繕離島或偏遠地區師生宿舍" and b["A25"].value == "承辦人："  # furniture kept as printed
    assert b["I6"].value == '=IF(COUNT(E6,G6)=0,"",SUM(E6,G6))'  # a subtotal left blank on paper now adds up
    assert b["F23"].value.startswith("=IF(COUNT(F6,F7,")  # the 總計 row
    indicators = openpyxl.load_workbook(ws / "templates_xlsx" / "indicators.xlsx").active
    assert indicators["F6"].value is None and indicators["F6"].number_format == '#,##0"(班)"'  # the unit moved


def test_adopt_infers_the_shape_kinds_and_totals_of_each_form(ws: Path) -> None:
    plans = {}
    for cid, name in FORMS.items():
        wb = openpyxl.load_workbook(convert([REALFORMS / name], "xlsx", ws.parent / "plans")[0])
        plans[cid] = analyse(pick_sheet(wb))
    v = plans["vehicles"]
    kinds = {i.key: (i.kind, i.money, i.required) for i in v.inputs}
    assert (v.shape, v.header, v.data, v.totals) == ("list", (5, 6), (7, 23), ())
    assert kinds["col_a"] == ("whole", False, False)  # 編號: a 項次 column
    assert kinds["col_g"] == ("date", False, True) and kinds["col_h"] == ("whole", True, True)
    assert kinds["col_f"] == ("whole", False, True) and kinds["col_m"] == ("text", False, False)  # 乘客數 (座); 備註
    assert kinds["col_i"] == ("text", False, True)  # 經費來源 names a source: text, though it says 經費
    r = plans["results"]
    assert (r.shape, r.header, r.data, r.totals) == ("list", (3, 6), (7, 31), (32,))
    titles = {i.key: i.title for i in r.inputs}
    assert titles["col_d"] == "教育部核定金額 › 發展教育特色 › 經常門"
    assert titles["col_g"] == "學校執行成果 › 發展教育特色 › 經常門"  # the same leaf title, told apart by its path
    totals = {i.key: i.of for i in r.inputs if i.kind == "total"}
    assert totals == {"col_f": ("col_d", "col_e"), "col_i": ("col_g", "col_h"), "col_l": ()}  # rates are not summed
    g = plans["subsidy_grid"]
    assert (g.shape, g.header, g.data, g.totals, g.labels) == ("cells", (3, 5), (6, 23), (23,), (1, 4))
    cells = {i.key: i for i in g.inputs}
    assert cells["e10"].title == "三 › 修繕離島或偏遠地區師生宿舍 › 教師宿舍 › 國民中學 › 校"
    assert (cells["e10"].ref, cells["e10"].kind) == ("E10:E11", "whole")  # one count over 經常門 and 資本門
    assert (cells["f11"].kind, cells["f11"].money) == ("whole", True)
    assert cells["i6"].of == ("e6", "g6") and cells["j9"].of == ("f9", "h9")
    assert cells["f23"].of == tuple(f"f{r}" for r in range(6, 23))
    n = plans["indicators"]
    cells = {i.key: i for i in n.inputs}
    assert (n.shape, n.labels) == ("cells", (2, 5))
    assert (cells["f5"].kind, cells["f6"].kind, cells["f6"].unit, cells["f12"].kind) == ("text", "whole", "班",
                                                                                           "decimal")
    assert cells["f18"].of == ("f13", "f14", "f15", "f16", "f17")  # 目標學生合計人數
    assert cells["f33"].of == ("f30", "f31", "f32")  # 教師異動人數 101 至 103 學年合計


def test_check_runs_a_dry_round_on_every_adopted_form(ws: Path) -> None:
    done = run_cli("check", cwd=ws)
    assert done.returncode == 0, done.stdout + done.stderr
    for cid in FORMS:
        assert f"✓ {cid}: template and rules agree; dry round: issued to" in done.stdout


def _fill(path: Path, target: Path, values: dict[str, Any]) -> Path:
    wb = openpyxl.load_workbook(path)
    sheet = wb[wb.sheetnames[[s.sheet_state for s in wb.worksheets].index("visible")]]
    for ref, value in values.items():
        sheet[ref] = value
    target.parent.mkdir(parents=True, exist_ok=True)
    wb.save(target)
    return target


def _round(ws: Path, cid: str, good: list[dict[str, Any]], mistake: dict[str, Any]) -> dict[str, Any]:
    """Issue to five agencies; three filled with openpyxl, one saved again by LibreOffice, one with a mistake."""
    done = run_cli("issue", cid, "--round", ROUND, *[a for code in AGENCIES for a in ("--agency", code)], cwd=ws)
    assert done.returncode == 0, done.stderr
    issued = sorted((ws / "outbox" / cid / ROUND / "issued").glob("*.xlsx"))
    assert [p.name[:6] for p in issued] == AGENCIES
    made = ws.parent / f"made-{cid}"
    files = [_fill(issued[i], made / f"{AGENCIES[i]}.xlsx", good[i]) for i in range(3)]
    lo_source = _fill(issued[3], made / "lo" / f"{AGENCIES[3]}.xlsx", good[3])
    files += convert([lo_source], "xlsx", made / "through-libreoffice")
    files.append(_fill(issued[4], made / f"{AGENCIES[4]}.xlsx", mistake))
    done = run_cli("ingest", "--json", *map(str, files), cwd=ws)
    assert done.returncode == 0, done.stderr
    outcomes = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    report = run_cli("report", cid, "--round", ROUND, cwd=ws)
    assert report.returncode == 0, report.stderr
    return {o["agency"]: o for o in outcomes}


def test_a_round_of_the_grid_form(ws: Path) -> None:
    # staff correct one word: on the consolidated form 國小 › 校 counts the returns with an amount (a rule, not a
    # guess), where 國中 › 校 adds up what the agencies typed
    rules = ws / "rules" / "subsidy_grid.py"
    text = rules.read_text(encoding="utf-8")
    rules.write_text(text.replace('cell="G6")', 'cell="G6", count_of="h6")', 1), encoding="utf-8")
    good = [{"E6": 2, "F6": 120_000, "G6": 1, "H6": 30_000, "F8": 50_000, "F9": 70_000, "E8": 1}
            for _ in range(4)]
    good[1] |= {"I6": 3}  # the agency's own subtotal, right
    good[2] |= {"I6": 4}  # ... and wrong: a warning at that cell, the return still accepted
    good[3] |= {"G6": 3}  # three schools typed: the consolidated form counts one return (count_of)
    out = _round(ws, "subsidy_grid", good, {"E6": 2, "F6": "十二萬", "G6": 1})
    assert {a: o["verdict"] for a, o in out.items()} == dict.fromkeys(AGENCIES[:4], "accepted") | {
        AGENCIES[4]: "rejected"}
    assert [(f["code"], f["cell"]) for f in out[AGENCIES[4]]["findings"]] == [("value.not_number", "F6")]
    assert [(f["code"], f["cell"], f["severity"]) for f in out[AGENCIES[2]]["findings"]] == [
        ("total.mismatch", "I6", "warning")]
    assert out[AGENCIES[0]]["findings"] == [] and out[AGENCIES[3]]["findings"] == []
    ctx = Context.open(ws)
    frame = ctx.ledger  # the report ran; its data lands in Parquet with one row per accepted return
    assert frame is not None
    ctx.close()
    data = _parquet(ws, "subsidy_grid")
    assert len(data) == 4 and data["f6"].sum() == 480_000 and data["i6"].tolist() == [3, 3, 3, 5]
    # the consolidated form: the form itself, every input cell the exact sum over the accepted returns, totals
    # recomputed (the agency that stated I6 = 4 counts as 3), furniture as printed
    for name in ("subsidy_grid-2026-10-總表.xlsx", "subsidy_grid-2026-10-020000-臺北市政府民政局.xlsx"):
        sheet = openpyxl.load_workbook(ws / "outbox" / "subsidy_grid" / ROUND / "report" / name)["彙整表"]
        got = {ref: sheet[ref].value for ref in ("E6", "F6", "G6", "H6", "I6", "J6", "K6", "E8", "F8", "F9",
                                                  "J8", "K8", "F23", "J23", "E10")}
        assert got == {"E6": 8, "F6": 480_000, "G6": 4, "H6": 120_000, "I6": 12, "J6": 600_000, "K6": 600_000,
                       "E8": 4, "F8": 200_000, "F9": 280_000, "J8": 200_000, "K8": 480_000, "F23": 960_000,
                       "J23": 1_080_000, "E10": None}
        assert sheet["B10"].value == "修繕離島或偏遠地區師生宿舍" and sheet["A25"].value == "承辦人："
        assert "E8:E9" in {str(r) for r in sheet.merged_cells.ranges}


def test_the_stamped_grid_opens_only_its_input_cells_each_with_the_validation_of_its_kind(ws: Path) -> None:
    done = run_cli("issue", "subsidy_grid", "--round", "2026-11", "--agency", AGENCIES[0], cwd=ws)
    assert done.returncode == 0, done.stderr
    issued = sorted((ws / "outbox" / "subsidy_grid" / "2026-11" / "issued").glob("*.xlsx"))
    sheet = openpyxl.load_workbook(issued[0])["Sheet1"]
    assert sheet.protection.sheet
    assert not sheet["E6"].protection.locked and not sheet["F9"].protection.locked  # inputs
    assert sheet["I6"].protection.locked and sheet["K6"].protection.locked  # totals
    assert sheet["B10"].protection.locked and sheet["A25"].protection.locked  # labels, furniture
    kinds = {str(c): dv.type for dv in sheet.data_validations.dataValidation for c in dv.sqref.ranges}
    assert kinds["E6"] == "whole" and kinds["F9"] == "whole" and "I6" not in kinds


def test_a_round_of_the_list_form(ws: Path) -> None:
    row = {"A7": "臺北市", "B7": "123456", "C7": "市立甲國小", "D7": 100_000, "E7": 50_000, "G7": 80_000,
           "H7": 40_000, "J7": 80, "K7": 80}
    second = {"A8": "臺北市", "B8": "123457", "C8": "市立乙國小", "D8": 10_000, "E8": 0, "G8": 10_000, "H8": 0,
              "J8": 100, "K8": 0}
    good = [row, row | second, row | {"F7": 150_000}, row]
    mistake = row | {"D7": -5}
    out = _round(ws, "results", good, mistake)
    assert [out[a]["verdict"] for a in AGENCIES] == ["accepted"] * 4 + ["rejected"]
    assert [(f["code"], f["cell"]) for f in out[AGENCIES[4]]["findings"]] == [("value.min", "D7")]
    assert all(out[a]["findings"] == [] for a in AGENCIES[:4])
    data = _parquet(ws, "results")
    assert len(data) == 5  # the four accepted returns' rows: 1 + 2 + 1 + 1
    assert int(data["col_f"].sum()) == 4 * 150_000 + 10_000  # 合計 recomputed, the agency's own F7 = 150,000 too
    sheet = openpyxl.load_workbook(ws / "outbox" / "results" / ROUND / "report" / "results-2026-10-總表.xlsx")["彙整表"]
    listed = [(sheet[f"B{r}"].value, sheet[f"D{r}"].value, sheet[f"F{r}"].value) for r in range(7, 12)]
    assert listed == [("123456", 100_000, 150_000), ("123456", 100_000, 150_000), ("123457", 10_000, 10_000),
                      ("123456", 100_000, 150_000), ("123456", 100_000, 150_000)]
    assert sheet["B12"].value is None and sheet["A32"].value == "合計"
    assert (sheet["D32"].value, sheet["F32"].value, sheet["G32"].value) == (410_000, 610_000, 330_000)


def test_a_round_of_the_vehicle_list(ws: Path) -> None:
    from datetime import date

    row = {"A7": 1, "B7": "ABC-1234", "C7": "市立甲國小", "D7": "福特 中型巴士", "E7": 2400, "F7": 20,
           "G7": date(2020, 5, 1), "H7": 2_500_000, "I7": "教育部補助", "J7": 120_000.5, "K7": 18, "L7": "堪用"}
    out = _round(ws, "vehicles", [row, row | {"M7": "113年換新"}, row, row], row | {"G7": "2020/13/45"})
    assert [out[a]["verdict"] for a in AGENCIES] == ["accepted"] * 4 + ["rejected"]
    assert [(f["code"], f["cell"]) for f in out[AGENCIES[4]]["findings"]] == [("value.not_date", "G7")]
    assert all(out[a]["findings"] == [] for a in AGENCIES[:4])
    assert int(_parquet(ws, "vehicles")["col_h"].sum()) == 4 * 2_500_000


def test_a_round_of_the_indicator_record(ws: Path) -> None:
    cells = {"F5": "偏遠地區", "F6": 12, "F7": 300, "F8": 20, "F11": 30, "F12": 10.5, "F13": 5, "F14": 4,
             "F15": 3, "F16": 2, "F17": 1, "H5": "是"}
    out = _round(ws, "indicators", [cells] * 4, cells | {"F7": "三百"})
    assert [out[a]["verdict"] for a in AGENCIES] == ["accepted"] * 4 + ["rejected"]
    assert [(f["code"], f["cell"]) for f in out[AGENCIES[4]]["findings"]] == [("value.not_number", "F7")]
    sheet = openpyxl.load_workbook(ws / "outbox" / "indicators" / ROUND / "report" / "indicators-2026-10-總表.xlsx")[
        "彙整表"]
    assert (sheet["F6"].value, sheet["F12"].value, sheet["F18"].value) == (48, 42, 60)  # 目標學生合計 recomputed
    assert sheet["F5"].value == "偏遠地區"  # a text cell lists what was written


def _parquet(ws: Path, cid: str) -> Any:
    import pandas as pd

    found = sorted((ws / "outbox" / cid / ROUND / "report").glob("*.parquet"))
    assert found, "the report wrote no Parquet"
    return pd.read_parquet(found[0])


def test_adopt_refuses_a_file_that_is_not_a_form_with_a_clear_answer(ws: Path, tmp_path: Path) -> None:
    blank = tmp_path / "blank.xlsx"
    openpyxl.Workbook().save(blank)
    done = run_cli("adopt", str(blank), "--id", "blank_form", cwd=ws)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "borders" in done.stderr and "hint:" in done.stderr
    assert not (ws / "rules" / "blank_form.py").exists()
    again = run_cli("adopt", str(REALFORMS / FORMS["vehicles"]), "--id", "vehicles", cwd=ws)
    assert again.returncode == 1 and "--force" in again.stderr
    shutil.rmtree(tmp_path, ignore_errors=True)


# -- shapes of the real forms, drawn with openpyxl (no LibreOffice): each mechanism on its own ---------------------
def _boxed(ws: Any, ref: str) -> None:
    from openpyxl.styles import Border, Side

    thin = Side(style="thin")
    for row in ws[ref]:
        for c in row:
            c.border = Border(left=thin, right=thin, top=thin, bottom=thin)


def _statistics_form() -> Any:
    """A 公務統計 return as ischool-osr prints it: a 表號／編製機關 box and a title inside the borders, a line
    of fields, 單位：人, a header of two merged rows over a leaf row 計／男／女, a 總計 row above the rows, 附註
    and 填表說明 inside the borders."""
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "工作表1"
    ws["A1"], ws["F1"] = "公開類", "編製機關"
    ws["A2"], ws["F2"] = "學年報", "表號"
    ws["A3"] = "表-11 高級中等學校外國學生概況"
    ws.merge_cells("A3:H3")
    ws["A4"], ws["C4"] = "學校代號：", "學年度："
    ws["H5"] = "單位：人"
    ws["A6"], ws["C6"], ws["F6"] = "國別", "總計", "一年級"
    ws.merge_cells("A6:B7")
    ws.merge_cells("C6:E7")
    ws.merge_cells("F6:G7")
    ws["H6"] = "二年級"
    ws.merge_cells("H6:H7")
    for col, text in zip("ABCDEFGH", ["代號", "名稱", "計", "男", "女", "男", "女", "男"], strict=True):
        ws[f"{col}8"] = text
    ws["A9"] = "總　計"
    for col in "CDEFGH":
        ws[f"{col}9"] = f"=SUM({col}10:{col}15)"
    ws["A16"] = "附　註"
    ws["A17"] = "填表說明：本表編製2份，1份自存、1份送會計室。"
    _boxed(ws, "A1:H17")
    return ws


def test_a_statistics_return_is_read_below_its_title_block_with_its_leaf_row_and_totals() -> None:
    plan = analyse(_statistics_form())
    assert (plan.shape, plan.header, plan.data, plan.totals) == ("list", (6, 8), (9, 15), (9,))
    inputs = {i.key: i for i in plan.inputs}
    assert inputs["col_a"].title == "國別 › 代號" and inputs["col_a"].kind == "code"
    assert (inputs["col_f"].kind, inputs["col_f"].title) == ("whole", "一年級 › 男")  # 單位：人 above: a count
    assert inputs["col_c"].of == ("col_d", "col_e")  # 計 beside 男／女
    assert inputs["col_d"].of == ("col_f", "col_h")  # a 總計 group printed first adds the groups right of it


def test_the_template_of_a_total_row_above_the_rows_adds_up_the_rows_below_it(tmp_path: Path) -> None:
    from collect.forms.adopt import write_template

    ws = _statistics_form()
    plan = analyse(ws)
    write_template(ws.parent, plan, tmp_path / "t.xlsx")
    written = openpyxl.load_workbook(tmp_path / "t.xlsx")["工作表1"]
    assert written["F9"].value == '=IF(COUNT(F10:F15)=0,"",SUM(F10:F15))'  # not the circular F9:F15
    assert written["A17"].value.startswith("填表說明")  # furniture kept as printed


def test_an_upload_format_drawn_without_borders_has_free_rows_under_its_header_and_names_what_it_leaves_out() -> None:
    from collect.forms.adopt import left_out, pick_sheet

    wb = openpyxl.Workbook()
    first = wb.active
    first.title = "Adjustments"
    first["A1"] = "EMI template - Adjustments"
    first.merge_cells("A1:E1")
    for col, text in zip("ABCDE", ["1. Has there been an adjustment? (yes/no)", "2. Date option adjusted (yyyy-mm-dd)",
                                   "3. Employee first name", "4. Employee second name (if applicable)",
                                   "5. Number of shares"],
                         strict=True):
        first[f"{col}9"] = text
    first["A10"], first["B10"], first["C10"] = "no", "2015-12-09", "John"  # an example row
    second = wb.create_sheet("Replaced")
    for col, text in zip("ABC", ["1. Date of grant", "2. Employee name", "3. Value"], strict=True):
        second[f"{col}4"] = text
    ws = pick_sheet(wb)
    plan = analyse(ws)
    assert (ws.title, plan.shape, plan.header, plan.data) == ("Adjustments", "list", (9, 9), (10, 209))
    kinds = {i.key: (i.kind, i.choices) for i in plan.inputs}
    assert kinds["col_a"] == ("choice", ("yes", "no")) and kinds["col_b"][0] == "date"
    assert [i.required for i in plan.inputs][2:4] == [True, False]  # "(if applicable)" may stay blank
    assert any("A10:E209" in n for n in plan.notes)
    assert left_out(wb, ws, plan) == ['工作表「Replaced」的表（A4:C4）未納入本收集，保留為說明；要收集它，另以 --sheet '
                                      '"Replaced" 採用為一個收集']


def test_a_total_that_would_add_itself_up_is_left_for_the_office() -> None:
    from collect.forms.adopt import Input, _break_cycles

    inputs = [Input("h13", "總計 › 計", "H13", "total", of=("i13", "j13")),
              Input("i13", "總計 › 男", "I13", "total", of=("h13",), unsure=["guess"]),
              Input("j13", "總計 › 女", "J13", "total", of=("i13",), unsure=["guess"])]
    _break_cycles(inputs)  # the guessed one goes first; what is left adds up without a loop (the report recursed)
    assert [i.of for i in inputs] == [("i13", "j13"), (), ("i13",)]
    assert inputs[1].unsure == ["合計格無法判斷由哪些格加總：鎖定留白，由本處計算（可在規則檔寫 of=[...]）"]


def test_trim_drops_libreoffices_styled_columns_and_keeps_the_form(tmp_path: Path) -> None:
    from collect.xlsx.trim import trim_columns

    wb = openpyxl.Workbook()
    ws = wb.active
    ws["A1"], ws["C2"] = "title", 5
    for c in range(1, 400):
        ws.cell(3, c).number_format = "0.00"  # styled, empty, out to column OI
    wb.save(tmp_path / "wide.xlsx")
    assert trim_columns(tmp_path / "wide.xlsx", tmp_path / "narrow.xlsx")
    narrow = openpyxl.load_workbook(tmp_path / "narrow.xlsx").active
    assert (narrow.max_column, narrow["A1"].value, narrow["C2"].value) == (3, "title", 5)
    wb.save(tmp_path / "plain.xlsx")
    ws.delete_cols(10, 400)
    wb.save(tmp_path / "plain.xlsx")
    assert not trim_columns(tmp_path / "plain.xlsx", tmp_path / "same.xlsx")


def test_a_dropdown_fed_from_a_hidden_list_sheet_gives_the_column_its_choices() -> None:
    from openpyxl.worksheet.datavalidation import DataValidation

    wb = openpyxl.Workbook()
    ws = wb.active
    ws["A1"], ws["B1"], ws["C1"] = "Metric ID", "Value Type", "Note"
    _boxed(ws, "A1:C6")
    lists = wb.create_sheet("List")
    lists.sheet_state = "hidden"
    lists["A1"], lists["A2"], lists["A3"] = "Metric Types", "Percentage/Rate", "Numerical"
    dv = DataValidation(type="list", formula1="=List!$A$2:$A$3")
    dv.add("B2:B6")
    ws.add_data_validation(dv)
    kinds = {i.key: (i.kind, i.choices) for i in analyse(ws).inputs}
    assert kinds["col_b"] == ("choice", ("Percentage/Rate", "Numerical"))


def test_a_second_table_drawn_under_the_free_rows_is_left_out_with_its_cells_named() -> None:
    ws = _statistics_form()
    ws["A13"], ws["C13"], ws["F13"] = "新生數", "總計", "計"  # 表-6: a grid of its own under the list's rows
    plan = analyse(ws)
    assert (plan.shape, plan.data, plan.totals) == ("list", (9, 12), (9,))
    assert plan.notes == ["A13:H15：同一框線內的第二個表（「新生數」起）未納入本收集，保留為印好的內容，不收填寫值；"
                          "要收集它，請把它另存為一個工作表再採用"]
