"""A member that still runs an older vaultpeer (sync protocol version 6, from before early records
ended their sender's records phase) meets a running daemon: it is told to upgrade, and nothing
moves either way. The old device is played by its real home and keys (tests/hostile_member.py),
speaking version 6."""

from daemons import enroll, wait_until
from hostile_member import HostileMember


def test_a_member_speaking_an_older_sync_protocol_is_told_to_upgrade_and_nothing_is_exchanged(world):
    laptop, phone = world("laptop"), world("phone")
    laptop.init()
    enroll(laptop, phone)
    laptop.start()
    laptop.unlock()
    laptop.add("Mail", password="kept")
    old = HostileMember(phone.home)
    try:
        planted = old.sealed(title="sent by an older vaultpeer")
        answer = old.push(laptop.address, revisions=[planted], version=6)
        assert answer.error == "version", answer
        assert not any(m.__class__.__name__ == "Records" and m.revisions for m in answer.messages)
        assert "sent by an older vaultpeer" not in laptop.titles()
        assert wait_until(lambda: "runs an older vaultpeer (sync protocol version 6; this device speaks 7): "
                                  "upgrade vaultpeer on it" in laptop.log.read_text(), 10), laptop.log_tail()
        # an upgrade is not an offense: the same device, now speaking 7, syncs at once
        answer = old.push(laptop.address, revisions=[planted])
        assert answer.done, answer
        assert "sent by an older vaultpeer" in laptop.titles()
    finally:
        old.close()
