"""`python -m benchmarks.startup`: how fast the CLI starts: `collect --help` and `collect <cmd> --help`, each command.

Each run is a fresh `collect` process (the console script a user types), timed from start to exit (wall) and
by the CPU time it used (user + system: steadier than wall time on a busy machine); the figures are medians of
--repeat runs. One more run per command lists which heavy libraries its --help imported (none
should: a command imports what it needs only when it runs). Results go to
benchmarks/results/<timestamp>-startup-<git sha>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from benchmarks.run import RESULTS_ENV, git_sha

HERE = Path(__file__).resolve().parent
TARGET_SECONDS = 0.3
HEAVY = ("pandas", "pandera", "pydantic", "sqlalchemy", "openpyxl", "python_calamine", "xlsxwriter", "pyarrow", "numpy",
         "jinja2", "matplotlib", "imap_tools", "exchangelib", "msal", "httpx")
PROBE = """
import sys
sys.argv = ["collect", *{args!r}]
from collect.cli import main
try:
    main()
except SystemExit:
    pass
heavy = sorted(m for m in {heavy!r} if m in sys.modules)
sys.stderr.write("HEAVY " + " ".join(heavy) + "\\n")
"""


def commands() -> list[list[str]]:
    """Every command's words, as `collect` lists them (groups and their subcommands), after the bare --help."""
    import typer.main

    from collect.cli import app

    group = typer.main.get_command(app)
    found: list[list[str]] = [[]]
    for name, cmd in sorted(group.commands.items()):  # type: ignore[attr-defined]
        subs = getattr(cmd, "commands", None)
        found += [[name, sub] for sub in sorted(subs)] if subs else [[name]]
    return found


def collect_exe() -> list[str]:
    """The console script beside this Python (what `pip install` made), else `python -m collect`."""
    script = Path(sys.executable).with_name("collect")
    return [str(script)] if script.exists() else [sys.executable, "-m", "collect"]


def time_help(words: list[str], repeat: int) -> dict[str, Any]:
    argv = [*collect_exe(), *words, "--help"]
    runs, cpu = [], []
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        runs.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr[-500:]}")
    probe = subprocess.run([sys.executable, "-c", PROBE.format(args=[*words, "--help"], heavy=HEAVY)],
                           capture_output=True, text=True, check=False)
    heavy = next((line.split()[1:] for line in probe.stderr.splitlines() if line.startswith("HEAVY")), ["?"])
    median = statistics.median(runs)
    return {"command": " ".join(["collect", *words, "--help"]), "median_seconds": round(median, 3),
            "median_cpu_seconds": round(statistics.median(cpu), 3),
            "runs": [round(r, 3) for r in runs], "heavy_imports": heavy, "met": median <= TARGET_SECONDS}


def render(results: list[dict[str, Any]]) -> str:
    width = max(len(r["command"]) for r in results)
    lines = [f"{'command':<{width}}  wall     cpu      heavy imports",
             f"{'-' * width}  -------  -------  -------------"]
    for r in results:
        lines.append(f"{r['command']:<{width}}  {r['median_seconds']:5.3f} s  {r['median_cpu_seconds']:5.3f} s  "
                     f"{' '.join(r['heavy_imports']) or '-'}" + ("" if r["met"] else f"   (over {TARGET_SECONDS} s)"))
    met = sum(r["met"] for r in results)
    lines.append(f"\n{met}/{len(results)} under {TARGET_SECONDS} s; slowest "
                 f"{max(r['median_seconds'] for r in results):.3f} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.startup", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5, help="runs per command; medians are reported (default 5)")
    parser.add_argument("--results", type=Path, default=None,
                        help=f"where the JSON goes (default benchmarks/results, or ${RESULTS_ENV})")
    opts = parser.parse_args(argv)
    if opts.repeat < 1:
        parser.error("--repeat must be positive")
    results_dir = opts.results or Path(os.environ.get(RESULTS_ENV) or HERE / "results")
    results = [time_help(words, opts.repeat) for words in commands()]
    sha, dirty = git_sha()
    document = {
        "timestamp": datetime.now().isoformat(timespec="seconds"), "git_sha": sha, "dirty": dirty,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "load_average": os.getloadavg()},
        "options": {"repeat": opts.repeat, "target_seconds": TARGET_SECONDS, "exe": collect_exe()},
        "results": results,
    }
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{datetime.now():%Y%m%dT%H%M%S}-startup-{sha}.json"
    path.write_text(json.dumps(document, ensure_ascii=False, indent=2), encoding="utf-8")
    print(render(results))
    print(f"\nresults: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
