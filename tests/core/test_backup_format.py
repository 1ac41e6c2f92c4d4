"""The backup file format, purely: round trip, every altered or missing byte, wrong keys, versions,
and the checks a restored device relies on (signatures, trust, causal order, decryption)."""

import dataclasses
import struct

import cbor2
import pytest
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from vaultpeer.core import backup as backup_format
from vaultpeer.core import encoding
from vaultpeer.core.backup import (
    FORMAT_VERSION,
    MAGIC,
    BackupContents,
    KeySlots,
    NotABackup,
    UnsupportedBackupVersion,
    is_backup,
    open_backup,
    parse_backup,
    seal_backup,
    verify_backup,
)
from vaultpeer.core.errors import IntegrityError, WrongPassword, WrongRecoveryKey
from vaultpeer.core.identity import DeviceKeys
from vaultpeer.core.item import ItemContent, ItemId
from vaultpeer.core.kdf import insecure_test_parameters
from vaultpeer.core.keys import Keyring, RecoveryKey, create_vault
from vaultpeer.core.revision import seal_revision
from vaultpeer.core.roster import revoke, vouch

PASSWORD = "backup password"
CANARY_TITLE = "CanaryTitle-backup-5be21d"
CANARY_SECRET = "CANARY-SECRET-backup-7f3a9c"


class World:
    """One vault of two paired devices (A made the backup), a few items with history."""

    def __init__(self):
        self.a, self.b = DeviceKeys.generate(), DeviceKeys.generate()
        kdf = insecure_test_parameters()
        self.header, self.keyring, self.recovery_key = create_vault(kdf.derive(PASSWORD), kdf, self.a)
        self.vault_id = self.header.vault_id
        self.roster = (
            vouch(self.vault_id, self.a, self.a.public, "laptop", "Linux"),
            vouch(self.vault_id, self.a, self.b.public, "desktop", "Linux"),
            vouch(self.vault_id, self.b, self.a.public, "paired device", "unknown"),
            vouch(self.vault_id, self.b, self.b.public, "desktop", "Linux"),
        )
        self.seqs = {self.a.device_id: 0, self.b.device_id: 0}
        self.revisions = []
        mail = ItemId.generate()
        first = self.write(self.a, mail, (), ItemContent.build(CANARY_TITLE, {"password": CANARY_SECRET}))
        second = self.write(self.b, mail, [first.revision_id], ItemContent.build(CANARY_TITLE, {"password": "two"}))
        gone = ItemId.generate()
        kept = self.write(self.a, gone, (), ItemContent.build("Old", {"username": "x"}))
        self.write(self.a, gone, [kept.revision_id], ItemContent.build("Old", {"username": "x"}), deleted=True)
        self.last = second

    def write(self, author, item_id, parents, content, deleted=False, keyring=None):
        self.seqs[author.device_id] += 1
        revision = seal_revision(vault_id=self.vault_id, keyring=keyring or self.keyring, author=author,
                                 item_id=item_id, seq=self.seqs[author.device_id], parents=parents,
                                 content=content, deleted=deleted)
        self.revisions.append(revision)
        return revision

    def contents(self, **changes) -> BackupContents:
        fields = dict(vault_id=self.vault_id, created=1_790_000_000, header=self.header, device=self.a.public,
                      anchors=(self.a.public,), roster=self.roster, revisions=tuple(self.revisions))
        fields.update(changes)
        return BackupContents(**fields)

    def sealed(self, **changes) -> bytes:
        return seal_backup(self.keyring, self.contents(**changes))


@pytest.fixture(scope="module")
def world():
    return World()


@pytest.fixture(scope="module")
def data(world):
    return world.sealed()


def open_all(data: bytes, keyring: Keyring):
    sealed = parse_backup(data)
    contents = open_backup(sealed, keyring)
    return sealed, contents, verify_backup(contents, keyring)


def test_round_trip_with_the_password_and_the_recovery_key(world, data):
    assert is_backup(data) and data.startswith(MAGIC)
    sealed = parse_backup(data)
    assert sealed.version == FORMAT_VERSION and sealed.slots == KeySlots.of(world.header)
    by_password = sealed.slots.open_with_kek(sealed.slots.password_kek(PASSWORD))
    by_recovery = sealed.slots.open_with_recovery_key(world.recovery_key)
    for keyring in (by_password, by_recovery):
        contents = open_backup(sealed, keyring)
        assert contents == world.contents() and contents.header == world.header
        report = verify_backup(contents, keyring)
        assert (report.items, report.deleted_items, report.revisions, report.tombstones) == (2, 1, 4, 1)
        assert (report.members, report.roster_entries, report.device_id) == (2, 4, world.a.device_id)
        assert report.created == 1_790_000_000 and report.vault_id == world.vault_id
    with pytest.raises(WrongPassword):
        sealed.slots.open_with_kek(sealed.slots.password_kek("not the password"))
    with pytest.raises(WrongRecoveryKey):
        sealed.slots.open_with_recovery_key(RecoveryKey.generate())


