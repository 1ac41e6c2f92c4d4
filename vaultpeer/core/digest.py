"""A Merkle tree over every item's heads, to prove two devices converged or find where they differ.

Items are placed in leaves by the first ``DEPTH`` hex digits of their id (16-way fan-out, 65,536
leaves). A leaf hashes its items' ids and sorted heads; an inner node hashes its 16 children. Equal
roots mean identical heads for every item; otherwise comparing children level by level finds the
differing leaves in ``DEPTH`` round trips, whatever the vault's size.
"""

import hashlib
from collections.abc import Iterable

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


class StateDigest:
    def __init__(self, items: Iterable[tuple[ItemId, Iterable[RevisionId]]]):
        rows = sorted((item_id.raw, head.author.raw, head.seq) for item_id, heads in items for head in heads)
        self._build(rows)

    @classmethod
    def from_head_rows(cls, rows: Iterable[tuple[bytes, bytes, int]]) -> "StateDigest":
        """From ``(item id, head author, head seq)`` rows sorted in that order (as the store gives
        them): the same digest, without building an object per head."""
        digest = cls.__new__(cls)
        digest._build(rows)
        return digest

    def _build(self, rows: Iterable[tuple[bytes, bytes, int]]) -> None:
        leaves: dict[str, list] = {}
        current: list | None = None
        for item_raw, author, seq in rows:
            if current is None or current[0] != item_raw:
                current = [item_raw, []]
                leaves.setdefault(item_raw[: DEPTH // 2].hex(), []).append(current)
            current[1].append([author, seq])
        self._nodes: dict[str, bytes] = {
            path: _hash(b"leaf" + encoding.encode(entries)) for path, entries in leaves.items()
        }
        for depth in range(DEPTH - 1, -1, -1):
            parents = {path[:depth] for path in self._nodes if len(path) == depth + 1}
            for parent in parents:
                self._nodes[parent] = _hash(b"node" + b"".join(self.children(parent)))
        self._leaf_items = {path: [raw for raw, _ in entries] for path, entries in leaves.items()}

    @property
    def root(self) -> bytes:
        return self._nodes.get("", EMPTY)

    def node(self, path: str) -> bytes:
        return self._nodes.get(path, EMPTY)

    def children(self, path: str) -> list[bytes]:
        return [self._nodes.get(path + c, EMPTY) for c in HEX]

    def items_in(self, leaf: str) -> list[ItemId]:
        return [ItemId(raw) for raw in self._leaf_items.get(leaf, ())]

    def differing_children(self, path: str, remote_children: list[bytes]) -> list[str]:
        return [path + c for c, local, remote in zip(HEX, self.children(path), remote_children, strict=True) if local != remote]
