"""Two daemons in this process, connected by a transport that is not TCP: in-memory streams
(``trio.testing.memory_stream_pair``) between named endpoints. They pair, dial and sync through it,
which is what shows that the daemon treats addresses as opaque: it never learns a host or a port."""

from pathlib import Path

import trio
import trio.testing

from helpers import PASSWORD
from vaultpeer.core.kdf import insecure_test_parameters
from vaultpeer.io.daemon import Daemon, DaemonOptions
from vaultpeer.io.transports import Address, Handler
from vaultpeer.service.home import Home
from vaultpeer.service.vault import Vault

MEMORY = "memory"


class MemoryNetwork:
    """Who listens under which name."""

    def __init__(self):
        self.listening: dict[str, trio.MemorySendChannel] = {}


class MemoryTransport:
    """An endpoint ``name`` on a ``MemoryNetwork``: its address is ``memory:NAME``; a connection
    from it shows as ``memory:NAME#n`` (a new one each, as a TCP port would be), counted by NAME."""

    name = MEMORY

    def __init__(self, network: MemoryNetwork, here: str):
        self.network = network
        self.here = here
        self.dialled = 0

    async def serve(self, handler: Handler, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        send, incoming = trio.open_memory_channel(0)
        self.network.listening[self.here] = send
        task_status.started(Address(MEMORY, f"memory:{self.here}", self.here))
        async with trio.open_nursery() as nursery:
            async for stream, caller in incoming:
                nursery.start_soon(handler, stream, caller)

    async def dial(self, address: Address) -> trio.abc.Stream:
        listener = self.network.listening.get(address.remote)
        if address.transport != MEMORY or listener is None:
            raise OSError(f"nothing answers at {address}")
        self.dialled += 1
        ours, theirs = trio.testing.memory_stream_pair()
        await listener.send((theirs, Address(MEMORY, f"memory:{self.here}#{self.dialled}", self.here)))
        return ours


def make_daemon(root: Path, name: str, network: MemoryNetwork, *peers: Address) -> Daemon:
    options = DaemonOptions(listen=None, peers=list(peers), mdns=False, socket_path=root / name / "api.sock")
    return Daemon(Home(root / name), options, allow_insecure_test_kdf=True,
                  transports=[MemoryTransport(network, name)])


def init_vault(home: Home) -> None:
    with Vault.open(home, allow_insecure_test_kdf=True) as vault:
        vault.init(PASSWORD, insecure_test_parameters(), home.path.name, "test")


async def until(condition, step: float = 0.02) -> None:
    while not condition():  # bounded by the caller's fail_after
        await trio.sleep(step)


def titles(daemon: Daemon) -> set[str]:
    return {item.title for item in daemon.vault.list_items()}


async def test_two_daemons_pair_and_sync_over_a_transport_that_is_not_tcp(root):
    network = MemoryNetwork()
    init_vault(Home(root / "laptop"))
    laptop, desktop = make_daemon(root, "laptop", network), make_daemon(root, "desktop", network)
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await nursery.start(laptop.run)
            await nursery.start(desktop.run)
            assert str(laptop.listen_address) == "memory:laptop"
            laptop.vault.unlock(PASSWORD)
            laptop.vault.add("Before pairing", {"password": "one"})

            codes, results = {}, {}

            async def invite() -> None:
                codes[laptop] = await laptop.pairing_pump.invite()

            async def confirm(daemon: Daemon) -> None:
                results[daemon] = await daemon.pairing_pump.confirm(True)

            async with trio.open_nursery() as pairing:
                pairing.start_soon(invite)
                await until(lambda: laptop.pairing_pump.invitation_open)
                codes[desktop] = await desktop.pairing_pump.join(laptop.listen_address)
            assert codes[laptop] == codes[desktop]
            async with trio.open_nursery() as confirming:
                for daemon in (laptop, desktop):
                    confirming.start_soon(confirm, daemon)
            assert results[desktop]["device_id"] == str(laptop.device_id)

            # the pairing connection goes on as the members' link, under the addresses it came by
            await until(lambda: laptop.device_id in desktop.links and desktop.device_id in laptop.links)
            assert desktop.peers[laptop.device_id].address == "memory:laptop"
            assert laptop.peers[desktop.device_id].address == "memory:desktop#1"
            desktop.vault.unlock(PASSWORD)
            await until(lambda: "Before pairing" in titles(desktop))
            laptop.vault.add("After pairing", {"password": "two"})  # pushed at once over the link
            await until(lambda: "After pairing" in titles(desktop))
            nursery.cancel_scope.cancel()


async def test_a_static_address_of_another_transport_is_dialled_and_kept(root):
    network = MemoryNetwork()
    laptop_home, desktop_home = Home(root / "laptop"), Home(root / "desktop")
    init_vault(laptop_home)
    with Vault.open(laptop_home, allow_insecure_test_kdf=True) as founder, \
            Vault.open(desktop_home, allow_insecure_test_kdf=True) as joiner:  # what pairing does
        founder.unlock(PASSWORD)
        entry = founder.enroll(joiner.device.public, "desktop", "test")
        joiner.join(founder.header, [*founder.outgoing_roster(), entry], founder.device.public, "desktop", "test")
        founder.add("Written before", {"password": "one"})

    laptop = make_daemon(root, "laptop", network)
    desktop = make_daemon(root, "desktop", network, Address(MEMORY, "memory:laptop", "laptop"))
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await nursery.start(laptop.run)
            await nursery.start(desktop.run)
            desktop.vault.unlock(PASSWORD)
            await until(lambda: "Written before" in titles(desktop))
            link = desktop.links[laptop.device_id]
            assert (link.initiator, str(link.address)) == (True, "memory:laptop")

            link.close()  # dropped: the dialer connects again at once
            await link.closed.wait()
            await until(lambda: laptop.device_id in desktop.links and desktop.links[laptop.device_id] is not link)
            await until(lambda: desktop.device_id in laptop.links)
            laptop.vault.unlock(PASSWORD)
            laptop.vault.add("Written after", {"password": "two"})
            await until(lambda: "Written after" in titles(desktop))
            nursery.cancel_scope.cancel()
