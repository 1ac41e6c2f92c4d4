"""Revisions: the unit of storage and replication.

A revision is one state of one item, written by one device. Its plaintext (the item content) is
padded to a size bucket and sealed with ChaCha20-Poly1305 under the vault key of its epoch; the
associated data binds the vault id, item id, revision id, parents, deleted flag and epoch, so a
ciphertext cannot be moved to another item, revision or vault. The author signs the whole record
(metadata and ciphertext) with its Ed25519 key, so a *locked* device, which has no vault key, can
still check that what it receives comes unaltered from a member.
"""

import hashlib
import os
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from vaultpeer.core import encoding
from vaultpeer.core.errors import IntegrityError
from vaultpeer.core.identity import DeviceId, DeviceKeys, DevicePublicKeys
from vaultpeer.core.item import MAX_CONTENT_BYTES, ItemContent, ItemId
from vaultpeer.core.keys import NONCE_SIZE, Keyring

_SIGNED_DOMAIN = "vaultpeer revision v1"
_SEALED_DOMAIN = "vaultpeer revision content v1"
MAX_PARENTS = 64
SMALLEST_BUCKET = 256
#: Past this size, buckets grow in steps of this size instead of doubling.
LARGE_BUCKET_STEP = 64 * 1024
_LENGTH_PREFIX = struct.Struct(">I")
MAX_CIPHERTEXT = MAX_CONTENT_BYTES + LARGE_BUCKET_STEP + 64
MAX_RECORD_SIZE = MAX_CIPHERTEXT + 8 * 1024


@dataclass(frozen=True, order=True, slots=True)
class RevisionId:
    """``(author, seq)``: the author's own counter, which counts every revision it ever wrote."""

    author: DeviceId
    seq: int

    def __post_init__(self) -> None:
        if not isinstance(self.seq, int) or isinstance(self.seq, bool) or not 1 <= self.seq < 2**63:
            raise ValueError("a revision counter is a positive 63-bit integer")

    def __str__(self) -> str:
        return f"{self.author.short}-{self.seq}"

    def to_record(self) -> list:
        return [self.author.raw, self.seq]

    @classmethod
    def from_record(cls, record: object) -> "RevisionId":
        author, seq = record  # type: ignore[misc]
        return cls(DeviceId(author), seq)


@dataclass(frozen=True, slots=True)
class Revision:
    item_id: ItemId
    revision_id: RevisionId
    parents: tuple[RevisionId, ...]
    deleted: bool
    key_epoch: int
    nonce: bytes
    ciphertext: bytes
    signature: bytes

    def __post_init__(self) -> None:
        if (
            len(self.parents) > MAX_PARENTS
            or tuple(sorted(set(self.parents))) != self.parents
            or self.revision_id in self.parents
            or not isinstance(self.deleted, bool)
            or not isinstance(self.key_epoch, int)
            or isinstance(self.key_epoch, bool)
            or not 0 <= self.key_epoch < 2**32
            or not isinstance(self.nonce, bytes)
            or len(self.nonce) != NONCE_SIZE
            or not isinstance(self.ciphertext, bytes)
            or len(self.ciphertext) > MAX_CIPHERTEXT
            or not isinstance(self.signature, bytes)
            or len(self.signature) != 64
        ):
            raise ValueError("malformed revision")

    @property
    def author(self) -> DeviceId:
        return self.revision_id.author

    def _metadata(self) -> list:
        return [
            self.item_id.raw,
            self.revision_id.to_record(),
            [p.to_record() for p in self.parents],
            self.deleted,
            self.key_epoch,
        ]

    def signed_bytes(self, vault_id: bytes) -> bytes:
        return encoding.encode([_SIGNED_DOMAIN, vault_id, *self._metadata(), self.nonce, self.ciphertext])

    def verify(self, vault_id: bytes, author_keys: DevicePublicKeys | None) -> None:
        """Raise IntegrityError unless the named author signed exactly this record for this vault."""
        if (
            author_keys is None
            or author_keys.device_id != self.author
            or not author_keys.verify(self.signature, self.signed_bytes(vault_id))
        ):
            raise IntegrityError()

    def to_record(self) -> list:
        """The form used on the wire and in bundles (the vault id travels once, beside it)."""
        return [*self._metadata(), self.nonce, self.ciphertext, self.signature]

    @classmethod
    def from_record(cls, record: object) -> "Revision":
        """Parse (not verify) a revision record; any malformation is an IntegrityError."""
        try:
            item_id, revision_id, parents, deleted, key_epoch, nonce, ciphertext, signature = record  # type: ignore[misc]
            if not isinstance(parents, list):
                raise TypeError
            return cls(
                item_id=ItemId(item_id),
                revision_id=RevisionId.from_record(revision_id),
                parents=tuple(RevisionId.from_record(p) for p in parents),
                deleted=deleted,
                key_epoch=key_epoch,
                nonce=nonce,
                ciphertext=ciphertext,
                signature=signature,
            )
        except (TypeError, ValueError):
            raise IntegrityError() from None

    def to_bytes(self) -> bytes:
        return encoding.encode(self.to_record())

    @property
    def record_hash(self) -> bytes:
        """BLAKE2b-256 of the whole record: two revisions under one id differ exactly when this does."""
        return hashlib.blake2b(self.to_bytes(), digest_size=32).digest()

    @classmethod
    def from_bytes(cls, data: bytes) -> "Revision":
        return cls.from_record(encoding.decode(data, max_size=MAX_RECORD_SIZE))


