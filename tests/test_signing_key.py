"""The signing key is sealed under the vault's keys, on real homes (SQLite files, key files): a copy
of a home without the password signs nothing another member accepts, the key opens at unlock and
is dropped at lock, a device joining keeps it in clear only until its first unlock, an old home is
migrated at its next unlock, and the audit log keeps verifying across all of it."""

import dataclasses
import shutil
import stat

import pytest

from helpers import PASSWORD, make_old_home, run_cli, sync_pair
from vaultpeer.service import bundle_files as bundles
from vaultpeer.service.backup_files import create_backup, open_backup_file, restore_home
from vaultpeer.core.audit import verify_chain
from vaultpeer.core.bundle import JoinRequest
from vaultpeer.core.errors import IntegrityError, SigningKeyLocked, VaultLocked, WrongPassword
from vaultpeer.core.identity import DeviceKeys
from vaultpeer.core.item import ItemContent, ItemId
from vaultpeer.core.kdf import insecure_test_parameters
from vaultpeer.core.keys import Keyring
from vaultpeer.core.revision import seal_revision
from vaultpeer.core.roster import revoke, vouch
from vaultpeer.core.signing_seal import sealed_epoch
from vaultpeer.service.device import (
    AUDIT_KEY_FILE,
    IN_THE_CLEAR,
    NOISE_KEY_FILE,
    SEALED,
    SEALED_SIGNING_KEY_FILE,
    SIGNING_KEY_FILE,
    SIGNING_PUBLIC_FILE,
    DeviceKeyFileError,
    signing_key_state,
)
from vaultpeer.service.home import Home
from vaultpeer.service.vault import Vault


def open_home(path, password: str | None = None) -> Vault:
    vault = Vault.open(Home(path), allow_insecure_test_kdf=True)
    if password is not None:
        vault.unlock(password)
    return vault


def files_holding(root, secret: bytes) -> list[str]:
    """Every file under ``root`` (database, WAL, key files...) whose bytes contain ``secret``."""
    return [str(p) for p in sorted(root.rglob("*")) if p.is_file() and secret in p.read_bytes()]


def pair(member: Vault, device: Vault, name: str = "device") -> None:
    """What `vaultpeer pair` does once both people confirmed the code (without the network)."""
    entry = member.enroll(device.device.public, name, "Test OS")
    device.join(member.header, [*member.outgoing_roster(), entry], member.device.public, name, "Test OS")
    member.receive_records(None, device.outgoing_roster(), ())


@pytest.fixture
def laptop(tmp_path):
    with open_home(tmp_path / "laptop") as vault:
        vault.recovery_key = vault.init(PASSWORD, insecure_test_parameters(), "laptop", "Test OS")
        yield vault


def test_after_init_the_home_holds_no_clear_signing_seed_only_the_sealed_form(laptop, tmp_path):
    seed = laptop.device.signing_seed
    assert laptop.device.can_sign and files_holding(tmp_path / "laptop", seed) == []
    identity = laptop.home.identity_dir
    assert sorted(p.name for p in identity.iterdir()) == sorted(
        [NOISE_KEY_FILE, SEALED_SIGNING_KEY_FILE, SIGNING_PUBLIC_FILE, AUDIT_KEY_FILE])
    assert (identity / SIGNING_PUBLIC_FILE).read_bytes() == laptop.device.public.signing_public
    assert sealed_epoch((identity / SEALED_SIGNING_KEY_FILE).read_bytes()) == 0
    for path in identity.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert signing_key_state(laptop.home) == SEALED
    laptop.add("Mail", {"password": "x"})
    assert files_holding(tmp_path / "laptop", seed) == []  # nor anywhere after use


def test_the_full_keys_exist_only_while_unlocked(laptop, tmp_path):
    device_id = laptop.device.device_id
    laptop.lock()
    assert not laptop.device.can_sign and laptop.device.device_id == device_id
    with pytest.raises(SigningKeyLocked):
        laptop.device.sign(b"anything")
    laptop.unlock(PASSWORD)
    assert laptop.device.can_sign
    laptop.lock()
    laptop.unlock_with_recovery_key(laptop.recovery_key)
    assert laptop.device.can_sign
    laptop.close()
    with open_home(tmp_path / "laptop") as again:  # a new process: public keys only, until unlocked
        assert not again.device.can_sign and again.device.device_id == device_id
        again.unlock(PASSWORD)
        assert again.device.can_sign and again.device.device_id == device_id


