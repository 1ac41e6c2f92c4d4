"""A device's vault: the store and device identity, plus the keyring while unlocked.

This is the one place that turns person-level operations (add, edit, delete, restore, resolve a
conflict, change the password) into sealed, signed revisions, and the one place that admits
records from elsewhere (``receive_records``): the roster entries, header and revisions of a batch
are all verified against the vault's roster before anything is stored, and one bad record rejects
the whole batch. Receiving works while locked; merging needs the vault key.

``Vault`` is the front that the command layer, replication, files and the daemon call; the work is
done by its parts, each given the store and the other parts it needs: ``unlocking`` (keys, password,
signing key, locking), ``membership`` (header, roster, enrolling, joining, revoking; ``LinkStamps``),
``audit_trail`` (the audit log), ``items`` (the index and every item write) and ``intake`` (what
arrives from peers, and what they are told). The store is the vault's own: nothing outside this
package touches it.
"""

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from vaultpeer.core.audit import AuditEntry, AuditKey
from vaultpeer.core.changes import ChangeBatch, RevisionMark, describe, split_ranges
from vaultpeer.core.digest import StateDigest
from vaultpeer.core.errors import WrongPassword
from vaultpeer.core.identity import DeviceId, DeviceKeys, DevicePublicKeys
from vaultpeer.core.item import ItemContent, ItemId
from vaultpeer.core.kdf import KdfParameters
from vaultpeer.core.keys import Keyring, RecoveryKey, VaultHeader
from vaultpeer.core.revision import Revision
from vaultpeer.core.roster import Member, Roster, RosterEntry
from vaultpeer.core.text import inert
from vaultpeer.core.vclock import VersionVector
from vaultpeer.service.device import load_or_create_audit_key, load_or_create_keys, load_profile
from vaultpeer.service.home import Home
from vaultpeer.service.store import Store
from vaultpeer.service.vault.audit_trail import AuditTrail
from vaultpeer.service.vault.intake import Intake, Received
from vaultpeer.service.vault.items import CheckReport, Conflict, HistoryEntry, Items, ItemSummary, ItemView
from vaultpeer.service.vault.membership import LinkStamps, Membership, Removal
from vaultpeer.service.vault.unlocking import MIN_PASSWORD_CHARS, Unlocking, prepare_password, prepare_rotation

__all__ = ["MIN_PASSWORD_CHARS", "CheckReport", "Conflict", "HeldRecords", "HistoryEntry", "ItemSummary", "ItemView", "Received",
           "Removal", "Vault", "home_holds_vault", "prepare_password", "prepare_rotation"]


@dataclass(frozen=True, repr=False)
class HeldRecords:
    """Everything a vault holds (what a backup keeps)."""

    header: VaultHeader
    anchors: tuple[DevicePublicKeys, ...]
    roster: tuple[RosterEntry, ...]
    revisions: tuple[Revision, ...]

    def __repr__(self) -> str:
        return f"HeldRecords({len(self.roster)} roster entries, {len(self.revisions)} revisions)"


