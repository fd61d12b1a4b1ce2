"""Ingest: message or file -> archive + ledger -> read -> identify -> validate -> verdict -> receipt."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from collect import findings as F
from collect.archive import write_atomic
from collect.counting import Count
from collect.errors import CollectionError, NotFound
from collect.findings import Finding
from collect.forms.signoff_book import agency_count
from collect.forms.spec import Collection
from collect.forms.stamp import file_name as issued_file_name
from collect.ledger import SubmissionRow, is_outage
from collect.mail.compose import OutgoingAttachment
from collect.mail.message import Incoming, authentication_failure, parse_message, sniff_workbook, unpack_zip
from collect.mail.notify import ReceiptFacts, decision_key, nothing_found_message, receipt_message
from collect.mail.outbox import Transport, deliver
from collect.mail.settings import MailConfig
from collect.receive.sandbox import DEFAULT_PRELOAD, Sandbox
from collect.receive.worker import Examination, Job, Known, as_examination, examine_batch
from collect.rounds import previous_round, roc_deadline, roc_round_label, roc_time
from collect.states import Counted, Stage, Verdict
from collect.workspace import Context
from collect.xlsx import odf

SPREADSHEET_SUFFIXES = (".xlsx", ".xlsm", ".xls", ".ods", ".xlsb")
ZIP_SUFFIXES = (".zip",)
# Files examined per worker task (fewer when there are few), and at most this many bytes of them together.
BATCH_FILES, BATCH_BYTES = 16, 8_000_000


@dataclass
class Outcome:
    """What became of one received file: the line `collect ingest` prints."""

    file: str
    sha256: str
    verdict: Verdict
    receipt: str
    collection: str | None = None
    round: str | None = None
    agency: str | None = None
    findings: list[Finding] = field(default_factory=list)
    annotated: Path | None = None
    receipt_mail: Path | None = None
    duplicate_of: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file, "sha256": self.sha256, "verdict": str(self.verdict), "collection": self.collection,
            "round": self.round, "agency": self.agency, "receipt": self.receipt,
            "findings": [f.to_dict() for f in self.findings],
        }


@dataclass(frozen=True)
class Envelope:
    """How a file arrived: the message around it, for the sender check and for threading the receipt."""

    sender: str | None = None
    message_id: str | None = None
    references: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Recorded:
    """A message archived and recorded with its files, its submissions not yet decided."""

    message_id: int
    incoming: Incoming
    rows: list[SubmissionRow]
    envelope: Envelope
    forged: str | None = None  # why the office's mail server found its From address forged


class Ingestor:
    """One ingest run: a sandbox started once, the workspace opened once."""

    def __init__(self, ctx: Context, sandbox: Sandbox | None = None, transport: Transport | None = None,
                 on_outcome: Callable[[Outcome], None] | None = None) -> None:
        self.ctx = ctx
        self._sandbox = sandbox
        self._own_sandbox = sandbox is None
        self.transport = transport
        self.on_outcome = on_outcome

    @property
    def sandbox(self) -> Sandbox:
        if self._sandbox is None:
            self._sandbox = Sandbox(preload=(*DEFAULT_PRELOAD, "collect.receive.worker"))
        return self._sandbox

    def close(self) -> None:
        if self._own_sandbox and self._sandbox is not None:
            self._sandbox.close()

    def __enter__(self) -> Ingestor:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- entry points ----------------------------------------------------------------------------------------------
    def paths(self, paths: Iterable[Path]) -> list[Outcome]:
        """Files, .eml messages and folders of either, as named on the command line: each recorded first, then all
        their files decided in one pass over the workers (outcomes in the order named)."""
        self.sandbox.warm()  # its workers' imports overlap with archiving and recording the files
        items: list[tuple[SubmissionRow, Envelope]] = []
        messages: list[_Recorded] = []
        quarantined: list[Outcome] = []
        for path in expand(paths):
            data = path.read_bytes()
            if path.suffix.lower() == ".eml":
                recorded = self._record_message(data, safe_text(str(path)))
                if recorded is not None and recorded.forged:
                    quarantined += self._quarantine(recorded)
                elif recorded is not None:
                    messages.append(recorded)
                    items += [(row, recorded.envelope) for row in recorded.rows]
            else:
                for name, digest in self.archived_files(shown_name(path), data):
                    items.append((self.ctx.ledger.record_submission(digest, name, None, None), Envelope()))
        outcomes = self._process(items)
        for recorded in messages:
            self._finish_message(recorded)
        return quarantined + outcomes

    def message(self, raw: bytes, source: str, parsed: Incoming | None = None) -> list[Outcome]:
        """One raw RFC 5322 message (`parsed` when the caller has parsed it already): archived and recorded
        (with its files) before anything else; [] when it was processed before."""
        recorded = self._record_message(raw, source, parsed)
        if recorded is None:
            return []
        if recorded.forged:
            return self._quarantine(recorded)
        outcomes = self.process(recorded.rows, recorded.envelope)
        self._finish_message(recorded)
        return outcomes

    def _record_message(self, raw: bytes, source: str, parsed: Incoming | None = None) -> _Recorded | None:
        """Archive and record a message with its files; None when it was processed before."""
        ctx = self.ctx
        inc = parsed or parse_message(raw, max_attachment_bytes=ctx.ws.settings.max_attachment_bytes)
        digest = ctx.archive.put(raw)
        files = [(a.filename, ctx.archive.put(a.data)) for a in inc.attachments]
        mid, new = ctx.ledger.record_message_with_files(inc.message_id, digest, inc.sender, inc.subject, source,
                                                        files, inc.date)
        if not new and ctx.ledger.message_stage(mid) == Stage.PROCESSED:
            return None
        rows = [r for r in ctx.ledger.submissions_of_message(mid) if r.stage == Stage.RECEIVED]
        forged = authentication_failure(inc, MailConfig.of(ctx.ws.settings).trust_authserv_id)
        return _Recorded(mid, inc, rows, Envelope(inc.sender, inc.message_id, inc.references), forged)

    def _quarantine(self, recorded: _Recorded) -> list[Outcome]:
        """A message whose sender failed the office's own server's authentication ([mail] trust_authserv_id): each
        file quarantined with the reason (`collect reprocess` takes one up once staff have checked it); no receipt
        and no notice, since the From address may not be the sender's (no backscatter)."""
        ctx, inc, reason = self.ctx, recorded.incoming, recorded.forged or ""
        outcomes = []
        for row in recorded.rows:
            found = [F.make("sender.unauthenticated", ctx.locale, value=inc.sender, detail=reason)]
            ctx.ledger.decide(row.id, verdict=Verdict.QUARANTINED, found=found)
            outcome = Outcome(row.file_name, row.sha256, Verdict.QUARANTINED, row.receipt or "", findings=found)
            if self.on_outcome is not None:
                self.on_outcome(outcome)
            outcomes.append(outcome)
        ctx.ledger.set_message_stage(recorded.message_id, Stage.PROCESSED,
                                     f"quarantined, sender not authenticated: {reason}")
        return outcomes

    def _finish_message(self, recorded: _Recorded) -> None:
        """After its files are decided: a notice when it brought nothing to ingest, then the message is done."""
        inc, max_bytes = recorded.incoming, self.ctx.ws.settings.max_attachment_bytes
        too_large = [s.filename for s in inc.skipped if s.reason == "too-large"]
        if (not inc.attachments or too_large) and inc.sender:
            self._deliver(nothing_found_message(self.ctx.ws.settings, inc, too_large, max_bytes), "notice")
        self.ctx.ledger.set_message_stage(recorded.message_id, Stage.PROCESSED)

    def archived_files(self, name: str, data: bytes) -> list[tuple[str, str]]:
        """(name, sha256) of each file to decide, archived: a zip's workbooks (nested zips too, the zip itself
        archived as well), else the file itself. A zip without any workbook is decided itself (not a workbook)."""
        digest = self.ctx.archive.put(data)
        if not is_zip_of_files(name, data):
            return [(name, digest)]
        found, _skipped = unpack_zip(name, data, max_attachment_bytes=self.ctx.ws.settings.max_attachment_bytes)
        return [(f"{name}/{a.filename}", self.ctx.archive.put(a.data)) for a in found] or [(name, digest)]

    def resume(self) -> list[Outcome]:
        """Decide what a crash left recorded but undecided."""
        rows = [r for r in self.ctx.ledger.pending_submissions() if r.message_id is None]
        return self.process(rows, Envelope())

    def reprocess(self, receipt: str) -> Outcome:
        row = self.ctx.ledger.submission(receipt)
        if row is None:
            raise NotFound(f"No submission with receipt {receipt}.")
        envelope = Envelope(row.sender)
        return self.process([row], envelope, again=True)[0]

    # -- the pipeline ----------------------------------------------------------------------------------------------
    def process(self, rows: Sequence[SubmissionRow], envelope: Envelope, again: bool = False) -> list[Outcome]:
        """Decide recorded submissions that arrived the same way (one message, or none)."""
        return self._process([(row, envelope) for row in rows], again)

    def _process(self, items: Sequence[tuple[SubmissionRow, Envelope]], again: bool = False) -> list[Outcome]:
        """Decide recorded submissions: examined in the sandbox's workers while the parent records and answers
        each finished one; duplicates last, when what they repeat has been decided (a copy of a file earlier in
        the same run too: it is never examined, and is answered 重複寄送)."""
        ctx = self.ctx
        rows = [row for row, _ in items]
        envelopes = {row.id: envelope for row, envelope in items}
        duplicates = {} if again else {r.id: d for r in rows if (d := self._duplicate_of(r)) is not None}
        repeats = set() if again else repeated_here([r for r in rows if r.id not in duplicates])
        to_examine = [r for r in rows if r.id not in duplicates and r.id not in repeats]
        secret = ctx.ws.secret() if to_examine or repeats else b""

        def job(r: SubmissionRow) -> Job:
            return Job(str(ctx.ws.root), secret, ctx.archive.get(r.sha256), envelopes[r.id].sender, r.receipt or "")

        jobs = {r.id: job(r) for r in to_examine}
        by_id = {r.id: r for r in rows}
        outcomes: dict[int, Outcome] = {}
        accepted_here: set[tuple[str | None, str | None, str | None]] = set()
        later: list[SubmissionRow] = []
        for row_id, result in self._examine(list(jobs.items())):
            row = by_id[row_id]
            ex = self._examined(row, result)
            if ex.stamp and (ex.collection, previous_round(ex.stamp.round), ex.stamp.agency) in accepted_here:
                later.append(row)  # its previous round was accepted in this batch: examined again, after it
                continue
            outcome = self._decide_one(row, ex, None, envelopes[row_id], again)
            outcomes[row.id] = outcome
            if outcome.verdict == Verdict.ACCEPTED:
                accepted_here.add((outcome.collection, outcome.round, outcome.agency))
        for row_id, result in self._examine([(r.id, jobs[r.id]) for r in later]):
            row = by_id[row_id]
            outcomes[row_id] = self._decide_one(row, self._examined(row, result), None, envelopes[row_id], again)
        # the same bytes twice in this run: a duplicate of the first copy, now decided, unless that one turned out
        # no real arrival (quarantined), when the copy is examined itself
        unrepeated = []
        for r in rows:
            if r.id in repeats:
                first = self._duplicate_of(r)
                if first is None:
                    unrepeated.append(r)
                else:
                    duplicates[r.id] = first
        for row_id, result in self._examine([(r.id, job(r)) for r in unrepeated]):
            row = by_id[row_id]
            outcomes[row_id] = self._decide_one(row, self._examined(row, result), None, envelopes[row_id], again)
        for row in rows:
            if row.id not in outcomes:  # a duplicate: decided when what it repeats has been
                outcomes[row.id] = self._decide_one(row, None, duplicates[row.id], envelopes[row.id], again)
        return [outcomes[r.id] for r in rows]

    def _examine(self, jobs: list[tuple[int, Job]]) -> Iterator[tuple[int, Examination | BaseException]]:
        """(row id, examination) for every job, batch by batch as the workers finish them. A batch that failed as a
        whole (one of its files crashed or hung the worker) is examined again one file per task, after the others,
        so that the failure is blamed on exactly the file that caused it."""
        if not jobs:
            return
        per_batch = max(1, min(BATCH_FILES, -(-len(jobs) // (2 * self.sandbox.size))))
        groups = batches(jobs, per_batch)
        failed: list[tuple[int, Job]] = []
        results = self.sandbox.imap(examine_batch, [[job for _, job in group] for group in groups])
        for group, result in zip(groups, results, strict=True):
            if isinstance(result, list):
                yield from zip([row_id for row_id, _ in group], result, strict=True)
            elif len(group) == 1:
                yield group[0][0], result
            else:
                failed += group
        for (row_id, _), alone in zip(failed, self.sandbox.map(examine_batch, [[job] for _, job in failed]),
                                      strict=True):
            yield row_id, alone[0] if isinstance(alone, list) else alone

    def _examined(self, row: SubmissionRow, result: Examination | BaseException) -> Examination:
        try:
            return as_examination(result, self.ctx.locale)
        except Exception as exc:  # a failure of the program (broken rules ...): kept for staff, then raised
            self.ctx.ledger.fail_submission(row.id, f"{exc.__class__.__name__}: {exc}")
            raise

    def _decide_one(self, row: SubmissionRow, ex: Examination | None, dup: SubmissionRow | None, envelope: Envelope,
                    again: bool) -> Outcome:
        """A duplicate (of `dup`), or the examined file's verdict; a failure of the program marks the submission
        failed."""
        try:
            if dup is not None:
                outcome = self._decide_duplicate(row, dup, envelope)
            else:
                assert ex is not None
                outcome = self._decide(row, ex, envelope, again)
        except Exception as exc:
            # Kept for staff (stage failed, with the reason) and never resumed on its own, so one file the
            # program cannot decide does not stop every later run; `collect reprocess` retries it. A ledger that
            # went away (a database restart) is no fault of the file: it stays received, to be decided again.
            if not is_outage(exc):
                self.ctx.ledger.fail_submission(row.id, f"{exc.__class__.__name__}: {exc}")
            raise
        if self.on_outcome:
            self.on_outcome(outcome)
        return outcome

    def _duplicate_of(self, row: SubmissionRow) -> SubmissionRow | None:
        return self.ctx.ledger.first_with_hash(row.sha256, row.id)

    def _decide_duplicate(self, row: SubmissionRow, first: SubmissionRow, env: Envelope) -> Outcome:
        ctx = self.ctx
        facts = self._facts(row, Verdict.DUPLICATE, env, first.collection, first.round, first.agency, [])
        facts.duplicate_of = first.receipt
        mail = self._answer(facts, row, first.agency)
        ctx.ledger.decide(row.id, verdict=Verdict.DUPLICATE, found=[], duplicate_of=first.receipt,
                          collection=first.collection, round=first.round, agency=first.agency,
                          receipt_path=str(mail) if mail else None)
        return Outcome(row.file_name, row.sha256, Verdict.DUPLICATE, row.receipt or "", first.collection, first.round,
                       first.agency, [], None, mail, first.receipt)

    def _decide(self, row: SubmissionRow, ex: Examination, env: Envelope, again: bool = False) -> Outcome:
        """Record what the examination found: the rows, the annotated copy, the receipt, then the verdict."""
        ctx = self.ctx
        stamp, verdict, found = ex.stamp, ex.verdict, ex.findings
        values: dict[str, Any] = {"kind": ex.kind} if ex.kind else {}
        agency = stamp.agency if stamp else None
        facts = self._facts(row, verdict, env, stamp.collection if stamp else None, stamp.round if stamp else None,
                            agency, found, known=ex.known or Known())
        if ex.frame_path is not None:
            values["frame_path"] = ex.frame_path
            values["rows"] = ex.rows
        annotated_path = None
        if ex.annotated is not None and ex.collection is not None and stamp is not None:
            name = f"{row.receipt}-{issued_file_name(stamp.agency, '檢核結果')}"
            name = odf.ods_name(name) if odf.is_ods(ex.annotated) else name
            annotated_path = ctx.ws.round_dir(ex.collection, stamp.round) / "receipts" / name
            write_atomic(annotated_path, ex.annotated)
            if len(ex.annotated) <= copy_limit(ctx.ws.settings.max_attachment_bytes):
                facts.annotated = OutgoingAttachment(name, ex.annotated)
            else:  # no mail server would take the receipt: it goes without the copy, and says so
                facts.copy_note = (f"標示副本（{len(ex.annotated) / 1_000_000:,.1f} MB）超過郵件附件上限，本信未附；"
                                   "請依下列檢核說明修正。")
            values["annotated_path"] = str(annotated_path)
        if verdict == Verdict.REJECTED and stamp is not None and ex.collection is not None \
                and stamp.collection == ex.collection:  # never on a sign-off workbook's receipt
            facts.counting_note = counting_note(agency_count(ctx, ex.collection, stamp.round, stamp.agency,
                                                             excluding=row.id))
        decided_before = again and row.verdict is not None
        if decided_before and row.verdict == verdict and [f.to_dict() for f in found] == [
                f.to_dict() for f in ctx.ledger.findings_of(row.id)]:
            mail = Path(row.receipt_path) if row.receipt_path else None  # reprocessed, same decision: told already
        else:
            if decided_before:
                facts.revision = decision_key(facts)  # reprocessed to a new decision: the agency is told again
            mail = self._answer(facts, row, agency)
        ctx.ledger.decide(row.id, verdict=verdict, found=found, collection=stamp.collection if stamp else None,
                          round=stamp.round if stamp else None, agency=agency,
                          version=stamp.version if stamp else None, receipt_path=str(mail) if mail else None,
                          **values)
        return Outcome(row.file_name, row.sha256, verdict, row.receipt or "", stamp.collection if stamp else None,
                       stamp.round if stamp else None, agency, found, annotated_path, mail)

    def _facts(self, row: SubmissionRow, verdict: Verdict, env: Envelope, cid: str | None, round_id: str | None,
               agency: str | None, found: list[Finding], known: Known | None = None) -> ReceiptFacts:
        """What the receipt says; `known` is what the worker looked up, else (a duplicate) it is looked up here."""
        ctx = self.ctx
        if known is None:
            known = self._look_up(cid, round_id, agency)
        if env.sender:
            to = [env.sender]
        elif known.agency_emails and verdict != Verdict.QUARANTINED:
            to = list(known.agency_emails)
        else:
            to = []
        return ReceiptFacts(
            receipt=row.receipt or "", sha256=row.sha256, verdict=verdict, file_name=row.file_name,
            received_at=row.received_at, to=to, office=ctx.ws.settings.office, sender=ctx.ws.settings.sender,
            agency_name=known.agency_name if verdict != Verdict.QUARANTINED else "", deadline=known.deadline,
            collection_title=known.title, round_label=roc_round_label(round_id) if round_id else "",
            findings=found, in_reply_to=env.message_id,
            references=env.references,
        )

    def _look_up(self, cid: str | None, round_id: str | None, agency: str | None) -> Known:
        """The collection's title, the round's deadline and the agency, for a file no worker examined."""
        ctx = self.ctx
        reg_agency = ctx.registry.get(agency) if agency else None
        coll: Collection | None = None
        if cid and cid in ctx.collection_ids():
            try:
                coll = ctx.collection(cid)
            except CollectionError:
                coll = None
        deadline = roc_deadline(ctx.ledger.round_info(coll.id, round_id)) if coll and round_id else ""
        return Known(coll.title if coll else "", deadline, reg_agency.name if reg_agency else "",
                     tuple(reg_agency.emails) if reg_agency else ())

    def _answer(self, facts: ReceiptFacts, row: SubmissionRow, agency: str | None) -> Path | None:
        if not facts.to:
            return None
        return self._deliver(receipt_message(facts), "receipt")

    def _deliver(self, msg: Any, kind: str) -> Path:
        return deliver(self.ctx.ledger, self.ctx.ws.mail_outbox, msg, kind, self.transport).path


def repeated_here(rows: Sequence[SubmissionRow]) -> set[int]:
    """The ids of rows whose bytes an earlier row of the same run carries (two copies of a file named together,
    one message with the same attachment twice): decided as duplicates of the first copy, never examined twice."""
    first: dict[str, int] = {}
    return {r.id for r in sorted(rows, key=lambda r: r.id) if first.setdefault(r.sha256, r.id) != r.id}


def counting_note(n: Count[Any]) -> str:
    """What a rejected return's receipt says of the agency's earlier accepted version (dates in Taipei, ROC): that
    it still counts, that it waits for its supervising agency's 核轉, or that it was sent back (退回) and nothing
    counts; "" when nothing was accepted before."""
    earlier = n.accepted
    if earlier is None:
        return ""
    version = f"貴機關先前於 {roc_time(earlier.received_at)} 通過的版本（收件編號 {earlier.receipt}）"
    if n.reason == Counted.RETURNED:
        why = f"（退回理由：{n.returned_reason}）" if n.returned_reason else ""
        return f"{version}已由主管機關退回{why}，不計入本期；本期目前沒有計入的資料，請修正後重新寄送。"
    if n.awaiting and not n.counts:
        return f"{version}仍為本期有效的版本，待主管機關核轉後計入。"
    return f"{version}仍為本期計入的資料。"


def batches(jobs: Sequence[tuple[int, Job]], per_batch: int) -> list[list[tuple[int, Job]]]:
    """Jobs in order, cut into batches of at most per_batch files and BATCH_BYTES (a bigger file goes alone)."""
    out: list[list[tuple[int, Job]]] = []
    group: list[tuple[int, Job]] = []
    size = 0
    for item in jobs:
        n = len(item[1].data)
        alone = converted(item[1].data)  # LibreOffice takes seconds: such a file is a task of its own
        if group and (len(group) == per_batch or size + n > BATCH_BYTES or alone):
            out.append(group)
            group, size = [], 0
        group.append(item)
        size += n
        if alone:
            out.append(group)
            group, size = [], 0
    if group:
        out.append(group)
    return out


def copy_limit(max_attachment_bytes: int) -> int:
    """The largest annotated copy a receipt carries: base64 makes an attachment a third larger in the message."""
    return max_attachment_bytes * 3 // 4


def converted(data: bytes) -> bool:
    """True for an .xls (by content): its annotated copy starts with a LibreOffice conversion (an .ods is marked
    in place, collect.xlsx.odf_annotate)."""
    return data[:8] == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def is_zip_of_files(name: str, data: bytes) -> bool:
    """True for a zip archive that is not itself a workbook (an .xlsx is a zip too): its members are the files."""
    return data[:4] == b"PK\x03\x04" and (name.lower().endswith(ZIP_SUFFIXES) or sniff_workbook(data) is None)


def shown_name(path: Path) -> str:
    """A file's name as text whatever its encoding: a name that is not UTF-8 (a Big5 name from a Windows share)
    is decoded as Big5, else its undecodable bytes are shown as \\xNN."""
    raw = os.fsencode(path.name)
    for codec in ("utf-8", "cp950", "big5hkscs"):
        try:
            return raw.decode(codec)
        except UnicodeDecodeError:
            continue
    return raw.decode("utf-8", "backslashreplace")


def safe_text(text: str) -> str:
    """Text that can be stored and shown: bytes a file system name could not decode become \\xNN."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def expand(paths: Iterable[Path]) -> list[Path]:
    """Folders become the spreadsheets, zips and .eml files inside them (sorted); files stay as named."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out += sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")
                          and p.suffix.lower() in (*SPREADSHEET_SUFFIXES, *ZIP_SUFFIXES, ".eml"))
        elif path.is_file():
            out.append(path)
        else:
            raise NotFound(f"{path} does not exist.", "Name files, .eml messages or folders of them.")
    return out
