"""The real `vaultpeer` command line, each command in its own process, against real homes."""

import json
import os
import stat
import sys
import subprocess
import time

import pytest

from helpers import PASSWORD, cli_env, run_cli
from vaultpeer.core.keys import VaultHeader
from vaultpeer.core.kdf import MIN_MEMORY_KIB, MIN_TIME_COST
from vaultpeer.service.store import Store

PW = PASSWORD + "\n"


@pytest.fixture
def home(tmp_path):
    path = tmp_path / "laptop"
    result = run_cli(path, "init", "--password-stdin", stdin=PW)
    assert result.returncode == 0, result.stderr
    return path


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, (result.stdout, result.stderr)
    return result.stdout


def test_canary_never_reaches_any_file_under_the_home(tmp_path):
    """Acceptance: after init and adding an item, no file holds the canary, title, field name or username."""
    home = tmp_path / "canary-home"
    canaries = {
        "password": "CANARY-PASSWORD-7f3a9c",
        "title": "CanaryTitle-5be21d",
        "field name": "canaryfieldname-c0ffee",
        "username": "canary.user-91d2@example.org",
    }
    init = ok(run_cli(home, "init", "--password-stdin", stdin=PW))
    ok(run_cli(home, "add", canaries["title"], "--field", f"username={canaries['username']}",
               "--field", f"password={canaries['password']}", "--field", f"{canaries['field name']}=x",
               "--password-stdin", stdin=PW))
    ok(run_cli(home, "edit", canaries["title"], "--field", f"notes={canaries['password']}", "--password-stdin",
               stdin=PW))
    # the item really is there, so the scan below is meaningful
    assert ok(run_cli(home, "get", canaries["title"], "--field", "password", "--password-stdin",
                      stdin=PW)).strip() == canaries["password"]
    recovery_line = next(line for line in init.splitlines() if line.startswith("    "))
    files = [p for p in home.rglob("*") if p.is_file()]
    assert any(p.name == "vault.sqlite3" for p in files)
    for path in files:
        data = path.read_bytes()
        for what, canary in {**canaries, "recovery key": recovery_line.strip(),
                             "master password": PASSWORD}.items():
            for form in {canary, canary.replace("-", "")}:
                assert form.encode() not in data, f"{what} found in {path.name}"
                assert form.encode("utf-16-le") not in data, f"{what} (UTF-16) found in {path.name}"


def test_item_commands_and_json_shapes(home):
    device_id = json.loads(ok(run_cli(home, "device", "--json")))["device_id"]
    before = int(time.time())
    added = json.loads(ok(run_cli(home, "add", "Email", "--field", "username=alice", "--field", "password=pw1",
                                  "--json", "--password-stdin", stdin=PW)))
    assert set(added) >= {"id", "revision"} and len(added["id"]) == 32

    item = json.loads(ok(run_cli(home, "get", added["id"][:8], "--json", "--password-stdin", stdin=PW)))
    modified = item.pop("modified")
    assert before <= modified <= time.time() + 1
    assert item.pop("created") == modified  # never edited: its one revision is its first
    assert item == {"id": added["id"], "title": "Email", "fields": {"username": "alice", "password": "pw1"},
                    "revision": added["revision"], "conflict": False, "deleted": False, "flags": [],
                    "secrets": ["password"], "unreadable": [], "modified_by": device_id,
                    "modified_by_name": json.loads(ok(run_cli(home, "device", "--json")))["name"]}

    human = ok(run_cli(home, "get", "Email", "--password-stdin", stdin=PW))
    assert "alice" in human and "pw1" not in human and "--reveal" in human
    assert "pw1" in ok(run_cli(home, "get", "Email", "--reveal", "--password-stdin", stdin=PW))
    assert ok(run_cli(home, "get", "Email", "--field", "password", "--password-stdin", stdin=PW)) == "pw1\n"

    edited = json.loads(ok(run_cli(home, "edit", "Email", "--field", "password=pw2", "--remove-field", "username",
                                   "--title", "Mail", "--json", "--password-stdin", stdin=PW)))
    assert edited["title"] == "Mail" and edited["fields"] == {"password": "pw2"}

    listing = json.loads(ok(run_cli(home, "ls", "--json", "--password-stdin", stdin=PW)))
    assert listing == [{"id": added["id"], "title": "Mail", "username": "", "url": "", "folder": "",
                        "conflict": False, "flags": [], "modified": edited["modified"]}]

    ok(run_cli(home, "rm", "Mail", "--password-stdin", stdin=PW))
    assert json.loads(ok(run_cli(home, "ls", "--json", "--password-stdin", stdin=PW))) == []
    deleted = json.loads(ok(run_cli(home, "ls", "--deleted", "--json", "--password-stdin", stdin=PW)))
    assert [d["title"] for d in deleted] == ["Mail"]
    ok(run_cli(home, "restore", "Mail", "--password-stdin", stdin=PW))

    history = json.loads(ok(run_cli(home, "history", "Mail", "--json", "--password-stdin", stdin=PW)))
    assert [h["deleted"] for h in history] == [False, False, True, False]
    assert history[0]["fields"] == {"username": "alice", "password": "pw1"}
    assert [h["current"] for h in history] == [False, False, False, True]
    ok(run_cli(home, "restore", "Mail", history[0]["revision"], "--password-stdin", stdin=PW))
    again = json.loads(ok(run_cli(home, "get", "Email", "--json", "--password-stdin", stdin=PW)))
    assert again["fields"] == {"username": "alice", "password": "pw1"}


