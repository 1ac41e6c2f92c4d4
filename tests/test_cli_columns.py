"""The plain columns of `ls` and `search`: widths in terminal cells, cutting only on a terminal."""

import pytest

from vaultpeer.cli import columns
from vaultpeer.cli.columns import cell_width, cut, print_columns


def test_cells_count_wide_and_combining_characters():
    assert cell_width("abc") == 3
    assert cell_width("日本") == 4
    assert cell_width("e\u0301") == 1  # e and a combining acute accent
    assert cut("abcdefgh", 5) == "abcd…" and cell_width(cut("日本語テキスト", 5)) <= 5
    assert cut("short", 10) == "short"


def test_columns_align_and_a_pipe_gets_everything(capsys):
    print_columns(("ID", "TITLE", "URL"), [("1", "日本", "https://example.org/" + "x" * 200), ("22", "ab", "u")],
                  shrinkable=(1, 2))
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("ID  TITLE  URL")
    assert lines[1].startswith("1   日本   https://example.org/" + "x" * 200)  # not cut into a pipe
    assert lines[2] == "22  ab     u"


def test_on_a_terminal_the_shrinkable_columns_make_the_line_fit(capsys, monkeypatch):
    monkeypatch.setattr(columns.sys.stdout, "isatty", lambda: True, raising=False)
    monkeypatch.setattr(columns.shutil, "get_terminal_size", lambda: type("Size", (), {"columns": 60})())
    print_columns(("ID", "TITLE", "URL"), [("1", "t" * 40, "u" * 80)], shrinkable=(1, 2))
    out = capsys.readouterr().out
    assert all(cell_width(line) <= 60 for line in out.splitlines())
    assert "…" in out


@pytest.mark.parametrize("rows", [[], [("a",)]])
def test_header_only_or_one_column(capsys, rows):
    print_columns(("ONE",), rows)
    assert capsys.readouterr().out.splitlines()[0] == "ONE"
