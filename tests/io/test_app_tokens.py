"""Issue 18, scoped app tokens: a real daemon (offline, in this process) over its real Unix socket.
An app registers, the person approves with the command line's own token, the app presents its
token with `auth` on each connection and is held to its scopes; revocation ends it at once; the
tokens survive a restart and only their SHA-256 is on disk."""

import hashlib
import json
import os
import stat
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

from helpers import PASSWORD
from vaultpeer.api import METHODS, ApiError
from vaultpeer.client import TrioClient
from vaultpeer.core.audit import verify_chain
from vaultpeer.core.kdf import insecure_test_parameters
from vaultpeer.io.daemon import Daemon, DaemonOptions
from vaultpeer.io.handlers import PARAMETERS, REQUIRED_SCOPE
from vaultpeer.service.home import Home
from vaultpeer.service.vault import Vault


def make_home(root: Path) -> Home:
    home = Home(root / "home")
    with Vault.open(home, allow_insecure_test_kdf=True) as vault:
        vault.init(PASSWORD, insecure_test_parameters())
        vault.add("Mail", {"username": "w", "password": "work-secret", "folder": "Work"})
        vault.add("Wiki", {"username": "w2", "password": "wiki-secret", "folder": "Work/Docs", "tags": "ci, team"})
        vault.add("Bank", {"username": "h", "password": "bank-secret", "folder": "Home"})
        vault.add("Mail", {"username": "h2", "password": "home-mail-secret", "folder": "Home"})
    return home


@asynccontextmanager
async def running(root: Path, *, require: bool = False):
    home = Home(root / "home")
    daemon = Daemon(home, DaemonOptions(listen=None, mdns=False, offline=True, socket_path=root / "run" / "api.sock",
                                        require_app_tokens=require), allow_insecure_test_kdf=True)
    async with trio.open_nursery() as nursery:
        await nursery.start(daemon.run)
        try:
            yield daemon
        finally:
            nursery.cancel_scope.cancel()


async def person(daemon: Daemon) -> TrioClient:
    """A connection of the command line: its own token (admin), from the home."""
    return await TrioClient.connect(daemon.socket_path, token=daemon.home.cli_token_file.read_text().strip())


async def approved_token(daemon: Daemon, name: str, scopes: list[str]) -> str:
    app = await TrioClient.connect(daemon.socket_path)
    answer = await app.call("app.register", name=name, scopes=scopes)
    admin = await person(daemon)
    await admin.call("app.approve", name=name)
    result = await app.call("app.wait", request=answer["request"], timeout=5)
    await admin.aclose()
    await app.aclose()
    assert result["status"] == "approved"
    return result["token"]


async def refused(client: TrioClient, method: str, **params) -> dict:
    with pytest.raises(ApiError) as caught:
        await client.call(method, **params)
    return {"code": caught.value.code, **caught.value.data, "message": caught.value.message}


@pytest.fixture
def home_root(root):
    make_home(root)
    return root


def test_every_method_has_a_required_scope():
    assert set(REQUIRED_SCOPE) == set(PARAMETERS) == set(METHODS)
    assert set(REQUIRED_SCOPE.values()) == {None, "read", "write", "admin"}


async def test_register_wait_for_the_person_and_present_the_token(home_root):
    with trio.fail_after(60):
        async with running(home_root) as daemon:
            app = await TrioClient.connect(daemon.socket_path)
            answer = await app.call("app.register", name="browser-host", scopes=["read"])
            assert answer == {"request": answer["request"], "status": "pending", "name": "browser-host",
                              "scopes": ["read"]}
            assert await app.call("app.wait", request=answer["request"], timeout=0) == {"status": "pending"}

            admin = await person(daemon)
            listed = await admin.call("app.list")
            waiting = [e for e in listed if e["state"] == "pending"]
            assert waiting == [{"name": "browser-host", "state": "pending", "scopes": ["read"], "pid": os.getpid(),
                                "exe": os.path.realpath(f"/proc/{os.getpid()}/exe")}]
            results = []

            async def wait() -> None:
                results.append(await app.call("app.wait", request=answer["request"], timeout=30))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(wait)
                await trio.sleep(0.2)
                assert results == []  # it waits for the person
                approved = await admin.call("app.approve", name="browser-host", pid=os.getpid())
            assert approved["name"] == "browser-host" and approved["state"] == "approved"
            token = results[0]["token"]
            assert results == [{"status": "approved", "name": "browser-host", "scopes": ["read"], "token": token}]
            # the token is handed over once
            gone = await refused(app, "app.wait", request=answer["request"])
            assert (gone["code"], gone["name"]) == (1004, "not_found")

            reader = await TrioClient.connect(daemon.socket_path, token=token)
            await reader.call("unlock", password=PASSWORD)
            assert {i["title"] for i in await reader.call("item.list")} == {"Mail", "Wiki", "Bank"}
            assert await reader.call("auth", token=token) == {"app": "browser-host", "scopes": ["read"]}
            # no second registration under a name in use
            taken = await refused(app, "app.register", name="browser-host", scopes=["read"])
            assert taken["code"] == -32602
            for client in (app, admin, reader):
                await client.aclose()


