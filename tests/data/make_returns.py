"""Regenerate tests/data/returns/: a few covid19 returns, each with the findings `collect ingest` must give it.

    PYTHONPATH=. python tests/data/make_returns.py

Each return is stamped by `collect issue` (collect.forms.issuing.issue) in a scratch workspace whose stamp key is
the tests' (conftest.SECRET), then filled as an agency would (tests/helpers/ingest_util.fill, which types the cells
with collect.simulate and saves as Excel does). So the stamps verify in any workspace with that key, which is what
every test workspace has. <name>.expected.json is written from SAMPLES below, not from a run:
tests/receive/test_sample_returns.py checks that ingesting each file gives exactly that.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RETURNS = HERE / "returns"
sys.path[:0] = [str(HERE.parent), str(HERE.parent / "helpers")]  # conftest (SECRET), ingest_util

from conftest import SECRET  # noqa: E402
from ingest_util import ROUND, fill, row  # noqa: E402

from collect.forms.issuing import issue  # noqa: E402
from collect.workspace import Context, init_workspace  # noqa: E402

COLLECTION = "covid19"
TWO = [row("口罩採購", item=1), row("快篩試劑", item=2, category="紓困", source="中央補助")]
# name -> (agency, what the agency typed, what it is, verdict, [(code, cell)] of the findings, in order)
SAMPLES: dict[str, tuple[str, list[dict[str, Any]], str, str, list[tuple[str, str | None]]]] = {
    "accepted": ("020001", TWO, "two clean rows", "accepted", []),
    "wrong_amount": ("020002", [row(committed=800_000, spent=900_000)],
                     "實支數 (G7, 900,000) more than 已動支數 (F7, 800,000)", "rejected", [("row.rule", "G7")]),
    "roc_date": ("020003", [row("口罩採購", item=1, approved_on="115/03/05"),
                            row("快篩試劑", item=2, approved_on="民國115年3月5日")],
                 "核定日期 typed as ROC dates (115/03/05, 民國115年3月5日): read as 2026-03-05, accepted",
                 "accepted", []),
    "outside_dropdown": ("020004", [row(category="防疫費")],
                         "類別 (C7) 防疫費, not one of its dropdown's values", "rejected", [("value.choice", "C7")]),
    "empty": ("020005", [], "nothing typed in: the stamped form sent back as issued", "rejected",
              [("table.empty", None)]),
}


def expected(name: str) -> dict[str, Any]:
    agency, _, about, verdict, findings = SAMPLES[name]
    return {"about": about, "collection": COLLECTION, "round": ROUND, "agency": agency, "verdict": verdict,
            "findings": [list(f) for f in findings]}


def make(out: Path = RETURNS) -> list[Path]:
    """Write every sample return and its expected findings into `out`; returns the workbooks."""
    os.environ["COLLECT_SECRET"] = SECRET
    out.mkdir(parents=True, exist_ok=True)
    made = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "ws"
        init_workspace(root)
        ctx = Context.open(root)
        try:
            agencies = [agency for agency, *_ in SAMPLES.values()]
            issued = {i.agency: i.path for i in issue(ctx, COLLECTION, ROUND, agencies=agencies).issued}
            for name, (agency, data, *_) in SAMPLES.items():
                made.append(fill(issued[agency], out / f"{name}.xlsx", data))
                (out / f"{name}.expected.json").write_text(
                    json.dumps(expected(name), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        finally:
            ctx.close()
    return made


if __name__ == "__main__":
    for path in make():
        print(path.relative_to(HERE.parent.parent))
