"""The regression gate of `make bench`: a step's speed-up over the naive way may not fall below the latest figures
recorded in benchmarks/README.md (its "Latest figures" table), less a tolerance for a machine's noise."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

README = Path(__file__).resolve().parent / "README.md"
SECTION = "## Latest figures"
# A ratio may be this much below the recorded one before the gate fails: repeated runs on the 2-core machine vary
# by about this much (the naive and our figures are medians of the same runs, so load moves both).
TOLERANCE = 0.15


def recorded_ratios(readme: Path = README) -> dict[tuple[str, int], float]:
    """(step, rows per file) -> naive/ours, as the README's latest figures table records them ("-": none)."""
    text = readme.read_text(encoding="utf-8")
    if SECTION not in text:
        return {}
    lines = text.split(SECTION, 1)[1].splitlines()
    table = _first_table(lines)
    if len(table) < 3:
        return {}
    head = [c.strip() for c in table[0].strip("|").split("|")]
    if "naive/ours" not in head:
        return {}
    at = head.index("naive/ours")
    out: dict[tuple[str, int], float] = {}
    for line in table[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        ratio = re.fullmatch(r"([\d.]+)x", cells[at]) if len(cells) > at else None
        rows = cells[1].replace(",", "") if len(cells) > 1 else ""
        if ratio and rows.isdigit() and cells[0]:
            out[(cells[0].split()[0], int(rows))] = float(ratio.group(1))
    return out


def _first_table(lines: list[str]) -> list[str]:
    table: list[str] = []
    for line in lines:
        if line.startswith("|"):
            table.append(line)
        elif table or line.startswith("## "):
            break
    return table


def regressions(results: list[dict[str, Any]], recorded: dict[tuple[str, int], float],
                tolerance: float = TOLERANCE) -> list[str]:
    """One line for each step and size whose naive/ours ratio fell below the recorded one (less the tolerance)."""
    out = []
    for r in results:
        before = recorded.get((r["step"], r["rows_per_file"]))
        now = r.get("naive_ratio")
        if before is None or now is None or r.get("agencies") != 430:
            continue
        if now < before * (1 - tolerance):
            out.append(f"REGRESSION: {r['step']} {r['rows_per_file']:,} rows/file is {now:.1f}x faster than naive, "
                       f"below the {before:.1f}x recorded in benchmarks/README.md (tolerance {tolerance:.0%})")
    return out
