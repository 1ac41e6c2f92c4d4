"""Backup files: the vault's key slots in clear, then one sealed payload holding everything else.

::

    "VAULTPEER-BACKUP" || uint16_be version || uint32_be length || key slots record
        || salt (32) || nonce (12) || ChaCha20-Poly1305(payload key, nonce, CBOR payload, AD)

    key slots   = CBOR ["vaultpeer backup keys v1", vault_id, kdf, password_slot, recovery_public,
                        recovery_slot, key_epoch]   (the header's fields that open the keyring)
    payload key = HKDF-SHA256(ikm = vault key of key_epoch, salt, info = "vaultpeer backup payload v1")
    AD          = every byte before the ciphertext (magic, version, length, key slots, salt, nonce)

Only what is needed to open the file with the master password or the recovery key is in clear:
the KDF parameters and the keyring wrapped for each. The signed vault header itself travels inside
the payload, because it also carries the discovery secret (the key of the private mDNS names, from
which other keys of the members are derived), which must not sit in a file that may be copied to
less trusted places. The payload (header, roster, anchors, every revision, each still sealed and
signed by its author) is readable only with the vault key. The whole file is bound by the AEAD,
so any altered or missing byte is one opaque :class:`IntegrityError`.

Opening happens in three steps, each verifying before the next trusts anything:
:func:`parse_backup` (layout and key slots; the caller checks the KDF parameters against the floor
before deriving anything), :func:`open_backup` (the AEAD, a strict decode, and the header inside
must carry exactly the key slots outside), and :func:`verify_backup` (the header signature, the
roster, every revision's signature, causal order and decryption, exactly as a new device anchored
on the backing-up device would accept them). No device private key is ever part of a backup.
"""

import os
import struct
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from vaultpeer.core import encoding
from vaultpeer.core.errors import IntegrityError, InvalidInput
from vaultpeer.core.identity import DeviceId, DevicePublicKeys
from vaultpeer.core.kdf import KdfParameters
from vaultpeer.core.keys import (
    MAX_HEADER_SIZE,
    NONCE_SIZE,
    VAULT_ID_SIZE,
    Keyring,
    RecoveryKey,
    VaultHeader,
    key_slots_well_formed,
)
from vaultpeer.core.revision import Revision, RevisionId, open_revision
from vaultpeer.core.roster import MAX_ENTRIES, Roster, RosterEntry

MAGIC = b"VAULTPEER-BACKUP"
#: 2: the revisions inside may carry their time in their sealed content (formats.md, "Revision"),
#: which a vaultpeer reading version 1 would quarantine as junk on restore: it refuses the file
#: instead, naming the version. Version 1 backups (from an older vaultpeer) are still read: same layout.
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
SALT_SIZE = 32
TAG_SIZE = 16
_PREFIX = struct.Struct(">16sHI")
_KEY_SLOTS_DOMAIN = "vaultpeer backup keys v1"
_PAYLOAD_INFO = b"vaultpeer backup payload v1"
_PAYLOAD_FORMAT = "vaultpeer backup payload v1"
_PAYLOAD_KEYS = {"format", "vault_id", "created", "header", "device", "device_id", "anchors", "roster",
                 "revisions"}
#: ChaCha20-Poly1305 in ``cryptography`` takes at most 2**31 - 1 bytes (the ciphertext adds a tag).
MAX_PAYLOAD = 2**31 - 1 - TAG_SIZE
MAX_FILE_SIZE = _PREFIX.size + MAX_HEADER_SIZE + SALT_SIZE + NONCE_SIZE + MAX_PAYLOAD + TAG_SIZE


class NotABackup(IntegrityError):
    """The bytes do not start like a vaultpeer backup (a special case of an integrity failure)."""

    def __init__(self, message: str = "not a vaultpeer backup file"):
        super().__init__(message)


class UnsupportedBackupVersion(IntegrityError):
    """A backup in a format this vaultpeer does not read (or whose version field was altered)."""

    def __init__(self, version: int):
        super().__init__(f"backup format version {version} is not one this vaultpeer reads (it reads versions 1 "
                         f"to {FORMAT_VERSION}): a newer vaultpeer made it; upgrade vaultpeer on this device")
        self.version = version