def bucket_size(length: int) -> int:
    """The padded size for ``length`` bytes: powers of two from 256 B, then 64 KiB steps."""
    size = SMALLEST_BUCKET
    while size < length and size < LARGE_BUCKET_STEP:
        size *= 2
    if size < length:
        size = -(-length // LARGE_BUCKET_STEP) * LARGE_BUCKET_STEP
    return size


def _pad(plaintext: bytes) -> bytes:
    framed = _LENGTH_PREFIX.pack(len(plaintext)) + plaintext
    return framed + bytes(bucket_size(len(framed)) - len(framed))


def _unpad(padded: bytes) -> bytes:
    if len(padded) < _LENGTH_PREFIX.size:
        raise IntegrityError()
    (length,) = _LENGTH_PREFIX.unpack_from(padded)
    end = _LENGTH_PREFIX.size + length
    if end > len(padded) or any(padded[end:]):
        raise IntegrityError()
    return padded[_LENGTH_PREFIX.size : end]


def _associated_data(vault_id: bytes, item_id: ItemId, revision_id: RevisionId,
                     parents: tuple[RevisionId, ...], deleted: bool, key_epoch: int) -> bytes:
    return encoding.encode(
        [_SEALED_DOMAIN, vault_id, item_id.raw, revision_id.to_record(),
         [p.to_record() for p in parents], deleted, key_epoch]
    )


def seal_revision(
    *,
    vault_id: bytes,
    keyring: Keyring,
    author: DeviceKeys,
    item_id: ItemId,
    seq: int,
    parents: Iterable[RevisionId],
    content: ItemContent,
    deleted: bool = False,
    random_bytes: Callable[[int], bytes] = os.urandom,
) -> Revision:
    """Encrypt and sign one new revision. ``seq`` is the author's next counter value."""
    revision_id = RevisionId(author.device_id, seq)
    parents = tuple(sorted(set(parents)))
    epoch = keyring.current_epoch
    nonce = random_bytes(NONCE_SIZE)
    ciphertext = ChaCha20Poly1305(keyring.key(epoch)).encrypt(
        nonce,
        _pad(content.to_plaintext()),
        _associated_data(vault_id, item_id, revision_id, parents, deleted, epoch),
    )
    unsigned = Revision(item_id, revision_id, parents, deleted, epoch, nonce, ciphertext, bytes(64))
    return Revision(
        item_id, revision_id, parents, deleted, epoch, nonce, ciphertext,
        author.sign(unsigned.signed_bytes(vault_id)),
    )


def open_revision(vault_id: bytes, keyring: Keyring, revision: Revision) -> ItemContent:
    """Decrypt a revision's content, or raise IntegrityError (the one error for every failure)."""
    try:
        padded = ChaCha20Poly1305(keyring.key(revision.key_epoch)).decrypt(
            revision.nonce,
            revision.ciphertext,
            _associated_data(vault_id, revision.item_id, revision.revision_id, revision.parents,
                             revision.deleted, revision.key_epoch),
        )
    except InvalidTag:
        raise IntegrityError() from None
    return ItemContent.from_plaintext(_unpad(padded))
