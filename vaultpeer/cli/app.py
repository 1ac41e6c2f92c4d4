"""The ``vaultpeer`` command line (click). Presentation only: the work is done by ``vaultpeer.service.vault``.

When a daemon runs for the home, commands go through its local API (``vaultpeer.cli.backend``);
otherwise they open the home directly and ask for the master password. Secret values are masked in human output unless ``--reveal``; ``--json`` and
``get ITEM --field NAME`` print values for scripts. Passwords are read from a hidden prompt or,
with ``--password-stdin``, from stdin; never from argv or the environment.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING

import click

from vaultpeer import __version__
from vaultpeer.api import CONFIRM_FINISH, CONFIRM_TIMEOUT, MAX_PAIRING_TIMEOUT, ApiError
from vaultpeer.client import Client, DaemonNotRunning
from vaultpeer.core.errors import (
    AlreadyInitialized,
    Ambiguous,
    InvalidInput,
    NoVault,
    NotFound,
    VaultpeerError,
)
from vaultpeer.core.generate import (
    DEFAULT_LENGTH,
    DEFAULT_SEPARATOR,
    DEFAULT_WORDS,
    MAX_LENGTH,
    MAX_WORDS,
    MIN_LENGTH,
    MIN_WORDS,
    SIMILAR,
    SYMBOLS,
    GenerateOptions,
)
from vaultpeer.core.ports import DEFAULT_PORT
from vaultpeer.clipboard import DEFAULT_CLEAR_AFTER, MAX_CLEAR_AFTER
from vaultpeer.core.text import inert, inert_json
from vaultpeer.service.home import (
    HOME_ENV,
    INSECURE_TEST_KDF_ENV,
    SOCKET_ENV,
    Home,
    insecure_test_kdf_enabled,
    resolve_home,
    runtime_dir,
)

if TYPE_CHECKING:
    from vaultpeer.cli.backend import DaemonBackend, DaemonFilesBackend, DirectFilesBackend
    from vaultpeer.service.commands import VaultCommands
    from vaultpeer.service.vault import Vault

# Only what every command needs is imported above: a command through the daemon (`get`, `ls`)
# must start fast (issue 17: 100 ms), so the vault, the command layer, rich, trio and the crypto
# stack are imported inside the commands that use them (tests/e2e/test_cli_speed.py keeps it so).

#: Exit statuses scripts can rely on (documented in docs/cli.md).
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_WRONG_PASSWORD = 3
EXIT_NOT_FOUND = 4
EXIT_AMBIGUOUS = 5
EXIT_INTEGRITY = 6
EXIT_NO_VAULT = 7
EXIT_CONFLICT = 8
EXIT_LOCKED = 9
EXIT_NO_DAEMON = 10
EXIT_PAIRING = 11
EXIT_NO_CLIPBOARD = 12
EXIT_RATE_LIMITED = 13
EXIT_FORBIDDEN = 14

#: The same statuses for errors that come back from the daemon's API (by their stable name).
_EXIT_BY_NAME = {
    "wrong_password": EXIT_WRONG_PASSWORD,
    "wrong_recovery_key": EXIT_WRONG_PASSWORD,
    "not_found": EXIT_NOT_FOUND,
    "ambiguous": EXIT_AMBIGUOUS,
    "integrity": EXIT_INTEGRITY,
    "no_vault": EXIT_NO_VAULT,
    "conflict": EXIT_CONFLICT,
    "invalid_params": EXIT_USAGE,
    "locked": EXIT_LOCKED,
    "pairing": EXIT_PAIRING,
    "rate_limited": EXIT_RATE_LIMITED,
    "no_clipboard": EXIT_NO_CLIPBOARD,
    "forbidden": EXIT_FORBIDDEN,
}



def exit_status(exc: VaultpeerError) -> int:
    """The exit status for an error raised here, by the stable name (``code``) of the most specific
    class in its ancestry that has one with a status: the same table as for the daemon's errors,
    without importing every module that defines an error class."""
    for cls in type(exc).__mro__:
        status = _EXIT_BY_NAME.get(cls.__dict__.get("code"))
        if status is not None:
            return status
    return EXIT_ERROR


MASK = "••••••••"


class Context:
    def __init__(self, home: Home, socket_path: Path | None = None):
        self.home = home
        #: ``$VAULTPEER_SOCKET``, when neither --home nor $VAULTPEER_HOME names a home.
        self._socket_path = socket_path
        self.insecure_test_kdf = insecure_test_kdf_enabled()
        self._stdin_lines: Iterator[str] | None = None

    def open_vault(self) -> Vault:
        from vaultpeer.service.vault import Vault

        return Vault.open(self.home, allow_insecure_test_kdf=self.insecure_test_kdf)

    @property
    def socket_path(self) -> Path:
        """Where the CLI looks for a daemon: $VAULTPEER_SOCKET unless a home was named, else the
        home's socket (docs/api.md, "Finding the socket")."""
        return self._socket_path or self.home.socket_path

    def daemon_client(self, timeout: float = 30.0) -> Client | None:
        """A client of this home's daemon, or None when no daemon runs for it."""
        if not self.socket_path.exists():
            return None
        client = Client(self.socket_path, timeout=timeout, token=self.cli_token())
        try:
            client.call("status")
        except DaemonNotRunning:
            client.close()
            return None
        return client

    def cli_token(self) -> str | None:
        """The command line's own app token, which the daemon writes into the home at start
        (docs/api.md, "App tokens"); None before a daemon ran here."""
        try:
            return self.home.cli_token_file.read_text().strip() or None
        except (FileNotFoundError, NotADirectoryError, UnicodeDecodeError):
            return None

    def require_daemon(self, timeout: float = 30.0) -> Client:
        client = self.daemon_client(timeout)
        if client is None:
            raise DaemonNotRunning(
                "no vaultpeer daemon is running for this home "
                f"(start it with `vaultpeer --home {self.home.path} daemon` or `systemctl --user start vaultpeer`)"
            )
        return client

    def read_stdin_lines_now(self, count: int) -> None:
        """Read the first ``count`` lines of stdin now, one byte at a time, for ``stdin_line`` to
        hand out: all that follows stays unread in fd 0, for a child process (`vaultpeer run`)."""
        encoding = getattr(sys.stdin, "encoding", None) or "utf-8"
        lines = []
        while len(lines) < count:
            line = bytearray()
            with suppress(OSError):  # no fd 0: end of input
                while not line.endswith(b"\n") and (byte := os.read(0, 1)):
                    line += byte
            if not line:
                break
            lines.append(line.decode(encoding, errors="replace"))
        self._stdin_lines = iter(lines)

    def stdin_line(self, what: str) -> str:
        if self._stdin_lines is None:
            self._stdin_lines = iter(sys.stdin.readline, "")
        line = next(self._stdin_lines, None)
        if line is None:
            raise click.ClickException(f"expected the {what} on a line of stdin, found end of input")
        return line.rstrip("\r\n")

    def secret(self, what: str, *, from_stdin: bool, confirm: bool = False,
               check: Callable[[str], None] | None = None) -> str:
        """A secret from stdin (``--password-stdin``) or a hidden prompt; never from argv or env.
        ``check`` (raising InvalidInput) judges it as soon as it is read: from stdin it fails at
        once, and at a prompt the message is shown and it is asked again, before any confirmation."""
        if from_stdin:
            value = self.stdin_line(what)
            if check is not None:
                check(value)
            return value
        if not sys.stdin.isatty():
            raise click.UsageError(f"no terminal to ask for the {what}: pass --password-stdin and pipe it in")

        def checked(value: str) -> str:
            if check is not None:
                try:
                    check(value)
                except InvalidInput as exc:
                    raise click.UsageError(str(exc)) from None
            return value

        return click.prompt(what[0].upper() + what[1:], hide_input=True, confirmation_prompt=confirm,
                            err=True, value_proc=checked)


pass_context = click.make_pass_decorator(Context)


def _echo_candidates(candidates: list[dict]) -> None:
    """The items an ambiguous name matches, one a line on stderr: id, title, username, folder."""
    for candidate in candidates:
        details = [inert(candidate.get(key) or "") for key in ("username", "folder")]
        shown = "  ".join(f"{label}: {value}" for label, value in zip(("user", "folder"), details) if value)
        click.echo(f"  {candidate['id']}  {inert(candidate['title'])}" + (f"  ({shown})" if shown else ""), err=True)


def reports_errors(command: Callable) -> Callable:
    """Turn vaultpeer errors into one clear line on stderr and a documented exit status."""

    @wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except Ambiguous as exc:
            click.echo(f"error: {exc}", err=True)
            _echo_candidates(exc.candidates)
            sys.exit(EXIT_AMBIGUOUS)
        except VaultpeerError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exit_status(exc))
        except ApiError as exc:
            name = (exc.data or {}).get("name", "")
            click.echo(f"error: {exc.message}", err=True)
            _echo_candidates((exc.data or {}).get("candidates", []))
            if name == "locked":
                click.echo("hint: unlock the daemon with `vaultpeer unlock`", err=True)
            sys.exit(_EXIT_BY_NAME.get(name, EXIT_ERROR))
        except DaemonNotRunning as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_NO_DAEMON)
        except TimeoutError:  # the socket to the daemon: it is alive but did not answer in time
            click.echo("error: the daemon did not answer in time; see its log", err=True)
            sys.exit(EXIT_ERROR)

    return wrapper


