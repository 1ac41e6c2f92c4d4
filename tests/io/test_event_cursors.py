"""Issue 18, change cursors: `events.subscribe {"since", "store", "items"}` on a real daemon (offline,
in this process) over its real Unix socket. Item events carry strictly increasing seqs and a kind
and author per item; a cursor replays what was missed, once, even while changes are being
committed; a cursor that cannot be replayed says `reset`; bad params are refused and change nothing."""

import json
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

from helpers import PASSWORD
from vaultpeer.api import MAX_LINE, ApiError
from vaultpeer.client import Cursor, TrioClient
from vaultpeer.core.kdf import insecure_test_parameters
from vaultpeer.io import events as event_feed
from vaultpeer.io.daemon import Daemon, DaemonOptions
from vaultpeer.service.home import Home
from vaultpeer.service.vault import Vault


def make_home(root: Path) -> Home:
    home = Home(root / "home")
    with Vault.open(home, allow_insecure_test_kdf=True) as vault:
        vault.init(PASSWORD, insecure_test_parameters())
    return home


@asynccontextmanager
async def running(root: Path, *, unlocked: bool = True):
    home = Home(root / "home") if (root / "home").exists() else make_home(root)
    daemon = Daemon(home, DaemonOptions(listen=None, mdns=False, offline=True, socket_path=root / "run" / "api.sock"),
                    allow_insecure_test_kdf=True)
    async with trio.open_nursery() as nursery:
        await nursery.start(daemon.run)
        if unlocked:
            client = await TrioClient.connect(daemon.socket_path)
            await client.call("unlock", password=PASSWORD)
            await client.aclose()
        yield daemon
        nursery.cancel_scope.cancel()


async def connect(daemon: Daemon) -> TrioClient:
    return await TrioClient.connect(daemon.socket_path)


async def take(client: TrioClient, count: int, *, item_events_only: bool = True) -> list[dict]:
    """The next ``count`` events (item events only, unless told), within a few seconds."""
    got = []
    with trio.fail_after(10):
        async for event in client.events():
            if event["type"] == "items.changed" or not item_events_only:
                got.append(event)
            if len(got) == count:
                return got
    raise AssertionError(f"the connection ended after {got}")


async def nothing_more(client: TrioClient, seconds: float = 0.3) -> list[dict]:
    got = []
    with trio.move_on_after(seconds):
        async for event in client.events():
            got.append(event)
    return got


def changes(events: list[dict]) -> list[tuple[str, str]]:
    return [(c["id"], c["kind"]) for e in events for c in e["changes"]]


async def test_item_events_carry_increasing_seqs_kinds_and_authors(root):
    with trio.fail_after(30):
        async with running(root) as daemon:
            listener, writer = await connect(daemon), await connect(daemon)
            answer = await listener.subscribe()
            assert answer == {"subscribed": True, "seq": 0, "store": daemon.vault.store_id, "reset": False}
            a = (await writer.call("item.add", title="A", fields={"password": "1"}))["id"]
            await writer.call("item.edit", item=a, fields={"password": "2"})
            await writer.call("item.delete", item=a)
            await writer.call("item.restore", item=a)
            b = (await writer.call("item.add", title="B"))["id"]
            seen = await take(listener, 5)
            assert changes(seen) == [(a, "created"), (a, "updated"), (a, "deleted"), (a, "restored"), (b, "created")]
            assert [e["seq"] for e in seen] == [1, 2, 3, 4, 5]  # the store's arrival numbers
            assert all(e["items"] == [c["id"] for c in e["changes"]] for e in seen)  # API 2's key kept
            assert {c["by"] for e in seen for c in e["changes"]} == {str(daemon.device_id)}
            assert listener.cursor == Cursor(daemon.vault.store_id, 5)
            # other events carry the seq of the last item change before them
            await writer.call("lock")
            (locked,) = await take(listener, 1, item_events_only=False)
            assert (locked["type"], locked["seq"]) == ("locked", 5)
            # a sync that brings nothing, and a call that writes nothing, make no item event
            await writer.call("sync.now")
            await writer.call("unlock", password=PASSWORD)
            assert [e["type"] for e in await nothing_more(listener)] == ["unlocked"]
            await listener.aclose()
            await writer.aclose()


