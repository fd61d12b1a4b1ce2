"""Locking a workbook: sheet and structure protection, locked and unlocked cells, hidden sheets, and data validation
(dropdowns, bounds, prompts) kept within Excel's limits."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Final

from openpyxl.cell.cell import Cell, MergedCell
from openpyxl.styles import Protection
from openpyxl.utils import get_column_letter
from openpyxl.workbook.protection import WorkbookProtection
from openpyxl.workbook.workbook import Workbook
from openpyxl.worksheet.datavalidation import DataValidation
from openpyxl.worksheet.worksheet import Worksheet

# Excel's limits ([MS-XLS] 2.5.37 DValStrings): a longer list formula, prompt, error or title makes Excel call the
# file corrupt and drop the validation.
LIST_FORMULA_LIMIT: Final = 255  # an inline list "a,b,c" (its quotes included)
PROMPT_LIMIT: Final = 255  # an input prompt
ERROR_LIMIT: Final = 225  # an error alert's message
TITLE_LIMIT: Final = 32  # a prompt's or an error's title
SHEET_NAME_LIMIT: Final = 31
_SHEET_NAME_BAD = re.compile(r"[\[\]:*?/\\]")


def cut(text: str, limit: int) -> str:
    """`text` within `limit` characters, an ellipsis marking a cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def sheet_name(text: str) -> str:
    """A valid sheet name: the characters Excel refuses ([]:*?/\\) dropped, at most 31 characters."""
    return _SHEET_NAME_BAD.sub("", text).strip("'")[:SHEET_NAME_LIMIT] or "Sheet"


def set_locked(cell: Cell | MergedCell, locked: bool) -> None:
    """Lock a cell (typing refused once its sheet is protected) or open it for typing."""
    cell.protection = Protection(locked=locked)


def lock_sheet(ws: Worksheet, *, allow_resize: bool = False, allow_filter: bool = False) -> None:
    """Protect a sheet (no password): only unlocked cells can be typed in; `allow_resize` lets a person widen
    columns and rows, `allow_filter` use the autofilter."""
    ws.protection.sheet = True
    if allow_resize:
        ws.protection.formatColumns = False
        ws.protection.formatRows = False
    if allow_filter:
        ws.protection.autoFilter = False


def lock_row_and_column_styles(ws: Worksheet) -> None:
    """Excel locks a cell by its own style, else its row's, else its column's. openpyxl drops empty cells of the
    default style when it saves, so an unlocked row or column style (whole columns unlocked in Excel) would unlock
    them: lock those styles, and only cells unlocked one by one stay open for typing."""
    for dim in [*ws.column_dimensions.values(), *ws.row_dimensions.values()]:
        if dim.has_style and not dim.protection.locked:
            dim.protection = Protection(locked=True)


def lock_structure(wb: Workbook) -> None:
    """No sheet can be added, removed, renamed or unhidden."""
    wb.security = WorkbookProtection(lockStructure=True)


def hide(ws: Worksheet, *, very: bool = False) -> None:
    """Hide a sheet; `very` hides it from Excel's Unhide list too (only a macro could show it)."""
    ws.sheet_state = "veryHidden" if very else "hidden"


def inline_list(choices: Sequence[str]) -> str | None:
    """The list formula "a,b,c" for a dropdown, or None when it would pass Excel's limit or a choice holds a comma
    or a quote (the list then goes on a sheet: `sheet_list`)."""
    formula = '"' + ",".join(choices) + '"'
    if len(formula) > LIST_FORMULA_LIMIT - 3 or any("," in c or '"' in c for c in choices):
        return None
    return formula


def sheet_list(lists: Worksheet, column: int, choices: Sequence[str]) -> str:
    """Write the choices down `column` of the (hidden) `lists` sheet; the formula that refers to them."""
    for i, choice in enumerate(choices, start=1):
        lists.cell(i, column, choice)
    letter = get_column_letter(column)
    quoted = "'" + lists.title.replace("'", "''") + "'"
    return f"{quoted}!${letter}$1:${letter}${len(choices)}"


def validation(kind: str, *, formula1: str, formula2: str | None = None, operator: str | None = None,
               title: str | None = None, prompt: str | None = None, error_title: str | None = None,
               error: str | None = None) -> DataValidation:
    """A data validation of `kind` ("list", "whole", "decimal", "date", "textLength") that stops a wrong value,
    its titles and messages cut to Excel's limits; add cells with `add`."""
    extra: dict[str, Any] = {}
    if formula2 is not None:
        extra["formula2"] = formula2
    if operator is not None:
        extra["operator"] = operator
    if prompt is not None:
        extra.update(showInputMessage=True, prompt=cut(prompt, PROMPT_LIMIT))
        if title is not None:
            extra["promptTitle"] = cut(title, TITLE_LIMIT)
    if error is not None:
        extra["error"] = cut(error, ERROR_LIMIT)
    if error_title is not None:
        extra["errorTitle"] = cut(error_title, TITLE_LIMIT)
    return DataValidation(type=kind, formula1=formula1, allow_blank=True, showErrorMessage=True,  # type: ignore[arg-type]
                          errorStyle="stop", **extra)


def add(ws: Worksheet, dv: DataValidation, ranges: str) -> None:
    """Apply a validation to `ranges` (space-separated: "E7:E22 E24:E30")."""
    dv.add(ranges)
    ws.add_data_validation(dv)
