"""Early records (sync protocol 5): a side that starts a session sends what the peer lacked at
their last session right after its hello, so an edit reaches the peer after one trip instead of
three; and what a hostile member can do with them (docs/protocol.md, "Early records")."""

import dataclasses

import pytest

from helpers import deliver, make_replicas, sync_pair, vault_state
from vaultpeer.core.sync import MAX_EARLY_REVISIONS, Error, Hello, Records, decode_message, encode_message
from vaultpeer.core.vclock import VersionVector
from vaultpeer.service.replication import SyncPeer


@pytest.fixture
def pair():
    """a and b in sync (each knows what the other holds), a about to edit."""
    a, b = make_replicas(2)
    a.add("existing", {"password": "p"})
    sync_pair(a, b)
    return a, b


def hashes(vault):
    return SyncPeer(vault, initiator=True)._hashes()


def early_messages(a, b):
    """What a sends first in a session it starts after an edit: its hello and early records."""
    return SyncPeer(a, initiator=True, peer=b.device.device_id).start(early=hashes(b))


def hello_of(vault):
    return encode_message(Hello(vault.vault_id, vault.intake.store_id, vault.knowledge(), *hashes(vault)))


def early(basis, revisions):
    return encode_message(Records(None, (), tuple(revisions), True, False, basis))


def run_session(left, right, to_right, to_left):
    """Pass the messages on until neither side has any to send; returns what each side sent
    (``to_right`` and ``to_left`` included)."""
    sent_right, sent_left = list(to_right), list(to_left)
    for _ in range(100):
        if not (to_right or to_left):
            return sent_right, sent_left
        if to_right:
            replies = right.receive(to_right.pop(0))
            sent_left += replies
            to_left += replies
        if to_left:
            replies = left.receive(to_left.pop(0))
            sent_right += replies
            to_right += replies
    raise AssertionError("a session did not end")


def test_an_edit_is_stored_on_the_peer_from_the_senders_first_two_messages(pair):
    a, b = pair
    a.edit("existing", {"password": "changed"})
    left = SyncPeer(a, initiator=True, peer=b.device.device_id)
    right = SyncPeer(b, initiator=False, peer=a.device.device_id)
    stored = []
    right.on_stored = stored.append
    first = left.start(early=hashes(b))
    assert len(first) == 2 and decode_message(first[1]).basis == b.knowledge()
    to_left = right.start()
    to_left += right.receive(first[0])
    to_left += right.receive(first[1])  # before a has read anything of b's
    assert b.get("existing").fields[0].value == "changed" and len(stored) == 1
    run_session(left, right, [], to_left)
    assert left.converged and right.converged
    assert left.stats.revisions_sent == 1 and right.stats.revisions_new == 1  # sent once, not again
    assert b.knowledge() == a.knowledge()


def kinds(messages):
    return [type(decode_message(m)).__name__ for m in messages]


def test_taken_early_records_are_the_senders_last_batch_so_no_empty_one_follows(pair):
    """Protocol 7: the receiver that takes early records moves on to the digest at once. The
    session of one edit is four messages each way, and the sender sends no second ``records``."""
    a, b = pair
    a.edit("existing", {"password": "changed"})
    left = SyncPeer(a, initiator=True, peer=b.device.device_id)
    right = SyncPeer(b, initiator=False, peer=a.device.device_id)
    sent_right, sent_left = run_session(left, right, left.start(early=hashes(b)), right.start())
    assert left.converged and right.converged and b.knowledge() == a.knowledge()
    assert kinds(sent_right) == ["Hello", "Records", "Digest", "Done"]
    assert kinds(sent_left) == ["Hello", "Records", "Digest", "Done"]
    assert decode_message(sent_right[1]).last and decode_message(sent_right[1]).basis is not None


