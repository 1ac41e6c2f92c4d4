"""A lazy sync session makes its batches as they are pulled, one message at a time: nothing of them
is built when the peer's hello arrives, and the digest comes after the last."""

from helpers import make_replicas
from vaultpeer.core.item import ItemContent
from vaultpeer.core.sync import MAX_BATCH_REVISIONS, decode_message, Digest, Done, Records
from vaultpeer.service.replication import FIRST_BATCH_REVISIONS, SyncPeer


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
    first = FIRST_BATCH_REVISIONS  # a small first batch: the peer starts on it while the rest is made
    assert kinds == [Records, Records, Records, Digest]
    assert sent == [first, first + MAX_BATCH_REVISIONS, 2 * MAX_BATCH_REVISIONS + 5, 2 * MAX_BATCH_REVISIONS + 5]
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


def test_a_lazy_receiver_makes_its_digest_after_a_batch_only_when_it_is_pulled():
    """What a batch stored is announced before this side's digest is built: for the peer's last
    batch a lazy session returns nothing, and makes its digest when the link's writer asks for it
    (after any hold); a digest the peer sent meanwhile is answered then."""
    a, b = make_replicas(2)
    a.add_many(ItemContent.build(f"item {n}", {"password": f"pw {n}"}) for n in range(3))
    sender = SyncPeer(a, initiator=True, peer=b.device.device_id)
    receiver = SyncPeer(b, initiator=False, peer=a.device.device_id, lazy=True)
    hello_a, hello_b = sender.start()[0], receiver.start()[0]
    assert receiver.receive(hello_a) == []
    last_b = receiver.next_pending()  # b's (empty) last batch; no digest: a's last is still to come
    assert isinstance(decode_message(last_b), Records) and receiver.next_pending() is None
    batches = sender.receive(hello_b)
    digest_a = sender.receive(last_b)
    assert [type(decode_message(m)) for m in batches] == [Records] and [type(decode_message(m)) for m in digest_a] == [Digest]
    assert receiver.receive(batches[0]) == [] and receiver.has_pending  # stored; the digest is made when pulled
    assert b.counts()["revisions"] == 3
    assert receiver.receive(digest_a[0]) == []  # a's digest waits for ours
    pulled = []
    while (message := receiver.next_pending()) is not None:
        pulled.append(message)
    assert [type(decode_message(m)) for m in pulled] == [Digest, Done]
    assert sender.receive(pulled[0]) != [] and receiver.converged
