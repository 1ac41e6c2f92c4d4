import os

import pytest

from vaultpeer.core import encoding
from vaultpeer.core.errors import IntegrityError, SigningKeyLocked, VaultLocked
from vaultpeer.core.identity import DeviceId, DeviceKeys, DevicePublicKeys
from vaultpeer.core.keys import Keyring
from vaultpeer.core.signing_seal import open_signing_seed, seal_signing_seed, sealed_epoch


def test_device_id_commits_to_both_public_keys():
    keys = DeviceKeys.generate()
    other = DeviceKeys.generate()
    assert DeviceId.parse(str(keys.device_id)) == keys.device_id
    swapped_noise = DevicePublicKeys(other.public.noise_public, keys.public.signing_public)
    swapped_signing = DevicePublicKeys(keys.public.noise_public, other.public.signing_public)
    assert len({keys.device_id, swapped_noise.device_id, swapped_signing.device_id}) == 3


def test_keys_reload_from_their_bytes():
    keys = DeviceKeys.generate()
    again = DeviceKeys(keys.noise_private, keys.signing_seed)
    assert again.device_id == keys.device_id
    assert keys.public.verify(again.sign(b"message"), b"message")
    assert not keys.public.verify(again.sign(b"message"), b"other message")
    assert not keys.public.verify(os.urandom(64), b"message")


def test_repr_never_shows_private_keys():
    keys = DeviceKeys.generate()
    text = repr(keys)
    assert keys.noise_private.hex() not in text and keys.signing_seed.hex() not in text
    assert "redacted" in text


# --- the public-only form, and the seed sealed under the vault's keys (core/signing_seal.py) ------


def test_the_public_only_form_keeps_the_identity_and_the_noise_key_but_cannot_sign():
    keys = DeviceKeys.generate()
    locked = keys.without_signing_key()
    assert locked.device_id == keys.device_id and locked.public == keys.public
    assert locked.noise_private == keys.noise_private  # a locked daemon still authenticates to peers
    assert keys.can_sign and not locked.can_sign
    for attempt in (lambda: locked.sign(b"message"), lambda: locked.signing_seed):
        with pytest.raises(SigningKeyLocked, match="unlock the vault first") as raised:
            attempt()
        assert isinstance(raised.value, VaultLocked) and raised.value.code == "locked"
    assert DeviceKeys.public_only(keys.noise_private, keys.public.signing_public).public == keys.public
    assert keys.noise_private.hex() not in repr(locked) and "sealed" in repr(locked)


def test_the_full_keys_come_back_only_with_this_devices_own_seed():
    keys = DeviceKeys.generate()
    full = keys.without_signing_key().with_signing_seed(keys.signing_seed)
    assert full.can_sign and full.public == keys.public
    assert keys.public.verify(full.sign(b"message"), b"message")
    for wrong in (DeviceKeys.generate().signing_seed, b"short"):
        with pytest.raises(IntegrityError):
            keys.without_signing_key().with_signing_seed(wrong)


def test_a_sealed_seed_opens_with_the_keyring_for_its_device_only():
    keys, keyring = DeviceKeys.generate(), Keyring.new().rotated()
    sealed = seal_signing_seed(keys.signing_seed, keyring, keys.device_id)
    assert open_signing_seed(sealed, keyring, keys.device_id) == keys.signing_seed
    assert sealed_epoch(sealed) == keyring.current_epoch == 1
    assert keys.signing_seed not in sealed
    epoch, nonce, ciphertext = encoding.decode(sealed, max_size=256)
    assert (epoch, len(nonce), len(ciphertext)) == (1, 12, 48)
    # an older keyring still opens what was sealed under it: the seal is renewed at unlock
    assert open_signing_seed(seal_signing_seed(keys.signing_seed, Keyring({0: keyring.key(0)}), keys.device_id),
                             keyring, keys.device_id) == keys.signing_seed


def test_any_change_to_a_sealed_seed_is_one_opaque_integrity_error():
    keys, keyring = DeviceKeys.generate(), Keyring.new()
    sealed = seal_signing_seed(keys.signing_seed, keyring, keys.device_id)
    epoch, nonce, ciphertext = encoding.decode(sealed, max_size=256)
    other_nonce = bytes(b ^ 1 for b in nonce)
    damaged = [sealed[:-1], sealed + b"\x00", b"", encoding.encode([epoch + 1, nonce, ciphertext]),
               encoding.encode([epoch, nonce, ciphertext[:-1]]), encoding.encode([epoch, other_nonce, ciphertext]),
               encoding.encode([epoch, nonce, ciphertext, b""]), encoding.encode({"epoch": epoch})]
    for n in range(len(sealed)):
        flipped = bytearray(sealed)
        flipped[n] ^= 0x01
        damaged.append(bytes(flipped))
    messages = set()
    for data in damaged:
        with pytest.raises(IntegrityError) as raised:
            open_signing_seed(data, keyring, keys.device_id)
        messages.add(str(raised.value))
    assert len(messages) == 1  # nothing says which check failed
    with pytest.raises(IntegrityError):  # another device's sealed seed, or another vault's keys
        open_signing_seed(sealed, keyring, DeviceKeys.generate().device_id)
    with pytest.raises(IntegrityError):
        open_signing_seed(sealed, Keyring.new(), keys.device_id)


# --- the signature rule (sync protocol 6; docs/formats.md, "Signatures") -----------------------

#: The group order of Ed25519 (RFC 8032's L).
ED25519_ORDER = 2**252 + 27742317777372353535851937790883648493
#: The neutral point, encoded: a public key of small order (order 1).
NEUTRAL_POINT = b"\x01" + bytes(31)


def test_an_honest_signature_verifies_and_any_change_to_it_or_the_message_does_not():
    device = DeviceKeys.generate()
    signature = device.sign(b"a revision")
    assert device.public.verify(signature, b"a revision")
    assert not device.public.verify(signature, b"another revision")
    for at in (0, 31, 32, 63):
        assert not device.public.verify(signature[:at] + bytes([signature[at] ^ 1]) + signature[at + 1:], b"a revision")
    assert not DeviceKeys.generate().public.verify(signature, b"a revision")  # another device's key


@pytest.mark.parametrize("signature", [b"", bytes(63), bytes(65), "text" * 16, None])
def test_a_signature_of_the_wrong_shape_is_refused_not_raised(signature):
    assert DeviceKeys.generate().public.verify(signature, b"message") is False


def test_a_small_order_key_accepts_no_signature_not_even_the_one_that_fits_any_message():
    """For the neutral point as a key, R = the neutral point and S = 0 satisfy RFC 8032's equation for
    every message (OpenSSL's check, the rule before protocol 6, accepts it): a member that vouched for
    a device with such a key would have let anyone sign as that device. libsodium's rule refuses
    small-order keys and R outright."""
    sybil = DevicePublicKeys(os.urandom(32), NEUTRAL_POINT)
    universal = NEUTRAL_POINT + bytes(32)
    for message in (b"anything", b"something else", b""):
        assert not sybil.verify(universal, message)


def test_a_non_canonical_s_is_refused():
    """S + L satisfies the same equation as S: accepting it would let anyone make a second valid
    signature of a signed record (a different record hash for the same revision)."""
    device = DeviceKeys.generate()
    signature = device.sign(b"a revision")
    s = int.from_bytes(signature[32:], "little") + ED25519_ORDER
    assert s < 2**256
    assert not device.public.verify(signature[:32] + s.to_bytes(32, "little"), b"a revision")
