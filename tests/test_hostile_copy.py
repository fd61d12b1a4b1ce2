"""Issue 14, hostile content inside a validly stamped workbook, as far as the annotated copy goes: control characters
never reach an XML part, the copy carries only the parts collect knows under plain names, long values are cut in
it, and marking cells costs work in proportion to the sheet and the findings, not their product."""

from __future__ import annotations

import io
import random
import re
import time
import zipfile
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import openpyxl
import pytest
from ingest_util import attachments, fill, json_lines, read_mail, row, triples
from test_receive_cases import A, B, C, D, E, Env, _mutant
from test_receive_cases import env as _issued_workspace  # noqa: F401 (its module fixture, registered here)

from collect.findings import make
from collect.receive.annotate import MAX_COPY_CHARS, annotate

pytestmark = pytest.mark.xdist_group("hostile_copy")  # one worker, one issued workspace

Members = list[tuple[Any, bytes]]
_SST_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"
_SST_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings"
_COMMENTS_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.comments+xml"
_COMMENTS_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/comments"
_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"


@pytest.fixture(scope="module")
def env(request: pytest.FixtureRequest) -> Env:
    """test_receive_cases' workspace with its issued covid19 workbooks, one for this module."""
    issued: Env = request.getfixturevalue("_issued_workspace")
    issued.made.mkdir(parents=True, exist_ok=True)
    return issued


def _sheet_part(path: Path) -> str:
    """The member holding 填報表 (the first worksheet the issued workbook lists)."""
    with zipfile.ZipFile(path) as zf:
        return next(i.filename for i in zf.infolist() if i.filename.startswith("xl/worksheets/sheet"))


def _set_cell(xml: bytes, ref: str, cell: bytes) -> bytes:
    """The sheet with the cell at `ref` replaced by `cell` (raw XML), or added at the end of its row."""
    found = re.search(rb'<c r="' + ref.encode() + rb'"[^>]*?(?:/>|>.*?</c>)', xml, re.S)
    if found:
        return xml[: found.start()] + cell + xml[found.end():]
    number = re.sub(r"[A-Z]+", "", ref).encode()
    opened = re.search(rb'<row r="' + number + rb'"[^>]*>', xml)
    assert opened is not None, ref
    close = xml.index(b"</row>", opened.end())
    return xml[:close] + cell + xml[close:]


def _shared_strings(sheet: str, strings: dict[str, bytes], inline: dict[str, bytes] | None = None) -> Any:
    """A change for _mutant: each cell of `strings` made to hold that shared string (raw bytes of its <t>), each of
    `inline` that inline string, and the sharedStrings part added with its relationship and content type."""

    def change(members: Members) -> Members:
        out = []
        for name, data in members:
            if name == sheet:
                for i, ref in enumerate(strings):
                    data = _set_cell(data, ref, b'<c r="%s" t="s"><v>%d</v></c>' % (ref.encode(), i))
                for ref, text in (inline or {}).items():
                    cell = b'<c r="%s" t="inlineStr"><is><t>%s</t></is></c>' % (ref.encode(), text)
                    data = _set_cell(data, ref, cell)
            elif name == "xl/_rels/workbook.xml.rels":
                rel = f'<Relationship Id="rIdSst" Type="{_SST_REL}" Target="sharedStrings.xml"/>'.encode()
                data = data.replace(b"</Relationships>", rel + b"</Relationships>")
            elif name == "[Content_Types].xml":
                data = data.replace(b"</Types>", f'<Override PartName="/xl/sharedStrings.xml" ContentType='
                                    f'"{_SST_TYPE}"/></Types>'.encode())
            out.append((name, data))
        items = b"".join(b"<si><t>%s</t></si>" % text for text in strings.values())
        sst = b'<?xml version="1.0" encoding="UTF-8"?><sst xmlns="%s" count="%d" uniqueCount="%d">%s</sst>' % (
            _MAIN.encode(), len(strings), len(strings), items)
        return [*out, ("xl/sharedStrings.xml", sst)]

    return change


