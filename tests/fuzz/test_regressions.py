"""Every failure the fuzzers found (issue 8), as a test with the exact input that failed.

Each test feeds the input both to the fuzz target that found it (which now refuses it with the
documented error) and, where it helps to read, straight to the function that was fixed. The
inputs in hex are the shrunk examples hypothesis printed; inputs built with the encoders are the
same bytes the target received (the fuzz world's keys are deterministic).
"""

import json

import pytest

from targets import BY_NAME, _SCENARIOS, PropertyViolation, _sealed_bundle, run_checked, world
from vaultpeer.api import PARSE_ERROR
from vaultpeer.core import encoding, sync
from vaultpeer.core.bundle import JOIN_REQUEST_MAGIC, JoinRequest, open_bundle
from vaultpeer.core.errors import IntegrityError, InvalidInput
from vaultpeer.core.identity import DevicePublicKeys
from vaultpeer.core.item import ItemContent
from vaultpeer.core.keys import Keyring
from vaultpeer.core.roster import RosterEntry
from vaultpeer.core.sync import Phase, RemoteProtocolError
from vaultpeer.core.transport import FrameReader, TransportError
from vaultpeer.io.api_server import Rejected, parse_request


def refused(target_name: str, data: bytes) -> None:
    assert run_checked(BY_NAME[target_name], data) == "rejected"


# --- found by hypothesis (CBOR-tree mutations) -------------------------------------------------


def test_a_hello_whose_version_is_false_or_true_is_refused():
    """``isinstance(True, int)``: a hello with ``v: true`` passed as protocol version 1 (True == 1)."""
    data = bytes.fromhex(
        "a761746568656c6c6f6176f4656b6e6f7773828258200000000000000000000000000000000000000000000000000000000000"
        "000000018258200000000000000000000000000000000000000000000000000000000000000001016573746f72655000000000"
        "000000000000000000000000657661756c745000000000000000000000000000000000666865616465725820000000000000"
        "000000000000000000000000000000000000000000000000000066726f7374657258200000000000000000000000000000000000"
        "000000000000000000000000000000")
    refused("sync.decode_message", data)
    with pytest.raises(RemoteProtocolError):
        sync.decode_message(data.replace(b"av\xf4", b"av\xf5"))  # v: true, once read as version 1


def test_item_content_whose_fields_are_a_map_is_refused():
    """An empty map where the field list belongs iterated as no fields and was accepted."""
    data = bytes.fromhex("a365666c61677381740000000000000000000000000000000000000000657469746c656401010101666669656c6473a0")
    refused("item.from_plaintext", data)
    with pytest.raises(IntegrityError):
        ItemContent.from_plaintext(data)


def test_a_roster_entry_with_a_text_key_of_32_characters_is_refused():
    """A 32-character text passed the length check of a public key, then crashed (TypeError)
    whatever derived the member's device id from it: Roster, the store, the CLI."""
    data = bytes.fromhex(
        "89782c78c3adc3ac5e12c2bfc2b0c2b02b0fc3bd444271c3912f1073c3a529366760651fc2a01d05c2a7c285c3853d5820da5039"
        "4f7728c0470c52322e060c4798f3167391605010c7c1684eaaf2bc325d686465766963652d616754657374204f53f40001582042"
        "3dd7ad260d73bc0a0fc4a0020756d2d8bc4ba1b95bab7af586346429a2376f58404ac012429e05dcd030f9872f8be4a88f9cdc9f"
        "816d272010dd4df7c22d29edfcbdf5aa9b73abb251a5b2d8e291239c80d9f72fc1a79b601ec2bdf3e153c39e08")
    refused("roster.from_bytes", data)
    with pytest.raises(IntegrityError):
        RosterEntry.from_bytes(data)
    with pytest.raises(ValueError):
        DevicePublicKeys("x" * 32, bytes(32))


def test_a_join_request_with_a_text_noise_key_is_refused():
    """The same hole through a join request: the signature was valid (it covers the text as sent)."""
    body = bytes.fromhex(
        "847839c280c280c28000c280c280c280c280c280c280000000c280c280c280c280c280c280c280c280c280c280c2800000c280c2"
        "80c280c280c28000582064ac30973bc38180f4730253c018e31af73e959aedd4ef255bca7cf8dc7e27366a000000000000000000"
        "0069000000000000000000")
    refused("bundle.join_request.signed", body)
    fields = encoding.decode(body, max_size=4096)
    signature = world().c.sign(encoding.encode(["vaultpeer join request v1", *fields]))
    with pytest.raises(InvalidInput):
        JoinRequest.parse(JOIN_REQUEST_MAGIC + encoding.encode([*fields, signature]))


def test_a_bundle_whose_roster_entry_has_a_text_key_is_refused():
    w = world()
    record = encoding.decode(encoding.encode(w.bundle_contents._record()), max_size=1 << 20)
    entry = encoding.decode(record[8][0], max_size=1024)
    entry[0] = entry[0].decode("latin-1")  # the same 32 values, as text
    record[8][0] = encoding.encode(entry)
    payload = encoding.encode(record)
    refused("bundle.sealed_contents", payload)
    with pytest.raises(IntegrityError):
        open_bundle(_sealed_bundle(encoding.encode([payload, w.a.sign(payload)])), members=[w.members_key])


