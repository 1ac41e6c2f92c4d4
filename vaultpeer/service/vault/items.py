"""Items: the index of what the readable revisions show, finding and listing items, their history;
and every item write (add, edit, delete, restore, resolve, merge), sealed and signed by this device.

The index holds one ``ItemSummary`` per item: what a listing, a search and a lookup by name or URL
read (never a secret field's value). A whole item (``ItemView``, every field) is decrypted when it
is asked for, and the last few are kept (``_CACHED_VIEWS``): 100,000 items cost tens of MiB held,
not the hundreds that keeping every field decrypted did.

A revision that does not decrypt is quarantined here (``_open``): it cannot make its item, or any
other, unreadable. What arrived while locked is test-opened at the next unlock (``test_open_arrivals``).
"""

from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from types import MappingProxyType

from vaultpeer.core.errors import Ambiguous, IntegrityError, InvalidInput, NotFound, VaultpeerError
from vaultpeer.core.history import causal_order, displayed_head
from vaultpeer.core.identity import DevicePublicKeys
from vaultpeer.core.item import MAX_TIME, Field, ItemContent, ItemId, resolve_reference
from vaultpeer.core.search import Searchable
from vaultpeer.core.secret_service import is_exposed
from vaultpeer.core.urlmatch import is_url_field
from vaultpeer.core.merge import TITLE, Candidate, ItemGraph, MergedItem, Register
from vaultpeer.core.revision import Revision, RevisionId, open_revision, seal_revision
from vaultpeer.core.keys import Keyring
from vaultpeer.core.roster import Roster
from vaultpeer.service.store import Store
from vaultpeer.service.vault.audit_trail import AuditTrail
from vaultpeer.service.vault.membership import Membership
from vaultpeer.service.vault.unlocking import Unlocking


class Conflict(VaultpeerError):
    code = "conflict"


_NO_CONFLICTS: Mapping = MappingProxyType({})
#: Quarantined revisions recorded in the audit log, at most, per process (a flood stays bounded).
_MAX_AUDITED_UNREADABLE = 256
_OPAQUE_TITLE = "(unreadable revision)"
#: Whole items (every field decrypted) kept after use: an app reading the same few items again and
#: again is answered from memory, while the index itself holds no secret field.
_CACHED_VIEWS = 256
#: Revisions whose signature this process checked, remembered (``Items._check``).
_CHECKED_SIGNATURES = 1024


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
    #: When the displayed head (``revision``) was sealed, by its author's clock (unix seconds), or
    #: None (written before revisions had times, or opaque). Its author is ``revision.author``.
    modified: int | None = None

    @property
    def content(self) -> ItemContent:
        return ItemContent(self.title, self.fields, self.flags)

    @property
    def searchable(self) -> Searchable:
        """What a search reads and a listing shows of it (never a secret: see core/search.py)."""
        return Searchable.from_fields(self.title, ((f.name, f.value) for f in self.fields))

    def __repr__(self) -> str:
        return f"ItemView({self.id}, revision={self.revision}, redacted)"


@dataclass(frozen=True, repr=False, slots=True)
class ItemSummary:
    """What the index keeps of an item: enough to list it, search it, find it by name or by URL,
    and tell whether the Secret Service shows it; never a secret field's value. The whole item is
    ``Items.view(summary.id)``."""

    id: ItemId
    searchable: Searchable
    revision: RevisionId
    deleted: bool
    conflict: bool
    flags: frozenset[str]
    modified: int | None
    #: The values of every URL field (``url``, ``url 2``...), for a lookup by URL.
    urls: tuple[str, ...]
    #: The item carries the Secret Service's marker field.
    exposed: bool
    #: ``Items.created``: when the item was created (None: no time), or ``UNKNOWN_TIME`` until it
    #: is worked out (an item with history whose first revision was not opened since the index was
    #: built). An edit keeps it: only a new root can change it.
    created: "int | None | object"

    @property
    def title(self) -> str:
        return self.searchable.title

    @classmethod
    def of(cls, view: ItemView, created: "int | None | object") -> "ItemSummary":
        urls = tuple(f.value for f in view.fields if is_url_field(f.name))
        searchable = view.searchable
        if len(urls) == 1 and urls[0] == searchable.url:
            urls = (searchable.url,)  # the one string object, not a copy
        return cls(view.id, searchable, view.revision, view.deleted, view.conflict, view.flags or _NO_FLAGS,
                   view.modified, urls or _NO_URLS, is_exposed((f.name, f.value) for f in view.fields), created)

    def __repr__(self) -> str:
        return f"ItemSummary({self.id}, redacted)"