def _their_comment(sheet: str, ref: str, text: bytes) -> Any:
    """A change for _mutant: the agency's own comment (raw bytes of its text) on `ref`."""

    def change(members: Members) -> Members:
        folder, _, base = sheet.rpartition("/")
        rels = f"{folder}/_rels/{base}.rels"
        rel = f'<Relationship Id="rIdTheirs" Type="{_COMMENTS_REL}" Target="../comments9.xml"/>'.encode()
        out, has_rels = [], False
        for name, data in members:
            if name == rels:
                data, has_rels = data.replace(b"</Relationships>", rel + b"</Relationships>"), True
            elif name == "[Content_Types].xml":
                data = data.replace(b"</Types>", f'<Override PartName="/xl/comments9.xml" ContentType='
                                    f'"{_COMMENTS_TYPE}"/></Types>'.encode())
            out.append((name, data))
        if not has_rels:
            out.append((rels, b'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.'
                              b'openxmlformats.org/package/2006/relationships">' + rel + b"</Relationships>"))
        comments = (b'<?xml version="1.0" encoding="UTF-8"?><comments xmlns="%s"><authors><author>agency</author>'
                    b'</authors><commentList><comment ref="%s" authorId="0"><text><t>%s</t></text></comment>'
                    b"</commentList></comments>") % (_MAIN.encode(), ref.encode(), text)
        return [*out, ("xl/comments9.xml", comments)]

    return change


def _extra_sheet(name: bytes) -> Any:
    """A change for _mutant: one more (empty) worksheet, called `name` (raw bytes), after the others."""
    rel_type = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet"
    sheet_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"

    def change(members: Members) -> Members:
        out = []
        for part, data in members:
            if part == "xl/workbook.xml":
                data = data.replace(b"</sheets>", b'<sheet xmlns:r="http://schemas.openxmlformats.org/officeDocument/'
                                    b'2006/relationships" name="' + name + b'" sheetId="9" r:id="rIdExtra"/></sheets>')
            elif part == "xl/_rels/workbook.xml.rels":
                rel = f'<Relationship Id="rIdExtra" Type="{rel_type}" Target="worksheets/sheet9.xml"/>'.encode()
                data = data.replace(b"</Relationships>", rel + b"</Relationships>")
            elif part == "[Content_Types].xml":
                data = data.replace(b"</Types>", f'<Override PartName="/xl/worksheets/sheet9.xml" ContentType='
                                    f'"{sheet_type}"/></Types>'.encode())
            out.append((part, data))
        return [*out, ("xl/worksheets/sheet9.xml", f'<worksheet xmlns="{_MAIN}"><sheetData/></worksheet>'.encode())]

    return change


def _then(*changes: Any) -> Any:
    def change(members: Members) -> Members:
        for one in changes:
            members = one(members)
        return members
    return change


def _one(env: Env, path: Path) -> tuple[dict[str, Any], int, Path]:
    """`collect ingest --json FILE`: its one JSON line, the line's size in bytes, and the annotated copy."""
    done = env.cli("ingest", "--json", str(path))
    [line] = json_lines(done.stdout)
    sub = env.ctx.ledger.submission(line["receipt"])
    assert sub is not None and sub.annotated_path is not None, line
    return line, len(done.stdout.encode()), Path(sub.annotated_path)


_NOT_XML_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _every_part_parses(copy: Path | bytes) -> dict[str, bytes]:
    """Each XML part of the copy parses as XML and holds no character XML forbids; the parts by name."""
    with zipfile.ZipFile(io.BytesIO(copy) if isinstance(copy, bytes) else copy) as zf:
        parts = {name: zf.read(name) for name in zf.namelist()}
    for name, body in parts.items():
        if name.endswith((".xml", ".rels", ".vml")):
            ElementTree.fromstring(body)  # raises on a control character, raw or as a reference
            assert not _NOT_XML_CHARS.search(body.decode()), name
            assert not re.search(rb"&#x?0*(?:[0-8]|1[124-9]|2[0-9]|3[01]|[bcef]|1[0-9a-f]);", body, re.I), name
    return parts


