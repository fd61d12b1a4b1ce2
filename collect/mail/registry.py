"""Every mail backend by its [mail] backend name, in one table: how to open its mailbox and its transport."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from collect.errors import ConfigError
from collect.mail.base import Mailbox, Transport
from collect.mail.settings import MailConfig


@dataclass(frozen=True)
class Backend:
    """How to open one backend's mailbox and transport; `transport` is None where nothing is sent (files)."""

    mailbox: Callable[[MailConfig, Any], Mailbox]  # (settings, the workspace) -> mailbox
    transport: Callable[[MailConfig], Transport] | None


def _files(_cfg: MailConfig, ws: Any) -> Mailbox:
    from collect.mail.files import FilesMailbox

    return FilesMailbox(ws.inbox_dir)


def _imap(cfg: MailConfig, _ws: Any) -> Mailbox:
    from collect.mail.imap import ImapMailbox

    return ImapMailbox(cfg)


def _smtp(cfg: MailConfig) -> Transport:
    from collect.mail.imap import SmtpTransport

    return SmtpTransport(cfg)


def _graph(cfg: MailConfig, _ws: Any) -> Mailbox:
    from collect.mail.graph import GraphClient, GraphMailbox

    return GraphMailbox(GraphClient.from_config(cfg), cfg)


def _graph_send(cfg: MailConfig) -> Transport:
    from collect.mail.graph import GraphClient, GraphTransport

    return GraphTransport(GraphClient.from_config(cfg))


def _ews(cfg: MailConfig, _ws: Any) -> Mailbox:
    from collect.mail.ews import EwsMailbox

    return EwsMailbox(cfg)


def _ews_send(cfg: MailConfig) -> Transport:
    from collect.mail.ews import EwsTransport

    return EwsTransport(cfg)


BACKENDS: dict[str, Backend] = {
    "files": Backend(_files, None),
    "imap": Backend(_imap, _smtp),
    "graph": Backend(_graph, _graph_send),
    "ews": Backend(_ews, _ews_send),
}


def backend(cfg: MailConfig) -> Backend:
    found = BACKENDS.get(cfg.backend)
    if found is None:
        raise ConfigError(f"[mail] backend = {cfg.backend!r}: expected {', '.join(BACKENDS)}.")
    return found


def open_mailbox(ctx: Any) -> Mailbox:
    """The mailbox [mail] backend names, for the workspace `ctx` (collect.workspace.Context)."""
    cfg = MailConfig.of(ctx.ws.settings)
    return backend(cfg).mailbox(cfg, ctx.ws)


def open_transport(ctx: Any) -> Transport | None:
    """The sender for [mail] backend; None for files (outgoing mail stays as .eml in outbox/mail)."""
    cfg = MailConfig.of(ctx.ws.settings)
    make = backend(cfg).transport
    return None if make is None else make(cfg)
