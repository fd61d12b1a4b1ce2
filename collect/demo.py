"""The demo round: a fresh workspace, simulated agencies answering by email, and every step of a real round."""

from __future__ import annotations

import io
import random
import shutil
import subprocess
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from collect.ingest import Ingestor
from collect.issuing import issue
from collect.ledger import Verdict
from collect.mail.compose import OutgoingAttachment, compose, to_bytes
from collect.pipeline import make_report
from collect.remind import remind
from collect.spec import Collection, ColumnSpec, round_end, round_start
from collect.stamp import fill_cells, write_atomic
from collect.status import round_status, set_exempt
from collect.summary import summarise
from collect.workspace import Context, init_workspace

DEFAULT_ROUNDS = {"month": "2026-10", "year": "2026", "quarter": "2026-Q3", "session": "2026-S1", "any": "2026"}
STRANGER = "someone@gmail.example.test"

COVID_PROJECTS = [
    "防疫物資採購", "快篩試劑採購", "居家檢疫關懷服務", "疫苗接種站設置", "防疫旅館租用", "社區篩檢站營運",
    "紓困補助發放", "弱勢家庭紓困金", "攤商租金減免", "藝文團體紓困", "振興消費券推廣", "商圈振興活動",
    "觀光產業振興", "校園防疫設備", "公共場所消毒作業", "防疫專線人力", "遠距辦公設備", "防疫宣導印製",
]


@dataclass
class Step:
    title: str
    lines: list[str] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class DemoResult:
    workspace: Path
    collection: str
    round_id: str
    steps: list[Step]
    seconds: float
    outputs: dict[str, Path]


@dataclass
class Plan:
    """What each simulated agency does."""

    never: set[str]
    late: set[str]
    faulty: dict[str, str]  # agency -> mistake
    corrected: set[str]  # faulty agencies that send a corrected file later
    stranger: str
    exempt: str
    libreoffice: set[str]


MISTAKES = ("fullwidth_amount", "roc_date", "pasted_choice", "spent_over", "total_row", "missing_value")
BLOCKING = {"pasted_choice", "spent_over", "missing_value"}


