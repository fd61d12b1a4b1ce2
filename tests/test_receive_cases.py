"""Issue 14's cases, run as a user runs them: zips (and nested zips) in a folder, named on the command line and dropped
into the files backend's inbox; a file name that is not UTF-8; findings that are causes, not consequences."""

from __future__ import annotations

import io
import os
import re
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openpyxl
import pandas as pd
import pytest
from conftest import SECRET, convert, run_cli
from ingest_util import ROUND, attachments, fill, json_lines, mail_text, read_mail, row, rows, triples

from collect.archive import sha256_of
from collect.forms.issuing import issue
from collect.workspace import Context, init_workspace

A, B, C, D, E, F, G, H = "020001", "020002", "020003", "020004", "020005", "020006", "020007", "020008"
MANY = "020009"
AS_XLS, AS_ODS = "020010", "020011"
BIG_COPY = "020012"
TWO = [row("口罩採購", item=1), row("快篩試劑", item=2, category="紓困", source="中央補助")]


@dataclass
class Env:
    root: Path
    ctx: Context
    issued: dict[str, Path]
    made: Path

    def workbook(self, code: str, name: str, data: Any = TWO) -> Path:
        return fill(self.issued[code], self.made / name, data)

    def cli(self, *args: str) -> Any:
        done = run_cli("--workspace", str(self.root), *args)
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr
        return done


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    base = tmp_path_factory.mktemp("entry")
    root = base / "ws"
    mp = pytest.MonkeyPatch()
    mp.setenv("COLLECT_SECRET", SECRET)
    init_workspace(root)
    ctx = Context.open(root)
    result = issue(ctx, "covid19", ROUND, agencies=[A, B, C, D, E, F, G, H, MANY, AS_XLS, AS_ODS, BIG_COPY])
    yield Env(root, ctx, {i.agency: i.path for i in result.issued}, base / "made")
    ctx.close()
    mp.undo()


