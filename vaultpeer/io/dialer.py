"""The dialer: a connection kept to every member address discovery reports.

One dial loop per address (``follow``) connects with exponential backoff and jitter, to the
member an mDNS name names (Noise IK needs its key), or, for a static address, to each member not
connected yet in turn; it remembers which device answered where, so a live link is not dialled
again. A dialled connection is authenticated here and then run by the daemon (``run_link``) for
as long as it lasts. Addresses are opaque: the dialer hands them to ``dial`` (a transport) and to
the link.
"""

import random
import time
from collections.abc import Awaitable, Callable, Container, Iterable, Mapping
from typing import TYPE_CHECKING

import trio

from vaultpeer.core.discovery import PeerSeen
from vaultpeer.core.identity import DeviceId
from vaultpeer.core.roster import Member
from vaultpeer.core.transport import TransportError
from vaultpeer.io.link import Link, LinkTimes
from vaultpeer.io.noise_stream import ConnectionClosed, NoiseStream
from vaultpeer.io.transports import Address

if TYPE_CHECKING:
    from vaultpeer.service.vault import Vault

BACKOFF_START, BACKOFF_MAX = 0.5, 30.0
#: How long a dial may take to connect (before the handshake, which has its own limit).
DIAL_TIMEOUT = 10.0

RunLink = Callable[..., Awaitable[Link]]


class Dialer:
    """``seen``: what discovery reports now, by key (the daemon keeps it; a loop ends when its key
    is gone). ``links``: the daemon's connected members. ``dial``: a transport's ``dial``.
    ``run_link(stream, member, initiator=True, address=..., times=...)``: the daemon's, run until
    the link ends. ``jitter(low, high)``: the factor each wait is multiplied by (a test fixes it)."""

    def __init__(self, vault: "Vault", *, seen: Mapping[str, PeerSeen], links: Mapping[DeviceId, Link],
                 dial: Callable[[Address], Awaitable[trio.abc.Stream]], run_link: RunLink,
                 jitter: Callable[[float, float], float] = random.uniform):
        self.vault = vault
        self.seen = seen
        self.links = links
        self._dial = dial
        self._run_link = run_link
        self._jitter = jitter
        self._dialing: set[str] = set()
        #: Which device answered at each advertised address, so a live link is not dialled again.
        self.device_at: dict[str, DeviceId] = {}
        self._redial = trio.Event()
        self._nursery: trio.Nursery | None = None

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """The dial loops' nursery (a child of the daemon's): ``follow`` starts loops in it."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            await trio.sleep_forever()

    def follow(self, key: str) -> None:
        """Keep a connection to what ``seen[key]`` advertises, for as long as it is there."""
        if key not in self._dialing:
            self._dialing.add(key)
            self._nursery.start_soon(self._dial_loop, key)

    def redial(self) -> None:
        """Try every address again now (the members or the links changed; a sync was asked for)."""
        self._redial.set()

    async def _dial_loop(self, key: str) -> None:
        """Keep a connection to what ``key`` advertises, with exponential backoff and jitter."""
        delay = BACKOFF_START
        try:
            while key in self.seen:
                seen = self.seen[key]
                known = self.links.get(self.device_at.get(key))
                if known is not None:
                    await known.closed.wait()  # already connected (perhaps it dialled us)
                    continue
                if self.vault.initialized and self.vault.removal is None:  # a removed device dials no one
                    link = await self.dial_member(seen)
                    if link is not None:
                        self.device_at[key] = link.device_id
                        if link.sessions:
                            delay = BACKOFF_START  # it worked: after a drop, reconnect quickly
                wait = delay * self._jitter(0.5, 1.5)
                delay = min(delay * 2, BACKOFF_MAX)
                with trio.move_on_after(wait):
                    await self._redial.wait()
                    self._redial = trio.Event()
                    delay = BACKOFF_START
        finally:
            self._dialing.discard(key)

    async def dial_member(self, seen: PeerSeen) -> Link | None:
        """Connect, authenticate, and run the link until it ends. The link, if one was made.

        Noise IK needs the responder's static key before the first byte. A name found by mDNS
        says whose it is; for a static address each member not connected yet is tried in turn
        (the one last found there first), a new connection each: a member that is not the one
        named closes the connection without a word, exactly as it would for a prober."""
        for member in self.candidates(seen):
            times = LinkTimes(dialled=trio.current_time())
            try:
                with trio.fail_after(DIAL_TIMEOUT):
                    connection = await self._dial(seen.address)
            except (OSError, trio.TooSlowError):
                return None  # nothing answers there: no other key will do better
            times.connected = trio.current_time()
            try:
                stream = await NoiseStream.dial(connection, self.vault.device, purpose="sync",
                                                responder_static=member.keys.noise_public,
                                                stamp=self.vault.next_link_stamp(time.time_ns()))
            except (ConnectionClosed, TransportError):
                await connection.aclose()
                continue  # not that member (or it refused us): try the next
            except (trio.TooSlowError, trio.BrokenResourceError, OSError):
                await connection.aclose()
                return None
            times.authenticated = trio.current_time()
            current = self.vault.member_for_noise_key(stream.remote_static)
            if current is None:  # revoked while we were dialling: nothing of the vault goes to it
                await stream.aclose()
                return None
            return await self._run_link(stream, current, initiator=True, address=seen.address, times=times)
        return None

    def candidates(self, seen: PeerSeen) -> list[Member]:
        """The members that may be listening at ``seen``, most likely first."""
        own = self.vault.device.device_id
        members = [m for m in self.vault.roster.members.values() if m.device_id != own]
        return dial_candidates(members, seen, connected=self.links, last_here=self.device_at.get(seen.key))


def dial_candidates(members: Iterable[Member], seen: PeerSeen, *, connected: Container[DeviceId],
                    last_here: DeviceId | None) -> list[Member]:
    """Which of the other ``members`` to try at ``seen``, most likely first: the one its name
    names (mDNS), else each not ``connected`` yet, the one that answered there last (``last_here``)
    first."""
    if seen.noise_public is not None:
        return [m for m in members if m.keys.noise_public == seen.noise_public]
    return sorted((m for m in members if m.device_id not in connected), key=lambda m: m.device_id != last_here)
