"""The ``vaultpeer`` command line (click). Presentation only: the work is done by ``vaultpeer.vault``.

Until the daemon exists, commands open the device's home directly and ask for the master password
each time. Secret values are masked in human output unless ``--reveal``; ``--json`` and
``get ITEM --field NAME`` print values for scripts. Passwords are read from a hidden prompt or,
with ``--password-stdin``, from stdin; never from argv or the environment.
"""

import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from vaultpeer import __version__
from vaultpeer.core import kdf as kdf_module
from vaultpeer.core.errors import (
    AlreadyInitialized,
    Ambiguous,
    IntegrityError,
    InvalidInput,
    NoVault,
    NotFound,
    VaultpeerError,
    WrongPassword,
    WrongRecoveryKey,
)
from vaultpeer.core.generate import DEFAULT_LENGTH, MAX_LENGTH, MIN_LENGTH, generate_password
from vaultpeer.core.item import Field
from vaultpeer.core.keys import RecoveryKey
from vaultpeer.core.merge import EDIT_SURVIVED_DELETE, TITLE
from vaultpeer.device import DeviceProfile, load_or_create_keys, load_profile, save_profile
from vaultpeer.home import (
    INSECURE_TEST_KDF_ENV,
    Home,
    insecure_test_kdf_enabled,
    resolve_home,
)
from vaultpeer.vault import Conflict, HistoryEntry, ItemView, Vault

#: Exit statuses scripts can rely on (documented in docs/cli.md).
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_WRONG_PASSWORD = 3
EXIT_NOT_FOUND = 4
EXIT_AMBIGUOUS = 5
EXIT_INTEGRITY = 6
EXIT_NO_VAULT = 7
EXIT_CONFLICT = 8

_EXIT_CODES: dict[type, int] = {
    WrongPassword: EXIT_WRONG_PASSWORD,
    WrongRecoveryKey: EXIT_WRONG_PASSWORD,
    NotFound: EXIT_NOT_FOUND,
    Ambiguous: EXIT_AMBIGUOUS,
    IntegrityError: EXIT_INTEGRITY,
    NoVault: EXIT_NO_VAULT,
    InvalidInput: EXIT_USAGE,
    Conflict: EXIT_CONFLICT,
}

MASK = "••••••••"


class Context:
    def __init__(self, home: Home):
        self.home = home
        self.insecure_test_kdf = insecure_test_kdf_enabled()
        self._stdin_lines: Iterator[str] | None = None

    def open_vault(self) -> Vault:
        return Vault.open(self.home, allow_insecure_test_kdf=self.insecure_test_kdf)

    def stdin_line(self, what: str) -> str:
        if self._stdin_lines is None:
            self._stdin_lines = iter(sys.stdin.readline, "")
        line = next(self._stdin_lines, None)
        if line is None:
            raise click.ClickException(f"expected the {what} on a line of stdin, found end of input")
        return line.rstrip("\r\n")

    def secret(self, what: str, *, from_stdin: bool, confirm: bool = False) -> str:
        """A secret from stdin (``--password-stdin``) or a hidden prompt; never from argv or env."""
        if from_stdin:
            return self.stdin_line(what)
        if not sys.stdin.isatty():
            raise click.UsageError(f"no terminal to ask for the {what}: pass --password-stdin and pipe it in")
        return click.prompt(what[0].upper() + what[1:], hide_input=True, confirmation_prompt=confirm,
                            err=True)


pass_context = click.make_pass_decorator(Context)


def reports_errors(command: Callable) -> Callable:
    """Turn vaultpeer errors into one clear line on stderr and a documented exit status."""

    @wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except Ambiguous as exc:
            click.echo(f"error: {exc}", err=True)
            for item_id, title in exc.candidates:
                click.echo(f"  {item_id}  {title}", err=True)
            sys.exit(EXIT_AMBIGUOUS)
        except VaultpeerError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(next((code for cls, code in _EXIT_CODES.items() if isinstance(exc, cls)), EXIT_ERROR))

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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
    ctx.obj = Context(Home(resolve_home(home)))
    if ctx.obj.insecure_test_kdf:
        click.echo(
            f"WARNING: {INSECURE_TEST_KDF_ENV} is set: vaults created now have NO real password protection. "
            "For tests only.",
            err=True,
        )


def main() -> None:
    cli(prog_name="vaultpeer")


@contextmanager
def unlocked_vault(ctx: Context, password_stdin: bool) -> Iterator[Vault]:
    with ctx.open_vault() as vault:
        if not vault.initialized:
            raise NoVault()
        vault.unlock(ctx.secret("master password", from_stdin=password_stdin))
        yield vault