@dataclass(frozen=True, repr=False)
class KeySlots:
    """The header's fields that open the keyring: all a backup shows before it is opened."""

    vault_id: bytes
    kdf: KdfParameters
    password_slot: bytes
    recovery_public: bytes
    recovery_slot: bytes
    key_epoch: int

    @classmethod
    def of(cls, header: VaultHeader) -> "KeySlots":
        return cls(header.vault_id, header.kdf, header.password_slot, header.recovery_public,
                   header.recovery_slot, header.key_epoch)

    def to_bytes(self) -> bytes:
        return encoding.encode([_KEY_SLOTS_DOMAIN, self.vault_id, self.kdf.to_record(), self.password_slot,
                                self.recovery_public, self.recovery_slot, self.key_epoch])

    @classmethod
    def from_bytes(cls, data: bytes) -> "KeySlots":
        value = encoding.decode(data, max_size=MAX_HEADER_SIZE)
        try:
            domain, vault_id, kdf, password_slot, recovery_public, recovery_slot, key_epoch = value  # type: ignore[misc]
            slots = cls(vault_id, KdfParameters.from_record(kdf), password_slot, recovery_public, recovery_slot,
                        key_epoch)
        except (TypeError, ValueError, KeyError):
            raise IntegrityError() from None
        if domain != _KEY_SLOTS_DOMAIN or not key_slots_well_formed(vault_id, password_slot, recovery_public,
                                                                     recovery_slot, key_epoch):
            raise IntegrityError()
        return slots

    def _opener(self) -> VaultHeader:
        # an unsigned stand-in, so the keys module's own code opens the slots (only these fields
        # are read by the opening methods; nothing else of it is ever used or trusted)
        return VaultHeader(self.vault_id, self.kdf, self.password_slot, self.recovery_public, self.recovery_slot,
                           self.key_epoch, serial=0, author=DeviceId(bytes(32)))

    def password_kek(self, password: str) -> bytes:
        """Run the KDF: check ``kdf.check_strength`` first."""
        return self.kdf.derive(password)

    def open_with_kek(self, kek: bytes) -> Keyring:
        """The keyring, or WrongPassword."""
        return self._opener().open_with_kek(kek)

    def open_with_recovery_key(self, recovery_key: RecoveryKey) -> Keyring:
        """The keyring, or WrongRecoveryKey."""
        return self._opener().open_with_recovery_key(recovery_key)

    def __repr__(self) -> str:
        return f"KeySlots(vault={self.vault_id.hex()}, epoch={self.key_epoch})"


@dataclass(frozen=True, repr=False)
class BackupContents:
    """What the payload holds. Everything in it is public keys, signed records and ciphertext."""

    vault_id: bytes
    #: Unix time (seconds) at which the backup was made, by the backing-up device's clock.
    created: int
    #: The vault header as the backing-up device stored it (signed; its key slots are outside too).
    header: VaultHeader
    #: The backing-up device: a restored home trusts what it trusted.
    device: DevicePublicKeys
    anchors: tuple[DevicePublicKeys, ...]
    roster: tuple[RosterEntry, ...]
    #: Every revision, in the backing-up device's arrival order (parents before children).
    revisions: tuple[Revision, ...]

    @property
    def device_id(self) -> DeviceId:
        return self.device.device_id

    def names(self, device_id: DeviceId) -> bool:
        """Whether ``device_id`` appears anywhere in the backup (as a member, author or anchor)."""
        return (
            device_id == self.device_id
            or any(a.device_id == device_id for a in self.anchors)
            or any(device_id in (e.member_id, e.author) for e in self.roster)
            or any(r.author == device_id for r in self.revisions)
        )

    def to_payload(self) -> bytes:
        return encoding.encode({
            "format": _PAYLOAD_FORMAT,
            "vault_id": self.vault_id,
            "created": self.created,
            "header": self.header.to_bytes(),
            "device": _keys_record(self.device),
            "device_id": self.device_id.raw,
            "anchors": [_keys_record(a) for a in self.anchors],
            "roster": [e.to_record() for e in self.roster],
            "revisions": [r.to_record() for r in self.revisions],
        })

    @classmethod
    def from_payload(cls, data: bytes) -> "BackupContents":
        """Strictly decode a payload; any malformation is an IntegrityError."""
        value = encoding.decode(data, max_size=MAX_PAYLOAD)
        if not isinstance(value, dict) or set(value) != _PAYLOAD_KEYS or value["format"] != _PAYLOAD_FORMAT:
            raise IntegrityError()
        vault_id, created, header = value["vault_id"], value["created"], value["header"]
        anchors, roster, revisions = value["anchors"], value["roster"], value["revisions"]
        if not (
            isinstance(vault_id, bytes)
            and len(vault_id) == VAULT_ID_SIZE
            and isinstance(created, int)
            and not isinstance(created, bool)
            and 0 <= created < 2**63
            and isinstance(header, bytes)
            and all(isinstance(v, list) for v in (anchors, roster, revisions))
            and len(anchors) <= MAX_ENTRIES
            and len(roster) <= MAX_ENTRIES
        ):
            raise IntegrityError()
        header = VaultHeader.from_bytes(header)
        device = _keys_from_record(value["device"])
        if value["device_id"] != device.device_id.raw or header.vault_id != vault_id:
            raise IntegrityError()
        return cls(
            vault_id=vault_id,
            created=created,
            header=header,
            device=device,
            anchors=tuple(_keys_from_record(a) for a in anchors),
            roster=tuple(RosterEntry.from_record(e) for e in roster),
            revisions=tuple(Revision.from_record(r) for r in revisions),
        )

    def __repr__(self) -> str:
        return (f"BackupContents(device={self.device_id.short}…, {len(self.roster)} roster entries, "
                f"{len(self.revisions)} revisions)")


