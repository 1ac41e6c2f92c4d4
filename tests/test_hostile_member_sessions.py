"""A member that turns hostile (or is stolen), in-process: each attack of the review, driven through
the sync sessions the daemons run, with the property that must hold. (tests/e2e/test_hostile_member.py
runs the same attacks against real daemons over the wire.)

x is the hostile member; a and b are honest. x signs whatever it likes with its real keys."""

import dataclasses
import os

import pytest

from helpers import PASSWORD, make_replicas, sync_pair
from vaultpeer.core.errors import IntegrityError, VaultLocked, WrongPassword, WrongRecoveryKey
from vaultpeer.core.item import ItemContent, ItemId
from vaultpeer.core.keys import RecoveryKey, _wrap_for_recovery
from vaultpeer.core.revision import open_revision, seal_revision


@pytest.fixture
def world():
    a, b, x = make_replicas(3)
    a.add("Mail", {"password": "honest-mail"})
    b.add("Bank", {"password": "honest-bank"})
    for left, right in ((a, b), (a, x), (b, x)):
        sync_pair(left, right)
    return a, b, x


def signed_by(x, item_id: ItemId, seq: int, *, parents=(), content=None, ciphertext=None, key_epoch=None):
    """A revision x signs: sealed normally, or with ``ciphertext`` / ``key_epoch`` forced (junk)."""
    revision = seal_revision(vault_id=x.vault_id, keyring=x.unlocked_keyring(), author=x.device, item_id=item_id,
                             seq=seq, parents=parents, content=content or ItemContent.build("from x"))
    if ciphertext is None and key_epoch is None:
        return revision
    forged = dataclasses.replace(revision, ciphertext=ciphertext or revision.ciphertext,
                                 key_epoch=revision.key_epoch if key_epoch is None else key_epoch,
                                 signature=bytes(64))
    return dataclasses.replace(forged, signature=x.device.sign(forged.signed_bytes(x.vault_id)))


def next_seq(x) -> int:
    return x._store.next_seq(x.device.device_id)


def converged(a, b) -> bool:
    left, right = sync_pair(a, b)
    return not left.failed and not right.failed and bool(left.converged) and bool(right.converged)


def titles(vault) -> list[str]:
    return [v.title for v in vault.list_items()]


def test_a_counter_gap_cannot_poison_the_revocation(world):
    a, b, x = world
    gapped = signed_by(x, ItemId.generate(), next_seq(x) + 1000)
    a.receive([gapped])  # x is still a member: stored, but a's knowledge of x stops below the gap
    sync_pair(a, b)
    assert b._store.revision(gapped.revision_id) is not None
    a.revoke(x.device.device_id, PASSWORD)
    assert not b.roster.revoked
    left, right = sync_pair(a, b)
    assert not left.failed and not right.failed
    assert x.device.device_id in b.roster.revoked  # the revocation landed
    assert b.roster.revoked[x.device.device_id] < gapped.revision_id.seq  # a gap never raises a cutoff
    b.unlock(PASSWORD)  # the rotation is wrapped under a fresh salt
    # the gapped revision is pruned: sent to nobody, out of the digest, not shown
    assert gapped.revision_id not in {r.revision_id for r in a.revisions_missing_from(b.knowledge().__class__())}
    assert "from x" not in titles(a) and "from x" not in titles(b)
    b.add("after the revocation", {})
    assert converged(a, b)
    assert "after the revocation" in titles(a)
    # and x, revoked, cannot fill the gap later: every counter past the cutoff is dropped
    filler = signed_by(x, ItemId.generate(), b.roster.revoked[x.device.device_id] + 1)
    assert a.receive([filler]) == []


def test_junk_revisions_cannot_make_any_honest_item_unreadable(world):
    a, b, x = world
    mail = a.get("Mail")
    seq = next_seq(x)
    junk = [
        signed_by(x, ItemId.generate(), seq, ciphertext=os.urandom(300)),  # a new item of noise
        signed_by(x, mail.id, seq + 1, parents=mail.heads, ciphertext=os.urandom(300)),  # on an honest head
        signed_by(x, ItemId.generate(), seq + 2, key_epoch=7),  # an epoch nobody has
    ]
    received = a.receive(junk)
    assert len(received) == 3  # stored (a locked device could not tell), quarantined on arrival
    sync_pair(a, b)
    for vault in (a, b):
        assert sorted(titles(vault)) == ["Bank", "Mail"]
        assert vault.get("Mail").fields[0].value == "honest-mail"
        assert vault.get("Mail").opaque_heads == (junk[1].revision_id,)
        assert vault.get("Bank").fields[0].value == "honest-bank"
        report = vault.check()
        assert set(report.undecryptable) == {str(r.revision_id) for r in junk} and not report.ok
    b.edit("Mail", {"password": "changed-on-b"})  # builds on (and so buries) the junk head
    sync_pair(a, b)
    assert a.get("Mail").fields[0].value == "changed-on-b" and a.get("Mail").opaque_heads == ()
    a.revoke(x.device.device_id, PASSWORD)
    sync_pair(a, b)
    b.unlock(PASSWORD)
    for vault in (a, b):
        assert sorted(titles(vault)) == ["Bank", "Mail"]
    assert converged(a, b)
    assert any(e.event == "revision.unreadable" for e in audit_entries(a))


