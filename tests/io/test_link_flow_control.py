"""Flow control on a member link: both sides hold thousands of revisions the other lacks and send
them at once, over streams with no buffer at all (``trio.testing.lockstep_stream_pair``: a send
waits until the other side reads). Each side's writer makes its next batch only when the last one
is written, while its reader keeps reading and its session keeps storing: the exchange completes.
A design in which a side stops reading until it has written (or queues every batch before writing
one) would hang here, which the ``fail_after`` turns into a failure."""

import trio
import trio.testing

from helpers import PASSWORD
from vaultpeer.core.item import ItemContent
from vaultpeer.core.kdf import insecure_test_parameters
from vaultpeer.core.sync import MAX_BATCH_REVISIONS
from vaultpeer.io.daemon import Daemon, DaemonOptions
from vaultpeer.io.transports import Address, Handler
from vaultpeer.service import replication
from vaultpeer.service.home import Home
from vaultpeer.service.vault import Vault

LOCKSTEP = "lockstep"
#: Each side's own items: more than two batches each way.
EACH = 2 * MAX_BATCH_REVISIONS + 300


class LockstepTransport:
    """An endpoint ``name``: a dial gets a stream pair with no buffering between the two sides."""

    name = LOCKSTEP

    def __init__(self, listening: dict, here: str):
        self.listening = listening
        self.here = here

    async def serve(self, handler: Handler, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        send, incoming = trio.open_memory_channel(0)
        self.listening[self.here] = send
        task_status.started(Address(LOCKSTEP, f"lockstep:{self.here}", self.here))
        async with trio.open_nursery() as nursery:
            async for stream, caller in incoming:
                nursery.start_soon(handler, stream, caller)

    async def dial(self, address: Address) -> trio.abc.Stream:
        listener = self.listening.get(address.remote)
        if listener is None:
            raise OSError(f"nothing answers at {address}")
        ours, theirs = trio.testing.lockstep_stream_pair()
        await listener.send((theirs, Address(LOCKSTEP, f"lockstep:{self.here}#1", self.here)))
        return ours


def contents(label: str, count: int):
    return [ItemContent.build(f"{label} {n:05d}", {"username": f"{label}{n}", "password": f"secret-{label}-{n}"})
            for n in range(count)]


async def test_both_sides_sending_thousands_of_revisions_at_once_over_unbuffered_streams_completes(root):
    laptop_home, desktop_home = Home(root / "laptop"), Home(root / "desktop")
    with Vault.open(laptop_home, allow_insecure_test_kdf=True) as founder, \
            Vault.open(desktop_home, allow_insecure_test_kdf=True) as joiner:  # what pairing does
        founder.init(PASSWORD, insecure_test_parameters(), "laptop", "test")
        entry = founder.enroll(joiner.device.public, "desktop", "test")
        joiner.join(founder.header, [*founder.outgoing_roster(), entry], founder.device.public, "desktop", "test")
        joiner.unlock(PASSWORD)
        founder.add_many(contents("laptop", EACH))
        joiner.add_many(contents("desktop", EACH))

    listening: dict = {}
    made: list[replication.SyncPeer] = []

    class Recorded(replication.SyncPeer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    def daemon(name: str, *peers: Address) -> Daemon:
        options = DaemonOptions(listen=None, peers=list(peers), mdns=False, socket_path=root / name / "api.sock")
        return Daemon(Home(root / name), options, allow_insecure_test_kdf=True,
                      transports=[LockstepTransport(listening, name)])

    laptop = daemon("laptop")
    desktop = daemon("desktop", Address(LOCKSTEP, "lockstep:laptop", "laptop"))
    total = 2 * EACH
    original = replication.SyncPeer
    with trio.fail_after(120):
        try:
            import vaultpeer.io.link as link_module
            link_module.SyncPeer = Recorded
            async with trio.open_nursery() as nursery:
                await nursery.start(laptop.run)
                await nursery.start(desktop.run)
                while not (laptop.vault.counts()["revisions"] >= total and desktop.vault.counts()["revisions"] >= total
                           and made and all(p.finished for p in made)):
                    await trio.sleep(0.05)  # bounded by the fail_after
                nursery.cancel_scope.cancel()
        finally:
            link_module.SyncPeer = original

    # both sides sent their batches in the same session, lazily, while receiving the other's
    sending = [p for p in made if p.stats.revisions_sent]
    assert len(sending) == 2 and all(p.lazy and p.stats.revisions_sent == EACH for p in sending)
    assert all(p.stats.revisions_new == EACH and p.converged for p in sending)
    with Vault.open(desktop_home, allow_insecure_test_kdf=True) as vault:
        vault.unlock(PASSWORD)
        assert vault.find("laptop 00007").content.field("password").value == "secret-laptop-7"
