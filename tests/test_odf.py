"""ODF (.ods) as an equal of .xlsx: issued, filled and saved by LibreOffice itself, returned, answered, reported."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import date
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from conftest import SECRET, soffice
from test_print import poppler

from collect.agencies import AgencyListError, load_agencies
from collect.config import parse_settings
from collect.errors import CollectError, ConfigError
from collect.findings import Finding
from collect.forms.issuing import copy_format, issue, issue_round_ods
from collect.forms.stamp import AgencyCopy
from collect.pipeline import make_report
from collect.receive.ingest import Ingestor, Outcome
from collect.receive.read import read_book
from collect.states import Verdict
from collect.workspace import Context, init_workspace
from collect.xlsx import odf
from collect.xlsx.odf_annotate import annotate_ods

pytestmark = pytest.mark.xdist_group("odf")  # one worker: one workspace, one LibreOffice for the module

ROUND = "2026-10"
SHEET = "填報表"
ODS_AGENCIES = ["020001", "020002", "030001"]  # issued as .ods (collect.toml: [workspace] format = "ods")
XLSX_AGENCY = "040001"  # 格式 = xlsx in the agency list: issued as .xlsx in the same round

# A Python-UNO script for the system python3 (apt-get install python3-uno): it talks to the module's one LibreOffice
# over a pipe and does what a person in Calc would: open a file, look at it, type values, save it, print it.
UNO_SCRIPT = r'''
import datetime, json, sys, time, uno
from com.sun.star.beans import PropertyValue

def pv(name, value):
    p = PropertyValue(); p.Name = name; p.Value = value; return p

pipe, ops = sys.argv[1], json.loads(sys.stdin.read())
local = uno.getComponentContext()
resolver = local.ServiceManager.createInstanceWithContext("com.sun.star.bridge.UnoUrlResolver", local)
for _ in range(480):
    try:
        ctx = resolver.resolve("uno:pipe,name=%s;urp;StarOffice.ComponentContext" % pipe); break
    except Exception:
        time.sleep(0.25)
else:
    raise SystemExit("LibreOffice did not answer on its pipe")
desktop = ctx.ServiceManager.createInstanceWithContext("com.sun.star.frame.Desktop", ctx)
out = []
for op in ops:
    doc = desktop.loadComponentFromURL(uno.systemPathToFileUrl(op["path"]), "_blank", 0, (pv("Hidden", True),))
    sheets = doc.Sheets
    facts = {"sheets": [[sheets.getByIndex(i).Name, bool(sheets.getByIndex(i).IsVisible)]
                        for i in range(sheets.Count)]}
    if op["op"] == "inspect":
        sheet = sheets.getByName(op["sheet"])
        facts["protected"] = bool(sheet.isProtected())
        facts["structure"] = bool(doc.isProtected())
        facts["locked"] = {r: bool(sheet.getCellRangeByName(r).CellProtection.IsLocked) for r in op["refs"]}
        facts["values"] = {r: sheet.getCellRangeByName(r).getString() for r in op["refs"]}
        facts["validation"] = {}
        for r in op["refs"]:
            v = sheet.getCellRangeByName(r).Validation
            facts["validation"][r] = {"type": v.Type.value, "operator": v.Operator.value, "f1": v.getFormula1(),
                                      "f2": v.getFormula2(), "input": bool(v.ShowInputMessage),
                                      "title": v.InputTitle, "message": v.InputMessage,
                                      "error": bool(v.ShowErrorMessage), "style": v.ErrorAlertStyle.value}
        page = doc.StyleFamilies.getByName("PageStyles").getByName(sheet.PageStyle)
        titles = sheet.getTitleRows()
        facts["print"] = {"landscape": bool(page.IsLandscape), "pages_wide": page.ScaleToPagesX,
                          "title_rows": [titles.StartRow + 1, titles.EndRow + 1] if sheet.getPrintTitleRows() else None,
                          "paper_mm": [round(page.Width / 100), round(page.Height / 100)]}
        props = doc.DocumentProperties.UserDefinedProperties
        facts["properties"] = {n: str(props.getPropertyValue(n)) for n in op["properties"]
                               if props.getPropertySetInfo().hasPropertyByName(n)}
    elif op["op"] == "fill":
        sheet = sheets.getByName(op["sheet"])
        for ref, value in op["cells"].items():
            cell = sheet.getCellRangeByName(ref)
            if isinstance(value, dict):  # a date, typed as Calc keeps it: days since 1899-12-30
                cell.setValue((datetime.date.fromisoformat(value["date"]) - datetime.date(1899, 12, 30)).days)
            elif isinstance(value, (int, float)):
                cell.setValue(value)
            else:
                cell.setString(value)
        doc.calculateAll()
        doc.storeToURL(uno.systemPathToFileUrl(op["to"]), (pv("FilterName", op["filter"]),))
    elif op["op"] == "invalid":  # what Calc's own Detective (Mark Invalid Data) circles once these are typed
        sheet = sheets.getByName(op["sheet"])
        for ref, value in op["cells"].items():
            cell = sheet.getCellRangeByName(ref)
            cell.setValue(value) if isinstance(value, (int, float)) else cell.setString(value)
        sheet.unprotect("")  # the Detective does not run on a protected sheet; validation is what is looked at
        before = sheet.DrawPage.Count
        sheet.showInvalid()
        facts["circled"] = sheet.DrawPage.Count - before
    elif op["op"] == "marks":
        sheet = sheets.getByName(op["sheet"])
        facts["active"] = doc.CurrentController.getActiveSheet().Name
        facts["marks"] = {r: [sheet.getCellRangeByName(r).CellBackColor,
                              sheet.getCellRangeByName(r).getAnnotation().getString()] for r in op["refs"]}
    elif op["op"] == "pdf":
        doc.storeToURL(uno.systemPathToFileUrl(op["to"]), (pv("FilterName", "calc_pdf_Export"),))
    doc.close(True)
    out.append(facts)
print(json.dumps(out, ensure_ascii=False))
'''


class Calc:
    """The module's one LibreOffice, listening on a pipe; run() hands it a list of operations (UNO_SCRIPT)."""

    def __init__(self, base: Path) -> None:
        python3 = shutil.which("python3", path="/usr/bin:/bin")
        check = subprocess.run([python3 or "python3", "-c", "import uno"], capture_output=True, check=False)
        if python3 is None or check.returncode:
            pytest.fail("Python-UNO is not installed for the system python3: apt-get install python3-uno")
        self.python3 = python3
        self.pipe = f"collect_odf_{os.getpid()}"
        self.script = base / "uno_ops.py"
        self.script.write_text(UNO_SCRIPT, encoding="utf-8")
        profile = base / "lo-profile"
        self.proc = subprocess.Popen(
            [soffice(), f"-env:UserInstallation={profile.as_uri()}", "--headless", "--invisible", "--norestore",
             "--nologo", "--nolockcheck", f"--accept=pipe,name={self.pipe};urp;StarOffice.ComponentContext"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**os.environ, "HOME": str(profile)}, start_new_session=True)

    def run(self, ops: list[dict[str, Any]]) -> list[dict[str, Any]]:
        done = subprocess.run([self.python3, str(self.script), self.pipe], input=json.dumps(ops), text=True,
                              capture_output=True, timeout=300, check=False)
        assert done.returncode == 0, done.stderr[-2000:]
        result: list[dict[str, Any]] = json.loads(done.stdout)
        return result

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@dataclass
class Env:
    root: Path
    ctx: Context
    issued: dict[str, Path]
    tokens: dict[str, str]
    facts: dict[str, Any]  # what LibreOffice saw in an issued .ods
    outcomes: dict[str, Outcome]  # returned file name -> its outcome
    expected_approved: int
    calc: Calc
    made: Path
    deadline: date


