"""The archive on a folder that several writers share: content-addressed, whole files, no temporary left over."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
from pathlib import Path

from collect.archive import Archive, sha256_of


def _writer(root: str, seed: int, rounds: int) -> list[str]:
    archive = Archive(Path(root))
    out = []
    for i in range(rounds):
        same = (b"shared-bytes-" * 50_000) + bytes([i % 7])  # every writer stores these ~650 kB at the same moment
        own = f"writer {seed} item {i}".encode() * 1000
        out += [archive.put(same), archive.put(own)]
    return out


def test_concurrent_writers_of_the_same_and_of_different_bytes_leave_whole_files(tmp_path: Path) -> None:
    root = tmp_path / "shared-archive"
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(6) as pool:
        results = pool.starmap(_writer, [(str(root), seed, 14) for seed in range(6)])
    digests = {d for r in results for d in r}
    assert len(digests) == 7 + 6 * 14
    files = [p for p in root.rglob("*") if p.is_file()]
    assert sorted(p.name for p in files) == sorted(digests)  # nothing else: no temporary file left over
    for p in files:
        assert hashlib.sha256(p.read_bytes()).hexdigest() == p.name
        assert p.parent == root / p.name[:2] / p.name[2:4]
        assert not os.access(p, os.W_OK) or os.geteuid() == 0  # written once: read-only
        assert p.stat().st_mode & 0o777 == 0o444


def test_the_same_bytes_get_the_same_name_and_are_not_written_again(tmp_path: Path) -> None:
    archive = Archive(tmp_path)
    digest = archive.put(b"abc")
    assert digest == sha256_of(b"abc")
    before = archive.path_for(digest).stat().st_mtime_ns
    assert archive.put(b"abc") == digest
    assert archive.path_for(digest).stat().st_mtime_ns == before
    assert archive.get(digest) == b"abc" and digest in archive


def test_threads_of_one_process_storing_the_same_bytes_do_not_trip_over_each_other(tmp_path: Path) -> None:
    """Two writers with the same process id (threads here; two machines on one share alike) each use their own
    temporary name: one temporary name per process made one writer rename the other's half-written file."""
    from concurrent.futures import ThreadPoolExecutor

    archive = Archive(tmp_path)
    data = [bytes([n]) * 3_000_000 for n in range(4)]
    with ThreadPoolExecutor(8) as pool:
        digests = list(pool.map(archive.put, [d for d in data for _ in range(8)]))
    assert set(digests) == {sha256_of(d) for d in data}
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) == 4
    assert all(hashlib.sha256(p.read_bytes()).hexdigest() == p.name for p in files)