class CommandGroup(click.Group):
    """The ``vaultpeer`` group. The commands of the other modules of this package are imported
    when they are first named (or when help lists them all): their modules register them on this
    group then, and a command from app.py never loads what those need (click's documented lazy
    loading of subcommands)."""

    #: command name -> the module of vaultpeer.cli that defines it
    LAZY = {"log": "audit_log", "backup": "backup_restore", "import": "import_export", "export": "import_export",
            "read": "secret_refs", "run": "secret_refs", "inject": "secret_refs", "apps": "apps"}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self.LAZY))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.commands and name in self.LAZY:
            import importlib

            importlib.import_module(f"vaultpeer.cli.{self.LAZY[name]}")
        return super().get_command(ctx, name)


@click.group(cls=CommandGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    help="This device's home directory (default: $VAULTPEER_HOME, else the platform's user data directory).",
)
@click.version_option(__version__, prog_name="vaultpeer")
@click.pass_context
def cli(ctx: click.Context, home: Path | None) -> None:
    """vaultpeer: a password vault kept in sync between your own machines, with no cloud.

    Everything of one device lives in its home directory; run several devices side by side on one
    machine by giving each its own --home.
    """
    named_home = bool(home) or bool(os.environ.get(HOME_ENV))
    socket_path = None if named_home or not os.environ.get(SOCKET_ENV) else Path(os.environ[SOCKET_ENV])
    ctx.obj = Context(Home(resolve_home(home)), socket_path)
    if ctx.obj.insecure_test_kdf:
        click.echo(
            f"WARNING: {INSECURE_TEST_KDF_ENV} is set: vaults created now have NO real password protection. "
            "For tests only.",
            err=True,
        )


def main() -> None:
    from vaultpeer.service.hygiene import harden_process

    harden_process()  # before any password is read: no core dumps, no ptrace by other processes
    cli(prog_name="vaultpeer")


@contextmanager
def unlocked_vault(ctx: Context, password_stdin: bool) -> Iterator[Vault]:
    with ctx.open_vault() as vault:
        if not vault.initialized:
            raise NoVault()
        vault.unlock(ctx.secret("master password", from_stdin=password_stdin))
        yield vault


@contextmanager
def item_backend(ctx: Context, password_stdin: bool,
                 timeout: float = 30.0) -> Iterator[DaemonBackend | VaultCommands]:
    """The running daemon's API if there is one (no password needed), else the home directly."""
    client = ctx.daemon_client(timeout)
    if client is not None:
        from vaultpeer.cli.backend import DaemonBackend

        with client:
            yield DaemonBackend(client)
        return
    from vaultpeer.service.commands import VaultCommands

    with unlocked_vault(ctx, password_stdin) as vault:
        yield VaultCommands(vault, ctx.home)


def password_stdin_option(command: Callable) -> Callable:
    return click.option(
        "--password-stdin", is_flag=True, help="Read the master password from the first line of stdin."
    )(command)


def backup_secret_options(command: Callable) -> Callable:
    """--recovery-key and --password-stdin, for the commands that open a backup file."""
    command = click.option(
        "--password-stdin", is_flag=True,
        help="Read the master password (or, with --recovery-key, the recovery key) from the first line of stdin.",
    )(command)
    return click.option("--recovery-key", "use_recovery_key", is_flag=True,
                        help="Open a backup FILE with the recovery key instead of the master password.")(command)


def json_option(command: Callable) -> Callable:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts (values unmasked).")(command)


def password_class_options(command: Callable) -> Callable:
    """--no-digits, --no-symbols and --exclude-similar: on `generate`, and for --generate on `add`/`edit`."""
    for option in reversed([
        click.option("--no-digits", is_flag=True, help="A password without digits."),
        click.option("--no-symbols", is_flag=True, help=f"A password without symbols ({SYMBOLS})."),
        click.option("--exclude-similar", is_flag=True,
                     help=f"A password without the look-alike characters {' '.join(SIMILAR)}."),
    ]):
        command = option(command)
    return command


def generate_options(*, length: int | None, words: int | None, separator: str | None, no_digits: bool,
                     no_symbols: bool, exclude_similar: bool) -> GenerateOptions:
    """The options of `generate` (and of `add`/`edit --generate`) as one value; one that mixes a
    password's options with a passphrase's is refused here (InvalidInput: exit 2)."""
    return GenerateOptions(length, words, separator, digits=not no_digits, symbols=not no_symbols,
                           exclude_similar=exclude_similar)


def field_generate_options(generated: tuple[str, ...], **choices) -> GenerateOptions:
    """`add`/`edit`'s generation options (``choices``: as ``generate_options`` takes them); they
    shape what --generate FIELD makes, so without one they are a usage error."""
    if not generated and any(value not in (None, False) for value in choices.values()):
        raise click.UsageError("--length, --words, --separator, --no-digits, --no-symbols and --exclude-similar "
                               "shape the values of --generate FIELD: give --generate too")
    return generate_options(**choices)


def field_value_options(command: Callable) -> Callable:
    """--field NAME=VALUE, --prompt FIELD, --generate FIELD and the generation options, shared by
    `add` and `edit`."""
    command = password_class_options(command)  # listed after the others in --help
    for option in reversed([
        click.option("--field", "fields", multiple=True, metavar="NAME=VALUE",
                     help="Set a field (repeatable). The value is in the command line, which other "
                          "processes can see while it runs: use --prompt or --generate for secrets."),
        click.option("--prompt", "prompted", multiple=True, metavar="FIELD",
                     help="Ask for FIELD's value (repeatable): on a terminal a hidden prompt, typed twice; "
                          "otherwise one line of stdin per --prompt, in order (after the master password's "
                          "line with --password-stdin). The value never appears in the command line."),
        click.option("--generate", "generated", multiple=True, metavar="FIELD",
                     help="Fill FIELD with a generated password (repeatable), as `vaultpeer generate` "
                          "makes with the options below."),
        click.option("--length", type=click.IntRange(MIN_LENGTH, MAX_LENGTH), metavar="N",
                     help=f"Length of generated passwords ({MIN_LENGTH}-{MAX_LENGTH}; default {DEFAULT_LENGTH})."),
        click.option("--words", type=click.IntRange(MIN_WORDS, MAX_WORDS), metavar="N",
                     help=f"Generate passphrases of N words of the EFF long list instead ({MIN_WORDS}-{MAX_WORDS}). "
                          "Not with --length, --no-digits, --no-symbols or --exclude-similar."),
        click.option("--separator", metavar="TEXT",
                     help=f"What goes between passphrase words (default {DEFAULT_SEPARATOR!r}; only with --words)."),
    ]):
        command = option(command)
    return command


def print_value(value: str, *, newline: bool = True) -> None:
    """A value for scripts (a field's, a filled template): on a terminal line by line as ``inert``
    shows it (an escape sequence in a value must not drive the terminal), with a newline;
    otherwise the exact bytes (click.echo would drop escape sequences), with a newline only if
    ``newline``."""
    if sys.stdout.isatty():
        click.echo("\n".join(inert(line) for line in value.split("\n")))
        return
    sys.stdout.flush()
    sys.stdout.buffer.write(value.encode() + (b"\n" if newline else b""))
    sys.stdout.buffer.flush()


def print_json(value: object) -> None:
    """``value`` as JSON; no control or format character reaches the terminal raw (``inert_json``)."""
    click.echo(inert_json(json.dumps(value, indent=2, ensure_ascii=False)))


def field_values(ctx: Context, backend: object, assignments: tuple[str, ...], prompted: tuple[str, ...],
                 generated: tuple[str, ...], *, password_stdin: bool) -> dict[str, str]:
    """The fields to set: the --field assignments and a value for each --prompt (``backend``, the
    daemon's or the home's, says whose the master password line was). A field given two ways
    (assigned, prompted, generated) is refused before anything is asked."""
    via_daemon = getattr(backend, "via_daemon", False)
    values = dict(parse_assignments(assignments))
    given = [*values, *prompted, *generated]
    twice = sorted({name for name in given if given.count(name) > 1})
    if twice:
        raise click.UsageError(f"{twice[0]!r} is given more than once (--field, --prompt, --generate)")
    if not prompted:
        return values
    terminal = sys.stdin.isatty()
    if password_stdin and via_daemon and not terminal:
        ctx.stdin_line("master password")  # the first line, as without a daemon (the daemon needs none)
    for name in prompted:
        if terminal:
            values[name] = click.prompt(f"Value of {name}", hide_input=True, confirmation_prompt=True, err=True)
        else:
            values[name] = ctx.stdin_line(f"value of {name} (--prompt)")
    return values


def parse_assignments(values: tuple[str, ...]) -> list[tuple[str, str]]:
    pairs = []
    for value in values:
        name, sep, field_value = value.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"expected NAME=VALUE, got {name or value!r}", param_hint="--field")
        pairs.append((name, field_value))
    return pairs