def _row(i: int, approved: int) -> dict[str, Any]:
    return {f"A{6 + i}": i, f"B{6 + i}": f"防疫計畫{i:02d}", f"C{6 + i}": "防疫", f"D{6 + i}": "市庫",
            f"E{6 + i}": approved, f"F{6 + i}": approved // 2, f"G{6 + i}": approved // 4,
            f"I{6 + i}": {"date": "2026-03-05"}}


APPROVED = [1_234_567, 89_000_001, 7]  # NT$ amounts the agency types; their sum must come back exact


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    base = tmp_path_factory.mktemp("odf")
    mp = pytest.MonkeyPatch()
    mp.setenv("COLLECT_SECRET", SECRET)
    root = base / "ws"
    init_workspace(root)
    toml = root / "collect.toml"
    toml.write_text(toml.read_text(encoding="utf-8").replace('format = "xlsx"', 'format = "ods"'), encoding="utf-8")
    agencies = root / "agencies.csv"
    lines = agencies.read_text(encoding="utf-8-sig").splitlines()
    lines = [lines[0] + ",格式"] + [line + (",xlsx" if line.startswith(XLSX_AGENCY + ",") else ",")
                                   for line in lines[1:]]
    agencies.write_text("\n".join(lines) + "\n", encoding="utf-8-sig")
    calc = Calc(base)  # starts while the round is issued
    ctx = Context.open(root)
    try:
        result = issue(ctx, "covid19", ROUND, agencies=[*ODS_AGENCIES, XLSX_AGENCY], today=date(2026, 11, 1))
        issued = {i.agency: i.path for i in result.issued}
        tokens = {i.agency: i.stamp.token for i in result.issued}
        made = base / "made"
        made.mkdir()
        good = {k: v for i, a in enumerate(APPROVED, start=1) for k, v in _row(i, a).items()}
        refs = ["A6", "B2", "B7", "C7", "E7", "I7", "A1"]
        stamp_props = [f"collect.{f}" for f in ("collection", "round", "agency", "version", "token")]
        ops: list[dict[str, Any]] = [
            {"op": "inspect", "path": str(issued[ODS_AGENCIES[0]]), "sheet": SHEET, "refs": refs,
             "properties": stamp_props},
            {"op": "invalid", "path": str(issued[ODS_AGENCIES[0]]), "sheet": SHEET,
             "cells": {"C7": "不存在的類別", "E8": -5, "B9": "字" * 101, "C10": "防疫", "E10": 1_000}},
            {"op": "fill", "path": str(issued[ODS_AGENCIES[0]]), "sheet": SHEET, "cells": good,
             "to": str(made / "good.ods"), "filter": "calc8"},
            {"op": "fill", "path": str(issued[ODS_AGENCIES[1]]), "sheet": SHEET,
             "cells": {**_row(1, 500), "C7": "不存在的類別"}, "to": str(made / "faulty.ods"), "filter": "calc8"},
            {"op": "fill", "path": str(issued[ODS_AGENCIES[2]]), "sheet": SHEET, "cells": _row(1, 1_000),
             "to": str(made / "ods-as-xlsx.xlsx"), "filter": "Calc MS Excel 2007 XML"},
            {"op": "fill", "path": str(issued[XLSX_AGENCY]), "sheet": SHEET, "cells": _row(1, 2_000),
             "to": str(made / "xlsx-as-ods.ods"), "filter": "calc8"},
        ]
        facts, invalid, *_ = calc.run(ops)
        facts["circled"] = invalid["circled"]
        with Ingestor(ctx) as ing:
            outcomes = {Path(o.file).name: o for o in ing.paths(sorted(made.iterdir()))}
        yield Env(root, ctx, issued, tokens, facts, outcomes, sum(APPROVED), calc, made, result.deadline)
    finally:
        calc.close()
        ctx.close()
        mp.undo()


