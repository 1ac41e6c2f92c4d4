import dataclasses
import random

import pytest

from vaultpeer.core.errors import IntegrityError
from vaultpeer.core.identity import DeviceKeys
from vaultpeer.core.roster import MAX_UNCOUNTED, Roster, RosterEntry, revoke, vouch

VAULT = b"V" * 16


@pytest.fixture
def devices():
    return {name: DeviceKeys.generate() for name in "ABCDX"}


def pair(a, b):
    """What pairing produces: each device vouches for the other."""
    return [vouch(VAULT, a, b.public, "b", "os"), vouch(VAULT, b, a.public, "a", "os")]


def test_trust_is_transitive_through_pairings(devices):
    A, B, C = devices["A"], devices["B"], devices["C"]
    entries = pair(A, B) + pair(B, C)
    from_a = Roster(VAULT, [A.public], entries)
    from_c = Roster(VAULT, [C.public], entries)
    assert set(from_a.members) == set(from_c.members) == {A.device_id, B.device_id, C.device_id}
    assert from_a.members[C.device_id].added_by == B.device_id
    assert Roster(VAULT, [devices["X"].public], entries).members.keys() == {devices["X"].device_id}


def test_self_description_names_the_member(devices):
    A, B = devices["A"], devices["B"]
    entries = pair(A, B) + [vouch(VAULT, B, B.public, "B's own name", "Linux 6.1 (x86_64)", version=2)]
    member = Roster(VAULT, [A.public], entries).members[B.device_id]
    assert (member.name, member.os_description) == ("B's own name", "Linux 6.1 (x86_64)")


def test_revocation_is_sticky_and_drops_what_the_revoked_device_vouched_for(devices):
    A, B, C, D = devices["A"], devices["B"], devices["C"], devices["D"]
    entries = pair(A, B) + pair(A, C) + pair(B, D)
    roster = Roster(VAULT, [A.public], entries)
    assert D.device_id in roster.members
    revocation = revoke(VAULT, A, roster.members[B.device_id], revoked_after=7, version=2)
    after = roster.with_entries([revocation])
    assert B.device_id not in after.members and D.device_id not in after.members
    assert set(after.members) == {A.device_id, C.device_id}
    # a later "not revoked" statement does not undo it
    again = after.with_entries([vouch(VAULT, C, B.public, "b", "os", version=5)])
    assert B.device_id not in again.members
    # revisions up to the cutoff stay valid, later ones are refused
    assert after.accepts_revision_from(B.device_id, 7) == B.public
    assert after.accepts_revision_from(B.device_id, 8) is None
    assert after.accepts_revision_from(devices["X"].device_id, 1) is None


def test_forged_entries_reject_the_batch_and_untrusted_ones_do_not_count(devices):
    A, B, X = devices["A"], devices["B"], devices["X"]
    roster = Roster(VAULT, [A.public], pair(A, B))
    forged = dataclasses.replace(vouch(VAULT, B, X.public, "x", "os"), name="renamed")
    with pytest.raises(IntegrityError):
        roster.with_entries([forged])
    by_stranger = vouch(VAULT, X, devices["C"].public, "c", "os")
    assert roster.with_entries([by_stranger]).members.keys() == roster.members.keys()
    other_vault = vouch(b"W" * 16, B, X.public, "x", "os")
    with pytest.raises(IntegrityError):
        roster.with_entries([other_vault])


def test_record_round_trip_and_validation(devices):
    entry = vouch(VAULT, devices["A"], devices["B"].public, "b", "os")
    assert RosterEntry.from_bytes(entry.to_bytes()) == entry
    for bad in (entry.to_record()[:-1], [*entry.to_record()[:2], "", *entry.to_record()[3:]],
                [*entry.to_record()[:2], "x" * 65, *entry.to_record()[3:]]):
        with pytest.raises(IntegrityError):
            RosterEntry.from_record(bad)


def bad_text(vault, signer, member, name="evil\x1b[2J\rrealdev", os_description="os", revoked=False, version=1):
    """A signed entry whose text a device before the plain-text rule could have accepted."""
    return RosterEntry(member, name, os_description, revoked, 0, version, signer.device_id).signed_by(vault, signer)


def test_an_entry_whose_text_is_not_plain_never_counts_whatever_the_order(devices):
    A, B, C, D = devices["A"], devices["B"], devices["C"], devices["D"]
    entries = [
        *pair(A, B),
        bad_text(VAULT, B, B.public, version=2),  # B describes itself with escapes: A's name for it counts
        bad_text(VAULT, A, C.public, name="c\u202e"),  # C is vouched for only with a bidi override
        vouch(VAULT, C, C.public, "c", "os"), *pair(C, D),  # so neither C nor what C vouched for counts
        bad_text(VAULT, B, D.public, name="ok", os_description="Linux\u200b"),
    ]
    assert RosterEntry.from_bytes(entries[2].to_bytes()) == entries[2]  # stored ones still load
    expected = None
    for seed in range(40):
        shuffled = random.Random(seed).sample(entries, len(entries))
        split = seed % len(entries)
        roster = Roster(VAULT, [A.public], shuffled[:split]).with_entries(shuffled[split:])  # never raises
        seen = ({d: (m.name, m.os_description) for d, m in roster.members.items()}, roster.entries_to_replicate())
        assert expected is None or seen == expected
        expected = seen
    members, replicated = expected
    assert members == {A.device_id: ("a", "os"), B.device_id: ("b", "os")}
    assert all(e.plain for e in replicated) and len(replicated) == 2


def test_a_revocation_counts_whatever_its_text(devices):
    A, B = devices["A"], devices["B"]
    roster = Roster(VAULT, [A.public], pair(A, B))
    revocation = bad_text(VAULT, A, B.public, name="b\x1b", revoked=True, version=2)
    assert B.device_id not in roster.with_entries([revocation]).members


def test_entries_that_do_not_count_are_bounded_and_dropped_in_a_fixed_order(devices):
    A, B = devices["A"], devices["B"]
    strangers = [DeviceKeys.generate() for _ in range(MAX_UNCOUNTED + 40)]
    flood = [vouch(VAULT, s, DeviceKeys.generate().public, "x", "os") for s in strangers]
    flood += [bad_text(VAULT, B, s.public) for s in strangers[:10]]  # a member's entries that do not count
    trusted = pair(A, B)
    kept = None
    for seed in range(5):
        shuffled = random.Random(seed).sample(flood, len(flood))
        roster = Roster(VAULT, [A.public], trusted)
        for start in range(0, len(shuffled), 17):  # batch after batch, never refused
            roster = roster.with_entries(shuffled[start:start + 17])
        uncounted = {key for key in roster.entries if key not in {e.key for e in roster.entries_to_replicate()}}
        assert len(uncounted) == MAX_UNCOUNTED and set(roster.members) == {A.device_id, B.device_id}
        assert roster.dropped == {e.key for e in flood} - uncounted  # what the store should forget
        assert kept is None or uncounted == kept
        kept = uncounted
    # a roster built from what was kept drops nothing more
    assert not Roster(VAULT, [A.public], roster.entries.values()).dropped
