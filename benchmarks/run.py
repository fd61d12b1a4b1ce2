"""`python -m benchmarks.run`: time issue, ingest and report on synthetic rounds, against the naive way.

Each measurement runs in a fresh process (benchmarks.measure) so its peak memory is its own; the figures
are medians of --repeat runs. Results go to benchmarks/results/<timestamp>-<git sha>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from benchmarks import data, gate

HERE = Path(__file__).resolve().parent
DEFAULT_ROWS = (50, 1_000, 10_000)
CACHE_ENV = "COLLECT_BENCH_CACHE"
RESULTS_ENV = "COLLECT_BENCH_RESULTS"
MEMORY_METHOD = ("peak_mb = VmHWM of the measuring process + the sum of the VmHWM of each of its descendant "
                 "processes (sandbox workers, forkserver, report writers), read from /proc/<pid>/status every "
                 "50 ms while the step runs; an upper bound of the memory held at any one time. "
                 "peak_concurrent_mb = the largest sampled sum of VmRSS at one instant (a lower bound).")


@dataclass
class Measured:
    """The runs of one step at one size."""

    step: str
    rows_per_file: int
    runs: list[dict[str, Any]] = field(default_factory=list)

    def median(self, key: str = "seconds") -> float:
        return float(statistics.median(r[key] for r in self.runs))

    def peak(self, key: str = "peak_mb") -> float:
        return max(float(r[key]) for r in self.runs)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agencies", type=int, default=430, help="agencies in the round (default 430)")
    parser.add_argument("--rows", default=",".join(map(str, DEFAULT_ROWS)),
                        help="rows per returned workbook, comma-separated (default 50,1000,10000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement; medians are reported")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 40 agencies, 50 rows, 1 run")
    parser.add_argument("--skip-naive", action="store_true", help="do not run the naive implementations")
    parser.add_argument("--naive-max-rows", type=int, default=1_000,
                        help="run the naive ingest and report only up to this many rows per file (default 1000; "
                             "the naive ingest of 430 x 10,000 rows takes minutes per run)")
    parser.add_argument("--cache", type=Path, default=None,
                        help=f"where generated data is kept (default benchmarks/cache, or ${CACHE_ENV})")
    parser.add_argument("--results", type=Path, default=None,
                        help=f"where the JSON goes (default benchmarks/results, or ${RESULTS_ENV})")
    parser.add_argument("--tolerance", type=float, default=gate.TOLERANCE,
                        help="how far below benchmarks/README.md's latest naive/ours ratio a step may fall before "
                             f"the run fails (default {gate.TOLERANCE:.2f})")
    args = parser.parse_args(argv)
    if args.quick:
        args.agencies, args.rows, args.repeat = 40, "50", 1
    args.row_sizes = sorted({int(r.replace("_", "")) for r in str(args.rows).split(",") if r.strip()})
    if args.agencies < 1 or args.repeat < 1 or not args.row_sizes or min(args.row_sizes) < 1:
        parser.error("--agencies, --repeat and every --rows size must be positive")
    args.cache = args.cache or Path(os.environ.get(CACHE_ENV) or HERE / "cache")
    args.results = args.results or Path(os.environ.get(RESULTS_ENV) or HERE / "results")
    return args


def log(message: str) -> None:
    sys.stderr.write(f"[bench {datetime.now():%H:%M:%S}] {message}\n")
    sys.stderr.flush()


def measure(step: str, args: dict[str, Any]) -> dict[str, Any]:
    """One run of `step` in a fresh Python process."""
    env = {**os.environ, "COLLECT_SECRET": data.SECRET, "PYTHONPATH": str(data.REPO)}
    proc = subprocess.run([sys.executable, "-m", "benchmarks.measure", json.dumps({"step": step, "args": args})],
                          cwd=data.REPO, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark step {step} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def run_all(opts: argparse.Namespace) -> tuple[dict[tuple[str, int], Measured], data.Dataset]:
    dataset = data.prepare(opts.cache, opts.agencies, opts.row_sizes, log)
    work = opts.cache / f"work-{os.getpid()}"
    out: dict[tuple[str, int], Measured] = {}

    def record(step: str, rows: int, args: dict[str, Any]) -> dict[str, Any]:
        result = measure(step, args)
        out.setdefault((step, rows), Measured(step, rows)).runs.append(result)
        log(f"  {step:<15} {rows:>6,} rows/file: {result['seconds']:8.2f} s, peak {result['peak_mb']:,.0f} MB")
        return result

    n = opts.agencies
    try:
        for rep in range(1, opts.repeat + 1):
            for rows in opts.row_sizes:
                log(f"run {rep}/{opts.repeat}: {n} agencies x {rows:,} rows")
                ws = work / f"ws-r{rows}"
                data.copy_workspace(dataset.base, ws)
                common = {"workspace": str(ws), "collection": data.collection_id(rows), "round": data.ROUND,
                          "folder": str(dataset.returns[rows]), "files": n, "rows_per_file": rows}
                record("issue", rows, common)
                ingest = record("ingest", rows, common)
                if ingest["files"] != n:
                    raise RuntimeError(f"ingest decided {ingest['files']} files, expected {n}")
                record("report", rows, common)
                sheet = "填報表"
                for bare in ("bare_fastexcel", "bare_calamine"):
                    record(bare, rows, {**common, "sheet": sheet})
                if opts.skip_naive:
                    continue
                if data.form_rows(rows) == data.FORM_ROWS:
                    record("naive_issue", rows, {**common, "out": str(work / "naive-issued"),
                                                 "secret": data.SECRET})
                if rows <= opts.naive_max_rows:
                    record("naive_ingest", rows, common)
                    record("naive_report", rows, {**common, "out": str(work / "naive-report.xlsx")})
                shutil.rmtree(ws)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out, dataset


def summarise(measured: dict[tuple[str, int], Measured], opts: argparse.Namespace) -> dict[str, Any]:
    results: list[dict[str, Any]] = []
    for rows in opts.row_sizes:
        bare = {k: measured[(f"bare_{k}", rows)].median() for k in ("fastexcel", "calamine")
                if (f"bare_{k}", rows) in measured}
        for step in ("issue", "ingest", "report"):
            m = measured.get((step, rows))
            if m is None:
                continue
            seconds = m.median()
            naive = measured.get((f"naive_{step}", rows))
            entry: dict[str, Any] = {
                "step": step, "agencies": opts.agencies, "rows_per_file": rows,
                "form_rows": data.form_rows(rows), "rows": m.runs[-1]["rows"], "seconds": round(seconds, 3),
                "rows_per_second": round(m.runs[-1]["rows"] / seconds, 1),
                "peak_mb": m.peak(), "peak_main_mb": m.peak("peak_main_mb"),
                "peak_workers_mb": m.peak("peak_workers_mb"), "peak_concurrent_mb": m.peak("peak_concurrent_mb"),
                "runs": [round(r["seconds"], 3) for r in m.runs],
                "detail": {k: v for k, v in m.runs[-1].items() if k in ("verdicts", "findings", "bytes", "files")},
                "naive": None, "naive_ratio": None, "bare": None, "vs_bare": None,
            }
            if naive is not None:
                entry["naive"] = {"seconds": round(naive.median(), 3), "runs": [round(r["seconds"], 3)
                                                                                for r in naive.runs],
                                  "peak_mb": naive.peak()}
                entry["naive_ratio"] = round(naive.median() / seconds, 2)
            if step == "ingest" and bare:
                fastest = min(bare.values())
                entry["bare"] = {**{k: round(v, 3) for k, v in bare.items()}, "fastest": round(fastest, 3)}
                entry["vs_bare"] = round(seconds / fastest, 2)
            results.append(entry)
    return {"results": results, "targets": targets(results, opts),
            "regressions": gate.regressions(results, gate.recorded_ratios(), opts.tolerance)}


def targets(results: list[dict[str, Any]], opts: argparse.Namespace) -> list[dict[str, Any]]:
    """The issue's targets, judged where this run measured their size (430 agencies)."""
    by = {(r["step"], r["form_rows"] if r["step"] == "issue" else r["rows_per_file"]): r for r in results}
    checks: list[tuple[str, str, int, str, float | None, float]] = []  # name, step, size, figure, value, limit
    issue, ingest1k = by.get(("issue", data.FORM_ROWS)), by.get(("ingest", 1_000))
    ingest10k, report1k = by.get(("ingest", 10_000)), by.get(("report", 1_000))
    report10k = by.get(("report", 10_000))
    if issue:
        checks += [("issue 430 agencies <= 2 s", "issue", data.FORM_ROWS, "seconds", issue["seconds"], 2.0),
                   ("issue >= 10x faster than naive", "issue", data.FORM_ROWS, "naive_ratio", issue["naive_ratio"],
                    10.0)]
    if ingest1k:
        checks += [("ingest 430 x 1,000 <= 4 s", "ingest", 1_000, "seconds", ingest1k["seconds"], 4.0),
                   ("ingest >= 9x faster than naive", "ingest", 1_000, "naive_ratio", ingest1k["naive_ratio"], 9.0),
                   ("ingest within 2x of the fastest bare parse", "ingest", 1_000, "vs_bare", ingest1k["vs_bare"],
                    2.0)]
    if ingest10k:
        checks += [("ingest 430 x 10,000 <= 30 s", "ingest", 10_000, "seconds", ingest10k["seconds"], 30.0),
                   ("ingest 430 x 10,000 peak <= 2 GB", "ingest", 10_000, "peak_mb", ingest10k["peak_mb"], 2048.0)]
    if report1k:
        checks += [("report 430 x 1,000 <= 10 s", "report", 1_000, "seconds", report1k["seconds"], 10.0),
                   ("report >= 10x faster than naive", "report", 1_000, "naive_ratio", report1k["naive_ratio"],
                    10.0),
                   ("report 430 x 1,000 peak <= 1 GB", "report", 1_000, "peak_mb", report1k["peak_mb"], 1024.0)]
    if report10k:
        checks += [("report 430 x 10,000 peak <= 1.5 GB", "report", 10_000, "peak_mb", report10k["peak_mb"],
                    1536.0)]
    out = []
    for name, step, size, figure, value, limit in checks:
        at_least = figure == "naive_ratio"
        applies = opts.agencies == 430 and value is not None
        met = (value >= limit if at_least else value <= limit) if applies and value is not None else None
        out.append({"target": name, "step": step, "size": size, "figure": figure, "value": value,
                    "limit": limit, "met": met})
    return out