def password_stdin_option(command: Callable) -> Callable:
    return click.option(
        "--password-stdin", is_flag=True, help="Read the master password from the first line of stdin."
    )(command)


def json_option(command: Callable) -> Callable:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts (values unmasked).")(command)


def field_value_options(command: Callable) -> Callable:
    """--field NAME=VALUE, --generate FIELD and --length, shared by `add` and `edit`."""
    for option in reversed([
        click.option("--field", "fields", multiple=True, metavar="NAME=VALUE", help="Set a field (repeatable)."),
        click.option("--generate", "generated", multiple=True, metavar="FIELD",
                     help="Fill FIELD with a generated password (repeatable)."),
        click.option("--length", default=DEFAULT_LENGTH, show_default=True,
                     type=click.IntRange(MIN_LENGTH, MAX_LENGTH), help="Length of generated passwords."),
    ]):
        command = option(command)
    return command


def field_assignments(fields: tuple[str, ...], generated: tuple[str, ...], length: int) -> list[tuple[str, str]]:
    return parse_assignments(fields) + [(name, generate_password(length)) for name in generated]


def print_json(value: object) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))


def parse_assignments(values: tuple[str, ...]) -> list[tuple[str, str]]:
    pairs = []
    for value in values:
        name, sep, field_value = value.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"expected NAME=VALUE, got {name or value!r}", param_hint="--field")
        pairs.append((name, field_value))
    return pairs


# --- presentation ------------------------------------------------------------------------------


def item_json(view: ItemView) -> dict:
    return {
        "id": str(view.id),
        "title": view.title,
        "fields": {f.name: f.value for f in view.fields},
        "revision": str(view.revision),
        "conflict": view.conflict,
        "deleted": view.deleted,
        "flags": sorted(view.flags),
    }


def shown_value(field: Field, reveal: bool) -> str:
    return field.value if reveal or not field.secret else MASK


def print_item(view: ItemView, reveal: bool) -> None:
    console = Console(highlight=False)
    header = Text(view.title, style="bold")
    header.append(f"  id {view.id}  revision {view.revision}", style="dim")
    console.print(header)
    if view.deleted:
        console.print(Text("  (deleted: `vaultpeer restore ITEM` brings it back)", style="yellow"))
    if view.conflict:
        console.print(Text(f"  (concurrent versions: {', '.join(map(str, view.heads))})", style="yellow"))
    width = max((len(f.name) for f in view.fields), default=0)
    for field in view.fields:
        console.print(Text(f"  {field.name.ljust(width)}  {shown_value(field, reveal)}"))
    if not reveal and any(f.secret for f in view.fields):
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

    The master password is stretched with Argon2id, calibrated here to take about 0.5-1 s.
    """
    with ctx.open_vault() as vault:
        if vault.initialized:
            raise AlreadyInitialized(f"this device already has a vault (home: {ctx.home.path})")
        if name:
            save_profile(ctx.home, DeviceProfile(name, load_profile(ctx.home).os_description))
        password = ctx.secret("master password", from_stdin=password_stdin, confirm=True)
        if ctx.insecure_test_kdf:
            params = kdf_module.insecure_test_parameters()
        elif quick_kdf:
            params = kdf_module.KdfParameters(
                salt=os.urandom(kdf_module.SALT_SIZE), time_cost=kdf_module.MIN_TIME_COST,
                memory_kib=kdf_module.MIN_MEMORY_KIB, parallelism=min(4, os.cpu_count() or 1),
            )
        else:
            click.echo("Calibrating Argon2id for this machine...", err=True)
            params = kdf_module.calibrate(_time_derivation, cpu_count=os.cpu_count() or 1)
        profile = load_profile(ctx.home)
        recovery_key = vault.init(password, params, profile.name, profile.os_description)
        click.echo(f"Created vault in {ctx.home.path}")
        click.echo(f"Device id: {vault.device.device_id}")
        click.echo(
            f"Key derivation: Argon2id, {params.memory_kib // 1024} MiB, {params.time_cost} passes, "
            f"{params.parallelism} lanes"
        )
        click.echo("")
        click.echo("Recovery key (shown only now; write it down and keep it offline):")
        click.echo(f"    {recovery_key.reveal()}")
        click.echo("It opens the vault if you forget the master password: `vaultpeer passwd --recovery-key`.")


def _time_derivation(params: kdf_module.KdfParameters) -> float:
    start = time.perf_counter()
    params.derive("calibration")
    return time.perf_counter() - start


@cli.command()
@json_option
@pass_context
@reports_errors
def status(ctx: Context, as_json: bool) -> None:
    """Show this device and its vault (no password needed)."""
    with ctx.open_vault() as vault:
        profile = load_profile(ctx.home)
        initialized = vault.initialized
        counts = vault.store.counts()
        info = {
            "device_id": str(vault.device.device_id),
            "name": profile.name,
            "os": profile.os_description,
            "vault_id": vault.vault_id.hex() if initialized else None,
            "locked": True,
            "listen": None,
            "socket": None,
            "peers": [],
            "conflicts": vault.store.conflicted_item_count(),
            "items": counts["items"],
            "revisions": counts["revisions"],
            "home": str(ctx.home.path),
        }
    if as_json:
        print_json(info)
        return
    click.echo(f"Device:    {info['name']} ({info['os']})")
    click.echo(f"Device id: {info['device_id']}")
    click.echo(f"Home:      {info['home']}")
    if not initialized:
        click.echo("Vault:     none yet (`vaultpeer init` creates one)")
        return
    click.echo(f"Vault:     {info['vault_id']}")
    click.echo(f"Items:     {info['items']} ({info['revisions']} revisions, {info['conflicts']} in conflict)")


@cli.command()
@click.option("--name", help="Rename this device.")
@click.option("--os-description", "os_description", help="Change how this device's OS is described.")
@json_option
@pass_context
@reports_errors
def device(ctx: Context, name: str | None, os_description: str | None, as_json: bool) -> None:
    """Show this device's id, name and OS description; --name or --os-description change them."""
    keys = load_or_create_keys(ctx.home)
    profile = load_profile(ctx.home)
    if name or os_description:
        profile = DeviceProfile(name or profile.name, os_description or profile.os_description)
        try:
            save_profile(ctx.home, profile)
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None
    info = {"device_id": str(keys.device_id), "name": profile.name, "os": profile.os_description}
    if as_json:
        print_json(info)
    else:
        click.echo(f"{info['name']} ({info['os']})\n{info['device_id']}")


