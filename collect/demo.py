"""The demo round: a fresh workspace, simulated agencies answering by email, and every step of a real round."""

from __future__ import annotations

import csv
import io
import random
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from collect.archive import write_atomic
from collect.errors import CollectionError
from collect.follow.remind import remind
from collect.follow.status import round_status, set_exempt
from collect.forms.issuing import issue, read_prefill_file
from collect.forms.spec import Collection, IssuedFacts
from collect.mail.compose import OutgoingAttachment, compose, to_bytes
from collect.pipeline import make_report
from collect.receive.ingest import Ingestor
from collect.report.summary import summarise
from collect.rounds import TAIPEI, parse_round, previous_round, round_end
from collect.simulate import (
    BLOCKING,
    MISTAKES,
    SMALL_ROUND_MISTAKES,
    agency_facts,
    answer_signoff,
    choose_mistake,
    fill,
    generic_rows,
    prefilled_by_key,
    saved_by_libreoffice,
)
from collect.states import Verdict
from collect.workspace import Context, defaults_dir, init_workspace

DEFAULT_ROUNDS = {"month": "2026-10", "year": "2026", "quarter": "2026-Q3", "session": "2026-S1", "any": "2026"}
STRANGER = "someone@gmail.example.test"


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
    plan: Plan | None = None  # what each simulated agency did (faulty: the mistake actually made)


@dataclass
class Plan:
    """What each simulated agency does."""

    never: set[str]
    late: set[str]
    faulty: dict[str, str]  # agency -> mistake, in the order they were chosen
    corrected: set[str]  # faulty agencies that send a corrected file later
    stranger: str | None  # sends its return from an address not on the agency list (None in a very small round)
    exempt: str | None  # excused by staff (None in a very small round)
    libreoffice: set[str]
    sent_back: str | None = None  # the unit its supervising agency sends back in its sign-off workbook (退回)


