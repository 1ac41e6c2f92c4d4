"""Intake: what arrives from other members, and what this device tells them it holds.

``receive_records`` is the one place that admits records from elsewhere: the roster entries,
header and revisions of a batch are all verified against the vault's roster before anything is
stored, and one bad record rejects the whole batch. Receiving works while locked. Beside it: the
knowledge vector, what a peer lacks, the state digest, and what this device remembers of each peer.
"""

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from vaultpeer.core.digest import StateDigest
from vaultpeer.core.errors import IntegrityError, InvalidInput, VaultpeerError
from vaultpeer.core.identity import DeviceId, DevicePublicKeys
from vaultpeer.core.keys import VaultHeader, check_successor, header_rank
from vaultpeer.core.revision import Revision
from vaultpeer.core.roster import Roster, RosterEntry
from vaultpeer.core.vclock import VersionVector
from vaultpeer.service.parallel_verify import verify_revisions_unless
from vaultpeer.service.store import Store
from vaultpeer.service.vault.audit_trail import AuditTrail
from vaultpeer.service.vault.items import Items
from vaultpeer.service.vault.membership import Membership, Removal
from vaultpeer.service.vault.unlocking import Unlocking


@dataclass(frozen=True)
class Received:
    """What a batch changed."""

    revisions: tuple[Revision, ...]
    header_replaced: bool
    roster_changed: bool
    #: New evidence of equivocation (two different revisions under one id) found in the batch.
    equivocations: int = 0