@cli.command()
@click.argument("title")
@field_value_options
@password_stdin_option
@json_option
@pass_context
@reports_errors
def add(ctx: Context, title: str, fields: tuple[str, ...], generated: tuple[str, ...], length: int,
        password_stdin: bool, as_json: bool) -> None:
    """Add an item titled TITLE, with fields such as username, password, url, notes, totp."""
    pairs = field_assignments(fields, generated, length)
    with unlocked_vault(ctx, password_stdin) as vault:
        view = vault.add(title, pairs)
    if as_json:
        print_json({"id": str(view.id), "title": view.title, "revision": str(view.revision)})
    else:
        click.echo(f"Added {view.title!r} (id {view.id})")


@cli.command()
@click.argument("item")
@click.option("--field", "field_name", metavar="NAME", help="Print only this field's bare value (for scripts).")
@click.option("--reveal", is_flag=True, help="Show secret values instead of masking them.")
@password_stdin_option
@json_option
@pass_context
@reports_errors
def get(ctx: Context, item: str, field_name: str | None, reveal: bool, password_stdin: bool, as_json: bool) -> None:
    """Show ITEM (an id, a unique id prefix of 6+ characters, or an exact title)."""
    with unlocked_vault(ctx, password_stdin) as vault:
        view = vault.get(item)
    if field_name is not None:
        match = next((f for f in view.fields if f.name == field_name), None)
        if match is None:
            raise NotFound("the item has no field by that name")
        click.echo(match.value)
    elif as_json:
        print_json(item_json(view))
    else:
        print_item(view, reveal)


@cli.command(name="ls")
@click.option("--deleted", is_flag=True, help="List deleted items instead (they can be restored).")
@password_stdin_option
@json_option
@pass_context
@reports_errors
def list_items(ctx: Context, deleted: bool, password_stdin: bool, as_json: bool) -> None:
    """List items by title."""
    with unlocked_vault(ctx, password_stdin) as vault:
        views = vault.list_items(deleted=deleted)
    if as_json:
        print_json([{"id": str(v.id), "title": v.title, "conflict": v.conflict} for v in views])
        return
    if not views:
        click.echo("No deleted items." if deleted else "No items yet: `vaultpeer add TITLE --field ...`")
        return
    table = Table(box=None, show_header=True, header_style="bold")
    table.add_column("ID")
    table.add_column("TITLE")
    table.add_column("")
    for view in views:
        table.add_row(str(view.id)[:12], Text(view.title), "conflict" if view.conflict else "")
    Console(highlight=False).print(table)


