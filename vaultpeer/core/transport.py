"""The transport below every connection: frames, the two Noise handshakes, and the secure channel.

Pure (noiseprotocol and cryptography compute; nothing here does I/O). On the wire::

    frame      = uint16_be length || bytes            (length 1..65535)
    first      = kind byte || Noise message 1         (the first frame of every connection)
    link       = kind 0x01: Noise_IK_25519_ChaChaPoly_BLAKE2b, two frames, between members
    pairing    = kind 0x02: Noise_XX_25519_ChaChaPoly_BLAKE2b, three frames, a device joining
    prologue   = "vaultpeer/2" || kind byte
    message    = one or more frames, each a Noise transport ciphertext whose plaintext is
                 flag byte (0x01 = more chunks follow, 0x00 = last) || chunk

A member dialling a member knows the responder's static key from the roster (IK): its own static
key and a handshake stamp travel encrypted to the responder, which answers only if that key is a
current member's and the stamp is fresh. A prober therefore gets silence, never the responder's
static key (a permanent identifier). XX, in which the responder reveals its static key to whoever
asks, is answered only while an invitation is open. The decisions are the caller's
(``HandshakeResponder`` hands it an ``Offer`` before anything is sent). Every failure is one opaque
``TransportError``.
"""

import functools
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from noise.connection import Keypair, NoiseConnection

from vaultpeer.core import encoding
from vaultpeer.core.errors import IntegrityError, VaultpeerError

#: The TCP port a daemon listens on unless told otherwise.
from vaultpeer.core.ports import DEFAULT_PORT  # noqa: F401 - where the daemon reads it
#: The Noise protocol of each purpose: member links ("sync") and pairing ("pair").
_PATTERNS = {"sync": "Noise_IK_25519_ChaChaPoly_BLAKE2b", "pair": "Noise_XX_25519_ChaChaPoly_BLAKE2b"}
#: The first byte of a connection, saying which handshake follows.
KIND_BYTES = {"sync": 0x01, "pair": 0x02}
_PURPOSE_OF_KIND = {kind: purpose for purpose, kind in KIND_BYTES.items()}
TRANSPORT_VERSION = 2
_DH_LEN = 32
MAX_FRAME = 65535
_TAG = 16
MAX_CHUNK = MAX_FRAME - _TAG - 1
#: The largest application message a peer may send (sync messages are at most 8 MiB).
MAX_MESSAGE = 9 * 1024 * 1024
PURPOSES = ("sync", "pair")


def prologue(purpose: str) -> bytes:
    """Bound into the handshake hash: the transport version and the kind byte (a first byte
    changed in transit makes the handshake fail)."""
    return b"vaultpeer/%d" % TRANSPORT_VERSION + bytes([KIND_BYTES[purpose]])


class TransportError(VaultpeerError):
    """The connection failed: bad framing, a failed handshake or decryption, an oversize message.
    Deliberately says nothing about which check failed."""

    code = "protocol"

    def __init__(self, message: str = "connection failed"):
        super().__init__(message)


class OlderTransport(TransportError):
    """The first frame is a transport version 1 handshake message (XX for everything, no kind
    byte): a device running an older vaultpeer. Said in this device's log only; the peer gets the
    same silence as any other failure."""


def frame(payload: bytes) -> bytes:
    if not 0 < len(payload) <= MAX_FRAME:
        raise TransportError("frame size out of range")
    return len(payload).to_bytes(2, "big") + payload


class FrameReader:
    """Bytes in, whole frames out (h11 style: ``feed`` then ``next_frame`` until None)."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> None:
        # refuse before buffering: a refused feed leaves the reader as it was
        if len(self._buffer) + len(data) > MAX_FRAME + 2 + 65536:
            raise TransportError("too much unread data")
        self._buffer += data

    def next_frame(self) -> bytes | None:
        if len(self._buffer) < 2:
            return None
        length = int.from_bytes(self._buffer[:2], "big")
        if length == 0:
            raise TransportError("empty frame")
        if len(self._buffer) < 2 + length:
            return None
        payload = bytes(self._buffer[2 : 2 + length])
        del self._buffer[: 2 + length]
        return payload

    @property
    def pending(self) -> int:
        return len(self._buffer)


@dataclass(frozen=True)
class HandshakeResult:
    remote_static: bytes
    handshake_hash: bytes
    purpose: str


@dataclass(frozen=True)
class Offer:
    """What a responder learns from an initiator's first message, before it answers anything.

    ``purpose`` is "sync" (a member link, Noise IK) or "pair" (a device asking to join, Noise
    XX). For "sync", ``remote_static`` is the initiator's static key (authenticated: only its
    holder could have made the message, though the message itself may be a replay) and
    ``stamp`` its handshake stamp, which must exceed every stamp accepted from that key before
    (``stamp_is_fresh``). For "pair" both are None: XX reveals nothing about the initiator yet.
    """

    purpose: str
    remote_static: bytes | None = None
    stamp: int | None = None


def stamp_is_fresh(stamp: int, last_accepted: int | None) -> bool:
    """Whether a member's first handshake message is not a replay: its stamp must be greater
    than the greatest accepted from the same key."""
    return last_accepted is None or stamp > last_accepted


#: How far ahead a device reserves the stamps of its member handshakes (ns): it stores the
#: reservation's end, not each stamp, and starts above it after a restart.
STAMP_RESERVE = 60 * 10**9


def next_stamp(now_ns: int, last_sent: int | None) -> int:
    """The stamp for a new member handshake: the wall clock in nanoseconds, but always above the
    last one sent, so a clock set back never makes this device's handshakes look like replays."""
    return max(now_ns, (last_sent or 0) + 1)


