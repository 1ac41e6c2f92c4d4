"""The state digest: its hashes are the ones docs/protocol.md specifies, it commits to each
revision's content (not only its id), and updating a digest for some changed items always gives the
digest a full rebuild would give."""

import hashlib
import random

import cbor2
from hypothesis import given, settings
from hypothesis import strategies as st

from vaultpeer.core.digest import EMPTY, StateDigest


def spec_root(rows: list[tuple[bytes, bytes, int, bytes]]) -> bytes:
    """The root computed straight from the protocol spec, independently of the implementation."""
    h = lambda data: hashlib.blake2b(data, digest_size=32).digest()  # noqa: E731
    items: dict[bytes, list] = {}
    for item, author, seq, record_hash in rows:
        items.setdefault(item, []).append([author, seq, record_hash])
    nodes: dict[str, bytes] = {}
    leaves: dict[str, list] = {}
    for item in sorted(items):
        item_hash = h(b"item" + cbor2.dumps(sorted(items[item]), canonical=True))
        leaves.setdefault(item[:2].hex(), []).append([item, item_hash])
    for path, entries in leaves.items():
        nodes[path] = h(b"leaf" + cbor2.dumps(entries, canonical=True))

    def node(path: str) -> bytes:
        if len(path) == 4:
            return nodes.get(path, EMPTY)
        if not any(leaf.startswith(path) for leaf in nodes):
            return EMPTY
        children = [node(path + c) for c in "0123456789abcdef"]
        return EMPTY if all(c == EMPTY for c in children) else h(b"node" + b"".join(children))

    return node("")


def rows_of(revisions: dict[bytes, set]) -> list[tuple[bytes, bytes, int, bytes]]:
    """Digest rows; each revision's record hash is made up from its id (or given)."""
    return sorted((item, author, seq, _hash_of(author, seq, rest))
                  for item, entries in revisions.items() for author, seq, *rest in entries)


def _hash_of(author: bytes, seq: int, rest: list) -> bytes:
    return rest[0] if rest else hashlib.blake2b(author + seq.to_bytes(8, "big"), digest_size=32).digest()


def random_item(rng: random.Random) -> bytes:
    # few distinct leading bytes, so leaves hold several items and subtrees empty out
    return bytes([rng.choice((0, 1, 0xAB)), rng.choice((0, 7))]) + rng.randbytes(14)


def test_the_root_is_the_one_the_protocol_spec_defines():
    rng = random.Random(5)
    heads = {random_item(rng): {(rng.randbytes(32), rng.randint(1, 9)) for _ in range(rng.randint(1, 3))}
             for _ in range(40)}
    assert StateDigest.from_revision_rows(rows_of(heads)).root == spec_root(rows_of(heads))
    assert StateDigest.from_revision_rows([]).root == EMPTY


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**32), st.integers(1, 40))  # past MAX_LAYERS: the layers merge
def test_updating_a_digest_equals_rebuilding_it(seed, steps):
    rng = random.Random(seed)
    authors = [rng.randbytes(32) for _ in range(3)]
    heads = {random_item(rng): {(rng.choice(authors), 1)} for _ in range(rng.randint(0, 12))}
    digest = StateDigest.from_revision_rows(rows_of(heads))
    first = digest  # kept across every update (and the merges of their layers): it never changes
    first_seen = (first.root, [first.children(path) for path in ("", "0", "ab", "0107")])
    for _ in range(steps):
        before = digest
        before_root = before.root
        changed = set()
        for _ in range(rng.randint(0, 4)):
            roll = rng.random()
            if roll < 0.4 or not heads:
                item = random_item(rng)  # new item
            else:
                item = rng.choice(sorted(heads))
            changed.add(item)
            if roll > 0.85:
                heads.pop(item, None)  # the item's heads are gone (the digest must drop it)
            else:
                heads[item] = {(rng.choice(authors), rng.randint(1, 50)) for _ in range(rng.randint(1, 3))}
        rows = [row for row in rows_of(heads) if row[0] in changed]
        digest = digest.updated(rows, changed)
        rebuilt = StateDigest.from_revision_rows(rows_of(heads))
        assert digest.root == rebuilt.root == spec_root(rows_of(heads))
        for path in ("", "0", "00", "000", "0000", "ab", "ab0", "0107"):
            assert digest.children(path) == rebuilt.children(path)
            assert digest.items_in(path.ljust(4, "0")) == rebuilt.items_in(path.ljust(4, "0"))
        assert before.root == before_root  # a snapshot never changes under a session using it
    assert (first.root, [first.children(path) for path in ("", "0", "ab", "0107")]) == first_seen


def test_two_revisions_under_one_id_with_different_content_give_different_roots():
    item, author = bytes(16), bytes(range(32))
    one = StateDigest.from_revision_rows(rows_of({item: {(author, 1, b"\x01" * 32)}}))
    other = StateDigest.from_revision_rows(rows_of({item: {(author, 1, b"\x02" * 32)}}))
    assert one.root != other.root
    assert one.differing_children("", other.children("")) == ["0"]


def test_a_long_run_of_updates_on_a_large_digest_equals_rebuilding_it_and_old_snapshots_stay():
    """Many small updates on thousands of items: the recent layers merge over the base, then into a
    new base (digest._Layers), and every snapshot still reads as it did."""
    rng = random.Random(20)
    author = rng.randbytes(32)
    heads = {random_item(rng): {(author, 1)} for _ in range(2_000)}
    digest = StateDigest.from_revision_rows(rows_of(heads))
    kept = []
    for step in range(400):
        item = rng.choice(sorted(heads)) if rng.random() < 0.8 else random_item(rng)
        if rng.random() < 0.1:
            heads.pop(item, None)
        else:
            heads[item] = {(author, step + 2)}
        digest = digest.updated([row for row in rows_of(heads) if row[0] == item], [item])
        if step % 50 == 0:
            kept.append((digest, digest.root, digest.children(item[:1].hex()[:2]), item[:1].hex()[:2]))
    rebuilt = StateDigest.from_revision_rows(rows_of(heads))
    assert digest.root == rebuilt.root
    for path in ("", "a", "3f", "07c", "1234"):
        assert digest.children(path) == rebuilt.children(path)
    for snapshot, root, children, path in kept:
        assert snapshot.root == root and snapshot.children(path) == children
