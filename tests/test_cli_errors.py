"""Tests of what the user sees when the set-up is wrong: `collect check`, broken inputs, config, secrets, help."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openpyxl
import pytest
import typer.main
from conftest import run_cli
from openpyxl.workbook.defined_name import DefinedName

from collect.cli import app
from collect.workspace import init_workspace

SHEET = "填報表"
ISSUE = ("issue", "covid19", "--round", "2026-10")


def said(proc: Any) -> str:
    """stderr as one text: the console wraps long lines (see test_error_lines_are_not_wrapped)."""
    return str(proc.stderr).replace("\n", "")


def assert_failed_cleanly(proc: Any, root: Path) -> str:
    """Exit 1, a message and no traceback, and nothing issued; returns the message."""
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    assert said(proc).startswith("error: ")
    assert [p for p in (root / "outbox").rglob("*") if p.is_file()] == []
    return said(proc)


# -- collect check ---------------------------------------------------------------------------------------------
def _set_table(wb: openpyxl.Workbook, last: str) -> None:
    wb.defined_names["COLLECT_HEADER"] = DefinedName("COLLECT_HEADER", attr_text=f"'{SHEET}'!$A$6:${last}$6")
    wb.defined_names["COLLECT_DATA"] = DefinedName("COLLECT_DATA", attr_text=f"'{SHEET}'!$A$7:${last}$206")


def _renamed(wb: openpyxl.Workbook) -> None:
    wb[SHEET]["C6"] = "分類"


def _missing(wb: openpyxl.Workbook) -> None:
    wb[SHEET].delete_cols(10)  # 備註
    _set_table(wb, "I")


def _extra(wb: openpyxl.Workbook) -> None:
    wb[SHEET]["K6"] = "聯絡人"
    _set_table(wb, "K")


def _identity_on_label(wb: openpyxl.Workbook) -> None:
    """The agency-name cell named on its printed label: `check` used to pass it and `issue` then crashed."""
    wb.defined_names["COLLECT_AGENCY_NAME"].attr_text = "'填報表'!$C$2"


def _no_data(wb: openpyxl.Workbook) -> None:
    del wb.defined_names["COLLECT_DATA"]


BROKEN = {  # collection id -> (how the template is broken, what `collect check` must say about it)
    "renamed": (_renamed, ["column C", "類別", "分類"]),
    "missing": (_missing, ["備註", "has no column"]),
    "extra": (_extra, ["column K", "聯絡人", "not a field"]),
    "no_data": (_no_data, ["COLLECT_DATA", "missing"]),
    "identity_on_label": (_identity_on_label, ["COLLECT_AGENCY_NAME (C2) holds the text '機關名稱'"]),
}


@pytest.fixture(scope="module")
def broken(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace holding the shipped collections and one copy of covid19 per way of breaking its template."""
    root = tmp_path_factory.mktemp("check") / "ws"
    init_workspace(root)
    for cid, (breaks, _) in BROKEN.items():
        shutil.copyfile(root / "rules" / "covid19.py", root / "rules" / f"{cid}.py")
        wb = openpyxl.load_workbook(root / "templates_xlsx" / "covid19.xlsx")
        breaks(wb)
        wb.save(root / "templates_xlsx" / f"{cid}.xlsx")
    return root


def test_check_passes_on_the_shipped_collections(workspace: Path) -> None:
    proc = run_cli("check", cwd=workspace)
    assert proc.returncode == 0, proc.stderr
    assert "✓ covid19" in proc.stdout and "✓ property_diff" in proc.stdout
    assert proc.stderr == ""


def test_check_lists_every_broken_collection_and_exits_1(broken: Path) -> None:
    proc = run_cli("check", cwd=broken)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "✓ covid19" in proc.stdout and "✓ property_diff" in proc.stdout
    text = said(proc)
    for cid, (_, expected) in BROKEN.items():
        assert f"✗ {cid}" in text
        assert str(broken / "templates_xlsx" / f"{cid}.xlsx") in text
        for words in expected:
            assert words in text


