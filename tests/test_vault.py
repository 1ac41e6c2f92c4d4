import hashlib
import sqlite3
import stat

import pytest

from helpers import PASSWORD
from vaultpeer.core.errors import (
    AlreadyInitialized,
    Ambiguous,
    IntegrityError,
    InvalidInput,
    NotFound,
    VaultLocked,
    WeakKdfParameters,
    WrongPassword,
)
from vaultpeer.core.identity import DeviceKeys
from vaultpeer.core.item import ItemContent, ItemId
from vaultpeer.core.kdf import insecure_test_parameters
from vaultpeer.core.revision import seal_revision
from vaultpeer.service.home import Home
from vaultpeer.service.vault import Vault


def fingerprint(home: Home) -> dict[str, str]:
    """Hashes of every file under the home, to show that nothing changed. The database counts by
    the rows of its tables, except the audit log, which records a failed unlock (say) on purpose
    (tests/test_audit.py shows that exactly that entry is added), and the bookkeeping of how far
    revisions were test-opened (``opened_through``, moved by every unlock)."""
    prints = {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(home.path.rglob("*"))
              if p.is_file() and not p.name.startswith(home.database.name)}
    connection = sqlite3.connect(home.database)
    try:
        tables = [row[0] for row in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name != 'audit' ORDER BY name")]
        for table in tables:
            rows = sorted(row for row in connection.execute(f"SELECT * FROM {table}").fetchall()
                          if not (table == "meta" and row[0] == "opened_through"))
            prints[f"table {table}"] = hashlib.sha256(repr(rows).encode()).hexdigest()
    finally:
        connection.close()
    return prints


def reopen(home: Home, password: str | None = PASSWORD) -> Vault:
    opened = Vault.open(home, allow_insecure_test_kdf=True)
    if password is not None:
        opened.unlock(password)
    return opened


def test_files_and_directories_are_private(vault, home):
    vault.add("Email", {"password": "x"})
    assert stat.S_IMODE(home.path.stat().st_mode) == 0o700
    assert stat.S_IMODE(home.identity_dir.stat().st_mode) == 0o700
    for path in home.path.rglob("*"):
        if path.is_file():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_add_get_edit_delete_restore_history(vault):
    added = vault.add("Email", {"username": "alice", "password": "one"})
    edited = vault.edit("Email", {"password": "two", "url": "https://mail"}, remove=["username"], title="Mail")
    assert edited.title == "Mail" and [f.name for f in edited.fields] == ["password", "url"]
    assert vault.get(str(added.id)[:6]).revision == edited.revision
    vault.delete("Mail")
    assert vault.list_items() == [] and [v.title for v in vault.list_items(deleted=True)] == ["Mail"]
    with pytest.raises(NotFound, match="deleted"):
        vault.get("Mail")
    restored = vault.restore("Mail")
    assert restored.title == "Mail" and not restored.deleted
    history = vault.history("Mail")
    assert [e.deleted for e in history] == [False, False, True, False]
    assert [e.is_head for e in history] == [False, False, False, True]
    assert history[0].fields[1].value == "one"
    back = vault.restore("Mail", str(history[0].revision))
    assert back.title == "Email" and back.fields[1].value == "one"
    assert len(vault.history(str(back.id))) == 5


def test_references_errors(vault):
    vault.add("Same", {})
    vault.add("Same", {})
    with pytest.raises(Ambiguous):
        vault.get("Same")
    with pytest.raises(NotFound):
        vault.get("Nope")
    with pytest.raises(InvalidInput):
        vault.edit(str(vault.list_items()[0].id))  # nothing to change
    with pytest.raises(NotFound):
        vault.restore(str(vault.list_items()[0].id), "ABCDEFG-99")


def test_state_survives_reopening_and_identity_is_stable(vault, home):
    vault.add("Email", {"password": "x"})
    device_id = vault.device.device_id
    vault.close()
    with reopen(home) as again:
        assert again.device.device_id == device_id
        assert [v.title for v in again.list_items()] == ["Email"]


def test_handshake_stamps_never_repeat_and_a_replay_stays_refused_across_restarts(vault, home):
    """Issue 15: the stamps of this device's member handshakes only go up, even with the clock set
    back and across a restart; a stamp accepted from a member is refused again after a restart."""
    from vaultpeer.core.identity import DeviceKeys
    from vaultpeer.core.transport import STAMP_RESERVE

    first = vault.next_link_stamp(10**18)
    assert vault.next_link_stamp(10**18) == first + 1  # the same clock reading: still above
    assert vault.next_link_stamp(5) == first + 2  # the clock set back
    member = DeviceKeys.generate().public.device_id
    assert vault.admit_link_stamp(member, 500) and not vault.admit_link_stamp(member, 500)
    assert not vault.admit_link_stamp(member, 499) and vault.admit_link_stamp(member, 501)
    vault.close()
    with reopen(home, None) as again:  # the daemon's process, locked: stamps need no password
        assert again.next_link_stamp(5) >= first + STAMP_RESERVE  # above the reservation it stored
        assert not again.admit_link_stamp(member, 501) and again.admit_link_stamp(member, 502)


def test_locked_vault_refuses_reads_and_writes(vault, home):
    vault.add("Email", {})
    vault.lock()
    with pytest.raises(VaultLocked):
        vault.list_items()
    with pytest.raises(VaultLocked):
        vault.add("Other", {})


def test_init_twice_is_refused(vault):
    with pytest.raises(AlreadyInitialized):
        vault.init("another password", insecure_test_parameters())


def test_wrong_password_is_named_and_changes_nothing(vault, home):
    vault.add("Email", {"password": "x"})
    vault.close()
    before = fingerprint(home)
    with Vault.open(home, allow_insecure_test_kdf=True) as again:
        with pytest.raises(WrongPassword, match="wrong password"):
            again.unlock("not the password")
        assert again.locked
    assert fingerprint(home) == before


def test_password_change_keeps_every_item_and_revision_readable(vault, home):
    for n in range(5):
        vault.add(f"Item {n}", {"password": f"secret {n}"})
        vault.edit(f"Item {n}", {"password": f"newer {n}"})
    vault.delete("Item 0")
    recovery_key = vault.recovery_key
    revision_bytes = {r.revision_id: r.to_bytes() for r in vault.held_records().revisions}
    vault.change_password("a brand new password")
    vault.close()

    with Vault.open(home, allow_insecure_test_kdf=True) as again:
        with pytest.raises(WrongPassword):
            again.unlock(PASSWORD)
        again.unlock("a brand new password")
        # no revision was re-encrypted: the store holds the very same bytes
        assert {r.revision_id: r.to_bytes() for r in again.held_records().revisions} == revision_bytes
        assert again.check().ok and again.check().revisions_checked == 11
        assert [v.fields[0].value for v in again.list_items()] == [f"newer {n}" for n in range(1, 5)]
        assert [e.fields[0].value for e in again.history("Item 3")] == ["secret 3", "newer 3"]

    with Vault.open(home, allow_insecure_test_kdf=True) as again:
        again.unlock_with_recovery_key(recovery_key)
        assert len(again.list_items()) == 4
        again.change_password("set after recovery")
    with reopen(home, "set after recovery") as again:
        assert len(again.list_items(deleted=True)) == 1


def test_a_password_changed_by_another_process_is_never_wrapped_with_the_stale_key(vault, home):
    """A daemon unlocked with the old password must not rotate the keyring under the old password's
    key after another process changed it: that header would open with neither password."""
    vault.add("Item", {"password": "x"})
    other = DeviceKeys.generate()
    vault.enroll(other.public, "other", "Test OS")
    with reopen(home) as second_process:
        second_process.change_password("changed elsewhere")
    with pytest.raises(WrongPassword):
        vault.revoke(other.device_id, PASSWORD)
    assert other.device_id in vault.roster.members
    with reopen(home, "changed elsewhere") as again:
        assert again.get("Item").fields[0].value == "x"
        assert other.device_id in again.roster.members  # nothing was half-done


def _tamper(home: Home, sql: str, *parameters: object) -> None:
    """An attacker with write access to the disk, editing the database behind vaultpeer's back."""
    connection = sqlite3.connect(home.database)
    connection.execute(sql, parameters)
    connection.commit()
    connection.close()


@pytest.mark.parametrize("sql", [
    "UPDATE revisions SET ciphertext = CAST(zeroblob(length(ciphertext)) AS BLOB)",
    "UPDATE revisions SET signature = CAST(zeroblob(64) AS BLOB)",
    "UPDATE revisions SET nonce = CAST(zeroblob(12) AS BLOB)",
])
def test_tampered_revision_is_one_opaque_integrity_error(vault, home, sql):
    vault.add("Email", {"password": "x"})
    vault.close()
    _tamper(home, sql)
    before = fingerprint(home)
    with reopen(home) as again:
        with pytest.raises(IntegrityError) as caught:
            again.get("Email")
        assert str(caught.value) == str(IntegrityError())
        report = again.check()
        assert not report.ok and (report.bad_signatures or report.undecryptable)
        with pytest.raises(IntegrityError):
            again.edit("Email", {"password": "y"})
    assert fingerprint(home) == before


@pytest.mark.parametrize("sql", [
    "UPDATE revisions SET ciphertext = CAST(zeroblob(length(ciphertext)) AS BLOB)",
    "UPDATE revisions SET signature = CAST(zeroblob(64) AS BLOB)",
    "UPDATE revisions SET nonce = CAST(zeroblob(12) AS BLOB)",
])
def test_a_revision_checked_before_is_checked_again_once_the_disk_changed_under_it(vault, home, sql):
    """A signature checked once is not checked again on the next read of the same record
    (Items._check), but only of every byte of it: what an attacker edits behind the running
    vault's back is caught at the next read, as after a restart."""
    vault.add("Email", {"password": "x"})
    vault.get("Email")
    vault.history("Email")  # checked, and remembered as checked
    _tamper(home, sql)
    with pytest.raises(IntegrityError):
        vault.get("Email")
    with pytest.raises(IntegrityError):
        vault.history("Email")


def test_tampered_header_is_an_integrity_error_not_a_wrong_password(vault, home):
    record = bytearray(vault._store.header_record())
    vault.close()
    record[-100] ^= 1  # a bit inside the wrapped keyring
    _tamper(home, "UPDATE header SET record = ?", bytes(record))
    before = fingerprint(home)
    with Vault.open(home, allow_insecure_test_kdf=True) as again:
        with pytest.raises(IntegrityError):
            again.unlock(PASSWORD)
    assert fingerprint(home) == before


def test_test_kdf_vault_refuses_to_open_without_the_switch(vault, home):
    vault.close()
    with Vault.open(home) as again:
        with pytest.raises(WeakKdfParameters):
            again.unlock(PASSWORD)
    with pytest.raises(WeakKdfParameters):
        with Vault.open(Home(home.path.parent / "fresh")) as fresh:
            fresh.init(PASSWORD, insecure_test_parameters())


def test_several_homes_do_not_interfere(tmp_path):
    vaults = [Vault.open(Home(tmp_path / f"device-{n}"), allow_insecure_test_kdf=True) for n in range(3)]
    for n, opened in enumerate(vaults):
        opened.init(f"password number {n}", insecure_test_parameters())
        opened.add(f"only on {n}", {})
    assert len({v.device.device_id for v in vaults}) == 3
    assert len({v.vault_id for v in vaults}) == 3
    for n, opened in enumerate(vaults):
        assert [i.title for i in opened.list_items()] == [f"only on {n}"]
        opened.close()


# --- receiving revisions from another member ---------------------------------------------------


def second_member(vault: Vault) -> DeviceKeys:
    """A second device of the same vault (pairing arrives with the daemon; here it is enrolled directly)."""
    other = DeviceKeys.generate()
    vault.enroll(other.public, "second device", "Linux 6.1 (x86_64)")
    return other


def foreign_revision(vault, author, seq=1, item_id=None, parents=(), vault_id=None, title="From B"):
    return seal_revision(vault_id=vault_id or vault.vault_id, keyring=vault.unlocking.keyring, author=author,
                         item_id=item_id or ItemId.generate(), seq=seq, parents=parents,
                         content=ItemContent.build(title, {"password": "from b"}))


def test_receive_verifies_and_works_while_locked(vault):
    other = second_member(vault)
    revision = foreign_revision(vault, other)
    vault.lock()
    assert vault.receive([revision]) == [revision]
    assert vault.receive([revision]) == []  # a replay changes nothing
    vault.unlock(PASSWORD)
    assert [v.title for v in vault.list_items()] == ["From B"]


def test_a_same_field_conflict_is_shown_refuses_edits_and_is_resolved(vault):
    from vaultpeer.service.vault import Conflict

    other = second_member(vault)
    mine = vault.add("Shared", {"password": "mine"})
    theirs = foreign_revision(vault, other, item_id=mine.id, parents=[mine.revision], title="Shared")
    mine_again = vault.edit("Shared", {"password": "mine, later"})
    vault.receive([theirs])
    view = vault.get("Shared")
    assert view.conflict and set(view.heads) == {mine_again.revision, theirs.revision_id}
    assert [c.id for c in vault.conflicts()] == [mine.id]
    assert vault.merge_pending() == []  # a conflict is never merged automatically
    with pytest.raises(Conflict):
        vault.edit("Shared", {"url": "x"})
    with pytest.raises(Conflict):
        vault.resolve_conflict("Shared")  # nothing chosen
    resolved = vault.resolve_conflict("Shared", take=str(theirs.revision_id))
    assert not resolved.conflict and resolved.content.field_map()["password"] == "from b"
    assert vault.conflicted_item_count() == 0 and vault.conflicts() == []


def test_edits_to_different_fields_merge_into_one_revision(vault):
    other = second_member(vault)
    mine = vault.add("Shared", {"username": "alice", "password": "one"})
    theirs = seal_revision(vault_id=vault.vault_id, keyring=vault.unlocking.keyring, author=other, item_id=mine.id, seq=1,
                           parents=[mine.revision],
                           content=ItemContent.build("Shared", {"username": "alice", "password": "two"}))
    vault.edit("Shared", {"username": "alice2"})
    vault.receive([theirs])
    assert not vault.get("Shared").conflict
    merged = vault.merge_pending()
    assert len(merged) == 1 and merged[0].content.field_map() == {"username": "alice2", "password": "two"}
    assert len(vault.get("Shared").heads) == 1
    assert vault.merge_pending() == []


@pytest.mark.parametrize("problem", ["foreign_vault", "tampered", "bad_signature"])
def test_one_bad_revision_rejects_the_whole_batch(vault, problem):
    import dataclasses

    other = second_member(vault)
    good = foreign_revision(vault, other, seq=1)
    if problem == "foreign_vault":
        bad = foreign_revision(vault, other, seq=2, vault_id=b"X" * 16)
    elif problem == "tampered":
        original = foreign_revision(vault, other, seq=2)
        bad = dataclasses.replace(original, ciphertext=original.ciphertext[:-1] + b"\x00")
    else:
        original = foreign_revision(vault, other, seq=2)
        bad = dataclasses.replace(original, signature=bytes(64))
    before = vault.counts()
    with pytest.raises(IntegrityError):
        vault.receive([good, bad])
    assert vault.counts() == before
    assert vault._store.revision(good.revision_id) is None


def test_a_revision_by_a_device_that_is_not_a_member_is_dropped_and_the_rest_of_the_batch_kept(vault):
    """An honest member may hold revisions of a device this one does not (or no longer) trust, so
    they are never a reason to refuse a batch: they are dropped, and never stored or sent on."""
    other = second_member(vault)
    good = foreign_revision(vault, other, seq=1)
    stranger = foreign_revision(vault, DeviceKeys.generate(), seq=1)
    assert [r.revision_id for r in vault.receive([stranger, good])] == [good.revision_id]
    assert vault._store.revision(stranger.revision_id) is None


def test_locking_drops_every_key_and_every_decrypted_item():
    from helpers import PASSWORD, make_replicas

    (vault,) = make_replicas(1)
    vault.add("Mail", {"password": "canary-in-memory"})
    vault.list_items()  # builds the index of decrypted items
    vault.lock()
    assert (vault.unlocking._keyring, vault.unlocking._kek, vault.items._index) == (None, None, None)
    assert vault.locked
    vault.unlock(PASSWORD)
    assert [v.title for v in vault.list_items()] == ["Mail"]


def test_a_transaction_that_rolls_back_leaves_nothing_of_its_writes_in_memory(vault):
    """An import writes its items and its audit entry in one transaction: if it rolls back, the
    items are gone from the store, and from the index too (a listing or a search that still named
    them would fail, or show what was never stored)."""
    vault.add("kept", {"password": "one"})
    vault.list_items()  # the index is built
    with pytest.raises(RuntimeError):
        with vault.transaction():
            vault.add("rolled back", {"password": "two"})
            assert {v.title for v in vault.list_items()} == {"kept", "rolled back"}
            raise RuntimeError("the audit entry could not be written")
    assert [v.title for v in vault.list_items()] == ["kept"]
    assert [s.title for s in vault.summaries()] == ["kept"]
    vault.add("after", {"password": "three"})
    assert {v.title for v in vault.list_items()} == {"kept", "after"}
    assert vault.check().ok
