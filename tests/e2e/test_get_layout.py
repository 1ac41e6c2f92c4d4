"""`get`'s human view keeps its layout with multi-line and long values, and puts where an item was
imported from (`import-source`) last, out of the way; `--json` still has every field."""

import json

from helpers import PASSWORD, cli_env, run_cli
from vaultpeer.core.interchange import SOURCE_FIELD

PW = PASSWORD + "\n"


def test_multi_line_and_long_values_stay_in_their_column_and_import_source_comes_last(tmp_path):
    home = tmp_path / "laptop"
    assert run_cli(home, "init", "--password-stdin", stdin=PW).returncode == 0
    notes = "first line of the notes\nsecond line\n\nafter an empty line"
    url = "https://example.com/" + "a" * 150
    added = run_cli(home, "add", "Mail", "--field", f"{SOURCE_FIELD}=kdbx:0123", "--field", "username=alice",
                    "--field", f"notes={notes}", "--field", f"url={url}", "--field", "password=pw1",
                    "--password-stdin", stdin=PW)
    assert added.returncode == 0, added.stderr
    result = run_cli(home, "get", "Mail", "--password-stdin", stdin=PW, env=cli_env(COLUMNS="80"))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Mail  id ") and lines[1].startswith("  modified ")
    body = lines[2:-1]  # the last line says secret values are hidden
    assert all(len(line) <= 80 and (line.startswith("  ") or not line) for line in body), result.stdout
    column = body[0].index("alice")
    assert [line[column:] for line in body[:5]] == ["alice", "first line of the notes", "second line", "",
                                                    "after an empty line"], result.stdout
    assert all(not line[:column].strip() for line in body[2:5]), "a value's next lines go under its first"
    assert "".join(line[column:] for line in body[5:8]) == url, result.stdout
    assert body[-1].split() == [SOURCE_FIELD, "kdbx:0123"], "import-source is last"
    shown = run_cli(home, "get", "Mail", "--json", "--password-stdin", stdin=PW)
    assert json.loads(shown.stdout)["fields"][SOURCE_FIELD] == "kdbx:0123"


def test_get_field_and_read_give_a_pipe_the_exact_value_escape_sequences_included(tmp_path):
    """A value with an escape sequence (or a tab) reaches a script byte for
    byte: `get --field` adds only its newline, `read` adds nothing (click.echo would have dropped
    the escape sequence when stdout is no terminal)."""
    home = tmp_path / "laptop"
    assert run_cli(home, "init", "--password-stdin", stdin=PW).returncode == 0
    value = "pa\x1b[31mss\tword"
    assert run_cli(home, "add", "Odd", "--field", f"password={value}", "--password-stdin",
                   stdin=PW).returncode == 0
    got = run_cli(home, "get", "Odd", "--field", "password", "--password-stdin", stdin=PW)
    assert got.returncode == 0 and got.stdout == value + "\n", repr(got.stdout)
    read = run_cli(home, "read", "vp://Odd/password", "--password-stdin", stdin=PW)
    assert read.returncode == 0 and read.stdout == value, repr(read.stdout)
