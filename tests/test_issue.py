"""Tests of stamping and `collect issue`: identity cells, stamp, locks, validations, LibreOffice round trip, prefill."""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import openpyxl
import pytest
import sqlalchemy as sa
from conftest import SECRET, convert, run_cli
from openpyxl.styles import Protection
from openpyxl.utils import get_column_letter
from openpyxl.workbook.workbook import Workbook

from collect import ledger as ledger_tables
from collect.forms.spec import STAMP_SHEET
from collect.forms.stamp import STAMP_FIELDS, AgencyCopy, RoundBook, Stamp, make_stamp, verify
from collect.forms.template import DATE_FORMAT
from collect.receive.identify import read_stamp
from collect.receive.read import Book, read_book
from collect.rounds import round_end
from collect.simulate import type_cells
from collect.workspace import Context, init_workspace
from collect.xlsx.dates import to_serial as serial
from collect.xlsx.filling import fill_cells

ROUND = "2026-10"
DEADLINE = date(2026, 11, 10)
SHEET = "填報表"
FIRST, LAST = 7, 206  # the covid19 form's data rows (header in row 6)
INPUT_LETTERS = "ABCDEFGIJ"  # H is the execution-rate formula
CARRIED = {"B": "計畫名稱", "C": "類別", "D": "經費來源", "E": "核定經費", "I": "核定日期"}
NS = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}
REL_ID = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}id"


# -- helpers ---------------------------------------------------------------------------------------------------
def issue(root: Path, *args: str, collection: str = "covid19", round_id: str = ROUND) -> str:
    """`collect issue` as the user runs it; returns stdout, fails the test with stderr otherwise."""
    proc = run_cli("issue", collection, "--round", round_id, "--deadline", DEADLINE.isoformat(), *args, cwd=root)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    return proc.stdout


def issued_dir(root: Path, collection: str = "covid19", round_id: str = ROUND) -> Path:
    return root / "outbox" / collection / round_id / "issued"


def issued_file(root: Path, code: str, round_id: str = ROUND, collection: str = "covid19") -> Path:
    found = list(issued_dir(root, collection, round_id).glob(f"{code}-*.xlsx"))
    assert len(found) == 1, found
    return found[0]


def stamp_of(path: Path) -> tuple[Stamp, str]:
    found = read_stamp(read_book(path.read_bytes()))
    assert found is not None, f"no stamp in {path}"
    return found.stamp, found.source


def named_cell(wb: Workbook, name: str) -> str:
    """The A1 address a workbook-level defined name points at."""
    sheet, ref = next(iter(wb.defined_names[name].destinations))
    assert sheet == SHEET
    return ref.replace("$", "")


def sheet_part(zf: zipfile.ZipFile, name: str) -> str:
    book = ET.fromstring(zf.read("xl/workbook.xml"))
    rid = next(s.get(REL_ID) for s in book.iterfind("m:sheets/m:sheet", NS) if s.get("name") == name)
    rels = ET.fromstring(zf.read("xl/_rels/workbook.xml.rels"))
    target = next(str(r.get("Target")) for r in rels if r.get("Id") == rid)
    return target.lstrip("/") if target.startswith("/") else "xl/" + target


def effective_locks(path: Path, sheet: str = SHEET) -> Callable[[int, int], bool]:
    """Whether Excel treats a cell as locked: the cell's own style, else its row's (customFormat), else its
    column's, else the default style. Read from the XML, because openpyxl only returns cells it kept."""
    with zipfile.ZipFile(path) as zf:
        styles = ET.fromstring(zf.read("xl/styles.xml"))
        xml = ET.fromstring(zf.read(sheet_part(zf, sheet)))
    xf_locked = []
    for xf in styles.iterfind("m:cellXfs/m:xf", NS):
        prot = xf.find("m:protection", NS)
        xf_locked.append(prot is None or prot.get("locked", "1") not in ("0", "false"))
    cells: dict[tuple[int, int], int] = {}
    rows: dict[int, int] = {}
    for row in xml.iterfind("m:sheetData/m:row", NS):
        r = int(row.get("r", "0"))
        if row.get("customFormat") in ("1", "true"):
            rows[r] = int(row.get("s", "0"))
        for c in row.iterfind("m:c", NS):
            col = openpyxl.utils.column_index_from_string(re.sub(r"\d", "", c.get("r", "")))
            cells[(r, col)] = int(c.get("s", "0"))
    cols = [(int(c.get("min", "0")), int(c.get("max", "0")), int(c.get("style", "0")))
            for c in xml.iterfind("m:cols/m:col", NS) if c.get("style") is not None]

    def locked(r: int, c: int) -> bool:
        if (r, c) in cells:
            return xf_locked[cells[(r, c)]]
        if r in rows:
            return xf_locked[rows[r]]
        style = next((s for lo, hi, s in cols if lo <= c <= hi), 0)
        return xf_locked[style]

    return locked


