"""`item.search {"url"}` and `item.get`'s `created` on a real daemon (offline, in this process) over
its real Unix socket."""

import itertools
import json

import pytest
import trio

from helpers import PASSWORD
from vaultpeer.api import MAX_LINE, ApiError
from vaultpeer.client import TrioClient
from vaultpeer.core.kdf import insecure_test_parameters
from vaultpeer.io.daemon import Daemon, DaemonOptions
from vaultpeer.service.home import Home
from vaultpeer.service.vault import Vault

ITEMS = [
    ("GitHub", {"username": "alice", "password": "gh-secret", "url": "https://github.com/login"}),
    ("GitHub gist", {"username": "alice2", "password": "gist-secret", "url": "https://gist.github.com"}),
    ("Alice's pages", {"username": "alice", "password": "pages-secret", "url": "alice.github.io"}),
    ("Bank", {"username": "me", "password": "bank-secret", "url": "https://old.example.com",
              "url 2": "https://www.bank.example.co.uk/", "folder": "Money"}),
    ("Router", {"username": "admin", "password": "router-secret", "url": "http://192.168.1.1"}),
    ("Old", {"username": "gone", "password": "old-secret", "url": "https://github.com"}),
]


def offline_daemon(root, home: Home) -> Daemon:
    return Daemon(home, DaemonOptions(listen=None, mdns=False, offline=True, socket_path=root / "run" / "api.sock"),
                  allow_insecure_test_kdf=True)


async def expect_error(client: TrioClient, code: int, method: str, **params) -> ApiError:
    with pytest.raises(ApiError) as caught:
        await client.call(method, **params)
    assert caught.value.code == code, caught.value.message
    return caught.value


async def test_search_by_url_ranks_hosts_then_domains_and_shows_no_secret(root):
    home = Home(root / "home")
    with Vault.open(home, allow_insecure_test_kdf=True) as vault:
        vault.init(PASSWORD, insecure_test_parameters())
        for title, fields in ITEMS:
            vault.add(title, fields)
        vault.delete("Old")
    daemon = offline_daemon(root, home)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(daemon.run)
            client = await TrioClient.connect(daemon.socket_path)
            # a bad URL is -32602 even while locked; a good one needs the vault
            error = await expect_error(client, -32602, "item.search", url="https://user:hunter2@exa mple.com/")
            assert "hunter2" not in error.message and error.data == {"name": "invalid_params"}
            await expect_error(client, 1001, "item.search", url="https://github.com/")
            await client.call("unlock", password=PASSWORD)

            found = await client.call("item.search", url="https://github.com/settings?tab=keys")
            assert [f["title"] for f in found] == ["GitHub", "GitHub gist"]  # the host, then the domain
            assert found[0] == {"id": found[0]["id"], "title": "GitHub", "username": "alice",
                                "url": "https://github.com/login", "folder": ""}  # item.search's shape
            assert "secret" not in json.dumps(found)
            assert [f["title"] for f in await client.call("item.search", url="https://alice.github.io/blog")] == \
                ["Alice's pages"]
            assert await client.call("item.search", url="https://bob.github.io/") == []
            assert [f["title"] for f in await client.call("item.search", url="https://login.bank.example.co.uk")] == \
                ["Bank"]  # its second URL
            assert [f["title"] for f in await client.call("item.search", url="http://192.168.1.1/")] == ["Router"]
            assert await client.call("item.search", url="http://192.168.1.2/") == []
            assert [f["title"] for f in await client.call("item.search", url="github.com", deleted=True)] == ["Old"]
            # the words search is unchanged
            assert [f["title"] for f in await client.call("item.search", text="bank")] == ["Bank"]

            # one of text and url: neither, both, or a mistyped one is -32602
            await expect_error(client, -32602, "item.search")
            await expect_error(client, -32602, "item.search", text="git", url="https://github.com")
            await expect_error(client, -32602, "item.search", url=["https://github.com"])
            # hostile URLs: a megabyte (the line still fits), NULs, control characters
            await expect_error(client, -32602, "item.search", url="https://github.com/" + "a" * (MAX_LINE - 200))
            error = await expect_error(client, -32602, "item.search", url="https://github.com\x00.evil.example")
            assert "control character" in error.message
            await expect_error(client, -32602, "item.search", url="\x00" * 1000)
            await expect_error(client, -32602, "item.search", url="")
            # and the connection still answers
            assert (await client.call("status"))["items"] >= 5
            await client.aclose()
            nursery.cancel_scope.cancel()


async def test_item_get_says_when_the_item_was_created(root):
    home = Home(root / "home")
    clock = itertools.count(1_700_000_000, 500)
    with Vault.open(home, allow_insecure_test_kdf=True, wall_clock=lambda: next(clock)) as vault:
        vault.init(PASSWORD, insecure_test_parameters())
        vault.add("Mail", {"password": "one"})
        vault.edit("Mail", {"password": "two"})
    daemon = offline_daemon(root, home)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(daemon.run)
            client = await TrioClient.connect(daemon.socket_path)
            await client.call("unlock", password=PASSWORD)
            item = await client.call("item.get", item="Mail")
            history = await client.call("item.history", item="Mail")
            assert [e["time"] for e in history] == [item["created"], item["modified"]]
            assert item["created"] < item["modified"] and history[0]["parents"] == []
            # every object in the shape of item.get has it: an edit's answer, and item.export
            edited = await client.call("item.edit", item="Mail", fields={"username": "me"})
            assert edited["created"] == item["created"] and edited["modified"] > item["modified"]
            (exported,) = await client.call("item.export")
            assert exported["created"] == item["created"]
            added = await client.call("item.add", title="New", fields={})
            new = await client.call("item.get", item=added["id"])
            assert new["created"] == new["modified"]
            await client.aclose()
            nursery.cancel_scope.cancel()