def test_each_backup_is_sealed_under_its_own_salt_and_nonce(world, data):
    again = world.sealed()
    assert again != data and len(again) == len(data)
    assert open_backup(parse_backup(again), world.keyring) == open_backup(parse_backup(data), world.keyring)


def test_no_plaintext_and_no_private_key_in_the_file(world, data):
    for secret in (CANARY_TITLE.encode(), CANARY_SECRET.encode(), b"laptop", b"desktop",
                   world.a.signing_seed, world.a.noise_private, world.b.signing_seed, world.keyring.key(0),
                   PASSWORD.encode(), world.header.discovery_secret, world.a.device_id.raw,
                   world.a.public.signing_public, world.b.public.noise_public):
        assert secret not in data
    # in clear: exactly the key slots, nothing else of the header
    assert KeySlots.of(world.header).to_bytes() in data and world.header.to_bytes() not in data


def test_altering_any_byte_is_one_integrity_error(world, data):
    for position in range(len(data)):
        altered = bytearray(data)
        altered[position] ^= 0x01
        with pytest.raises(IntegrityError):
            open_all(bytes(altered), world.keyring)


def test_truncation_and_trailing_bytes_are_integrity_errors(world, data):
    for length in range(len(data)):
        with pytest.raises(IntegrityError):
            open_all(data[:length], world.keyring)
    with pytest.raises(IntegrityError):
        open_all(data + b"\x00", world.keyring)


def test_the_magic_and_the_version_are_named(world, data):
    with pytest.raises(NotABackup, match="not a vaultpeer backup"):
        parse_backup(b"PK\x03\x04" + data[4:])
    future = bytearray(data)
    struct.pack_into(">H", future, len(MAGIC), 3)
    with pytest.raises(UnsupportedBackupVersion, match="version 3 .*upgrade vaultpeer") as raised:
        parse_backup(bytes(future))
    assert raised.value.version == 3 and isinstance(raised.value, IntegrityError)


def test_backups_are_written_as_version_2_and_version_1_backups_still_open(world, data, monkeypatch):
    """Version 2 backups may hold revisions whose content carries its time, which a vaultpeer that
    reads version 1 would quarantine on restore: it refuses the file by its version instead. What
    an older vaultpeer wrote (version 1, same layout) still opens and verifies here."""
    assert FORMAT_VERSION == 2 and parse_backup(data).version == 2
    relabelled = bytearray(data)
    struct.pack_into(">H", relabelled, len(MAGIC), 1)
    with pytest.raises(IntegrityError):  # the version is bound into the AEAD
        open_all(bytes(relabelled), world.keyring)
    monkeypatch.setattr(backup_format, "FORMAT_VERSION", 1)  # as the previous vaultpeer sealed it
    old = seal_backup(world.keyring, world.contents())
    monkeypatch.undo()
    assert parse_backup(old).version == 1
    assert open_all(old, world.keyring)[1].vault_id == world.header.vault_id


def test_a_wrong_key_is_an_integrity_error(world, data):
    with pytest.raises(IntegrityError):
        open_backup(parse_backup(data), Keyring.new())
    other = World()
    with pytest.raises(IntegrityError):
        open_backup(parse_backup(data), other.keyring)
    # contents whose vault id is not their header's are refused when sealing
    with pytest.raises(ValueError):
        seal_backup(world.keyring, world.contents(header=other.header))


def sealed_with_payload(world, payload: bytes) -> bytes:
    """A correctly sealed file around an arbitrary payload (what a member holding the key could make)."""
    genuine = parse_backup(world.sealed())
    key = backup_format._payload_key(world.keyring, genuine.slots.key_epoch, genuine.salt)
    return genuine.associated_data + ChaCha20Poly1305(key).encrypt(genuine.nonce, payload, genuine.associated_data)