# -- issued -------------------------------------------------------------------------------------------------------
def test_the_round_is_issued_as_ods_and_the_agency_listed_as_xlsx_gets_xlsx(env: Env) -> None:
    assert {a: p.suffix for a, p in env.issued.items()} == {**{a: ".ods" for a in ODS_AGENCIES}, XLSX_AGENCY: ".xlsx"}
    with zipfile.ZipFile(env.issued[ODS_AGENCIES[0]]) as zf:
        first = zf.infolist()[0]
        assert (first.filename, first.compress_type) == ("mimetype", zipfile.ZIP_STORED)
        assert zf.read("mimetype") == odf.MIMETYPE
        assert not [n for n in zf.namelist() if n.startswith("Thumbnails/")]
        content = zf.read("content.xml")
    assert b"@@collect:" not in content  # every placeholder of the round's base replaced


def test_libreoffice_shows_the_ods_copy_protected_with_open_inputs_dropdown_limit_and_prompt(env: Env) -> None:
    f = env.facts
    assert f["protected"] and f["structure"]
    assert f["locked"] == {"A6": True, "B2": True, "B7": False, "C7": False, "E7": False, "I7": False, "A1": True}
    assert f["values"]["B2"] == ODS_AGENCIES[0]  # the identity cell prefilled with the agency's code
    dropdown = f["validation"]["C7"]
    assert dropdown["type"] == "LIST" and "防疫" in dropdown["f1"] and "振興" in dropdown["f1"]
    limit = f["validation"]["E7"]
    assert (limit["type"], limit["operator"], limit["f1"]) == ("WHOLE", "BETWEEN", "0")
    assert limit["error"] and limit["style"] == "STOP"
    assert limit["input"] and limit["title"] == "核定經費" and "新臺幣元" in limit["message"]
    assert f["validation"]["I7"]["type"] == "DATE"
    assert f["validation"]["A1"]["type"] == "ANY"  # the title is not an input


