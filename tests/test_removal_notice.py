"""The ``removed`` message (docs/protocol.md, sync protocol 4): a member tells a device it was
removed from the vault. Through the real session machine and real stores, no sockets; the daemons'
part (who sends it when) is in tests/e2e/test_daemon.py."""

import dataclasses

import pytest

from helpers import PASSWORD, make_replicas, sync_pair, vault_state
from test_audit import events
from vaultpeer.core import encoding
from vaultpeer.core.errors import IntegrityError
from vaultpeer.core.identity import DeviceKeys
from vaultpeer.core.roster import vouch
from vaultpeer.core.sync import (
    MAX_REMOVAL_ENTRIES,
    Error,
    Phase,
    RemoteProtocolError,
    Removed,
    SyncSession,
    decode_message,
    encode_message,
    removal_notice,
)
from vaultpeer.core.vclock import VersionVector
from vaultpeer.service.replication import SyncPeer
from vaultpeer.service.store import Store
from vaultpeer.service.vault import Vault


@pytest.fixture
def revoked():
    """a revoked c (c knew a and b); returns a, b, c."""
    a, b, c = make_replicas(3)
    sync_pair(a, b)
    sync_pair(a, c)
    sync_pair(b, c)
    a.revoke(c.device.device_id, PASSWORD)
    return a, b, c


def tell(c, sender, notice: bytes) -> tuple[SyncPeer, list[bytes]]:
    """c receives ``notice`` from ``sender`` as the first message of a session it started."""
    peer = SyncPeer(c, initiator=True, peer=sender.device.device_id)
    sent = peer.start()
    return peer, sent + peer.receive(notice)


def test_a_revoked_device_told_by_a_member_knows_who_removed_it_and_stops(revoked):
    a, b, c = revoked
    assert c.removal is None and c.health()["removed"] is None
    peer, replies = tell(c, a, removal_notice(a.vault_id, a.revocations_of(c.device.device_id)))
    assert peer.failed and peer.finished and not peer.peer_at_fault  # the session ends, nobody is blamed
    assert len(replies) == 1  # its hello only: nothing is answered to the notice
    assert peer.removal == c.removal
    assert (c.removal.by, c.removal.by_name) == (a.device.device_id, "device-0")
    assert c.health()["removed"] == {"by": str(a.device.device_id), "by_name": "device-0"}
    assert ("device.removed", {"device_id": str(a.device.device_id), "device_name": "device-0"}) in events(c)
    # it no longer counts itself a member, writes no roster statement, and its items stay readable
    assert c.device.device_id not in c.roster.members
    assert not c.describe_self()
    assert c.list_items() is not None
    # told again: nothing new is recorded
    tell(c, b, removal_notice(a.vault_id, a.revocations_of(c.device.device_id)))
    assert [e for e, _ in events(c)].count("device.removed") == 1


def test_the_notice_may_come_in_any_phase_of_a_session(revoked):
    a, b, c = revoked
    c.add("made on the phone", {"password": "x"})
    peer = SyncPeer(c, initiator=True, peer=a.device.device_id)
    peer.start()
    hello = SyncPeer(a, initiator=False, peer=c.device.device_id).start()[0]
    peer.receive(hello)
    assert peer.session.phase is Phase.RECORDS
    assert peer.receive(removal_notice(a.vault_id, a.revocations_of(c.device.device_id))) == []
    assert peer.session.phase is Phase.REMOVED and c.removal is not None
    with pytest.raises(RemoteProtocolError):  # nothing more is read in this session
        peer.session.receive(hello)


def test_a_removal_signed_by_a_device_never_met_changes_nothing():
    """d joined after c was last in touch and revoked it: c cannot check d's signature, keeps the
    entry without counting it (as any roster entry by a stranger) and stays as it was."""
    a, b, c = make_replicas(3)
    sync_pair(a, c)
    d = Vault(Store.open_in_memory(), DeviceKeys.generate(), allow_insecure_test_kdf=True)
    entry = a.enroll(d.device.public, "late", "Test OS")
    d.join(a.header, [*a.outgoing_roster(), entry], a.device.public, "late", "Test OS")
    d.unlock(PASSWORD)
    sync_pair(a, d)
    d.revoke(c.device.device_id, PASSWORD)
    before = c.health()
    peer, _ = tell(c, a, removal_notice(d.vault_id, d.revocations_of(c.device.device_id)))
    assert peer.removal is None and c.removal is None and not peer.peer_at_fault
    assert c.health() == before
    assert any("does not know" in note for note in peer.notes)
    assert c.device.device_id in c.roster.members


