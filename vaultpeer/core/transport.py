"""The transport below every connection: frames, the Noise XX handshake, and the secure channel.

Pure (noiseprotocol computes; it does no I/O). On the wire::

    frame      = uint16_be length || bytes            (length 1..65535)
    handshake  = three frames, Noise_XX_25519_ChaChaPoly_BLAKE2b, prologue "vaultpeer/1"
    message    = one or more frames, each a Noise transport ciphertext whose plaintext is
                 flag byte (0x01 = more chunks follow, 0x00 = last) || chunk

The handshake's second and third payloads (both encrypted) carry the protocol version, and the
third says what the initiator wants: "sync" (a member) or "pair" (a device asking to join).
Who the peer is comes from its static key, which the caller must check (roster pinning, or an open
pairing) before anything of the vault moves. Every failure is one opaque ``TransportError``.
"""

from dataclasses import dataclass

from noise.connection import Keypair, NoiseConnection

from vaultpeer.core import encoding
from vaultpeer.core.errors import IntegrityError, VaultpeerError

#: The TCP port a daemon listens on unless told otherwise.
DEFAULT_PORT = 22047
PROTOCOL_NAME = b"Noise_XX_25519_ChaChaPoly_BLAKE2b"
PROLOGUE = b"vaultpeer/1"
TRANSPORT_VERSION = 1
MAX_FRAME = 65535
_TAG = 16
MAX_CHUNK = MAX_FRAME - _TAG - 1
#: The largest application message a peer may send (sync messages are at most 8 MiB).
MAX_MESSAGE = 9 * 1024 * 1024
PURPOSES = ("sync", "pair")


class TransportError(VaultpeerError):
    """The connection failed: bad framing, a failed handshake or decryption, an oversize message.
    Deliberately says nothing about which check failed."""

    code = "protocol"

    def __init__(self, message: str = "connection failed"):
        super().__init__(message)


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


class NoiseHandshake:
    """One side of the XX handshake. Feed it the peer's handshake frames; send what it returns."""

    def __init__(self, *, initiator: bool, static_private: bytes, purpose: str = "sync"):
        if purpose not in PURPOSES:
            raise ValueError("unknown purpose")
        self.initiator = initiator
        self.purpose = purpose
        self._noise = NoiseConnection.from_name(PROTOCOL_NAME)
        self._noise.set_keypair_from_private_bytes(Keypair.STATIC, static_private)
        self._noise.set_prologue(PROLOGUE)
        if initiator:
            self._noise.set_as_initiator()
        else:
            self._noise.set_as_responder()
        self._noise.start_handshake()
        # noiseprotocol deletes its handshake state when the last message is processed, and with
        # it the remote static key: keep our own reference to read the key afterwards.
        self._state = self._noise.noise_protocol.handshake_state
        self._step = 0
        self.result: HandshakeResult | None = None

    @property
    def complete(self) -> bool:
        return self.result is not None

    def start(self) -> bytes | None:
        """The first frame payload to send (initiator), or None (responder waits)."""
        if not self.initiator or self._step != 0:
            return None
        self._step = 1
        return bytes(self._noise.write_message(b""))

    def receive(self, message: bytes) -> bytes | None:
        """Process the peer's next handshake message; returns our next one, if any."""
        if self.complete:
            raise TransportError("handshake already complete")
        try:
            if self.initiator and self._step == 1:  # <- e, ee, s, es
                self._check_payload(bytes(self._noise.read_message(message)), expect_purpose=False)
                reply = self._noise.write_message(self._payload(with_purpose=True))  # -> s, se
                self._finish(self.purpose)
                return bytes(reply)
            if not self.initiator and self._step == 0:  # <- e
                self._noise.read_message(message)
                self._step = 1
                return bytes(self._noise.write_message(self._payload(with_purpose=False)))
            if not self.initiator and self._step == 1:  # <- s, se
                purpose = self._check_payload(bytes(self._noise.read_message(message)), expect_purpose=True)
                self._finish(purpose)
                return None
        except TransportError:
            raise
        except Exception:  # noiseprotocol raises many types; all mean the same thing to a peer
            raise TransportError() from None
        raise TransportError("unexpected handshake message")

    def _payload(self, *, with_purpose: bool) -> bytes:
        body: dict = {"v": TRANSPORT_VERSION}
        if with_purpose:
            body["purpose"] = self.purpose
        return encoding.encode(body)

    def _check_payload(self, payload: bytes, *, expect_purpose: bool) -> str:
        try:
            body = encoding.decode(payload, max_size=256)
        except IntegrityError:
            raise TransportError() from None
        if not isinstance(body, dict) or body.get("v") != TRANSPORT_VERSION:
            raise TransportError("unsupported transport version")
        if expect_purpose:
            if set(body) != {"v", "purpose"} or body["purpose"] not in PURPOSES:
                raise TransportError()
            return body["purpose"]
        if set(body) != {"v"}:
            raise TransportError()
        return ""

    def _finish(self, purpose: str) -> None:
        if not self._noise.handshake_finished:
            raise TransportError()
        self.result = HandshakeResult(
            remote_static=bytes(self._state.rs.public_bytes),
            handshake_hash=bytes(self._noise.get_handshake_hash()),
            purpose=purpose,
        )

    def channel(self) -> "SecureChannel":
        if not self.complete:
            raise TransportError("handshake not complete")
        return SecureChannel(self._noise)


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
