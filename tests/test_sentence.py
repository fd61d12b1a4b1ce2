"""Sentence fields and check marks (issue #21): inputs printed inside a sentence (「全校班級數：＿＿班」) and □ options,
found by `collect adopt` in the office's real application forms, left open on issue, read back out of the agency's
text on ingest, and added up in the consolidated form."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from conftest import convert, run_cli

from collect.forms.sentence import expected, parse, pattern, render
from collect.workspace import init_workspace

REALFORMS = Path(__file__).resolve().parents[2] / "shared" / "realforms"
A1 = REALFORMS / "edu-more" / "16-表A-1補助項目一申請表.xls"  # 推展親職教育活動: money in a sentence, its 合計
A2 = REALFORMS / "edu-more" / "17-表A-2補助項目二申請表.xls"  # 發展教育特色: 全校班級數：＿班, □ options
ROUND = "2026-10"
pytestmark = pytest.mark.xdist_group("sentence")

# printed texts of the real forms, as LibreOffice reads the .xls
MONEY = ("親職教育活動：                             元\n個案家庭輔導方案：                             元\n"
         "申請補助金額合計新臺幣：                             元\n")
COUNTS = "申請補助： 親職教育活動     場 ／ 次、個案家庭輔導方案     案(人)"
OPTIONS = ("3.發展教育特色應以普遍實施，多數學生參與為原則，並顧及延續性。\n4.本申請項目為：\n□延續性辦理，第___年\n"
           "□新申請項目\n5.凡設備器材單價達1萬元以上列入資本門，其餘列入經常門。")


# -- the sentence matcher on the forms' own texts ---------------------------------------------------------------
def test_blanks_are_named_and_kinded_by_their_label_and_unit() -> None:
    money = parse(MONEY, "D27")
    assert money is not None
    assert [(b.key, b.title, b.kind, b.money) for b in money.blanks] == [
        ("d27a", "親職教育活動", "whole", True), ("d27b", "個案家庭輔導方案", "whole", True),
        ("d27c", "申請補助金額合計新臺幣", "total", True)]
    assert money.blanks[2].of == ("d27a", "d27b")  # 合計 of the amounts above it: computed and checked, not data
    assert money.template == "親職教育活動：{d27a}元\n個案家庭輔導方案：{d27b}元\n申請補助金額合計新臺幣：{d27c}元\n"
    counts = parse(COUNTS, "D7")
    assert counts is not None
    assert [(b.title, b.kind, b.unit) for b in counts.blanks] == [("親職教育活動", "whole", "場"),
                                                                  ("個案家庭輔導方案", "whole", "案")]
    school = parse("全校班級數：      班", "G4")
    assert school is not None and [(b.title, b.kind) for b in school.blanks] == [("全校班級數", "whole")]
    bracket = parse("本校共有【　　】棟【　　】坪", "B9")
    assert bracket is not None and bracket.template == "本校共有【{b9a}】棟【{b9b}】坪"
    assert [b.kind for b in bracket.blanks] == ["whole", "whole"]
    total = parse("申請補助經費總額：新台幣＿＿元", "C3")
    assert total is not None and [(b.title, b.kind, b.money) for b in total.blanks] == [
        ("申請補助經費總額", "whole", True)]
    term = parse("＿學年度 第＿學期", "E3")
    assert term is not None and [b.title for b in term.blanks] == ["學年度", "第＿學期"]
    dated = parse("填表日期：＿＿＿＿", "F30")
    assert dated is not None and [(b.title, b.kind) for b in dated.blanks] == [("填表日期", "date")]
    area = parse("學校所在地區：", "D6")
    assert area is not None and area.template == "學校所在地區：{d6a}" and area.blanks[0].kind == "text"


def test_printed_words_that_are_no_field_stay_furniture() -> None:
    for text in ("經常門   小計", "金   額", "說    明", "填表說明：", "經費概算表【經費概算之編列應能顯示合理性】",
                 "指標一：\n原住民學生比率偏高之學校\n", "教育部105年度推動教育優先區計畫補助項目申請表"):
        assert parse(text, "A1") is None, text


def test_boxes_of_one_question_are_one_choice_and_a_new_label_starts_another() -> None:
    found = parse(OPTIONS, "N10")
    assert found is not None
    choice, year = found.blanks
    assert (choice.title, choice.kind, choice.options) == ("本申請項目為", "choice", ["延續性辦理", "新申請項目"])
    assert (year.title, year.kind) == ("第＿年", "whole")
    two = parse("是否為偏遠學校：□是 □否　離島：□是　□否", "F5")
    assert two is not None and [(b.title, b.options) for b in two.blanks] == [
        ("是否為偏遠學校", ["是", "否"]), ("離島", ["是", "否"])]
    alone = parse("□畢業學生名冊    □結業學生名冊", "A1")
    assert alone is not None and [(b.title, b.options) for b in alone.blanks] == [
        ("畢業學生名冊／結業學生名冊", ["畢業學生名冊", "結業學生名冊"])]


@pytest.mark.parametrize("typed, values", [
    (MONEY, {"d27a": None, "d27b": None, "d27c": None}),  # as printed: every blank empty
    ("親職教育活動：  12,000  元\n個案家庭輔導方案：３０００元\n申請補助金額合計新臺幣：15000元",
     {"d27a": "12,000", "d27b": "3000", "d27c": "15000"}),  # spacing and full-width digits
    ("親職教育活動:____12000____元 個案家庭輔導方案:__3000__元 申請補助金額合計新臺幣:15000元",
     {"d27a": "12000", "d27b": "3000", "d27c": "15000"}),  # typed over the blank characters, half-width colons
    (MONEY.replace("：    ", "：NT$8,000 ", 1), {"d27a": "NT$8,000", "d27b": None, "d27c": None}),
])
def test_a_returned_sentence_gives_each_blank_its_value(typed: str, values: dict[str, Any]) -> None:
    found = parse(MONEY, "D27")
    assert found is not None
    got = pattern(found.template).match(typed)
    assert got is not None and got.blanks == values


@pytest.mark.parametrize("typed", ["申請補助金額共 15000 元", "15000", "親職教育活動 12000 元"])
def test_a_sentence_whose_words_were_changed_does_not_match(typed: str) -> None:
    found = parse(MONEY, "D27")
    assert found is not None and pattern(found.template).match(typed) is None
    assert expected(found.template).startswith("親職教育活動：＿＿元\n個案家庭輔導方案：＿＿元")


@pytest.mark.parametrize("typed", [
    "親職教育活動：1元\n個案家庭輔導方案：" + " _" * 950 + "x",  # spaces and underscores the blanks could share
    "親職教育活動：1元\n個案家庭輔導方案：2元\n申請補助金額合計新臺幣：" + "元" * 1900 + "x",
    OPTIONS.replace("□新申請項目", "□ " * 900),
])
def test_a_long_text_that_almost_matches_is_refused_at_once(typed: str) -> None:
    import time

    for text in (MONEY, OPTIONS):
        found = parse(text, "A1")
        assert found is not None
        started = time.perf_counter()
        assert pattern(found.template).match(typed) is None
        assert time.perf_counter() - started < 0.5  # a backtracking pattern took minutes on such a cell


@pytest.mark.parametrize("typed, marked, year", [
    (OPTIONS, [], None),
    (OPTIONS.replace("□延續性辦理，第___年", "■延續性辦理，第_3__年"), ["延續性辦理"], "3"),
    (OPTIONS.replace("□延續性辦理", "V延續性辦理"), ["延續性辦理"], None),
    (OPTIONS.replace("□新申請項目", "☑新申請項目"), ["新申請項目"], None),
    (OPTIONS.replace("□新申請項目", "□ ✓新申請項目"), ["新申請項目"], None),
    (OPTIONS.replace("□延續性辦理", "Ｖ延續性辦理").replace("□新申請項目", "○新申請項目"), ["延續性辦理", "新申請項目"],
     None),
])
def test_a_mark_in_or_over_a_box_picks_its_option(typed: str, marked: list[str], year: str | None) -> None:
    found = parse(OPTIONS, "N10")
    assert found is not None
    got = pattern(found.template).match(typed)
    assert got is not None and got.marked == {"n10a": marked} and got.blanks == {"n10b": year}


def test_render_fills_a_sentence_as_an_agency_would_and_as_the_consolidated_form_shows_it() -> None:
    found = parse(OPTIONS, "N10")
    assert found is not None
    typed = render(found.template, {"n10a": "新申請項目", "n10b": 2})
    assert "□延續性辦理，第2年\n■新申請項目" in typed
    assert pattern(found.template).match(typed) is not None
    counts = render(found.template, {"n10a": {"延續性辦理": "（3）", "新申請項目": "（1）"}})
    assert "□延續性辦理（3），第＿＿年\n□新申請項目（1）" in counts


# -- end to end: adopt, check, issue, fill, ingest, report ------------------------------------------------------------
@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace that adopted the two application forms from their .xls, as a user runs it."""
    if not REALFORMS.is_dir():
        pytest.fail(f"{REALFORMS} is missing: the real forms come with ../shared beside the checkout")
    root = tmp_path_factory.mktemp("sentence") / "ws"
    init_workspace(root, collections=[])
    for cid, form in (("apply_a1", A1), ("apply_a2", A2)):
        done = run_cli("adopt", str(form), "--id", cid, cwd=root)
        assert done.returncode == 0, done.stderr
    return root


