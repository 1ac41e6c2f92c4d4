"""The field-level merge, on hand-built revision graphs (no storage, no I/O)."""

from vaultpeer.core.identity import DeviceKeys
from vaultpeer.core.item import ItemContent, ItemId
from vaultpeer.core.keys import Keyring
from vaultpeer.core.merge import EDIT_SURVIVED_DELETE, TITLE, ItemGraph, field_register
from vaultpeer.core.revision import seal_revision

VAULT = b"V" * 16


class Graph:
    def __init__(self):
        self.keyring, self.item = Keyring.new(), ItemId.generate()
        self.revisions, self.contents, self.seq = [], {}, {}

    def rev(self, author, parents, fields, title="Item", deleted=False, flags=frozenset(), time=None):
        self.seq[author] = self.seq.get(author, 0) + 1
        content = ItemContent(title, ItemContent.build(title, fields).fields, frozenset(flags), time)
        revision = seal_revision(vault_id=VAULT, keyring=self.keyring, author=author, item_id=self.item,
                                 seq=self.seq[author], parents=[p.revision_id for p in parents],
                                 content=content, deleted=deleted)
        self.revisions.append(revision)
        self.contents[revision.revision_id] = content
        return revision

    def merged(self, *heads):
        return ItemGraph(self.revisions, self.contents).merged(h.revision_id for h in heads)


A, B, C = (DeviceKeys.generate() for _ in range(3))


def values(merged):
    return merged.content.field_map()


def test_edits_to_different_fields_merge_by_themselves():
    g = Graph()
    base = g.rev(A, [], {"username": "alice", "password": "one", "url": "u"})
    left = g.rev(A, [base], {"username": "alice2", "password": "one", "url": "u"})
    right = g.rev(B, [base], {"username": "alice", "password": "two"})  # also removes url
    merged = g.merged(left, right)
    assert values(merged) == {"username": "alice2", "password": "two"}
    assert not merged.conflicted and merged.needs_merge_revision and not merged.deleted


def test_times_are_no_register_they_never_conflict_nor_decide():
    g = Graph()
    base = g.rev(A, [], {"username": "alice", "password": "one"}, time=1_000)
    # the same content at other times (and with none): identical heads, nothing to merge
    same_a, same_b = g.rev(A, [base], {"username": "alice", "password": "one"}, time=5), \
        g.rev(B, [base], {"username": "alice", "password": "one"})
    merged = g.merged(same_a, same_b)
    assert not merged.conflicted and not merged.needs_merge_revision
    # edits of different fields merge, whatever time each claims
    left = g.rev(A, [same_a, same_b], {"username": "alice2", "password": "one"}, time=2**53 - 1)
    right = g.rev(B, [same_a, same_b], {"username": "alice", "password": "two"}, time=0)
    merged = g.merged(left, right)
    assert values(merged) == {"username": "alice2", "password": "two"}
    assert not merged.conflicted and merged.needs_merge_revision
    assert merged.content.time is None  # the merge revision is stamped by whoever seals it
    # a conflict shows the same candidate whatever the times say
    shown = []
    for times in ((0, 2**53 - 1), (2**53 - 1, 0)):
        g2 = Graph()
        root = g2.rev(A, [], {"password": "one"})
        x = g2.rev(A, [root], {"password": "from A"}, time=times[0])
        y = g2.rev(B, [root], {"password": "from B"}, time=times[1])
        shown.append(values(g2.merged(x, y))["password"])
    assert shown[0] == shown[1]


def test_same_field_different_values_is_a_conflict_keeping_every_value():
    g = Graph()
    base = g.rev(A, [], {"password": "one"})
    left = g.rev(A, [base], {"password": "from A"})
    right = g.rev(B, [base], {"password": "from B"})
    merged = g.merged(left, right)
    candidates = merged.conflicts[field_register("password")]
    assert {c.value[0] for c in candidates} == {"from A", "from B"}
    assert {c.revision for c in candidates} == {left.revision_id, right.revision_id}
    assert values(merged)["password"] == candidates[0].value[0]  # deterministic: highest revision
    assert not merged.needs_merge_revision
    assert g.merged(right, left).content == merged.content  # order of heads does not matter


def test_same_change_on_both_sides_is_not_a_conflict_and_needs_no_merge():
    g = Graph()
    base = g.rev(A, [], {"password": "one"})
    left = g.rev(A, [base], {"password": "same"})
    right = g.rev(B, [base], {"password": "same"})
    merged = g.merged(left, right)
    assert not merged.conflicted and not merged.needs_merge_revision


