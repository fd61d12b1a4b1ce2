"""The house by stage: imports flow one way (core, xlsx, mail, forms, receive, follow, report, then the
commands), and no module imports itself back through a cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import collect

ROOT = Path(collect.__file__).parent
# Lower layers first; a module may import its own layer or a lower one, never a higher one.
LAYERS = ["core", "xlsx", "mail", "forms", "receive", "follow", "report", "lake", "top"]
TOP = {"cli", "demo", "pipeline", "dryround", "simulate", "__main__"}


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "core"
    if module == "collect.workspace":  # the workspace context opens collections, so it sits with forms
        return "forms"
    if module == "collect.agencies":  # the agency list may be a workbook, read through collect/xlsx
        return "xlsx"
    head = parts[1]
    if head in TOP:
        return "top"
    return head if head in LAYERS else "core"


def imports_of(path: Path) -> set[str]:
    """Every collect module this file imports, at the top or inside a function (lazy imports count too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "collect"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and \
                node.module.split(".")[0] == "collect":
            found.add(node.module)
            for a in node.names:  # `from collect.receive import ingest` imports a module
                if (ROOT.parent / node.module.replace(".", "/") / f"{a.name}.py").exists():
                    found.add(f"{node.module}.{a.name}")
    return found


def graph() -> dict[str, set[str]]:
    mods = {module_name(p): p for p in ROOT.rglob("*.py")}
    return {m: {i for i in imports_of(p) if i in mods and i != m} for m, p in mods.items()}


def test_no_module_imports_a_higher_stage() -> None:
    upward = sorted(
        f"{m} ({layer_of(m)}) imports {i} ({layer_of(i)})"
        for m, deps in graph().items() for i in deps
        if LAYERS.index(layer_of(i)) > LAYERS.index(layer_of(m))
    )
    assert upward == []


def test_the_import_graph_has_no_cycles() -> None:
    g = graph()
    # package __init__ files only hold docstrings or register their own modules: leave them out of the walk.
    g = {m: {d for d in deps if not (ROOT.parent / d.replace(".", "/") / "__init__.py").exists()}
         for m, deps in g.items()}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for d in sorted(g.get(m, ())):
            if state.get(d) == 1:
                cycles.append([*stack[stack.index(d):], d])
            elif d not in state:
                visit(d)
        stack.pop()
        state[m] = 2

    for m in sorted(g):
        if m not in state:
            visit(m)
    assert cycles == []


def test_the_layer_rules_can_fail() -> None:
    """The checks above see lazy imports and real stages (guards against a walker that finds nothing)."""
    g = graph()
    assert "collect.receive.ingest" in g and "collect.forms.spec" in g["collect.receive.validate"]
    assert layer_of("collect.report.merge") == "report" and layer_of("collect.ledger") == "core"


WORKBOOK_LIBRARIES = frozenset({"openpyxl", "xlsxwriter", "python_calamine", "fastexcel", "zipfile"})


def workbook_access(path: Path) -> set[str]:
    """The workbook libraries this file imports (at the top or lazily) and "soffice" where it names LibreOffice's
    program to run it."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names} & WORKBOOK_LIBRARIES
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {node.module.split(".")[0]} & WORKBOOK_LIBRARIES
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and \
                node.value.strip().lower().rsplit("/", 1)[-1] in ("soffice", "libreoffice", "soffice.exe"):
            found.add("soffice")
    return found


def workbook_offenders() -> list[str]:
    return sorted(f"{module_name(p)}: {', '.join(sorted(libs))}" for p in ROOT.rglob("*.py")
                  if module_name(p).split(".")[:2] != ["collect", "xlsx"] and (libs := workbook_access(p)))


def test_only_the_workbook_layer_touches_workbook_files() -> None:
    """Only collect/xlsx/ imports openpyxl, xlsxwriter, python_calamine, fastexcel or zipfile, or runs soffice."""
    offenders = workbook_offenders()
    assert not offenders, "outside collect/xlsx/: " + "; ".join(offenders)


def test_the_workbook_layer_rule_can_fail(tmp_path: Path) -> None:
    """The walker sees plain, dotted and lazy imports and a LibreOffice run, and nothing in a file without them."""
    sample = tmp_path / "sample.py"
    sample.write_text("import zipfile\nfrom openpyxl.utils import get_column_letter\n"
                      "def f():\n    import python_calamine\n    return shutil.which('soffice')\n", encoding="utf-8")
    assert workbook_access(sample) == {"zipfile", "openpyxl", "python_calamine", "soffice"}
    sample.write_text('"""Converted by LibreOffice (soffice --headless)."""\nimport io\n', encoding="utf-8")
    assert workbook_access(sample) == set()
    assert "python_calamine" in workbook_access(ROOT / "xlsx" / "reader.py")
    assert workbook_offenders() == []
