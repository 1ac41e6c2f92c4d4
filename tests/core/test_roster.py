import dataclasses

import pytest

from vaultpeer.core.errors import IntegrityError
from vaultpeer.core.identity import DeviceKeys
from vaultpeer.core.roster import Roster, RosterEntry, revoke, vouch

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
