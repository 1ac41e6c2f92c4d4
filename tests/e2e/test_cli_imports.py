"""Issue 17: a command through a running daemon starts fast because it loads only what it needs:
no event loop, no crypto stack, no vault, no rich table for a bare value (bench/cli_speed.py
measures the wall time; this test keeps the cause from coming back)."""

import json
import subprocess
import sys

from helpers import cli_env

#: Modules a command through the daemon must not load: each costs 10-50 ms at start.
HEAVY = ("trio", "zeroconf", "noise", "argon2", "cryptography", "pykeepass", "rich", "platformdirs",
         "jeepney", "vaultpeer.service.vault", "vaultpeer.service.commands", "vaultpeer.core.transport",
         "publicsuffixlist")  # the daemon reads the suffix list for a lookup by URL, never the client

PROBE = """
import atexit, json, runpy, sys
heavy = {heavy!r}
atexit.register(lambda: print("LOADED " + json.dumps(sorted(m for m in heavy if m in sys.modules)), file=sys.stderr))
sys.argv = ["vaultpeer", *{argv!r}]
runpy.run_module("vaultpeer", run_name="__main__")
"""


def loaded_by(home, *argv: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    code = PROBE.format(heavy=HEAVY, argv=["--home", str(home), *argv])
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=cli_env(), timeout=60)
    line = next(line for line in result.stderr.splitlines() if line.startswith("LOADED "))
    return result, json.loads(line[len("LOADED "):])


def test_item_commands_through_the_daemon_load_nothing_heavy(world):
    laptop = world("laptop")
    laptop.init()
    laptop.start("--offline")
    laptop.unlock()
    laptop.api("item.add", title="Email", fields={"username": "alice", "password": "s3cret"})

    result, loaded = loaded_by(laptop.home, "get", "Email", "--field", "password")
    assert result.returncode == 0 and result.stdout == "s3cret\n"
    assert loaded == []
    result, loaded = loaded_by(laptop.home, "read", "vp://Email/password")  # a secret reference, for scripts
    assert result.returncode == 0 and result.stdout == "s3cret"
    assert loaded == []
    result, loaded = loaded_by(laptop.home, "ls", "--json")
    assert result.returncode == 0 and [i["title"] for i in json.loads(result.stdout)] == ["Email"]
    assert loaded == []
    # the listings a person runs most are plain columns: no rich either
    result, loaded = loaded_by(laptop.home, "ls")
    assert result.returncode == 0 and "Email" in result.stdout and loaded == []
    result, loaded = loaded_by(laptop.home, "search", "mail")
    assert result.returncode == 0 and "Email" in result.stdout and loaded == []
    laptop.api("item.edit", item="Email", fields={"url": "https://mail.example.com"})
    result, loaded = loaded_by(laptop.home, "search", "--url", "https://www.example.com/", "--json")
    assert result.returncode == 0 and [i["title"] for i in json.loads(result.stdout)] == ["Email"]
    assert loaded == []
    # showing an item to the Secret Service is an edit like any other (no D-Bus in the CLI)
    result, loaded = loaded_by(laptop.home, "edit", "Email", "--expose-to-secret-service")
    assert result.returncode == 0 and loaded == []
