"""Opening a workspace's parts once per command (agency list, ledger, archive) and creating new workspaces."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import collect
from collect.agencies import AgencyListError, Registry, load_agencies
from collect.archive import Archive
from collect.config import CONFIG_NAME, DEFAULT_TOML, Workspace, ensure_key, load_workspace
from collect.errors import AgencyListInvalid, ConfigError
from collect.forms.collection import collection_ids, load_collection
from collect.forms.spec import Collection
from collect.ledger import Ledger


def defaults_dir() -> Path:
    """Where the embedded defaults live: inside the installed package, or the repository root when editable."""
    packaged = Path(collect.__file__).parent / "defaults"
    if (packaged / "rules").is_dir():
        return packaged
    return Path(collect.__file__).resolve().parent.parent


@dataclass
class Context:
    """A workspace with its parts opened lazily; one per command."""

    ws: Workspace
    _collections: dict[str, Collection] = field(default_factory=dict)

    @classmethod
    def open(cls, root: str | Path | None = None) -> Context:
        return cls(load_workspace(root))

    @cached_property
    def registry(self) -> Registry:
        path = self.ws.agencies_path
        if not path.is_file():
            raise ConfigError(f"The agency list {path} does not exist ([workspace] agencies in "
                              f"{self.ws.root / CONFIG_NAME}).")
        try:
            return load_agencies(path)
        except AgencyListError as exc:
            raise AgencyListInvalid(str(exc)) from None

    @cached_property
    def ledger(self) -> Ledger:
        return Ledger(self.ws.ledger_url)

    @cached_property
    def archive(self) -> Archive:
        return Archive(self.ws.archive_dir)

    def collection(self, cid: str) -> Collection:
        if cid not in self._collections:
            self._collections[cid] = load_collection(self.ws.rules_dir, self.ws.templates_dir, cid)
        return self._collections[cid]

    def collection_ids(self) -> list[str]:
        return collection_ids(self.ws.rules_dir)

    @property
    def locale(self) -> str:
        return self.ws.settings.locale

    def close(self) -> None:
        if "ledger" in self.__dict__:
            self.ledger.close()


def init_workspace(root: Path, *, collections: list[str] | None = None) -> list[Path]:
    """Create a workspace with the sample agency list and collections; existing files are kept. Returns new files."""
    src = defaults_dir()
    root.mkdir(parents=True, exist_ok=True)
    created: list[Path] = []

    def put(target: Path, text: str | None = None, source: Path | None = None) -> None:
        if target.exists():
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        if source is not None:
            shutil.copyfile(source, target)
        else:
            target.write_text(text or "", encoding="utf-8")
        created.append(target)

    put(root / CONFIG_NAME, DEFAULT_TOML)
    put(root / "agencies.csv", source=src / "agencies.csv")
    wanted = collections if collections is not None else collection_ids(src / "rules")
    for cid in wanted:
        put(root / "rules" / f"{cid}.py", source=src / "rules" / f"{cid}.py")
        put(root / "templates_xlsx" / f"{cid}.xlsx", source=src / "templates_xlsx" / f"{cid}.xlsx")
    put(root / ".gitignore", "state/\noutbox/\ninbox/\n")
    ws = load_workspace(root)
    key = ws.key_path
    if not key.exists():
        created.append(ensure_key(ws))
    for sub in (ws.outbox_dir, ws.inbox_dir):
        sub.mkdir(parents=True, exist_ok=True)
    return created