@pytest.mark.parametrize("cid", list(BROKEN))
def test_check_names_each_kind_of_mismatch(broken: Path, cid: str) -> None:
    proc = run_cli("check", cid, cwd=broken)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    text = said(proc)
    assert f"✗ {cid}" in text
    for words in BROKEN[cid][1]:
        assert words in text
    for other in BROKEN:
        if other != cid:
            assert f"{other}.xlsx" not in text


def test_issue_refuses_a_template_without_its_defined_names(workspace: Path) -> None:
    template = workspace / "templates_xlsx" / "covid19.xlsx"
    wb = openpyxl.load_workbook(template)
    names = [n for n in wb.defined_names if n.startswith("COLLECT_")]
    assert len(names) == 7
    for name in names:
        del wb.defined_names[name]
    wb.save(template)
    text = assert_failed_cleanly(run_cli(*ISSUE, cwd=workspace), workspace)
    assert str(template) in text
    for name in ("COLLECT_HEADER", "COLLECT_DATA"):  # the identity cells are optional: the stamp identifies a return
        assert name in text
    assert "collect check" in text  # the hint


def test_identity_cells_are_optional(workspace: Path) -> None:
    """A form with no room for them is issued without visible identity cells; the stamp still names the agency."""
    template = workspace / "templates_xlsx" / "covid19.xlsx"
    wb = openpyxl.load_workbook(template)
    for name in ("COLLECT_AGENCY_CODE", "COLLECT_AGENCY_NAME", "COLLECT_SUPERVISOR", "COLLECT_PERIOD",
                 "COLLECT_DEADLINE"):
        del wb.defined_names[name]
    wb.save(template)
    assert run_cli("check", "covid19", cwd=workspace).returncode == 0
    done = run_cli(*ISSUE, cwd=workspace)
    assert done.returncode == 0, done.stderr


# -- broken inputs ---------------------------------------------------------------------------------------------
def test_a_broken_agency_list_lists_every_problem(workspace: Path) -> None:
    path = workspace / "agencies.csv"
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    assert lines[2].startswith("010001,") and lines[3].startswith("020000,")
    lines[2] = lines[2].replace(",010000,", ",999999,")  # a supervising agency that does not exist
    lines[4] = lines[4].replace("公務機關", "機關")  # an unknown kind
    lines.append(lines[5])  # a duplicate code
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    text = assert_failed_cleanly(run_cli(*ISSUE, cwd=workspace), workspace)
    assert str(path) in text
    assert "3 個問題" in text
    assert "第 3 列" in text and "999999" in text
    assert "第 5 列" in text and "機關" in text
    assert "重複" in text and lines[5].split(",")[0] in text


@pytest.mark.parametrize(("source", "expected"), [
    ("\n\ndef broken(:\n    pass\n", ["SyntaxError"]),
    ("\nfrom collect.forms.spec import no_such_helper\n", ["ImportError", "no_such_helper"]),
])
def test_a_rules_file_that_does_not_import(workspace: Path, source: str, expected: list[str]) -> None:
    rules = workspace / "rules" / "covid19.py"
    with rules.open("a", encoding="utf-8") as fh:
        fh.write(source)
    line = len(rules.read_text(encoding="utf-8").splitlines()) - (1 if "pass" in source else 0)
    for args in (ISSUE, ("check", "covid19")):
        text = assert_failed_cleanly(run_cli(*args, cwd=workspace), workspace)
        assert str(rules) in text and "does not import" in text and f"line {line}" in text
        for words in expected:
            assert words in text
    debug = run_cli("--debug", *ISSUE, cwd=workspace)
    assert debug.returncode != 0 and "Traceback" in debug.stderr  # --debug shows where it failed


def test_an_unknown_or_out_of_scope_agency_is_a_clear_error(workspace: Path) -> None:
    text = assert_failed_cleanly(run_cli(*ISSUE, "--agency", "999999", cwd=workspace), workspace)
    assert "999999" in text and "not on the agency list" in text and "collect agencies" in text
    text = assert_failed_cleanly(run_cli(*ISSUE, "--agency", "010000", "--agency", "025001", cwd=workspace),
                                 workspace)
    assert "025001" in text and "not in scope of covid19" in text


