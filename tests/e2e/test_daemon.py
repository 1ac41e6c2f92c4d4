"""Real daemons on loopback (mDNS on 127.0.0.1): pairing through the real CLI, and what paired
daemons do (sync, trust through a third, revocation, merging, private mDNS names, junk), driven
through their local API."""

import os
import re
import socket
import time

import pytest

from daemons import Daemon, enrolled, pair, paired_pair, ready_to_pair, wait_until
from helpers import PASSWORD


@pytest.mark.mdns_alone  # the desktop joins the one invitation it finds by mDNS
def test_two_daemons_find_each_other_pair_through_the_cli_and_sync_within_two_seconds(private_netns, world):
    # in a network namespace of the test's own: no invitation but the laptop's, whatever else runs here
    laptop, desktop = world("laptop", netns=private_netns), world("desktop", netns=private_netns)
    laptop.init()
    laptop.start()
    desktop.start()
    assert desktop.status()["vault_id"] is None  # a new device waits to join
    laptop.unlock()
    invite_status, join_status, code_a, code_b = pair(laptop, desktop, address=False)  # found by mDNS
    assert (invite_status, join_status) == (0, 0)
    assert code_a == code_b and re.fullmatch(r"Verification code: \d{3} \d{3}", code_a)
    assert desktop.status()["vault_id"] == laptop.status()["vault_id"]
    desktop.unlock()
    laptop.ok("add", "Email", "--field", "username=alice", "--field", "password=s3cret")
    started = time.monotonic()
    assert wait_until(lambda: desktop.has_item("Email"), timeout=2.0), "not visible on the desktop within 2 s"
    delay = time.monotonic() - started
    assert desktop.ok("get", "Email", "--field", "password").strip() == "s3cret"
    peers = desktop.json("peers")
    assert [p["device_id"] for p in peers] == [laptop.status()["device_id"]] and peers[0]["connected"]
    print(f"propagation from a CLI `add`: {delay * 1000:.0f} ms")


def test_devices_paired_through_a_third_trust_each_other(world):
    a, b = paired_pair(world)
    c = world("phone")
    c.start()
    assert pair(b, c)[:2] == (0, 0)  # c joins through b only
    c.unlock()
    phone_id = c.status()["device_id"]
    # b passes on the roster entry that vouches for c; only then is b stopped
    assert wait_until(lambda: phone_id in a.peer_ids(), 10)
    b.stop()
    c.add("From the phone", password="x")
    assert wait_until(lambda: a.has_item("From the phone"), timeout=15), "the edit on c never reached a"

    # a static address says nothing of whose it is: the phone, mDNS off, given only the laptop's
    # address, tries its members' keys in turn (IK needs one); the desktop's key gets silence there
    a.add("From the laptop", password="y")
    c.stop()
    c.start("--listen", "127.0.0.1:0", "--no-mdns", "--peer", a.address)
    c.unlock()
    assert wait_until(lambda: c.has_item("From the laptop"), timeout=15), "the phone never reached the laptop"
    # connected to the laptop (a link may be redialled once on a loaded machine: seen twice in full
    # runs, where the link was down right after the session; not yet explained, see the issue notes)
    laptop_id = a.status()["device_id"]
    assert wait_until(lambda: c.status()["peers"] == [laptop_id], timeout=15), c.log_tail()


def test_a_no_answer_pairs_nothing(world):
    laptop, desktop = ready_to_pair(world)
    invite_status, join_status, _, _ = pair(laptop, desktop, answers=("y", "n"))
    assert invite_status != 0 and join_status != 0
    assert desktop.status()["vault_id"] is None
    assert laptop.api("peer.list") == []


def test_a_revoked_device_is_refused_and_gets_nothing_new(world):
    a, b, c = enrolled(world, "laptop", "desktop", "phone")
    a.add("Before", password="1")
    assert wait_until(lambda: c.has_item("Before"), 5)
    revoked = c.status()["device_id"]
    # c also holds a live connection to b (found by mDNS): b must drop it when it learns of the revocation
    assert wait_until(lambda: any(p["device_id"] == revoked and p["connected"] for p in b.api("peer.list")), 15)
    a.api("peer.remove", device=revoked, password=PASSWORD)
    assert revoked not in a.peer_ids()
    # the rotated key is wrapped under a fresh salt: b locks, says why, and needs the password once
    assert wait_until(lambda: b.status()["locked"], 10)
    assert "rotated" in b.status()["locked_reason"]
    b.unlock()
    a.add("After", password="2")
    assert wait_until(lambda: b.has_item("After"), 5)
    assert wait_until(lambda: revoked not in b.peer_ids(), 5)
    time.sleep(1.5)
    c.api("sync.now")
    time.sleep(1.5)
    assert not c.has_item("After")
    assert "After" not in c.titles()
    # c was linked to a when a revoked it: a told it so before closing (sync protocol 4, `removed`)
    laptop, laptop_name = a.status()["device_id"], a.status()["name"]
    assert wait_until(lambda: c.status()["removed"] is not None, 10), c.log_tail()
    assert c.status()["removed"] == {"by": laptop, "by_name": laptop_name}
    assert c.status()["peers"] == []  # it links to no one any more
    assert f"REMOVED:   this device was removed from the vault by {laptop_name} ({laptop})" in c.ok("status")
    assert f"removed from the vault by {laptop_name}" in c.ok("peers")
    assert f"removed from the vault by {laptop_name}" in c.log_tail()
    events = c.json("log")
    assert any(e["event"] == "device.removed" and e["details"]["device_id"] == laptop for e in events)


