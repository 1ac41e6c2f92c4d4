"""Issue 18: `vaultpeer apps` (list, approve, deny, revoke) through the real CLI against a real daemon
started with --require-app-tokens: the CLI keeps working with its own token, an app registers
through the local API and is approved by the person, and the Python client's register helper
waits for that answer."""

import os
import stat
import threading

import pytest

from helpers import PASSWORD
from vaultpeer.api import ApiError
from vaultpeer.client import Client


def test_apps_are_approved_listed_and_revoked_through_the_cli(world):
    laptop = world("laptop")
    laptop.init()
    laptop.start("--offline", "--require-app-tokens")
    assert stat.S_IMODE((laptop.home / "cli.token").stat().st_mode) == 0o600

    # the command line works as before: it presents its own token
    assert laptop.ok("unlock", "--password-stdin", stdin=PASSWORD + "\n") == "Unlocked.\n"
    laptop.ok("add", "Email", "--field", "username=alice", "--field", "folder=Work")
    laptop.ok("add", "Bank", "--field", "username=bob", "--field", "folder=Home")
    assert [i["title"] for i in laptop.json("ls")] == ["Bank", "Email"]

    # a connection without a token gets status, and nothing of the vault
    with Client(laptop.socket_path) as bare:
        assert bare.call("status")["locked"] is False
        with pytest.raises(ApiError) as caught:
            bare.call("item.list")
        assert (caught.value.code, caught.value.data["reason"]) == (1014, "token")

    with Client(laptop.socket_path, timeout=30) as app:
        answer = app.call("app.register", name="my-tool", scopes=["read:folder=Work"])
        waiting = laptop.json("apps")
        mine = [e for e in waiting if e["name"] == "my-tool"]
        assert mine == [{"name": "my-tool", "state": "pending", "scopes": ["read:folder=Work"], "pid": os.getpid(),
                         "exe": os.path.realpath(f"/proc/{os.getpid()}/exe")}]
        assert "my-tool  WAITING" in laptop.ok("apps")

        # no terminal to ask, and no --yes: nothing is approved
        unasked = laptop.cli("apps", "approve", "my-tool")
        assert unasked.returncode == 2 and "--yes" in unasked.stderr
        assert app.call("app.wait", request=answer["request"], timeout=0) == {"status": "pending"}

        approved = laptop.cli("apps", "approve", "my-tool", "--yes")
        assert approved.returncode == 0, approved.stderr
        assert f"process id: {os.getpid()}" in approved.stderr and "read:folder=Work" in approved.stderr
        assert os.path.realpath(f"/proc/{os.getpid()}/exe") in approved.stderr
        token = app.call("app.wait", request=answer["request"], timeout=10)["token"]

    with Client(laptop.socket_path, token=token) as tool:
        assert [i["title"] for i in tool.call("item.list")] == ["Email"]
    listed = {e["name"]: e for e in laptop.json("apps")}
    assert listed["my-tool"]["state"] == "approved" and listed["my-tool"]["scopes"] == ["read:folder=Work"]

    assert laptop.ok("apps", "revoke", "my-tool") == "Revoked my-tool.\n"
    with pytest.raises(ApiError) as caught:
        Client(laptop.socket_path, token=token).call("status")
    assert caught.value.code == 1014
    missing = laptop.cli("apps", "revoke", "my-tool")
    assert missing.returncode == 4 and "my-tool" in missing.stderr

    events = [(e["event"], e["details"].get("app")) for e in laptop.json("log")]
    assert ("app.registered", "my-tool") in events and ("app.approved", "my-tool") in events
    assert ("app.revoked", "my-tool") in events
    assert token not in laptop.ok("log", "--json")


def test_the_python_clients_register_helper_waits_for_the_person_and_a_denial_is_an_error(world):
    laptop = world("laptop")
    laptop.init()
    laptop.start("--offline", "--require-app-tokens")
    results: dict[str, object] = {}

    def register(name: str) -> None:
        try:
            with Client(laptop.socket_path, timeout=30) as app:
                results[name] = app.register(name, ["read"], timeout=30)
        except ApiError as exc:
            results[name] = exc

    threads = [threading.Thread(target=register, args=(name,)) for name in ("helper", "unwanted")]
    for thread in threads:
        thread.start()
    for name in ("helper", "unwanted"):
        assert _wait_for_request(laptop, name), laptop.log_tail()
    assert laptop.ok("apps", "deny", "unwanted") == "Denied unwanted.\n"
    laptop.ok("apps", "approve", "helper", "--yes")
    for thread in threads:
        thread.join(30)
    assert isinstance(results["unwanted"], ApiError) and results["unwanted"].code == 1014
    token = results["helper"]
    assert isinstance(token, str) and token.startswith("vpt1_")
    with Client(laptop.socket_path, token=token) as app:
        assert app.call("status")["locked"] is True
        with pytest.raises(ApiError) as caught:  # read: no pairing
            app.call("pair.invite", timeout=1)
        assert (caught.value.code, caught.value.data["reason"]) == (1014, "scope")


def _wait_for_request(laptop, name: str) -> bool:
    from daemons import wait_until

    return bool(wait_until(lambda: any(e["name"] == name and e["state"] == "pending" for e in laptop.json("apps")),
                           20, interval=0.1))


def test_apps_approve_asks_on_a_terminal_and_no_leaves_the_app_waiting(world):
    import pty
    import subprocess
    import sys

    from helpers import cli_env

    laptop = world("laptop")
    laptop.start("--offline", "--require-app-tokens")

    def approve_on_a_terminal(answer: str) -> tuple[int, str]:
        controller, terminal = pty.openpty()
        try:
            process = subprocess.Popen([sys.executable, "-m", "vaultpeer", "--home", str(laptop.home), "apps",
                                        "approve", "asker"], stdin=terminal, stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, text=True, env=cli_env())
            os.write(controller, answer.encode() + b"\n")
            _, stderr = process.communicate(timeout=30)
            return process.returncode, stderr
        finally:
            os.close(controller)
            os.close(terminal)

    with Client(laptop.socket_path, timeout=30) as app:
        answer = app.call("app.register", name="asker", scopes=["write"])
        status, stderr = approve_on_a_terminal("n")
        assert status == 1 and "Is this the program you started" in stderr and "still waiting" in stderr
        assert app.call("app.wait", request=answer["request"], timeout=0) == {"status": "pending"}
        status, stderr = approve_on_a_terminal("y")
        assert status == 0, stderr
        assert app.call("app.wait", request=answer["request"], timeout=10)["status"] == "approved"
