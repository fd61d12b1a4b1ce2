"""Tests for the agency list: sample list, each kind of problem, xlsx codes, Big5 CSV, scope, addresses."""

from __future__ import annotations

import csv
import subprocess
import sys
import zipfile
from collections import Counter
from pathlib import Path

import openpyxl
import pytest

from collect.agencies import FUND, PUBLIC, AgencyListError, Problem, Registry, load_agencies

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "agencies.csv"
HEADER = ["機關代碼", "機關名稱", "類別", "主管機關代碼", "聯絡信箱", "啟用"]


def write_csv(
    path: Path, rows: list[list[str]], header: list[str] = HEADER, encoding: str = "utf-8-sig"
) -> Path:
    with path.open("w", encoding=encoding, newline="") as handle:
        csv.writer(handle).writerows([header, *rows])
    return path


def problems_of(path: Path) -> list[Problem]:
    with pytest.raises(AgencyListError) as caught:
        load_agencies(path)
    assert caught.value.path == path
    return caught.value.problems


# A small valid list: two supervising agencies, units under them, one inactive fund without an address.
SMALL = [
    ["A01", "臺北市政府教育局", PUBLIC, "", "Acct.A01@Example.test", "是"],
    ["A0101", "臺北市立第一女中", PUBLIC, "A01", "acct.a0101@example.test;head.a0101@example.test", ""],
    ["A0151", "臺北市立第一女中代辦經費", FUND, "A01", "fund.a0151@example.test", "Y"],
    ["A02", "臺北市政府民政局", PUBLIC, "", "acct.a02@example.test", "1"],
    ["A0201", "臺北市中正區戶政事務所", PUBLIC, "A02", "acct.a0201@example.test", "TRUE"],
    ["A0251", "臺北市殯葬管理處作業基金", FUND, "A02", "", "否"],
]


@pytest.fixture(scope="module")
def sample() -> Registry:
    return load_agencies(SAMPLE)


@pytest.fixture
def small(tmp_path: Path) -> Registry:
    return load_agencies(write_csv(tmp_path / "small.csv", SMALL))


# --- the sample list ---


def test_sample_list_has_the_taipei_counts_and_every_agency_reaches_a_root(sample: Registry) -> None:
    assert len(sample.in_scope("public")) == 142
    assert len(sample.in_scope("funds")) == 288
    roots = sample.supervisors()
    assert len(roots) == 25
    assert all(root.active and root.kind == PUBLIC for root in roots)
    names = {root.name for root in roots}
    assert {"臺北市政府教育局", "臺北市政府民政局", "臺北市政府主計處", "臺北翡翠水庫管理局"} <= names
    for agency in sample:
        root = sample.supervisor_of(agency.code)
        assert root.supervisor is None and root in roots
    # every agency appears once in the display tree, under its root
    tree = sample.tree_rows()
    shown = [root.code for root, _ in tree] + [unit.code for _, units in tree for unit in units]
    assert sorted(shown) == sorted(sample.agencies)


def test_sample_list_codes_names_and_addresses_are_clean(sample: Registry) -> None:
    assert sample.get("010000") is not None  # a leading zero survives
    assert Counter(a.name for a in sample).most_common(1)[0][1] == 1  # names are unique
    assert all(e.endswith("@example.test") for a in sample for e in a.emails)
    assert any(len(a.emails) == 2 for a in sample)
    inactive = [a for a in sample if not a.active]
    assert 0 < len(inactive) <= 5 and len(sample) == 430 + len(inactive)
    education = next(r for r in sample.supervisors() if r.name == "臺北市政府教育局")
    assert len(sample.units_of(education.code)) > 200  # the big ones have many units
    assert len(sample.in_scope("all")) == 430


def test_sample_generator_reproduces_the_committed_list(tmp_path: Path) -> None:
    out = tmp_path / "agencies.csv"
    subprocess.run([sys.executable, "-m", "collect.sample_agencies", str(out)], cwd=REPO, check=True)
    assert out.read_bytes() == SAMPLE.read_bytes()
    assert out.read_bytes().startswith(b"\xef\xbb\xbf")  # UTF-8 with BOM, so Excel shows the Chinese


# --- problems ---


def test_five_different_problems_are_reported_at_once_with_their_rows(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "broken.csv", [
        ["A", "主管A", PUBLIC, "", "a@example.test", "是"],
        ["B1", "單位B1", PUBLIC, "A", "b1@example.test", "是"],
        ["B1", "單位重複", FUND, "A", "b2@example.test", "是"],  # row 4: duplicate code
        ["C1", "", FUND, "A", "c1@example.test", "是"],  # row 5: blank name
        ["D1", "單位D1", "公營事業", "A", "d1@example.test", "是"],  # row 6: unknown kind
        ["E1", "單位E1", PUBLIC, "Z9", "e1@example.test", "是"],  # row 7: unknown supervising agency
        ["F1", "單位F1", PUBLIC, "A", "f1@example。test", "是"],  # row 8: Chinese punctuation in the address
    ])
    problems = problems_of(path)
    assert [(p.row, p.column) for p in problems] == [
        (4, "機關代碼"), (5, "機關名稱"), (6, "類別"), (7, "主管機關代碼"), (8, "聯絡信箱"),
    ]
    assert "第 3 列" in problems[0].message and "第 4 列" in problems[0].message  # both rows named
    assert "公營事業" in problems[2].message
    assert "Z9" in problems[3].message
    assert "f1@example。test" in problems[4].message and "。" in problems[4].message
    text = str(AgencyListError(path, problems))
    assert "第 4 列 機關代碼: " in text and "第 8 列 聯絡信箱: " in text
    assert len(text.splitlines()) == 1 + 5