def test_adopt_writes_the_sentences_and_the_budget_table_into_the_rules_file_readable_for_staff(ws: Path) -> None:
    rules = (ws / "rules" / "apply_a1.py").read_text(encoding="utf-8")
    assert ('"D27": "親職教育活動：{d27a}元\\n個案家庭輔導方案：{d27b}元\\n申請補助金額合計新臺幣：{d27c}元\\n",'
            in rules)
    # the sentence's amounts name the budget table's sections: computed from it and held against what is written
    assert ('d27a: Series[pd.Int64Dtype] = column("親職教育活動", kind="total", of=["j11", "j12", "j13", "j14", '
            '"j15", "j16", "j17", "j18", "j19"], money=True, cell="D27")') in rules
    assert 'column("申請補助金額合計新臺幣", kind="total", of=["d27a", "d27b"], money=True, cell="D27")' in rules
    assert ('h11: Series[pd.Int64Dtype] = column("親職教育活動 › 鐘點費 › 外聘講師費 › 單價", kind="whole", '
            'required=False, money=True, ge=0, cell="H11")') in rules
    assert '"h21"' not in rules  # the printed 單價 200 of 個案家庭訪視費 is the form's, not an input
    assert '@row_rule("j11", "「親職教育活動 › 鐘點費 › 外聘講師費」的金額應為單價乘以數量。", warning=True)' in rules
    assert 'return df["j11"] == df["h11"] * df["i11"]' in rules
    assert "from collect.forms.spec import Meta, column, row_rule" in rules
    other = (ws / "rules" / "apply_a2.py").read_text(encoding="utf-8")
    assert ('column("本申請項目為", kind="choice", required=True, isin=["延續性辦理", "新申請項目"], '
            'cell="N10")') in other
    assert 'column("全校班級數", kind="whole", required=False, ge=0, cell="G4")' in other
    # 小計 and 合計 rows of the budget table are totals; the sentence under it names them
    assert 'j13: Series[pd.Int64Dtype] = column("經常門小計 › 金額", kind="total", of=["j10", "j11", "j12"]' in other
    assert 'j18: Series[pd.Int64Dtype] = column("合計經費 › 金額", kind="total", of=["j13", "j17"]' in other
    assert 'column("經常門經費", kind="total", of=["j13"], money=True, cell="D19")' in other
    # the template keeps the sentence as printed (no formula over the totals inside it); the 小計 adds up
    template = openpyxl.load_workbook(ws / "templates_xlsx" / "apply_a1.xlsx")["Sheet1"]
    assert template["D27"].value.startswith("親職教育活動：      ")
    assert "SUM(J10,J11,J12)" in openpyxl.load_workbook(ws / "templates_xlsx" / "apply_a2.xlsx")["Sheet1"]["J13"].value


