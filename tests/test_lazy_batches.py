"""A lazy sync session makes its batches as they are pulled, one message at a time: nothing of them
is built when the peer's hello arrives, and the digest comes after the last."""

from helpers import make_replicas
from vaultpeer.core.item import ItemContent
from vaultpeer.core.sync import MAX_BATCH_REVISIONS, decode_message, Digest, Records
from vaultpeer.service.replication import SyncPeer


def test_a_lazy_session_makes_each_batch_only_when_the_one_before_was_taken():
    a, b = make_replicas(2)
    a.add_many(ItemContent.build(f"item {n}", {"password": f"pw {n}"}) for n in range(2 * MAX_BATCH_REVISIONS + 5))
    sender = SyncPeer(a, initiator=True, peer=b.device.device_id, lazy=True)
    receiver = SyncPeer(b, initiator=False, peer=a.device.device_id)
    replies = receiver.start() + receiver.receive(sender.start()[0])  # its hello, its (empty) last batch
    assert sender.receive(replies[0]) == []  # the hello: nothing made yet
    assert sender.has_pending and sender.stats.revisions_sent == 0
    for reply in replies[1:]:
        assert sender.receive(reply) == []  # the digest waits for our own last batch

    kinds, sent = [], []
    while (message := sender.next_pending()) is not None:
        sent.append(sender.stats.revisions_sent)
        decoded = decode_message(message)
        kinds.append(type(decoded))
        receiver.receive(message)
    assert kinds == [Records, Records, Records, Digest]
    assert sent == [MAX_BATCH_REVISIONS, 2 * MAX_BATCH_REVISIONS, 2 * MAX_BATCH_REVISIONS + 5,
                    2 * MAX_BATCH_REVISIONS + 5]
    assert not sender.has_pending
    assert b.counts()["revisions"] == 2 * MAX_BATCH_REVISIONS + 5


def test_a_failed_lazy_session_sends_no_further_batch():
    a, b = make_replicas(2)
    a.add_many(ItemContent.build(f"item {n}", {}) for n in range(MAX_BATCH_REVISIONS + 1))
    sender = SyncPeer(a, initiator=True, peer=b.device.device_id, lazy=True)
    receiver = SyncPeer(b, initiator=False, peer=a.device.device_id)
    sender.start()
    sender.receive(receiver.start()[0])
    assert sender.next_pending() is not None
    sender.receive(b"\xff not a message")  # the peer broke the protocol: the session fails
    assert sender.failed and sender.next_pending() is None and not sender.has_pending