@pytest.mark.parametrize("abuse", ["another device", "forged", "foreign vault", "a vouch", "too many", "none"])
def test_a_member_abusing_the_notice_changes_nothing(revoked, abuse):
    """A member (b here, validly signed into the vault) sends c a notice it should not: about
    another device, with a signature that fails, for another vault, carrying a vouch instead of a
    revocation, too many entries, or none. c stores nothing of it and stays a member; the peer is
    at fault (the link's address is counted) and it is in c's audit log as a rejected sync."""
    a, b, c = make_replicas(3)
    sync_pair(a, b)
    sync_pair(a, c)
    sync_pair(b, c)
    b.revoke(a.device.device_id, PASSWORD)  # a real, valid revocation, but of a, not of c
    of_a = b.revocations_of(a.device.device_id)
    revocation_of_c = dataclasses.replace(of_a[0], member=c.device.public).signed_by(b.vault_id, b.device)
    if abuse == "another device":
        notice = removal_notice(b.vault_id, of_a)
    elif abuse == "forged":
        notice = removal_notice(b.vault_id, [dataclasses.replace(revocation_of_c, signature=bytes(64))])
    elif abuse == "foreign vault":
        notice = removal_notice(bytes(16), [revocation_of_c])
    elif abuse == "a vouch":
        entry = vouch(b.vault_id, b.device, c.device.public, "phone", "Test OS", version=9)
        notice = encoding.encode({"t": "removed", "vault": b.vault_id, "roster": [entry.to_record()]})
    elif abuse == "too many":
        notice = encoding.encode({"t": "removed", "vault": b.vault_id,
                                  "roster": [revocation_of_c.to_record()] * (MAX_REMOVAL_ENTRIES + 1)})
    else:
        notice = encoding.encode({"t": "removed", "vault": b.vault_id, "roster": []})
    before = vault_state(c)
    peer, replies = tell(c, b, notice)
    assert peer.failed and peer.peer_at_fault
    assert c.removal is None and c.device.device_id in c.roster.members
    assert vault_state(c) == before
    rejected = [d for e, d in events(c) if e == "peer.rejected"]
    assert rejected and rejected[-1]["reason"] in ("sync_protocol", "sync_rejected")
    # and the next honest session with b works as ever
    c.add("still syncing", {"password": "y"})
    left, right = sync_pair(c, a)
    assert not (left.failed or right.failed)


def test_the_message_round_trips_and_is_decoded_strictly(revoked):
    a, _, c = revoked
    revocations = tuple(a.revocations_of(c.device.device_id))
    assert revocations and all(e.revoked for e in revocations)
    message = encode_message(Removed(a.vault_id, revocations))
    assert decode_message(message) == Removed(a.vault_id, revocations)
    assert removal_notice(a.vault_id, list(revocations)) == message
    body = encoding.decode(message, max_size=len(message))
    for broken in ({**body, "extra": 1}, {k: v for k, v in body.items() if k != "vault"},
                   {**body, "vault": b"short"}, {**body, "roster": "not a list"}):
        with pytest.raises(RemoteProtocolError):
            decode_message(encoding.encode(broken))
    # a session refuses a notice for another vault, and says nothing is wrong with its own phase
    session = SyncSession(vault_id=bytes(16), store_id=bytes(16), knowledge=VersionVector(), initiator=True)
    with pytest.raises(RemoteProtocolError, match="another vault"):
        session.receive(message)
    assert session.phase is Phase.ERROR


def test_a_forgery_among_the_revocations_stores_none_of_them(revoked):
    a, b, c = revoked
    good = a.revocations_of(c.device.device_id)
    forged = dataclasses.replace(good[0], version=good[0].version + 1)  # signature no longer matches
    before = vault_state(c)
    with pytest.raises(IntegrityError):
        c.intake.receive_removal([*good, forged])
    assert vault_state(c) == before and c.removal is None


def test_a_member_whose_link_is_told_sends_an_error_code_it_knows(revoked):
    """The notice is not an error: a device that received it answers nothing, and its session's
    peer sees no `error` code it would have to explain."""
    a, _, c = revoked
    peer, replies = tell(c, a, removal_notice(a.vault_id, a.revocations_of(c.device.device_id)))
    assert not any(isinstance(decode_message(r), Error) for r in replies)
