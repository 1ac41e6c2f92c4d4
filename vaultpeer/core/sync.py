"""The sync session: messages and the state machine that polices them (pure, h11 style).

Each side holds one :class:`SyncSession`. Bytes of one message go in with ``receive``, which
returns the decoded, validated message or raises :class:`RemoteProtocolError`; the session then
moves to ERROR and says so in every later call. Messages to send are built with the ``send_*``
methods, which refuse (``LocalProtocolError``) anything the protocol does not allow in the current
state. What to send and what to store is the caller's business (see ``vaultpeer/service/replication.py``).

The exchange, the same on both sides::

    hello  ->  <- hello                    vault id, store id, knowledge vector
    records* (last)  <->  records* (last)   what the other side lacks, in causal order
    digest  <->  digest                     Merkle roots after applying everything
    if the roots differ, the initiator narrows: query -> <- nodes, level by level,
    then repair -> <- records (repair) for the differing leaves, and a second digest round
    done  <->  done

Every message is one deterministic-CBOR map; docs/protocol.md gives the field list.
"""

import dataclasses
import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import Enum

from vaultpeer.core import encoding
from vaultpeer.core.digest import HASH_SIZE, is_leaf_path, valid_path
from vaultpeer.core.errors import IntegrityError, VaultpeerError
from vaultpeer.core.keys import VaultHeader
from vaultpeer.core.revision import MAX_RECORD_SIZE, Revision, RevisionId
from vaultpeer.core.roster import MAX_ENTRIES, RosterEntry
from vaultpeer.core.vclock import VersionVector

#: 2: the state digest commits to every revision's content (its record hash), not to head ids.
#: 3: a revision's sealed content may carry its time (formats.md, "Revision"), which a version 2
#: device's strict decoder would take for junk and quarantine: the two must not exchange revisions.
#: 4: the ``removed`` message: a member tells a device it was removed from the vault.
#: 5: early records (``records`` with a ``basis``): a side that starts a session may send what the
#: peer lacked at their last session right after its hello, without waiting for the peer's; and
#: ``hello`` carries ``links``, the members the sender is connected to (who need no relay of what
#: it wrote: it pushes that to each of them itself).
#: 6: every signature is checked by libsodium's rule (docs/formats.md, "Signatures"), which refuses
#: what OpenSSL's accepted for a small-order key (any signature at all): a version 5 device could
#: keep a revision that a version 6 device refuses with its whole batch, so the two must not sync.
#: 7: early records, if taken, are their sender's last batch of the records phase (``last`` is
#: true): the receiver moves on to the digest at once, with no empty last batch a trip later (a
#: version 6 device refuses them as malformed).
PROTOCOL_VERSION = 7
MAX_MESSAGE_SIZE = 8 * 1024 * 1024
#: A records message carries at most this many revisions, and at most this many bytes of them.
MAX_BATCH_REVISIONS = 1000
MAX_BATCH_BYTES = 4 * 1024 * 1024
MAX_PATHS = 4096
MAX_REPAIR_ROUNDS = 1
#: A ``removed`` message carries 1 to this many revocations (one per member that signed one).
MAX_REMOVAL_ENTRIES = 64
#: An early records message carries at most this many revisions (a bigger backlog waits for the
#: peer's hello, which costs one round trip it can afford).
MAX_EARLY_REVISIONS = 64
#: ``hello``'s ``links`` names each member by the first 16 bytes of its device id, at most this many.
LINK_ID_SIZE = 16
MAX_HELLO_LINKS = 256


class ProtocolError(VaultpeerError):
    code = "protocol"


class RemoteProtocolError(ProtocolError):
    """The peer broke the protocol; the session is over. The message is safe to log."""


class VersionMismatch(RemoteProtocolError):
    """The peer speaks another version of the sync protocol: not an offense, an upgrade to make."""


