"""Synthetic benchmark data: a workspace of N agencies, covid19-shaped collections and returned workbooks, cached."""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import zipfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

ROUND = "2026-10"
SECRET = "collect-benchmark-secret"  # the stamp key of every benchmark workspace (tokens in cached files use it)
SUPERVISORS = 25
FORM_ROWS = 200  # the shipped covid19 form's data rows: the size the issue target is about
REPO = Path(__file__).resolve().parent.parent
CATEGORIES = ("防疫", "紓困", "振興")
SOURCES = ("市庫", "中央補助", "第二預備金", "特別預算")
# One file in REJECT_EVERY carries error-level mistakes (it is rejected); the others carry warnings only.
REJECT_EVERY = 20
# Parts of the code whose change changes the generated files (the cache key's "code version").
_VERSION_SOURCES = ("benchmarks/data.py", "rules/covid19.py", "collect/template.py", "collect/stamp.py",
                    "collect/spec.py")
_WARNING_RULE = '''

    @row_rule("spent", "實支數為 0，請確認計畫是否尚未執行。", "Spent is 0; check whether the project has started.",
              warning=True)
    def spent_started(cls, df: pd.DataFrame) -> pd.Series:
        return df["spent"] != 0
'''
_NS = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main",
       "r": "http://schemas.openxmlformats.org/officeDocument/2006/relationships",
       "rel": "http://schemas.openxmlformats.org/package/2006/relationships"}


def code_version() -> str:
    """A short hash of the code that generates the cached files."""
    digest = hashlib.sha256()
    for rel in _VERSION_SOURCES:
        path = REPO / rel
        digest.update(rel.encode() + b"\0" + (path.read_bytes() if path.is_file() else b""))
    return digest.hexdigest()[:10]


def collection_id(rows: int) -> str:
    """The benchmark collection for returns of `rows` rows: covid19's rules with a form large enough."""
    return f"bench_r{rows}"


def form_rows(rows: int) -> int:
    return max(FORM_ROWS, rows)


# -- the agency list --------------------------------------------------------------------------------------------
def agency_rows(n: int) -> list[tuple[str, str, str, str, str]]:
    """N agencies (code, name, kind, supervisor code, emails) under min(25, N) supervising agencies.

    Like Taipei: about one third public agencies, two thirds special funds; addresses @example.test.
    """
    sups = min(SUPERVISORS, n)
    out = []
    for k in range(1, sups + 1):
        code = f"{k:02d}0000"
        out.append((code, f"臺北市政府第{k}局", "公務機關", "", f"acct.{code}@example.test; head.{code}@example.test"))
    for j in range(n - sups):
        k = j % sups + 1
        seq = j // sups + 1
        code = f"{k:02d}{seq:04d}"
        if j % 3 == 0:
            name, kind = f"臺北市政府第{k}局所屬第{seq}機關", "公務機關"
        else:
            name, kind = f"臺北市第{k}局第{seq}號特種基金", "特種基金"
        out.append((code, name, kind, f"{k:02d}0000", f"acct.{code}@example.test"))
    return out


def write_agency_list(path: Path, n: int) -> None:
    lines = ["機關代碼,機關名稱,類別,主管機關代碼,聯絡信箱,啟用"]
    lines += [f"{c},{name},{kind},{sup},{mail},是" for c, name, kind, sup, mail in agency_rows(n)]
    path.write_text("\ufeff" + "\n".join(lines) + "\n", encoding="utf-8")


# -- the collections --------------------------------------------------------------------------------------------
def rules_text(max_rows: int) -> str:
    """covid19's rules for every agency (scope "all"), a form of `max_rows` rows and one warning-level rule."""
    text = (REPO / "rules" / "covid19.py").read_text(encoding="utf-8")
    for pattern, repl in ((r'scope="[^"]*"', 'scope="all"'), (r"max_rows=\d+", f"max_rows={max_rows}")):
        text, count = re.subn(pattern, repl, text, count=1)
        if count != 1:
            raise RuntimeError(f"rules/covid19.py no longer has {pattern}; update benchmarks/data.py")
    return text.rstrip("\n") + "\n" + _WARNING_RULE