def make_plan(codes: list[str], rng: random.Random) -> Plan:
    shuffled = codes[:]
    rng.shuffle(shuffled)
    n = len(codes)
    k_never, k_late, k_lo = max(1, n // 18), max(1, n // 24), max(1, n // 28)
    k_faulty = max(min(len(MISTAKES), n // 4), n // 7)
    never = set(shuffled[:k_never])
    at = k_never
    exempt = shuffled[at] if n >= 6 else None
    at += exempt is not None
    stranger = shuffled[at] if n >= 8 else None
    at += stranger is not None
    rest = shuffled[at:]
    faulty_codes = rest[:k_faulty]
    order = MISTAKES if k_faulty >= len(MISTAKES) else SMALL_ROUND_MISTAKES
    faulty = {c: order[i % len(order)] for i, c in enumerate(faulty_codes)}
    late = set(rest[k_faulty:k_faulty + k_late])
    lo = set(rest[k_faulty + k_late:k_faulty + k_late + k_lo])
    return Plan(never, late, faulty, corrected_of(faulty), stranger, exempt, lo)


def corrected_of(faulty: Mapping[str, str]) -> set[str]:
    """The faulty agencies that resend a corrected file: two of every three with a blocking mistake."""
    blocking = [c for c, mistake in faulty.items() if mistake in BLOCKING]
    return {c for i, c in enumerate(blocking) if i % 3 != 2}


def run_demo(root: Path | None = None, collection: str = "covid19", *, seed: int = 115,
             say: Callable[[str], None] = lambda _: None, now: datetime | None = None,
             agencies: int | None = None, rounds: int = 1) -> DemoResult:
    """A complete round on the embedded defaults, in a fresh workspace; `say` gets one line per event.

    The round is the collection's default for its period, or the round of its sample prefill file
    (samples/<id>-<round>.csv) when there is one. `agencies` cuts the sample agency list to about that many agencies
    in scope (every agency of the prefill file kept, with the supervising agencies above them), for a quicker round.
    `rounds` > 1 runs that many rounds in all: the earlier ones first (issued, answered, reported), for the lake.
    """
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
    round_id = demo_round(ctx, coll)
    prefill = _sample_prefill(ctx, coll.id, round_id)
    if agencies is not None:
        pre = read_prefill_file(prefill, coll) if prefill else None
        if coll.meta.scope == "prefill":
            in_scope = keep = pre.codes if pre is not None else []
        else:  # keep the agencies with prefilled rows (not those given header fields only), if they fit
            in_scope = [a.code for a in ctx.registry.in_scope(coll.in_scope_codes())]
            keep = [c for c, rows in pre.rows.items() if rows] if pre is not None else []
            keep = keep if len(keep) <= agencies // 2 else keep[:agencies // 2]
        ctx.close()
        trim_agencies(root / "agencies.csv", in_scope, keep, agencies)
        ctx = Context.open(root)
        coll = ctx.collection(collection)
        if prefill is not None and prefill.suffix == ".csv":  # the smaller list: only its agencies
            prefill = trim_prefill(prefill, set(ctx.registry.agencies), root / "samples" / prefill.name)
    note(s, f"new workspace {root}")
    note(s, f"{len(ctx.registry.agencies)} agencies on the sample list; collection {coll.id}: {coll.title}")
    s.seconds = time.perf_counter() - t

    for earlier in earlier_rounds(round_id, rounds - 1):
        s = step(f"Earlier round {earlier}: issue, answers, report")
        t = time.perf_counter()
        for line in earlier_round(ctx, coll, earlier, random.Random(f"{seed}-{earlier}"), prefill):
            note(s, line)
        s.seconds = time.perf_counter() - t

    s = step(f"Issue {coll.id} {round_id}")
    t = time.perf_counter()
    today = moment.date()
    deadline = today - timedelta(days=2)
    result = issue(ctx, coll.id, round_id, deadline=deadline, prefill=prefill, today=today)
    note(s, f"{len(result.issued)} stamped workbooks in {result.out_dir}"
            + (f", prefilled from {prefill.name}" if prefill else ""))
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
    facts = {c: agency_facts(ctx, coll, round_id, c, issued_bytes[c]) for c in codes}
    clean_rows = {c: generic_rows(coll, rng, round_id, facts[c]) for c in codes}
    faulty_rows: dict[str, list[dict[str, Any]]] = {}
    for code, wanted in list(plan.faulty.items()):
        mistake, broken = choose_mistake(clean_rows[code], wanted, coll, prefilled_by_key(coll, facts[code]))
        if mistake is None:  # nothing this agency typed can go wrong that way: it answers cleanly
            del plan.faulty[code]
        else:
            plan.faulty[code] = mistake
            faulty_rows[code] = broken
    plan.corrected = corrected_of(plan.faulty)
    for code in codes:
        if code in plan.never or code == plan.exempt:
            continue
        rows = faulty_rows.get(code, clean_rows[code])
        first_files[code] = fill(issued_bytes[code], coll, rows)
        if code in plan.corrected:
            later.append((code, fill(issued_bytes[code], coll, clean_rows[code]), moment - timedelta(days=1),
                          "更正後重新寄送"))
    lo = saved_by_libreoffice({c: first_files[c] for c in plan.libreoffice if c in first_files})
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
    made = ", ".join(f"{m} {n}" for m, n in sorted(_count(plan.faulty.values()).items()))
    note(s, f"{count} messages in {inbox}: {len(plan.faulty)} with mistakes ({len(plan.corrected)} resend "
            f"corrected), {len(plan.late)} late, {len(plan.never)} never answer, "
            f"{'one' if plan.stranger else 'none'} from an unknown address, {len(lo)} saved by LibreOffice")
    if made:
        note(s, f"mistakes made: {made}")
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

    s = step("Supervising agencies: digests and sign-off (主管機關核轉)")
    t = time.perf_counter()
    for line in second_tier(ctx, coll, round_id, plan, moment):
        note(s, line)
    s.seconds = time.perf_counter() - t

    s = step("Status and reminders")
    t = time.perf_counter()
    if plan.exempt is not None:
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
    return DemoResult(root, coll.id, round_id, steps, time.perf_counter() - started, outputs, plan)


# -- the second tier: digests, sign-off workbooks filled by supervising agencies (simulated) -----------------------
SENT_BACK_REASON = "實支數與會計月報不符，請核對後更正"


def second_tier(ctx: Context, coll: Collection, round_id: str, plan: Plan, moment: datetime) -> list[str]:
    """Each supervising agency gets its digest (with its slice workbook and, where the collection requires sign-off,
    its 核轉表). Where sign-off is required, all but one of those with units waiting fill the 核轉表 and reply by
    email: one unit that answered cleanly is sent back with a reason, every other unit is signed off; the replies
    are ingested like any return and applied. One line per event."""
    from collect.follow.digest import digest
    from collect.follow.signoff import apply_pending
    from collect.mail.message import parse_message

    sent = digest(ctx, coll.id, round_id, send=True, now=moment,
                  refresh=lambda cid, r: make_report(ctx, cid, r, now=moment))  # the slices the digests carry
    lines = [f"{len(sent)} digests to supervising agencies, each with its units by state and its slice workbook"
             + (" and 核轉表" if coll.meta.require_signoff else "")]
    if not coll.meta.require_signoff:
        lines.append(f"{coll.id} does not require sign-off: `collect demo --collection review_public` shows the "
                     "核轉表 and a unit sent back")
        return lines
    books = {}
    for d in sent:
        assert d.path is not None
        inc = parse_message(d.path.read_bytes())
        book = next((a for a in inc.attachments if a.filename.endswith("核轉表.xlsx")), None)
        if book is not None:
            books[d.supervisor] = book
    signing = sorted(books)[:-1] if len(books) > 1 else sorted(books)
    special = plan.late | set(plan.faulty) | plan.never | {plan.stranger, plan.exempt}
    inbox = ctx.ws.inbox_dir
    dropped = []

    def decide(unit: str) -> str | None:
        """退回 (with its reason) for the first unit that answered cleanly and on time; 核轉 for every other."""
        if plan.sent_back is None and unit not in special:
            plan.sent_back = unit
            return SENT_BACK_REASON
        return None

    for code in signing:
        answered = answer_signoff(books[code].data, coll, decide, "主計室主任", moment.date())
        sup = ctx.registry.get(code)
        assert sup is not None
        msg = compose(sender=sup.emails[0], to=[ctx.ws.settings.sender], subject=f"回覆：核轉表（{sup.name}）",
                      text=f"您好，附件為{sup.name}核轉表，請查收。\n", date=moment,
                      attachments=[OutgoingAttachment(books[code].filename, answered)],
                      domain=sup.emails[0].rsplit("@", 1)[-1])
        path = inbox / f"{moment:%Y%m%d-%H%M%S}-signoff-{code}.eml"
        write_atomic(path, to_bytes(msg))
        dropped.append(path)
    with Ingestor(ctx) as ing:
        outcomes = ing.paths(dropped)
    applied = apply_pending(ctx)
    verdicts = sorted(_count(str(o.verdict) for o in outcomes).items())
    lines.append(f"{len(dropped)} supervising agencies returned their 核轉表 by email, ingested like any return: "
                 + ", ".join(f"{k} {v}" for k, v in verdicts))
    signed = sum(len(a.signed) for a in applied)
    lines.append(f"{signed} units signed off; {plan.sent_back} sent back by its supervising agency "
                 f"(「{SENT_BACK_REASON}」), told by email with its workbook")
    if len(books) > len(signing):
        lines.append(f"{sorted(books)[-1]} has not signed off yet, so its units' returns do not count in the report")
    return lines


def _count(items: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items:
        out[item] = out.get(item, 0) + 1
    return out


def demo_round(ctx: Context, coll: Collection) -> str:
    """The default round for the collection's period, or, when it has sample prefill files but none for that round,
    the latest round one of them is for."""
    default = DEFAULT_ROUNDS.get(coll.meta.period, "2026")
    if _sample_prefill(ctx, coll.id, default) is not None:
        return default
    found = set()
    for base in (ctx.ws.root / "samples", defaults_dir() / "samples"):
        for p in (*base.glob(f"{coll.id}-*.csv"), *base.glob(f"{coll.id}-*.xlsx")):
            candidate = p.stem[len(coll.id) + 1:]
            try:
                parse_round(candidate)
            except CollectionError:  # a file name that is not a round is simply not a sample
                continue
            found.add(candidate)
    return max(found) if found else default


def trim_agencies(path: Path, in_scope: Sequence[str], keep: Sequence[str], size: int) -> None:
    """Cut the agency list at `path` to `keep` plus an even spread of `in_scope` up to about `size` agencies, with
    every supervising agency above them (so the hierarchy stays whole)."""
    text = path.read_text(encoding="utf-8-sig")
    records = list(csv.reader(io.StringIO(text)))
    header, body = records[0], [r for r in records[1:] if r and r[0].strip()]
    code_at, parent_at = header.index("機關代碼"), header.index("主管機關代碼")
    parent = {r[code_at].strip(): r[parent_at].strip() for r in body}
    chosen = set(keep)
    others = [c for c in in_scope if c not in chosen]
    room = max(0, size - len(chosen))
    if room and others:
        chosen |= set(others[::max(1, len(others) // room)][:room])
    for code in list(chosen):
        up = parent.get(code)
        while up:
            chosen.add(up)
            up = parent.get(up)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(r for r in body if r[code_at].strip() in chosen)
    write_atomic(path, ("\ufeff" + out.getvalue()).encode("utf-8"))


def trim_prefill(path: Path, codes: set[str], target: Path) -> Path:
    """A copy of a prefill CSV keeping only the rows of agencies in `codes`."""
    records = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig"))))
    at = records[0].index("機關代碼")
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(
        [records[0], *(r for r in records[1:] if r and r[at].strip() in codes)])
    write_atomic(target, ("\ufeff" + out.getvalue()).encode("utf-8"))
    return target


def _sample_prefill(ctx: Context, cid: str, round_id: str) -> Path | None:
    for base in (ctx.ws.root / "samples", defaults_dir() / "samples"):
        for suffix in (".csv", ".xlsx"):
            p = base / f"{cid}-{round_id}{suffix}"
            if p.is_file():
                return p
    return None


def _drop(inbox: Path, when: datetime, code: str, sender: str, agency_name: str, coll: Collection, round_id: str,
          data: bytes, ctx: Context, what: str) -> None:
    """Write one agency's email into the inbox folder, as the files backend receives mail."""
    from collect.forms.stamp import file_name

    msg = compose(sender=sender, to=[ctx.ws.settings.sender], subject=f"回覆：{coll.title} {what}（{agency_name}）",
                  text=f"您好，附件為{agency_name}{what}，請查收。\n", date=when,
                  attachments=[OutgoingAttachment(file_name(code, agency_name), data)],
                  domain=sender.rsplit("@", 1)[-1])
    write_atomic(inbox / f"{when:%Y%m%d-%H%M%S}-{code}.eml", to_bytes(msg))


# -- earlier rounds (`collect demo --rounds N`): each answered and reported, so the lake has rounds to compare ------
def earlier_rounds(round_id: str, n: int) -> list[str]:
    """The `n` rounds before `round_id`, oldest first."""
    out: list[str] = []
    for _ in range(max(0, n)):
        round_id = previous_round(round_id)
        out.insert(0, round_id)
    return out


def earlier_round(ctx: Context, coll: Collection, round_id: str, rng: random.Random,
                  prefill: Path | None = None) -> list[str]:
    """One past round, answered: most agencies on time, some late, a few never; some first returns rejected
    (spent over committed, where the collection has such a rule) and corrected two days later; then its master
    report. `prefill` is the demo round's sample prefill file, issued again (a collection that goes to the agencies
    its prefill file names needs one). Returns the lines to show."""
    deadline = round_end(round_id) + timedelta(days=coll.meta.deadline_days or 10)
    result = issue(ctx, coll.id, round_id, deadline=deadline, today=round_end(round_id), prefill=prefill)
    codes = [i.agency for i in result.issued]
    never = set(rng.sample(codes, len(codes) // 25))
    answering = [c for c in codes if c not in never]
    late = set(rng.sample(answering, len(answering) // 10))
    faulty = set(rng.sample(answering, len(answering) // 8))
    due = datetime.combine(deadline, datetime.min.time(), tzinfo=TAIPEI) + timedelta(hours=17)
    corrected = 0
    with tempfile.TemporaryDirectory() as tmp:
        first, second = Path(tmp) / "first", Path(tmp) / "second"
        for i in result.issued:
            if i.agency in never:
                continue
            agency = ctx.registry.get(i.agency)
            assert agency is not None
            data = i.path.read_bytes()
            facts = agency_facts(ctx, coll, round_id, i.agency, data)
            rows = generic_rows(coll, rng, round_id, facts)
            if facts is None or not facts.rows:  # the first round: its rows as if carried, so amounts grow steadily
                rows = generic_rows(coll, rng, round_id, IssuedFacts({}, tuple(enumerate(rows, start=1))))
            when = due + timedelta(days=rng.randint(1, 6)) if i.agency in late else \
                due - timedelta(days=rng.randint(1, 8), minutes=rng.randint(0, 600))
            mistake, broken = choose_mistake(rows, "spent_over", coll, prefilled_by_key(coll, facts)) \
                if i.agency in faulty else (None, rows)
            if mistake is not None:
                _drop(first, when, i.agency, agency.emails[0], agency.name, coll, round_id, fill(data, coll, broken),
                      ctx, "填報資料")
                when += timedelta(days=2)
                corrected += 1
            _drop(second if mistake else first, when, i.agency, agency.emails[0], agency.name, coll, round_id,
                  fill(data, coll, rows), ctx, "更正後重新寄送" if mistake else "填報資料")
        verdicts: dict[str, int] = {}
        with Ingestor(ctx) as ing:
            for folder in (first, second):  # a correction after the return it corrects
                if folder.is_dir():
                    for o in ing.paths([folder]):
                        verdicts[str(o.verdict)] = verdicts.get(str(o.verdict), 0) + 1
    rep = make_report(ctx, coll.id, round_id)
    return [f"{len(codes)} issued; {len(answering)} answered ({len(late)} late, {corrected} first returns rejected "
            f"and corrected), {len(never)} never",
            "verdicts: " + ", ".join(f"{k} {v}" for k, v in sorted(verdicts.items())),
            f"master report {rep.files.master}"]
