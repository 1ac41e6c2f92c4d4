"""The mDNS adapter with real zeroconf, bound to 127.0.0.1 only."""

import re
import socket

import trio

from vaultpeer.core.discovery import PeerGone, PeerSeen
from vaultpeer.io.discovery import Discovery

KEY, OTHER = b"k" * 32, b"o" * 32


async def next_event(channel, kind, timeout=10):
    with trio.fail_after(timeout):
        while True:
            event = await channel.receive()
            if isinstance(event, kind):
                return event


async def test_members_find_each_other_and_strangers_do_not():
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            seen_a_send, seen_a = trio.open_memory_channel(100)
            seen_c_send, seen_c = trio.open_memory_channel(100)
            a = Discovery(port=1111, interfaces=["127.0.0.1"], key_provider=lambda: KEY)
            b = Discovery(port=2222, interfaces=["127.0.0.1"], key_provider=lambda: KEY)
            c = Discovery(port=3333, interfaces=["127.0.0.1"], key_provider=lambda: OTHER)
            await nursery.start(a.run, seen_a_send)
            await nursery.start(b.run, trio.open_memory_channel(100)[0])
            await nursery.start(c.run, seen_c_send)
            event = await next_event(seen_a, PeerSeen)
            assert (event.host, event.port, event.pairing, event.source) == ("127.0.0.1", 2222, False, "mdns")
            with trio.move_on_after(2):
                event = await next_event(seen_c, PeerSeen, timeout=3)
                raise AssertionError(f"a stranger was reported as a member: {event}")
            nursery.cancel_scope.cancel()


async def test_pairing_adverts_are_seen_without_a_vault_and_withdrawn():
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            events_send, events = trio.open_memory_channel(100)
            inviter = Discovery(port=4444, interfaces=["127.0.0.1"], key_provider=lambda: KEY)
            joiner = Discovery(port=5555, interfaces=["127.0.0.1"], key_provider=lambda: None)
            await nursery.start(inviter.run, trio.open_memory_channel(100)[0])
            await nursery.start(joiner.run, events_send)
            await inviter.start_pairing()
            event = await next_event(events, PeerSeen)
            assert event.pairing and event.port == 4444
            await inviter.stop_pairing()
            gone = await next_event(events, PeerGone)
            assert gone.key == event.key
            nursery.cancel_scope.cancel()


async def test_names_rotate_and_reveal_nothing():
    from zeroconf import ServiceBrowser, Zeroconf

    names: set[str] = set()
    with trio.fail_after(40):
        async with trio.open_nursery() as nursery:
            member = Discovery(port=6666, interfaces=["127.0.0.1"], key_provider=lambda: KEY, rotate_every=1.0,
                               browse=False)
            await nursery.start(member.run, trio.open_memory_channel(100)[0])
            zc = await trio.to_thread.run_sync(lambda: Zeroconf(interfaces=["127.0.0.1"]))
            try:
                ServiceBrowser(zc, "_vaultpeer._tcp.local.",
                               handlers=[lambda zeroconf, service_type, name, state_change: names.add(name)])
                with trio.move_on_after(20):
                    while len(names) < 3:
                        await trio.sleep(0.2)
                infos = [await trio.to_thread.run_sync(zc.get_service_info, "_vaultpeer._tcp.local.", n, 500)
                         for n in sorted(names)]
            finally:
                await trio.to_thread.run_sync(zc.close)
            nursery.cancel_scope.cancel()
    assert len(names) >= 3, names
    text = (" ".join(names) + " " + " ".join(f"{i.server} {i.properties}" for i in infos if i)).lower()
    hostname = socket.gethostname().lower()
    assert hostname not in set(re.split(r"[.\s{}]+", text))  # never a label of its own
    if len(hostname) >= 6:  # a short host name (say "vm") turns up inside random labels by chance
        assert hostname not in text
    assert len({i.server for i in infos if i}) == len([i for i in infos if i])  # a new host name each time
