"""Sync between vaults through the real session state machine and the real store (in memory)."""

import dataclasses

import pytest

from helpers import PASSWORD, deliver, make_replicas, sync_pair, vault_state
from vaultpeer.core import encoding
from vaultpeer.core.identity import DeviceKeys
from vaultpeer.core.item import ItemContent, ItemId
from vaultpeer.core.merge import EDIT_SURVIVED_DELETE
from vaultpeer.core.revision import seal_revision
from vaultpeer.core.roster import MAX_UNCOUNTED, RosterEntry, vouch
from vaultpeer.core.sync import MAX_HELLO_LINKS, MAX_MESSAGE_SIZE, PROTOCOL_VERSION, Error, Hello, Records, decode_message, encode_message
from vaultpeer.core.vclock import VersionVector
from vaultpeer.service.store import Store
from vaultpeer.service.replication import SyncPeer


def state(vault):
    """Everything that must be equal on converged devices."""
    return (
        vault._store.head_ids(),
        sorted((str(v.id), v.title, v.fields, v.deleted, v.conflict, v.flags)
               for v in vault.list_items() + vault.list_items(deleted=True)),
    )


def test_two_devices_exchange_only_what_is_missing():
    a, b = make_replicas(2)
    for n in range(30):
        a.add(f"item {n}", {"password": str(n)})
    first, _ = sync_pair(a, b)
    assert first.stats.revisions_sent == 30 and first.converged
    again, back = sync_pair(a, b)
    assert again.stats.revisions_sent == back.stats.revisions_sent == 0 and again.converged
    assert state(a) == state(b)


def test_an_interrupted_transfer_resumes_without_resending():
    a, b = make_replicas(2)
    for n in range(2500):  # three batches
        a.add(f"item {n}", {})
    left, right = sync_pair(a, b, cut_after=3)  # hello, hello, first batch
    arrived = right.stats.revisions_new
    assert 0 < arrived < 2500 and not left.finished
    assert b.knowledge().get(a.device.device_id) == arrived
    resumed, _ = sync_pair(a, b)
    assert resumed.stats.revisions_sent == 2500 - arrived
    assert state(a) == state(b)


def test_a_rebuilt_peer_store_is_noticed_and_fully_resynced():
    a, b = make_replicas(2)
    a.add("kept", {})
    sync_pair(a, b)
    # b's store is rebuilt: a fresh store for the same device, joined again
    from vaultpeer.service.store import Store
    from vaultpeer.service.vault import Vault
    from helpers import PASSWORD

    rebuilt = Vault(Store.open_in_memory(), b.device, allow_insecure_test_kdf=True)
    rebuilt.join(a.header, a.outgoing_roster(), a.device.public, "device-1", "Test OS")
    rebuilt.unlock(PASSWORD)
    left, _ = sync_pair(a, rebuilt)
    assert any("rebuilt its store" in note for note in left.notes)
    assert left.stats.revisions_sent == 1 and [v.title for v in rebuilt.list_items()] == ["kept"]


def test_a_digest_difference_is_found_repaired_and_logged():
    """A peer that overstates what it holds would leave a silent gap; the digest catches it."""
    a, b = make_replicas(2)
    for n in range(40):
        a.add(f"item {n}", {})
    sync_pair(a, b)
    lost = a.add("made while b lied", {"password": "x"})
    left = SyncPeer(a, initiator=True, peer=b.device.device_id)
    right = SyncPeer(b, initiator=False, peer=a.device.device_id)
    right.session.knowledge = a.knowledge()  # b claims to hold everything a has
    from collections import deque

    to_right, to_left = deque(left.start()), deque(right.start())
    for _ in range(200):
        if not (to_right or to_left):
            break
        if to_right:
            to_left.extend(right.receive(to_right.popleft()))
        if to_left:
            to_right.extend(left.receive(to_left.popleft()))
    assert left.converged and right.converged
    assert any("narrowing" in n for n in left.notes) and any("repairing 1" in n for n in left.notes)
    assert b.get(str(lost.id)).title == "made while b lied"
    assert state(a) == state(b)


