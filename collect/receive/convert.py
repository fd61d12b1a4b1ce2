"""An .xls or .ods return converted once to .xlsx by LibreOffice (headless, time-limited), for its annotated copy."""

from __future__ import annotations

from collect.xlsx import libreoffice

CONVERT_SECONDS = 40.0  # within the worker's 60 s per task; a file LibreOffice needs longer for keeps a value copy


def to_xlsx(data: bytes, kind: str, seconds: float = CONVERT_SECONDS) -> bytes | None:
    """The agency's workbook as .xlsx with its formatting and formulas, or None when LibreOffice is not installed,
    fails or runs past `seconds` (it runs under the worker's memory limit, with a profile of its own)."""
    if kind not in ("xls", "ods"):
        return None
    return libreoffice.convert_bytes(data, kind, "xlsx", seconds=seconds)
