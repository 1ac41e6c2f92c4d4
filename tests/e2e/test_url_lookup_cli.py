"""Issue 18 through the real CLI: `search --url` (on a home directly and through a daemon, the same
JSON), `init` through a running daemon, `get` showing when an item was created, and finding the
socket: the daemon's link under `$XDG_RUNTIME_DIR`, `$VAULTPEER_SOCKET` for the CLI."""

import json
import os
import subprocess
import sys

from helpers import PASSWORD, cli_env, error_lines, run_cli
from vaultpeer.client import Client
from vaultpeer.service.home import runtime_socket_link

PW = PASSWORD + "\n"
ITEMS = [
    ("GitHub", ["username=alice", "url=https://github.com/login", "password=gh-secret"]),
    ("Gist", ["username=alice2", "url=https://gist.github.com", "password=gist-secret"]),
    ("Pages", ["username=alice3", "url=alice.github.io"]),
    ("Elsewhere", ["username=bob", "url=https://gitlab.com"]),
]


def check_url_search(cli) -> None:
    found = json.loads(cli("search", "--url", "https://github.com/settings", "--json"))
    assert [f["title"] for f in found] == ["GitHub", "Gist"]
    assert found[0] == {"id": found[0]["id"], "title": "GitHub", "username": "alice",
                        "url": "https://github.com/login", "folder": ""}
    assert [f["title"] for f in json.loads(cli("search", "--url", "alice.github.io", "--json"))] == ["Pages"]
    human = cli("search", "--url", "https://gist.github.com/x")
    assert "USERNAME" in human and "Gist" in human and "gh-secret" not in human and "Elsewhere" not in human
    assert "No item matches." in cli("search", "--url", "https://bob.github.io/")


def test_search_by_url_on_the_home_and_through_the_daemon(world):
    laptop = world("laptop")
    laptop.init()
    for title, fields in ITEMS:
        args = [a for field in fields for a in ("--field", field)]
        laptop.ok("add", title, *args, "--password-stdin", stdin=PW)

    check_url_search(lambda *args: laptop.ok(*args, "--password-stdin", stdin=PW))
    # a bad URL is said before any password is asked (no stdin given), in one line, exit 2
    for bad, why in (("https://exa mple.com", "no valid host"), ("https://a.example\x01", "control character"),
                     ("https://example.com/" + "a" * 10_000, "longer than 8192")):
        result = laptop.cli("search", "--url", bad)
        assert result.returncode == 2 and len(error_lines(result.stderr)) == 1 and why in result.stderr
    both = laptop.cli("search", "git", "--url", "https://github.com")
    assert both.returncode == 2 and "one of the two" in both.stderr
    assert laptop.cli("search").returncode == 2

    laptop.start("--offline")
    laptop.unlock()
    check_url_search(laptop.ok)  # no password: through the daemon
    result = laptop.cli("search", "--url", "https://user:hunter2@exa mple.com")
    assert result.returncode == 2 and "hunter2" not in result.stderr + result.stdout
    # get shows when the item was created
    assert ", created " in laptop.ok("get", "GitHub")


def test_init_through_a_running_daemon_serves_the_new_vault_at_once(world):
    laptop = world("laptop")
    laptop.start("--offline")
    assert laptop.status()["vault_id"] is None
    result = laptop.cli("init", "--name", "Laptop", "--password-stdin", stdin=PW)
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert "through the running daemon" in result.stdout and "Recovery key" in result.stdout
    status = laptop.status()
    assert status["vault_id"] is not None and status["name"] == "Laptop" and not status["locked"]
    laptop.ok("add", "Mail", "--field", "password=x")  # served unlocked: no password asked
    assert laptop.titles() == ["Mail"]
    again = laptop.cli("init", "--password-stdin", stdin=PW)
    assert again.returncode != 0 and "already has a vault" in again.stderr
    assert [e["event"] for e in laptop.api("audit.log")][0] == "vault.created"
    assert json.loads(laptop.ok("log", "--json")) == laptop.api("audit.log")  # the same JSON


def test_the_socket_is_found_by_its_runtime_link_and_by_vaultpeer_socket(world):
    xdg = world.root / "xdg"
    xdg.mkdir(mode=0o700)
    laptop = world("laptop", env={"XDG_RUNTIME_DIR": str(xdg)})
    laptop.init()
    laptop.start("--offline")
    link = runtime_socket_link(laptop.home, xdg)
    assert os.readlink(link) == str(laptop.socket_path)
    with Client(link, timeout=10) as client:
        assert client.call("status")["home"] == str(laptop.home)
    # the CLI, given no home, finds the daemon by $VAULTPEER_SOCKET (no password asked: through it)
    laptop.unlock()
    laptop.add("Mail", password="x", url="https://mail.example.com")
    nowhere = str(world.root / "nohome")  # the default home: not this one, and not the person's
    env = cli_env(VAULTPEER_SOCKET=str(link), HOME=nowhere, XDG_DATA_HOME=nowhere)
    for args in (("ls", "--json"), ("search", "--url", "mail.example.com", "--json")):
        result = subprocess.run([sys.executable, "-m", "vaultpeer", *args], capture_output=True, text=True,
                                env=env, timeout=60)
        assert result.returncode == 0, result.stderr
        assert [i["title"] for i in json.loads(result.stdout)] == ["Mail"]
    # a named home is that home's daemon, whatever $VAULTPEER_SOCKET says
    named = run_cli(world.root / "other", "status", "--json", env=env)
    assert named.returncode == 0 and json.loads(named.stdout)["socket"] is None
    laptop.stop()
    assert not os.path.lexists(link)  # removed when the daemon stops
