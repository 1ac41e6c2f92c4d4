"""Plain aligned columns for the listings a person runs most (`ls`, `search`).

rich draws every other table, but importing and laying out rich costs about 50 ms, half the
100 ms a command through the daemon may take (issue 17, bench/cli_speed.py); these listings only
need left-aligned columns. Widths count terminal cells (East Asian wide characters take two,
combining marks none). On a terminal, the columns named shrinkable give up room (ending in "…")
until the line fits; into a pipe, nothing is cut (scripts should read `--json` anyway).
Values must already be safe to show (``inert``).
"""

import shutil
import sys
import unicodedata
from collections.abc import Sequence

import click

GAP = "  "


def cell_width(text: str) -> int:
    width = 0
    for char in text:
        if unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me", "Cf"):
            continue
        width += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
    return width


def cut(text: str, width: int) -> str:
    """``text`` in at most ``width`` cells, ending in "…" when cut."""
    if cell_width(text) <= width:
        return text
    kept, used = [], 0
    for char in text:
        size = cell_width(char)
        if used + size > width - 1:
            break
        kept.append(char)
        used += size
    return "".join(kept) + "…"


def print_columns(headers: Sequence[str], rows: Sequence[Sequence[str]], *, shrinkable: Sequence[int] = ()) -> None:
    widths = [max([cell_width(h)] + [cell_width(row[i]) for row in rows]) for i, h in enumerate(headers)]
    terminal = sys.stdout.isatty()
    if terminal:
        room = shutil.get_terminal_size().columns - len(GAP) * (len(headers) - 1)
        while sum(widths) > room:
            candidates = [i for i in shrinkable if widths[i] > max(8, cell_width(headers[i]))]
            if not candidates:
                break
            widest = max(candidates, key=lambda i: widths[i])
            widths[widest] -= 1
    lines = [[cut(h, widths[i]) for i, h in enumerate(headers)]]
    lines += [[cut(value, widths[i]) for i, value in enumerate(row)] for row in rows]
    for number, line in enumerate(lines):
        text = GAP.join(value + " " * (widths[i] - cell_width(value)) for i, value in enumerate(line)).rstrip()
        click.echo(click.style(text, bold=True) if number == 0 and terminal else text)
