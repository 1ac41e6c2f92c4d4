"""A Merkle tree over every item's heads, to prove two devices converged or find where they differ.

Items are placed in leaves by the first ``DEPTH`` hex digits of their id (16-way fan-out, 65,536
leaves). An item hashes every revision it has (id and the hash of its whole record); a leaf hashes
its items' ids and hashes; an inner node hashes its 16 children. Equal roots mean identical
revisions, content included, for every item; otherwise comparing children level by level finds the
differing leaves in ``DEPTH`` round trips, whatever the vault's size.
"""

import hashlib
from collections.abc import Iterable, Iterator

from vaultpeer.core import encoding
from vaultpeer.core.item import ItemId
from vaultpeer.core.revision import RevisionId

FANOUT = 16
DEPTH = 4
HASH_SIZE = 32
EMPTY = bytes(HASH_SIZE)
HEX = "0123456789abcdef"


def _hash(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=HASH_SIZE).digest()


def leaf_path(item_id: ItemId) -> str:
    return item_id.raw.hex()[:DEPTH]


def is_leaf_path(path: str) -> bool:
    return len(path) == DEPTH


def valid_path(path: object) -> bool:
    return isinstance(path, str) and len(path) <= DEPTH and all(c in HEX for c in path)


#: How many layers a digest's maps may have before they are merged into one.
MAX_LAYERS = 16
_MISSING = object()


class _Layers:
    """A read-only mapping kept as dict layers, the newest first; ``None`` in a layer hides the key
    below it. A snapshot made by ``StateDigest.updated`` adds one small layer (what changed) over
    the layers it shares with the snapshot it came from, which nothing ever changes. Past
    ``MAX_LAYERS`` the recent layers are merged into one new dict over the oldest (the base), and
    into a new base once they hold an eighth of its size: an edit on a 100,000-item vault costs a
    few hashes and, amortised, a few copied entries, not a copy of 50,000 leaves."""

    __slots__ = ("_layers",)

    def __init__(self, layers: tuple[dict, ...]):
        self._layers = layers

    def get(self, key, default=None):
        for layer in self._layers:
            value = layer.get(key, _MISSING)
            if value is not _MISSING:
                return default if value is None else value
        return default

    def over(self, changes: dict) -> "_Layers":
        layers = (changes, *self._layers)
        if len(layers) <= MAX_LAYERS:
            return _Layers(layers)
        *recent, base = layers
        merged: dict = {}
        for layer in reversed(recent):
            merged.update(layer)
        if len(merged) * 8 < len(base):  # the recent layers merge into one, over the base
            return _Layers((merged, base))
        whole = {**base, **merged}
        return _Layers(({key: value for key, value in whole.items() if value is not None},))