def test_blank_code_and_active_agency_without_address(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "blank.csv", [
        ["A", "主管A", PUBLIC, "", "a@example.test", ""],
        ["", "沒有代碼的單位", PUBLIC, "A", "x@example.test", "是"],
        ["B", "單位B", FUND, "A", "", "是"],
        ["C", "停用的單位C", FUND, "A", "", "否"],  # inactive: no address needed
    ])
    problems = problems_of(path)
    assert [(p.row, p.column) for p in problems] == [(3, "機關代碼"), (4, "聯絡信箱")]
    assert "B" in problems[1].message


def test_missing_column_names_the_column_and_what_was_found(tmp_path: Path) -> None:
    header = ["機關代碼", "機關名稱", "類別", "主管機關", "聯絡信箱", "啟用"]  # 主管機關代碼 typed wrong
    rows = [["A", "主管A", PUBLIC, "", "a@example.test", ""]]
    problems = problems_of(write_csv(tmp_path / "cols.csv", rows, header=header))
    assert len(problems) == 1
    assert problems[0].row == 1 and problems[0].column == "主管機關代碼"
    assert "主管機關代碼" in problems[0].message and "主管機關" in problems[0].message.split("找到")[1]


def test_a_cycle_is_named_once_with_its_codes(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "cycle.csv", [
        ["R", "主管R", PUBLIC, "", "r@example.test", ""],
        ["X", "單位X", PUBLIC, "Y", "x@example.test", ""],
        ["Y", "單位Y", PUBLIC, "Z", "y@example.test", ""],
        ["Z", "單位Z", PUBLIC, "X", "z@example.test", ""],
        ["W", "單位W", FUND, "X", "w@example.test", ""],  # hangs under the cycle: not a second problem
        ["S", "自己管自己", PUBLIC, "S", "s@example.test", ""],
    ])
    problems = problems_of(path)
    assert [(p.row, p.column) for p in problems] == [(3, "主管機關代碼"), (7, "主管機關代碼")]
    assert "X → Y → Z → X" in problems[0].message
    assert "S → S" in problems[1].message


def test_bad_active_flag_and_bad_addresses_each_reported(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "flags.csv", [
        ["A", "主管A", PUBLIC, "", "a@example.test", "可能"],
        ["B", "單位B", PUBLIC, "A", "b@@example.test", ""],
        ["C", "單位C", PUBLIC, "A", "王小明 <c@example.test>", ""],
        ["D", "單位D", PUBLIC, "A", "d@localhost", ""],
        ["E", "單位E", PUBLIC, "A", "e\u200b@example.test", ""],
    ])
    problems = problems_of(path)
    assert [(p.row, p.column) for p in problems] == [
        (2, "啟用"), (3, "聯絡信箱"), (4, "聯絡信箱"), (4, "聯絡信箱"), (5, "聯絡信箱"), (6, "聯絡信箱"),
    ]
    assert "可能" in problems[0].message
    assert "王小明" in problems[2].message and "<c@example.test>" in problems[3].message
    assert "U+200B" in problems[5].message


def test_addresses_split_on_every_separator_and_flags_parse(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "sep.csv", [
        ["A", "主管A", PUBLIC, "", "a1@example.test;a2@ex.test , a3@ex.test、a4@ex.test\na5@x.test", "N"],
        ["B", "單位B", FUND, "A", "b1@example.test；b2@example.test，B1@EXAMPLE.TEST", "false"],
        ["C", "單位C", FUND, "A", "c@example.test", "ｙ"],
    ])
    registry = load_agencies(path)
    a, b, c = registry.get("A"), registry.get("B"), registry.get("C")
    assert a is not None and b is not None and c is not None
    assert a.emails == ("a1@example.test", "a2@ex.test", "a3@ex.test", "a4@ex.test", "a5@x.test")
    assert b.emails == ("b1@example.test", "b2@example.test")  # the repeated address (other case) kept once
    assert (a.active, b.active, c.active) == (False, False, True)