class _Handshake:
    """The parts the initiator and the responder share: a noiseprotocol connection set up for one
    of the two patterns, and the result once it finishes."""

    def __init__(self, purpose: str, static_private: bytes, *, initiator: bool,
                 responder_static: bytes | None = None):
        self.purpose = purpose
        self._noise = NoiseConnection.from_name(_PATTERNS[purpose].encode())
        # what set_keypair_from_private_bytes(Keypair.STATIC, ...) does, but with the key pair
        # derived once per device rather than once per handshake (a scalar multiplication saved)
        self._noise.noise_protocol.keypairs["s"] = _static_keypair(self._noise.noise_protocol.dh_fn.klass,
                                                                    static_private)
        if responder_static is not None:
            self._noise.set_keypair_from_public_bytes(Keypair.REMOTE_STATIC, responder_static)
        self._noise.set_prologue(prologue(purpose))
        if initiator:
            self._noise.set_as_initiator()
        else:
            self._noise.set_as_responder()
        self._noise.start_handshake()
        # noiseprotocol deletes its handshake state when the last message is processed, and with
        # it the remote static key: keep our own reference to read the key afterwards.
        self._state = self._noise.noise_protocol.handshake_state
        self.result: HandshakeResult | None = None

    @property
    def complete(self) -> bool:
        return self.result is not None

    def _finish(self) -> None:
        if not self._noise.handshake_finished:
            raise TransportError()
        self.result = HandshakeResult(
            remote_static=bytes(self._state.rs.public_bytes),
            handshake_hash=bytes(self._noise.get_handshake_hash()),
            purpose=self.purpose,
        )

    def channel(self) -> "SecureChannel":
        if not self.complete:
            raise TransportError("handshake not complete")
        return SecureChannel(self._noise)


class HandshakeInitiator(_Handshake):
    """The dialing side. For a member link ("sync", Noise IK) it must already know the
    responder's static key (from the roster) and brings a fresh ``stamp`` (``next_stamp``); for
    pairing ("pair", Noise XX) it knows nothing yet.

    ``start()`` gives the first frame's payload; feed each reply to ``receive`` and send what it
    returns until ``complete``.
    """

    def __init__(self, *, static_private: bytes, purpose: str, responder_static: bytes | None = None,
                 stamp: int | None = None):
        if purpose not in PURPOSES:
            raise ValueError("unknown purpose")
        if (purpose == "sync") != (responder_static is not None and stamp is not None):
            raise ValueError("a member link needs the responder's static key and a stamp; pairing takes neither")
        super().__init__(purpose, static_private, initiator=True, responder_static=responder_static)
        self._stamp = stamp
        self._started = False

    def start(self) -> bytes:
        if self._started:
            raise TransportError("handshake already started")
        self._started = True
        if self.purpose == "sync":  # -> e, es, s, ss (the payload: version and stamp, encrypted)
            message = self._noise.write_message(encoding.encode({"v": TRANSPORT_VERSION, "stamp": self._stamp}))
        else:  # -> e
            message = self._noise.write_message(b"")
        return bytes([KIND_BYTES[self.purpose]]) + bytes(message)

    def receive(self, message: bytes) -> bytes | None:
        if not self._started or self.complete:
            raise TransportError("unexpected handshake message")
        try:
            payload = bytes(self._noise.read_message(message))  # <- e, ee, se (IK) / e, ee, s, es (XX)
            _check_reply(payload)
            if self.purpose == "sync":
                self._finish()
                return None
            reply = bytes(self._noise.write_message(encoding.encode({"v": TRANSPORT_VERSION})))  # -> s, se
            self._finish()
            return reply
        except TransportError:
            raise
        except Exception:  # noqa: BLE001 - noiseprotocol raises many types; all mean the same to a peer
            raise TransportError() from None


