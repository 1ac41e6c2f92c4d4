"""The device's audit log: a hash chain of signed entries (pure; the store and recording are shells).

Every entry is ``(seq, time, event, details)``. ``event`` is one of a fixed set of names and
``details`` a small map whose keys are fixed per event and whose values are checked by kind: a
device id, a device name, a peer address, a count, or a word from a fixed vocabulary (a reason, a
file format...). There is no free-form text field, no byte string and no float, so no password,
field value, title, key or error message can be written into the log, by a caller's mistake either.

Each entry is chained to the one before and signed by the device:

    body        = CBOR ["vaultpeer audit entry v1", seq, time, event, details]
    entry_hash  = BLAKE2b-256("vaultpeer audit chain v1" || 0x00 || previous entry_hash || body)
                  (the first entry's previous hash is 32 zero bytes)
    signature   = Ed25519(signer, CBOR ["vaultpeer audit signature v1", entry_hash])

**Which key signs.** Entries are signed with the device's *audit key* (:class:`AuditKey`), an
Ed25519 key of its own kept in clear in the home, because a locked device must still record
rejections and failed unlocks while its identity signing key is sealed under the vault's keys.
Entries written before the audit key existed were signed with the identity signing key. The rule
``verify_chain`` applies is the simplest sound one: **a signature by either of the device's two
known public keys is accepted** (the caller passes both). It adds nothing an attacker could use:
the audit log never leaves the device, and whoever can read the audit key can already sign
anything with it, so accepting the identity key as well (which is the harder one to get) only
keeps old entries verifying.

``verify_chain`` walks the entries in order and names the first one that is not what the device
wrote: a modified entry, a missing one (a gap in seq), one moved elsewhere, or a bad signature.
Anyone able to write the database but not the device's key files cannot rewrite the chain
consistently. Someone holding the key files (the audit key is one of them, in clear) can; and
removing the *newest* entries leaves a shorter chain that is still consistent, which shows only
against a head hash noted earlier (``expected_head``).
"""

import hashlib
import os
import re
import time as _time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from vaultpeer.core import encoding
from vaultpeer.core.errors import IntegrityError
from vaultpeer.core.identity import KEY_SIZE, DeviceId
from vaultpeer.core.text import inert

_BODY_DOMAIN = "vaultpeer audit entry v1"
_CHAIN_DOMAIN = b"vaultpeer audit chain v1\x00"
_SIGNATURE_DOMAIN = "vaultpeer audit signature v1"
HASH_SIZE = 32
SIGNATURE_SIZE = 64
GENESIS = bytes(HASH_SIZE)
MAX_DETAILS_BYTES = 1024
MAX_COUNT = (1 << 53) - 1
MAX_NAME_CHARS = 64

# --- what may be recorded -------------------------------------------------------------------------

#: Words a ``reason`` may be. A reason is chosen by the code that records, never taken from input.
REASONS = frozenset({
    # failed unlocks and password changes
    "wrong_password", "wrong_recovery_key",
    # an attempt refused unheard while the backoff says wait (recorded with a count)
    "rate_limited",
    # pairing
    "declined", "declined_by_peer", "timeout", "connection_lost", "refused", "failed", "cancelled",
    # input rejected from the network
    "handshake_failed", "not_member", "handshake_replayed", "no_invitation", "too_many_connections", "bad_frame",
    "sync_protocol", "sync_rejected",
    # rejected bundles
    "integrity", "not_for_this_device", "wrong_exporter",
})
#: Details that are a record hash, as 64 lowercase hex digits (evidence of an equivocation).
_HASHES = frozenset({"kept", "other"})
_HEX_HASH = re.compile(r"^[0-9a-f]{64}$")