def test_roster_lets_devices_paired_through_a_third_trust_each_other():
    a, b, c = make_replicas(3)  # b and c joined through a
    sync_pair(a, b)
    sync_pair(a, c)
    c.add("from c", {})
    sync_pair(c, b)  # a is not involved
    assert [v.title for v in b.list_items()] == ["from c"]
    assert c.device.device_id in b.roster.members


def test_a_device_does_not_claim_to_have_added_the_device_it_joined_through():
    """Issue 18: b joined through a and vouches back for it; on b, a was added by nobody (it
    founded the vault: ``added_by`` is itself), not by b. On a, b was added by a."""
    a, b = make_replicas(2)
    sync_pair(a, b)
    ids = a.device.device_id, b.device.device_id
    assert b.roster.vouchers_of(ids[0]) == {ids[1]}  # the vouch-back is there, and still counts for trust
    assert b.roster.members[ids[0]].added_by == ids[0]
    assert a.roster.members[ids[1]].added_by == ids[0]
    assert b.roster.members[ids[1]].added_by == ids[0]  # b's own view of itself


def test_concurrent_edit_and_delete_keep_the_edit_flagged():
    a, b = make_replicas(2)
    item = a.add("Email", {"password": "one"})
    sync_pair(a, b)
    a.delete("Email")
    b.edit("Email", {"password": "two"})
    sync_pair(a, b)
    sync_pair(a, b)
    for vault in (a, b):
        view = vault.get(str(item.id))
        assert not view.deleted and view.fields[0].value == "two" and EDIT_SURVIVED_DELETE in view.flags
    assert state(a) == state(b)
    # the listing, conflicts and status agree on it (issue 18): listed with its flag, counted
    from vaultpeer.service.commands import VaultCommands

    commands = VaultCommands(a, None)
    (listed,) = commands.list_items()
    assert listed["conflict"] is False and listed["flags"] == [EDIT_SURVIVED_DELETE]
    assert [c["id"] for c in commands.conflicts()] == [listed["id"]]
    resolved = a.resolve_conflict("Email")
    assert not resolved.flags


# --- hostile or broken input ------------------------------------------------------------------------


@pytest.fixture
def victim():
    """b, a member, with some history; a, its peer, about to send something."""
    a, b = make_replicas(2)
    a.add("existing", {"password": "p"})
    sync_pair(a, b)
    return a, b


def hello_from(a, vault_id=None, knowledge=None, version=PROTOCOL_VERSION):
    return encode_message(Hello(vault_id or a.vault_id, a.intake.store_id,
                                knowledge if knowledge is not None else a.knowledge(), bytes(32), bytes(32),
                                version))


def records_of(a, revisions, header=True):
    return encode_message(Records(a.header if header else None, tuple(a.outgoing_roster()), tuple(revisions), True))


def new_revisions(a, count=2):
    before = a.knowledge()
    for n in range(count):
        a.add(f"new {n}", {"password": "x"})
    return list(a.revisions_missing_from(before))


def assert_rejected(peer, replies):
    assert peer.failed and any(b'"error"' in r or b"error" in r for r in replies)


def test_tampered_revision_rejects_the_batch(victim):
    a, b = victim
    revisions = new_revisions(a)
    tampered = dataclasses.replace(revisions[1], ciphertext=revisions[1].ciphertext[:-1] + b"\x00")
    before = vault_state(b)
    peer, replies = deliver(b, a, [hello_from(a), records_of(a, [revisions[0], tampered])])
    assert_rejected(peer, replies)
    assert vault_state(b) == before


def test_reordered_revisions_reject_the_batch(victim):
    a, b = victim
    item = a.add("chain", {})
    a.edit("chain", {"password": "2"})
    revisions = [r for r in a.revisions_missing_from(b.knowledge()) if r.item_id == item.id]
    before = vault_state(b)
    peer, replies = deliver(b, a, [hello_from(a), records_of(a, list(reversed(revisions)))])
    assert_rejected(peer, replies)
    assert vault_state(b) == before