def test_generate_fills_fields(home):
    ok(run_cli(home, "add", "Bank", "--generate", "password", "--length", "32", "--password-stdin", stdin=PW))
    value = ok(run_cli(home, "get", "Bank", "--field", "password", "--password-stdin", stdin=PW)).strip()
    assert len(value) == 32
    assert len(ok(run_cli(home, "generate", "--length", "12")).strip()) == 12


def test_errors_have_clear_messages_and_stable_exit_codes(home):
    ok(run_cli(home, "add", "Twin", "--password-stdin", stdin=PW))
    ok(run_cli(home, "add", "Twin", "--password-stdin", stdin=PW))
    wrong = run_cli(home, "ls", "--password-stdin", stdin="not it\n")
    assert (wrong.returncode, wrong.stderr.strip().splitlines()[-1]) == (3, "error: wrong password")
    missing = run_cli(home, "get", "Nothing", "--password-stdin", stdin=PW)
    assert missing.returncode == 4 and "no item matches" in missing.stderr
    ambiguous = run_cli(home, "get", "Twin", "--password-stdin", stdin=PW)
    assert ambiguous.returncode == 5 and ambiguous.stderr.count("Twin") == 2
    assert "Traceback" not in wrong.stderr + missing.stderr + ambiguous.stderr
    no_vault = run_cli(home.parent / "empty", "ls", "--password-stdin", stdin=PW)
    assert no_vault.returncode == 7 and "vaultpeer init" in no_vault.stderr
    twice = run_cli(home, "init", "--password-stdin", stdin=PW)
    assert twice.returncode != 0 and "already has a vault" in twice.stderr


def test_password_is_never_taken_from_argv_and_needs_a_terminal_or_stdin(home):
    result = run_cli(home, "ls")  # stdin is not a terminal and --password-stdin was not given
    assert result.returncode == 2 and "--password-stdin" in result.stderr
    short = run_cli(home.parent / "other", "init", "--password-stdin", stdin="short\n")
    assert short.returncode != 0 and "at least 8 characters" in short.stderr


def test_passwd_and_recovery_key(tmp_path):
    home = tmp_path / "device"
    init = ok(run_cli(home, "init", "--password-stdin", stdin=PW))
    recovery_key = next(line.strip() for line in init.splitlines() if line.startswith("    "))
    ok(run_cli(home, "add", "Kept", "--field", "password=still here", "--password-stdin", stdin=PW))
    ok(run_cli(home, "passwd", "--password-stdin", stdin=f"{PASSWORD}\nsecond password\n"))
    assert run_cli(home, "ls", "--password-stdin", stdin=PW).returncode == 3
    ok(run_cli(home, "ls", "--password-stdin", stdin="second password\n"))
    bad = run_cli(home, "passwd", "--recovery-key", "--password-stdin", stdin="AAAA-BBBB\nthird password\n")
    assert bad.returncode == 3 and "not a recovery key" in bad.stderr
    wrong = run_cli(home, "passwd", "--password-stdin", stdin="not the password\nthird password\n")
    assert wrong.returncode == 3
    # the same command as through a daemon (vaultpeer.service.commands): the wrong proof is a failed password change
    entries = json.loads(ok(run_cli(home, "log", "--json")))
    failed = [e["details"] for e in entries if e["event"] == "password.change_failed"]
    assert failed == [{"via": "cli", "method": "password", "reason": "wrong_password"}]
    ok(run_cli(home, "passwd", "--recovery-key", "--password-stdin",
               stdin=f"{recovery_key.lower()}\nthird password\n"))
    assert ok(run_cli(home, "get", "Kept", "--field", "password", "--password-stdin",
                      stdin="third password\n")).strip() == "still here"


