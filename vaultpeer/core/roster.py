"""The roster: which devices are members of the vault, replicated as signed records.

Each :class:`RosterEntry` is one device's statement about one member: "this is member X (keys,
name, OS), and I vouch for it", or "X is revoked". Entries are keyed by (member, author); a newer
version from the same author replaces an older one. Trust is computed, not stored: starting from
the device's local anchors (itself, and the device it paired with), an entry counts when its
author is a trusted member that is not revoked, until nothing more can be added. Because every
member vouches for the devices it pairs with and they vouch back, a device paired through any
member is known to all of them.

A revocation is sticky (no later entry undoes it) and carries a cutoff: the highest counter of the
revoked device's revisions that the revoking device had accepted. Revisions up to the cutoff stay
valid everywhere; later ones are refused everywhere, whatever order things arrive in.

Two rules keep a hostile member from breaking the roster for everyone, and neither ever rejects a
batch (an honest member may relay what it received before these rules existed):

* A statement whose name or OS description is not plain text (``core.text.is_plain_text``: 1-64
  characters, no control or format character) does not count, on any device: the member is
  described by its other statements, or is not vouched for by it at all. A revocation counts
  whatever its text (only its member and cutoff matter, and a revocation must never be undone).
* Entries that do not count (their author is not trusted here, or no longer; or their text is not
  plain) are kept only up to ``MAX_UNCOUNTED``, the rest dropped in a fixed order: they serve
  only if their author becomes trusted later, and an honest member sends its whole roster again
  whenever the two differ.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from vaultpeer.core import encoding
from vaultpeer.core.errors import IntegrityError
from vaultpeer.core.identity import DeviceId, DeviceKeys, DevicePublicKeys
from vaultpeer.core.text import MAX_TEXT, is_plain_text

if TYPE_CHECKING:
    from vaultpeer.core.revision import RevisionId

_DOMAIN = "vaultpeer roster entry v1"
MAX_ENTRY_SIZE = 1024
#: The most entries that count (a batch that would take the roster beyond it is refused).
MAX_ENTRIES = 4096
UNLIMITED = 2**63 - 1
#: The most entries kept that do not count (more are dropped, never refused).
MAX_UNCOUNTED = 64


@dataclass(frozen=True)
class RosterEntry:
    member: DevicePublicKeys
    name: str
    os_description: str
    revoked: bool
    #: For a revocation: the revoked device's highest revision counter that remains valid.
    revoked_after: int
    version: int
    author: DeviceId
    signature: bytes = b""

    @property
    def member_id(self) -> DeviceId:
        return self.member.device_id

    @property
    def key(self) -> tuple[DeviceId, DeviceId]:
        return (self.member_id, self.author)

    @property
    def plain(self) -> bool:
        """Whether its name and OS description are plain text (``core.text.is_plain_text``).
        Decoding only checks their length, so entries stored before this rule still load."""
        return is_plain_text(self.name) and is_plain_text(self.os_description)

    def _unsigned(self, vault_id: bytes) -> list:
        return [
            _DOMAIN,
            vault_id,
            self.member.noise_public,
            self.member.signing_public,
            self.name,
            self.os_description,
            self.revoked,
            self.revoked_after,
            self.version,
            self.author.raw,
        ]

    def signed_by(self, vault_id: bytes, keys: DeviceKeys) -> "RosterEntry":
        unsigned = replace(self, author=keys.device_id, signature=b"")
        return replace(unsigned, signature=keys.sign(encoding.encode(unsigned._unsigned(vault_id))))

    def verify(self, vault_id: bytes, author_keys: DevicePublicKeys | None) -> bool:
        return (
            author_keys is not None
            and author_keys.device_id == self.author
            and author_keys.verify(self.signature, encoding.encode(self._unsigned(vault_id)))
        )

    def to_record(self) -> list:
        return self._unsigned(b"")[2:] + [self.signature]

    @classmethod
    def from_record(cls, record: object) -> "RosterEntry":
        try:
            noise, signing, name, os_description, revoked, revoked_after, version, author, signature = record  # type: ignore[misc]
            entry = cls(
                member=DevicePublicKeys(noise, signing),
                name=name,
                os_description=os_description,
                revoked=revoked,
                revoked_after=revoked_after,
                version=version,
                author=DeviceId(author),
                signature=signature,
            )
        except (TypeError, ValueError):
            raise IntegrityError() from None
        if not (
            all(isinstance(t, str) and 0 < len(t) <= MAX_TEXT for t in (name, os_description))
            and isinstance(revoked, bool)
            and all(isinstance(n, int) and not isinstance(n, bool) and 0 <= n < 2**63 for n in (revoked_after, version))
            and isinstance(signature, bytes)
            and len(signature) == 64
        ):
            raise IntegrityError()
        return entry

    def to_bytes(self) -> bytes:
        return encoding.encode(self.to_record())

    @classmethod
    def from_bytes(cls, data: bytes) -> "RosterEntry":
        return cls.from_record(encoding.decode(data, max_size=MAX_ENTRY_SIZE))


@dataclass(frozen=True)
class Member:
    keys: DevicePublicKeys
    name: str
    os_description: str
    added_by: DeviceId

    @property
    def device_id(self) -> DeviceId:
        return self.keys.device_id


class Roster:
    """The trusted view of a set of roster entries, from one device's anchors."""

    def __init__(self, vault_id: bytes, anchors: Iterable[DevicePublicKeys], entries: Iterable[RosterEntry],
                 *, me: DeviceId | None = None):
        self.vault_id = vault_id
        self.anchors = {a.device_id: a for a in anchors}
        #: The device whose view this is, if known: its own statement about the device it joined
        #: through (an anchor) vouches back, and does not say it added that device.
        self.me = me
        latest: dict[tuple[DeviceId, DeviceId], RosterEntry] = {}
        for entry in entries:
            current = latest.get(entry.key)
            if current is None or (entry.version, entry.revoked) > (current.version, current.revoked):
                latest[entry.key] = entry
        self.entries = latest
        self._compute()
        #: Keys of entries given to this roster that it does not keep (see ``MAX_UNCOUNTED``).
        self.dropped: frozenset[tuple[DeviceId, DeviceId]] = self._drop_uncounted()

    def _compute(self) -> None:
        revoked: dict[DeviceId, int] = {}
        revoked_keys: dict[DeviceId, DevicePublicKeys] = {}
        # the newest statement of each (member, author) is the one considered: if its text is not
        # plain it does not count, and no older one counts instead (the store keeps only the
        # newest, so this is what every device decides, whatever order entries arrived in)
        countable = {key: e for key, e in self.entries.items() if e.revoked or e.plain}
        while True:
            # trust flows from the anchors through entries by trusted, non-revoked authors; each
            # newly found revocation starts the walk again without what the revoked device vouched for
            keys: dict[DeviceId, DevicePublicKeys] = dict(self.anchors)
            valid: dict[tuple[DeviceId, DeviceId], RosterEntry] = {}
            restart = False
            while True:
                progress = False
                for key, entry in countable.items():
                    if key in valid or entry.author in revoked or entry.author not in keys:
                        continue
                    if not entry.verify(self.vault_id, keys[entry.author]):
                        continue
                    valid[key] = entry
                    progress = True
                    member = entry.member_id
                    if entry.revoked:
                        revoked_keys[member] = entry.member
                        if member not in revoked:
                            restart = True
                        revoked[member] = max(revoked.get(member, 0), entry.revoked_after)
                        if restart:
                            break
                    else:
                        keys.setdefault(member, entry.member)
                if restart or not progress:
                    break
            if not restart:
                break
        self._valid = valid
        self._keys = {**revoked_keys, **keys}
        self.revoked = revoked
        self.members = {
            device_id: self._member(device_id, device_keys)
            for device_id, device_keys in keys.items()
            if device_id not in revoked
        }

    def _drop_uncounted(self) -> frozenset[tuple[DeviceId, DeviceId]]:
        """Keep at most MAX_UNCOUNTED entries that do not count: those first by (author, member)."""
        uncounted = sorted((key for key in self.entries if key not in self._valid),
                           key=lambda key: (key[1].raw, key[0].raw))
        dropped = frozenset(uncounted[MAX_UNCOUNTED:])
        for key in dropped:
            del self.entries[key]
        return dropped

    def _member(self, device_id: DeviceId, keys: DevicePublicKeys) -> Member:
        statements = [e for (member, _), e in self._valid.items() if member == device_id and not e.revoked]
        own = [e for e in statements if e.author == device_id]
        described = max(own or statements, key=lambda e: (e.version, e.author), default=None)
        vouchers = sorted(e.author for e in statements
                          if e.author != device_id and not (e.author == self.me and device_id in self.anchors))
        return Member(
            keys=keys,
            name=described.name if described else "unnamed device",
            os_description=described.os_description if described else "unknown",
            added_by=vouchers[0] if vouchers else device_id,
        )

    def vouchers_of(self, device_id: DeviceId) -> set[DeviceId]:
        """The other devices whose statements make ``device_id`` a member."""
        return {e.author for (member, _), e in self._valid.items()
                if member == device_id and not e.revoked and e.author != device_id}

    def keys_of(self, device_id: DeviceId) -> DevicePublicKeys | None:
        """The keys of a device whose statements may be accepted, or None."""
        member = self.members.get(device_id)
        return member.keys if member else None

    def known_keys(self, device_id: DeviceId) -> DevicePublicKeys | None:
        """The keys of any device ever trusted here, revoked ones included: for checking records
        that were accepted before a revocation (never for admitting new ones)."""
        return self._keys.get(device_id)

    def accepts_revision_from(self, author: DeviceId, seq: int) -> DevicePublicKeys | None:
        """The author's keys if a revision with this counter is acceptable from it, else None."""
        return self._keys.get(author) if seq <= self.revision_limit(author) else None

    def revision_limit(self, author: DeviceId) -> int:
        """The highest counter acceptable from ``author``: unlimited for a member, the cutoff for a
        revoked device, 0 (nothing) for any other. A held revision above it is *pruned*: not sent,
        not in the state digest, transparent in the item views, and as a parent it counts as held."""
        if author in self.revoked:
            return self.revoked[author]
        return UNLIMITED if author in self.members else 0

    def prunes(self, revision_id: "RevisionId") -> bool:
        """Whether a revision with this id is pruned: its counter is above its author's limit."""
        return revision_id.seq > self.revision_limit(revision_id.author)

    def with_entries(self, entries: Iterable[RosterEntry]) -> "Roster":
        """The roster after admitting ``entries``.

        A forgery (an entry whose signature fails under its author's known keys) is an
        IntegrityError, and so are more than MAX_ENTRIES entries that count. An entry by a device
        this one does not, or no longer, trusts, or whose text is not plain, does not count and
        is kept up to MAX_UNCOUNTED (see the module's docstring): an honest peer may simply not
        have heard of a revocation yet. ``dropped`` names what the store should no longer keep:
        what this roster dropped, and what was already dropped when it was built.
        """
        entries = list(entries)
        roster = Roster(self.vault_id, self.anchors.values(), [*self.entries.values(), *entries], me=self.me)
        for entry in entries:
            author_keys = roster._keys.get(entry.author)
            if author_keys is not None and not entry.verify(self.vault_id, author_keys):
                raise IntegrityError()
        if len(roster._valid) > MAX_ENTRIES:
            raise IntegrityError()
        roster.dropped = (roster.dropped | self.dropped) - roster.entries.keys()
        return roster

    def entries_to_replicate(self) -> list[RosterEntry]:
        return sorted(self._valid.values(), key=lambda e: (e.member_id, e.author))


def vouch(vault_id: bytes, signer: DeviceKeys, member: DevicePublicKeys, name: str, os_description: str,
          version: int = 1) -> RosterEntry:
    return RosterEntry(member, name, os_description, False, 0, version, signer.device_id).signed_by(vault_id, signer)


def revoke(vault_id: bytes, signer: DeviceKeys, member: Member, revoked_after: int, version: int) -> RosterEntry:
    return RosterEntry(
        member.keys, member.name, member.os_description, True, revoked_after, version, signer.device_id
    ).signed_by(vault_id, signer)


def anchors_as_mapping(anchors: Iterable[DevicePublicKeys]) -> Mapping[DeviceId, DevicePublicKeys]:
    return {a.device_id: a for a in anchors}
