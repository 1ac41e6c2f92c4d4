import json
import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vaultpeer.core.text import MAX_TEXT, inert, inert_json, is_plain_text, is_refused_char

REFUSED_CATEGORIES = {"Cc", "Cf", "Cs", "Zl", "Zp"}
HOSTILE = ["\x1b", "\r", "\n", "\x07", "\x00", "\x7f", "\x9b", "\u202e", "\u2066", "\u200b", "\u200d", "\u2028",
           "\ufeff", "\U000e0041", "\ud800"]


def test_the_fixed_table_holds_every_control_and_format_character_this_python_knows():
    for code in range(0x110000):
        char = chr(code)
        category = unicodedata.category(char)
        if category in REFUSED_CATEGORIES:
            assert is_refused_char(char), hex(code)
        elif is_refused_char(char):
            # only characters a newer Unicode made format characters, unassigned in this Python
            assert category == "Cn", hex(code)


@pytest.mark.parametrize("name", ["laptop", "Jürgen’s MacBook Pro", "電腦", "📱 phone", "a", "x" * MAX_TEXT,
                                  "Linux 6.1 (x86_64)", "back\\slash", "tab-free  spaces"])
def test_ordinary_names_are_plain_text_and_shown_as_they_are(name):
    assert is_plain_text(name) and inert(name) == name


@pytest.mark.parametrize("char", HOSTILE)
def test_control_format_and_surrogate_characters_are_refused_and_shown_escaped(char):
    assert not is_plain_text(f"evil{char}name")
    shown = inert(f"evil{char}name")
    assert shown.isprintable() and shown.startswith("evil\\") and shown.endswith("name")


@pytest.mark.parametrize("value", ["", "x" * (MAX_TEXT + 1), None, 7, b"name", ["name"]])
def test_empty_long_and_non_text_values_are_not_plain_text(value):
    assert not is_plain_text(value)


def test_inert_names_each_escape_and_never_cuts_one():
    assert inert("evil\rPaired with realdev") == "evil\\rPaired with realdev"
    assert inert("\x1b[2J\x07\u202eabc\U000e0001\n") == "\\x1b[2J\\x07\\u202eabc\\U000e0001\\n"
    assert inert("a\xa0b") == "a\\xa0b"  # unprintable to this Python, though not refused
    assert inert("ab\x1b", max_chars=5) == "ab" and inert("ab\x1b", max_chars=6) == "ab\\x1b"


@given(st.recursive(st.text() | st.integers() | st.none(),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=12))
def test_inert_json_is_the_same_json_with_nothing_unprintable_left_raw(value):
    document = inert_json(json.dumps(value, indent=2, ensure_ascii=False))
    assert json.loads(document) == value
    assert all(char == "\n" or char.isprintable() for char in document)


@given(st.text())
def test_inert_text_is_always_one_printable_line(text):
    shown = inert(text)
    assert shown.isprintable() and not any(is_refused_char(c) for c in shown)
    assert inert(text, max_chars=MAX_TEXT) == shown[:len(inert(text, max_chars=MAX_TEXT))]
