"""A member that signs revisions with absurd times (issue 17, "History and dates").

A revision's time is its author's claim, inside the sealed content. x, a member turned hostile,
signs revisions whose time is 0, the largest allowed (2^53 - 1), or, in a plaintext it crafts by
hand, 2^64 - 1, negative, a float, text or null. The rule (docs/formats.md, "Revision"): a time in
range is shown as given and decides nothing; anything else makes that one revision's plaintext an
integrity error, and the revision is quarantined like any other that does not decrypt. So x cannot
make another item unreadable, cannot change which value a merge or a conflict shows, and cannot
stall a sync."""

import os
import time as time_module

import pytest
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from helpers import make_replicas, sync_pair
from vaultpeer.core import encoding
from vaultpeer.core.item import MAX_TIME, ItemContent, ItemId
from vaultpeer.core.revision import Revision, RevisionId, _associated_data, _pad, seal_revision
from vaultpeer.service.views import history_json, item_json, member_names

#: Out of range or not an integer: each makes its revision's plaintext an integrity error.
REFUSED_TIMES = [2**64 - 1, MAX_TIME + 1, -1, -(2**64), 1.5, "1764000000", None, True, [0]]


@pytest.fixture
def world():
    a, b, x = make_replicas(3)
    a.add("Mail", {"username": "alice", "password": "honest-mail"})
    b.add("Bank", {"password": "honest-bank"})
    for left, right in ((a, b), (a, x), (b, x)):
        sync_pair(left, right)
    return a, b, x


_issued: dict = {}


def next_seq(x) -> int:
    """x's next counter: past what its store holds and what this test already made it sign."""
    seq = max(x._store.next_seq(x.device.device_id), _issued.get(x.device.device_id, 0) + 1)
    _issued[x.device.device_id] = seq
    return seq


def dated(x, item_id: ItemId, content: ItemContent, time: int, *, parents=()) -> Revision:
    """A revision x seals normally, claiming ``time`` (any value the format allows)."""
    return seal_revision(vault_id=x.vault_id, keyring=x.unlocked_keyring(), author=x.device, item_id=item_id,
                         seq=next_seq(x), parents=parents, content=content.at(time))


def crafted(x, item_id: ItemId, title: str, time: object, *, parents=(), fields=()) -> Revision:
    """A revision whose plaintext x encodes by hand with ``time`` under "time", sealed under the vault
    key and signed: it decrypts, and only the content decoder can refuse it."""
    plaintext = encoding.encode({"title": title, "fields": [list(f) for f in fields], "time": time})
    revision_id = RevisionId(x.device.device_id, next_seq(x))
    parents = tuple(sorted(parents))
    keyring = x.unlocked_keyring()
    nonce = os.urandom(12)
    ciphertext = ChaCha20Poly1305(keyring.key(keyring.current_epoch)).encrypt(
        nonce, _pad(plaintext),
        _associated_data(x.vault_id, item_id, revision_id, parents, False, keyring.current_epoch))
    unsigned = Revision(item_id, revision_id, parents, False, keyring.current_epoch, nonce, ciphertext, bytes(64))
    return Revision(item_id, revision_id, parents, False, keyring.current_epoch, nonce, ciphertext,
                    x.device.sign(unsigned.signed_bytes(x.vault_id)))


def converged(a, b) -> bool:
    left, right = sync_pair(a, b)
    return not left.failed and not right.failed and bool(left.converged) and bool(right.converged)


def readable(vault) -> dict[str, dict[str, str]]:
    return {v.title: v.content.field_map() for v in vault.list_items()}


@pytest.mark.parametrize("time", REFUSED_TIMES)
def test_a_time_out_of_range_quarantines_that_one_revision_and_nothing_else(world, time):
    a, b, x = world
    mail = a.get("Mail")
    # on its own item: the item never shows; on Mail, as a new head: Mail shows what it said before
    alone = crafted(x, ItemId.generate(), "planted", time, fields=[("password", "x", True)])
    on_mail = crafted(x, mail.id, "Mail", time, parents=mail.heads, fields=[("password", "from x", True)])
    a.receive([alone, on_mail])
    for vault in (a, b):
        assert converged(vault, a if vault is b else b)
        assert readable(vault) == {"Mail": {"username": "alice", "password": "honest-mail"},
                                   "Bank": {"password": "honest-bank"}}
        assert vault.get("Mail").opaque_heads == (on_mail.revision_id,)
        report = vault.check()
        assert set(report.undecryptable) == {str(alone.revision_id), str(on_mail.revision_id)}
    # the history shows the quarantined revision as unreadable, with no time
    entry = history_json(a.history("Mail")[-1], member_names(a.roster))
    assert entry["revision"] == str(on_mail.revision_id) and entry["time"] is None
    # and the next honest edit supersedes it
    a.edit("Mail", {"password": "after"})
    assert converged(a, b)
    assert b.get("Mail").content.field_map()["password"] == "after" and not b.get("Mail").opaque_heads