def test_a_pinned_header_cannot_block_the_key_rotation(world):
    a, b, x = world
    pinned = dataclasses.replace(x.header, serial=x.header.serial + 10**9).signed_by(x.device)
    assert b.receive_records(pinned, (), ()).header_replaced  # x is still a member: it wins on b
    a.revoke(x.device.device_id, PASSWORD)
    left, right = sync_pair(a, b)
    assert not left.failed and not right.failed
    assert b.header == a.header and b.header.key_epoch == 1  # a current member's header beats x's
    assert b.locked and "rotated" in b.locked_reason  # never seals below the new epoch meanwhile
    with pytest.raises(VaultLocked):
        b.add("never under epoch 0", {})
    b.unlock(PASSWORD)
    added = b.add("under the new key", {})
    (revision,) = b._store.heads_of(added.id)
    assert revision.key_epoch == 1
    # a header by the revoked author is never a reason to refuse a batch
    sync_pair(x, b)  # x still offers its pinned header
    assert b.receive_records(pinned, (), ()).header_replaced is False
    assert converged(a, b)


def test_equivocation_is_detected_kept_as_evidence_and_never_reported_converged(world):
    a, b, x = world
    item, seq = ItemId.generate(), next_seq(x)
    one = signed_by(x, item, seq, content=ItemContent.build("told to a", {"password": "one"}))
    two = signed_by(x, item, seq, content=ItemContent.build("told to b", {"password": "two"}))
    assert one.revision_id == two.revision_id and one != two
    a.receive([one])
    b.receive([two])
    left, right = sync_pair(a, b)
    assert not left.failed and not right.failed and left.converged is False and right.converged is False
    assert a.get(str(item)).title == "told to a" and b.get(str(item)).title == "told to b"  # each keeps its first
    for vault in (a, b):
        assert vault.health()["equivocations"] == 1
        assert vault.check().equivocations == (str(one.revision_id),) and not vault.check().ok
        (entry,) = [e for e in audit_entries(vault) if e.event == "revision.equivocation"]
        assert entry.details["device_id"] == str(x.device.device_id)
        assert {entry.details["kept"], entry.details["other"]} == {one.record_hash.hex(), two.record_hash.hex()}
    assert not converged(a, b)  # again and again: the difference never passes for convergence
    a.revoke(x.device.device_id, PASSWORD)
    sync_pair(a, b)
    assert a.health()["equivocations"] == b.health()["equivocations"] == 1


def test_a_device_that_cannot_open_the_rotated_key_locks_and_never_seals_below_it(world):
    a, b, x = world
    a.change_password("a new master password")
    a.revoke(x.device.device_id, "a new master password")
    sync_pair(a, b)
    assert b.header.key_epoch == 1 and b.locked and b.locked_reason
    with pytest.raises(VaultLocked):
        b.add("stale", {})
    with pytest.raises(WrongPassword):
        b.unlock(PASSWORD)
    b.unlock("a new master password")
    added = b.add("fresh", {})
    assert [r.key_epoch for r in b._store.heads_of(added.id)] == [1]


def test_the_revoked_devices_keys_open_nothing_written_after_its_revocation(world):
    a, b, x = world
    old_kek = x.header.password_kek(PASSWORD)
    x_keyring = x.unlocked_keyring()
    a.revoke(x.device.device_id, PASSWORD)
    after = a.add("after the revocation", {"password": "secret"})
    (revision,) = a._store.heads_of(after.id)
    with pytest.raises(IntegrityError):
        open_revision(a.vault_id, x_keyring, revision)
    with pytest.raises(WrongPassword):
        a.header.open_with_kek(old_kek)


def test_a_member_cannot_plant_its_own_recovery_key(world):
    a, b, x = world
    planted_key = RecoveryKey.generate()
    public = planted_key.public_bytes(x.vault_id)
    planted = dataclasses.replace(
        x.header, recovery_public=public, serial=x.header.serial + 1,
        recovery_slot=_wrap_for_recovery(public, x.unlocked_keyring(), x.vault_id)).signed_by(x.device)
    for vault in (a, b):
        before = vault._store.header_record()
        with pytest.raises(IntegrityError):
            vault.receive_records(planted, (), ())
        assert vault._store.header_record() == before
    a.revoke(x.device.device_id, PASSWORD)
    with pytest.raises(WrongRecoveryKey):
        a.header.open_with_recovery_key(planted_key)
    assert a.header.open_with_recovery_key(recovery_key_of(a)).current_epoch == 1


