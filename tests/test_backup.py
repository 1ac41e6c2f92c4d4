"""Backups of real SQLite homes: write, rotate, verify, restore into a new home, rejoin by pairing."""

import hashlib
import os
import stat
import time

import pytest

from helpers import PASSWORD, sync_pair
from vaultpeer.service.backup_files import (
    BackupFailed,
    create_backup,
    ensure_restorable,
    is_backup_file,
    open_backup_file,
    restore_home,
)
from vaultpeer.core.errors import (
    AlreadyInitialized,
    IntegrityError,
    InvalidInput,
    SigningKeyLocked,
    VaultLocked,
    WrongPassword,
    WrongRecoveryKey,
)
from vaultpeer.core.keys import RecoveryKey
from vaultpeer.core.kdf import insecure_test_parameters
from vaultpeer.service.home import Home
from vaultpeer.service.vault import Vault
from vaultpeer.service.views import conflict_json, history_json, item_json, listing_json, member_names

CANARIES = {
    "title": "CanaryTitle-bk-5be21d",
    "field name": "canaryfieldname-bk-c0ffee",
    "field value": "canary.user-bk-91d2@example.org",
    "password": "CANARY-PASSWORD-bk-7f3a9c",
}


def open_home(path, password: str | None = PASSWORD) -> Vault:
    vault = Vault.open(Home(path), allow_insecure_test_kdf=True)
    if password is not None:
        vault.unlock(password)
    return vault


def pair(member: Vault, device: Vault, name: str = "device") -> None:
    """What `vaultpeer pair` does once both people confirmed the code (without the network)."""
    entry = member.enroll(device.device.public, name, "Test OS")
    device.join(member.header, [*member.outgoing_roster(), entry], member.device.public, name, "Test OS")
    member.receive_records(None, device.outgoing_roster(), ())


def everything(vault: Vault) -> dict:
    """Every item (deleted ones too) with its whole history, as the CLI's --json shows them."""
    views = vault.list_items() + vault.list_items(deleted=True)
    names = member_names(vault.roster)
    return {
        "items": sorted((listing_json(v) for v in vault.list_items()), key=lambda e: e["id"]),
        "deleted": sorted((listing_json(v) for v in vault.list_items(deleted=True)), key=lambda e: e["id"]),
        "details": {str(v.id): item_json(v, names) for v in views},
        "history": {str(v.id): [history_json(e, names) for e in vault.history(str(v.id))] for v in views},
        "conflicts": [conflict_json(v) for v in vault.conflicts()],
        "heads": vault._store.head_ids(),
    }


