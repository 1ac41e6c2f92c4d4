"""`vaultpeer import` and `vaultpeer export` (click; presentation only).

The commands register on the ``vaultpeer`` group (``vaultpeer.cli.app``, whose helpers they use)
when the ``vaultpeer.cli`` package imports this module. The formats are in ``vaultpeer.core.interchange`` and
``vaultpeer.service.kdbx``; the vault side in ``vaultpeer.service.transfer`` (directly, or through the
daemon's ``item.import`` / ``item.export``). docs/cli.md documents both commands.
"""

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.text import Text

from vaultpeer.cli.app import Context, cli, item_backend, json_option, pass_context, print_json, reports_errors
from vaultpeer.core.errors import InvalidInput, VaultpeerError
from vaultpeer.core.interchange import Parsed, csv_export, parse_bitwarden, parse_csv
from vaultpeer.core.text import inert
from vaultpeer.service.user_files import check_writable, decode_text, read_input_file, write_private_file

#: A KeePass export is protected by its own password only: at least as long as a master password.
MIN_EXPORT_PASSWORD_CHARS = 8
#: An import through the daemon may take a while for a large file.
DAEMON_TIMEOUT = 600.0


class _NoProgress:
    """What the code drives when stderr is not a terminal: nothing is shown."""

    def add_task(self, description: str, total: float | None = None) -> int:
        return 0

    def update(self, task: int, **kwargs: object) -> None:
        pass


@contextmanager
def progress_display() -> Iterator[Progress | _NoProgress]:
    """A rich progress bar on stderr when it is a terminal; nothing otherwise (pipes, scripts)."""
    if not sys.stderr.isatty():
        yield _NoProgress()
        return
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        yield progress


@cli.command("import")
@click.argument("file_format", metavar="FORMAT", type=click.Choice(["kdbx", "bitwarden", "csv"]))
@click.argument("path", metavar="FILE", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--password-stdin", is_flag=True,
              help="Read passwords from stdin, one per line: for kdbx the database's password first; then, "
                   "when no daemon runs, the master password.")
@json_option
@pass_context
@reports_errors
def import_command(ctx: Context, file_format: str, path: Path, password_stdin: bool, as_json: bool) -> None:
    """Import FILE from another password manager: every entry becomes a new item, in one batch.

    \b
    FORMAT is one of:
      kdbx       a KeePass / KeePassXC database (asks for its password)
      bitwarden  Bitwarden's unencrypted JSON export
      csv        a CSV file with a header row (the columns are in docs/cli.md)

    Entries imported before are skipped (each item keeps where it came from in its
    `import-source` field), so importing a file again imports nothing twice. The report says how
    many items were imported, and which entries were skipped and why. Nothing is changed when the
    file cannot be read, or the password is wrong.
    """
    data = read_input_file(path)
    if file_format == "kdbx":
        from vaultpeer.service.kdbx import read_kdbx

        password = ctx.secret("password of the KeePass database", from_stdin=password_stdin)
        with progress_display() as progress:
            progress.add_task(f"Opening {path.name}", total=None)
            parsed = read_kdbx(data, password)
    elif file_format == "bitwarden":
        parsed = parse_bitwarden(decode_text(data, path))
    else:
        parsed = parse_csv(decode_text(data, path))
    report = _import(ctx, parsed, password_stdin, file_format)
    result = {
        "format": file_format,
        "file": str(path),
        "imported": report["imported"],
        "skipped": [n.to_json() for n in parsed.skipped] + report["skipped"],
        "warnings": [n.to_json() for n in parsed.warnings],
        "items": report["items"],
    }
    if as_json:
        print_json(result)
        return
    console = Console(highlight=False)
    console.print(Text(f"Imported {result['imported']} item(s) from {path}."))
    for heading, notices in (("Skipped", result["skipped"]), ("Not imported", result["warnings"])):
        if notices:
            console.print(Text(f"{heading} ({len(notices)}):"))
            for notice in notices:
                console.print(Text(f"  {inert(notice.get('title', '(no title)'))}: {notice['reason']}"))