def test_a_copied_home_signs_nothing_that_another_member_accepts(laptop, tmp_path):
    """The thief copies every file of the laptop's home, but has no password."""
    with open_home(tmp_path / "desktop") as desktop:
        pair(laptop, desktop, "desktop")
        desktop.unlock(PASSWORD)
        laptop.add("Mail", {"password": "before the theft"})
        sync_pair(laptop, desktop)
        seed, laptop_id = laptop.device.signing_seed, laptop.device.device_id
        stranger = DeviceKeys.generate()
        laptop.close()
        shutil.copytree(tmp_path / "laptop", tmp_path / "copy")
        assert files_holding(tmp_path / "copy", seed) == []

        with open_home(tmp_path / "copy") as thief:
            assert thief.device.device_id == laptop_id and not thief.device.can_sign
            before = (thief.counts(), thief._store.roster_entries(), thief._store.header_record())
            member = thief.roster.members[desktop.device.device_id]
            attempts = {
                "add": lambda: thief.add("Forged", {"password": "x"}),
                "enroll": lambda: thief.enroll(stranger.public, "stranger", "Test OS"),
                "password change": lambda: thief.change_password("the thief's password"),
                "revoke": lambda: thief.revoke_prepared(desktop.device.device_id, thief.header.kdf, bytes(32)),
                "header": lambda: dataclasses.replace(thief.header, serial=thief.header.serial + 1).signed_by(
                    thief.device),
                "roster entry": lambda: vouch(thief.vault_id, thief.device, stranger.public, "stranger", "Test OS"),
                "revocation": lambda: revoke(thief.vault_id, thief.device, member, 0, 2),
                "revision": lambda: seal_revision(vault_id=thief.vault_id, keyring=Keyring.new(), author=thief.device,
                                                  item_id=ItemId.generate(), seq=99, parents=(),
                                                  content=ItemContent.build("Forged", {})),
                "bundle": lambda: bundles.export_bundle(thief),
                "admit": lambda: bundles.admit(thief, JoinRequest.make(stranger, "stranger", "Test OS")),
                "join request": lambda: JoinRequest.make(thief.device, "laptop", "Test OS"),
            }
            for what, attempt in attempts.items():
                with pytest.raises(VaultLocked) as raised:
                    attempt()
                assert "unlock" in str(raised.value), what
            with pytest.raises(SigningKeyLocked, match="a bundle is signed with this device's key"):
                bundles.export_bundle(thief)
            with pytest.raises(SigningKeyLocked, match="admitting a device"):
                bundles.admit(thief, JoinRequest.make(stranger, "stranger", "Test OS"))
            assert (thief.counts(), thief._store.roster_entries(), thief._store.header_record()) == before
            knowledge, serial = desktop.knowledge(), desktop.header.serial
            sync_pair(thief, desktop)  # what it can still do: hand over what the laptop had written
            assert desktop.knowledge() == knowledge and desktop.header.serial == serial
            assert stranger.device_id not in desktop.roster.members

        # the control: the real laptop, unlocked, writes all of these and the desktop accepts them
        with open_home(tmp_path / "laptop", PASSWORD) as real:
            real.add("Written by the real laptop", {"password": "y"})
            real.enroll(stranger.public, "stranger", "Test OS")
            real.change_password("a new password")
            first, second = sync_pair(real, desktop)
            assert not first.failed and not second.failed
            assert desktop.locked  # a header its derived key does not open: it asks for the password
            desktop.unlock("a new password")
            assert "Written by the real laptop" in [v.title for v in desktop.list_items()]
            assert stranger.device_id in desktop.roster.members
            assert desktop.header.serial == serial + 1 and desktop.header.author == laptop_id
            data, _ = bundles.export_bundle(real, "desktop")
            assert bundles.import_bundle(desktop, data)["exporter"] == str(laptop_id)