_ENUMS: dict[str, frozenset[str]] = {
    "reason": REASONS,
    "via": frozenset({"cli", "daemon"}),
    "method": frozenset({"password", "recovery_key"}),
    "role": frozenset({"inviter", "joiner"}),
    "format": frozenset({"kdbx", "bitwarden", "csv", "unknown"}),
    # an app's highest scope level (its scopes' folder and tag names are item data: not recorded)
    "access": frozenset({"read", "write", "admin"}),
}
_COUNTS = frozenset({"count", "skipped", "seq", "pid", "limited"})
#: An app name (core/app_scopes.py), or ``*`` for the apps counted together past the limiter's bound.
_APP = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$|^\*$")
#: A local API method name (``item.get``): a word of the API, never input.
_REQUEST = re.compile(r"^[a-z]{1,16}(\.[a-z_]{1,16}){0,2}$")
_ADDRESS = re.compile(r"^[0-9A-Za-z.:%\[\]-]{1,64}$|^\*$")

#: Each event and the detail keys it may carry (all optional).
EVENTS: Mapping[str, frozenset[str]] = MappingProxyType({
    "vault.created": frozenset({"via"}),
    "unlock": frozenset({"via", "method", "app"}),
    "unlock.failed": frozenset({"via", "method", "reason", "count"}),
    "password.changed": frozenset({"via", "method", "app"}),
    "password.change_failed": frozenset({"via", "method", "reason", "count"}),
    "pairing.paired": frozenset({"role", "device_id", "device_name", "peer"}),
    "pairing.failed": frozenset({"role", "peer", "reason"}),
    "device.admitted": frozenset({"device_id", "device_name", "app"}),
    "device.revoked": frozenset({"device_id", "device_name", "app"}),
    # a member told this device it was removed from the vault (device_id: the revoking device)
    "device.removed": frozenset({"device_id", "device_name"}),
    "peer.rejected": frozenset({"peer", "device_id", "reason", "count"}),
    "bundle.imported": frozenset({"device_id", "count", "app"}),
    "bundle.rejected": frozenset({"reason", "app"}),
    "items.imported": frozenset({"via", "format", "count", "skipped", "app"}),
    "backup.restored": frozenset({"device_id", "count"}),
    # an author signed two different revisions under one id (device_id, seq): both hashes kept
    "revision.equivocation": frozenset({"device_id", "seq", "kept", "other"}),
    # a validly signed revision that does not open with the vault's keys: quarantined
    "revision.unreadable": frozenset({"device_id", "seq"}),
    # app tokens (issue 18): a registration, the person's answer, the end of a token
    "app.registered": frozenset({"app", "pid"}),
    "app.approved": frozenset({"app", "access", "limited"}),
    "app.denied": frozenset({"app"}),
    "app.revoked": frozenset({"app"}),
    # requests made with an app's token: one entry per app, method and minute, with a count
    "app.used": frozenset({"app", "request", "count"}),
    # a connection presented a token that is not one (at most one entry a minute, with a count)
    "app.refused": frozenset({"count"}),
})


def check_details(event: str, details: Mapping[str, object]) -> dict[str, str | int]:
    """The details as they will be recorded, or ValueError if anything is not allowed.

    Values are checked by their key's kind, so a secret cannot pass as a detail: there is no key
    for free text, and text keys only take a device id, a single-line name, an address, or a
    word of a fixed vocabulary."""
    if event not in EVENTS:
        raise ValueError("not an audit event")
    allowed = EVENTS[event]
    checked: dict[str, str | int] = {}
    for key, value in details.items():
        if key not in allowed:
            raise ValueError(f"{event} records no detail named {key}")
        checked[key] = _check_value(key, value)
    return checked