def test_status_device_and_check(home, tmp_path):
    status = json.loads(ok(run_cli(home, "status", "--json")))
    assert set(status) >= {"device_id", "vault_id", "locked", "listen", "socket", "peers", "conflicts"}
    assert status["vault_id"] and status["locked"] is True and status["conflicts"] == 0
    empty = json.loads(ok(run_cli(tmp_path / "new", "status", "--json")))
    assert empty["vault_id"] is None and empty["device_id"] != status["device_id"]
    renamed = json.loads(ok(run_cli(home, "device", "--name", "Work laptop", "--os-description", "Linux 6.1 (x86_64)",
                                    "--json")))
    assert renamed == {"device_id": status["device_id"], "name": "Work laptop", "os": "Linux 6.1 (x86_64)"}
    report = json.loads(ok(run_cli(home, "check", "--decrypt", "--json", "--password-stdin", stdin=PW)))
    assert report["ok"] and report["decrypted"]
    assert "Daemon:    not running" in ok(run_cli(home, "status"))


def test_home_from_environment(tmp_path):
    env = cli_env(VAULTPEER_HOME=str(tmp_path / "from-env"))
    result = subprocess.run([sys.executable, "-m", "vaultpeer", "status", "--json"], capture_output=True,
                            text=True, env=env, timeout=60)
    assert json.loads(result.stdout)["home"] == str(tmp_path / "from-env")
    assert stat.S_IMODE((tmp_path / "from-env").stat().st_mode) == 0o700