def test_libreoffice_prints_the_ods_copy_as_the_xlsx_one(env: Env) -> None:
    # covid19's form: A4 landscape, one page wide, the header row (6) on every page, as collect.xlsx.printing sets
    assert env.facts["print"] == {"landscape": True, "pages_wide": 1, "title_rows": [6, 6], "paper_mm": [297, 210]}


def test_libreoffice_itself_finds_a_value_off_the_dropdown_a_negative_amount_and_a_too_long_name(env: Env) -> None:
    # typed into C7, E8 and B9 (and a valid C10, E10): Calc's Detective circles exactly the three invalid cells
    assert env.facts["circled"] == 3


def test_the_stamp_is_read_by_libreoffice_and_kept_in_a_hidden_sheet(env: Env) -> None:
    f = env.facts
    agency = ODS_AGENCIES[0]
    assert f["properties"]["collect.agency"] == agency
    assert f["properties"]["collect.token"] == env.tokens[agency]
    assert f["properties"]["collect.collection"] == "covid19"
    assert [SHEET, True] in f["sheets"] and ["_collect", False] in f["sheets"]
    book = read_book(env.issued[agency].read_bytes())  # and by collect, from the sheet as well as meta.xml
    stamp_sheet = book.sheet("_collect")
    assert stamp_sheet is not None and stamp_sheet.cell("B3") == agency and stamp_sheet.cell("B5") == env.tokens[agency]


# -- returned -----------------------------------------------------------------------------------------------------
def test_an_ods_filled_and_saved_by_libreoffice_is_accepted_with_exact_sums(env: Env) -> None:
    good = env.outcomes["good.ods"]
    assert good.verdict == Verdict.ACCEPTED, good.findings
    assert not [f for f in good.findings if f.severity == "error"]
    row = env.ctx.ledger.latest_accepted("covid19", ROUND, ODS_AGENCIES[0])
    assert row is not None and row.frame_path
    frame = pd.read_parquet(env.ctx.ws.state_dir / row.frame_path)
    assert len(frame) == 3
    assert int(frame["approved"].sum()) == env.expected_approved == 90_234_575
    assert [int(v) for v in frame["approved"]] == APPROVED
    assert list(frame["approved_on"].dt.date) == [date(2026, 3, 5)] * 3