def make_workspace(root: Path, n: int, row_sizes: list[int]) -> None:
    """A workspace with N generated agencies and one bench collection (rules + default template) per size."""
    from collect.forms.collection import load_collection
    from collect.forms.template import write_default
    from collect.workspace import init_workspace

    init_workspace(root, collections=["covid19"])
    write_agency_list(root / "agencies.csv", n)
    for rows in sorted(set(row_sizes)):
        cid = collection_id(rows)
        (root / "rules" / f"{cid}.py").write_text(rules_text(form_rows(rows)), encoding="utf-8")
        coll = load_collection(root / "rules", root / "templates_xlsx", cid, need_template=False)
        write_default(coll, root / "templates_xlsx" / f"{cid}.xlsx")


def copy_workspace(src: Path, dst: Path) -> None:
    """A fresh workspace (no ledger, archive or outbox) with the same list, rules and templates as src."""
    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    for name in ("collect.toml", "agencies.csv", ".gitignore"):
        if (src / name).exists():
            shutil.copy2(src / name, dst / name)
    for sub in ("rules", "templates_xlsx"):
        shutil.copytree(src / sub, dst / sub)
    for sub in ("outbox", "inbox", "state"):
        (dst / sub).mkdir()


# -- the returned workbooks -------------------------------------------------------------------------------------
def bad_rows(rows: int) -> set[int]:
    """The 0-based rows that carry a mistake: about 1% (at least one), spread over the table."""
    k = max(1, round(rows / 100))
    return {((j * rows) // k + 3) % rows for j in range(k)}


def row_values(agency_index: int, i: int, bad: bool, rejecting: bool) -> dict[str, Any]:
    """Row i of an agency's return: plausible values, some typed as text an agency would type (valid after
    normalisation), and a mistake on ~1% of rows (errors in a rejected file, a warning otherwise)."""
    seed = (agency_index * 7919 + i * 104729) % 1_000_003
    approved = 100_000 + seed * 9
    committed = approved * 4 // 5
    spent = committed // 2 + seed % 1000
    day = date(2026, 1, 1) + timedelta(days=(seed % 290))
    values: dict[str, Any] = {
        "item": i + 1, "name": f"計畫{i + 1:05d}", "category": CATEGORIES[seed % 3], "source": SOURCES[seed % 4],
        "approved": approved, "committed": committed, "spent": spent, "approved_on": day,
        "note": f"第{i + 1}列備註" if i % 7 == 0 else None,
    }
    if i % 20 == 5:  # typed as text: an ROC date and an amount with thousands separators
        values["approved_on"] = f"{day.year - 1911}/{day.month:02d}/{day.day:02d}"
        values["approved"] = f"{approved:,}"
    if bad:
        if not rejecting:
            values["spent"] = 0  # the warning rule: spent is 0
        else:
            kind = i % 4
            if kind == 0:
                values["committed"] = approved + 1  # row rule: committed above approved
            elif kind == 1:
                values["approved"] = "一百萬"  # not a number
            elif kind == 2:
                values["category"] = "其他"  # not one of the choices
            else:
                values["approved_on"] = "2026/13/45"  # not a date
    return values


def _sheet_part(zf: zipfile.ZipFile, sheet: str) -> str:
    wb = ElementTree.fromstring(zf.read("xl/workbook.xml"))
    rid = next(s.get(f"{{{_NS['r']}}}id") for s in wb.iterfind("m:sheets/m:sheet", _NS) if s.get("name") == sheet)
    rels = ElementTree.fromstring(zf.read("xl/_rels/workbook.xml.rels"))
    target = next(r.get("Target") for r in rels.iterfind("rel:Relationship", _NS) if r.get("Id") == rid)
    assert target is not None
    return target.lstrip("/") if target.startswith("/") else f"xl/{target}"


@dataclass(frozen=True)
class ReturnJob:
    issued: Path
    out: Path
    agency_index: int
    rows: int
    sheet: str
    first_row: int
    letters: dict[str, str]


def make_return(job: ReturnJob) -> Path:
    """An agency's return: its stamped workbook with `rows` rows typed into the data range (cells patched in
    the sheet XML, the way the stamp itself is written; everything else byte for byte as issued)."""
    from collect.forms.stamp import fill_cells

    rejecting = job.agency_index % REJECT_EVERY == REJECT_EVERY // 2
    cells: dict[str, Any] = {}
    bad = bad_rows(job.rows)
    for i in range(job.rows):
        for key, value in row_values(job.agency_index, i, i in bad, rejecting).items():
            if value is not None:
                cells[f"{job.letters[key]}{job.first_row + i}"] = value
    out = io.BytesIO()
    with zipfile.ZipFile(job.issued) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        part = _sheet_part(src, job.sheet)
        for info in src.infolist():
            data = src.read(info)
            if info.filename == part:
                data = fill_cells(data, cells)
            dst.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED)
    job.out.write_bytes(out.getvalue())
    return job.out


@dataclass(frozen=True)
class Dataset:
    """The cached inputs of one benchmark size."""

    base: Path  # the workspace to copy for each run (list, rules, templates; no state)
    returns: dict[int, Path]  # rows per file -> folder of the N returned workbooks
    agencies: int


def _paths(cache: Path, n: int, rows: int) -> tuple[Path, Path]:
    tag = code_version()
    return cache / f"ws-n{n}-{tag}", cache / f"returns-n{n}-r{rows}-{tag}"


def prepare(cache: Path, n: int, row_sizes: list[int], log: Any = None) -> Dataset:
    """The workspace and returned workbooks for N agencies and each size, generated once and cached."""
    from collect.forms.issuing import issue
    from collect.workspace import Context

    os.environ["COLLECT_SECRET"] = SECRET
    cache.mkdir(parents=True, exist_ok=True)
    base, _ = _paths(cache, n, 0)
    served = {int(p.stem.removeprefix("bench_r")) for p in (base / "rules").glob("bench_r*.py")}
    if not (base / ".complete").exists() or not set(row_sizes) <= served:
        if base.exists():
            shutil.rmtree(base)
        make_workspace(base, n, sorted(served | set(row_sizes)))  # what it served before, and what is asked now
        (base / ".complete").write_text("ok\n")
    returns: dict[int, Path] = {}
    for rows in row_sizes:
        _, folder = _paths(cache, n, rows)
        returns[rows] = folder
        if (folder / ".complete").exists():
            continue
        if log:
            log(f"generating {n} returned workbooks of {rows:,} rows into {folder} (once; cached)")
        cid = collection_id(rows)
        scratch = folder.with_name(folder.name + ".tmp")
        if scratch.exists():
            shutil.rmtree(scratch)
        copy_workspace(base, scratch / "ws")
        ctx = Context.open(scratch / "ws")
        try:
            result = issue(ctx, cid, ROUND, today=date(2026, 11, 1))
            coll = ctx.collection(cid)
        finally:
            ctx.close()
        assert coll.layout is not None
        lay = coll.layout
        from openpyxl.utils import get_column_letter

        letters = {c.key: get_column_letter(lay.first_col + i) for i, c in enumerate(coll.columns)}
        (scratch / "returns").mkdir()
        jobs = [ReturnJob(item.path, scratch / "returns" / item.path.name, index, rows, lay.sheet,
                          lay.data_first_row, letters) for index, item in enumerate(result.issued)]
        with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            for _ in pool.map(make_return, jobs, chunksize=4):
                pass
        if folder.exists():
            shutil.rmtree(folder)
        (scratch / "returns").rename(folder)
        shutil.rmtree(scratch)
        (folder / ".complete").write_text("ok\n")
    return Dataset(base, returns, n)