def test_replayed_revisions_are_a_protocol_error(victim):
    a, b = victim
    old = list(a.revisions_missing_from(VersionVector()))
    before = vault_state(b)
    peer, replies = deliver(b, a, [hello_from(a), records_of(a, old)])
    assert_rejected(peer, replies)
    assert vault_state(b) == before
    # a whole message replayed within a session is refused too
    message = records_of(a, new_revisions(a))
    peer, replies = deliver(b, a, [hello_from(a), message, message])
    assert peer.failed


def test_oversize_and_malformed_messages_are_protocol_errors(victim):
    a, b = victim
    before = vault_state(b)
    for junk in (b"\x00" * (MAX_MESSAGE_SIZE + 1), b"\xff\xfe", encoding.encode({"t": "records"}),
                 encoding.encode({"t": "hello", "v": PROTOCOL_VERSION, "vault": b"x", "store": b"y", "knows": []}),
                 b""):
        peer, replies = deliver(b, a, [hello_from(a), junk])
        assert_rejected(peer, replies)
    assert vault_state(b) == before


def old_hello_from(a, version):
    """A hello as a version 2-4 device sends it: no ``links``."""
    return encoding.encode({"t": "hello", "v": version, "vault": a.vault_id, "store": a.intake.store_id,
                            "knows": a.knowledge().to_record(), "header": bytes(32), "roster": bytes(32)})


def hello_with_links(a, links):
    body = encoding.decode(hello_from(a), max_size=1 << 20)
    if links is None:
        del body["links"]
    else:
        body["links"] = links
    return encoding.encode(body)


def test_a_hello_whose_links_are_malformed_is_a_protocol_error_and_nothing_is_stored(victim):
    """``links`` (version 5) is a sorted list of at most 256 distinct 16-byte ids: a hostile member
    that sends anything else (or leaves it out while saying version 5) breaks the protocol."""
    a, b = victim
    before = vault_state(b)
    one, two = bytes(16), b"\x01" * 16
    for links in (None, [two, one], [one, one], [b"\x01" * 15], [b"\x01" * 32], "ids", [7],
                  [i.to_bytes(16, "big") for i in range(MAX_HELLO_LINKS + 1)]):
        peer, replies = deliver(b, a, [hello_with_links(a, links), records_of(a, new_revisions(a))])
        assert_rejected(peer, replies)
        assert peer.peer_at_fault
    assert vault_state(b) == before


def test_a_hello_may_name_any_links_they_only_say_who_needs_no_relay_of_its_senders_writes(victim):
    """Links that name no member (or every one) are the sender's claim about its own connections:
    well-formed, they change nothing in the session."""
    a, b = victim
    claims = sorted({bytes([n]) * 16 for n in range(MAX_HELLO_LINKS)})
    peer, replies = deliver(b, a, [hello_with_links(a, claims), records_of(a, new_revisions(a))])
    assert not peer.failed and peer.stats.revisions_new == 2
    assert peer.peer_links == frozenset(claims)


@pytest.mark.parametrize("version,says", [
    (4, "the peer runs an older vaultpeer (sync protocol version 4; this device speaks 7): upgrade vaultpeer on it"),
    (5, "the peer runs an older vaultpeer (sync protocol version 5; this device speaks 7): upgrade vaultpeer on it"),
    (6, "the peer runs an older vaultpeer (sync protocol version 6; this device speaks 7): upgrade vaultpeer on it"),
    (8, "the peer runs a newer vaultpeer (sync protocol version 8; this device speaks 7): upgrade vaultpeer on "
        "this device"),
])
def test_another_protocol_version_is_refused_as_an_upgrade_to_make_not_an_offense(victim, version, says):
    """Version 7 takes early records as their sender's last batch, which a version 6 device refuses
    as malformed; version 6 checks signatures by libsodium's rule, which refuses what a version 5
    device (OpenSSL's rule) may keep; version 5 has early records (a ``records`` with a ``basis``)
    and a hello with ``links`` (a version 4 hello has none: it is still recognised as one of version
    4, not taken for junk); version 4 has the ``removed`` message, which a version 3 device would
    take for a broken protocol: a device that speaks another version is told to upgrade, and nothing
    moves either way."""
    assert PROTOCOL_VERSION == 7
    a, b = victim
    before = vault_state(b)
    hello = old_hello_from(a, version) if version < 5 else hello_from(a, version=version)
    peer, replies = deliver(b, a, [hello, records_of(a, new_revisions(a))])
    assert peer.failed and not peer.peer_at_fault  # not counted against the peer's address
    assert decode_message(replies[-1]) == Error("version")
    assert any(says in note for note in peer.notes)
    assert vault_state(b) == before