async def test_a_cursor_replays_what_was_missed_as_the_live_events_said_it(root):
    with trio.fail_after(30):
        async with running(root) as daemon:
            writer, live = await connect(daemon), await connect(daemon)
            await live.subscribe()
            a = (await writer.call("item.add", title="A"))["id"]
            b = (await writer.call("item.add", title="B"))["id"]
            away = await connect(daemon)
            await away.subscribe(Cursor(daemon.vault.store_id, 0))
            assert changes(await take(away, 1)) == [(a, "created"), (b, "created")]  # one range: one event
            cursor = away.cursor
            assert cursor.seq == 2
            await away.aclose()  # gone (a suspend, a crash) ...
            c = (await writer.call("item.add", title="C"))["id"]
            await writer.call("item.edit", item=b, fields={"url": "https://b"})
            await writer.call("item.delete", item=a)
            back = await connect(daemon)
            answer = await back.subscribe(cursor)
            assert answer["reset"] is False and answer["seq"] == 5
            (replayed,) = await take(back, 1)
            assert replayed["seq"] == 5 and changes([replayed]) == [(c, "created"), (b, "updated"), (a, "deleted")]
            assert changes(await take(live, 5))[2:] == changes([replayed])  # what the live events said
            # and then live events, past the replay
            await writer.call("item.restore", item=a)
            (after,) = await take(back, 1)
            assert after["seq"] == 6 and changes([after]) == [(a, "restored")]
            assert await nothing_more(back) == []
            # a cursor at the end replays nothing
            current = await connect(daemon)
            assert (await current.subscribe(back.cursor))["seq"] == 6
            assert await nothing_more(current) == []
            for client in (writer, live, back, current):
                await client.aclose()


async def test_subscribing_while_changes_are_committed_loses_and_repeats_nothing(root):
    """The race between the replay and the live events: subscribers connect (with a cursor of 0, or
    without one) while items are being added; each sees every item once, in seq order."""
    with trio.fail_after(60):
        async with running(root) as daemon:
            count = 40
            seen: dict[str, list[tuple[str, str]]] = {}
            seqs: dict[str, list[int]] = {}

            async def subscriber(name: str, cursor: Cursor | None) -> None:
                client = await connect(daemon)
                answer = await client.subscribe(cursor)
                seen[name], seqs[name] = [], []
                if answer["seq"] < count:  # else everything happened before (a live one sees nothing)
                    async for event in client.events():
                        if event["type"] == "items.changed":
                            seen[name] += changes([event])
                            seqs[name].append(event["seq"])
                            if event["seq"] == count:
                                break
                await client.aclose()

            async def writer() -> None:
                client = await connect(daemon)
                for n in range(count):
                    await client.call("item.add", title=f"item {n}")
                    if n % 8 == 3:
                        await trio.sleep(0.01)  # let subscribers in mid-way
                await client.aclose()

            store = daemon.vault.store_id
            async with trio.open_nursery() as nursery:
                nursery.start_soon(writer)
                for n in range(6):
                    await trio.sleep(0.005 * n)
                    nursery.start_soon(subscriber, f"cursor {n}", Cursor(store, 0))
                    nursery.start_soon(subscriber, f"live {n}", None)
            items = [i["id"] for i in await (await connect(daemon)).call("item.list")]
            for name in seen:
                assert seqs[name] == sorted(set(seqs[name])), name  # strictly increasing
                assert all(kind == "created" for _, kind in seen[name])
                ids = [item_id for item_id, _ in seen[name]]
                assert len(ids) == len(set(ids)), name  # nothing twice
                if name.startswith("cursor"):
                    assert sorted(ids) == sorted(items), name  # nothing lost


