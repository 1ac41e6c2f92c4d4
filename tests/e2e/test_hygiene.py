"""Process hygiene of the real daemon: no core dumps, not ptrace-able by the user's other
processes, master-password guessing slowed down, and plaintext dropped when the vault locks."""

import re
import subprocess
import sys
import time

import pytest

from helpers import PASSWORD
from vaultpeer.api import ApiError
from vaultpeer.client import Client


def test_every_vaultpeer_process_refuses_core_dumps_and_ptrace():
    # start from a process that would allow a core dump, as a shell with `ulimit -c unlimited` does
    code = (
        "import resource; resource.setrlimit(resource.RLIMIT_CORE, (1 << 20, resource.RLIM_INFINITY))\n"
        "from vaultpeer.service.hygiene import harden_process, process_state\n"
        "assert process_state()['dumpable'] is True and process_state()['core_limit'] > 0\n"
        "print(harden_process())"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "{'core_limit': 0, 'dumpable': False}"


def test_the_daemon_runs_without_core_dumps_and_undumpable(world):
    device = world("laptop")
    device.init()
    device.start()
    assert device.status()["process"] == {"core_limit": 0, "dumpable": False}
    limits = open(f"/proc/{device.process.pid}/limits").read()
    core = next(line for line in limits.splitlines() if line.startswith("Max core file size"))
    assert core.split()[4:6] == ["0", "0"], core


def test_wrong_master_passwords_are_slowed_down_and_a_success_resets(world):
    device = world("laptop")
    device.init()
    device.start()

    def unlock(client, password: str) -> str:
        """Through the API (milliseconds, so the 1 s and 2 s waits are not used up by starting a CLI)."""
        try:
            client.call("unlock", password=password)
        except ApiError as exc:
            return exc.data["name"]
        return "ok"

    with Client(device.home / "run" / "api.sock", timeout=30) as client:
        assert [unlock(client, "wrong password") for _ in range(3)] == ["wrong_password"] * 3  # free
        assert unlock(client, PASSWORD) == "rate_limited"  # even the right password waits its turn (1 s)
        assert device.status()["locked"]
        time.sleep(1.1)
        assert unlock(client, "wrong again") == "wrong_password"
        assert unlock(client, PASSWORD) == "rate_limited"  # now 2 s
        time.sleep(2.1)
        assert unlock(client, "wrong again") == "wrong_password"
        time.sleep(4.1)
        assert unlock(client, "wrong again") == "wrong_password"
    # now 8 s: time enough for the CLI to start and show its status and message
    refused = device.cli("unlock", "--password-stdin", stdin=PASSWORD + "\n")
    assert refused.returncode == 13, (refused.stdout, refused.stderr)
    assert re.search(r"try again in [1-8] s", refused.stderr), refused.stderr
    assert device.status()["locked"]
    time.sleep(8.1)
    device.unlock()
    device.ok("lock")
    for _ in range(3):  # the success reset the count: three free attempts again
        assert device.cli("unlock", "--password-stdin", stdin="wrong password\n").returncode == 3

    device.stop()  # writes the counts still pending in the minute
    failed = [e["details"] for e in device.json("log") if e["event"] == "unlock.failed"]
    assert [d["reason"] for d in failed].count("wrong_password") == 9
    limited = [d for d in failed if d["reason"] == "rate_limited"]
    assert limited[0] == {"via": "daemon", "method": "password", "reason": "rate_limited", "count": 1}
    assert sum(d["count"] for d in limited) == 3 and len(limited) == 2  # the first at once, the rest counted


def test_the_idle_lock_drops_the_keys_and_staged_plaintext(world):
    device = world("laptop", "--idle-lock", "1")
    device.init()
    device.start()
    device.unlock()
    socket = device.home / "run" / "api.sock"
    with Client(socket) as client:
        staged = client.call("item.import", entries=[{"title": "Staged", "fields": {"password": "canary-staged"},
                                                      "source": "api:1"}],
                             more=True)
    with Client(socket, timeout=15) as listener:  # polling `status` would count as use
        events = listener.subscribe()
        assert next(e for e in events if e["type"] == "locked")
    device.unlock()
    with Client(socket) as client, pytest.raises(ApiError) as caught:
        client.call("item.import", entries=[], batch=staged["batch"])
    assert caught.value.data["name"] == "not_found"  # the staged batch was dropped with the key
    assert device.json("ls") == []
