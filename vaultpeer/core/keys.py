"""The key hierarchy and the signed vault header.

::

    master password --Argon2id(salt, params)--> password KEK --ChaCha20-Poly1305--+
                                                                                  +--> keyring
    recovery key --HKDF--> X25519 key pair; the header keeps the public half --HPKE-+

The keyring holds the random 256-bit vault key of every epoch (a new epoch begins when a device is
revoked). Changing the password re-wraps the keyring: no item is re-encrypted. The recovery copy is
sealed with HPKE (RFC 9180) to the recovery key's public half, so any unlocked member can re-wrap a
rotated keyring for recovery without ever holding the recovery key itself. The header that
carries the KDF parameters and both wrapped copies is signed by the device that last changed it, so
a locked device can check a header it receives and tampering shows as one opaque error, distinct
from a wrong password.
"""

import os
from collections.abc import Callable
from dataclasses import dataclass, replace

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, hpke
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from vaultpeer.core import encoding
from vaultpeer.core.checkcode import RECOVERY_KEY_FORMAT
from vaultpeer.core.errors import IntegrityError, WrongPassword, WrongRecoveryKey
from vaultpeer.core.identity import DeviceId, DeviceKeys, DevicePublicKeys
from vaultpeer.core.kdf import KdfParameters

VAULT_ID_SIZE = 16
VAULT_KEY_SIZE = 32
NONCE_SIZE = 12
MAX_HEADER_SIZE = 64 * 1024
MAX_EPOCHS = 10_000

_HEADER_DOMAIN = "vaultpeer header v1"
_KEYRING_DOMAIN = "vaultpeer keyring v1"
_RECOVERY_KEY_INFO = b"vaultpeer recovery x25519 v1"
_HPKE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305)


class Keyring:
    """Vault keys by epoch; new revisions use the newest. Key bytes never appear in a repr."""

    __slots__ = ("_keys",)

    def __init__(self, keys: dict[int, bytes]):
        if not keys or len(keys) > MAX_EPOCHS:
            raise ValueError("a keyring holds at least one key")
        for epoch, key in keys.items():
            if type(epoch) is not int or epoch < 0 or not isinstance(key, bytes) or len(key) != VAULT_KEY_SIZE:
                raise ValueError("malformed keyring")
        self._keys = dict(keys)

    @classmethod
    def new(cls, random_bytes: Callable[[int], bytes] = os.urandom) -> "Keyring":
        return cls({0: random_bytes(VAULT_KEY_SIZE)})

    @property
    def current_epoch(self) -> int:
        return max(self._keys)

    def key(self, epoch: int) -> bytes:
        try:
            return self._keys[epoch]
        except KeyError:
            raise IntegrityError() from None

    def rotated(self, random_bytes: Callable[[int], bytes] = os.urandom) -> "Keyring":
        """A keyring with one more epoch: old revisions still open, new ones use the new key."""
        return Keyring({**self._keys, self.current_epoch + 1: random_bytes(VAULT_KEY_SIZE)})

    def to_plaintext(self) -> bytes:
        return encoding.encode(self._keys)

    @classmethod
    def from_plaintext(cls, data: bytes) -> "Keyring":
        value = encoding.decode(data, max_size=MAX_HEADER_SIZE)
        if not isinstance(value, dict):
            raise IntegrityError()
        try:
            return cls(value)
        except ValueError:
            raise IntegrityError() from None

    def __repr__(self) -> str:
        return f"Keyring(epochs={sorted(self._keys)}, keys redacted)"


class RecoveryKey:
    """A random 160-bit key printed once at ``init``; it unwraps the keyring like the password does."""

    __slots__ = ("_raw",)
    SIZE = 20

    def __init__(self, raw: bytes):
        if len(raw) != self.SIZE:
            raise ValueError("a recovery key is 20 bytes")
        self._raw = bytes(raw)

    @classmethod
    def generate(cls, random_bytes: Callable[[int], bytes] = os.urandom) -> "RecoveryKey":
        return cls(random_bytes(cls.SIZE))

    @classmethod
    def parse(cls, text: str) -> "RecoveryKey":
        """Raises ValueError naming the problem (length, typo); the message holds no key material."""
        return cls(RECOVERY_KEY_FORMAT.parse(text))

    def reveal(self) -> str:
        """The grouped, check-charactered text, for printing once to the person who owns it."""
        return RECOVERY_KEY_FORMAT.format(self._raw)

    def private_key(self, vault_id: bytes) -> X25519PrivateKey:
        seed = HKDF(hashes.SHA256(), 32, salt=vault_id, info=_RECOVERY_KEY_INFO).derive(self._raw)
        return X25519PrivateKey.from_private_bytes(seed)

    def public_bytes(self, vault_id: bytes) -> bytes:
        return self.private_key(vault_id).public_key().public_bytes_raw()

    def __repr__(self) -> str:
        return "RecoveryKey(redacted)"


