"""How items changed between two points of a store's arrival order: the local API's change cursors.

A store numbers the revisions it stores in the order they arrive (``arrival``: parents always
before children, so the numbering is causal). The daemon's ``items.changed`` events, and the
replay ``events.subscribe {"since"}`` sends, describe a range of that numbering ``(after,
through]``: for each item with a revision in it, one ``ItemChange`` saying what the range did to
the item. Everything used here is in the clear in the store (item id, author, parents, deleted
flag), so a locked daemon describes changes as well as an unlocked one: no vault key is needed.

The kinds, judged by the item's heads (the revisions nothing supersedes) before and after:

* ``conflict``: after the range the item has several heads (versions made concurrently that no
  revision merges yet);
* ``deleted``: its one head is a deletion;
* ``created``: no revision of it arrived before the range;
* ``restored``: every head before the range was a deletion, and now one that is not;
* ``updated``: anything else (an edit, or a merge of concurrent versions).

``by`` is the author of the newest revision of the item in the range.
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from vaultpeer.core.identity import DeviceId
from vaultpeer.core.item import ItemId
from vaultpeer.core.revision import RevisionId

KINDS = ("created", "updated", "deleted", "restored", "conflict")


@dataclass(frozen=True, slots=True)
class RevisionMark:
    """What a store shows in the clear of one revision: enough to tell how an item changed."""

    arrival: int
    item_id: ItemId
    revision_id: RevisionId
    parents: tuple[RevisionId, ...]
    deleted: bool


@dataclass(frozen=True, slots=True)
class ItemChange:
    item_id: ItemId
    kind: str
    by: DeviceId
    #: The arrival of the newest revision of the item in the range.
    last_arrival: int

    def to_json(self) -> dict:
        return {"id": str(self.item_id), "kind": self.kind, "by": str(self.by)}


@dataclass(frozen=True, slots=True)
class ChangeBatch:
    """The changes of one range ``(after, through]``; ``through`` is its cursor (the event's ``seq``)."""

    after: int
    through: int
    changes: tuple[ItemChange, ...]

    def to_event(self) -> dict:
        """The ``items.changed`` event (docs/api.md): ``items`` keeps the shape of API version 2."""
        return {"type": "items.changed", "seq": self.through, "items": [str(c.item_id) for c in self.changes],
                "changes": [c.to_json() for c in self.changes]}


def _heads(marks: Iterable[RevisionMark]) -> list[RevisionMark]:
    marks = list(marks)
    superseded = {parent for mark in marks for parent in mark.parents}
    return [m for m in marks if m.revision_id not in superseded]


def item_change(marks: Iterable[RevisionMark], after: int, through: int) -> ItemChange | None:
    """What the range ``(after, through]`` did to one item, given its revisions (any arrival; those
    after ``through`` are ignored); None when none of them is in the range."""
    marks = marks if isinstance(marks, (list, tuple)) else list(marks)
    if len(marks) == 1:  # most items of an initial sync: their one revision is its own head
        (only,) = marks
        if not after < only.arrival <= through:
            return None
        return ItemChange(only.item_id, "deleted" if only.deleted else "created", only.revision_id.author, only.arrival)
    held = [m for m in marks if m.arrival <= through]
    new = [m for m in held if m.arrival > after]
    if not new:
        return None
    newest = max(new, key=lambda m: m.arrival)
    before = [m for m in held if m.arrival <= after]
    heads_after = _heads(held)
    if len(heads_after) > 1:
        kind = "conflict"
    elif heads_after[0].deleted:
        kind = "deleted"
    elif not before:
        kind = "created"
    elif all(m.deleted for m in _heads(before)):
        kind = "restored"
    else:
        kind = "updated"
    return ItemChange(newest.item_id, kind, newest.revision_id.author, newest.arrival)


def split_ranges(arrivals: Sequence[tuple[int, ItemId]], after: int, per_batch: int) -> list[tuple[int, int, list[ItemId]]]:
    """Cut ``arrivals`` (``(arrival, item id)`` in arrival order, all above ``after``) into consecutive
    ranges ``(after, through, items)`` that each touch at most ``per_batch`` items (but at least one
    revision), so no one event grows without bound. ``items``: in the order of their newest arrival."""
    if per_batch < 1:
        raise ValueError("per_batch must be positive")
    ranges: list[tuple[int, int, list[ItemId]]] = []
    start, last_seen, through = after, {}, after
    for arrival, item_id in arrivals:
        if item_id not in last_seen and len(last_seen) >= per_batch:
            ranges.append((start, through, sorted(last_seen, key=last_seen.__getitem__)))
            start, last_seen = through, {}
        last_seen[item_id] = arrival
        through = arrival
    if last_seen:
        ranges.append((start, through, sorted(last_seen, key=last_seen.__getitem__)))
    return ranges


def describe(after: int, through: int, items: Sequence[ItemId],
             marks: Mapping[ItemId, Sequence[RevisionMark]]) -> ChangeBatch:
    """The batch of one range of ``split_ranges``, from each item's revision marks."""
    changes = []
    for item_id in items:
        change = item_change(marks.get(item_id, ()), after, through)
        if change is not None:
            changes.append(change)
    changes.sort(key=lambda c: c.last_arrival)
    return ChangeBatch(after, through, tuple(changes))
