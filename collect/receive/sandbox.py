"""A pool of worker processes that survives tasks which crash, hang or exhaust memory."""

from __future__ import annotations

import contextlib
import importlib
import multiprocessing
import os
import resource
import signal
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from types import TracebackType
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

# Imported once in the forkserver (and again, cheaply, in each worker) so that a replaced worker starts fast: the
# workbook layer's reader (python-calamine) and copier (openpyxl) with the libraries they wrap.
DEFAULT_PRELOAD: tuple[str, ...] = ("collect.xlsx.reader", "collect.xlsx.copies", "msoffcrypto", "olefile", "pandas")

# A task that kills its worker this many times is given up on as Crashed.
MAX_DEATHS = 2


@dataclass(frozen=True)
class Limits:
    """Limits applied to every worker process and task."""

    memory_bytes: int = 1_500_000_000  # RLIMIT_AS of each worker
    seconds: float = 60.0  # wall time per task
    max_file_bytes: int = 50_000_000  # a bytes item larger than this is not sent to a worker


class Crashed(Exception):
    """The worker died (signal, abort, MemoryError) on this task, every time it was tried."""


class TimedOut(Exception):
    """The task ran past the wall-time limit; its worker was killed."""


class WorkerError(Exception):
    """Stands in for a task's exception (or result) that could not be sent back from the worker."""


class TooLarge(Exception):
    """A bytes item exceeded Limits.max_file_bytes and was not run."""