def test_a_bundle_created_false_is_refused():
    """``created: false`` was accepted as a time (and printed as ``false`` by bundle inspect)."""
    w = world()
    record = encoding.decode(encoding.encode(w.bundle_contents._record()), max_size=1 << 20)
    record[5] = False
    payload = encoding.encode(record)
    refused("bundle.sealed_contents", payload)
    with pytest.raises(IntegrityError):
        open_bundle(_sealed_bundle(encoding.encode([payload, w.a.sign(payload)])), members=[w.members_key])


def test_a_keyring_with_a_boolean_epoch_is_refused():
    data = bytes.fromhex("a1f458200000000000000000000000000000000000000000000000000000000000000000")
    refused("keys.keyring", data)
    with pytest.raises(IntegrityError):
        Keyring.from_plaintext(data)


def test_a_batch_that_repeats_a_revision_leaves_the_session_as_it_was_apart_from_error():
    """The first copy used to be recorded as seen before the second was refused."""
    w = world()
    scenario = [s.name for s in _SCENARIOS].index("repair/initiator")
    message = sync.encode_message(sync.Records(None, (), (w.revisions[1], w.revisions[1]), last=True, repair=True))
    refused("sync.session.receive", bytes([scenario]) + message)
    session = _SCENARIOS[scenario].build()
    with pytest.raises(RemoteProtocolError):
        session.receive(message)
    assert session.phase is Phase.ERROR and not session._seen


# --- found by the dedicated bound test in test_fuzz.py ------------------------------------------


def test_a_refused_feed_leaves_the_frame_reader_as_it_was():
    reader = FrameReader()
    reader.feed(b"\xff\xff" + bytes(65535))
    with pytest.raises(TransportError):
        reader.feed(bytes(65537))
    assert reader.pending == 65537
    assert reader.next_frame() == bytes(65535)


# --- the local API: found by hypothesis (end to end, and the parse_request target) -------------


@pytest.mark.parametrize("line", [
    b'{"jsonrpc": "2.0", "method": "status", "id": "\\ud800"}',  # the id is echoed back: not UTF-8
    b'{"jsonrpc": "2.0", "method": "\\ud800", "id": null}',
    b'{"jsonrpc":"2.0","":7,"method":"","params":{"":"\\ude00"}}',
    b'{"jsonrpc": "2.0", "method": "status", "id": "\xed\xa0\x80"}',  # a surrogate as raw bytes
    b"1" * 4301,  # past Python's int conversion limit: ValueError, not a JSONDecodeError
    b"[" * 100_000,  # RecursionError
    # found by reading the parser next to these: not JSON, or a float that overflows to infinity
    b'{"jsonrpc": "2.0", "method": "status", "id": 1, "params": {"n": NaN}}',
    b'{"jsonrpc": "2.0", "method": "status", "id": 1, "params": {"n": -Infinity}}',
    b'{"jsonrpc": "2.0", "method": "status", "id": 1, "params": {"n": 1e400}}',
])
def test_lines_that_once_escaped_the_api_parser_are_parse_errors(line):
    refused_or_answered = run_checked(BY_NAME["api.parse_request"], line)
    assert refused_or_answered == "accepted"  # the target accepts every line: it checks the answer
    parsed = parse_request(line)
    assert isinstance(parsed, Rejected) and parsed.response["error"]["code"] == PARSE_ERROR
    json.dumps(parsed.response, ensure_ascii=False, allow_nan=False).encode("utf-8")


def test_the_property_checks_themselves_catch_a_wrong_type():
    """The type check behind several of these findings is not vacuous."""
    from targets import check_typed

    good = RosterEntry.from_bytes(world().roster[0].to_bytes())
    check_typed(good)
    with pytest.raises(PropertyViolation):
        check_typed(sync.Hello(bytes(16), bytes(16), world().knowledge, version=True))


# --- vaultpeer import of a Bitwarden export: found by hypothesis (JSON-tree mutations) ----------


@pytest.mark.parametrize("text", [
    b"1" * 4301,  # the shrunk input: ValueError from json.loads escaped as a crash
    # an item id of "\ud800" (the shrunk input had it among the seed's fields): the source key
    # "bitwarden:\ud800" crashed the CBOR encoder (UnicodeEncodeError) while planning the import
    json.dumps({"items": [{"id": "\ud800", "type": 1, "name": "Forum", "login": {"username": "alice"}}]}).encode(),
    json.dumps({"items": [{"type": 2, "name": "Wifi", "notes": "x\udfff"}]}).encode(),
])
def test_bitwarden_exports_that_crashed_the_import_are_refused(text):
    from vaultpeer.core.interchange import parse_bitwarden

    refused("interchange.bitwarden", text)
    with pytest.raises(InvalidInput):
        parse_bitwarden(text.decode())