@cli.command()
@click.argument("item")
@field_value_options
@click.option("--remove-field", "remove", multiple=True, metavar="NAME", help="Remove a field (repeatable).")
@click.option("--title", help="A new title.")
@password_stdin_option
@json_option
@pass_context
@reports_errors
def edit(ctx: Context, item: str, fields: tuple[str, ...], remove: tuple[str, ...], title: str | None,
         generated: tuple[str, ...], length: int, password_stdin: bool, as_json: bool) -> None:
    """Change ITEM's fields or title (a new revision; the old one stays in history)."""
    pairs = field_assignments(fields, generated, length)
    if not pairs and not remove and title is None:
        raise click.UsageError("nothing to change: give --field, --remove-field, --generate or --title")
    with unlocked_vault(ctx, password_stdin) as vault:
        view = vault.edit(item, pairs, remove, title)
    if as_json:
        print_json(item_json(view))
    else:
        click.echo(f"Updated {view.title!r} (revision {view.revision})")


@cli.command()
@click.argument("item")
@password_stdin_option
@pass_context
@reports_errors
def rm(ctx: Context, item: str, password_stdin: bool) -> None:
    """Delete ITEM (a tombstone: `ls --deleted` lists it and `restore` brings it back)."""
    with unlocked_vault(ctx, password_stdin) as vault:
        view = vault.delete(item)
    click.echo(f"Deleted {view.title!r} (id {view.id}); `vaultpeer restore {str(view.id)[:12]}` undoes it.")


def history_json(entry: HistoryEntry) -> dict:
    return {
        "revision": str(entry.revision),
        "parents": [str(p) for p in entry.parents],
        "deleted": entry.deleted,
        "current": entry.is_head,
        "title": entry.title,
        "fields": {f.name: f.value for f in entry.fields},
    }


@cli.command()
@click.argument("item")
@click.option("--reveal", is_flag=True, help="Show secret values instead of masking them.")
@password_stdin_option
@json_option
@pass_context
@reports_errors
def history(ctx: Context, item: str, reveal: bool, password_stdin: bool, as_json: bool) -> None:
    """Show every revision of ITEM, oldest first."""
    with unlocked_vault(ctx, password_stdin) as vault:
        entries = vault.history(item)
    if as_json:
        print_json([history_json(e) for e in entries])
        return
    console = Console(highlight=False)
    for entry in entries:
        line = Text(str(entry.revision), style="bold")
        if entry.parents:
            line.append(f"  after {', '.join(map(str, entry.parents))}", style="dim")
        if entry.deleted:
            line.append("  deleted", style="yellow")
        if entry.is_head:
            line.append("  current", style="green")
        console.print(line)
        console.print(Text(f"    title: {entry.title}"))
        for field in entry.fields:
            console.print(Text(f"    {field.name}: {shown_value(field, reveal)}"))


@cli.command()
@click.argument("item")
@click.argument("revision", required=False)
@password_stdin_option
@pass_context
@reports_errors
def restore(ctx: Context, item: str, revision: str | None, password_stdin: bool) -> None:
    """Bring back REVISION of ITEM as a new revision, or undelete a deleted ITEM."""
    with unlocked_vault(ctx, password_stdin) as vault:
        view = vault.restore(item, revision)
    click.echo(f"Restored {view.title!r} as revision {view.revision}")


def conflict_json(view: ItemView) -> dict:
    fields, title = {}, None
    for register, candidates in (view.conflicts or {}).items():
        if register == TITLE:
            title = [{"revision": str(c.revision), "value": c.value} for c in candidates]
        else:
            fields[register[1]] = [
                {"revision": str(c.revision), "value": None if c.value is None else c.value[0]} for c in candidates
            ]
    result = {"id": str(view.id), "title": view.title, "fields": fields, "flags": sorted(view.flags)}
    if title:
        result["title_candidates"] = title
    return result


FLAG_EXPLANATIONS = {
    EDIT_SURVIVED_DELETE: "deleted on one device while edited on another: the edit was kept",
}