def version_mismatch(peer_version: object) -> str:
    """What the person is told when the peer's ``hello`` has another version: which device to upgrade."""
    if isinstance(peer_version, int) and peer_version < PROTOCOL_VERSION:
        return (f"the peer runs an older vaultpeer (sync protocol version {peer_version}; this device speaks "
                f"{PROTOCOL_VERSION}): upgrade vaultpeer on it; nothing is exchanged until then")
    return (f"the peer runs a newer vaultpeer (sync protocol version {peer_version}; this device speaks "
            f"{PROTOCOL_VERSION}): upgrade vaultpeer on this device; nothing is exchanged until then")


class LocalProtocolError(ProtocolError):
    """We tried to do something the protocol does not allow now (a bug in the caller)."""


# --- messages ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hello:
    vault_id: bytes
    store_id: bytes
    knowledge: VersionVector
    #: Hashes of the sender's header and roster: the other side sends them only when they differ.
    header_hash: bytes = bytes(HASH_SIZE)
    roster_hash: bytes = bytes(HASH_SIZE)
    version: int = PROTOCOL_VERSION
    #: The members the sender has a connection to as it says hello, other than the receiver
    #: (``link_id`` of each, sorted): what it writes goes to each of them from itself.
    links: tuple[bytes, ...] = ()


def link_id(device_raw: bytes) -> bytes:
    """How ``hello``'s ``links`` names a member: the first 16 bytes of its device id."""
    return device_raw[:LINK_ID_SIZE]


def record_hash(records: list[bytes]) -> bytes:
    """The hash a hello carries for a header (one record) or a roster (its entries, sorted)."""
    return hashlib.blake2b(encoding.encode(sorted(records)), digest_size=HASH_SIZE).digest()


@dataclass(frozen=True)
class Records:
    header: VaultHeader | None
    roster: tuple[RosterEntry, ...]
    revisions: tuple[Revision, ...]
    last: bool
    repair: bool = False
    #: Early records only (protocol 5): the knowledge vector the sender believed the receiver to
    #: hold when it sent them, before it read the receiver's hello. They are every revision the
    #: sender held beyond it; the receiver takes them only if it holds at least ``basis`` (so each
    #: is causally deliverable), skipping any it already holds, and ignores them otherwise (the
    #: sender, seeing the same hello, then sends them again in the usual way). Taken, they are the
    #: sender's last batch of the records phase (protocol 7: ``last`` is true).
    basis: VersionVector | None = None


@dataclass(frozen=True)
class Digest:
    root: bytes


@dataclass(frozen=True)
class Query:
    paths: tuple[str, ...]


@dataclass(frozen=True)
class Nodes:
    #: path -> its 16 children's hashes
    nodes: tuple[tuple[str, tuple[bytes, ...]], ...]


@dataclass(frozen=True)
class Repair:
    leaves: tuple[str, ...]


@dataclass(frozen=True)
class Done:
    converged: bool


@dataclass(frozen=True)
class Error:
    code: str


@dataclass(frozen=True)
class Removed:
    """A member's notice to a device that is no longer one: the revocations of it that the member
    holds. It may come at any time on a member connection (the connection then ends); the receiver
    admits the revocations as roster entries, so a forged or foreign one changes nothing."""
    vault_id: bytes
    revocations: tuple[RosterEntry, ...]


Message = Hello | Records | Digest | Query | Nodes | Repair | Done | Error | Removed

ERROR_CODES = ("protocol", "rejected", "foreign-vault", "version", "internal")


