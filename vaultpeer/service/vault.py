"""A device's vault: the store and device identity, plus the keyring while unlocked.

This is the one place that turns person-level operations (add, edit, delete, restore, resolve a
conflict, change the password) into sealed, signed revisions, and the one place that admits
records from elsewhere (``receive_records``): the roster entries, header and revisions of a batch
are all verified against the vault's roster before anything is stored, and one bad record rejects
the whole batch. Receiving works while locked; merging needs the vault key.
"""

import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from types import MappingProxyType

from vaultpeer.core.audit import AuditEntry, AuditKey, RejectionLimiter, address_detail, printable_name
from vaultpeer.core.errors import (
    AlreadyInitialized,
    IntegrityError,
    InvalidInput,
    NoVault,
    NotFound,
    SigningKeyLocked,
    VaultLocked,
    VaultpeerError,
    WrongPassword,
    WrongRecoveryKey,
)
from vaultpeer.core.digest import StateDigest
from vaultpeer.core.history import causal_order, displayed_head
from vaultpeer.core.identity import DeviceId, DeviceKeys, DevicePublicKeys
from vaultpeer.core.item import Field, ItemContent, ItemId, resolve_reference
from vaultpeer.core.kdf import SALT_SIZE, KdfParameters
from vaultpeer.core.keys import Keyring, RecoveryKey, VaultHeader, check_successor, create_vault, header_rank
from vaultpeer.core.merge import TITLE, Candidate, ItemGraph, MergedItem, Register
from vaultpeer.core.revision import Revision, RevisionId, open_revision, seal_revision
from vaultpeer.core.roster import Member, Roster, RosterEntry, revoke, vouch
from vaultpeer.core.transport import STAMP_RESERVE, next_stamp, stamp_is_fresh
from vaultpeer.core.vclock import VersionVector
from vaultpeer.service.device import (
    SEALED,
    load_or_create_audit_key,
    load_or_create_keys,
    secure_signing_key,
    signing_key_state,
)
from vaultpeer.service.home import Home
from vaultpeer.core.audit import StoredRow
from vaultpeer.service.store import Store
from vaultpeer.service.parallel_verify import verify_revisions


class Conflict(VaultpeerError):
    code = "conflict"


_NO_CONFLICTS: Mapping = MappingProxyType({})
#: Audit events that a flood could repeat: written through a RejectionLimiter (Vault._audit_limited).
_FLOODABLE_EVENTS = ("peer.rejected", "unlock.failed", "password.change_failed")
#: Quarantined revisions recorded in the audit log, at most, per process (a flood stays bounded).
_MAX_AUDITED_UNREADABLE = 256
_OPAQUE_TITLE = "(unreadable revision)"


@dataclass(frozen=True, repr=False, slots=True)
class ItemView:
    """An item as shown to its owner: the merged content of its heads, and its state."""

    id: ItemId
    title: str
    fields: tuple[Field, ...]
    revision: RevisionId
    deleted: bool
    #: True while concurrent edits left a field with several values (see ``conflicts``).
    conflict: bool
    heads: tuple[RevisionId, ...]
    flags: frozenset[str] = frozenset()
    conflicts: Mapping[Register, tuple[Candidate, ...]] | None = None
    #: Heads that are opaque (quarantined: they do not decrypt; or pruned: by a revoked device past
    #: its cutoff). The view shows what the readable revisions say; the next edit supersedes them.
    opaque_heads: tuple[RevisionId, ...] = ()

    @property
    def content(self) -> ItemContent:
        return ItemContent(self.title, self.fields, self.flags)

    def __repr__(self) -> str:
        return f"ItemView({self.id}, revision={self.revision}, redacted)"


@dataclass(frozen=True, repr=False)
class HistoryEntry:
    revision: RevisionId
    parents: tuple[RevisionId, ...]
    deleted: bool
    is_head: bool
    title: str
    fields: tuple[Field, ...]

    def __repr__(self) -> str:
        return f"HistoryEntry({self.revision}, redacted)"


@dataclass(frozen=True)
class CheckReport:
    database_ok: bool
    revisions_checked: int
    bad_signatures: tuple[str, ...]
    undecryptable: tuple[str, ...]
    decrypted: bool
    #: Revision ids under which two different revisions were met (evidence kept; see ``equivocations``).
    equivocations: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.database_ok and not self.bad_signatures and not self.undecryptable and not self.equivocations


@dataclass(frozen=True, repr=False)
class HeldRecords:
    """Everything a vault holds (what a backup keeps)."""

    header: VaultHeader
    anchors: tuple[DevicePublicKeys, ...]
    roster: tuple[RosterEntry, ...]
    revisions: tuple[Revision, ...]

    def __repr__(self) -> str:
        return f"HeldRecords({len(self.roster)} roster entries, {len(self.revisions)} revisions)"


@dataclass(frozen=True)
class Received:
    """What a batch changed."""

    revisions: tuple[Revision, ...]
    header_replaced: bool
    roster_changed: bool
    #: New evidence of equivocation (two different revisions under one id) found in the batch.
    equivocations: int = 0


