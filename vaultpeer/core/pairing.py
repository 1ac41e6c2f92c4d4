"""Pairing a new device: commit-then-reveal inside the Noise channel, confirmed by a 6-digit code.

After an XX handshake the two devices know each other's static keys but not that the keys are the
*right* ones: a man in the middle could have run two handshakes. So, as in Bluetooth LE numeric
comparison and ZRTP:

    joiner  -> inviter   commit  C = BLAKE2b("vaultpeer pairing commit v1" || Nj)
    inviter -> joiner    nonce   Ni
    joiner  -> inviter   reveal  Nj          (the inviter checks it against C)
    both show  code = BLAKE2b("vaultpeer pairing code v1" || handshake hash || Ni || Nj) mod 10^6

The joiner is bound to Nj before it sees Ni, and the inviter picks Ni before it sees Nj, so a man
in the middle, whose two handshakes have different hashes, gets one blind guess in a million that
the two codes match. No low-entropy secret is ever used as a key or sent in a testable form: the
code itself never crosses the wire. The person compares the codes and confirms on both devices:

    both ways  confirm {ok}
    joiner  -> inviter   identity {signing key, name, os}  (its Noise key is the one the code confirmed;
                                                          name and os are plain text, core.text)
    inviter -> joiner    welcome {header, roster}   (the roster includes the inviter vouching for the joiner)
    joiner  -> inviter   joined  {roster}           (the joiner vouching for the inviter, and itself)

after which the same connection carries an ordinary sync session.
"""

import hashlib
import hmac
import os
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from vaultpeer.core import encoding
from vaultpeer.core.errors import IntegrityError, VaultpeerError
from vaultpeer.core.keys import MAX_HEADER_SIZE, VaultHeader
from vaultpeer.core.roster import MAX_ENTRIES, RosterEntry
from vaultpeer.core.text import is_plain_text

NONCE_SIZE = 32
CODE_DIGITS = 6
MAX_MESSAGE = MAX_HEADER_SIZE + MAX_ENTRIES * 512


class PairingError(VaultpeerError):
    code = "pairing"


def commitment(nonce: bytes) -> bytes:
    return hashlib.blake2b(b"vaultpeer pairing commit v1" + nonce, digest_size=32).digest()


def verification_code(handshake_hash: bytes, inviter_nonce: bytes, joiner_nonce: bytes) -> str:
    """Six digits, shown as ``NNN NNN``."""
    digest = hashlib.blake2b(
        b"vaultpeer pairing code v1" + handshake_hash + inviter_nonce + joiner_nonce, digest_size=32
    ).digest()
    number = int.from_bytes(digest[:8], "big") % 10**CODE_DIGITS
    text = f"{number:0{CODE_DIGITS}d}"
    return f"{text[:3]} {text[3:]}"


# --- messages ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Commit:
    commitment: bytes


@dataclass(frozen=True)
class Nonce:
    nonce: bytes


@dataclass(frozen=True)
class Reveal:
    nonce: bytes


@dataclass(frozen=True)
class Confirm:
    ok: bool


@dataclass(frozen=True)
class Identity:
    signing_public: bytes
    name: str
    os_description: str


@dataclass(frozen=True)
class Welcome:
    header: VaultHeader
    roster: tuple[RosterEntry, ...]


@dataclass(frozen=True)
class Joined:
    roster: tuple[RosterEntry, ...]


PairingMessage = Commit | Nonce | Reveal | Confirm | Identity | Welcome | Joined


def encode_message(message: PairingMessage) -> bytes:
    if isinstance(message, Commit):
        body = {"t": "commit", "c": message.commitment}
    elif isinstance(message, Nonce):
        body = {"t": "nonce", "n": message.nonce}
    elif isinstance(message, Reveal):
        body = {"t": "reveal", "n": message.nonce}
    elif isinstance(message, Confirm):
        body = {"t": "confirm", "ok": message.ok}
    elif isinstance(message, Identity):
        body = {"t": "identity", "signing": message.signing_public, "name": message.name,
                "os": message.os_description}
    elif isinstance(message, Welcome):
        body = {"t": "welcome", "header": message.header.to_bytes(), "roster": [e.to_record() for e in message.roster]}
    else:
        body = {"t": "joined", "roster": [e.to_record() for e in message.roster]}
    return encoding.encode(body)


