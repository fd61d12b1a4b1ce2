"""Shared fixtures: a fresh workspace made by `collect init`, the CLI run as a real subprocess, LibreOffice."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from collect.workspace import Context, init_workspace
from collect.xlsx import libreoffice

SECRET = "test-secret-not-for-production"


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test runs with a known stamp key and no workspace from the environment."""
    monkeypatch.setenv("COLLECT_SECRET", SECRET)
    monkeypatch.delenv("COLLECT_WORKSPACE", raising=False)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A new workspace with the sample agency list and every shipped collection."""
    root = tmp_path / "ws"
    init_workspace(root)
    return root


@pytest.fixture
def ctx(workspace: Path) -> Iterator[Context]:
    c = Context.open(workspace)
    yield c
    c.close()


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run `collect ARGS` as a user would, in a subprocess; returns the completed process (text mode)."""
    full_env = {**os.environ, "COLLECT_SECRET": SECRET, **(env or {})}
    full_env.pop("COLLECT_WORKSPACE", None) if env is None or "COLLECT_WORKSPACE" not in env else None
    return subprocess.run([sys.executable, "-m", "collect", *args], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=timeout)


def soffice() -> str:
    """The LibreOffice binary; .ci/run installs it, so its absence is a failure, not a skip."""
    found = shutil.which("soffice") or shutil.which("libreoffice")
    if not found:
        pytest.fail("LibreOffice (soffice) is not installed: run .ci/run or apt-get install libreoffice-calc-nogui")
    return found


def convert(paths: list[Path], fmt: str, out_dir: Path) -> list[Path]:
    """Convert files with one headless LibreOffice run (e.g. fmt="xlsx" or "ods"), through collect's own
    xlsx.libreoffice.convert; returns the new paths (a file it did not convert fails the test)."""
    soffice()
    made = libreoffice.convert(paths, fmt, out_dir, seconds=300, profile=out_dir / ".lo-profile")
    missing = [str(p) for p, m in zip(paths, made, strict=True) if m is None]
    if missing:
        pytest.fail(f"LibreOffice converted none of {', '.join(missing)} to {fmt}")
    return [m for m in made if m is not None]


# -- the ledger on both backends ---------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def pg_server() -> Iterator[Any]:
    """One private PostgreSQL per test process (tests/pgserver.py); .ci/run installs it, so no skip."""
    import pgserver

    with pgserver.running() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new, empty ledger's URL: a SQLite file, then a fresh database on the test PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    return str(request.getfixturevalue("pg_server").database())


def use_ledger(root: Path, url: str) -> None:
    """Point the workspace at `root` to the ledger `url` ([workspace] ledger in its collect.toml)."""
    import re

    if url.startswith("sqlite"):
        return
    path = root / "collect.toml"
    path.write_text(re.sub(r'(?m)^ledger = "".*$', f'ledger = "{url}"', path.read_text(encoding="utf-8")),
                    encoding="utf-8")


@pytest.fixture
def any_workspace(workspace: Path, ledger_url: str) -> Path:
    """The `workspace`, on each ledger in turn: its own SQLite file, then a fresh PostgreSQL database."""
    use_ledger(workspace, ledger_url)
    return workspace
