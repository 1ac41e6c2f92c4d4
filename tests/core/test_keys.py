import dataclasses

import pytest

from vaultpeer.core.errors import IntegrityError, WrongPassword, WrongRecoveryKey
from vaultpeer.core.identity import DeviceKeys
from vaultpeer.core.kdf import insecure_test_parameters
from vaultpeer.core.keys import Keyring, RecoveryKey, VaultHeader, check_successor, create_vault, header_rank


@pytest.fixture
def device():
    return DeviceKeys.generate()


@pytest.fixture
def created(device):
    kdf = insecure_test_parameters()
    return create_vault(kdf.derive("password one"), kdf, device)


def test_password_and_recovery_key_open_the_same_keyring(created):
    header, keyring, recovery_key = created
    parsed = VaultHeader.from_bytes(header.to_bytes())
    assert parsed == header
    by_password = parsed.open_with_kek(parsed.password_kek("password one"))
    by_recovery = parsed.open_with_recovery_key(RecoveryKey.parse(recovery_key.reveal()))
    assert by_password.key(0) == by_recovery.key(0) == keyring.key(0)


def test_wrong_password_and_wrong_recovery_key_are_named(created):
    header, _, _ = created
    with pytest.raises(WrongPassword):
        header.open_with_kek(header.password_kek("password two"))
    with pytest.raises(WrongRecoveryKey):
        header.open_with_recovery_key(RecoveryKey.generate())


def test_password_change_rewraps_the_same_keys(created, device):
    header, keyring, recovery_key = created
    kdf = insecure_test_parameters()
    changed = header.with_password(keyring, kdf.derive("password two"), kdf, device)
    changed.verify(device.public)
    assert changed.serial == header.serial + 1
    with pytest.raises(WrongPassword):
        changed.open_with_kek(changed.password_kek("password one"))
    assert changed.open_with_kek(changed.password_kek("password two")).key(0) == keyring.key(0)
    assert changed.open_with_recovery_key(recovery_key).key(0) == keyring.key(0)


def test_rotation_is_rewrapped_for_recovery_without_the_recovery_key(created, device):
    header, keyring, recovery_key = created
    rotated = keyring.rotated()
    fresh = dataclasses.replace(header.kdf, salt=bytes(16))
    new_header = header.with_keyring(rotated, fresh.derive("password one"), fresh, device)
    recovered = new_header.open_with_recovery_key(recovery_key)
    assert recovered.current_epoch == 1 == new_header.key_epoch
    assert recovered.key(0) == keyring.key(0) and recovered.key(1) != keyring.key(0)
    assert new_header.discovery_key != header.discovery_key  # a revoked device stops recognising names
    # under a fresh salt: the password opens it, the previous derived key does not
    assert new_header.open_with_kek(new_header.password_kek("password one")).key(1) == rotated.key(1)
    with pytest.raises(WrongPassword):
        new_header.open_with_kek(header.password_kek("password one"))


def test_headers_rank_by_member_then_key_epoch_then_serial(created, device):
    header, keyring, _ = created
    later = dataclasses.replace(header, serial=header.serial + 10**9).signed_by(device)
    rotated = header.with_keyring(keyring.rotated(), header.password_kek("password one"), header.kdf, device)
    assert header_rank(later, True) > header_rank(header, True)
    assert header_rank(rotated, True) > header_rank(later, True)  # a rotation is never undone by a serial
    assert header_rank(rotated, True) > header_rank(later, False)
    assert header_rank(header, True) > header_rank(later, False)  # a revoked author's header loses


def test_no_header_may_change_the_recovery_key(created, device):
    header, keyring, _ = created
    planted = dataclasses.replace(header, recovery_public=RecoveryKey.generate().public_bytes(header.vault_id),
                                  serial=header.serial + 1).signed_by(device)
    check_successor(header, header.with_password(keyring, bytes(32), header.kdf, device))
    with pytest.raises(IntegrityError):
        check_successor(header, planted)


@pytest.mark.parametrize(
    "field",
    ["vault_id", "password_slot", "recovery_public", "recovery_slot", "key_epoch", "serial", "kdf",
     "discovery_secret", "signature"],
)
def test_any_tampering_with_the_header_is_one_opaque_integrity_error(created, device, field):
    header, _, _ = created
    value = getattr(header, field)
    if field == "kdf":
        tampered_value = dataclasses.replace(value, time_cost=value.time_cost + 1)
    elif isinstance(value, int):
        tampered_value = value + 1
    else:
        tampered_value = bytes([value[0] ^ 1]) + value[1:]
    tampered = dataclasses.replace(header, **{field: tampered_value})
    with pytest.raises(IntegrityError) as caught:
        VaultHeader.from_bytes(tampered.to_bytes()).verify(device.public)
    assert str(caught.value) == str(IntegrityError())


def test_header_signed_by_another_device_is_rejected(created):
    header, _, _ = created
    with pytest.raises(IntegrityError):
        header.verify(DeviceKeys.generate().public)
    with pytest.raises(IntegrityError):
        header.verify(None)


def test_malformed_header_bytes_are_integrity_errors(created):
    header, _, _ = created
    data = header.to_bytes()
    for bad in (data[:-1], data + b"\x00", b"\x80", b""):
        with pytest.raises(IntegrityError):
            VaultHeader.from_bytes(bad)


def test_no_key_material_in_reprs(created):
    header, keyring, recovery_key = created
    for obj in (keyring, recovery_key):
        text = repr(obj)
        assert "redacted" in text
        assert keyring.key(0).hex() not in text and recovery_key.reveal() not in text
    assert recovery_key.reveal() not in str(recovery_key)


def test_keyring_plaintext_round_trip_and_validation():
    keyring = Keyring.new().rotated()
    again = Keyring.from_plaintext(keyring.to_plaintext())
    assert again.current_epoch == 1 and again.key(1) == keyring.key(1)
    with pytest.raises(IntegrityError):
        again.key(7)
    with pytest.raises(IntegrityError):
        Keyring.from_plaintext(b"\xa1\x00\x41\x00")  # {0: b"\x00"}: a key of the wrong size
