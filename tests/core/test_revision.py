import dataclasses

import pytest

from vaultpeer.core.errors import IntegrityError
from vaultpeer.core.identity import DeviceKeys
from vaultpeer.core.item import ItemContent, ItemId
from vaultpeer.core.keys import Keyring
from vaultpeer.core.revision import (
    Revision,
    RevisionId,
    bucket_size,
    open_revision,
    seal_revision,
)

VAULT = b"V" * 16


@pytest.fixture
def author():
    return DeviceKeys.generate()


@pytest.fixture
def keyring():
    return Keyring.new()


def seal(author, keyring, content=None, item_id=None, seq=1, parents=(), deleted=False):
    return seal_revision(
        vault_id=VAULT,
        keyring=keyring,
        author=author,
        item_id=item_id or ItemId.generate(),
        seq=seq,
        parents=parents,
        content=content or ItemContent.build("Email", {"username": "alice", "password": "hunter2"}),
        deleted=deleted,
    )


def test_seal_open_round_trip_through_bytes(author, keyring):
    revision = seal(author, keyring)
    received = Revision.from_bytes(revision.to_bytes())
    assert received == revision
    received.verify(VAULT, author.public)
    content = open_revision(VAULT, keyring, received)
    assert content.title == "Email" and content.field_map() == {"username": "alice", "password": "hunter2"}


def test_ciphertext_cannot_move_to_another_item_revision_parent_or_vault(author, keyring):
    revision = seal(author, keyring)
    other = RevisionId(author.device_id, 99)
    moved = [
        dataclasses.replace(revision, item_id=ItemId.generate()),
        dataclasses.replace(revision, revision_id=RevisionId(author.device_id, 2)),
        dataclasses.replace(revision, parents=(other,)),
        dataclasses.replace(revision, deleted=True),
    ]
    for candidate in moved:
        with pytest.raises(IntegrityError):
            open_revision(VAULT, keyring, candidate)
        with pytest.raises(IntegrityError):
            candidate.verify(VAULT, author.public)
    with pytest.raises(IntegrityError):
        open_revision(b"W" * 16, keyring, revision)
    with pytest.raises(IntegrityError):
        revision.verify(b"W" * 16, author.public)


def test_tampered_ciphertext_or_signature_fails_without_the_vault_key(author, keyring):
    """A locked device (no keyring) still detects tampering, through the signature."""
    revision = seal(author, keyring)
    flipped = bytes([revision.ciphertext[0] ^ 1]) + revision.ciphertext[1:]
    for bad in (
        dataclasses.replace(revision, ciphertext=flipped),
        dataclasses.replace(revision, nonce=bytes(12)),
        dataclasses.replace(revision, signature=bytes([revision.signature[0] ^ 1]) + revision.signature[1:]),
    ):
        with pytest.raises(IntegrityError) as caught:
            bad.verify(VAULT, author.public)
        assert str(caught.value) == str(IntegrityError())
    with pytest.raises(IntegrityError):
        open_revision(VAULT, keyring, dataclasses.replace(revision, ciphertext=flipped))


def test_a_revision_claimed_by_another_author_fails(author, keyring):
    revision = seal(author, keyring)
    impostor = DeviceKeys.generate()
    with pytest.raises(IntegrityError):
        revision.verify(VAULT, impostor.public)


def test_padding_hides_the_exact_size(author, keyring):
    short = seal(author, keyring, ItemContent.build("A", {"password": "x"}))
    longer = seal(author, keyring, ItemContent.build("A longer title", {"password": "x" * 100, "url": "https://a"}))
    assert len(short.ciphertext) == len(longer.ciphertext)
    assert [bucket_size(n) for n in (1, 256, 257, 65536, 65537)] == [256, 256, 512, 65536, 131072]


def test_old_epochs_still_open_after_rotation(author, keyring):
    old = seal(author, keyring)
    rotated = keyring.rotated()
    new = seal(author, rotated, seq=2)
    assert (old.key_epoch, new.key_epoch) == (0, 1)
    assert open_revision(VAULT, rotated, old).title == open_revision(VAULT, rotated, new).title == "Email"
    with pytest.raises(IntegrityError):
        open_revision(VAULT, keyring, new)


@pytest.mark.parametrize("mutate", [
    lambda r: r[:-1],
    lambda r: r + [b""],
    lambda r: [r[0][:5]] + r[1:],
    lambda r: r[:2] + [[[b"x", 1]]] + r[3:],
    lambda r: r[:3] + [1] + r[4:],
    lambda r: r[:4] + [-1] + r[5:],
    lambda r: r[:7] + [b"short"],
])
def test_malformed_records_are_integrity_errors(author, keyring, mutate):
    record = seal(author, keyring).to_record()
    with pytest.raises(IntegrityError):
        Revision.from_record(mutate(record))


def test_parents_are_canonical(author, keyring):
    a, b = RevisionId(author.device_id, 1), RevisionId(author.device_id, 2)
    revision = seal(author, keyring, seq=3, parents=[b, a, b])
    assert revision.parents == (a, b)
    with pytest.raises(ValueError):
        dataclasses.replace(revision, parents=(b, a))
