"""Every revision records when it was made (issue 17, "History and dates"): the sealing device's
wall clock, inside the sealed content. The merge never looks at it, and revisions written before
it existed stay readable, with no time."""

import pytest

from helpers import make_replicas, sync_pair
from vaultpeer.core import encoding
from vaultpeer.core.errors import InvalidInput
from vaultpeer.core.item import MAX_TIME, ItemContent, ItemId
from vaultpeer.core.revision import _unpad, open_revision, seal_revision
from vaultpeer.service.views import history_json, item_json, listing_json, member_names


class Clock:
    """A wall clock a test sets (unix seconds)."""

    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


def clocked(vault, now: float) -> Clock:
    clock = Clock(now)
    vault.items._wall_clock = clock  # as Vault(wall_clock=...) would be given
    return clock


def history(vault, item: str) -> list[dict]:
    return [history_json(e, member_names(vault.roster)) for e in vault.history(item)]


def shown(vault, item: str) -> dict:
    return item_json(vault.get(item), member_names(vault.roster))


@pytest.fixture
def pair():
    a, b = make_replicas(2)
    return a, b


def test_every_write_carries_the_wall_clock_of_the_device_that_sealed_it(pair):
    a, _ = pair
    clock = clocked(a, 1_764_000_000.9)
    a.add("Mail", {"username": "alice", "password": "one"})
    clock.now += 60
    a.edit("Mail", {"password": "two"})
    clock.now += 60
    a.delete("Mail")
    clock.now += 60
    a.restore("Mail")
    clock.now += 60
    first = history(a, "Mail")[0]["revision"]
    a.restore("Mail", first)
    entries = history(a, "Mail")
    assert [e["time"] for e in entries] == [1_764_000_000 + 60 * n for n in range(5)]
    me = str(a.device.device_id)
    assert {e["author"] for e in entries} == {me} and {e["author_name"] for e in entries} == {"device-0"}
    item = shown(a, "Mail")
    assert (item["modified"], item["modified_by"], item["modified_by_name"]) == (1_764_000_240, me, "device-0")
    assert [listing_json(v)["modified"] for v in a.list_items()] == [1_764_000_240]


def test_the_time_is_inside_the_sealed_content_and_nowhere_in_clear(pair):
    a, _ = pair
    clocked(a, 1_764_000_000)
    a.add("Mail", {"password": "one"})
    (revision,) = a._store.revisions_of(a.get("Mail").id)
    assert (1_764_000_000).to_bytes(4, "big") not in revision.to_bytes()
    plaintext = encoding.decode(_unpad(_open_padded(a, revision)), max_size=1 << 20)
    assert plaintext["time"] == 1_764_000_000


def _open_padded(vault, revision) -> bytes:
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    from vaultpeer.core.revision import _associated_data
    keyring = vault.unlocked_keyring()
    return ChaCha20Poly1305(keyring.key(revision.key_epoch)).decrypt(
        revision.nonce, revision.ciphertext,
        _associated_data(vault.vault_id, revision.item_id, revision.revision_id, revision.parents,
                         revision.deleted, revision.key_epoch))


def test_a_merge_ignores_times_and_its_revision_carries_the_merging_devices_time(pair):
    a, b = pair
    clock_a, clock_b = clocked(a, 1_000), clocked(b, 5_000)
    a.add("Mail", {"username": "alice", "password": "one"})
    sync_pair(a, b)
    clock_a.now, clock_b.now = 2**40, 7  # absurd clocks on both sides change nothing below
    a.edit("Mail", {"username": "alice2"})
    b.edit("Mail", {"password": "two"})
    sync_pair(a, b)  # each merges what it holds
    for vault, clock in ((a, clock_a), (b, clock_b)):
        item = shown(vault, "Mail")
        assert item["fields"] == {"username": "alice2", "password": "two"} and not item["conflict"]
        assert item["modified"] == clock.now and item["modified_by"] == str(vault.device.device_id)
    # the two merge revisions differ only by author and time: identical heads, no merge of merges
    sync_pair(a, b)
    assert len(a.get("Mail").heads) == 2 and not a.get("Mail").conflict
    assert a.merge_pending() == [] and b.merge_pending() == []


def test_a_conflict_is_decided_by_revision_ids_never_by_times(pair):
    a, b = pair
    a.add("Mail", {"password": "one"})
    sync_pair(a, b)
    higher, lower = sorted((a, b), key=lambda v: v.device.device_id.raw, reverse=True)
    clocked(higher, 0)  # the writer whose value shows claims the oldest time there is
    clocked(lower, MAX_TIME)
    higher.edit("Mail", {"password": "from the higher id"})
    lower.edit("Mail", {"password": "from the lower id"})
    sync_pair(a, b)
    for vault in (a, b):
        view = vault.get("Mail")
        assert view.conflict and view.content.field_map()["password"] == "from the higher id"
    clock = clocked(a, 1_764_000_500)
    a.resolve_conflict("Mail", set_fields={"password": "settled"})
    assert shown(a, "Mail")["modified"] == clock.now


def test_an_edit_that_changes_nothing_is_still_refused_though_the_clock_moved(pair):
    a, _ = pair
    clock = clocked(a, 1_000)
    a.add("Mail", {"password": "one"})
    clock.now = 2_000
    with pytest.raises(InvalidInput, match="nothing to change"):
        a.edit("Mail", {"password": "one"})
    assert len(history(a, "Mail")) == 1


def test_revisions_written_before_times_existed_stay_readable_with_no_time(pair):
    a, b = pair
    item = ItemId.generate()
    old = ItemContent.build("From an older vaultpeer", {"password": "old"})
    assert "time" not in encoding.decode(old.to_plaintext(), max_size=1024)  # exactly the old encoding
    revision = seal_revision(vault_id=b.vault_id, keyring=b.unlocked_keyring(), author=b.device, item_id=item,
                             seq=b._store.next_seq(b.device.device_id), parents=(), content=old)
    assert open_revision(b.vault_id, b.unlocked_keyring(), revision).time is None
    a.receive([revision])
    got = shown(a, "From an older vaultpeer")
    assert got["fields"] == {"password": "old"}
    assert (got["modified"], got["modified_by"], got["modified_by_name"]) == (None, str(b.device.device_id),
                                                                              "device-1")
    assert [e["time"] for e in history(a, "From an older vaultpeer")] == [None]
    assert [listing_json(v)["modified"] for v in a.list_items()] == [None]
    # and an edit on top of it is dated as usual
    clocked(a, 1_764_000_000)
    a.edit("From an older vaultpeer", {"password": "new"})
    assert [e["time"] for e in history(a, "From an older vaultpeer")] == [None, 1_764_000_000]


def test_an_imported_item_keeps_the_time_its_source_gave_it(pair):
    a, _ = pair
    clocked(a, 1_764_000_000)
    dated, undated = a.add_many([ItemContent.build("Dated", {"password": "p"}).at(1_500_000_000),
                                 ItemContent.build("Undated", {"password": "q"})])
    assert dated.modified == 1_500_000_000 and undated.modified == 1_764_000_000


@pytest.mark.parametrize("now,stored", [(-5.0, 0), (1e30, MAX_TIME)])
def test_a_clock_out_of_range_is_pinned_to_the_range_every_device_reads(pair, now, stored):
    a, _ = pair
    clocked(a, now)
    assert a.add("Mail", {"password": "p"}).modified == stored
