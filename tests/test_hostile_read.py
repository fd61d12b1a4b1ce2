"""Issue 14, hostile content read from a validly stamped workbook, run as a user runs it (`collect ingest --json`): one
malformed cell is a finding at that cell, far cells are caught however they are written, a shared-string bomb is refused
before the reader expands it, and 200,000 rows get `rejected` with findings in bounded work."""

from __future__ import annotations

import re
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from conftest import SECRET
from ingest_util import ROUND, fill, json_lines, row, triples
from test_receive_cases import Env, _mutant

from collect.forms.issuing import issue
from collect.workspace import Context, init_workspace

pytestmark = pytest.mark.xdist_group("hostile_read")

AGENCIES = [f"0200{i:02d}" for i in range(1, 26)]
Members = list[tuple[str, bytes]]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    base = tmp_path_factory.mktemp("hostile-read")
    root = base / "ws"
    mp = pytest.MonkeyPatch()
    mp.setenv("COLLECT_SECRET", SECRET)
    init_workspace(root)
    ctx = Context.open(root)
    result = issue(ctx, "covid19", ROUND, agencies=AGENCIES)
    yield Env(root, ctx, {i.agency: i.path for i in result.issued}, base / "made")
    ctx.close()
    mp.undo()


def _sheet_of(path: Path) -> str:
    with zipfile.ZipFile(path) as zf:
        return next(i.filename for i in zf.infolist() if i.filename.startswith("xl/worksheets/sheet"))


def _in_sheet(sheet: str, old: bytes, new: bytes) -> Callable[[Members], Members]:
    """A change to the data sheet's XML: `old` (which must be there) replaced by `new` once."""
    def change(members: Members) -> Members:
        out = []
        for name, data in members:
            if name == sheet:
                assert old in data, old
                data = data.replace(old, new, 1)
            out.append((name, data))
        return out
    return change


def _cli(env: Env, *paths: Path) -> tuple[list[dict[str, Any]], Any]:
    done = env.cli("ingest", "--json", *map(str, paths))
    assert "panicked" not in done.stderr and "memory allocation" not in done.stderr, done.stderr[-2000:]
    return json_lines(done.stdout), done


E7 = b'<c r="E7" s="15" t="n"><v>1000000</v></c>'


def test_one_malformed_cell_is_a_finding_at_that_cell(env: Env) -> None:
    """`<v>1,000</v>` in a number cell, t="b" holding 2, an unknown error value, a reference that is no reference, a
    shared string that does not exist: the reader refused the whole sheet (and NaN or 1e999 were read as NaN and
    infinity: a 「必須填寫」 or a wrong number). Now each is value.malformed at its cell (an error in an input cell, its
    column named; a warning outside the table) and the rest of the sheet is judged as usual (E8 and every other cell
    read). A bad <dimension> or row number loses no value: a warning, accepted. A cell whose reference names another
    row is where its reference says (Excel and LibreOffice show it there)."""
    good = env.workbook(AGENCIES[0], "malformed-base.xlsx")
    sheet = _sheet_of(good)
    cases: list[tuple[str, bytes, bytes]] = [
        ("comma", E7, b'<c r="E7" s="15" t="n"><v>1,000</v></c>'),
        ("boolean", E7, b'<c r="E7" s="15" t="b"><v>2</v></c>'),
        ("error", E7, b'<c r="E7" s="15" t="e"><v>#BOGUS</v></c>'),
        ("reference", E7, b'<c r="7E" s="15" t="n"><v>1000000</v></c>'),  # placed by order: after D7
        ("shared", E7, b'<c r="E7" s="15" t="s"><v>99</v></c>'),
        ("nan", E7, b'<c r="E7" s="15" t="n"><v>NaN</v></c>'),  # read by the reader, as NaN: it was 「必須填寫」
        ("infinite", E7, b'<c r="E7" s="15" t="n"><v>1e999</v></c>'),
        ("outside", b'<row r="6"', b'<row r="5"><c r="L5" t="b"><v>2</v></c></row><row r="6"'),
        ("dimension", b'<dimension ref="A1:J206"/>', b'<dimension ref="A1:ZZZZ0"/>'),
        ("row", b'<row r="8">', b'<row r="0">'),
        ("elsewhere", E7, b'<c r="E9" s="15" t="n"><v>1000000</v></c>'),  # in row 7, its reference says row 9
    ]
    paths = []
    for i, (name, old, new) in enumerate(cases):
        source = env.workbook(AGENCIES[i], f"malformed-{name}-base.xlsx")
        paths.append(_mutant(source, env.made / f"malformed-{name}.xlsx", _in_sheet(sheet, old, new)))
    lines, done = _cli(env, *paths)
    input_cell = ("rejected", [("value.malformed", "E7", "error")])
    assert [(d["verdict"], triples(d["findings"])) for d in lines] == [
        input_cell, input_cell, input_cell, input_cell, input_cell, input_cell, input_cell,
        ("accepted", [("value.malformed", "L5", "warning")]),
        ("accepted", [("sheet.repaired", None, "warning")]),
        ("accepted", [("sheet.repaired", None, "warning")]),
        # read where its reference puts it, as Excel and LibreOffice show it to the agency: E7 is blank, E9 alone
        ("rejected", [("value.required", "E7", "error")] + [("value.required", f"{c}9", "error") for c in "BCDFGI"]),
    ]
    first = [d["findings"][0] for d in lines]
    assert [f["column"] for f in first[:7]] == ["核定經費"] * 7
    assert [f["value"] for f in first[:8]] == ["1,000", "2", "#BOGUS", "1000000", "99", "NaN", "1e999", "2"]
    assert "數值儲存格的內容不是數字：「1,000」" in first[0]["message"]
    assert "儲存格位置標示「7E」無效" in first[3]["message"] and "數值超出範圍：「1e999」" in first[6]["message"]
    assert "A1:ZZZZ0" in first[8]["message"] and "第 8 列的列號「0」無效" in first[9]["message"]
    assert all(m["message"].endswith("。") and not m["message"].endswith("。。") for m in first)
    assert len(done.stdout.encode()) < 11 * 3_000  # eleven short lines
    sub = env.ctx.ledger.submission(lines[0]["receipt"])
    assert sub is not None and sub.annotated_path is not None  # the copy, from the repaired sheet, opens
    marked = openpyxl.load_workbook(sub.annotated_path)["填報表"]
    assert marked["E7"].value is None and marked["E7"].comment is not None and marked["E8"].value == 1_000_000