class StateDigest:
    """An immutable snapshot of the tree. ``updated`` gives a new snapshot with some items'
    revisions replaced, recomputing only their leaves and the nodes above them (a few hashes per edit
    instead of one per item: the digest of a 100,000-item vault is built once, then kept current).

    It commits to every revision's content, not only to its id: two devices that hold different
    revisions under one id (an author that equivocated) never have equal digests."""

    def __init__(self, items: Iterable[tuple[ItemId, Iterable[tuple[RevisionId, bytes]]]]):
        rows = sorted((item_id.raw, rid.author.raw, rid.seq, content_hash)
                      for item_id, revisions in items for rid, content_hash in revisions)
        self._build(rows)

    @classmethod
    def from_revision_rows(cls, rows: Iterable[tuple[bytes, bytes, int, bytes]]) -> "StateDigest":
        """From ``(item id, author, seq, record hash)`` rows sorted in that order (as the store gives
        them): the same digest, without building an object per revision."""
        digest = cls.__new__(cls)
        digest._build(rows)
        return digest

    def _build(self, rows: Iterable[tuple[bytes, bytes, int, bytes]]) -> None:
        #: leaf path -> {item id bytes: the item's hash}
        leaves: dict[str, dict[bytes, bytes]] = {}
        # rows come sorted by item: one item's revisions in hand at a time (the rows may be a
        # database cursor over 100,000 revisions, never all in memory at once)
        for item_raw, revisions in _grouped(rows):
            leaf = leaves.get(path := item_raw[: DEPTH // 2].hex())
            if leaf is None:
                leaf = leaves[path] = {}
            leaf[item_raw] = item_hash(revisions)
        #: node path (a leaf's included) -> its hash
        nodes: dict[str, bytes] = {path: _leaf_hash(items) for path, items in leaves.items()}
        for depth in range(DEPTH - 1, -1, -1):
            parents = {path[:depth] for path in nodes if len(path) == depth + 1}
            for parent in parents:
                nodes[parent] = _hash(b"node" + b"".join(nodes.get(parent + c, EMPTY) for c in HEX))
        self._leaves, self._nodes = _Layers((leaves,)), _Layers((nodes,))

    def updated(self, rows: Iterable[tuple[bytes, bytes, int, bytes]], item_ids: Iterable[bytes]) -> "StateDigest":
        """A new digest in which the items ``item_ids`` (raw ids) have exactly the revisions given in
        ``rows`` (``(item id, author, seq, record hash)``; an item with no row leaves the tree).
        This digest is unchanged."""
        revisions: dict[bytes, list] = {raw: [] for raw in item_ids}
        for item_raw, author, seq, content_hash in rows:
            revisions.setdefault(item_raw, []).append((author, seq, content_hash))
        if not revisions:
            return self
        # only the touched leaves are copied, and only the nodes above them hashed again; the
        # new snapshot puts them over this one's (which stays as it is)
        leaves: dict[str, dict[bytes, bytes] | None] = {}
        for item_raw, item_revisions in revisions.items():
            path = item_raw[: DEPTH // 2].hex()
            items = leaves[path] if path in leaves else dict(self._leaves.get(path, {}))
            if item_revisions:
                items[item_raw] = item_hash(item_revisions)
            else:
                items.pop(item_raw, None)
            leaves[path] = items
        nodes: dict[str, bytes | None] = {}
        for path, items in leaves.items():
            nodes[path] = _leaf_hash(items) if items else None
            if not items:
                leaves[path] = None

        def node(path: str) -> bytes:
            value = nodes[path] if path in nodes else self._nodes.get(path)
            return EMPTY if value is None else value

        touched = set(leaves)
        for depth in range(DEPTH - 1, -1, -1):
            touched = {path[:depth] for path in touched}
            for parent in touched:
                children = [node(parent + c) for c in HEX]
                nodes[parent] = _hash(b"node" + b"".join(children)) if any(c != EMPTY for c in children) else None
        digest = StateDigest.__new__(StateDigest)
        digest._leaves = self._leaves.over(leaves)
        digest._nodes = self._nodes.over(nodes)
        return digest

    @property
    def root(self) -> bytes:
        return self._nodes.get("", EMPTY)

    def node(self, path: str) -> bytes:
        return self._nodes.get(path, EMPTY)

    def children(self, path: str) -> list[bytes]:
        return [self._nodes.get(path + c, EMPTY) for c in HEX]

    def items_in(self, leaf: str) -> list[ItemId]:
        return [ItemId(raw) for raw in sorted(self._leaves.get(leaf, ()))]

    def differing_children(self, path: str, remote_children: list[bytes]) -> list[str]:
        return [path + c for c, local, remote in zip(HEX, self.children(path), remote_children, strict=True) if local != remote]


def _grouped(rows: Iterable[tuple[bytes, bytes, int, bytes]]) -> Iterator[tuple[bytes, list]]:
    """Rows sorted by item id, as (item id, [(author, seq, hash)...]) one item at a time."""
    current, revisions = None, []
    for item_raw, author, seq, content_hash in rows:
        if item_raw != current:
            if revisions:
                if item_raw < current:
                    raise ValueError("revision rows must come sorted by item id")
                yield current, revisions
            current, revisions = item_raw, []
        revisions.append((author, seq, content_hash))
    if revisions:
        yield current, revisions


def item_hash(revisions: Iterable[tuple[bytes, int, bytes]]) -> bytes:
    """``BLAKE2b-256("item" || CBOR [[author, seq, record hash], ...])``, sorted by (author, seq)."""
    return _hash(b"item" + encoding.encode([[a, s, h] for a, s, h in sorted(revisions)]))


def _leaf_hash(items: dict[bytes, bytes]) -> bytes:
    """``BLAKE2b-256("leaf" || CBOR [[item_id, item hash], ...])``, items sorted by id."""
    return _hash(b"leaf" + encoding.encode([[raw, items[raw]] for raw in sorted(items)]))
