"""The files backend: the workspace's inbox folder (a Maildir, or .eml and workbooks dropped by hand)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from collect.mail.base import SPREADSHEET_SUFFIXES


class FilesMailbox:
    """The inbox folder: a Maildir (new/, cur/) or .eml and workbook files dropped there by hand.

    Processed ones move to inbox/processed/, failed ones to inbox/failed/ with a `.reason.txt` beside them.
    A workbook dropped by hand is not a message: its uid ends with its suffix, see `is_loose_file`.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.name = f"files:{root}"
        self.processed = root / "processed"
        self.failed = root / "failed"

    def list_new(self) -> Iterator[tuple[str, bytes]]:
        if not self.root.is_dir():
            return
        found: list[Path] = []
        for sub in ("new", "cur"):
            folder = self.root / sub
            if folder.is_dir():
                found += [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]
        found += [p for p in self.root.iterdir() if p.is_file() and not p.name.startswith(".")
                  and p.suffix.lower() in (".eml", ".zip", *SPREADSHEET_SUFFIXES)]
        found.sort(key=lambda p: (p.stat().st_mtime_ns, p.name))
        for path in found:
            try:
                data = path.read_bytes()
            except FileNotFoundError:  # taken by someone else meanwhile
                continue
            yield str(path.relative_to(self.root)), data

    @staticmethod
    def is_loose_file(uid: str) -> bool:
        """True for a workbook (or a zip of them) dropped by hand (not wrapped in a message)."""
        return Path(uid).suffix.lower() in (".zip", *SPREADSHEET_SUFFIXES) and "/" not in uid.replace("\\", "/")

    def file_key(self, uid: str) -> str:
        """A stable key for a dropped file: its name and modification time (a later re-drop is a new arrival)."""
        path = self.root / uid
        return f"file:{uid}:{path.stat().st_mtime_ns}"

    def _move(self, uid: str, target: Path) -> Path:
        source = self.root / uid
        target.mkdir(parents=True, exist_ok=True)
        name = Path(uid).name
        dest = target / name
        n = 1
        while dest.exists():
            dest = target / f"{Path(name).stem}.{n}{Path(name).suffix}"
            n += 1
        os.replace(source, dest)
        return dest

    def mark_processed(self, uid: str) -> None:
        self._move(uid, self.processed)

    def mark_failed(self, uid: str, reason: str) -> None:
        dest = self._move(uid, self.failed)
        dest.with_name(dest.name + ".reason.txt").write_text(reason + "\n", encoding="utf-8")

    def close(self) -> None:
        return None