def test_many_malformed_cells_are_listed_a_hundred_a_column(env: Env) -> None:
    """Every number cell of 200 rows written "1,000" (600 cells): each is value.malformed in its column, never also
    「必須填寫」 though it was read as blank; the first 100 per column are listed at their cells, the rest counted, and
    the JSON line stays small."""
    data = [row(f"計畫{i:03d}", item=i) for i in range(1, 201)]
    source = fill(env.issued[AGENCIES[17]], env.made / "many-malformed-base.xlsx", data)
    sheet = _sheet_of(source)

    def commas(members: Members) -> Members:
        return [(n, re.sub(rb'(<c r="[EFG][0-9]+" s="15" t="n"><v>)[0-9]+(</v>)', rb"\g<1>1,000\g<2>", d)
                 if n == sheet else d) for n, d in members]

    path = _mutant(source, env.made / "many-malformed.xlsx", commas)
    [line], done = _cli(env, path)
    found = triples(line["findings"])
    assert line["verdict"] == "rejected"
    assert found[:3] == [("value.malformed", "E7", "error"), ("value.malformed", "F7", "error"),
                         ("value.malformed", "G7", "error")]
    assert found[3:300] == [("value.malformed", f"{c}{r}", "error") for r in range(8, 107) for c in "EFG"]
    assert found[300:] == [("column.more", None, "error")] * 3
    assert [(f["column"], f["value"]) for f in line["findings"][300:]] == [
        ("核定經費", "100"), ("已動支數", "100"), ("實支數", "100")]
    assert len(done.stdout.encode()) < 150_000


def _far(members: Members, sheet: str, cells: bytes) -> Members:
    return [(n, d.replace(b"</sheetData>", cells + b"</sheetData>", 1) if n == sheet else d) for n, d in members]


def _moved(sheet: str, target: str, member: str) -> Callable[[Members], Members]:
    """The data sheet stored as `member`, named by workbook.xml.rels as `target`, with a value at XFD1048576."""
    def change(members: Members) -> Members:
        out = []
        for name, data in _far(members, sheet, b'<row r="1048576"><c r="XFD1048576"><v>1</v></c></row>'):
            if name == "xl/_rels/workbook.xml.rels":
                data = data.replace(f'Target="/{sheet}"'.encode(), f'Target="{target}"'.encode())
            out.append((member if name == sheet else name, data))
        return out
    return change


