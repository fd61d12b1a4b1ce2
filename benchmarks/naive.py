"""The naive way a competent analyst would write each step, and the fastest bare parse of the same files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any


def prepare(kind: str, args: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    """The step `kind` with its untimed set-up done (see benchmarks.measure)."""
    if kind == "naive_issue":
        return _issue(args)
    if kind == "naive_ingest":
        return _ingest(args)
    if kind == "naive_report":
        return _report(args)
    if kind in ("bare_fastexcel", "bare_calamine"):
        return _bare(kind, args)
    raise ValueError(kind)


def _issue(args: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    """openpyxl load, modify and save per agency: identity cells, input cells unlocked, sheet protected, the
    stamp in custom properties and a very hidden sheet."""
    import hashlib
    import hmac

    import openpyxl
    from openpyxl.packaging.custom import StringProperty
    from openpyxl.styles import Protection

    from collect.rounds import roc_round_label
    from collect.workspace import Context

    ctx = Context.open(args["workspace"])
    coll = ctx.collection(args["collection"])
    lay = coll.layout
    assert lay is not None
    agencies = list(ctx.registry.in_scope("all"))
    out = Path(args["out"])
    out.mkdir(parents=True, exist_ok=True)
    secret = args["secret"].encode()
    ident = lay.identity
    inputs = [lay.first_col + i for i, c in enumerate(coll.columns) if c.is_input]

    def run() -> dict[str, Any]:
        for agency in agencies:
            wb = openpyxl.load_workbook(coll.template_path)
            ws = wb[lay.sheet]
            sup = ctx.registry.supervisor_of(agency.code)
            ws[ident["COLLECT_AGENCY_CODE"]] = agency.code
            ws[ident["COLLECT_AGENCY_NAME"]] = agency.name
            ws[ident["COLLECT_SUPERVISOR"]] = sup.name
            ws[ident["COLLECT_PERIOD"]] = roc_round_label(args["round"])
            ws[ident["COLLECT_DEADLINE"]] = "2026/11/10"
            for row in ws.iter_rows(min_row=lay.data_first_row, max_row=lay.data_last_row):
                for cell in row:
                    if cell.column in inputs:
                        cell.protection = Protection(locked=False)
            ws.protection.sheet = True
            token = hmac.new(secret, f"{coll.id}|{args['round']}|{agency.code}".encode(), hashlib.sha256).hexdigest()
            fields = {"collection": coll.id, "round": args["round"], "agency": agency.code,
                      "version": coll.version, "token": token[:32]}
            hidden = wb.create_sheet("_collect")
            for i, (name, value) in enumerate(fields.items(), start=1):
                hidden.cell(i, 1, name)
                hidden.cell(i, 2, value)
                wb.custom_doc_props.append(StringProperty(name=f"collect.{name}", value=value))  # type: ignore[attr-defined]
            hidden.sheet_state = "veryHidden"
            wb.save(out / f"{agency.code}.xlsx")
        return {"files": len(agencies), "rows": len(agencies)}

    return run


def _ingest(args: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    """pandas.read_excel(engine="openpyxl") per file, columns renamed to the rules' keys, then the collection's
    pandera schema (lazy) on each frame; the failure cases are counted."""
    import pandas as pd
    import pandera.errors

    from collect.workspace import Context

    ctx = Context.open(args["workspace"])
    coll = ctx.collection(args["collection"])
    lay = coll.layout
    assert lay is not None
    schema = coll.schema_for(args["round"])
    titles = {c.title: c.key for c in coll.columns}
    files = sorted(Path(args["folder"]).glob("*.xlsx"))

    def run() -> dict[str, Any]:
        failures = rows = 0
        for path in files:
            frame = pd.read_excel(path, sheet_name=lay.sheet, header=lay.header_row - 1, engine="openpyxl")
            frame = frame.rename(columns=titles)[[c.key for c in coll.columns]].dropna(how="all")
            rows += len(frame)
            try:
                schema.validate(frame, lazy=True)
            except pandera.errors.SchemaErrors as exc:
                failures += len(exc.failure_cases)
        return {"files": len(files), "rows": rows, "findings": failures}

    return run


def _report(args: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    """The same merged rows (collect.report.merge) into one openpyxl workbook in normal mode: header, every row with
    money and date formats, frozen header and autofilter; saved."""
    import openpyxl
    import pandas as pd
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    from collect.report.merge import merge
    from collect.workspace import Context

    ctx = Context.open(args["workspace"])
    out = Path(args["out"])
    out.parent.mkdir(parents=True, exist_ok=True)

    def run() -> dict[str, Any]:
        merged = merge(ctx, args["collection"], args["round"])
        inp = merged.report
        wb = openpyxl.Workbook()
        ws = wb.active
        assert ws is not None
        ws.title = "明細"
        keys = ["agency", "agency_name", "supervisor_name", *(c.key for c in inp.columns)]
        ws.append(["機關代碼", "機關名稱", "主管機關", *(c.title for c in inp.columns)])
        for cell in ws[1]:
            cell.font = Font(bold=True)
        formats = {3 + i: ("#,##0" if c.money else "yyyy/mm/dd" if c.kind == "date" else None)
                   for i, c in enumerate(inp.columns)}
        for record in inp.rows[keys].itertuples(index=False):
            ws.append([None if v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and v != v)
                       else (v.to_pydatetime() if isinstance(v, pd.Timestamp) else v) for v in record])
        for col, fmt in formats.items():
            if fmt:
                for (cell,) in ws.iter_rows(min_row=2, min_col=col + 1, max_col=col + 1):
                    cell.number_format = fmt
        ws.freeze_panes = "D2"
        ws.auto_filter.ref = f"A1:{get_column_letter(len(keys))}{ws.max_row}"
        wb.save(out)
        return {"files": 1, "rows": len(inp.rows), "bytes": out.stat().st_size}

    return run


def _bare(kind: str, args: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    """Only parse the data sheet of every file, one after the other: fastexcel or python-calamine."""
    files = sorted(Path(args["folder"]).glob("*.xlsx"))
    sheet = args["sheet"]
    if kind == "bare_fastexcel":
        import fastexcel

        def parse(path: Path) -> int:
            return int(fastexcel.read_excel(path).load_sheet(sheet).height)
    else:
        from python_calamine import CalamineWorkbook

        def parse(path: Path) -> int:
            return len(CalamineWorkbook.from_path(str(path)).get_sheet_by_name(sheet).to_python())

    def run() -> dict[str, Any]:
        rows = sum(parse(p) for p in files)
        return {"files": len(files), "rows": args["files"] * args["rows_per_file"], "cells_rows": rows}

    return run