def _worker_main(conn: Connection, memory_bytes: int, preload: tuple[str, ...]) -> None:
    """Worker loop: receive (task id, fn, item), send back (task id, status, payload)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C is the parent's business
    for name in preload:
        with contextlib.suppress(Exception):
            importlib.import_module(name)
    if memory_bytes > 0:
        _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        cap = memory_bytes if hard == resource.RLIM_INFINITY else min(memory_bytes, hard)
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        except BaseException as exc:  # the task could not be unpickled here
            failure = WorkerError(f"task could not be received: {type(exc).__name__}: {exc}")
            conn.send((None, "error", failure))
            continue
        if message is None:
            return
        task_id, fn, item = message
        try:
            result = fn(item)
        except MemoryError:
            # The worker's heap may be unusable now: report it as a death and leave.
            with contextlib.suppress(BaseException):
                conn.send((task_id, "memory", None))
            os._exit(70)
        except BaseException as exc:
            _send(conn, task_id, "error", exc)
        else:
            _send(conn, task_id, "ok", result)


def _send(conn: Connection, task_id: int, status: str, payload: object) -> None:
    try:
        conn.send((task_id, status, payload))
    except MemoryError:
        os._exit(70)
    except BaseException as exc:  # unpicklable payload
        what = "exception" if status == "error" else "result"
        shown = f"{type(payload).__name__}: {payload}" if status == "error" else type(payload).__name__
        conn.send((task_id, "error", WorkerError(f"{what} could not be sent back ({shown}); {exc}")))


class _Worker:
    """One worker process and the task it is running."""

    def __init__(self, ctx: Any, limits: Limits, preload: tuple[str, ...]) -> None:
        parent_end, child_end = ctx.Pipe(duplex=True)
        self.conn: Connection = parent_end
        self.process = ctx.Process(
            target=_worker_main, args=(child_end, limits.memory_bytes, preload), daemon=True,
            name="collect-sandbox-worker",
        )
        self.process.start()
        child_end.close()
        self.task: int | None = None
        self.deadline = 0.0

    def kill(self) -> None:
        with contextlib.suppress(Exception):
            self.process.kill()
        self.process.join(timeout=5)
        with contextlib.suppress(Exception):
            self.conn.close()

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.send(None)
        self.process.join(timeout=2)
        if self.process.is_alive():
            self.kill()
        with contextlib.suppress(Exception):
            self.conn.close()

    def death_reason(self) -> str:
        self.process.join(timeout=5)
        code = self.process.exitcode
        if code is None:
            return "worker stopped answering"
        if code < 0:
            try:
                return f"worker killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"worker killed by signal {-code}"
        if code == 70:
            return "worker ran out of memory"
        return f"worker exited with status {code}"


class Sandbox:
    """Run a picklable function over items in worker processes with memory and time limits.

    Each worker runs one task at a time, so a worker that dies is blamed on exactly the task it was running;
    the other workers (and their tasks) carry on. A dead or hung worker is replaced by a new one.
    """

    def __init__(
        self,
        workers: int | None = None,
        limits: Limits = Limits(),
        preload: Sequence[str] = DEFAULT_PRELOAD,
    ) -> None:
        self.size = max(1, workers or os.cpu_count() or 1)
        self.limits = limits
        self.preload = tuple(preload)
        self._ctx: Any = None
        self._workers: list[_Worker] = []
        self.started = 0  # worker processes started so far (the pool is reused across map calls)

    def __enter__(self) -> Sandbox:
        self._start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _context(self) -> Any:
        if self._ctx is None:
            methods = multiprocessing.get_all_start_methods()
            ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
            if ctx.get_start_method() == "forkserver":
                ctx.set_forkserver_preload(list(self.preload))
            self._ctx = ctx
        return self._ctx

    def warm(self) -> None:
        """Start the forkserver, which imports the preloaded modules, without waiting for it: workers started
        later (by the first map) then come up at once."""
        if self._context().get_start_method() == "forkserver":
            from multiprocessing import forkserver

            forkserver.ensure_running()

    def _new_worker(self) -> _Worker:
        self.started += 1
        return _Worker(self._context(), self.limits, self.preload)

    def _start(self) -> None:
        while len(self._workers) < self.size:
            self._workers.append(self._new_worker())

    def close(self) -> None:
        """Stop all workers; the sandbox starts new ones if used again."""
        workers, self._workers = self._workers, []
        for worker in workers:
            worker.stop()

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R | Crashed | TimedOut | BaseException]:
        """fn(item) for every item, in input order; a failed item gets its exception object instead."""
        return list(self.imap(fn, items))

    def imap(self, fn: Callable[[T], R], items: Sequence[T]) -> Iterator[R | Crashed | TimedOut | BaseException]:
        """Like map, but yields each result (in input order) as soon as it is ready, so the caller can use it
        while the workers go on. Do not start another map on this sandbox before this one is exhausted."""
        results: dict[int, R | BaseException] = {}
        next_out = 0
        deaths: dict[int, list[str]] = {}
        pending: deque[int] = deque()
        for index, item in enumerate(items):
            if isinstance(item, bytes | bytearray | memoryview) and len(item) > self.limits.max_file_bytes:
                limit = self.limits.max_file_bytes
                results[index] = TooLarge(f"{len(item)} bytes, over the limit of {limit}")
            else:
                pending.append(index)
        if pending:
            self._start()
        try:
            while pending or any(w.task is not None for w in self._workers):
                self._dispatch(fn, items, pending, results)
                busy = [w for w in self._workers if w.task is not None]
                if not busy:
                    continue
                timeout = max(0.0, min(w.deadline for w in busy) - time.monotonic())
                ready = wait([w.conn for w in busy] + [w.process.sentinel for w in busy], timeout=timeout)
                now = time.monotonic()
                for worker in busy:
                    if worker.conn in ready:
                        self._collect(worker, pending, results, deaths)
                    elif worker.process.sentinel in ready:
                        self._died(worker, worker.death_reason(), pending, results, deaths)
                    elif now >= worker.deadline:
                        assert worker.task is not None
                        results[worker.task] = TimedOut(f"task ran past {self.limits.seconds:g} s; worker killed")
                        self._replace(worker)
                while next_out in results:
                    self._dispatch(fn, items, pending, results)  # keep the workers busy while the caller works
                    yield results.pop(next_out)
                    next_out += 1
        finally:
            for worker in self._workers:  # abandoned early: in-flight tasks must not leak into the next map
                if worker.task is not None:
                    self._replace(worker)
        while next_out < len(items):
            yield results.pop(next_out)
            next_out += 1

    def _dispatch(
        self, fn: Callable[[T], R], items: Sequence[T], pending: deque[int],
        results: dict[int, R | BaseException],
    ) -> None:
        for worker in self._workers:
            if not pending:
                return
            if worker.task is not None:
                continue
            if not worker.process.is_alive():  # died while idle
                worker = self._replace(worker)
            index = pending.popleft()
            try:
                worker.conn.send((index, fn, items[index]))
            except (BrokenPipeError, ConnectionError, EOFError):
                pending.appendleft(index)
                self._replace(worker)
                continue
            except Exception as exc:  # fn or item cannot be pickled
                results[index] = exc
                continue
            worker.task = index
            worker.deadline = time.monotonic() + self.limits.seconds

    def _collect(
        self, worker: _Worker, pending: deque[int], results: dict[int, R | BaseException],
        deaths: dict[int, list[str]],
    ) -> None:
        task = worker.task
        assert task is not None
        try:
            task_id, status, payload = worker.conn.recv()
        except (EOFError, OSError):
            self._died(worker, worker.death_reason(), pending, results, deaths)
            return
        except Exception as exc:  # the result arrived but cannot be unpickled here
            results[task] = WorkerError(f"result could not be received: {type(exc).__name__}: {exc}")
            worker.task = None
            return
        if status == "memory":
            self._died(worker, "worker ran out of memory", pending, results, deaths)
            return
        # One task per worker: whatever it answers is about its task (task_id is None when the worker
        # could not even unpickle the task).
        del task_id
        results[task] = payload if status == "ok" else (
            payload if isinstance(payload, BaseException) else WorkerError(repr(payload))
        )
        worker.task = None

    def _died(
        self, worker: _Worker, reason: str, pending: deque[int], results: dict[int, R | BaseException],
        deaths: dict[int, list[str]],
    ) -> None:
        task = worker.task
        assert task is not None
        deaths.setdefault(task, []).append(reason)
        if len(deaths[task]) >= MAX_DEATHS:
            results[task] = Crashed("; ".join(deaths[task]))
        else:
            pending.appendleft(task)  # try once more, in a fresh worker
        self._replace(worker)

    def _replace(self, worker: _Worker) -> _Worker:
        worker.kill()
        fresh = self._new_worker()
        self._workers[self._workers.index(worker)] = fresh
        return fresh