def test_an_edit_made_while_the_early_records_travel_follows_in_the_next_session(pair):
    """a edits again before b's hello comes back: its early records were its last batch, so the
    second edit cannot follow in this session. It ends unconverged, with no digest narrowing and
    nobody at fault, and the next session (in the usual way: the last did not converge) brings it."""
    a, b = pair
    a.edit("existing", {"password": "first"})
    left = SyncPeer(a, initiator=True, peer=b.device.device_id)
    right = SyncPeer(b, initiator=False, peer=a.device.device_id)
    to_right = left.start(early=hashes(b))
    a.edit("existing", {"password": "second"})
    sent, _ = run_session(left, right, to_right, right.start())
    assert left.finished and right.finished and not left.failed and not right.failed
    assert left.more_to_send and left.converged is False and right.converged is False
    assert not right.peer_at_fault and not left.peer_at_fault
    assert "Query" not in kinds(sent) and "Digest" not in kinds(sent)
    assert b.get("existing").fields[0].value == "first"
    left, right = sync_pair(a, b)
    assert left.converged and right.converged and b.get("existing").fields[0].value == "second"


def test_nothing_goes_early_without_a_peer_state_the_sender_can_trust(pair):
    a, b = pair
    a.edit("existing", {"password": "changed"})
    peer = SyncPeer(a, initiator=True, peer=b.device.device_id)
    assert len(peer.start()) == 1  # no hashes from a last session on this connection
    assert len(SyncPeer(a, initiator=True, peer=b.device.device_id).start(early=(bytes(32), bytes(32)))) == 1
    for n in range(MAX_EARLY_REVISIONS + 1):  # a backlog bigger than an early message waits for the hello
        a.add(f"more {n}", {})
    assert len(SyncPeer(a, initiator=True, peer=b.device.device_id).start(early=hashes(b))) == 1


def test_early_records_the_peer_cannot_take_are_ignored_and_sent_again_after_its_hello(pair):
    """The sender believed b held more than it does (its basis): b ignores the early batch, a sees
    the same from b's hello, sends everything in the usual way, and nobody is at fault."""
    a, b = pair
    a.edit("existing", {"password": "first"})
    before_second = a.knowledge()
    a.edit("existing", {"password": "second"})
    a.intake.raise_peer_knowledge(b.device.device_id, before_second)  # wrong: b never got "first"
    left = SyncPeer(a, initiator=True, peer=b.device.device_id)
    right = SyncPeer(b, initiator=False, peer=a.device.device_id)
    to_right = left.start(early=hashes(b))
    assert len(to_right) == 2
    run_session(left, right, to_right, right.start())
    assert left.converged and right.converged and not right.peer_at_fault
    assert b.get("existing").fields[0].value == "second" and b.knowledge() == a.knowledge()


def test_early_records_held_already_are_skipped_not_refused(pair):
    """b got the edit from a third device since: a's early batch is all held; nothing is stored
    twice and the session converges."""
    a, b = pair
    a.edit("existing", {"password": "changed"})
    sync_pair(a, b)
    a.intake._store._db.execute("DELETE FROM peer_knowledge")  # a forgot that b has it
    a.intake._store._peer_knowledge_unsaved.clear()  # (kept in memory until the next transaction)
    a.intake.raise_peer_knowledge(b.device.device_id, VersionVector({b.device.device_id: b.knowledge().get(
        b.device.device_id)}).merged(VersionVector({a.device.device_id: 1})))
    before = vault_state(b)
    left = SyncPeer(a, initiator=True, peer=b.device.device_id)
    right = SyncPeer(b, initiator=False, peer=a.device.device_id)
    to_right = left.start(early=hashes(b))
    assert len(to_right) == 2
    run_session(left, right, to_right, right.start())
    assert right.converged and right.stats.revisions_new == 0 and vault_state(b) == before


# --- a hostile member --------------------------------------------------------------------------------


def new_revisions(a, b):
    a.edit("existing", {"password": "changed"})
    return list(a.revisions_missing_from(b.knowledge()))


def assert_refused(peer, replies, b, before):
    assert peer.failed and peer.peer_at_fault
    assert decode_message(replies[-1]) in (Error("protocol"), Error("rejected"))
    assert vault_state(b) == before


