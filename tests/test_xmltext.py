"""The one policy for characters XML cannot hold (collect.xlsx.xmltext): one set, shown or dropped, raw or as a
character reference in a part."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from collect.xlsx.xmltext import UNSAFE_CODES, dropped, safe_part, shown


def test_every_unsafe_character_is_shown_as_a_symbol_or_dropped_and_nothing_else_changes() -> None:
    text = "".join(chr(c) for c in sorted(UNSAFE_CODES))
    visible = shown("甲" + text + "\t\n\r乙")
    assert visible[0] == "甲" and visible[-4:] == "\t\n\r乙"
    assert visible[1:3] == "␀␁" and "␛" in visible and visible[-6:-4] == "\ufffd\ufffd"
    assert ET.fromstring(f"<t>{shown(text)}</t>".encode()).text == shown(text)  # XML holds what is shown
    assert dropped("甲" + text + "\t乙") == "甲\t乙"
    assert {c for c in range(0x10000) if dropped(chr(c)) == ""} == set(UNSAFE_CODES)


def test_a_part_shows_raw_characters_and_references_alike_and_cuts_long_text() -> None:
    part = '<sst><si><t>a\x01b&#27;c&#xFFFE;</t></si><si><t>{}</t></si></sst>'.format("長" * 50).encode()
    safe = safe_part(part, 20)
    root = ET.fromstring(safe)
    first, long = (t.text for t in root.iter("t"))
    assert first == "a␁b␛c\ufffd"
    assert long is not None and long.startswith("長" * 10) and "50" in long and len(long) < 50