# --- presentation ------------------------------------------------------------------------------


def shown_value(name: str, value: str, secrets: list[str], reveal: bool) -> str:
    return value if reveal or name not in secrets else MASK


def local_time(seconds: int | None) -> str:
    """A revision's time (the author's claim: anything from 0 to 2^53 - 1) as a local date and time."""
    if seconds is None:
        return "at an unknown time"
    try:
        return time.strftime("%Y-%m-%d %H:%M", time.localtime(seconds))
    except (OverflowError, OSError, ValueError):  # beyond what this platform's calendar holds
        return f"at unix time {seconds}"


def device_label(device_id: str, name: str | None) -> str:
    """A device as the person knows it: its roster name, else the first group of its id."""
    return inert(name) if name else f"device {device_id.split('-')[0]}"


def modified_line(item: dict) -> str:
    """``modified DATE on DEVICE``, and ``, created DATE`` when the first revision's time is known
    (an item from an older daemon, or whose first revision is unreadable, has none)."""
    line = f"  modified {local_time(item['modified'])} on {device_label(item['modified_by'], item['modified_by_name'])}"
    created = item.get("created")
    return line if created is None else f"{line}, created {local_time(created)}"


#: The field where an imported item keeps where it came from (``core.interchange.SOURCE_FIELD``,
#: named here rather than imported: that module loads the item model).
IMPORT_SOURCE = "import-source"


def print_item_rows(entries: list[dict], state: Callable[[dict], str] | None = None) -> None:
    """`ls` and `search`: one line per item (id, title, username, URL, folder, and ``state``'s
    word if given), in plain columns."""
    from vaultpeer.cli.columns import print_columns

    headers = ("ID", "TITLE", "USERNAME", "URL", "FOLDER", *([""] if state else []))
    rows = [(entry["id"][:12], *(inert(entry[key]) for key in ("title", "username", "url", "folder")),
             *([state(entry)] if state else [])) for entry in entries]
    print_columns(headers, rows, shrinkable=(1, 2, 3, 4))


def print_item(item: dict, reveal: bool) -> None:
    from rich.console import Console
    from rich.text import Text

    console = Console(highlight=False)
    header = Text(inert(item["title"]), style="bold")
    header.append(f"  id {item['id']}  revision {item['revision']}", style="dim")
    console.print(header)
    console.print(Text(modified_line(item), style="dim"))
    if item["deleted"]:
        console.print(Text("  (deleted: `vaultpeer restore ITEM` brings it back)", style="yellow"))
    if item["conflict"]:
        console.print(Text("  (concurrent edits disagree: see `vaultpeer conflicts`)", style="yellow"))
    for flag in item.get("flags", []):
        console.print(Text(f"  note: {FLAG_EXPLANATIONS.get(flag, flag)}", style="yellow"))
    if item.get("unreadable"):
        console.print(Text(f"  note: {len(item['unreadable'])} newer revision(s) of this item cannot be read (they do "
                           "not decrypt, or come from an unpaired device) and are ignored; `vaultpeer check --decrypt` "
                           "lists them, and your next edit supersedes them", style="yellow"))
    # a long value wraps, and a value of several lines goes on, under its first line (never back
    # under the field names); where an item was imported from comes last, dimmed
    names = [name for name in item["fields"] if name != IMPORT_SOURCE]
    width = max((len(name) for name in names), default=0)
    for name in names + [IMPORT_SOURCE] * (IMPORT_SOURCE in item["fields"]):
        shown = shown_value(name, item["fields"][name], item["secrets"], reveal)
        style = "dim" if name == IMPORT_SOURCE else ""
        label = f"  {name.ljust(width)}  "
        indent = " " * len(label)
        lines = Text(shown).wrap(console, max(20, console.width - len(label)), overflow="fold")
        for number, line in enumerate(lines or [Text("")]):
            console.print(Text(((label if number == 0 else indent) + line.plain).rstrip(), style=style),
                          soft_wrap=True)
    if not reveal and item["secrets"]:
        console.print(Text("  (secret values hidden: --reveal shows them)", style="dim"))


# --- commands ----------------------------------------------------------------------------------


@cli.command()
@password_stdin_option
@click.option("--name", help="A friendly name for this device (default: the host name).")
@click.option("--quick-kdf", is_flag=True,
              help="Skip calibration and use the minimum safe Argon2id cost (64 MiB, 2 passes).")
@pass_context
@reports_errors
def init(ctx: Context, password_stdin: bool, name: str | None, quick_kdf: bool) -> None:
    """Create a new vault on this device and print its recovery key (once).

    The master password is stretched with Argon2id, calibrated here to take about 0.5-1 s. When a
    daemon runs for this home, it creates the vault (the API's vault.init) and serves it at once.
    """
    from vaultpeer.service.vault.unlocking import check_new_password

    client = ctx.daemon_client(timeout=300)  # calibrating can take a while
    if client is None:
        with ctx.open_vault() as vault:
            initialized = vault.initialized
    else:
        initialized = client.call("status")["vault_id"] is not None
    if initialized:
        if client is not None:
            client.close()
        raise AlreadyInitialized(f"this device already has a vault (home: {ctx.home.path})")
    # its length is checked as soon as it is typed: before the confirmation and the calibration
    password = ctx.secret("master password", from_stdin=password_stdin, confirm=True, check=check_new_password)
    if not (ctx.insecure_test_kdf or quick_kdf):
        click.echo("Calibrating Argon2id for this machine...", err=True)
    if client is not None:
        with client:
            created = client.call("vault.init", password=password, quick_kdf=quick_kdf,
                                  **({"name": name} if name else {}))
    else:
        from vaultpeer.service.commands import VaultCommands, run_here

        with ctx.open_vault() as vault:
            created = run_here(VaultCommands(vault, ctx.home).init(password, name or None, quick_kdf))
    kdf = created["kdf"]
    click.echo(f"Created vault in {ctx.home.path}" + (" (through the running daemon)" if client is not None else ""))
    click.echo(f"Device id: {created['device_id']}")
    click.echo(f"Key derivation: Argon2id, {kdf['memory_kib'] // 1024} MiB, {kdf['time_cost']} passes, "
               f"{kdf['parallelism']} lanes")
    click.echo("")
    click.echo("Recovery key (shown only now; write it down and keep it offline):")
    click.echo(f"    {created['recovery_key']}")
    click.echo("It opens the vault if you forget the master password: `vaultpeer passwd --recovery-key`.")


def _echo_health(info: dict) -> None:
    """The lines of `status` that flag trouble with the vault's records (shown only when there is some)."""
    if info.get("removed"):
        click.echo(_removed_line(info["removed"]))
    if info.get("locked_reason"):
        click.echo(f"Locked:    {info['locked_reason']}")
    if info.get("equivocations"):
        click.echo(f"WARNING:   {info['equivocations']} revision id(s) were signed twice with different content "
                   "by one device (equivocation): this device never reports converged with the others; "
                   "`vaultpeer check` lists them and `vaultpeer log` names the device. Unpair it.")
    if info.get("unreadable"):
        click.echo(f"WARNING:   {info['unreadable']} revision(s) do not decrypt and are quarantined "
                   "(`vaultpeer check --decrypt` lists them)")


def _removed_line(removed: dict) -> str:
    return (f"REMOVED:   this device was removed from the vault by {inert(removed['by_name'])} ({removed['by']}): "
            "it no longer syncs with the other devices. What it holds stays readable here with the master "
            "password; to sync on this machine again, pair a new home with a member "
            "(`vaultpeer --home DIR pair --join`).")


@cli.command()
@json_option
@pass_context
@reports_errors
def status(ctx: Context, as_json: bool) -> None:
    """Show this device, its vault and its daemon (no password needed)."""
    client = ctx.daemon_client()
    if client is not None:
        with client:
            info = client.call("status")
        if as_json:
            print_json(info)
            return
        click.echo(f"Device:    {inert(info['name'])} ({inert(info['os'])})")
        click.echo(f"Device id: {info['device_id']}")
        click.echo(f"Daemon:    running, {'locked' if info['locked'] else 'unlocked'}, "
                   f"listening on {info['listen'] or 'nothing (offline)'}")
        click.echo(f"Vault:     {info['vault_id'] or 'none yet (`vaultpeer pair --join` joins one)'}")
        click.echo(f"Peers:     {len(info['peers'])} connected")
        click.echo(f"Items:     {info['items']} ({info['conflicts']} in conflict)")
        _echo_health(info)
        _warn_if_signing_key_in_clear(info)
        return
    from vaultpeer.service.commands import VaultCommands

    with ctx.open_vault() as vault:
        info = VaultCommands(vault, ctx.home).status()
        initialized = vault.initialized
    if as_json:
        print_json(info)
        return
    click.echo(f"Device:    {inert(info['name'])} ({inert(info['os'])})")
    click.echo(f"Device id: {info['device_id']}")
    click.echo("Daemon:    not running (`vaultpeer daemon` or `systemctl --user start vaultpeer` starts it)")
    click.echo(f"Home:      {info['home']}")
    if not initialized:
        click.echo("Vault:     none yet (`vaultpeer init` creates one)")
        return
    click.echo(f"Vault:     {info['vault_id']}")
    click.echo(f"Items:     {info['items']} ({info['revisions']} revisions, {info['conflicts']} in conflict)")
    _echo_health(info)
    _warn_if_signing_key_in_clear(info)