def test_a_sentence_naming_a_field_the_rules_do_not_have_is_refused_with_a_hint(ws: Path, tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "broken"
    shutil.copytree(ws, root)
    rules = root / "rules" / "apply_a1.py"
    text = rules.read_text(encoding="utf-8")
    rules.write_text(text.replace("個案家庭輔導方案：{d27b}", "個案家庭輔導方案：{d27x}"), encoding="utf-8")
    done = run_cli("check", "apply_a1", cwd=root)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "the sentence at D27 names {d27x}, which is not a field" in done.stderr


def test_check_runs_a_dry_round_that_fills_the_sentences(ws: Path) -> None:
    done = run_cli("check", cwd=ws)
    assert done.returncode == 0, done.stdout + done.stderr
    for cid in ("apply_a1", "apply_a2"):
        assert f"✓ {cid}: template and rules agree; dry round: issued to" in done.stdout


def _issue(ws: Path, cid: str, agencies: list[str]) -> list[Path]:
    done = run_cli("issue", cid, "--round", ROUND, *[a for code in agencies for a in ("--agency", code)], cwd=ws)
    assert done.returncode == 0, done.stderr
    issued = sorted((ws / "outbox" / cid / ROUND / "issued").glob("*.xlsx"))
    return [p for p in issued if p.name[:6] in agencies]


def _fill(issued: Path, target: Path, values: dict[str, Any]) -> Path:
    wb = openpyxl.load_workbook(issued)
    sheet = wb["Sheet1"]
    for ref, value in values.items():
        sheet[ref] = value(sheet[ref].value) if callable(value) else value
    target.parent.mkdir(parents=True, exist_ok=True)
    wb.save(target)
    return target


def _ingest(ws: Path, files: list[Path]) -> dict[str, Any]:
    done = run_cli("ingest", "--json", *map(str, files), cwd=ws)
    assert done.returncode == 0, done.stderr
    return {o["agency"]: o for o in (json.loads(line) for line in done.stdout.splitlines() if line.startswith("{"))}


def test_the_stamped_form_leaves_the_sentence_open_as_printed_without_a_number_validation(ws: Path) -> None:
    issued = _issue(ws, "apply_a1", ["020001"])[0]
    sheet = openpyxl.load_workbook(issued)["Sheet1"]
    assert sheet.protection.sheet and sheet["D27"].protection.locked is False
    assert sheet["D27"].value == MONEY
    assert sheet["A2"].protection.locked is not False  # furniture stays locked
    validated = {str(r) for dv in sheet.data_validations.dataValidation for r in dv.sqref.ranges}
    assert not validated & {"D27", "D7", "D6"}  # a whole-number check would refuse the sentence itself


def test_a_round_of_the_application_form_reads_sums_and_checks_the_money_in_its_sentences(ws: Path) -> None:
    agencies = ["020001", "020002", "020003", "020004", "020005"]
    issued = _issue(ws, "apply_a1", agencies)
    made = ws.parent / "made-a1"
    table = {"H11": 2000, "I11": 3, "J11": 6000, "H12": 1000, "I12": 6, "J12": 6000, "I21": 15, "J21": 3000}
    good = table | {
        "D27": "親職教育活動：12,000元\n個案家庭輔導方案：3,000元\n申請補助金額合計新臺幣：15,000元",
        "D7": "申請補助： 親職教育活動 2 場 ／ 次、個案家庭輔導方案 3 案(人)", "D6": "學校所在地區：臺北市大安區"}
    over_the_blanks = {  # typed into the printed blank, its spaces kept, full-width digits
        "J11": 8000, "J21": 2000,
        "D27": lambda printed: printed.replace("活動：   ", "活動：８０００", 1).replace("方案：   ", "方案：2000", 1),
        "D7": lambda printed: printed.replace("活動     ", "活動  1   ", 1)}
    files = [_fill(issued[0], made / "a.xlsx", good),
             _fill(issued[1], made / "b.xlsx", over_the_blanks | {"D6": "臺北市信義區"})]  # D6 typed over whole
    # 單價×數量 that is not the 金額, and a 合計 that does not add up; saved by LibreOffice
    lo = _fill(issued[2], made / "lo" / "c.xlsx", good | {"J12": 5000, "D27": good["D27"].replace(
        "12,000", "11,000").replace("15,000", "16,000")})
    files += convert([lo], "xlsx", made / "through-libreoffice")
    files.append(_fill(issued[3], made / "d.xlsx", good | {"J11": "一萬二"}))
    files.append(_fill(issued[4], made / "e.xlsx", good | {"D27": "申請補助金額共 15000 元"}))
    out = _ingest(ws, files)
    assert {a: o["verdict"] for a, o in out.items()} == {
        "020001": "accepted", "020002": "accepted", "020003": "accepted", "020004": "rejected", "020005": "rejected"}
    assert out["020001"]["findings"] == [] and out["020002"]["findings"] == []
    warned = out["020003"]["findings"]
    assert [(f["code"], f["cell"], f["severity"]) for f in warned] == [
        ("row.rule_warning", "J12", "warning"), ("total.mismatch", "D27", "warning")]
    assert "金額應為單價乘以數量" in warned[0]["message"] and "14,000" in warned[1]["message"]
    wrong = out["020004"]["findings"]
    assert [(f["code"], f["cell"]) for f in wrong] == [("value.not_number", "J11")]
    changed = out["020005"]["findings"]
    assert [(f["code"], f["cell"]) for f in changed] == [("field.sentence_changed", "D27")]
    assert "親職教育活動：＿＿元" in changed[0]["message"]  # the sentence expected, as printed
    report = run_cli("report", "apply_a1", "--round", ROUND, cwd=ws)
    assert report.returncode == 0, report.stderr
    import pandas as pd

    data = pd.read_parquet(sorted((ws / "outbox" / "apply_a1" / ROUND / "report").glob("*.parquet"))[0])
    assert sorted(data["d27a"].tolist()) == [8_000, 11_000, 12_000] and data["d7a"].sum() == 5
    assert sorted(data["d6a"].tolist()) == ["臺北市信義區", "臺北市大安區", "臺北市大安區"]
    assert sorted(data["d27c"].tolist()) == [10_000, 14_000, 15_000]  # computed (the agency's 16,000 is not)
    book = openpyxl.load_workbook(ws / "outbox" / "apply_a1" / ROUND / "report" / "apply_a1-2026-10-總表.xlsx")
    sheet = book["彙整表"]
    assert sheet["D27"].value == "親職教育活動：31,000元\n個案家庭輔導方案：8,000元\n申請補助金額合計新臺幣：39,000元\n"
    assert sheet["D7"].value == "申請補助： 親職教育活動5場 ／ 次、個案家庭輔導方案6案(人)"  # 2 + 1 + 2, 3 + 0 + 3
    assert (sheet["J11"].value, sheet["J12"].value, sheet["H21"].value) == (20_000, 11_000, 200)
    assert sheet["J11"].number_format == "#,##0"  # 金額, merged over two columns, prints 20,000 like 單價 beside it
    assert sheet["A2"].value == "教育部105年度推動教育優先區計畫補助項目申請表"


def test_check_marks_pick_one_option_and_two_marks_or_none_are_refused(ws: Path) -> None:
    agencies = ["020001", "020002", "020003"]
    issued = _issue(ws, "apply_a2", agencies)
    made = ws.parent / "made-a2"

    def marked(*pairs: tuple[str, str]) -> Any:
        def edit(printed: str) -> str:
            for old, new in pairs:
                printed = printed.replace(old, new, 1)
            return printed
        return edit

    classes = {"G4": marked(("：      班", "：  12 班")), "I4": marked(("：   ", "：300"))}
    one = {"N10": marked(("□延續性辦理，第___年", "■延續性辦理，第_3_年"))}
    lo = _fill(issued[0], made / "lo" / "a.xlsx", classes | one)
    files = [
        *convert([lo], "xlsx", made / "through-libreoffice"),  # the box marked, saved again by LibreOffice
        _fill(issued[1], made / "b.xlsx", classes | {"N10": marked(("□延續性辦理", "V延續性辦理"),
                                                                   ("□新申請項目", "V新申請項目"))}),
        _fill(issued[2], made / "c.xlsx", {"G4": 14, "I4": "全校學生數：１,２００人"}),  # G4 typed over: its number
    ]
    out = _ingest(ws, files)
    assert {a: o["verdict"] for a, o in out.items()} == {"020001": "accepted", "020002": "rejected",
                                                         "020003": "rejected"}
    assert [(f["code"], f["cell"]) for f in out["020002"]["findings"]] == [("field.two_choices", "N10")]
    assert "只能勾選一項" in out["020002"]["findings"][0]["message"]
    assert [(f["code"], f["cell"]) for f in out["020003"]["findings"]] == [("value.required", "N10")]
    assert "「本申請項目為」必須填寫" in out["020003"]["findings"][0]["message"]
    report = run_cli("report", "apply_a2", "--round", ROUND, cwd=ws)
    assert report.returncode == 0, report.stderr
    book = openpyxl.load_workbook(ws / "outbox" / "apply_a2" / ROUND / "report" / "apply_a2-2026-10-總表.xlsx")
    sheet = book["彙整表"]
    assert sheet["G4"].value == "全校班級數：12班" and sheet["I4"].value == "全校學生數：300人"  # one accepted
    assert "□延續性辦理（1），第3年\n□新申請項目（0）" in sheet["N10"].value


def test_a_v_column_takes_any_check_mark_as_v(tmp_path: Path) -> None:
    from openpyxl.styles import Border, Side

    form = tmp_path / "勾選表.xlsx"
    wb = openpyxl.Workbook()
    sheet = wb.active
    assert sheet is not None
    sheet["A1"] = "補助項目勾選表"
    thin = Side(style="thin")
    for r, row in enumerate([["項目", "V選", "金額(元)"], ["教師宿舍", None, None], ["學生宿舍", None, None],
                             ["交通車", None, None]], start=3):
        for c, value in enumerate(row, start=1):
            cell = sheet.cell(r, c, value)
            cell.border = Border(left=thin, right=thin, top=thin, bottom=thin)
    wb.save(form)
    root = tmp_path / "ws"
    init_workspace(root, collections=[])
    done = run_cli("adopt", str(form), "--id", "marks", cwd=root)
    assert done.returncode == 0, done.stderr
    rules = (root / "rules" / "marks.py").read_text(encoding="utf-8")
    assert 'b4: Series[str] = column("教師宿舍 › V選", kind="choice", required=False, isin=["V"], cell="B4")' in rules
    checked = run_cli("check", "marks", cwd=root)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    issued = _issue(root, "marks", ["020001", "020002"])
    stamped = openpyxl.load_workbook(issued[0])["Sheet"]
    assert any("B4" in str(dv.sqref) and dv.formula1 == '"V"' for dv in stamped.data_validations.dataValidation)
    files = [_fill_sheet(issued[0], tmp_path / "a.xlsx", {"B4": "✓", "C4": 1_000_000, "B5": "○", "C5": 20_000}),
             _fill_sheet(issued[1], tmp_path / "b.xlsx", {"B4": "Y", "C4": 5_000})]
    out = _ingest(root, files)
    assert out["020001"]["verdict"] == "accepted" and out["020001"]["findings"] == []
    assert out["020002"]["verdict"] == "rejected"
    assert [(f["code"], f["cell"]) for f in out["020002"]["findings"]] == [("value.choice", "B4")]
    report = run_cli("report", "marks", "--round", ROUND, cwd=root)
    assert report.returncode == 0, report.stderr
    import pandas as pd

    data = pd.read_parquet(sorted((root / "outbox" / "marks" / ROUND / "report").glob("*.parquet"))[0])
    assert data[["b4", "b5", "b6"]].iloc[0].tolist()[:2] == ["V", "V"] and pd.isna(data["b6"].iloc[0])


def _fill_sheet(issued: Path, target: Path, values: dict[str, Any]) -> Path:
    wb = openpyxl.load_workbook(issued)
    sheet = wb[wb.sheetnames[0]]
    for ref, value in values.items():
        sheet[ref] = value
    wb.save(target)
    return target
