"""Every everyday command through a running daemon (no master password per command), with the
documented --json shapes, exit statuses and hints (docs/cli.md)."""

import socket
import time

import pytest
import trio

from daemons import Daemon, Interactive, pair, paired_pair, wait_until
from helpers import PASSWORD, error_lines, run_cli
from vaultpeer.api import ApiError
from vaultpeer.core.discovery import PeerGone, PeerSeen
from vaultpeer.io.discovery import Discovery
from vaultpeer.io.transports.tcp import host_port

NEW_PASSWORD = "a brand new passphrase"


def test_commands_need_a_running_daemon_and_say_how_to_start_one(tmp_path):
    home = tmp_path / "idle"
    for command in (["lock"], ["unlock", "--password-stdin"], ["peers"], ["sync"], ["pair"], ["unpair", "x"]):
        result = run_cli(home, *command, stdin=PASSWORD + "\n")
        assert result.returncode == 10, (command, result.stderr)
        lines = error_lines(result.stderr)
        assert len(lines) == 1 and "vaultpeer" in lines[0] and "daemon" in lines[0], lines


def test_every_item_command_and_json_shape_through_the_daemon(world):
    laptop = world("laptop")
    laptop.init()
    laptop.start("--offline")

    status = laptop.json("status")
    assert {"device_id", "vault_id", "locked", "listen", "socket", "peers", "conflicts"} <= set(status)
    assert status["locked"] is True and status["listen"] is None and status["peers"] == []
    assert status["socket"].endswith("api.sock") and len(status["vault_id"]) == 32

    locked = laptop.cli("ls")
    assert locked.returncode == 9 and "vaultpeer unlock" in locked.stderr

    wrong = laptop.cli("unlock", "--password-stdin", stdin="not the password\n")
    assert wrong.returncode == 3 and "wrong password" in wrong.stderr
    assert laptop.ok("unlock", "--password-stdin", stdin=PASSWORD + "\n") == "Unlocked.\n"
    assert laptop.json("status")["locked"] is False

    # no --password-stdin from here on: the daemon holds the keys
    added = laptop.json("add", "Email", "--field", "username=alice", "--generate", "password")
    assert set(added) >= {"id", "revision"}
    item = laptop.json("get", "Email")
    assert item["id"] == added["id"] and item["revision"] == added["revision"]
    assert item["title"] == "Email" and item["conflict"] is False
    assert set(item["fields"]) == {"username", "password"} and len(item["fields"]["password"]) >= 16
    password = item["fields"]["password"]
    assert laptop.ok("get", "Email", "--field", "password") == password + "\n"
    human = laptop.ok("get", "Email")
    assert "alice" in human and password not in human
    assert password in laptop.ok("get", "Email", "--reveal")

    assert laptop.json("ls") == [{"id": added["id"], "title": "Email", "username": "alice", "url": "",
                                  "folder": "", "conflict": False, "flags": [], "modified": item["modified"]}]
    assert "alice" in laptop.ok("ls") and "USERNAME" in laptop.ok("ls")
    assert item["modified_by"] == status["device_id"] and item["modified_by_name"] == laptop.json("device")["name"]
    edited = laptop.json("edit", added["id"][:8], "--field", "url=https://mail.example.org",
                         "--remove-field", "username", "--title", "Mail")
    assert edited["title"] == "Mail" and set(edited["fields"]) == {"password", "url"}

    laptop.ok("rm", "Mail")
    assert laptop.json("ls") == []
    assert [d["title"] for d in laptop.json("ls", "--deleted")] == ["Mail"]
    laptop.ok("restore", "Mail")
    history = laptop.json("history", "Mail")
    assert [h["deleted"] for h in history] == [False, False, True, False]
    laptop.ok("restore", "Mail", history[0]["revision"])
    assert laptop.json("get", "Email")["fields"] == {"username": "alice", "password": password}

    assert laptop.json("conflicts") == []
    assert laptop.json("peers") == []
    assert laptop.json("peers", "--name", "Laptop two") == []  # renames this device, then lists (issue 17)
    assert laptop.json("device")["name"] == "Laptop two"
    assert "0 connected" in laptop.ok("sync")
    assert len(laptop.ok("generate", "--length", "24").strip()) == 24
    assert laptop.json("device")["device_id"] == status["device_id"]

    laptop.ok("lock")
    assert laptop.json("status")["locked"] is True
    assert laptop.cli("get", "Email").returncode == 9