def _check_value(key: str, value: object) -> str | int:
    if key in _COUNTS:
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_COUNT:
            raise ValueError(f"{key} is a count")
        return value
    if not isinstance(value, str):
        raise ValueError(f"{key} is text of a fixed kind")
    if key in _ENUMS:
        if value not in _ENUMS[key]:
            raise ValueError(f"{key} is not one of the recorded words")
        return value
    if key == "device_id":
        if str(DeviceId.parse(value)) != value:
            raise ValueError("device_id is a device id in its canonical text form")
        return value
    if key == "device_name":
        if not 1 <= len(value) <= MAX_NAME_CHARS or not value.isprintable():
            raise ValueError("device_name is a single line of 1-64 characters")
        return value
    if key in _HASHES:
        if not _HEX_HASH.match(value):
            raise ValueError(f"{key} is a record hash in hex")
        return value
    if key == "peer":
        if not _ADDRESS.match(value):
            raise ValueError("peer is a host or HOST:PORT address")
        return value
    if key == "app":
        if not _APP.match(value):
            raise ValueError("app is an app name")
        return value
    if key == "request":
        if not _REQUEST.match(value):
            raise ValueError("request is a local API method name")
        return value
    raise ValueError(f"no such detail: {key}")  # pragma: no cover - EVENTS names only known keys


# --- the keys ---------------------------------------------------------------------------------------


class Signer(Protocol):
    def sign(self, message: bytes) -> bytes: ...


class AuditKey:
    """The device's audit-log key (Ed25519), usable while the vault is locked. Never printed."""

    __slots__ = ("_key", "public")

    def __init__(self, seed: bytes):
        if len(seed) != KEY_SIZE:
            raise ValueError("an audit key is 32 bytes")
        self._key = Ed25519PrivateKey.from_private_bytes(seed)
        #: The raw 32-byte public key (what ``verify_chain`` is given).
        self.public = self._key.public_key().public_bytes_raw()

    @classmethod
    def generate(cls, random_bytes: Callable[[int], bytes] = os.urandom) -> "AuditKey":
        return cls(random_bytes(KEY_SIZE))

    @property
    def seed(self) -> bytes:
        """For saving to its key file."""
        return self._key.private_bytes_raw()

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)

    def __repr__(self) -> str:
        return "AuditKey(redacted)"


def _signed_by_one_of(signers: tuple[bytes, ...], signature: bytes, message: bytes) -> bool:
    for public in signers:
        try:
            Ed25519PublicKey.from_public_bytes(public).verify(signature, message)
            return True
        except (InvalidSignature, ValueError):
            continue
    return False


# --- entries ----------------------------------------------------------------------------------------


def _body(seq: int, time: int, event: str, details: Mapping[str, str | int]) -> bytes:
    return encoding.encode([_BODY_DOMAIN, seq, time, event, dict(details)])


def chain_hash(previous: bytes, body: bytes) -> bytes:
    return hashlib.blake2b(_CHAIN_DOMAIN + previous + body, digest_size=HASH_SIZE).digest()


def _signed_message(entry_hash: bytes) -> bytes:
    return encoding.encode([_SIGNATURE_DOMAIN, entry_hash])


