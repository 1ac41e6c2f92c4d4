"""One side of a sync session, bound to a vault: bytes of a message in, messages to send out.

``SyncPeer`` does no I/O of its own (the transport belongs to its caller: the daemon's Noise
stream, or a test that passes messages between two peers), but it does read and write the vault,
which is why it lives outside the pure core. It decides what to send from the peer's knowledge
vector, applies each received batch all-or-nothing, compares state digests, narrows and repairs a
difference, and records what happened in ``notes`` for the caller to log.
"""

import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from vaultpeer.core.digest import StateDigest, is_leaf_path
from vaultpeer.core.errors import IntegrityError, InvalidInput
from vaultpeer.core.identity import DeviceId
from vaultpeer.core.revision import Revision, RevisionId
from vaultpeer.core.roster import Roster
from vaultpeer.core.vclock import VersionVector
from vaultpeer.service.parallel_verify import verified_ahead
from vaultpeer.core.sync import (
    MAX_BATCH_BYTES,
    MAX_EARLY_REVISIONS,
    MAX_BATCH_REVISIONS,
    Digest,
    Done,
    Error,
    Hello,
    Nodes,
    Phase,
    Query,
    Records,
    RemoteProtocolError,
    Removed,
    Repair,
    SyncSession,
    VersionMismatch,
    Message,
    decode_message,
    link_id,
)
from vaultpeer.service.vault import Removal, Vault


#: A message at least this long may be a batch worth preparing on another thread (``prepare``).
PREPARE_FROM_BYTES = 16 * 1024


@dataclass(frozen=True)
class Prepared:
    """A message decoded, and its revisions' signatures checked, ahead of the session receiving it."""

    data: bytes
    message: Message
    #: ``parallel_verify.verified_ahead``'s answer.
    verified: dict


def prepare(data: bytes, vault_id: bytes, roster: Roster) -> "Prepared | bytes":
    """Decode a message and check its revisions' signatures under ``roster``'s keys: pure work
    (no vault, no database), for a thread while the session stores the batch before. What does not
    decode or verify is returned as it came: receiving it says what is wrong."""
    try:
        message = decode_message(data)
    except RemoteProtocolError:
        return data
    if not isinstance(message, Records):
        return Prepared(data, message, {})
    revisions = [r for r in message.revisions if not roster.prunes(r.revision_id)]
    return Prepared(data, message, verified_ahead(revisions, vault_id, [roster.known_keys(r.author) for r in revisions]))


#: The first batch of a session holds at most this many revisions: the peer checks and stores it
#: while the full batches behind it are made and travel (a new device's first sync gets going
#: about 0.1 s sooner than with a first batch of 1,000).
FIRST_BATCH_REVISIONS = 128

#: How many items a session's stats name one by one (``SyncStats.items_touched``).
MAX_TOUCHED_ITEMS = 4096


@dataclass
class SyncStats:
    messages_sent: int = 0
    messages_received: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    revisions_sent: int = 0
    revisions_received: int = 0
    revisions_new: int = 0
    #: How many revisions the peer's hello says it holds that we lack (for progress bars).
    revisions_expected: int = 0
    #: The items new revisions came for (up to ``MAX_TOUCHED_ITEMS``; None beyond: many, look
    #: at every item, as after a new device's first sync).
    items_touched: set | None = field(default_factory=set)
    #: The roster or the header changed: worth passing on to other members too.
    records_changed: bool = False


