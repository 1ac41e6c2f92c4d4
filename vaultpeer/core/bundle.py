"""Sync through files: join requests and bundles (pure; the shell is ``vaultpeer.service.bundle_files``).

A **join request** is a new device's public identity, signed with its own signing key (proof that
it holds it). A member admits it after the person checked that both devices show the same device id.

A **bundle** carries what a sync session would: the vault header, roster entries and sealed
revisions. It is safe on an untrusted USB stick:

* Everything but the magic and the recipient slots is encrypted with a random content key
  (ChaCha20-Poly1305), so not even the vault id, the device ids or the number of items show.
* The content key is wrapped for the vault's members (a key derived from the header's members-only
  secret, which a revoked device does not get after the key rotation that revokes it) and, when the
  bundle is made for one device, also sealed to that device's X25519 key with HPKE: that is how a
  device that has not joined yet (no header) or holds an older header can open it.
* Inside the encryption, the contents are signed by the exporting device's Ed25519 key.

Every way a bundle can be wrong (truncated, altered, for another vault or device, a bad signature)
is one ``IntegrityError``: as with Fernet, nothing tells which check failed.

Layout (docs/formats.md): ``b"VPBUNDLE" || version (1 byte) || CBOR [recipients, nonce, ciphertext]``
with recipients ``[[kind, slot], ...]``; the AEAD's associated data is the magic, the version and
the CBOR of the recipients, so no slot can be added, removed or swapped unnoticed.
"""

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, hpke
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from vaultpeer.core import encoding
from vaultpeer.core.errors import IntegrityError, InvalidInput
from vaultpeer.core.identity import DeviceId, DeviceKeys, DevicePublicKeys
from vaultpeer.core.keys import VaultHeader
from vaultpeer.core.revision import Revision
from vaultpeer.core.roster import RosterEntry
from vaultpeer.core.text import MAX_TEXT, is_plain_text
from vaultpeer.core.vclock import VersionVector

BUNDLE_MAGIC = b"VPBUNDLE"
JOIN_REQUEST_MAGIC = b"VPJOINRQ"
#: 2: the revisions inside may carry their time in their sealed content (formats.md, "Revision"),
#: which a vaultpeer reading version 1 would quarantine as junk: it refuses the file instead, naming
#: the version. Version 1 bundles (from an older vaultpeer) are still read: same layout.
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
#: A bundle is read whole into memory: 1 GiB is far beyond a 100,000-item vault (~45 MB).
MAX_BUNDLE_SIZE = 1 << 30
MAX_JOIN_REQUEST_SIZE = 4096
NONCE_SIZE = 12
CONTENT_KEY_SIZE = 32

_BUNDLE_DOMAIN = "vaultpeer bundle v1"
_JOIN_DOMAIN = "vaultpeer join request v1"
_MEMBERS_KEY_INFO = b"vaultpeer bundle members key v1"
_HPKE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305)
_MEMBERS, _DEVICE = "members", "device"


def members_key(header: VaultHeader) -> bytes:
    """The key every current member can derive from its header (usable while locked)."""
    return HKDF(hashes.SHA256(), 32, salt=header.vault_id, info=_MEMBERS_KEY_INFO).derive(header.discovery_secret)


# --- join requests -------------------------------------------------------------------------------


@dataclass(frozen=True)
class JoinRequest:
    keys: DevicePublicKeys
    name: str
    os_description: str

    @property
    def device_id(self) -> DeviceId:
        return self.keys.device_id

    @classmethod
    def make(cls, device: DeviceKeys, name: str, os_description: str) -> bytes:
        body = [_JOIN_DOMAIN, device.public.noise_public, device.public.signing_public,
                name[:MAX_TEXT], os_description[:MAX_TEXT]]
        return JOIN_REQUEST_MAGIC + encoding.encode([*body[1:], device.sign(encoding.encode(body))])

    @classmethod
    def parse(cls, data: bytes) -> "JoinRequest":
        """The request, if it is well formed, signed by the key it carries, and its name and OS
        description are plain text (``core.text.is_plain_text``); else InvalidInput."""
        if not data.startswith(JOIN_REQUEST_MAGIC):
            raise InvalidInput("that file is not a vaultpeer join request")
        try:
            noise_public, signing_public, name, os_description, signature = encoding.decode(
                data[len(JOIN_REQUEST_MAGIC):], max_size=MAX_JOIN_REQUEST_SIZE)
            keys = DevicePublicKeys(noise_public, signing_public)
            body = [_JOIN_DOMAIN, noise_public, signing_public, name, os_description]
            valid = (is_plain_text(name) and is_plain_text(os_description) and isinstance(signature, bytes)
                     and keys.verify(signature, encoding.encode(body)))
        except (ValueError, TypeError, IntegrityError):
            valid = False
        if not valid:
            raise InvalidInput("that join request is damaged or altered")
        return cls(keys, name, os_description)