def test_deeper_hierarchy_supervisor_of_is_the_root_and_addresses_climb(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "deep.csv", [
        ["R", "臺北市政府衛生局", PUBLIC, "", "r@example.test", ""],
        ["H", "臺北市立聯合醫院作業基金", FUND, "R", "h@example.test", ""],
        ["H1", "臺北市立聯合醫院仁愛院區分基金", FUND, "H", "h1@example.test", ""],
    ])
    registry = load_agencies(path)
    assert registry.supervisor_of("H1").code == "R"
    assert registry.supervisor_of("R").code == "R"
    assert [a.code for a in registry.units_of("R")] == ["H"]
    assert [a.code for a in registry.units_of("H")] == ["H1"]
    assert registry.addresses_for("H1") == {"h1@example.test", "h@example.test", "r@example.test"}
    assert [(r.code, [u.code for u in units]) for r, units in registry.tree_rows()] == [("R", ["H", "H1"])]


# --- file formats ---


def test_xlsx_codes_keep_text_zeros_and_lose_dot_zero(tmp_path: Path) -> None:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["備註", *HEADER])  # an extra column first: ignored
    sheet.append(["", "010000", "臺北市政府秘書處", PUBLIC, None, "acct.010000@example.test", True])
    sheet.append(["", 10001, "臺北市政府市政大樓管理中心", PUBLIC, "010000", "acct.10001@example.test", None])
    sheet.append(["", 205001.0, "臺北市債務基金", FUND, "010000", "acct.205001@example.test", False])
    sheet.append([])  # a blank row in the middle: skipped, later rows keep their numbers
    sheet.append(["筆誤", 30.0, "單位", FUND, 10001, "x@example.test", 1])
    path = tmp_path / "codes.xlsx"
    workbook.save(path)
    # openpyxl and Excel store 205001.0 as "205001"; other writers store "205001.0": make the file say so.
    with zipfile.ZipFile(path) as archive:
        parts = {name: archive.read(name) for name in archive.namelist()}
    sheet_xml = "xl/worksheets/sheet1.xml"
    assert b"<v>205001</v>" in parts[sheet_xml]
    parts[sheet_xml] = parts[sheet_xml].replace(b"<v>205001</v>", b"<v>205001.0</v>")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in parts.items():
            archive.writestr(name, data)

    registry = load_agencies(path)
    assert list(registry.agencies) == ["010000", "10001", "205001", "30"]
    assert registry.get("10001") is not None and registry.get("10001.0") is None
    assert registry.supervisor_of("30").code == "010000"  # numeric supervising-agency code 10001 matched
    assert registry.agencies["205001"].active is False and registry.agencies["010000"].active is True
    assert registry.agencies["30"].row == 6


def test_xlsx_problems_carry_their_sheet_rows(tmp_path: Path) -> None:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(HEADER)
    sheet.append(["A01", "主管", PUBLIC, None, "a@example.test", "是"])
    sheet.append([None] * 6)
    sheet.append([None] * 6)
    sheet.append(["A0101", "單位", "基金", "A01", "a0101@example.test", "是"])
    sheet.append(["A0102", "單位二", FUND, "A99", None, "是"])
    path = tmp_path / "broken.xlsx"
    workbook.save(path)

    problems = problems_of(path)
    assert [(p.row, p.column) for p in problems] == [(5, "類別"), (6, "聯絡信箱"), (6, "主管機關代碼")]


def test_big5_csv_loads(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "big5.csv", SMALL, encoding="cp950")
    with pytest.raises(UnicodeDecodeError):
        path.read_bytes().decode("utf-8")  # really not UTF-8
    registry = load_agencies(path)
    assert registry.agencies["A0101"].name == "臺北市立第一女中"
    assert [a.code for a in registry.supervisors()] == ["A01", "A02"]


def test_unreadable_files_are_problems_not_crashes(tmp_path: Path) -> None:
    fake = tmp_path / "list.xlsx"
    fake.write_bytes(b"PK\x03\x04 this is not really a workbook")
    assert "list.xlsx" in problems_of(fake)[0].message
    assert problems_of(tmp_path / "missing.csv")[0].row is None
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    assert len(problems_of(empty)) == 1


# --- scope and addresses ---


def test_in_scope_counts_only_active_agencies_in_file_order(small: Registry) -> None:
    assert [a.code for a in small.in_scope("public")] == ["A01", "A0101", "A02", "A0201"]
    assert [a.code for a in small.in_scope("funds")] == ["A0151"]  # A0251 is inactive
    assert len(small.in_scope("all")) == 5
    assert [a.code for a in small.in_scope(["A0201", "A0101", "A0251"])] == ["A0101", "A0201"]
    with pytest.raises(ValueError, match="A9999"):
        small.in_scope(["A0101", "A9999"])
    with pytest.raises(ValueError):
        small.in_scope("everyone")


def test_addresses_for_is_the_agency_and_its_supervising_agency_lower_cased(small: Registry) -> None:
    assert small.addresses_for("A0101") == {"acct.a0101@example.test", "head.a0101@example.test",
                                            "acct.a01@example.test"}
    assert small.addresses_for("A01") == {"acct.a01@example.test"}
    assert "acct.a0201@example.test" not in small.addresses_for("A0151")  # another branch's unit
    with pytest.raises(KeyError):
        small.addresses_for("NOPE")
    assert small.get(" Ａ0101 ") is small.agencies["A0101"]  # full-width letter and spaces are tolerated
