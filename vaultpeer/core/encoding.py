"""Deterministic CBOR (RFC 8949 section 4.2) for everything vaultpeer signs, seals or stores.

One value has exactly one encoding, so a signature over an encoding is a signature over the value.
Decoding is strict: one item, no trailing bytes, no indefinite lengths, no duplicate keys, no tags,
no floats, bounded size and depth, and the input must be the canonical encoding of what it decodes
to (otherwise two byte strings could carry one signed value).
"""

import io

import cbor2

from vaultpeer.core.errors import IntegrityError

MAX_DEPTH = 16

_ALLOWED_SCALARS = (bytes, str, bool, type(None))


def encode(value: object) -> bytes:
    return cbor2.dumps(value, canonical=True)


def decode(data: bytes, *, max_size: int) -> object:
    """Decode one canonical CBOR value, or raise :class:`IntegrityError`."""
    if not isinstance(data, (bytes, bytearray)) or len(data) > max_size:
        raise IntegrityError()
    data = bytes(data)
    stream = io.BytesIO(data)
    decoder = cbor2.CBORDecoder(
        stream,
        max_depth=MAX_DEPTH,
        allow_indefinite=False,
        allow_duplicate_keys=False,
        semantic_decoders={},
    )
    try:
        value = decoder.decode()
    except (cbor2.CBORError, ValueError, TypeError, OverflowError, RecursionError, MemoryError):
        raise IntegrityError() from None
    if stream.tell() != len(data):
        raise IntegrityError()
    _check_plain(value, 0)
    if encode(value) != data:
        raise IntegrityError()
    return value


def _check_plain(value: object, depth: int) -> None:
    """Only ints, byte and text strings, booleans, null, lists and maps of those."""
    if depth > MAX_DEPTH:
        raise IntegrityError()
    if isinstance(value, int) or isinstance(value, _ALLOWED_SCALARS):
        return
    if isinstance(value, list):
        for element in value:
            _check_plain(element, depth + 1)
        return
    if isinstance(value, dict):
        for key, element in value.items():
            if not isinstance(key, (int, str)):
                raise IntegrityError()
            _check_plain(element, depth + 1)
        return
    raise IntegrityError()
