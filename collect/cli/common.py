"""What every command shares: the typer apps, the two consoles, the global options, the workspace context."""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.text import Text

if TYPE_CHECKING:  # the workspace pulls in pandas, pandera and SQLAlchemy: only commands that run need it
    from collect.workspace import Context

app = typer.Typer(
    name="collect",
    help="Issue stamped Excel forms to agencies, validate their returns, answer them, and merge the results.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)
template_app = typer.Typer(help="Work with collection templates.", no_args_is_help=True)
app.add_typer(template_app, name="template")
mail_app = typer.Typer(help="Check the mail settings.", no_args_is_help=True)
app.add_typer(mail_app, name="mail")

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

RoundOpt = Annotated[str, typer.Option("--round", "-r", help="The round, e.g. 2026-10.")]


class Options:
    """The global options, as parsed by the callback."""

    workspace: Path | None = None
    debug = False


def ctx() -> Context:
    from collect.workspace import Context

    return Context.open(Options.workspace)


@app.callback()
def main_options(
    workspace: Annotated[Path | None, typer.Option(
        "--workspace", "-w", help="The workspace folder (default: the current folder; COLLECT_WORKSPACE overrides).",
        envvar="COLLECT_WORKSPACE")] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of program failures.")] = False,
) -> None:
    """collect: the office's collections of agency spreadsheets, from issue to master report."""
    Options.workspace = workspace
    Options.debug = debug


def parse_date(text: str | None) -> date | None:
    if text is None:
        return None
    from collect.normalise import normalise_value

    value, error = normalise_value(text, "date")
    if error or not isinstance(value, date):
        raise typer.BadParameter(f"{text!r} is not a date (use 2026-11-10 or 115/11/10).")
    return value


def transport_for(c: Context) -> Any:
    """The configured backend's sender, or None for the files backend (messages stay in outbox/mail)."""
    if c.ws.settings.mail.get("backend", "files") == "files":
        return None
    from collect.mail.registry import open_transport

    return open_transport(c)


def setup_logging(debug: bool = False, stream: Any = None) -> None:
    """One line per event on stderr (journald adds its own time stamp, so this one is for people at a terminal)."""
    import logging

    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s", stream=stream or sys.stderr, force=True)
    for noisy in ("imap_tools", "exchangelib", "httpx", "httpcore", "msal", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def fail(message: str, hint: str = "") -> None:
    err.print(Text.assemble(("error: ", "red"), message))
    if hint:
        err.print(Text.assemble(("hint: ", "yellow"), hint))
    sys.exit(1)