def test_foreign_vault_is_refused(victim):
    a, b = victim
    (stranger,) = make_replicas(1)
    stranger.add("not yours", {})
    before = vault_state(b)
    peer, replies = deliver(b, stranger, [hello_from(stranger), records_of(stranger, list(
        stranger.revisions_missing_from(VersionVector())))])
    assert_rejected(peer, replies)
    # even with the right vault id in the hello, the foreign records are by no member: dropped
    peer, replies = deliver(b, stranger, [hello_from(stranger, vault_id=b.vault_id), records_of(stranger, list(
        stranger.revisions_missing_from(VersionVector())), header=False)])
    assert peer.stats.revisions_new == 0
    after = vault_state(b)  # its roster entries are kept, but count for nothing
    assert (after[0], after[2], after[3]) == (before[0], before[2], before[3])
    assert after[1]["revisions"] == before[1]["revisions"]
    assert set(b.roster.members) == {a.device.device_id, b.device.device_id}


def test_a_non_member_author_is_dropped_and_a_forged_roster_entry_refused(victim):
    a, b = victim
    outsider = DeviceKeys.generate()
    forged = seal_revision(vault_id=a.vault_id, keyring=a.unlocking.keyring, author=outsider, item_id=ItemId.generate(),
                           seq=1, parents=(), content=ItemContent.build("sneaky"))
    before = vault_state(b)
    peer, replies = deliver(b, a, [hello_from(a), records_of(a, [forged])])
    assert not peer.failed and peer.stats.revisions_new == 0
    entry = a.outgoing_roster()[0]
    tampered_entry = dataclasses.replace(entry, name="renamed by an attacker")
    message = encode_message(Records(None, (tampered_entry,), (), True))
    peer, replies = deliver(b, a, [hello_from(a), message])
    assert_rejected(peer, replies)
    assert vault_state(b) == before


def test_strangers_roster_entries_and_names_that_are_not_plain_text_never_fail_a_sync_and_stay_bounded(victim):
    a, b = victim
    members = set(b.roster.members)
    for _ in range(3):  # a member relays floods of entries by strangers, and one with escapes in a name
        strangers = [DeviceKeys.generate() for _ in range(MAX_UNCOUNTED)]
        flood = [vouch(a.vault_id, s, DeviceKeys.generate().public, "x", "os") for s in strangers]
        escaped = RosterEntry(DeviceKeys.generate().public, "evil\x1b[2J\rrealdev", "os", False, 0, 1,
                              a.device.device_id).signed_by(a.vault_id, a.device)
        message = encode_message(Records(None, (*a.outgoing_roster(), escaped, *flood), (), True))
        peer, replies = deliver(b, a, [hello_from(a), message])
        assert not peer.failed, replies
        assert set(b.roster.members) == members
        stored = b._store.roster_entries()
        assert len(stored) <= len(b.outgoing_roster()) + MAX_UNCOUNTED  # the older floods were forgotten
    sync_pair(a, b)  # and the two still sync
    assert b.outgoing_roster() == a.outgoing_roster()


def test_messages_out_of_order_are_protocol_errors(victim):
    a, b = victim
    before = vault_state(b)
    peer, replies = deliver(b, a, [records_of(a, new_revisions(a))])  # records before hello
    assert_rejected(peer, replies)
    peer, replies = deliver(b, a, [hello_from(a), hello_from(a)])
    assert_rejected(peer, replies)
    assert vault_state(b) == before


