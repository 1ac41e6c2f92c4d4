"""The fuzz targets: every function of vaultpeer that parses bytes or text coming from outside.

A :class:`Target` has a name, a ``run(data)`` that feeds ``data`` to the parser, the exception
types the parser documents (``allowed``), and its seeds: valid encodings built with vaultpeer's
own encoders, which the strategies of ``mutations.py`` mutate. Some targets wrap ``data`` first so
that it reaches the code behind a MAC or a signature (a Noise handshake payload, the sealed
contents of a bundle, the sealed payload of a backup, a sealed revision's plaintext); the
wrapping uses the real keys of a small fixed vault (:class:`World`).

``run`` either raises one of ``allowed`` (the input was refused) or returns after checking what
was accepted: it re-encodes to exactly the input (one value, one encoding), every field has its
declared type (a str where bytes are declared would crash whatever uses it later), and what the
daemon does next with it (derive an id, verify a signature, build a roster, open a revision)
raises nothing but documented errors either. Stateful targets also check that a refused input
left the state object as it was, apart from its documented error state. Anything else, including
:class:`PropertyViolation`, is a bug.

Each call is counted (``COUNTS``) so the long run reports honest figures.
"""

import copy
import dataclasses
import functools
import json
import random
import types
import typing
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from noise.connection import Keypair, NoiseConnection

from vaultpeer.api import INVALID_PARAMS, INVALID_REQUEST, METHODS, PARSE_ERROR
from vaultpeer.core import bundle as bundle_module
from vaultpeer.core import discovery, encoding, pairing, sync, transport
from vaultpeer.core.backup import (
    _PREFIX,
    FORMAT_VERSION,
    MAGIC,
    BackupContents,
    KeySlots,
    _payload_key,
    open_backup,
    parse_backup,
    seal_backup,
    verify_backup,
)
from vaultpeer.core.bundle import (
    BUNDLE_MAGIC,
    JOIN_REQUEST_MAGIC,
    BundleContents,
    JoinRequest,
    members_key,
    open_bundle,
    seal_bundle,
)
from vaultpeer.core.errors import IntegrityError, InvalidInput, WrongPassword, WrongRecoveryKey
from vaultpeer.core.identity import DeviceId, DeviceKeys, DevicePublicKeys
from vaultpeer.core.interchange import ImportEntry, Parsed, parse_bitwarden, parse_csv, plan_import
from vaultpeer.core.item import ItemContent, ItemId
from vaultpeer.core.kdf import insecure_test_parameters
from vaultpeer.core.keys import Keyring, RecoveryKey, VaultHeader, create_vault
from vaultpeer.core.pairing import CodeExchange, PairingError, Step
from vaultpeer.core.pairing_session import EnrollJoiner, Event, Failed, JoinVault, Paired, PairingSession, Role
from vaultpeer.core.revision import Revision, _associated_data, _pad, _unpad, open_revision, seal_revision
from vaultpeer.core.roster import Member, Roster, RosterEntry, revoke, vouch
from vaultpeer.core.sync import Phase, RemoteProtocolError, SyncSession
from vaultpeer.core.transport import FrameReader, HandshakeInitiator, HandshakeResponder, TransportError
from vaultpeer.core.vclock import VersionVector
from vaultpeer.io.api_server import Rejected, Request, parse_request

from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305


class PropertyViolation(Exception):
    """An input was accepted, but what came out breaks a property (round trip, types, state)."""


@dataclass(frozen=True)
class Target:
    name: str
    run: Callable[[bytes], object]
    #: The errors the code under test documents for bad input.
    allowed: tuple[type[BaseException], ...]
    #: Valid encodings to mutate (built lazily: some need keys and a vault).
    seeds: Callable[[], list[bytes]]
    #: Where the CBOR starts in a seed, for tree mutations (None: not CBOR).
    cbor_offset: int | None = 0
    #: The largest plain random input worth drawing.
    max_size: int = 512
    #: The seeds are JSON: mutate their trees too.
    json: bool = False


#: name -> Counter(inputs=..., accepted=..., rejected=..., failed=...)
COUNTS: dict[str, Counter] = {}


def run_checked(target: Target, data: bytes) -> str:
    """Run one input; "accepted" or "rejected", or the (re-raised) failure."""
    counts = COUNTS.setdefault(target.name, Counter())
    counts["inputs"] += 1
    try:
        target.run(data)
    except target.allowed:
        counts["rejected"] += 1
        return "rejected"
    except BaseException:
        counts["failed"] += 1
        raise
    counts["accepted"] += 1
    return "accepted"


def require(condition: bool, what: str) -> None:
    if not condition:
        raise PropertyViolation(what)


# --- declared types ----------------------------------------------------------------------------


