"""The lake on disk: state/lake/, one Parquet file per (collection, round) partition, and the ledger's tables beside.

    state/lake/rows/collection=<id>/round=<round>/data.parquet     the counting return's rows of every agency
    state/lake/history/collection=<id>/round=<round>/data.parquet  every accepted version, `counts` says which counts
    state/lake/submissions.parquet  findings.parquet  agencies.parquet  rounds.parquet   the ledger, as tables

`sync` brings it up to date: a partition is rewritten only when what counts in its round changed (a resend
accepted, a sign-off recorded, a return sent back), each file written to a temporary name and renamed, so a crash
never leaves half a partition and a reader sees the old partition or the new one.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import sqlalchemy as sa

from collect.archive import write_atomic
from collect.errors import CollectError
from collect.forms.signoff_book import round_counts
from collect.forms.spec import Collection
from collect.ledger import SubmissionRow, parse_time
from collect.ledger import findings as findings_table
from collect.ledger import rounds as rounds_table
from collect.ledger import submissions as submissions_table
from collect.report.merge import report_columns
from collect.rounds import TAIPEI, roc_round_label
from collect.states import Verdict
from collect.workspace import Context

LAKE_VERSION = 1  # raised when a partition's columns change: every partition is then written again
ROWS, HISTORY = "rows", "history"
LEDGER_TABLES = ("submissions", "findings", "agencies", "rounds")
# the columns every row of the lake starts with, before the collection's own (English keys, zh-TW titles)
HEAD = {"collection": "表單", "round": "期別", "agency": "機關代碼", "agency_name": "機關名稱",
        "supervisor": "主管機關代碼", "supervisor_name": "主管機關", "receipt": "收件編號",
        "received_at": "收件時間", "accepted_at": "通過時間", "row": "列"}


@dataclass(frozen=True)
class SyncResult:
    """What `sync` did: the partitions it wrote again, of how many rounds, in how long."""

    rebuilt: tuple[tuple[str, str], ...]
    rounds: int
    seconds: float


def lake_dir(ctx: Context) -> Path:
    return ctx.ws.state_dir / "lake"


def partition_path(ctx: Context, table: str, cid: str, round_id: str) -> Path:
    return lake_dir(ctx) / table / f"collection={cid}" / f"round={round_id}" / "data.parquet"


def counting_returns(ctx: Context, cid: str, round_id: str) -> dict[str, SubmissionRow]:
    """Agency -> the return that counts for it in the round, as collect/counting.py decides for the report too
    (the latest accepted, not sent back, signed off where the collection requires it)."""
    return {a: n.current for a, n in round_counts(ctx, cid, round_id).items() if n.counts and n.current is not None}


def _taipei(text: str | None) -> datetime | None:
    """A ledger time (ISO, UTC) as Taipei wall-clock time: what the office reads, without a time-zone column."""
    moment = parse_time(text)
    return moment.astimezone(TAIPEI).replace(tzinfo=None) if moment else None


def _write(path: Path, table: pa.Table) -> None:
    buf = io.BytesIO()
    pq.write_table(table, buf)
    write_atomic(path, buf.getvalue())


def _fingerprint(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, ensure_ascii=False, sort_keys=True, default=str).encode()).hexdigest()


def _manifest_path(ctx: Context) -> Path:
    return lake_dir(ctx) / "manifest.json"


def _manifest(ctx: Context) -> dict[str, str]:
    path = _manifest_path(ctx)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def sync(ctx: Context, collection: str | None = None) -> SyncResult:
    """Bring the lake up to date with the ledger: every issued round's partitions (of one collection, or all)
    whose counting returns changed, then the ledger's tables. Returns what was written."""
    started = time.perf_counter()
    rebuilt: list[tuple[str, str]] = []
    with ctx.ledger.claim("lake", wait=True), ctx.ledger.snapshot():
        manifest = _manifest(ctx)
        subs = _ledger_rows(ctx, submissions_table)
        rounds = [r for r in ctx.ledger.all_rounds() if collection is None or r["collection"] == collection]
        counted: set[str] = set()
        for info in rounds:
            cid, round_id = info["collection"], info["round"]
            try:
                coll = ctx.collection(cid)
            except CollectError:  # rules removed from the workspace: its partitions stay as they were
                continue
            counting = counting_returns(ctx, cid, round_id)
            counted |= {s.receipt for s in counting.values() if s.receipt}
            accepted = [s for s in subs if s["collection"] == cid and s["round"] == round_id
                        and s["verdict"] == Verdict.ACCEPTED and s["agency"]]
            key = f"{cid}/{round_id}"
            fp = _fingerprint({"v": LAKE_VERSION, "columns": [(c.key, c.kind) for c in report_columns(coll)],
                               "counting": sorted((a, s.receipt) for a, s in counting.items()),
                               "accepted": [(s["receipt"], s["frame_path"]) for s in accepted],
                               "agencies": _heads(ctx, [s["agency"] for s in accepted])})
            paths = [partition_path(ctx, t, cid, round_id) for t in (ROWS, HISTORY)]
            if manifest.get(key) == fp and all(p.is_file() for p in paths):
                continue
            history = round_table(ctx, coll, round_id, accepted, {s.receipt for s in counting.values()})
            counts = history.column("counts").to_pylist()
            current = history.filter(pa.array(counts, pa.bool_())).drop_columns(["counts"])
            _write(paths[0], current)
            _write(paths[1], history)
            manifest[key] = fp
            rebuilt.append((cid, round_id))
        _write_ledger_tables(ctx, subs, counted if collection is None else None)
        write_atomic(_manifest_path(ctx), json.dumps(manifest, ensure_ascii=False, indent=1).encode("utf-8"))
    return SyncResult(tuple(rebuilt), len(rounds), time.perf_counter() - started)