async def test_a_denied_app_is_told_and_gets_no_token(home_root):
    with trio.fail_after(60):
        async with running(home_root) as daemon:
            app = await TrioClient.connect(daemon.socket_path)
            answer = await app.call("app.register", name="nosy", scopes=["admin"])
            admin = await person(daemon)
            await admin.call("app.deny", name="nosy")
            assert await app.call("app.wait", request=answer["request"], timeout=5) == {"status": "denied",
                                                                                        "name": "nosy"}
            assert [e for e in await admin.call("app.list") if e["name"] == "nosy"] == []
            # approving needs the request to be waiting, from the process shown
            again = await app.call("app.register", name="nosy", scopes=["read"])
            wrong_pid = await refused(admin, "app.approve", name="nosy", pid=os.getpid() + 100000)
            assert wrong_pid["code"] == 1004
            assert await app.call("app.wait", request=again["request"], timeout=0) == {"status": "pending"}
            await app.aclose()
            await admin.aclose()


async def test_each_scope_allows_its_methods_only(home_root):
    with trio.fail_after(60):
        async with running(home_root) as daemon:
            read_token = await approved_token(daemon, "reader", ["read"])
            write_token = await approved_token(daemon, "writer", ["write"])
            reader = await TrioClient.connect(daemon.socket_path, token=read_token)
            writer = await TrioClient.connect(daemon.socket_path, token=write_token)
            await reader.call("unlock", password=PASSWORD)

            assert (await reader.call("item.get", item="Bank"))["fields"]["password"] == "bank-secret"
            assert len(await reader.call("item.search", text="mail")) == 2
            for method, params in (("item.add", {"title": "New"}), ("item.edit", {"item": "Bank", "fields": {"a": "b"}}),
                                   ("item.delete", {"item": "Bank"}), ("backup.seal", {}),
                                   ("passwd", {"password": PASSWORD, "new_password": "x" * 20})):
                error = await refused(reader, method, **params)
                assert (error["code"], error["name"], error["reason"]) == (1014, "forbidden", "scope"), method
            assert len(await reader.call("item.list")) == 4  # nothing was written

            added = await writer.call("item.add", title="New", fields={"password": "p"})
            assert (await writer.call("item.get", item=added["id"]))["title"] == "New"
            for method, params in (("item.export", {}), ("backup.seal", {}), ("pair.invite", {"timeout": 1}),
                                   ("peer.remove", {"device": "x", "password": PASSWORD}), ("app.list", {}),
                                   ("app.revoke", {"name": "reader"}), ("device.rename", {"name": "evil"})):
                error = await refused(writer, method, **params)
                assert (error["code"], error["reason"]) == (1014, "scope"), method
            admin = await person(daemon)
            assert len(await admin.call("item.export")) == 5
            for client in (reader, writer, admin):
                await client.aclose()