def decode_message(data: bytes) -> PairingMessage:
    try:
        body = encoding.decode(data, max_size=MAX_MESSAGE)
        if not isinstance(body, dict):
            raise ValueError
        kind = body.get("t")
        if kind in ("commit", "nonce", "reveal"):
            key = "c" if kind == "commit" else "n"
            if set(body) != {"t", key} or not isinstance(body[key], bytes) or len(body[key]) != 32:
                raise ValueError
            return {"commit": Commit, "nonce": Nonce, "reveal": Reveal}[kind](body[key])
        if kind == "confirm":
            if set(body) != {"t", "ok"} or not isinstance(body["ok"], bool):
                raise ValueError
            return Confirm(body["ok"])
        if kind == "identity":
            if (set(body) != {"t", "signing", "name", "os"} or not isinstance(body["signing"], bytes)
                    or len(body["signing"]) != 32
                    or not all(is_plain_text(body[k]) for k in ("name", "os"))):
                raise ValueError
            return Identity(body["signing"], body["name"], body["os"])
        if kind == "welcome":
            if set(body) != {"t", "header", "roster"} or not isinstance(body["header"], bytes):
                raise ValueError
            return Welcome(VaultHeader.from_bytes(body["header"]), _roster(body["roster"]))
        if kind == "joined":
            if set(body) != {"t", "roster"}:
                raise ValueError
            return Joined(_roster(body["roster"]))
    except (IntegrityError, ValueError, TypeError):
        pass
    raise PairingError("pairing failed: the other device sent something unexpected")


def _roster(records: object) -> tuple[RosterEntry, ...]:
    if not isinstance(records, list) or len(records) > MAX_ENTRIES:
        raise ValueError
    return tuple(RosterEntry.from_record(r) for r in records)


# --- the exchange up to the code ---------------------------------------------------------------


class Step(Enum):
    COMMIT = "commit"
    NONCE = "nonce"
    REVEAL = "reveal"
    CODE = "code"


class CodeExchange:
    """The commit-reveal exchange for one side. ``code`` is set once both nonces are known."""

    def __init__(self, *, joiner: bool, handshake_hash: bytes, random_bytes: Callable[[int], bytes] = os.urandom):
        self.joiner = joiner
        self._hash = handshake_hash
        self._nonce = random_bytes(NONCE_SIZE)
        self._peer_commitment: bytes | None = None
        self.step = Step.COMMIT
        self.code: str | None = None

    def start(self) -> bytes | None:
        """The joiner's commit message (the inviter sends nothing first)."""
        if not self.joiner:
            return None
        self.step = Step.NONCE
        return encode_message(Commit(commitment(self._nonce)))

    def receive(self, data: bytes) -> bytes | None:
        """Take the peer's next message; returns ours, if any. Sets ``code`` at the end."""
        message = decode_message(data)
        if not self.joiner and self.step is Step.COMMIT and isinstance(message, Commit):
            self._peer_commitment = message.commitment
            self.step = Step.REVEAL
            return encode_message(Nonce(self._nonce))
        if self.joiner and self.step is Step.NONCE and isinstance(message, Nonce):
            self.code = verification_code(self._hash, message.nonce, self._nonce)
            self.step = Step.CODE
            return encode_message(Reveal(self._nonce))
        if not self.joiner and self.step is Step.REVEAL and isinstance(message, Reveal):
            if not hmac.compare_digest(commitment(message.nonce), self._peer_commitment or b""):
                raise PairingError("pairing failed: the other device broke its commitment")
            self.code = verification_code(self._hash, self._nonce, message.nonce)
            self.step = Step.CODE
            return None
        raise PairingError("pairing failed: the other device sent something unexpected")
