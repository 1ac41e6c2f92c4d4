"""The mDNS adapter: the only place that knows about python-zeroconf (and its thread).

Blocking zeroconf calls run in worker threads (``trio.to_thread``). ServiceBrowser calls back on
zeroconf's own thread; the callback only hands the name back into trio, and resolving happens from
trio. What comes out is ``PeerSeen`` / ``PeerGone`` events on a memory channel; the daemon cannot
tell them from its static ``--peer`` list.
"""

import logging
import socket
from collections.abc import Callable

import trio
from zeroconf import InterfaceChoice, IPVersion, ServiceBrowser, ServiceInfo, ServiceStateChange, Zeroconf

from vaultpeer.core.discovery import (
    SERVICE_TYPE,
    PeerGone,
    PeerSeen,
    instance_name,
    is_pairing_label,
    label_of,
    label_owner,
    new_member_label,
    new_pairing_label,
    random_server_name,
)
from vaultpeer.io.transports import Address
from vaultpeer.io.transports.tcp import NAME as TCP, host_port, tcp_address

log = logging.getLogger("vaultpeer.discovery")
ZEROCONF_TIMEOUT = 15.0


class Discovery:
    def __init__(self, *, port: int, interfaces: list[str] | None, key_provider: Callable[[], bytes | None],
                 own_noise_key: bytes, member_keys: Callable[[], list[bytes]],
                 recognised_keys: Callable[[], list[bytes]] | None = None,
                 rotate_every: float = 1800.0, browse: bool = True, resolve_timeout: float = 3.0):
        self.port = port
        self.interfaces = interfaces
        self.key_provider = key_provider
        #: This device's Noise public key, bound into its member names.
        self.own_noise_key = own_noise_key
        #: The Noise keys of the other current members: whose names to recognise.
        self.member_keys = member_keys
        #: Keys whose member names are recognised besides the current one: a member that was away
        #: during a key rotation still advertises under the previous key, and must be found to
        #: learn of the rotation at all.
        self.recognised_keys = recognised_keys or (lambda: [])
        self.rotate_every = rotate_every
        self.browse = browse
        self.resolve_timeout = resolve_timeout
        self._zc: Zeroconf | None = None
        self._member: ServiceInfo | None = None
        self._pairing: ServiceInfo | None = None
        self._own: set[str] = set()
        self._reported: set[str] = set()
        #: Every name of another device currently advertised, recognised or not (see ``refresh``).
        self._present: set[str] = set()
        self._events: trio.MemorySendChannel | None = None

    def _info(self, label: str) -> ServiceInfo:
        addresses = [socket.inet_aton(ip) for ip in self.interfaces or [] if _is_ipv4(ip)]
        info = ServiceInfo(SERVICE_TYPE, instance_name(label), port=self.port, properties={},
                           server=random_server_name(), addresses=addresses or None)
        if not addresses:
            # all interfaces: let zeroconf fill in this host's addresses when announcing
            info = ServiceInfo(SERVICE_TYPE, instance_name(label), port=self.port, properties={},
                               server=random_server_name(), parsed_addresses=_local_ipv4_addresses())
        return info

    async def _register(self, info: ServiceInfo) -> None:
        self._own.add(info.name)
        with trio.fail_after(ZEROCONF_TIMEOUT):
            # abandoned on cancel: otherwise neither the timeout nor a SIGTERM could end the wait
            # (a registration can hang, e.g. while zeroconf is being closed)
            await trio.to_thread.run_sync(self._zc.register_service, info, abandon_on_cancel=True)

    async def _unregister(self, info: ServiceInfo | None) -> None:
        if info is None or self._zc is None:
            return
        with trio.move_on_after(ZEROCONF_TIMEOUT):
            await trio.to_thread.run_sync(self._zc.unregister_service, info, abandon_on_cancel=True)

    async def _rotate(self) -> None:
        """Advertise a new member label (if this device has a vault) and withdraw the old one."""
        old = self._member
        key = self.key_provider()
        self._member = self._info(new_member_label(key, self.own_noise_key)) if key else None
        if self._member is not None:
            await self._register(self._member)
        await self._unregister(old)

    async def refresh(self) -> None:
        """The discovery key appeared or changed (a join, a rotation after a revocation): advertise
        under it at once, and look again at every name already present (``recheck``)."""
        if self._zc is None or self._events is None:
            return
        await self._rotate()
        await self.recheck()

    async def recheck(self) -> None:
        """The members changed: a name not recognised before may be a new member's."""
        if self._zc is None or self._events is None:
            return
        for name in list(self._present):
            if name not in self._reported:
                await self._handle(name, ServiceStateChange.Added, self._events)

    async def start_pairing(self) -> ServiceInfo | None:
        """Advertise an invitation under a new pairing label; returns what ``stop_pairing`` takes.
        Each invitation has its own: one withdrawn late never takes the next one's advert down."""
        if self._zc is None:
            return None
        pairing = self._pairing = self._info(new_pairing_label())
        await self._register(pairing)
        return pairing

    async def stop_pairing(self, pairing: ServiceInfo | None = None) -> None:
        """Withdraw ``pairing`` (by default the newest invitation's advert)."""
        pairing = pairing or self._pairing
        if pairing is self._pairing:
            self._pairing = None
        await self._unregister(pairing)

    async def run(self, events: trio.MemorySendChannel, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        interfaces = self.interfaces or InterfaceChoice.All
        ip_version = IPVersion.V4Only if self.interfaces and all(_is_ipv4(i) for i in self.interfaces) else None
        with trio.fail_after(ZEROCONF_TIMEOUT):
            self._zc = await trio.to_thread.run_sync(lambda: Zeroconf(interfaces=interfaces, ip_version=ip_version))
        self._events = events
        changes_send, changes = trio.open_memory_channel(256)
        token = trio.lowlevel.current_trio_token()
        browser = None
        try:
            await self._rotate()
            if self.browse:
                def on_change(zeroconf, service_type, name, state_change):  # zeroconf's thread
                    try:
                        trio.from_thread.run_sync(_offer, changes_send, (name, state_change), trio_token=token)
                    except trio.RunFinishedError:
                        pass

                browser = await trio.to_thread.run_sync(
                    lambda: ServiceBrowser(self._zc, SERVICE_TYPE, handlers=[on_change]))
            task_status.started()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._rotation_loop)
                async for name, state_change in changes:
                    await self._handle(name, state_change, events)
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(ZEROCONF_TIMEOUT):
                if browser is not None:
                    await trio.to_thread.run_sync(browser.cancel)
                await self._unregister(self._pairing)
                await self._unregister(self._member)
                await trio.to_thread.run_sync(self._zc.close)

    async def _rotation_loop(self) -> None:
        while True:
            await trio.sleep(self.rotate_every)
            await self._rotate()

    async def _handle(self, name: str, state_change: ServiceStateChange, events: trio.MemorySendChannel) -> None:
        if name in self._own:
            return
        label = label_of(name)
        if label is None:
            return
        if state_change is ServiceStateChange.Removed:
            self._present.discard(name)
            if name in self._reported:
                self._reported.discard(name)
                await events.send(PeerGone(name))
            return
        self._present.add(name)
        keys = [k for k in (self.key_provider(), *self.recognised_keys()) if k]
        pairing = is_pairing_label(label)
        owner = None if pairing else label_owner(keys, self.member_keys(), label)
        if not pairing and owner is None:
            return  # a stranger's advert, another vault's, or a device that is not a member (yet)
        with trio.move_on_after(self.resolve_timeout + 1):
            # abandoned on cancel, as every call into zeroconf's threads: a resolution that hangs
            # must not hold up a shutdown (recheck runs this at every roster change)
            info = await trio.to_thread.run_sync(
                self._zc.get_service_info, SERVICE_TYPE, name, int(self.resolve_timeout * 1000),
                abandon_on_cancel=True)
            if info is None or not info.port:
                return
            addresses = [a for a in info.parsed_addresses() if _is_ipv4(a)]
            if not addresses:
                return
            self._reported.add(name)
            log.debug("found %s at %s:%d", "an invitation" if pairing else "a member", addresses[0], info.port)
            await events.send(PeerSeen(name, tcp_address(addresses[0], info.port), pairing, "mdns", owner))


def advertised_port(listen_address: Address) -> int | None:
    """The port an mDNS advert (a DNS-SD SRV record) carries for a device listening at
    ``listen_address``: a TCP one's; None for any other transport, which mDNS cannot announce."""
    return host_port(listen_address)[1] if listen_address.transport == TCP else None


def _offer(channel: trio.MemorySendChannel, item: tuple) -> None:
    try:
        channel.send_nowait(item)
    except trio.WouldBlock:
        log.warning("discovery events are arriving faster than they are handled; dropping one")


def _is_ipv4(address: str) -> bool:
    try:
        socket.inet_aton(address)
        return address.count(".") == 3
    except OSError:
        return False


def _local_ipv4_addresses() -> list[str]:
    from zeroconf import get_all_addresses

    return [a for a in get_all_addresses() if not a.startswith("127.")] or ["127.0.0.1"]