def _keys_record(keys: DevicePublicKeys) -> list:
    return [keys.noise_public, keys.signing_public]


def _keys_from_record(record: object) -> DevicePublicKeys:
    try:
        noise_public, signing_public = record  # type: ignore[misc]
        if not isinstance(noise_public, bytes) or not isinstance(signing_public, bytes):
            raise TypeError
        return DevicePublicKeys(noise_public, signing_public)
    except (TypeError, ValueError):
        raise IntegrityError() from None


def _payload_key(keyring: Keyring, key_epoch: int, salt: bytes) -> bytes:
    return HKDF(hashes.SHA256(), 32, salt=salt, info=_PAYLOAD_INFO).derive(keyring.key(key_epoch))


def seal_backup(keyring: Keyring, contents: BackupContents,
                random_bytes: Callable[[int], bytes] = os.urandom) -> bytes:
    """The bytes of a backup file. ``keyring`` must hold the vault key of the header's key_epoch."""
    if contents.vault_id != contents.header.vault_id:
        raise ValueError("the contents are not of their header's vault")
    payload = contents.to_payload()
    if len(payload) > MAX_PAYLOAD:
        raise InvalidInput("the vault is too large for one backup file (at most 2 GiB)")
    slots = KeySlots.of(contents.header).to_bytes()
    salt, nonce = random_bytes(SALT_SIZE), random_bytes(NONCE_SIZE)
    associated_data = _PREFIX.pack(MAGIC, FORMAT_VERSION, len(slots)) + slots + salt + nonce
    key = _payload_key(keyring, contents.header.key_epoch, salt)
    return associated_data + ChaCha20Poly1305(key).encrypt(nonce, payload, associated_data)


@dataclass(frozen=True, repr=False)
class SealedBackup:
    """A backup file split into its parts; nothing in it is verified yet."""

    version: int
    slots: KeySlots
    salt: bytes
    nonce: bytes
    associated_data: bytes
    ciphertext: bytes

    def __repr__(self) -> str:
        return f"SealedBackup(version={self.version}, {len(self.ciphertext)} bytes sealed)"


def is_backup(prefix: bytes) -> bool:
    """Whether bytes (the start of a file is enough) begin with the backup magic."""
    return prefix[: len(MAGIC)] == MAGIC