async def test_a_folder_limited_app_sees_and_writes_only_its_folder(home_root):
    with trio.fail_after(60):
        async with running(home_root) as daemon:
            admin = await person(daemon)
            await admin.call("unlock", password=PASSWORD)
            home_mail = next(i for i in await admin.call("item.list") if i["folder"] == "Home" and i["title"] == "Mail")
            bank = await admin.call("item.get", item="Bank")
            token = await approved_token(daemon, "work-sync", ["write:folder=Work"])
            app = await TrioClient.connect(daemon.socket_path, token=token)

            assert sorted(i["folder"] for i in await app.call("item.list")) == ["Work", "Work/Docs"]
            assert [i["title"] for i in await app.call("item.search", text="")] == ["Mail", "Wiki"]
            # "Mail" names two items, but only one is in reach: no ambiguity, and no sign of the other
            assert (await app.call("item.get", item="Mail"))["fields"]["password"] == "work-secret"
            for reference in ("Bank", bank["id"], bank["id"][:8], home_mail["id"]):
                for method in ("item.get", "item.history", "item.otp", "item.delete"):
                    error = await refused(app, method, item=reference)
                    assert (error["code"], error["name"]) == (1004, "not_found"), (method, reference)
            assert await app.call("conflict.list") == []

            # writes stay in the folder: no new item outside it, no move out of it
            outside = await refused(app, "item.add", title="Loose", fields={"password": "p"})
            assert (outside["code"], outside["reason"]) == (1014, "scope")
            await app.call("item.add", title="Build", fields={"password": "p", "folder": "Work"})
            moved = await refused(app, "item.edit", item="Wiki", fields={"folder": "Home"})
            assert moved["code"] == 1014
            removed = await refused(app, "item.edit", item="Wiki", remove=["folder"])
            assert removed["code"] == 1014
            imported = await refused(app, "item.import", entries=[{"title": "I", "fields": {"password": "p"},
                                                                   "source": "s1"}])
            assert imported["code"] == 1014
            assert (await admin.call("item.get", item="Wiki"))["fields"]["folder"] == "Work/Docs"
            assert len(await admin.call("item.list")) == 5

            # events: only about items in reach
            listener = await TrioClient.connect(daemon.socket_path, token=token)
            await listener.call("events.subscribe")
            await admin.call("item.edit", item="Bank", fields={"note": "x"})
            await admin.call("item.edit", item="Wiki", fields={"note": "y"})
            events = listener.events()
            event = await events.__anext__()
            wiki = await admin.call("item.get", item="Wiki")
            assert event["type"] == "items.changed" and event["items"] == [wiki["id"]]
            assert [c["id"] for c in event["changes"]] == [wiki["id"]]
            # a replay from the start is held to the same reach: Bank never shows
            replaying = await TrioClient.connect(daemon.socket_path, token=token)
            answer = await replaying.call("events.subscribe", since=0)
            replayed = replaying.events()
            seen = set()
            while True:
                event = await replayed.__anext__()
                seen.update(event["items"])
                seen.update(c["id"] for c in event["changes"])
                if event["seq"] >= answer["seq"]:
                    break
            bank = await admin.call("item.get", item="Bank")
            assert wiki["id"] in seen and bank["id"] not in seen
            # lookup by URL is held to the reach too
            await admin.call("item.add", title="Site at home", fields={"url": "https://example.com", "folder": "Home"})
            await admin.call("item.add", title="Site at work", fields={"url": "https://example.com", "folder": "Work"})
            assert len(await admin.call("item.search", url="https://www.example.com/")) == 2
            found = await app.call("item.search", url="https://www.example.com/")
            assert [i["title"] for i in found] == ["Site at work"]
            for client in (admin, app, listener, replaying):
                await client.aclose()


async def test_a_tag_limited_reader_sees_only_tagged_items(home_root):
    with trio.fail_after(60):
        async with running(home_root) as daemon:
            token = await approved_token(daemon, "ci-runner", ["read:tag=CI"])
            app = await TrioClient.connect(daemon.socket_path, token=token)
            await app.call("unlock", password=PASSWORD)
            assert [i["title"] for i in await app.call("item.list")] == ["Wiki"]
            assert (await refused(app, "item.get", item="Bank"))["code"] == 1004
            await app.aclose()


async def test_revoking_ends_the_token_at_once_on_live_connections(home_root):
    with trio.fail_after(60):
        async with running(home_root) as daemon:
            token = await approved_token(daemon, "doomed", ["read"])
            app = await TrioClient.connect(daemon.socket_path, token=token)
            listener = await TrioClient.connect(daemon.socket_path, token=token)
            await listener.call("events.subscribe")
            await app.call("status")
            admin = await person(daemon)
            assert await admin.call("app.revoke", name="doomed") == {"name": "doomed", "revoked": True}
            # the subscription ends now: the daemon closes that connection
            with trio.fail_after(10):
                assert [event async for event in listener.events()] == []
            error = await refused(app, "item.list")
            assert (error["code"], error["reason"]) == (1014, "token")
            assert (await refused(app, "status"))["code"] == 1014
            with pytest.raises(ApiError) as caught:
                await TrioClient.connect(daemon.socket_path, token=token)
            assert caught.value.code == 1014
            assert [e for e in await admin.call("app.list") if e["name"] == "doomed"] == []
            for client in (app, listener, admin):
                await client.aclose()