def test_a_joining_device_keeps_its_key_in_clear_until_its_first_unlock(laptop, tmp_path):
    with open_home(tmp_path / "desktop") as desktop:
        assert signing_key_state(desktop.home) == IN_THE_CLEAR and desktop.device.can_sign
        request = bundles.join_request(desktop)  # a device with no vault signs its join request
        assert JoinRequest.parse(request).device_id == desktop.device.device_id
        pair(laptop, desktop, "desktop")  # joining signs its roster entries with the clear key
        assert desktop.initialized and desktop.locked and signing_key_state(desktop.home) == IN_THE_CLEAR
        seed = desktop.device.signing_seed
        assert files_holding(tmp_path / "desktop", seed) == [str(desktop.home.identity_dir / SIGNING_KEY_FILE)]
        desktop.lock()
        assert desktop.device.can_sign  # still in clear on disk: locking hides nothing
        desktop.unlock(PASSWORD)
        assert signing_key_state(desktop.home) == SEALED and files_holding(tmp_path / "desktop", seed) == []
        desktop.lock()
        assert not desktop.device.can_sign


def test_a_password_change_proven_while_locked_signs_the_header_and_seals_a_clear_key(laptop, tmp_path):
    with open_home(tmp_path / "desktop") as desktop:
        pair(laptop, desktop, "desktop")
        assert signing_key_state(desktop.home) == IN_THE_CLEAR
        header = desktop.header
        keyring = desktop.open_for_password_change(header, kek=header.password_kek(PASSWORD))
        desktop.change_password("a new password", keyring=keyring)
        assert desktop.locked and signing_key_state(desktop.home) == SEALED and not desktop.device.can_sign
        assert desktop.header.author == desktop.device.device_id
        sync_pair(desktop, laptop)
        assert laptop.header == desktop.header  # the other member accepts the header
        laptop.lock()  # and the laptop, locked with a sealed key, can do the same
        header = laptop.header
        keyring = laptop.open_for_password_change(header, kek=header.password_kek("a new password"))
        laptop.change_password("a third password", keyring=keyring)
        assert laptop.locked and not laptop.device.can_sign and laptop.header.serial == header.serial + 1
        laptop.unlock("a third password")


def test_the_seal_is_renewed_under_the_newest_epoch_at_unlock(laptop, tmp_path):
    sealed = laptop.home.identity_dir / SEALED_SIGNING_KEY_FILE
    gone = DeviceKeys.generate()
    laptop.enroll(gone.public, "gone", "Test OS")
    laptop.revoke(gone.device_id, PASSWORD)  # a new epoch
    assert laptop.header.key_epoch == 1 and sealed_epoch(sealed.read_bytes()) == 0
    laptop.lock()
    laptop.unlock(PASSWORD)
    assert sealed_epoch(sealed.read_bytes()) == 1
    laptop.lock()
    laptop.unlock(PASSWORD)
    assert laptop.device.can_sign


def test_a_tampered_sealed_key_is_one_integrity_error_and_a_missing_file_is_named(laptop, tmp_path):
    identity = laptop.home.identity_dir
    sealed = identity / SEALED_SIGNING_KEY_FILE
    good = sealed.read_bytes()
    laptop.lock()
    damaged = bytearray(good)
    damaged[-3] ^= 0x10
    sealed.write_bytes(bytes(damaged))
    with pytest.raises(IntegrityError) as raised:
        laptop.unlock(PASSWORD)
    assert str(raised.value) == str(IntegrityError()) and laptop.locked and not laptop.device.can_sign
    with open_home(tmp_path / "other") as other:  # another device's sealed key does not open here
        other.init(PASSWORD, insecure_test_parameters())
        sealed.write_bytes((other.home.identity_dir / SEALED_SIGNING_KEY_FILE).read_bytes())
    with pytest.raises(IntegrityError):
        laptop.unlock(PASSWORD)
    sealed.unlink()
    with pytest.raises(DeviceKeyFileError, match=f"key file {sealed} is missing"):
        laptop.unlock(PASSWORD)
    assert laptop.locked
    sealed.write_bytes(good)
    laptop.unlock(PASSWORD)
    assert laptop.device.can_sign
    laptop.close()
    (identity / SIGNING_PUBLIC_FILE).unlink()
    with pytest.raises(DeviceKeyFileError, match=SIGNING_PUBLIC_FILE):
        open_home(tmp_path / "laptop")
    result = run_cli(tmp_path / "laptop", "status")
    assert result.returncode != 0 and SIGNING_PUBLIC_FILE in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 2  # the test-KDF warning, then one line