def _warn_if_signing_key_in_clear(info: dict) -> None:
    """A device that holds a vault but never unlocked it since (it joined) keeps its signing key
    in clear: a copy of its home could sign for it. One line says so."""
    from vaultpeer.service.device import IN_THE_CLEAR

    if info["vault_id"] and info.get("signing_key") == IN_THE_CLEAR:
        click.echo("Warning:   this device's signing key is still in the clear on disk: unlock once to seal it")


@cli.command()
@click.option("--name", help="Rename this device (the other devices learn it at once when the vault is unlocked, "
                             "else once it is).")
@click.option("--os-description", "os_description", help="Change how this device's OS is described.")
@json_option
@pass_context
@reports_errors
def device(ctx: Context, name: str | None, os_description: str | None, as_json: bool) -> None:
    """Show this device's id, name and OS description; --name or --os-description change them.

    A change is signed into this device's own roster statement, which reaches the other devices
    with the next sync: at once through a daemon running unlocked, otherwise at this device's next
    unlock (which signs it then)."""
    info = _change_profile(ctx, name, os_description)
    if as_json:
        print_json({key: info[key] for key in ("device_id", "name", "os")})
        return
    click.echo(f"{inert(info['name'])} ({inert(info['os'])})\n{info['device_id']}")
    if info.get("announced") is False:
        click.echo("The other devices learn it once this device is unlocked (it signs the change then).", err=True)


def _change_profile(ctx: Context, name: str | None, os_description: str | None) -> dict:
    """This device's id, name and OS description (``device --json``), with ``name`` /
    ``os_description`` changed where given and the change told to the other members
    (``VaultCommands.rename_device``; ``announced``: signed now, or null without a vault)."""
    if not (name or os_description):
        from vaultpeer.service.device import load_or_create_keys, load_profile

        keys, profile = load_or_create_keys(ctx.home), load_profile(ctx.home)
        return {"device_id": str(keys.device_id), "name": profile.name, "os": profile.os_description}
    client = ctx.daemon_client()
    if client is not None:
        with client:
            changes = {key: value for key, value in (("name", name), ("os", os_description)) if value}
            return client.call("device.rename", **changes)
    from vaultpeer.service.commands import VaultCommands

    with ctx.open_vault() as vault:
        return VaultCommands(vault, ctx.home).rename_device(name, os_description)


@cli.command()
@click.argument("title")
@field_value_options
@password_stdin_option
@json_option
@pass_context
@reports_errors
def add(ctx: Context, title: str, fields: tuple[str, ...], prompted: tuple[str, ...], generated: tuple[str, ...],
        password_stdin: bool, as_json: bool, **generation) -> None:
    """Add an item titled TITLE, with fields such as username, password, url, notes, totp."""
    options = field_generate_options(generated, **generation)
    with item_backend(ctx, password_stdin) as backend:
        values = field_values(ctx, backend, fields, prompted, generated, password_stdin=password_stdin)
        added = backend.add(title, values, list(generated), options)
    if as_json:
        print_json(added)
    else:
        click.echo(f"Added {added['title']!r} (id {added['id']})")


@cli.command()
@click.argument("item")
@click.option("--field", "field_name", metavar="NAME", help="Print only this field's bare value (for scripts).")
@click.option("--reveal", is_flag=True, help="Show secret values instead of masking them.")
@password_stdin_option
@json_option
@pass_context
@reports_errors
def get(ctx: Context, item: str, field_name: str | None, reveal: bool, password_stdin: bool, as_json: bool) -> None:
    """Show ITEM (an id, a unique id prefix of 6+ characters, or a title: exact, or in any case when
    only one title matches so)."""
    with item_backend(ctx, password_stdin) as backend:
        found = backend.get(item)
    if field_name is not None:
        print_value(field_value(found, field_name))
        if found["conflict"]:
            click.echo("warning: this item is in conflict: the value above is one of its versions "
                       "(`vaultpeer conflicts` shows them all)", err=True)
            sys.exit(EXIT_CONFLICT)
    elif as_json:
        print_json(found)
    else:
        print_item(found, reveal)


def field_value(item: dict, name: str) -> str:
    if name not in item["fields"]:
        raise NotFound("the item has no field by that name")
    return item["fields"][name]


@cli.command()
@click.argument("item")
@click.option("--field", "field_name", default=None, metavar="NAME",
              help="The field to copy.  [default: password]")
@click.option("--otp", is_flag=True, help="Copy the current TOTP code instead of a field (see `vaultpeer otp`).")
@click.option("--clear-after", type=click.IntRange(0, MAX_CLEAR_AFTER), default=DEFAULT_CLEAR_AFTER,
              show_default=True, metavar="SECONDS",
              help="Clear the clipboard after this long, if it still holds the value (0: never).")
@password_stdin_option
@pass_context
@reports_errors
def copy(ctx: Context, item: str, field_name: str | None, otp: bool, clear_after: int, password_stdin: bool) -> None:
    """Copy a field of ITEM (its password by default) to the clipboard, and clear it later.

    The command returns at once; a small background process clears the clipboard after
    --clear-after seconds, but only if it still holds this value (anything you copied meanwhile
    stays). Uses wl-copy (Wayland), xclip or xsel (X11), or pbcopy (macOS); without a clipboard it
    fails (exit 12) before asking for any password or reading any item.
    """
    from vaultpeer import clipboard

    if otp and field_name is not None:
        raise click.UsageError("--otp copies the TOTP code: it takes no --field")
    board = clipboard.detect()  # first: no clipboard means no secret is fetched at all
    with item_backend(ctx, password_stdin) as backend:
        found = backend.get(item)
        if otp:
            code = backend.otp(found["id"])
    if otp:
        value, what = code["code"], f"TOTP code (valid {code['remaining']} s more)"
    else:
        field_name = field_name or "password"
        value, what = field_value(found, field_name), field_name
    board.copy(value)
    clearing = bool(clear_after and value)
    if clearing:
        try:
            clipboard.clear_later(board, value, clear_after)
        except OSError:
            board.clear()
            raise clipboard.NoClipboard("could not start the process that clears the clipboard, "
                                        "so it was cleared now") from None
    click.echo(f"Copied the {what} of {found['title']!r} to the clipboard"
               + (f"; it is cleared in {clear_after} s." if clearing else " (not cleared automatically)."))


@cli.command(name="ls")
@click.argument("pattern", required=False)
@click.option("--deleted", is_flag=True, help="List deleted items instead (they can be restored).")
@password_stdin_option
@json_option
@pass_context
@reports_errors
def list_items(ctx: Context, pattern: str | None, deleted: bool, password_stdin: bool, as_json: bool) -> None:
    """List items by title, with their username, URL and folder; with PATTERN, only those it
    matches as `search` does (every word in the title, username, URL, folder or tags, any case).
    --json: [{"id", "title", "username", "url", "folder", "conflict", "flags", "modified"}].
    `conflicts` shows the items marked conflict or note."""
    with item_backend(ctx, password_stdin) as backend:
        items = backend.list_items(deleted)
        if pattern is not None:
            matching = {entry["id"] for entry in backend.search(pattern, deleted)}
            items = [entry for entry in items if entry["id"] in matching]
    if as_json:
        print_json(items)
        return
    if not items:
        click.echo("No deleted items." if deleted else "No items yet: `vaultpeer add TITLE --field ...`")
        return
    print_item_rows(items, state=lambda entry: "conflict" if entry["conflict"] else "note" if entry["flags"] else "")


@cli.command()
@click.argument("item")
@field_value_options
@click.option("--remove-field", "remove", multiple=True, metavar="NAME", help="Remove a field (repeatable).")
@click.option("--title", help="A new title.")
@click.option("--expose-to-secret-service/--hide-from-secret-service", "expose", default=None,
              help="Show ITEM to the desktop's Secret Service clients (its `secret` field, else its password, "
                   "and its `attr:NAME` fields as attributes), or stop (docs/secret-service.md).")
