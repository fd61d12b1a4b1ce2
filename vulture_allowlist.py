"""Names vulture (`make test`, min confidence 60) reports as unused, each with why it stays; reviewed 2026-12-02."""

# ruff: noqa
# This file is read by vulture, never imported or run: `_` stands for "any object".

# -- used outside what vulture reads -----------------------------------------------------------------------------
row_rule  # collect.forms.spec: the rules format's row check, used by rules/*.py (loaded by file name)
table_rule  # collect.forms.spec: the rules format's table check, used by rules/*.py
form_field  # collect.forms.spec: a header-level field in Meta(fields=...), used by rules/reserve1.py
title_en  # collect.forms.spec.Meta: set by rules/*.py, read through Meta by name
MISTAKE_FINDINGS  # collect.simulate: each simulated mistake's finding code, checked by tests/test_demo_collections.py
_.units_of  # collect.agencies.Registry: a supervising agency's units, public API (tests/test_agencies.py)
counting_agencies  # collect.follow.signoff: which agencies count in a round, public API (tests/test_second_tier.py)
_.failed_messages  # collect.ledger: messages that failed, for staff (tests/test_mail_backends.py)
receipt_mail  # collect.receive.ingest.Outcome: a dataclass field set by keyword, read by callers and tests
reconnects  # collect.receive.watch: the watch summary's reconnect count (tests/test_watch.py)
_.reconnects  # ...incremented where the watcher reconnects
rows_per_file  # benchmarks/run.py Measured: a dataclass field, filled by keyword, written to results.json
exc_type  # the context-manager protocol's __exit__ argument: the signature is fixed by Python
outgoing_by_mid  # collect.ledger: an Index registered on the table's metadata by being made
change  # collect.report.summary.Change: a dataclass field read by the summary's jinja templates
totals_by_supervisor  # collect.report.merge: tests/test_merge.py's check; the summary now sums with report.totals

# -- attributes other libraries read (openpyxl and zipfile objects we set up) --------------------------------------
_.sheet_state  # openpyxl Worksheet: hidden / veryHidden
_.formatColumns  # openpyxl SheetProtection flags
_.formatRows
_.autoFilter
_.zoomScale  # openpyxl SheetView
_.border  # openpyxl Cell style
_.data_type  # openpyxl Cell: "s" keeps formula-looking text as text
_.hyperlink  # openpyxl Cell
_.tabSelected  # openpyxl SheetView
_.firstSheet  # openpyxl BookView
_.pageSetUpPr  # openpyxl WorksheetProperties: fit the printout to the page
_.paperSize  # openpyxl PrintPageSetup (the 檢核結果 sheet prints on A4 landscape, one page wide)
_.orientation
_.fitToWidth
_.fitToHeight
_.print_title_rows  # openpyxl Worksheet: a default template's header row repeated on every printed page
_.horizontalCentered  # openpyxl PrintOptions
_.page_margins  # openpyxl Worksheet
_.compress_type  # zipfile.ZipInfo: how each part is compressed

# -- dead, in another engineer's files this round: reported to the owner, who deletes or uses it -----------------
_.complete  # collect/follow/status.py Completeness.complete: nothing reads it (follow)
is_workbook_name  # collect/mail/message.py: only tests call it (mail)
_._batch  # collect/mail/backends.py IMAP mailbox: stored, never read (mail)
sniff  # collect/receive/read.py: only tests call it; the reader uses _sniff (receive)
read_in_sandbox  # collect/receive/read.py: being removed by the receive engineer (receive)
rr  # collect/receive/table.py: a loop variable never read, should be `_r` (receive)
FORMULA_PREFIXES  # collect/report/workbooks.py: documents _FORMULA_START, never read (report)