async def test_a_commit_not_yet_announced_comes_live_not_in_the_replay(root):
    """Subscribed between a commit and its announcement: the replay stops before it, the live event
    brings it (once)."""
    with trio.fail_after(30):
        async with running(root) as daemon:
            first = daemon.vault.add("First")
            await trio.sleep(0.05)  # announced
            second = daemon.vault.add("Second")  # committed; the feed announces it at the next checkpoint
            subscription = daemon.events.subscribe(since=0, store=daemon.vault.store_id)
            assert subscription.result["seq"] == 1 and subscription.result["reset"] is False
            got = []
            async with trio.open_nursery() as nursery:
                async def collect():
                    async for event in subscription.events:
                        got.append(event)
                        if event["seq"] == 2:
                            return
                nursery.start_soon(collect)
            await subscription.events.aclose()
            assert [(e["seq"], changes([e])) for e in got] == [(1, [(str(first.id), "created")]),
                                                               (2, [(str(second.id), "created")])]


async def test_watching_chosen_items_only(root):
    with trio.fail_after(30):
        async with running(root) as daemon:
            writer = await connect(daemon)
            a = (await writer.call("item.add", title="A"))["id"]
            b = (await writer.call("item.add", title="B"))["id"]
            watcher = await connect(daemon)
            await watcher.subscribe(Cursor(daemon.vault.store_id, 0), items=[a.upper()])  # any case
            (replayed,) = await take(watcher, 1)
            assert replayed == {"type": "items.changed", "seq": 2, "items": [a],
                                "changes": [{"id": a, "kind": "created", "by": str(daemon.device_id)}]}
            await writer.call("item.edit", item=b, fields={"x": "1"})
            await writer.call("item.edit", item=a, fields={"x": "1"})
            await writer.call("lock")
            got = await take(watcher, 2, item_events_only=False)
            assert [(e["type"], e["seq"], changes([e]) if e["type"] == "items.changed" else None) for e in got] == \
                [("items.changed", 4, [(a, "updated")]), ("locked", 4, None)]  # other events still come
            assert await nothing_more(watcher) == []
            await watcher.aclose()
            await writer.aclose()


async def test_a_cursor_that_cannot_be_replayed_says_reset_and_the_subscription_goes_on(root, monkeypatch):
    with trio.fail_after(30):
        async with running(root) as daemon:
            writer = await connect(daemon)
            ids = [(await writer.call("item.add", title=f"item {n}"))["id"] for n in range(4)]
            store = daemon.vault.store_id
            monkeypatch.setattr(event_feed, "MAX_REPLAY", 2)
            for since, cursor_store, why in [(5, store, "ahead of this store"), (10**40, store, "absurd"),
                                             (1, "00" * 16, "another store (rebuilt, restored)"),
                                             (1, store, "more than MAX_REPLAY revisions since")]:
                client = await connect(daemon)
                answer = await client.call("events.subscribe", since=since, store=cursor_store)
                assert answer == {"subscribed": True, "seq": 4, "store": store, "reset": True}, why
                assert await nothing_more(client, 0.1) == [], why  # nothing replayed
                await client.aclose()
            client = await connect(daemon)
            assert (await client.subscribe(Cursor(store, 2)))["reset"] is False  # two: replayed
            assert changes(await take(client, 1)) == [(ids[2], "created"), (ids[3], "created")]
            await client.aclose()
            reset = await connect(daemon)
            assert (await reset.subscribe(Cursor(store, 0)))["reset"] is True
            added = (await writer.call("item.add", title="after"))["id"]
            (live,) = await take(reset, 1)
            assert live["seq"] == 5 and changes([live]) == [(added, "created")]  # live from the reset's seq
            await reset.aclose()
            await writer.aclose()


async def test_a_locked_daemon_replays_every_kind_without_the_vault_key(root):
    home = make_home(root)
    with Vault.open(home, allow_insecure_test_kdf=True) as vault:  # as the CLI without a daemon writes
        vault.unlock(PASSWORD)
        a = vault.add("A").id
        vault.edit(str(a), {"password": "2"})
        b = vault.add("B").id
        vault.delete(str(b))
    with trio.fail_after(30):
        async with running(root, unlocked=False) as daemon:
            client = await connect(daemon)
            assert (await client.call("status"))["locked"] is True
            await client.subscribe(Cursor(daemon.vault.store_id, 1))
            (replayed,) = await take(client, 1)
            assert changes([replayed]) == [(str(a), "updated"), (str(b), "deleted")] and replayed["seq"] == 4
            await client.aclose()