def test_a_faulty_ods_is_rejected_at_its_cell_and_answered_with_a_marked_ods(env: Env) -> None:
    bad = env.outcomes["faulty.ods"]
    assert bad.verdict == Verdict.REJECTED
    at = [f for f in bad.findings if f.severity == "error"]
    assert [(f.sheet, f.cell) for f in at] == [(SHEET, "C7")], at
    assert bad.annotated is not None and bad.annotated.suffix == ".ods"
    assert odf.is_ods(bad.annotated.read_bytes())
    shown, = env.calc.run([{"op": "marks", "path": str(bad.annotated), "sheet": SHEET, "refs": ["C7", "D7"]}])
    assert shown["sheets"][0] == ["檢核結果", True] and shown["active"] == "檢核結果"
    color, note = shown["marks"]["C7"]
    assert color == 0xFF9999 and "類別" in note and note.startswith("錯誤：")
    assert shown["marks"]["D7"][1] == ""  # a cell without a finding is left as the agency had it
    assert bad.receipt_mail is not None  # the receipt carries it as an ODF spreadsheet, named .ods
    mail = message_from_bytes(bad.receipt_mail.read_bytes(), policy=policy.default)
    [attached] = [p for p in mail.iter_attachments() if (p.get_filename() or "").endswith(".ods")]
    assert attached.get_content_type() == "application/vnd.oasis.opendocument.spreadsheet"
    assert attached.get_payload(decode=True) == bad.annotated.read_bytes()
    summary = read_book(bad.annotated.read_bytes()).sheet("檢核結果")
    assert summary is not None and summary.cell("D7") == "C7" and summary.cell("B7") == "錯誤"


def test_an_ods_copy_returned_as_xlsx_and_an_xlsx_copy_returned_as_ods_are_answered_normally(env: Env) -> None:
    as_xlsx, as_ods = env.outcomes["ods-as-xlsx.xlsx"], env.outcomes["xlsx-as-ods.ods"]
    assert (as_xlsx.verdict, as_xlsx.agency) == (Verdict.ACCEPTED, ODS_AGENCIES[2]), as_xlsx.findings
    assert (as_ods.verdict, as_ods.agency) == (Verdict.ACCEPTED, XLSX_AGENCY), as_ods.findings


# -- reported -----------------------------------------------------------------------------------------------------
def test_the_ods_master_report_prints_like_the_xlsx_one(env: Env) -> None:
    result = make_report(env.ctx, "covid19", ROUND)  # the workspace's format: ods
    names = {p.name for p in result.ods}
    assert odf.ods_name(result.files.master.name) in names
    assert len(result.ods) == 1 + len(result.files.supervisors)
    master_ods = result.files.master.with_suffix(".ods")
    book = read_book(master_ods.read_bytes())
    assert [s.name for s in book.sheets][:1] == [s.name for s in read_book(result.files.master.read_bytes()).sheets][:1]
    pdfs = env.made.parent / "pdf"
    pdfs.mkdir()
    env.calc.run([{"op": "pdf", "path": str(master_ods), "to": str(pdfs / "ods.pdf")},
                  {"op": "pdf", "path": str(result.files.master), "to": str(pdfs / "xlsx.pdf")}])
    pages = {k: _pages(pdfs / f"{k}.pdf") for k in ("ods", "xlsx")}
    assert pages["ods"] == pages["xlsx"] and pages["ods"] >= 1
    text = subprocess.run([poppler("pdftotext"), "-layout", str(pdfs / "ods.pdf"), "-"], capture_output=True,
                          text=True, check=True).stdout
    assert "###" not in text and "90,234,575" in text.replace("\u00a0", "")


