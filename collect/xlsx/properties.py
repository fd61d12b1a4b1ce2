"""Custom document properties (File > Properties > Custom): the stamp's redundant copy. Always strings: LibreOffice
saves an integer property back as a float."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from openpyxl.packaging.custom import StringProperty
from openpyxl.workbook.workbook import Workbook


def _props(wb: Workbook) -> Any:
    return wb.custom_doc_props  # type: ignore[attr-defined]  # not in types-openpyxl


def set_strings(wb: Workbook, values: Mapping[str, str]) -> None:
    """Set each property to its text, replacing one of the same name."""
    props = _props(wb)
    for name, value in values.items():
        for prop in list(props.props):
            if prop.name == name:
                props.props.remove(prop)
        props.append(StringProperty(name=name, value=str(value)))


def strings(wb: Workbook) -> dict[str, str]:
    """Every custom property as text."""
    return {str(p.name): "" if p.value is None else str(p.value) for p in _props(wb).props}


def remove(wb: Workbook, prefix: str) -> None:
    """Drop every custom property whose name starts with `prefix`."""
    props = _props(wb)
    for prop in list(props.props):
        if str(prop.name).startswith(prefix):
            props.props.remove(prop)
