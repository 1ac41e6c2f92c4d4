"""Shared by the bench/ scripts."""

import os
import random
import time

from vaultpeer.core.item import ItemContent
from vaultpeer.core.kdf import minimum_parameters
from vaultpeer.service.device import DeviceProfile, save_profile
from vaultpeer.service.home import Home
from vaultpeer.service.replication import SyncPeer
from vaultpeer.service.vault import Vault

PASSWORD = "benchmark master password"


def timed(fn):
    """(seconds, result) of calling ``fn``."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def save_json(path, results: dict) -> None:
    """Write a script's figures as JSON (creating bench/results/) and say where."""
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nJSON written to {path}")


def percentiles(samples: list[float], points=(50, 95, 99)) -> dict[str, float]:
    """Nearest-rank percentiles of ``samples`` (plus min, max and mean), keyed ``p50`` etc."""
    import math

    ordered = sorted(samples)
    result = {f"p{p}": ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)] for p in points}
    result.update(min=ordered[0], max=ordered[-1], mean=sum(ordered) / len(ordered), n=len(ordered))
    return result


class CountingProxy:
    """A TCP relay on loopback that counts the bytes crossing it in each direction.

    Put it between two programs (point one at ``proxy.address``) to measure what they send on the
    wire: the TCP payload both ways, which is the same whatever program is measured. Threads, not
    trio, so it works beside any program; every socket is closed by ``close()``.
    """

    def __init__(self, target: tuple[str, int], host: str = "127.0.0.1"):
        import socket
        import threading

        self.target = target
        self.lock = threading.Lock()
        self.forward = 0   # bytes from the connecting side to the target
        self.backward = 0  # bytes from the target back
        self.connections = 0
        #: time.perf_counter() of the first connection accepted, and of the last byte relayed
        self.first_connection_at: float | None = None
        self.last_byte_at: float | None = None
        self._sockets: list = []
        self._listener = socket.create_server((host, 0))
        self.address = self._listener.getsockname()[:2]
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def total(self) -> int:
        with self.lock:
            return self.forward + self.backward

    def reset(self) -> None:
        with self.lock:
            self.forward = self.backward = 0

    def _accept(self) -> None:
        import socket
        import threading
        import time

        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=10)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.connections += 1
                if self.first_connection_at is None:
                    self.first_connection_at = time.perf_counter()
                self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, "forward"), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, "backward"), daemon=True).start()

    def _pump(self, source, sink, direction: str) -> None:
        import socket
        import time

        try:
            while data := source.recv(65536):
                with self.lock:
                    setattr(self, direction, getattr(self, direction) + len(data))
                    self.last_byte_at = time.perf_counter()
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        with self.lock:
            for sock in self._sockets:
                sock.close()


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident set size (VmHWM) in MiB, from /proc."""
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc status")


def reset_peak_rss(pid: int) -> bool:
    """Restart the peak-RSS count of a process (Linux: write 5 to clear_refs); False if not allowed."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


# --- homes, built in-process (real Argon2id at the --quick-kdf floor) ----------------------------

def item_contents(count: int, start: int = 0):
    for n in range(start, start + count):
        yield ItemContent.build(f"Account {n:06d}", {
            "username": f"user{n}@example.org", "password": f"pw-{n:06d}-{random.getrandbits(64):016x}",
            "url": f"https://site{n}.example.org/login", "notes": f"created for the benchmark, item {n}",
        })


def create_vault(home: Home, items: int) -> None:
    """A vault of ``items`` items on ``home`` (the founder)."""
    save_profile(home, DeviceProfile(home.path.name, "benchmark"))
    with Vault.open(home) as vault:
        vault.init(PASSWORD, minimum_parameters(os.cpu_count() or 1), home.path.name, "benchmark")
        batch = 5_000
        for start in range(0, items, batch):
            vault.add_many(item_contents(min(batch, items - start), start))


def enroll(founder_home: Home, home: Home) -> None:
    """What pairing does: the founder vouches for the new device, which takes header and roster.
    The founder is unlocked for it, as pairing needs (its signing key is sealed by the vault's keys)."""
    save_profile(home, DeviceProfile(home.path.name, "benchmark"))
    with Vault.open(founder_home) as founder, Vault.open(home) as joiner:
        founder.unlock(PASSWORD)
        entry = founder.enroll(joiner.device.public, home.path.name, "benchmark")
        joiner.join(founder.header, [*founder.outgoing_roster(), entry], founder.device.public,
                    home.path.name, "benchmark")


def sync_in_process(a_home: Home, b_home: Home) -> None:
    """One sync session between two homes, messages passed directly (no daemons)."""
    with Vault.open(a_home) as a, Vault.open(b_home) as b:
        left = SyncPeer(a, initiator=True, peer=b.device.device_id)
        right = SyncPeer(b, initiator=False, peer=a.device.device_id)
        to_right, to_left = list(left.start()), list(right.start())
        for _ in range(100_000):
            if not (to_right or to_left):
                return
            if to_right:
                to_left += right.receive(to_right.pop(0))
            if to_left:
                to_right += left.receive(to_left.pop(0))
        raise RuntimeError("an in-process sync did not end")
