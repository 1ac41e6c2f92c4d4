"""`vaultpeer log` through real daemons and the real CLI: what a daemon records (failed unlocks,
pairings, strangers), that the log holds no secret, and that altering or cutting the SQLite file
shows in `log --verify` with the documented exit status 6."""

import json
import re
import sqlite3
import time

import trio

from daemons import pair, paired_through_cli, ready_to_pair
from helpers import PASSWORD
from vaultpeer.core import encoding
from vaultpeer.service.device import load_or_create_keys
from vaultpeer.service.home import Home

CANARY = "CANARY-e2e-audit-9d41c7"
WRONG = "CANARY-wrong-guess-e2e-31f0"
EXIT_INTEGRITY = 6


def events(daemon) -> list[tuple[str, dict]]:
    return [(e["event"], e["details"]) for e in daemon.json("log")]


def database(daemon) -> sqlite3.Connection:
    return sqlite3.connect(daemon.home / "vault.sqlite3", timeout=10)


def test_failed_unlocks_pairings_and_strangers_are_in_the_log_and_no_secret_is(world):
    laptop, desktop = paired_through_cli(world)  # the pairing's audit entries are under test
    laptop_id, desktop_id = laptop.status()["device_id"], desktop.status()["device_id"]

    laptop.ok("lock")
    assert laptop.cli("unlock", "--password-stdin", stdin=WRONG + "\n").returncode == 3
    laptop.unlock()
    laptop.ok("add", "Canary item", "--field", f"password={CANARY}")

    recorded = events(laptop)
    names = [event for event, _ in recorded]
    assert names[:2] == ["vault.created", "unlock"] and recorded[1][1] == {"via": "daemon", "method": "password"}
    paired = [d for e, d in recorded if e == "pairing.paired"]
    assert len(paired) == 1 and paired[0]["role"] == "inviter" and paired[0]["device_id"] == desktop_id
    assert paired[0]["peer"].startswith("127.0.0.1:") and paired[0]["device_name"]
    assert ("unlock.failed", {"via": "daemon", "method": "password", "reason": "wrong_password"}) in recorded
    assert names.index("unlock.failed") < len(names) - 1 and names[-1] == "unlock"
    joined = [d for e, d in events(desktop) if e == "pairing.paired"]
    assert len(joined) == 1 and joined[0]["role"] == "joiner" and joined[0]["device_id"] == laptop_id

    # strangers that know the laptop's key (a member link's first message, sealed to it, from a key
    # that is not a member's): one entry at once, the rest counted (written on stop)
    host, port = laptop.address.rsplit(":", 1)
    laptop_key = load_or_create_keys(Home(laptop.home)).public.noise_public

    async def stranger() -> None:
        from vaultpeer.core.identity import DeviceKeys
        from vaultpeer.io.noise_stream import ConnectionClosed, NoiseStream

        with trio.fail_after(10):
            tcp = await trio.open_tcp_stream(host, int(port))
            try:
                await NoiseStream.dial(tcp, DeviceKeys.generate(), purpose="sync", responder_static=laptop_key,
                                       stamp=time.time_ns())
                raise AssertionError("a stranger's handshake was answered")
            except ConnectionClosed:
                pass  # silence, and the connection closed

    for _ in range(5):
        trio.run(stranger)
    refused = [d for e, d in events(laptop) if e == "peer.rejected" and d["reason"] == "not_member"]
    assert refused and refused[0] == {"peer": "127.0.0.1", "reason": "not_member", "count": 1}

    laptop.stop()
    # readable without a daemon (and without a password: it holds no secret)
    refused = [d for e, d in events(laptop) if e == "peer.rejected" and d["reason"] == "not_member"]
    assert 1 <= len(refused) <= 3 and sum(d["count"] for d in refused) >= 5

    output = laptop.ok("log", "--json") + laptop.ok("log")
    with database(laptop) as connection:
        raw = b"".join(bytes(v) if isinstance(v, bytes) else str(v).encode()
                       for row in connection.execute("SELECT * FROM audit") for v in row)
    for secret in (CANARY, WRONG, PASSWORD, "Canary item"):
        assert secret not in output and secret.encode() not in raw


def test_a_declined_pairing_is_recorded_on_both_devices(world):
    laptop, desktop = ready_to_pair(world)
    invite_status, join_status, _, _ = pair(laptop, desktop, answers=("y", "n"))
    assert invite_status == 11 and join_status == 11
    failed = [d for e, d in events(laptop) if e == "pairing.failed"]
    assert failed == [{"role": "inviter", "reason": "declined_by_peer", "peer": failed[0]["peer"]}]
    assert [d for e, d in events(desktop) if e == "pairing.failed"] == [
        {"role": "joiner", "reason": "declined", "peer": laptop.address}]
    assert not [e for e, _ in events(laptop) + events(desktop) if e == "pairing.paired"]


def test_log_verify_finds_an_altered_row_and_with_a_noted_head_a_cut_one(world):
    laptop = world("laptop")
    laptop.init()
    laptop.start("--offline")
    laptop.unlock()
    laptop.ok("lock")
    assert laptop.cli("unlock", "--password-stdin", stdin=WRONG + "\n").returncode == 3
    laptop.unlock()
    laptop.ok("lock")
    laptop.unlock()  # created, unlock, unlock.failed, unlock, unlock
    intact = laptop.ok("log", "--verify")  # while the daemon runs
    match = re.fullmatch(r"chain intact: (\d+) entries, head ([0-9a-f]{64})\n", intact)
    assert match and int(match.group(1)) == 5
    noted = match.group(2)
    assert laptop.json("log", "--verify") == {"ok": True, "entries": 5, "head": noted, "first_bad": None,
                                              "problem": None}
    assert [e["seq"] for e in laptop.json("log", "--limit", "2")] == [4, 5]
    laptop.stop()

    # the newest entry removed: still a consistent chain, but not the one whose head was noted
    with database(laptop) as connection:
        connection.execute("DELETE FROM audit WHERE seq = 5")
    assert laptop.cli("log", "--verify").returncode == 0
    cut = laptop.cli("log", "--verify", "--head", noted)
    assert cut.returncode == EXIT_INTEGRITY and "noted head" in cut.stderr
    assert laptop.cli("log", "--verify", "--head", noted[:16]).returncode == EXIT_INTEGRITY

    # one detail of one row changed, as someone without the key files could
    with database(laptop) as connection:
        details = encoding.decode(connection.execute("SELECT details FROM audit WHERE seq = 3").fetchone()[0],
                                  max_size=1024)
        details["via"] = "cli"
        connection.execute("UPDATE audit SET details = ? WHERE seq = 3", (encoding.encode(details),))
    broken = laptop.cli("log", "--verify")
    assert broken.returncode == EXIT_INTEGRITY
    assert "broken at entry 3" in broken.stderr and broken.stdout == ""
    report = json.loads(laptop.cli("log", "--verify", "--json").stdout)
    assert report == {"ok": False, "entries": 2, "head": report["head"], "first_bad": 3, "problem": "altered"}
    # the listing still shows what is there (it does not verify; --verify does)
    assert [e["seq"] for e in laptop.json("log")] == [1, 2, 3, 4]

    bad_head = laptop.cli("log", "--verify", "--head", "xyz")
    assert bad_head.returncode == 2 and "--head" in bad_head.stderr