def _pages(pdf: Path) -> int:
    info = subprocess.run([poppler("pdfinfo"), str(pdf)], capture_output=True, text=True, check=True).stdout
    return int(next(line.split()[-1] for line in info.splitlines() if line.startswith("Pages:")))


# -- choosing the format, and the .ods cell editor, without LibreOffice -----------------------------------------
def test_the_format_comes_from_the_agency_list_then_the_collection_then_collect_toml(env: Env) -> None:
    coll = env.ctx.collection("covid19")
    reg = env.ctx.registry
    assert copy_format(env.ctx, coll, reg.get(XLSX_AGENCY)) == "xlsx"  # type: ignore[arg-type]
    assert copy_format(env.ctx, coll, reg.get(ODS_AGENCIES[0])) == "ods"  # type: ignore[arg-type]
    as_xlsx = replace(coll, meta=replace(coll.meta, format="xlsx"))  # Meta(format=...) over collect.toml's ods
    assert copy_format(env.ctx, as_xlsx, reg.get(ODS_AGENCIES[0])) == "xlsx"  # type: ignore[arg-type]
    with pytest.raises(CollectError, match="format='pdf'"):
        copy_format(env.ctx, replace(coll, meta=replace(coll.meta, format="pdf")), reg.get(ODS_AGENCIES[0]))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="format = 'pdf'"):
        parse_settings('[workspace]\nformat = "pdf"\n', Path("collect.toml"))


def test_a_wrong_format_in_the_agency_list_is_named_at_its_row(tmp_path: Path) -> None:
    path = tmp_path / "agencies.csv"
    path.write_text("機關代碼,機關名稱,類別,主管機關代碼,聯絡信箱,啟用,格式\n"
                    "010000,秘書處,公務機關,,a@example.test,是,pdf\n", encoding="utf-8")
    with pytest.raises(AgencyListError) as info:
        load_agencies(path)
    problems = [p for p in info.value.problems if p.column == "格式"]
    assert [p.row for p in problems] == [2] and "pdf" in problems[0].message


def test_cells_inside_repeated_runs_are_split_and_read_back_at_their_address(env: Env) -> None:
    data = env.issued[ODS_AGENCIES[1]].read_bytes()
    members = odf.read_members(data)
    root = odf.parse_xml(members["content.xml"])
    grid = odf.OdsSheet(odf.table_named(root, SHEET))
    for ref, value in {"F150": 12_345, "J9": "備註文字", "I8": date(2026, 3, 5), "Z3000": 1}.items():
        row, col = odf.parse_a1(ref)
        odf.set_value(grid.cell(row, col), value)
    out = odf.OdsTemplate(members).build({"content.xml": odf.to_xml(root)})
    sheet = read_book(out).sheet(SHEET)
    assert sheet is not None
    assert (sheet.cell("F150"), sheet.cell("J9"), sheet.cell("Z3000")) == (12_345, "備註文字", 1)
    assert str(sheet.cell("I8"))[:10] == "2026-03-05"
    assert sheet.cell("F149") in (None, "") and sheet.cell("F151") in (None, "")