@password_stdin_option
@json_option
@pass_context
@reports_errors
def edit(ctx: Context, item: str, fields: tuple[str, ...], prompted: tuple[str, ...], remove: tuple[str, ...],
         title: str | None, expose: bool | None, generated: tuple[str, ...], password_stdin: bool, as_json: bool,
         **generation) -> None:
    """Change ITEM's fields or title (a new revision; the old one stays in history)."""
    from vaultpeer.core.secret_service_fields import COLLECTION, EXPOSED_FIELD  # imports nothing: start stays fast

    options = field_generate_options(generated, **generation)
    if not fields and not prompted and not generated and not remove and title is None and expose is None:
        raise click.UsageError("nothing to change: give --field, --prompt, --remove-field, --generate, --title "
                               "or --expose-to-secret-service")
    with item_backend(ctx, password_stdin) as backend:
        values = field_values(ctx, backend, fields, prompted, generated, password_stdin=password_stdin)
        remove = list(remove)
        if expose is not None:
            # the marker field: set to expose, removed to hide (an item already so is left as it is)
            has = EXPOSED_FIELD in backend.get(item)["fields"]
            if expose and not has:
                values[EXPOSED_FIELD] = COLLECTION
            elif not expose and has:
                remove.append(EXPOSED_FIELD)
            elif not values and not remove and title is None and not generated:
                edited = backend.get(item)
                if as_json:
                    print_json(edited)
                else:
                    click.echo(f"{edited['title']!r} is already {'shown to' if expose else 'hidden from'} "
                               "the Secret Service")
                return
        edited = backend.edit(item, values, remove, title, list(generated), options)
    if as_json:
        print_json(edited)
    else:
        click.echo(f"Updated {edited['title']!r} (revision {edited['revision']})")


@cli.command()
@click.argument("item")
@password_stdin_option
@pass_context
@reports_errors
def rm(ctx: Context, item: str, password_stdin: bool) -> None:
    """Delete ITEM (a tombstone: `ls --deleted` lists it and `restore` brings it back)."""
    with item_backend(ctx, password_stdin) as backend:
        deleted = backend.delete(item)
    click.echo(f"Deleted {deleted['title']!r} (id {deleted['id']}); "
               f"`vaultpeer restore {deleted['id'][:12]}` undoes it.")


@cli.command()
@click.argument("text", required=False)
@click.option("--url", metavar="URL", help="Instead of TEXT: the items for the web page at URL, as browser extensions "
                                           "match (the same host first, then the same registrable domain).")
@password_stdin_option
@json_option
@pass_context
@reports_errors
def search(ctx: Context, text: str | None, url: str | None, password_stdin: bool, as_json: bool) -> None:
    """Find items: every word of TEXT must occur (any case) in the title, username, URL (its host
    too), folder or tags; best matches first. Passwords, notes and TOTP secrets are never searched.

    With --url URL instead of TEXT: the items whose URL is for that page's site (docs/cli.md, "Search
    by URL"). --json: [{"id", "title", "username", "url", "folder"}]."""
    if (text is None) == (url is None):
        raise click.UsageError("give TEXT or --url URL (one of the two)")
    if url is not None:
        from vaultpeer.core.urlmatch import parse_site_url

        parse_site_url(url)  # a bad URL is said before any password is asked
    with item_backend(ctx, password_stdin) as backend:
        found = backend.search(text, False) if url is None else backend.search_url(url, False)
    if as_json:
        print_json(found)
        return
    if not found:
        click.echo("No item matches.")
        return
    print_item_rows(found)


@cli.command()
@click.argument("item")
@password_stdin_option
@json_option
@pass_context
@reports_errors
def otp(ctx: Context, item: str, password_stdin: bool, as_json: bool) -> None:
    """Print ITEM's current TOTP code (from its totp field: an otpauth:// URI or a base32 secret).

    On a terminal, how long the code stays valid follows on stderr. --json:
    {"code", "remaining" (seconds), "period", "digits"}. `copy ITEM --otp` copies it instead."""
    with item_backend(ctx, password_stdin) as backend:
        code = backend.otp(item)
    if as_json:
        print_json(code)
        return
    click.echo(code["code"])
    if sys.stdout.isatty():
        click.echo(f"(valid {code['remaining']} s more)", err=True)


@cli.command()
@click.argument("item")
@click.option("--reveal", is_flag=True, help="Show secret values instead of masking them.")
@password_stdin_option
@json_option
@pass_context
@reports_errors
def history(ctx: Context, item: str, reveal: bool, password_stdin: bool, as_json: bool) -> None:
    """Show every revision of ITEM, oldest first."""
    with item_backend(ctx, password_stdin) as backend:
        entries = backend.history(item)
    if as_json:
        print_json(entries)
        return
    from rich.console import Console
    from rich.text import Text

    console = Console(highlight=False)
    for entry in entries:
        line = Text(entry["revision"], style="bold")
        if entry["parents"]:
            line.append(f"  after {', '.join(entry['parents'])}", style="dim")
        if entry["deleted"]:
            line.append("  deleted", style="yellow")
        if entry["current"]:
            line.append("  current", style="green")
        line.append(f"  {local_time(entry['time'])} on {device_label(entry['author'], entry['author_name'])}",
                    style="dim")
        console.print(line)
        console.print(Text(f"    title: {inert(entry['title'])}"))
        for name, value in entry["fields"].items():
            console.print(Text(f"    {name}: {shown_value(name, value, entry['secrets'], reveal)}"))


@cli.command()
@click.argument("item", metavar="ITEM|FILE")
@click.argument("revision", required=False)
@backup_secret_options
@json_option
@pass_context
@reports_errors
def restore(ctx: Context, item: str, revision: str | None, use_recovery_key: bool, password_stdin: bool,
            as_json: bool) -> None:
    """Bring back an old revision of an item, or rebuild this device from a backup FILE.

    \b
    restore ITEM [REVISION]   REVISION of ITEM becomes a new revision (see `history`);
                              without REVISION, a deleted ITEM is undeleted.
    restore FILE              FILE is a backup (`vaultpeer backup`): the home given by --home,
                              which must not hold a vault yet, becomes a new device holding every
                              item and its whole history. Nothing is written unless all of FILE
                              verifies. Pair it with a member afterwards to sync again.

    A single argument naming an existing file that starts like a vaultpeer backup is a FILE;
    anything else is an ITEM. --json prints the item, or for a FILE
    {"home", "vault_id", "device_id", "backup_device_id", "items", "revisions"}.
    """
    if revision is None and Path(item).is_file():  # (an item's title is rarely also a file here)
        from vaultpeer.service.backup_files import is_backup_file

        if is_backup_file(item):
            from vaultpeer.cli.backup_restore import restore_from_backup

            restore_from_backup(ctx, Path(item), use_recovery_key=use_recovery_key,
                                password_stdin=password_stdin, as_json=as_json)
            return
    if use_recovery_key:
        raise click.UsageError("--recovery-key only applies when restoring a backup FILE")
    try:
        with item_backend(ctx, password_stdin) as backend:
            restored = backend.restore(item, revision)
    except (NotFound, NoVault) as exc:
        if revision is None and os.path.isfile(item):
            raise type(exc)(f"{exc} ({item} is a file, but not a vaultpeer backup)") from None
        raise
    if as_json:
        print_json(restored)
    else:
        click.echo(f"Restored {restored['title']!r} as revision {restored['revision']}")


#: What each merge flag (core/merge.py) means to a person.
FLAG_EXPLANATIONS = {
    "edit-survived-delete": "deleted on one device while edited on another: the edit was kept",
}


@cli.command()
@click.option("--reveal", is_flag=True, help="Show secret values instead of masking them.")
@password_stdin_option
@json_option
@pass_context
@reports_errors
def conflicts(ctx: Context, reveal: bool, password_stdin: bool, as_json: bool) -> None:
    """List items whose concurrent edits need your decision, with every value kept."""
    with item_backend(ctx, password_stdin) as backend:
        found = backend.conflicts()
    if as_json:
        print_json(found)
        return
    from rich.console import Console
    from rich.text import Text

    if not found:
        click.echo("No conflicts.")
        return
    console = Console(highlight=False)
    for entry in found:
        console.print(Text(f"{inert(entry['title'])}  (id {entry['id']})", style="bold"))
        for candidate in entry.get("title_candidates", []):
            console.print(Text(f"  title: {candidate['revision']}  {inert(candidate['value'])}"))
        for name, candidates in entry["fields"].items():
            console.print(Text(f"  {name}:"))
            for candidate in candidates:
                if candidate["value"] is None:
                    shown = "(field removed)"
                else:
                    shown = candidate["value"] if reveal or not candidate["secret"] else MASK
                console.print(Text(f"    {candidate['revision']}  {shown}"))
        for flag in entry["flags"]:
            console.print(Text(f"  note: {FLAG_EXPLANATIONS.get(flag, flag)}", style="yellow"))
    click.echo("\nSettle one with: vaultpeer resolve ITEM --take REVISION  (or --field NAME=VALUE, --title T)")


@cli.command()
@click.argument("item")
@click.option("--take", "take", metavar="REVISION", help="Take every conflicting value from this revision.")
@click.option("--field", "fields", multiple=True, metavar="NAME=VALUE", help="Type the value of a conflicting field.")
@click.option("--title", help="Type the title, if the title is in conflict.")
@password_stdin_option
@json_option
@pass_context
@reports_errors
def resolve(ctx: Context, item: str, take: str | None, fields: tuple[str, ...], title: str | None,
            password_stdin: bool, as_json: bool) -> None:
    """Settle ITEM's conflicts (one new revision superseding every concurrent version)."""
    with item_backend(ctx, password_stdin) as backend:
        resolved = backend.resolve(item, take, dict(parse_assignments(fields)), title)
    if as_json:
        print_json(resolved)
    else:
        click.echo(f"Resolved {resolved['title']!r} (revision {resolved['revision']})")


