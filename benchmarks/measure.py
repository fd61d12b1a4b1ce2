"""One timed step in a fresh process: wall seconds and peak memory of the process and of all its descendants.

Run as `python -m benchmarks.measure '<json>'`; prints one JSON object. Imports happen before the clock starts.

Memory: the step's own peak is its VmHWM (/proc/self/status) at the end. Its descendants (the ingest sandbox's
worker processes, the forkserver, report writers) are found by walking /proc every 50 ms while the step runs;
the VmHWM of each is kept as last seen (it only grows, so this is its peak up to at most 50 ms before it
exited). `peak_mb` = own VmHWM + the sum of the descendants' VmHWM: an upper bound of the memory the step
held at any one time. `peak_concurrent_mb` is the largest sampled sum of VmRSS over the process and its
descendants at one instant (a lower bound). `children_maxrss_mb` is getrusage(RUSAGE_CHILDREN).ru_maxrss:
the largest single waited-for child (workers of a forkserver are not waited for by this process).
"""

from __future__ import annotations

import json
import os
import resource
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _status(pid: int) -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith(("VmHWM:", "VmRSS:")):
                    key, value = line.split(":", 1)
                    out[key] = int(value.split()[0])  # kB
    except OSError:
        pass
    return out


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out: list[int] = []
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


class MemorySampler:
    """Polls /proc while a step runs (see the module docstring)."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.pid = os.getpid()
        self.child_hwm: dict[int, int] = {}
        self.concurrent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _sample(self) -> None:
        total = _status(self.pid).get("VmRSS", 0)
        for pid in _descendants(self.pid):
            st = _status(pid)
            if "VmHWM" in st:
                self.child_hwm[pid] = max(self.child_hwm.get(pid, 0), st["VmHWM"])
                total += st.get("VmRSS", 0)
        self.concurrent = max(self.concurrent, total)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def figures(self) -> dict[str, Any]:
        own = _status(self.pid).get("VmHWM", 0)
        workers = sum(self.child_hwm.values())
        return {
            "peak_mb": round((own + workers) / 1024, 1),
            "peak_main_mb": round(own / 1024, 1),
            "peak_workers_mb": round(workers / 1024, 1),
            "workers_seen": len(self.child_hwm),
            "peak_concurrent_mb": round(self.concurrent / 1024, 1),
            "children_maxrss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
        }


def timed(prepare: Callable[[], Callable[[], dict[str, Any]]]) -> dict[str, Any]:
    """prepare() does the untimed set-up and returns the step; the step returns its counts."""
    step = prepare()
    with MemorySampler() as sampler:
        start = time.perf_counter()
        counts = step()
        seconds = time.perf_counter() - start
    return {"seconds": seconds, **counts, **sampler.figures()}


def _ours(kind: str, args: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    from collect.workspace import Context

    ctx = Context.open(args["workspace"])
    cid = args["collection"]
    ctx.collection(cid)  # the rules are loaded before the clock starts (as in a long-running command)
    if kind == "issue":
        from datetime import date

        from collect.forms.issuing import issue

        def run_issue() -> dict[str, Any]:
            result = issue(ctx, cid, args["round"], today=date(2026, 11, 1))
            return {"files": len(result.issued), "rows": len(result.issued)}

        return run_issue
    if kind == "ingest":
        from collections import Counter

        from collect.receive.ingest import Ingestor

        def run_ingest() -> dict[str, Any]:
            with Ingestor(ctx) as ing:
                outcomes = ing.paths([Path(args["folder"])])
            verdicts = Counter(str(o.verdict) for o in outcomes)
            return {"files": len(outcomes), "rows": args["files"] * args["rows_per_file"],
                    "verdicts": dict(verdicts), "findings": sum(len(o.findings) for o in outcomes)}

        return run_ingest
    if kind == "report":
        from collect.pipeline import make_report

        def run_report() -> dict[str, Any]:
            result = make_report(ctx, cid, args["round"])
            files = result.files
            size = sum(p.stat().st_size for p in [files.master, *files.supervisors.values(), files.parquet,
                                                  files.csv])
            return {"files": 3 + len(files.supervisors), "rows": len(result.merged.report.rows),
                    "bytes": size}

        return run_report
    raise ValueError(kind)


def prepare_step(kind: str, args: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    if kind in ("issue", "ingest", "report"):
        return _ours(kind, args)
    from benchmarks import naive

    return naive.prepare(kind, args)


def main(argv: list[str]) -> int:
    request = json.loads(argv[0])
    result = timed(lambda: prepare_step(request["step"], request["args"]))
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
