"""Content-addressed, write-once storage of the raw bytes of every message and file received."""

from __future__ import annotations

import hashlib
import os
import secrets
import socket
from pathlib import Path


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_atomic(path: Path, data: bytes, mode: int | None = None) -> None:
    """Write to a temporary name, fsync and rename, so an interrupted run leaves no half-written file.

    The temporary name is this writer's own (host, process, random), so writers on several machines sharing one
    folder never write into each other's file; the rename is atomic, so a reader sees all the bytes or none."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{socket.gethostname()}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    with open(tmp, "xb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    if mode is not None:
        os.chmod(tmp, mode)
    os.replace(tmp, path)


class Archive:
    """Files stored under their SHA-256 (ab/cd/abcd…), never changed once written; fsynced before returning.

    Safe on a folder that several watchers share: the same bytes always get the same name, and each writer renames
    its own complete temporary file onto it, so concurrent writers of one file leave it whole."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path_for(self, digest: str) -> Path:
        return self.root / digest[:2] / digest[2:4] / digest

    def put(self, data: bytes) -> str:
        """Store `data` (a no-op when already there) and return its SHA-256."""
        digest = sha256_of(data)
        path = self.path_for(digest)
        if path.exists() and path.stat().st_size == len(data):
            return digest
        write_atomic(path, data, mode=0o444)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return digest

    def get(self, digest: str) -> bytes:
        return self.path_for(digest).read_bytes()

    def __contains__(self, digest: str) -> bool:
        return self.path_for(digest).exists()
