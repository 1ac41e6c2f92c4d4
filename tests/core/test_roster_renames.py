"""A device renames itself with a newer version of its own statement about itself. What a member
signs about another device can never rename it (nor do anything else to it): the abuse cases."""

import pytest

from vaultpeer.core.identity import DeviceKeys
from vaultpeer.core.roster import Roster, vouch

VAULT = b"V" * 16


@pytest.fixture
def devices():
    return {name: DeviceKeys.generate() for name in "ABC"}


def members_as_seen_by(anchor, entries):
    roster = Roster(VAULT, [anchor.public], entries)
    return {device_id: member.name for device_id, member in roster.members.items()}


def test_a_newer_own_statement_renames_a_device_everywhere(devices):
    A, B, C = devices["A"], devices["B"], devices["C"]
    entries = [vouch(VAULT, A, B.public, "b", "os"), vouch(VAULT, B, A.public, "a", "os"),
               vouch(VAULT, B, C.public, "c", "os"), vouch(VAULT, C, B.public, "b", "os"),
               vouch(VAULT, B, B.public, "Desktop", "os", version=1)]
    renamed = entries + [vouch(VAULT, B, B.public, "Study desktop", "os", version=2)]
    for anchor in (A, B, C):
        assert members_as_seen_by(anchor, renamed)[B.device_id] == "Study desktop"
    # in any order, the newest version wins (the store keeps the newest of each (member, author))
    assert members_as_seen_by(A, list(reversed(renamed)))[B.device_id] == "Study desktop"


def test_what_a_member_signs_about_another_device_never_renames_it(devices):
    A, B, C = devices["A"], devices["B"], devices["C"]
    entries = [vouch(VAULT, A, B.public, "b", "os"), vouch(VAULT, B, A.public, "a", "os"),
               vouch(VAULT, A, C.public, "c", "os"), vouch(VAULT, C, A.public, "a", "os"),
               vouch(VAULT, B, B.public, "Desktop", "os"), vouch(VAULT, C, C.public, "Phone", "os")]
    # C, a member, signs statements about B with any version and any name: B keeps its own name,
    # and C's statement about B does not make C B's voucher in a way that could revoke it later
    hostile = entries + [vouch(VAULT, C, B.public, "Phone", "os", version=2**62),
                         vouch(VAULT, C, B.public, "evil", "os", version=2**62 + 1)]
    for anchor in (A, B, C):
        seen = members_as_seen_by(anchor, hostile)
        assert seen[B.device_id] == "Desktop" and seen[C.device_id] == "Phone"
    roster = Roster(VAULT, [A.public], hostile)
    assert B.device_id in roster.members and not roster.revoked