@cli.command()
@click.option("--password-stdin", is_flag=True,
              help="Read the current password (or recovery key) and then the new password from stdin, one per line.")
@click.option("--recovery-key", "use_recovery_key", is_flag=True,
              help="Prove who you are with the recovery key instead of the current password.")
@pass_context
@reports_errors
def passwd(ctx: Context, password_stdin: bool, use_recovery_key: bool) -> None:
    """Change the master password (re-wraps the vault key; no item is re-encrypted).

    With a daemon running, the change goes through it and reaches the other devices at once.
    """
    from vaultpeer.service.vault.unlocking import check_new_password  # judged as soon as it is typed

    from vaultpeer.service.commands import VaultCommands, run_here

    client = ctx.daemon_client(timeout=120)
    if client is not None:
        with client:
            if use_recovery_key:
                proof = {"recovery_key": ctx.secret("recovery key", from_stdin=password_stdin)}
            else:
                proof = {"password": ctx.secret("current master password", from_stdin=password_stdin)}
            new_password = ctx.secret("new master password", from_stdin=password_stdin, confirm=True,
                                      check=check_new_password)
            client.call("passwd", new_password=new_password, **proof)
        click.echo("Master password changed. The recovery key is unchanged.")
        return
    with ctx.open_vault() as vault:
        if not vault.initialized:
            raise NoVault()
        if use_recovery_key:
            proof = {"recovery_key": ctx.secret("recovery key", from_stdin=password_stdin)}
        else:
            proof = {"password": ctx.secret("current master password", from_stdin=password_stdin)}
        new_password = ctx.secret("new master password", from_stdin=password_stdin, confirm=True,
                                  check=check_new_password)
        run_here(VaultCommands(vault, ctx.home).change_password(new_password, **proof))
    click.echo("Master password changed. The recovery key is unchanged.")


@cli.command()
@click.option("--decrypt", is_flag=True, help="Also unlock and check that every revision decrypts.")
@password_stdin_option
@json_option
@pass_context
@reports_errors
def check(ctx: Context, decrypt: bool, password_stdin: bool, as_json: bool) -> None:
    """Verify the database, every revision's signature and (with --decrypt) every ciphertext.

    With --decrypt and a daemon running unlocked, the daemon checks (no password is asked);
    otherwise the home is opened here, with the master password for --decrypt."""
    result = _check_through_daemon(ctx) if decrypt else None
    if result is None:
        from vaultpeer.service.commands import VaultCommands

        with ctx.open_vault() as vault:
            if not vault.initialized:
                raise NoVault()
            if decrypt:
                vault.unlock(ctx.secret("master password", from_stdin=password_stdin))
            result = VaultCommands(vault, ctx.home).check(decrypt)
    if as_json:
        print_json(result)
    else:
        click.echo(f"Database integrity: {'ok' if result['database_ok'] else 'FAILED'}")
        click.echo(f"Revisions checked:  {result['revisions_checked']}"
                   + (" (signatures and decryption)" if result["decrypted"] else " (signatures)"))
        for revision in result["bad_signatures"]:
            click.echo(f"  bad signature: {revision}")
        for revision in result["undecryptable"]:
            click.echo(f"  does not decrypt (quarantined): {revision}")
        for revision in result["equivocations"]:
            click.echo(f"  signed twice with different content (equivocation): {revision}")
        click.echo("All good." if result["ok"] else "PROBLEMS FOUND: restore from a backup or resync from a peer.")
    if not result["ok"]:
        sys.exit(EXIT_INTEGRITY)


def _check_through_daemon(ctx: Context) -> dict | None:
    """`check --decrypt` by the running daemon, which holds the vault key; None when no daemon
    runs or it is locked (then the password is asked, as without one)."""
    client = ctx.daemon_client(timeout=300)
    if client is None:
        return None
    with client:
        try:
            return client.call("vault.check", decrypt=True)
        except ApiError as exc:
            if (exc.data or {}).get("name") == "locked":
                return None
            raise


#: `daemon --idle-lock`: an unlocked daemon nobody used for 15 minutes locks.
DEFAULT_IDLE_LOCK = 15 * 60


def parse_address(text: str, *, default_host: str | None = None) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "", text
    host = host.strip("[]") or default_host
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise click.BadParameter(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


@cli.command()
@click.option("--listen", "listen", default=f"0.0.0.0:{DEFAULT_PORT}", show_default=True, metavar="HOST:PORT",
              help="Where to accept connections from other devices (port 0 picks a free one; `status` shows it).")
@click.option("--peer", "peers", multiple=True, metavar="HOST:PORT", help="A device to connect to (repeatable).")
@click.option("--mdns-interface", "mdns_interfaces", multiple=True, metavar="IP",
              help="Announce and browse mDNS only on this interface address (repeatable; default: all).")
@click.option("--no-mdns", is_flag=True, help="No mDNS: find peers only through --peer.")
@click.option("--offline", is_flag=True, help="No listener, no discovery, no dialing (air-gapped machines, tests).")
@click.option("--idle-lock", type=click.FloatRange(min=0), default=DEFAULT_IDLE_LOCK, show_default=True,
              metavar="SECONDS",
              help="Lock the vault after this long without use of the local API (0: never).")
@click.option("--rotate-names", type=click.FloatRange(min=1), default=1800, show_default=True, metavar="SECONDS",
              help="How often the private mDNS name changes.")
@click.option("--require-app-tokens", is_flag=True,
              help="Refuse every local API call but status, api.info, app.register, app.wait and auth to a "
                   "connection without an app token (`vaultpeer apps`; the CLI uses its own).")
@click.option("--secret-service", is_flag=True,
              help="Be the desktop's Secret Service (org.freedesktop.secrets on the session bus): "
                   "secret-tool, libsecret and keyring store and find their secrets here (docs/secret-service.md).")
@click.option("--secret-service-replace", is_flag=True,
              help="With --secret-service: take the name over from the program that holds it, if it allows that.")
@click.option("--secret-service-prompt", "secret_service_prompt", metavar="CMD",
              help="With --secret-service: the command that asks for the master password when a client wants "
                   "the vault unlocked; it prints the password (e.g. 'zenity --password'). Without it, run "
                   "`vaultpeer unlock`.")
@click.option("--secret-service-prompt-timeout", type=click.FloatRange(min=1), default=120, show_default=True,
              metavar="SECONDS", help="How long an unlock prompt waits before it counts as dismissed. A client's "
                                       "search on a locked vault waits for the unlock at most this or 20 s.")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@pass_context
@reports_errors
def daemon(ctx: Context, listen: str, peers: tuple[str, ...], mdns_interfaces: tuple[str, ...], no_mdns: bool,
           offline: bool, idle_lock: float, rotate_names: float, require_app_tokens: bool, secret_service: bool,
           secret_service_replace: bool, secret_service_prompt: str | None, secret_service_prompt_timeout: float,
           verbose: int) -> None:
    """Run the background service: sync with your other devices, serve the local API.

    It runs with or without a vault (a new device waits to join one), starts locked, and stops
    cleanly on SIGTERM or Ctrl-C.
    """
    import logging

    import trio

    from vaultpeer.io.api_server import MAX_SOCKET_PATH
    from vaultpeer.io.daemon import Daemon, DaemonOptions
    from vaultpeer.io.secret_service import SecretServiceOptions
    from vaultpeer.io.transports.tcp import tcp_address

    if (secret_service_replace or secret_service_prompt) and not secret_service:
        raise click.UsageError("--secret-service-replace and --secret-service-prompt go with --secret-service")

    socket_path = ctx.home.socket_path  # the daemon serves in its home ($VAULTPEER_SOCKET is for clients)
    socket_bytes = len(os.fsencode(socket_path))
    if socket_bytes > MAX_SOCKET_PATH:
        raise VaultpeerError(f"this home's API socket path ({socket_path}) is {socket_bytes} bytes long; a Unix "
                             f"socket path holds at most {MAX_SOCKET_PATH}: use a home with a shorter path (--home)")
    logging.basicConfig(level=[logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)],
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    options = DaemonOptions(
        listen=None if offline else parse_address(listen),
        peers=[tcp_address(*parse_address(p)) for p in peers],
        mdns=not no_mdns and not offline,
        mdns_interfaces=list(mdns_interfaces) or None,
        offline=offline,
        idle_lock=idle_lock or None,  # 0: never
        rotate_every=rotate_names,
        socket_path=socket_path,
        runtime_dir=runtime_dir(),
        require_app_tokens=require_app_tokens,
        secret_service=SecretServiceOptions(replace=secret_service_replace, prompt_command=secret_service_prompt,
                                            prompt_timeout=secret_service_prompt_timeout)
        if secret_service else None,
    )
    service = Daemon(ctx.home, options, allow_insecure_test_kdf=ctx.insecure_test_kdf)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_stop_on_signal, nursery.cancel_scope)
            await nursery.start(service.run)
            click.echo(f"vaultpeer daemon for {ctx.home.path}: device {service.device_id}", err=True)
            if service.listen_address:
                click.echo(f"listening on {service.listen_address}", err=True)
            click.echo(f"local API on {service.socket_path}", err=True)

    try:
        trio.run(main)
    except KeyboardInterrupt:
        pass
    except BaseExceptionGroup as group:
        raise _sole_error(group) from None