def parse_backup(data: bytes) -> SealedBackup:
    """Split a backup file. Check ``slots.kdf`` against the floor before deriving a key from it."""
    if len(data) > MAX_FILE_SIZE:
        raise IntegrityError()
    if len(data) < _PREFIX.size or not is_backup(data):
        raise NotABackup()
    _, version, slots_length = _PREFIX.unpack_from(data)
    if version not in READABLE_VERSIONS:
        raise UnsupportedBackupVersion(version)
    slots_end = _PREFIX.size + slots_length
    ciphertext_start = slots_end + SALT_SIZE + NONCE_SIZE
    if slots_length > MAX_HEADER_SIZE or len(data) < ciphertext_start + TAG_SIZE:
        raise IntegrityError()
    return SealedBackup(
        version=version,
        slots=KeySlots.from_bytes(data[_PREFIX.size:slots_end]),
        salt=data[slots_end:slots_end + SALT_SIZE],
        nonce=data[slots_end + SALT_SIZE:ciphertext_start],
        associated_data=data[:ciphertext_start],
        ciphertext=data[ciphertext_start:],
    )


def open_backup(sealed: SealedBackup, keyring: Keyring) -> BackupContents:
    """Decrypt and decode the payload with the keyring the slots opened; IntegrityError otherwise."""
    key = _payload_key(keyring, sealed.slots.key_epoch, sealed.salt)
    try:
        payload = ChaCha20Poly1305(key).decrypt(sealed.nonce, sealed.ciphertext, sealed.associated_data)
    except (InvalidTag, OverflowError):
        raise IntegrityError() from None
    contents = BackupContents.from_payload(payload)
    if KeySlots.of(contents.header) != sealed.slots:
        raise IntegrityError()
    return contents


@dataclass(frozen=True)
class BackupReport:
    """What a verified backup holds (counts only: nothing secret)."""

    vault_id: bytes
    created: int
    device_id: DeviceId
    items: int
    deleted_items: int
    revisions: int
    tombstones: int
    roster_entries: int
    members: int
    #: Validly signed revisions that do not decrypt: kept and quarantined, as on any device.
    quarantined: int = 0
    #: Revisions by a revoked device past its cutoff (held from before the revocation was known):
    #: not restored, as a sync would drop them.
    pruned: int = 0


def verify_backup(contents: BackupContents, keyring: Keyring) -> BackupReport:
    """Check everything, as a new device anchored on the backing-up device would before storing it.

    The backing-up device must be a member of its own roster; the header must be signed by a
    device it trusts (or trusted); every revision must be signed for this vault and follow its
    parents (of the same item). A revision by a revoked device past its cutoff, or by a device that
    is not a member, is pruned (a sync would drop it; as a parent it counts as held), and one that
    does not decrypt is quarantined, as on any device: neither makes the backup unusable. Any other
    failure is one IntegrityError.
    """
    vault_id, header = contents.vault_id, contents.header
    if vault_id != header.vault_id:
        raise IntegrityError()
    roster = Roster(vault_id, [contents.device], []).with_entries(contents.roster)
    if contents.device_id not in roster.members:
        raise IntegrityError()
    header.verify(roster.known_keys(header.author))
    seen: dict[RevisionId, Revision] = {}
    superseded: set[RevisionId] = set()
    pruned: set[RevisionId] = set()
    quarantined = 0
    for revision in contents.revisions:
        if revision.revision_id in seen or revision.revision_id in pruned:
            raise IntegrityError()
        if roster.prunes(revision.revision_id):
            pruned.add(revision.revision_id)
            continue
        revision.verify(vault_id, roster.known_keys(revision.author))
        for parent in revision.parents:
            held = seen.get(parent)
            if held is None and roster.prunes(parent):
                continue
            if held is None or held.item_id != revision.item_id:
                raise IntegrityError()
        try:
            open_revision(vault_id, keyring, revision)
        except IntegrityError:
            quarantined += 1
        seen[revision.revision_id] = revision
        superseded.update(revision.parents)
    heads: dict[object, list[Revision]] = {}
    for revision in seen.values():
        if revision.revision_id not in superseded:
            heads.setdefault(revision.item_id, []).append(revision)
    return BackupReport(
        vault_id=vault_id,
        created=contents.created,
        device_id=contents.device_id,
        items=len(heads),
        # shown as deleted where every head is a tombstone (an edit concurrent with a delete survives)
        deleted_items=sum(1 for item_heads in heads.values() if all(r.deleted for r in item_heads)),
        revisions=len(seen),
        tombstones=sum(1 for r in seen.values() if r.deleted),
        roster_entries=len(contents.roster),
        members=len(roster.members),
        quarantined=quarantined,
        pruned=len(pruned),
    )
