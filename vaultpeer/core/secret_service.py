"""The Secret Service (org.freedesktop.secrets) as the vault sees it: pure, no D-Bus here.

* How a Secret Service item is a vault item (``SecretItem``, ``to_fields``, ``from_fields``): the
  label is the title; the secret, its content type and every attribute are fields, so all of them
  are sealed inside the item like any other value (the spec allows attributes in clear; here they
  never are). The marker field ``secret-service`` exposes an item to D-Bus clients: items created
  through the Secret Service carry it, and a person sets it on their own items with
  ``vaultpeer edit ITEM --expose-to-secret-service``.
* Attribute matching (``matches``): every attribute asked for must be there with exactly that value.
* The transfer sessions (``open_session``): ``plain`` and ``dh-ietf1024-sha256-aes128-cbc-pkcs7``
  (RFC 2409's Second Oakley Group, HKDF-SHA256 with no salt and no info, AES-128-CBC with PKCS7),
  all from ``cryptography``.
"""

import base64
import os
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.asymmetric import dh
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.utils import CryptographyDeprecationWarning

from vaultpeer.core.errors import InvalidInput
from vaultpeer.core.item import MAX_FIELD_NAME_CHARS, MAX_TITLE_CHARS
from vaultpeer.core.secret_service_fields import (
    ATTRIBUTE_PREFIX,
    COLLECTION,
    CONTENT_TYPE_FIELD,
    ENCODING_FIELD,
    EXPOSED_FIELD,
    FOLDER,
    SECRET_FIELD,
)

#: An exposed item of the person's own with no ``secret`` field gives its ``password``.
FALLBACK_SECRET_FIELD = "password"
#: A Secret Service label may be empty; a vault title may not.
EMPTY_LABEL_TITLE = "(no label)"
DEFAULT_CONTENT_TYPE = "text/plain"
#: The largest secret a client may store (an item holds at most 1 MiB, base64 and all).
MAX_SECRET_BYTES = 512 * 1024
MAX_ATTRIBUTES = 64
MAX_ATTRIBUTE_VALUE_CHARS = 4096
MAX_ATTRIBUTE_NAME_CHARS = MAX_FIELD_NAME_CHARS - len(ATTRIBUTE_PREFIX)

PLAIN = "plain"
DH_AES = "dh-ietf1024-sha256-aes128-cbc-pkcs7"
ALGORITHMS = (PLAIN, DH_AES)

