"""`python -m benchmarks.odf`: issue and ingest of N agencies' copies as .ods against .xlsx, in the same run.

Both formats get the same generated workspace (benchmarks/data.py: N agencies, covid19's rules), issue the round
(.ods: one LibreOffice conversion of the round's workbook, then one patched copy per agency) and issue it again
(.ods: the converted base cached, no LibreOffice), have every copy
filled with the same rows (the .xlsx by patching its sheet XML, the .ods by setting its cells in content.xml) and
ingest them all. Prints seconds per step and the .ods / .xlsx ratio; `--json FILE` keeps the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

from benchmarks import data


def ods_return(issued: Path, out: Path, agency_index: int, rows: int, sheet: str, first_row: int,
               letters: dict[str, str]) -> Path:
    """An agency's .ods return: its stamped .ods with `rows` rows (data.row_values) set in content.xml."""
    from collect.xlsx import odf

    members = odf.read_members(issued.read_bytes())
    root = odf.parse_xml(members["content.xml"])
    grid = odf.OdsSheet(odf.table_named(root, sheet))
    rejecting = agency_index % data.REJECT_EVERY == data.REJECT_EVERY // 2
    bad = data.bad_rows(rows)
    for i in range(rows):
        for key, value in data.row_values(agency_index, i, i in bad, rejecting).items():
            if value is not None:
                row, col = odf.parse_a1(f"{letters[key]}{first_row + i}")
                odf.set_value(grid.cell(row, col), value)
    out.write_bytes(odf.OdsTemplate(members).build({"content.xml": odf.to_xml(root)}))
    return out


def run_format(base: Path, work: Path, fmt: str, rows: int) -> dict[str, Any]:
    """Issue, fill and ingest one round in a fresh copy of the workspace with [workspace] format = fmt."""
    from openpyxl.utils import get_column_letter

    from collect.forms.issuing import issue
    from collect.receive.ingest import Ingestor
    from collect.workspace import Context

    root = work / fmt
    data.copy_workspace(base, root)
    toml = root / "collect.toml"
    toml.write_text(toml.read_text(encoding="utf-8").replace('format = "xlsx"', f'format = "{fmt}"'),
                    encoding="utf-8")
    cid = data.collection_id(rows)
    ctx = Context.open(root)
    try:
        started = time.perf_counter()
        result = issue(ctx, cid, data.ROUND, today=date(2026, 11, 1))
        issue_s = time.perf_counter() - started
        started = time.perf_counter()  # the same round issued again (.ods: from the cached base, no LibreOffice)
        result = issue(ctx, cid, data.ROUND, today=date(2026, 11, 1))
        again_s = time.perf_counter() - started
        coll = ctx.collection(cid)
        assert coll.layout is not None
        lay = coll.layout
        letters = {c.key: get_column_letter(lay.first_col + i) for i, c in enumerate(coll.columns)}
        returns = work / f"returns-{fmt}"
        returns.mkdir()
        for index, item in enumerate(result.issued):
            out = returns / item.path.name
            if fmt == "ods":
                ods_return(item.path, out, index, rows, lay.sheet, lay.data_first_row, letters)
            else:
                data.make_return(data.ReturnJob(item.path, out, index, rows, lay.sheet, lay.data_first_row, letters))
        started = time.perf_counter()
        with Ingestor(ctx) as ing:
            outcomes = ing.paths([returns])
        ingest_s = time.perf_counter() - started
    finally:
        ctx.close()
    verdicts = Counter(str(o.verdict) for o in outcomes)
    suffixes = Counter(i.path.suffix for i in result.issued)
    return {"format": fmt, "agencies": len(result.issued), "rows_per_file": rows, "issue_seconds": round(issue_s, 2),
            "issue_again_seconds": round(again_s, 2), "ingest_seconds": round(ingest_s, 2),
            "verdicts": dict(verdicts), "issued": dict(suffixes),
            "issued_mb": round(sum(i.path.stat().st_size for i in result.issued) / 1e6, 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.odf", description=__doc__.splitlines()[0])
    parser.add_argument("--agencies", type=int, default=430)
    parser.add_argument("--rows", type=int, default=20, help="rows per returned file")
    parser.add_argument("--json", type=Path, help="write the figures here")
    opts = parser.parse_args(argv)
    os.environ["COLLECT_SECRET"] = data.SECRET
    work = Path(tempfile.mkdtemp(prefix="collect-bench-odf-"))
    try:
        base = work / "base"
        data.make_workspace(base, opts.agencies, [opts.rows])
        figures = [run_format(base, work, fmt, opts.rows) for fmt in ("xlsx", "ods")]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    xlsx, ods = figures
    ratio = {step: round(ods[f"{step}_seconds"] / max(xlsx[f"{step}_seconds"], 1e-9), 2)
             for step in ("issue", "issue_again", "ingest")}
    for f in figures:
        print(f"{f['format']:5} {f['agencies']} agencies: issue {f['issue_seconds']:6.2f} s ({f['issued_mb']} MB), "
              f"again {f['issue_again_seconds']:6.2f} s, ingest {f['ingest_seconds']:6.2f} s of {f['rows_per_file']} "
              f"rows each; {f['verdicts']}")
    print(f"ods / xlsx: issue {ratio['issue']}x (target <= 2x), again {ratio['issue_again']}x, "
          f"ingest {ratio['ingest']}x")
    if opts.json:
        opts.json.write_text(json.dumps({"figures": figures, "ratio": ratio}, ensure_ascii=False, indent=1) + "\n",
                             encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
