"""Membership: the vault's header and roster (verified, cached), creating the vault, enrolling,
joining and revoking devices, the lookups of members, and the member handshake stamps.

Trust comes from anchors (``vaultpeer.core.roster``); every entry this device writes is signed
with its key, which ``Unlocking`` holds.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from vaultpeer.core.errors import AlreadyInitialized, IntegrityError, InvalidInput, NoVault, NotFound
from vaultpeer.core.identity import DeviceId, DevicePublicKeys
from vaultpeer.core.kdf import KdfParameters
from vaultpeer.core.keys import Keyring, RecoveryKey, VaultHeader, check_successor, create_vault, header_rank
from vaultpeer.core.roster import Member, Roster, RosterEntry, revoke, vouch
from vaultpeer.core.sync import record_hash
from vaultpeer.core.transport import STAMP_RESERVE, next_stamp, stamp_is_fresh
from vaultpeer.service.store import Store
from vaultpeer.service.vault.audit_trail import AuditTrail
from vaultpeer.service.vault.unlocking import Unlocking, check_new_password, prepare_rotation


@dataclass(frozen=True)
class Removal:
    """This device was removed from the vault: a revocation of it counts here. ``by`` is the
    device that signed it (the first by id when several did), ``by_name`` what it is called."""
    by: DeviceId
    by_name: str

    def to_json(self) -> dict:
        return {"by": str(self.by), "by_name": self.by_name}


class Membership:
    def __init__(self, store: Store, unlocking: Unlocking, audit: AuditTrail,
                 committed: Callable[[list[str]], None]):
        self._store = store
        self._unlocking = unlocking
        self._audit = audit
        self._committed = committed
        self._verified_header: tuple[bytes, VaultHeader] | None = None
        self._vault_id: bytes | None = None
        self._roster: Roster | None = None
        #: (header, roster, their hashes for a sync hello): ``sync_hashes``.
        self._sync_hashes: tuple[VaultHeader, Roster, tuple[bytes, bytes]] | None = None
        #: Called whenever the roster changed (what is pruned may have changed with it).
        self.on_change: list[Callable[[], None]] = []

    # --- the header and the roster ---------------------------------------------------------------

    @property
    def initialized(self) -> bool:
        # once a store holds a vault, it always does (``vault_id``)
        return self._vault_id is not None or self._store.header_record() is not None

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
        """The id of the vault this store holds: once it holds one, that never changes (a header
        that replaces it is for the same vault, and a restored home rejoins only its own vault), so
        it is read once, from the verified header, not at every use."""
        if self._vault_id is None:
            self._vault_id = self.header.vault_id
        return self._vault_id

    def roster_for(self, vault_id: bytes) -> Roster:
        if self._roster is None or self._roster.vault_id != vault_id:
            self._roster = Roster(vault_id, self._store.anchors(), self._store.roster_entries(),
                                  me=self._unlocking.device.device_id)
        return self._roster

    @property
    def roster(self) -> Roster:
        return self.roster_for(self.vault_id)

    def sealing_keyring(self) -> Keyring:
        """The keyring to seal new revisions with (``Unlocking.sealing_keyring``) under the current
        header; VaultLocked before the header is read."""
        self._unlocking.require_unlocked()
        return self._unlocking.sealing_keyring(self.header)

    def changed(self) -> None:
        """The stored roster changed: read it again, and tell the listeners."""
        self._roster = None
        for listener in list(self.on_change):
            listener()

    def reread(self) -> None:
        """Read the roster again on next use (another process may have written it)."""
        self._roster = None

    # --- creating, enrolling, joining ----------------------------------------------------------

    def create(self, password: str, kdf: KdfParameters, name: str, os_description: str,
               kek: bytes | None = None) -> RecoveryKey:
        """Create this device's vault, unlocked. Returns the recovery key, which is not stored anywhere.
        ``kek``: ``kdf.derive(password)`` if the caller derived it already (in a worker thread)."""
        if self.initialized:
            raise AlreadyInitialized()
        unlocking = self._unlocking
        unlocking.require_own_signing_key()
        unlocking.check_kdf(kdf)
        check_new_password(password)
        kek = kdf.derive(password) if kek is None else kek
        device = unlocking.device
        header, keyring, recovery_key = create_vault(kek, kdf, device)
        with self._store.transaction():
            self._store.put_anchor(device.public)
            self._store.put_roster_entries([vouch(header.vault_id, device, device.public, name, os_description)])
            self._store.put_header_record(header.to_bytes())
        self.changed()
        unlocking.created(keyring, kek)
        return recovery_key

    def enroll(self, member: DevicePublicKeys, name: str, os_description: str) -> RosterEntry:
        """Vouch for another device: from now on it is a member (pairing calls this after the code
        is confirmed on both devices)."""
        entry = vouch(self.vault_id, self._unlocking.device, member, name, os_description)
        self._store.put_roster_entries([entry])
        self.changed()
        self._committed([])
        return entry

    def join(self, header: VaultHeader, entries: Iterable[RosterEntry], partner: DevicePublicKeys,
             name: str, os_description: str) -> bool:
        """The roster and header of joining the vault ``partner`` belongs to (``Vault.join``);
        returns whether ``header`` replaced the one held (a rejoining home holds one already)."""
        rejoining = self.initialized
        device = self._unlocking.device
        if not rejoining:
            self._unlocking.require_own_signing_key()
        if rejoining and header.vault_id != self.vault_id:
            raise AlreadyInitialized(
                f"this device holds another vault ({self.vault_id.hex()}) than the one it tried to join "
                f"({header.vault_id.hex()}): a restored home can only rejoin the vault its backup came from"
            )
        vault_id = header.vault_id
        anchors = [device.public, partner]
        own = [vouch(vault_id, device, partner, "paired device", "unknown"),
               vouch(vault_id, device, device.public, name, os_description)]
        held_anchors = self._store.anchors() if rejoining else []
        held_entries = self._store.roster_entries() if rejoining else []
        roster = Roster(vault_id, [*held_anchors, *anchors], held_entries).with_entries([*entries, *own])
        if device.device_id not in roster.members or partner.device_id not in roster.members:
            raise IntegrityError()
        header.verify(roster.keys_of(header.author))
        self._unlocking.check_kdf(header.kdf)
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
        self.changed()
        return replace_header

    @property
    def awaiting_rejoin(self) -> bool:
        """Restored from a backup and vouched for by no other member yet: it may ``join`` its vault.

        (A founder that never paired has no other anchor; a paired device has its partner's word.)
        """
        if not self.initialized:
            return False
        me = self._unlocking.device.device_id
        member = self.roster.members.get(me)
        return (member is not None and member.added_by == me
                and any(anchor.device_id != me for anchor in self._store.anchors()))

    # --- looking members up ----------------------------------------------------------------------

    def member_for_noise_key(self, noise_public: bytes) -> Member | None:
        """The current member whose Noise static key this is (connections are pinned to these)."""
        if not self.initialized:
            return None
        return next((m for m in self.roster.members.values() if m.keys.noise_public == noise_public), None)

    def revoked_device_for_noise_key(self, noise_public: bytes) -> DeviceId | None:
        """The revoked device whose Noise static key this is, if any (it is told so, nothing more)."""
        if not self.initialized:
            return None
        roster = self.roster
        return next((d for d in roster.revoked
                     if (keys := roster.known_keys(d)) is not None and keys.noise_public == noise_public), None)

    def revocations_of(self, device_id: DeviceId) -> list[RosterEntry]:
        """The revocations of ``device_id`` that count here: what a ``removed`` message carries."""
        return [e for e in self.outgoing_roster() if e.revoked and e.member_id == device_id]

    @property
    def removal(self) -> Removal | None:
        """Whether this device was removed from the vault (its revocation counts here), and by whom.
        Works while locked."""
        if not self.initialized:
            return None
        roster = self.roster
        me = self._unlocking.device.device_id
        if me not in roster.revoked:
            return None
        authors = sorted(e.author for e in roster.entries.values() if e.revoked and e.member_id == me)
        if not authors:
            return None
        by = authors[0]
        member = roster.members.get(by)
        own = roster.entries.get((by, by))
        name = member.name if member else own.name if own is not None and own.plain else f"device {by.short}"
        return Removal(by, name)

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

    def vouched_for_only_by(self, device_id: DeviceId) -> list[Member]:
        """The members that only ``device_id`` vouches for (besides themselves): devices it added.
        Revoking it vouches for them again (they may be the person's own), so `unpair` names them:
        a stolen device could have added its own."""
        roster = self.roster
        me = self._unlocking.device.device_id
        return [m for m in roster.members.values()
                if m.device_id not in (device_id, me)
                and roster.vouchers_of(m.device_id) <= {device_id}]

    def outgoing_roster(self) -> list[RosterEntry]:
        return self.roster.entries_to_replicate()

    def sync_hashes(self) -> tuple[bytes, bytes]:
        """What a sync ``hello`` says of the header and the roster to replicate (``record_hash`` of
        each), computed again only when either changed (every session sends it)."""
        header, roster = self.header, self.roster
        if self._sync_hashes is None or self._sync_hashes[0] is not header or self._sync_hashes[1] is not roster:
            hashes = (record_hash([header.to_bytes()]),
                      record_hash([e.to_bytes() for e in roster.entries_to_replicate()]))
            self._sync_hashes = (header, roster, hashes)
        return self._sync_hashes[2]

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

    def password_changed_elsewhere(self) -> str | None:
        """The name of the device whose header changed the master password, when the current
        header came from another device and re-wrapped the vault key under a fresh salt at the
        same key epoch as the header it replaced (a password change; a key rotation, which keeps
        the password, starts a new epoch). None otherwise. Works while locked."""
        record = self._store.previous_header_record() if self.initialized else None
        if record is None:
            return None
        header = self.header
        try:
            previous = VaultHeader.from_bytes(record)
        except IntegrityError:
            return None
        if (header.author == self._unlocking.device.device_id or previous.vault_id != header.vault_id
                or previous.key_epoch != header.key_epoch or previous.kdf.salt == header.kdf.salt):
            return None
        member = self.roster.members.get(header.author)
        return member.name if member is not None else f"device {header.author.short}"

    # --- revoking --------------------------------------------------------------------------------

    def revoke(self, device_id: DeviceId, password: str) -> RosterEntry:
        """Revoke a member: a sticky roster entry, and a rotated vault key for new revisions, wrapped
        for the master password under a fresh salt (so a device that knew only the derived key opens
        nothing new). ``password`` must be the current master password.

        Its revisions up to the cutoff (the highest counter up to which this device holds all of
        them) stay valid everywhere; later ones are refused and pruned by every member. Devices it
        vouched for are vouched for again by this device, so they stay members. It keeps whatever it
        already had: revocation cannot take data back.
        """
        kdf, kek = prepare_rotation(self.header, password,
                                    allow_insecure_test_kdf=self._unlocking.allows_insecure_test_kdf)
        return self.revoke_prepared(device_id, kdf, kek)

    def revoke_prepared(self, device_id: DeviceId, kdf: KdfParameters, kek: bytes) -> RosterEntry:
        """The quick step of ``revoke``, with what ``prepare_rotation`` derived (a daemon runs the
        slow step in a thread)."""
        keyring = self.sealing_keyring()
        device = self._unlocking.device
        roster = self.roster
        member = roster.members.get(device_id)
        if member is None:
            raise NotFound("no current member has that device id")
        if device_id == device.device_id:
            raise InvalidInput("a device cannot revoke itself; revoke it from another member")
        version = 1 + max((e.version for e in roster.entries.values() if e.key == (device_id, device.device_id)),
                          default=0)
        cutoff = self._store.knowledge().get(device_id)
        entries = [revoke(self.vault_id, device, member, cutoff, version)]
        for other in roster.members.values():
            if other.device_id not in (device_id, device.device_id):
                own = roster.entries.get((other.device_id, device.device_id))
                entries.append(vouch(self.vault_id, device, other.keys, other.name, other.os_description,
                                     version=(own.version + 1) if own else 1))
        rotated = keyring.rotated()
        header = self.header.with_keyring(rotated, kek, kdf, device)
        with self._store.transaction():
            self._store.put_roster_entries(entries)
            self._store.put_header_record(header.to_bytes())
        self.changed()
        self._unlocking.rotated(rotated, kek)
        self._committed([])
        self._audit.record("device.revoked", device_id=str(device_id), device_name=member.name)
        return entries[0]

    def describe_self(self, name: str, os_description: str) -> bool:
        """Tell the other members this device's new name and OS description: a newer version of
        its own statement about itself, which every member shows before anyone else's (``Roster``)
        and which says nothing about any other device. Needs the signing key: a locked device
        whose seed is sealed does it at its next unlock. Returns whether it wrote one."""
        device = self._unlocking.device
        if not self.initialized or not device.can_sign:
            return False
        roster = self.roster
        own = roster.entries.get((device.device_id, device.device_id))
        if device.device_id not in roster.members or (
                own is not None and (own.name, own.os_description) == (name, os_description)):
            return False
        entry = vouch(self.vault_id, device, device.public, name, os_description,
                      version=(own.version + 1) if own else 1)
        self._store.put_roster_entries([entry])
        self.changed()
        self._committed([])
        return True

    def vouch_for_what_we_hold_of_revoked_devices(self) -> bool:
        """A revocation's cutoff is the counter up to which its author held all of the revoked
        device's revisions. If this device holds more of it (all of them, up to a higher counter),
        it says so with its own revocation entry: the cutoff that counts is the highest, so every
        member ends up accepting exactly what any member had accepted in order. A revision beyond a
        gap never raises a cutoff, so a gap cannot keep seq space open for a revoked device.

        It needs the signing key: a locked device with the seed sealed does this at its next unlock.
        Returns whether it wrote entries (what is pruned changed then)."""
        device = self._unlocking.device
        if not self.initialized or not device.can_sign:
            return False
        roster = self.roster
        if device.device_id not in roster.members:
            return False
        knowledge = self._store.knowledge()
        entries = []
        for device_id, cutoff in roster.revoked.items():
            held = knowledge.get(device_id)
            keys = roster.known_keys(device_id)
            if held > cutoff and keys is not None:
                own = roster.entries.get((device_id, device.device_id))
                member = Member(keys, "revoked device", "unknown", device.device_id)
                entries.append(revoke(self.vault_id, device, member, held, (own.version + 1) if own else 1))
        if entries:
            self._store.put_roster_entries(entries)
            self.changed()
        return bool(entries)


class LinkStamps:
    """Member handshake stamps: the ones this device sends, always rising, and the newest accepted
    from each member, so a replayed first message is refused."""

    def __init__(self, store: Store):
        self._store = store
        #: Loaded on first use.
        self._last_sent: int | None = None
        self._ceiling = 0
        self._accepted: dict[DeviceId, int] | None = None
        self._unsaved: set[DeviceId] = set()

    def next(self, now_ns: int) -> int:
        """The stamp for a member handshake about to be sent: above every stamp sent before, in
        this process or an earlier one. Stamps are reserved a minute ahead (``STAMP_RESERVE``), so
        the store is written about once a minute of dialling, not on every dial."""
        if self._last_sent is None:
            self._ceiling = self._store.link_stamp_ceiling() or 0
            self._last_sent = self._ceiling
        stamp = next_stamp(now_ns, self._last_sent)
        if stamp >= self._ceiling:
            self._ceiling = stamp + STAMP_RESERVE
            self._store.set_link_stamp_ceiling(self._ceiling)
        self._last_sent = stamp
        return stamp

    def admit(self, device_id: DeviceId, stamp: int) -> bool:
        """Whether a member's handshake stamp is fresh (its first message is not a replay); if it
        is, remember it, so the same message is refused from now on. Kept in memory and written
        by ``save`` (the daemon calls it every few seconds, and closing the vault does)."""
        if self._accepted is None:
            self._accepted = self._store.link_stamps_accepted()
        if not stamp_is_fresh(stamp, self._accepted.get(device_id)):
            return False
        self._accepted[device_id] = stamp
        self._unsaved.add(device_id)
        return True

    def save(self) -> None:
        if self._unsaved and self._accepted is not None:
            self._store.save_link_stamps_accepted({d: self._accepted[d] for d in self._unsaved})
            self._unsaved.clear()