def test_default_init_calibrates_a_strong_kdf_without_the_test_switch(tmp_path):
    """No default path can reach the test-only KDF: a plain init calibrates real Argon2id parameters."""
    home = tmp_path / "real"
    env = {k: v for k, v in os.environ.items() if not k.startswith("VAULTPEER_")}
    result = run_cli(home, "init", "--password-stdin", stdin=PW, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "WARNING" not in result.stderr
    store = Store.open(home / "vault.sqlite3")
    params = VaultHeader.from_bytes(store.header_record()).kdf
    store.close()
    assert not params.insecure_test_only
    assert params.memory_kib >= MIN_MEMORY_KIB and params.time_cost >= MIN_TIME_COST
    assert ok(run_cli(home, "status", "--json", env=env))


def test_the_insecure_switch_warns_loudly(tmp_path):
    result = run_cli(tmp_path / "x", "status")
    assert "WARNING" in result.stderr and "NO real password protection" in result.stderr


@pytest.mark.mdns_alone  # the demo's devices join the one invitation they find by mDNS
def test_demo_runs_and_cleans_up(private_netns):
    """The README's main command: three real daemons pair and sync on loopback, then everything goes."""
    import re
    from pathlib import Path

    env = {k: v for k, v in os.environ.items() if not k.startswith("VAULTPEER_")}
    # in a network namespace of the test's own: its devices find no invitation but their own
    result = subprocess.run([*private_netns, sys.executable, "-m", "vaultpeer", "demo"], capture_output=True,
                            text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "everything behaved as expected" in result.stdout
    assert result.stdout.count("shows:") == 4  # two pairings, both codes shown each time
    # its own directory is gone (another run's demo may have one of its own meanwhile)
    root = re.search(r" under (/tmp/vp-demo-\S+)", result.stdout)
    assert root and not Path(root.group(1)).exists()


def test_conflicts_and_resolve_between_two_real_homes(tmp_path):
    """Two homes of one vault edit the same field apart; after a sync the CLI shows and settles it."""
    from helpers import edited_apart
    from vaultpeer.service.home import Home

    laptop, desktop = Home(tmp_path / "laptop"), Home(tmp_path / "desktop")
    ok(run_cli(laptop.path, "init", "--password-stdin", stdin=PW))
    ok(run_cli(laptop.path, "add", "Email", "--field", "password=original", "--password-stdin", stdin=PW))
    edited_apart(laptop, desktop, "Email", "password", "from the laptop", "from the desktop")
    conflicts = json.loads(ok(run_cli(desktop.path, "conflicts", "--json", "--password-stdin", stdin=PW)))
    assert len(conflicts) == 1 and conflicts[0]["title"] == "Email"
    values = {c["value"]: c["revision"] for c in conflicts[0]["fields"]["password"]}
    assert set(values) == {"from the laptop", "from the desktop"}
    human = ok(run_cli(desktop.path, "conflicts", "--password-stdin", stdin=PW))
    assert "from the laptop" not in human and "vaultpeer resolve" in human
    refused = run_cli(desktop.path, "edit", "Email", "--field", "url=x", "--password-stdin", stdin=PW)
    assert refused.returncode == 8 and "resolve" in refused.stderr
    # a script reading one field of an item in conflict is told so (issue 17): exit 8, a warning
    one = run_cli(desktop.path, "get", "Email", "--field", "password", "--password-stdin", stdin=PW)
    assert one.returncode == 8 and "in conflict" in one.stderr
    assert one.stdout.strip() in {"from the laptop", "from the desktop"}
    resolved = json.loads(ok(run_cli(desktop.path, "resolve", "Email", "--take", values["from the laptop"], "--json",
                                     "--password-stdin", stdin=PW)))
    assert resolved["fields"]["password"] == "from the laptop" and resolved["conflict"] is False
    assert ok(run_cli(desktop.path, "get", "Email", "--field", "password", "--password-stdin", stdin=PW)) \
        == "from the laptop\n"
    assert json.loads(ok(run_cli(desktop.path, "conflicts", "--json", "--password-stdin", stdin=PW))) == []


def test_history_ls_and_get_show_when_and_on_which_device_each_revision_was_made(home):
    """Issue 17, "History and dates": times and devices through the real CLI, in JSON and for people."""
    me = json.loads(ok(run_cli(home, "device", "--json")))
    before = int(time.time())
    ok(run_cli(home, "add", "Mail", "--field", "password=pw1", "--password-stdin", stdin=PW))
    ok(run_cli(home, "edit", "Mail", "--field", "password=pw2", "--password-stdin", stdin=PW))
    after = int(time.time()) + 1
    history = json.loads(ok(run_cli(home, "history", "Mail", "--json", "--password-stdin", stdin=PW)))
    assert len(history) == 2
    for entry in history:
        assert before <= entry["time"] <= after
        assert entry["author"] == me["device_id"] and entry["author_name"] == me["name"]
    assert history[0]["time"] <= history[1]["time"]
    (listed,) = json.loads(ok(run_cli(home, "ls", "--json", "--password-stdin", stdin=PW)))
    item = json.loads(ok(run_cli(home, "get", "Mail", "--json", "--password-stdin", stdin=PW)))
    assert listed["modified"] == item["modified"] == history[1]["time"]
    assert item["created"] == history[0]["time"] and history[0]["parents"] == []  # the first revision's time
    assert (item["modified_by"], item["modified_by_name"]) == (me["device_id"], me["name"])
    # for people: "modified <local date and time> on <device name>", in the time zone asked for
    env = cli_env(TZ="VPT-05:30")  # POSIX form (UTC+05:30): needs no time zone database
    human = ok(run_cli(home, "get", "Mail", "--password-stdin", stdin=PW, env=env))
    shown = time.strftime("%Y-%m-%d %H:%M", time.gmtime(item["modified"] + 5 * 3600 + 1800))
    assert f"modified {shown} on {me['name']}" in human
    created = time.strftime("%Y-%m-%d %H:%M", time.gmtime(item["created"] + 5 * 3600 + 1800))
    assert f"modified {shown} on {me['name']}, created {created}" in human
    assert f"{shown} on {me['name']}" in ok(run_cli(home, "history", "Mail", "--password-stdin", stdin=PW, env=env))
