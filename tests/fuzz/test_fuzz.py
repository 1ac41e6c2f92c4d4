"""Fuzzing in the normal suite (issue 8): a short hypothesis run of every target in targets.py.

Each target gets seeds (valid encodings), byte-mutated seeds, CBOR-tree-mutated seeds and random
bytes; it must refuse them with its documented error or accept them and pass its checks (round
trip, declared types, no crash in what uses the result, state untouched by a refusal). The long
run (``tests/fuzz/long_run.py``) does the same with far more inputs.
"""

import json
import os
import socket
import tracemalloc

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mutations import inputs
from targets import BY_NAME, COUNTS, TARGETS, Target, run_checked
from vaultpeer.core import transport
from vaultpeer.core.errors import NotFound
from vaultpeer.core.transport import FrameReader, TransportError
from vaultpeer.io.api_server import Rejected, _serve_connection, parse_request

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

#: Examples per target in the normal suite (the long run does hundreds of thousands).
EXAMPLES = 200
#: Targets fed only inputs that must all fail (garbage where a MAC is checked).
REFUSE_EVERYTHING = {"transport.handshake.link_reply", "transport.handshake.pair_reply",
                     "transport.handshake.pair_third", "transport.channel.garbage"}
_HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example,
           HealthCheck.filter_too_much]


def fuzz(target: Target, examples: int = EXAMPLES, max_repeat: int = 2000) -> None:
    strategy = inputs(target.seeds(), target.cbor_offset, max_size=target.max_size, max_repeat=max_repeat,
                      json_seeds=target.json)

    @settings(max_examples=examples, deadline=None, suppress_health_check=_HEALTH)
    @given(strategy)
    def check(data: bytes) -> None:
        run_checked(target, data)

    check()


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.name)
def test_target_refuses_with_its_documented_error_or_accepts_consistently(target):
    before = COUNTS.get(target.name, {}).get("inputs", 0)
    fuzz(target)
    counts = COUNTS[target.name]
    assert counts["inputs"] - before >= EXAMPLES
    if target.name not in REFUSE_EVERYTHING:
        assert counts["accepted"] > 0, "the fuzzer never got an input through: the target tests nothing"


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.name)
def test_every_seed_is_accepted_or_refused_cleanly(target):
    results = [run_checked(target, seed) for seed in target.seeds()]
    if target.name not in REFUSE_EVERYTHING:
        assert "accepted" in results


_HUGE_HEADS = [
    b"\x5b" + (2**63).to_bytes(8, "big"),  # a byte string of 2^63 bytes
    b"\x7b" + (2**62).to_bytes(8, "big"),  # a text string
    b"\x9b" + (2**40).to_bytes(8, "big"),  # an array of 2^40 elements
    b"\xbb" + (2**40).to_bytes(8, "big"),  # a map
    b"\x9a\xff\xff\xff\xff" + b"\x80" * 64,
    b"\x81" * 5000,  # nesting far past the depth limit
    b"\xc2\x5a\x7f\xff\xff\xff",  # a bignum tag with a 2 GiB payload
]


@pytest.mark.parametrize("target", [t for t in TARGETS if t.cbor_offset is not None], ids=lambda t: t.name)
def test_huge_declared_lengths_are_refused_without_allocating_them(target):
    prefix = target.seeds()[0][: target.cbor_offset]
    for head in _HUGE_HEADS:
        tracemalloc.start()
        try:
            assert run_checked(target, prefix + head) == "rejected"
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 4 * 1024 * 1024, f"{head[:9].hex()}: {peak} bytes allocated"


def test_a_frame_reader_refuses_more_unread_data_than_one_frame_and_a_read():
    reader = FrameReader()
    reader.feed(b"\xff\xff" + bytes(65535))  # one whole frame, not yet taken
    with pytest.raises(TransportError):
        reader.feed(bytes(65537))
    assert reader.pending <= transport.MAX_FRAME + 2 + 65536


def test_a_channel_refuses_a_message_longer_than_the_limit_before_holding_it():
    from targets import _channels

    left, right = _channels()
    chunk = bytes([1]) + bytes(transport.MAX_CHUNK)
    with pytest.raises(TransportError):
        for _ in range(transport.MAX_MESSAGE // transport.MAX_CHUNK + 2):
            assert right.open(bytes(left._noise.encrypt(chunk))) is None
    assert len(right._partial) <= transport.MAX_MESSAGE + transport.MAX_CHUNK


# --- the local API, end to end through the real connection handler on a socketpair -------------


async def _echo(method, params, connection):
    if method == "fail":
        raise NotFound("no such thing")
    return {"method": method, "params": params}


async def _exchange(lines: list[bytes]) -> list[bytes]:
    """Send ``lines`` to ``_serve_connection`` over a Unix socketpair; every answer line back."""
    ours, theirs = trio.socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    client, server = trio.SocketStream(ours), trio.SocketStream(theirs)
    answers: list[bytes] = []
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            async def serve() -> None:
                try:
                    await _serve_connection(server, _echo, 5.0, trio.CapacityLimiter(1))
                finally:
                    await server.aclose()

            nursery.start_soon(serve)
            await client.send_all(b"".join(line + b"\n" for line in lines))
            await client.send_eof()
            buffer = b""
            while data := await client.receive_some(65536):
                buffer += data
            answers = buffer.split(b"\n")[:-1]
    await client.aclose()
    return answers


#: Any text, lone surrogates included (JSON's \ud800 escapes decode to them).
_texts = st.lists(st.characters() | st.characters(categories=["Cs"]), max_size=8).map("".join)
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
_requests = st.fixed_dictionaries(
    {"jsonrpc": st.sampled_from(["2.0", "2.0", "1.0"]), "method": st.sampled_from(["status", "fail", "x"]) | _texts},
    optional={"id": st.integers() | _texts | st.none() | _json_values,
              "params": st.dictionaries(_texts, _json_values, max_size=3) | _json_values},
).map(lambda r: json.dumps(r).encode())
_lines = st.lists(
    _requests | inputs(BY_NAME["api.parse_request"].seeds(), None, max_size=200, max_repeat=3000, json_seeds=True)
    .map(lambda b: b.replace(b"\n", b" ")),
    min_size=1, max_size=6,
)


def _not_json(constant: str) -> None:
    raise AssertionError(f"the server wrote {constant}, which is not JSON")


@settings(max_examples=25, deadline=None, suppress_health_check=_HEALTH)
@given(_lines)
def test_the_api_server_answers_every_request_line_and_survives_garbage(lines):
    probe = json.dumps({"jsonrpc": "2.0", "id": "probe", "method": "status"}).encode()
    answers = trio.run(_exchange, [*lines, probe])
    expected = 0
    for line in lines:
        if not line.strip() or len(line) > 1024 * 1024:
            continue
        parsed = parse_request(line)
        expected += (parsed.response is not None) if isinstance(parsed, Rejected) else not parsed.notification
    decoded = [json.loads(answer, parse_constant=_not_json) for answer in answers]
    assert len(decoded) == expected + 1, "a request got no answer, or the connection ended early"
    assert decoded[-1] == {"jsonrpc": "2.0", "id": "probe", "result": {"method": "status", "params": {}}}
    assert all(answer["jsonrpc"] == "2.0" and ("result" in answer) != ("error" in answer) for answer in decoded)
