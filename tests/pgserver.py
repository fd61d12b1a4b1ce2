"""A private PostgreSQL for tests: Debian's server binaries (initdb, pg_ctl) on a free port in a temporary folder."""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

PG_BIN = Path(os.environ.get("COLLECT_PG_BIN", "/usr/lib/postgresql/15/bin"))
USER = "collect"


def pg_binaries() -> Path | None:
    """The folder holding initdb and pg_ctl: COLLECT_PG_BIN, Debian's newest /usr/lib/postgresql/N/bin, or PATH."""
    candidates = [PG_BIN, *sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)]
    found = shutil.which("pg_ctl")
    if found:
        candidates.append(Path(found).parent)
    return next((c for c in candidates if (c / "initdb").is_file() and (c / "pg_ctl").is_file()), None)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_server_user() -> list[str]:
    """initdb and postgres refuse to run as root: as root, run them as the `postgres` system user."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError as exc:
        raise RuntimeError("running as root and there is no `postgres` user to run the server as") from exc
    return ["runuser", "-u", "postgres", "--"]


@dataclass
class PgServer:
    """One PostgreSQL cluster: `url(db)` gives a SQLAlchemy URL; `database()` makes a fresh empty database."""

    folder: Path
    port: int
    bin: Path
    _names: Iterator[int] = field(default_factory=itertools.count)

    @property
    def data(self) -> Path:
        return self.folder / "data"

    def url(self, db: str = "postgres") -> str:
        return f"postgresql+psycopg://{USER}@127.0.0.1:{self.port}/{db}"

    def _ctl(self, *args: str) -> None:
        subprocess.run([*_as_server_user(), str(self.bin / "pg_ctl"), "-D", str(self.data), "-w", "-t", "60",
                        *args], check=True, capture_output=True, timeout=90)

    def start(self) -> None:
        opts = (f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' "
                "-c fsync=off -c full_page_writes=off -c max_connections=200")
        self._ctl("-l", str(self.folder / "server.log"), "-o", opts, "start")

    def stop(self, mode: str = "fast") -> None:
        self._ctl("-m", mode, "stop")

    def restart(self) -> None:
        """Stop the server (open connections are cut) and start it again on the same port."""
        self.stop()
        self.start()

    def database(self) -> str:
        """A new empty database; its SQLAlchemy URL."""
        import psycopg

        name = f"t{os.getpid()}_{next(self._names)}"
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user={USER} dbname=postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


@contextlib.contextmanager
def running() -> Iterator[PgServer]:
    """Initialise a cluster in a temporary folder (owned by the server's user), start it, and remove it after."""
    found = pg_binaries()
    if found is None:
        raise RuntimeError("PostgreSQL's server binaries (initdb, pg_ctl) are not installed: run .ci/run or "
                           "apt-get install postgresql")
    folder = Path(tempfile.mkdtemp(prefix="collect-pg-"))
    runner = _as_server_user()
    if runner:
        shutil.chown(folder, user="postgres")
    server = PgServer(folder, _free_port(), found)
    subprocess.run([*runner, str(found / "initdb"), "-D", str(server.data), "-U", USER, "--auth=trust", "-E",
                    "UTF8", "--locale=C.UTF-8", "-N"], check=True, capture_output=True, timeout=120)
    for attempt in range(3):
        try:
            server.start()
            break
        except subprocess.CalledProcessError:
            if attempt == 2:
                raise
            server.port = _free_port()
            time.sleep(0.5)
    try:
        yield server
    finally:
        with contextlib.suppress(Exception):
            server.stop("immediate")
        shutil.rmtree(folder, ignore_errors=True)