def _password_associated_data(vault_id: bytes, kdf: KdfParameters) -> bytes:
    return encoding.encode([_KEYRING_DOMAIN, vault_id, "password", kdf.to_record()])


def _recovery_info(vault_id: bytes) -> bytes:
    return encoding.encode([_KEYRING_DOMAIN, vault_id, "recovery"])


def _wrap_for_password(
    kek: bytes, keyring: Keyring, vault_id: bytes, kdf: KdfParameters, random_bytes: Callable[[int], bytes]
) -> bytes:
    nonce = random_bytes(NONCE_SIZE)
    return nonce + ChaCha20Poly1305(kek).encrypt(
        nonce, keyring.to_plaintext(), _password_associated_data(vault_id, kdf)
    )


def _wrap_for_recovery(recovery_public: bytes, keyring: Keyring, vault_id: bytes) -> bytes:
    return _HPKE.encrypt(
        keyring.to_plaintext(), X25519PublicKey.from_public_bytes(recovery_public), _recovery_info(vault_id)
    )


def key_slots_well_formed(vault_id: object, password_slot: object, recovery_public: object, recovery_slot: object,
                          key_epoch: object) -> bool:
    """The shape of the fields that open the keyring (a header's, or a backup's copy of them)."""
    return (
        isinstance(vault_id, bytes)
        and len(vault_id) == VAULT_ID_SIZE
        and all(isinstance(s, bytes) and len(s) > NONCE_SIZE for s in (password_slot, recovery_slot))
        and isinstance(recovery_public, bytes)
        and len(recovery_public) == 32
        and isinstance(key_epoch, int)
        and not isinstance(key_epoch, bool)
        and key_epoch >= 0
    )


@dataclass(frozen=True)
class VaultHeader:
    vault_id: bytes
    kdf: KdfParameters
    password_slot: bytes
    #: The recovery key's X25519 public half, to which rotated keyrings are sealed.
    recovery_public: bytes
    recovery_slot: bytes
    #: Epoch of the vault key that new revisions are sealed with.
    key_epoch: int
    #: Increases with every change, so an old header can never replace a newer one.
    serial: int
    author: DeviceId
    #: Random, shared by the members (the header only travels inside Noise channels), renewed
    #: with every key rotation: the key of the private mDNS names (see ``discovery_key``).
    discovery_secret: bytes = bytes(32)
    signature: bytes = b""

    def _unsigned_record(self) -> list:
        return [
            _HEADER_DOMAIN,
            self.vault_id,
            self.kdf.to_record(),
            self.password_slot,
            self.recovery_public,
            self.recovery_slot,
            self.key_epoch,
            self.serial,
            self.author.raw,
            self.discovery_secret,
        ]

    @property
    def discovery_key(self) -> bytes:
        """The key that proves membership in mDNS instance names; usable while locked."""
        return HKDF(hashes.SHA256(), 32, salt=self.vault_id, info=b"vaultpeer mdns key v1").derive(
            self.discovery_secret
        )

    def signed_bytes(self) -> bytes:
        return encoding.encode(self._unsigned_record())

    def signed_by(self, keys: DeviceKeys) -> "VaultHeader":
        unsigned = replace(self, author=keys.device_id, signature=b"")
        return replace(unsigned, signature=keys.sign(unsigned.signed_bytes()))

    def verify(self, author_keys: DevicePublicKeys | None) -> None:
        """Raise IntegrityError unless ``author_keys`` belong to the author and signed this header."""
        if (
            author_keys is None
            or author_keys.device_id != self.author
            or not author_keys.verify(self.signature, self.signed_bytes())
        ):
            raise IntegrityError()

    def to_bytes(self) -> bytes:
        return encoding.encode(self._unsigned_record() + [self.signature])

    @classmethod
    def from_bytes(cls, data: bytes) -> "VaultHeader":
        """Parse (not verify) a header; any malformation is an IntegrityError."""
        value = encoding.decode(data, max_size=MAX_HEADER_SIZE)
        try:
            (domain, vault_id, kdf, password_slot, recovery_public, recovery_slot,
             key_epoch, serial, author, discovery_secret, signature) = value
            header = cls(
                vault_id=vault_id,
                kdf=KdfParameters.from_record(kdf),
                password_slot=password_slot,
                recovery_public=recovery_public,
                recovery_slot=recovery_slot,
                key_epoch=key_epoch,
                serial=serial,
                author=DeviceId(author),
                discovery_secret=discovery_secret,
                signature=signature,
            )
        except (TypeError, ValueError, KeyError):
            raise IntegrityError() from None
        if not (
            domain == _HEADER_DOMAIN
            and key_slots_well_formed(vault_id, password_slot, recovery_public, recovery_slot, key_epoch)
            and isinstance(discovery_secret, bytes)
            and len(discovery_secret) == 32
            and isinstance(serial, int) and not isinstance(serial, bool) and serial >= 0
            and isinstance(signature, bytes)
            and len(signature) == 64
        ):
            raise IntegrityError()
        return header

    def password_kek(self, password: str) -> bytes:
        """Run the (slow) KDF. The result opens the keyring and, while unlocked, re-wraps rotations."""
        return self.kdf.derive(password)

    def open_with_kek(self, kek: bytes) -> Keyring:
        """The keyring, or WrongPassword. Verify the header's signature before calling this."""
        nonce, ciphertext = self.password_slot[:NONCE_SIZE], self.password_slot[NONCE_SIZE:]
        try:
            plaintext = ChaCha20Poly1305(kek).decrypt(
                nonce, ciphertext, _password_associated_data(self.vault_id, self.kdf)
            )
        except InvalidTag:
            raise WrongPassword() from None
        return self._checked(Keyring.from_plaintext(plaintext))

    def open_with_recovery_key(self, recovery_key: RecoveryKey) -> Keyring:
        private_key = recovery_key.private_key(self.vault_id)
        if private_key.public_key().public_bytes_raw() != self.recovery_public:
            raise WrongRecoveryKey()
        try:
            plaintext = _HPKE.decrypt(self.recovery_slot, private_key, _recovery_info(self.vault_id))
        except (InvalidTag, ValueError):
            raise IntegrityError() from None
        return self._checked(Keyring.from_plaintext(plaintext))

    def _checked(self, keyring: Keyring) -> Keyring:
        if keyring.current_epoch != self.key_epoch:
            raise IntegrityError()
        return keyring

    def with_password(
        self,
        keyring: Keyring,
        new_kek: bytes,
        kdf: KdfParameters,
        device: DeviceKeys,
        random_bytes: Callable[[int], bytes] = os.urandom,
    ) -> "VaultHeader":
        """The next header: the same keyring wrapped under a new password's KEK (derived with ``kdf``)."""
        slot = _wrap_for_password(new_kek, keyring, self.vault_id, kdf, random_bytes)
        return replace(self, kdf=kdf, password_slot=slot, serial=self.serial + 1).signed_by(device)

    def with_keyring(
        self,
        keyring: Keyring,
        kek: bytes,
        kdf: KdfParameters,
        device: DeviceKeys,
        random_bytes: Callable[[int], bytes] = os.urandom,
    ) -> "VaultHeader":
        """The next header, wrapping a new (rotated) keyring for the password and the recovery key.

        ``kdf`` should carry a fresh salt (and ``kek`` be the password derived with it): a device
        that knew the previous derived key, but not the password, then opens nothing new."""
        return replace(
            self,
            kdf=kdf,
            password_slot=_wrap_for_password(kek, keyring, self.vault_id, kdf, random_bytes),
            recovery_slot=_wrap_for_recovery(self.recovery_public, keyring, self.vault_id),
            key_epoch=keyring.current_epoch,
            serial=self.serial + 1,
            discovery_secret=random_bytes(32),
        ).signed_by(device)


