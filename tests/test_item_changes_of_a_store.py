"""Issue 20: a store describes how its items changed (the change cursors, docs/api.md) with one scan
of the arrival order, reading older revisions only for the items held before the range. The answer
is the same as judging every item from all of its revisions (vaultpeer.core.changes), for every
range of a history that creates, edits, deletes, restores, conflicts and merges."""

from helpers import make_replicas, sync_pair
from vaultpeer.core.changes import describe, split_ranges


def reference(vault, after: int, through: int, per_batch: int, limit: int):
    """The batches judged from every revision of every item touched (what item_changes did before)."""
    store = vault._store
    ranges = split_ranges(store.arrivals_between(after, through, limit), after, per_batch)
    if not ranges:
        return []
    marks = store.revision_marks({item for _, _, items in ranges for item in items}, ranges[-1][1])
    return [describe(start, end, items, marks) for start, end, items in ranges]


def a_varied_history():
    laptop, phone = make_replicas(2)
    for n in range(6):
        laptop.add(f"item {n}", {"password": f"p{n}"})
    sync_pair(laptop, phone)
    laptop.edit("item 0", {"password": "edited"})
    phone.edit("item 1", {"password": "on the phone"})
    laptop.delete("item 2")
    sync_pair(laptop, phone)
    laptop.restore("item 2")
    laptop.edit("item 3", {"password": "laptop's"})  # the same field on both, apart: a conflict
    phone.edit("item 3", {"password": "phone's"})
    phone.edit("item 4", {"username": "merges"})  # different fields: merged
    laptop.edit("item 4", {"password": "merges too"})
    phone.add("phone's own", {"password": "x"})
    sync_pair(laptop, phone)
    phone.delete("item 5")
    sync_pair(laptop, phone)
    return laptop, phone


def test_every_range_is_described_as_from_all_of_each_items_revisions():
    for vault in a_varied_history():
        cursor = vault.change_cursor()
        assert cursor > 15
        kinds = set()
        for after in range(cursor + 1):
            for through in range(after, cursor + 1):
                for per_batch, limit in ((500, 10_000), (2, 10_000), (3, 4)):
                    got = vault.item_changes(after, through, per_batch=per_batch, limit=limit)
                    assert got == reference(vault, after, through, per_batch, limit), (after, through, per_batch)
                    kinds.update(change.kind for batch in got for change in batch.changes)
        assert kinds == {"created", "updated", "deleted", "restored", "conflict"}