def test_early_records_anywhere_but_right_after_the_hello_are_a_protocol_error(pair):
    a, b = pair
    revisions = new_revisions(a, b)
    before = vault_state(b)
    batch = early(b.knowledge(), revisions)
    empty_last = encode_message(Records(None, (), (), True))
    for messages in ([batch], [hello_of(a), empty_last, batch]):  # before the hello, after other records
        peer, replies = deliver(b, a, messages)
        assert_refused(peer, replies, b, before)
    peer, replies = deliver(b, a, [hello_of(a), batch, batch])  # twice: the first counts, the second ends it
    assert peer.failed and peer.peer_at_fault and peer.stats.revisions_new == len(revisions)
    assert decode_message(replies[-1]) == Error("protocol")


@pytest.mark.parametrize("shape", ["not_last", "repair", "header", "roster", "too_many"])
def test_early_records_not_last_repair_or_carrying_header_roster_or_too_much_are_malformed(pair, shape):
    a, b = pair
    revisions = new_revisions(a, b)
    for n in range(MAX_EARLY_REVISIONS if shape == "too_many" else 0):
        a.add(f"more {n}", {})
    if shape == "too_many":
        revisions = list(a.revisions_missing_from(b.knowledge()))
    record = Records(a.header if shape == "header" else None,
                     tuple(a.outgoing_roster()) if shape == "roster" else (), tuple(revisions),
                     shape != "not_last", shape == "repair", b.knowledge())
    before = vault_state(b)
    peer, replies = deliver(b, a, [hello_of(a), encode_message(record)])
    assert_refused(peer, replies, b, before)


def test_records_after_taken_early_records_are_a_protocol_error_and_not_stored(pair):
    """Taken early records were the sender's last batch: a member that sends more records after
    them breaks the protocol. What it sent early stays (valid, and stored before); the rest is not
    stored, and the member is at fault."""
    a, b = pair
    (first,) = new_revisions(a, b)
    a.edit("existing", {"password": "more"})
    (more,) = [r for r in a.revisions_missing_from(b.knowledge()) if r.revision_id != first.revision_id]
    peer, replies = deliver(b, a, [hello_of(a), early(b.knowledge(), [first]),
                                   encode_message(Records(None, (), (more,), True))])
    assert peer.failed and peer.peer_at_fault and decode_message(replies[-1]) == Error("protocol")
    assert peer.stats.revisions_new == 1 and b.get("existing").fields[0].value == "changed"


def test_a_tampered_early_revision_rejects_the_batch(pair):
    a, b = pair
    (revision,) = new_revisions(a, b)
    tampered = dataclasses.replace(revision, ciphertext=revision.ciphertext[:-1] + bytes([revision.ciphertext[-1] ^ 1]))
    before = vault_state(b)
    peer, replies = deliver(b, a, [hello_of(a), early(b.knowledge(), [tampered])])
    assert_refused(peer, replies, b, before)


def test_early_replays_are_skipped_cheaply_and_cannot_be_sent_again_as_new(pair):
    """A member replays everything b holds as early records: nothing is stored or verified again;
    the same ids in the following records are the replay they always were."""
    a, b = pair
    held = list(a.revisions_missing_from(VersionVector()))
    before = vault_state(b)
    peer, replies = deliver(b, a, [hello_of(a), early(VersionVector(), held)])
    assert not peer.failed and peer.stats.revisions_new == 0 and vault_state(b) == before
    peer, replies = deliver(b, a, [hello_of(a), early(VersionVector(), held),
                                   encode_message(Records(None, (), tuple(held), True))])
    assert_refused(peer, replies, b, before)


def test_a_basis_above_what_the_receiver_holds_stores_nothing_early(pair):
    """A hostile basis claims b holds more than it does, so as to slip in revisions whose parents
    b lacks: b takes nothing from that batch (and the revisions must come again, in order)."""
    a, b = pair
    a.edit("existing", {"password": "one"})
    a.edit("existing", {"password": "two"})
    revisions = list(a.revisions_missing_from(b.knowledge()))
    inflated = b.knowledge().merged(VersionVector({a.device.device_id: revisions[0].revision_id.seq}))
    before = vault_state(b)
    peer, replies = deliver(b, a, [hello_of(a), early(inflated, revisions[1:])])
    assert not peer.failed and peer.stats.revisions_new == 0 and vault_state(b) == before
