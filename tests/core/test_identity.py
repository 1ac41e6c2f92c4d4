import os

from vaultpeer.core.identity import DeviceId, DeviceKeys, DevicePublicKeys


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