class HandshakeResponder(_Handshake):
    """The listening side, which says nothing until it has decided to.

    ``receive_first(payload)`` reads the initiator's first frame and returns an ``Offer``; nothing
    has been sent yet. The caller decides: a member link only from a current member whose stamp is
    fresh, pairing only while an invitation is open. If it refuses, it closes the connection
    without a byte: the prober learns nothing, not even this device's static key (IK never sends
    it; XX would, in ``accept``). If it accepts, it sends what ``accept()`` returns; for pairing,
    it then feeds the third message to ``receive``.
    """

    def __init__(self, *, static_private: bytes):
        self._static_private = static_private
        self.purpose: str | None = None
        self.result: HandshakeResult | None = None
        self.offer: Offer | None = None
        self._accepted = False

    def receive_first(self, payload: bytes) -> Offer:
        if self.offer is not None:
            raise TransportError("unexpected handshake message")
        if len(payload) == _DH_LEN:  # version 1: an XX ephemeral key and nothing else
            raise OlderTransport()
        purpose = _PURPOSE_OF_KIND.get(payload[0]) if payload else None
        if purpose is None:
            raise TransportError()
        super().__init__(purpose, self._static_private, initiator=False)
        message = payload[1:]
        if purpose == "pair":
            try:
                if len(message) != _DH_LEN:  # exactly an ephemeral key, and an empty payload
                    raise TransportError()
                self._noise.read_message(message)
            except TransportError:
                raise
            except Exception:  # noqa: BLE001
                raise TransportError() from None
            self.offer = Offer("pair")
            return self.offer
        try:
            body = bytes(self._noise.read_message(message))
        except Exception:  # noqa: BLE001
            # A first message sealed to another key fails after one DH (es), an accepted one
            # takes two (es, ss): spend the second here, so the time to fail says nothing about
            # whether the message was meant for this device.
            _spend_one_dh()
            raise TransportError() from None
        stamp = _check_first(body)
        self.offer = Offer("sync", bytes(self._state.rs.public_bytes), stamp)
        return self.offer

    def accept(self) -> bytes:
        """The reply to send: the responder's second handshake message."""
        if self.offer is None or self._accepted:
            raise TransportError("unexpected handshake step")
        self._accepted = True
        try:
            reply = bytes(self._noise.write_message(encoding.encode({"v": TRANSPORT_VERSION})))
        except Exception:  # noqa: BLE001
            raise TransportError() from None
        if self.purpose == "sync":  # <- e, ee, se: done
            self._finish()
        return reply

    def receive(self, message: bytes) -> None:
        """Pairing only: the initiator's third message (s, se), which completes the handshake."""
        if not self._accepted or self.complete or self.purpose != "pair":
            raise TransportError("unexpected handshake message")
        try:
            _check_reply(bytes(self._noise.read_message(message)))
        except TransportError:
            raise
        except Exception:  # noqa: BLE001
            raise TransportError() from None
        self._finish()


def _decode_small(payload: bytes) -> dict:
    try:
        body = encoding.decode(payload, max_size=256)
    except IntegrityError:
        raise TransportError() from None
    if not isinstance(body, dict) or body.get("v") != TRANSPORT_VERSION:
        raise TransportError("unsupported transport version")
    return body


def _check_reply(payload: bytes) -> None:
    if set(_decode_small(payload)) != {"v"}:
        raise TransportError()


def _check_first(payload: bytes) -> int:
    body = _decode_small(payload)
    stamp = body.get("stamp")
    if set(body) != {"v", "stamp"} or type(stamp) is not int or not 0 <= stamp < 2**63:
        raise TransportError()
    return stamp


@functools.lru_cache(maxsize=8)
def _static_keypair(keypair_class: type, private: bytes) -> object:
    return keypair_class.from_private_bytes(private)


_BURN_PRIVATE = X25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
_BURN_PUBLIC = X25519PrivateKey.from_private_bytes(bytes(range(33, 65))).public_key()


def _spend_one_dh() -> None:
    _BURN_PRIVATE.exchange(_BURN_PUBLIC)


class SecureChannel:
    """Application messages over Noise transport messages, split into chunks and reassembled."""

    def __init__(self, noise: NoiseConnection):
        self._noise = noise
        self._partial = bytearray()

    def seal(self, message: bytes) -> list[bytes]:
        """The frame payloads that carry ``message``."""
        if len(message) > MAX_MESSAGE:
            raise TransportError("message too large")
        chunks = [message[i : i + MAX_CHUNK] for i in range(0, len(message), MAX_CHUNK)] or [b""]
        return [
            bytes(self._noise.encrypt(bytes([1 if n < len(chunks) - 1 else 0]) + chunk))
            for n, chunk in enumerate(chunks)
        ]

    def open(self, payload: bytes) -> bytes | None:
        """Decrypt one frame payload; returns a whole message when its last chunk arrives."""
        try:
            plaintext = self._noise.decrypt(payload)
        except Exception:
            raise TransportError() from None
        if not plaintext or plaintext[0] not in (0, 1):
            raise TransportError()
        self._partial += plaintext[1:]
        if len(self._partial) > MAX_MESSAGE:
            raise TransportError("message too large")
        if plaintext[0] == 1:
            return None
        message, self._partial = bytes(self._partial), bytearray()
        return message