@dataclass(frozen=True)
class AuditEntry:
    """One entry, as stored: its hash (over the previous hash and the body) and signature."""

    seq: int
    time: int
    event: str
    details: Mapping[str, str | int] = field(hash=False)
    entry_hash: bytes
    signature: bytes

    @classmethod
    def create(cls, signer: Signer, *, seq: int, time: int, previous: bytes, event: str,
               details: Mapping[str, object]) -> "AuditEntry":
        """The entry after one whose hash is ``previous`` (GENESIS for the first), signed by
        ``signer`` (the device's :class:`AuditKey`; older entries were signed by its DeviceKeys)."""
        if seq < 1 or time < 0 or len(previous) != HASH_SIZE:
            raise ValueError("an audit entry has seq >= 1, a time >= 0 and a 32-byte previous hash")
        checked = check_details(event, details)
        body = _body(seq, time, event, checked)
        if len(body) > MAX_DETAILS_BYTES:
            raise ValueError("audit details are small")
        entry_hash = chain_hash(previous, body)
        signature = signer.sign(_signed_message(entry_hash))
        return cls(seq, time, event, MappingProxyType(checked), entry_hash, signature)

    @staticmethod
    def encode_details(details: Mapping[str, str | int]) -> bytes:
        return encoding.encode(dict(details))

    @classmethod
    def from_stored(cls, seq: object, time: object, event: object, details: object, entry_hash: object,
                    signature: object) -> "AuditEntry":
        """Parse a stored row strictly, or IntegrityError (the chain check reports it as altered)."""
        if not (isinstance(seq, int) and isinstance(time, int) and isinstance(event, str)
                and isinstance(details, bytes) and isinstance(entry_hash, bytes) and isinstance(signature, bytes)):
            raise IntegrityError()
        decoded = encoding.decode(details, max_size=MAX_DETAILS_BYTES)
        if not isinstance(decoded, dict):
            raise IntegrityError()
        try:
            checked = check_details(event, decoded)
        except ValueError:
            raise IntegrityError() from None
        return cls(seq, time, event, MappingProxyType(checked), entry_hash, signature)

    def body(self) -> bytes:
        return _body(self.seq, self.time, self.event, self.details)

    def to_json(self) -> dict:
        """The shape of `vaultpeer log --json`: the time in UTC (ISO 8601), the hash in hex."""
        return {"seq": self.seq, "time": utc_text(self.time), "event": self.event, "details": dict(self.details),
                "hash": self.entry_hash.hex()}


def utc_text(seconds: int) -> str:
    return _time.strftime("%Y-%m-%dT%H:%M:%SZ", _time.gmtime(seconds))


def address_detail(address: str) -> str:
    """A peer address as it may be recorded (one that does not look like an address is replaced)."""
    return address if _ADDRESS.match(address) else "unrecognised"


def printable_name(name: str) -> str:
    """A device name as it may be recorded: one printable line of at most 64 characters, shown
    as ``core.text.inert`` shows it (``evil\x1b[2J``), cut short at a whole character if
    escaping made it longer (a name can come from a peer)."""
    return inert(name, MAX_NAME_CHARS) or "?"


# --- verification -------------------------------------------------------------------------------------

#: Why an entry breaks the chain (``ChainReport.problem``).
ALTERED = "altered"
BAD_SIGNATURE = "bad signature"
OUT_OF_SEQUENCE = "missing or out of sequence"
HEAD_MISSING = "noted head not found"


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    #: Entries checked (all of them when ``ok``).
    count: int
    #: The last entry's hash when ``ok`` (None for an empty log); else the last good entry's.
    head: bytes | None
    #: The seq of the first entry that breaks the chain (the stored seq, or the one expected).
    first_bad: int | None = None
    problem: str | None = None

    def to_json(self) -> dict:
        return {"ok": self.ok, "entries": self.count, "head": None if self.head is None else self.head.hex(),
                "first_bad": self.first_bad, "problem": self.problem}


@dataclass(frozen=True)
class StoredRow:
    """One row as the store holds it (unparsed, so that a damaged row is reported, not raised)."""

    seq: object
    time: object
    event: object
    details: object
    entry_hash: object
    signature: object