def test_passwd_through_the_daemon_and_revocation_after_it(world):
    """A password change goes through the daemon; the old password stops working at once, and the
    daemon never wraps a rotated key with the old password's key (which would lock everyone out)."""
    laptop, desktop = paired_pair(world)

    laptop.ok("passwd", "--password-stdin", stdin=f"{PASSWORD}\n{NEW_PASSWORD}\n")
    wrong = laptop.cli("passwd", "--password-stdin", stdin=f"{PASSWORD}\nwhatever-else-1\n")
    assert wrong.returncode == 3
    # the new header reaches the desktop at once: its old password stops working there too
    desktop.ok("lock")
    assert wait_until(lambda: desktop.cli("unlock", "--password-stdin", stdin=PASSWORD + "\n").returncode == 3, 10)
    desktop.unlock(NEW_PASSWORD)

    # revoking (which rotates the vault key) still works, and the header stays openable
    wrong = laptop.cli("unpair", desktop.status()["device_id"], "--password-stdin", stdin=PASSWORD + "\n")
    assert wrong.returncode == 3 and desktop.status()["device_id"] in [p["device_id"] for p in laptop.json("peers")]
    out = laptop.ok("unpair", desktop.status()["device_id"], "--password-stdin", stdin=NEW_PASSWORD + "\n")
    assert "passwd" in out  # it says what a revoked device that knew the password can still do
    laptop.ok("lock")
    assert laptop.cli("unlock", "--password-stdin", stdin=PASSWORD + "\n").returncode == 3
    laptop.unlock(NEW_PASSWORD)
    laptop.ok("add", "After the rotation", "--field", "password=x")
    assert laptop.json("get", "After the rotation")["fields"] == {"password": "x"}


def test_a_same_field_conflict_through_two_daemons_is_listed_and_resolved(world):
    laptop, desktop = paired_pair(world)
    laptop.ok("add", "Bank", "--field", "password=original")
    assert wait_until(lambda: desktop.has_item("Bank"), 5)

    for daemon in (laptop, desktop):
        daemon.stop()
        daemon.start("--offline")
        daemon.unlock()
    laptop.ok("edit", "Bank", "--field", "password=from-laptop")
    desktop.ok("edit", "Bank", "--field", "password=from-desktop")
    laptop.stop()
    laptop.start("--listen", "127.0.0.1:0", "--no-mdns")
    laptop.unlock()
    desktop.stop()
    desktop.start("--listen", "127.0.0.1:0", "--no-mdns", "--peer", laptop.address)
    desktop.unlock()

    assert wait_until(lambda: laptop.api("conflict.list") != [], 10)
    conflicts = laptop.json("conflicts")
    assert [(c["title"], sorted(c["fields"])) for c in conflicts] == [("Bank", ["password"])]
    candidates = conflicts[0]["fields"]["password"]
    assert sorted(c["value"] for c in candidates) == ["from-desktop", "from-laptop"]
    assert all(set(c) >= {"revision", "value"} for c in candidates)
    assert laptop.status()["conflicts"] == 1 and laptop.json("get", "Bank")["conflict"] is True
    refused = laptop.cli("edit", "Bank", "--field", "password=third")
    assert refused.returncode == 8 and "conflict" in refused.stderr

    # issue 18: deleting it would settle the conflict silently, and an older revision would roll it back
    with pytest.raises(ApiError) as deleting:
        laptop.api("item.delete", item="Bank")
    assert deleting.value.code == 1006 and laptop.cli("rm", "Bank").returncode == 8
    ancestor = laptop.json("history", "Bank")[0]["revision"]
    with pytest.raises(ApiError) as stale:
        laptop.api("conflict.resolve", item="Bank", take=ancestor)
    assert stale.value.code == -32602 and "older" in stale.value.message
    assert laptop.json("get", "Bank")["conflict"] is True  # nothing was written

    take = next(c["revision"] for c in candidates if c["value"] == "from-desktop")
    resolved = laptop.json("resolve", "Bank", "--take", take)
    assert resolved["fields"] == {"password": "from-desktop"} and resolved["conflict"] is False

    def settled(daemon: Daemon) -> bool:
        got = daemon.item("Bank")
        return got["fields"] == {"password": "from-desktop"} and not got["conflict"]

    assert wait_until(lambda: settled(laptop) and settled(desktop), 10)
    assert desktop.json("conflicts") == []