class SyncPeer:
    """``lazy``: the records the peer lacks are not returned by ``receive`` but produced one
    message at a time by ``next_pending`` (a link pulls the next batch when its stream has taken
    the last: a session's batches are never all in memory). Otherwise ``receive`` returns them."""

    def __init__(self, vault: Vault, *, initiator: bool, peer: DeviceId | None = None, lazy: bool = False,
                 on_stored: Callable[[set], None] | None = None):
        self.vault = vault
        self.lazy = lazy
        #: What is still to send after the hello's batches, produced as it is pulled (``lazy``).
        self._pending: Iterator[bytes] | None = None
        #: Called with the ids of the items a received batch changed, as soon as it is committed
        #: (before this side's answer is built: the state digest can wait, the apps need not).
        self.on_stored = on_stored
        self.peer = peer
        self.session = SyncSession(
            vault_id=vault.vault_id,
            store_id=vault.intake.store_id,
            knowledge=vault.knowledge(),
            initiator=initiator,
        )
        self.stats = SyncStats()
        #: Human-readable notes for the log: rebuilt peer stores, digest repairs, rejections.
        self.notes: list[str] = []
        self.converged: bool | None = None
        self._digest: StateDigest | None = None
        #: The leaves (id prefixes) being repaired, from our Nodes comparison or the peer's Repair.
        self._repair_leaves: list[bytes] = []
        #: Signatures of the message being received checked ahead (``prepare``), if any.
        self._verified: dict | None = None
        #: The items that the last message received changed (new revisions stored), if any.
        self.just_applied: set = set()
        #: The ids of the revisions the last message received stored (new here), if any.
        self.just_received: tuple[RevisionId, ...] = ()
        #: What the peer is known to hold: its hello's knowledge, raised to ours once the state
        #: digests match (None before its hello).
        self.peer_holds: VersionVector | None = None
        #: The session failed because of what the peer sent (not because it reported an error).
        self.peer_at_fault = False
        #: The peer told this device it was removed from the vault (a ``removed`` message), and
        #: the revocation counts here: the connection ends, and no member connection is made again.
        self.removal: Removal | None = None
        #: The peer took this side's early records as its last batch but lacks more than they held
        #: (``_on_hello``): this session ends unconverged, and another follows it at once.
        self.more_to_send = False
        #: Whether this side's records phase carries anything (revisions, its header or roster):
        #: known from the peer's hello on (``sends_changes``).
        self._batches_carry: bool | None = None

    @property
    def finished(self) -> bool:
        return self.session.phase in (Phase.DONE, Phase.ERROR, Phase.REMOVED)

    @property
    def failed(self) -> bool:
        """The session ended without converging: an error, or a ``removed`` notice."""
        return self.session.phase in (Phase.ERROR, Phase.REMOVED)

    def _hashes(self) -> tuple[bytes, bytes]:
        return self.vault.sync_hashes()

    def start(self, links: Iterable[DeviceId] = (), early: tuple[bytes, bytes] | None = None) -> list[bytes]:
        """This side's hello. ``links``: the members we are connected to now (the peer left out),
        which the peer need not relay what we wrote to (``vaultpeer.io.daemon.needs_relay``).
        When ``early`` gives the header and roster hashes the peer's last hello announced, the
        early records follow (protocol 5): what the peer lacked at the end of their last session,
        sent at once rather than after a round trip. Only if both hashes are still ours (so the
        peer knows every author of them) and the backlog is small."""
        named = {link_id(d.raw) for d in links if d != self.peer}
        messages = [self.session.hello(*self._hashes(), links=sorted(named))]
        if early is not None and self.peer is not None and early == self._hashes():
            basis = self.vault.intake.peer_knowledge(self.peer)
            if basis is not None:
                revisions = list(itertools.islice(self.vault.revisions_missing_from(basis), MAX_EARLY_REVISIONS + 1))
                if 0 < len(revisions) <= MAX_EARLY_REVISIONS:
                    messages.append(self.session.early_records(basis, revisions))
                    self.stats.revisions_sent += len(revisions)
        return self._out(messages)

    @property
    def peer_links(self) -> frozenset[bytes]:
        """What the peer's hello said it is connected to (``link_id``s; empty before its hello)."""
        hello = self.session.peer_hello
        return frozenset(hello.links) if hello is not None else frozenset()

    def receive(self, data: "bytes | Prepared") -> list[bytes]:
        """Handle one message from the peer (its bytes, or ``prepare``'s answer for them); returns
        the messages to send back (maybe none)."""
        decoded, self._verified = None, None
        if isinstance(data, Prepared):
            data, decoded, self._verified = data.data, data.message, data.verified
        self.stats.messages_received += 1
        self.stats.bytes_received += len(data)
        self.just_applied = set()
        self.just_received = ()
        try:
            message = self.session.receive(data, decoded)
        except RemoteProtocolError as exc:
            self.notes.append(f"sync aborted: {exc}")
            if "peer reported an error" in str(exc):
                return []
            if isinstance(exc, VersionMismatch):
                return self._out([self.session.fail("version")])
            self.peer_at_fault = True
            self.vault.audit_rejection("sync_protocol", device_id=self.peer)
            return self._out([self.session.fail("protocol")])
        handler = {
            Hello: self._on_hello,
            Records: self._on_records,
            Digest: lambda m: self._maybe_compare(),
            Query: self._on_query,
            Nodes: self._on_nodes,
            Repair: self._on_repair,
            Done: self._on_done,
            Error: lambda m: [],
            Removed: self._on_removed,
        }[type(message)]
        return self._out(handler(message))

    def _out(self, messages: list[bytes]) -> list[bytes]:
        self.stats.messages_sent += len(messages)
        self.stats.bytes_sent += sum(len(m) for m in messages)
        return messages

    # --- the records phase --------------------------------------------------------------------

    def _on_hello(self, hello: Hello) -> list[bytes]:
        if self.peer is not None:
            known = self.vault.intake.remember_peer_store(self.peer, hello.store_id)
            if known is not None and known != hello.store_id:
                self.notes.append(f"peer {self.peer.short} rebuilt its store: sending it everything it lacks")
            self.vault.intake.raise_peer_knowledge(self.peer, hello.knowledge)
        self.peer_holds = hello.knowledge
        ours = self.vault.knowledge()
        self.stats.revisions_expected = sum(max(0, count - ours.get(author))
                                            for author, count in hello.knowledge.items())
        header_hash, roster_hash = self._hashes()
        revisions = iter(self.session.not_sent_early(self.vault.revisions_missing_from(hello.knowledge)))
        first = next(revisions, None)
        header, roster = header_hash != hello.header_hash, roster_hash != hello.roster_hash
        carry = first is not None or header or roster
        if self.session.early_taken:
            # the early records were this side's last batch (protocol 7); whatever else the peer
            # lacks (a revision made since they went, our header or roster if its hello shows
            # others) goes in a session right after this one, which this one ends unconverged for
            self.more_to_send, self._batches_carry = carry, False
            batches: Iterator[bytes] = iter(())
        else:
            self._batches_carry = carry
            if first is not None:
                revisions = itertools.chain([first], revisions)
            batches = self._batches(revisions, repair=False, header=header, roster=roster)
        # the digest follows the last batch: whenever that is made, the state is what it says
        out = itertools.chain(batches, _later(self._maybe_digest))
        if not self.lazy:
            return list(out)
        self._pending = out
        return []

    @property
    def sends_changes(self) -> bool:
        """Whether this side sends the peer anything new in this session (early records, or
        revisions, its header or roster in its batches); True until the peer's hello tells."""
        return self.stats.revisions_sent > 0 or self._batches_carry is not False

    @property
    def has_pending(self) -> bool:
        """Messages are waiting to be produced by ``next_pending`` (a lazy session's batches)."""
        return self._pending is not None and not self.failed

    def next_pending(self) -> bytes | None:
        """The next message of a lazy session's batches (and the digest after them), made now;
        None when there is none (any more, or the session failed: nothing more is sent)."""
        if self._pending is None or self.failed:
            self._pending = None
            return None
        message = next(self._pending, None)
        if message is None:
            self._pending = None
            return None
        return self._out([message])[0]

    def _batches(self, revisions: Iterable[Revision], *, repair: bool, header: bool = True,
                 roster: bool = True) -> Iterator[bytes]:
        """Records messages for ``revisions``, made as they are asked for; the first also carries
        the header and roster if asked."""
        header = self.vault.header if header else None
        roster = self.vault.outgoing_roster() if roster else []
        for chunk, last in _chunks(revisions):
            message = self.session.records(header, roster, chunk, last=last, repair=repair)
            self.stats.revisions_sent += len(chunk)
            header, roster = None, []
            yield message

    def _on_records(self, records: Records) -> list[bytes]:
        self.stats.revisions_received += len(records.revisions)
        if records.basis is not None and not records.revisions:
            # early records this side holds already (taken: the digest may follow now), or cannot
            # take (ignored: the sender sends them again after reading our hello)
            return self._maybe_digest()
        try:
            received = self.vault.receive_records(records.header, records.roster, records.revisions,
                                                  self._verified)
        except IntegrityError:
            self.notes.append("sync aborted: the peer sent a record that failed verification; nothing of it was stored")
            self.peer_at_fault = True
            self.vault.audit_rejection("sync_rejected", device_id=self.peer)
            return [self.session.fail("rejected")]
        self.stats.revisions_new += len(received.revisions)
        if received.equivocations:
            self.notes.append(f"{received.equivocations} revision(s) contradict ones held under the same id "
                              "(their author equivocated): the first is kept, both are in the audit log")
        self.stats.records_changed |= received.roster_changed or received.header_replaced
        if self.stats.items_touched is not None:
            self.stats.items_touched |= {r.item_id for r in received.revisions}
            if len(self.stats.items_touched) > MAX_TOUCHED_ITEMS:
                self.stats.items_touched = None
        self.just_applied = {r.item_id for r in received.revisions}
        self.just_received = tuple(r.revision_id for r in received.revisions)
        if received.revisions or self.stats.records_changed:
            self._digest = None  # else nothing changed here (an empty last batch): the digest stands
        if self.just_applied and self.on_stored is not None:
            self.on_stored(self.just_applied)
        if received.header_replaced:
            self.notes.append("received a newer vault header (a password change or key rotation)")
        if records.repair:
            if self.session.initiator:
                return self._maybe_digest()
            if records.last:  # a repair's few leaves: made at once
                out = list(self._batches(self.vault.intake.revisions_in_leaves(self._repair_leaves), repair=True))
                self.session.repaired()
                return out + self._maybe_digest()
            return []
        return self._digest_step()

    def _digest_step(self) -> list[bytes]:
        """The digest step after a received batch, if it is this side's turn: made at once, or in a
        ``lazy`` session when the link's writer asks for it (``next_pending``), so that the apps
        told of what the batch stored go first (and a link holding back its session's tail,
        ``SETTLE_DELAY``, makes it only then). Until it is made, a digest received is kept
        unanswered: the comparison follows ours."""
        if self.lazy and self._pending is None and not self.failed:
            self._pending = _later(self._maybe_digest)
            return []
        return self._maybe_digest()

    def _on_removed(self, notice: Removed) -> list[bytes]:
        """The peer says this device was removed from the vault. Its revocations are admitted like
        any roster entry (nothing is stored unless all are revocations of this device and none is a
        forgery); the session ends either way, and nothing is sent back."""
        try:
            self.removal = self.vault.intake.receive_removal(notice.revocations)
        except (IntegrityError, InvalidInput):
            self.notes.append("sync aborted: the peer sent a removal notice that failed verification; "
                              "nothing of it was stored")
            self.peer_at_fault = True
            self.vault.audit_rejection("sync_rejected", device_id=self.peer)
            return []
        self.stats.records_changed = self.removal is not None
        if self.removal is None:
            self.notes.append("the peer says this device was removed from the vault, by a device this one "
                              "does not know: nothing changed here")
        else:
            self.notes.append(f"this device was removed from the vault by {self.removal.by_name} "
                              f"({self.removal.by.short}): it no longer syncs")
        return []

    # --- the digest phase ---------------------------------------------------------------------

    def _local_digest(self) -> StateDigest:
        if self._digest is None:
            self._digest = self.vault.state_digest()
        return self._digest

    def _maybe_digest(self) -> list[bytes]:
        if self.session.phase is not Phase.DIGEST or self.session.digest_sent or self.session.done_sent:
            return []
        if self.more_to_send:
            # the peer cannot hold what this side holds (it lacks more than the early records
            # carried): no digest could match, and narrowing would only find that out slowly. Both
            # sides are past their last batch, so `done` is in turn; the next session sends the rest.
            self.converged = False
            return [self.session.done(False)]
        return [self.session.digest(self._local_digest().root)] + self._maybe_compare()

    def _maybe_compare(self) -> list[bytes]:
        if self.session.phase is Phase.RECORDS:
            return []
        result = self.session.compare_digests(self._local_digest().root)
        if result is None:
            return []
        if result:
            self.converged = True
            ours = self.vault.knowledge()
            self.peer_holds = ours if self.peer_holds is None else self.peer_holds.merged(ours)
            if self.peer is not None:  # same state on both sides: the peer holds all we hold
                self.vault.intake.raise_peer_knowledge(self.peer, ours)
            return [self.session.done(True)]
        if self.session.phase is Phase.NARROWING:
            self.notes.append("state digests differ after sync: narrowing down the difference")
            return [self.session.query([""])] if self.session.initiator else []
        self.converged = False
        self.notes.append("state digests still differ after a repair: the difference is logged, not hidden")
        return [self.session.done(False)]

    def _on_query(self, query: Query) -> list[bytes]:
        digest = self._local_digest()
        return [self.session.nodes([(path, digest.children(path)) for path in query.paths])]

    def _on_nodes(self, nodes: Nodes) -> list[bytes]:
        digest = self._local_digest()
        differing = [child for path, hashes in nodes.nodes for child in digest.differing_children(path, list(hashes))]
        if not differing:
            self.converged = False
            self.notes.append("state digests differ but no differing node was found")
            return [self.session.done(False)]
        if not is_leaf_path(differing[0]):
            return [self.session.query(differing)]
        self.notes.append(f"repairing {len(differing)} differing part(s) of the vault")
        self._repair_leaves = [bytes.fromhex(leaf) for leaf in differing]
        request = self.session.repair(differing)
        return [request, *self._batches(self.vault.intake.revisions_in_leaves(self._repair_leaves), repair=True)]

    def _on_repair(self, repair: Repair) -> list[bytes]:
        self._repair_leaves = [bytes.fromhex(leaf) for leaf in repair.leaves]
        return []

    def _on_done(self, done: Done) -> list[bytes]:
        if self.session.phase is Phase.DONE:
            return []
        if self.converged is None:
            self.converged = done.converged
        return [self.session.done(bool(self.converged))]


def _later(make: Callable[[], list[bytes]]) -> Iterator[bytes]:
    """The messages ``make`` returns, made when the first is asked for (after what comes before)."""
    yield from make()


def _chunks(revisions: Iterable[Revision]) -> Iterator[tuple[list[Revision], bool]]:
    """Batches within the message limits, each flagged with whether it is the last: a batch goes
    as soon as one more revision is known to follow it. The first holds at most
    ``FIRST_BATCH_REVISIONS``."""
    chunk: list[Revision] = []
    size, limit = 0, FIRST_BATCH_REVISIONS
    for revision in revisions:
        if chunk and (len(chunk) >= limit or size + len(revision.ciphertext) > MAX_BATCH_BYTES):
            yield chunk, False  # `revision` follows it
            chunk, size, limit = [], 0, MAX_BATCH_REVISIONS
        chunk.append(revision)
        size += len(revision.ciphertext)
    yield chunk, True
