"""Private service names for mDNS: members recognise each other, everyone else sees noise.

A member's instance label is ``base32(nonce || tag)`` with ``tag = HMAC-SHA256(discovery key,
"vaultpeer mdns v1" || nonce)[:10]``. The discovery key comes from the vault header, which only
members hold (and which a revocation renews), so a label says nothing to a stranger and a new
label every rotation stops anyone from following a device around. A device inviting a new one also
advertises a short-lived ``pair-<random>`` label. Discovery only ever yields addresses: who is
there is established by the Noise handshake, never by the name.
"""

import base64
import hashlib
import hmac
import os
from collections.abc import Callable
from dataclasses import dataclass

SERVICE_TYPE = "_vaultpeer._tcp.local."
NONCE_SIZE = 10
TAG_SIZE = 10
PAIRING_PREFIX = "pair-"
_DOMAIN = b"vaultpeer mdns v1"


def _b32(data: bytes) -> str:
    return base64.b32encode(data).decode("ascii").rstrip("=").lower()


def _unb32(text: str) -> bytes | None:
    try:
        return base64.b32decode(text.upper() + "=" * (-len(text) % 8), casefold=False)
    except (ValueError, TypeError):
        return None


def member_label(discovery_key: bytes, nonce: bytes) -> str:
    tag = hmac.new(discovery_key, _DOMAIN + nonce, hashlib.sha256).digest()[:TAG_SIZE]
    return _b32(nonce + tag)


def new_member_label(discovery_key: bytes, random_bytes: Callable[[int], bytes] = os.urandom) -> str:
    return member_label(discovery_key, random_bytes(NONCE_SIZE))


def is_member_label(discovery_key: bytes, label: str) -> bool:
    if not isinstance(label, str) or len(label) != 32 or label != label.lower():
        return False
    raw = _unb32(label)
    if raw is None or len(raw) != NONCE_SIZE + TAG_SIZE:
        return False
    expected = hmac.new(discovery_key, _DOMAIN + raw[:NONCE_SIZE], hashlib.sha256).digest()[:TAG_SIZE]
    return hmac.compare_digest(expected, raw[NONCE_SIZE:])


def new_pairing_label(random_bytes: Callable[[int], bytes] = os.urandom) -> str:
    return PAIRING_PREFIX + _b32(random_bytes(10))


def is_pairing_label(label: str) -> bool:
    if not isinstance(label, str) or not label.startswith(PAIRING_PREFIX):
        return False
    raw = _unb32(label[len(PAIRING_PREFIX):])
    return raw is not None and len(raw) == 10 and _b32(raw) == label[len(PAIRING_PREFIX):]


def random_server_name(random_bytes: Callable[[int], bytes] = os.urandom) -> str:
    return f"vp-{_b32(random_bytes(8))}.local."


def instance_name(label: str) -> str:
    return f"{label}.{SERVICE_TYPE}"


def label_of(name: str) -> str | None:
    suffix = "." + SERVICE_TYPE
    return name[: -len(suffix)] if isinstance(name, str) and name.endswith(suffix) else None


@dataclass(frozen=True)
class PeerSeen:
    """An address where a member (or, if ``pairing``, an inviting device) may be reached."""

    key: str
    host: str
    port: int
    pairing: bool
    source: str  # "mdns" or "static"


@dataclass(frozen=True)
class PeerGone:
    key: str
