"""Loading a collection: its rules module, its template's layout, and the check that the two agree."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import traceback
from functools import cache
from pathlib import Path
from typing import Any

import pandera.pandas as pa

from collect.errors import CollectionError
from collect.forms.spec import (
    ID_RE,
    PENDING_ROW_RULES,
    PENDING_TABLE_RULES,
    Collection,
    ColumnSpec,
    Meta,
    sentence_problems,
)
from collect.forms.template import layout_problems, read_layout


def collection_ids(rules_dir: Path) -> list[str]:
    return sorted(p.stem for p in rules_dir.glob("*.py") if ID_RE.match(p.stem))


def _import_rules(cid: str, path: Path) -> Any:
    name = f"collect_rules_{cid}_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise CollectionError(f"Cannot load the rules file {path}.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    PENDING_ROW_RULES.clear()
    PENDING_TABLE_RULES.clear()
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(name, None)
        tb = traceback.extract_tb(exc.__traceback__)
        where = next((f"line {fr.lineno}" for fr in reversed(tb) if fr.filename == str(path)), "")
        raise CollectionError(
            f"The rules file {path} does not import{' (' + where + ')' if where else ''}: "
            f"{exc.__class__.__name__}: {exc}",
            "Fix the rules file; run it with `python -c 'import runpy; runpy.run_path(\"FILE\")'` to see the "
            "full error, or use --debug.",
        ) from exc
    module.__dict__["__collect_rules__"] = tuple(PENDING_ROW_RULES)
    module.__dict__["__collect_table_rules__"] = tuple(PENDING_TABLE_RULES)
    PENDING_ROW_RULES.clear()
    PENDING_TABLE_RULES.clear()
    return module


def _columns_of(model: type[pa.DataFrameModel], path: Path) -> tuple[ColumnSpec, ...]:
    schema = model.to_schema()
    out = []
    for key, col in schema.columns.items():
        meta = (col.metadata or {}).get("collect")
        if not meta or not col.title:
            raise CollectionError(f"{path}: the field {key!r} was not declared with collect.forms.spec.column(...).")
        stats = {c.name: c.statistics for c in col.checks}
        choices = stats.get("isin", {}).get("allowed_values")
        ge = stats.get("greater_than_or_equal_to", {}).get("min_value")
        le = stats.get("less_than_or_equal_to", {}).get("max_value")
        max_length = stats.get("str_length", {}).get("max_value")
        out.append(ColumnSpec(
            key=str(key), title=col.title, en=meta["en"], kind=meta["kind"], required=meta["required"],
            money=meta["money"], unique=col.unique, choices=tuple(choices) if choices else None, ge=ge, le=le,
            max_length=max_length, formula=meta["formula"], round_end=meta["round_end"],
            cumulative=meta["cumulative"], carry=meta["carry"], hint=meta["hint"], width=meta["width"],
            compute=meta.get("compute"),
            locked_prefill=meta.get("locked_prefill", False), round_start=meta.get("round_start", False),
            round_year=meta.get("round_year", False), after_year=meta.get("after_year", False),
            of=meta.get("of"), ordinal=meta.get("ordinal", False), cell=meta.get("cell"),
            count_of=meta.get("count_of"),
        ))
    return tuple(out)


def version_of(template_path: Path, rules_path: Path) -> str:
    digest = hashlib.sha256()
    for p in (template_path, rules_path):
        digest.update(p.read_bytes() if p.exists() else b"")
    return digest.hexdigest()[:12]


def load_collection(rules_dir: Path, templates_dir: Path, cid: str, *, need_template: bool = True) -> Collection:
    """Load rules/<cid>.py and (when need_template) the layout of templates_xlsx/<cid>.xlsx."""
    rules_path = rules_dir / f"{cid}.py"
    template_path = templates_dir / f"{cid}.xlsx"
    if not rules_path.is_file():
        known = ", ".join(collection_ids(rules_dir)) or "none"
        raise CollectionError(f"There is no collection {cid!r}: {rules_path} does not exist (known: {known}).")
    return _load_cached(rules_path, template_path, cid, need_template, version_of(template_path, rules_path))


@cache
def _load_cached(rules_path: Path, template_path: Path, cid: str, need_template: bool, version: str) -> Collection:
    module = _import_rules(cid, rules_path)
    meta = getattr(module, "META", None)
    models = [v for v in vars(module).values()
              if isinstance(v, type) and issubclass(v, pa.DataFrameModel) and v is not pa.DataFrameModel
              and v.__module__ == module.__name__]
    if not isinstance(meta, Meta) or len(models) != 1:
        raise CollectionError(f"{rules_path} must define META = Meta(...) and exactly one pandera DataFrameModel "
                              f"(found {len(models)}).")
    columns = _columns_of(models[0], rules_path)
    rules = tuple(module.__dict__["__collect_rules__"])
    table_rules = tuple(module.__dict__.get("__collect_table_rules__", ()))
    keys = {c.key for c in columns}
    for r in rules:
        if r.column not in keys:
            raise CollectionError(f"{rules_path}: row rule {r.name} blames column {r.column!r}, which is not a field.")
    for c in columns:
        if c.count_of is not None and c.count_of not in keys:
            raise CollectionError(f"{rules_path}: {c.key} counts the returns with a value in {c.count_of!r} "
                                  f"(count_of), which is not a field.")
    for t in table_rules:
        if t.column not in keys:
            raise CollectionError(f"{rules_path}: table rule {t.name} blames column {t.column!r}, which is not a "
                                  f"field.")
    problems = sentence_problems(meta, columns)  # Meta.sentences: each {key} a field at its cell
    if problems:
        raise CollectionError(f"{rules_path}: {problems[0]}", "Each blank of a sentence is a field of the model at "
                              "the sentence's cell (cell=\"D27\"); each box an option of its choice (isin=[...]).")
    field_keys = [f.key for f in meta.fields]
    if len(set(field_keys)) != len(field_keys):
        raise CollectionError(f"{rules_path}: META.fields names a key twice.")
    if meta.scope == "prefill" and meta.prefill_previous:
        raise CollectionError(f"{rules_path}: a collection scoped by its prefill file cannot also carry the previous "
                              f"round over (prefill_previous).")
    layout = None
    if need_template:  # without: the rules alone, so `check` can list a broken template's every problem
        layout = read_layout(template_path, columns, meta.fields, meta.shape)
    hook = getattr(module, "sample_rows", None)
    return Collection(cid, meta, models[0], columns, rules, rules_path, template_path, version, layout, table_rules,
                      hook if callable(hook) else None)


def check(rules_dir: Path, templates_dir: Path, cid: str) -> list[str]:
    """Every mismatch between rules/<cid>.py and templates_xlsx/<cid>.xlsx; [] when they agree."""
    coll = load_collection(rules_dir, templates_dir, cid, need_template=False)
    return layout_problems(coll.template_path, coll.columns, coll.meta.fields, coll.meta.shape)[1]
