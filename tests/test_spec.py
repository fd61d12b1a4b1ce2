"""The rules format: column() kinds and bounds, row and table rules, Meta, loading errors and template versions."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pandas as pd
import pandera.errors
import pytest

from collect.errors import CollectionError
from collect.forms.collection import load_collection, version_of
from collect.forms.spec import KINDS, Collection, ColumnSpec, column, form_field

HEAD = """
from datetime import date

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from collect.forms.spec import Meta, RuleEnv, column, form_field, row_rule, table_rule
"""

BOUNDS = HEAD + '''
META = Meta(title="界限", scope="public")


class Bounds(pa.DataFrameModel):
    count: Series[pd.Int64Dtype] = column("件數", "Count", kind="whole", ge=0, le=99)
    amount: Series[pd.Int64Dtype] = column("金額", kind="whole", money=True, required=False, unique=True)
    kind: Series[str] = column("類別", "Kind", kind="choice", isin=["甲", "乙"])
    note: Series[str] = column("備註", "Note", kind="text", required=False, max_length=5)
    signed: Series[pd.Timestamp] = column("簽約日", "Signed", kind="date", ge=date(2020, 1, 1),
                                          not_after_round_end=True)
    started: Series[pd.Timestamp] = column("開工日", "Started", kind="date", required=False,
                                           not_before_round_start=True)
    booked: Series[pd.Timestamp] = column("入帳日", "Booked", kind="date", required=False, within_round_year=True)
    paid: Series[pd.Timestamp] = column("付款日", "Paid", kind="date", required=False, after_round_year=True)
    share: Series[float] = column("比率", "Share", kind="formula", formula="={amount}/100")
'''

RULES = HEAD + '''
META = Meta(title="規則", scope=("020001", "020002"))


class Rules(pa.DataFrameModel):
    approved: Series[pd.Int64Dtype] = column("核定數", kind="whole")
    spent: Series[pd.Int64Dtype] = column("實支數", kind="whole", required=False)

    @row_rule("spent", "實支數不可大於核定數。", "Spent must not exceed approved.")
    def spent_within_approved(cls, df):
        return df["spent"] <= df["approved"]

    @row_rule("approved", "核定數宜為千元整數。", warning=True)
    def approved_in_thousands(cls, df):
        return df["approved"] % 1000 == 0

    @table_rule("spent", "合計不可超過 {cap}。", "The total must not exceed {cap}.")
    def total_within_cap(cls, df, env: RuleEnv):
        return True
'''


def write_rules(ws: Path, cid: str, source: str) -> Path:
    path = ws / "rules" / f"{cid}.py"
    path.write_text(source, encoding="utf-8")
    return path


def load(ws: Path, cid: str, *, need_template: bool = False) -> Collection:
    return load_collection(ws / "rules", ws / "templates_xlsx", cid, need_template=need_template)


# -- column() -----------------------------------------------------------------------------------------------------
def test_column_knows_every_kind_and_refuses_others() -> None:
    assert {"whole", "decimal", "date", "text", "choice", "formula"} <= set(KINDS)
    for kind in KINDS:
        assert column("欄", kind=kind).metadata["collect"]["kind"] == kind
    with pytest.raises(ValueError, match="kind 'money' is not one of"):
        column("金額", kind="money")


def test_column_bounds_choices_and_flags_reach_the_column_spec(workspace: Path) -> None:
    write_rules(workspace, "bounds", BOUNDS)
    coll = load(workspace, "bounds")
    cols = {c.key: c for c in coll.columns}
    assert list(cols) == ["count", "amount", "kind", "note", "signed", "started", "booked", "paid", "share"]
    count = cols["count"]
    assert (count.title, count.en, count.kind, count.required, count.ge, count.le) == ("件數", "Count", "whole",
                                                                                      True, 0, 99)
    amount = cols["amount"]
    assert (amount.en, amount.money, amount.unique, amount.required) == ("金額", True, True, False)
    assert cols["kind"].choices == ("甲", "乙") and cols["note"].max_length == 5
    assert cols["signed"].ge == pd.Timestamp(2020, 1, 1)  # a date bound becomes a Timestamp for pandera
    share = cols["share"]
    assert (share.formula, share.is_input) == ("={amount}/100", False)
    assert [c.key for c in coll.inputs] == list(cols)[:-1]
    assert coll.column("note") == cols["note"] and isinstance(cols["note"], ColumnSpec)


def test_round_relative_date_bounds_follow_the_round(workspace: Path) -> None:
    write_rules(workspace, "bounds", BOUNDS)
    coll = load(workspace, "bounds")
    bounds = {c.key: c.date_bounds("2026-10") for c in coll.columns if c.kind == "date"}
    assert bounds == {
        "signed": (date(2020, 1, 1), date(2026, 10, 31)),
        "started": (date(2026, 10, 1), None),
        "booked": (date(2026, 1, 1), date(2026, 12, 31)),
        "paid": (date(2027, 1, 1), None),
    }
    assert coll.column("signed").date_bounds("2026-Q1") == (date(2020, 1, 1), date(2026, 3, 31))
    assert coll.column("count").date_bounds("2026-10") == (None, None)


def test_the_schema_checks_the_bounds_and_the_round_end(workspace: Path) -> None:
    write_rules(workspace, "bounds", BOUNDS)
    coll = load(workspace, "bounds")
    schema = coll.schema_for("2026-10")
    assert "share" not in schema.columns  # a formula column is computed by the form, never checked as typed
    assert schema is coll.schema_for("2026-10")  # built once per round

    def frame(**over: object) -> pd.DataFrame:
        row: dict[str, object] = {"count": 1, "amount": 10, "kind": "甲", "note": "好", "signed": "2026-10-31",
                                  "started": "2026-10-01", "booked": "2026-12-31", "paid": "2027-01-01"}
        row.update(over)
        df = pd.DataFrame([row], index=[7])
        for key in ("signed", "started", "booked", "paid"):
            df[key] = pd.to_datetime(df[key])
        return df.astype({"count": "Int64", "amount": "Int64"})

    schema.validate(frame(), lazy=True)
    bad = frame(count=100, kind="丙", note="太長的備註文字", signed="2026-11-01", started="2026-09-30",
                booked="2027-01-01", paid="2026-12-31")
    with pytest.raises(pandera.errors.SchemaErrors) as raised:
        schema.validate(bad, lazy=True)
    failed = set(raised.value.failure_cases["column"])
    assert failed == {"count", "kind", "note", "signed", "started", "booked", "paid"}
    assert set(raised.value.failure_cases["index"]) == {7}  # the Excel row, as the frame's index
    with pytest.raises(pandera.errors.SchemaErrors):  # the next round's end is a month later: still one bound
        coll.schema_for("2026-09").validate(frame(), lazy=True)
    coll.schema_for("2026-11").validate(frame(signed="2026-11-30", started="2026-11-01"), lazy=True)


# -- row and table rules ------------------------------------------------------------------------------------------
def test_row_and_table_rules_are_registered_with_their_column_and_messages(workspace: Path) -> None:
    write_rules(workspace, "rules_a", RULES)
    coll = load(workspace, "rules_a")
    assert [(r.name, r.column, r.message, r.message_en, r.warning) for r in coll.rules] == [
        ("spent_within_approved", "spent", "實支數不可大於核定數。", "Spent must not exceed approved.", False),
        ("approved_in_thousands", "approved", "核定數宜為千元整數。", "核定數宜為千元整數。", True),
    ]
    # the columns each reads (a rule is not judged on a row where one of them failed its own check)
    assert [r.reads for r in coll.rules] == [frozenset({"spent", "approved"}), frozenset({"approved"})]
    assert [(t.name, t.column, t.message, t.warning) for t in coll.table_rules] == [
        ("total_within_cap", "spent", "合計不可超過 {cap}。", False)]
    # the pending lists are emptied after each file: a second collection does not inherit them
    write_rules(workspace, "plain", HEAD + 'META = Meta(title="無規則")\n\n\nclass Plain(pa.DataFrameModel):\n'
                '    x: Series[pd.Int64Dtype] = column("數", kind="whole")\n')
    plain = load(workspace, "plain")
    assert plain.rules == () and plain.table_rules == ()
    assert coll.in_scope_codes() == ["020001", "020002"] and plain.in_scope_codes() == "all"


def test_a_row_rule_is_a_pandera_check_where_missing_values_count_as_fine(workspace: Path) -> None:
    write_rules(workspace, "rules_b", RULES)
    schema = load(workspace, "rules_b").schema_for("2026-10")
    ok = pd.DataFrame({"approved": [1000, 2000, 3000], "spent": [1000, pd.NA, 0]}, index=[7, 8, 9]).astype("Int64")
    schema.validate(ok, lazy=True)
    bad = pd.DataFrame({"approved": [1000, 2500], "spent": [1001, 0]}, index=[7, 8]).astype("Int64")
    with pytest.raises(pandera.errors.SchemaErrors) as raised:
        schema.validate(bad, lazy=True)
    cases = raised.value.failure_cases
    checks = set(cases["check"])
    assert "實支數不可大於核定數。" in checks and "核定數宜為千元整數。" in checks  # error= text in "check"
    assert set(cases.loc[cases["check"] == "實支數不可大於核定數。", "index"]) == {7}


@pytest.mark.parametrize(("decorator", "what"), [("row_rule", "row rule"), ("table_rule", "table rule")])
def test_a_rule_blaming_a_column_that_is_not_a_field_is_refused(workspace: Path, decorator: str, what: str) -> None:
    env = ", env" if decorator == "table_rule" else ""
    write_rules(workspace, "blame", HEAD + f'''
META = Meta(title="錯")


class Blame(pa.DataFrameModel):
    x: Series[pd.Int64Dtype] = column("數", kind="whole")

    @{decorator}("nope", "錯。")
    def wrong(cls, df{env}):
        return df["x"] > 0
''')
    with pytest.raises(CollectionError, match=f"{what} wrong blames column 'nope', which is not a field"):
        load(workspace, "blame")


# -- Meta and the model -------------------------------------------------------------------------------------------
MODEL = '\n\nclass One(pa.DataFrameModel):\n    x: Series[pd.Int64Dtype] = column("數", kind="whole")\n'


@pytest.mark.parametrize(("source", "message"), [
    (HEAD + MODEL, r"must define META = Meta\(\.\.\.\) and exactly one pandera DataFrameModel \(found 1\)"),
    (HEAD + 'META = {"title": "x"}' + MODEL, r"must define META = Meta\(\.\.\.\)"),
    (HEAD + 'META = Meta(title="二")' + MODEL + MODEL.replace("One", "Two"), r"\(found 2\)"),
    (HEAD + 'META = Meta(title="無")\n', r"\(found 0\)"),
    (HEAD + 'META = Meta(title="欄")\n\n\nclass Bare(pa.DataFrameModel):\n    x: Series[int]\n',
     r"the field 'x' was not declared with collect\.forms\.spec\.column"),
    (HEAD + 'META = Meta(title="重", fields=(form_field("cap", "上限"), form_field("cap", "上限二")))' + MODEL,
     "META.fields names a key twice"),
    (HEAD + 'META = Meta(title="預", scope="prefill", prefill_previous=True)' + MODEL,
     "cannot also carry the previous round over"),
])
def test_meta_and_the_model_are_checked_on_loading(workspace: Path, source: str, message: str) -> None:
    path = write_rules(workspace, "meta", source)
    with pytest.raises(CollectionError, match=message) as raised:
        load(workspace, "meta")
    assert str(path) in raised.value.message
    assert raised.value.hint == CollectionError.hint  # "Run `collect check` ..."


def test_form_fields_need_a_known_kind_and_an_ascii_key() -> None:
    field = form_field("cap", "上限", money=True)
    assert (field.en, field.kind, field.defined_name) == ("上限", "whole", "COLLECT_FIELD_CAP")
    with pytest.raises(ValueError, match="whole, decimal, date or text"):
        form_field("cap", "上限", kind="choice")
    with pytest.raises(ValueError, match="lower-case ASCII"):
        form_field("上限", "上限")


def test_a_prefill_scope_has_no_fixed_agency_list(workspace: Path) -> None:
    write_rules(workspace, "byfile", HEAD + 'META = Meta(title="依檔", scope="prefill")' + MODEL)
    assert load(workspace, "byfile").in_scope_codes() == []


# -- loading errors -----------------------------------------------------------------------------------------------
def test_an_unknown_collection_names_the_known_ones_with_the_check_hint(workspace: Path) -> None:
    with pytest.raises(CollectionError) as raised:
        load(workspace, "nosuch")
    assert raised.value.message.startswith("There is no collection 'nosuch': ")
    assert "known: covid19, forward_subsidy" in raised.value.message
    assert "collect check" in raised.value.hint


def test_a_rules_file_that_fails_on_import_names_its_line_and_how_to_see_more(workspace: Path) -> None:
    path = write_rules(workspace, "crash", HEAD + '\nMETA = Meta(title="壞")\nraise RuntimeError("boom")\n')
    line = path.read_text(encoding="utf-8").splitlines().index('raise RuntimeError("boom")') + 1
    with pytest.raises(CollectionError) as raised:
        load(workspace, "crash")
    assert raised.value.message == f"The rules file {path} does not import (line {line}): RuntimeError: boom"
    assert "Fix the rules file" in raised.value.hint and "--debug" in raised.value.hint


def test_a_missing_template_is_an_error_only_when_the_template_is_needed(workspace: Path) -> None:
    write_rules(workspace, "rules_c", RULES)
    assert load(workspace, "rules_c").layout is None
    with pytest.raises(CollectionError):
        load(workspace, "rules_c", need_template=True)


# -- versions -----------------------------------------------------------------------------------------------------
def test_the_version_changes_when_the_rules_or_the_template_change(workspace: Path) -> None:
    rules = workspace / "rules" / "covid19.py"
    template = workspace / "templates_xlsx" / "covid19.xlsx"
    first = version_of(template, rules)
    assert len(first) == 12 and int(first, 16) >= 0
    assert version_of(template, rules) == first  # the same bytes, the same version
    coll = load(workspace, "covid19", need_template=True)
    assert coll.version == first and coll.layout is not None

    rules.write_text(rules.read_text(encoding="utf-8") + "\n# 一個註解也算改版\n", encoding="utf-8")
    after_rules = version_of(template, rules)
    assert after_rules != first
    assert load(workspace, "covid19", need_template=True).version == after_rules  # not the cached one

    copy = workspace / "copy.xlsx"
    shutil.copy(template, copy)
    assert version_of(copy, rules) == after_rules  # the content counts, not the path
    template.write_bytes(template.read_bytes() + b"\0")
    assert version_of(template, rules) not in (first, after_rules)
    assert version_of(workspace / "none.xlsx", rules) != after_rules  # a missing template is part of it too
