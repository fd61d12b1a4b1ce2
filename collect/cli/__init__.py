"""The `collect` command line: each command parses, calls one library function, renders, and sets the exit code.

One module per command group; each imports what its command needs only when the command runs, so that
`collect --help` starts without pandas, pandera or SQLAlchemy.
"""

from __future__ import annotations

import sys

from collect.cli import follow, issue, lake, receive, report, workspace
from collect.cli.common import app, err, fail
from collect.errors import CollectError

__all__ = ["app", "follow", "issue", "lake", "main", "receive", "report", "workspace"]


def main() -> None:
    """Entry point: program failures print one message and a hint (traceback only with --debug), exit 1."""
    debug = "--debug" in sys.argv
    try:
        app()
    except CollectError as exc:
        if debug:
            raise
        fail(exc.message, exc.hint)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception as exc:
        if debug:
            raise
        fail(f"an unexpected failure: {exc.__class__.__name__}: {exc}",
             "run the command again with --debug for the traceback, and report it.")