class Vault:
    def __init__(self, store: Store, device: DeviceKeys, *, home: Home | None = None,
                 allow_insecure_test_kdf: bool = False, audit_key: AuditKey | None = None,
                 clock: Callable[[], float] = time.monotonic, wall_clock: Callable[[], float] = time.time):
        self.home = home
        self._store = store
        #: Called after every commit of records this device made (revisions it sealed, a member it
        #: admitted or revoked, a new password), with the ids of the items written (empty for a
        #: roster or header change): how the daemon learns there is something to push, whichever
        #: front end made the change.
        self.on_local_commit: list[Callable[[list[str]], None]] = []
        #: Signs the audit log, locked or not (a vault without a home gets one for its lifetime).
        self.audit_trail = AuditTrail(store, audit_key or AuditKey.generate(), device.public.signing_public,
                                      clock=clock)
        self.unlocking = Unlocking(store, device, self.audit_trail, self._committed_here, home=home,
                                   allow_insecure_test_kdf=allow_insecure_test_kdf)
        self.membership = Membership(store, self.unlocking, self.audit_trail, self._committed_here)
        #: ``clock`` measures intervals (audit counts: the daemon passes trio's); ``wall_clock`` is the
        #: unix time each revision this device seals carries.
        self.items = Items(store, self.unlocking, self.membership, self.audit_trail, self._committed_here,
                           wall_clock)
        self.intake = Intake(store, self.unlocking, self.membership, self.items, self.audit_trail)
        self.link_stamps = LinkStamps(store)
        self.unlocking.on_lock.append(self.items.forget_index)
        self.membership.on_change.append(self.intake.forget_digest)  # what is pruned may have changed
        self._closed = False

    @classmethod
    def open(cls, home: Home, *, allow_insecure_test_kdf: bool = False,
             clock: Callable[[], float] = time.monotonic, wall_clock: Callable[[], float] = time.time) -> "Vault":
        home.ensure()
        device = load_or_create_keys(home)
        return cls(Store.open(home.database), device, home=home, allow_insecure_test_kdf=allow_insecure_test_kdf,
                   audit_key=load_or_create_audit_key(home), clock=clock, wall_clock=wall_clock)

    def close(self) -> None:
        """Lock, write what is pending, close the store (once: a second call does nothing)."""
        if self._closed:
            return
        self.items.save_watermark()  # how far it test-opened, for the next process
        self.link_stamps.save()
        self.lock()
        self.audit_trail.flush(everything=True)
        self._store.close()
        self._closed = True

    def __enter__(self) -> "Vault":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "locked" if self.locked else "unlocked"
        return f"Vault(device={self.device.device_id.short}…, {state})"

    def _committed_here(self, item_ids: list[str]) -> None:
        for listener in list(self.on_local_commit):
            listener(item_ids)

    # --- what other modules read and write through the vault (the store is its own) --------------

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Several vault operations, all or nothing (an import with its audit entry, a join with
        the records that come with it). Nested use joins the outer transaction. If it rolls back,
        what memory holds of its writes goes with it: the item index (rebuilt on next use), the
        test-opening watermark and the roster are read from the store again."""
        try:
            with self._store.transaction():
                yield
        except BaseException:
            if not self._store.in_transaction:  # the outermost transaction rolled back
                self.items.forget_uncommitted()
                self.membership.reread()
            raise

    def counts(self) -> dict[str, int]:
        """``{"items", "revisions"}`` as stored (readable while locked)."""
        return self._store.counts()

    def conflicted_item_count(self) -> int:
        """Items stored with several heads (readable while locked)."""
        return self._store.conflicted_item_count()

    def held_records(self) -> HeldRecords:
        """Everything the vault holds, read in one transaction (one consistent state: a backup)."""
        with self._store.transaction():
            return HeldRecords(self.header, tuple(self._store.anchors()), tuple(self._store.roster_entries()),
                               tuple(self._store.all_revisions()))

    def health(self) -> dict:
        """What `status` shows of the vault's integrity (readable while locked, but for ``unreadable``)."""
        header = self.header
        return {
            "key_epoch": header.key_epoch,
            "equivocations": len(self._store.equivocated_ids()),
            "unreadable": None if self.locked else self.items.unreadable_count,
            "locked_reason": self.locked_reason,
            "removed": removal.to_json() if (removal := self.membership.removal) else None,
        }

    # --- change cursors (the local API's events; vaultpeer.core.changes) --------------------------

    @property
    def in_transaction(self) -> bool:
        """Whether a transaction is open (what it wrote is not committed yet: announce nothing of it)."""
        return self._store.in_transaction

    @property
    def store_id(self) -> str:
        """This database's random id (hex): a rebuilt or restored store numbers its changes anew."""
        return self._store.store_id.hex()

    def change_cursor(self) -> int:
        """The arrival number of the newest stored revision: the cursor of everything stored (0: nothing)."""
        return self._store.last_arrival()

    def item_changes(self, after: int, through: int, *, per_batch: int, limit: int) -> list[ChangeBatch]:
        """How items changed from ``after`` to ``through`` (arrival numbers), in batches of at most
        ``per_batch`` items, reading at most ``limit`` revisions: the batches end where they end
        (the last one's ``through``), which is before ``through`` if there was more. Needs no key."""
        new = self._store.marks_between(after, through, limit)
        ranges = split_ranges([(mark.arrival, mark.item_id) for mark in new], after, per_batch)
        if not ranges:
            return []
        # every revision read stops at the last range's end; only items held before the first
        # range need their older revisions read (an initial sync's items have none: one scan)
        marks: dict[ItemId, list[RevisionMark]] = {}
        for mark in new:
            marks.setdefault(mark.item_id, []).append(mark)
        older = self._store.items_held_by(marks, after)
        marks.update(self._store.revision_marks(older, ranges[-1][1]))
        return [describe(start, end, items, marks) for start, end, items in ranges]

    def revisions_between(self, after: int, through: int, *, limit: int) -> int:
        """How many revisions were stored after ``after`` up to ``through`` (counted up to ``limit``)."""
        return len(self._store.arrivals_between(after, through, limit))

    # --- unlocking (Unlocking) ---------------------------------------------------------------------

    @property
    def device(self) -> DeviceKeys:
        """This device's keys: full while unlocked (or while its seed is in clear on disk), else public-only."""
        return self.unlocking.device

    @property
    def allows_insecure_test_kdf(self) -> bool:
        return self.unlocking.allows_insecure_test_kdf

    @property
    def locked(self) -> bool:
        return self.unlocking.locked

    @property
    def locked_reason(self) -> str | None:
        """Why the vault locked itself, if it did (a rotated key this device cannot open)."""
        return self.unlocking.locked_reason

    def init(self, password: str, kdf: KdfParameters, name: str = "this device",
             os_description: str = "unknown", *, kek: bytes | None = None) -> RecoveryKey:
        """Create this device's vault, left unlocked. Returns the recovery key, which is not stored
        anywhere. ``kek``: the password's key under ``kdf``, if the caller derived it already."""
        recovery_key = self.membership.create(password, kdf, name, os_description, kek)
        self.items.forget_index()
        self.items.nothing_to_test_open()
        self.audit("vault.created", via=self.audit_via)
        return recovery_key

    def unlock(self, password: str) -> None:
        self.unlock_with_kek(self.derive_kek(password))

    def derive_kek(self, password: str) -> bytes:
        """The slow step of unlocking, on its own so a daemon can run it in a thread."""
        return self.unlocking.derive_kek(self.header, password)

    def unlock_with_kek(self, kek: bytes) -> None:
        try:
            self.unlocking.unlock_with_kek(self.header, kek)
        except WrongPassword:
            changer = self.membership.password_changed_elsewhere()
            if changer is None:
                raise
            raise WrongPassword(f"wrong password: the master password may have been changed on {inert(changer)} "
                                "(the vault's header from that device replaced this one's): try the new one") from None
        self._unlocked(method="password")

    def unlock_with_recovery_key(self, recovery_key: RecoveryKey) -> None:
        """Open with the recovery key; set a new password next (``change_password``)."""
        self.unlocking.unlock_with_recovery_key(self.header, recovery_key)
        self._unlocked(method="recovery_key")

    def _unlocked(self, *, method: str) -> None:
        """What every unlock does once the keyring (and so the signing key) is at hand: record it,
        test-open what arrived while locked (quarantining junk), and do what had to wait for the
        signing key (say what it holds of revoked devices)."""
        self.items.forget_unreadable()  # the keys may have changed since: what did not open is tried again
        self.audit("unlock", via=self.audit_via, method=method)
        self.items.test_open_arrivals()
        self.items.save_watermark()
        self._vouch_for_what_we_hold_of_revoked_devices()
        self.describe_self(pending=True)

    def describe_self(self, *, pending: bool = False) -> bool:
        """This device's profile was changed (``device --name``): sign it into this device's own
        roster statement, which reaches the other members with the next sync. A locked device
        whose signing key is sealed leaves a note (``Home.rename_pending_file``) and does it at its
        next unlock (``pending``: only if there is such a note). Returns whether it signed one."""
        if self.home is None or not self.initialized:
            return False
        note = self.home.rename_pending_file
        if pending and not note.exists():
            return False
        profile = load_profile(self.home)
        signed = self.membership.describe_self(profile.name, profile.os_description)
        if self.unlocking.device.can_sign:
            note.unlink(missing_ok=True)
        else:
            note.touch(mode=0o600)
        return signed

    def lock(self, reason: str | None = None) -> None:
        self.unlocking.lock(reason)  # the test-open watermark stays: it is no secret

    def require_signing_key(self, action: str) -> None:
        """SigningKeyLocked naming ``action`` unless this device can sign now (see ``Unlocking``)."""
        self.unlocking.require_signing_key(action)

    def unlocked_keyring(self) -> Keyring:
        """The vault keys of every epoch (VaultLocked while locked): what sealing a backup needs."""
        return self.unlocking.require_unlocked()

    def change_password(self, new_password: str, *, keyring: Keyring | None = None) -> None:
        """Re-wrap the keyring under a new password (see ``Unlocking.change_password``)."""
        self.unlocking.change_password(self.header, new_password, keyring=keyring)

    def open_for_password_change(self, header: VaultHeader, *, kek: bytes | None = None,
                                 recovery_key: RecoveryKey | None = None) -> Keyring:
        return self.unlocking.open_for_password_change(header, kek=kek, recovery_key=recovery_key)

    def set_password(self, kdf: KdfParameters, kek: bytes, *, keyring: Keyring | None = None,
                     proof: str | None = None) -> None:
        self.unlocking.set_password(self.header, kdf, kek, keyring=keyring, proof=proof)

    # --- membership (Membership, LinkStamps) -----------------------------------------------------

    @property
    def initialized(self) -> bool:
        return self.membership.initialized

    @property
    def header(self) -> VaultHeader:
        """The stored header, verified against its author's signing key."""
        return self.membership.header

    @property
    def vault_id(self) -> bytes:
        return self.membership.vault_id

    @property
    def roster(self) -> Roster:
        return self.membership.roster

    def enroll(self, member: DevicePublicKeys, name: str, os_description: str) -> RosterEntry:
        """Vouch for another device: from now on it is a member (pairing calls this after the code
        is confirmed on both devices)."""
        return self.membership.enroll(member, name, os_description)

    def join(self, header: VaultHeader, entries: Iterable[RosterEntry], partner: DevicePublicKeys,
             name: str = "this device", os_description: str = "unknown") -> None:
        """Become a member of the vault that ``partner`` (confirmed by pairing) belongs to.

        ``entries`` must include the partner's entry for this device. Everything else (the
        revisions) arrives by sync.

        A home restored from a backup already holds the vault: it may join that same vault (and
        no other), keeping everything it holds; the header is replaced only by a newer one.
        """
        rejoining = self.initialized
        replace_header = self.membership.join(header, entries, partner, name, os_description)
        if rejoining:
            # it may hold more of a device revoked meanwhile (the one that made the backup, say)
            # than the revoker did: say so, so every member keeps accepting it
            self._vouch_for_what_we_hold_of_revoked_devices()
            if replace_header:
                self.unlocking.adopt(header)

    def _vouch_for_what_we_hold_of_revoked_devices(self) -> None:
        if self.membership.vouch_for_what_we_hold_of_revoked_devices():
            self.items.forget_index()  # what is pruned changed

    @property
    def awaiting_rejoin(self) -> bool:
        """Restored from a backup and vouched for by no other member yet: it may ``join`` its vault."""
        return self.membership.awaiting_rejoin

    def member_for_noise_key(self, noise_public: bytes) -> Member | None:
        """The current member whose Noise static key this is (connections are pinned to these)."""
        return self.membership.member_for_noise_key(noise_public)

    def revoked_device_for_noise_key(self, noise_public: bytes) -> DeviceId | None:
        return self.membership.revoked_device_for_noise_key(noise_public)

    def revocations_of(self, device_id: DeviceId) -> list[RosterEntry]:
        return self.membership.revocations_of(device_id)

    @property
    def removal(self) -> Removal | None:
        """This device was removed from the vault (by whom), or None."""
        return self.membership.removal

    def find_member(self, reference: str) -> DeviceId:
        """A current member by device id, unique id prefix, or exact name."""
        return self.membership.find_member(reference)

    def vouched_for_only_by(self, device_id: DeviceId) -> list[Member]:
        return self.membership.vouched_for_only_by(device_id)

    def revoke(self, device_id: DeviceId, password: str) -> RosterEntry:
        """Revoke a member and rotate the vault key (see ``Membership.revoke``)."""
        return self.membership.revoke(device_id, password)

    def revoke_prepared(self, device_id: DeviceId, kdf: KdfParameters, kek: bytes) -> RosterEntry:
        return self.membership.revoke_prepared(device_id, kdf, kek)

    def outgoing_roster(self) -> list[RosterEntry]:
        return self.membership.outgoing_roster()

    def sync_hashes(self) -> tuple[bytes, bytes]:
        return self.membership.sync_hashes()

    def previous_discovery_keys(self) -> list[bytes]:
        return self.membership.previous_discovery_keys()

    def next_link_stamp(self, now_ns: int) -> int:
        return self.link_stamps.next(now_ns)

    def admit_link_stamp(self, device_id: DeviceId, stamp: int) -> bool:
        return self.link_stamps.admit(device_id, stamp)

    def save_link_stamps(self) -> None:
        self.link_stamps.save()

    # --- the audit log (AuditTrail) --------------------------------------------------------------

    @property
    def audit_via(self) -> str:
        """Recorded as the ``via`` of unlocks, password changes and imports ("daemon" in the daemon)."""
        return self.audit_trail.via

    @audit_via.setter
    def audit_via(self, via: str) -> None:
        self.audit_trail.via = via

    @property
    def audit_public_keys(self) -> tuple[bytes, bytes]:
        return self.audit_trail.public_keys

    def audit(self, event: str, **details: str | int) -> AuditEntry:
        return self.audit_trail.record(event, **details)

    def audit_rejection(self, reason: str, *, peer: str | None = None, device_id: DeviceId | None = None) -> None:
        self.audit_trail.rejection(reason, peer=peer, device_id=device_id)

    def audit_refused_attempt(self, event: str, method: str) -> None:
        self.audit_trail.refused_attempt(event, method)

    def flush_audit(self, *, everything: bool = False) -> None:
        self.audit_trail.flush(everything=everything)


    # --- items (Items) ---------------------------------------------------------------------------

    def find(self, reference: str, *, deleted: bool | None = False) -> ItemView:
        return self.items.find(reference, deleted=deleted)

    def find_summary(self, reference: str, *, deleted: bool | None = False) -> ItemSummary:
        """``find`` without decrypting the item: what a listing shows of it."""
        return self.items.find_summary(reference, deleted=deleted)

    def summaries(self, *, deleted: bool | None = False) -> list[ItemSummary]:
        """What a listing or a search reads of every live item (deleted ones; all for None)."""
        return self.items.summaries(deleted=deleted)

    def view(self, item_id: ItemId) -> ItemView:
        """One item whole, by id (KeyError if there is none)."""
        return self.items.view(item_id)

    def list_items(self, *, deleted: bool = False) -> list[ItemView]:
        """Every item whole (each decrypted: ``summaries`` is what a listing needs)."""
        return self.items.list_items(deleted=deleted)

    def conflicts(self) -> list[ItemView]:
        return self.items.conflicts()

    def conflict_count(self) -> int:
        return self.items.conflict_count()

    def get(self, reference: str) -> ItemView:
        return self.items.get(reference)

    def created(self, item_id: ItemId) -> int | None:
        """The time of the item's first revision (unix seconds, its author's claim), or None."""
        return self.items.created(item_id)

    def history(self, reference: str) -> list[HistoryEntry]:
        return self.items.history(reference)

    def add(self, title: str, fields: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> ItemView:
        return self.items.add(title, fields)

    def add_many(self, contents: Iterable[ItemContent],
                 progress: Callable[[int], None] | None = None) -> list[ItemView]:
        return self.items.add_many(contents, progress)

    def edit(self, reference: str, set_fields: Mapping[str, str] | Iterable[tuple[str, str]] = (),
             remove: Iterable[str] = (), title: str | None = None) -> ItemView:
        return self.items.edit(reference, set_fields, remove, title)

    def delete(self, reference: str) -> ItemView:
        return self.items.delete(reference)

    def restore(self, reference: str, revision: str | None = None) -> ItemView:
        return self.items.restore(reference, revision)

    def resolve_conflict(self, reference: str, take: str | None = None,
                         set_fields: Mapping[str, str] | None = None, title: str | None = None) -> ItemView:
        return self.items.resolve_conflict(reference, take, set_fields, title)

    def merge_pending(self, item_ids: Iterable[ItemId] | None = None) -> list[ItemView]:
        return self.items.merge_pending(item_ids)

    def check(self) -> CheckReport:
        return self.items.check()

    # --- intake and replication (Intake) ---------------------------------------------------------

    def knowledge(self) -> VersionVector:
        return self.intake.knowledge()

    def revisions_missing_from(self, knowledge: VersionVector) -> Iterator[Revision]:
        return self.intake.revisions_missing_from(knowledge)

    def state_digest(self) -> StateDigest:
        return self.intake.state_digest()

    def receive(self, revisions: Iterable[Revision]) -> list[Revision]:
        return list(self.intake.receive_records(None, (), revisions).revisions)

    def receive_records(self, header: VaultHeader | None, entries: Iterable[RosterEntry],
                        revisions: Iterable[Revision], verified: Mapping[int, DevicePublicKeys] | None = None,
                        ) -> Received:
        """Admit a batch from another member; works while locked (see ``Intake.receive_records``)."""
        return self.intake.receive_records(header, entries, revisions, verified)


def home_holds_vault(home: Home) -> bool:
    """Whether ``home``'s database holds a vault; creates and changes nothing (no database: False)."""
    if not home.database.exists():
        return False
    store = Store.open(home.database)
    try:
        return store.header_record() is not None
    finally:
        store.close()
