import stat

import pytest

from vaultpeer.core.errors import IntegrityError
from vaultpeer.core.identity import DeviceKeys
from vaultpeer.core.item import ItemContent, ItemId
from vaultpeer.core.keys import Keyring
from vaultpeer.core.revision import seal_revision
from vaultpeer.service.store import Store

VAULT = b"V" * 16


@pytest.fixture
def store(tmp_path):
    opened = Store.open(tmp_path / "vault.sqlite3")
    yield opened
    opened.close()


def chain(length):
    author, keyring, item = DeviceKeys.generate(), Keyring.new(), ItemId.generate()
    revisions, parents = [], ()
    for seq in range(1, length + 1):
        revision = seal_revision(vault_id=VAULT, keyring=keyring, author=author, item_id=item, seq=seq,
                                 parents=parents, content=ItemContent.build(f"v{seq}"))
        revisions.append(revision)
        parents = (revision.revision_id,)
    return revisions


def test_database_is_owner_only_and_in_wal_mode(tmp_path, store):
    mode = stat.S_IMODE((tmp_path / "vault.sqlite3").stat().st_mode)
    assert mode == 0o600
    assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_delivery_must_be_causal_and_heads_follow_parents(store):
    first, second, third = chain(3)
    with pytest.raises(IntegrityError):
        store.insert_revisions([first, third])  # third's parent is neither stored nor in the batch
    assert store.revision(first.revision_id) is None  # nothing of the batch was stored
    store.insert_revisions([first, second])
    assert [r.revision_id for r in store.heads_of(first.item_id)] == [second.revision_id]
    store.insert_revisions([third])
    assert [r.revision_id for r in store.heads_of(first.item_id)] == [third.revision_id]
    assert store.knowledge().get(first.author) == 3


def test_a_parent_from_another_item_is_rejected(store):
    (one,), (other,) = chain(1), chain(1)
    store.insert_revisions([one])
    import dataclasses
    forged = dataclasses.replace(other, parents=(one.revision_id,))
    with pytest.raises(IntegrityError):
        store.insert_revisions([forged])


def test_knowledge_is_the_contiguous_prefix_per_author(store):
    revisions = chain(4)
    store.insert_revisions(revisions)
    assert store.knowledge().get(revisions[0].author) == 4
    assert [r.revision_id.seq for r in store.revisions_after(store.knowledge())] == []
    from vaultpeer.core.vclock import VersionVector
    partial = VersionVector({revisions[0].author: 2})
    assert [r.revision_id.seq for r in store.revisions_after(partial)] == [3, 4]


def test_replays_are_harmless_and_equivocation_rejects_the_batch(store):
    first, second = chain(2)
    assert store.insert_revisions([first]) == [first]
    assert store.insert_revisions([first]) == []
    forged_twin = chain(1)[0]  # another revision claiming seq 1 of a different author is fine...
    assert store.insert_revisions([forged_twin]) == [forged_twin]
    import dataclasses
    contradiction = dataclasses.replace(first, ciphertext=first.ciphertext[::-1])
    with pytest.raises(IntegrityError):
        store.insert_revisions([second, contradiction])
    assert store.revision(second.revision_id) is None  # nothing of the batch was stored


def test_next_seq_counts_per_author(store):
    revisions = chain(3)
    store.insert_revisions(revisions)
    assert store.next_seq(revisions[0].author) == 4
    assert store.next_seq(DeviceKeys.generate().device_id) == 1


def test_store_id_is_stable_and_random(tmp_path, store):
    other = Store.open(tmp_path / "other.sqlite3")
    other_id = other.store_id
    assert store.store_id != other_id and len(store.store_id) == 16
    other.close()
    reopened = Store.open(tmp_path / "other.sqlite3")
    assert reopened.store_id == other_id
    reopened.close()


def test_a_peers_knowledge_costs_no_commit_of_its_own_and_is_written_with_the_next_one(tmp_path):
    """What a hello says a peer holds is bookkeeping (it only lets us send less), so raising it must
    not make a sync session wait for a commit: it is written by the next transaction, by
    ``save_peer_knowledge`` and on close; a crash before that loses only it."""
    from vaultpeer.core.vclock import VersionVector

    peer, author = DeviceKeys.generate().device_id, DeviceKeys.generate().device_id
    store = Store.open(tmp_path / "vault.sqlite3")

    def on_disk(device_id):
        other = Store.open(tmp_path / "vault.sqlite3")  # another connection sees only what is committed
        try:
            return other.peer_knowledge(device_id)
        finally:
            other._db.close()

    commits = []
    store._db.set_trace_callback(lambda sql: commits.append(sql) if sql == "COMMIT" else None)
    store.raise_peer_knowledge(peer, VersionVector({author: 3}))
    store.raise_peer_knowledge(peer, VersionVector({author: 2}))  # never lowered
    assert commits == [] and on_disk(peer) is None
    assert store.peer_knowledge(peer) == VersionVector({author: 3})

    store.insert_revisions(chain(1))  # any durable change carries it along
    assert commits == ["COMMIT"] and on_disk(peer) == VersionVector({author: 3})

    store.raise_peer_knowledge(peer, VersionVector({author: 5}))
    store.save_peer_knowledge()
    assert on_disk(peer) == VersionVector({author: 5})
    store.save_peer_knowledge()  # nothing new: no commit
    assert commits == ["COMMIT", "COMMIT"]

    store.raise_peer_knowledge(peer, VersionVector({author: 7}))
    store.close()
    assert on_disk(peer) == VersionVector({author: 7})


def test_a_large_batch_is_written_in_order_with_every_edge_and_head(store):
    """A batch is written several rows per statement (``Store._insert``), the rest one by one:
    nothing is lost or reordered at the seams. One long chain (each a child of the one before)
    and single-revision items beside it."""
    from vaultpeer.core.vclock import VersionVector
    from vaultpeer.service import store as store_module

    per = store_module._ROWS_PER_INSERT
    long = chain(2 * per + 7)
    singles = [revision for _ in range(per + 3) for revision in chain(1)]
    batch = [r for pair in zip(long, singles) for r in pair] + long[len(singles):]
    assert store.insert_revisions(batch) == batch
    assert [r.revision_id for r in store.revisions_after(VersionVector({}))] == [r.revision_id for r in batch]
    assert [r.revision_id for r in store.heads_of(long[0].item_id)] == [long[-1].revision_id]
    assert all([h.revision_id for h in store.heads_of(r.item_id)] == [r.revision_id] for r in singles)
    edges = store._db.execute("SELECT COUNT(*) FROM edges").fetchone()[0]
    assert edges == len(long) - 1
    assert store.counts()["items"] == 1 + len(singles) and store.counts()["revisions"] == len(batch)
