"""The mDNS adapter with real zeroconf, bound to 127.0.0.1 only."""

import os
import random
import re
import socket

import trio

from vaultpeer.core.discovery import PeerGone, PeerSeen
from vaultpeer.io.discovery import Discovery
from vaultpeer.io.transports.tcp import host_port, tcp_address

# Drawn anew by every run: the devices of another run (or of anything else advertising on this
# loopback) are strangers to these, and their ports are not these.
KEY, OTHER = os.urandom(32), os.urandom(32)
#: Noise public keys of the devices in these tests (a, b and c; the joiner has none in use).
NA, NB, NC = os.urandom(32), os.urandom(32), os.urandom(32)
MEMBERS = [NA, NB]
#: The ports the devices advertise (nothing listens there: only the adverts are tested).
PORT_A, PORT_B, PORT_C, PORT_INVITER, PORT_JOINER, PORT_MEMBER = random.sample(range(20_000, 60_000), 6)


def discovery(port: int, key, own: bytes, members=MEMBERS, **options) -> Discovery:
    return Discovery(port=port, interfaces=["127.0.0.1"], key_provider=lambda: key, own_noise_key=own,
                     member_keys=lambda: [m for m in members if m != own], **options)


async def next_event(channel, kind, timeout=10, *, where=lambda event: True):
    """The next event of ``kind`` that satisfies ``where`` (other test runs on this machine may be
    advertising on loopback at the same time: their events are passed over)."""
    with trio.fail_after(timeout):
        while True:
            event = await channel.receive()
            if isinstance(event, kind) and where(event):
                return event


def is_member(event) -> bool:
    return not event.pairing


async def test_members_find_each_other_by_key_and_strangers_do_not():
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            seen_a_send, seen_a = trio.open_memory_channel(100)
            seen_c_send, seen_c = trio.open_memory_channel(100)
            a = discovery(PORT_A, KEY, NA)
            b = discovery(PORT_B, KEY, NB)
            c = discovery(PORT_C, OTHER, NC, members=[NA, NB, NC])  # another vault's device
            await nursery.start(a.run, seen_a_send)
            await nursery.start(b.run, trio.open_memory_channel(100)[0])
            await nursery.start(c.run, seen_c_send)
            event = await next_event(seen_a, PeerSeen, where=is_member)
            # the name says whose it is: the key a's Noise IK handshake to it needs
            assert (event.address, event.pairing, event.source, event.noise_public) == \
                (tcp_address("127.0.0.1", PORT_B), False, "mdns", NB)
            with trio.move_on_after(2):
                event = await next_event(seen_c, PeerSeen, timeout=3, where=is_member)
                raise AssertionError(f"a stranger was reported as a member: {event}")
            nursery.cancel_scope.cancel()


async def test_pairing_adverts_are_seen_without_a_vault_and_each_withdrawn_on_its_own():
    with trio.fail_after(40):
        async with trio.open_nursery() as nursery:
            events_send, events = trio.open_memory_channel(100)
            inviter = discovery(PORT_INVITER, KEY, NA)
            joiner = discovery(PORT_JOINER, None, NC, members=[])
            await nursery.start(inviter.run, trio.open_memory_channel(100)[0])
            await nursery.start(joiner.run, events_send)
            first = await inviter.start_pairing()
            seen = await next_event(events, PeerSeen, where=lambda e: host_port(e.address)[1] == PORT_INVITER)
            assert seen.pairing
            second = await inviter.start_pairing()  # the next invitation, before the first is withdrawn
            later = await next_event(events, PeerSeen,
                                     where=lambda e: host_port(e.address)[1] == PORT_INVITER and e.key != seen.key)
            await inviter.stop_pairing(first)
            await next_event(events, PeerGone, where=lambda e: e.key == seen.key)
            with trio.move_on_after(2):
                await next_event(events, PeerGone, where=lambda e: e.key == later.key)
                raise AssertionError("the next invitation's advert was withdrawn with the first")
            await inviter.stop_pairing(second)
            await next_event(events, PeerGone, where=lambda e: e.key == later.key)
            nursery.cancel_scope.cancel()


async def test_names_rotate_and_reveal_nothing():
    from zeroconf import ServiceBrowser, Zeroconf

    names: set[str] = set()
    with trio.fail_after(40):
        async with trio.open_nursery() as nursery:
            member = discovery(PORT_MEMBER, KEY, NA, rotate_every=1.0, browse=False)
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
