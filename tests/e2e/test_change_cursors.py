"""Issue 18, change cursors with real daemons: a cursor replays what changed while the daemon was
stopped (edited through the CLI without it), `vaultpeer.client.follow` carries an app across a
daemon restart, and changes received from a paired device say their kind and that device."""

import trio

from daemons import paired_pair, wait_until
from helpers import PASSWORD, run_cli
from vaultpeer.client import Client, follow


def item_events(events, count: int) -> list[dict]:
    """The next ``count`` items.changed events of a blocking subscription (its socket has a timeout)."""
    got = []
    for event in events:
        if event["type"] == "items.changed":
            got.append(event)
            if len(got) == count:
                return got
    raise AssertionError(f"the subscription ended after {got}")


def changes(events: list[dict]) -> list[tuple[str, str, str]]:
    return [(c["id"], c["kind"], c["by"]) for e in events for c in e["changes"]]


def test_a_cursor_replays_what_the_cli_changed_while_the_daemon_was_stopped(world):
    laptop = world("laptop")
    laptop.init()
    laptop.start("--offline")
    laptop.unlock()
    me = laptop.status()["device_id"]
    with Client(laptop.socket_path, timeout=10) as app:
        events = app.subscribe()
        email = laptop.add("Email", password="1")["id"]
        (created,) = item_events(events, 1)
        assert changes([created]) == [(email, "created", me)]
        cursor = app.cursor
    assert cursor.seq == created["seq"]
    laptop.stop()
    for args in (["edit", "Email", "--field", "password=2"], ["add", "Bank", "--field", "password=3"],
                 ["rm", "Email"]):
        assert run_cli(laptop.home, *args, "--password-stdin", stdin=PASSWORD + "\n").returncode == 0, args
    laptop.start("--offline")  # locked: the replay needs no key
    with Client(laptop.socket_path, timeout=10) as app:
        events = app.subscribe(cursor)
        assert app.reset is False
        (replayed,) = item_events(events, 1)
    assert replayed["seq"] > cursor.seq
    assert [(k, by) for _, k, by in changes([replayed])] == [("created", me), ("deleted", me)]
    assert changes([replayed])[1][0] == email  # edited, then removed: what an app needs is "gone"
    # a cursor of another store (a rebuilt home, or another device's daemon) is told to re-read
    other = world("other")
    other.init()
    other.start("--offline")
    with Client(other.socket_path, timeout=10) as app:
        app.subscribe(cursor)
        assert app.reset is True and app.cursor.store != cursor.store


def test_follow_carries_an_app_across_a_daemon_restart(world):
    laptop = world("laptop")
    laptop.init()
    laptop.start("--offline")
    laptop.unlock()

    async def app() -> list[dict]:
        seen = []
        with trio.fail_after(60):
            feed = follow(laptop.socket_path, retry_every=0.1, retries=300)
            seen.append(await feed.__anext__())  # no cursor: read everything, then follow
            await trio.to_thread.run_sync(lambda: laptop.add("Email", password="1"))
            seen.append(await feed.__anext__())
            await trio.to_thread.run_sync(laptop.stop)
            edited = await trio.to_thread.run_sync(lambda: run_cli(
                laptop.home, "edit", "Email", "--field", "password=2", "--password-stdin", stdin=PASSWORD + "\n"))
            assert edited.returncode == 0, edited.stderr
            await trio.to_thread.run_sync(lambda: laptop.start("--offline"))
            seen.append(await feed.__anext__())  # replayed after the reconnection
            await feed.aclose()
        return seen

    reset, created, updated = trio.run(app)
    assert reset["type"] == "reset" and reset["seq"] == 0
    assert [c["kind"] for c in created["changes"]] == ["created"]
    assert [c["kind"] for c in updated["changes"]] == ["updated"] and updated["seq"] > created["seq"]
    assert updated["items"] == created["items"]


def test_changes_from_a_paired_device_say_their_kind_and_that_device(world):
    laptop, desktop = paired_pair(world)
    phone_id = desktop.status()["device_id"]
    with Client(laptop.socket_path, timeout=15) as app:
        events = app.subscribe()
        bank = desktop.add("Bank", password="original")["id"]
        seen = item_events(events, 1)
        # each change once it arrived (several arriving in one batch are one change: the item's last state)
        for change in (lambda: desktop.edit("Bank", url="https://bank.example"),
                       lambda: desktop.api("item.delete", item="Bank"),
                       lambda: desktop.api("item.restore", item="Bank")):
            change()
            seen += item_events(events, 1)
        assert changes(seen) == [(bank, kind, phone_id) for kind in ("created", "updated", "deleted", "restored")]
        assert [e["seq"] for e in seen] == sorted({e["seq"] for e in seen})
        cursor = app.cursor

    # a conflict: both edit the item while apart
    for daemon in (laptop, desktop):
        daemon.stop()
        daemon.start("--offline")
        daemon.unlock()
    laptop.edit("Bank", password="from-laptop")
    desktop.edit("Bank", password="from-desktop")
    laptop.stop()
    laptop.start("--listen", "127.0.0.1:0", "--no-mdns")
    laptop.unlock()
    desktop.stop()
    desktop.start("--listen", "127.0.0.1:0", "--no-mdns", "--peer", laptop.address)
    desktop.unlock()
    assert wait_until(lambda: laptop.api("conflict.list") != [], 10)
    with Client(laptop.socket_path, timeout=15) as app:
        events = app.subscribe(cursor)  # what happened since: the laptop's edit, then the desktop's
        assert app.reset is False
        (replayed,) = item_events(events, 1)
        assert changes([replayed]) == [(bank, "conflict", phone_id)]
        take = next(c["revision"] for c in laptop.api("conflict.list")[0]["fields"]["password"]
                    if c["value"] == "from-desktop")
        laptop.api("conflict.resolve", item="Bank", take=take)
        (resolved,) = item_events(events, 1)
        assert changes([resolved]) == [(bank, "updated", laptop.status()["device_id"])]
        assert resolved["seq"] > replayed["seq"]
