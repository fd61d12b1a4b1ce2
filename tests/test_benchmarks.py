"""The benchmark command runs end to end (a quick smoke run) and writes every step's figures as JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_quick_benchmark_writes_positive_figures_for_every_step(tmp_path):
    env = {**os.environ, "COLLECT_BENCH_CACHE": str(tmp_path / "cache"),
           "COLLECT_BENCH_RESULTS": str(tmp_path / "results")}
    proc = subprocess.run([sys.executable, "-m", "benchmarks.run", "--quick", "--skip-naive"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    written = list((tmp_path / "results").glob("*.json"))
    assert len(written) == 1 and written[0].name in proc.stdout  # the table names the file it wrote
    doc = json.loads(written[0].read_text(encoding="utf-8"))
    assert doc["options"] == {"agencies": 40, "rows": [50], "repeat": 1, "skip_naive": True, "naive_max_rows": 1000}
    steps = {r["step"]: r for r in doc["results"]}
    assert set(steps) == {"issue", "ingest", "report"}
    for step, r in steps.items():
        assert r["seconds"] > 0 and r["rows_per_second"] > 0 and r["peak_mb"] > 0, (step, r)
        assert r["naive"] is None  # --skip-naive
    assert steps["issue"]["rows"] == 40  # one stamped workbook per agency
    assert steps["ingest"]["rows"] == 40 * 50
    # Every returned workbook was decided; one in twenty carries errors and is rejected, the others pass.
    assert steps["ingest"]["detail"]["verdicts"] == {"accepted": 38, "rejected": 2}
    assert steps["ingest"]["peak_workers_mb"] > 0  # the sandbox's worker processes were measured
    assert steps["ingest"]["bare"]["fastest"] > 0 and steps["ingest"]["vs_bare"] > 0
    assert steps["report"]["rows"] == 38 * 50  # the accepted returns' rows, all in the master report
    assert "issue" in proc.stdout and "ingest" in proc.stdout and "report" in proc.stdout
    # The generated data is cached: a second listing of the cache shows the workspace and the returns.
    cached = sorted(p.name.split("-")[0] for p in (tmp_path / "cache").iterdir())
    assert cached == ["returns", "ws"]


def test_the_gate_fails_a_step_slower_against_naive_than_the_readme_records(tmp_path):
    from benchmarks import gate

    readme = tmp_path / "README.md"
    readme.write_text("# Benchmarks\n\n## Latest figures\nsome words\n\n"
                      "| step | rows/file | ours | peak | naive | naive/ours |\n| --- | --- | --- | --- | --- | --- |\n"
                      "| issue (200-row form) | 50 | 0.97 s | 152 MB | 21.6 s | 22.3x |\n"
                      "| report | 1,000 | 5.27 s | 731 MB | 71.7 s | 13.6x |\n"
                      "| report | 10,000 | 35.4 s | 5,014 MB | (not run) | - |\n\n## Older\n"
                      "| step | rows/file | ours | peak | naive | naive/ours |\n| --- | --- | --- | --- | --- | --- |\n"
                      "| report | 50 | 1 s | 1 MB | 1 s | 99.0x |\n", encoding="utf-8")
    recorded = gate.recorded_ratios(readme)
    assert recorded == {("issue", 50): 22.3, ("report", 1000): 13.6}  # only the latest table, only real ratios

    def result(step, rows, ratio, agencies=430):
        return {"step": step, "rows_per_file": rows, "naive_ratio": ratio, "agencies": agencies}

    slower = gate.regressions([result("report", 1000, 0.57), result("issue", 50, 22.0)], recorded, 0.15)
    assert len(slower) == 1 and "report 1,000 rows/file is 0.6x" in slower[0] and "13.6x" in slower[0]
    assert gate.regressions([result("report", 1000, 12.0), result("report", 10000, None),
                             result("report", 1000, 1.0, agencies=40)], recorded, 0.15) == []