def encode_message(message: Message) -> bytes:
    if isinstance(message, Hello):
        body = {"t": "hello", "v": message.version, "vault": message.vault_id, "store": message.store_id,
                "knows": message.knowledge.to_record(), "header": message.header_hash,
                "roster": message.roster_hash, "links": list(message.links)}
    elif isinstance(message, Records):
        body = {"t": "records", "header": message.header.to_bytes() if message.header else None,
                "roster": [e.to_record() for e in message.roster],
                "revs": [r.to_record() for r in message.revisions], "last": message.last,
                "repair": message.repair, "basis": message.basis.to_record() if message.basis is not None else None}
    elif isinstance(message, Digest):
        body = {"t": "digest", "root": message.root}
    elif isinstance(message, Query):
        body = {"t": "query", "paths": list(message.paths)}
    elif isinstance(message, Nodes):
        body = {"t": "nodes", "nodes": [[p, list(h)] for p, h in message.nodes]}
    elif isinstance(message, Repair):
        body = {"t": "repair", "leaves": list(message.leaves)}
    elif isinstance(message, Done):
        body = {"t": "done", "converged": message.converged}
    elif isinstance(message, Removed):
        body = {"t": "removed", "vault": message.vault_id, "roster": [e.to_record() for e in message.revocations]}
    else:
        body = {"t": "error", "code": message.code}
    return encoding.encode(body)


def removal_notice(vault_id: bytes, revocations: list[RosterEntry]) -> bytes:
    """The ``removed`` message to a device whose revocations these are (the newest 64 at most)."""
    newest = sorted(revocations, key=lambda e: e.version, reverse=True)[:MAX_REMOVAL_ENTRIES]
    return encode_message(Removed(vault_id, tuple(newest)))


def decode_message(data: bytes) -> Message:
    """Decode and validate one message; RemoteProtocolError on anything malformed or oversize."""
    try:
        body = encoding.decode(data, max_size=MAX_MESSAGE_SIZE)
        return _parse(body)
    except (IntegrityError, KeyError, TypeError, ValueError):
        raise RemoteProtocolError("malformed message") from None


def _exact_keys(body: dict, *keys: str) -> None:
    if set(body) != {"t", *keys}:
        raise ValueError("unexpected fields")


