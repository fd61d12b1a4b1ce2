"""LibreOffice, headless: one place that finds it and converts files with it (a profile per process, a timeout)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

CONVERT_SECONDS = 40.0
_PROFILES: dict[int, Path] = {}  # one LibreOffice profile per process, made on its first conversion


def binary() -> str | None:
    """The soffice command, or None when LibreOffice is not installed."""
    return shutil.which("soffice") or shutil.which("libreoffice")


def convert(sources: Sequence[Path], to: str, outdir: Path, *, seconds: float = CONVERT_SECONDS,
            profile: Path | None = None) -> list[Path | None]:
    """Convert files in one LibreOffice run (`to` as soffice's --convert-to takes it: "xlsx", "ods", "pdf",
    'xlsx:"Calc MS Excel 2007 XML"'); each source's converted path, or None where it made none. Raises nothing for
    a failed or timed-out run: the missing outputs say so. None for all when LibreOffice is not installed."""
    soffice = binary()
    if soffice is None or not sources:
        return [None] * len(sources)
    if profile is None:
        profile = _PROFILES.setdefault(os.getpid(), Path(tempfile.mkdtemp(prefix="collect-lo-")))
    outdir.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(subprocess.TimeoutExpired, OSError):
        subprocess.run([soffice, f"-env:UserInstallation={profile.as_uri()}", "--headless", "--norestore",
                        "--nolockcheck", "--convert-to", to, "--outdir", str(outdir), *map(str, sources)],
                       capture_output=True, timeout=seconds, check=False, stdin=subprocess.DEVNULL,
                       env={**os.environ, "HOME": str(profile)}, start_new_session=True)
    ext = to.split(":", 1)[0]
    out: list[Path | None] = []
    for src in sources:
        made = outdir / f"{Path(src).stem}.{ext}"
        out.append(made if made.is_file() and made.stat().st_size else None)
    return out


def convert_bytes(data: bytes, kind: str, to: str, *, seconds: float = CONVERT_SECONDS) -> bytes | None:
    """`data` (a file of type `kind`: "xls", "ods", "xlsx") converted to `to`, or None when LibreOffice is not
    installed, fails or runs past `seconds`."""
    with tempfile.TemporaryDirectory(prefix="collect-convert-") as tmp:
        source = Path(tmp) / f"file.{kind}"
        source.write_bytes(data)
        (made,) = convert([source], to, Path(tmp) / "out", seconds=seconds)
        return made.read_bytes() if made else None
