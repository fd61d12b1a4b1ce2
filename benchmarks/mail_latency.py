"""`python -m benchmarks.mail_latency`: how long a return waits for its receipt under `collect watch`.

The test mail system of tests/mailserver.py (Dovecot IMAP with IDLE, an SMTP server that delivers into it) on
127.0.0.1, one workspace, `collect watch` as a real process with [mail] poll_seconds = 60. Two runs of N returns
(default 35): "steady", one a second, and "burst", all at once. Latency = from handing the return to SMTP to the
receipt reaching the SMTP server. Prints p50, p95 and max per run, and how many waited a whole poll.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from email import message_from_bytes, policy
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from ingest_util import acct, agency_mail, fill, rows  # noqa: E402
from mailserver import PASSWORD, MailServer, configure  # noqa: E402

from collect.forms.issuing import issue  # noqa: E402
from collect.workspace import Context, init_workspace  # noqa: E402

POLL = 60.0
AGENCY = "020004"
ME = "collect@example.test"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


class Receipts:
    """Arrival times of receipts at the SMTP server, by the Message-ID they answer."""

    def __init__(self, server: MailServer) -> None:
        self.server = server
        self.seen = 0
        self.at: dict[str, float] = {}

    def poll(self) -> None:
        taken = self.server.smtp_received[self.seen:]
        now = time.monotonic()
        for _sender, _to, data in taken:
            msg = message_from_bytes(data, policy=policy.default)
            self.at.setdefault(str(msg.get("In-Reply-To", "")).strip("<> "), now)
        self.seen += len(taken)

    def wait(self, mids: list[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not all(m in self.at for m in mids):
            self.poll()
            time.sleep(0.01)


def run(kind: str, n: int, server: MailServer, books: list[Path], receipts: Receipts) -> dict[str, object]:
    sent: dict[str, float] = {}
    for i in range(n):
        raw, mid = agency_mail(acct(AGENCY), [books[i]], to=ME, subject=f"{kind} {i}")
        sent[mid.strip("<>")] = time.monotonic()
        server.send(raw, acct(AGENCY), [ME])
        if kind == "steady":
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline:
                receipts.poll()
                time.sleep(0.01)
    receipts.wait(list(sent), POLL * 3)
    waits = [receipts.at[m] - t for m, t in sent.items() if m in receipts.at]
    return {"kind": kind, "messages": n, "answered": len(waits),
            "p50_s": round(percentile(waits, 0.5), 2), "p95_s": round(percentile(waits, 0.95), 2),
            "max_s": round(max(waits), 2), "first_s": round(waits[0], 2),
            "waited_a_poll": sum(w >= POLL for w in waits)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=35, help="returns per run (default 35)")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="collect-mail-latency-"))
    os.environ.setdefault("COLLECT_SECRET", "benchmark-secret-0123456789abcdef")
    server = MailServer(base / "srv").start()
    proc = None
    try:
        root = base / "ws"
        init_workspace(root)
        configure(root, server, user=ME, poll_seconds=POLL)
        ctx = Context.open(root)
        [issued] = issue(ctx, "covid19", "2026-10", agencies=[AGENCY]).issued
        ctx.close()
        books = [fill(issued.path, base / f"r{i}.xlsx", rows(1, prefix=f"第{i}件")) for i in range(2 * args.n)]
        log = base / "watch.log"
        env = {**os.environ, "COLLECT_MAIL_PASSWORD": PASSWORD}
        env.pop("COLLECT_WORKSPACE", None)
        with open(log, "wb") as fh:
            proc = subprocess.Popen([sys.executable, "-m", "collect", "--workspace", str(root), "watch"],
                                    stdout=fh, stderr=fh, env=env)
        while "watching" not in log.read_text(errors="replace"):
            time.sleep(0.05)
        time.sleep(2.0)  # idling
        receipts = Receipts(server)
        results = [run("steady", args.n, server, books[:args.n], receipts)]
        time.sleep(2.0)
        results.append(run("burst", args.n, server, books[args.n:], receipts))
        print(json.dumps({"poll_seconds": POLL, "results": results}, indent=2))
        print(f"\nsteady: p50 {results[0]['p50_s']} s, p95 {results[0]['p95_s']} s; burst: p50 {results[1]['p50_s']} "
              f"s, p95 {results[1]['p95_s']} s, max {results[1]['max_s']} s; waited a whole poll: "
              f"{results[0]['waited_a_poll']} + {results[1]['waited_a_poll']}")
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(30)
        server.stop()


if __name__ == "__main__":
    main()