def test_far_cells_without_a_reference_or_in_a_sheet_stored_elsewhere_are_refused(env: Env) -> None:
    """Cells without r are placed by order: 20,000 of them in one row reach column 20,000, a row without r after row
    1,048,576 is past Excel's last row. A data sheet stored as "xl/foo" (no .xml), under "../" or under a name that
    looks like another part: its far cell is found all the same. Each refused as suspicious (the reader would have
    asked for terabytes and aborted, its Rust backtrace on the console)."""
    good = env.workbook(AGENCIES[11], "far-base.xlsx")
    sheet = _sheet_of(good)
    changes: list[tuple[str, Callable[[Members], Members]]] = [
        ("wide", lambda m: _far(m, sheet, b'<row r="300">' + b"<c><v>1</v></c>" * 20_000 + b"</row>")),
        ("deep", lambda m: _far(m, sheet, b'<row r="1048576"><c r="A1048576"><v>1</v></c></row>'
                                          b"<row><c><v>1</v></c></row>")),
        ("no-extension", _moved(sheet, "/xl/foo", "xl/foo")),
        ("dot-dot", _moved(sheet, "worksheets/../data/x.xml", "xl/worksheets/../data/x.xml")),
        ("shared-name", _moved(sheet, "/xl/data/sharedStrings.xml", "xl/data/sharedStrings.xml")),
    ]
    paths = [_mutant(good, env.made / f"far-{name}.xlsx", change) for name, change in changes]
    lines, done = _cli(env, *paths)
    assert [(d["verdict"], triples(d["findings"])) for d in lines] == [
        ("unreadable", [("file.suspicious", None, "error")])] * 5
    messages = [d["findings"][0]["message"] for d in lines]
    assert "第 300 列第 20,000 欄 超過 Excel 的 16,384 欄" in messages[0]
    assert "A1:J1048577" in messages[1]
    assert all("XFD1048576" in m for m in messages[2:])
    assert len(done.stdout.encode()) < 5 * 1_000


def _shared_strings(sheet: str, text: str, refs: int) -> Callable[[Members], Members]:
    """A shared-strings part holding one string, referred to by `refs` cells in column K, rows 300 on."""
    sst = ('<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" count="1" uniqueCount="1"><si><t>'
           f"{text}</t></si></sst>").encode()
    cells = b"".join(f'<row r="{300 + r}"><c r="K{300 + r}" t="s"><v>0</v></c></row>'.encode() for r in range(refs))

    def change(members: Members) -> Members:
        out = []
        for name, data in _far(members, sheet, cells):
            if name == "[Content_Types].xml":
                data = data.replace(b"</Types>", b'<Override PartName="/xl/sharedStrings.xml" ContentType="application/'
                                    b'vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/></Types>')
            if name == "xl/_rels/workbook.xml.rels":
                data = data.replace(b"</Relationships>", b'<Relationship Type="http://schemas.openxmlformats.org/'
                                    b'officeDocument/2006/relationships/sharedStrings" Target="sharedStrings.xml" '
                                    b'Id="rId99"/></Relationships>')
            out.append((name, data))
        return [*out, ("xl/sharedStrings.xml", sst)]
    return change


def test_a_shared_string_bomb_is_refused_before_the_reader_expands_it(env: Env) -> None:
    """One 3 MB shared string in 300 cells (900 MB once the reader copies it into each: a MemoryError and a Rust
    panic, "PyObject pointer is null", on the console) is refused naming the sheet, its stderr clean; the same string
    shared by 3 cells is read (its text reaches the table check as any other text outside the table)."""
    good = env.workbook(AGENCIES[12], "sst-base.xlsx")
    sheet = _sheet_of(good)
    text = "字" * 1_000_000  # 3 MB in UTF-8
    bomb = _mutant(good, env.made / "sst-bomb.xlsx", _shared_strings(sheet, text, 300))
    fine = _mutant(env.workbook(AGENCIES[13], "sst-fine-base.xlsx"), env.made / "sst-fine.xlsx",
                   _shared_strings(sheet, "備註", 3))
    assert bomb.stat().st_size < 100_000  # the whole attack fits in a mail
    lines, done = _cli(env, bomb, fine)
    assert "Traceback" not in done.stderr
    assert [(d["verdict"], triples(d["findings"])) for d in lines] == [
        ("unreadable", [("file.suspicious", None, "error")]),
        ("accepted", [("table.note", "K300", "warning"), ("table.note", "K301", "warning"),
                      ("table.note", "K302", "warning")])]
    assert "工作表「填報表」的 300 個儲存格引用共用字串，展開後達 900.0 MB" in lines[0]["findings"][0]["message"]
    assert len(done.stdout.encode()) < 3_000