#: RFC 2409 section 6.2, the Second Oakley Group (1024-bit MODP), generator 2.
OAKLEY_GROUP_2 = int(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DD"
    "EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED"
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE65381FFFFFFFFFFFFFFFF", 16)
_GROUP_BYTES = 128
_AES_BLOCK = 16


class SessionError(Exception):
    """A secret that does not decode in its session (bad IV, bad padding, bad key). One opaque
    error, as Fernet's InvalidToken: nothing says which check failed."""


@dataclass(frozen=True, repr=False)
class SecretItem:
    """An item as a Secret Service client sees it."""

    label: str
    secret: bytes
    content_type: str
    attributes: Mapping[str, str]

    def __repr__(self) -> str:
        return f"SecretItem(redacted, {len(self.attributes)} attributes)"


def check_attributes(attributes: Mapping[str, str]) -> dict[str, str]:
    """The attributes as given, or InvalidInput: text names and values, within the limits."""
    if not isinstance(attributes, Mapping) or len(attributes) > MAX_ATTRIBUTES:
        raise InvalidInput(f"an item has at most {MAX_ATTRIBUTES} attributes")
    for name, value in attributes.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise InvalidInput("attribute names and values are text")
        if not name.strip() or len(name) > MAX_ATTRIBUTE_NAME_CHARS or any(c in name for c in "\x00\r\n"):
            raise InvalidInput(f"an attribute name is one line of 1 to {MAX_ATTRIBUTE_NAME_CHARS} characters")
        if len(value) > MAX_ATTRIBUTE_VALUE_CHARS or "\x00" in value:
            raise InvalidInput(f"an attribute value is at most {MAX_ATTRIBUTE_VALUE_CHARS} characters, no NUL")
    return dict(attributes)


def check_label(label: str) -> str:
    if not isinstance(label, str) or len(label) > MAX_TITLE_CHARS or any(c in label for c in "\x00\r\n"):
        raise InvalidInput(f"a label is one line of at most {MAX_TITLE_CHARS} characters")
    return label


def check_secret(secret: bytes, content_type: str) -> None:
    if len(secret) > MAX_SECRET_BYTES:
        raise InvalidInput(f"a secret is at most {MAX_SECRET_BYTES // 1024} KiB")
    if not isinstance(content_type, str) or len(content_type) > 200 or any(c in content_type for c in "\x00\r\n"):
        raise InvalidInput("the content type is one line of at most 200 characters")


def is_exposed(fields: Iterable[tuple[str, str]]) -> bool:
    return any(name == EXPOSED_FIELD for name, _ in fields)


def to_fields(item: SecretItem) -> tuple[str, dict[str, str]]:
    """The title and fields of the vault item that holds ``item`` (checked: InvalidInput)."""
    label = check_label(item.label)
    attributes = check_attributes(item.attributes)
    check_secret(item.secret, item.content_type)
    fields = {EXPOSED_FIELD: COLLECTION, "folder": FOLDER}
    fields.update(secret_fields(item.secret, item.content_type))
    fields.update({ATTRIBUTE_PREFIX + name: value for name, value in sorted(attributes.items())})
    return (label if label.strip() else EMPTY_LABEL_TITLE), fields


def secret_fields(secret: bytes, content_type: str) -> dict[str, str]:
    """The fields that hold a secret: its text, or its base64 and a note saying so."""
    check_secret(secret, content_type)
    try:
        text = secret.decode("utf-8")
        encoded = False
    except UnicodeDecodeError:
        text, encoded = base64.b64encode(secret).decode(), True
    fields = {SECRET_FIELD: text, CONTENT_TYPE_FIELD: content_type or DEFAULT_CONTENT_TYPE}
    fields[ENCODING_FIELD] = "base64" if encoded else ""
    return fields


def attribute_fields(attributes: Mapping[str, str]) -> dict[str, str]:
    return {ATTRIBUTE_PREFIX + name: value for name, value in check_attributes(attributes).items()}


def from_fields(title: str, fields: Iterable[tuple[str, str]]) -> SecretItem:
    """The Secret Service's view of a vault item (exposed or not: the caller decides)."""
    values: dict[str, str] = {}
    for name, value in fields:
        values.setdefault(name, value)  # the first of a name wins
    attributes = {name[len(ATTRIBUTE_PREFIX):]: value for name, value in values.items()
                  if name.startswith(ATTRIBUTE_PREFIX)}
    if SECRET_FIELD in values:
        text = values[SECRET_FIELD]
        if values.get(ENCODING_FIELD) == "base64":
            try:
                secret = base64.b64decode(text, validate=True)
            except ValueError:
                secret = text.encode()
        else:
            secret = text.encode()
    else:
        secret = values.get(FALLBACK_SECRET_FIELD, "").encode()
    content_type = values.get(CONTENT_TYPE_FIELD) or DEFAULT_CONTENT_TYPE
    label = "" if title == EMPTY_LABEL_TITLE else title
    return SecretItem(label, secret, content_type, attributes)


def matches(attributes: Mapping[str, str], wanted: Mapping[str, str]) -> bool:
    """Whether an item with ``attributes`` is found by a search for ``wanted`` (every pair equal)."""
    return all(attributes.get(name) == value for name, value in wanted.items())


# --- transfer sessions ------------------------------------------------------------------------


class PlainSession:
    """Secrets cross the bus as they are (the bus is the user's own; the spec's default)."""

    algorithm = PLAIN

    def encode(self, secret: bytes) -> tuple[bytes, bytes]:
        return b"", secret

    def decode(self, parameters: bytes, value: bytes) -> bytes:
        if parameters:
            raise SessionError()
        return value

    def __repr__(self) -> str:
        return "PlainSession()"


class DhAesSession:
    """``dh-ietf1024-sha256-aes128-cbc-pkcs7``: the parameters are the IV, the value the ciphertext."""

    algorithm = DH_AES

    def __init__(self, key: bytes, random_bytes: Callable[[int], bytes] = os.urandom):
        self._key = key
        self._random_bytes = random_bytes

    def encode(self, secret: bytes) -> tuple[bytes, bytes]:
        iv = self._random_bytes(_AES_BLOCK)
        padder = padding.PKCS7(128).padder()
        padded = padder.update(secret) + padder.finalize()
        encryptor = Cipher(algorithms.AES(self._key), modes.CBC(iv)).encryptor()
        return iv, encryptor.update(padded) + encryptor.finalize()

    def decode(self, parameters: bytes, value: bytes) -> bytes:
        if len(parameters) != _AES_BLOCK or not value or len(value) % _AES_BLOCK:
            raise SessionError()
        decryptor = Cipher(algorithms.AES(self._key), modes.CBC(parameters)).decryptor()
        padded = decryptor.update(value) + decryptor.finalize()
        unpadder = padding.PKCS7(128).unpadder()
        try:
            return unpadder.update(padded) + unpadder.finalize()
        except ValueError:
            raise SessionError() from None

    def __repr__(self) -> str:
        return "DhAesSession(redacted)"


Session = PlainSession | DhAesSession


def open_session(algorithm: str, client_input: bytes | str) -> tuple[Session, bytes | str]:
    """A session for ``algorithm`` and what OpenSession answers (the plain session's empty
    string, or this side's DH public key, big-endian). InvalidInput for an unknown algorithm
    (the caller answers NotSupported) or a bad input."""
    if algorithm == PLAIN:
        if client_input != "":
            raise InvalidInput("the plain algorithm takes an empty string")
        return PlainSession(), ""
    if algorithm != DH_AES:
        raise InvalidInput(f"algorithm not supported (use {PLAIN!r} or {DH_AES!r})")
    if not isinstance(client_input, bytes) or not 0 < len(client_input) <= _GROUP_BYTES:
        raise InvalidInput("the DH algorithm takes the client's public key, at most 128 bytes")
    peer = int.from_bytes(client_input, "big")
    if not 1 < peer < OAKLEY_GROUP_2 - 1:
        raise InvalidInput("that is not a public key of the group")
    with warnings.catch_warnings():
        # cryptography deprecates finite-field DH; the spec's algorithm is this group and no other
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        numbers = dh.DHParameterNumbers(OAKLEY_GROUP_2, 2)
        private = numbers.parameters().generate_private_key()
        try:
            shared = private.exchange(dh.DHPublicNumbers(peer, numbers).public_key())
        except ValueError:
            raise InvalidInput("that is not a public key of the group") from None
        public_y = private.public_key().public_numbers().y
    shared = shared.rjust(_GROUP_BYTES, b"\0")
    key = HKDF(algorithm=hashes.SHA256(), length=16, salt=None, info=b"").derive(shared)
    public = public_y.to_bytes(_GROUP_BYTES, "big")
    return DhAesSession(key), public
