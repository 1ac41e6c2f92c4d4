from hypothesis import given
from hypothesis import strategies as st

from vaultpeer.core.discovery import (
    instance_name,
    is_pairing_label,
    label_of,
    label_owner,
    new_member_label,
    new_pairing_label,
    random_server_name,
)

KEY, OTHER, PREVIOUS = b"k" * 32, b"o" * 32, b"p" * 32
ME, PEER, THIRD = b"1" * 32, b"2" * 32, b"3" * 32


def test_members_recognise_each_other_and_whose_name_it_is_and_nobody_else_does():
    label = new_member_label(KEY, PEER)
    assert label_owner([KEY], [ME, PEER, THIRD], label) == PEER
    assert label_owner([OTHER], [ME, PEER, THIRD], label) is None  # another vault (or a stranger)
    assert label_owner([KEY], [ME, THIRD], label) is None  # not a member (any more, or yet)
    assert label_owner([PREVIOUS, KEY], [THIRD, PEER], label) == PEER  # the previous key is tried too
    assert not is_pairing_label(label)
    assert label_of(instance_name(label)) == label


def test_labels_are_fresh_every_time():
    labels = {new_member_label(KEY, ME) for _ in range(100)}
    servers = {random_server_name() for _ in range(100)}
    assert len(labels) == 100 and len(servers) == 100
    assert all(len(label) == 32 and label.isalnum() for label in labels)


def test_pairing_labels():
    label = new_pairing_label()
    assert is_pairing_label(label) and label_owner([KEY], [ME, PEER], label) is None
    assert not is_pairing_label("pair-x") and not is_pairing_label("pairing")


@given(st.text(max_size=80))
def test_arbitrary_names_never_raise(text):
    assert label_owner([KEY], [ME, PEER], text) is None or text.islower()
    assert is_pairing_label(text) in (True, False)
    assert label_of(text) is None or isinstance(label_of(text), str)