def fingerprint(path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.fixture
def original(vault, tmp_path):
    """A vault with history from two devices: edits, a merge, a deletion, an undelete and an open
    conflict (a device B paired with A wrote some of it)."""
    other = open_home(tmp_path / "device-b", password=None)
    pair(vault, other, "desktop")
    other.unlock(PASSWORD)
    vault.add(CANARIES["title"], {"username": CANARIES["field value"], "password": CANARIES["password"],
                                  CANARIES["field name"]: "x"})
    vault.add("Bank", {"username": "alice", "password": "one"})
    vault.edit("Bank", {"password": "two"})
    vault.add("Old", {"notes": "gone"})
    vault.delete("Old")
    vault.add("Back", {"notes": "returns"})
    vault.delete("Back")
    vault.restore("Back")
    sync_pair(vault, other)
    vault.edit("Bank", {"password": "from A"})
    other.edit("Bank", {"password": "from B"})  # the same field: an open conflict
    other.edit(CANARIES["title"], {"url": "https://b"})
    vault.edit(CANARIES["title"], {"notes": "a"})  # different fields: merged
    sync_pair(vault, other)
    assert [c["title"] for c in conflict_json_list(vault)] == ["Bank"]
    other.close()
    return vault


def conflict_json_list(vault):
    return [conflict_json(v) for v in vault.conflicts()]


def test_a_restored_home_has_identical_items_and_history(original, tmp_path):
    written = create_backup(original, tmp_path / "backups")
    assert written.revisions == original.counts()["revisions"] and written.items == 4
    opened = open_backup_file(written.path, password=PASSWORD, allow_insecure_test_kdf=True)
    restored_home = Home(tmp_path / "restored")
    result = restore_home(restored_home, opened, allow_insecure_test_kdf=True)
    assert (result.items, result.revisions) == (4, written.revisions)
    with open_home(restored_home.path, password=None) as restored:
        assert restored.locked  # readable after unlock with the vault's password
        restored.unlock(PASSWORD)
        assert everything(restored) == everything(original)
        assert sorted(r.to_bytes() for r in restored.held_records().revisions) == \
            sorted(r.to_bytes() for r in original.held_records().revisions)
        # a new device, trusting the one that made the backup, and vouched for by nobody yet
        assert restored.device.device_id != original.device.device_id
        assert {a.device_id for a in restored.held_records().anchors} == {restored.device.device_id,
                                                                    original.device.device_id}
        assert set(restored.roster.members) == set(original.roster.members) | {restored.device.device_id}
        assert restored.awaiting_rejoin and not original.awaiting_rejoin
        assert restored.check().ok


def test_a_restored_vault_used_alone_can_add_edit_and_resolve(original, tmp_path):
    opened = open_backup_file(create_backup(original, tmp_path / "b").path, password=PASSWORD,
                              allow_insecure_test_kdf=True)
    restore_home(Home(tmp_path / "alone"), opened, allow_insecure_test_kdf=True)
    with open_home(tmp_path / "alone") as alone:
        added = alone.add("After the disaster", {"password": "new"})
        alone.edit(CANARIES["title"], {"password": "rotated"})
        alone.resolve_conflict("Bank", set_fields={"password": "settled"})
        alone.restore("Old")
        assert added.revision.author == alone.device.device_id and added.revision.seq == 1
    with open_home(tmp_path / "alone") as again:
        assert again.get(CANARIES["title"]).content.field_map()["password"] == "rotated"
        assert again.get("Bank").content.field_map()["password"] == "settled"
        assert {v.title for v in again.list_items()} == {CANARIES["title"], "Bank", "Back", "Old",
                                                         "After the disaster"}
        assert again.check().ok


def test_restore_refuses_a_home_that_holds_a_vault_and_changes_nothing(original, home, tmp_path):
    opened = open_backup_file(create_backup(original, tmp_path / "b").path, password=PASSWORD,
                              allow_insecure_test_kdf=True)
    other = Home(tmp_path / "other-vault")
    with Vault.open(other, allow_insecure_test_kdf=True) as vault:
        vault.init(PASSWORD, insecure_test_parameters())
        vault.add("Mine", {"password": "keep me"})
    for target in (home, other):  # the backed-up home itself, and a home of another vault
        before = fingerprint(target.path)
        with pytest.raises(AlreadyInitialized, match="already holds a vault"):
            ensure_restorable(target)
        with pytest.raises(AlreadyInitialized, match="already holds a vault"):
            restore_home(target, opened, allow_insecure_test_kdf=True)
        assert fingerprint(target.path) == before
    with open_home(other.path) as vault:
        assert [v.title for v in vault.list_items()] == ["Mine"]


def test_restore_refuses_a_device_identity_the_backup_already_names(original, home, tmp_path):
    """Restoring into a copy of the backing-up device's identity would reuse its revision counters."""
    opened = open_backup_file(create_backup(original, tmp_path / "b").path, password=PASSWORD,
                              allow_insecure_test_kdf=True)
    target = Home(tmp_path / "same-identity")
    target.ensure()
    os.mkdir(target.identity_dir, 0o700)
    for key_file in home.identity_dir.iterdir():
        (target.identity_dir / key_file.name).write_bytes(key_file.read_bytes())
    with pytest.raises(InvalidInput, match="new, empty home"):
        restore_home(target, opened, allow_insecure_test_kdf=True)
    assert not target.database.exists()


def test_verify_with_the_password_and_with_the_recovery_key(original, tmp_path):
    path = create_backup(original, tmp_path / "b").path
    by_password = open_backup_file(path, password=PASSWORD, allow_insecure_test_kdf=True)
    by_recovery = open_backup_file(path, recovery_key=RecoveryKey.parse(original.recovery_key.reveal()),
                                   allow_insecure_test_kdf=True)
    assert by_password.report == by_recovery.report
    report = by_password.report
    assert (report.items, report.deleted_items, report.revisions, report.members) == \
        (4, 1, original.counts()["revisions"], 2)
    assert report.tombstones == 2 and report.device_id == original.device.device_id
    with pytest.raises(WrongPassword):
        open_backup_file(path, password="not the password", allow_insecure_test_kdf=True)
    with pytest.raises(WrongRecoveryKey):
        open_backup_file(path, recovery_key=RecoveryKey.generate(), allow_insecure_test_kdf=True)
    from vaultpeer.core.errors import WeakKdfParameters

    with pytest.raises(WeakKdfParameters):  # a test-KDF vault's backup needs the switch too
        open_backup_file(path, password=PASSWORD)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x40
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError):
        open_backup_file(path, password=PASSWORD, allow_insecure_test_kdf=True)


