from vaultpeer.core.history import causal_order, displayed_head, heads
from vaultpeer.core.identity import DeviceKeys
from vaultpeer.core.item import ItemContent, ItemId
from vaultpeer.core.keys import Keyring
from vaultpeer.core.revision import seal_revision

VAULT = b"V" * 16


def test_heads_and_causal_order_of_a_forked_graph():
    keyring, item = Keyring.new(), ItemId.generate()
    a, b = DeviceKeys.generate(), DeviceKeys.generate()
    content = ItemContent.build("x")

    def rev(author, seq, parents=(), deleted=False):
        return seal_revision(vault_id=VAULT, keyring=keyring, author=author, item_id=item, seq=seq,
                             parents=parents, content=content, deleted=deleted)

    root = rev(a, 1)
    left = rev(a, 2, [root.revision_id])
    right = rev(b, 1, [root.revision_id], deleted=True)
    assert {r.revision_id for r in heads([root, left, right])} == {left.revision_id, right.revision_id}
    order = causal_order([right, left, root])
    assert order[0] == root and set(order[1:]) == {left, right}
    assert causal_order([left, right, root]) == order  # input order does not matter
    assert displayed_head([left, right]) == left  # live beats deleted
    merge = rev(b, 2, [left.revision_id, right.revision_id])
    assert heads([root, left, right, merge]) == [merge]