def verify_chain(rows: Iterable[StoredRow], signers: Iterable[bytes], *,
                 expected_head: bytes | None = None) -> ChainReport:
    """Check every link, hash and signature, in the stored order; the first problem ends the walk.

    ``signers`` are the device's known Ed25519 public keys (raw, 32 bytes): its identity signing
    key and its audit key. A signature by either is accepted (the module docstring says why).

    ``expected_head`` is an entry hash noted earlier (a prefix of at least 8 bytes will do): that
    entry must still be in the chain, which is what shows that newer entries were removed."""
    signers = tuple(signers)
    previous, head, count, expected_seq = GENESIS, None, 0, 1
    head_seen = expected_head is None
    for row in rows:
        try:
            entry = AuditEntry.from_stored(row.seq, row.time, row.event, row.details, row.entry_hash,
                                           row.signature)
        except IntegrityError:
            bad_seq = row.seq if isinstance(row.seq, int) else expected_seq
            return ChainReport(False, count, head, bad_seq, ALTERED)
        if entry.seq != expected_seq:
            return ChainReport(False, count, head, expected_seq, OUT_OF_SEQUENCE)
        computed = chain_hash(previous, entry.body())
        if computed != entry.entry_hash:
            return ChainReport(False, count, head, entry.seq, ALTERED)
        signed = _signed_by_one_of(signers, entry.signature, _signed_message(computed))
        if len(entry.signature) != SIGNATURE_SIZE or not signed:
            return ChainReport(False, count, head, entry.seq, BAD_SIGNATURE)
        if not head_seen and computed.startswith(expected_head):
            head_seen = True
        previous = head = computed
        count += 1
        expected_seq += 1
    if not head_seen:
        return ChainReport(False, count, head, None, HEAD_MISSING)
    return ChainReport(True, count, head)


# --- rejections from the network: at most one entry per source per window --------------------------


@dataclass
class _Window:
    opened: float
    details: dict
    pending: int = 0


class RejectionLimiter:
    """Turns a flood of one event (``peer.rejected``, or master-password attempts refused as
    ``rate_limited``) into a bounded number of entries.

    The first rejection from a source (a peer's host, a device id, or "local") is recorded at once with
    count 1. Later ones within ``window`` seconds are counted; when the window has passed, one
    entry carries their count and a new window starts. So a source produces at most one entry per
    window, and at most ``max_sources`` sources are tracked at once: rejections from any more are
    counted together under the source ``*`` (one bucket per reason), so that many addresses cannot
    fill the disk either. The caller writes what ``note`` and ``due`` return, ``(details, count)``.
    """

    def __init__(self, *, window: float = 60.0, max_sources: int = 16,
                 overflow: Callable[[str], dict] | None = None):
        self.window = window
        self.max_sources = max_sources
        #: The details of the bucket the sources past ``max_sources`` share, by reason.
        self._overflow = overflow or (lambda reason: {"peer": "*", "reason": reason} if reason else {"peer": "*"})
        self._windows: dict[tuple[str, str], _Window] = {}

    def note(self, source: str, details: Mapping[str, object], now: float) -> list[tuple[dict, int]]:
        out = self.due(now)
        reason = str(details.get("reason", ""))
        key = (source, reason)
        if key not in self._windows and sum(k[0] != "*" for k in self._windows) >= self.max_sources:
            key, details = ("*", reason), self._overflow(reason)
        window = self._windows.get(key)
        if window is not None:
            window.pending += 1
            return out
        self._windows[key] = _Window(now, dict(details))
        return out + [(dict(details), 1)]

    def due(self, now: float, *, everything: bool = False) -> list[tuple[dict, int]]:
        """The summaries of the windows that have passed (or, with ``everything``, of all)."""
        out = []
        for key, window in list(self._windows.items()):
            if not everything and now - window.opened < self.window:
                continue
            if window.pending:
                out.append((dict(window.details), window.pending))
            if window.pending and not everything:
                self._windows[key] = _Window(now, window.details)
            else:
                del self._windows[key]
        return out


#: A noted head hash may be shortened, but not below 8 bytes (16 hex characters).
MIN_HEAD_HEX = 16


def parse_noted_head(text: str) -> bytes:
    """A head hash noted from an earlier `log --verify`: 16-64 hex characters (ValueError else)."""
    cleaned = text.strip().lower()
    try:
        head = bytes.fromhex(cleaned)
    except ValueError:
        head = b""
    if not MIN_HEAD_HEX <= len(cleaned) <= 64 or len(head) * 2 != len(cleaned):
        raise ValueError(f"expected the head hash as {MIN_HEAD_HEX}-64 hex characters")
    return head
