"""A Noise-encrypted message stream over any ``trio.abc.Stream`` (as ``trio.SSLStream`` wraps TLS).

The pure transport (``vaultpeer.core.transport``) does the framing and cryptography; this shell
only moves bytes, with every wait bounded: the handshake by ``handshake_timeout``, each message by
the caller's own deadline.
"""

import trio

from vaultpeer.core.identity import DeviceKeys
from vaultpeer.core.transport import (
    FrameReader,
    HandshakeResult,
    NoiseHandshake,
    SecureChannel,
    TransportError,
    frame,
)

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
    async def handshake(cls, stream: trio.abc.Stream, keys: DeviceKeys, *, initiator: bool, purpose: str = "sync",
                        timeout: float = HANDSHAKE_TIMEOUT) -> "NoiseStream":
        """Run the XX handshake; TransportError on any failure, trio.TooSlowError past ``timeout``."""
        handshake = NoiseHandshake(initiator=initiator, static_private=keys.noise_private, purpose=purpose)
        reader = FrameReader()
        with trio.fail_after(timeout):
            first = handshake.start()
            if first is not None:
                await stream.send_all(frame(first))
            while not handshake.complete:
                reply = handshake.receive(await _next_frame(stream, reader))
                if reply is not None:
                    await stream.send_all(frame(reply))
        return cls(stream, handshake.channel(), handshake.result, reader)

    async def send(self, message: bytes) -> None:
        async with self._send_lock:
            await self.stream.send_all(b"".join(frame(payload) for payload in self._channel.seal(message)))

    async def receive(self) -> bytes:
        """The next whole message; ConnectionClosed when the peer is gone, TransportError on garbage."""
        while True:
            message = self._channel.open(await _next_frame(self.stream, self._reader))
            if message is not None:
                return message

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