class Vault:
    def __init__(self, store: Store, device: DeviceKeys, *, home: Home | None = None,
                 allow_insecure_test_kdf: bool = False, audit_key: AuditKey | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.home = home
        #: Monotonic seconds, for the audit log's per-minute counts (the daemon passes trio's clock).
        self._clock = clock
        self._store = store
        #: The full keys while unlocked (or while the seed is still in clear on disk); the
        #: public-only form (``can_sign`` False) while locked with the seed sealed.
        self.device = device
        #: Signs the audit log, locked or not (a vault without a home gets one for its lifetime).
        self._audit_key = audit_key or AuditKey.generate()
        self._allow_insecure_test_kdf = allow_insecure_test_kdf
        self._keyring: Keyring | None = None
        self._kek: bytes | None = None
        self._index: dict[ItemId, ItemView] | None = None
        self._verified_header: tuple[bytes, VaultHeader] | None = None
        self._roster: Roster | None = None
        #: (the store's data_version, the state digest it had then)
        self._digest: tuple[int, StateDigest] | None = None
        #: Recorded as the ``via`` of unlocks, password changes and imports ("daemon" in the daemon).
        self.audit_via = "cli"
        #: Events that a flood could repeat, each written at most once a minute per source, with a count.
        self._limiters = {event: RejectionLimiter() for event in _FLOODABLE_EVENTS}
        #: Revisions found not to decrypt with the vault's keys (quarantined; see ``_open``).
        self._unreadable: set[RevisionId] = set()
        #: The arrival number up to which every stored revision was test-opened (while unlocked).
        self._opened_through: int | None = None
        #: Called after every commit of records this device made (revisions it sealed, a member it
        #: admitted or revoked, a new password), with the ids of the items written (empty for a
        #: roster or header change): how the daemon learns there is something to push, whichever
        #: front end made the change.
        self.on_local_commit: list[Callable[[list[str]], None]] = []
        #: Member handshake stamps (``next_link_stamp``, ``admit_link_stamp``), loaded on first use.
        self._stamp_last_sent: int | None = None
        self._stamp_ceiling = 0
        self._stamps_accepted: dict[DeviceId, int] | None = None
        self._stamps_unsaved: set[DeviceId] = set()
        self._closed = False
        #: Why the vault locked itself, if it did (a rotated key this device cannot open).
        self.locked_reason: str | None = None

    @classmethod
    def open(cls, home: Home, *, allow_insecure_test_kdf: bool = False,
             clock: Callable[[], float] = time.monotonic) -> "Vault":
        home.ensure()
        device = load_or_create_keys(home)
        return cls(Store.open(home.database), device, home=home, allow_insecure_test_kdf=allow_insecure_test_kdf,
                   audit_key=load_or_create_audit_key(home), clock=clock)

    def close(self) -> None:
        """Lock, write what is pending, close the store (once: a second call does nothing)."""
        if self._closed:
            return
        if self._opened_through is not None and self._opened_through != self._store.opened_through():
            self._store.set_opened_through(self._opened_through)  # how far it test-opened, for the next process
        self.save_link_stamps()
        self.lock()
        self.flush_audit(everything=True)
        self._store.close()
        self._closed = True

    def __enter__(self) -> "Vault":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "locked" if self.locked else "unlocked"
        return f"Vault(device={self.device.device_id.short}…, {state})"

    # --- what other modules read and write through the vault (the store is its own) --------------

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Several vault operations, all or nothing (an import with its audit entry, a join with
        the records that come with it). Nested use joins the outer transaction."""
        with self._store.transaction():
            yield

    @property
    def store_id(self) -> bytes:
        """Random per database: a peer that sees it change knows this store was rebuilt."""
        return self._store.store_id

    def counts(self) -> dict[str, int]:
        """``{"items", "revisions"}`` as stored (readable while locked)."""
        return self._store.counts()

    def conflicted_item_count(self) -> int:
        """Items stored with several heads (readable while locked)."""
        return self._store.conflicted_item_count()

    def audit_rows(self, newest: int | None = None) -> list[StoredRow]:
        """This device's audit log as stored, oldest first (the ``newest`` entries only, if given)."""
        return self._store.audit_rows(newest=newest)

    def held_records(self) -> HeldRecords:
        """Everything the vault holds, read in one transaction (one consistent state: a backup)."""
        with self._store.transaction():
            return HeldRecords(self.header, tuple(self._store.anchors()), tuple(self._store.roster_entries()),
                               tuple(self._store.all_revisions()))

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

    def revisions_in_leaves(self, prefixes: Iterable[bytes]) -> list[Revision]:
        """The revisions of the items whose ids start with one of ``prefixes`` (a digest repair)."""
        return self._store.revisions_in_leaves(prefixes)

    # --- header, roster, keys and locking --------------------------------------------------------

    @property
    def initialized(self) -> bool:
        return self._store.header_record() is not None

    @property
    def header(self) -> VaultHeader:
        """The stored header, verified against its author's signing key."""
        record = self._store.header_record()
        if record is None:
            raise NoVault()
        if self._verified_header is None or self._verified_header[0] != record:
            header = VaultHeader.from_bytes(record)
            header.verify(self.roster_for(header.vault_id).known_keys(header.author))
            self._verified_header = (record, header)
        return self._verified_header[1]

    @property
    def vault_id(self) -> bytes:
        return self.header.vault_id

    def roster_for(self, vault_id: bytes) -> Roster:
        if self._roster is None or self._roster.vault_id != vault_id:
            self._roster = Roster(vault_id, self._store.anchors(), self._store.roster_entries())
        return self._roster

    @property
    def roster(self) -> Roster:
        return self.roster_for(self.vault_id)

    @property
    def allows_insecure_test_kdf(self) -> bool:
        return self._allow_insecure_test_kdf

    @property
    def locked(self) -> bool:
        return self._keyring is None

    def init(self, password: str, kdf: KdfParameters, name: str = "this device",
             os_description: str = "unknown") -> RecoveryKey:
        """Create this device's vault. Returns the recovery key, which is not stored anywhere."""
        if self.initialized:
            raise AlreadyInitialized()
        self._require_own_signing_key()
        kdf.check_strength(allow_insecure_test_kdf=self._allow_insecure_test_kdf)
        _check_new_password(password)
        kek = kdf.derive(password)
        header, keyring, recovery_key = create_vault(kek, kdf, self.device)
        with self._store.transaction():
            self._store.put_anchor(self.device.public)
            self._store.put_roster_entries(
                [vouch(header.vault_id, self.device, self.device.public, name, os_description)]
            )
            self._store.put_header_record(header.to_bytes())
        self._roster_changed()
        self.device = self._unsealed_keys(keyring)
        self._keyring, self._kek, self._index = keyring, kek, None
        self._opened_through = 0  # nothing stored yet: nothing to test-open
        self.audit("vault.created", via=self.audit_via)
        return recovery_key

    def enroll(self, member: DevicePublicKeys, name: str, os_description: str) -> RosterEntry:
        """Vouch for another device: from now on it is a member (pairing calls this after the code
        is confirmed on both devices)."""
        entry = vouch(self.vault_id, self.device, member, name, os_description)
        self._store.put_roster_entries([entry])
        self._roster_changed()
        self._committed_here([])
        return entry

    def join(self, header: VaultHeader, entries: Iterable[RosterEntry], partner: DevicePublicKeys,
             name: str = "this device", os_description: str = "unknown") -> None:
        """Become a member of the vault that ``partner`` (confirmed by pairing) belongs to.

        ``entries`` must include the partner's entry for this device. Everything else (the
        revisions) arrives by sync.

        A home restored from a backup already holds the vault: it may join that same vault (and
        no other), keeping everything it holds; the header is replaced only by a newer one.
        """
        rejoining = self.initialized
        if not rejoining:
            self._require_own_signing_key()
        if rejoining and header.vault_id != self.vault_id:
            raise AlreadyInitialized(
                f"this device holds another vault ({self.vault_id.hex()}) than the one it tried to join "
                f"({header.vault_id.hex()}): a restored home can only rejoin the vault its backup came from"
            )
        vault_id = header.vault_id
        anchors = [self.device.public, partner]
        own = [vouch(vault_id, self.device, partner, "paired device", "unknown"),
               vouch(vault_id, self.device, self.device.public, name, os_description)]
        held_anchors = self._store.anchors() if rejoining else []
        held_entries = self._store.roster_entries() if rejoining else []
        roster = Roster(vault_id, [*held_anchors, *anchors], held_entries).with_entries([*entries, *own])
        if self.device.device_id not in roster.members or partner.device_id not in roster.members:
            raise IntegrityError()
        header.verify(roster.keys_of(header.author))
        header.kdf.check_strength(allow_insecure_test_kdf=self._allow_insecure_test_kdf)
        if rejoining:
            check_successor(self.header, header)
        replace_header = not rejoining or (header_rank(header, header.author in roster.members)
                                           > header_rank(self.header, self.header.author in roster.members))
        with self._store.transaction():
            for anchor in anchors:
                self._store.put_anchor(anchor)
            self._store.put_roster_entries(roster.entries.values())
            if replace_header:
                self._store.put_header_record(header.to_bytes())
        self._roster_changed()
        if rejoining:
            # it may hold more of a device revoked meanwhile (the one that made the backup, say)
            # than the revoker did: say so, so every member keeps accepting it
            self._vouch_for_what_we_hold_of_revoked_devices()
            if replace_header:
                self._adopt_keyring(header)

    @property
    def awaiting_rejoin(self) -> bool:
        """Restored from a backup and vouched for by no other member yet: it may ``join`` its vault.

        (A founder that never paired has no other anchor; a paired device has its partner's word.)
        """
        if not self.initialized:
            return False
        me = self.device.device_id
        member = self.roster.members.get(me)
        return (member is not None and member.added_by == me
                and any(anchor.device_id != me for anchor in self._store.anchors()))

    def unlock(self, password: str) -> None:
        self.unlock_with_kek(self.derive_kek(password))

    def derive_kek(self, password: str) -> bytes:
        """The slow step of unlocking, on its own so a daemon can run it in a thread."""
        header = self.header
        header.kdf.check_strength(allow_insecure_test_kdf=self._allow_insecure_test_kdf)
        return header.password_kek(password)

    def unlock_with_kek(self, kek: bytes) -> None:
        try:
            keyring = self.header.open_with_kek(kek)
        except WrongPassword:
            self.audit("unlock.failed", via=self.audit_via, method="password", reason="wrong_password")
            raise
        self.device = self._unsealed_keys(keyring)
        self._keyring, self._kek = keyring, kek
        self._unlocked(method="password")

    def _unlocked(self, *, method: str) -> None:
        """What every unlock does once the keyring (and so the signing key) is at hand: record it,
        test-open what arrived while locked (quarantining junk), and do what had to wait for the
        signing key (say what it holds of revoked devices)."""
        self.locked_reason = None
        self._unreadable.clear()  # the keys may have changed since: what did not open is tried again
        self.audit("unlock", via=self.audit_via, method=method)
        self._test_open_arrivals()
        self._store.set_opened_through(self._opened_through)
        self._vouch_for_what_we_hold_of_revoked_devices()

    def member_for_noise_key(self, noise_public: bytes) -> Member | None:
        """The current member whose Noise static key this is (connections are pinned to these)."""
        if not self.initialized:
            return None
        return next((m for m in self.roster.members.values() if m.keys.noise_public == noise_public), None)

    def find_member(self, reference: str) -> DeviceId:
        """A current member by device id, unique id prefix, or exact name."""
        members = self.roster.members if self.initialized else {}
        try:
            return DeviceId.parse(reference)
        except ValueError:
            wanted = reference.replace("-", "").upper()
            matches = [d for d, m in members.items()
                       if wanted and (str(d).replace("-", "").startswith(wanted) or m.name == reference)]
            if len(matches) == 1:
                return matches[0]
            raise NotFound("no single member matches that device id or name") from None

    def revoke(self, device_id: DeviceId, password: str) -> RosterEntry:
        """Revoke a member: a sticky roster entry, and a rotated vault key for new revisions, wrapped
        for the master password under a fresh salt (so a device that knew only the derived key opens
        nothing new). ``password`` must be the current master password.

        Its revisions up to the cutoff (the highest counter up to which this device holds all of
        them) stay valid everywhere; later ones are refused and pruned by every member. Devices it
        vouched for are vouched for again by this device, so they stay members. It keeps whatever it
        already had: revocation cannot take data back.
        """
        kdf, kek = prepare_rotation(self.header, password, allow_insecure_test_kdf=self._allow_insecure_test_kdf)
        return self.revoke_prepared(device_id, kdf, kek)

    def vouched_for_only_by(self, device_id: DeviceId) -> list[Member]:
        """The members that only ``device_id`` vouches for (besides themselves): devices it added.
        Revoking it vouches for them again (they may be the person's own), so `unpair` names them:
        a stolen device could have added its own."""
        roster = self.roster
        return [m for m in roster.members.values()
                if m.device_id not in (device_id, self.device.device_id)
                and roster.vouchers_of(m.device_id) <= {device_id}]

    def revoke_prepared(self, device_id: DeviceId, kdf: KdfParameters, kek: bytes) -> RosterEntry:
        """The quick step of ``revoke``, with what ``prepare_rotation`` derived (a daemon runs the
        slow step in a thread)."""
        keyring = self._sealing_keyring()
        roster = self.roster
        member = roster.members.get(device_id)
        if member is None:
            raise NotFound("no current member has that device id")
        if device_id == self.device.device_id:
            raise InvalidInput("a device cannot revoke itself; revoke it from another member")
        version = 1 + max((e.version for e in roster.entries.values() if e.key == (device_id, self.device.device_id)),
                          default=0)
        cutoff = self.knowledge().get(device_id)
        entries = [revoke(self.vault_id, self.device, member, cutoff, version)]
        for other in roster.members.values():
            if other.device_id not in (device_id, self.device.device_id):
                own = roster.entries.get((other.device_id, self.device.device_id))
                entries.append(vouch(self.vault_id, self.device, other.keys, other.name, other.os_description,
                                     version=(own.version + 1) if own else 1))
        rotated = keyring.rotated()
        header = self.header.with_keyring(rotated, kek, kdf, self.device)
        with self._store.transaction():
            self._store.put_roster_entries(entries)
            self._store.put_header_record(header.to_bytes())
        self._roster_changed()
        self._keyring, self._kek = rotated, kek
        self._committed_here([])
        self.audit("device.revoked", device_id=str(device_id), device_name=member.name)
        return entries[0]

    def unlock_with_recovery_key(self, recovery_key: RecoveryKey) -> None:
        """Open with the recovery key; set a new password next (``change_password``)."""
        try:
            keyring = self.header.open_with_recovery_key(recovery_key)
        except WrongRecoveryKey:
            self.audit("unlock.failed", via=self.audit_via, method="recovery_key", reason="wrong_recovery_key")
            raise
        self.device = self._unsealed_keys(keyring)
        self._keyring, self._kek = keyring, None
        self._unlocked(method="recovery_key")

    def lock(self, reason: str | None = None) -> None:
        self._keyring = self._kek = self._index = None  # the test-open watermark stays: it is no secret
        self.locked_reason = reason
        self._drop_signing_key_if_sealed()

    # --- the signing key, sealed under the vault's keys (vaultpeer.service.device, core/signing_seal.py) ---

    def _unsealed_keys(self, keyring: Keyring) -> DeviceKeys:
        """This device's full keys, the seed opened with ``keyring``. A seed still in clear on disk
        is sealed now (and its clear file removed), one sealed under an older epoch resealed."""
        if self.home is None:
            return self.device  # keys held only in memory (tests): nothing on disk to seal
        return secure_signing_key(self.home, self.device, keyring)

    def _drop_signing_key_if_sealed(self) -> None:
        """While locked, the seed is at hand only if it is still in clear on disk anyway."""
        if self.home is not None and self.device.can_sign and signing_key_state(self.home) == SEALED:
            self.device = self.device.without_signing_key()

    def _require_own_signing_key(self) -> None:
        """Creating or joining a vault signs with a key in clear; a sealed one belongs to a vault
        this home no longer holds (its database was removed), whose keys are gone with it."""
        if not self.device.can_sign:
            raise SigningKeyLocked(
                "this home's signing key is sealed under the keys of a vault it no longer holds: "
                "create or join a vault in a new home (--home DIR)")

    def require_signing_key(self, action: str) -> None:
        """SigningKeyLocked naming ``action`` (e.g. "admitting a device") unless this device can sign
        now: said before the action starts rather than half-way through."""
        if not self.device.can_sign:
            raise SigningKeyLocked(f"unlock the vault first: {action} is signed with this device's key, "
                                   "which is sealed by the vault's keys while it is locked")

    @property
    def audit_public_keys(self) -> tuple[bytes, bytes]:
        """The keys ``verify_chain`` accepts for this device's audit log: its identity signing key
        (entries written before the audit key existed) and its audit key."""
        return self.device.public.signing_public, self._audit_key.public

    def change_password(self, new_password: str, *, keyring: Keyring | None = None) -> None:
        """Re-wrap the keyring under a new password (fresh salt, same cost). No item is re-encrypted.

        ``keyring`` is the proof of the old password (or recovery key) when the vault is locked;
        otherwise the unlocked keyring is used.
        """
        kdf, kek = prepare_password(self.header, new_password, allow_insecure_test_kdf=self._allow_insecure_test_kdf)
        self.set_password(kdf, kek, keyring=keyring)

    def open_for_password_change(self, header: VaultHeader, *, kek: bytes | None = None,
                                 recovery_key: RecoveryKey | None = None) -> Keyring:
        """The keyring of ``header``, opened with the current password's KEK or the recovery key:
        the proof a password change asks for while locked. A wrong one is recorded in the audit log."""
        method = "password" if kek is not None else "recovery_key"
        try:
            return header.open_with_kek(kek) if kek is not None else header.open_with_recovery_key(recovery_key)
        except (WrongPassword, WrongRecoveryKey) as exc:
            self.audit("password.change_failed", via=self.audit_via, method=method, reason=exc.code)
            raise

    def set_password(self, kdf: KdfParameters, kek: bytes, *, keyring: Keyring | None = None,
                     proof: str | None = None) -> None:
        """The quick step of a password change, with what ``prepare_password`` derived. ``proof``
        ("password" or "recovery_key") is what opened the keyring, for the audit log."""
        was_unlocked = not self.locked
        proof = proof or ("password" if self._kek is not None else "recovery_key")
        keyring = keyring or self._require_unlocked()
        # proven while locked: the keyring opens the sealed seed for this one signature (and seals
        # a seed still in clear); the vault stays locked
        signer = self.device if was_unlocked else self._unsealed_keys(keyring)
        new_header = self.header.with_password(keyring, kek, kdf, signer)
        with self._store.transaction():
            self._store.put_header_record(new_header.to_bytes())
        if was_unlocked:
            self._kek = kek
        else:
            self._drop_signing_key_if_sealed()  # a seed that was in clear is sealed now
        self._committed_here([])
        self.audit("password.changed", via=self.audit_via, method=proof)

    def _sealing_keyring(self) -> Keyring:
        """The keyring to seal new revisions with: never one older than the header's key epoch. If
        the header moved on to an epoch this device cannot open, it locks and says why."""
        keyring = self._require_unlocked()
        if keyring.current_epoch < self.header.key_epoch:
            self._adopt_keyring(self.header)
            keyring = self._require_unlocked()
        return keyring

    def unlocked_keyring(self) -> Keyring:
        """The vault keys of every epoch (VaultLocked while locked): what sealing a backup needs."""
        return self._require_unlocked()

    def _require_unlocked(self) -> Keyring:
        if not self.initialized:
            raise NoVault()
        if self._keyring is None:
            raise VaultLocked()
        return self._keyring

    # --- the audit log (vaultpeer.core.audit; `vaultpeer log`) ------------------------------------

    def audit(self, event: str, **details: str | int) -> AuditEntry:
        """Append a signed entry to this device's audit log (works locked, and with no vault).

        Details are checked against the event's allowed keys and kinds (never a secret); a
        ``device_name`` or ``peer``, which may come from a peer, is first made acceptable."""
        if "device_name" in details:
            details["device_name"] = printable_name(str(details["device_name"]))
        if "peer" in details:
            details["peer"] = address_detail(str(details["peer"]))
        now = int(time.time())
        return self._store.append_audit(lambda seq, previous: AuditEntry.create(
            self._audit_key, seq=seq, time=now, previous=previous, event=event, details=details))

    def audit_rejection(self, reason: str, *, peer: str | None = None, device_id: DeviceId | None = None) -> None:
        """Record input refused from the network, at most one entry per source and minute (with a
        count), so that a flood cannot fill the disk (``RejectionLimiter``)."""
        details: dict[str, str] = {"reason": reason}
        if peer is not None:
            details["peer"] = peer
        if device_id is not None:
            details["device_id"] = str(device_id)
        source = peer or (str(device_id) if device_id is not None else "unknown")
        self._audit_limited("peer.rejected", source, details)

    def audit_refused_attempt(self, event: str, method: str) -> None:
        """A master-password attempt (``unlock.failed`` or ``password.change_failed``) refused
        unheard because the backoff says wait: recorded as ``rate_limited``, counted per minute."""
        self._audit_limited(event, "local", {"via": self.audit_via, "method": method, "reason": "rate_limited"})

    def _audit_limited(self, event: str, source: str, details: dict[str, str]) -> None:
        for summary, count in self._limiters[event].note(source, details, self._clock()):
            self.audit(event, **summary, count=count)

    def flush_audit(self, *, everything: bool = False) -> None:
        """Write the counts of rejections whose minute has passed (all of them, on close)."""
        now = self._clock()
        for event, limiter in self._limiters.items():
            for summary, count in limiter.due(now, everything=everything):
                self.audit(event, **summary, count=count)

    # --- reading ---------------------------------------------------------------------------------

    def _open(self, revision: Revision, vault_id: bytes, keyring: Keyring, roster: Roster) -> ItemContent | None:
        """A revision's content, or None if it is opaque: pruned (by a revoked device past its
        cutoff, or by a non-member), or unreadable (validly signed, but it does not open with the
        vault's keys: quarantined, so it cannot make its item, or any other, unreadable). A revision
        whose signature fails (the disk was edited) is an IntegrityError."""
        if roster.prunes(revision.revision_id) or revision.revision_id in self._unreadable:
            return None
        try:
            return open_revision(vault_id, keyring, revision)
        except IntegrityError:
            # signed by a member, yet junk: quarantined. A bad signature is not a member's doing
            # but an edited disk, and stays an error (raised by verify).
            revision.verify(vault_id, roster.known_keys(revision.author))
            self._quarantine(revision)
            return None

    @contextmanager
    def _sealing_here(self) -> Iterator[None]:
        """Around storing revisions this device sealed: they need no test-opening, so the watermark
        moves past them if it was caught up (else the next receive would open them all again)."""
        caught_up = self._opened_through is not None and self._opened_through == self._store.last_arrival()
        yield
        if caught_up:
            self._opened_through = self._store.last_arrival()

    def _test_open_arrivals(self) -> None:
        """Open every revision stored since the last time (the watermark is kept in memory while
        unlocked and saved at unlock and close): what does not decrypt is quarantined now."""
        keyring, vault_id, roster = self._require_unlocked(), self.vault_id, self.roster
        last = self._store.opened_through() if self._opened_through is None else self._opened_through
        for arrival, revision in self._store.revisions_arrived_after(last):
            try:
                self._open(revision, vault_id, keyring, roster)
            except IntegrityError:
                pass  # a bad signature: an edited disk, which every read and `check` report
            last = arrival
        self._opened_through = last

    def _quarantine(self, revision: Revision) -> None:
        if revision.revision_id not in self._unreadable:
            self._unreadable.add(revision.revision_id)
            if len(self._unreadable) <= _MAX_AUDITED_UNREADABLE:
                self.audit("revision.unreadable", device_id=str(revision.author), seq=revision.revision_id.seq)

    def _graph(self, item_id: ItemId, vault_id: bytes) -> ItemGraph:
        keyring, roster = self._require_unlocked(), self.roster
        contents = {}
        revisions = self._store.revisions_of(item_id)
        for revision in revisions:
            content = self._open(revision, vault_id, keyring, roster)
            if content is not None:
                contents[revision.revision_id] = content
        return ItemGraph(revisions, contents)

    def _merged(self, item_id: ItemId, item_heads: list[Revision], vault_id: bytes) -> MergedItem:
        return self._graph(item_id, vault_id).merged(h.revision_id for h in item_heads)

    def _view(self, item_id: ItemId, item_heads: list[Revision], vault_id: bytes, roster: Roster) -> ItemView | None:
        """The item as its readable revisions show it; None if none of them reaches a head."""
        shown = displayed_head(item_heads)
        heads = tuple(sorted(r.revision_id for r in item_heads))
        if len(item_heads) == 1:
            content = self._open(shown, vault_id, self._require_unlocked(), roster)
            if content is not None:
                return ItemView(item_id, content.title, content.fields, shown.revision_id, shown.deleted, False,
                                heads, content.flags, _NO_CONFLICTS)
        merged = self._merged(item_id, item_heads, vault_id)
        if not merged.readable:
            return None
        content = merged.content
        opaque = tuple(h.revision_id for h in item_heads
                       if h.revision_id in self._unreadable or roster.prunes(h.revision_id))
        return ItemView(item_id, content.title, content.fields, shown.revision_id, merged.deleted,
                        merged.conflicted, heads, content.flags, dict(merged.conflicts), opaque)

    def _items(self) -> dict[ItemId, ItemView]:
        self._require_unlocked()
        if self._index is None:
            grouped: dict[ItemId, list[Revision]] = {}
            for revision in self._store.all_heads():
                grouped.setdefault(revision.item_id, []).append(revision)
            vault_id, roster = self.vault_id, self.roster
            views = ((item_id, self._view(item_id, heads, vault_id, roster)) for item_id, heads in grouped.items())
            self._index = {item_id: view for item_id, view in views if view is not None}
        return self._index

    def _refresh(self, item_ids: Iterable[ItemId]) -> None:
        if self._index is None:
            return
        vault_id, roster = self.vault_id, self.roster
        for item_id in item_ids:
            view = self._view(item_id, self._store.heads_of(item_id), vault_id, roster)
            if view is None:
                self._index.pop(item_id, None)
            else:
                self._index[item_id] = view

    def find(self, reference: str, *, deleted: bool | None = False) -> ItemView:
        """The item ``reference`` names among live items (``deleted=False``), deleted ones
        (``True``) or all (``None``)."""
        items = self._items()
        try:  # a full id names one item: no need to look at the others
            view = items.get(ItemId.parse(reference.strip()))
        except (InvalidInput, ValueError):
            view = None
        if view is not None and str(view.id) == reference.strip().lower() and (
                deleted is None or view.deleted == deleted):
            return view
        candidates = [(v.id, v.title) for v in items.values() if deleted is None or v.deleted == deleted]
        try:
            return items[resolve_reference(reference, candidates)]
        except NotFound:
            if deleted is False and any(
                v.deleted and (str(v.id).startswith(reference.lower()) or v.title == reference)
                for v in items.values()
            ):
                raise NotFound("that item is deleted: see `vaultpeer ls --deleted` and `vaultpeer restore`") from None
            raise

    def list_items(self, *, deleted: bool = False) -> list[ItemView]:
        views = [v for v in self._items().values() if v.deleted == deleted]
        return sorted(views, key=lambda v: (v.title.casefold(), str(v.id)))

    def conflicts(self) -> list[ItemView]:
        """Items with a conflict or a flag for the person's attention."""
        return [v for v in self.list_items() if v.conflict or v.flags]

    def _verified(self, reference: str, *, deleted: bool | None = False) -> ItemView:
        """Find, then check the heads' signatures: whatever is shown or built upon is verified."""
        view = self.find(reference, deleted=deleted)
        self.verify_heads(view.id)
        return view

    def verify_heads(self, item_id: ItemId) -> None:
        """Check the signatures of an item's heads (IntegrityError if one fails)."""
        vault_id, roster = self.vault_id, self.roster
        for head in self._store.heads_of(item_id):
            head.verify(vault_id, roster.known_keys(head.author))

    def get(self, reference: str) -> ItemView:
        return self._verified(reference)

    def history(self, reference: str) -> list[HistoryEntry]:
        view = self.find(reference, deleted=None)
        vault_id, keyring, roster = self.vault_id, self._require_unlocked(), self.roster
        entries = []
        for revision in causal_order(self._store.revisions_of(view.id)):
            revision.verify(vault_id, roster.known_keys(revision.author))
            content = self._open(revision, vault_id, keyring, roster) or ItemContent(_OPAQUE_TITLE, ())
            entries.append(
                HistoryEntry(
                    revision=revision.revision_id,
                    parents=revision.parents,
                    deleted=revision.deleted,
                    is_head=revision.revision_id in view.heads,
                    title=content.title,
                    fields=content.fields,
                )
            )
        return entries

    # --- writing ---------------------------------------------------------------------------------

    def _commit(self, item_id: ItemId, content: ItemContent, parents: Iterable[RevisionId], *,
                deleted: bool = False) -> ItemView:
        keyring = self._sealing_keyring()
        vault_id = self.vault_id
        with self._store.transaction(), self._sealing_here():
            revision = seal_revision(
                vault_id=vault_id,
                keyring=keyring,
                author=self.device,
                item_id=item_id,
                seq=self._store.next_seq(self.device.device_id),
                parents=parents,
                content=content,
                deleted=deleted,
            )
            self._store.insert_revisions([revision])
        self._refresh([item_id])
        self._committed_here([str(item_id)])
        return self._items()[item_id]

    def _committed_here(self, item_ids: list[str]) -> None:
        for listener in list(self.on_local_commit):
            listener(item_ids)

    def add(self, title: str, fields: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> ItemView:
        return self._commit(ItemId.generate(), ItemContent.build(title, fields), parents=())

    def add_many(self, contents: Iterable[ItemContent],
                 progress: Callable[[int], None] | None = None) -> list[ItemView]:
        """Add several new items as one batch: every revision is sealed and signed, then all are
        stored in one transaction, so either every item exists afterwards or none does (an
        import). ``progress`` is called with the number sealed so far."""
        keyring = self._sealing_keyring()
        vault_id = self.vault_id
        items = [(ItemId.generate(), content) for content in contents]
        with self._store.transaction(), self._sealing_here():
            first_seq = self._store.next_seq(self.device.device_id)
            revisions = []
            for n, (item_id, content) in enumerate(items):
                revisions.append(seal_revision(vault_id=vault_id, keyring=keyring, author=self.device,
                                               item_id=item_id, seq=first_seq + n, parents=(), content=content))
                if progress is not None:
                    progress(n + 1)
            self._store.insert_revisions(revisions)
        self._refresh(item_id for item_id, _ in items)
        if items:
            self._committed_here([str(item_id) for item_id, _ in items])
        index = self._items()
        return [index[item_id] for item_id, _ in items]

    def edit(
        self,
        reference: str,
        set_fields: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        remove: Iterable[str] = (),
        title: str | None = None,
    ) -> ItemView:
        view = self._verified(reference)
        if view.conflict:
            raise Conflict("this item has conflicting values: resolve them first (`vaultpeer conflicts`)")
        current = view.content
        changed = current.edited(set_fields, remove, title)
        if changed == current:
            raise InvalidInput("nothing to change")
        return self._commit(view.id, changed, parents=view.heads)

    def delete(self, reference: str) -> ItemView:
        """Write a tombstone (which keeps the content, so the item can be listed and restored)."""
        view = self._verified(reference)
        return self._commit(view.id, ItemContent(view.title, view.fields), parents=view.heads, deleted=True)

    def restore(self, reference: str, revision: str | None = None) -> ItemView:
        """A new revision with the content of an older one (or, for a deleted item, its last content)."""
        view = self._verified(reference, deleted=None)
        if revision is None:
            if not view.deleted:
                raise InvalidInput("the item is not deleted: name the revision to restore (see `history`)")
            content = ItemContent(view.title, view.fields)
        else:
            content = self._content_of(view, revision)
        return self._commit(view.id, ItemContent(content.title, content.fields), parents=view.heads)

    def _content_of(self, view: ItemView, revision: str) -> ItemContent:
        matches = [r for r in self._store.revisions_of(view.id) if str(r.revision_id) == revision.strip()]
        if not matches:
            raise NotFound("this item has no such revision (see `vaultpeer history`)")
        target = matches[0]
        target.verify(self.vault_id, self.roster.known_keys(target.author))
        content = self._open(target, self.vault_id, self._require_unlocked(), self.roster)
        if content is None:
            raise InvalidInput("that revision cannot be read (it does not decrypt, or its device was revoked "
                               "before it arrived): it cannot be restored or taken")
        return content

    def resolve_conflict(self, reference: str, take: str | None = None,
                         set_fields: Mapping[str, str] | None = None, title: str | None = None) -> ItemView:
        """Settle every conflicting value (and clear the item's flags) in one new revision.

        ``take`` names a revision whose values win; ``set_fields`` and ``title`` type values in.
        Every conflicting field must end up decided, or nothing is written.
        """
        view = self._verified(reference)
        if not view.conflict and not view.flags:
            raise InvalidInput("this item has no conflict to resolve")
        chosen = self._content_of(view, take) if take else None
        set_fields = dict(set_fields or {})
        content = view.content
        updates: dict[str, str | None] = {}
        new_title = title
        for register in view.conflicts or {}:
            if register == TITLE:
                if new_title is None:
                    if chosen is None:
                        raise Conflict("the title is in conflict: pass --take REVISION or --title")
                    new_title = chosen.title
                continue
            name = register[1]
            if name in set_fields:
                continue
            if chosen is None:
                raise Conflict("a field is still in conflict: pass --take REVISION or --field NAME=VALUE")
            field = chosen.field(name)
            updates[name] = field.value if field else None
        set_pairs = {**{n: v for n, v in updates.items() if v is not None}, **set_fields}
        removals = [n for n, v in updates.items() if v is None and content.field(n) is not None]
        resolved = content.edited(set_pairs, removals, new_title)
        return self._commit(view.id, resolved, parents=view.heads)

    def merge_pending(self, item_ids: Iterable[ItemId] | None = None) -> list[ItemView]:
        """Write a merge revision for every item whose heads differ and merge cleanly."""
        vault_id = self.vault_id
        merged_views = []
        candidates = self._store.items_with_several_heads() if item_ids is None else list(item_ids)
        for item_id in candidates:
            heads = self._store.heads_of(item_id)
            if len(heads) < 2:
                continue
            merged = self._merged(item_id, heads, vault_id)
            if merged.needs_merge_revision:
                merged_views.append(
                    self._commit(item_id, merged.content, parents=merged.heads, deleted=merged.deleted)
                )
        return merged_views

    # --- replication -------------------------------------------------------------------------

    def knowledge(self) -> VersionVector:
        return self._store.knowledge()

    def revisions_missing_from(self, knowledge: VersionVector) -> Iterator[Revision]:
        """What the holder of ``knowledge`` lacks, without pruned revisions (``Roster.prunes``:
        held ones stay stored, but are sent to nobody, left out of the state digest and opaque in
        the item views; as a parent, a pruned id counts as held)."""
        return self._store.revisions_after(knowledge, limit=self.roster.revision_limit)

    def state_digest(self) -> StateDigest:
        """The Merkle digest of every item's (unpruned) revisions, content included. Built once,
        then updated for the items changed since (a few hashes per edit); rebuilt whenever another
        process has written the store or the roster changed what is pruned."""
        version = self._store.data_version()
        changed = self._store.take_changed_items()
        rebuild = self._digest is None or self._digest[0] != version
        if rebuild:
            self._roster = None  # another process may have changed the roster too
        limit = self.roster.revision_limit
        limits: dict[bytes, int] = {}

        def kept(rows: list) -> list:  # Roster.prunes on raw rows, one limit looked up per author
            for _, author, _, _ in rows:
                if author not in limits:
                    limits[author] = limit(DeviceId(author))
            return [row for row in rows if row[2] <= limits[row[1]]]

        if rebuild:
            digest = StateDigest.from_revision_rows(kept(self._store.revision_rows()))
        else:
            digest = self._digest[1].updated(kept(self._store.revision_rows_of(changed)), changed)
        self._digest = (version, digest)
        return digest

    def receive(self, revisions: Iterable[Revision]) -> list[Revision]:
        return list(self.receive_records(None, (), revisions).revisions)

    def receive_records(self, header: VaultHeader | None, entries: Iterable[RosterEntry],
                        revisions: Iterable[Revision]) -> Received:
        """Admit a batch from another member; works while locked.

        In order: the roster entries (a forgery rejects the batch; an entry by a device this one
        does not trust is kept but does not count), so that a revocation always lands; then the
        header (for this vault, signed, above the KDF floor, the same recovery key; it replaces ours
        only if it ranks higher: ``header_rank``); then the revisions. A revision the roster no
        longer accepts (a revoked author past its cutoff, a non-member) is dropped, never a reason
        to refuse the batch; every other must be validly signed and causally delivered. A stored
        id met with other content is kept as evidence of equivocation. Otherwise IntegrityError,
        and nothing is stored. Nothing after the commit can fail the batch.
        """
        vault_id = self.vault_id
        entries, revisions = list(entries), list(revisions)
        roster = self.roster.with_entries(entries) if entries else self.roster
        replace_header = header is not None and self._header_wins(header, roster)
        accepted = [r for r in revisions if not roster.prunes(r.revision_id)]
        verify_revisions(accepted, vault_id, [roster.known_keys(r.author) for r in accepted])
        before = {(e.member_id, e.author, e.version) for e in self._store.roster_entries()}
        evidence: list[tuple[Revision, Revision]] = []

        with self._store.transaction():
            if entries:
                self._store.put_roster_entries(entries, drop=roster.dropped)
            if replace_header:
                self._store.put_header_record(header.to_bytes())
            added = self._store.insert_revisions(
                accepted, equivocation=lambda held, other: evidence.append((held, other)), pruned=roster.prunes)
            evidence = [(held, other) for held, other in evidence if self._store.put_equivocation(other)]
        roster_changed = before != {(e.member_id, e.author, e.version) for e in self._store.roster_entries()}
        for held, other in evidence:
            self.audit("revision.equivocation", device_id=str(held.author), seq=held.revision_id.seq,
                       kept=held.record_hash.hex(), other=other.record_hash.hex())
        if roster_changed:
            self._roster_changed()
            self._vouch_for_what_we_hold_of_revoked_devices()
        if replace_header:
            self._adopt_keyring(header)
        if not self.locked:
            self._test_open_arrivals()  # a junk revision is quarantined (and recorded) on arrival
            if roster_changed:
                self._index = None  # what is pruned may have changed
            else:
                self._refresh({r.item_id for r in added})
        return Received(tuple(added), replace_header, roster_changed, len(evidence))

    def _header_wins(self, header: VaultHeader, roster: Roster) -> bool:
        """Whether ``header`` replaces the stored one (IntegrityError if it is not acceptable at all:
        another vault, a forged signature, KDF parameters below the floor, another recovery key).
        A header whose author this device does not know is ignored, not refused."""
        current = self.header
        check_successor(current, header)
        keys = roster.known_keys(header.author)
        if keys is None:
            return False
        header.verify(keys)
        try:
            header.kdf.check_strength(allow_insecure_test_kdf=self._allow_insecure_test_kdf)
        except VaultpeerError:
            raise IntegrityError() from None
        return (header_rank(header, header.author in roster.members)
                > header_rank(current, current.author in roster.members))

    def _roster_changed(self) -> None:
        self._roster = None
        self._digest = None  # what is pruned may have changed

    def _vouch_for_what_we_hold_of_revoked_devices(self) -> None:
        """A revocation's cutoff is the counter up to which its author held all of the revoked
        device's revisions. If this device holds more of it (all of them, up to a higher counter),
        it says so with its own revocation entry: the cutoff that counts is the highest, so every
        member ends up accepting exactly what any member had accepted in order. A revision beyond a
        gap never raises a cutoff, so a gap cannot keep seq space open for a revoked device.

        It needs the signing key: a locked device with the seed sealed does this at its next unlock."""
        if not self.initialized or not self.device.can_sign:
            return
        roster = self.roster
        if self.device.device_id not in roster.members:
            return
        knowledge = self.knowledge()
        entries = []
        for device_id, cutoff in roster.revoked.items():
            held = knowledge.get(device_id)
            keys = roster.known_keys(device_id)
            if held > cutoff and keys is not None:
                own = roster.entries.get((device_id, self.device.device_id))
                member = Member(keys, "revoked device", "unknown", self.device.device_id)
                entries.append(revoke(self.vault_id, self.device, member, held, (own.version + 1) if own else 1))
        if entries:
            self._store.put_roster_entries(entries)
            self._roster_changed()
            self._index = None

    def _adopt_keyring(self, header: VaultHeader) -> None:
        """A newer header arrived. If our derived key opens it, take its keyring. If not (the
        password changed elsewhere, or the key was rotated under a fresh salt, or two devices
        rotated at once and the other won), lock and say why, rather than go on sealing under keys
        the winning header does not hold (or that a revoked device holds)."""
        if self._keyring is None:
            return
        try:
            if self._kek is not None:
                self._keyring = header.open_with_kek(self._kek)
                return
        except VaultpeerError:
            self._kek = None
        # Our key does not open it. Even at the same epoch it may hold another key (two devices
        # rotated at once), so go on with nothing held: lock, and let the password open it.
        self.lock("the vault key was rotated on another device (a device was unpaired, or the "
                  "password changed there): unlock again with the master password")

    def next_link_stamp(self, now_ns: int) -> int:
        """The stamp for a member handshake about to be sent: above every stamp sent before, in
        this process or an earlier one. Stamps are reserved a minute ahead (``STAMP_RESERVE``), so
        the store is written about once a minute of dialling, not on every dial."""
        if self._stamp_last_sent is None:
            self._stamp_ceiling = self._store.link_stamp_ceiling() or 0
            self._stamp_last_sent = self._stamp_ceiling
        stamp = next_stamp(now_ns, self._stamp_last_sent)
        if stamp >= self._stamp_ceiling:
            self._stamp_ceiling = stamp + STAMP_RESERVE
            self._store.set_link_stamp_ceiling(self._stamp_ceiling)
        self._stamp_last_sent = stamp
        return stamp

    def admit_link_stamp(self, device_id: DeviceId, stamp: int) -> bool:
        """Whether a member's handshake stamp is fresh (its first message is not a replay); if it
        is, remember it, so the same message is refused from now on. Kept in memory and written
        by ``save_link_stamps`` (the daemon calls it every few seconds, and ``close`` does)."""
        if self._stamps_accepted is None:
            self._stamps_accepted = self._store.link_stamps_accepted()
        if not stamp_is_fresh(stamp, self._stamps_accepted.get(device_id)):
            return False
        self._stamps_accepted[device_id] = stamp
        self._stamps_unsaved.add(device_id)
        return True

    def save_link_stamps(self) -> None:
        if self._stamps_unsaved and self._stamps_accepted is not None:
            self._store.save_link_stamps_accepted({d: self._stamps_accepted[d] for d in self._stamps_unsaved})
            self._stamps_unsaved.clear()

    def previous_discovery_keys(self) -> list[bytes]:
        """The discovery key of the header before the current one, if it differs: a member that was
        away during a key rotation still advertises under it (and only learns of the rotation once
        found). Works while locked."""
        record = self._store.previous_header_record() if self.initialized else None
        if record is None:
            return []
        try:
            previous = VaultHeader.from_bytes(record)
        except IntegrityError:
            return []
        key = previous.discovery_key
        return [key] if previous.vault_id == self.vault_id and key != self.header.discovery_key else []

    def health(self) -> dict:
        """What `status` shows of the vault's integrity (readable while locked, but for ``unreadable``)."""
        header = self.header
        return {
            "key_epoch": header.key_epoch,
            "equivocations": len(self._store.equivocated_ids()),
            "unreadable": None if self.locked else len(self._unreadable),
            "locked_reason": self.locked_reason,
        }

    def outgoing_roster(self) -> list[RosterEntry]:
        return self.roster.entries_to_replicate()

    def check(self) -> CheckReport:
        """Verify the database, every signature, and (when unlocked) that every revision decrypts."""
        database_ok = self._store.integrity_check()
        vault_id, roster = self.vault_id, self.roster
        keyring = self._keyring
        bad_signatures, undecryptable, checked = [], [], 0
        for revision in self._store.all_revisions():
            checked += 1
            try:
                # stored revisions were admitted under the roster of their time: a later
                # revocation does not make them invalid, so only the signature is checked here
                revision.verify(vault_id, roster.known_keys(revision.author))
            except IntegrityError:
                bad_signatures.append(str(revision.revision_id))
                continue
            if keyring is not None:
                try:
                    open_revision(vault_id, keyring, revision)
                except IntegrityError:
                    self._quarantine(revision)
                    undecryptable.append(str(revision.revision_id))
        equivocations = tuple(str(r) for r in self._store.equivocated_ids())
        return CheckReport(database_ok, checked, tuple(bad_signatures), tuple(undecryptable), keyring is not None,
                           equivocations)


def home_holds_vault(home: Home) -> bool:
    """Whether ``home``'s database holds a vault; creates and changes nothing (no database: False)."""
    if not home.database.exists():
        return False
    store = Store.open(home.database)
    try:
        return store.header_record() is not None
    finally:
        store.close()


MIN_PASSWORD_CHARS = 8


def prepare_password(header: VaultHeader, new_password: str, *,
                     allow_insecure_test_kdf: bool = False) -> tuple[KdfParameters, bytes]:
    """The slow step of a password change: the KDF at the header's cost with a fresh salt. Touches
    no store, so a daemon can run it in a thread."""
    _check_new_password(new_password)
    kdf = replace(header.kdf, salt=os.urandom(SALT_SIZE))
    kdf.check_strength(allow_insecure_test_kdf=allow_insecure_test_kdf)
    return kdf, kdf.derive(new_password)


def prepare_rotation(header: VaultHeader, password: str, *,
                     allow_insecure_test_kdf: bool = False) -> tuple[KdfParameters, bytes]:
    """The slow step of a revocation: check ``password`` against ``header`` (WrongPassword), then
    derive its key under a fresh salt for the rotated keyring. Touches no store (a daemon runs it in
    a thread)."""
    header.kdf.check_strength(allow_insecure_test_kdf=allow_insecure_test_kdf)
    header.open_with_kek(header.password_kek(password))
    kdf = replace(header.kdf, salt=os.urandom(SALT_SIZE))
    return kdf, kdf.derive(password)


def _check_new_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_CHARS:
        raise InvalidInput(f"a master password needs at least {MIN_PASSWORD_CHARS} characters")
