"""The SQLite repository: the only module in vaultpeer that speaks SQL.

One database per home, in WAL mode with ``synchronous=FULL``; every change is one transaction.
What is readable in it by design: ids, counters, flags, sizes, public keys and signatures. Item
titles, field names and values only ever exist here inside revision ciphertexts.
"""

import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from vaultpeer.core import encoding
from vaultpeer.core.audit import GENESIS, AuditEntry, StoredRow
from vaultpeer.core.changes import RevisionMark
from vaultpeer.core.errors import IntegrityError
from vaultpeer.core.identity import DeviceId, DevicePublicKeys
from vaultpeer.core.item import ItemId
from vaultpeer.core.revision import MAX_PARENTS, Revision, RevisionId
from vaultpeer.core.roster import RosterEntry
from vaultpeer.core.vclock import VersionVector

SCHEMA_VERSION = 2
#: Schema versions this module migrates from, and how (in ``_migrate``).
_MIGRATES_FROM = (1,)

_META_TABLE = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
) WITHOUT ROWID
"""
_SCHEMA = """
CREATE TABLE IF NOT EXISTS header (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    record BLOB NOT NULL
);
-- devices this one trusts on its own authority: itself, and the device it paired with
CREATE TABLE IF NOT EXISTS anchors (
    device_id      BLOB PRIMARY KEY,
    noise_public   BLOB NOT NULL,
    signing_public BLOB NOT NULL
) WITHOUT ROWID;
-- signed roster entries, the latest version per (member, author)
CREATE TABLE IF NOT EXISTS roster (
    member  BLOB    NOT NULL,
    author  BLOB    NOT NULL,
    version INTEGER NOT NULL,
    record  BLOB    NOT NULL,
    PRIMARY KEY (member, author)
) WITHOUT ROWID;
-- per author, the counter up to which every revision is held (the knowledge vector)
CREATE TABLE IF NOT EXISTS knowledge (
    author BLOB PRIMARY KEY,
    seq    INTEGER NOT NULL
) WITHOUT ROWID;
-- what this device last learned of each peer's store, so a rebuilt peer store is noticed
CREATE TABLE IF NOT EXISTS peers (
    device_id BLOB PRIMARY KEY,
    store_id  BLOB NOT NULL
) WITHOUT ROWID;
-- what this device last knew each peer to hold (after a converged sync, or from its bundle), so a
-- bundle made for it carries only what it lacks
CREATE TABLE IF NOT EXISTS peer_knowledge (
    device_id BLOB PRIMARY KEY,
    vector    BLOB NOT NULL
) WITHOUT ROWID;
-- arrival is this store's own insertion order: parents always arrive first, so it is causal
CREATE TABLE IF NOT EXISTS revisions (
    arrival    INTEGER PRIMARY KEY,
    author     BLOB    NOT NULL,
    seq        INTEGER NOT NULL,
    item_id    BLOB    NOT NULL,
    parents    BLOB    NOT NULL,
    deleted    INTEGER NOT NULL,
    key_epoch  INTEGER NOT NULL,
    nonce      BLOB    NOT NULL,
    ciphertext BLOB    NOT NULL,
    signature  BLOB    NOT NULL,
    -- BLAKE2b-256 of the whole record (Revision.record_hash): what the state digest commits to
    hash       BLOB    NOT NULL,
    UNIQUE (author, seq)
);
CREATE INDEX IF NOT EXISTS revisions_by_item_revision ON revisions (item_id, author, seq);
-- evidence against an author that signed two different revisions under one id: the one held is in
-- revisions, every other one met is kept here (never applied, never sent on)
CREATE TABLE IF NOT EXISTS equivocations (
    author BLOB    NOT NULL,
    seq    INTEGER NOT NULL,
    hash   BLOB    NOT NULL,
    record BLOB    NOT NULL,
    PRIMARY KEY (author, seq, hash)
) WITHOUT ROWID;
-- parent -> child links, so a revision that arrives after its child is not taken for a head
CREATE TABLE IF NOT EXISTS edges (
    parent_author BLOB    NOT NULL,
    parent_seq    INTEGER NOT NULL,
    child_author  BLOB    NOT NULL,
    child_seq     INTEGER NOT NULL,
    PRIMARY KEY (parent_author, parent_seq, child_author, child_seq)
) WITHOUT ROWID;
-- the revisions of each item that no other revision supersedes
CREATE TABLE IF NOT EXISTS heads (
    item_id BLOB    NOT NULL,
    author  BLOB    NOT NULL,
    seq     INTEGER NOT NULL,
    PRIMARY KEY (item_id, author, seq)
) WITHOUT ROWID;
-- this device's audit log (vaultpeer.core.audit): a hash chain of signed entries, no secret in it.
-- Added after schema version 1 without a version bump: older stores gain the table when opened, and
-- a vaultpeer that does not know it leaves it alone.
CREATE TABLE IF NOT EXISTS audit (
    seq       INTEGER PRIMARY KEY,
    time      INTEGER NOT NULL,
    event     TEXT    NOT NULL,
    details   BLOB    NOT NULL,
    hash      BLOB    NOT NULL,
    signature BLOB    NOT NULL
);
"""

#: SQLite's page cache per connection (its default is 2 MiB), and how many pages the WAL grows to
#: before a commit copies them into the database (its default is 1,000). A batch of revisions adds
#: to two indexes keyed by random item ids, so each commit rewrites ~2,000 of their pages: with the
#: defaults, a new device's first sync of 100,000 revisions (41 MB) read 1.9 GB and wrote 1.1 GB,
#: as pages were evicted and read back, and checkpointed again and again. Durability is the same:
#: every commit is still synced (``synchronous=FULL``) before it returns.
_CACHE_KIB = 8 * 1024
_CHECKPOINT_PAGES = 4000
#: Revisions kept as evidence of one author's equivocations, at most (each is also an audit entry).
MAX_EVIDENCE_PER_AUTHOR = 64
#: Revisions read per query when many are streamed out (well under SQLite's limit on parameters).
_READ_CHUNK = 500
_REVISION_COLUMNS = "r.author, r.seq, r.item_id, r.parents, r.deleted, r.key_epoch, r.nonce, r.ciphertext, r.signature"


class Store:
    def __init__(self, connection: sqlite3.Connection, path: Path):
        self._db = connection
        self.path = path
        #: Items whose heads may have changed through this connection since ``take_changed_items``.
        self._changed_items: set[bytes] | None = set()
        #: Peers' knowledge raised since it was last written (``raise_peer_knowledge``), by device.
        self._peer_knowledge_unsaved: dict[bytes, VersionVector] = {}

    @classmethod
    def open_in_memory(cls) -> "Store":
        """A private, throw-away database (for tests and benchmarks that need thousands of stores)."""
        return cls.open(Path(":memory:"))

    @classmethod
    def open(cls, path: Path) -> "Store":
        # Created 0600 before SQLite opens it; the WAL and journal inherit the owner-only umask.
        old_umask = os.umask(0o077)
        try:
            in_memory = str(path) == ":memory:"
            if not in_memory and not path.exists():
                os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
            connection = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
            _enter_wal_mode(connection)
            connection.execute("PRAGMA synchronous = FULL")
            connection.execute("PRAGMA foreign_keys = ON")
            connection.execute("PRAGMA busy_timeout = 5000")
            connection.execute(f"PRAGMA cache_size = -{_CACHE_KIB}")
            connection.execute(f"PRAGMA wal_autocheckpoint = {_CHECKPOINT_PAGES}")
            store = cls(connection, path)
            with store.transaction():
                connection.execute(_META_TABLE)
                version = store._meta("schema_version")
                if version in _MIGRATES_FROM:
                    store._migrate(version)
                elif version is not None and version != SCHEMA_VERSION:
                    raise RuntimeError(f"{path} has schema version {version}; this vaultpeer reads {SCHEMA_VERSION}")
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        connection.execute(statement)
                if version is None:
                    store._set_meta("schema_version", SCHEMA_VERSION)
                    store._set_meta("store_id", os.urandom(16))
        finally:
            os.umask(old_umask)
        return store

    def _migrate(self, version: int) -> None:
        """Bring a store of an older schema up to date, inside the opening transaction."""
        if version == 1:
            # 2: every revision's record hash, which the state digest now commits to
            self._db.execute("ALTER TABLE revisions ADD COLUMN hash BLOB NOT NULL DEFAULT x''")
            self._db.execute("DROP INDEX IF EXISTS revisions_by_item")
            rows = self._db.execute(f"SELECT r.arrival, {_REVISION_COLUMNS} FROM revisions r").fetchall()
            for row in rows:
                self._db.execute("UPDATE revisions SET hash = ? WHERE arrival = ?",
                                 (_revision_from_row(row[1:]).record_hash, row[0]))
        self._set_meta("schema_version", SCHEMA_VERSION)

    def close(self) -> None:
        try:
            self.save_peer_knowledge()
        except sqlite3.Error:
            pass  # bookkeeping only (``raise_peer_knowledge``): the peers' next hellos say it again
        finally:
            self._db.close()

    @property
    def in_transaction(self) -> bool:
        return self._db.in_transaction

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One atomic, durable change. Nested use joins the outer transaction. It also writes the
        peers' knowledge raised since the last one (``raise_peer_knowledge``)."""
        if self._db.in_transaction:
            yield
            return
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
            unsaved = self._write_peer_knowledge()
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
        for raw, vector in unsaved.items():  # written (unless raised again meanwhile: then next time)
            if self._peer_knowledge_unsaved.get(raw) is vector:
                del self._peer_knowledge_unsaved[raw]

    # --- meta -------------------------------------------------------------------------------

    def _meta(self, key: str) -> object:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def _set_meta(self, key: str, value: object) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    @property
    def store_id(self) -> bytes:
        """Random per database: a peer that sees it change knows this store was rebuilt."""
        return self._meta("store_id")  # type: ignore[return-value]

    # --- header and members ------------------------------------------------------------------

    def header_record(self) -> bytes | None:
        row = self._db.execute("SELECT record FROM header WHERE id = 1").fetchone()
        return None if row is None else row[0]

    def put_header_record(self, record: bytes) -> None:
        """Store the header; the one it replaces is kept as ``previous_header_record``."""
        current = self.header_record()
        with self.transaction():
            if current is not None and current != record:
                self._set_meta("previous_header", current)
            self._db.execute("INSERT OR REPLACE INTO header (id, record) VALUES (1, ?)", (record,))

    def previous_header_record(self) -> bytes | None:
        return self._meta("previous_header")  # type: ignore[return-value]

    def put_anchor(self, keys: DevicePublicKeys) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO anchors (device_id, noise_public, signing_public) VALUES (?, ?, ?)",
            (keys.device_id.raw, keys.noise_public, keys.signing_public),
        )

    def anchors(self) -> list[DevicePublicKeys]:
        rows = self._db.execute("SELECT device_id, noise_public, signing_public FROM anchors").fetchall()
        anchors = [DevicePublicKeys(noise_public=row[1], signing_public=row[2]) for row in rows]
        if any(a.device_id.raw != row[0] for a, row in zip(anchors, rows, strict=True)):
            raise IntegrityError()
        return anchors

    def put_roster_entries(self, entries: Iterable[RosterEntry],
                           drop: Iterable[tuple[DeviceId, DeviceId]] = ()) -> None:
        """Keep the newest version of each (member, author) entry; forget those keyed in ``drop``."""
        with self.transaction():
            for entry in entries:
                self._db.execute(
                    "INSERT INTO roster (member, author, version, record) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (member, author) DO UPDATE SET version = excluded.version, record = excluded.record"
                    " WHERE excluded.version > roster.version",
                    (entry.member_id.raw, entry.author.raw, entry.version, entry.to_bytes()),
                )
            self._db.executemany("DELETE FROM roster WHERE member = ? AND author = ?",
                                 [(member.raw, author.raw) for member, author in drop])

    def roster_entries(self) -> list[RosterEntry]:
        return [RosterEntry.from_bytes(row[0]) for row in self._db.execute("SELECT record FROM roster")]

    def roster_versions(self) -> set[tuple[bytes, bytes, int]]:
        """(member, author, version) of every roster row: whether the roster changed, without parsing it."""
        return set(self._db.execute("SELECT member, author, version FROM roster"))

    def peer_store_id(self, device_id: DeviceId) -> bytes | None:
        row = self._db.execute("SELECT store_id FROM peers WHERE device_id = ?", (device_id.raw,)).fetchone()
        return None if row is None else row[0]

    def set_peer_store_id(self, device_id: DeviceId, store_id: bytes) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO peers (device_id, store_id) VALUES (?, ?)", (device_id.raw, store_id)
        )

    # --- revisions ----------------------------------------------------------------------------

    def peer_knowledge(self, device_id: DeviceId) -> VersionVector | None:
        unsaved = self._peer_knowledge_unsaved.get(device_id.raw)
        if unsaved is not None:  # raised above what is written (it was merged with it)
            return unsaved
        row = self._db.execute("SELECT vector FROM peer_knowledge WHERE device_id = ?", (device_id.raw,)).fetchone()
        return None if row is None else VersionVector.from_record(encoding.decode(row[0], max_size=1 << 20))

    def raise_peer_knowledge(self, device_id: DeviceId, knowledge: VersionVector) -> None:
        """Record that the peer holds at least ``knowledge`` (never lowers what was recorded).

        Kept in memory, and written by the next transaction on this store (``save_peer_knowledge``
        and ``close`` write it too): it is bookkeeping that the peer's next ``hello`` restates, used
        only to send it less, so it costs no commit (no fsync) of its own in the middle of a sync
        session. Lost in a crash, it only makes the next bundle for that peer bigger."""
        recorded = self.peer_knowledge(device_id)
        if recorded is not None and knowledge.merged(recorded) == recorded:
            return  # nothing new
        self._peer_knowledge_unsaved[device_id.raw] = knowledge.merged(recorded or VersionVector())

    def save_peer_knowledge(self) -> None:
        """Write the peers' knowledge raised since the last transaction, if any."""
        if self._peer_knowledge_unsaved and not self._db.in_transaction:
            with self.transaction():
                pass  # the transaction writes it (``_write_peer_knowledge``)

    def _write_peer_knowledge(self) -> dict[bytes, VersionVector]:
        """Inside a transaction: write the unsaved knowledge; what was written."""
        unsaved = dict(self._peer_knowledge_unsaved)
        if unsaved:
            self._db.executemany("INSERT OR REPLACE INTO peer_knowledge (device_id, vector) VALUES (?, ?)",
                                 [(raw, encoding.encode(vector.to_record())) for raw, vector in unsaved.items()])
        return unsaved

    def next_seq(self, author: DeviceId) -> int:
        """The author's next counter value (call inside the transaction that inserts it)."""
        row = self._db.execute("SELECT MAX(seq) FROM revisions WHERE author = ?", (author.raw,)).fetchone()
        return (row[0] or 0) + 1

    def insert_revisions(self, revisions: Iterable[Revision],
                         equivocation: Callable[[Revision, Revision], None] | None = None,
                         pruned: Callable[[RevisionId], bool] | None = None) -> list[Revision]:
        """Store revisions and keep heads current; returns those that were new.

        A revision already stored with identical content is skipped (so replays are harmless). A
        stored id met with different content (its author equivocated) is passed to
        ``equivocation(held, other)`` and skipped, or without that callback is an IntegrityError.
        And these are IntegrityErrors that store nothing of the batch: a parent that is
        neither stored nor earlier in the batch (delivery is causal) nor ``pruned`` (a revision the
        roster no longer accepts, which nobody sends), or a parent that belongs to another item.
        """
        revisions = list(revisions)
        ids = [(r.revision_id.author.raw, r.revision_id.seq) for r in revisions]
        added: list[Revision] = []
        #: this batch's new revisions by id, and their rows (written together once all are checked)
        in_batch: dict[tuple[bytes, int], Revision] = {}
        rows, edges, replaced_heads = [], [], []
        with self.transaction():
            held = self._held_hashes(ids)
            superseded = self._named_as_parents(ids)
            for revision, key in zip(revisions, ids, strict=True):
                existing = in_batch.get(key)
                if existing is None and key in held:
                    if held[key] == revision.record_hash:  # the record hash covers every field
                        continue
                    existing = self.revision(revision.revision_id)
                if existing is not None:
                    if existing != revision:
                        if equivocation is None:
                            raise IntegrityError()
                        equivocation(existing, revision)
                    continue
                item = revision.item_id.raw
                for parent in revision.parents:
                    if pruned is not None and pruned(parent):
                        continue  # a revision no member may send any more counts as held, held or not
                    parent_key = (parent.author.raw, parent.seq)
                    earlier = in_batch.get(parent_key)
                    if earlier is not None:
                        parent_item = earlier.item_id.raw
                    else:
                        row = self._db.execute("SELECT item_id FROM revisions WHERE author = ? AND seq = ?",
                                               parent_key).fetchone()
                        parent_item = None if row is None else row[0]
                    if parent_item != item:
                        raise IntegrityError()
                in_batch[key] = revision
                rows.append(_revision_row(revision))
                for parent in revision.parents:
                    edges.append((parent.author.raw, parent.seq, *key))
                    replaced_heads.append((item, parent.author.raw, parent.seq))
                    superseded.add((parent.author.raw, parent.seq))
                added.append(revision)
            self._write_new(rows, edges, replaced_heads,
                            [(r.item_id.raw, *k) for k, r in in_batch.items() if k not in superseded])
            self._advance_knowledge(in_batch)
        return added

    def _held_hashes(self, ids: list[tuple[bytes, int]]) -> dict[tuple[bytes, int], bytes]:
        """The record hashes of those of ``ids`` (author, seq) that are stored."""
        return {(author, seq): hash_ for author, seq, hash_ in self._by_ids(
            "SELECT author, seq, hash FROM revisions WHERE author = ? AND seq IN ({})", ids)}

    def _named_as_parents(self, ids: list[tuple[bytes, int]]) -> set[tuple[bytes, int]]:
        """Those of ``ids`` that a stored revision names as a parent (one that arrived after its
        child, which was not taken for a head then)."""
        return set(self._by_ids("SELECT DISTINCT parent_author, parent_seq FROM edges"
                                " WHERE parent_author = ? AND parent_seq IN ({})", ids))

    def _by_ids(self, query: str, ids: list[tuple[bytes, int]]) -> Iterator[tuple]:
        """``query``'s rows for ``ids``, one query per author and chunk (the query has one author
        parameter, and ``{}`` for the placeholders of its counters)."""
        by_author: dict[bytes, list[int]] = {}
        for author, seq in ids:
            by_author.setdefault(author, []).append(seq)
        for author, seqs in by_author.items():
            for start in range(0, len(seqs), _READ_CHUNK):
                chunk = seqs[start:start + _READ_CHUNK]
                yield from self._db.execute(query.format(",".join("?" * len(chunk))), (author, *chunk))

    def _write_new(self, rows: list[tuple], edges: list[tuple], replaced_heads: list[tuple],
                   new_heads: list[tuple]) -> None:
        """Write checked new revisions, their parent links, and the heads they change."""
        if self._changed_items is not None:
            self._changed_items.update(row[2] for row in rows)
            if len(self._changed_items) > _MAX_CHANGED_ITEMS:
                self._changed_items = None
        self._insert("INSERT INTO revisions"
                     " (author, seq, item_id, parents, deleted, key_epoch, nonce, ciphertext, signature, hash)", rows)
        self._insert("INSERT OR IGNORE INTO edges (parent_author, parent_seq, child_author, child_seq)", edges)
        self._insert("INSERT INTO heads (item_id, author, seq)", new_heads)
        self._db.executemany("DELETE FROM heads WHERE item_id = ? AND author = ? AND seq = ?", replaced_heads)

    def _insert(self, statement: str, rows: list[tuple]) -> None:
        """``statement`` (an INSERT naming its columns) for every row, in order: ``_ROWS_PER_INSERT``
        rows per statement, the rest one by one. A batch of 1,000 revisions takes a few dozen steps
        of SQLite, not thousands: each step lets go of the GIL and takes it back, which, while
        other threads check the next batch's signatures, costs more than the step itself."""
        if not rows:
            return
        width = len(rows[0])
        one = "(" + ", ".join("?" * width) + ")"
        whole = len(rows) - len(rows) % _ROWS_PER_INSERT
        if whole:
            many = f"{statement} VALUES {', '.join([one] * _ROWS_PER_INSERT)}"
            for start in range(0, whole, _ROWS_PER_INSERT):
                self._db.execute(many, [value for row in rows[start:start + _ROWS_PER_INSERT] for value in row])
        if whole < len(rows):
            self._db.executemany(f"{statement} VALUES {one}", rows[whole:])

    def _advance_knowledge(self, added: Mapping[tuple[bytes, int], Revision]) -> None:
        """Raise each author's knowledge over what was just added (and anything stored before
        that now continues the author's run without a gap)."""
        by_author: dict[bytes, set[int]] = {}
        for author, seq in added:
            by_author.setdefault(author, set()).add(seq)
        for author, seqs in by_author.items():
            row = self._db.execute("SELECT seq FROM knowledge WHERE author = ?", (author,)).fetchone()
            held = row[0] if row else 0
            while held + 1 in seqs or self._db.execute(
                "SELECT 1 FROM revisions WHERE author = ? AND seq = ?", (author, held + 1)
            ).fetchone():
                held += 1
            self._db.execute("INSERT OR REPLACE INTO knowledge (author, seq) VALUES (?, ?)", (author, held))

    def knowledge(self) -> VersionVector:
        rows = self._db.execute("SELECT author, seq FROM knowledge").fetchall()
        return VersionVector({DeviceId(author): seq for author, seq in rows})

    def revisions_after(self, knowledge: VersionVector,
                        limit: Callable[[DeviceId], int] | None = None) -> Iterator[Revision]:
        """Every revision the holder of ``knowledge`` lacks, in causal (arrival) order, leaving out
        any whose counter is above its author's ``limit`` (a revoked device's cutoff, say).

        Only the missing revisions are read (a range of the (author, seq) index per author), and
        they are read in chunks as the caller consumes them, so a device sending 100,000 revisions
        holds their arrival numbers, not their contents, in memory."""
        arrivals: list[int] = []
        for author in self._authors():
            device = DeviceId(author)
            arrivals += [row[0] for row in self._db.execute(
                "SELECT arrival FROM revisions WHERE author = ? AND seq > ? AND seq <= ?",
                (author, knowledge.get(device), limit(device) if limit else 2**63 - 1),
            )]
        arrivals.sort()
        for start in range(0, len(arrivals), _READ_CHUNK):
            chunk = arrivals[start:start + _READ_CHUNK]
            rows = self._db.execute(
                f"SELECT {_REVISION_COLUMNS} FROM revisions r WHERE r.arrival IN ({','.join('?' * len(chunk))})"
                " ORDER BY r.arrival", chunk,
            ).fetchall()
            for row in rows:
                yield _revision_from_row(row)

    def _authors(self) -> Iterator[bytes]:
        """Every author of a stored revision, one index lookup each (``SELECT DISTINCT`` would read
        the whole (author, seq) index: 10,000 rows for the one edit a session sends)."""
        author = b""
        while (row := self._db.execute("SELECT MIN(author) FROM revisions WHERE author > ?", (author,)).fetchone())[0] \
                is not None:
            author = row[0]
            yield author

    def revisions_in_leaves(self, prefixes: Iterable[bytes]) -> list[Revision]:
        """Every revision of the items whose id starts with one of ``prefixes``, in arrival order."""
        revisions = []
        for prefix in prefixes:
            rows = self._db.execute(
                f"SELECT {_REVISION_COLUMNS}, r.arrival FROM revisions r WHERE substr(r.item_id, 1, ?) = ?",
                (len(prefix), prefix),
            ).fetchall()
            revisions += [(row[-1], _revision_from_row(row[:-1])) for row in rows]
        return [revision for _, revision in sorted(revisions, key=lambda pair: pair[0])]

    def head_ids(self) -> dict[ItemId, list[RevisionId]]:
        heads: dict[ItemId, list[RevisionId]] = {}
        for item_id, author, seq in self._db.execute("SELECT item_id, author, seq FROM heads"):
            heads.setdefault(ItemId(item_id), []).append(RevisionId(DeviceId(author), seq))
        return heads

    def revision_rows(self) -> Iterator[tuple[bytes, bytes, int, bytes]]:
        """(item id, author, seq, record hash) of every revision, sorted: the state digest's input,
        read as it is consumed."""
        return self._db.execute("SELECT item_id, author, seq, hash FROM revisions ORDER BY item_id, author, seq")

    def revision_rows_of(self, item_ids: Iterable[bytes]) -> list[tuple[bytes, bytes, int, bytes]]:
        """The same rows for some items only (raw ids)."""
        rows = []
        for item_id in item_ids:
            rows += self._db.execute("SELECT item_id, author, seq, hash FROM revisions WHERE item_id = ?",
                                     (item_id,)).fetchall()
        return rows

    def last_arrival(self) -> int:
        """The arrival number of the newest stored revision (0 when there is none)."""
        return self._db.execute("SELECT COALESCE(MAX(arrival), 0) FROM revisions").fetchone()[0]

    def opened_through(self) -> int:
        """The arrival number up to which every revision was test-opened with the vault's keys."""
        return int(self._meta("opened_through") or 0)

    def set_opened_through(self, arrival: int) -> None:
        with self.transaction():
            self._set_meta("opened_through", arrival)

    def link_stamp_ceiling(self) -> int | None:
        """No member handshake this device sent has a stamp at or above this (see
        ``Vault.next_link_stamp``)."""
        value = self._meta("link_stamp_ceiling")
        return None if value is None else int(value)

    def set_link_stamp_ceiling(self, stamp: int) -> None:
        with self.transaction():
            self._set_meta("link_stamp_ceiling", stamp)

    def link_stamps_accepted(self) -> dict[DeviceId, int]:
        """Per member, the greatest handshake stamp accepted from it (a first message with a stamp
        not above it is a replay)."""
        rows = self._db.execute("SELECT key, value FROM meta WHERE key GLOB 'link_stamp:*'").fetchall()
        return {DeviceId(bytes.fromhex(key.split(":", 1)[1])): int(value) for key, value in rows}

    def save_link_stamps_accepted(self, stamps: Mapping[DeviceId, int]) -> None:
        with self.transaction():
            for device_id, stamp in stamps.items():
                self._set_meta("link_stamp:" + device_id.raw.hex(), stamp)

    def revisions_arrived_after(self, arrival: int) -> Iterator[tuple[int, Revision]]:
        """``(arrival, revision)`` for every revision stored after ``arrival``, in order, read in chunks."""
        while True:
            rows = self._db.execute(
                f"SELECT r.arrival, {_REVISION_COLUMNS} FROM revisions r WHERE r.arrival > ? ORDER BY r.arrival"
                " LIMIT ?", (arrival, _READ_CHUNK)).fetchall()
            if not rows:
                return
            for row in rows:
                yield row[0], _revision_from_row(row[1:])
            arrival = rows[-1][0]

    def arrivals_between(self, after: int, through: int, limit: int) -> list[tuple[int, ItemId]]:
        """``(arrival, item id)`` of the revisions stored after ``after`` up to ``through``, in order,
        at most ``limit`` of them (the change cursors' input: no ciphertext is read)."""
        rows = self._db.execute("SELECT arrival, item_id FROM revisions WHERE arrival > ? AND arrival <= ?"
                                " ORDER BY arrival LIMIT ?", (after, through, limit)).fetchall()
        return [(arrival, ItemId(item_id)) for arrival, item_id in rows]

    def marks_between(self, after: int, through: int, limit: int) -> list[RevisionMark]:
        """What is in the clear of the revisions stored after ``after`` up to ``through``, in arrival
        order, at most ``limit`` of them (one scan of the arrival order: no ciphertext is read)."""
        rows = self._db.execute("SELECT arrival, item_id, author, seq, parents, deleted FROM revisions"
                                " WHERE arrival > ? AND arrival <= ? ORDER BY arrival LIMIT ?",
                                (after, through, limit)).fetchall()
        return [RevisionMark(arrival, ItemId(item_id), RevisionId(_device_id(author), seq), _parents(parents),
                             bool(deleted)) for arrival, item_id, author, seq, parents, deleted in rows]

    def items_held_by(self, item_ids: Iterable[ItemId], arrival: int) -> set[ItemId]:
        """Which of these items had a revision stored by ``arrival`` (the item index alone answers:
        it holds each revision's arrival)."""
        ids = list({item_id.raw for item_id in item_ids})
        held: set[ItemId] = set()
        for start in range(0, len(ids), _READ_CHUNK):
            chunk = ids[start:start + _READ_CHUNK]
            held.update(ItemId(raw) for (raw,) in self._db.execute(
                f"SELECT DISTINCT item_id FROM revisions WHERE item_id IN ({','.join('?' * len(chunk))})"
                " AND arrival <= ?", (*chunk, arrival)))
        return held

    def revision_marks(self, item_ids: Iterable[ItemId], through: int) -> dict[ItemId, list[RevisionMark]]:
        """What is in the clear of every revision of these items stored up to ``through``."""
        ids = [item_id.raw for item_id in item_ids]
        marks: dict[ItemId, list[RevisionMark]] = {}
        for start in range(0, len(ids), _READ_CHUNK):
            chunk = ids[start:start + _READ_CHUNK]
            rows = self._db.execute(
                "SELECT arrival, item_id, author, seq, parents, deleted FROM revisions"
                f" WHERE item_id IN ({','.join('?' * len(chunk))}) AND arrival <= ?", (*chunk, through)).fetchall()
            for arrival, item_id, author, seq, parents, deleted in rows:
                item = ItemId(item_id)
                marks.setdefault(item, []).append(RevisionMark(
                    arrival, item, RevisionId(_device_id(author), seq), _parents(parents), bool(deleted)))
        return marks

    # --- evidence of equivocation -------------------------------------------------------------

    def put_equivocation(self, other: Revision) -> bool:
        """Keep ``other`` as evidence (its id is held with other content); True if it is new. At most
        ``MAX_EVIDENCE_PER_AUTHOR`` per author are kept: a flood of them proves nothing more."""
        (kept,) = self._db.execute("SELECT COUNT(*) FROM equivocations WHERE author = ?",
                                   (other.author.raw,)).fetchone()
        if kept >= MAX_EVIDENCE_PER_AUTHOR:
            return False
        cursor = self._db.execute(
            "INSERT OR IGNORE INTO equivocations (author, seq, hash, record) VALUES (?, ?, ?, ?)",
            (other.author.raw, other.revision_id.seq, other.record_hash, other.to_bytes()))
        return cursor.rowcount == 1

    def equivocated_ids(self) -> list[RevisionId]:
        """The revision ids for which a second, different revision was met, in (author, seq) order."""
        rows = self._db.execute("SELECT DISTINCT author, seq FROM equivocations ORDER BY author, seq").fetchall()
        return [RevisionId(_device_id(author), seq) for author, seq in rows]

    def take_changed_items(self) -> set[bytes] | None:
        """The items (raw ids) whose heads may have changed through this connection since the last
        call: a superset, since a rolled-back change is counted too; None when more than
        ``_MAX_CHANGED_ITEMS`` did (an initial sync: whoever asks rebuilds from everything)."""
        changed, self._changed_items = self._changed_items, set()
        return changed

    def data_version(self) -> int:
        """Changes whenever *another* connection commits to the database (SQLite's data_version)."""
        return self._db.execute("PRAGMA data_version").fetchone()[0]

    def items_with_several_heads(self) -> list[ItemId]:
        rows = self._db.execute("SELECT item_id FROM heads GROUP BY item_id HAVING COUNT(*) > 1").fetchall()
        return [ItemId(row[0]) for row in rows]

    def revision(self, revision_id: RevisionId) -> Revision | None:
        row = self._db.execute(
            f"SELECT {_REVISION_COLUMNS} FROM revisions r WHERE r.author = ? AND r.seq = ?",
            (revision_id.author.raw, revision_id.seq),
        ).fetchone()
        return None if row is None else _revision_from_row(row)

    def revisions_of(self, item_id: ItemId) -> list[Revision]:
        rows = self._db.execute(
            f"SELECT {_REVISION_COLUMNS} FROM revisions r WHERE r.item_id = ? ORDER BY r.arrival", (item_id.raw,)
        ).fetchall()
        return [_revision_from_row(row) for row in rows]

    def heads_of(self, item_id: ItemId) -> list[Revision]:
        rows = self._db.execute(
            f"SELECT {_REVISION_COLUMNS} FROM heads h JOIN revisions r ON r.author = h.author AND r.seq = h.seq"
            " WHERE h.item_id = ?",
            (item_id.raw,),
        ).fetchall()
        return [_revision_from_row(row) for row in rows]

    def all_heads(self) -> Iterator[Revision]:
        """Every head, ordered by item (the heads table's key: no sort)."""
        cursor = self._db.execute(
            f"SELECT {_REVISION_COLUMNS} FROM heads h JOIN revisions r ON r.author = h.author AND r.seq = h.seq"
            " ORDER BY h.item_id"
        )
        for row in cursor:
            yield _revision_from_row(row)

    def all_revisions(self) -> Iterator[Revision]:
        for row in self._db.execute(f"SELECT {_REVISION_COLUMNS} FROM revisions r ORDER BY r.arrival"):
            yield _revision_from_row(row)

    def counts(self) -> dict[str, int]:
        return {
            "items": self._db.execute("SELECT COUNT(DISTINCT item_id) FROM heads").fetchone()[0],
            "revisions": self._db.execute("SELECT COUNT(*) FROM revisions").fetchone()[0],
            "roster_entries": self._db.execute("SELECT COUNT(*) FROM roster").fetchone()[0],
        }

    def conflicted_item_count(self) -> int:
        """Items with more than one head: readable without the vault key."""
        return self._db.execute(
            "SELECT COUNT(*) FROM (SELECT item_id FROM heads GROUP BY item_id HAVING COUNT(*) > 1)"
        ).fetchone()[0]

    def integrity_check(self) -> bool:
        return self._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    # --- the audit log ------------------------------------------------------------------------

    def append_audit(self, make: Callable[[int, bytes], AuditEntry]) -> AuditEntry:
        """Append the entry ``make(seq, previous hash)`` builds, in one small transaction (or the
        caller's), so two processes appending at once still make one chain."""
        with self.transaction():
            row = self._db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
            entry = make(1, GENESIS) if row is None else make(row[0] + 1, row[1])
            self._db.execute(
                "INSERT INTO audit (seq, time, event, details, hash, signature) VALUES (?, ?, ?, ?, ?, ?)",
                (entry.seq, entry.time, entry.event, AuditEntry.encode_details(entry.details), entry.entry_hash,
                 entry.signature),
            )
        return entry

    def audit_rows(self, newest: int | None = None) -> list[StoredRow]:
        """Every audit row in seq order (or only the ``newest`` ones), unparsed."""
        query = "SELECT seq, time, event, details, hash, signature FROM audit"
        if newest is None:
            rows = self._db.execute(query + " ORDER BY seq").fetchall()
        else:
            rows = self._db.execute(query + " ORDER BY seq DESC LIMIT ?", (newest,)).fetchall()[::-1]
        return [StoredRow(*row) for row in rows]