def _parse(body: object) -> Message:
    if not isinstance(body, dict):
        raise ValueError("a message is a map")
    kind = body.get("t")
    if kind == "hello":
        if type(body.get("v")) is int and body["v"] != PROTOCOL_VERSION:
            # another version's hello may have other fields: say which version, not "malformed"
            raise VersionMismatch(version_mismatch(body["v"]))
        _exact_keys(body, "v", "vault", "store", "knows", "header", "roster", "links")
        links = body["links"]
        if not (type(body["v"]) is int and isinstance(body["vault"], bytes) and len(body["vault"]) == 16
                and isinstance(body["store"], bytes) and len(body["store"]) == 16
                and all(isinstance(body[k], bytes) and len(body[k]) == HASH_SIZE for k in ("header", "roster"))
                and isinstance(links, list) and len(links) <= MAX_HELLO_LINKS
                and all(isinstance(n, bytes) and len(n) == LINK_ID_SIZE for n in links)
                and all(a < b for a, b in zip(links, links[1:]))):
            raise ValueError("bad hello")
        return Hello(body["vault"], body["store"], VersionVector.from_record(body["knows"]), body["header"],
                     body["roster"], body["v"], tuple(links))
    if kind == "records":
        _exact_keys(body, "header", "roster", "revs", "last", "repair", "basis")
        revs, roster = body["revs"], body["roster"]
        if not (isinstance(revs, list) and len(revs) <= MAX_BATCH_REVISIONS and isinstance(roster, list)
                and len(roster) <= MAX_ENTRIES and isinstance(body["last"], bool)
                and isinstance(body["repair"], bool)):
            raise ValueError("bad records")
        header = body["header"]
        if header is not None and not isinstance(header, bytes):
            raise ValueError("bad header")
        basis = VersionVector.from_record(body["basis"]) if body["basis"] is not None else None
        if basis is not None and (header is not None or roster or not body["last"] or body["repair"]
                                  or len(revs) > MAX_EARLY_REVISIONS):
            raise ValueError("early records carry revisions only, at most 64, and are always last")
        revisions = tuple(Revision.from_record(r) for r in revs)
        if sum(len(r.ciphertext) for r in revisions) > MAX_BATCH_BYTES + MAX_RECORD_SIZE:
            raise ValueError("batch too large")
        return Records(
            header=VaultHeader.from_bytes(header) if header is not None else None,
            roster=tuple(RosterEntry.from_record(e) for e in roster),
            revisions=revisions,
            last=body["last"],
            repair=body["repair"],
            basis=basis,
        )
    if kind == "digest":
        _exact_keys(body, "root")
        if not isinstance(body["root"], bytes) or len(body["root"]) != HASH_SIZE:
            raise ValueError("bad digest")
        return Digest(body["root"])
    if kind == "query":
        _exact_keys(body, "paths")
        paths = body["paths"]
        if not (isinstance(paths, list) and 0 < len(paths) <= MAX_PATHS
                and all(valid_path(p) and not is_leaf_path(p) for p in paths)):
            raise ValueError("bad query")
        return Query(tuple(paths))
    if kind == "nodes":
        _exact_keys(body, "nodes")
        nodes = body["nodes"]
        if not isinstance(nodes, list) or len(nodes) > MAX_PATHS:
            raise ValueError("bad nodes")
        parsed = []
        for path, hashes in nodes:
            if not (valid_path(path) and not is_leaf_path(path) and isinstance(hashes, list) and len(hashes) == 16
                    and all(isinstance(h, bytes) and len(h) == HASH_SIZE for h in hashes)):
                raise ValueError("bad node")
            parsed.append((path, tuple(hashes)))
        return Nodes(tuple(parsed))
    if kind == "repair":
        _exact_keys(body, "leaves")
        leaves = body["leaves"]
        if not (isinstance(leaves, list) and len(leaves) <= MAX_PATHS
                and all(valid_path(p) and is_leaf_path(p) for p in leaves)):
            raise ValueError("bad repair")
        return Repair(tuple(leaves))
    if kind == "done":
        _exact_keys(body, "converged")
        if not isinstance(body["converged"], bool):
            raise ValueError("bad done")
        return Done(body["converged"])
    if kind == "removed":
        _exact_keys(body, "vault", "roster")
        entries = body["roster"]
        if not (isinstance(body["vault"], bytes) and len(body["vault"]) == 16 and isinstance(entries, list)
                and 0 < len(entries) <= MAX_REMOVAL_ENTRIES):
            raise ValueError("bad removed")
        revocations = tuple(RosterEntry.from_record(e) for e in entries)
        if not all(e.revoked for e in revocations):
            raise ValueError("a removed message carries revocations only")
        return Removed(body["vault"], revocations)
    if kind == "error":
        _exact_keys(body, "code")
        if body["code"] not in ERROR_CODES:
            raise ValueError("bad error code")
        return Error(body["code"])
    raise ValueError("unknown message type")


# --- the state machine ---------------------------------------------------------------------------


class Phase(Enum):
    HELLO = "hello"  # waiting for the peer's hello
    RECORDS = "records"  # exchanging what the other side lacks
    DIGEST = "digest"  # both sides sent and received everything; comparing roots
    NARROWING = "narrowing"  # roots differ: finding the differing leaves
    REPAIR = "repair"  # exchanging the differing leaves' revisions
    DONE = "done"
    ERROR = "error"
    REMOVED = "removed"  # the peer said this device is no longer a member: the connection ends


@dataclass
class _Side:
    sent_last: bool = False
    received_last: bool = False
    digest_sent: bool = False
    digest_received: bytes | None = None
    done_sent: bool = False
    done_received: bool = False


