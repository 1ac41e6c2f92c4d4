"""`vaultpeer backup` (create, verify) and the backup half of `vaultpeer restore`. Presentation only:
the work is done by ``vaultpeer.service.backup_files``.

It uses the helpers of ``vaultpeer.cli.app``; its commands register on that group when the
``vaultpeer.cli`` package imports it.
"""

import base64
import time
from pathlib import Path

import click

from vaultpeer.service.backup_files import (
    DEFAULT_KEEP,
    OpenedBackup,
    ensure_restorable,
    open_sealed_backup,
    read_backup,
    restore_home,
    write_sealed,
)
from vaultpeer.cli.app import (
    Context,
    backup_secret_options,
    cli,
    json_option,
    pass_context,
    password_stdin_option,
    print_json,
    reports_errors,
    unlocked_vault,
)
from vaultpeer.core.errors import InvalidInput, WrongRecoveryKey
from vaultpeer.core.keys import RecoveryKey


class BackupGroup(click.Group):
    """`backup DIR ...` means `backup create DIR ...`: a first word that is not a subcommand is DIR.

    (A directory literally named like a subcommand is written `./verify`.)
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = ["create", *args]
        return super().parse_args(ctx, args)


@cli.group(cls=BackupGroup, subcommand_metavar="DIR | create DIR | verify FILE")
def backup() -> None:
    """Write an encrypted backup of the vault into DIR (`backup DIR`), or check one (`backup verify FILE`).

    \b
      vaultpeer backup DIR [--keep N] [--json]       same as `vaultpeer backup create DIR`
      vaultpeer backup verify FILE [--recovery-key]  open FILE and check every revision
      vaultpeer --home NEW restore FILE              rebuild a device from FILE

    A backup holds the whole vault: every item with its full history (deleted ones too), sealed
    with the vault key, so the master password or the recovery key opens it. It never holds this
    device's private keys.
    """


@backup.command("create")
@click.argument("directory", metavar="DIR", type=click.Path(file_okay=False, path_type=Path))
@click.option("--keep", default=DEFAULT_KEEP, show_default=True, type=click.IntRange(min=1), metavar="N",
              help="Keep the newest N backup files in DIR: older files named vaultpeer-backup-*.vpbak are "
                   "deleted (no other file is ever touched).")
@password_stdin_option
@json_option
@pass_context
@reports_errors
def backup_create(ctx: Context, directory: Path, keep: int, password_stdin: bool, as_json: bool) -> None:
    """Write an encrypted backup of the whole vault into DIR (created 0700 if missing).

    The file is named vaultpeer-backup-<UTC time>.vpbak (like vaultpeer-backup-20261123T120000Z.vpbak),
    is private (0600) and appears complete or not at all. With a running daemon the backup is sealed
    by the daemon (it must be unlocked: `vaultpeer unlock`) and written by this command; otherwise
    the master password is asked.
    """
    directory = directory.expanduser().absolute()
    client = ctx.daemon_client(timeout=600)
    if client is not None:
        with client:
            sealed = client.call("backup.seal")
        result = write_sealed(directory, base64.b64decode(sealed["backup"]), revisions=sealed["revisions"],
                              items=sealed["items"], keep=keep).to_json()
    else:
        from vaultpeer.service.commands import VaultCommands

        with unlocked_vault(ctx, password_stdin) as vault:
            result = VaultCommands(vault, ctx.home).create_backup(directory, keep)
    if as_json:
        print_json(result)
        return
    click.echo(f"Backup written: {result['file']} ({result['items']} items, {result['revisions']} revisions)")
    for removed in result["removed"]:
        click.echo(f"Removed an older backup: {removed}")


def _utc(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def open_backup_as_asked(ctx: Context, path: Path, *, use_recovery_key: bool, password_stdin: bool) -> OpenedBackup:
    """Open and verify a backup with the master password, or the recovery key (prompt or stdin).

    The file is read and its layout checked first, so a file that is no backup is refused before
    any secret is asked for."""
    sealed = read_backup(path)
    if use_recovery_key:
        text = ctx.secret("recovery key", from_stdin=password_stdin)
        try:
            recovery_key = RecoveryKey.parse(text)
        except ValueError as exc:
            raise WrongRecoveryKey(f"that is not a recovery key: {exc}") from None
        return open_sealed_backup(sealed, path, recovery_key=recovery_key,
                                  allow_insecure_test_kdf=ctx.insecure_test_kdf)
    password = ctx.secret("master password", from_stdin=password_stdin)
    return open_sealed_backup(sealed, path, password=password, allow_insecure_test_kdf=ctx.insecure_test_kdf)


@backup.command("verify")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@backup_secret_options
@json_option
@pass_context
@reports_errors
def backup_verify(ctx: Context, file: Path, use_recovery_key: bool, password_stdin: bool, as_json: bool) -> None:
    """Check that backup FILE opens and that every revision in it is intact and decrypts.

    Needs no vault on this device. Every roster entry and revision signature is checked the way a
    new device restored from FILE would check them. Exit 0 only if everything is intact; a wrong
    password exits 3, an altered or truncated file 6.
    """
    opened = open_backup_as_asked(ctx, file, use_recovery_key=use_recovery_key, password_stdin=password_stdin)
    report = opened.report
    result = {
        "ok": True,
        "file": str(file),
        "format_version": opened.version,
        "vault_id": report.vault_id.hex(),
        "created": _utc(report.created),
        "device_id": str(report.device_id),
        "items": report.items,
        "deleted_items": report.deleted_items,
        "revisions": report.revisions,
        "tombstones": report.tombstones,
        "roster_entries": report.roster_entries,
        "members": report.members,
        "quarantined": report.quarantined,
        "pruned": report.pruned,
    }
    if as_json:
        print_json(result)
        return
    click.echo(f"Backup:     {file} (format version {opened.version})")
    click.echo(f"Vault:      {result['vault_id']}")
    click.echo(f"Made by:    {result['device_id']} at {result['created']}")
    click.echo(f"Items:      {report.items} ({report.deleted_items} deleted)")
    decrypts = ("every revision decrypts" if not report.quarantined else
                f"{report.quarantined} validly signed revision(s) do not decrypt (quarantined, as on every device)")
    click.echo(f"Revisions:  {report.revisions} ({report.tombstones} deletions), every signature valid, {decrypts}")
    if report.pruned:
        click.echo(f"Pruned:     {report.pruned} revision(s) by unpaired devices past their cutoff (not restored)")
    click.echo(f"Members:    {report.members}")
    click.echo("All good.")


def restore_from_backup(ctx: Context, file: Path, *, use_recovery_key: bool, password_stdin: bool,
                        as_json: bool) -> None:
    """`vaultpeer restore FILE`: a new device in ctx.home, holding everything the backup holds."""
    if ctx.daemon_client() is not None:
        raise InvalidInput(f"a daemon is running for {ctx.home.path}: stop it, or restore into a new home (--home DIR)")
    ensure_restorable(ctx.home)  # before asking for any secret; changes nothing
    opened = open_backup_as_asked(ctx, file, use_recovery_key=use_recovery_key, password_stdin=password_stdin)
    restored = restore_home(ctx.home, opened, allow_insecure_test_kdf=ctx.insecure_test_kdf)
    if as_json:
        print_json(restored.to_json())
        return
    click.echo(f"Restored {restored.items} items ({restored.revisions} revisions) into {restored.home}")
    click.echo(f"This is a new device: {restored.device_id}")
    click.echo(f"The backup was made by {restored.backup_device_id} at {_utc(opened.report.created)}.")
    if use_recovery_key:
        click.echo("You opened it with the recovery key: set a new master password with "
                   "`vaultpeer passwd --recovery-key`.")
    click.echo("To sync with your other devices again: start the daemon here and unlock it, then run "
               "`vaultpeer pair` on one of them and `vaultpeer pair --join HOST:PORT` here. "
               "If no other device is left, just use this one.")