def test_a_joining_device_hears_how_far_the_initial_sync_has_come(world):
    """`pair --join` draws its progress bar from these events (on a terminal)."""
    import threading

    from vaultpeer.client import Client

    laptop, desktop = world("laptop"), world("desktop")
    laptop.init()
    laptop.start()
    desktop.start()
    laptop.unlock()
    with Client(laptop.status()["socket"]) as api:
        for n in range(300):
            api.call("item.add", title=f"Item {n}", fields={"password": f"pw{n}"})

    events: list[dict] = []
    with Client(desktop.status()["socket"], timeout=30) as listener:
        stream = listener.subscribe()

        def collect() -> None:
            try:
                for event in stream:
                    if event["type"] == "sync.progress":
                        events.append(event)
                        if event["received"] >= event["expected"] > 0:
                            return
            except OSError:
                return

        reader = threading.Thread(target=collect, daemon=True)
        reader.start()
        assert pair(laptop, desktop)[:2] == (0, 0)
        reader.join(30)
    assert events, "no sync.progress event"
    assert {e["expected"] for e in events} == {300}
    assert [e["received"] for e in events] == sorted(e["received"] for e in events)
    assert events[-1]["received"] == 300
    assert all(e["received"] <= e["expected"] for e in events)  # issue 18: never "2 of 1"


def test_the_progress_bar_ends_when_everything_arrived_or_the_daemon_goes_quiet(capsys):
    from vaultpeer.cli.app import show_initial_sync

    arrived = iter([{"type": "peer.connected"}, {"type": "sync.progress", "received": 10, "expected": 20},
                    {"type": "sync.progress", "received": 20, "expected": 20},
                    {"type": "never read"}])
    show_initial_sync(arrived)
    assert next(arrived) == {"type": "never read"}

    def quiet():
        yield {"type": "sync.progress", "received": 1, "expected": 5}
        raise TimeoutError("timed out")

    show_initial_sync(quiet())  # returns instead of raising


async def pairing_advert_lifetime(port: int, timeout: float) -> tuple[float, float]:
    """When an invitation advertised for ``port`` showed up on mDNS (127.0.0.1) and when it was
    withdrawn (``time.monotonic()``)."""
    events_send, events = trio.open_memory_channel(100)
    with trio.fail_after(timeout):
        async with trio.open_nursery() as nursery:
            watcher = Discovery(port=9, interfaces=["127.0.0.1"], key_provider=lambda: None,  # advertises nothing
                                own_noise_key=bytes(32), member_keys=lambda: [])
            await nursery.start(watcher.run, events_send)
            key = seen = None
            async for event in events:
                if isinstance(event, PeerSeen) and event.pairing and host_port(event.address)[1] == port:
                    key, seen = event.key, time.monotonic()
                elif isinstance(event, PeerGone) and event.key == key:
                    nursery.cancel_scope.cancel()
                    return seen, time.monotonic()
    raise AssertionError("unreachable")


def test_pair_timeout_is_honoured_on_both_sides_in_one_line_and_the_next_pair_works_at_once(world):
    laptop, desktop = world("laptop"), world("desktop", "--no-mdns")  # the desktop finds no invitation by mDNS
    laptop.init()
    laptop.start()
    desktop.start()
    laptop.unlock()
    port = int(laptop.address.rsplit(":", 1)[1])
    with socket.create_server(("127.0.0.1", 0)) as silent:  # takes connections, never answers
        start = time.monotonic()
        invite = Interactive(laptop.home, "pair", "--timeout", "3")
        join = Interactive(desktop.home, "pair", "--join", "127.0.0.1:%d" % silent.getsockname()[1], "--timeout", "3")
        advertised, withdrawn = trio.run(pairing_advert_lifetime, port, 20)
        statuses = (invite.finish(20), join.finish(20))
        elapsed = time.monotonic() - start
    assert statuses == (11, 11) and 3 <= elapsed < 8, (statuses, elapsed)
    assert error_lines(invite.stderr()) == ["error: no device joined within 3 s; the invitation is withdrawn"]
    assert error_lines(join.stderr()) == ["error: the inviting device did not answer within 3 s"]
    assert advertised < withdrawn < start + 8  # no longer advertised once it ended
    start = time.monotonic()
    nowhere = desktop.cli("pair", "--join", "--timeout", "3", timeout=20)
    assert (nowhere.returncode, error_lines(nowhere.stderr)) == (
        11, ["error: no invitation to join was found within 3 s"])
    assert 3 <= time.monotonic() - start < 8
    # nothing is left open: pairing works at once on both
    assert pair(laptop, desktop)[:2] == (0, 0)


def test_a_home_too_deep_for_a_unix_socket_is_one_line_not_a_traceback(tmp_path):
    """Issue 18, bug 5."""
    home = tmp_path / ("d" * 60) / ("e" * 60)
    result = run_cli(home, "daemon", "--offline", timeout=60)
    assert result.returncode == 1
    assert error_lines(result.stderr) == [error_lines(result.stderr)[0]] and "Traceback" not in result.stderr
    assert "at most 107" in result.stderr and "--home" in result.stderr