def _appended_rows(sheet: str, make: Callable[[int], str], n: int = 200_000) -> Callable[[Members], Members]:
    def change(members: Members) -> Members:
        rows = "".join(make(r) for r in range(207, 207 + n)).encode()
        return _far(members, sheet, rows)
    return change


def test_two_hundred_thousand_rows_are_rejected_with_findings_in_bounded_work(env: Env) -> None:
    """200,000 rows past the form's 200, each with a wrong 類別 (and the required cells left blank), and one name
    repeated 200,000 times: `rejected` with the count of rows and the first findings of each column (they ran past
    the worker's 60 s limit: `unreadable: 讀取時間過長`). The work is bounded: the rows validated are the form's and
    the first 1,000 past it (all 200,000 counted); the JSON line is bounded by the 100 listed per column."""
    source = env.workbook(AGENCIES[14], "rows-base.xlsx")
    sheet = _sheet_of(source)
    wrong = _mutant(source, env.made / "rows-wrong.xlsx", _appended_rows(sheet, lambda r: (
        f'<row r="{r}"><c r="B{r}" t="inlineStr"><is><t>計畫{r}</t></is></c><c r="C{r}" t="inlineStr"><is><t>錯誤類別'
        f'</t></is></c><c r="E{r}" t="n"><v>100</v></c></row>')))
    names = _mutant(env.workbook(AGENCIES[15], "names-base.xlsx"), env.made / "rows-names.xlsx", _appended_rows(
        sheet, lambda r: f'<row r="{r}"><c r="B{r}" t="inlineStr"><is><t>口罩採購</t></is></c><c r="C{r}" '
                         f't="inlineStr"><is><t>防疫</t></is></c></row>'))
    lines, done = _cli(env, wrong, names)
    assert [d["verdict"] for d in lines] == ["rejected", "rejected"]
    for line in lines:
        found = triples(line["findings"])
        assert found[0] == ("table.too_many_rows", None, "error")
        assert line["findings"][0]["message"] == "資料列數 200002 超過上限 200 列。"
        listed: dict[str, int] = {}
        for f in line["findings"]:
            listed[f["column"]] = listed.get(f["column"], 0) + (f["code"] != "column.more")
        assert max(n for column, n in listed.items() if column) == 100
        sub = env.ctx.ledger.submission(line["receipt"])
        assert sub is not None and sub.rows == 2 + 1_000  # the rows validated: the form's two and 1,000 past it
    wrong_found, names_found = (triples(d["findings"]) for d in lines)
    assert wrong_found[1:4] == [("value.choice", "C207", "error"), ("value.required", "D207", "error"),
                                ("value.required", "F207", "error")]
    assert ("value.duplicate", "B7", "error") in names_found and ("value.duplicate", "B207", "error") in names_found
    more = {f["column"]: f["value"] for f in lines[0]["findings"] if f["code"] == "column.more"}
    assert more == {"類別": "900", "經費來源": "900", "已動支數": "900", "實支數": "900", "核定日期": "900"}
    assert len(done.stdout.encode()) < 2 * 120_000


class _Panic(BaseException):
    """Stands in for pyo3's PanicException (a BaseException)."""


def test_a_panic_in_the_reader_prints_nothing_on_the_console(env: Env, monkeypatch: pytest.MonkeyPatch,
                                                             capfd: pytest.CaptureFixture[str]) -> None:
    """pyo3 prints a panic's message and backtrace on file descriptor 2 before raising PanicException (the shared
    string bomb did, in the worker, on the console that started it): while a file is read, fd 2 goes nowhere, and
    the panic's message reaches the finding instead."""
    import os

    import python_calamine

    from collect.receive.read import ReadError, read_book

    def panicking(_stream: Any) -> Any:
        os.write(2, b"thread '<unnamed>' panicked at pyo3/src/instance.rs:\nPyObject pointer is null\n")
        raise _Panic("PyObject pointer is null")

    monkeypatch.setattr(python_calamine.CalamineWorkbook, "from_filelike", panicking)
    data = env.workbook(AGENCIES[16], "panic.xlsx").read_bytes()
    capfd.readouterr()
    with pytest.raises(ReadError) as raised:
        read_book(data)
    assert (raised.value.code, raised.value.detail) == ("file.reader_failed", "_Panic: PyObject pointer is null")
    os.write(2, b"after\n")  # and fd 2 is the console again
    assert capfd.readouterr().err == "after\n"