def _heads(ctx: Context, codes: Iterable[str]) -> list[tuple[str, str, str, str]]:
    """(agency, its name, supervising agency, its name) for each code on the agency list, sorted."""
    reg = ctx.registry
    out = set()
    for code in codes:
        agency = reg.get(code)
        if agency is not None:
            sup = reg.supervisor_of(code)
            out.add((code, agency.name, sup.code, sup.name))
    return sorted(out)


ARROW_TYPES = {"whole": pa.int64(), "date": pa.date32(), "time": pa.timestamp("s"), "rate": pa.float64(),
               "decimal": pa.float64(), "text": pa.string(), "bool": pa.bool_()}
# Arrow to pandas for the formula columns: whole numbers stay exact (nullable Int64), as the master report computes
_PANDAS_TYPES = {pa.int64(): pd.Int64Dtype(), pa.float64(): pd.Float64Dtype()}


def _type(kind: str) -> pa.DataType:
    return ARROW_TYPES.get(kind, pa.string())


def round_table(ctx: Context, coll: Collection, round_id: str, accepted: Sequence[dict[str, Any]],
                counting: set[str | None]) -> pa.Table:
    """Every accepted version's rows of one round (oldest first), each with its agency, receipt and times, and
    `counts` true on the rows of the return that counts: one Arrow concatenation of the stored frames."""
    columns = report_columns(coll)
    keys = [c.key for c in columns]
    heads = {h[0]: h for h in _heads(ctx, [s["agency"] for s in accepted])}
    tables: list[pa.Table] = []
    per: list[dict[str, Any]] = []
    for s in accepted:
        head = heads.get(s["agency"])
        if head is None or not s["frame_path"]:
            continue
        table = pq.ParquetFile(ctx.ws.state_dir / s["frame_path"]).read(use_threads=False)  # small files
        if not table.num_rows:
            continue
        tables.append(table.select([k for k in ("_row", *keys) if k in table.column_names])
                      .replace_schema_metadata(None))
        per.append({"collection": coll.id, "round": round_id, "agency": head[0], "agency_name": head[1],
                    "supervisor": head[2], "supervisor_name": head[3], "receipt": s["receipt"],
                    "received_at": _taipei(s["received_at"]), "accepted_at": _taipei(s["processed_at"]),
                    "counts": s["receipt"] in counting})
    data = pa.concat_tables(tables, promote_options="permissive") if tables else pa.table({})
    which = pa.array(np.repeat(np.arange(len(tables), dtype=np.int32), [t.num_rows for t in tables]))
    kinds = {k: "time" if k.endswith("_at") else "text" for k in HEAD} | {"row": "whole", "counts": "bool"}
    arrays: dict[str, pa.Array] = {}
    for key, kind in kinds.items():
        if key == "row":
            arrays[key] = _cast(data.column("_row") if "_row" in data.column_names else None, kind, len(which))
        else:
            arrays[key] = pc.take(pa.array([h[key] for h in per], _type(kind)), which)
    computed = {c.key: c for c in coll.computed}
    frame = data.select([k for k in data.column_names if k != "_row"]).to_pandas(
        types_mapper=_PANDAS_TYPES.get) if computed and len(which) else None
    for rc in columns:
        if frame is not None and rc.key in computed:  # as the master report: from the row's cells, not the cache
            arrays[rc.key] = _array(computed[rc.key].compute(frame), rc.kind)  # type: ignore[misc]
        else:
            arrays[rc.key] = _cast(data.column(rc.key) if rc.key in data.column_names else None, rc.kind, len(which))
    fields = [pa.field(k, arrays[k].type, metadata={"title": t}) for k, t in HEAD.items()]
    fields += [pa.field(rc.key, arrays[rc.key].type, metadata={"title": rc.title, "kind": rc.kind,
                                                               "money": str(rc.money).lower()}) for rc in columns]
    fields.append(pa.field("counts", pa.bool_(), metadata={"title": "計入"}))
    meta = {"collection": coll.id, "collection_title": coll.title, "round": round_id,
            "round_label": roc_round_label(round_id)}
    order = [*HEAD, *keys, "counts"]
    return pa.Table.from_arrays([arrays[k] for k in order], schema=pa.schema(fields, metadata=meta))