_NO_FLAGS: frozenset[str] = frozenset()
_NO_URLS: tuple[str, ...] = ()
#: ``ItemSummary.created`` not worked out yet.
UNKNOWN_TIME = object()


@dataclass(frozen=True, repr=False)
class HistoryEntry:
    revision: RevisionId
    parents: tuple[RevisionId, ...]
    deleted: bool
    is_head: bool
    title: str
    fields: tuple[Field, ...]
    #: When the revision was sealed, by its author's clock (``revision.author``), or None.
    time: int | None = None

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


class Items:
    def __init__(self, store: Store, unlocking: Unlocking, membership: Membership, audit: AuditTrail,
                 committed: Callable[[list[str]], None], wall_clock: Callable[[], float]):
        self._store = store
        #: Unix seconds: the time each revision this device seals carries (shown on every device).
        self._wall_clock = wall_clock
        self._unlocking = unlocking
        self._membership = membership
        self._audit = audit
        self._committed = committed
        self._index: dict[ItemId, ItemSummary] | None = None
        #: The last whole items asked for, least recently used first (bounded: ``_CACHED_VIEWS``).
        self._views: OrderedDict[ItemId, ItemView] = OrderedDict()
        #: Revisions found not to decrypt with the vault's keys (quarantined; see ``_open``).
        self._unreadable: set[RevisionId] = set()
        #: The arrival number up to which every stored revision was test-opened (while unlocked).
        self._opened_through: int | None = None
        #: Signatures checked (``_check``): each whole record, with the key it was checked under.
        self._checked: OrderedDict[tuple[Revision, bytes], None] = OrderedDict()

    def forget_index(self) -> None:
        """Build the index again on next use (locked, or what is pruned may have changed)."""
        self._index = None
        self._views.clear()

    def forget_uncommitted(self) -> None:
        """A transaction that wrote revisions rolled back: the index, and the watermark of what was
        test-opened, may count them; both are read from the store again."""
        self.forget_index()
        self._opened_through = None

    # --- quarantine and test-opening -------------------------------------------------------------

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

    def _quarantine(self, revision: Revision) -> None:
        if revision.revision_id not in self._unreadable:
            self._unreadable.add(revision.revision_id)
            if len(self._unreadable) <= _MAX_AUDITED_UNREADABLE:
                self._audit.record("revision.unreadable", device_id=str(revision.author), seq=revision.revision_id.seq)

    @property
    def unreadable_count(self) -> int:
        return len(self._unreadable)

    def forget_unreadable(self) -> None:
        """The keys may have changed (an unlock): what did not open is tried again."""
        self._unreadable.clear()

    def nothing_to_test_open(self) -> None:
        """A vault just created holds no revision yet."""
        self._opened_through = 0

    @contextmanager
    def _sealing_here(self) -> Iterator[None]:
        """Around storing revisions this device sealed: they need no test-opening, so the watermark
        moves past them if it was caught up (else the next receive would open them all again)."""
        caught_up = self._opened_through is not None and self._opened_through == self._store.last_arrival()
        yield
        if caught_up:
            self._opened_through = self._store.last_arrival()

    def test_open_arrivals(self, keep: int = 0) -> dict[RevisionId, ItemContent]:
        """Open every revision stored since the last time (the watermark is kept in memory while
        unlocked and saved at unlock and close): what does not decrypt is quarantined now. Returns
        the contents of what opened if there were at most ``keep`` (for ``refresh``: a batch just
        received is not decrypted twice), else nothing."""
        keyring, vault_id, roster = self._unlocking.require_unlocked(), self._membership.vault_id, self._membership.roster
        last = self._store.opened_through() if self._opened_through is None else self._opened_through
        opened: dict[RevisionId, ItemContent] = {}
        for arrival, revision in self._store.revisions_arrived_after(last):
            try:
                content = self._open(revision, vault_id, keyring, roster)
            except IntegrityError:
                content = None  # a bad signature: an edited disk, which every read and `check` report
            if content is not None and len(opened) < keep:
                opened[revision.revision_id] = content
            last = arrival
        self._opened_through = last
        return opened

    def save_watermark(self) -> None:
        """Store how far it test-opened, for the next process."""
        if self._opened_through is not None and self._opened_through != self._store.opened_through():
            self._store.set_opened_through(self._opened_through)

    # --- reading ---------------------------------------------------------------------------------

    def _graph(self, item_id: ItemId, vault_id: bytes) -> ItemGraph:
        keyring, roster = self._unlocking.require_unlocked(), self._membership.roster
        contents = {}
        revisions = self._store.revisions_of(item_id)
        for revision in revisions:
            content = self._open(revision, vault_id, keyring, roster)
            if content is not None:
                contents[revision.revision_id] = content
        return ItemGraph(revisions, contents)

    def _merged(self, item_id: ItemId, item_heads: list[Revision], vault_id: bytes) -> MergedItem:
        return self._graph(item_id, vault_id).merged(h.revision_id for h in item_heads)

    def _view(self, item_id: ItemId, item_heads: list[Revision], vault_id: bytes, roster: Roster,
              opened: Mapping[RevisionId, ItemContent] = _NO_CONFLICTS) -> ItemView | None:
        """The item as its readable revisions show it; None if none of them reaches a head.
        ``opened``: contents known already (just sealed here, or just test-opened), by revision."""
        shown = displayed_head(item_heads)
        heads = tuple(sorted(r.revision_id for r in item_heads))
        shown_content = opened.get(shown.revision_id)
        if shown_content is None or roster.prunes(shown.revision_id) or shown.revision_id in self._unreadable:
            shown_content = self._open(shown, vault_id, self._unlocking.require_unlocked(), roster)
        modified = shown_content.time if shown_content is not None else None
        if len(item_heads) == 1 and shown_content is not None:
            return ItemView(item_id, shown_content.title, shown_content.fields, shown.revision_id, shown.deleted,
                            False, heads, shown_content.flags, _NO_CONFLICTS, modified=modified)
        merged = self._merged(item_id, item_heads, vault_id)
        if not merged.readable:
            return None
        content = merged.content
        opaque = tuple(h.revision_id for h in item_heads
                       if h.revision_id in self._unreadable or roster.prunes(h.revision_id))
        return ItemView(item_id, content.title, content.fields, shown.revision_id, merged.deleted,
                        merged.conflicted, heads, content.flags, dict(merged.conflicts), opaque, modified)

    def _items(self) -> dict[ItemId, ItemSummary]:
        self._unlocking.require_unlocked()
        if self._index is None:
            vault_id, roster = self._membership.vault_id, self._membership.roster
            index: dict[ItemId, ItemSummary] = {}
            # the heads come item by item (the table's key): one item's revisions in memory at a time
            for item_id, heads in _by_item(self._store.all_heads()):
                view = self._view(item_id, heads, vault_id, roster)
                if view is not None:
                    index[item_id] = ItemSummary.of(view, _root_time(view, heads, UNKNOWN_TIME))
            self._index = index
        return self._index

    def refresh(self, revisions: Iterable[Revision],
                opened: Mapping[RevisionId, ItemContent] = _NO_CONFLICTS) -> dict[ItemId, ItemView]:
        """Update the index for the items of these revisions (just stored); returns the whole items
        it decrypted to do so (none while there is no index). ``opened``: contents known already."""
        built: dict[ItemId, ItemView] = {}
        if self._index is None:
            return built
        new_roots: set[ItemId] = set()
        item_ids: dict[ItemId, None] = {}
        for revision in revisions:
            item_ids[revision.item_id] = None
            if not revision.parents:
                new_roots.add(revision.item_id)  # two devices' adds of one id: it may be earlier
        vault_id, roster = self._membership.vault_id, self._membership.roster
        for item_id in item_ids:
            self._views.pop(item_id, None)
            heads = self._store.heads_of(item_id)
            view = self._view(item_id, heads, vault_id, roster, opened)
            before = self._index.pop(item_id, None)
            if view is not None:
                kept = before.created if before is not None and item_id not in new_roots else UNKNOWN_TIME
                self._index[item_id] = ItemSummary.of(view, _root_time(view, heads, kept))
                built[item_id] = self._remember(view)
        return built

    def _remember(self, view: ItemView) -> ItemView:
        self._views[view.id] = view
        self._views.move_to_end(view.id)
        while len(self._views) > _CACHED_VIEWS:
            self._views.popitem(last=False)
        return view

    def view(self, item_id: ItemId) -> ItemView:
        """The whole item (every field decrypted) of an item in the index (KeyError if none)."""
        items = self._items()
        summary = items[item_id]
        cached = self._views.get(item_id)
        if cached is not None:
            self._views.move_to_end(item_id)
            return cached
        view = self._view(item_id, self._store.heads_of(item_id), self._membership.vault_id, self._membership.roster)
        if view is None:  # the store changed under the index: keep them in step
            del items[item_id]
            raise KeyError(item_id)
        if view.revision != summary.revision or view.deleted != summary.deleted:
            items[item_id] = ItemSummary.of(view, UNKNOWN_TIME)
        return self._remember(view)

    def find(self, reference: str, *, deleted: bool | None = False) -> ItemView:
        """The item ``reference`` names among live items (``deleted=False``), deleted ones
        (``True``) or all (``None``)."""
        return self.view(self.find_summary(reference, deleted=deleted).id)

    def find_summary(self, reference: str, *, deleted: bool | None = False) -> ItemSummary:
        """``find``, without decrypting the item."""
        items = self._items()
        try:  # a full id names one item: no need to look at the others
            found = items.get(ItemId.parse(reference.strip()))
        except (InvalidInput, ValueError):
            found = None
        if found is not None and str(found.id) == reference.strip().lower() and (
                deleted is None or found.deleted == deleted):
            return found
        candidates = [(v.id, v.title) for v in items.values() if deleted is None or v.deleted == deleted]
        try:
            return items[resolve_reference(reference, candidates)]
        except Ambiguous as exc:
            raise Ambiguous(str(exc), [_candidate(items[ItemId.parse(c["id"])]) for c in exc.candidates]) from None
        except NotFound:
            if deleted is False and any(
                v.deleted and (str(v.id).startswith(reference.lower()) or v.title == reference)
                for v in items.values()
            ):
                raise NotFound("that item is deleted: see `vaultpeer ls --deleted` and `vaultpeer restore`") from None
            raise

    def summaries(self, *, deleted: bool | None = False) -> list[ItemSummary]:
        """The index's entries of live items (deleted ones, or all for None), in title order."""
        found = [v for v in self._items().values() if deleted is None or v.deleted == deleted]
        return sorted(found, key=lambda v: (v.title.casefold(), str(v.id)))

    def list_items(self, *, deleted: bool = False) -> list[ItemView]:
        """Every live (or deleted) item whole, in title order: each is decrypted again (a listing
        needs only ``summaries``)."""
        vault_id, roster = self._membership.vault_id, self._membership.roster
        views = (self._view(s.id, self._store.heads_of(s.id), vault_id, roster) for s in self.summaries(deleted=deleted))
        return [view for view in views if view is not None]

    def conflict_count(self) -> int:
        """How many items ``conflicts`` lists."""
        return sum(1 for v in self._items().values() if not v.deleted and (v.conflict or v.flags))

    def conflicts(self) -> list[ItemView]:
        """Items with a conflict or a flag for the person's attention."""
        return [self.view(v.id) for v in self.summaries() if v.conflict or v.flags]

    def _verified(self, reference: str, *, deleted: bool | None = False) -> ItemView:
        """Find, then check the heads' signatures: whatever is shown or built upon is verified."""
        view = self.find(reference, deleted=deleted)
        self.verify_heads(view.id)
        return view

    def verify_heads(self, item_id: ItemId) -> None:
        """Check the signatures of an item's heads (IntegrityError if one fails)."""
        vault_id, roster = self._membership.vault_id, self._membership.roster
        for head in self._store.heads_of(item_id):
            self._check(head, vault_id, roster)

    def _check(self, revision: Revision, vault_id: bytes, roster: Roster) -> None:
        """``revision.verify`` under its author's keys, unless this process already checked this
        very record (every byte of it: the record read now is compared with the one checked, so an
        edited disk is caught as before) under the same key: an item an app reads right after it
        arrived, or again and again, is not checked each time (~45 µs a check)."""
        keys = roster.known_keys(revision.author)
        if keys is not None:
            key = (revision, keys.signing_public)
            if key in self._checked:
                self._checked.move_to_end(key)
                return
        revision.verify(vault_id, keys)
        self._note_checked([(revision, keys)])  # type: ignore[list-item]

    def _note_checked(self, checked: Iterable[tuple[Revision, DevicePublicKeys]]) -> None:
        for revision, keys in checked:
            self._checked[(revision, keys.signing_public)] = None
        while len(self._checked) > _CHECKED_SIGNATURES:
            self._checked.popitem(last=False)

    def checked_on_arrival(self, revisions: Iterable[Revision], roster: Roster) -> None:
        """These revisions' signatures were checked under ``roster``'s keys as they arrived: the
        first reads of them need not check again. Only the last ``_CHECKED_SIGNATURES`` count."""
        revisions = list(revisions)[-_CHECKED_SIGNATURES:]
        self._note_checked((r, k) for r in revisions if (k := roster.known_keys(r.author)) is not None)

    def get(self, reference: str) -> ItemView:
        return self._verified(reference)

    def created(self, item_id: ItemId) -> int | None:
        """When the item was created: the time its first revision (the one without parents)
        carries, by its author's claim; None when that revision is opaque or has no time. (Of
        several roots, which only a misbehaving member makes, the earliest.)"""
        vault_id, keyring, roster = self._membership.vault_id, self._unlocking.require_unlocked(), self._membership.roster
        items = self._items()
        summary = items.get(item_id)
        if summary is not None and summary.created is not UNKNOWN_TIME:
            return summary.created  # type: ignore[return-value]
        times = []
        for revision in self._store.revisions_of(item_id):
            if not revision.parents:
                self._check(revision, vault_id, roster)  # what is shown is verified
                content = self._open(revision, vault_id, keyring, roster)
                if content is not None and content.time is not None:
                    times.append(content.time)
        created = min(times, default=None)
        if summary is not None and items.get(item_id) is summary:
            items[item_id] = replace(summary, created=created)
        return created

    def history(self, reference: str) -> list[HistoryEntry]:
        view = self.find(reference, deleted=None)
        vault_id, keyring, roster = self._membership.vault_id, self._unlocking.require_unlocked(), self._membership.roster
        entries = []
        for revision in causal_order(self._store.revisions_of(view.id)):
            self._check(revision, vault_id, roster)
            content = self._open(revision, vault_id, keyring, roster) or ItemContent(_OPAQUE_TITLE, ())
            entries.append(
                HistoryEntry(
                    revision=revision.revision_id,
                    parents=revision.parents,
                    deleted=revision.deleted,
                    is_head=revision.revision_id in view.heads,
                    title=content.title,
                    fields=content.fields,
                    time=content.time,
                )
            )
        return entries

    # --- writing ---------------------------------------------------------------------------------

    def _now(self) -> int:
        """This device's wall clock in whole seconds, as a revision carries it (a clock set before
        1970 or absurdly far ahead is pinned to the range every device reads)."""
        return min(max(int(self._wall_clock()), 0), MAX_TIME)

    def _commit(self, item_id: ItemId, content: ItemContent, parents: Iterable[RevisionId], *,
                deleted: bool = False) -> ItemView:
        keyring = self._membership.sealing_keyring()
        vault_id = self._membership.vault_id
        device = self._unlocking.device
        with self._store.transaction(), self._sealing_here():
            revision = seal_revision(
                vault_id=vault_id,
                keyring=keyring,
                author=device,
                item_id=item_id,
                seq=self._store.next_seq(device.device_id),
                parents=parents,
                content=(revision_content := content.at(self._now())),  # every revision says when it was made
                deleted=deleted,
            )
            self._store.insert_revisions([revision])
        self.refresh([revision], {revision.revision_id: revision_content})
        self._committed([str(item_id)])
        return self.view(item_id)

    def add(self, title: str, fields: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> ItemView:
        return self._commit(ItemId.generate(), ItemContent.build(title, fields), parents=())

    def add_many(self, contents: Iterable[ItemContent],
                 progress: Callable[[int], None] | None = None) -> list[ItemView]:
        """Add several new items as one batch: every revision is sealed and signed, then all are
        stored in one transaction, so either every item exists afterwards or none does (an
        import). ``progress`` is called with the number sealed so far."""
        keyring = self._membership.sealing_keyring()
        vault_id = self._membership.vault_id
        device = self._unlocking.device
        now = self._now()
        # an imported item keeps the time its source gave it, if any
        items = [(ItemId.generate(), content if content.time is not None else content.at(now)) for content in contents]
        with self._store.transaction(), self._sealing_here():
            first_seq = self._store.next_seq(device.device_id)
            revisions = []
            for n, (item_id, content) in enumerate(items):
                revisions.append(seal_revision(vault_id=vault_id, keyring=keyring, author=device,
                                               item_id=item_id, seq=first_seq + n, parents=(), content=content))
                if progress is not None:
                    progress(n + 1)
            self._store.insert_revisions(revisions)
        built = self.refresh(revisions)
        if items:
            self._committed([str(item_id) for item_id, _ in items])
        return [built.get(item_id) or self.view(item_id) for item_id, _ in items]

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
        """Write a tombstone (which keeps the content, so the item can be listed and restored).
        An item in conflict is refused, as an edit is: deleting it would settle the conflict
        silently (after a restore, one side's value would be only in history)."""
        view = self._verified(reference)
        if view.conflict:
            raise Conflict("this item has conflicting values: resolve them first (`vaultpeer conflicts`)")
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
        vault_id, roster = self._membership.vault_id, self._membership.roster
        self._check(target, vault_id, roster)
        content = self._open(target, vault_id, self._unlocking.require_unlocked(), roster)
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
        if chosen is not None:
            _require_current_values(chosen, view.conflicts or {})
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
        vault_id = self._membership.vault_id
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

    # --- checking --------------------------------------------------------------------------------

    def check(self) -> CheckReport:
        """Verify the database, every signature, and (when unlocked) that every revision decrypts."""
        database_ok = self._store.integrity_check()
        vault_id, roster = self._membership.vault_id, self._membership.roster
        keyring = self._unlocking.keyring
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


def _root_time(view: ItemView, heads: list[Revision], otherwise: "int | None | object") -> "int | None | object":
    """``created`` of an item whose one head is a root: that is its only revision (any other
    would lead to a second head), so its time is the item's. ``otherwise`` for any other item."""
    if len(heads) == 1 and not heads[0].parents:
        return view.modified
    return otherwise


def _by_item(heads: Iterable[Revision]) -> Iterator[tuple[ItemId, list[Revision]]]:
    """Heads that come ordered by item, grouped: (item id, its heads)."""
    item_id, group = None, []
    for head in heads:
        if head.item_id != item_id and group:
            yield item_id, group
            group = []
        item_id = head.item_id
        group.append(head)
    if group:
        yield item_id, group


def _candidate(view: "ItemView | ItemSummary") -> dict:
    """How an ambiguous name's candidate is shown: enough to tell two "GitHub" items apart."""
    shown = view.searchable
    return {"id": str(view.id), "title": view.title, "username": shown.username, "folder": shown.folder}


def _require_current_values(chosen: ItemContent, conflicts: Mapping) -> None:
    """``take`` may name any revision whose value for each conflicting register is one of the
    values in conflict (a current head does; so does each candidate's revision for its own
    register). An older revision would roll the item back, dropping the concurrent edits: refused."""
    for register, candidates in conflicts.items():
        if register == TITLE:
            value = chosen.title
        else:
            field = chosen.field(register[1])
            value = None if field is None else (field.value, field.secret)
        if value not in [candidate.value for candidate in candidates]:
            raise InvalidInput("that revision holds none of the values in conflict (it is older): take one "
                               "that `vaultpeer conflicts` lists, or give the values")