# --- bundles -------------------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class BundleContents:
    vault_id: bytes
    exporter: DevicePublicKeys
    #: The device the bundle was made for, or None (any member).
    target: DeviceId | None
    created: int
    #: What the exporting device held when it made the bundle.
    knowledge: VersionVector
    header: VaultHeader
    roster: tuple[RosterEntry, ...]
    revisions: tuple[Revision, ...]

    def __repr__(self) -> str:
        return f"BundleContents({len(self.revisions)} revisions, redacted)"

    def _record(self) -> list:
        return [
            _BUNDLE_DOMAIN,
            self.vault_id,
            self.exporter.noise_public,
            self.exporter.signing_public,
            None if self.target is None else self.target.raw,
            self.created,
            self.knowledge.to_record(),
            self.header.to_bytes(),
            [entry.to_bytes() for entry in self.roster],
            [revision.to_bytes() for revision in self.revisions],
        ]

    @classmethod
    def _from_record(cls, record: object) -> "BundleContents":
        if not isinstance(record, list) or len(record) != 10 or record[0] != _BUNDLE_DOMAIN:
            raise ValueError("not bundle contents")
        _, vault_id, noise_public, signing_public, target, created, knowledge, header, roster, revisions = record
        if not (isinstance(vault_id, bytes) and type(created) is int and created >= 0 and isinstance(header, bytes)
                and isinstance(roster, list) and isinstance(revisions, list)
                and (target is None or isinstance(target, bytes))):
            raise ValueError("malformed bundle contents")
        if not all(isinstance(x, bytes) for x in [*roster, *revisions]):
            raise ValueError("malformed bundle contents")
        return cls(
            vault_id=vault_id,
            exporter=DevicePublicKeys(noise_public, signing_public),
            target=None if target is None else DeviceId(target),
            created=created,
            knowledge=VersionVector.from_record(knowledge),
            header=VaultHeader.from_bytes(header),
            roster=tuple(RosterEntry.from_bytes(entry) for entry in roster),
            revisions=tuple(Revision.from_bytes(revision) for revision in revisions),
        )


def seal_bundle(contents: BundleContents, exporter: DeviceKeys, *, members: bytes | None,
                device_public: bytes | None = None, random_bytes: Callable[[int], bytes] = os.urandom) -> bytes:
    """The bundle file's bytes: ``contents`` signed by ``exporter``, then encrypted for the
    members (``members``: see ``members_key``) and/or for one device's X25519 key."""
    if contents.exporter != exporter.public:
        raise ValueError("the exporter signs its own bundles")
    if members is None and device_public is None:
        raise ValueError("a bundle needs at least one recipient")
    content_key = random_bytes(CONTENT_KEY_SIZE)
    recipients = []
    if members is not None:
        nonce = random_bytes(NONCE_SIZE)
        recipients.append([_MEMBERS, nonce + ChaCha20Poly1305(members).encrypt(nonce, content_key, _slot_ad(_MEMBERS))])
    if device_public is not None:
        sealed = _HPKE.encrypt(content_key, X25519PublicKey.from_public_bytes(device_public), _slot_ad(_DEVICE))
        recipients.append([_DEVICE, sealed])
    payload = encoding.encode(contents._record())
    plaintext = encoding.encode([payload, exporter.sign(payload)])
    nonce = random_bytes(NONCE_SIZE)
    ciphertext = ChaCha20Poly1305(content_key).encrypt(nonce, plaintext, _payload_ad(recipients, FORMAT_VERSION))
    return BUNDLE_MAGIC + bytes([FORMAT_VERSION]) + encoding.encode([recipients, nonce, ciphertext])


def open_bundle(data: bytes, *, members: Sequence[bytes] = (), device: DeviceKeys | None = None) -> BundleContents:
    """The verified contents, if one of our keys opens the bundle and the exporter's signature
    holds. Whether the exporter may speak for the vault is the caller's question (the roster)."""
    if not is_bundle(data):
        raise InvalidInput("that file is not a vaultpeer bundle")
    version = data[len(BUNDLE_MAGIC)]
    if version not in READABLE_VERSIONS:
        raise InvalidInput(f"this bundle has format version {version}, from a newer vaultpeer; this one reads "
                           f"versions 1 to {FORMAT_VERSION}: upgrade vaultpeer on this device")
    try:
        recipients, nonce, ciphertext = encoding.decode(data[len(BUNDLE_MAGIC) + 1:], max_size=MAX_BUNDLE_SIZE)
        if not isinstance(recipients, list) or not isinstance(ciphertext, bytes) or not isinstance(nonce, bytes):
            raise ValueError("malformed bundle")
        for content_key in _content_keys(recipients, members, device):
            try:
                plaintext = ChaCha20Poly1305(content_key).decrypt(nonce, ciphertext, _payload_ad(recipients, version))
            except InvalidTag:
                continue
            payload, signature = encoding.decode(plaintext, max_size=MAX_BUNDLE_SIZE)
            contents = BundleContents._from_record(encoding.decode(payload, max_size=MAX_BUNDLE_SIZE))
            if not isinstance(signature, bytes) or not contents.exporter.verify(signature, payload):
                break
            return contents
    except (ValueError, TypeError, IndexError, IntegrityError):
        pass
    raise IntegrityError("this bundle cannot be opened here: it is damaged or altered, or not for this vault "
                         "or device")


def is_bundle(data: bytes) -> bool:
    return data.startswith(BUNDLE_MAGIC) and len(data) > len(BUNDLE_MAGIC)


def _content_keys(recipients: list, members: Sequence[bytes], device: DeviceKeys | None):
    for slot in recipients:
        if not (isinstance(slot, list) and len(slot) == 2 and isinstance(slot[1], bytes)):
            raise ValueError("malformed recipient")
        kind, sealed = slot
        if kind == _MEMBERS:
            for key in members:
                try:
                    yield ChaCha20Poly1305(key).decrypt(sealed[:NONCE_SIZE], sealed[NONCE_SIZE:], _slot_ad(_MEMBERS))
                except InvalidTag:
                    continue
        elif kind == _DEVICE and device is not None:
            try:
                private = X25519PrivateKey.from_private_bytes(device.noise_private)
                yield _HPKE.decrypt(sealed, private, _slot_ad(_DEVICE))
            except (InvalidTag, ValueError):
                continue


def _slot_ad(kind: str) -> bytes:
    return encoding.encode([_BUNDLE_DOMAIN, "content key", kind])


def _payload_ad(recipients: list, version: int) -> bytes:
    return BUNDLE_MAGIC + bytes([version]) + encoding.encode(recipients)