def _sole_error(group: BaseExceptionGroup) -> BaseException:
    """What stopped the daemon, when it is one of ours alone (a port in use: one line, not the
    nurseries' traceback); the whole group otherwise."""
    error: BaseException = group
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error if isinstance(error, VaultpeerError) else group


async def _stop_on_signal(scope) -> None:
    """SIGTERM or SIGINT: cancel everything; each task finishes its transaction or leaves none."""
    import signal

    import trio

    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for _ in signals:
            click.echo("stopping", err=True)
            scope.cancel()
            return


@cli.command()
@password_stdin_option
@pass_context
@reports_errors
def unlock(ctx: Context, password_stdin: bool) -> None:
    """Unlock the running daemon with the master password (it can then read and merge)."""
    with ctx.require_daemon(timeout=60) as client:
        client.call("unlock", password=ctx.secret("master password", from_stdin=password_stdin))
    click.echo("Unlocked.")


@cli.command()
@pass_context
@reports_errors
def lock(ctx: Context) -> None:
    """Lock the running daemon: it forgets the vault key (and still replicates ciphertext)."""
    with ctx.require_daemon() as client:
        client.call("lock")
    click.echo("Locked.")


@cli.command()
@click.option("--join", "join", is_flag=False, flag_value="", default=None, metavar="[HOST:PORT]",
              help="Join another device's vault (found by mDNS unless HOST:PORT is given).")
@click.option("--timeout", default=120, show_default=True, type=click.IntRange(1, MAX_PAIRING_TIMEOUT),
              help="Seconds to wait for the other device (until the codes are shown).")
@click.option("--cancel", is_flag=True,
              help="Cancel the pairing in progress on this device (an invitation is withdrawn; once the "
                   "codes are shown, the pairing is declined).")
@pass_context
@reports_errors
def pair(ctx: Context, join: str | None, timeout: int, cancel: bool) -> None:
    """Pair a new device: `vaultpeer pair` on a member, `vaultpeer pair --join` on the new device.

    Both print a 6-digit verification code and ask whether both devices show it; answer on both
    (a pipe works). Only `y` on both pairs. Exit status 0 only when paired; 11 when the other
    device did not come within --timeout seconds (the invitation is then withdrawn). Stopping the
    command (Ctrl-C) before the codes are shown cancels the pairing, as `pair --cancel` does from
    another terminal (which, once the codes are shown, declines it).
    """
    from vaultpeer.service.device import IN_THE_CLEAR

    if cancel:
        if join is not None:
            raise click.UsageError("--cancel cancels whatever pairing is in progress: it takes no --join")
        with ctx.require_daemon() as client:
            cancelled = client.call("pair.cancel")["cancelled"]
        click.echo("Cancelled the pairing in progress." if cancelled else "No pairing was in progress.")
        return

    events = None
    if join is not None and sys.stderr.isatty():
        events = ctx.require_daemon(timeout=INITIAL_SYNC_QUIET)
        events_stream = events.subscribe()  # subscribed before pairing, so no progress event is missed
    # the daemon answers pair.invite / pair.join within `timeout`, and pair.confirm within its own bound
    answer_within = max(timeout, CONFIRM_TIMEOUT + CONFIRM_FINISH) + 15
    try:
        with ctx.require_daemon(timeout=answer_within) as client:
            if join is None:
                click.echo(f"Waiting up to {timeout} s for a device to join (run `vaultpeer pair --join` on it)...",
                           err=True)
                code = client.call("pair.invite", timeout=timeout)["code"]
            else:
                params = {"address": join} if join else {}
                code = client.call("pair.join", timeout=timeout, **params)["code"]
            click.echo(f"Verification code: {code}")
            click.echo("Do both devices show this code? [y/N] ", nl=False)
            sys.stdout.flush()
            answer = sys.stdin.readline().strip().lower()
            if answer not in ("y", "yes"):
                click.echo("")
            result = client.call("pair.confirm", accept=answer in ("y", "yes"))
            signing_key = client.call("status").get("signing_key") if join is not None else None
    except TimeoutError:
        click.echo(f"error: the daemon did not answer within {answer_within:g} s; see its log", err=True)
        sys.exit(EXIT_PAIRING)
    click.echo(f"Paired with {inert(result['name'])} ({result['device_id']}).")
    if signing_key == IN_THE_CLEAR:
        click.echo("Unlock now (`vaultpeer unlock`): that seals this device's signing key, "
                   "which stays in the clear on disk until then.")
    if events is not None:
        with events:
            show_initial_sync(events_stream, result["device_id"])


#: The progress bar of an initial sync gives up after this long without news from the daemon.
INITIAL_SYNC_QUIET = 15.0


def show_initial_sync(events: Iterator[dict], device_id: str | None = None) -> None:
    """On a terminal, after joining: a progress bar while the vault arrives (the daemon's
    ``sync.progress`` events from ``device_id``, the inviting device). It ends when everything
    announced has arrived, at once with a line saying so when there was nothing to receive (an
    empty vault: the session's event says 0 of 0), or with a line when the daemon says nothing
    for INITIAL_SYNC_QUIET seconds (the sync itself goes on in the daemon)."""
    from rich.console import Console

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    ending = None
    with Progress(TextColumn("Receiving the vault"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=False) as progress:
        task = progress.add_task("sync", total=None)
        try:
            for event in events:
                if event.get("type") != "sync.progress" or device_id not in (None, event.get("device_id")):
                    continue
                if not event.get("expected"):
                    if not event.get("received"):  # a session that found nothing to receive
                        progress.update(task, total=0, completed=0, visible=False)
                        ending = "Done: nothing to receive (the vault is empty, or this device already held all of it)."
                        break
                    continue
                progress.update(task, total=event["expected"], completed=min(event["received"], event["expected"]))
                if event["received"] >= event["expected"]:
                    break
        except (OSError, ValueError):
            # quiet for too long (a socket timeout), or the daemon went away
            ending = (f"No news of the sync for {INITIAL_SYNC_QUIET:g} s: the rest arrives in the background "
                      "(`vaultpeer status` shows the items).")
    if ending:
        console.print(ending, highlight=False)


@cli.command()
@click.option("--name", help="Rename this device first (as `device --name`).")
@json_option
@pass_context
@reports_errors
def peers(ctx: Context, name: str | None, as_json: bool) -> None:
    """List the vault's other devices: id, name, OS, connected, last seen, address."""
    if name:
        _change_profile(ctx, name, None)
    with ctx.require_daemon() as client:
        found = client.call("peer.list")
        removed = None if as_json else client.call("status").get("removed")
    if as_json:
        print_json(found)
        return
    if removed:
        click.echo(_removed_line(removed))
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    if not found:
        click.echo("No other devices yet: `vaultpeer pair` invites one.")
        return
    table = Table(box=None, show_header=True, header_style="bold")
    for column in ("DEVICE", "NAME", "OS", "CONNECTED", "LAST SEEN", "ADDRESS"):
        table.add_column(column)
    for peer in found:
        seen = time.strftime("%Y-%m-%d %H:%M", time.localtime(peer["last_seen"])) if peer["last_seen"] else "never"
        table.add_row(peer["device_id"][:15], Text(inert(peer["name"])), Text(inert(peer["os"])),
                      "yes" if peer["connected"] else "no", seen, inert(peer["address"] or ""))
    Console(highlight=False).print(table)


@cli.command()
@click.argument("device_ref", metavar="DEVICE")
@click.option("--password-stdin", is_flag=True,
              help="Read the master password from the first line of stdin (no offer to change it afterwards).")
@pass_context
@reports_errors
def unpair(ctx: Context, device_ref: str, password_stdin: bool) -> None:
    """Revoke DEVICE (an id, a unique id prefix, or a name): every member refuses it from now on,
    and new revisions use a rotated vault key, wrapped under a fresh salt (so the master password
    is needed). What it already holds stays with it. The other unlocked devices lock and ask for
    the master password once."""
    with ctx.require_daemon(timeout=120) as client:
        password = ctx.secret("master password", from_stdin=password_stdin)
        result = client.call("peer.remove", device=device_ref, password=password)
    click.echo(f"Revoked {result['revoked']}. It keeps what it already had; it gets nothing new.")
    for member in result.get("added_by_it", []):
        click.echo(f"It had added {inert(member['name'])} ({member['device_id']}), which no other device vouches for: "
                   "it stays a member. If you do not know that device, unpair it too.")
    click.echo("If that device was ever unlocked, whoever holds it may know the master password: with it they "
               "could open a backup made from now on, or unlock a stolen copy of another device's home. "
               "Change the master password to close that door (`vaultpeer passwd`).")
    if not password_stdin and sys.stdin.isatty() and click.confirm("Change the master password now?", default=True):
        click.get_current_context().invoke(passwd, password_stdin=False, use_recovery_key=False)


@cli.command()
@pass_context
@reports_errors
def sync(ctx: Context) -> None:
    """Sync with every reachable device now (changes are pushed at once anyway)."""
    with ctx.require_daemon() as client:
        result = client.call("sync.now")
    click.echo(f"Syncing with {result['peers']} connected device(s).")


# --- sync through files (air-gapped devices) ---------------------------------------------------


@contextmanager
def files_backend(ctx: Context, password_stdin: bool = False) -> Iterator[DaemonFilesBackend | DirectFilesBackend]:
    """The running daemon (it may run --offline), else the home directly. Only signing (admitting,
    exporting) needs the vault unlocked: the daemon must be, and directly the password is asked."""
    from vaultpeer.cli.backend import DaemonFilesBackend, DirectFilesBackend
    from vaultpeer.service.commands import VaultCommands

    client = ctx.daemon_client(timeout=300)
    if client is not None:
        with client:
            yield DaemonFilesBackend(client)
        return
    with ctx.open_vault() as vault:
        yield DirectFilesBackend(
            VaultCommands(vault, ctx.home), unlock=lambda: vault.unlock(ctx.secret("master password", from_stdin=password_stdin)))


def ask_yes_no(question: str) -> bool:
    """Ask on stdout and read the answer from stdin (a pipe works, as for `pair`)."""
    click.echo(f"{question} [y/N] ", nl=False)
    sys.stdout.flush()
    answer = sys.stdin.readline().strip().lower()
    if answer not in ("y", "yes"):
        click.echo("")
        return False
    return True


@cli.command(name="join-request")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Replace FILE if it exists.")
@pass_context
@reports_errors
def join_request_command(ctx: Context, file: Path, force: bool) -> None:
    """Join a vault without a network: write this device's public identity to FILE.

    Carry FILE to a member and run `vaultpeer admit FILE` there: it must show the device id printed
    here. Then bring back the bundle it makes (`bundle export OUT --for THIS-DEVICE`) and run
    `vaultpeer bundle import OUT` here. FILE holds only public keys, the device name and its OS.
    """
    from vaultpeer.service.commands import VaultCommands
    from vaultpeer.service.user_files import write_private_file

    with ctx.open_vault() as vault:
        data = VaultCommands(vault, ctx.home).join_request()
        device_id = vault.device.device_id
    write_private_file(file, data, overwrite=force)
    click.echo(f"Join request written to {file}.")
    click.echo(f"This device's id: {device_id}")
    click.echo("On a member device: `vaultpeer admit FILE`; it must show this same device id.")


@cli.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--password-stdin", is_flag=True,
              help="Without a daemon: read the master password from stdin, on the line after the answer.")
