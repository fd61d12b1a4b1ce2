"""An .xls or .ods return converted once to .xlsx by LibreOffice (headless, time-limited), for its annotated copy."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

CONVERT_SECONDS = 40.0  # within the worker's 60 s per task; a file LibreOffice needs longer for keeps a value copy
_PROFILES: dict[int, Path] = {}  # one LibreOffice profile per worker process, made on its first conversion


def to_xlsx(data: bytes, kind: str, seconds: float = CONVERT_SECONDS) -> bytes | None:
    """The agency's workbook as .xlsx with its formatting and formulas, or None when LibreOffice is not installed,
    fails or runs past `seconds` (it runs under the worker's memory limit, with a profile of its own)."""
    binary = shutil.which("soffice") or shutil.which("libreoffice")
    if binary is None or kind not in ("xls", "ods"):
        return None
    profile = _PROFILES.setdefault(os.getpid(), Path(tempfile.mkdtemp(prefix="collect-lo-")))
    with tempfile.TemporaryDirectory(prefix="collect-convert-") as tmp:
        source = Path(tmp) / f"return.{kind}"
        source.write_bytes(data)
        out = Path(tmp) / "out"
        try:
            subprocess.run([binary, f"-env:UserInstallation={profile.as_uri()}", "--headless", "--norestore",
                            "--nolockcheck", "--convert-to", "xlsx", "--outdir", str(out), str(source)],
                           capture_output=True, timeout=seconds, check=False, stdin=subprocess.DEVNULL,
                           env={**os.environ, "HOME": str(profile)}, start_new_session=True)
        except (subprocess.TimeoutExpired, OSError):
            return None
        result = out / "return.xlsx"
        return result.read_bytes() if result.is_file() and result.stat().st_size else None