def make_plan(codes: list[str], rng: random.Random) -> Plan:
    shuffled = codes[:]
    rng.shuffle(shuffled)
    n = len(codes)
    k_never, k_late, k_faulty, k_lo = max(1, n // 18), max(1, n // 24), max(len(MISTAKES), n // 7), max(1, n // 28)
    never = set(shuffled[:k_never])
    exempt = shuffled[k_never]
    stranger = shuffled[k_never + 1]
    rest = shuffled[k_never + 2:]
    faulty_codes = rest[:k_faulty]
    faulty = {c: MISTAKES[i % len(MISTAKES)] for i, c in enumerate(faulty_codes)}
    blocking = [c for c in faulty_codes if faulty[c] in BLOCKING]
    corrected = {c for i, c in enumerate(blocking) if i % 3 != 2}
    late = set(rest[k_faulty:k_faulty + k_late])
    lo = set(rest[k_faulty + k_late:k_faulty + k_late + k_lo])
    return Plan(never, late, faulty, corrected, stranger, exempt, lo)


def covid_rows(rng: random.Random, round_id: str) -> list[dict[str, Any]]:
    rows = []
    end = round_end(round_id)
    for i, name in enumerate(rng.sample(COVID_PROJECTS, rng.randint(1, 5)), start=1):
        approved = rng.randrange(100_000, 80_000_000, 1_000)
        committed = rng.randrange(0, approved + 1, 1_000)
        spent = rng.randrange(0, committed + 1, 100)
        approved_on = date(2020, 3, 1) + timedelta(days=rng.randrange(0, (end - date(2020, 3, 1)).days))
        category = "防疫" if i % 3 == 1 else ("紓困" if "紓困" in name or i % 3 == 2 else "振興")
        rows.append({"item": i, "name": name, "category": category,
                     "source": rng.choice(["市庫", "中央補助", "第二預備金", "特別預算"]), "approved": approved,
                     "committed": committed, "spent": spent, "approved_on": approved_on,
                     "note": "" if rng.random() < 0.7 else "依核定計畫執行"})
    return rows


def generic_rows(coll: Collection, rng: random.Random, round_id: str) -> list[dict[str, Any]]:
    """Plausible rows for any collection: from its own sample_rows hook, else from its column rules."""
    hook = getattr(coll, "sample_rows", None)
    if callable(hook):
        return list(hook(rng, round_id))
    if coll.id == "covid19":
        return covid_rows(rng, round_id)
    rows = []
    for i in range(rng.randint(1, 4)):
        row: dict[str, Any] = {}
        for col in coll.inputs:
            row[col.key] = _value_for(col, rng, round_id, i)
        rows.append(row)
    return rows


def _value_for(col: ColumnSpec, rng: random.Random, round_id: str, i: int) -> Any:
    if col.choices:
        return col.choices[i % len(col.choices)] if col.unique else rng.choice(col.choices)
    if col.kind == "whole":
        lo = int(col.ge) if col.ge is not None else 0
        return rng.randrange(lo, lo + 5_000_000, 1_000)
    if col.kind == "date":
        start, end = round_start(round_id), round_end(round_id)
        return start + timedelta(days=rng.randrange(0, max(1, (end - start).days)))
    if col.kind == "decimal":
        return round(rng.uniform(0, 1000), 2)
    return f"{col.title}說明{i + 1}"[: col.max_length or 50]


def apply_mistake(rows: list[dict[str, Any]], mistake: str, coll: Collection) -> list[dict[str, Any]]:
    """One realistic mistake, as agencies make them."""
    rows = [dict(r) for r in rows]
    first = rows[0]
    money = [c for c in coll.inputs if c.money]
    dates = [c for c in coll.inputs if c.kind == "date"]
    choices = [c for c in coll.inputs if c.choices]
    required = [c for c in coll.inputs if c.required]
    if mistake == "fullwidth_amount" and money:
        wide = str.maketrans("0123456789,", "０１２３４５６７８９，")
        first[money[0].key] = f"{first[money[0].key]:,}".translate(wide)
    elif mistake == "roc_date" and dates:
        d = first[dates[0].key]
        first[dates[0].key] = f"{d.year - 1911}/{d.month:02d}/{d.day:02d}"
    elif mistake == "pasted_choice" and choices:
        first[choices[0].key] = choices[0].choices[0] + "費" if choices[0].choices else "其他"
    elif mistake == "spent_over" and "spent" in first and "committed" in first:
        first["spent"] = first["committed"] + 250_000
    elif mistake == "total_row":
        text = next((c for c in coll.inputs if c.kind == "text"), None)
        if text is not None:
            total: dict[str, Any] = {text.key: "合計"}
            for c in money:
                total[c.key] = sum(int(r[c.key]) for r in rows if isinstance(r.get(c.key), int))
            rows.append(total)
    elif mistake == "missing_value" and required:
        target = money[0] if money else required[0]
        first[target.key] = None
    return rows


def fill(issued: bytes, coll: Collection, rows: list[dict[str, Any]]) -> bytes:
    """An agency's return: the stamped workbook with its input cells filled (as Excel would store them)."""
    lay = coll.layout
    assert lay is not None
    from openpyxl.utils import get_column_letter

    letters = {c.key: get_column_letter(lay.first_col + i) for i, c in enumerate(coll.columns)}
    cells = {}
    for i, row in enumerate(rows):
        for key, value in row.items():
            if value is None or value == "" or key not in letters or not coll.column(key).is_input:
                continue
            cells[f"{letters[key]}{lay.data_first_row + i}"] = value
    sheet_part = _sheet_part(issued, lay.sheet)
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(issued)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == sheet_part:
                data = fill_cells(data, cells)
            dst.writestr(info, data)
    return out.getvalue()


def _sheet_part(data: bytes, sheet: str) -> str:
    import re

    with zipfile.ZipFile(io.BytesIO(data)) as z:
        wb = z.read("xl/workbook.xml").decode()
        rels = z.read("xl/_rels/workbook.xml.rels").decode()
    rid = re.search(rf'<sheet [^>]*name="{re.escape(sheet)}"[^>]*r:id="([^"]+)"', wb)
    if rid is None:
        raise ValueError(f"no sheet {sheet}")
    target = re.search(rf'<Relationship [^>]*Id="{rid.group(1)}"[^>]*Target="([^"]+)"', rels) or re.search(
        rf'<Relationship [^>]*Target="([^"]+)"[^>]*Id="{rid.group(1)}"', rels)
    assert target is not None
    return "xl/" + target.group(1).removeprefix("/xl/").removeprefix("xl/")


def via_libreoffice(files: dict[str, bytes]) -> dict[str, bytes]:
    """Open and save returns with LibreOffice, as some agencies do; {} when it is not installed."""
    soffice = shutil.which("soffice") or shutil.which("libreoffice")
    if not soffice or not files:
        return {}
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in", Path(tmp) / "out"
        src.mkdir()
        for code, data in files.items():
            (src / f"{code}.xlsx").write_bytes(data)
        try:
            subprocess.run([soffice, f"-env:UserInstallation=file://{tmp}/profile", "--headless", "--norestore",
                            "--convert-to", "xlsx:Calc MS Excel 2007 XML", "--outdir", str(dst),
                            *sorted(str(p) for p in src.iterdir())], check=True, capture_output=True, timeout=180)
        except (subprocess.SubprocessError, OSError):
            return {}
        return {code: (dst / f"{code}.xlsx").read_bytes() for code in files if (dst / f"{code}.xlsx").exists()}


def run_demo(root: Path | None = None, collection: str = "covid19", *, seed: int = 115,
             say: Callable[[str], None] = lambda _: None, now: datetime | None = None) -> DemoResult:
    """A complete round on the embedded defaults, in a fresh workspace; `say` gets one line per event."""
    started = time.perf_counter()
    moment = now or datetime.now(UTC)
    root = root or Path.cwd() / "outbox" / "demo" / moment.strftime("%Y%m%d-%H%M%S")
    steps: list[Step] = []
    rng = random.Random(seed)

    def step(title: str) -> Step:
        s = Step(title)
        steps.append(s)
        say(f"\n== {len(steps)}. {title}")
        return s

    def note(s: Step, line: str) -> None:
        s.lines.append(line)
        say(f"   {line}")

    s = step("Workspace")
    t = time.perf_counter()
    init_workspace(root)
    ctx = Context.open(root)
    coll = ctx.collection(collection)
    period = coll.meta.period
    round_id = DEFAULT_ROUNDS.get(period, "2026")
    note(s, f"new workspace {root}")
    note(s, f"{len(ctx.registry.agencies)} agencies on the sample list; collection {coll.id}: {coll.title}")
    s.seconds = time.perf_counter() - t

    s = step(f"Issue {coll.id} {round_id}")
    t = time.perf_counter()
    today = moment.date()
    deadline = today - timedelta(days=2)
    prefill = _sample_prefill(ctx, coll.id, round_id)
    result = issue(ctx, coll.id, round_id, deadline=deadline, prefill=prefill, today=today)
    note(s, f"{len(result.issued)} stamped workbooks in {result.out_dir}")
    note(s, f"deadline {deadline.isoformat()} (two days ago, so the late and the missing show)")
    s.seconds = time.perf_counter() - t

    s = step("Agencies answer by email (simulated)")
    t = time.perf_counter()
    codes = [i.agency for i in result.issued]
    plan = make_plan(codes, rng)
    inbox = ctx.ws.inbox_dir
    inbox.mkdir(parents=True, exist_ok=True)
    first_files: dict[str, bytes] = {}
    later: list[tuple[str, bytes, datetime, str]] = []
    issued_bytes = {i.agency: i.path.read_bytes() for i in result.issued}
    clean_rows = {c: generic_rows(coll, rng, round_id) for c in codes}
    for code in codes:
        if code in plan.never or code == plan.exempt:
            continue
        rows = clean_rows[code]
        if code in plan.faulty:
            rows = apply_mistake(rows, plan.faulty[code], coll)
        first_files[code] = fill(issued_bytes[code], coll, rows)
        if code in plan.corrected:
            later.append((code, fill(issued_bytes[code], coll, clean_rows[code]), moment - timedelta(days=1),
                          "更正後重新寄送"))
    lo = via_libreoffice({c: first_files[c] for c in plan.libreoffice if c in first_files})
    first_files.update(lo)
    deadline_end = datetime.combine(deadline, datetime.min.time(), tzinfo=UTC) + timedelta(hours=15)
    count = 0
    for code, data in first_files.items():
        agency = ctx.registry.get(code)
        assert agency is not None
        sender = STRANGER if code == plan.stranger else agency.emails[0]
        if code in plan.late:
            when = moment - timedelta(hours=rng.randint(2, 30))
        else:
            when = deadline_end - timedelta(days=rng.randint(1, 9), minutes=rng.randint(0, 600))
        _drop(inbox, when, code, sender, agency.name, coll, round_id, data, ctx, "填報資料")
        count += 1
    for code, data, when, what in later:
        agency = ctx.registry.get(code)
        assert agency is not None
        _drop(inbox, when, code, agency.emails[0], agency.name, coll, round_id, data, ctx, what)
        count += 1
    note(s, f"{count} messages in {inbox}: {len(plan.faulty)} with mistakes ({len(plan.corrected)} resend "
            f"corrected), {len(plan.late)} late, {len(plan.never)} never answer, one from an unknown address, "
            f"{len(lo)} saved by LibreOffice")
    s.seconds = time.perf_counter() - t

    s = step("Ingest the inbox: archive, identify, validate, answer")
    t = time.perf_counter()
    with Ingestor(ctx) as ing:
        outcomes = ing.paths([inbox])
    by_verdict: dict[str, int] = {}
    for o in outcomes:
        by_verdict[str(o.verdict)] = by_verdict.get(str(o.verdict), 0) + 1
    note(s, "verdicts: " + ", ".join(f"{k} {v}" for k, v in sorted(by_verdict.items())))
    bad = next((o for o in outcomes if o.verdict == Verdict.REJECTED), None)
    if bad is not None:
        note(s, f"e.g. {bad.file} ({bad.agency}) rejected: " + "; ".join(
            f"{f.cell} {f.message}" for f in bad.findings if f.severity == "error")[:160])
    receipts = ctx.ws.mail_outbox
    note(s, f"receipts (.eml) in {receipts}; annotated copies in {ctx.ws.round_dir(coll.id, round_id) / 'receipts'}")
    s.seconds = time.perf_counter() - t

    s = step("Status and reminders")
    t = time.perf_counter()
    set_exempt(ctx, coll.id, round_id, [plan.exempt], "本期無相關經費（主管機關來函說明）")
    st = round_status(ctx, coll.id, round_id)
    tot = st.total
    note(s, f"in scope {tot.in_scope}; received {tot.received}; accepted {tot.accepted} (on time {tot.on_time}); "
            f"exempt {tot.exempt}; still missing {len(st.missing)}")
    sent = remind(ctx, coll.id, round_id, now=moment)
    note(s, f"{len(sent)} reminders: {sum(r.kind == 'never' for r in sent)} with the workbook again, "
            f"{sum(r.kind == 'rejected' for r in sent)} with their findings; supervising agencies copied "
            f"(the deadline has passed)")
    s.seconds = time.perf_counter() - t

    s = step("Master report and managers' summary")
    t = time.perf_counter()
    rep = make_report(ctx, coll.id, round_id, now=moment)
    summ = summarise(ctx, rep.merged, rep.files, send=True)
    note(s, f"master workbook {rep.files.master}")
    note(s, f"{len(rep.files.supervisors)} supervising-agency workbooks, {rep.files.parquet.name}, "
            f"{rep.files.csv.name}")
    note(s, f"summary mail {summ.path} (HTML preview {summ.html}); sent to {', '.join(summ.sent_to)} "
            f"via the files backend ({ctx.ws.mail_outbox})")
    s.seconds = time.perf_counter() - t
    ctx.close()
    outputs = {"workspace": root, "issued": result.out_dir, "mail": ctx.ws.mail_outbox,
               "master": rep.files.master, "summary": summ.html}
    return DemoResult(root, coll.id, round_id, steps, time.perf_counter() - started, outputs)


def _sample_prefill(ctx: Context, cid: str, round_id: str) -> Path | None:
    from collect.workspace import defaults_dir

    for base in (ctx.ws.root / "samples", defaults_dir() / "samples"):
        for suffix in (".csv", ".xlsx"):
            p = base / f"{cid}-{round_id}{suffix}"
            if p.is_file():
                return p
    return None


def _drop(inbox: Path, when: datetime, code: str, sender: str, agency_name: str, coll: Collection, round_id: str,
          data: bytes, ctx: Context, what: str) -> None:
    """Write one agency's email into the inbox folder, as the files backend receives mail."""
    from collect.stamp import file_name

    msg = compose(sender=sender, to=[ctx.ws.settings.sender], subject=f"回覆：{coll.title} {what}（{agency_name}）",
                  text=f"您好，附件為{agency_name}{what}，請查收。\n", date=when,
                  attachments=[OutgoingAttachment(file_name(code, agency_name), data)],
                  domain=sender.rsplit("@", 1)[-1])
    write_atomic(inbox / f"{when:%Y%m%d-%H%M%S}-{code}.eml", to_bytes(msg))
