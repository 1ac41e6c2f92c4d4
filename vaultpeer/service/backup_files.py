"""Backup files on disk: written privately and atomically, rotated, verified, restored into a new home.

The format and every check live in the pure core (``vaultpeer.core.backup``); this module reads
and writes the files, names and rotates them, and builds a home from one. A backup never holds a
device's private keys, so a restored home is a NEW device: it trusts the device that made the
backup, holds everything that device held, and is not vouched for by anyone until it is paired
with a member of the vault (``vaultpeer pair`` there, ``vaultpeer pair --join`` on it).
"""

import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from vaultpeer.core.backup import (
    MAGIC,
    MAX_FILE_SIZE,
    BackupContents,
    BackupReport,
    SealedBackup,
    open_backup,
    parse_backup,
    seal_backup,
    verify_backup,
)
from vaultpeer.core.errors import AlreadyInitialized, IntegrityError, InvalidInput, VaultLocked, VaultpeerError
from vaultpeer.core.keys import Keyring, RecoveryKey, VaultHeader
from vaultpeer.service.device import fsync_directory, load_or_create_keys, load_profile, secure_signing_key
from vaultpeer.service.home import Home
from vaultpeer.service.vault import Vault, home_holds_vault

DEFAULT_KEEP = 10
SUFFIX = ".vpbak"
#: Only files named like this are ever rotated away: the ones vaultpeer wrote.
FILE_NAME = re.compile(r"^vaultpeer-backup-(\d{8}T\d{6}Z)(?:-(\d{1,6}))?\.vpbak$")


class BackupFailed(VaultpeerError):
    """The backup could not be written (the message names the directory and the reason)."""


@dataclass(frozen=True)
class BackupWritten:
    path: Path
    revisions: int
    items: int
    removed: tuple[Path, ...]

    def to_json(self) -> dict:
        return {"file": str(self.path), "revisions": self.revisions, "items": self.items,
                "removed": [str(p) for p in self.removed]}


@dataclass(frozen=True, repr=False)
class OpenedBackup:
    """A backup whose every record verified and decrypted."""

    path: Path
    version: int
    contents: BackupContents
    report: BackupReport
    #: What opened it: the restored device seals its signing key under it.
    keyring: Keyring

    @property
    def header(self) -> VaultHeader:
        return self.contents.header

    def __repr__(self) -> str:
        return f"OpenedBackup({self.path.name}, {self.report.revisions} revisions)"


def backup_file_name(now: float, counter: int = 0) -> str:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    return f"vaultpeer-backup-{stamp}{f'-{counter}' if counter else ''}{SUFFIX}"


# --- writing -----------------------------------------------------------------------------------


def snapshot(vault: Vault, now: float | None = None) -> tuple[Keyring, BackupContents]:
    """Everything a backup holds, read in one transaction (so it is one consistent state)."""
    keyring = vault.unlocked_keyring()
    held = vault.held_records()
    header = held.header
    contents = BackupContents(
        vault_id=header.vault_id,
        created=int(time.time() if now is None else now),
        header=header,
        device=vault.device.public,
        anchors=held.anchors,
        roster=held.roster,
        revisions=held.revisions,
    )
    try:
        keyring.key(header.key_epoch)
    except IntegrityError:
        # the key was rotated elsewhere while the password changed too: this keyring is stale
        raise VaultLocked("the vault key changed on another device: lock and unlock again, then retry") from None
    return keyring, contents


def write_backup(directory: Path, keyring: Keyring, contents: BackupContents, *,
                 keep: int = DEFAULT_KEEP, now: float | None = None) -> BackupWritten:
    """Seal ``contents`` into a new file in ``directory`` and rotate old ones."""
    return write_sealed(directory, seal_backup(keyring, contents), revisions=len(contents.revisions),
                        items=len({r.item_id for r in contents.revisions}), keep=keep, now=now)


def write_sealed(directory: Path, data: bytes, *, revisions: int, items: int, keep: int = DEFAULT_KEEP,
                 now: float | None = None) -> BackupWritten:
    """Write sealed backup bytes as a new file in ``directory`` and rotate old ones. The CLI does
    this with what a daemon sealed: the daemon (sandboxed by its unit) need not write outside its home."""
    if keep < 1:
        raise InvalidInput("--keep must be at least 1")
    now = time.time() if now is None else now
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = _write_new_file(directory, data, now)
        removed = _rotate(directory, keep, path)
    except OSError as exc:
        raise BackupFailed(f"cannot write a backup in {directory}: {exc.strerror or exc}") from None
    return BackupWritten(path, revisions, items, removed)


def create_backup(vault: Vault, directory: Path, *, keep: int = DEFAULT_KEEP, now: float | None = None) -> BackupWritten:
    keyring, contents = snapshot(vault, now)
    return write_backup(directory, keyring, contents, keep=keep, now=now)


def _write_new_file(directory: Path, data: bytes, now: float) -> Path:
    """Temp file (0600), fsync, then link it under a name that does not exist yet, fsync the dir."""
    fd, temp = tempfile.mkstemp(prefix=".vaultpeer-backup-", suffix=".tmp", dir=directory)
    try:
        try:
            os.fchmod(fd, 0o600)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        counter = 0
        while True:
            path = directory / backup_file_name(now, counter)
            try:
                os.link(temp, path)  # never replaces a file (two backups in one second)
                break
            except FileExistsError:
                counter += 1
            except OSError:
                if path.exists():  # a filesystem without hard links: rename, checking first
                    counter += 1
                    continue
                os.rename(temp, path)
                break
    finally:
        try:
            os.unlink(temp)
        except FileNotFoundError:
            pass
    fsync_directory(directory)
    return path


