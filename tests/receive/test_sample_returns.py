"""The sample returns of tests/data/returns/, ingested by `collect ingest --json` in a fresh workspace: each gets
exactly the verdict and the findings (code, cell) of its <name>.expected.json (tests/data/README.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_cli
from ingest_util import json_lines

RETURNS = Path(__file__).resolve().parents[1] / "data" / "returns"
NAMES = sorted(p.stem for p in RETURNS.glob("*.xlsx"))


def test_the_samples_are_there_each_with_its_expected_findings() -> None:
    assert NAMES == ["accepted", "empty", "outside_dropdown", "roc_date", "wrong_amount"]
    assert sorted(p.name.removesuffix(".expected.json") for p in RETURNS.glob("*.expected.json")) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_a_sample_return_is_answered_as_its_expected_file_says(name: str, workspace: Path) -> None:
    expected = json.loads((RETURNS / f"{name}.expected.json").read_text(encoding="utf-8"))
    proc = run_cli("--workspace", str(workspace), "ingest", "--json", str(RETURNS / f"{name}.xlsx"))
    assert proc.returncode == 0, proc.stderr  # a rejected return is an answer, not a failure of the command
    [got] = json_lines(proc.stdout)
    assert (got["collection"], got["round"], got["agency"]) == (expected["collection"], expected["round"],
                                                                 expected["agency"])
    assert got["verdict"] == expected["verdict"]
    assert [[f["code"], f["cell"]] for f in got["findings"]] == expected["findings"]
