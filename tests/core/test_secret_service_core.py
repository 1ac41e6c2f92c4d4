"""The pure part of the Secret Service (vaultpeer/core/secret_service.py): the transfer sessions
against secretstorage's own client side of the DH exchange (the reference), and the mapping
between a Secret Service item and a vault item's fields."""

import pytest
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given, settings
from hypothesis import strategies as st
from secretstorage.dhcrypto import DH_PRIME_1024, Session as ClientSession

from vaultpeer.core import secret_service as ss
from vaultpeer.core.errors import InvalidInput
from vaultpeer.core.item import ItemContent


def client_encrypt(key: bytes, secret: bytes, iv: bytes = b"\x07" * 16) -> tuple[bytes, bytes]:
    """What secretstorage sends (its item.py): AES-128-CBC with PKCS7 under the session key."""
    padder = padding.PKCS7(128).padder()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return iv, encryptor.update(padder.update(secret) + padder.finalize()) + encryptor.finalize()


def client_decrypt(key: bytes, iv: bytes, value: bytes) -> bytes:
    decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    unpadder = padding.PKCS7(128).unpadder()
    return unpadder.update(decryptor.update(value) + decryptor.finalize()) + unpadder.finalize()


def dh_pair() -> tuple[ClientSession, ss.DhAesSession]:
    client = ClientSession()
    server, output = ss.open_session(ss.DH_AES, client.my_public_key.to_bytes(128, "big"))
    assert isinstance(output, bytes) and len(output) == 128
    client.set_server_public_key(int.from_bytes(output, "big"))
    return client, server


def test_the_group_is_rfc_2409s_second_oakley_group():
    assert ss.OAKLEY_GROUP_2 == DH_PRIME_1024


def test_the_dh_session_agrees_with_secretstorages_client_both_ways():
    client, server = dh_pair()
    iv, value = client_encrypt(client.aes_key, b"from the client")
    assert server.decode(iv, value) == b"from the client"
    iv, value = server.encode(b"from the server")
    assert len(iv) == 16 and value != b"from the server"
    assert client_decrypt(client.aes_key, iv, value) == b"from the server"


def test_two_sessions_have_different_keys_and_ivs():
    (_, first), (_, second) = dh_pair(), dh_pair()
    iv_a, value_a = first.encode(b"same")
    iv_b, _ = first.encode(b"same")
    assert iv_a != iv_b
    try:
        read = second.decode(iv_a, value_a)
    except ss.SessionError:  # bad padding, almost always
        read = None
    assert read != b"same"


@pytest.mark.parametrize("iv, value", [(b"short", b"\0" * 16), (b"\0" * 16, b""), (b"\0" * 16, b"\0" * 15)])
def test_a_malformed_encrypted_secret_is_one_opaque_error(iv, value):
    _, server = dh_pair()
    with pytest.raises(ss.SessionError):
        server.decode(iv, value)


def test_a_tampered_last_block_fails_its_padding():
    client, server = dh_pair()
    iv, value = client_encrypt(client.aes_key, b"x" * 5)
    with pytest.raises(ss.SessionError):
        server.decode(iv, value[:-1] + bytes([value[-1] ^ 0xFF]))


@pytest.mark.parametrize("public", [b"\0", b"\x01", (DH_PRIME_1024 - 1).to_bytes(128, "big"),
                                    DH_PRIME_1024.to_bytes(128, "big"), b"\x02" * 129, b""])
def test_a_public_key_outside_the_group_is_refused(public):
    with pytest.raises(InvalidInput):
        ss.open_session(ss.DH_AES, public)


def test_plain_takes_an_empty_string_and_nothing_else_is_an_algorithm():
    session, output = ss.open_session(ss.PLAIN, "")
    assert output == "" and session.encode(b"v") == (b"", b"v") and session.decode(b"", b"v") == b"v"
    with pytest.raises(ss.SessionError):
        session.decode(b"iv", b"v")
    with pytest.raises(InvalidInput):
        ss.open_session(ss.PLAIN, "something")
    with pytest.raises(InvalidInput):
        ss.open_session("rot13", "")