def validations(path: Path) -> dict[str, Any]:
    """sqref -> the data validation on the form's sheet."""
    ws = openpyxl.load_workbook(path)[SHEET]
    return {str(dv.sqref): dv for dv in ws.data_validations.dataValidation}


def rewrite_member(data: bytes, member: str, change: Callable[[bytes], bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            body = src.read(info)
            dst.writestr(info, change(body) if info.filename == member else body)
    return out.getvalue()


def issued_rows(root: Path) -> list[Any]:
    engine = sa.create_engine(f"sqlite:///{root / 'state' / 'ledger.sqlite'}")
    try:
        with engine.connect() as c:
            return list(c.execute(sa.select(ledger_tables.issued)))
    finally:
        engine.dispose()


def template_versions(root: Path) -> list[str]:
    engine = sa.create_engine(f"sqlite:///{root / 'state' / 'ledger.sqlite'}")
    try:
        with engine.connect() as c:
            return [r.version for r in c.execute(sa.select(ledger_tables.template_versions))]
    finally:
        engine.dispose()


# -- one full round, issued once for the module ----------------------------------------------------------------
@dataclass(frozen=True)
class Round:
    root: Path
    stdout: str
    public: dict[str, str]  # code -> name of every active public agency
    supervisor: dict[str, str]  # code -> supervising agency's name
    version: str


@pytest.fixture(scope="module")
def issued(tmp_path_factory: pytest.TempPathFactory) -> Round:
    root = tmp_path_factory.mktemp("issue") / "ws"
    init_workspace(root)
    stdout = issue(root)
    ctx = Context.open(root)
    try:
        public = {a.code: a.name for a in ctx.registry.in_scope("public")}
        sup = {code: ctx.registry.supervisor_of(code).name for code in public}
        version = ctx.collection("covid19").version
    finally:
        ctx.close()
    return Round(root, stdout, public, sup, version)


@pytest.fixture(scope="module")
def converted(issued: Round, tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[tuple[Path, Path]]]:
    """Two stamped workbooks opened and saved by LibreOffice, as xlsx and as ods: one soffice run per format."""
    sources = [issued_file(issued.root, "010000"), issued_file(issued.root, "020001")]
    out = tmp_path_factory.mktemp("lo")
    return {fmt: list(zip(sources, convert(sources, fmt, out / fmt), strict=True)) for fmt in ("xlsx", "ods")}


def test_one_workbook_per_public_agency_named_by_code_and_name(issued: Round) -> None:
    files = sorted(p.name for p in issued_dir(issued.root).iterdir())
    assert len(issued.public) == 142
    assert files == sorted(f"{code}-{name}.xlsx" for code, name in issued.public.items())
    assert re.search(r"合計\s*│\s*142", issued.stdout)
    assert not [p for p in (issued.root / "outbox").rglob("*") if p.name.endswith(".tmp")]
    rows = issued_rows(issued.root)
    assert sorted(r.agency for r in rows) == sorted(issued.public)
    assert {r.version for r in rows} == {issued.version}


@pytest.mark.parametrize("code", ["010000", "020001", "050003"])
def test_identity_cells_show_the_agency_period_and_deadline(issued: Round, code: str) -> None:
    wb = openpyxl.load_workbook(issued_file(issued.root, code))
    ws = wb[SHEET]
    agency = ws[named_cell(wb, "COLLECT_AGENCY_CODE")]
    assert agency.value == code and agency.data_type == "s"  # text, so the leading zero stays
    assert ws[named_cell(wb, "COLLECT_AGENCY_NAME")].value == issued.public[code]
    assert ws[named_cell(wb, "COLLECT_SUPERVISOR")].value == issued.supervisor[code]
    assert ws[named_cell(wb, "COLLECT_PERIOD")].value == "115年10月"
    deadline = ws[named_cell(wb, "COLLECT_DEADLINE")]
    assert deadline.is_date and deadline.value == datetime(2026, 11, 10)
    assert deadline.number_format == DATE_FORMAT  # shown as 115/11/10


def test_stamp_is_in_properties_and_very_hidden_sheet(issued: Round) -> None:
    code = "020001"
    wb = openpyxl.load_workbook(issued_file(issued.root, code))
    props = {p.name: p for p in wb.custom_doc_props}  # type: ignore[attr-defined]  # the raw properties, as saved
    expected = {"collection": "covid19", "round": ROUND, "agency": code, "version": issued.version}
    for field, value in expected.items():
        assert props[f"collect.{field}"].value == value
    for field in STAMP_FIELDS:
        assert type(props[f"collect.{field}"].value) is str  # LibreOffice turns numbers into floats
    sheet = wb[STAMP_SHEET]
    assert sheet.sheet_state == "veryHidden"
    assert sheet.protection.sheet
    in_sheet = {sheet.cell(r, 1).value: sheet.cell(r, 2).value for r in range(1, len(STAMP_FIELDS) + 1)}
    assert in_sheet == {f: props[f"collect.{f}"].value for f in STAMP_FIELDS}
    assert sheet.cell(3, 2).data_type == "s"
    stamp, source = stamp_of(issued_file(issued.root, code))
    assert source == "properties" and verify(stamp, SECRET.encode())
    assert stamp.token == {r.agency: r.token for r in issued_rows(issued.root)}[code]


def test_every_agency_has_its_own_verifying_token(issued: Round) -> None:
    stamps = [stamp_of(p)[0] for p in sorted(issued_dir(issued.root).iterdir())[:20]]
    assert len({s.token for s in stamps}) == len(stamps)
    assert all(verify(s, SECRET.encode()) for s in stamps)
    assert not any(verify(s, b"another workspace's key") for s in stamps)


@pytest.mark.parametrize("field", STAMP_FIELDS)
def test_token_fails_once_one_byte_of_the_stamp_changes(issued: Round, field: str) -> None:
    data = issued_file(issued.root, "010000").read_bytes()
    stamp, _ = stamp_of(issued_file(issued.root, "010000"))
    old = getattr(stamp, field)
    new = old[:-1] + ("0" if old[-1] != "0" else "1")
    assert not verify(replace(stamp, **{field: new}), SECRET.encode())

    # the same change made inside the file, to the properties and (separately) to the hidden sheet
    def in_props(xml: bytes) -> bytes:
        return xml.replace(old.encode(), new.encode(), 1)

    tampered = read_stamp(read_book(rewrite_member(data, "docProps/custom.xml", in_props)))
    assert tampered is not None and getattr(tampered.stamp, field) == new
    assert not verify(tampered.stamp, SECRET.encode())
    without_props = read_book(rewrite_member(data, "docProps/custom.xml", lambda x: x.replace(b"collect.", b"other.")))
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        part = sheet_part(zf, STAMP_SHEET)
    hidden = read_book(rewrite_member(
        rewrite_member(data, "docProps/custom.xml", lambda x: x.replace(b"collect.", b"other.")), part,
        lambda x: x.replace(f">{old}<".encode(), f">{new}<".encode(), 1)))
    intact = read_stamp(without_props)
    assert intact is not None and intact.source == "sheet" and verify(intact.stamp, SECRET.encode())
    found = read_stamp(hidden)
    assert found is not None and found.source == "sheet" and getattr(found.stamp, field) == new
    assert not verify(found.stamp, SECRET.encode())


def test_only_the_input_cells_of_the_data_range_are_unlocked(issued: Round) -> None:
    path = issued_file(issued.root, "010000")
    locked = effective_locks(path)
    inputs = {openpyxl.utils.column_index_from_string(c) for c in INPUT_LETTERS}
    wrong = [f"{get_column_letter(c)}{r}" for r in range(1, LAST + 5) for c in range(1, 14)
             if locked(r, c) == (FIRST <= r <= LAST and c in inputs)]
    assert wrong == []
    wb = openpyxl.load_workbook(path)
    ws = wb[SHEET]
    assert ws.protection.sheet
    assert wb.security is not None and wb.security.lockStructure
    assert str(ws["H7"].value).startswith("=IF(") and ws["H7"].protection.locked
    assert ws["A6"].value == "項次" and ws["A6"].protection.locked
    assert not ws["J206"].protection.locked


def test_data_validations_guide_every_input_column(issued: Round) -> None:
    dvs = validations(issued_file(issued.root, "010000"))
    rng = f"{FIRST}:{{}}{LAST}"
    assert set(dvs) == {f"{c}{rng.format(c)}" for c in INPUT_LETTERS}  # none on the formula column H
    category = dvs[f"C{rng.format('C')}"]
    assert (category.type, category.formula1) == ("list", '"防疫,紓困,振興"')
    source = dvs[f"D{rng.format('D')}"]
    assert (source.type, source.formula1) == ("list", '"市庫,中央補助,第二預備金,特別預算"')
    for letter in "EFG":  # 核定經費, 已動支數, 實支數: whole NT$ >= 0
        dv = dvs[f"{letter}{rng.format(letter)}"]
        assert (dv.type, dv.operator, dv.formula1) == ("whole", "between", "0")
        assert int(dv.formula2) >= 10**12
    approved_on = dvs[f"I{rng.format('I')}"]
    assert (approved_on.type, approved_on.operator) == ("date", "between")
    assert int(approved_on.formula1) == serial(date(2020, 1, 1))
    assert int(approved_on.formula2) == serial(date(2026, 10, 31))
    assert "115/10/31" in approved_on.prompt
    assert (dvs[f"B{rng.format('B')}"].type, dvs[f"B{rng.format('B')}"].formula1) == ("textLength", "100")
    assert (dvs[f"J{rng.format('J')}"].type, dvs[f"J{rng.format('J')}"].formula1) == ("textLength", "200")
    for dv in dvs.values():
        assert dv.showErrorMessage and dv.errorStyle == "stop" and dv.allow_blank
        assert len(dv.prompt or "") <= 255 and len(dv.error or "") <= 225  # Excel's limits ([MS-XLS] DValStrings)
        assert len(dv.promptTitle or "") <= 32 and len(dv.errorTitle or "") <= 32


@pytest.mark.parametrize(("round_id", "last_day"), [("2028-02", date(2028, 2, 29)), ("2027-02", date(2027, 2, 28))])
def test_date_bound_is_the_end_of_the_rounds_period(issued: Round, round_id: str, last_day: date) -> None:
    ctx = Context.open(issued.root)
    try:
        book = RoundBook(ctx.collection("covid19"), round_id, DEADLINE)
        data = book.render(AgencyCopy("010000", "臺北市政府秘書處", "臺北市政府秘書處"),
                           make_stamp(SECRET.encode(), "covid19", round_id, "010000", "v"))
    finally:
        ctx.close()
    assert round_end(round_id) == last_day
    ws = openpyxl.load_workbook(io.BytesIO(data))[SHEET]
    dv = next(d for d in ws.data_validations.dataValidation if str(d.sqref).startswith("I"))
    assert int(dv.formula2) == serial(last_day)


def test_fill_cells_fills_empty_cells_however_openpyxl_wrote_them() -> None:
    # xml.etree writes <c .../>, lxml writes <c ...></c>; stamping must work with either installed
    xml = b'<row r="2"><c r="A2" s="2" t="inlineStr"><is><t>x</t></is></c><c r="B2" s="3"/><c r="C2" s="3" t="n"></c>'
    out = fill_cells(xml + b"</row>", {"B2": "010000", "C2": 12})
    assert b'<c r="B2" s="3" t="inlineStr"><is><t xml:space="preserve">010000</t></is></c>' in out
    assert b'<c r="C2" s="3"><v>12</v></c>' in out
    with pytest.raises(ValueError, match="D2"):
        fill_cells(xml, {"D2": 1})


# -- LibreOffice -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["xlsx", "ods"])
def test_stamp_survives_a_libreoffice_round_trip(converted: dict[str, list[tuple[Path, Path]]], fmt: str) -> None:
    for original, saved in converted[fmt]:
        book = read_book(saved.read_bytes())
        assert book.kind == fmt
        before, _ = stamp_of(original)
        found = read_stamp(book)
        assert found is not None and found.stamp == before and verify(found.stamp, SECRET.encode())
        # the hidden sheet's copy survives too, for a tool that drops the document properties
        from_sheet = read_stamp(Book(book.kind, {}, book.sheets))
        assert from_sheet is not None and from_sheet.source == "sheet" and from_sheet.stamp == before
        stamp_sheet = book.sheet(STAMP_SHEET)
        assert stamp_sheet is not None and stamp_sheet.visible != "visible"
        form = book.sheet(SHEET)
        assert form is not None and form.cell("B2") == before.agency  # still text with its leading zero


# -- a long choice list ----------------------------------------------------------------------------------------
LONG_CHOICES = [f"臺北市第{i:02d}行政區辦公室" for i in range(1, 31)]
LONG_RULES = f'''"""A test collection with a choice list too long for an in-cell list formula."""

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from collect.forms.spec import Meta, column

META = Meta(title="長清單測試", scope="public", period="month", max_rows=20)


class LongList(pa.DataFrameModel):
    office: Series[str] = column("辦公室", kind="choice", isin={LONG_CHOICES!r})
    kind: Series[str] = column("種類", kind="choice", isin=["甲,乙", "丙"])
    short: Series[str] = column("等級", kind="choice", isin=["高", "低"])
    amount: Series[pd.Int64Dtype] = column("金額", kind="whole", money=True, ge=0)
'''


def test_a_long_choice_list_goes_to_a_hidden_lists_sheet(workspace: Path) -> None:
    assert len(",".join(LONG_CHOICES)) > 255
    (workspace / "rules" / "longlist.py").write_text(LONG_RULES, encoding="utf-8")
    made = run_cli("template", "new", "longlist", cwd=workspace)
    assert made.returncode == 0, made.stderr
    checked = run_cli("check", "longlist", cwd=workspace)
    assert checked.returncode == 0, checked.stderr
    issue(workspace, "--agency", "010000", collection="longlist")
    wb = openpyxl.load_workbook(issued_file(workspace, "010000", collection="longlist"))
    lists = wb["_lists"]
    assert lists.sheet_state == "hidden" and lists.protection.sheet
    dvs = {str(d.sqref).split(":")[0].rstrip("0123456789"): d for d in wb[SHEET].data_validations.dataValidation}
    assert dvs["A"].formula1 == f"'_lists'!$A$1:$A${len(LONG_CHOICES)}"
    assert [lists.cell(i, 1).value for i in range(1, len(LONG_CHOICES) + 1)] == LONG_CHOICES
    assert dvs["B"].formula1 == "'_lists'!$B$1:$B$2"  # a choice holding a comma cannot go in-cell either
    assert [lists.cell(1, 2).value, lists.cell(2, 2).value] == ["甲,乙", "丙"]
    assert dvs["C"].formula1 == '"高,低"'
    assert all(len(d.formula1) <= 255 for d in dvs.values())
    # The 30 choices are listed in the prompt and the error, each cut to what Excel opens (else it calls the file
    # corrupt and drops the validation): 255 characters of prompt, 225 of error.
    assert len(dvs["A"].prompt) == 255 and dvs["A"].prompt.endswith("…") and "臺北市第01行政區辦公室" in dvs["A"].prompt
    assert len(dvs["A"].error) == 225 and dvs["A"].error.startswith("「辦公室」只能選擇：臺北市第01行政區辦公室")
    stamp, _ = stamp_of(issued_file(workspace, "010000", collection="longlist"))
    assert stamp.collection == "longlist" and verify(stamp, SECRET.encode())


def test_a_sheet_name_excel_cannot_open_is_made_one_it_can(workspace: Path) -> None:
    long_name = "臺北市政府各機關/學校經費動支及執行情形填報表（含附屬單位）[第一類]"  # 35 characters, "/" and "[]"
    rules = LONG_RULES.replace('Meta(title="長清單測試",', f'Meta(title="長清單測試", sheet={long_name!r},')
    (workspace / "rules" / "longsheet.py").write_text(rules, encoding="utf-8")
    made = run_cli("template", "new", "longsheet", cwd=workspace)
    assert made.returncode == 0, made.stderr
    title = openpyxl.load_workbook(workspace / "templates_xlsx" / "longsheet.xlsx").worksheets[0].title
    assert title == "臺北市政府各機關學校經費動支及執行情形填報表（含附屬單位）第一" and len(title) == 31
    assert run_cli("check", "longsheet", cwd=workspace).returncode == 0  # and a dry round on that sheet works


# -- a template restyled in Excel --------------------------------------------------------------------------------
def test_locks_hold_when_the_template_unlocks_whole_columns_and_rows(workspace: Path) -> None:
    """Staff unlock whole columns (column style) and re-lock single cells; Excel then writes those cells as
    empty <c s="0"/>, which openpyxl drops on saving, so the column style would unlock them."""
    template = workspace / "templates_xlsx" / "covid19.xlsx"
    wb = openpyxl.load_workbook(template)
    ws = wb[SHEET]
    for letter in "ABCDEFGHIJKL":
        ws.column_dimensions[letter].protection = Protection(locked=False)
    ws.row_dimensions[LAST + 2].protection = Protection(locked=False)
    buf = io.BytesIO()
    wb.save(buf)
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as zf:
        part = sheet_part(zf, SHEET)
    row5 = '<row r="5">' + "".join(f'<c r="{c}5" s="0"/>' for c in "ABCDEFGHIJKL") + "</row>"
    template.write_bytes(rewrite_member(buf.getvalue(), part, lambda x: re.sub(
        rb'(<row r="6")', row5.encode() + rb"\1", x, count=1)))
    before = effective_locks(template)
    assert before(5, 1) and not before(LAST + 5, 1)  # what Excel shows staff in their template
    issue(workspace, "--agency", "010000")
    locked = effective_locks(issued_file(workspace, "010000"))
    inputs = {openpyxl.utils.column_index_from_string(c) for c in INPUT_LETTERS}
    wrong = [f"{get_column_letter(c)}{r}" for r in range(1, LAST + 5) for c in range(1, 14)
             if locked(r, c) == (FIRST <= r <= LAST and c in inputs)]
    assert wrong == []


# -- issuing again, changed templates ----------------------------------------------------------------------------
def test_reissuing_gives_the_same_stamps_and_a_changed_template_a_new_version(workspace: Path) -> None:
    agencies = ("--agency", "010000", "--agency", "020001")
    first = issue(workspace, *agencies)
    assert "(new)" in first
    tokens = {c: stamp_of(issued_file(workspace, c))[0] for c in ("010000", "020001")}
    again = issue(workspace, *agencies)
    assert "(new)" not in again
    assert {c: stamp_of(issued_file(workspace, c))[0] for c in tokens} == tokens
    assert sorted(r.agency for r in issued_rows(workspace)) == ["010000", "020001"]
    assert len(template_versions(workspace)) == 1

    template = workspace / "templates_xlsx" / "covid19.xlsx"
    wb = openpyxl.load_workbook(template)
    wb[SHEET]["D4"] = "請於淡黃色儲存格填寫；本月起備註欄請註明計畫編號。"
    wb.save(template)
    changed = issue(workspace, *agencies)
    assert "(new)" in changed
    now = {c: stamp_of(issued_file(workspace, c))[0] for c in tokens}
    assert all(now[c].version != tokens[c].version and now[c].token != tokens[c].token for c in tokens)
    assert all(verify(s, SECRET.encode()) for s in now.values())
    assert sorted(template_versions(workspace)) == sorted({tokens["010000"].version, now["010000"].version})
    rows = issued_rows(workspace)
    assert len(rows) == 2 and {r.version for r in rows} == {now["010000"].version}
    assert openpyxl.load_workbook(issued_file(workspace, "010000"))[SHEET]["D4"].value.startswith("請於淡黃色")
    assert not [p for p in (workspace / "outbox").rglob("*") if p.name.endswith(".tmp")]


# -- prefill ------------------------------------------------------------------------------------------------------
def test_prefill_file_puts_rows_into_the_right_cells(workspace: Path) -> None:
    prefill = workspace / "prefill.csv"
    with prefill.open("w", encoding="utf-8-sig", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["機關代碼", "計畫名稱", "類別", "經費來源", "核定經費", "核定日期", "備註"])
        w.writerow(["010000", "防疫物資採購", "防疫", "市庫", "1,200,000", "115/03/05", ""])
        w.writerow(["010000", "紓困貸款利息補貼", "紓困", "中央補助", "３００００", "2026-04-01", "分期撥付"])
        w.writerow(["020001", "振興券發放", "振興", "特別預算", "50000", "114年12月1日", ""])
    issue(workspace, "--agency", "010000", "--agency", "020001", "--agency", "020002", "--prefill", str(prefill))
    ws = openpyxl.load_workbook(issued_file(workspace, "010000"))[SHEET]
    assert [ws[f"{c}7"].value for c in "BCDE"] == ["防疫物資採購", "防疫", "市庫", 1_200_000]
    assert ws["I7"].value == datetime(2026, 3, 5) and ws["I7"].is_date
    assert [ws[f"{c}8"].value for c in "BCDEJ"] == ["紓困貸款利息補貼", "紓困", "中央補助", 30_000, "分期撥付"]
    assert ws["I8"].value == datetime(2026, 4, 1)
    assert ws["J7"].value is None and ws["F7"].value is None and ws["B9"].value is None
    assert str(ws["H7"].value).startswith("=IF(")  # the formula stays
    other = openpyxl.load_workbook(issued_file(workspace, "020001"))[SHEET]
    assert [other[f"{c}7"].value for c in "BCDE"] == ["振興券發放", "振興", "特別預算", 50_000]
    assert other["I7"].value == datetime(2025, 12, 1) and other["B8"].value is None
    assert openpyxl.load_workbook(issued_file(workspace, "020002"))[SHEET]["B7"].value is None


def fill_return(path: Path, out: Path, rows: list[dict[str, Any]]) -> None:
    """An agency fills its stamped workbook (in Excel; here collect.simulate) and saves it under a new name."""
    cells = {f"{letter}{FIRST + i}": value for i, values in enumerate(rows) for letter, value in values.items()}
    out.write_bytes(type_cells(path.read_bytes(), SHEET, cells))


def test_previous_rounds_accepted_rows_are_carried_over(workspace: Path) -> None:
    issue(workspace, "--agency", "010000", round_id="2026-09")
    returned = workspace / "returned-2026-09.xlsx"
    fill_return(issued_file(workspace, "010000", round_id="2026-09"), returned, [
        {"A": 1, "B": "防疫旅館", "C": "防疫", "D": "市庫", "E": 2_000_000, "F": 1_500_000, "G": 900_000,
         "I": date(2026, 2, 3), "J": "第一期"},
        {"A": 2, "B": "紓困補助", "C": "紓困", "D": "中央補助", "E": 800_000, "F": 800_000, "G": 800_000,
         "I": date(2025, 7, 1)},
    ])
    ingested = run_cli("ingest", str(returned), "--json", cwd=workspace)
    assert ingested.returncode == 0, ingested.stderr
    outcome = json.loads(ingested.stdout.strip().splitlines()[-1])
    assert outcome["verdict"] == "accepted", outcome["findings"]

    issue(workspace, "--agency", "010000", "--agency", "020001")
    ws = openpyxl.load_workbook(issued_file(workspace, "010000"))[SHEET]
    assert [ws[f"{c}7"].value for c in "BCDE"] == ["防疫旅館", "防疫", "市庫", 2_000_000]
    assert [ws[f"{c}8"].value for c in "BCDE"] == ["紓困補助", "紓困", "中央補助", 800_000]
    assert (ws["I7"].value, ws["I8"].value) == (datetime(2026, 2, 3), datetime(2025, 7, 1))
    for r in (7, 8):  # what is not carried starts empty: this month's figures, the item number, the note
        assert [ws[f"{c}{r}"].value for c in "AFGJ"] == [None] * 4
    assert ws["B9"].value is None
    # an agency without an accepted return last round starts from an empty form
    assert openpyxl.load_workbook(issued_file(workspace, "020001"))[SHEET]["B7"].value is None