async def test_every_bad_token_gets_one_opaque_error_and_changes_nothing(home_root):
    with trio.fail_after(60):
        async with running(home_root) as daemon:
            token = await approved_token(daemon, "good", ["read"])
            other = await approved_token(daemon, "revoked-one", ["read"])
            admin = await person(daemon)
            await admin.call("app.revoke", name="revoked-one")
            client = await TrioClient.connect(daemon.socket_path, token=token)
            flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
            errors = []
            for bad in (flipped, other, "garbage", "", "vpt1_" + "x" * 43, "vpt1_" + "x" * 500_000, "\u00e9" * 48):
                errors.append(await refused(client, "auth", token=bad))
            assert all(e == errors[0] for e in errors), errors
            assert (errors[0]["code"], errors[0]["name"], errors[0]["reason"]) == (1014, "forbidden", "token")
            assert token not in json.dumps(errors) and "garbage" not in errors[0]["message"]
            # the connection is still the good app's
            assert await client.call("auth", token=token) == {"app": "good", "scopes": ["read"]}
            await client.call("status")
            typed = await refused(client, "auth", token=12)
            assert typed["code"] == -32602
            for c in (client, admin):
                await c.aclose()


async def test_require_app_tokens_refuses_a_tokenless_connection_all_but_four_methods(home_root):
    with trio.fail_after(60):
        async with running(home_root, require=True) as daemon:
            bare = await TrioClient.connect(daemon.socket_path)
            assert (await bare.call("status"))["locked"] is True
            assert (await bare.call("api.info"))["api_version"] >= 3
            answer = await bare.call("app.register", name="late", scopes=["read"])
            assert (await bare.call("app.wait", request=answer["request"], timeout=0))["status"] == "pending"
            for method, params in (("unlock", {"password": PASSWORD}), ("item.list", {}), ("lock", {}),
                                   ("events.subscribe", {}), ("app.approve", {"name": "late"}), ("generate", {})):
                error = await refused(bare, method, **params)
                assert (error["code"], error["reason"]) == (1014, "token"), method
            assert (await bare.call("status"))["locked"] is True  # the unlock did not happen
            admin = await person(daemon)
            await admin.call("unlock", password=PASSWORD)
            assert len(await admin.call("item.list")) == 4
            await admin.call("app.approve", name="late")
            token = (await bare.call("app.wait", request=answer["request"], timeout=5))["token"]
            app = await TrioClient.connect(daemon.socket_path, token=token)
            assert len(await app.call("item.list")) == 4
            for c in (bare, admin, app):
                await c.aclose()


async def test_an_app_cannot_approve_itself(home_root):
    with trio.fail_after(60):
        async with running(home_root) as daemon:  # even without --require-app-tokens
            app = await TrioClient.connect(daemon.socket_path)
            answer = await app.call("app.register", name="sneaky", scopes=["admin"])
            for method in ("app.approve", "app.list", "app.deny", "app.revoke"):
                error = await refused(app, method, **({} if method == "app.list" else {"name": "sneaky"}))
                assert (error["code"], error["reason"]) == (1014, "token"), method
            # nor with a lesser token of its own
            small = await approved_token(daemon, "sneaky-small", ["write"])
            await app.call("auth", token=small)
            error = await refused(app, "app.approve", name="sneaky")
            assert (error["code"], error["reason"]) == (1014, "scope")
            assert await app.call("app.wait", request=answer["request"], timeout=0) == {"status": "pending"}
            # an app with the admin scope can approve others (docs/threat-model.md says so)
            admin_token = await approved_token(daemon, "manager", ["admin"])
            manager = await TrioClient.connect(daemon.socket_path, token=admin_token)
            await manager.call("app.approve", name="sneaky")
            assert (await app.call("app.wait", request=answer["request"]))["status"] == "approved"
            await app.aclose()
            await manager.aclose()