def _with_control_characters(env: Env) -> Path:
    base = fill(env.issued[B], env.made / "control-base.xlsx", [
        row("口罩採購", item=1, approved="一千"), row("快篩試劑", item=2), row("酒精", item=3)])
    sheet = _sheet_part(base)
    return _mutant(base, env.made / "control.xlsx", _then(
        _shared_strings(sheet, {"J8": "備註\x00第二\x1b行".encode()}, inline={"B7": "口罩\x00採購\x1b".encode()}),
        _their_comment(sheet, "E7", "請\x1b確認\x00".encode()), _extra_sheet("備\x1b註".encode())))


def test_control_characters_in_the_agencys_text_are_shown_not_copied(env: Env) -> None:
    """NUL and ESC as raw bytes in an inline string (B7), a shared string (J8), the agency's own comment on the
    failing cell (E7) and a sheet's name: the verdict is the same as without them, the copy opens, every part of it
    is XML, and each character shows as its symbol (␀, ␛). (As character references, &#0; makes the file unreadable:
    the reader's verdict, collect.receive.read.)"""
    line, size, copy = _one(env, _with_control_characters(env))
    assert (line["verdict"], triples(line["findings"])) == ("rejected", [("value.not_number", "E7", "error")])
    _every_part_parses(copy)
    wb = openpyxl.load_workbook(copy)
    assert wb.sheetnames == ["檢核結果", "填報表", "_collect", "備␛註"]
    ws = wb["填報表"]
    assert (ws["B7"].value, ws["J8"].value) == ("口罩␀採購␛", "備註␀第二␛行")
    assert "#,##0" in ws["E8"].number_format  # the agency's workbook itself, not a copy of its values
    assert ws["E7"].comment is not None
    assert "「核定經費」應為數字" in ws["E7"].comment.text and "請␛確認␀" in ws["E7"].comment.text
    assert size < 2_000


def _raw_name(name: str) -> zipfile.ZipInfo:
    """A member whose stored name is `name` exactly (zipfile cuts a name at NUL when it makes a ZipInfo)."""
    info = zipfile.ZipInfo("placeholder")
    info.filename = name
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


HOSTILE_NAMES = ["../../x.xml", "/abs/x.xml", "C:\\x.xml", "xl/../../x.xml", "evil/payload.bin", "x" * 400 + ".xml",
                 "xl/./worksheets/sheet1.xml", "xl//styles.xml"]


def test_unsafe_and_unknown_member_names_never_reach_the_copy(env: Env) -> None:
    """Members under traversal, absolute, drive, NUL and very long names, and members no relationship names (one
    even with a content type of its own), are left out of the copy; the verdict is the one the workbook's content
    calls for."""
    base = fill(env.issued[C], env.made / "names-base.xlsx", [row("口罩採購", item=1, approved="一千")])

    def hostile(members: Members) -> Members:
        extra: Members = [(name, b"<x/>") for name in HOSTILE_NAMES]
        extra.append((_raw_name("xl/evil\x00.xml"), b"<x/>"))
        return [(n, d.replace(b"</Types>", b'<Override PartName="/evil/payload.bin" ContentType="application/'
                                            b'octet-stream"/></Types>') if n == "[Content_Types].xml" else d)
                for n, d in members] + extra

    path = _mutant(base, env.made / "names.xlsx", hostile)
    line, _, copy = _one(env, path)
    assert (line["verdict"], triples(line["findings"])) == ("rejected", [("value.not_number", "E7", "error")])
    parts = _every_part_parses(copy)
    with zipfile.ZipFile(base) as zf:
        known = set(zf.namelist())
    assert known <= set(parts)  # every part the workbook uses, the stamp's custom properties among them
    assert set(parts) - known == {"xl/worksheets/sheet3.xml", "xl/worksheets/_rels/sheet1.xml.rels",
                                  "xl/comments1.xml", "xl/drawings/vmlDrawing1.vml"}  # 檢核結果 and our comment
    assert not {n for n in parts if ".." in n or n.startswith("/") or "\\" in n or "evil" in n or len(n) > 100}
    assert b"evil" not in parts["[Content_Types].xml"]
    assert openpyxl.load_workbook(copy)["填報表"]["E7"].comment is not None