def recovery_key_of(vault) -> RecoveryKey:
    return vault.recovery_key_for_tests


@pytest.fixture(autouse=True)
def remember_recovery_keys(monkeypatch):
    """make_replicas drops the founder's recovery key: keep it on the vault for the last test."""
    from vaultpeer.service.vault import Vault

    original = Vault.init

    def init(self, *args, **kwargs):
        key = original(self, *args, **kwargs)
        self.recovery_key_for_tests = key
        return key

    monkeypatch.setattr(Vault, "init", init)


def audit_entries(vault):
    from vaultpeer.core.audit import AuditEntry

    return [AuditEntry.from_stored(*dataclasses.astuple(row)) for row in vault.audit_trail.rows()]


def test_a_pruned_parent_counts_as_held_so_honest_children_of_it_still_travel(world):
    """b built on a revision x signed past a gap (so past every cutoff) before it heard of the
    revocation; a device that never held that revision still takes b's child of it (the parent is
    pruned by its id), and both show the same item."""
    a, b, x = world
    bank = b.get("Bank")
    late = signed_by(x, bank.id, next_seq(x) + 5, parents=bank.heads, content=ItemContent.build("x's edit"))
    a.revoke(x.device.device_id, PASSWORD)  # a holds nothing of `late`: the cutoff is below it
    b.receive([late])  # b has not heard of the revocation yet
    child = b.edit("x's edit", {"password": "b builds on it"})
    left, right = sync_pair(b, a)
    assert not left.failed and not right.failed
    assert a._store.revision(late.revision_id) is None
    assert a._store.revision(child.revision) is not None
    assert a.get("x's edit").fields[-1].value == "b builds on it"
    b.unlock(PASSWORD)  # b took a's rotated key (fresh salt): once more with the password
    assert b.get("x's edit").content == a.get("x's edit").content
    assert converged(a, b)
    assert b._store.revision(late.revision_id) is not None  # b still holds it, pruned
    for vault in (a, b):  # the digest built again from the store leaves it out all the same
        vault.intake.forget_digest()
    assert a.state_digest().root == b.state_digest().root


def test_a_locked_device_stores_junk_and_quarantines_it_at_its_next_unlock(world):
    a, b, x = world
    b.lock()
    junk = signed_by(x, ItemId.generate(), next_seq(x), ciphertext=os.urandom(300))
    assert b.receive([junk]) == [junk]  # a locked device cannot tell: it stores and passes it on
    assert not [e for e in audit_entries(b) if e.event == "revision.unreadable"]
    b.unlock(PASSWORD)
    assert b.health()["unreadable"] == 1
    (entry,) = [e for e in audit_entries(b) if e.event == "revision.unreadable"]
    assert entry.details == {"device_id": str(x.device.device_id), "seq": junk.revision_id.seq}
    assert sorted(titles(b)) == ["Bank", "Mail"]
    b.lock()
    b.unlock(PASSWORD)  # opened once: the next unlock does not open (or record) it again
    assert len([e for e in audit_entries(b) if e.event == "revision.unreadable"]) == 1


def test_a_vault_holding_junk_and_pruned_revisions_still_backs_up_and_restores(world, tmp_path):
    """A backup is the vault as its device holds it: a quarantined revision and one pruned after a
    revocation must not make it unverifiable (or the person could never restore after an attack)."""
    from vaultpeer.service.backup_files import create_backup, open_backup_file, restore_home
    from vaultpeer.service.home import Home
    from vaultpeer.service.vault import Vault

    a, b, x = world
    mail = a.get("Mail")
    junk = signed_by(x, mail.id, next_seq(x), parents=mail.heads, ciphertext=os.urandom(300))
    gapped = signed_by(x, ItemId.generate(), next_seq(x) + 5)
    a.receive([junk, gapped])
    a.revoke(x.device.device_id, PASSWORD)  # the gapped revision is now past the cutoff: pruned
    path = create_backup(a, tmp_path / "backups").path
    opened = open_backup_file(path, password=PASSWORD, allow_insecure_test_kdf=True)
    assert (opened.report.quarantined, opened.report.pruned) == (1, 1)
    restore_home(Home(tmp_path / "restored"), opened, allow_insecure_test_kdf=True)
    with Vault.open(Home(tmp_path / "restored"), allow_insecure_test_kdf=True) as restored:
        restored.unlock(PASSWORD)
        assert sorted(titles(restored)) == ["Bank", "Mail"]
        assert restored.get("Mail").fields[-1].value == "honest-mail"
        assert restored._store.revision(gapped.revision_id) is None