def test_issuing_the_round_again_reuses_the_converted_base_and_writes_prefilled_rows(
        env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")  # no LibreOffice: the round's cached base must serve
    coll = env.ctx.collection("covid19")
    copy = AgencyCopy("020003", "臺北市中山區公所", "臺北市政府民政局",
                      rows=[{"name": "預填計畫", "approved": 5_000, "approved_on": date(2026, 2, 1)}, {"item": 2}])
    [made] = issue_round_ods(coll, ROUND, env.deadline, [copy], SECRET.encode(), tmp_path,
                             cache=env.ctx.ws.state_dir / "cache" / "ods")
    book = read_book(made.path.read_bytes())
    sheet = book.sheet(SHEET)
    assert sheet is not None and made.path.suffix == ".ods"
    assert (sheet.cell("B2"), sheet.cell("B7"), sheet.cell("E7"), sheet.cell("A8")) == ("020003", "預填計畫", 5_000, 2)
    assert str(sheet.cell("I7"))[:10] == "2026-02-01"
    assert book.properties["collect.agency"] == "020003" and book.properties["collect.token"] == made.stamp.token


def test_a_prefilled_locked_cell_is_greyed_and_locked(env: Env) -> None:
    content = odf.read_members(env.issued[ODS_AGENCIES[0]].read_bytes())["content.xml"]
    root = odf.parse_xml(odf.set_cells(content, SHEET, {"B7": "由本處預填", "C7": "防疫"}, locked=["B7"]))
    grid = odf.OdsSheet(odf.table_named(root, SHEET))
    styles = {s.get(odf.q("style:name")): s for s in root.find(odf.q("office:automatic-styles"))}

    def props(ref: str) -> dict[str, str]:
        cell = grid.cell(*odf.parse_a1(ref))
        found = styles[cell.get(odf.q("table:style-name"))].find(odf.q("style:table-cell-properties"))
        return {k.split("}")[1]: v for k, v in found.attrib.items()}

    assert props("B7")["cell-protect"] == "protected" and props("B7")["background-color"] == odf.PREFILL_RGB
    assert props("C7").get("cell-protect") != "protected"  # an input the agency types stays open


def test_an_annotated_ods_marks_a_merged_title_at_its_anchor_joins_notes_and_keeps_a_sheet_named_like_the_summary(
        env: Env) -> None:
    members = odf.read_members((env.made / "good.ods").read_bytes())  # saved by LibreOffice itself
    members["content.xml"] = members["content.xml"].replace(b'table:name="_collect"',
                                                            'table:name="檢核結果"'.encode())
    data = odf.OdsTemplate(members).build({})
    found = [Finding("a", "warning", "標題被改", SHEET, "C1"), Finding("b", "error", "第一個", SHEET, "E7"),
             Finding("c", "warning", "第二個", SHEET, "E7"), Finding("d", "error", "找不到的表", "不存在", "A1")]
    out = annotate_ods(data, found, title="T", summary_lines=["L"])
    book = read_book(out)
    assert [s.name for s in book.sheets] == ["檢核結果 (2)", SHEET, "檢核結果"]
    root = odf.parse_xml(odf.read_members(out)["content.xml"])
    grid = odf.OdsSheet(odf.table_named(root, SHEET))
    path = f"{odf.q('office:annotation')}/{odf.q('text:p')}"
    notes = {ref: [p.text for p in grid.cell(*odf.parse_a1(ref)).iterfind(path)] for ref in ("A1", "C1", "E7")}
    assert notes == {"A1": ["警告：標題被改"], "C1": [], "E7": ["錯誤：第一個", "警告：第二個"]}
    summary = book.sheet("檢核結果 (2)")
    assert summary is not None and summary.cell("C8") == "不存在" and summary.cell("D8") == "A1"
    sheet = book.sheet(SHEET)
    assert sheet is not None and sheet.cell("E7") == APPROVED[0]  # the agency's value kept


def test_annotating_what_is_not_an_ods_says_so(env: Env) -> None:
    with pytest.raises(odf.OdfError):
        annotate_ods(env.issued[XLSX_AGENCY].read_bytes(), [Finding("x", "error", "m", SHEET, "A1")])
    with pytest.raises(odf.OdfError):
        annotate_ods(b"not a zip", [])


def test_issuing_ods_without_libreoffice_is_a_named_error(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    started = time.monotonic()
    with pytest.raises(odf.OdfError, match="LibreOffice") as info:
        odf.OdsCopies(b"PK", SHEET)
    assert info.value.hint and "format" in info.value.hint and time.monotonic() - started < 5
