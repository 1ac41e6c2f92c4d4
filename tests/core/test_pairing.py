import re

import pytest

from vaultpeer.core.identity import DeviceKeys
from vaultpeer.core.pairing import (
    CodeExchange,
    Commit,
    Confirm,
    Identity,
    PairingError,
    Reveal,
    decode_message,
    encode_message,
    verification_code,
)
from vaultpeer.core.transport import HandshakeInitiator, HandshakeResponder


def handshake_hashes():
    a, b = DeviceKeys.generate(), DeviceKeys.generate()
    joiner = HandshakeInitiator(static_private=a.noise_private, purpose="pair")
    inviter = HandshakeResponder(static_private=b.noise_private)
    inviter.receive_first(joiner.start())
    inviter.receive(joiner.receive(inviter.accept()))
    return joiner.result.handshake_hash, inviter.result.handshake_hash


def exchange(joiner_hash, inviter_hash):
    joiner = CodeExchange(joiner=True, handshake_hash=joiner_hash)
    inviter = CodeExchange(joiner=False, handshake_hash=inviter_hash)
    assert inviter.start() is None
    nonce = inviter.receive(joiner.start())
    reveal = joiner.receive(nonce)
    assert inviter.receive(reveal) is None
    return joiner.code, inviter.code


def test_both_sides_show_the_same_six_digit_code():
    joiner_code, inviter_code = exchange(*handshake_hashes())
    assert joiner_code == inviter_code and re.fullmatch(r"\d{3} \d{3}", joiner_code)


def test_a_man_in_the_middle_gets_different_codes():
    """Two separate handshakes (as a man in the middle must run) give independent codes."""
    matches = 0
    for _ in range(50):
        (joiner_hash, _), (_, inviter_hash) = handshake_hashes(), handshake_hashes()
        joiner_code, inviter_code = exchange(joiner_hash, inviter_hash)
        matches += joiner_code == inviter_code
    assert matches == 0


def test_a_broken_commitment_is_refused():
    joiner_hash, inviter_hash = handshake_hashes()
    joiner = CodeExchange(joiner=True, handshake_hash=joiner_hash)
    inviter = CodeExchange(joiner=False, handshake_hash=inviter_hash)
    nonce = inviter.receive(joiner.start())
    joiner.receive(nonce)
    with pytest.raises(PairingError, match="commitment"):
        inviter.receive(encode_message(Reveal(b"\x00" * 32)))  # not the committed nonce
    assert inviter.code is None


def test_out_of_order_and_malformed_messages_are_refused():
    inviter = CodeExchange(joiner=False, handshake_hash=b"h" * 64)
    with pytest.raises(PairingError):
        inviter.receive(encode_message(Reveal(b"\x00" * 32)))  # a reveal before any commit
    inviter = CodeExchange(joiner=False, handshake_hash=b"h" * 64)
    for junk in (b"", b"\xa0", encode_message(Confirm(True)) + b"\x00"):
        with pytest.raises(PairingError):
            inviter.receive(junk)
    with pytest.raises(PairingError):
        decode_message(encode_message(Commit(b"\x00" * 32))[:-1])


def test_code_depends_on_every_input():
    base = verification_code(b"h" * 64, b"i" * 32, b"j" * 32)
    assert base != verification_code(b"H" * 64, b"i" * 32, b"j" * 32)
    assert base != verification_code(b"h" * 64, b"I" * 32, b"j" * 32)
    assert base != verification_code(b"h" * 64, b"i" * 32, b"J" * 32)


@pytest.mark.parametrize("name, os_description", [("evil\rPaired with realdev", "Linux"), ("laptop", "Linux\x1b[2J"),
                                                  ("lap\u202etop", "Linux"), ("zero\u200bwidth", "Linux"),
                                                  ("", "Linux"), ("x" * 65, "Linux")])
def test_an_identity_whose_name_or_os_is_not_plain_text_is_refused(name, os_description):
    assert decode_message(encode_message(Identity(b"k" * 32, "laptop", "Linux 6.1"))) == \
        Identity(b"k" * 32, "laptop", "Linux 6.1")
    with pytest.raises(PairingError, match="unexpected"):
        decode_message(encode_message(Identity(b"k" * 32, name, os_description)))
