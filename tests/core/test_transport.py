"""The two Noise handshakes (IK between members, XX for pairing) and the secure channel: pure
objects driven against each other."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vaultpeer.core.identity import DeviceKeys
from vaultpeer.core.transport import (
    MAX_CHUNK,
    FrameReader,
    HandshakeInitiator,
    HandshakeResponder,
    Offer,
    TransportError,
    frame,
    next_stamp,
    stamp_is_fresh,
)


def link_pair(stamp: int = 1):
    """A member link: ``a`` dials ``b`` knowing ``b``'s key (IK)."""
    a, b = DeviceKeys.generate(), DeviceKeys.generate()
    initiator = HandshakeInitiator(static_private=a.noise_private, purpose="sync",
                                   responder_static=b.public.noise_public, stamp=stamp)
    responder = HandshakeResponder(static_private=b.noise_private)
    offer = responder.receive_first(initiator.start())
    assert offer == Offer("sync", a.public.noise_public, stamp) and not responder.complete
    assert initiator.receive(responder.accept()) is None
    return a, b, initiator, responder


def pairing_pair():
    """A device asking to join: XX, in which neither side knows the other's key beforehand."""
    a, b = DeviceKeys.generate(), DeviceKeys.generate()
    initiator = HandshakeInitiator(static_private=a.noise_private, purpose="pair")
    responder = HandshakeResponder(static_private=b.noise_private)
    assert responder.receive_first(initiator.start()) == Offer("pair")
    third = initiator.receive(responder.accept())
    assert third is not None
    responder.receive(third)
    return a, b, initiator, responder


def handshake_pair(purpose="sync"):
    return link_pair() if purpose == "sync" else pairing_pair()


@pytest.mark.parametrize("purpose", ["sync", "pair"])
def test_handshake_authenticates_both_static_keys_and_agrees_on_a_hash(purpose):
    a, b, initiator, responder = handshake_pair(purpose)
    assert initiator.result.remote_static == b.public.noise_public
    assert responder.result.remote_static == a.public.noise_public
    assert initiator.result.handshake_hash == responder.result.handshake_hash
    assert initiator.result.purpose == responder.result.purpose == purpose


def test_a_member_link_never_puts_the_responders_static_key_on_the_wire():
    """IK: the responder's reply is an ephemeral key and a sealed payload; the initiator's static
    key travels encrypted. Neither static key appears in any handshake byte, and the initiator's
    first message is not answered until the responder chooses to."""
    a, b = DeviceKeys.generate(), DeviceKeys.generate()
    initiator = HandshakeInitiator(static_private=a.noise_private, purpose="sync",
                                   responder_static=b.public.noise_public, stamp=7)
    responder = HandshakeResponder(static_private=b.noise_private)
    first = initiator.start()
    responder.receive_first(first)
    reply = responder.accept()
    for key in (a.public.noise_public, b.public.noise_public):
        assert key not in first and key not in reply
    assert first[0] == 0x01 and len(reply) == 32 + 16 + len(b"\xa1av\x02")


def test_a_first_message_made_for_another_key_fails_opaquely_before_any_answer():
    a, b, c = DeviceKeys.generate(), DeviceKeys.generate(), DeviceKeys.generate()
    initiator = HandshakeInitiator(static_private=a.noise_private, purpose="sync",
                                   responder_static=c.public.noise_public, stamp=1)
    responder = HandshakeResponder(static_private=b.noise_private)
    with pytest.raises(TransportError) as caught:
        responder.receive_first(initiator.start())
    assert str(caught.value) == "connection failed"
    with pytest.raises(TransportError):
        responder.accept()  # nothing to answer


def test_the_kind_byte_is_bound_into_the_handshake():
    """A first byte changed in transit (a link offered as pairing or the reverse) fails."""
    a, b = DeviceKeys.generate(), DeviceKeys.generate()
    first = bytearray(HandshakeInitiator(static_private=a.noise_private, purpose="pair").start())
    first[0] = 0x01
    with pytest.raises(TransportError):
        HandshakeResponder(static_private=b.noise_private).receive_first(bytes(first))
    link = bytearray(HandshakeInitiator(static_private=a.noise_private, purpose="sync",
                                        responder_static=b.public.noise_public, stamp=1).start())
    link[0] = 0x02
    with pytest.raises(TransportError):
        HandshakeResponder(static_private=b.noise_private).receive_first(bytes(link))
    for kind in (0x00, 0x03, 0xFF):
        with pytest.raises(TransportError):
            HandshakeResponder(static_private=b.noise_private).receive_first(bytes([kind]) + bytes(link[1:]))
    with pytest.raises(TransportError):
        HandshakeResponder(static_private=b.noise_private).receive_first(b"")


def test_stamps_refuse_a_replayed_first_message_and_survive_a_clock_set_back():
    assert stamp_is_fresh(5, None) and stamp_is_fresh(6, 5)
    assert not stamp_is_fresh(5, 5) and not stamp_is_fresh(4, 5)
    assert next_stamp(1_000, None) == 1_000
    assert next_stamp(1_000, 5_000) == 5_001  # the clock went back: still above the last one sent
    assert next_stamp(9_000, 5_000) == 9_000


def test_the_initiator_must_name_the_responders_key_for_a_link_and_nothing_for_pairing():
    a, b = DeviceKeys.generate(), DeviceKeys.generate()
    with pytest.raises(ValueError):
        HandshakeInitiator(static_private=a.noise_private, purpose="sync")
    with pytest.raises(ValueError):
        HandshakeInitiator(static_private=a.noise_private, purpose="pair", responder_static=b.public.noise_public,
                           stamp=1)
    with pytest.raises(ValueError):
        HandshakeInitiator(static_private=a.noise_private, purpose="other")


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


@pytest.mark.parametrize("purpose", ["sync", "pair"])
def test_a_garbled_reply_fails_opaquely(purpose):
    a, b = DeviceKeys.generate(), DeviceKeys.generate()
    link = purpose == "sync"
    initiator = HandshakeInitiator(static_private=a.noise_private, purpose=purpose,
                                   responder_static=b.public.noise_public if link else None, stamp=1 if link else None)
    responder = HandshakeResponder(static_private=b.noise_private)
    responder.receive_first(initiator.start())
    reply = bytearray(responder.accept())
    reply[-1] ^= 1
    with pytest.raises(TransportError) as caught:
        initiator.receive(bytes(reply))
    assert str(caught.value) == "connection failed" and not initiator.complete


@given(st.binary(max_size=200))
def test_random_bytes_as_a_first_message_never_escape_as_another_error(data):
    responder = HandshakeResponder(static_private=DeviceKeys.generate().noise_private)
    try:
        offer = responder.receive_first(data)
    except TransportError:
        return
    # only a well-formed pairing first message (an ephemeral key) gets this far: random bytes
    # cannot be sealed to this responder's key
    assert offer == Offer("pair") and data[0] == 0x02 and len(data) == 33


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


def test_a_version_1_first_message_is_refused_and_recognised_as_an_older_vaultpeer():
    """Transport version 1 sent a bare XX ephemeral key first (32 bytes, no kind byte)."""
    from vaultpeer.core.transport import OlderTransport

    with pytest.raises(OlderTransport) as caught:
        HandshakeResponder(static_private=DeviceKeys.generate().noise_private).receive_first(bytes(range(32)))
    assert str(caught.value) == "connection failed"  # the same opaque error as any other