def _rotate(directory: Path, keep: int, written: Path) -> tuple[Path, ...]:
    """Delete the oldest of vaultpeer's own backup files beyond ``keep`` (never the new one)."""
    ours = []
    for entry in os.scandir(directory):
        match = FILE_NAME.match(entry.name)
        if match and entry.name != written.name and entry.is_file(follow_symlinks=False):
            ours.append(((match.group(1), int(match.group(2) or 0)), Path(entry.path)))
    ours.sort()
    removed = [path for _, path in ours[: max(0, len(ours) - (keep - 1))]]
    for path in removed:
        path.unlink(missing_ok=True)
    if removed:
        fsync_directory(directory)
    return tuple(removed)


# --- reading and verifying ---------------------------------------------------------------------


def is_backup_file(path: str | os.PathLike) -> bool:
    """A regular file that starts with the backup magic."""
    try:
        with open(path, "rb") as file:
            return os.path.isfile(path) and file.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


def read_backup(path: Path) -> SealedBackup:
    try:
        if path.stat().st_size > MAX_FILE_SIZE:
            raise IntegrityError()
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror or exc}") from None
    return parse_backup(data)


def open_backup_file(path: Path, *, password: str | None = None, recovery_key: RecoveryKey | None = None,
                     allow_insecure_test_kdf: bool = False) -> OpenedBackup:
    """Open a backup with the master password or the recovery key and verify all of it.

    WrongPassword / WrongRecoveryKey for the wrong secret; one IntegrityError for any alteration.
    """
    return open_sealed_backup(read_backup(path), path, password=password, recovery_key=recovery_key,
                              allow_insecure_test_kdf=allow_insecure_test_kdf)


def open_sealed_backup(sealed: SealedBackup, path: Path, *, password: str | None = None,
                       recovery_key: RecoveryKey | None = None, allow_insecure_test_kdf: bool = False) -> OpenedBackup:
    """``open_backup_file`` for a file already read (so a non-backup is refused before any prompt)."""
    slots = sealed.slots
    if recovery_key is not None:
        keyring = slots.open_with_recovery_key(recovery_key)
    else:
        if password is None:
            raise ValueError("a password or a recovery key is needed")
        # the floor is checked before anything is derived: a file cannot make us run a weak KDF
        slots.kdf.check_strength(allow_insecure_test_kdf=allow_insecure_test_kdf)
        keyring = slots.open_with_kek(slots.password_kek(password))
    contents = open_backup(sealed, keyring)
    return OpenedBackup(path, sealed.version, contents, verify_backup(contents, keyring), keyring)


# --- restoring -----------------------------------------------------------------------------------


def ensure_restorable(home: Home) -> None:
    """Refuse (changing nothing) a home that already holds a vault."""
    if home_holds_vault(home):
        raise AlreadyInitialized(
            f"{home.path} already holds a vault: restore into a new home (--home DIR)"
        )


@dataclass(frozen=True)
class Restored:
    home: Path
    vault_id: bytes
    device_id: str
    backup_device_id: str
    items: int
    revisions: int

    def to_json(self) -> dict:
        return {"home": str(self.home), "vault_id": self.vault_id.hex(), "device_id": self.device_id,
                "backup_device_id": self.backup_device_id, "items": self.items, "revisions": self.revisions}


def restore_home(home: Home, opened: OpenedBackup, *, allow_insecure_test_kdf: bool = False) -> Restored:
    """Build a new device's home from a verified backup, all at once or not at all.

    The device gets fresh keys; its anchors are itself and the backing-up device, so every roster
    entry and revision is admitted exactly as that device admitted it, through the vault's normal
    verified path (``Vault.join`` as if paired with the backing-up device, then
    ``Vault.receive_records``), in one transaction. Its signing key is then sealed under the
    backup's keyring, so rejoining by pairing needs it unlocked.
    """
    ensure_restorable(home)
    contents = opened.contents
    if home.identity_dir.exists() and contents.names(load_or_create_keys(home).device_id):
        # reusing a device id that wrote revisions would reuse its counters: refuse
        raise InvalidInput(f"the device identity in {home.path} already appears in this backup: "
                           "restore into a new, empty home")
    profile = load_profile(home)
    with Vault.open(home, allow_insecure_test_kdf=allow_insecure_test_kdf) as vault:
        if vault.initialized:
            raise AlreadyInitialized(f"{home.path} already holds a vault: restore into a new home (--home DIR)")
        with vault.transaction():
            vault.join(opened.header, contents.roster, contents.device, profile.name, profile.os_description)
            vault.receive_records(None, (), contents.revisions)
        # it holds the vault and its keyring now: from here on its signing key is sealed
        secure_signing_key(home, vault.device, opened.keyring)
        counts = vault.counts()
        vault.audit("backup.restored", device_id=str(contents.device_id), count=counts["revisions"])
        return Restored(home.path, vault.vault_id, str(vault.device.device_id), str(contents.device_id),
                        counts["items"], counts["revisions"])
