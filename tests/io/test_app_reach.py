"""What the CLI can do, apps can do: `vault.init` on a daemon with no vault (it then serves the
vault at once), `audit.log` and `audit.verify`; and the socket link under `$XDG_RUNTIME_DIR`. A real
daemon (offline, in this process) over its real Unix socket."""

import os
import stat

import pytest
import trio

from helpers import PASSWORD
from vaultpeer.api import ApiError
from vaultpeer.client import Client, TrioClient, find_socket
from vaultpeer.core.keys import RecoveryKey
from vaultpeer.io.daemon import Daemon, DaemonOptions
from vaultpeer.service.home import Home, home_hash, runtime_socket_link
from vaultpeer.service.vault import Vault


def offline_daemon(root, home: Home, runtime_dir=None) -> Daemon:
    return Daemon(home, DaemonOptions(listen=None, mdns=False, offline=True, socket_path=home.socket_path,
                                      runtime_dir=runtime_dir), allow_insecure_test_kdf=True)


async def expect_error(client: TrioClient, code: int, method: str, **params) -> ApiError:
    with pytest.raises(ApiError) as caught:
        await client.call(method, **params)
    assert caught.value.code == code, caught.value.message
    return caught.value


async def test_vault_init_creates_the_vault_the_daemon_then_serves(root):
    home = Home(root / "h")
    daemon = offline_daemon(root, home)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(daemon.run)
            client = await TrioClient.connect(daemon.socket_path)
            events = await TrioClient.connect(daemon.socket_path)
            await events.call("events.subscribe")
            assert (await client.call("status"))["vault_id"] is None
            await expect_error(client, 1008, "item.list")
            # bad input changes nothing: a short password, a name with a control character, a mistype
            await expect_error(client, -32602, "vault.init", password="short")
            await expect_error(client, -32602, "vault.init", password=PASSWORD, name="bad\x07name")
            await expect_error(client, -32602, "vault.init", password=PASSWORD, quick_kdf="yes")
            await expect_error(client, -32602, "vault.init")
            status = await client.call("status")
            assert status["vault_id"] is None and status["name"] != "bad\x07name"

            created = await client.call("vault.init", password=PASSWORD, name="Work laptop")
            assert set(created) == {"vault_id", "device_id", "name", "recovery_key", "kdf"}
            assert created["name"] == "Work laptop"
            RecoveryKey.parse(created["recovery_key"])  # a real recovery key, told this once
            status = await client.call("status")
            assert (status["vault_id"], status["device_id"], status["name"], status["locked"]) == \
                (created["vault_id"], created["device_id"], "Work laptop", False)
            assert (await events.events().__anext__())["type"] == "unlocked"
            # served at once, unlocked: items can be added, and the password opens it after a lock
            await client.call("item.add", title="Mail", fields={"password": "x"})
            await client.call("lock")
            await expect_error(client, 1002, "unlock", password="wrong password here")
            await client.call("unlock", password=PASSWORD)
            assert [i["title"] for i in await client.call("item.list")] == ["Mail"]
            await expect_error(client, 1009, "vault.init", password=PASSWORD)
            # the recovery key is nowhere in the audit log (nor anything of the password)
            log = await client.call("audit.log")
            assert [e["event"] for e in log][:1] == ["vault.created"] and log[0]["details"].get("via") == "daemon"
            text = repr(log)
            assert created["recovery_key"] not in text and PASSWORD not in text
            await client.aclose()
            await events.aclose()
            nursery.cancel_scope.cancel()
    # the vault is on disk, and opens with the password and with the recovery key
    with Vault.open(home, allow_insecure_test_kdf=True) as vault:
        vault.unlock_with_recovery_key(RecoveryKey.parse(created["recovery_key"]))
        assert [v.title for v in vault.list_items()] == ["Mail"]


async def test_audit_log_and_verify_as_the_cli_shows_them(root):
    home = Home(root / "h")
    daemon = offline_daemon(root, home)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(daemon.run)
            client = await TrioClient.connect(daemon.socket_path)
            assert await client.call("audit.log") == []
            await client.call("vault.init", password=PASSWORD)
            await client.call("lock")
            await expect_error(client, 1002, "unlock", password="not the password")
            await client.call("unlock", password=PASSWORD)
            log = await client.call("audit.log")
            assert [e["event"] for e in log] == ["vault.created", "unlock.failed", "unlock"]
            assert [e["seq"] for e in log] == sorted(e["seq"] for e in log)
            assert set(log[0]) == {"seq", "time", "event", "details", "hash"}
            assert await client.call("audit.log", limit=2) == log[1:]
            await expect_error(client, -32602, "audit.log", limit=0)
            await expect_error(client, -32602, "audit.log", limit="2")
            report = await client.call("audit.verify")
            assert report == {"ok": True, "entries": 3, "head": log[-1]["hash"], "first_bad": None, "problem": None}
            assert (await client.call("audit.verify", head=log[0]["hash"][:16]))["ok"]
            missing = await client.call("audit.verify", head="ab" * 32)
            assert not missing["ok"] and missing["first_bad"] is None
            await expect_error(client, -32602, "audit.verify", head="xyz")
            await expect_error(client, -32602, "audit.verify", head="abcd")
            await client.aclose()
            nursery.cancel_scope.cancel()