def zip_of(members: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members:
            zf.writestr(name, data)
    return buf.getvalue()


def test_a_folder_holding_a_supervisors_zip_and_a_big5_named_file(env: Env) -> None:
    """`collect ingest DIR`: the zip's two workbooks are each a submission; the Big5-named file beside it gets its
    verdict under its name decoded, and the run ends 0."""
    folder = env.made / "folder"
    folder.mkdir(parents=True)
    good = env.workbook(A, "a.xlsx").read_bytes()
    bad = fill(env.issued[B], env.made / "b.xlsx", [row("快篩試劑", item=1, approved="一千")]).read_bytes()
    units = zip_of([("單位甲.xlsx", good), ("單位乙.xlsx", bad), ("說明.txt", b"readme")])
    (folder / "所屬單位.zip").write_bytes(units)
    big5 = os.fsdecode("回報.xlsx".encode("cp950"))
    (folder / big5).write_bytes(env.workbook(C, "c.xlsx").read_bytes())
    done = env.cli("ingest", "--json", str(folder))
    lines = {d["file"]: d for d in json_lines(done.stdout)}
    assert {k: (d["verdict"], d["agency"], triples(d["findings"])) for k, d in lines.items()} == {
        "回報.xlsx": ("accepted", C, []),
        "所屬單位.zip/單位甲.xlsx": ("accepted", A, []),
        "所屬單位.zip/單位乙.xlsx": ("rejected", B, [("value.not_number", "E7", "error")]),
    }
    assert env.ctx.archive.get(sha256_of(units)) == units  # the zip itself is archived too
    again = env.cli("ingest", "--json", str(folder))  # later runs decide again (duplicates), never exit 1
    assert {d["verdict"] for d in json_lines(again.stdout)} == {"duplicate"}


def test_a_nested_zip_named_on_the_command_line(env: Env) -> None:
    """`collect ingest FILE.zip`: a zip inside the zip is opened; a zip with no workbook says so."""
    inner = zip_of([("內層.xlsx", env.workbook(D, "d.xlsx").read_bytes())])
    outer = env.made / "外層.zip"
    outer.write_bytes(zip_of([("第二層.zip", inner)]))
    empty = env.made / "沒有活頁簿.zip"
    empty.write_bytes(zip_of([("說明.txt", b"nothing")]))
    done = env.cli("ingest", "--json", str(outer), str(empty))
    lines = json_lines(done.stdout)
    assert [(d["file"], d["verdict"], d["agency"]) for d in lines] == [
        ("外層.zip/內層.xlsx", "accepted", D), ("沒有活頁簿.zip", "unreadable", None)]
    assert triples(lines[1]["findings"]) == [("file.not_spreadsheet", None, "error")]
    assert "ZIP 壓縮檔，其中沒有 Excel 活頁簿" in lines[1]["findings"][0]["message"]


def test_a_zip_dropped_into_the_files_backends_inbox(env: Env) -> None:
    """`collect fetch` with the files backend: the dropped zip's workbook is decided and the zip moved away."""
    inbox = env.root / "inbox"
    inbox.mkdir(exist_ok=True)
    (inbox / "單位.zip").write_bytes(zip_of([("戊.xlsx", env.workbook(E, "e.xlsx").read_bytes())]))
    done = env.cli("fetch")
    assert "單位.zip/戊.xlsx accepted 020005" in " ".join(done.stdout.split())
    assert not (inbox / "單位.zip").exists()
    assert env.ctx.ledger.latest_accepted("covid19", ROUND, E) is not None


def test_a_rule_is_not_judged_on_a_value_that_failed_its_own_check(env: Env) -> None:
    """核定經費 -5 is the cause (E7); 已動支數 0 ≤ 核定經費 is not judged on it, and the receipt says so (F7). A rule
    failing on values that passed their checks is still found (G8)."""
    path = fill(env.issued[F], env.made / "f.xlsx", [
        row("口罩採購", item=1, approved=-5, committed=0, spent=0),
        row("快篩試劑", item=2, committed=100, spent=200),
    ])
    done = env.cli("ingest", "--json", str(path))
    [line] = json_lines(done.stdout)
    assert line["verdict"] == "rejected"
    assert triples(line["findings"]) == [("value.min", "E7", "error"), ("row.rule_skipped", "F7", "warning"),
                                         ("row.rule", "G8", "error")]
    assert "「已動支數不可大於核定經費」這項檢查未執行" in line["findings"][1]["message"]


def test_a_million_digit_number_is_a_finding_not_a_computation(env: Env) -> None:
    """One cell holding as many digits as a cell takes (32,767; a million took 41 s in int(Decimal(...)) before): a
    finding at that cell, its value shown cut, the JSON line small."""
    path = fill(env.issued[G], env.made / "g.xlsx", [row("口罩採購", item=1, approved="9" * 32_767)])
    done = env.cli("ingest", "--json", str(path))
    [line] = json_lines(done.stdout)
    assert line["verdict"] == "rejected"
    assert triples(line["findings"]) == [("value.too_many_digits", "E7", "error")]
    assert line["findings"][0]["value"].endswith("…（共 32,767 字）")
    assert len(done.stdout.encode()) < 5_000  # the whole JSON line, where the value alone was 1 MB


def test_formulas_without_a_saved_result_are_computed_or_named_never_required_or_dropped(env: Env) -> None:
    """Written by a program (openpyxl saves no results): =ROW()-6, =E7*0.8 and =SUM(E7:E8) are computed from the
    workbook's own cells and checked (one warning says so); =E8/0 gives its Excel error at its cell; a formula collect
    does not compute (another workbook, INDIRECT, a cycle) is named at its cell, never 「必須填寫」, never dropped."""
    path = fill(env.issued[H], env.made / "h.xlsx", [
        row("口罩採購", item="=ROW()-6", committed="=E7*0.8"),
        row("快篩試劑", item=2, committed="=E8/0"),
        row("防護衣", item=3, committed="=[1]Sheet1!A1"),
        row("酒精", item=4, committed='=INDIRECT("E10")'),
        row("額溫槍", item=5, committed="=G11", spent="=F11"),
        row("隔離衣", item=6, approved="=SUM(E7:E8)", committed=3_000_000),
    ])
    done = env.cli("ingest", "--json", str(path))
    [line] = json_lines(done.stdout)
    assert line["verdict"] == "rejected"
    assert sorted(triples(line["findings"]), key=str) == sorted([
        ("value.formula_error", "F8", "error"),
        ("value.formula_no_result", "F9", "error"), ("value.formula_no_result", "F10", "error"),
        ("value.formula_no_result", "F11", "error"), ("value.formula_no_result", "G11", "error"),
        ("row.rule", "F12", "error"),  # 3,000,000 > =SUM(E7:E8), which is 2,000,000: the computed value is checked
        ("value.formula_computed", None, "warning")], key=str)
    by_cell = {f["cell"]: f for f in line["findings"]}
    assert by_cell["F8"]["value"] == "=E8/0" and "#DIV/0!" in by_cell["F8"]["message"]
    assert "參照其他活頁簿" in by_cell["F9"]["message"]
    assert "請用 Excel 開啟並存檔一次後再寄回" in by_cell["F9"]["message"]
    assert "INDIRECT" in by_cell["F10"]["message"] and "循環" in by_cell["F11"]["message"]
    computed = by_cell[None]
    assert computed["value"] is None  # a count is no value the agency wrote (the receipt's 填寫值 column)
    assert "有 3 個儲存格" in computed["message"] and "A7 =ROW()-6 = 1" in computed["message"]
    frame = pd.read_parquet(env.ctx.ws.state_dir / env.ctx.ledger.submission(line["receipt"]).frame_path)
    assert frame.loc[frame["_row"] == 7, "item"].item() == 1


def test_excel_error_values_are_named_never_required(env: Env) -> None:
    """A formula Excel computed to #DIV/0! (saved as such, t="e") and a typed #N/A: the reader sees both as empty; each
    is named with its error at its cell, never 「必須填寫」."""
    path = fill(env.issued[E], env.made / "errors.xlsx", [row("口罩採購", item=1, committed="=E7/0"),
                                                          row("快篩試劑", item=2)])
    sheet_part = "xl/worksheets/sheet1.xml"

    def excel_saved(members: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
        def cached(xml: bytes) -> bytes:
            xml = re.sub(rb'<c r="F7"([^>]*)><f>E7/0</f><v\s*/?>(?:</v>)?</c>',
                         rb'<c r="F7"\1 t="e"><f>E7/0</f><v>#DIV/0!</v></c>', xml)
            return re.sub(rb'<c r="F8"([^>]*?)(?: t="n")?><v>800000</v></c>', rb'<c r="F8"\1 t="e"><v>#N/A</v></c>',
                          xml)
        return [(n, cached(d) if n == sheet_part else d) for n, d in members]

    mutant = _mutant(path, env.made / "errors-saved.xlsx", excel_saved)
    with zipfile.ZipFile(mutant) as zf:
        assert zf.read(sheet_part).count(b't="e"') == 2  # the file holds what Excel writes
    done = env.cli("ingest", "--json", str(mutant))
    [line] = json_lines(done.stdout)
    assert (line["verdict"], triples(line["findings"])) == (
        "rejected", [("value.formula_error", "F7", "error"), ("value.error_value", "F8", "error")])
    assert "「=E7/0」算出錯誤值 #DIV/0!" in line["findings"][0]["message"]
    assert "錯誤值 #N/A" in line["findings"][1]["message"]


def _mutant(source: Path, out: Path, change: Any) -> Path:
    """A copy of a stamped workbook with its zip members rewritten by change(list of (name, bytes))."""
    with zipfile.ZipFile(source) as zf:
        members = [(i.filename, zf.read(i)) for i in zf.infolist()]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Duplicate name": the point of one mutant
        for name, data in change(members):
            zf.writestr(name, data)
    out.write_bytes(buf.getvalue())
    return out


def test_hostile_packages_inside_a_validly_stamped_workbook_are_refused(env: Env) -> None:
    """Duplicate member names, a DOCTYPE in a .vml part, and a far cell written r='XFD1048576' (single quotes,
    lower-case letters) are each refused as suspicious with the reason, in one bounded run."""
    good = env.workbook(A, "hostile-base.xlsx")
    with zipfile.ZipFile(good) as zf:
        sheet = next(i.filename for i in zf.infolist() if i.filename.startswith("xl/worksheets/sheet"))

    def duplicate(members: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
        return [*members, next(m for m in members if m[0] == sheet)]

    def vml(members: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
        bomb = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><xml>&a;</xml>'
        return [*members, ("xl/drawings/vmlDrawing9.vml", bomb)]

    def far(quote: bytes, ref: bytes) -> Any:
        def change(members: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
            cell = b"<row r=\"1048576\"><c r=" + quote + ref + quote + b"><v>1</v></c></row></sheetData>"
            return [(n, d.replace(b"</sheetData>", cell, 1) if n == sheet else d) for n, d in members]
        return change

    paths = [_mutant(good, env.made / f"hostile-{name}.xlsx", change) for name, change in (
        ("duplicate", duplicate), ("vml", vml), ("single", far(b"'", b"XFD1048576")),
        ("lower", far(b'"', b"xfd1048576")))]
    done = env.cli("ingest", "--json", *map(str, paths))
    lines = json_lines(done.stdout)
    assert [(d["verdict"], triples(d["findings"])) for d in lines] == [
        ("unreadable", [("file.suspicious", None, "error")])] * 4
    details = [d["findings"][0]["message"] for d in lines]
    assert "重複的項目名稱" in details[0] and "DOCTYPE" in details[1]
    assert all("資料範圍" in d for d in details[2:])
    assert len(done.stdout.encode()) < 4 * 1_000  # each verdict one short line


def test_one_error_per_row_lists_a_hundred_per_column_and_counts_the_rest(env: Env) -> None:
    """200 rows (the form's most), each with one wrong 類別: the first 100 are listed at their cells, the other 100
    counted in one finding; the JSON line and the receipt grow only up to that."""
    data = [{**r, "category": "錯誤類別"} for r in rows(200)]
    path = fill(env.issued[MANY], env.made / "many.xlsx", data)
    done = env.cli("ingest", "--json", str(path))
    [line] = json_lines(done.stdout)
    found = triples(line["findings"])
    assert line["verdict"] == "rejected"
    assert found == [("value.choice", f"C{r}", "error") for r in range(7, 107)] + [("column.more", None, "error")]
    assert line["findings"][-1]["value"] == "100" and "另有 100 處問題未逐一列出" in line["findings"][-1]["message"]
    assert len(done.stdout.encode()) < 60_000
    sub = env.ctx.ledger.submission(line["receipt"])
    assert sub is not None and sub.receipt_path is not None
    text = mail_text(read_mail(Path(sub.receipt_path)))
    assert len(re.findall(r"填報表!C[0-9]+", text)) <= 100  # the listed cells at most, never all 200


def test_receipts_of_xls_and_ods_returns_keep_the_agencys_formatting(env: Env) -> None:
    """An .xls and an .ods return (made by LibreOffice, one conversion each for this module) are answered with their
    own workbook converted to .xlsx and annotated: 1,000,000 keeps its #,##0, the formula column stays formulas
    (not 0 in every empty row), the wrong cell is marked. (An .ods return is answered as an .ods.)"""
    data = [row("口罩採購", item=1, approved="一千"), row("快篩試劑", item=2)]
    sources = [fill(env.issued[code], env.made / "lo" / f"{code}.xlsx", data) for code in (AS_XLS, AS_ODS)]
    xls = convert([sources[0]], "xls", env.made / "lo-out")[0]
    ods = convert([sources[1]], "ods", env.made / "lo-out")[0]
    done = env.cli("ingest", "--json", str(xls), str(ods))
    lines = json_lines(done.stdout)
    assert [(d["file"], d["verdict"], triples(d["findings"])) for d in lines] == [
        (xls.name, "rejected", [("value.not_number", "E7", "error")]),
        (ods.name, "rejected", [("value.not_number", "E7", "error")])]
    for line in lines:
        sub = env.ctx.ledger.submission(line["receipt"])
        assert sub is not None and sub.annotated_path is not None
        if sub.annotated_path.endswith(".ods"):  # an .ods is answered as an .ods, marked in place (tests/test_odf.py)
            marked = zipfile.ZipFile(sub.annotated_path).read("content.xml").decode("utf-8")
            assert "<office:annotation" in marked and 'office:value="1000000"' in marked and "of:=" in marked
            continue
        copy = openpyxl.load_workbook(sub.annotated_path)
        sheet = copy["填報表"]
        assert sheet["E8"].value == 1_000_000 and "#,##0" in sheet["E8"].number_format
        assert sheet["E7"].comment is not None
        assert all(sheet[f"H{r}"].value in (None, "") or str(sheet[f"H{r}"].value).startswith("=")
                   for r in range(9, 207))  # never a 0 the agency did not have


def test_a_receipt_over_the_mail_limit_goes_without_the_copy_and_says_so(env: Env) -> None:
    """With [mail] max_attachment_mb = 0.02 the annotated copy (kept for staff) is too large for the receipt: the
    receipt lists the findings, says why the copy is missing, and stays small."""
    toml = env.root / "collect.toml"
    before = toml.read_text(encoding="utf-8")
    toml.write_text(before.replace("max_attachment_mb = 25", "max_attachment_mb = 0.02"), encoding="utf-8")
    try:
        path = fill(env.issued[BIG_COPY], env.made / "big-copy.xlsx", [row("口罩採購", item=1, approved="一千")])
        done = env.cli("ingest", "--json", str(path))
    finally:
        toml.write_text(before, encoding="utf-8")
    [line] = json_lines(done.stdout)
    assert (line["verdict"], triples(line["findings"])) == ("rejected", [("value.not_number", "E7", "error")])
    sub = env.ctx.ledger.submission(line["receipt"])
    assert sub is not None and sub.receipt_path is not None and sub.annotated_path is not None
    assert Path(sub.annotated_path).stat().st_size > 15_000  # the copy exists, for staff
    mail = read_mail(Path(sub.receipt_path))
    assert attachments(mail) == {}
    assert "超過郵件附件上限，本信未附" in mail_text(mail)
    assert Path(sub.receipt_path).stat().st_size < 15_000
