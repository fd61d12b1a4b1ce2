"""A zip archive read defensively (the zip of workbooks an agency mails, a package sniffed for what it holds): its
members with their names decoded, read within a byte limit, and what reading a hostile zip can raise."""

from __future__ import annotations

import io
import lzma
import zipfile
import zlib
from dataclasses import dataclass, field
from types import TracebackType

# What reading a hostile or damaged zip can raise (decompressors raise their own errors).
ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, KeyError, EOFError,
              NotImplementedError, RuntimeError, zlib.error, lzma.LZMAError)


@dataclass(frozen=True)
class Member:
    """One file in the archive: its name as stored (`raw`) and decoded (`name`), its sizes, whether it is encrypted."""

    raw: str
    name: str
    size: int
    compressed: int
    encrypted: bool
    info: zipfile.ZipInfo = field(repr=False, compare=False)  # this member itself, where two share a name


class Archive:
    """A zip archive in memory, opened for reading (a ZIP_ERRORS error when it is none)."""

    def __init__(self, data: bytes) -> None:
        self._zip = zipfile.ZipFile(io.BytesIO(data))

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._zip.close()

    def names(self) -> set[str]:
        return set(self._zip.namelist())

    def size(self, name: str) -> int:
        """The size `name` declares, uncompressed."""
        return self._zip.getinfo(name).file_size

    def read(self, name: str) -> bytes:
        return self._zip.read(name)

    def members(self) -> list[Member]:
        """Every file (not folder) in the archive, in its order."""
        return [Member(i.filename, _decoded_name(i), i.file_size, i.compress_size, bool(i.flag_bits & 0x1), i)
                for i in self._zip.infolist() if not i.is_dir()]

    def read_member(self, member: Member, limit: int) -> bytes | None:
        """Read a member in chunks, stopping (None) beyond `limit` bytes whatever its header declared."""
        chunks: list[bytes] = []
        total = 0
        with self._zip.open(member.info) as fh:
            while True:
                chunk = fh.read(1 << 20)
                if not chunk:
                    break
                total += len(chunk)
                if total > limit:
                    return None
                chunks.append(chunk)
        return b"".join(chunks)


def _decoded_name(info: zipfile.ZipInfo) -> str:
    """A member's name; names without the UTF-8 flag are cp437 to zipfile but often UTF-8 or Big5."""
    if info.flag_bits & 0x800:
        return info.filename
    try:
        raw = info.filename.encode("cp437")
    except UnicodeEncodeError:
        return info.filename
    if raw.isascii():
        return info.filename
    for codec in ("utf-8", "cp950", "big5hkscs"):
        try:
            return raw.decode(codec)
        except UnicodeDecodeError:
            continue
    return info.filename