def test_title_conflict_and_field_removed_against_changed():
    g = Graph()
    base = g.rev(A, [], {"password": "one", "pin": "1"})
    left = g.rev(A, [base], {"password": "one"}, title="Left")  # removes pin
    right = g.rev(B, [base], {"password": "one", "pin": "2"}, title="Right")
    merged = g.merged(left, right)
    assert {c.value for c in merged.conflicts[TITLE]} == {"Left", "Right"}
    assert {c.value for c in merged.conflicts[field_register("pin")]} == {None, ("2", False)}


def test_edit_against_delete_keeps_the_edit_and_flags_the_item():
    g = Graph()
    base = g.rev(A, [], {"password": "one"})
    deleted = g.rev(A, [base], {"password": "one"}, deleted=True)
    edited = g.rev(B, [base], {"password": "edited"})
    merged = g.merged(deleted, edited)
    assert not merged.deleted and values(merged) == {"password": "edited"}
    assert EDIT_SURVIVED_DELETE in merged.content.flags
    assert merged.needs_merge_revision


def test_delete_that_saw_every_edit_wins():
    g = Graph()
    base = g.rev(A, [], {"password": "one"})
    edited = g.rev(B, [base], {"password": "edited"})
    deleted = g.rev(A, [edited], {"password": "edited"}, deleted=True)
    other = g.rev(C, [base], {"password": "one"}, title="Item")  # unchanged content from C
    merged = g.merged(deleted, other)
    assert merged.deleted and not merged.conflicted


def test_a_merge_revision_does_not_turn_into_a_false_conflict():
    """C merges A's and B's edits; meanwhile A edits the same field again. No conflict: A saw its own edit."""
    g = Graph()
    base = g.rev(A, [], {"username": "o", "password": "o"})
    a1 = g.rev(A, [base], {"username": "a", "password": "o"})
    b1 = g.rev(B, [base], {"username": "o", "password": "b"})
    merge = g.rev(C, [a1, b1], {"username": "a", "password": "b"})
    a2 = g.rev(A, [a1], {"username": "a2", "password": "o"})
    merged = g.merged(merge, a2)
    assert not merged.conflicted
    assert values(merged) == {"username": "a2", "password": "b"}


def test_a_resolution_beats_the_value_it_resolved():
    """A person resolved A vs B to A's value; a device that only saw B and edited another field loses f."""
    g = Graph()
    base = g.rev(A, [], {"password": "o", "url": "o"})
    a1 = g.rev(A, [base], {"password": "a", "url": "o"})
    b1 = g.rev(B, [base], {"password": "b", "url": "o"})
    resolution = g.rev(A, [a1, b1], {"password": "a", "url": "o"})
    c1 = g.rev(C, [b1], {"password": "b", "url": "from C"})
    merged = g.merged(resolution, c1)
    assert not merged.conflicted
    assert values(merged) == {"password": "a", "url": "from C"}


def test_two_devices_merging_the_same_heads_converge_without_a_new_merge():
    g = Graph()
    base = g.rev(A, [], {"username": "o", "password": "o"})
    a1 = g.rev(A, [base], {"username": "a", "password": "o"})
    b1 = g.rev(B, [base], {"username": "o", "password": "b"})
    content = g.merged(a1, b1).content.field_map()
    merge_by_a = g.rev(A, [a1, b1], content)
    merge_by_b = g.rev(B, [a1, b1], content)
    merged = g.merged(merge_by_a, merge_by_b)
    assert not merged.conflicted and not merged.needs_merge_revision
    assert values(merged) == {"username": "a", "password": "b"}


def test_concurrent_conflicting_resolutions_conflict_again():
    g = Graph()
    base = g.rev(A, [], {"password": "o"})
    a1 = g.rev(A, [base], {"password": "a"})
    b1 = g.rev(B, [base], {"password": "b"})
    chose_a = g.rev(A, [a1, b1], {"password": "a"})
    chose_b = g.rev(B, [a1, b1], {"password": "b"})
    assert g.merged(chose_a, chose_b).conflicted


def test_merge_output_is_deterministic_for_field_order_and_flags():
    g = Graph()
    base = g.rev(A, [], [("a", "1"), ("b", "2")])
    left = g.rev(A, [base], [("a", "1"), ("b", "2"), ("z", "new")])
    right = g.rev(B, [base], [("a", "1"), ("b", "2"), ("c", "also new")])
    first = g.merged(left, right)
    second = g.merged(right, left)
    assert first.content == second.content
    assert [f.name for f in first.content.fields][:2] == ["a", "b"]