async def test_tokens_survive_a_restart_and_only_their_digest_is_on_disk(home_root):
    home = Home(home_root / "home")
    with trio.fail_after(60):
        async with running(home_root) as daemon:
            token = await approved_token(daemon, "keeper", ["read:folder=Work"])
            cli_token = home.cli_token_file.read_text()
    with trio.fail_after(60):
        async with running(home_root) as daemon:
            app = await TrioClient.connect(daemon.socket_path, token=token)
            await app.call("unlock", password=PASSWORD)
            assert len(await app.call("item.list")) == 2  # its scopes came back too
            await app.aclose()
    assert home.cli_token_file.read_text() == cli_token  # the command line's token is kept too
    for path in (home.apps_file, home.cli_token_file):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert hashlib.sha256(token.encode()).hexdigest() in home.apps_file.read_text()
    for path in home.path.rglob("*"):
        if path.is_file() and path != home.cli_token_file:
            data = path.read_bytes()
            assert token.encode() not in data and cli_token.strip().encode() not in data, path


async def test_requests_made_with_a_token_are_attributed_in_the_audit_log(home_root):
    home = Home(home_root / "home")
    with trio.fail_after(60):
        async with running(home_root) as daemon:
            token = await approved_token(daemon, "auditee", ["write"])
            app = await TrioClient.connect(daemon.socket_path, token=token)
            await app.call("unlock", password=PASSWORD)
            await app.call("item.add", title="A", fields={"password": "p"})
            await app.call("item.add", title="B", fields={"password": "p"})
            await app.call("item.list")
            await app.aclose()
            admin = await person(daemon)
            await admin.call("app.revoke", name="auditee")
            await admin.aclose()
    with Vault.open(home, allow_insecure_test_kdf=True) as vault:
        rows = vault.audit_trail.rows()
        assert verify_chain(rows, vault.audit_public_keys).ok
        from vaultpeer.core.audit import AuditEntry
        entries = [AuditEntry.from_stored(r.seq, r.time, r.event, r.details, r.entry_hash, r.signature) for r in rows]
    events = [(e.event, dict(e.details)) for e in entries if e.event.startswith("app.") or e.event == "unlock"]
    assert ("app.registered", {"app": "auditee", "pid": os.getpid()}) in events
    assert ("app.approved", {"app": "auditee", "access": "write", "limited": 0}) in events
    assert ("unlock", {"via": "daemon", "method": "password", "app": "auditee"}) in events
    used: dict[str, int] = {}
    for event, details in events:
        if event == "app.used":
            used[details["request"]] = used.get(details["request"], 0) + details["count"]
    assert used == {"unlock": 1, "item.add": 2, "item.list": 1}
    assert ("app.revoked", {"app": "auditee"}) in events
    assert token.encode() not in b"".join(bytes(r.details) for r in rows)


async def test_requests_and_uncollected_approvals_lapse_after_ten_minutes(home_root, autojump_clock):
    async with running(home_root) as daemon:
        app = await TrioClient.connect(daemon.socket_path)
        answer = await app.call("app.register", name="slow", scopes=["read"])
        start = trio.current_time()
        lapsed = await refused(app, "app.wait", request=answer["request"], timeout=3600)
        assert lapsed["code"] == 1004 and 600 <= trio.current_time() - start < 601  # woken when it lapsed
        # the name is free again; an approval nobody collects lapses too, and takes its app along
        answer = await app.call("app.register", name="slow", scopes=["read"])
        admin = await person(daemon)
        await admin.call("app.approve", name="slow")
        assert [e["state"] for e in await admin.call("app.list") if e["name"] == "slow"] == ["approved"]
        for client in (app, admin):
            await client.aclose()
        await trio.sleep(601)
        admin = await person(daemon)
        assert [e for e in await admin.call("app.list") if e["name"] == "slow"] == []
        app = await TrioClient.connect(daemon.socket_path)
        assert (await refused(app, "app.wait", request=answer["request"]))["code"] == 1004
        assert json.loads(daemon.home.apps_file.read_text())["apps"] == [
            a for a in json.loads(daemon.home.apps_file.read_text())["apps"] if a["name"] == "cli"]
        for client in (app, admin):
            await client.aclose()
