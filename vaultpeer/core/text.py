"""Text from outside (JSON from a client, an import file, another device): what is accepted, and
how it is shown.

* ``is_plain_text`` is the one check on a name or description another device gives (roster
  entries, the pairing ``identity`` message, join requests) and on this device's own profile.
* ``inert`` is the one way such text reaches a terminal or a log line: nothing in it can move the
  cursor, clear the screen, ring the bell, change colours, reorder the line (bidi overrides) or
  hide part of it (zero-width characters). ``inert_json`` does the same for a JSON document.
"""

import re
from bisect import bisect_right

#: The most characters (code points) a device name or OS description may have.
MAX_TEXT = 64

#: Code points no name or description may hold: Unicode's control (Cc), format (Cf: bidi
#: overrides and isolates, zero-width characters, the soft hyphen, tag characters...), surrogate
#: (Cs), line separator (Zl) and paragraph separator (Zp) characters, as of Unicode 15.1. A fixed
#: table rather than ``unicodedata``: whether a roster entry counts must be decided the same way on
#: every device, whatever Python (and so Unicode) version each runs; a character that a later
#: Unicode version makes a format character is still escaped by ``inert``.
#: (tests/core/test_text.py checks the table against this Python's ``unicodedata``.)
_REFUSED_RANGES = (
    (0x0000, 0x001F), (0x007F, 0x009F), (0x00AD, 0x00AD), (0x0600, 0x0605), (0x061C, 0x061C),
    (0x06DD, 0x06DD), (0x070F, 0x070F), (0x0890, 0x0891), (0x08E2, 0x08E2), (0x180E, 0x180E),
    (0x200B, 0x200F), (0x2028, 0x202E), (0x2060, 0x2064), (0x2066, 0x206F), (0xD800, 0xDFFF),
    (0xFEFF, 0xFEFF), (0xFFF9, 0xFFFB), (0x110BD, 0x110BD), (0x110CD, 0x110CD), (0x13430, 0x1343F),
    (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A), (0xE0001, 0xE0001), (0xE0020, 0xE007F),
)
_STARTS = tuple(start for start, _ in _REFUSED_RANGES)
_NAMED_ESCAPES = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}
#: What might need escaping in a JSON document: anything but printable ASCII and its line breaks.
_JSON_CANDIDATE = re.compile(r"[^\n\x20-\x7e]")


def is_refused_char(char: str) -> bool:
    """Whether ``char`` is a control, format, surrogate or line/paragraph separator character."""
    code = ord(char)
    index = bisect_right(_STARTS, code) - 1
    return index >= 0 and code <= _REFUSED_RANGES[index][1]


def is_plain_text(value: object, max_chars: int = MAX_TEXT) -> bool:
    """Whether ``value`` is acceptable as a name or description from another device: a string
    of 1 to ``max_chars`` characters, none of them refused (``is_refused_char``; this also
    rules out lone surrogates)."""
    return (isinstance(value, str) and 0 < len(value) <= max_chars
            and not any(is_refused_char(char) for char in value))


def _shown_escaped(char: str) -> bool:
    # isprintable() also catches what this Python knows to be unprintable beyond the table:
    # unassigned and private-use characters, and spaces other than " "
    return is_refused_char(char) or not char.isprintable()


def _python_escape(char: str) -> str:
    code = ord(char)
    if char in _NAMED_ESCAPES:
        return _NAMED_ESCAPES[char]
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def inert(text: str, max_chars: int | None = None) -> str:
    """``text`` as it may be shown on a terminal or written to a log line: every character that
    ``is_refused_char`` or that this Python finds unprintable is written as its Python escape
    (``\\x1b``, ``\\n``, ``\\u202e``, ``\\U000e0001``), so ``evil\\x1b[2J`` shows as exactly that.
    A backslash is left as it is: the result is for reading, not for decoding. With
    ``max_chars``, at most that many characters, never cutting an escape in two."""
    shown = []
    length = 0
    for char in text:
        piece = _python_escape(char) if _shown_escaped(char) else char
        if max_chars is not None and length + len(piece) > max_chars:
            break
        shown.append(piece)
        length += len(piece)
    return "".join(shown)


def _json_escape(char: str) -> str:
    code = ord(char)
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def inert_json(document: str) -> str:
    """A JSON document (as ``json.dumps(..., ensure_ascii=False)`` writes it) with every character
    ``inert`` would escape written as a JSON ``\\u`` escape: the same JSON value, nothing raw on
    the terminal. Line breaks are left alone: inside strings the encoder has already escaped
    them, so any left are the document's own indentation."""
    return _JSON_CANDIDATE.sub(lambda m: _json_escape(m[0]) if _shown_escaped(m[0]) else m[0], document)


def holds_lone_surrogate(value: object) -> bool:
    """Whether any string in ``value`` (nested in dicts and lists, keys included) holds a lone
    surrogate: what a ``"\\ud800"`` JSON escape decodes to. It is not Unicode text, so it could be
    neither encoded as UTF-8 (echoed back, written to a file) nor stored in an item."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            pending += item.keys()
            pending += item.values()
        elif isinstance(item, list):
            pending += item
    return False