async def test_hostile_subscribe_params_are_refused_and_subscribe_nothing(root):
    with trio.fail_after(60):
        async with running(root) as daemon:
            client = await connect(daemon)
            item_id = (await client.call("item.add", title="A"))["id"]
            refused = [{"since": -1}, {"since": "5"}, {"since": 1.5}, {"since": True}, {"since": None},
                       {"store": daemon.vault.store_id}, {"since": 0, "store": 5}, {"items": item_id},
                       {"items": []}, {"items": [1]}, {"items": ["zz" * 16]}, {"items": [item_id + "0"]},
                       {"items": [item_id] * 1001}, {"items": ["x"] * 100_000}, {"since": 0, "cursor": 1}]
            for params in refused:
                with pytest.raises(ApiError) as caught:
                    await client.call("events.subscribe", **params)
                assert caught.value.code == -32602 and caught.value.data == {"name": "invalid_params"}, params
                assert len(caught.value.message) < 200
            assert daemon.events._subscribers == []  # none of them subscribed anything
            # and the connection still works: it can subscribe now, once
            assert (await client.subscribe(items=[item_id] * 1000))["reset"] is False
            assert len(daemon.events._subscribers) == 1
            await client.aclose()
            # 100,000 ids of an item: a line over the limit, refused and the connection closed
            stream = await trio.open_unix_socket(str(daemon.socket_path))
            line = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "events.subscribe",
                               "params": {"items": [item_id] * 100_000}}).encode() + b"\n"
            assert len(line) > MAX_LINE
            data = b""

            async def send() -> None:
                try:
                    await stream.send_all(line)
                except trio.BrokenResourceError:
                    pass  # closed while we were still sending

            async with trio.open_nursery() as nursery:
                nursery.start_soon(send)
                try:
                    while chunk := await stream.receive_some(65536):
                        data += chunk
                except trio.BrokenResourceError:
                    pass  # reset: the daemon closed with our bytes unread
            if data:
                assert json.loads(data.splitlines()[0])["error"]["code"] == -32600
            await stream.aclose()
            await trio.sleep(0.05)
            assert len(daemon.events._subscribers) == 0  # the subscriber above has gone with its connection
            assert (await (await connect(daemon)).call("status"))["items"] == 1


async def test_a_subscriber_that_falls_behind_is_dropped_and_not_silently_short(root):
    with trio.fail_after(30):
        async with running(root) as daemon:
            subscription = daemon.events.subscribe()
            for n in range(event_feed.SUBSCRIBER_BUFFER + 10):
                daemon.events.publish({"type": "sync.progress", "device_id": "x", "received": n, "expected": 300})
            got = [event async for event in subscription.events]  # ends: it was dropped
            assert [e["received"] for e in got] == list(range(event_feed.SUBSCRIBER_BUFFER))
            assert daemon.events._subscribers == []
            # through a connection: the daemon closes it, and the client resumes from its cursor
            writer, slow = await connect(daemon), await connect(daemon)
            await slow.subscribe()
            a = (await writer.call("item.add", title="A"))["id"]
            await trio.sleep(0.05)
            for n in range(event_feed.SUBSCRIBER_BUFFER + 10):
                daemon.events.publish({"type": "sync.progress", "device_id": "x", "received": n, "expected": 300})
            got = [event async for event in slow.events()]
            assert got and len(got) <= event_feed.SUBSCRIBER_BUFFER + 1 + 2
            resumed = await connect(daemon)
            await resumed.subscribe(Cursor(daemon.vault.store_id, 0))
            assert changes(await take(resumed, 1)) == [(a, "created")]
            for client in (writer, slow, resumed):
                await client.aclose()