def test_a_password_change_replicates_and_the_new_password_is_needed():
    from helpers import PASSWORD
    from vaultpeer.core.errors import WrongPassword

    a, b = make_replicas(2)
    a.add("kept", {"password": "p"})
    sync_pair(a, b)
    a.change_password("changed on device a")
    left, right = sync_pair(a, b)
    assert any("newer vault header" in n for n in right.notes)
    assert b.header == a.header
    b.lock()
    with pytest.raises(WrongPassword):
        b.unlock(PASSWORD)
    b.unlock("changed on device a")
    assert [v.title for v in b.list_items()] == ["kept"]
    # an older header never rolls a newer one back
    stale = SyncPeer(b, initiator=True)
    assert stale.vault.header.serial == 1


def test_a_locked_device_relays_ciphertext_it_cannot_read():
    a, b, c = make_replicas(3)
    sync_pair(a, b)
    sync_pair(a, c)
    b.lock()
    item = a.add("through a locked device", {"password": "p"})
    sync_pair(a, b)  # b stores it without being able to read it
    with pytest.raises(Exception, match="locked"):
        b.list_items()
    sync_pair(b, c)  # and passes it on
    assert c.get(str(item.id)).title == "through a locked device"
    assert a._store.head_ids() == b._store.head_ids() == c._store.head_ids()


def test_revocation_rotates_the_key_and_refuses_the_revoked_device():
    from vaultpeer.core.errors import VaultLocked, WrongPassword

    a, b, c = make_replicas(3)
    sync_pair(a, b)
    sync_pair(a, c)
    before = c.add("written before the revocation", {})
    sync_pair(c, b)
    old_kek = a.header.password_kek(PASSWORD)
    a.revoke(c.device.device_id, PASSWORD)
    assert a.header.key_epoch == 1 and c.device.device_id not in a.roster.members
    after = a.add("sealed with the new key", {})
    sync_pair(a, b)
    assert b.header.key_epoch == 1 and c.device.device_id not in b.roster.members
    # the rotated keyring is wrapped under a fresh salt: b's derived key does not open it, so b
    # locks (rather than seal anything new under a key the revoked device holds) and says why
    assert b.locked and "rotated" in b.locked_reason
    with pytest.raises(VaultLocked):
        b.add("never sealed under the old key", {})
    b.unlock(PASSWORD)
    assert b.get(str(after.id)).title == "sealed with the new key"
    assert b.get(str(before.id)).title == "written before the revocation"  # old revisions stay valid
    # the revoked device's new writes are dropped by every member (never a reason to fail a session)
    c.add("written after the revocation", {})
    left, right = sync_pair(c, b)
    assert not (left.failed or right.failed)
    assert [v.title for v in b.list_items()] == ["sealed with the new key", "written before the revocation"]
    assert b.receive(list(c.revisions_missing_from(b.knowledge()))) == []
    with pytest.raises(WrongPassword):  # the derived key the revoked device knew opens nothing new
        a.header.open_with_kek(old_kek)


def laptop_on_disk_and_desktop(tmp_path):
    """A laptop whose home is on disk (so it can be copied, or opened twice) and a desktop joined
    to its vault in memory; both unlocked."""
    from helpers import PASSWORD
    from vaultpeer.core.kdf import insecure_test_parameters
    from vaultpeer.service.home import Home
    from vaultpeer.service.vault import Vault

    home = Home(tmp_path / "laptop")
    laptop = Vault.open(home, allow_insecure_test_kdf=True)
    laptop.init(PASSWORD, insecure_test_parameters(), "laptop", "Test OS")
    desktop = Vault(Store.open_in_memory(), DeviceKeys.generate(), allow_insecure_test_kdf=True)
    desktop.join(laptop.header, [*laptop.outgoing_roster(), laptop.enroll(desktop.device.public, "desktop", "OS")],
                 laptop.device.public, "desktop", "OS")
    desktop.unlock(PASSWORD)
    return home, laptop, desktop


