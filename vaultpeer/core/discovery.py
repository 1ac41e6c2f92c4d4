"""Private service names for mDNS: members recognise each other, everyone else sees noise.

A member's instance label is ``base32(nonce || tag)`` with ``tag = HMAC-SHA256(discovery key,
"vaultpeer mdns v2" || nonce || the device's Noise public key)[:10]``. The discovery key comes from
the vault header, which only members hold (and which a revocation renews), so a label says nothing
to a stranger and a new label every rotation stops anyone from following a device around. A member
recognises the label by trying each member's key, and so learns whose it is: the static key its
Noise IK handshake needs (the handshake, not the name, proves who answers). A device inviting a
new one also advertises a short-lived ``pair-<random>`` label.
"""

import base64
import hashlib
import hmac
import os
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass

SERVICE_TYPE = "_vaultpeer._tcp.local."
NONCE_SIZE = 10
TAG_SIZE = 10
PAIRING_PREFIX = "pair-"
_DOMAIN = b"vaultpeer mdns v2"


def _b32(data: bytes) -> str:
    return base64.b32encode(data).decode("ascii").rstrip("=").lower()


def _unb32(text: str) -> bytes | None:
    try:
        return base64.b32decode(text.upper() + "=" * (-len(text) % 8), casefold=False)
    except (ValueError, TypeError):
        return None


def member_label(discovery_key: bytes, noise_public: bytes, nonce: bytes) -> str:
    return _b32(nonce + _tag(discovery_key, noise_public, nonce))


def _tag(discovery_key: bytes, noise_public: bytes, nonce: bytes) -> bytes:
    return hmac.new(discovery_key, _DOMAIN + nonce + noise_public, hashlib.sha256).digest()[:TAG_SIZE]


def new_member_label(discovery_key: bytes, noise_public: bytes,
                     random_bytes: Callable[[int], bytes] = os.urandom) -> str:
    return member_label(discovery_key, noise_public, random_bytes(NONCE_SIZE))


def label_owner(discovery_keys: Iterable[bytes], members: Iterable[bytes], label: str) -> bytes | None:
    """The Noise public key (one of ``members``) whose device advertises ``label`` under one of
    ``discovery_keys``, or None: a stranger's name, another vault's, or a device no longer a member."""
    if not isinstance(label, str) or len(label) != 32 or label != label.lower():
        return None
    raw = _unb32(label)
    if raw is None or len(raw) != NONCE_SIZE + TAG_SIZE:
        return None
    nonce, tag = raw[:NONCE_SIZE], raw[NONCE_SIZE:]
    members = list(members)
    for discovery_key in discovery_keys:
        for noise_public in members:
            if hmac.compare_digest(_tag(discovery_key, noise_public, nonce), tag):
                return noise_public
    return None


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
    """An address where a member (or, if ``pairing``, an inviting device) may be reached.
    ``address`` is opaque here: only the transport that dials it knows what it means
    (``vaultpeer.io.transports``). ``noise_public``: the member's key when its name said whose it
    is (mDNS); None for a static address, where the dialer tries the members it is not connected to."""

    key: str
    address: Hashable
    pairing: bool
    source: str  # "mdns" or "static"
    noise_public: bytes | None = None


@dataclass(frozen=True)
class PeerGone:
    key: str