def _long_text(seed: int, chars: int = 1_000_000) -> str:
    """`chars` characters of CJK text that compress like prose typed again and again (a 500-character passage)."""
    rng = random.Random(seed)
    passage = "".join(chr(rng.randrange(0x4E00, 0x4E00 + 2_000)) for _ in range(500))
    return (passage * (chars // 500 + 1))[:chars]


def _with_long_values(env: Env) -> tuple[Path, dict[str, str]]:
    """20 cells of 1,000,000 characters, L7:L26, in shared strings; the file and the texts by cell."""
    base = fill(env.issued[D], env.made / "long-base.xlsx", [row("口罩採購", item=1, approved="一千")])
    texts = {f"L{r}": _long_text(r) for r in range(7, 27)}
    change = _shared_strings(_sheet_part(base), {k: v.encode() for k, v in texts.items()})
    return _mutant(base, env.made / "long.xlsx", change), texts


def test_long_values_are_cut_in_the_copy_and_the_answers_stay_small(env: Env) -> None:
    """20 cells of 1,000,000 characters outside the table (a 0.7 MB file that made a 39.7 MB copy, a 136 MB receipt
    and a 40 MB JSON line): each is answered at its cell with its value cut, the copy shows each cut to
    MAX_COPY_CHARS with its length, and the copy, the receipt and the JSON line stay small."""
    path, texts = _with_long_values(env)
    assert path.stat().st_size < 1_500_000
    line, size, copy = _one(env, path)
    assert line["verdict"] == "rejected"
    assert triples(line["findings"]) == [("table.outside", f"L{r}", "error") for r in range(7, 27)] + [
        ("value.not_number", "E7", "error")]
    assert size < 40_000  # 20 values of 200 characters, each in its message too
    assert copy.stat().st_size < 2_000_000
    assert sum(map(len, _every_part_parses(copy).values())) < 1_000_000  # 61 MB of XML before (0.5 MB zipped)
    ws = openpyxl.load_workbook(copy)["填報表"]
    for ref, text in texts.items():
        assert ws[ref].value == f"{text[:MAX_COPY_CHARS]}…（共 1,000,000 字）"
    sub = env.ctx.ledger.submission(line["receipt"])
    assert sub is not None and sub.receipt_path is not None
    receipt = Path(sub.receipt_path)
    assert receipt.stat().st_size < 3_000_000 < env.ctx.ws.settings.max_attachment_bytes
    assert list(attachments(read_mail(receipt))) != []  # the copy goes with it


def _rows_xml(first: int, count: int, step: int) -> bytes:
    """Data rows from `first`, one every `step` rows, each with a 類別 no list holds (its only error)."""
    return b"".join(
        b'<row r="%d"><c r="A%d"><v>%d</v></c><c r="B%d" t="inlineStr"><is><t>name%d</t></is></c>'
        b'<c r="C%d" t="inlineStr"><is><t>bad</t></is></c><c r="D%d" t="inlineStr"><is><t>&#24066;&#24235;</t></is>'
        b'</c><c r="E%d"><v>1000</v></c><c r="F%d"><v>10</v></c><c r="G%d"><v>5</v></c><c r="I%d"><v>46086</v></c>'
        b"</row>" % (r, r, i, r, i, r, r, r, r, r, r)
        for i, r in enumerate(range(first, first + count * step, step), start=1))


def _rows_instead(sheet: str, rows_xml: bytes) -> Any:
    """A change for _mutant: the data area of `sheet` (row 7 on) replaced by `rows_xml`."""

    def change(members: Members) -> Members:
        out = []
        for name, data in members:
            if name == sheet:
                head, _, rest = data.partition(b'<row r="7"')
                data = head + rows_xml + rest[rest.index(b"</sheetData>"):]
            out.append((name, data))
        return out

    return change


def test_twenty_thousand_rows_with_an_error_each_are_answered_in_proportion(env: Env) -> None:
    """20,000 rows (the form takes 200), each with a wrong 類別: the too-many-rows error, 100 listed cells and the
    rest counted; the copy marks and comments those 100 cells only and is about the size of the file."""
    base = env.issued[E]
    path = _mutant(base, env.made / "rows.xlsx", _rows_instead(_sheet_part(base), _rows_xml(7, 20_000, 1)))
    line, size, copy = _one(env, path)
    assert line["verdict"] == "rejected"
    assert triples(line["findings"]) == [("table.too_many_rows", None, "error")] + [
        ("value.choice", f"C{r}", "error") for r in range(7, 107)] + [("column.more", None, "error")]
    assert size < 60_000
    assert copy.stat().st_size < 2 * path.stat().st_size
    wb = openpyxl.load_workbook(copy)
    commented = [c.coordinate for r in wb["填報表"].iter_rows() for c in r if c.comment is not None]
    assert commented == [f"C{r}" for r in range(7, 107)]
    assert wb["檢核結果"].max_row < 120


def test_marking_costs_one_pass_over_the_sheet_not_one_per_finding(env: Env) -> None:
    """3,000 findings on rows the sheet does not hold (a 100,000-row sheet with every other row absent): each
    absent row was searched for to the sheet's end (45 s on the development machine); the rows are now indexed
    once (0.23 s). The bound is generous for a loaded CI machine; every marked cell is in the copy."""
    base = env.issued[E]
    path = _mutant(base, env.made / "sparse.xlsx", _rows_instead(_sheet_part(base), _rows_xml(8, 100_000, 2)))
    data = path.read_bytes()
    marks = [make("value.required", sheet="填報表", cell=f"B{r}", column="計畫名稱") for r in range(7, 6_007, 2)]
    started = time.perf_counter()
    copy = annotate(data, "xlsx", marks, title="t")
    assert time.perf_counter() - started < 10
    with zipfile.ZipFile(io.BytesIO(copy)) as zf:
        xml = zf.read(_sheet_part(path))
    assert len(re.findall(rb'<c r="B(\d+)" s="\d+"/>', xml)) == 3_000
    assert len(copy) < 2 * len(data)


def test_a_long_number_or_formula_result_is_cut_as_text(env: Env) -> None:
    """Outside the table, a number of 40,000 digits (L7) and a formula's saved text result of 40,000 characters
    (L8): the copy holds each as text, cut, and the formula stays."""
    base = fill(env.issued[D], env.made / "long-number-base.xlsx", [row("口罩採購", item=1, approved="一千")])
    sheet = _sheet_part(base)

    def change(members: Members) -> Members:
        cells = {"L7": b'<c r="L7"><v>' + b"9" * 40_000 + b"</v></c>",
                 "L8": b'<c r="L8" t="str"><f>REPT("a",40000)</f><v>' + b"a" * 40_000 + b"</v></c>"}
        out = []
        for name, data in members:
            if name == sheet:
                for ref, cell in cells.items():
                    data = _set_cell(data, ref, cell)
            out.append((name, data))
        return out

    line, size, copy = _one(env, _mutant(base, env.made / "long-number.xlsx", change))
    assert line["verdict"] == "rejected"
    assert triples(line["findings"]) == [("table.outside", "L7", "error"), ("table.outside", "L8", "error"),
                                         ("value.not_number", "E7", "error")]
    assert size < 2_000
    _every_part_parses(copy)
    ws = openpyxl.load_workbook(copy)["填報表"]
    assert (ws["L7"].value, ws["L7"].data_type) == ("9" * MAX_COPY_CHARS + "…（共 40,000 字）", "s")
    assert ws["L8"].value == '=REPT("a",40000)'
    saved = openpyxl.load_workbook(copy, data_only=True)["填報表"]["L8"].value
    assert saved == "a" * MAX_COPY_CHARS + "…（共 40,000 字）"


def _merged(sheet: str, count: int) -> Any:
    """A change for _mutant: `count` merged ranges L1:M1, L2:M2 ... beside the table."""

    def change(members: Members) -> Members:
        merges = b"".join(b'<mergeCell ref="L%d:M%d"/>' % (r, r) for r in range(1, count + 1))
        out = []
        for name, data in members:
            if name == sheet and b"</mergeCells>" in data:
                data = data.replace(b"</mergeCells>", merges + b"</mergeCells>", 1)
            elif name == sheet:
                at = data.index(b"</sheetData>") + len(b"</sheetData>")
                data = data[:at] + b"<mergeCells>" + merges + b"</mergeCells>" + data[at:]
            out.append((name, data))
        return out

    return change


def test_marking_among_many_merged_ranges_costs_one_pass_over_them(env: Env) -> None:
    """200,000 merged ranges beside the table (a 1 MB file): each marked cell looked at every range (14 s for
    1,800 marks on the development machine, 1.1 s now). Through the CLI the verdict is exact; annotated directly,
    1,800 marks (300 of them on the merged-away half of a range, which mark its first cell) stay in a generous
    bound."""
    base = fill(env.issued[A], env.made / "merged-base.xlsx", [row("口罩採購", item=1, approved="一千")])
    path = _mutant(base, env.made / "merged.xlsx", _merged(_sheet_part(base), 200_000))
    line, _, copy = _one(env, path)
    assert (line["verdict"], triples(line["findings"])) == ("rejected", [("value.not_number", "E7", "error")])
    with zipfile.ZipFile(copy) as zf:  # (openpyxl takes 20 s to open 200,000 merged ranges)
        assert b'<comment ref="E7"' in zf.read("xl/comments1.xml")
    marks = [make("value.required", sheet="填報表", cell=f"{c}{r}", column="計畫名稱")
             for r in range(7, 207) for c in "BCDEFGIJ"][:1_500]
    marks += [make("table.outside", sheet="填報表", cell=f"M{r}", value="x") for r in range(1, 301)]
    started = time.perf_counter()
    marked = annotate(path.read_bytes(), "xlsx", marks, title="t")
    assert time.perf_counter() - started < 10
    with zipfile.ZipFile(io.BytesIO(marked)) as zf:
        comments = zf.read("xl/comments1.xml")
    assert re.findall(rb'<comment ref="([A-Z]+)(?:[0-9]+)"', comments).count(b"L") == 300


@pytest.mark.parametrize(("kind", "fast"), [("xlsx", False), ("xls", True)])
def test_the_other_ways_of_copying_show_control_characters_and_cut_long_values(env: Env, kind: str,
                                                                               fast: bool) -> None:
    """The openpyxl copy (fast=False) and the copy of values (what an .xls becomes when LibreOffice cannot convert
    it) show control characters and cut long text as the fast path does."""
    finding = [make("value.not_number", sheet="填報表", cell="E7", column="核定經費", value="一千")]
    control = annotate(_with_control_characters(env).read_bytes(), kind, finding, fast=fast)
    long_path, texts = _with_long_values(env)
    cut = annotate(long_path.read_bytes(), kind, finding, fast=fast)
    for copy in (control, cut):
        _every_part_parses(copy)
    shown = openpyxl.load_workbook(io.BytesIO(control))
    assert shown["填報表"]["B7"].value == "口罩␀採購␛" and "備␛註" in shown.sheetnames
    assert len(cut) < 2_000_000
    value = openpyxl.load_workbook(io.BytesIO(cut))["填報表"]["L7"].value
    assert value.startswith(texts["L7"][:MAX_COPY_CHARS] + "…（共 ") and value.endswith(" 字）")