def check_typed(value: object, hint: object = None, where: str = "value") -> None:
    """Raise PropertyViolation unless ``value`` (a dataclass, by default) matches its type hints."""
    if hint is None:
        hint = type(value)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        problems = []
        for option in args:
            try:
                check_typed(value, option, where)
                return
            except PropertyViolation as exc:
                problems.append(str(exc))
        raise PropertyViolation(f"{where}: {type(value).__name__} matches none of {hint}")
    if hint is type(None):
        require(value is None, f"{where}: expected None, got {type(value).__name__}")
        return
    if origin in (tuple, list, frozenset, set):
        require(isinstance(value, origin), f"{where}: expected {origin.__name__}, got {type(value).__name__}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            require(len(value) == len(args), f"{where}: expected {len(args)} elements")
            for index, (element, element_hint) in enumerate(zip(value, args)):
                check_typed(element, element_hint, f"{where}[{index}]")
            return
        for index, element in enumerate(value):
            check_typed(element, args[0], f"{where}[{index}]")
        return
    if origin is dict:
        require(isinstance(value, dict), f"{where}: expected dict")
        return
    if hint is bool:
        require(type(value) is bool, f"{where}: expected bool, got {type(value).__name__}")
        return
    if hint is int:
        require(isinstance(value, int) and not isinstance(value, bool), f"{where}: expected int, got {type(value).__name__}")
        return
    if hint in (bytes, str):
        require(type(value) is hint, f"{where}: expected {hint.__name__}, got {type(value).__name__}")
        return
    if hint is VersionVector:
        require(isinstance(value, VersionVector), f"{where}: expected VersionVector")
        for device, counter in value.items():
            check_typed(device, DeviceId, f"{where} key")
            check_typed(counter, int, f"{where}[{device!r}]")
        return
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        require(isinstance(value, hint), f"{where}: expected {hint.__name__}, got {type(value).__name__}")
        hints = typing.get_type_hints(hint)
        for field in dataclasses.fields(hint):
            if field.name.startswith("_"):
                continue
            check_typed(getattr(value, field.name), hints[field.name], f"{where}.{field.name}")
        return
    if isinstance(hint, type):
        require(isinstance(value, hint), f"{where}: expected {hint.__name__}, got {type(value).__name__}")


# --- a small fixed vault, to build seeds and to open what the targets seal -------------------


class World:
    """Two devices of one vault (and a third, revoked), with records, a bundle and a backup.
    Deterministic: the same bytes on every run, so hypothesis examples replay."""

    def __init__(self) -> None:
        rng = random.Random(20240808)
        self.random_bytes = rng.randbytes
        rb = self.random_bytes
        self.a, self.b, self.c = DeviceKeys.generate(rb), DeviceKeys.generate(rb), DeviceKeys.generate(rb)
        self.kdf = insecure_test_parameters(rb)
        self.kek = rb(32)
        self.header, self.keyring, self.recovery_key = create_vault(self.kek, self.kdf, self.a, rb)
        self.vault_id = self.header.vault_id
        self.roster = (
            vouch(self.vault_id, self.a, self.a.public, "device-a", "Test OS"),
            vouch(self.vault_id, self.a, self.b.public, "device-b", "Test OS"),
            vouch(self.vault_id, self.b, self.a.public, "device-a", "Test OS"),
            vouch(self.vault_id, self.a, self.c.public, "device-c", "Test OS"),
            revoke(self.vault_id, self.a, Member(self.c.public, "device-c", "Test OS", self.a.device_id), 0, 2),
        )
        item, other = ItemId(rb(16)), ItemId(rb(16))
        content = ItemContent.build("Example", {"username": "alice", "password": "hunter2", "url": "https://x"})
        first = seal_revision(vault_id=self.vault_id, keyring=self.keyring, author=self.a, item_id=item, seq=1,
                              parents=[], content=content, random_bytes=rb)
        second = seal_revision(vault_id=self.vault_id, keyring=self.keyring, author=self.b, item_id=item, seq=1,
                               parents=[first.revision_id], content=content.edited({"notes": "n"}), random_bytes=rb)
        tomb = seal_revision(vault_id=self.vault_id, keyring=self.keyring, author=self.a, item_id=other, seq=2,
                             parents=[], content=ItemContent("Gone", flags=frozenset({"edit-survived-delete"})),
                             deleted=True, random_bytes=rb)
        self.revisions = (first, second, tomb)
        self.content = content
        self.knowledge = VersionVector({self.a.device_id: 2, self.b.device_id: 1})
        self.members_key = members_key(self.header)
        self.created = 1_700_000_000
        self.bundle_contents = BundleContents(
            vault_id=self.vault_id, exporter=self.a.public, target=self.b.device_id, created=self.created,
            knowledge=self.knowledge, header=self.header, roster=self.roster, revisions=self.revisions)
        self.bundle = seal_bundle(self.bundle_contents, self.a, members=self.members_key,
                                  device_public=self.b.public.noise_public, random_bytes=rb)
        self.members_only_bundle = seal_bundle(self.bundle_contents, self.a, members=self.members_key, random_bytes=rb)
        self.join_request = JoinRequest.make(self.c, "new laptop", "Linux 6.1")
        self.backup_contents = BackupContents(
            vault_id=self.vault_id, created=self.created, header=self.header, device=self.a.public,
            anchors=(self.a.public, self.b.public), roster=self.roster, revisions=self.revisions)
        self.backup = seal_backup(self.keyring, self.backup_contents, rb)
        self.slots = KeySlots.of(self.header)


_WORLD: World | None = None


def world() -> World:
    global _WORLD
    if _WORLD is None:
        _WORLD = World()
    return _WORLD


# --- transport ---------------------------------------------------------------------------------


def _frames_run(data: bytes) -> None:
    """Feed a byte stream in chunks (sizes from the first byte) and compare with feeding it whole."""
    if not data:
        return
    rng = random.Random(data[0])
    stream = data[1:]
    whole, whole_error = _read_frames([stream])
    chunks, position = [], 0
    while position < len(stream):
        size = rng.choice([1, 2, 3, rng.randint(1, 70000)])
        chunks.append(stream[position:position + size])
        position += size
    parts, parts_error = _read_frames(chunks)
    require((parts, parts_error) == (whole, whole_error), "chunking changed the frames read")
    if whole_error:
        raise TransportError()


def _read_frames(chunks: list[bytes]) -> tuple[list[bytes], bool]:
    reader, frames = FrameReader(), []
    try:
        for chunk in chunks:
            reader.feed(chunk)
            while (payload := reader.next_frame()) is not None:
                require(0 < len(payload) <= transport.MAX_FRAME, "a frame of a size out of range")
                frames.append(payload)
            require(reader.pending <= transport.MAX_FRAME + 2 + 65536, "unbounded unread data")
    except TransportError:
        return frames, True
    return frames, False


def _frames_seeds() -> list[bytes]:
    payloads = [b"x", bytes(300), b"hello" * 20, bytes(range(256)) * 4]
    return [bytes([n]) + b"".join(transport.frame(p) for p in payloads[: n + 1]) for n in range(4)]


def _initiator(purpose: str) -> HandshakeInitiator:
    w = world()
    if purpose == "sync":
        return HandshakeInitiator(static_private=w.a.noise_private, purpose="sync",
                                  responder_static=w.b.public.noise_public, stamp=1)
    return HandshakeInitiator(static_private=w.a.noise_private, purpose="pair")


def _responder() -> HandshakeResponder:
    return HandshakeResponder(static_private=world().b.noise_private)


def _handshake_failed_cleanly(handshake, data: bytes) -> bytes | None:
    try:
        return handshake.receive(data)
    except TransportError:
        require(not handshake.complete, "a failed handshake message completed the handshake")
        raise


def _handshake_first_run(data: bytes) -> None:
    """Any bytes as a connection's first frame: only a pairing ephemeral key, or a link message
    sealed to this responder's key by a key-holder, may pass; nothing is answered before."""
    responder = _responder()
    offer = responder.receive_first(data)
    require(not responder.complete, "a first message completed the handshake")
    if offer.purpose == "pair":
        require(offer == transport.Offer("pair") and len(data) == 33, "an odd pairing first message passed")
    else:
        require(offer.purpose == "sync" and len(offer.remote_static) == 32 and 0 <= offer.stamp < 2**63,
                "an odd link first message passed")


def _first_seeds() -> list[bytes]:
    return [_initiator("sync").start(), _initiator("pair").start()]


def _reply_seed(purpose: str) -> bytes:
    responder = _responder()
    responder.receive_first(_initiator(purpose).start())
    return responder.accept()


def _handshake_reply_run(purpose: str) -> Callable[[bytes], None]:
    """The responder's reply to an initiator that started (its ephemeral key is new each time, so
    no input can authenticate)."""
    def run(data: bytes) -> None:
        initiator = _initiator(purpose)
        initiator.start()
        _handshake_failed_cleanly(initiator, data)
        require(initiator.complete and initiator.result.purpose == purpose, "the initiator finished oddly")
    return run


def _handshake_third_run(data: bytes) -> None:
    responder = _responder()
    responder.receive_first(_initiator("pair").start())
    responder.accept()
    _handshake_failed_cleanly(responder, data)
    require(responder.complete and responder.result.purpose == "pair", "bad purpose accepted")


def _raw_noise(purpose: str, initiator: bool, private: bytes, remote_static: bytes | None = None) -> NoiseConnection:
    noise = NoiseConnection.from_name(transport._PATTERNS[purpose].encode())
    noise.set_keypair_from_private_bytes(Keypair.STATIC, private)
    if remote_static is not None:
        noise.set_keypair_from_public_bytes(Keypair.REMOTE_STATIC, remote_static)
    noise.set_prologue(transport.prologue(purpose))
    noise.set_as_initiator() if initiator else noise.set_as_responder()
    noise.start_handshake()
    return noise


def _clip(data: bytes) -> bytes:
    return data[: transport.MAX_FRAME - 200]


def _payload1_run(data: bytes) -> None:
    """A well-sealed link first message whose (encrypted) payload is ``data``."""
    w = world()
    peer = _raw_noise("sync", True, w.a.noise_private, w.b.public.noise_public)
    data = _clip(data)
    offer = _responder().receive_first(bytes([transport.KIND_BYTES["sync"]]) + bytes(peer.write_message(data)))
    require(encoding.decode(data, max_size=256) == {"v": transport.TRANSPORT_VERSION, "stamp": offer.stamp},
            "an initiator payload other than {v, stamp} was accepted")


def _payload2_run(data: bytes) -> None:
    """A well-encrypted link reply whose (encrypted) payload is ``data``."""
    w = world()
    initiator = _initiator("sync")
    peer = _raw_noise("sync", False, w.b.noise_private)
    peer.read_message(initiator.start()[1:])
    data = _clip(data)
    _handshake_failed_cleanly(initiator, bytes(peer.write_message(data)))
    require(encoding.decode(data, max_size=256) == {"v": transport.TRANSPORT_VERSION},
            "a responder payload other than {v} was accepted")


def _payload3_run(data: bytes) -> None:
    """A well-encrypted third pairing message whose (encrypted) payload is ``data``."""
    responder = _responder()
    peer = _raw_noise("pair", True, world().a.noise_private)
    responder.receive_first(bytes([transport.KIND_BYTES["pair"]]) + bytes(peer.write_message(b"")))
    peer.read_message(responder.accept())
    data = _clip(data)
    _handshake_failed_cleanly(responder, bytes(peer.write_message(data)))
    require(encoding.decode(data, max_size=256) == {"v": transport.TRANSPORT_VERSION},
            "an initiator payload other than {v} was accepted")


def _payload_seeds(first: bool) -> Callable[[], list[bytes]]:
    def seeds() -> list[bytes]:
        if first:
            return [encoding.encode({"v": transport.TRANSPORT_VERSION, "stamp": s}) for s in (0, 1, 2**40)]
        return [encoding.encode({"v": transport.TRANSPORT_VERSION})]
    return seeds


def _channels() -> tuple[transport.SecureChannel, transport.SecureChannel]:
    initiator, responder = _initiator("sync"), _responder()
    responder.receive_first(initiator.start())
    initiator.receive(responder.accept())
    return initiator.channel(), responder.channel()


def _channel_garbage_run(data: bytes) -> None:
    _, right = _channels()
    right.open(data)
    raise PropertyViolation("an unauthenticated frame was accepted")


def _channel_plaintext_run(data: bytes) -> None:
    """Frames whose (authentic) plaintexts are pieces of ``data``: flag byte, chunk. The channel
    must reassemble exactly the chunks up to each last flag, and refuse any other flag."""
    left, right = _channels()
    rng = random.Random(len(data))
    position, expected, partial, messages = 0, [], b"", []
    while position < len(data):
        size = rng.randint(1, 64)
        plaintext = data[position:position + size]
        position += size
        frame_payload = bytes(left._noise.encrypt(plaintext))
        if plaintext[0] not in (0, 1):
            try:
                right.open(frame_payload)
            except TransportError:
                require(messages == expected, "messages before a bad flag were lost")
                raise
            raise PropertyViolation(f"flag byte {plaintext[0]} accepted")
        partial += plaintext[1:]
        if plaintext[0] == 0:
            expected.append(partial)
            partial = b""
        result = right.open(frame_payload)
        if result is not None:
            messages.append(result)
    require(messages == expected, "the channel reassembled other messages than were sent")


def _channel_seeds() -> list[bytes]:
    return [b"\x00hello", b"\x01abc\x00def", b"\x01" + bytes(63) + b"\x00x"]


# --- sync --------------------------------------------------------------------------------------


def _sync_seeds() -> list[bytes]:
    w = world()
    ids = (bytes(range(16)), bytes(range(16, 32)))
    messages = [
        sync.Hello(w.vault_id, ids[0], w.knowledge, bytes(range(32)), bytes(32)),
        sync.Records(w.header, w.roster, w.revisions, last=True),
        sync.Records(None, (), w.revisions[:1], last=False),
        sync.Records(None, (), (), last=True, repair=True),
        sync.Records(None, (), w.revisions[1:], last=False, repair=True),
        sync.Digest(bytes(range(32))),
        sync.Query(("", "0", "ab")),
        sync.Nodes((("", tuple(bytes([n]) * 32 for n in range(16))),)),
        sync.Repair(("0000", "ffff")),
        sync.Done(True),
        sync.Error("rejected"),
    ]
    return [sync.encode_message(m) for m in messages]


def _decode_sync_run(data: bytes) -> None:
    message = sync.decode_message(data)
    check_typed(message)
    require(sync.encode_message(message) == data, "a sync message does not re-encode to its bytes")
    if isinstance(message, sync.Records):
        _use_records(message.header, message.roster, message.revisions)
    if isinstance(message, sync.Hello):
        message.knowledge.merged(world().knowledge)


def _use_records(header: VaultHeader | None, roster: tuple[RosterEntry, ...], revisions: tuple[Revision, ...]) -> None:
    """What a receiving vault does first with records: ids, signatures, the roster, the contents."""
    w = world()
    base = Roster(w.vault_id, [w.a.public], w.roster)
    try:
        base.with_entries(roster)
    except IntegrityError:
        pass
    if header is not None:
        _use_header(header)
    for revision in revisions:
        _use_revision(revision, base)


def _use_revision(revision: Revision, roster: Roster) -> None:
    w = world()
    str(revision.revision_id)
    keys = roster.accepts_revision_from(revision.author, revision.revision_id.seq)
    try:
        revision.verify(w.vault_id, keys)
    except IntegrityError:
        pass
    try:
        open_revision(w.vault_id, w.keyring, revision)
    except IntegrityError:
        pass


def _use_header(header: VaultHeader) -> None:
    w = world()
    header.discovery_key
    members_key(header)
    try:
        header.verify(w.a.public)
    except IntegrityError:
        pass
    try:
        header.kdf.check_strength(allow_insecure_test_kdf=True)
        if header.kdf == w.kdf:  # the real KDF runs for seeds only: a fuzzed cost could take minutes
            header.open_with_kek(w.kek)
    except (IntegrityError, WrongPassword):
        pass
    try:
        header.open_with_recovery_key(w.recovery_key)
    except (IntegrityError, WrongRecoveryKey):
        pass


@dataclass(frozen=True)
class _Scenario:
    name: str
    build: Callable[[], SyncSession]


def _session(initiator: bool) -> SyncSession:
    w = world()
    # holds the first of the world's revisions: receiving it again is a replay, the others are new
    return SyncSession(vault_id=w.vault_id, store_id=bytes(16), knowledge=VersionVector({w.a.device_id: 1}),
                       initiator=initiator)


def _peer_hello() -> bytes:
    w = world()
    return sync.encode_message(sync.Hello(w.vault_id, bytes([1]) * 16, VersionVector(), bytes(32), bytes(32)))


def _last_records(repair: bool = False) -> bytes:
    return sync.encode_message(sync.Records(None, (), (), last=True, repair=repair))


def _in_records(initiator: bool) -> SyncSession:
    s = _session(initiator)
    s.receive(_peer_hello())
    return s


def _in_records_peer_done(initiator: bool) -> SyncSession:
    s = _in_records(initiator)
    s.receive(_last_records())
    return s


def _in_digest(initiator: bool) -> SyncSession:
    s = _in_records_peer_done(initiator)
    s.records(None, [], [], last=True)
    return s


def _in_narrowing(initiator: bool) -> SyncSession:
    s = _in_digest(initiator)
    s.digest(bytes(32))
    s.receive(sync.encode_message(sync.Digest(bytes([7]) * 32)))
    s.compare_digests(bytes(32))
    return s


def _in_repair(initiator: bool) -> SyncSession:
    s = _in_narrowing(initiator)
    if initiator:  # as vaultpeer/service/replication.py does: the request, then our own side of those leaves
        s.repair(["0000"])
        s.records(None, [], [], last=True, repair=True)
    else:
        s.receive(sync.encode_message(sync.Repair(("0000",))))
    return s


def _in_second_digest(initiator: bool) -> SyncSession:
    s = _in_repair(initiator)
    if initiator:
        s.receive(_last_records(repair=True))
    else:
        s.records(None, [], [], last=True, repair=True)
        s.repaired()
    return s


def _in_done(initiator: bool) -> SyncSession:
    s = _in_digest(initiator)
    s.digest(bytes(32))
    s.receive(sync.encode_message(sync.Digest(bytes(32))))
    s.compare_digests(bytes(32))
    s.done(True)
    s.receive(sync.encode_message(sync.Done(True)))
    return s


def _in_error(initiator: bool) -> SyncSession:
    s = _in_records(initiator)
    s.fail("protocol")
    return s


_SCENARIOS = [
    _Scenario(f"{name}/{'initiator' if initiator else 'responder'}", (lambda b=build, i=initiator: b(i)))
    for name, build in [("hello", _session), ("records", _in_records), ("records-peer-last", _in_records_peer_done),
                        ("digest", _in_digest), ("narrowing", _in_narrowing), ("repair", _in_repair),
                        ("second-digest", _in_second_digest), ("done", _in_done), ("error", _in_error)]
    for initiator in (True, False)
]

#: The phases a received message may move a session to, from each phase (docs: sync.py's docstring).
_NEXT_PHASES = {
    Phase.HELLO: {Phase.RECORDS},
    Phase.RECORDS: {Phase.RECORDS, Phase.DIGEST},
    Phase.DIGEST: {Phase.DIGEST, Phase.DONE},
    Phase.NARROWING: {Phase.NARROWING, Phase.REPAIR, Phase.DONE},
    Phase.REPAIR: {Phase.REPAIR, Phase.DIGEST, Phase.DONE},
    Phase.DONE: set(),
    Phase.ERROR: set(),
}


def _state(session: SyncSession) -> dict:
    return {k: v for k, v in vars(session).items() if k not in ("phase", "error")}


def _session_run(data: bytes) -> None:
    """``data[0]`` picks a session state (phase and role); the rest is the message it receives."""
    if not data:
        return
    session = _SCENARIOS[data[0] % len(_SCENARIOS)].build()
    before_phase, before = session.phase, copy.deepcopy(_state(session))
    try:
        message = session.receive(data[1:])
    except RemoteProtocolError:
        require(session.phase is Phase.ERROR, "a refused message left the session out of ERROR")
        require(_state(session) == before, "a refused message changed the session beyond its error state")
        raise
    check_typed(message)
    require(sync.encode_message(message) == data[1:], "an accepted message does not re-encode to its bytes")
    require(session.phase in _NEXT_PHASES[before_phase] | {before_phase},
            f"{before_phase.value} -> {session.phase.value} is not a documented transition")


def _session_seeds() -> list[bytes]:
    return [bytes([n]) + m for n in range(len(_SCENARIOS)) for m in _sync_seeds()]


# --- pairing -----------------------------------------------------------------------------------


def _pairing_seeds() -> list[bytes]:
    w = world()
    return [pairing.encode_message(m) for m in (
        pairing.Commit(bytes(range(32))), pairing.Nonce(bytes(32)), pairing.Reveal(b"\x07" * 32),
        pairing.Confirm(True), pairing.Identity(w.c.public.signing_public, "new laptop", "Linux"),
        pairing.Welcome(w.header, w.roster), pairing.Joined(w.roster[:2]))]


def _decode_pairing_run(data: bytes) -> None:
    message = pairing.decode_message(data)
    check_typed(message)
    require(pairing.encode_message(message) == data, "a pairing message does not re-encode to its bytes")
    if isinstance(message, (pairing.Welcome, pairing.Joined)):
        _use_records(getattr(message, "header", None), message.roster, ())
    if isinstance(message, pairing.Identity):
        DevicePublicKeys(world().c.public.noise_public, message.signing_public).device_id


def _exchanges() -> list[Callable[[], CodeExchange]]:
    rb = random.Random(5).randbytes

    def inviter_waiting() -> CodeExchange:
        return CodeExchange(joiner=False, handshake_hash=bytes(64), random_bytes=rb)

    def inviter_after_commit() -> CodeExchange:
        exchange = inviter_waiting()
        exchange.receive(pairing.encode_message(pairing.Commit(pairing.commitment(bytes(32)))))
        return exchange

    def joiner_started() -> CodeExchange:
        exchange = CodeExchange(joiner=True, handshake_hash=bytes(64), random_bytes=rb)
        exchange.start()
        return exchange

    def joiner_unstarted() -> CodeExchange:
        return CodeExchange(joiner=True, handshake_hash=bytes(64), random_bytes=rb)

    def joiner_done() -> CodeExchange:
        exchange = joiner_started()
        exchange.receive(pairing.encode_message(pairing.Nonce(bytes(32))))
        return exchange

    return [inviter_waiting, inviter_after_commit, joiner_started, joiner_unstarted, joiner_done]


_EXCHANGES = _exchanges()


def _exchange_run(data: bytes) -> None:
    if not data:
        return
    exchange = _EXCHANGES[data[0] % len(_EXCHANGES)]()
    before = copy.deepcopy(vars(exchange))
    try:
        reply = exchange.receive(data[1:])
    except PairingError:
        require(vars(exchange) == before, "a refused pairing message changed the exchange")
        raise
    require(exchange.step is Step.CODE or reply is not None, "an accepted message led nowhere")
    require(exchange.code is None or len(exchange.code) == 7, "a malformed code")


def _exchange_seeds() -> list[bytes]:
    messages = _pairing_seeds()[:3] + [pairing.encode_message(pairing.Reveal(bytes(32)))]
    return [bytes([n]) + m for n in range(len(_EXCHANGES)) for m in messages]


@functools.cache
def _pairing_sessions() -> list[Callable[[], PairingSession]]:
    """Pairing sessions of both roles in each phase that reads the other device (a invites, c joins)."""
    w = world()

    def inviter() -> PairingSession:
        return PairingSession(Role.INVITER, handshake_hash=bytes(64), remote_static=w.c.public.noise_public, now=0,
                              code_deadline=10, random_bytes=random.Random(6).randbytes)

    def joiner() -> PairingSession:
        session = PairingSession(Role.JOINER, handshake_hash=bytes(64), remote_static=w.a.public.noise_public,
                                 now=0, code_deadline=120, random_bytes=random.Random(7).randbytes,
                                 identity=pairing.Identity(w.c.public.signing_public, "new laptop", "Linux"))
        session.start()
        return session

    def after_commit() -> PairingSession:
        session = inviter()
        session.receive(pairing.encode_message(pairing.Commit(pairing.commitment(bytes(32)))), 0)
        return session

    def confirming(start: Callable[[], PairingSession], answered: bool) -> Callable[[], PairingSession]:
        def make() -> PairingSession:
            session = start()
            if session.role is Role.INVITER:
                session.receive(pairing.encode_message(pairing.Reveal(bytes(32))), 0)
            else:
                session.receive(pairing.encode_message(pairing.Nonce(bytes(32))), 0)
            if answered:
                session.answer(True, 0)
            return session
        return make

    def confirmed(start: Callable[[], PairingSession]) -> Callable[[], PairingSession]:
        def make() -> PairingSession:
            session = confirming(start, True)()
            session.receive(pairing.encode_message(pairing.Confirm(True)), 0)
            return session
        return make

    def awaiting_joined() -> PairingSession:
        session = confirmed(after_commit)()
        session.receive(pairing.encode_message(pairing.Identity(w.c.public.signing_public, "new laptop", "Linux")), 0)
        session.welcome(w.header, w.roster[:2], w.roster[1])
        return session

    return [inviter, after_commit, joiner, confirming(after_commit, False), confirming(after_commit, True),
            confirming(joiner, False), confirming(joiner, True), confirmed(after_commit), confirmed(joiner),
            awaiting_joined]


#: What a message from the other device alone can end a session with (the rest is this side's).
_REMOTE_FAILURES = {"failed", "declined_by_peer"}


class SessionFailed(Exception):
    """(The pairing session target) The message ended the session: it was refused."""


def _pairing_session_run(data: bytes) -> None:
    """Any bytes from the other device, in any phase of either role: the session raises nothing;
    it goes on (with a deadline) or ends (refused, here SessionFailed), and says how."""
    if not data:
        return
    sessions = _pairing_sessions()
    session = sessions[data[0] % len(sessions)]()
    events: list[Event] = session.receive(data[1:], 1.0)
    for event in events:
        check_typed(event)
    require(not any(isinstance(e, Paired) for e in events), "a message alone paired (the vault must answer first)")
    if any(isinstance(e, (EnrollJoiner, JoinVault)) for e in events):
        require(not session.expects_message, "a session read on while the vault had to answer")
    if session.done:
        require(events[-1] == session.outcome, "a session ended without saying so")
        require(session.deadline() is None and not session.expects_message and not session.expects_answer,
                "an ended session still waits")
        require(isinstance(session.outcome, Failed) and session.outcome.reason in _REMOTE_FAILURES,
                "a message ended a session with a reason it cannot cause")
        raise SessionFailed(session.outcome.reason)
    require(session.deadline() is not None, "a live session has no deadline")


def _pairing_session_seeds() -> list[bytes]:
    return [bytes([n]) + m for n in range(len(_pairing_sessions())) for m in _pairing_seeds()]


# --- discovery ---------------------------------------------------------------------------------


def _discovery_run(data: bytes) -> None:
    """An mDNS instance name as zeroconf hands it over (any text), through the daemon's checks."""
    name = data.decode("utf-8", "surrogateescape")
    w = world()
    key = w.header.discovery_key
    for candidate in (name, name + "." + discovery.SERVICE_TYPE):
        label = discovery.label_of(candidate)
        require(label is None or isinstance(label, str), "label_of returned a non-label")
        if label is not None:
            pairing_label = discovery.is_pairing_label(label)
            owner = discovery.label_owner([key], [w.a.public.noise_public, w.b.public.noise_public], label)
            require(type(pairing_label) is bool and owner in (None, w.a.public.noise_public, w.b.public.noise_public),
                    "a label check returned something else")


def _discovery_seeds() -> list[bytes]:
    rb = random.Random(3).randbytes
    key = world().header.discovery_key
    labels = [discovery.new_member_label(key, world().a.public.noise_public, rb), discovery.new_pairing_label(rb),
              "vp-something"]
    return [discovery.instance_name(label).encode() for label in labels]


# --- encoding and records -------------------------------------------------------------------------


def _decode_cbor_run(data: bytes) -> None:
    value = encoding.decode(data, max_size=1 << 20)
    require(encoding.encode(value) == data, "strict decode accepted a non-canonical encoding")


def _cbor_seeds() -> list[bytes]:
    return [encoding.encode(v) for v in (
        0, -1, 2**64 - 1, -(2**64), b"bytes", "text", True, None, [1, [2, [3]]], {"a": 1, "b": [b"x"], 1: None},
        {"t": "hello", "v": 1, "vault": bytes(16)}, [bytes(32), "x" * 30, {"k": [True, False]}])]


def _revision_run(data: bytes) -> None:
    revision = Revision.from_bytes(data)
    check_typed(revision)
    require(revision.to_bytes() == data, "a revision does not re-encode to its bytes")
    w = world()
    _use_revision(revision, Roster(w.vault_id, [w.a.public], w.roster))


def _revision_seeds() -> list[bytes]:
    return [r.to_bytes() for r in world().revisions]


def _content_run(data: bytes) -> None:
    content = ItemContent.from_plaintext(data)
    require(content.to_plaintext() == data, "item content does not re-encode to its bytes")
    require(all(type(f.name) is str and type(f.value) is str and type(f.secret) is bool for f in content.fields),
            "an item field of the wrong type")
    require(content.time is None or type(content.time) is int and 0 <= content.time < 2**53,
            "a revision time out of its range")


def _content_seeds() -> list[bytes]:
    w = world()
    return [w.content.to_plaintext(), ItemContent("Gone", flags=frozenset({"edit-survived-delete"})).to_plaintext(),
            ItemContent.build("t", {"notes": "line\nline"}).to_plaintext(),
            ItemContent.build("t", {"password": "p"}).at(1_764_000_000).to_plaintext()]


def _sealed_content_run(data: bytes) -> None:
    """``data`` as the padded plaintext of a revision sealed with the vault key: the unpadding and
    the content decoder, which only ever see authentic bytes from a member."""
    w = world()
    template = w.revisions[0]
    ciphertext = ChaCha20Poly1305(w.keyring.key(0)).encrypt(
        template.nonce, data, _associated_data(w.vault_id, template.item_id, template.revision_id, template.parents,
                                               template.deleted, template.key_epoch))
    revision = dataclasses.replace(template, ciphertext=ciphertext)
    content = open_revision(w.vault_id, w.keyring, revision)
    require(content.to_plaintext() == _unpad(data), "an opened revision's content is not what was sealed")


def _sealed_content_seeds() -> list[bytes]:
    return [_pad(seed) for seed in _content_seeds()]


def _roster_run(data: bytes) -> None:
    entry = RosterEntry.from_bytes(data)
    check_typed(entry)
    require(entry.to_bytes() == data, "a roster entry does not re-encode to its bytes")
    _use_records(None, (entry,), ())
    entry.key


def _roster_seeds() -> list[bytes]:
    return [e.to_bytes() for e in world().roster]


def _header_run(data: bytes) -> None:
    header = VaultHeader.from_bytes(data)
    check_typed(header)
    require(header.to_bytes() == data, "a header does not re-encode to its bytes")
    _use_header(header)


def _keyring_run(data: bytes) -> None:
    keyring = Keyring.from_plaintext(data)
    require(keyring.to_plaintext() == data, "a keyring does not re-encode to its bytes")
    require(all(type(epoch) is int for epoch in keyring._keys), "a keyring epoch that is not an integer")
    keyring.key(keyring.current_epoch)


def _keyring_seeds() -> list[bytes]:
    w = world()
    return [w.keyring.to_plaintext(), w.keyring.rotated(random.Random(1).randbytes).to_plaintext()]


def _vclock_run(data: bytes) -> None:
    vector = VersionVector.from_record(encoding.decode(data, max_size=1 << 20))
    check_typed(vector, VersionVector)
    require(encoding.encode(vector.to_record()) == data, "a version vector does not re-encode to its bytes")


def _device_id_run(data: bytes) -> None:
    """Device ids and recovery keys typed by a person (any text)."""
    text = data.decode("utf-8", "surrogateescape")
    for parse, size in ((DeviceId.parse, 32), (lambda t: RecoveryKey.parse(t)._raw, RecoveryKey.SIZE)):
        try:
            value = parse(text)
        except ValueError:
            continue
        raw = value.raw if isinstance(value, DeviceId) else value
        require(type(raw) is bytes and len(raw) == size, "a parsed code of the wrong size")


def _device_id_seeds() -> list[bytes]:
    w = world()
    return [str(w.a.device_id).encode(), w.recovery_key.reveal().encode(), str(w.b.device_id).lower().encode()]


# --- bundles and join requests -------------------------------------------------------------------


def _join_request_run(data: bytes) -> None:
    request = JoinRequest.parse(data)
    check_typed(request)
    request.device_id


def _join_signed_run(data: bytes) -> None:
    """``data`` as the CBOR of a join request's body, signed with the key it names (if it is ours)."""
    w = world()
    try:
        body = encoding.decode(data, max_size=4096)
    except IntegrityError:
        body = None
    if isinstance(body, list) and len(body) == 4:
        signature = w.c.sign(encoding.encode([bundle_module._JOIN_DOMAIN, *body]))
        data = JOIN_REQUEST_MAGIC + encoding.encode([*body, signature])
    else:
        data = JOIN_REQUEST_MAGIC + data
    _join_request_run(data)


def _join_body_seeds() -> list[bytes]:
    w = world()
    return [encoding.encode([w.c.public.noise_public, w.c.public.signing_public, "new laptop", "Linux 6.1"])]


def _open_bundle_run(data: bytes) -> None:
    w = world()
    contents = open_bundle(data, members=[w.members_key], device=w.b)
    _check_bundle_contents(contents)


def _check_bundle_contents(contents: BundleContents) -> None:
    check_typed(contents)
    w = world()
    base = Roster(w.vault_id, [w.a.public], [])
    try:
        roster = base.with_entries(contents.roster)
    except IntegrityError:
        roster = base
    _use_header(contents.header)
    for revision in contents.revisions:
        _use_revision(revision, roster)


def _bundle_seeds() -> list[bytes]:
    w = world()
    return [w.bundle, w.members_only_bundle]


def _sealed_bundle(plaintext: bytes) -> bytes:
    """A bundle for the members whose encrypted plaintext is ``plaintext`` (as seal_bundle does)."""
    w = world()
    content_key, nonce = bytes(range(32)), bytes(12)
    slot_nonce = bytes([1]) * 12
    recipients = [["members", slot_nonce + ChaCha20Poly1305(w.members_key).encrypt(
        slot_nonce, content_key, bundle_module._slot_ad("members"))]]
    ciphertext = ChaCha20Poly1305(content_key).encrypt(nonce, plaintext, bundle_module._payload_ad(recipients, bundle_module.FORMAT_VERSION))
    return BUNDLE_MAGIC + bytes([bundle_module.FORMAT_VERSION]) + encoding.encode([recipients, nonce, ciphertext])


def _bundle_payload_run(data: bytes) -> None:
    """``data`` as a bundle's signed contents: signed by the exporter, sealed for the members."""
    w = world()
    contents = open_bundle(_sealed_bundle(encoding.encode([data, w.a.sign(data)])), members=[w.members_key])
    require(encoding.encode(contents._record()) == data, "bundle contents do not re-encode to their bytes")
    _check_bundle_contents(contents)


def _bundle_payload_seeds() -> list[bytes]:
    return [encoding.encode(world().bundle_contents._record())]


def _bundle_plaintext_run(data: bytes) -> None:
    """``data`` as a bundle's decrypted plaintext (CBOR [contents, signature])."""
    _check_bundle_contents(open_bundle(_sealed_bundle(data), members=[world().members_key]))


def _bundle_plaintext_seeds() -> list[bytes]:
    w = world()
    payload = encoding.encode(w.bundle_contents._record())
    return [encoding.encode([payload, w.a.sign(payload)])]


# --- backups -------------------------------------------------------------------------------------


def _backup_run(data: bytes) -> None:
    w = world()
    sealed = parse_backup(data)
    check_typed(sealed.slots)
    contents = open_backup(sealed, w.keyring)
    _check_backup_contents(contents)


def _check_backup_contents(contents: BackupContents) -> None:
    check_typed(contents)
    verify_backup(contents, world().keyring)


def _key_slots_run(data: bytes) -> None:
    slots = KeySlots.from_bytes(data)
    check_typed(slots)
    require(slots.to_bytes() == data, "key slots do not re-encode to their bytes")
    slots.kdf.check_strength(allow_insecure_test_kdf=True)


def _sealed_backup(payload: bytes) -> bytes:
    """A backup file of the world's vault whose sealed payload is ``payload`` (as seal_backup does)."""
    w = world()
    slots = w.slots.to_bytes()
    salt, nonce = bytes(range(32)), bytes(12)
    associated_data = _PREFIX.pack(MAGIC, FORMAT_VERSION, len(slots)) + slots + salt + nonce
    key = _payload_key(w.keyring, w.slots.key_epoch, salt)
    return associated_data + ChaCha20Poly1305(key).encrypt(nonce, payload, associated_data)


def _backup_payload_run(data: bytes) -> None:
    """``data`` as a backup's payload, sealed with the vault key: the decoder and the verifier."""
    contents = open_backup(parse_backup(_sealed_backup(data)), world().keyring)
    require(contents.to_payload() == data, "a backup payload does not re-encode to its bytes")
    _check_backup_contents(contents)


# --- imported files (vaultpeer import) and the API's item.import entries ------------------------


def _import_run(parse: Callable[[str], Parsed]) -> Callable[[bytes], None]:
    def run(data: bytes) -> None:
        """A file as ``vaultpeer import`` reads it (UTF-8), parsed and planned into items."""
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise InvalidInput("not UTF-8") from None  # what transfer.decode_text does
        _plan(parse(text).entries)
    return run


def _plan(entries) -> None:
    plan = plan_import(entries, {})
    for content in plan.contents:
        content.to_plaintext()
    # the CLI prints, and the API returns, the notices and the items' titles
    json.dumps([n.to_json() for n in plan.skipped] + [c.title for c in plan.contents],
               ensure_ascii=False).encode("utf-8")


def _import_entries_run(data: bytes) -> None:
    """The API's item.import: entries as JSON objects (the line already passed parse_request)."""
    parsed = parse_request(data)
    if isinstance(parsed, Rejected) or not isinstance(parsed.params.get("entries"), list):
        return
    entries = []
    for value in parsed.params["entries"]:
        try:
            entries.append(ImportEntry.from_json(value))
        except InvalidInput:
            pass
    _plan(entries)


_BITWARDEN = {
    "encrypted": False, "folders": [{"id": "f-1", "name": "Social"}],
    "items": [
        {"id": "1", "folderId": "f-1", "type": 1, "name": "Forum", "notes": "since 2019",
         "fields": [{"name": "question", "value": "blue", "type": 0}, {"name": "code", "value": "RC-7781", "type": 1},
                    {"name": "2fa", "value": True, "type": 2}, {"name": "user again", "value": None, "type": 3}],
         "login": {"uris": [{"uri": "https://forum.example"}], "username": "alice", "password": "pw",
                   "totp": "otpauth://totp/Forum?secret=JBSWY3DP"}},
        {"id": "2", "type": 2, "name": "Wifi", "notes": "WPA2: hunter22", "secureNote": {"type": 0}},
        {"id": "3", "type": 3, "name": "Visa", "card": {"cardholderName": "A", "number": "4111111111111111"}},
        {"id": "4", "type": 4, "name": "Me", "identity": {"firstName": "Alice", "ssn": "123-45-6789"}},
        {"id": "5", "type": 5, "name": "Key", "sshKey": {"privateKey": "-----BEGIN-----", "publicKey": "ssh"}},
        {"id": "6", "type": 1, "name": "Old", "login": {"username": "x"}, "deletedDate": "2024-02-02T00:00:00Z"},
    ],
}


def _bitwarden_seeds() -> list[bytes]:
    return [json.dumps(_BITWARDEN).encode(), json.dumps(_BITWARDEN, ensure_ascii=False, indent=1).encode()]


def _csv_seeds() -> list[bytes]:
    return [b"title,username,password,url,notes\r\nMail,alice,\"p\"\"w\",https://x,\"two\nlines\"\r\n",
            "\ufeffName,Login_Username,PASSWORD,Folder,PIN\nBank,bob,s3cret,Money,1234\n,,,,\n".encode()]


def _import_entries_seeds() -> list[bytes]:
    entries = [{"title": "Mail", "fields": {"username": "alice", "password": "pw", "pin": "1"}, "source": "app:1",
                "secrets": ["pin"]}, {"title": "", "fields": {"url": "https://x"}, "source": "app:2"}]
    return [json.dumps({"jsonrpc": "2.0", "id": 1, "method": "item.import", "params": {"entries": entries}}).encode()]


# --- the local API -------------------------------------------------------------------------------


_API_ERRORS = {PARSE_ERROR, INVALID_REQUEST, INVALID_PARAMS}


def _api_run(data: bytes) -> None:
    """One request line from a local client."""
    line = data.split(b"\n", 1)[0]
    parsed = parse_request(line)
    if isinstance(parsed, Rejected):
        response = parsed.response
        require(response is None or response["error"]["code"] in _API_ERRORS, "an unexpected error code")
        if response is not None:
            json.dumps(response, ensure_ascii=False).encode("utf-8")  # what the server writes back
        return
    require(isinstance(parsed, Request), "parse_request returned something else")
    require(type(parsed.method) is str and isinstance(parsed.params, dict), "a request of the wrong shape")
    require(parsed.request_id is None or type(parsed.request_id) in (str, int), "an id of the wrong type")
    # the server echoes the id and (in error messages) may quote the method: both must be writable
    json.dumps({"id": parsed.request_id, "method": parsed.method, "params": parsed.params},
               ensure_ascii=False, allow_nan=False).encode("utf-8")


def _api_seeds() -> list[bytes]:
    requests = [{"jsonrpc": "2.0", "id": n, "method": method, "params": {}} for n, method in enumerate(METHODS)]
    requests += [
        {"jsonrpc": "2.0", "id": "abc", "method": "item.add",
         "params": {"title": "Example", "fields": {"username": "alice", "password": "p\u00e9"}, "n": [1, 2.5, None]}},
        {"jsonrpc": "2.0", "method": "lock"},
        {"jsonrpc": "2.0", "id": None, "method": "status", "params": []},
        {"jsonrpc": "2.0", "id": 7, "method": "unlock", "params": {"password": "\\u00e9 \u00e9 \U0001F600"}},
    ]
    lines = [json.dumps(r, ensure_ascii=bool(n % 2)).encode() for n, r in enumerate(requests)]
    return lines + [json.dumps(requests[-1], ensure_ascii=True).encode(), b"[1, 2]", b"{}"]


# --- the list --------------------------------------------------------------------------------------


def _world_seeds(attribute: str) -> Callable[[], list[bytes]]:
    return lambda: [getattr(world(), attribute)]


def _world_header_seeds() -> list[bytes]:
    return [world().header.to_bytes()]


def _payload_seeds_backup() -> list[bytes]:
    return [world().backup_contents.to_payload()]


TARGETS: list[Target] = [
    Target("transport.frames", _frames_run, (TransportError,), _frames_seeds, cbor_offset=None),
    Target("transport.handshake.first", _handshake_first_run, (TransportError,), _first_seeds, cbor_offset=None),
    Target("transport.handshake.link_reply", _handshake_reply_run("sync"), (TransportError,),
           lambda: [_reply_seed("sync")], cbor_offset=None),
    Target("transport.handshake.pair_reply", _handshake_reply_run("pair"), (TransportError,),
           lambda: [_reply_seed("pair")], cbor_offset=None),
    Target("transport.handshake.pair_third", _handshake_third_run, (TransportError,),
           lambda: [bytes(96), bytes(range(80))], cbor_offset=None),
    Target("transport.handshake.payload1", _payload1_run, (TransportError,), _payload_seeds(True)),
    Target("transport.handshake.payload2", _payload2_run, (TransportError,), _payload_seeds(False)),
    Target("transport.handshake.payload3", _payload3_run, (TransportError,), _payload_seeds(False)),
    Target("transport.channel.garbage", _channel_garbage_run, (TransportError,),
           lambda: [bytes(17), bytes(range(40))], cbor_offset=None),
    Target("transport.channel.plaintext", _channel_plaintext_run, (TransportError,), _channel_seeds,
           cbor_offset=None),
    Target("sync.decode_message", _decode_sync_run, (sync.RemoteProtocolError,), _sync_seeds),
    Target("sync.session.receive", _session_run, (sync.RemoteProtocolError,), _session_seeds, cbor_offset=1),
    Target("pairing.decode_message", _decode_pairing_run, (PairingError,), _pairing_seeds),
    Target("pairing.code_exchange", _exchange_run, (PairingError,), _exchange_seeds, cbor_offset=1),
    Target("pairing.session.receive", _pairing_session_run, (SessionFailed,), _pairing_session_seeds, cbor_offset=1),
    Target("discovery.instance_name", _discovery_run, (), _discovery_seeds, cbor_offset=None),
    Target("encoding.decode", _decode_cbor_run, (IntegrityError,), _cbor_seeds),
    Target("revision.from_bytes", _revision_run, (IntegrityError,), _revision_seeds),
    Target("item.from_plaintext", _content_run, (IntegrityError,), _content_seeds),
    Target("revision.sealed_content", _sealed_content_run, (IntegrityError,), _sealed_content_seeds, cbor_offset=None),
    Target("roster.from_bytes", _roster_run, (IntegrityError,), _roster_seeds),
    Target("keys.header", _header_run, (IntegrityError,), _world_header_seeds),
    Target("keys.keyring", _keyring_run, (IntegrityError,), _keyring_seeds),
    # VersionVector.from_record documents ValueError and TypeError (its callers map them)
    Target("vclock.from_record", _vclock_run, (IntegrityError, ValueError, TypeError),
           lambda: [encoding.encode(world().knowledge.to_record())]),
    Target("identity.parse_code", _device_id_run, (), _device_id_seeds, cbor_offset=None),
    Target("bundle.join_request", _join_request_run, (InvalidInput,), _world_seeds("join_request"),
           cbor_offset=len(JOIN_REQUEST_MAGIC)),
    Target("bundle.join_request.signed", _join_signed_run, (InvalidInput,), _join_body_seeds),
    Target("bundle.open", _open_bundle_run, (IntegrityError, InvalidInput), _bundle_seeds,
           cbor_offset=len(BUNDLE_MAGIC) + 1, max_size=2048),
    Target("bundle.sealed_plaintext", _bundle_plaintext_run, (IntegrityError, InvalidInput), _bundle_plaintext_seeds),
    Target("bundle.sealed_contents", _bundle_payload_run, (IntegrityError, InvalidInput), _bundle_payload_seeds),
    Target("backup.parse_and_open", _backup_run, (IntegrityError,), _world_seeds("backup"), cbor_offset=None,
           max_size=2048),
    Target("backup.key_slots", _key_slots_run, (IntegrityError,), lambda: [world().slots.to_bytes()]),
    Target("backup.sealed_payload", _backup_payload_run, (IntegrityError,), _payload_seeds_backup),
    Target("api.parse_request", _api_run, (), _api_seeds, cbor_offset=None, json=True),
    Target("interchange.bitwarden", _import_run(parse_bitwarden), (InvalidInput,), _bitwarden_seeds,
           cbor_offset=None, max_size=2048, json=True),
    Target("interchange.csv", _import_run(parse_csv), (InvalidInput,), _csv_seeds, cbor_offset=None),
    Target("interchange.api_entries", _import_entries_run, (), _import_entries_seeds, cbor_offset=None, json=True),
]

BY_NAME = {target.name: target for target in TARGETS}
assert len(BY_NAME) == len(TARGETS)