def test_a_revoked_device_that_was_away_is_told_when_it_dials_a_member(world):
    """c is off while a revokes it; started again with a's address (its mDNS names are a's old ones
    no more: the key rotated), it dials a, which answers only to say it was removed."""
    a, b, c = enrolled(world, "laptop", "desktop", "phone")
    a.add("Before", password="1")
    assert wait_until(lambda: c.has_item("Before"), 5)
    revoked = c.status()["device_id"]
    c.stop()
    a.api("peer.remove", device=revoked, password=PASSWORD)
    a.add("After", password="2")
    c.start("--listen", "127.0.0.1:0", "--no-mdns", "--peer", a.address)
    c.unlock()
    assert wait_until(lambda: c.status()["removed"] is not None, 15), c.log_tail()
    assert c.status()["removed"] == {"by": a.status()["device_id"], "by_name": a.status()["name"]}
    assert not c.has_item("After") and c.has_item("Before")  # what it had stays; nothing new came
    assert "told" in a.log_tail() and "removed from the vault" in a.log_tail()
    # told once, it stops dialling: a's log says so once, however long c runs
    time.sleep(2)
    assert a.log_tail().count("that it was removed from the vault") == 1


def test_concurrent_offline_edits_merge_once_back_online(world):
    a, b = paired_pair(world)
    a.add("Shared", username="alice", password="one")
    assert wait_until(lambda: b.has_item("Shared"), 5)
    for daemon in (a, b):
        daemon.stop()
        daemon.start("--offline")
        daemon.unlock()
    a.edit("Shared", username="alice@work")
    b.edit("Shared", password="two")
    a.stop()
    a.start()
    a.unlock()
    b.stop()
    b.start("--listen", "127.0.0.1:0", "--no-mdns", "--peer", a.address)
    b.unlock()

    def merged(daemon: Daemon) -> bool:
        item = daemon.item("Shared")
        return item["fields"] == {"username": "alice@work", "password": "two"} and not item["conflict"]

    assert wait_until(lambda: merged(a) and merged(b), 10)


def test_mdns_names_are_private_and_rotate(world):
    laptop = world("laptop", rotate=1.0)
    laptop.init()
    laptop.start()
    hostname = socket.gethostname()
    device_id = laptop.status()["device_id"]
    vault_id = laptop.status()["vault_id"]

    from zeroconf import ServiceBrowser, Zeroconf

    names: set[str] = set()
    zc = Zeroconf(interfaces=["127.0.0.1"])
    try:
        def on_change(zeroconf, service_type, name, state_change):
            names.add(name)

        ServiceBrowser(zc, "_vaultpeer._tcp.local.", handlers=[on_change])
        wait_until(lambda: len(names) >= 3, 8, interval=0.2)
        infos = [zc.get_service_info("_vaultpeer._tcp.local.", n, 1000) for n in list(names)]
    finally:
        zc.close()
    assert len(names) >= 3, names  # the name changed at least twice
    text = (" ".join(names) + " " + " ".join(f"{i.server} {i.properties}" for i in infos if i)).lower()
    labels = set(re.split(r"[.\s{}]+", text))
    for secret in (hostname, device_id, device_id.replace("-", ""), vault_id, "laptop"):
        assert secret.lower() not in labels  # never a name of its own
        if len(secret) >= 6:  # a short host name (say "vm") turns up inside random labels by chance
            assert secret.lower() not in text


def test_junk_and_floods_leave_the_daemon_serving_its_peers(world):
    a, b = paired_pair(world)
    host, port = a.address.rsplit(":", 1)
    junk = []
    for n in range(200):
        s = socket.create_connection((host, int(port)), timeout=5)
        if n % 2:
            s.sendall(os.urandom(300))
        junk.append(s)  # the even ones stall: connected, silent
    b.add("Still served", password="x")
    assert wait_until(lambda: a.has_item("Still served"), 10)
    for s in junk:
        s.close()
    assert a.process.poll() is None and a.status()["listen"] == f"{host}:{port}"


def test_the_daemon_tells_systemd_it_is_ready_and_stops_on_sigterm(world, tmp_path):
    notify_path = str(tmp_path / "notify.sock")
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(notify_path)
    receiver.settimeout(20)
    try:
        daemon = world("laptop", "--offline", env={"NOTIFY_SOCKET": notify_path})
        daemon.start("--offline")
        assert receiver.recv(100) == b"READY=1"
        assert daemon.status()["listen"] is None  # --offline: no listener
        assert daemon.stop() == 0
    finally:
        receiver.close()


def test_a_device_that_has_just_joined_stops_at_once_on_sigterm(world):
    """A zeroconf registration that hung after a join used to keep the daemon from exiting: the
    calls into zeroconf's threads are now abandoned on cancel, so SIGTERM and timeouts work."""
    laptop, desktop = paired_pair(world)  # the phone joins by pairing, below
    phone = world("phone")
    phone.start()
    assert pair(laptop, phone)[:2] == (0, 0)
    assert phone.stop() == 0  # raises if it is still running 10 s after SIGTERM