@json_option
@pass_context
@reports_errors
def admit(ctx: Context, file: Path, password_stdin: bool, as_json: bool) -> None:
    """Admit the device of a join request FILE into this vault (sync through files).

    Shows the new device's id and asks `Does the new device show this device id? [y/N]` (stdin; a
    pipe works). Only `y` admits it. Then make it a bundle: `vaultpeer bundle export OUT --for DEVICE`.
    The admission is signed with this device's key, which only an unlocked vault can use: the
    daemon must be unlocked, and without one the master password is asked.
    """
    from vaultpeer.service import bundle_files as bundles
    from vaultpeer.service.device import load_or_create_keys

    with file.open("rb") as request_file:
        data = request_file.read(MAX_JOIN_REQUEST_FILE)
    request = bundles.read_join_request(data)
    own_id = load_or_create_keys(ctx.home).device_id
    click.echo(f"New device: {inert(request.name)} ({inert(request.os_description)})")
    click.echo(f"Device id:  {request.device_id}")
    if not ask_yes_no("Does the new device show this device id?"):
        click.echo("Not admitted.", err=True)
        sys.exit(EXIT_PAIRING)
    with files_backend(ctx, password_stdin) as backend:
        member = backend.admit(data)
    if as_json:
        print_json({**member, "admitted_by": str(own_id)})
        return
    click.echo(f"Admitted {inert(member['name'])} ({member['device_id']}).")
    click.echo(f"Next: `vaultpeer bundle export OUT --for {member['device_id'][:15]}` and carry OUT to it.")
    click.echo(f"When it imports, it must show this device's id: {own_id}")


MAX_JOIN_REQUEST_FILE = 64 * 1024


@cli.group()
def bundle() -> None:
    """Sync through files: export what another device lacks, import what it sent.

    A bundle is signed by the device that made it and encrypted so that only the vault's members
    (and, with --for, that one device) can read anything in it, even its metadata: it is safe on an
    untrusted USB stick. Importing verifies everything before applying anything; importing the same
    bundle twice, or an old one, changes nothing.
    """


@bundle.command(name="export")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--for", "target", metavar="DEVICE",
              help="The device it is for (id, id prefix or name): only what it lacks, by what this device last "
                   "knew of it, and readable by it even before it joined.")
@click.option("--force", is_flag=True, help="Replace FILE if it exists.")
@password_stdin_option
@json_option
@pass_context
@reports_errors
def bundle_export(ctx: Context, file: Path, target: str | None, force: bool, password_stdin: bool,
                  as_json: bool) -> None:
    """Write the revisions another device lacks, with the roster and header, to FILE.

    The bundle is signed with this device's key, which only an unlocked vault can use: the daemon
    must be unlocked, and without one the master password is asked."""
    from vaultpeer.service.user_files import write_private_file

    with files_backend(ctx, password_stdin) as backend:
        data, report = backend.export_bundle(target)
    write_private_file(file, data, overwrite=force)
    report = {**report, "file": str(file)}
    if as_json:
        print_json(report)
        return
    scope = "everything" if not report["incremental"] else "what it lacks"
    click.echo(f"Wrote {file}: {report['revisions']} revision(s) ({scope}), {report['bytes']:,} bytes.")


@bundle.command(name="import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@json_option
@pass_context
@reports_errors
def bundle_import(ctx: Context, file: Path, as_json: bool) -> None:
    """Verify FILE, then apply it all at once (or nothing at all).

    On a device that has no vault yet, this joins the vault of the member that admitted it: it
    shows that member's device id and asks `Does the admitting device show this device id? [y/N]`.
    """
    with files_backend(ctx) as backend:
        summary = backend.inspect_bundle(file)
        if summary["joining"]:
            click.echo(f"This bundle admits this device into the vault of {inert(summary['exporter_name'])}.")
            click.echo(f"Its device id: {summary['exporter']}")
            if not ask_yes_no("Does the admitting device show this device id?"):
                click.echo("Nothing imported.", err=True)
                sys.exit(EXIT_PAIRING)
        report = backend.import_bundle(file, summary["exporter"])
    if as_json:
        print_json(report)
        return
    if report["joining"]:
        click.echo("Joined the vault. `vaultpeer unlock` (or any command) with its master password reads it.")
        click.echo("Unlock once now: that seals this device's signing key, which stays in the clear on disk "
                   "until then.")
    click.echo(f"Imported {report['new_revisions']} new revision(s) from {inert(report['exporter_name'])} "
               f"({report['already_had']} already here).")


@cli.command()
@click.option("--length", type=click.IntRange(MIN_LENGTH, MAX_LENGTH), metavar="N",
              help=f"A password of N characters ({MIN_LENGTH}-{MAX_LENGTH}; default {DEFAULT_LENGTH}).")
@click.option("--words", type=click.IntRange(MIN_WORDS, MAX_WORDS), is_flag=False, flag_value=DEFAULT_WORDS,
              metavar="[N]", help=f"A passphrase of N words instead ({MIN_WORDS}-{MAX_WORDS}; "
                                  f"default {DEFAULT_WORDS}). Not with --length or the class options.")
@click.option("--separator", metavar="TEXT",
              help=f"What goes between passphrase words (default {DEFAULT_SEPARATOR!r}; only with --words).")
@password_class_options
@click.option("--json", "as_json", is_flag=True, help='Print {"password", "entropy_bits"}.')
@reports_errors
def generate(as_json: bool, **choices) -> None:
    """Print a random password, or with --words a passphrase.

    \b
    Password: letters, digits and symbols, every class present (24 characters: 149.4 bits);
    --no-digits, --no-symbols and --exclude-similar (no I l 1 O 0) leave some out, for less
    (24 characters without symbols: 142.9 bits).
    Passphrase: words drawn uniformly (with Python's `secrets`) from the EFF long list of 7,776
    words, 12.9 bits each (6 words: 77.5 bits); words that contain a separator character are
    left out of the draw, so the passphrase always splits back into its words.
    --json also gives the entropy in bits.
    """
    from vaultpeer.service.wordlist import generate_json

    result = generate_json(generate_options(**choices))
    if as_json:
        print_json(result)
    else:
        click.echo(result["password"])


@cli.command()
@click.option("--keep", is_flag=True, help="Keep the demo's temporary directory instead of deleting it.")
def demo(keep: bool) -> None:
    """Walk through vaultpeer on throw-away devices in a temporary directory."""
    from vaultpeer.cli.demo import run_demo

    sys.exit(run_demo(keep=keep))
