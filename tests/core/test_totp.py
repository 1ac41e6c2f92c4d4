"""TOTP codes: RFC 6238's test vectors, the forms password managers store, and bad input."""

import base64
import hashlib
import hmac

import pytest

from vaultpeer.core.errors import InvalidInput
from vaultpeer.core.totp import STEAM_ALPHABET, TotpSettings, parse_totp, totp_code

# RFC 6238, Appendix B: the seeds are the ASCII digits, repeated to the hash's size.
SEEDS = {
    "SHA1": b"12345678901234567890",
    "SHA256": b"12345678901234567890123456789012",
    "SHA512": b"1234567890123456789012345678901234567890123456789012345678901234",
}
VECTORS = [  # time, SHA1, SHA256, SHA512 (8 digits, 30 s)
    (59, "94287082", "46119246", "90693936"),
    (1111111109, "07081804", "68084774", "25091201"),
    (1111111111, "14050471", "67062674", "99943326"),
    (1234567890, "89005924", "91819424", "93441116"),
    (2000000000, "69279037", "90698825", "38618901"),
    (20000000000, "65353130", "77737706", "47863826"),
]


def b32(raw: bytes) -> str:
    return base64.b32encode(raw).decode().rstrip("=")


@pytest.mark.parametrize("now,sha1,sha256,sha512", VECTORS)
def test_rfc_6238_test_vectors(now, sha1, sha256, sha512):
    for algorithm, expected in (("SHA1", sha1), ("SHA256", sha256), ("SHA512", sha512)):
        uri = f"otpauth://totp/RFC:test?secret={b32(SEEDS[algorithm])}&digits=8&algorithm={algorithm}"
        code = totp_code(parse_totp(uri), now)
        assert code.code == expected, algorithm
        assert (code.period, code.digits) == (30, 8)


def test_remaining_counts_down_to_the_next_code():
    settings = parse_totp(b32(SEEDS["SHA1"]))
    assert totp_code(settings, 60).remaining == 30
    assert totp_code(settings, 89.9).remaining == 1
    assert totp_code(settings, 89.9).code == totp_code(settings, 60).code != totp_code(settings, 90).code


def test_a_bare_secret_is_read_as_password_managers_write_it():
    canonical = parse_totp("JBSWY3DPEHPK3PXP")
    for written in ("jbsw y3dp ehpk 3pxp", "JBSW-Y3DP-EHPK-3PXP", " JBSWY3DPEHPK3PXP= \n"):
        assert parse_totp(written).secret == canonical.secret
    assert (canonical.period, canonical.digits, canonical.algorithm, canonical.steam) == (30, 6, "SHA1", False)


def test_keepass_legacy_settings_and_uri_parameters():
    secret = b32(SEEDS["SHA1"])
    assert (parse_totp(secret, "60;8").period, parse_totp(secret, "60;8").digits) == (60, 8)
    assert parse_totp(secret, "30;S").steam
    assert parse_totp(secret, "30;6;SHA256").algorithm == "SHA256"
    uri = parse_totp(f"otpauth://totp/Example:alice@example.com?secret={secret}&issuer=Example&period=60&algorithm=sha512")
    assert (uri.period, uri.digits, uri.algorithm) == (60, 6, "SHA512")


def test_steam_codes_are_five_letters_of_the_same_truncation():
    secret = SEEDS["SHA1"]
    forms = [f"otpauth://totp/Steam:me?secret={b32(secret)}&encoder=steam", f"steam://{b32(secret)}"]
    for form in forms:
        settings = parse_totp(form)
        assert settings.steam and settings.digits == 5
        code = totp_code(settings, 1_600_000_000).code
        # an independent computation from the standard library
        digest = hmac.new(secret, (1_600_000_000 // 30).to_bytes(8, "big"), hashlib.sha1).digest()
        value = int.from_bytes(digest[digest[-1] & 15:][:4], "big") & 0x7FFFFFFF
        expected = ""
        for _ in range(5):
            value, index = divmod(value, 26)
            expected += STEAM_ALPHABET[index]
        assert code == expected


@pytest.mark.parametrize("value,message", [
    ("", "no TOTP secret"),
    ("   ", "no TOTP secret"),
    ("not base32 at all!", "not base32"),
    ("otpauth://hotp/x?secret=JBSWY3DPEHPK3PXP&counter=1", "HOTP"),
    ("otpauth://totp/x?issuer=me", "no secret"),
    ("otpauth://totp/x?secret=JBSWY3DPEHPK3PXP&digits=12", "6 to 8 digits"),
    ("otpauth://totp/x?secret=JBSWY3DPEHPK3PXP&digits=six", "whole number"),
    ("otpauth://totp/x?secret=JBSWY3DPEHPK3PXP&period=0", "period"),
    ("otpauth://totp/x?secret=JBSWY3DPEHPK3PXP&algorithm=MD5", "SHA1, SHA256 or SHA512"),
    ("otpauth://totp/x?secret=JBSWY3DPEHPK3PXP&secret=GEZDGNBV", "more than once"),
    ("otpauth://other/x?secret=JBSWY3DPEHPK3PXP", "not an otpauth://totp/"),
    ("A" * 5000, "longer than"),
])
def test_bad_input_is_refused_without_quoting_the_secret(value, message):
    with pytest.raises(InvalidInput, match=message) as caught:
        parse_totp(value)
    assert "JBSWY3DPEHPK3PXP" not in str(caught.value)


def test_bad_legacy_settings_are_refused():
    for settings in ("30", "30;x", "30;6;MD5;x", "0;6"):
        with pytest.raises(InvalidInput):
            parse_totp("JBSWY3DPEHPK3PXP", settings)


def test_no_secret_or_code_in_a_repr():
    settings = parse_totp("JBSWY3DPEHPK3PXP")
    code = totp_code(settings, 1_700_000_000)
    assert settings.secret.hex() not in repr(settings) and "JBSW" not in repr(settings)
    assert code.code not in repr(code)
    assert code.to_json() == {"code": code.code, "remaining": code.remaining, "period": 30, "digits": 6}
    with pytest.raises(InvalidInput):
        TotpSettings(b"x", digits=5)
    with pytest.raises(InvalidInput):
        totp_code(settings, -1)