@cli.command()
@click.option("--reveal", is_flag=True, help="Show secret values instead of masking them.")
@password_stdin_option
@json_option
@pass_context
@reports_errors
def conflicts(ctx: Context, reveal: bool, password_stdin: bool, as_json: bool) -> None:
    """List items whose concurrent edits need your decision, with every value kept."""
    with unlocked_vault(ctx, password_stdin) as vault:
        views = vault.conflicts()
    if as_json:
        print_json([conflict_json(v) for v in views])
        return
    if not views:
        click.echo("No conflicts.")
        return
    console = Console(highlight=False)
    for view in views:
        console.print(Text(f"{view.title}  (id {view.id})", style="bold"))
        for register, candidates in (view.conflicts or {}).items():
            name = "title" if register == TITLE else register[1]
            secret = register != TITLE and any(c.value and c.value[1] for c in candidates)
            console.print(Text(f"  {name}:"))
            for candidate in candidates:
                if candidate.value is None:
                    shown = "(field removed)"
                elif register == TITLE:
                    shown = candidate.value
                else:
                    shown = candidate.value[0] if reveal or not secret else MASK
                console.print(Text(f"    {candidate.revision}  {shown}"))
        for flag in sorted(view.flags):
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
    with unlocked_vault(ctx, password_stdin) as vault:
        view = vault.resolve_conflict(item, take=take, set_fields=dict(parse_assignments(fields)), title=title)
    if as_json:
        print_json(item_json(view))
    else:
        click.echo(f"Resolved {view.title!r} (revision {view.revision})")


@cli.command()
@click.option("--password-stdin", is_flag=True,
              help="Read the current password (or recovery key) and then the new password from stdin, one per line.")
@click.option("--recovery-key", "use_recovery_key", is_flag=True,
              help="Prove who you are with the recovery key instead of the current password.")
@pass_context
@reports_errors
def passwd(ctx: Context, password_stdin: bool, use_recovery_key: bool) -> None:
    """Change the master password (re-wraps the vault key; no item is re-encrypted)."""
    with ctx.open_vault() as vault:
        if not vault.initialized:
            raise NoVault()
        if use_recovery_key:
            text = ctx.secret("recovery key", from_stdin=password_stdin)
            try:
                recovery_key = RecoveryKey.parse(text)
            except ValueError as exc:
                raise WrongRecoveryKey(f"that is not a recovery key: {exc}") from None
            vault.unlock_with_recovery_key(recovery_key)
        else:
            vault.unlock(ctx.secret("current master password", from_stdin=password_stdin))
        vault.change_password(ctx.secret("new master password", from_stdin=password_stdin, confirm=True))
    click.echo("Master password changed. The recovery key is unchanged.")


@cli.command()
@click.option("--decrypt", is_flag=True, help="Also unlock and check that every revision decrypts.")
@password_stdin_option
@json_option
@pass_context
@reports_errors
def check(ctx: Context, decrypt: bool, password_stdin: bool, as_json: bool) -> None:
    """Verify the database, every revision's signature and (with --decrypt) every ciphertext."""
    with ctx.open_vault() as vault:
        if not vault.initialized:
            raise NoVault()
        if decrypt:
            vault.unlock(ctx.secret("master password", from_stdin=password_stdin))
        report = vault.check()
    result = {
        "ok": report.ok,
        "database_ok": report.database_ok,
        "revisions_checked": report.revisions_checked,
        "bad_signatures": list(report.bad_signatures),
        "undecryptable": list(report.undecryptable),
        "decrypted": report.decrypted,
    }
    if as_json:
        print_json(result)
    else:
        click.echo(f"Database integrity: {'ok' if report.database_ok else 'FAILED'}")
        click.echo(f"Revisions checked:  {report.revisions_checked}"
                   + (" (signatures and decryption)" if report.decrypted else " (signatures)"))
        for revision in report.bad_signatures:
            click.echo(f"  bad signature: {revision}")
        for revision in report.undecryptable:
            click.echo(f"  does not decrypt: {revision}")
        click.echo("All good." if report.ok else "PROBLEMS FOUND: restore from a backup or resync from a peer.")
    if not report.ok:
        sys.exit(EXIT_INTEGRITY)


@cli.command()
@click.option("--length", default=DEFAULT_LENGTH, show_default=True, type=click.IntRange(MIN_LENGTH, MAX_LENGTH),
              help="Number of characters.")
def generate(length: int) -> None:
    """Print a random password (letters, digits and symbols; every class present)."""
    click.echo(generate_password(length))


@cli.command()
@click.option("--keep", is_flag=True, help="Keep the demo's temporary directory instead of deleting it.")
def demo(keep: bool) -> None:
    """Walk through vaultpeer on throw-away devices in a temporary directory."""
    from vaultpeer.demo import run_demo

    sys.exit(run_demo(keep=keep))