def test_evidence_of_equivocation_is_bounded_per_author(world):
    from vaultpeer.service.store import MAX_EVIDENCE_PER_AUTHOR

    a, b, x = world
    item, seq = ItemId.generate(), next_seq(x)
    a.receive([signed_by(x, item, seq, content=ItemContent.build("first"))])
    flood = [signed_by(x, item, seq, content=ItemContent.build(f"other {n}")) for n in range(MAX_EVIDENCE_PER_AUTHOR + 10)]
    for revision in flood:
        a.receive([revision])
    assert a.health()["equivocations"] == 1
    assert len([e for e in audit_entries(a) if e.event == "revision.equivocation"]) == MAX_EVIDENCE_PER_AUTHOR


def test_a_pruned_parent_of_another_item_never_stalls_sync_between_honest_devices(world):
    """b holds x's revision past a gap (pruned once x is revoked); a hostile member names it as a
    parent of a revision of another item. a, which never held it, accepts that revision: b must
    accept it from a too (a pruned parent counts as held, stored or not), or a and b stall."""
    a, b, x = world
    bank = b.get("Bank")
    late = signed_by(x, bank.id, next_seq(x) + 5, parents=bank.heads, content=ItemContent.build("late"))
    b.receive([late])
    a.revoke(x.device.device_id, PASSWORD)
    sync_pair(a, b)
    b.unlock(PASSWORD)
    mail = a.get("Mail")
    crafted = signed_by(a, mail.id, next_seq(a), parents=(*mail.heads, late.revision_id),
                        content=ItemContent.build("Mail", {"password": "crafted"}))
    assert a.receive([crafted]) == [crafted]  # its parent `late` is pruned on a: it counts as held
    left, right = sync_pair(a, b)
    assert not left.failed and not right.failed
    assert b._store.revision(crafted.revision_id) is not None
    a.add("after", {})
    assert converged(a, b) and "after" in titles(b)


def test_two_devices_rotating_at_once_never_leave_the_loser_sealing_under_the_losing_key():
    a, b, c, x, y = make_replicas(5)
    for other in (b, c, x, y):
        sync_pair(a, other)
    sync_pair(c, b)
    a.revoke(x.device.device_id, PASSWORD)  # epoch 1 on a ...
    c.revoke(y.device.device_id, PASSWORD)  # ... and another epoch 1 on c, at the same time
    sync_pair(a, c)
    winner = a.header if a.header == c.header else None
    assert winner is not None and winner.key_epoch == 1
    loser = c if winner.author == a.device.device_id else a
    assert loser.locked and loser.locked_reason  # it never seals under a key the winner does not hold
    with pytest.raises(VaultLocked):
        loser.add("under the losing key", {})
    loser.unlock(PASSWORD)
    added = loser.add("under the winning key", {})
    sync_pair(a, c)
    other = a if loser is c else c
    assert other.get(str(added.id)).title == "under the winning key"


def test_unpair_names_the_devices_only_the_revoked_device_vouched_for(world):
    """A stolen device can add a device of its own before it is unpaired. Revoking it vouches for
    the devices it added again (they may be the person's), so they are named for the person."""
    from vaultpeer.core.identity import DeviceKeys

    a, b, x = world
    spare = DeviceKeys.generate()
    x.enroll(spare.public, "x's spare", "Test OS")
    sync_pair(x, a)
    assert [m.name for m in a.vouched_for_only_by(x.device.device_id)] == ["x's spare"]
    assert a.vouched_for_only_by(b.device.device_id) == []  # b's members are vouched for by a too


def test_nobody_can_sign_as_a_device_vouched_for_with_a_small_order_key(world):
    """x vouches for a sybil whose signing key is the neutral point. Under OpenSSL's rule (before
    sync protocol 6) R = that point and S = 0 is a valid signature of every message, so anyone
    could write as the sybil; under libsodium's every member refuses the forgery with its batch,
    stores nothing, and honest sync goes on."""
    from vaultpeer.core.identity import DevicePublicKeys
    from vaultpeer.core.revision import RevisionId

    a, b, x = world
    neutral_point = b"\x01" + bytes(31)
    sybil = DevicePublicKeys(os.urandom(32), neutral_point)
    x.enroll(sybil, "sybil", "made by x")
    sync_pair(x, a)
    assert sybil.device_id in a.roster.members  # a member: x vouched for it
    genuine = signed_by(x, ItemId.generate(), next_seq(x))
    forged = dataclasses.replace(genuine, revision_id=RevisionId(sybil.device_id, 1),
                                 signature=neutral_point + bytes(32))
    before = (a.knowledge(), a.counts(), titles(a))
    with pytest.raises(IntegrityError):
        a.receive([forged])
    assert (a.knowledge(), a.counts(), titles(a)) == before
    assert converged(a, b)
