"""Every real form under ../shared/realforms goes end to end with no hand edit: adopt, check, issue to three
agencies, every open input cell filled with a valid value, returned as openpyxl and LibreOffice .xlsx and as .ods,
ingested and accepted without a finding, and reported (benchmarks/realforms.py, run once for the module)."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.realforms import REALFORMS, STAGES, FormRun, forms, run

pytestmark = pytest.mark.xdist_group("realforms")

# form (its path under the corpus) -> the stage it stops at today; strict: a form that passes must leave this list
XFAIL: dict[str, str] = {}


def _names() -> list[str]:
    return [str(p.relative_to(REALFORMS)) for p in forms()] if REALFORMS.is_dir() else []


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, FormRun]:
    if not REALFORMS.is_dir():
        pytest.fail(f"{REALFORMS} is missing: the real forms come with ../shared beside the checkout")
    return {r.form: r for r in run(REALFORMS, tmp_path_factory.mktemp("realforms"))}


def test_the_corpus_holds_every_kind_of_file() -> None:
    names = _names()
    assert len(names) >= 23 and {Path(n).suffix for n in names} == {".xls", ".xlsx", ".ods"}
    assert set(XFAIL) <= set(names) and set(XFAIL.values()) <= set(STAGES)


@pytest.mark.parametrize("form", [
    pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=f"stops at {XFAIL[n]}")) if n in XFAIL else n
    for n in _names()])
def test_the_form_goes_end_to_end(corpus: dict[str, FormRun], form: str) -> None:
    r = corpus[form]
    assert r.stage == "done", r.line()
    assert "Traceback" not in r.message and "crashes" not in r.message


def test_what_stops_a_form_is_said_in_words_never_a_crash(corpus: dict[str, FormRun]) -> None:
    stopped = [r for r in corpus.values() if not r.done]
    assert all(r.message and "crashes" not in r.message for r in stopped), [r.line() for r in stopped]
    assert {r.form: r.stage for r in stopped if r.form in XFAIL} == {
        f: s for f, s in XFAIL.items() if f in {r.form for r in stopped}}