def runtime(root) -> "os.PathLike":
    directory = root / "xdg"
    directory.mkdir(mode=0o700)
    return directory


async def test_the_daemon_links_its_socket_in_the_runtime_dir_while_it_runs(root):
    home = Home(root / "h")
    xdg = runtime(root)
    link = runtime_socket_link(home.path, xdg)
    assert link == xdg / "vaultpeer" / f"{home_hash(home.path)}.sock" and len(home_hash(home.path)) == 16
    # a stale link of a daemon that died is replaced
    (xdg / "vaultpeer").mkdir(mode=0o755)
    os.symlink(root / "gone.sock", link)
    daemon = offline_daemon(root, home, runtime_dir=xdg)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(daemon.run)
            assert os.readlink(link) == str(home.socket_path)
            assert stat.S_IMODE(os.stat(xdg / "vaultpeer").st_mode) == 0o700  # tightened: it is ours
            status = await trio.to_thread.run_sync(lambda: Client(link).call("status"))
            assert status["home"] == str(home.path)
            # an app finds it by $VAULTPEER_SOCKET alone
            found = find_socket(environ={"VAULTPEER_SOCKET": str(link)})
            assert found == link
            nursery.cancel_scope.cancel()
    assert not os.path.lexists(link)  # removed on exit


async def test_a_link_is_never_made_where_someone_else_could_have_put_things(root):
    home = Home(root / "h")
    # a runtime dir others may write to: no link at all
    shared = root / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    # a vaultpeer/ that is a symlink (to a directory someone else chose): not followed
    elsewhere = root / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    tricked = runtime(root)
    os.symlink(elsewhere, tricked / "vaultpeer")
    # something in the link's place that is not a link: left alone
    occupied = root / "occupied"
    occupied.mkdir(mode=0o700)
    (occupied / "vaultpeer").mkdir(mode=0o700)
    runtime_socket_link(home.path, occupied).write_text("not a link")
    for xdg in (shared, tricked, occupied):
        daemon = offline_daemon(root, home, runtime_dir=xdg)
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                await nursery.start(daemon.run)
                assert daemon.socket_link is None
                client = await TrioClient.connect(home.socket_path)
                assert (await client.call("status"))["vault_id"] is None  # served all the same
                await client.aclose()
                nursery.cancel_scope.cancel()
    assert not (shared / "vaultpeer").exists() and list(elsewhere.iterdir()) == []
    assert runtime_socket_link(home.path, occupied).read_text() == "not a link"


def test_find_socket_prefers_a_named_home_then_the_variable_then_the_home_variable(tmp_path):
    named = tmp_path / "named"
    env = {"VAULTPEER_SOCKET": "/run/elsewhere.sock", "VAULTPEER_HOME": str(tmp_path / "envhome")}
    assert find_socket(named, env) == named / "run" / "api.sock"
    assert str(find_socket(environ=env)) == "/run/elsewhere.sock"
    assert find_socket(environ={"VAULTPEER_HOME": str(tmp_path / "envhome")}) == tmp_path / "envhome" / "run" / "api.sock"
    # a home reached through a symlink has the same hash (its real path is hashed)
    (tmp_path / "real").mkdir()
    os.symlink(tmp_path / "real", tmp_path / "alias")
    assert home_hash(tmp_path / "alias") == home_hash(tmp_path / "real") != home_hash(named)


def test_init_for_a_caller_that_went_away_writes_nothing(tmp_path):
    from vaultpeer.core.errors import VaultpeerError
    from vaultpeer.service.commands import VaultCommands, run_here

    home = Home(tmp_path / "h")
    with Vault.open(home, allow_insecure_test_kdf=True) as vault:
        with pytest.raises(VaultpeerError, match="nothing was written"):
            run_here(VaultCommands(vault, home).init(PASSWORD, "Gone", still_wanted=lambda: False))
        assert not vault.initialized and vault.locked
    assert not home.device_file.exists() or "Gone" not in home.device_file.read_text()  # not renamed either