def test_a_locked_device_still_writes_its_audit_log_with_its_audit_key(laptop):
    laptop.lock()
    with pytest.raises(WrongPassword):
        laptop.unlock("not the password")
    laptop.audit_rejection("not_member", peer="192.0.2.1")
    rows = laptop.audit_trail.rows()
    assert [row.event for row in rows] == ["vault.created", "unlock.failed", "peer.rejected"]
    assert verify_chain(rows, laptop.audit_public_keys).ok
    assert not verify_chain(rows, [laptop.device.public.signing_public]).ok  # signed by the audit key


def test_an_old_home_is_sealed_at_its_next_unlock_and_its_log_verifies_across(tmp_path):
    home, seed = make_old_home(tmp_path / "old")
    assert files_holding(home.path, seed) == [str(home.identity_dir / SIGNING_KEY_FILE)]
    status = run_cli(home.path, "status", "--json")
    assert status.returncode == 0 and '"signing_key": "in the clear"' in status.stdout
    shown = run_cli(home.path, "status")
    assert "unlock once to seal it" in shown.stdout
    assert run_cli(home.path, "log", "--verify").returncode == 0
    listed = run_cli(home.path, "ls", "--password-stdin", stdin=PASSWORD + "\n")  # an unlock through the CLI
    assert listed.returncode == 0 and "Old item" in listed.stdout
    assert files_holding(home.path, seed) == [] and signing_key_state(home) == SEALED
    assert not (home.identity_dir / SIGNING_KEY_FILE).exists()
    status = run_cli(home.path, "status", "--json")
    assert '"signing_key": "sealed"' in status.stdout and "unlock once" not in run_cli(home.path, "status").stdout
    verified = run_cli(home.path, "log", "--verify")
    assert verified.returncode == 0 and "chain intact: 3 entries" in verified.stdout  # 2 old, the unlock new
    with open_home(home.path) as again:
        assert not again.device.can_sign
        only_identity = verify_chain(again.audit_trail.rows(), [again.device.public.signing_public])
        assert (only_identity.count, only_identity.first_bad) == (2, 3)  # the old entries, under the old key
        again.unlock(PASSWORD)
        assert again.device.signing_seed == seed  # the same identity, now sealed
        again.add("New item", {"password": "new"})
        assert verify_chain(again.audit_trail.rows(), again.audit_public_keys).ok


def test_signing_waits_for_unlock_where_it_can_and_runs_there(tmp_path):
    """A locked device that learns of a revocation cutting off what it holds would vouch for it at
    once; with its key sealed, it does so at its next unlock."""
    with open_home(tmp_path / "a") as a, open_home(tmp_path / "b") as b, open_home(tmp_path / "c") as c:
        a.init(PASSWORD, insecure_test_parameters(), "a", "Test OS")
        pair(a, b, "b")
        pair(a, c, "c")
        b.unlock(PASSWORD)
        c.unlock(PASSWORD)
        sync_pair(a, b)
        sync_pair(a, c)
        c.add("Only c and b hold this", {"password": "c"})
        sync_pair(c, b)
        b.lock()
        a.revoke(c.device.device_id, PASSWORD)  # a never saw c's item: the cutoff is below what b holds
        sync_pair(a, b)
        own = (c.device.device_id, b.device.device_id)
        assert own not in b.roster.entries  # locked: nothing signed
        b.unlock(PASSWORD)
        assert b.roster.entries[own].revoked_after == b.knowledge().get(c.device.device_id)


def test_a_restored_home_holds_its_key_sealed_and_is_unlocked_to_rejoin(laptop, tmp_path):
    opened = open_backup_file(create_backup(laptop, tmp_path / "backups").path, password=PASSWORD,
                              allow_insecure_test_kdf=True)
    restored = restore_home(Home(tmp_path / "restored"), opened, allow_insecure_test_kdf=True)
    home = Home(restored.home)
    assert signing_key_state(home) == SEALED and not (home.identity_dir / SIGNING_KEY_FILE).exists()
    with open_home(home.path) as vault:
        assert not vault.device.can_sign
        vault.unlock(PASSWORD)  # sealed under the backup's keyring, which the vault's header opens
        assert vault.device.can_sign and str(vault.device.device_id) == restored.device_id
        assert files_holding(home.path, vault.device.signing_seed) == []