#: Beyond this many items changed, the set of them is dropped (``take_changed_items``).
_MAX_CHANGED_ITEMS = 4096
#: Rows written by one INSERT statement (``Store._insert``): 64 revisions are 640 parameters, well
#: under SQLite's limit.
_ROWS_PER_INSERT = 64


@lru_cache(maxsize=256)
def _device_id(raw: bytes) -> DeviceId:
    """One object per author (a vault has a handful), not one per revision read."""
    return DeviceId(raw)


#: The stored parents of a revision that has none (most are an item's first): no decoding needed.
_NO_PARENTS = encoding.encode([])


def _parents(blob: bytes) -> tuple[RevisionId, ...]:
    if blob == _NO_PARENTS:
        return ()
    try:
        parent_records = encoding.decode(blob, max_size=MAX_PARENTS * 64)
        if not isinstance(parent_records, list):
            raise IntegrityError()
        return tuple(RevisionId.from_record(p) for p in parent_records)
    except (TypeError, ValueError):
        raise IntegrityError() from None


def _revision_row(revision: Revision) -> tuple:
    """The ``revisions`` row of a revision (after ``arrival``), as ``insert_revisions`` writes it."""
    return (revision.revision_id.author.raw, revision.revision_id.seq, revision.item_id.raw,
            encoding.encode([p.to_record() for p in revision.parents]), int(revision.deleted),
            revision.key_epoch, revision.nonce, revision.ciphertext, revision.signature, revision.record_hash)


def _revision_from_row(row: tuple) -> Revision:
    author, seq, item_id, parents, deleted, key_epoch, nonce, ciphertext, signature = row
    try:
        return Revision(
            item_id=ItemId(item_id),
            revision_id=RevisionId(_device_id(author), seq),
            parents=_parents(parents),
            deleted=bool(deleted),
            key_epoch=key_epoch,
            nonce=nonce,
            ciphertext=ciphertext,
            signature=signature,
        )
    except (TypeError, ValueError):
        raise IntegrityError() from None


#: Opening a new database while another process opens it too (the daemon starting as the CLI
#: creates the vault): switching to WAL may report "locked" at once, without waiting.
_WAL_ATTEMPTS, _WAL_RETRY_AFTER = 50, 0.1


def _enter_wal_mode(connection: sqlite3.Connection) -> None:
    for attempt in range(_WAL_ATTEMPTS):
        try:
            connection.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == _WAL_ATTEMPTS - 1:
                raise
            time.sleep(_WAL_RETRY_AFTER)