class Intake:
    def __init__(self, store: Store, unlocking: Unlocking, membership: Membership, items: Items,
                 audit: AuditTrail):
        self._store = store
        self._unlocking = unlocking
        self._membership = membership
        self._items = items
        self._audit = audit
        #: (the store's data_version, the state digest it had then)
        self._digest: tuple[int, StateDigest] | None = None

    def forget_digest(self) -> None:
        """Build the state digest again on next use (what is pruned may have changed)."""
        self._digest = None

    # --- what this device holds ------------------------------------------------------------------

    def knowledge(self) -> VersionVector:
        return self._store.knowledge()

    def revisions_missing_from(self, knowledge: VersionVector) -> Iterator[Revision]:
        """What the holder of ``knowledge`` lacks, without pruned revisions (``Roster.prunes``:
        held ones stay stored, but are sent to nobody, left out of the state digest and opaque in
        the item views; as a parent, a pruned id counts as held)."""
        return self._store.revisions_after(knowledge, limit=self._membership.roster.revision_limit)

    def revisions_in_leaves(self, prefixes: Iterable[bytes]) -> list[Revision]:
        """The revisions of the items whose ids start with one of ``prefixes`` (a digest repair)."""
        return self._store.revisions_in_leaves(prefixes)

    def state_digest(self) -> StateDigest:
        """The Merkle digest of every item's (unpruned) revisions, content included. Built once,
        then updated for the items changed since (a few hashes per edit); rebuilt whenever another
        process has written the store or the roster changed what is pruned."""
        version = self._store.data_version()
        changed = self._store.take_changed_items()
        rebuild = self._digest is None or self._digest[0] != version or changed is None
        if rebuild:
            self._membership.reread()  # another process may have changed the roster too
        limit = self._membership.roster.revision_limit
        limits: dict[bytes, int] = {}

        def kept(rows: Iterable) -> Iterator:  # Roster.prunes on raw rows, one limit looked up per author
            for row in rows:
                author = row[1]
                if author not in limits:
                    limits[author] = limit(DeviceId(author))
                if row[2] <= limits[author]:
                    yield row

        if rebuild:
            digest = StateDigest.from_revision_rows(kept(self._store.revision_rows()))
        else:
            digest = self._digest[1].updated(kept(self._store.revision_rows_of(changed)), changed)
        self._digest = (version, digest)
        return digest

    # --- what this device remembers of its peers -------------------------------------------------

    @property
    def store_id(self) -> bytes:
        """Random per database: a peer that sees it change knows this store was rebuilt."""
        return self._store.store_id

    def remember_peer_store(self, peer: DeviceId, store_id: bytes) -> bytes | None:
        """Record the store id a member's hello names; returns the one known before (if any)."""
        known = self._store.peer_store_id(peer)
        if known != store_id:
            with self._store.transaction():
                self._store.set_peer_store_id(peer, store_id)
        return known

    def peer_knowledge(self, peer: DeviceId) -> VersionVector | None:
        """What this device last knew ``peer`` to hold (None if it never learnt)."""
        return self._store.peer_knowledge(peer)

    def raise_peer_knowledge(self, peer: DeviceId, knowledge: VersionVector) -> None:
        self._store.raise_peer_knowledge(peer, knowledge)

    def save_peer_knowledge(self) -> None:
        """Write what was learnt of the peers' knowledge since the last commit (the daemon does,
        every few seconds; closing does)."""
        self._store.save_peer_knowledge()

    # --- receiving -------------------------------------------------------------------------------

    def receive_records(self, header: VaultHeader | None, entries: Iterable[RosterEntry],
                        revisions: Iterable[Revision], verified: Mapping[int, DevicePublicKeys] | None = None,
                        ) -> Received:
        """Admit a batch from another member; works while locked.

        In order: the roster entries (a forgery rejects the batch; an entry by a device this one
        does not trust is kept but does not count), so that a revocation always lands; then the
        header (for this vault, signed, above the KDF floor, the same recovery key; it replaces ours
        only if it ranks higher: ``header_rank``); then the revisions. A revision the roster no
        longer accepts (a revoked author past its cutoff, a non-member) is dropped, never a reason
        to refuse the batch; every other must be validly signed and causally delivered. A stored
        id met with other content is kept as evidence of equivocation. Otherwise IntegrityError,
        and nothing is stored. Nothing after the commit can fail the batch.

        ``verified``: signatures already checked, while the batch before was stored
        (``parallel_verify.verified_ahead``): each counts only for a revision whose keys, looked up
        now, are the ones it was checked under.
        """
        store, membership = self._store, self._membership
        vault_id = membership.vault_id
        entries, revisions = list(entries), list(revisions)
        if header is None and not entries and not revisions:
            return Received((), False, False, 0)  # an empty batch (a phase's last, say): no transaction at all
        roster = membership.roster.with_entries(entries) if entries else membership.roster
        replace_header = header is not None and self._header_wins(header, roster)
        accepted = [r for r in revisions if not roster.prunes(r.revision_id)]
        verify_revisions_unless(accepted, vault_id, [roster.known_keys(r.author) for r in accepted], verified)
        # only a batch with roster entries can change the roster (the rows' keys and versions, unparsed)
        before = store.roster_versions() if entries else None
        evidence: list[tuple[Revision, Revision]] = []

        with store.transaction():
            if entries:
                store.put_roster_entries(entries, drop=roster.dropped)
            if replace_header:
                store.put_header_record(header.to_bytes())
            added = store.insert_revisions(
                accepted, equivocation=lambda held, other: evidence.append((held, other)), pruned=roster.prunes)
            evidence = [(held, other) for held, other in evidence if store.put_equivocation(other)]
        roster_changed = before is not None and before != store.roster_versions()
        for held, other in evidence:
            self._audit.record("revision.equivocation", device_id=str(held.author), seq=held.revision_id.seq,
                               kept=held.record_hash.hex(), other=other.record_hash.hex())
        if roster_changed:
            membership.changed()
            if membership.vouch_for_what_we_hold_of_revoked_devices():
                self._items.forget_index()
        if replace_header:
            self._unlocking.adopt(header)
        if not self._unlocking.locked:
            # a junk revision is quarantined (and recorded) on arrival; what opens is not decrypted again
            opened = self._items.test_open_arrivals(keep=len(added))
            self._items.checked_on_arrival(added, roster)
            if roster_changed:
                self._items.forget_index()  # what is pruned may have changed
            else:
                self._items.refresh(added, opened)
        return Received(tuple(added), replace_header, roster_changed, len(evidence))

    def receive_removal(self, revocations: Iterable[RosterEntry]) -> Removal | None:
        """A member says this device was removed from the vault (a ``removed`` message): admit the
        revocations it sent, each of this device (InvalidInput otherwise; IntegrityError for a
        forgery; either way nothing is stored), and return the removal if one now counts. One
        signed by a device this one has never trusted is kept but changes nothing (``Roster``)."""
        revocations = list(revocations)
        me = self._unlocking.device.device_id
        if not revocations or not all(e.revoked and e.member_id == me for e in revocations):
            raise InvalidInput("a removal notice carries only revocations of this device")
        was_removed = self._membership.removal is not None
        self.receive_records(None, revocations, [])
        removal = self._membership.removal
        if removal is not None and not was_removed:
            self._audit.record("device.removed", device_id=str(removal.by), device_name=removal.by_name)
        return removal

    def _header_wins(self, header: VaultHeader, roster: Roster) -> bool:
        """Whether ``header`` replaces the stored one (IntegrityError if it is not acceptable at all:
        another vault, a forged signature, KDF parameters below the floor, another recovery key).
        A header whose author this device does not know is ignored, not refused."""
        current = self._membership.header
        check_successor(current, header)
        keys = roster.known_keys(header.author)
        if keys is None:
            return False
        header.verify(keys)
        try:
            self._unlocking.check_kdf(header.kdf)
        except VaultpeerError:
            raise IntegrityError() from None
        return (header_rank(header, header.author in roster.members)
                > header_rank(current, current.author in roster.members))