def _import(ctx: Context, parsed: Parsed, password_stdin: bool, file_format: str) -> dict:
    entries = list(parsed.entries)
    with item_backend(ctx, password_stdin, timeout=DAEMON_TIMEOUT) as backend:
        with progress_display() as progress:
            task = progress.add_task(f"Importing {len(entries)} entries", total=max(len(entries), 1))
            report = backend.import_entries(entries, progress=lambda n: progress.update(task, completed=n),
                                            file_format=file_format)
            progress.update(task, completed=max(len(entries), 1))
    return report


@cli.command("export")
@click.argument("file_format", metavar="FORMAT", type=click.Choice(["kdbx", "csv"]))
@click.argument("path", metavar="FILE", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--password-stdin", is_flag=True,
              help="Read from stdin, one per line: the answer to the plaintext question (csv without "
                   "--plaintext), the new KeePass file's password (kdbx), then, when no daemon runs, the "
                   "master password.")
@click.option("--force", is_flag=True, help="Replace FILE if it exists (otherwise an existing FILE is an error).")
@click.option("--plaintext", is_flag=True,
              help="csv: confirm up front that FILE will hold every password in plaintext (instead of "
                   "answering y when asked).")
@json_option
@pass_context
@reports_errors
def export_command(ctx: Context, file_format: str, path: Path, password_stdin: bool, force: bool, plaintext: bool,
                   as_json: bool) -> None:
    """Export every item that is not deleted to FILE, readable only by you (mode 0600).

    \b
    FORMAT is one of:
      kdbx  a new KeePass database, protected by a new password you choose (asked twice)
      csv   PLAINTEXT: every password readable by anyone who can read FILE. You are asked
            to confirm ([y/N]), or pass --plaintext.

    Items in conflict are exported with the value shown for them, and listed in the report.
    """
    check_writable(path, force)
    if plaintext and file_format != "csv":
        raise click.UsageError("--plaintext applies to csv only (a kdbx file is encrypted)")
    password = None
    if file_format == "csv" and not plaintext:
        _confirm_plaintext(ctx, path)
    if file_format == "kdbx":
        password = ctx.secret("password for the new KeePass file", from_stdin=password_stdin, confirm=True)
        if len(password) < MIN_EXPORT_PASSWORD_CHARS:
            raise InvalidInput(f"the KeePass file's password needs at least {MIN_EXPORT_PASSWORD_CHARS} characters")
    with item_backend(ctx, password_stdin, timeout=DAEMON_TIMEOUT) as backend:
        items = backend.export_items()
    if file_format == "kdbx":
        from vaultpeer.service.kdbx import build_kdbx

        with progress_display() as progress:
            progress.add_task(f"Encrypting {len(items)} items for KeePass", total=None)
            data = build_kdbx(items, password)
    else:
        data = csv_export(items).encode("utf-8")
    write_private_file(path, data, overwrite=force)
    result = {
        "format": file_format,
        "file": str(path),
        "exported": len(items),
        "conflicts": [{"id": item["id"], "title": item["title"]} for item in items if item["conflict"]],
    }
    if as_json:
        print_json(result)
        return
    console = Console(highlight=False)
    what = "in PLAINTEXT " if file_format == "csv" else ""
    console.print(Text(f"Exported {result['exported']} item(s) {what}to {path}."))
    if result["conflicts"]:
        console.print(Text(f"In conflict, exported with the value shown ({len(result['conflicts'])}):"))
        for item in result["conflicts"]:
            console.print(Text(f"  {inert(item['title'])}  (id {item['id']})"))


def _confirm_plaintext(ctx: Context, path: Path) -> None:
    click.echo(f"This writes every password of the vault, in plaintext, to {path}: anyone who can read "
               "that file can read them all. Continue? [y/N] ", err=True, nl=False)
    try:
        answer = ctx.stdin_line("answer")
    except click.ClickException:
        answer = ""
    if not sys.stdin.isatty():
        click.echo("", err=True)  # the answer came from a pipe: end the prompt's line
    if answer.strip().lower() not in ("y", "yes"):
        raise VaultpeerError("not confirmed: nothing was written (answer y, or pass --plaintext)")
