"""The device's Ed25519 signing seed, sealed under the vault's keys (pure; the file is ``vaultpeer.service.device``).

Whoever copies a device's home without the master password must not be able to sign anything the
other members accept (a revision, a roster entry, a header, a bundle). So once a device holds a
vault and its keyring, the seed is kept only in this form, and a locked device cannot sign::

    key        = HKDF-SHA256(ikm = keyring[epoch], salt = raw device id,
                             info = "vaultpeer signing key seal v1", L = 32)
    AD         = CBOR ["vaultpeer signing key v1", raw device id]
    sealed     = CBOR [epoch, nonce(12), ChaCha20-Poly1305(key, nonce, seed, AD)]

The device id in the key and the associated data binds the file to its device: a sealed seed
copied into another device's home does not open there. Any way the bytes can be wrong (a bad
encoding, an unknown epoch, a failed tag) is one opaque IntegrityError.
"""

import os
from collections.abc import Callable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from vaultpeer.core import encoding
from vaultpeer.core.errors import IntegrityError
from vaultpeer.core.identity import KEY_SIZE, DeviceId
from vaultpeer.core.keys import NONCE_SIZE, Keyring

_KEY_INFO = b"vaultpeer signing key seal v1"
_AD_DOMAIN = "vaultpeer signing key v1"
#: Far more than a sealed seed takes (about 70 bytes): anything larger is not one.
MAX_SEALED_SIZE = 256


def _cipher(keyring: Keyring, epoch: int, device_id: DeviceId) -> ChaCha20Poly1305:
    key = HKDF(hashes.SHA256(), 32, salt=device_id.raw, info=_KEY_INFO).derive(keyring.key(epoch))
    return ChaCha20Poly1305(key)


def _associated_data(device_id: DeviceId) -> bytes:
    return encoding.encode([_AD_DOMAIN, device_id.raw])


def seal_signing_seed(seed: bytes, keyring: Keyring, device_id: DeviceId,
                      random_bytes: Callable[[int], bytes] = os.urandom) -> bytes:
    """The sealed form of ``seed``, under the keyring's newest epoch."""
    if len(seed) != KEY_SIZE:
        raise ValueError("a signing seed is 32 bytes")
    epoch = keyring.current_epoch
    nonce = random_bytes(NONCE_SIZE)
    ciphertext = _cipher(keyring, epoch, device_id).encrypt(nonce, seed, _associated_data(device_id))
    return encoding.encode([epoch, nonce, ciphertext])


def _parse(data: bytes) -> tuple[int, bytes, bytes]:
    value = encoding.decode(data, max_size=MAX_SEALED_SIZE)
    if not (isinstance(value, list) and len(value) == 3):
        raise IntegrityError()
    epoch, nonce, ciphertext = value
    if not (type(epoch) is int and epoch >= 0 and isinstance(nonce, bytes) and len(nonce) == NONCE_SIZE
            and isinstance(ciphertext, bytes) and len(ciphertext) == KEY_SIZE + 16):
        raise IntegrityError()
    return epoch, nonce, ciphertext


def sealed_epoch(data: bytes) -> int:
    """The epoch a sealed seed is sealed under (parsed strictly, not opened)."""
    return _parse(data)[0]


def open_signing_seed(data: bytes, keyring: Keyring, device_id: DeviceId) -> bytes:
    """The seed, or IntegrityError (altered, another device's, or an epoch the keyring lacks)."""
    epoch, nonce, ciphertext = _parse(data)
    try:
        return _cipher(keyring, epoch, device_id).decrypt(nonce, ciphertext, _associated_data(device_id))
    except InvalidTag:
        raise IntegrityError() from None