def test_a_home_rolled_back_to_an_older_copy_gets_back_what_it_lost(tmp_path):
    """Someone with disk access replaces a device's home with an older copy of itself: its peers
    send back what it lost, and it can go on writing without contradicting what they hold."""
    import shutil

    from helpers import PASSWORD
    from vaultpeer.service.vault import Vault

    home, laptop, desktop = laptop_on_disk_and_desktop(tmp_path)
    laptop.add("One", {"password": "1"})
    sync_pair(laptop, desktop)
    laptop.close()
    shutil.copytree(home.path, tmp_path / "old-copy")

    laptop = Vault.open(home, allow_insecure_test_kdf=True)
    laptop.unlock(PASSWORD)
    laptop.add("Two", {"password": "2"})
    sync_pair(laptop, desktop)
    laptop.close()
    shutil.rmtree(home.path)
    shutil.copytree(tmp_path / "old-copy", home.path)  # the rollback

    laptop = Vault.open(home, allow_insecure_test_kdf=True)
    laptop.unlock(PASSWORD)
    assert [v.title for v in laptop.list_items()] == ["One"]
    sync_pair(laptop, desktop)
    assert sorted(v.title for v in laptop.list_items()) == ["One", "Two"]
    laptop.add("Three", {"password": "3"})
    sync_pair(laptop, desktop)
    assert state(laptop) == state(desktop)
    laptop.close()


def test_the_kept_state_digest_follows_every_change_and_other_processes_writes(tmp_path):
    """The vault keeps its state digest and updates it for changed items only; it must always
    equal a full rebuild: after local adds, edits, deletes, merges, received batches, and writes
    made by another connection to the same database (another process), which it cannot see."""
    from helpers import PASSWORD
    from vaultpeer.core.digest import StateDigest
    from vaultpeer.service.vault import Vault

    def rebuilt(vault):
        return StateDigest.from_revision_rows(vault._store.revision_rows()).root

    home, laptop, desktop = laptop_on_disk_and_desktop(tmp_path)
    views = [laptop.add(f"item {n}", {"password": str(n)}) for n in range(20)]
    first = laptop.state_digest()
    assert first.root == rebuilt(laptop)
    laptop.edit(str(views[3].id), {"password": "changed"})
    laptop.delete(str(views[4].id))
    assert laptop.state_digest().root == rebuilt(laptop) != first.root

    sync_pair(laptop, desktop)
    desktop.edit(str(views[5].id), {"password": "on the desktop"})
    laptop.edit(str(views[5].id), {"username": "on the laptop"})  # concurrent: merged after sync
    sync_pair(laptop, desktop)
    for vault in (laptop, desktop):  # each side merged the two heads (a merge revision of its own)
        assert vault.state_digest().root == rebuilt(vault)
    sync_pair(laptop, desktop)
    assert laptop.state_digest().root == desktop.state_digest().root == rebuilt(laptop)

    other_process = Vault.open(home, allow_insecure_test_kdf=True)  # a second connection
    other_process.unlock(PASSWORD)
    other_process.add("added elsewhere", {"password": "x"})
    other_process.close()
    assert laptop.state_digest().root == rebuilt(laptop)
    assert laptop.state_digest().root != desktop.state_digest().root
    left, _ = sync_pair(laptop, desktop)
    assert left.converged and laptop.state_digest().root == desktop.state_digest().root
    laptop.close()


def test_every_local_commit_is_announced_and_nothing_received_is():
    """Issue 16: ``Vault.on_local_commit`` is how the daemon learns it has something to push,
    whichever front end wrote: each item commit names its item, a password change names none;
    what arrives from a peer is not announced (the daemon relays it by its own path)."""
    a, b = make_replicas(2)
    heard_a, heard_b = [], []
    a.on_local_commit.append(heard_a.append)
    b.on_local_commit.append(heard_b.append)
    item = a.add("Mail", {"password": "1"})
    a.edit("Mail", {"password": "2"})
    a.add_many([])  # nothing committed, nothing announced
    assert heard_a == [[str(item.id)], [str(item.id)]]
    sync_pair(a, b, merge=False)
    assert heard_b == []  # what arrived is not this device's commit
    b.edit("Mail", {"username": "me"})
    a.edit("Mail", {"password": "3"})
    heard_a.clear(), heard_b.clear()
    sync_pair(a, b)  # the two edits merge: a merge revision is a local commit
    assert [str(item.id)] in heard_a + heard_b
    heard_a.clear()
    a.change_password("a new master password")  # a new header: announced, with no item
    assert heard_a == [[]]