def header_rank(header: VaultHeader, author_is_member: bool) -> tuple:
    """What decides between two headers of a vault, the greater winning: a header by a current
    member beats one by a revoked (or unknown) author; then the newer key epoch (a rotation is never
    undone by a concurrent password change); then the serial; then the author's id."""
    return (author_is_member, header.key_epoch, header.serial, header.author.raw)


def check_successor(current: VaultHeader, candidate: VaultHeader) -> None:
    """IntegrityError unless ``candidate`` may follow ``current`` at all: the same vault, and the
    same recovery public key. A member's say-so never changes the recovery key (no header carries a
    proof made with the recovery key, so no header may change it), or a member could plant its own
    and open every later backup."""
    if candidate.vault_id != current.vault_id or candidate.recovery_public != current.recovery_public:
        raise IntegrityError()


def create_vault(
    kek: bytes,
    kdf: KdfParameters,
    device: DeviceKeys,
    random_bytes: Callable[[int], bytes] = os.urandom,
    vault_id: bytes | None = None,
) -> tuple[VaultHeader, Keyring, RecoveryKey]:
    """A new vault: random id, random vault key, a recovery key, and the first signed header.

    ``kek`` is ``kdf.derive(password)``: derived by the caller so the slow step is done once.
    """
    vault_id = vault_id if vault_id is not None else random_bytes(VAULT_ID_SIZE)
    keyring = Keyring.new(random_bytes)
    recovery_key = RecoveryKey.generate(random_bytes)
    recovery_public = recovery_key.public_bytes(vault_id)
    header = VaultHeader(
        vault_id=vault_id,
        kdf=kdf,
        password_slot=_wrap_for_password(kek, keyring, vault_id, kdf, random_bytes),
        recovery_public=recovery_public,
        recovery_slot=_wrap_for_recovery(recovery_public, keyring, vault_id),
        key_epoch=keyring.current_epoch,
        serial=0,
        author=device.device_id,
        discovery_secret=random_bytes(32),
    ).signed_by(device)
    return header, keyring, recovery_key
