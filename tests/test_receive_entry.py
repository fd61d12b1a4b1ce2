"""Files entering outside mail, run as a user runs them: zips (and nested zips) in a folder, named on the command line
and dropped into the files backend's inbox; a file name that is not UTF-8."""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import SECRET, run_cli
from ingest_util import ROUND, fill, json_lines, row, triples

from collect.archive import sha256_of
from collect.forms.issuing import issue
from collect.workspace import Context, init_workspace

A, B, C, D, E = "020001", "020002", "020003", "020004", "020005"
TWO = [row("口罩採購", item=1), row("快篩試劑", item=2, category="紓困", source="中央補助")]


@dataclass
class Env:
    root: Path
    ctx: Context
    issued: dict[str, Path]
    made: Path

    def workbook(self, code: str, name: str, data: Any = TWO) -> Path:
        return fill(self.issued[code], self.made / name, data)

    def cli(self, *args: str) -> Any:
        done = run_cli("--workspace", str(self.root), *args)
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr
        return done


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    base = tmp_path_factory.mktemp("entry")
    root = base / "ws"
    mp = pytest.MonkeyPatch()
    mp.setenv("COLLECT_SECRET", SECRET)
    init_workspace(root)
    ctx = Context.open(root)
    result = issue(ctx, "covid19", ROUND, agencies=[A, B, C, D, E])
    yield Env(root, ctx, {i.agency: i.path for i in result.issued}, base / "made")
    ctx.close()
    mp.undo()


def zip_of(members: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members:
            zf.writestr(name, data)
    return buf.getvalue()


def test_a_folder_holding_a_supervisors_zip_and_a_big5_named_file(env: Env) -> None:
    """`collect ingest DIR`: the zip's two workbooks are each a submission; the Big5-named file beside it gets its
    verdict under its name decoded, and the run ends 0."""
    folder = env.made / "folder"
    folder.mkdir(parents=True)
    good = env.workbook(A, "a.xlsx").read_bytes()
    bad = fill(env.issued[B], env.made / "b.xlsx", [row("快篩試劑", item=1, approved="一千")]).read_bytes()
    units = zip_of([("單位甲.xlsx", good), ("單位乙.xlsx", bad), ("說明.txt", b"readme")])
    (folder / "所屬單位.zip").write_bytes(units)
    big5 = os.fsdecode("回報.xlsx".encode("cp950"))
    (folder / big5).write_bytes(env.workbook(C, "c.xlsx").read_bytes())
    done = env.cli("ingest", "--json", str(folder))
    lines = {d["file"]: d for d in json_lines(done.stdout)}
    assert {k: (d["verdict"], d["agency"], triples(d["findings"])) for k, d in lines.items()} == {
        "回報.xlsx": ("accepted", C, []),
        "所屬單位.zip/單位甲.xlsx": ("accepted", A, []),
        "所屬單位.zip/單位乙.xlsx": ("rejected", B, [("value.not_number", "E7", "error")]),
    }
    assert env.ctx.archive.get(sha256_of(units)) == units  # the zip itself is archived too
    again = env.cli("ingest", "--json", str(folder))  # later runs decide again (duplicates), never exit 1
    assert {d["verdict"] for d in json_lines(again.stdout)} == {"duplicate"}


def test_a_nested_zip_named_on_the_command_line(env: Env) -> None:
    """`collect ingest FILE.zip`: a zip inside the zip is opened; a zip with no workbook says so."""
    inner = zip_of([("內層.xlsx", env.workbook(D, "d.xlsx").read_bytes())])
    outer = env.made / "外層.zip"
    outer.write_bytes(zip_of([("第二層.zip", inner)]))
    empty = env.made / "沒有活頁簿.zip"
    empty.write_bytes(zip_of([("說明.txt", b"nothing")]))
    done = env.cli("ingest", "--json", str(outer), str(empty))
    lines = json_lines(done.stdout)
    assert [(d["file"], d["verdict"], d["agency"]) for d in lines] == [
        ("外層.zip/內層.xlsx", "accepted", D), ("沒有活頁簿.zip", "unreadable", None)]
    assert triples(lines[1]["findings"]) == [("file.not_spreadsheet", None, "error")]
    assert "ZIP 壓縮檔，其中沒有 Excel 活頁簿" in lines[1]["findings"][0]["message"]


def test_a_zip_dropped_into_the_files_backends_inbox(env: Env) -> None:
    """`collect fetch` with the files backend: the dropped zip's workbook is decided and the zip moved away."""
    inbox = env.root / "inbox"
    inbox.mkdir(exist_ok=True)
    (inbox / "單位.zip").write_bytes(zip_of([("戊.xlsx", env.workbook(E, "e.xlsx").read_bytes())]))
    done = env.cli("fetch")
    assert "單位.zip/戊.xlsx accepted 020005" in " ".join(done.stdout.split())
    assert not (inbox / "單位.zip").exists()
    assert env.ctx.ledger.latest_accepted("covid19", ROUND, E) is not None
