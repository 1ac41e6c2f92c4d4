from hypothesis import given
from hypothesis import strategies as st

from vaultpeer.core.discovery import (
    instance_name,
    is_member_label,
    is_pairing_label,
    label_of,
    new_member_label,
    new_pairing_label,
    random_server_name,
)

KEY, OTHER = b"k" * 32, b"o" * 32


def test_members_recognise_each_other_and_nobody_else_does():
    label = new_member_label(KEY)
    assert is_member_label(KEY, label)
    assert not is_member_label(OTHER, label)
    assert not is_pairing_label(label)
    assert label_of(instance_name(label)) == label


def test_labels_are_fresh_every_time():
    labels = {new_member_label(KEY) for _ in range(100)}
    servers = {random_server_name() for _ in range(100)}
    assert len(labels) == 100 and len(servers) == 100
    assert all(len(label) == 32 and label.isalnum() for label in labels)


def test_pairing_labels():
    label = new_pairing_label()
    assert is_pairing_label(label) and not is_member_label(KEY, label)
    assert not is_pairing_label("pair-x") and not is_pairing_label("pairing")


@given(st.text(max_size=80))
def test_arbitrary_names_never_raise(text):
    assert is_member_label(KEY, text) in (True, False)
    assert is_pairing_label(text) in (True, False)
    assert label_of(text) is None or isinstance(label_of(text), str)