def test_an_unknown_collection_or_round_is_a_clear_error(workspace: Path) -> None:
    text = assert_failed_cleanly(run_cli("issue", "covid20", "--round", "2026-10", cwd=workspace), workspace)
    assert "covid20" in text and "covid19" in text  # names the known ones
    text = assert_failed_cleanly(run_cli("issue", "covid19", "--round", "2026-13", cwd=workspace), workspace)
    assert "2026-13" in text and "month" in text.lower()


@pytest.mark.parametrize(("rows", "expected"), [
    ("機關代碼,計畫名稱,執行率\n010000,口罩採購,0.5\n", ["columns the form does not", "執行率"]),
    ("機關代碼,計畫名稱,核定經費\n010000,口罩採購,一百萬\n", ["row 2", "核定經費", "'一百萬'"]),
    ("計畫名稱\n口罩採購\n", ["no 機關代碼 column"]),
], ids=["unknown-column", "bad-value", "no-code-column"])
def test_a_bad_prefill_file_is_a_clear_error(workspace: Path, rows: str, expected: list[str]) -> None:
    prefill = workspace / "prefill.csv"
    prefill.write_text(rows, encoding="utf-8")
    text = assert_failed_cleanly(run_cli(*ISSUE, "--prefill", str(prefill), cwd=workspace), workspace)
    assert str(prefill) in text
    for words in expected:
        assert words in text


def test_a_prefill_file_naming_agencies_out_of_scope_is_refused(workspace: Path) -> None:
    prefill = workspace / "prefill.csv"
    prefill.write_text("機關代碼,計畫名稱\n010000,口罩採購\n01000,快篩採購\n025001,防疫旅館\n", encoding="utf-8")
    text = assert_failed_cleanly(run_cli(*ISSUE, "--prefill", str(prefill), cwd=workspace), workspace)
    assert "01000" in text and "025001" in text and "not in scope of covid19" in text


# -- configuration ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("toml", "expected"), [
    ("[workspace]\nlocal = \"zh-TW\"\n", ["unknown key 'local'", "[workspace]", "expected one of", "locale"]),
    ("[round]\ndeadline_days = \"14\"\n", ["[round] deadline_days", "'14'", "expected a whole number"]),
    ("[mail]\npassword = \"hunter2\"\n",
     ["[mail] password", "secrets never go in collect.toml", "COLLECT_MAIL_PASSWORD"]),
    ("[workspace]\nlocale = \"fr\"\n", ["[workspace] locale", "'fr'", "expected one of zh-TW, en"]),
    ("[report]\nmanagers = \"boss@example.test\"\n", ["[report] managers", "expected a list"]),
    ("[workspace\nlocale = \"en\"\n", ["is not valid TOML"]),
    ("[wrkspace]\nlocale = \"en\"\n", ["unknown section [wrkspace]", "workspace"]),
], ids=["unknown-key", "wrong-type", "password", "unknown-locale", "not-a-list", "bad-toml", "unknown-section"])
def test_a_bad_collect_toml_names_the_file_key_and_what_was_expected(
        workspace: Path, toml: str, expected: list[str]) -> None:
    (workspace / "collect.toml").write_text(toml, encoding="utf-8")
    text = assert_failed_cleanly(run_cli(*ISSUE, cwd=workspace), workspace)
    assert str(workspace / "collect.toml") in text
    for words in expected:
        assert words in text
    assert "hunter2" not in text  # a secret typed into the file is not echoed to logs
    assert "hint: " in text


def test_without_a_key_issue_says_how_to_get_one(workspace: Path) -> None:
    key = workspace / "state" / "collect.key"
    key.unlink()
    no_secret = {"COLLECT_SECRET": ""}
    text = assert_failed_cleanly(run_cli(*ISSUE, cwd=workspace, env=no_secret), workspace)
    assert "COLLECT_SECRET" in text and str(key) in text and "collect init" in text
    # doing what the message says works
    assert run_cli("init", str(workspace), cwd=workspace, env=no_secret).returncode == 0
    assert key.is_file() and len(key.read_text(encoding="utf-8").strip()) >= 32
    assert key.stat().st_mode & 0o077 == 0  # readable by its owner only
    proc = run_cli(*ISSUE, "--agency", "010000", cwd=workspace, env=no_secret)
    assert proc.returncode == 0, proc.stderr
    assert len(list((workspace / "outbox" / "covid19" / "2026-10" / "issued").glob("010000-*.xlsx"))) == 1