def test_a_malformed_payload_is_an_integrity_error_even_when_properly_sealed(world):
    good = encoding.decode(world.contents().to_payload(), max_size=1 << 24)
    assert open_backup(parse_backup(sealed_with_payload(world, encoding.encode(good))), world.keyring)
    broken = [
        {**good, "extra": 1},
        {k: v for k, v in good.items() if k != "anchors"},
        {**good, "format": "vaultpeer backup payload v2"},
        {**good, "device_id": bytes(32)},
        {**good, "vault_id": bytes(16)},
        {**good, "created": -1},
        {**good, "revisions": [[0]]},
        {**good, "device": [b"x", b"y"]},
        {**good, "header": b"\x00"},
        # a validly signed header whose key slots are not the ones outside (a newer password)
        {**good, "header": world.header.with_password(
            world.keyring, insecure_test_parameters().derive("x"), world.header.kdf, world.a).to_bytes()},
    ]
    for payload in broken:
        with pytest.raises(IntegrityError):
            open_backup(parse_backup(sealed_with_payload(world, encoding.encode(payload))), world.keyring)
    unsorted = cbor2.dumps(dict(reversed(list(good.items()))), canonical=False)
    assert unsorted != encoding.encode(good)
    with pytest.raises(IntegrityError):  # the same value, not in its one canonical encoding
        open_backup(parse_backup(sealed_with_payload(world, unsorted)), world.keyring)


def test_verification_refuses_what_a_restored_device_could_not_trust(world):
    stranger = DeviceKeys.generate()
    foreign = seal_revision(vault_id=world.vault_id, keyring=world.keyring, author=stranger,
                            item_id=ItemId.generate(), seq=1, parents=(), content=ItemContent.build("x", {}))
    orphan = seal_revision(vault_id=world.vault_id, keyring=world.keyring, author=world.a, item_id=ItemId.generate(),
                           seq=99, parents=[world.last.revision_id], content=ItemContent.build("x", {}))
    undecryptable = seal_revision(vault_id=world.vault_id, keyring=Keyring.new(), author=world.a,
                                  item_id=ItemId.generate(), seq=98, parents=(), content=ItemContent.build("x", {}))
    bad = [
        world.contents(revisions=(*world.revisions, orphan)),  # parent of another item
        world.contents(revisions=(*world.revisions[1:],)),  # a parent missing (not causal)
        world.contents(revisions=(*world.revisions, world.revisions[0])),  # a duplicate
        world.contents(device=stranger.public),  # made by a device that is not a member
    ]
    for contents in bad:
        with pytest.raises(IntegrityError):
            verify_backup(contents, world.keyring)
    other_header = dataclasses.replace(world.header, serial=world.header.serial + 1).signed_by(stranger)
    with pytest.raises(IntegrityError):
        verify_backup(world.contents(header=other_header), world.keyring)
    # what any device would hold after an attack does not make the backup unusable: a revision by
    # no member is pruned (as a sync drops it), one that does not decrypt is quarantined
    report = verify_backup(world.contents(revisions=(*world.revisions, foreign)), world.keyring)
    assert (report.revisions, report.pruned, report.quarantined) == (len(world.revisions), 1, 0)
    report = verify_backup(world.contents(revisions=(*world.revisions, undecryptable)), world.keyring)
    assert (report.revisions, report.pruned, report.quarantined) == (len(world.revisions) + 1, 0, 1)
    report = verify_backup(world.contents(roster=world.roster[:1]), world.keyring)  # B is no member here
    assert report.pruned == sum(1 for r in world.revisions if r.author == world.b.device_id) > 0


def test_revisions_of_a_revoked_device_count_up_to_its_cutoff(world):
    from vaultpeer.core.roster import Roster

    roster = Roster(world.vault_id, [world.a.public], world.roster)
    cut = revoke(world.vault_id, world.a, roster.members[world.b.device_id], revoked_after=1, version=2)
    assert verify_backup(world.contents(roster=(*world.roster, cut)), world.keyring).revisions == 4
    before = revoke(world.vault_id, world.a, roster.members[world.b.device_id], revoked_after=0, version=2)
    report = verify_backup(world.contents(roster=(*world.roster, before)), world.keyring)
    assert report.revisions == 4 - report.pruned and report.pruned > 0  # past the cutoff: pruned


def test_reprs_hold_no_secret(world, data):
    text = repr(world.contents()) + repr(parse_backup(data)) + repr(parse_backup(data).slots)
    assert CANARY_TITLE not in text and "laptop" not in text and world.keyring.key(0).hex() not in text