def _cast(column: pa.ChunkedArray | None, kind: str, length: int) -> pa.Array | pa.ChunkedArray:
    """A stored column as its kind's Arrow type (nulls when the frames never had it)."""
    target = _type(kind)
    if column is None or pa.types.is_null(column.type):
        return pa.nulls(length, target)
    if kind == "date" and pa.types.is_timestamp(column.type):
        return pc.cast(column, pa.date32())
    return column if column.type == target else pc.cast(column, target)


def _missing(value: Any) -> bool:
    return value is None or (not isinstance(value, str | bytes) and bool(pd.isna(value)))


def _array(series: pd.Series, kind: str) -> pa.Array:
    """One column as Arrow of a fixed type per kind, so every round's partition has the same schema."""
    values = [None if _missing(v) else v for v in series.tolist()]
    if kind == "whole":
        return pa.array([None if v is None else int(v) for v in values], pa.int64())
    if kind == "date":
        return pa.array([None if v is None else v.date() if isinstance(v, datetime) else v
                         if isinstance(v, date) else pd.Timestamp(v).date() for v in values], pa.date32())
    if kind == "time":
        return pa.array(values, pa.timestamp("s"))
    if kind in ("rate", "decimal"):
        return pa.array([None if v is None else float(v) for v in values], pa.float64())
    return pa.array([None if v is None else str(v) for v in values], pa.string())


def _ledger_rows(ctx: Context, table: sa.Table) -> list[dict[str, Any]]:
    with ctx.ledger.begin() as c:
        return [dict(r._mapping) for r in c.execute(sa.select(table))]


def _table(rows: Sequence[dict[str, Any]], spec: dict[str, tuple[str, str]]) -> pa.Table:
    """Rows as an Arrow table of `spec` (column -> (kind, zh-TW title)), typed even when there are no rows."""
    frame = pd.DataFrame(list(rows), columns=list(spec))
    fields, arrays = [], []
    for key, (kind, title) in spec.items():
        if kind == "bool":
            array = pa.array([bool(v) for v in frame[key].tolist()], pa.bool_())
        else:
            array = _array(frame[key], kind)
        arrays.append(array)
        fields.append(pa.field(key, array.type, metadata={"title": title}))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


