"""A Noise-encrypted message stream over any ``trio.abc.Stream`` (as ``trio.SSLStream`` wraps TLS).

The pure transport (``vaultpeer.core.transport``) does the framing and cryptography; this shell
only moves bytes, with every wait bounded: the handshake by ``handshake_timeout``, each message by
the caller's own deadline.
"""

from collections.abc import Callable

import trio

from vaultpeer.core.identity import DeviceKeys
from vaultpeer.core.transport import (
    FrameReader,
    HandshakeInitiator,
    HandshakeResponder,
    HandshakeResult,
    Offer,
    SecureChannel,
    TransportError,
    frame,
)
from vaultpeer.io.locks import held

HANDSHAKE_TIMEOUT = 10.0
_READ_SIZE = 65536


class ConnectionClosed(Exception):
    """The peer closed the connection (or it broke) at a message boundary or inside one."""


class NoiseStream:
    def __init__(self, stream: trio.abc.Stream, channel: SecureChannel, result: HandshakeResult, reader: FrameReader):
        self.stream = stream
        self.result = result
        self._channel = channel
        self._reader = reader
        self._send_lock = trio.Lock()
        #: Counts the transport bytes (frames after the handshake) both ways, if set: an object
        #: with ``bytes_sent`` and ``bytes_received`` (the daemon's ``Traffic``, for ``status``).
        self.meter = None

    @property
    def remote_static(self) -> bytes:
        return self.result.remote_static

    @property
    def handshake_hash(self) -> bytes:
        return self.result.handshake_hash

    @property
    def purpose(self) -> str:
        return self.result.purpose

    @classmethod
    async def dial(cls, stream: trio.abc.Stream, keys: DeviceKeys, *, purpose: str,
                   responder_static: bytes | None = None, stamp: int | None = None,
                   timeout: float = HANDSHAKE_TIMEOUT) -> "NoiseStream":
        """Run the initiator's side: Noise IK to a member whose key the caller names (``purpose``
        "sync", with a fresh ``stamp``), or Noise XX to an inviting device ("pair").
        TransportError on any failure, ConnectionClosed when the responder closes without an
        answer (what a member refusing the key looks like), trio.TooSlowError past ``timeout``."""
        handshake = HandshakeInitiator(static_private=keys.noise_private, purpose=purpose,
                                       responder_static=responder_static, stamp=stamp)
        reader = FrameReader()
        with trio.fail_after(timeout):
            await stream.send_all(frame(handshake.start()))
            while not handshake.complete:
                reply = handshake.receive(await _next_frame(stream, reader))
                if reply is not None:
                    await stream.send_all(frame(reply))
        return cls(stream, handshake.channel(), handshake.result, reader)

    @classmethod
    async def answer(cls, stream: trio.abc.Stream, keys: DeviceKeys, decide: Callable[[Offer], bool], *,
                     timeout: float = HANDSHAKE_TIMEOUT) -> "NoiseStream | None":
        """Run the responder's side. ``decide`` sees the initiator's first message (who it is,
        for a member link) before a byte is sent; if it says no, the result is None and nothing
        was sent: the caller closes the connection. TransportError / ConnectionClosed /
        trio.TooSlowError as for ``dial``."""
        handshake = HandshakeResponder(static_private=keys.noise_private)
        reader = FrameReader()
        with trio.fail_after(timeout):
            offer = handshake.receive_first(await _next_frame(stream, reader))
            if not decide(offer):
                return None
            await stream.send_all(frame(handshake.accept()))
            if not handshake.complete:
                handshake.receive(await _next_frame(stream, reader))
        return cls(stream, handshake.channel(), handshake.result, reader)

    async def send(self, message: bytes) -> None:
        await self.send_many([message])

    async def send_many(self, messages: list[bytes]) -> None:
        """Send several messages in order with one write (one wakeup of the peer, not one each)."""
        async with held(self._send_lock):  # free (the usual case): written at once, no wait behind other tasks
            data = b"".join(frame(payload) for message in messages for payload in self._channel.seal(message))
            await self.stream.send_all(data)
        if self.meter is not None:
            self.meter.bytes_sent += len(data)

    async def receive(self) -> bytes:
        """The next whole message; ConnectionClosed when the peer is gone, TransportError on garbage."""
        while True:
            message = self._open(await _next_frame(self.stream, self._reader))
            if message is not None:
                return message

    def receive_read(self) -> bytes | None:
        """The next whole message if it has been read from the connection already (it came in the
        same read as the one before), without waiting; None otherwise. TransportError on garbage."""
        while (payload := self._reader.next_frame()) is not None:
            message = self._open(payload)
            if message is not None:
                return message
        return None

    def _open(self, payload: bytes) -> bytes | None:
        if self.meter is not None:
            self.meter.bytes_received += 2 + len(payload)  # with its length prefix (``frame``)
        return self._channel.open(payload)

    async def close_when_read(self, timeout: float) -> None:
        """Close after a last message: end the sending half, read (and drop) what the peer still
        sends until it closes or ``timeout`` passes, then close. Closing with the peer's data
        unread would reset the connection, and the peer could lose the message just sent."""
        with trio.move_on_after(timeout):
            try:
                send_eof = getattr(self.stream, "send_eof", None)
                if send_eof is not None:
                    await send_eof()
                while await self.stream.receive_some(_READ_SIZE):
                    pass
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                pass
        await self.aclose()

    async def aclose(self) -> None:
        with trio.move_on_after(1) as scope:
            scope.shield = True
            try:
                await self.stream.aclose()
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                pass


async def _next_frame(stream: trio.abc.Stream, reader: FrameReader) -> bytes:
    while True:
        payload = reader.next_frame()
        if payload is not None:
            return payload
        try:
            data = await stream.receive_some(_READ_SIZE)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            raise ConnectionClosed("connection lost") from exc
        if not data:
            raise ConnectionClosed("connection closed by the peer")
        reader.feed(data)


__all__ = ["ConnectionClosed", "NoiseStream", "TransportError", "HANDSHAKE_TIMEOUT"]
