"""The Noise XX handshake and the secure channel, two pure objects driven against each other."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vaultpeer.core.identity import DeviceKeys
from vaultpeer.core.transport import (
    MAX_CHUNK,
    FrameReader,
    NoiseHandshake,
    TransportError,
    frame,
)


def handshake_pair(purpose="sync"):
    a, b = DeviceKeys.generate(), DeviceKeys.generate()
    initiator = NoiseHandshake(initiator=True, static_private=a.noise_private, purpose=purpose)
    responder = NoiseHandshake(initiator=False, static_private=b.noise_private)
    message = initiator.start()
    message = responder.receive(message)
    message = initiator.receive(message)
    assert responder.receive(message) is None
    return a, b, initiator, responder


def test_handshake_authenticates_both_static_keys_and_agrees_on_a_hash():
    a, b, initiator, responder = handshake_pair("pair")
    assert initiator.result.remote_static == b.public.noise_public
    assert responder.result.remote_static == a.public.noise_public
    assert initiator.result.handshake_hash == responder.result.handshake_hash
    assert responder.result.purpose == "pair"


def test_channel_carries_small_and_large_messages_both_ways():
    _, _, initiator, responder = handshake_pair()
    left, right = initiator.channel(), responder.channel()
    for message in (b"", b"hello", bytes(range(256)) * 1000):
        frames = left.seal(message)
        assert all(len(f) <= 65535 for f in frames)
        assert len(frames) == max(1, -(-len(message) // MAX_CHUNK))
        received = [right.open(f) for f in frames]
        assert received[:-1] == [None] * (len(frames) - 1) and received[-1] == message
        assert left.open(right.seal(message)[0]) == message[:MAX_CHUNK] or len(message) > MAX_CHUNK


def test_tampered_replayed_or_reordered_frames_fail():
    _, _, initiator, responder = handshake_pair()
    left, right = initiator.channel(), responder.channel()
    first, second = left.seal(b"one")[0], left.seal(b"two")[0]
    with pytest.raises(TransportError):
        right.open(second)  # out of order: the nonce does not match
    _, _, initiator, responder = handshake_pair()
    left, right = initiator.channel(), responder.channel()
    first = left.seal(b"one")[0]
    assert right.open(first) == b"one"
    with pytest.raises(TransportError):
        right.open(first)  # a replay
    _, _, initiator, responder = handshake_pair()
    left, right = initiator.channel(), responder.channel()
    tampered = bytearray(left.seal(b"one")[0])
    tampered[0] ^= 1
    with pytest.raises(TransportError):
        right.open(bytes(tampered))


def test_a_garbled_handshake_fails_opaquely():
    a, b = DeviceKeys.generate(), DeviceKeys.generate()
    initiator = NoiseHandshake(initiator=True, static_private=a.noise_private)
    responder = NoiseHandshake(initiator=False, static_private=b.noise_private)
    reply = bytearray(responder.receive(initiator.start()))
    reply[-1] ^= 1
    with pytest.raises(TransportError) as caught:
        initiator.receive(bytes(reply))
    assert str(caught.value) == "connection failed"


@given(st.binary(max_size=200))
def test_random_bytes_as_a_handshake_message_never_escape_as_another_error(data):
    responder = NoiseHandshake(initiator=False, static_private=DeviceKeys.generate().noise_private)
    try:
        reply = responder.receive(data)
        # a well-formed first message is just an ephemeral key: the handshake goes on
        assert reply is not None
    except TransportError:
        pass


def test_frame_reader_reassembles_any_split():
    payloads = [b"a", b"b" * 300, b"c" * 65535]
    stream = b"".join(frame(p) for p in payloads)
    for cut in (1, 2, 3, 7, 100, 70000):
        reader, out = FrameReader(), []
        for i in range(0, len(stream), cut):
            reader.feed(stream[i : i + cut])
            while (f := reader.next_frame()) is not None:
                out.append(f)
        assert out == payloads
    reader = FrameReader()
    reader.feed(b"\x00\x00")
    with pytest.raises(TransportError):
        reader.next_frame()
    with pytest.raises(TransportError):
        frame(b"")