SUBMISSION_COLUMNS = {
    "receipt": ("text", "收件編號"), "collection": ("text", "表單"), "round": ("text", "期別"),
    "agency": ("text", "機關代碼"), "agency_name": ("text", "機關名稱"), "supervisor": ("text", "主管機關代碼"),
    "supervisor_name": ("text", "主管機關"), "kind": ("text", "類型"), "sender": ("text", "寄件者"),
    "file_name": ("text", "檔名"), "received_at": ("time", "收件時間"), "decided_at": ("time", "處理時間"),
    "stage": ("text", "處理階段"), "verdict": ("text", "結果"), "errors": ("whole", "錯誤數"),
    "warnings": ("whole", "警告數"), "rows": ("whole", "列數"), "duplicate_of": ("text", "重複於"),
    "counts": ("bool", "計入"),
}
FINDING_COLUMNS = {
    "receipt": ("text", "收件編號"), "collection": ("text", "表單"), "round": ("text", "期別"),
    "agency": ("text", "機關代碼"), "supervisor": ("text", "主管機關代碼"), "seq": ("whole", "序號"),
    "code": ("text", "代碼"), "severity": ("text", "嚴重度"), "sheet": ("text", "工作表"), "cell": ("text", "儲存格"),
    "column": ("text", "欄位"), "value": ("text", "填寫值"), "message": ("text", "說明"),
}
AGENCY_COLUMNS = {
    "agency": ("text", "機關代碼"), "agency_name": ("text", "機關名稱"), "kind": ("text", "類別"),
    "supervisor": ("text", "主管機關代碼"), "supervisor_name": ("text", "主管機關"), "emails": ("text", "聯絡信箱"),
    "active": ("bool", "啟用"),
}
ROUND_COLUMNS = {
    "collection": ("text", "表單"), "round": ("text", "期別"), "round_label": ("text", "期別（民國）"),
    "deadline": ("date", "截止日"), "closed": ("bool", "已截止收件"), "issued_at": ("time", "發出時間"),
}


def _write_ledger_tables(ctx: Context, subs: list[dict[str, Any]], counted: set[str] | None) -> None:
    """The ledger's submissions, findings, agencies and rounds as Parquet tables of the lake, written whole.
    `counted` (receipts that count) is None when only one collection was synced: `counts` is then read back."""
    reg = ctx.registry
    if counted is None:
        counted = _counted_receipts(ctx)
    heads = {h[0]: h for h in _heads(ctx, {s["agency"] for s in subs if s["agency"]})}
    sub_rows = []
    for s in sorted(subs, key=lambda s: s["id"]):
        head = heads.get(s["agency"] or "", (s["agency"], None, None, None))
        sub_rows.append({**s, "agency_name": head[1], "supervisor": head[2], "supervisor_name": head[3],
                         "received_at": _taipei(s["received_at"]), "decided_at": _taipei(s["processed_at"]),
                         "counts": s["receipt"] in counted})
    by_id = {s["id"]: s for s in sub_rows}
    found = []
    for f in _ledger_rows(ctx, findings_table):
        of = by_id.get(f["submission_id"])
        if of is not None:
            found.append({**f, "receipt": of["receipt"], "collection": of["collection"], "round": of["round"],
                          "agency": of["agency"], "supervisor": of["supervisor"]})
    found.sort(key=lambda f: (f["submission_id"], f["seq"]))
    agencies = []
    for a in reg:
        sup = reg.supervisor_of(a.code)
        agencies.append({"agency": a.code, "agency_name": a.name, "kind": a.kind, "supervisor": sup.code,
                         "supervisor_name": sup.name, "emails": "; ".join(a.emails), "active": a.active})
    rounds = [{**r, "round_label": roc_round_label(r["round"]), "deadline": date.fromisoformat(r["deadline"]),
               "issued_at": _taipei(r["created_at"])} for r in _ledger_rows(ctx, rounds_table)]
    base = lake_dir(ctx)
    _write(base / "submissions.parquet", _table(sub_rows, SUBMISSION_COLUMNS))
    _write(base / "findings.parquet", _table(found, FINDING_COLUMNS))
    _write(base / "agencies.parquet", _table(agencies, AGENCY_COLUMNS))
    _write(base / "rounds.parquet", _table(rounds, ROUND_COLUMNS))


def _counted_receipts(ctx: Context) -> set[str]:
    """The receipts that count, read back from every rows partition (after a sync of one collection)."""
    out: set[str] = set()
    for path in (lake_dir(ctx) / ROWS).glob("collection=*/round=*/data.parquet"):
        out |= {r for r in pq.read_table(path, columns=["receipt"]).column("receipt").to_pylist() if r}
    return out