def test_an_item_becomes_fields_and_back():
    item = ss.SecretItem("GitHub token", b"ghp_secret", "text/plain", {"service": "gh", "xdg:schema": "org.x"})
    title, fields = ss.to_fields(item)
    assert title == "GitHub token"
    assert fields == {"secret-service": "vaultpeer", "folder": "Secret Service", "secret": "ghp_secret",
                      "content-type": "text/plain", "secret-encoding": "", "attr:service": "gh",
                      "attr:xdg:schema": "org.x"}
    back = ss.from_fields(title, fields.items())
    assert (back.label, back.secret, back.content_type, dict(back.attributes)) == \
        ("GitHub token", b"ghp_secret", "text/plain", {"service": "gh", "xdg:schema": "org.x"})
    ItemContent.build(title, fields)  # a valid vault item
    assert "ghp_secret" not in repr(back) and "gh" not in repr(back)


@settings(max_examples=200)
@given(label=st.text(st.characters(blacklist_characters="\x00\r\n", blacklist_categories=("Cs",)), max_size=50),
       secret=st.binary(max_size=200),
       attributes=st.dictionaries(st.text(st.characters(blacklist_characters="\x00\r\n", blacklist_categories=("Cs",)),
                                          min_size=1, max_size=20).filter(str.strip),
                                  st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)),
                                          max_size=20), max_size=5))
def test_any_item_survives_the_round_trip_through_a_vault_item(label, secret, attributes):
    title, fields = ss.to_fields(ss.SecretItem(label, secret, "application/octet-stream", attributes))
    content = ItemContent.from_plaintext(ItemContent.build(title, fields).to_plaintext())
    back = ss.from_fields(content.title, ((f.name, f.value) for f in content.fields))
    assert back.secret == secret and dict(back.attributes) == attributes
    assert back.label == (label if label.strip() else "")


def test_a_persons_own_item_gives_its_password_and_its_attr_fields():
    back = ss.from_fields("Bank", [("username", "me"), ("password", "pw"), ("attr:service", "bank"),
                                   ("secret-service", "vaultpeer")])
    assert back.secret == b"pw" and dict(back.attributes) == {"service": "bank"}
    assert ss.is_exposed([("secret-service", "vaultpeer")]) and not ss.is_exposed([("password", "pw")])


def test_matching_needs_every_attribute_asked_for():
    attributes = {"service": "S", "user": "U"}
    assert ss.matches(attributes, {}) and ss.matches(attributes, {"service": "S"})
    assert ss.matches(attributes, {"service": "S", "user": "U"})
    assert not ss.matches(attributes, {"service": "S", "user": "V"})
    assert not ss.matches(attributes, {"other": "S"})


@pytest.mark.parametrize("item", [
    ss.SecretItem("big", b"x" * (ss.MAX_SECRET_BYTES + 1), "text/plain", {}),
    ss.SecretItem("two\nlines", b"x", "text/plain", {}),
    ss.SecretItem("label", b"x", "text/plain", {"": "empty name"}),
    ss.SecretItem("label", b"x", "text/plain", {"a\nb": "v"}),
    ss.SecretItem("label", b"x", "text/plain", {"name": "v" * (ss.MAX_ATTRIBUTE_VALUE_CHARS + 1)}),
    ss.SecretItem("label", b"x", "text/plain", {f"a{n}": "v" for n in range(ss.MAX_ATTRIBUTES + 1)}),
    ss.SecretItem("label", b"x", "bad\ntype", {}),
])
def test_what_does_not_fit_is_refused_without_saying_the_value(item):
    with pytest.raises(InvalidInput) as raised:
        ss.to_fields(item)
    assert "empty name" not in str(raised.value)
