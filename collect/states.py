"""Every lifecycle state collect names, with its zh-TW label: verdicts, ledger stages, mail stages, agency states."""

from __future__ import annotations

import enum


class Verdict(enum.StrEnum):
    """What became of one received file; named once, used everywhere."""

    ACCEPTED = "accepted"
    REJECTED = "rejected"
    DUPLICATE = "duplicate"
    UNIDENTIFIED = "unidentified"
    TAMPERED = "tampered"
    QUARANTINED = "quarantined"
    UNREADABLE = "unreadable"


class Stage(enum.StrEnum):
    """Lifecycle of a submission or message row: recorded first, decided after."""

    RECEIVED = "received"  # archived and recorded; not yet decided (a crash here means: process again)
    PROCESSED = "processed"  # verdict given, receipt written
    FAILED = "failed"  # the program could not process it; kept for staff with the reason


class MailStage(enum.StrEnum):
    """An outgoing message's place: written to outbox/mail and the ledger, then handed to the transport."""

    QUEUED = "queued"  # recorded, not yet accepted by the mail server (retried by `collect watch`)
    SENT = "sent"


class State(enum.StrEnum):
    """An agency's place in a round; named once, used by status, reminders and reports."""

    ISSUED = "issued"  # the workbook went out; nothing has come back
    RECEIVED = "received"  # something came back, but nothing that could be decided (quarantined, tampered ...)
    REJECTED = "rejected"  # the latest decided return had errors and none was accepted
    RETURNED = "returned"  # its supervising agency sent its accepted return back (退回): it must send again
    ACCEPTED = "accepted"  # an accepted return counts, received by the deadline
    LATE = "late"  # an accepted return counts, received after the deadline
    EXEMPT = "exempt"  # staff excused the agency from this round


ANSWERED = (State.ACCEPTED, State.LATE)
STATE_LABELS = {State.ISSUED: "已發出", State.RECEIVED: "已收件待確認", State.REJECTED: "退件待補正",
                State.RETURNED: "主管機關退回", State.ACCEPTED: "已通過", State.LATE: "逾期通過",
                State.EXEMPT: "免填報"}


class Counted(enum.StrEnum):
    """Why an agency's return counts in a round or not (collect.counting decides it)."""

    COUNTS = "counts"  # its latest accepted return counts in the totals
    AWAITING_SIGNOFF = "awaiting_signoff"  # its latest accepted return waits for its supervising agency's 核轉
    RETURNED = "returned"  # its supervising agency sent its latest accepted return back (退回): none counts
    REJECTED = "rejected"  # nothing accepted; its latest decided return had errors
    UNDECIDED = "undecided"  # something came back, nothing that could be decided
    NOTHING = "nothing"  # nothing came back
    EXEMPT = "exempt"  # staff excused it from the round