def test_files_are_named_private_complete_and_rotated_keeping_the_newest(vault, tmp_path):
    vault.add("Email", {"password": "x"})
    directory = tmp_path / "rotating"
    directory.mkdir()
    strangers = ["notes.txt", "vaultpeer-backup-mine.vpbak", "vaultpeer-backup-20200101T000000Z.vpbak.old"]
    for name in strangers:
        (directory / name).write_text("not ours")
    start = time.mktime((2026, 11, 23, 12, 0, 0, 0, 0, 0)) - time.timezone
    written = [create_backup(vault, directory, keep=3, now=start + n) for n in range(5)]
    assert written[0].path.name == "vaultpeer-backup-20261123T120000Z.vpbak"
    assert [w.removed for w in written[:3]] == [(), (), ()]
    assert written[3].removed == (written[0].path,) and written[4].removed == (written[1].path,)
    # two in the same second get distinct names, and rotation still knows which is newer
    same = [create_backup(vault, directory, keep=3, now=start + 4) for _ in range(2)]
    assert same[0].path.name == "vaultpeer-backup-20261123T120004Z-1.vpbak"
    assert same[1].path.name == "vaultpeer-backup-20261123T120004Z-2.vpbak"
    assert same[1].removed == (written[3].path,)
    names = sorted(p.name for p in directory.iterdir())
    assert names == sorted(strangers + [written[4].path.name, same[0].path.name, same[1].path.name])
    for path in (written[4].path, same[0].path, same[1].path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600 and is_backup_file(path)
        open_backup_file(path, password=PASSWORD, allow_insecure_test_kdf=True)
    with pytest.raises(InvalidInput):
        create_backup(vault, directory, keep=0)
    missing = create_backup(vault, tmp_path / "new" / "dir")  # created, owner-only
    assert stat.S_IMODE(missing.path.parent.stat().st_mode) == 0o700


def test_the_backup_file_holds_no_plaintext_and_no_private_key(original, home, tmp_path):
    data = create_backup(original, tmp_path / "b").path.read_bytes()
    secrets = {**CANARIES, "master password": PASSWORD, "recovery key": original.recovery_key.reveal(),
               "device name": "desktop"}
    for what, secret in secrets.items():
        for form in {secret, secret.replace("-", "")}:
            assert form.encode() not in data, what
            assert form.encode("utf-16-le") not in data, what
    for key_file in home.identity_dir.iterdir():
        assert key_file.read_bytes() not in data, key_file.name
    # the header travels sealed: its discovery secret (the key of the private mDNS names) is not in clear
    assert original.header.discovery_secret not in data and original.device.device_id.raw not in data


def test_a_locked_vault_makes_no_backup_and_an_unwritable_dir_is_named(vault, tmp_path):
    vault.lock()
    with pytest.raises(VaultLocked):
        create_backup(vault, tmp_path / "b")
    assert not (tmp_path / "b").exists()
    vault.unlock(PASSWORD)
    blocked = tmp_path / "a-file"
    blocked.write_text("x")
    with pytest.raises(BackupFailed, match="cannot write a backup"):
        create_backup(vault, blocked)


def test_a_restored_device_rejoins_by_pairing_keeping_every_revision(original, tmp_path):
    """Pairing the restored device with a member: nothing duplicated, nothing lost, and the next sync
    moves only what each side lacks."""
    path = create_backup(original, tmp_path / "b").path
    restore_home(Home(tmp_path / "restored"), open_backup_file(path, password=PASSWORD, allow_insecure_test_kdf=True),
                 allow_insecure_test_kdf=True)
    after_backup = original.add("Added on A after the backup", {"password": "a"})
    with open_home(tmp_path / "restored") as restored:
        restored.add("Added on the restored device", {"password": "r"})
        held = {r.revision_id for r in restored.held_records().revisions}
        assert restored.awaiting_rejoin
        pair(original, restored, "restored")
        assert not restored.awaiting_rejoin
        assert {r.revision_id for r in restored.held_records().revisions} == held  # kept everything
        assert restored.device.device_id in original.roster.members
        first, second = sync_pair(restored, original)
        assert first.stats.revisions_sent == 1 and second.stats.revisions_sent == 1  # only what was missing
        assert first.converged and second.converged
        assert everything(restored) == everything(original)
        titles = [v.title for v in original.list_items()]
        assert len(titles) == len(set(titles)) == 5 and after_backup.title in titles
        assert "Added on the restored device" in titles
        again, back = sync_pair(restored, original)
        assert again.stats.revisions_sent == back.stats.revisions_sent == 0


def test_a_restored_device_cannot_join_another_vault(original, tmp_path):
    path = create_backup(original, tmp_path / "b").path
    restore_home(Home(tmp_path / "restored"), open_backup_file(path, password=PASSWORD, allow_insecure_test_kdf=True),
                 allow_insecure_test_kdf=True)
    with Vault.open(Home(tmp_path / "stranger"), allow_insecure_test_kdf=True) as stranger, \
            open_home(tmp_path / "restored") as restored:
        stranger.init(PASSWORD, insecure_test_parameters())
        before = (restored._store.anchors(), restored._store.roster_entries(), restored._store.header_record())
        entry = stranger.enroll(restored.device.public, "restored", "Test OS")
        with pytest.raises(AlreadyInitialized, match="another vault"):
            restored.join(stranger.header, [*stranger.outgoing_roster(), entry], stranger.device.public)
        assert (restored._store.anchors(), restored._store.roster_entries(), restored._store.header_record()) == before
        assert restored.awaiting_rejoin


def test_a_newer_header_replaces_the_restored_one_when_rejoining(original, tmp_path):
    """The password changed after the backup: rejoining takes the newer header (new password works)."""
    path = create_backup(original, tmp_path / "b").path
    restore_home(Home(tmp_path / "restored"), open_backup_file(path, password=PASSWORD, allow_insecure_test_kdf=True),
                 allow_insecure_test_kdf=True)
    original.change_password("a brand new password")
    with open_home(tmp_path / "restored", password=None) as restored:
        with pytest.raises(SigningKeyLocked):  # its signing key is sealed since the restore
            pair(original, restored)
        restored.unlock(PASSWORD)  # the password of the backup's time opens the restored header
        pair(original, restored)
        assert restored.header == original.header
        restored.unlock("a brand new password")
        sync_pair(restored, original)
        assert everything(restored) == everything(original)


def test_the_device_that_made_the_backup_may_be_revoked_meanwhile(original, tmp_path):
    """The usual story: the laptop that made the backup dies and is unpaired from the desktop, which
    never saw its last edits. The device restored from the laptop's backup brings them back: it
    vouches for what it holds of the revoked laptop, so the desktop accepts it all."""
    desktop = open_home(tmp_path / "device-b")  # paired with the laptop by the `original` fixture
    sync_pair(original, desktop)
    original.add("Written just before the backup", {"password": "late"})
    path = create_backup(original, tmp_path / "b").path
    desktop.revoke(original.device.device_id, PASSWORD)  # the laptop is gone
    cutoff = desktop.roster.revoked[original.device.device_id]
    assert cutoff < original.knowledge().get(original.device.device_id)
    restore_home(Home(tmp_path / "restored"), open_backup_file(path, password=PASSWORD, allow_insecure_test_kdf=True),
                 allow_insecure_test_kdf=True)
    with open_home(tmp_path / "restored") as restored:
        pair(desktop, restored, "restored")
        first, second = sync_pair(restored, desktop)
        assert not first.failed and not second.failed and first.converged, first.notes + second.notes
        assert desktop.get("Written just before the backup").content.field_map() == {"password": "late"}
        assert desktop.roster.revoked[original.device.device_id] == original.knowledge().get(original.device.device_id)
        assert restored.locked  # the desktop's rotation is wrapped under a fresh salt: unlock again
        restored.unlock(PASSWORD)
        assert everything(restored) == everything(desktop)
        restored.add("New", {})
        sync_pair(restored, desktop)
        assert "New" in [v.title for v in desktop.list_items()]
    desktop.close()
