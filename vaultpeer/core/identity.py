"""Device identity: a Noise static X25519 key, an Ed25519 signing key, and the id derived from both.

The device id is a SHA-256 fingerprint over both public keys, shown with check characters in
groups (see :mod:`vaultpeer.core.checkcode`). Because the id commits to the keys, a roster entry or
a pairing confirmation that names the id pins both keys at once.
"""

import hashlib
import hmac
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from vaultpeer.core.checkcode import DEVICE_ID_FORMAT
from vaultpeer.core.errors import IntegrityError, SigningKeyLocked

_DEVICE_ID_DOMAIN = b"vaultpeer device id v1\x00"
KEY_SIZE = 32


@lru_cache(maxsize=256)
def _formatted(raw: bytes) -> str:
    """A device id's text, computed once per device (a vault has a handful; an event names one
    per item changed, 100,000 in a new device's first sync)."""
    return DEVICE_ID_FORMAT.format(raw)


@dataclass(frozen=True, order=True, slots=True)
class DeviceId:
    """A device's fingerprint: 32 bytes, shown as ``XXXXXXX-XXXXXXX-...`` (8 groups)."""

    raw: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.raw, bytes) or len(self.raw) != 32:
            raise ValueError("a device id is 32 bytes")

    @classmethod
    def parse(cls, text: str) -> "DeviceId":
        return cls(DEVICE_ID_FORMAT.parse(text))

    @property
    def short(self) -> str:
        """The first group: enough to tell a person's few devices apart in a listing."""
        return str(self)[:7]

    def __str__(self) -> str:
        return _formatted(self.raw)

    def __repr__(self) -> str:
        return f"DeviceId({self.short}…)"


@dataclass(frozen=True)
class DevicePublicKeys:
    """What others know of a device: its two public keys (and so its id)."""

    noise_public: bytes
    signing_public: bytes

    def __post_init__(self) -> None:
        # bytes, not just anything 32 long: a 32-character text from a peer's record would pass a
        # length check and crash whatever derives the device id from it later
        if not all(isinstance(key, bytes) and len(key) == KEY_SIZE for key in (self.noise_public, self.signing_public)):
            raise ValueError("public keys are 32 bytes each")

    @property
    def device_id(self) -> DeviceId:
        digest = hashlib.sha256(_DEVICE_ID_DOMAIN + self.noise_public + self.signing_public).digest()
        return DeviceId(digest)

    def verify(self, signature: bytes, message: bytes) -> bool:
        """Whether ``signature`` is this device's Ed25519 signature of ``message``, checked as
        libsodium's ``crypto_sign_verify_detached`` does (docs/formats.md, "Signatures"): RFC 8032,
        and a public key or an R of small order, or a non-canonical key or S, is refused. Every
        member checks every signature by the same rule (sync protocol 6), so what one accepts no
        other refuses. libsodium through PyNaCl: about 37 µs a check here, against 59 µs for
        OpenSSL's, which also accepts any signature at all for a small-order key."""
        from nacl.exceptions import BadSignatureError  # loaded by the first check: the CLI's start stays fast
        from nacl.signing import VerifyKey

        try:
            VerifyKey(self.signing_public).verify(message, signature)
        except (BadSignatureError, ValueError, TypeError):
            return False
        return True


class DeviceKeys:
    """A device's private keys. Never printed: the repr names the device only.

    A device whose signing key is sealed under its vault's keys holds the public-only form while
    the vault is locked (``public_only``): its Noise key still authenticates it to its peers, but
    ``sign`` raises :class:`SigningKeyLocked` until ``with_signing_seed`` gives the full keys back.
    """

    __slots__ = ("_noise_private", "_signing_key", "public")

    def __init__(self, noise_private: bytes, signing_seed: bytes):
        if len(noise_private) != KEY_SIZE or len(signing_seed) != KEY_SIZE:
            raise ValueError("private keys are 32 bytes each")
        signing_key = Ed25519PrivateKey.from_private_bytes(signing_seed)
        self._set(noise_private, signing_key, signing_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))

    def _set(self, noise_private: bytes, signing_key: Ed25519PrivateKey | None, signing_public: bytes) -> None:
        self._noise_private = bytes(noise_private)
        self._signing_key = signing_key
        noise_public = X25519PrivateKey.from_private_bytes(noise_private).public_key()
        self.public = DevicePublicKeys(
            noise_public=noise_public.public_bytes(Encoding.Raw, PublicFormat.Raw),
            signing_public=bytes(signing_public),
        )

    @classmethod
    def public_only(cls, noise_private: bytes, signing_public: bytes) -> "DeviceKeys":
        """The keys of a device whose signing seed is sealed: the Noise key, and only the public
        half of the signing key (enough for its device id)."""
        if len(noise_private) != KEY_SIZE or len(signing_public) != KEY_SIZE:
            raise ValueError("keys are 32 bytes each")
        Ed25519PublicKey.from_public_bytes(signing_public)  # a malformed point is refused here
        keys = cls.__new__(cls)
        keys._set(noise_private, None, signing_public)
        return keys

    def without_signing_key(self) -> "DeviceKeys":
        """The public-only form of these keys (what a locked vault keeps)."""
        return DeviceKeys.public_only(self._noise_private, self.public.signing_public)

    def with_signing_seed(self, signing_seed: bytes) -> "DeviceKeys":
        """The full keys, from an unsealed seed; IntegrityError unless it is this device's seed."""
        try:
            keys = DeviceKeys(self._noise_private, signing_seed)
        except ValueError:
            raise IntegrityError() from None
        if not hmac.compare_digest(keys.public.signing_public, self.public.signing_public):
            raise IntegrityError()
        return keys

    @classmethod
    def generate(cls, random_bytes: Callable[[int], bytes] = os.urandom) -> "DeviceKeys":
        return cls(random_bytes(KEY_SIZE), random_bytes(KEY_SIZE))

    @property
    def device_id(self) -> DeviceId:
        return self.public.device_id

    @property
    def noise_private(self) -> bytes:
        """The raw X25519 private key, for the Noise handshake and for saving to the key file."""
        return self._noise_private

    @property
    def signing_seed(self) -> bytes:
        return self._require_signing_key().private_bytes_raw()

    @property
    def can_sign(self) -> bool:
        """Whether the signing key is at hand (records, roster entries and headers need it)."""
        return self._signing_key is not None

    def sign(self, message: bytes) -> bytes:
        return self._require_signing_key().sign(message)

    def _require_signing_key(self) -> Ed25519PrivateKey:
        if self._signing_key is None:
            raise SigningKeyLocked()
        return self._signing_key

    def __repr__(self) -> str:
        signing = "private keys redacted" if self.can_sign else "signing key sealed, noise key redacted"
        return f"DeviceKeys(device={self.device_id.short}…, {signing})"