@pytest.fixture
def elsewhere(tmp_path: Path) -> Iterator[Path]:
    """A folder that is not a workspace, to run commands from."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    yield folder


def test_the_workspace_comes_from_the_flag_the_environment_or_the_current_folder(
        workspace: Path, elsewhere: Path) -> None:
    proc = run_cli("check", cwd=elsewhere)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "is not a collect workspace" in said(proc) and "--workspace" in said(proc)
    for how in ({"env": {"COLLECT_WORKSPACE": str(workspace)}, "args": ()},
                {"env": None, "args": ("--workspace", str(workspace))},
                {"env": None, "args": ("-w", str(workspace))},
                # the flag wins over the environment
                {"env": {"COLLECT_WORKSPACE": str(elsewhere)}, "args": ("--workspace", str(workspace))}):
        proc = run_cli(*how["args"], "check", cwd=elsewhere, env=how["env"])
        assert proc.returncode == 0, (how, proc.stderr)
        assert "✓ covid19" in proc.stdout
    proc = run_cli(*ISSUE, "--agency", "010000", cwd=elsewhere, env={"COLLECT_WORKSPACE": str(workspace)})
    assert proc.returncode == 0, proc.stderr
    assert list((workspace / "outbox" / "covid19" / "2026-10" / "issued").glob("010000-*.xlsx"))
    assert not (elsewhere / "outbox").exists()


# -- help --------------------------------------------------------------------------------------------------------
def _commands() -> list[tuple[tuple[str, ...], str]]:
    """Every command and group registered on the typer app, with the first line of its help."""
    found: list[tuple[tuple[str, ...], str]] = []

    def walk(cmd: Any, path: tuple[str, ...]) -> None:
        found.append((path, (cmd.help or "").strip().splitlines()[0] if cmd.help else ""))
        for name, sub in sorted(getattr(cmd, "commands", {}).items()):
            walk(sub, (*path, name))

    walk(typer.main.get_command(app), ())
    return found


COMMANDS = _commands()


def test_every_command_is_enumerated() -> None:
    names = {" ".join(p) for p, _ in COMMANDS}
    assert {"", "init", "agencies", "check", "issue", "ingest", "reprocess", "template", "template new"} <= names


@pytest.mark.parametrize(("path", "summary"), COMMANDS, ids=[" ".join(p) or "collect" for p, _ in COMMANDS])
def test_help_of_every_command_exits_0_and_describes_it(path: tuple[str, ...], summary: str,
                                                        tmp_path: Path) -> None:
    assert summary, f"`collect {' '.join(path)}` has no help text"
    proc = run_cli(*path, "--help", cwd=tmp_path)  # help works outside a workspace
    assert proc.returncode == 0, proc.stderr
    shown = " ".join(proc.stdout.split())
    assert re.search(rf"Usage: (python -m )?collect {re.escape(' '.join(path))}".strip(), shown)
    assert " ".join(summary.split()) in shown
    if not path:
        for sub, _ in COMMANDS:
            if len(sub) == 1:
                assert re.search(rf"\b{re.escape(sub[0])}\b", shown), sub


# -- logs and pipes ----------------------------------------------------------------------------------------------
def test_error_lines_are_not_wrapped(tmp_path: Path) -> None:
    root = tmp_path / ("a-long-folder-name-as-on-a-shared-drive-" * 2) / "ws"
    init_workspace(root)
    (root / "collect.toml").write_text("[workspace]\nlocale = \"fr\"\n", encoding="utf-8")
    proc = run_cli(*ISSUE, cwd=root)
    assert proc.returncode == 1
    first = proc.stderr.splitlines()[0]
    assert first.startswith("error: ") and str(root / "collect.toml") in first and "expected one of" in first
