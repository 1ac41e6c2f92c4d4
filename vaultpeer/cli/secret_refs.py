"""`vaultpeer read`, `run` and `inject`: secret references (``vp://ITEM/FIELD``) for scripts.

Presentation and plumbing only: references, templates and masking are ``vaultpeer.core.secret_ref``,
environment files ``vaultpeer.core.dotenv``; the values come from ``item_backend`` (the running
daemon, else the home with the master password). Every reference is resolved before anything is
run or written, and one that does not resolve is an error naming it (a reference is no secret).
The commands register on app's group when it first needs them (``CommandGroup.LAZY``); nothing
heavy is imported here, so `read` through the daemon starts as fast as `get`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO

import click

from vaultpeer.api import ApiError
from vaultpeer.cli.app import (Context, cli, item_backend, pass_context, password_stdin_option, print_value,
                               reports_errors)
from vaultpeer.core.dotenv import parse_dotenv
from vaultpeer.core.errors import InvalidInput, VaultpeerError
from vaultpeer.core.secret_ref import OutputMasker, SecretRef, field_value, fill_template, is_ref, parse_ref, template_refs
from vaultpeer.service.user_files import check_writable, read_input_file, write_private_file

#: The largest template `inject` and environment file `run --env-file` read.
MAX_TEXT_BYTES = 16 * 1024 * 1024
#: What a shell answers for a command it cannot find, or cannot execute.
EXIT_COMMAND_NOT_FOUND = 127
EXIT_COMMAND_NOT_EXECUTABLE = 126
_CHUNK = 64 * 1024


# --- resolving ---------------------------------------------------------------------------------


@contextmanager
def _naming(ref: SecretRef) -> Iterator[None]:
    """The item lookup's own error (its exit status, an ambiguity's candidates), its message
    preceded by the reference it was for."""
    try:
        yield
    except ApiError as exc:
        raise ApiError(exc.code, f"{ref}: {exc.message}", exc.data) from None
    except VaultpeerError as exc:
        exc.args = (f"{ref}: {exc}",)
        raise


def resolve(ctx: Context, refs: Iterable[SecretRef], password_stdin: bool) -> dict[SecretRef, str]:
    """The value of every reference, or the first error: nothing when there is no reference (no
    daemon or password is needed then)."""
    refs = list(dict.fromkeys(refs))
    if not refs:
        return {}
    values, items = {}, {}
    with item_backend(ctx, password_stdin) as backend:
        for ref in refs:
            if ref.item not in items:
                with _naming(ref):
                    items[ref.item] = backend.get(ref.item)
            item = items[ref.item]
            values[ref] = field_value(ref, item["fields"], item["conflict"])
    return values


def _read_text(path: Path | None, what: str) -> str:
    """A UTF-8 text file (or stdin, when ``path`` is None) of at most MAX_TEXT_BYTES."""
    if path is None:
        data = sys.stdin.buffer.read(MAX_TEXT_BYTES + 1)
        if len(data) > MAX_TEXT_BYTES:
            raise InvalidInput(f"the {what} on stdin is larger than {MAX_TEXT_BYTES // (1024 * 1024)} MiB")
    else:
        data = read_input_file(path, MAX_TEXT_BYTES)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(f"the {what} ({path or 'stdin'}) is not UTF-8 text") from None


# --- read --------------------------------------------------------------------------------------


@cli.command()
@click.argument("reference", metavar="REF")
@password_stdin_option
@pass_context
@reports_errors
def read(ctx: Context, reference: str, password_stdin: bool) -> None:
    """Print the value REF names (vp://ITEM/FIELD).

    \b
    ITEM is an item id (or a unique prefix of 6+ characters) or a title, FIELD a field name,
    both percent-encoded: vp://My%20Bank/password. No newline is added unless stdout is a
    terminal, so `$(vaultpeer read ...)` and pipes get the exact value (a terminal shows control
    characters escaped, as \x1b).
    """
    ref = parse_ref(reference)
    value = resolve(ctx, [ref], password_stdin)[ref]
    print_value(value, newline=False)


# --- inject ------------------------------------------------------------------------------------


@cli.command()
@click.option("-i", "--in-file", "template_path", metavar="TEMPLATE",
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The template to fill (default: stdin).")
@click.option("-o", "--out-file", "output", metavar="FILE", type=click.Path(path_type=Path),
              help="Write to FILE (created 0600, complete or not at all) instead of stdout.")
@click.option("--force", is_flag=True, help="Replace FILE if it exists (atomically).")
@password_stdin_option
@pass_context
@reports_errors
def inject(ctx: Context, template_path: Path | None, output: Path | None, force: bool, password_stdin: bool) -> None:
    """Fill the secret references of a template.

    Every {{ vp://ITEM/FIELD }} of TEMPLATE (stdin by default) is replaced by the value it
    names, and the result goes to stdout or FILE. Every reference is resolved before anything is written; one that does not resolve is an
    error naming it, and nothing is written. An existing FILE is never replaced without --force.
    """
    if template_path is None and password_stdin:
        raise click.UsageError("--password-stdin reads the master password from stdin, which holds the template "
                               "here: give the template with -i TEMPLATE (or start the daemon)")
    if output is not None:
        check_writable(output, force)
    template = _read_text(template_path, "template")
    values = resolve(ctx, template_refs(template), password_stdin)
    filled = fill_template(template, values.__getitem__)
    if output is None:
        print_value(filled, newline=False)
    else:
        write_private_file(output, filled.encode(), overwrite=force)


# --- run ---------------------------------------------------------------------------------------


@cli.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("--env-file", "env_files", multiple=True, metavar="FILE",
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Add the KEY=VALUE lines of FILE to CMD's environment (repeatable; a later one wins, and "
                   "over the environment): '#' comments, optional quotes, `export` allowed.")
@click.option("--no-masking", is_flag=True,
              help="Do not mask the secrets in CMD's output: CMD gets vaultpeer's stdout and stderr as they are "
                   "(a terminal stays a terminal).")
@click.option("--password-stdin", is_flag=True,
              help="Read the master password (needed only when no daemon runs) from the first line of stdin; "
                   "CMD gets the rest of stdin.")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED, metavar="-- CMD [ARGS]...")
@pass_context
@reports_errors
def run(ctx: Context, env_files: tuple[Path, ...], no_masking: bool, password_stdin: bool,
        command: tuple[str, ...]) -> None:
    """Run CMD with the secrets its environment refers to.

    \b
    Every environment variable whose value is a reference (vp://ITEM/FIELD), from the
    environment or an --env-file, is given the value it names. All are resolved before CMD
    starts: one that does not resolve is an error naming it, and nothing runs. CMD's stdout and
    stderr pass through with those values replaced by <concealed by vaultpeer> (a convenience
    against accidents, not a protection: CMD holds the values). stdin passes through; SIGINT
    and SIGTERM are passed on to CMD; its exit status is vaultpeer's (128+N if signal N ended it).
    """
    if password_stdin:
        ctx.read_stdin_lines_now(1)  # the master password's line, daemon or not: the rest is CMD's
    environment = dict(os.environ)
    for path in env_files:
        environment.update(parse_dotenv(_read_text(path, "environment file"), str(path)))
    refs = {}
    for name, value in environment.items():
        if is_ref(value):
            try:
                refs[name] = parse_ref(value)
            except InvalidInput as exc:
                raise InvalidInput(f"${name}: {exc}") from None
    values = resolve(ctx, refs.values(), password_stdin)
    environment.update({name: values[ref] for name, ref in refs.items()})
    for name, value in environment.items():
        if "\0" in value:
            shown = f" ({refs[name]})" if name in refs else ""
            raise InvalidInput(f"${name}{shown} holds a NUL character, which no environment variable can")
    masked = [] if no_masking else [value for value in values.values() if value]
    sys.exit(_run_child(command, environment, masked))


def _run_child(command: tuple[str, ...], environment: dict[str, str], secrets: list[str]) -> int:
    """Run ``command``; its exit status (128+N for a signal N), after all its output is relayed."""
    pipe = subprocess.PIPE if secrets else None
    try:
        child = subprocess.Popen(command, env=environment, stdout=pipe, stderr=pipe)
    except FileNotFoundError:
        click.echo(f"error: {command[0]}: command not found", err=True)
        return EXIT_COMMAND_NOT_FOUND
    except OSError as exc:
        click.echo(f"error: {command[0]}: {exc.strerror or exc}", err=True)
        return EXIT_COMMAND_NOT_EXECUTABLE
    previous = {signum: signal.signal(signum, lambda signum, _frame: _forward(child, signum))
                for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        relays = [threading.Thread(target=_relay, args=(source, target, OutputMasker(secrets)), daemon=True)
                  for source, target in ((child.stdout, 1), (child.stderr, 2)) if source is not None]
        for relay in relays:
            relay.start()
        status = child.wait()
        for relay in relays:
            relay.join()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 128 - status if status < 0 else status


def _forward(child: subprocess.Popen, signum: int) -> None:
    if signum == signal.SIGINT and _in_terminal_foreground():
        return  # Ctrl-C: the terminal interrupted its whole foreground group, CMD too; not twice
    with suppress(ProcessLookupError):
        child.send_signal(signum)


def _in_terminal_foreground() -> bool:
    try:
        terminal = os.open("/dev/tty", os.O_RDONLY | os.O_NOCTTY)
    except OSError:
        return False
    try:
        return os.tcgetpgrp(terminal) == os.getpgrp()
    except OSError:
        return False
    finally:
        os.close(terminal)


def _relay(source: IO[bytes], target: int, masker: OutputMasker) -> None:
    """Copy ``source`` to the file descriptor ``target``, masked, until CMD closes it. If the
    target is closed (`vaultpeer run ... | head`), stop reading: CMD then meets the broken pipe
    itself, as it would without vaultpeer in between."""
    with source:
        while chunk := os.read(source.fileno(), _CHUNK):
            if not _write_all(target, masker.feed(chunk)):
                return
        _write_all(target, masker.flush())


def _write_all(fd: int, data: bytes) -> bool:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except OSError:
            return False
    return True
