"""Field-level merge of an item's concurrent heads, decided by causality alone.

An item is a set of *registers*: its title, each field (value and secret flag, or absent), its
deleted flag and its flags. For every revision and register we know the revisions that last
*decided* that register's value: its writers. A revision that keeps the value its parents merge to
inherits their writers; a revision that changes it (an edit, or a person resolving a conflict)
becomes the writer itself.

Merging a set of heads, register by register: the writers that no other writer causally follows
win. If they agree on the value, the register merges by itself; if they do not, it is a conflict
and every candidate value is kept. This is a three-way merge against the common ancestor,
generalised to any number of heads and to criss-cross histories, and it is the same on every
device for the same revisions (no clock is ever consulted).

Causality is compared with version vectors. Within one item each author's revisions form a chain
(an author always builds on its own latest revision), which is what makes "the vector of w is
below the vector of r" mean "w is an ancestor of r".
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from vaultpeer.core.history import causal_order
from vaultpeer.core.item import Field, ItemContent
from vaultpeer.core.revision import Revision, RevisionId
from vaultpeer.core.vclock import VersionVector

TITLE = ("title",)
DELETED = ("deleted",)
FLAGS = ("flags",)

#: Set on an item whose deletion lost to a concurrent edit, until the person next edits it.
EDIT_SURVIVED_DELETE = "edit-survived-delete"

Register = tuple
Value = object


def field_register(name: str) -> Register:
    return ("field", name)


def registers_of(revision: Revision, content: ItemContent) -> dict[Register, Value]:
    values: dict[Register, Value] = {
        TITLE: content.title,
        DELETED: revision.deleted,
        FLAGS: tuple(sorted(content.flags)),
    }
    for field in content.fields:
        values[field_register(field.name)] = (field.value, field.secret)
    return values


@dataclass(frozen=True, repr=False)
class Candidate:
    """One value a conflicting register holds, and the revision that wrote it."""

    revision: RevisionId
    value: Value

    def __repr__(self) -> str:
        return f"Candidate({self.revision}, redacted)"


@dataclass(frozen=True, repr=False)
class MergedItem:
    """What the heads of an item add up to."""

    #: None when no readable revision reaches the heads (``readable`` is False).
    content: ItemContent | None
    deleted: bool
    heads: tuple[RevisionId, ...]
    #: Conflicting register (TITLE or field_register(name)) -> its candidates, highest revision first.
    #: A field candidate's value is ``(value, secret)``, or None where a head removed the field.
    conflicts: Mapping[Register, tuple[Candidate, ...]]
    #: True when the heads differ and merge cleanly: a merge revision should be written.
    needs_merge_revision: bool

    @property
    def conflicted(self) -> bool:
        return bool(self.conflicts)

    @property
    def readable(self) -> bool:
        return self.content is not None

    def __repr__(self) -> str:
        return f"MergedItem(heads={len(self.heads)}, conflicts={len(self.conflicts)}, redacted)"


@dataclass(frozen=True)
class _Merge:
    value: Value
    winners: frozenset[RevisionId]
    candidates: tuple[Candidate, ...]  # more than one when conflicted

    @property
    def conflicted(self) -> bool:
        return len(self.candidates) > 1


class ItemGraph:
    """The revisions of one item with their decrypted contents, and each register's writers.

    A revision missing from ``contents`` is *opaque* (it did not decrypt, or its author may no
    longer be accepted): it keeps every register exactly as its parents merge, conflicts included,
    so it can neither change, settle nor hide a value; one without parents writes nothing. An item
    none of whose readable revisions reaches a head has no title (``MergedItem.readable`` False)."""

    def __init__(self, revisions: Iterable[Revision], contents: Mapping[RevisionId, ItemContent]):
        self._revisions = {r.revision_id: r for r in revisions}
        self._order = causal_order(self._revisions.values())
        self._values = {rid: registers_of(r, contents[rid]) for rid, r in self._revisions.items() if rid in contents}
        self._registers = sorted({k for values in self._values.values() for k in values})
        self._clock: dict[RevisionId, VersionVector] = {}
        self._writers: dict[RevisionId, dict[Register, frozenset[RevisionId]]] = {}
        for revision in self._order:
            self._add(revision)

    def _add(self, revision: Revision) -> None:
        rid = revision.revision_id
        parents = [p for p in revision.parents if p in self._revisions]
        clock = VersionVector.merge_all(self._clock[p] for p in parents).advanced(rid.author, rid.seq)
        self._clock[rid] = clock
        if rid not in self._values:  # opaque: inherits everything, writes nothing
            merged = self._merge(parents) if parents else {}
            self._writers[rid] = {k: merged[k].winners if parents else frozenset() for k in self._registers}
            return
        if not parents:
            self._writers[rid] = {k: frozenset({rid}) for k in self._registers}
            return
        merged = self._merge(parents)
        values = self._values[rid]
        self._writers[rid] = {
            k: m.winners if not m.conflicted and values.get(k) == m.value else frozenset({rid})
            for k, m in merged.items()
        }

    def precedes(self, earlier: RevisionId, later: RevisionId) -> bool:
        """True when ``earlier`` is ``later`` or one of its ancestors."""
        return self._clock[earlier] <= self._clock[later]

    def _merge(self, heads: Iterable[RevisionId]) -> dict[Register, _Merge]:
        heads = list(heads)
        result = {}
        for register in self._registers:
            writers = set().union(*(self._writers[h][register] for h in heads))
            winners = frozenset(
                w for w in writers if not any(o != w and self.precedes(w, o) for o in writers)
            )
            by_value: dict[Value, RevisionId] = {}
            for w in sorted(winners, reverse=True):
                by_value.setdefault(self._values[w].get(register), w)
            candidates = tuple(
                Candidate(w, v) for v, w in sorted(by_value.items(), key=lambda item: item[1], reverse=True)
            )
            result[register] = _Merge(candidates[0].value if candidates else None, winners, candidates)
        return result

    def merged(self, heads: Iterable[RevisionId]) -> MergedItem:
        heads = tuple(sorted(heads))
        registers = self._merge(heads)
        if TITLE not in registers or registers[TITLE].value is None:
            return MergedItem(None, False, heads, {}, False)
        deleted = registers[DELETED]
        flags = set(registers[FLAGS].value or ())
        conflicts = {
            k: m.candidates
            for k, m in registers.items()
            if m.conflicted and k not in (DELETED, FLAGS)
        }
        if registers[FLAGS].conflicted:
            flags = set().union(*(c.value for c in registers[FLAGS].candidates))
        is_deleted = bool(deleted.value)
        if deleted.conflicted:
            # a deletion concurrent with a restore: the item stays, flagged
            is_deleted = False
            flags.add(EDIT_SURVIVED_DELETE)
        elif is_deleted:
            unseen = [
                w
                for k, m in registers.items()
                if k not in (DELETED, FLAGS)
                for w in m.winners
                if not any(self.precedes(w, t) for t in deleted.winners)
            ]
            if unseen:
                # an edit the deletion never saw: the edit survives and the item is flagged
                is_deleted = False
                flags.add(EDIT_SURVIVED_DELETE)
        content = self._content(heads, registers, flags)
        distinct = {(self._revisions[h].deleted, self._content_key(h)) for h in heads}
        return MergedItem(
            content=content,
            deleted=is_deleted,
            heads=heads,
            conflicts=conflicts,
            needs_merge_revision=len(heads) > 1 and not conflicts and len(distinct) > 1,
        )

    def _content_key(self, rid: RevisionId) -> tuple:
        if rid not in self._values:
            return ("opaque", rid)  # never equal to a readable head: a merge revision supersedes it
        return tuple(sorted(((k, v) for k, v in self._values[rid].items() if k != DELETED), key=lambda kv: kv[0]))

    def _content(self, heads: tuple[RevisionId, ...], registers: dict[Register, _Merge], flags: set[str]) -> ItemContent:
        shown = max(heads, key=lambda h: (h in self._values, not self._revisions[h].deleted, h))
        order = [k for k in self._values.get(shown, ()) if k[0] == "field"]
        order += sorted(k for k in registers if k[0] == "field" and k not in order)
        fields = []
        for register in order:
            value = registers[register].value
            if value is not None:
                fields.append(Field(register[1], value[0], value[1]))
        return ItemContent(registers[TITLE].value, tuple(fields), frozenset(flags))