def git_sha() -> tuple[str, bool]:
    def git(*args: str) -> str:
        proc = subprocess.run(["git", *args], cwd=data.REPO, capture_output=True, text=True, check=False)
        return proc.stdout.strip() if proc.returncode == 0 else ""

    sha = git("rev-parse", "--short", "HEAD") or "nogit"
    return sha, bool(git("status", "--porcelain"))


def render(summary: dict[str, Any]) -> str:
    """The results as a text table, then the targets."""
    head = ("step", "rows/file", "rows", "ours s", "rows/s", "peak MB", "naive s", "naive/ours", "bare s",
            "ours/bare")
    lines = [head]
    for r in summary["results"]:
        naive, bare = r["naive"], r["bare"]
        lines.append((
            r["step"] + (f" (form {r['form_rows']:,} rows)" if r["step"] == "issue" else ""),
            f"{r['rows_per_file']:,}", f"{r['rows']:,}", f"{r['seconds']:.2f}", f"{r['rows_per_second']:,.0f}",
            f"{r['peak_mb']:,.0f}", f"{naive['seconds']:.2f}" if naive else "-",
            f"{r['naive_ratio']:.1f}x" if r["naive_ratio"] else "-",
            f"{bare['fastest']:.2f}" if bare else "-", f"{r['vs_bare']:.2f}x" if r["vs_bare"] else "-",
        ))
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(head))]
    text = ["  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(line, widths,
                                                                                              strict=True)))
            for line in lines]
    text.insert(1, "  ".join("-" * w for w in widths))
    if summary["targets"]:
        text.append("")
        text.append("targets (430 agencies, medians):")
        for t in summary["targets"]:
            verdict = {True: "MET", False: "NOT MET", None: "n/a"}[t["met"]]
            value = "-" if t["value"] is None else f"{t['value']:,.2f}"
            limit = f"{t['limit']:,.0f}" + ("x" if t["figure"] == "naive_ratio" else "")
            text.append(f"  {verdict:<8} {t['target']}: {value} (limit {limit})")
    if summary.get("regressions"):
        text.append("")
        text.extend(summary["regressions"])
    return "\n".join(text)


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    started = time.time()
    measured, _ = run_all(opts)
    summary = summarise(measured, opts)
    sha, dirty = git_sha()
    stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
    document = {
        "timestamp": datetime.now().isoformat(timespec="seconds"), "git_sha": sha, "dirty": dirty,
        "code_version": data.code_version(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "options": {"agencies": opts.agencies, "rows": opts.row_sizes, "repeat": opts.repeat,
                    "skip_naive": opts.skip_naive, "naive_max_rows": opts.naive_max_rows},
        "memory_method": MEMORY_METHOD, "wall_seconds": round(time.time() - started, 1),
        **summary,
        "raw": {f"{step}:{rows}": m.runs for (step, rows), m in measured.items()},
    }
    opts.results.mkdir(parents=True, exist_ok=True)
    path = opts.results / f"{stamp}-{sha}.json"
    path.write_text(json.dumps(document, ensure_ascii=False, indent=2), encoding="utf-8")
    print(render(summary))
    print(f"\nresults: {path}")
    if summary["regressions"]:
        sys.stderr.write("\n".join(["", "make bench FAILED: slower against naive than the latest recorded figures",
                                     *summary["regressions"], ""]))
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
