"""Issue 18, change cursors: what a range of arrivals did to each item (vaultpeer.core.changes),
judged from what a store holds in the clear."""

import pytest

from vaultpeer.core.changes import RevisionMark, describe, item_change, split_ranges
from vaultpeer.core.identity import DeviceKeys
from vaultpeer.core.item import ItemId
from vaultpeer.core.revision import RevisionId

LAPTOP = DeviceKeys.generate().device_id
PHONE = DeviceKeys.generate().device_id
ITEM = ItemId(b"\x01" * 16)
OTHER = ItemId(b"\x02" * 16)


def mark(arrival: int, author, seq: int, parents=(), deleted=False, item=ITEM) -> RevisionMark:
    return RevisionMark(arrival, item, RevisionId(author, seq), tuple(parents), deleted)


def rid(author, seq: int) -> RevisionId:
    return RevisionId(author, seq)


# one item's life: created on the laptop (1), edited on the phone (2), deleted (3), restored (4),
# then edited concurrently on both (5, 6) and merged on the laptop (7)
LIFE = [
    mark(1, LAPTOP, 1),
    mark(2, PHONE, 1, [rid(LAPTOP, 1)]),
    mark(3, LAPTOP, 2, [rid(PHONE, 1)], deleted=True),
    mark(4, LAPTOP, 3, [rid(LAPTOP, 2)]),
    mark(5, LAPTOP, 4, [rid(LAPTOP, 3)]),
    mark(6, PHONE, 2, [rid(LAPTOP, 3)]),
    mark(7, LAPTOP, 5, [rid(LAPTOP, 4), rid(PHONE, 2)]),
]


@pytest.mark.parametrize(("after", "through", "kind", "by"), [
    (0, 1, "created", LAPTOP),
    (1, 2, "updated", PHONE),
    (2, 3, "deleted", LAPTOP),
    (3, 4, "restored", LAPTOP),
    (4, 5, "updated", LAPTOP),
    (5, 6, "conflict", PHONE),   # two heads: 5 and 6
    (6, 7, "updated", LAPTOP),   # the merge
    (4, 6, "conflict", PHONE),
    (0, 3, "deleted", LAPTOP),   # created and deleted within the range: what an app needs is "gone"
    (0, 7, "created", LAPTOP),   # everything: new to whoever had nothing
    (2, 4, "updated", LAPTOP),   # deleted and restored within the range: it was there, and is again
])
def test_the_kind_of_each_range_of_an_items_life(after, through, kind, by):
    change = item_change(LIFE, after, through)
    assert (change.kind, change.by, change.item_id) == (kind, by, ITEM)
    assert change.last_arrival == through


def test_nothing_in_the_range_is_no_change_and_later_revisions_are_ignored():
    assert item_change(LIFE, 7, 9) is None
    assert item_change(LIFE[:1], 1, 1) is None
    assert item_change(LIFE, 0, 2).kind == "created"  # 3 (the deletion) is past the range
    # a deletion among several heads is a conflict, not a deletion
    concurrent = [mark(1, LAPTOP, 1), mark(2, LAPTOP, 2, [rid(LAPTOP, 1)], deleted=True),
                  mark(3, PHONE, 1, [rid(LAPTOP, 1)])]
    assert item_change(concurrent, 1, 3).kind == "conflict"


def test_ranges_are_cut_at_a_number_of_items_never_inside_one_revision():
    arrivals = [(11, ITEM), (12, OTHER), (13, ITEM), (14, ItemId(b"\x03" * 16)), (15, OTHER)]
    assert split_ranges(arrivals, 10, 2) == [(10, 13, [OTHER, ITEM]), (13, 15, [ItemId(b"\x03" * 16), OTHER])]
    assert split_ranges(arrivals, 10, 100) == [(10, 15, [ITEM, ItemId(b"\x03" * 16), OTHER])]
    assert split_ranges([], 10, 2) == []
    assert split_ranges(arrivals, 10, 1) == [(10, 11, [ITEM]), (11, 12, [OTHER]), (12, 13, [ITEM]),
                                             (13, 14, [ItemId(b"\x03" * 16)]), (14, 15, [OTHER])]
    with pytest.raises(ValueError):
        split_ranges(arrivals, 10, 0)


def test_a_batch_is_the_event_of_its_range_in_order_of_arrival():
    other = [mark(2, PHONE, 3, item=OTHER)]
    batch = describe(1, 2, [OTHER, ITEM], {ITEM: LIFE, OTHER: other})
    assert batch.to_event() == {
        "type": "items.changed", "seq": 2, "items": [str(OTHER), str(ITEM)],
        "changes": [{"id": str(OTHER), "kind": "created", "by": str(PHONE)},
                    {"id": str(ITEM), "kind": "updated", "by": str(PHONE)}]}
    assert describe(7, 9, [ITEM], {ITEM: LIFE}).changes == ()