@dataclass
class SyncSession:
    vault_id: bytes
    store_id: bytes
    knowledge: VersionVector
    #: The dialing side drives narrowing and repair.
    initiator: bool
    peer_hello: Hello | None = None
    phase: Phase = Phase.HELLO
    repair_rounds: int = 0
    error: str | None = None
    _state: _Side = field(default_factory=_Side)
    #: The revisions received in this round, as author -> seqs (compact: 100,000 of them in a
    #: new device's first session).
    _seen: dict[bytes, set[int]] = field(default_factory=dict)
    _repair_sent: bool = False
    _hello_sent: bool = False
    #: What this side sent early (the basis, and the ids), if it did.
    _early_basis: VersionVector | None = None
    _early_ids: frozenset[RevisionId] = frozenset()
    #: Whether the next message may be the peer's early records (only the one right after its hello).
    _early_allowed: bool = False

    # --- sending ---

    def hello(self, header_hash: bytes = bytes(HASH_SIZE), roster_hash: bytes = bytes(HASH_SIZE),
              links: list[bytes] | tuple[bytes, ...] = ()) -> bytes:
        """Our hello; ``links``: the ``link_id`` of each member we are connected to, but the peer."""
        links = tuple(sorted(set(links)))
        if len(links) > MAX_HELLO_LINKS or any(len(n) != LINK_ID_SIZE for n in links):
            raise LocalProtocolError("bad links")
        self._hello_sent = True
        return encode_message(Hello(self.vault_id, self.store_id, self.knowledge, header_hash, roster_hash,
                                    links=links))

    def early_records(self, basis: VersionVector, revisions: list[Revision]) -> bytes:
        """The records sent right after this side's hello, before the peer's hello is read: every
        revision held beyond ``basis`` (what the peer was last known to hold), in causal order."""
        if self.phase is not Phase.HELLO or not self._hello_sent or self._early_basis is not None:
            raise LocalProtocolError("early records go right after this side's hello, once")
        if not revisions or len(revisions) > MAX_EARLY_REVISIONS:
            raise LocalProtocolError("early records carry 1 to 64 revisions")
        self._early_basis, self._early_ids = basis, frozenset(r.revision_id for r in revisions)
        return encode_message(Records(None, (), tuple(revisions), True, False, basis))

    @property
    def early_taken(self) -> bool:
        """Whether the peer takes what this side sent early (it holds at least their basis, as its
        hello says): then they are not sent again, and they were this side's last batch (protocol
        7): whatever else the peer lacks waits for the next session."""
        return (self._early_basis is not None and self.peer_hello is not None
                and self._early_basis <= self.peer_hello.knowledge)

    def not_sent_early(self, revisions: Iterable[Revision]) -> Iterator[Revision]:
        """``revisions`` without those the peer took early."""
        if not self.early_taken:
            yield from revisions
            return
        for revision in revisions:
            if revision.revision_id not in self._early_ids:
                yield revision

    def records(self, header: VaultHeader | None, roster: list[RosterEntry], revisions: list[Revision],
                last: bool, repair: bool = False) -> bytes:
        self._require(Phase.REPAIR if repair else Phase.RECORDS)
        if not repair and self._state.sent_last:
            raise LocalProtocolError("the last batch was sent already (early records the peer took)")
        if len(revisions) > MAX_BATCH_REVISIONS:
            raise LocalProtocolError("batch too large")
        if repair:
            self._repair_sent = True
        elif last:
            self._state.sent_last = True
            self._maybe_digest_phase()
        return encode_message(Records(header, tuple(roster), tuple(revisions), last, repair))

    def digest(self, root: bytes) -> bytes:
        self._require(Phase.DIGEST)
        self._state.digest_sent = True
        return encode_message(Digest(root))

    def query(self, paths: list[str]) -> bytes:
        self._require(Phase.NARROWING)
        if not self.initiator:
            raise LocalProtocolError("only the initiator narrows")
        return encode_message(Query(tuple(paths)))

    def nodes(self, nodes: list[tuple[str, list[bytes]]]) -> bytes:
        self._require(Phase.NARROWING)
        return encode_message(Nodes(tuple((p, tuple(h)) for p, h in nodes)))

    def repair(self, leaves: list[str]) -> bytes:
        self._require(Phase.NARROWING)
        if not self.initiator:
            raise LocalProtocolError("only the initiator asks for repairs")
        self.phase = Phase.REPAIR
        self.repair_rounds += 1
        self._seen = {}
        return encode_message(Repair(tuple(leaves)))

    def done(self, converged: bool) -> bytes:
        self._state.done_sent = True
        if self._state.done_received:
            self.phase = Phase.DONE
        return encode_message(Done(converged))

    def fail(self, code: str) -> bytes:
        """Move to ERROR and build the one error message the peer gets (codes, never details)."""
        self.phase, self.error = Phase.ERROR, code
        return encode_message(Error(code if code in ERROR_CODES else "protocol"))

    # --- receiving ---

    def receive(self, data: bytes, decoded: Message | None = None) -> Message:
        """``decoded``: ``decode_message(data)``, if the caller did that already (elsewhere)."""
        if self.phase in (Phase.ERROR, Phase.REMOVED):
            raise RemoteProtocolError(f"session already ended ({self.error or self.phase.value})")
        early_allowed = self._early_allowed
        try:
            message = decoded if decoded is not None else decode_message(data)
            self._early_allowed = False  # only the message right after the hello may be early records
            if isinstance(message, Records) and message.basis is not None:
                return self._accept_early(message, early_allowed)
            self._accept(message)
        except RemoteProtocolError as exc:
            # a refused message changes nothing but the phase (the session is over anyway)
            self._early_allowed = early_allowed
            self.phase, self.error = Phase.ERROR, str(exc)
            raise
        return message

    def _accept_early(self, message: Records, allowed: bool) -> Records:
        """Early records (protocol 5): only as the message right after the peer's hello. Returned
        with the revisions to store: none if this side does not hold their basis (the peer sends
        them again, having read the same hello), else those it does not hold yet."""
        if not allowed or self.phase is not Phase.RECORDS:
            raise RemoteProtocolError("early records anywhere but right after the hello")
        if not message.basis <= self.knowledge:
            return dataclasses.replace(message, revisions=(), last=False)  # ignored: not their last either
        new = tuple(r for r in message.revisions if r.revision_id.seq > self.knowledge.get(r.author))
        self._check_unique(new)
        self._state.received_last = True  # taken: the sender's last batch (protocol 7)
        self._maybe_digest_phase()
        return dataclasses.replace(message, revisions=new)

    def _accept(self, message: Message) -> None:
        if isinstance(message, Error):
            raise RemoteProtocolError(f"peer reported an error: {message.code}")
        if isinstance(message, Removed):  # in any phase: the session and the connection end
            if message.vault_id != self.vault_id:
                raise RemoteProtocolError("peer belongs to another vault")
            self.phase = Phase.REMOVED
            return
        if isinstance(message, Hello):
            if self.phase is not Phase.HELLO:
                raise RemoteProtocolError("unexpected hello")
            if message.version != PROTOCOL_VERSION:
                raise VersionMismatch(version_mismatch(message.version))
            if message.vault_id != self.vault_id:
                raise RemoteProtocolError("peer belongs to another vault")
            self.peer_hello = message
            self.phase = Phase.RECORDS
            self._early_allowed = True
            if self.early_taken:  # they were our last batch: nothing more goes in this phase
                self._state.sent_last = True
                self._maybe_digest_phase()
            return
        if isinstance(message, Records):
            if message.repair:
                self._expect(Phase.REPAIR)
                if self.initiator and not self._repair_sent:
                    raise RemoteProtocolError("unrequested repair")
                self._check_unique(message.revisions)
                if self.initiator and message.last:
                    self._after_repair()
                return
            self._expect(Phase.RECORDS)
            if self._state.received_last:
                raise RemoteProtocolError("records after the last batch")
            for revision in message.revisions:
                # the peer was told what we hold: anything at or below that is a replay
                if revision.revision_id.seq <= self.knowledge.get(revision.author):
                    raise RemoteProtocolError("peer resent a revision this side already holds")
            self._check_unique(message.revisions)
            if message.last:
                self._state.received_last = True
                self._maybe_digest_phase()
            return
        if isinstance(message, Digest):
            if self.phase not in (Phase.DIGEST, Phase.RECORDS) or self._state.digest_received is not None:
                raise RemoteProtocolError("unexpected digest")
            if self.phase is Phase.RECORDS and not self._state.received_last:
                raise RemoteProtocolError("digest before the last batch")
            self._state.digest_received = message.root
            return
        if isinstance(message, Query):
            if self.initiator:
                raise RemoteProtocolError("only the initiator narrows")
            self._expect(Phase.NARROWING)
            return
        if isinstance(message, Nodes):
            if not self.initiator:
                raise RemoteProtocolError("unexpected nodes")
            self._expect(Phase.NARROWING)
            return
        if isinstance(message, Repair):
            if self.initiator:
                raise RemoteProtocolError("only the initiator asks for repairs")
            self._expect(Phase.NARROWING)
            self.phase = Phase.REPAIR
            self.repair_rounds += 1
            self._seen = {}
            return
        if isinstance(message, Done):
            if self.phase not in (Phase.DIGEST, Phase.NARROWING, Phase.REPAIR):
                raise RemoteProtocolError("unexpected done")
            self._state.done_received = True
            if self._state.done_sent:
                self.phase = Phase.DONE
            return

    # --- transitions the caller drives ---

    def compare_digests(self, local_root: bytes) -> bool | None:
        """After both roots are exchanged: True if equal; False moves to NARROWING. None: not yet."""
        if self._state.digest_received is None or not self._state.digest_sent:
            return None
        if self._state.digest_received == local_root:
            return True
        if self.repair_rounds >= MAX_REPAIR_ROUNDS:
            return False
        self.phase = Phase.NARROWING
        return False

    def repaired(self) -> None:
        """The responder has answered a repair: start the second digest round."""
        self._after_repair()

    def _after_repair(self) -> None:
        self.phase = Phase.DIGEST
        self._state.digest_sent = False
        self._state.digest_received = None
        self._repair_sent = False

    def _maybe_digest_phase(self) -> None:
        if self._state.sent_last and self._state.received_last and self.phase is Phase.RECORDS:
            self.phase = Phase.DIGEST

    def _check_unique(self, revisions: tuple[Revision, ...]) -> None:
        # check the whole batch before recording any of it: a refused message changes nothing
        ids = [revision.revision_id for revision in revisions]
        if len(set(ids)) != len(ids) or any(i.seq in self._seen.get(i.author.raw, ()) for i in ids):
            raise RemoteProtocolError("peer sent the same revision twice")
        for revision_id in ids:
            seqs = self._seen.get(revision_id.author.raw)
            if seqs is None:
                seqs = self._seen[revision_id.author.raw] = set()
            seqs.add(revision_id.seq)

    def _require(self, phase: Phase) -> None:
        if self.phase is not phase:
            raise LocalProtocolError(f"cannot do that in phase {self.phase.value}")

    def _expect(self, phase: Phase) -> None:
        if self.phase is not phase:
            raise RemoteProtocolError(f"unexpected message in phase {self.phase.value}")

    @property
    def digest_sent(self) -> bool:
        return self._state.digest_sent

    @property
    def done_sent(self) -> bool:
        return self._state.done_sent

    @property
    def peer_knowledge(self) -> VersionVector:
        if self.peer_hello is None:
            raise LocalProtocolError("no hello from the peer yet")
        return self.peer_hello.knowledge

    @property
    def peer_store_id(self) -> bytes | None:
        return self.peer_hello.store_id if self.peer_hello else None