@pytest.mark.parametrize("time", [0, MAX_TIME])
def test_a_time_in_range_is_shown_as_given_and_decides_nothing(world, time):
    a, b, x = world
    mail = a.get("Mail")
    # x edits a field a does not touch: the merge takes both, whatever x claims
    a.edit("Mail", {"username": "alice2"})
    x_edit = dated(x, mail.id, mail.content.edited({"url": "https://mail.example"}), time, parents=mail.heads)
    b.receive([x_edit])
    assert converged(a, b)
    for vault in (a, b):
        item = vault.get("Mail")
        assert not item.conflict
        assert item.content.field_map() == {"username": "alice2", "password": "honest-mail",
                                            "url": "https://mail.example"}
    times = {e.revision: e.time for e in a.history("Mail")}
    assert times[x_edit.revision_id] == time  # shown exactly as claimed
    # what the item says it was last modified: the merge revision, by the device that merged, at its clock
    item = item_json(b.get("Mail"), member_names(b.roster))
    assert item["modified_by"] == str(b.device.device_id) and item["modified_by_name"] == "device-1"
    assert abs(item["modified"] - time_module.time()) < 60


def test_a_claimed_time_cannot_change_which_value_a_conflict_shows(world):
    a, b, x = world
    shown = set()
    for claim in (0, MAX_TIME):
        mail = a.get("Mail")
        ours = a.edit("Mail", {"password": f"a's value against {claim}"})
        theirs = dated(x, mail.id, mail.content.edited({"password": f"x's value claiming {claim}"}), claim,
                       parents=mail.heads)
        a.receive([theirs])
        view = a.get("Mail")
        assert view.conflict
        # the displayed value is the candidate with the highest revision id, never the latest time
        winner = max((ours.revision, theirs.revision_id))
        expected = (f"a's value against {claim}" if winner == ours.revision else f"x's value claiming {claim}")
        assert view.content.field_map()["password"] == expected
        shown.add(winner.author)
        a.resolve_conflict("Mail", set_fields={"password": "settled"})
        sync_pair(a, x)
    assert len(shown) == 1  # the same device's value both times: the claim changed nothing


def test_absurd_times_never_stall_a_sync_between_honest_devices(world):
    a, b, x = world
    mail = a.get("Mail")
    junk = [crafted(x, ItemId.generate(), f"junk {n}", t) for n, t in enumerate(REFUSED_TIMES)]
    extremes = [dated(x, ItemId.generate(), ItemContent.build(f"at {t}", {"password": "p"}), t) for t in (0, MAX_TIME)]
    on_mail = dated(x, mail.id, mail.content.edited({"notes": "x was here"}), MAX_TIME, parents=mail.heads)
    a.receive([*junk, *extremes, on_mail])
    left, right = sync_pair(a, b)
    assert not left.failed and not right.failed and left.converged and right.converged
    assert left.stats.revisions_sent == len(junk) + len(extremes) + 1
    assert {"at 0", f"at {MAX_TIME}", "Mail", "Bank"} == set(readable(b))
    assert readable(b)["Mail"]["notes"] == "x was here"
    assert converged(a, b) and converged(b, x)


def test_the_largest_time_still_prints_for_a_person():
    from vaultpeer.cli.app import local_time

    assert local_time(MAX_TIME) == f"at unix time {MAX_TIME}" or local_time(MAX_TIME)[:1].isdigit()
    assert local_time(0)[:4] in ("1970", "1969")  # the epoch, in the local zone
    assert local_time(None) == "at an unknown time"


def test_created_is_the_earliest_roots_time_and_only_a_new_root_changes_it(world):
    """``created`` (what item.get says) is worked out once and kept in the index: an edit, here
    or by a member, keeps it; a second root under the item's id (x adds an item with that id,
    claiming an earlier time, with an edit on top of it in the same batch, so that the item's one
    head is no root) makes it that earlier time at once, as a fresh index says too."""
    a, _, x = world
    mail = a.get("Mail")
    created = a.created(mail.id)
    assert created is not None and created == a.history("Mail")[0].time
    a.edit("Mail", {"password": "two"})
    assert a.created(mail.id) == created
    now = a.get("Mail")
    a.receive([dated(x, mail.id, now.content.edited({"url": "https://mail.example"}), created + 100,
                     parents=now.heads)])
    assert a.created(mail.id) == created
    now = a.get("Mail")
    root = dated(x, mail.id, ItemContent.build("Mail", {"password": "x's"}), created - 500)
    child = dated(x, mail.id, now.content.edited({"notes": "on top"}), created + 200,
                  parents=(root.revision_id, *now.heads))
    assert a.receive([root, child])
    assert len(a.get("Mail").heads) == 1 and a.get("Mail").revision == child.revision_id
    assert a.created(mail.id) == created - 500
    a.items.forget_index()
    assert a.created(mail.id) == created - 500
