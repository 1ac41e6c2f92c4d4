"""`vaultpeer run --env-file`: the dotenv lines it reads, and errors that name a line, never its text."""

import pytest

from vaultpeer.core.dotenv import parse_dotenv
from vaultpeer.core.errors import InvalidInput


def test_keys_values_comments_quotes_and_export():
    text = "\n".join([
        "# a comment",
        "",
        "PLAIN=vp://Bank/password",
        "  SPACED = value with spaces   # a comment",
        'DOUBLE="two\\nlines \\"quoted\\" # not a comment"  # one',
        "SINGLE='as \\n written'",
        "export EXPORTED=1",
        "EMPTY=",
        "HASH=a#b",
        "PLAIN=later wins in a dict",
    ])
    pairs = parse_dotenv(text)
    assert pairs == [
        ("PLAIN", "vp://Bank/password"),
        ("SPACED", "value with spaces"),
        ("DOUBLE", 'two\nlines "quoted" # not a comment'),
        ("SINGLE", "as \\n written"),
        ("EXPORTED", "1"),
        ("EMPTY", ""),
        ("HASH", "a#b"),
        ("PLAIN", "later wins in a dict"),
    ]
    assert dict(pairs)["PLAIN"] == "later wins in a dict"
    assert parse_dotenv("exported=x") == [("exported", "x")]  # a key may start with "export"


@pytest.mark.parametrize("line,message", [
    ("NO_EQUALS hunter2", "expected KEY=VALUE"),
    ("1KEY=hunter2", "expected KEY=VALUE"),
    ("BAD-KEY=hunter2", "expected KEY=VALUE"),
    ('OPEN="hunter2', "double quote is not closed"),
    ("OPEN='hunter2", "single quote is not closed"),
    ('AFTER="x" hunter2', "after the closing quote"),
])
def test_an_error_names_the_line_by_number_only(line, message):
    with pytest.raises(InvalidInput, match=message) as raised:
        parse_dotenv(f"OK=1\n{line}\n", "app.env")
    assert str(raised.value).startswith("app.env, line 2:")
    assert "hunter2" not in str(raised.value)  # the file may hold plain secrets
