"""Measure what users feel when their devices sync: real daemons on loopback, driven through their
local APIs. Prints a table and writes JSON.

    bash bench/setup                          # once: the venv, and Syncthing for the anchor
    .venv/bin/python bench/sync.py            # everything (about 10 minutes on 2 cores)
    .venv/bin/python bench/sync.py --only propagation,wire --items 1000
    .venv/bin/python bench/sync.py --only initial --initial 100000 --profile /tmp/profiles

Scenarios (``--only`` picks some):

- ``propagation``: as an app measures it: one persistent API connection on A edits (``item.edit``),
  one on B is subscribed (``events.subscribe``); from the edit's call until B's ``items.changed``
  for the item has come and B's ``item.get`` returns the new value. Two daemons, vaults of 1,000
  and 10,000 items, 200 edits each: p50, p95, p99 (and the edit call, the event, CPU per edit).
- ``wire``: bytes on the TCP connection (payload, both directions) for one edit, at each size.
- ``initial``: a new device, paired and locked, receives a vault of 10,000 and 100,000 items:
  seconds, and the peak RSS of both daemons (the sender unlocked, its item index built, as a
  device in use is). Beside it: the sender's unlock, its first ``status``, ``item.list`` and
  ``item.search`` (the index is built at the first), and the new device's unlock and first
  ``item.list`` once it holds everything (test-opening every revision, then the index).
- ``reconnect``: two devices apart make 100 edits each on a 10,000-item vault, then reconnect:
  the time from the connection to the session's last byte on the wire, the time until both
  daemons' ``status`` shows all 200 edits (polled: on 10,000 items the polling adds up to ~0.1 s
  of its own), and bytes.
- ``mesh``: ten daemons, every one connected to every other, one edit: time until all ten return
  it (20 rounds; each of the nine others watched as its own app would, at once: a thread waits for
  its ``items.changed`` and asks ``item.get`` on a connection kept open), and what each edit costs:
  sync sessions (in all, each counted once) and bytes on the member links (``status``'s ``sync``
  counters; the ideal is one session from the author to each of the nine others), and the CPU time
  all ten daemons spent on it (/proc/PID/stat: on two cores, half of it bounds the latency from
  below, whatever else runs).
- ``idle``: four daemons connected to one another, nothing happening: each one's CPU time
  (/proc/PID/stat) and wakeups (context switches of all its threads, /proc/PID/task/*/status) over
  60 s, and the system calls one makes meanwhile (``strace -f -c``, when strace can attach).
- ``anchor``: the same one-edit workload on a .kdbx synced by two Syncthing instances in a
  network namespace with only loopback (bench/anchor_syncthing.py); skipped with the reason when
  Syncthing or namespaces are unavailable.

``--profile DIR`` attaches py-spy to the daemons of ``propagation`` (A and B, during the timed
edits) and ``initial`` (the sender and the new device, from the new device's start until it holds
everything) and writes, per daemon, its collapsed stacks and a summary of the functions where its
CPU went (bench/profiling.py). The sampler takes CPU of its own: take the figures from a run
without it.

Every daemon is a real ``vaultpeer daemon`` process (real Noise, real SQLite, real Argon2id at the
``--quick-kdf`` floor of 64 MiB) listening on 127.0.0.1 with mDNS off; peers are given with
``--peer``. Bytes are counted by a relay (bench/benchlib.py CountingProxy) that one daemon dials
through. To save minutes, vaults are created and devices enrolled in-process with the same calls
pairing makes (``Vault.enroll`` / ``Vault.join``); where a scenario starts from devices already in
sync, that first sync also runs in-process (the ``initial`` scenario measures it through daemons).
"""

import argparse
import os
import queue
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from benchlib import (  # noqa: E402
    PASSWORD, CountingProxy, create_vault, enroll, peak_rss_mib, percentiles, reset_peak_rss, save_json,
    sync_in_process, timed,
)
from daemons import wait_until  # noqa: E402
from profiling import profiled  # noqa: E402
from vaultpeer.client import Client, DaemonNotRunning
from vaultpeer.service.home import Home
from vaultpeer.service.vault import Vault

#: How long a full mesh of --peer daemons may take to form: on one host every static address is
#: tried with the wrong members first, and 20 such failures from 127.0.0.1 within a minute get it
#: refused for a minute (core/offenders.py), so a mesh of ten can take a few minutes.
MESH_TIMEOUT = 300

SCENARIOS = ("propagation", "wire", "initial", "reconnect", "mesh", "idle", "anchor")


# --- homes, built in-process (more in bench/benchlib.py) -----------------------------------------

def edit_in_process(home: Home, item_ids: list[str], label: str) -> None:
    with Vault.open(home) as vault:
        vault.unlock(PASSWORD)
        for item_id in item_ids:
            vault.edit(item_id, {"password": f"{label}-{item_id[:8]}"})


# --- daemons --------------------------------------------------------------------------------------

class Daemon:
    """A real ``vaultpeer daemon`` process on loopback, and its local API."""

    def __init__(self, home: Home, *args: str):
        self.home = home
        env = {k: v for k, v in os.environ.items() if not k.startswith("VAULTPEER_")}
        self.log_path = home.path.parent / f"{home.path.name}.log"
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "vaultpeer", "--home", str(home.path), "daemon", "--no-mdns",
                 "--listen", "127.0.0.1:0", *args],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"a daemon exited early:\n{self.log_path.read_text()[-2000:]}")
            try:
                self.status = self.api("status")
                if self.status["listen"]:  # the API answers a moment before the listener is bound
                    break
            except (DaemonNotRunning, OSError):
                pass
            time.sleep(0.05)
        else:
            self.process.kill()  # nothing else holds it: it would outlive the run
            self.process.wait(5)
            raise RuntimeError("a daemon did not start within 30 s")
        host, port = self.status["listen"].rsplit(":", 1)
        self.address = (host, int(port))

    @property
    def pid(self) -> int:
        return self.process.pid

    def api(self, method: str, **params: object) -> object:
        with Client(self.home.path / "run" / "api.sock", timeout=120) as client:
            return client.call(method, **params)

    def unlock(self) -> None:
        self.api("unlock", password=PASSWORD)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


class Events:
    """A subscription to one daemon's events, read by a thread into a queue."""

    def __init__(self, daemon: Daemon):
        self.client = Client(daemon.home.path / "run" / "api.sock", timeout=None)
        self.iterator = self.client.subscribe()
        self.queue: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            for event in self.iterator:
                self.queue.put(event)
        except (OSError, ValueError):
            pass

    def drain(self) -> None:
        while not self.queue.empty():
            self.queue.get_nowait()

    def wait_changed(self, item_id: str, deadline: float) -> bool:
        while (left := deadline - time.monotonic()) > 0:
            try:
                event = self.queue.get(timeout=left)
            except queue.Empty:
                return False
            if event.get("type") == "items.changed" and item_id in event.get("items", ()):
                return True
        return False

    def close(self) -> None:
        self.client.close()


def wait_for(predicate, timeout: float, what: str, interval: float = 0.02):
    if not (value := wait_until(predicate, timeout, interval)):
        raise RuntimeError(f"timed out after {timeout} s waiting for {what}")
    return value


def connected(daemon: Daemon, count: int = 1) -> bool:
    return len(daemon.api("status")["peers"]) >= count


class Workspace:
    """A temporary directory of homes, and every daemon started in it (all stopped at the end)."""

    def __init__(self, keep: bool = False):
        self.root = Path(tempfile.mkdtemp(prefix="vp-bench-", dir="/tmp"))
        self.keep = keep
        self.daemons: list[Daemon] = []
        self.proxies: list[CountingProxy] = []

    def home(self, name: str) -> Home:
        return Home(self.root / name)

    def daemon(self, home: Home, *args: str) -> Daemon:
        daemon = Daemon(home, *args)
        self.daemons.append(daemon)
        return daemon

    def proxy(self, target) -> CountingProxy:
        proxy = CountingProxy(target)
        self.proxies.append(proxy)
        return proxy

    def __enter__(self) -> "Workspace":
        return self

    def __exit__(self, *exc_info: object) -> None:
        for daemon in self.daemons:
            daemon.stop()
        for proxy in self.proxies:
            proxy.close()
        if self.keep:
            print(f"kept {self.root}")
        else:
            shutil.rmtree(self.root, ignore_errors=True)


def synced_pair(ws: Workspace, items: int, *, through_proxy: bool):
    """Two devices in sync on ``items`` items, both daemons running, unlocked and connected; B
    dials A (through a counting relay when asked). Returns A, B, the relay (or None), a
    subscription to B's events, and the item ids."""
    a_home, b_home = ws.home(f"a{items}"), ws.home(f"b{items}")
    create_vault(a_home, items)
    enroll(a_home, b_home)
    sync_in_process(a_home, b_home)
    a = ws.daemon(a_home)
    proxy = ws.proxy(a.address) if through_proxy else None
    target = proxy.address if proxy else a.address
    b = ws.daemon(b_home, "--peer", f"{target[0]}:{target[1]}")
    a.unlock()
    b.unlock()
    wait_for(lambda: connected(a) and connected(b), 30, "the two daemons to connect")
    return a, b, proxy, Events(b), [entry["id"] for entry in a.api("item.list")]


def edit_and_wait(source: Daemon, targets: list[tuple[Daemon, Events]], item_id: str, value: str,
                  timeout: float = 10) -> tuple[float, float]:
    """Edit ``item_id`` on ``source``; return (seconds until every target's API returns the new
    value, seconds the edit call itself took)."""
    for _, events in targets:
        events.drain()
    started = time.perf_counter()
    source.api("item.edit", item=item_id, fields={"password": value})
    committed = time.perf_counter() - started
    deadline = time.monotonic() + timeout
    for daemon, events in targets:
        while True:
            if daemon.api("item.get", item=item_id)["fields"]["password"] == value:
                break
            if not events.wait_changed(item_id, deadline):
                raise RuntimeError(f"an edit did not arrive within {timeout} s")
    return time.perf_counter() - started, committed


# --- scenarios ------------------------------------------------------------------------------------

class AppLatency:
    """Propagation as an app sees it: one persistent API connection on A that edits, one persistent
    connection on B subscribed to ``events.subscribe``, and one more on B that reads (``item.get``).
    Everything runs on this one thread: no thread hop of the benchmark's own between the event's
    arrival and the clock."""

    def __init__(self, a: Daemon, b: Daemon, timeout: float = 10):
        self.editor = Client(a.home.path / "run" / "api.sock", timeout=timeout)
        self.subscriber = Client(b.home.path / "run" / "api.sock", timeout=timeout)
        self.reader = Client(b.home.path / "run" / "api.sock", timeout=timeout)
        self.events = self.subscriber.subscribe()

    def edit(self, item_id: str, value: str) -> dict[str, float]:
        """Edit ``item_id`` on A; the milliseconds until the edit call answered (``edit_call``),
        until B's ``items.changed`` for the item came (``event``) and until B's ``item.get``
        returned the new value (``latency``: both seen)."""
        started = time.perf_counter()
        self.editor.call("item.edit", item=item_id, fields={"password": value})
        answered = time.perf_counter()
        for event in self.events:  # bounded: the socket's timeout ends a wait for a lost event
            if event.get("type") == "items.changed" and item_id in event.get("items", ()):
                break
        else:
            raise RuntimeError("B's event connection ended")
        evented = time.perf_counter()
        got = self.reader.call("item.get", item=item_id)
        done = time.perf_counter()
        if got["fields"]["password"] != value:
            raise RuntimeError("B announced the item but returned another value")
        return {"latency": (done - started) * 1000, "edit_call": (answered - started) * 1000,
                "event": (evented - started) * 1000}

    def close(self) -> None:
        for client in (self.editor, self.subscriber, self.reader):
            client.close()


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far, from /proc (independent of the machine's load)."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def propagation(sizes: list[int], edits: int, keep: bool, profile: Path | None = None) -> dict:
    """Per size: ``edits`` edits through A's API (one persistent connection), each timed until B's
    subscribed connection has its ``items.changed`` and B's ``item.get`` returns the new value
    (``latency_ms``, the figure of issue 20), with the edit call alone and the event alone beside
    it, and the CPU time both daemons spent per edit (load-independent)."""
    results = {}
    for items in sizes:
        with Workspace(keep) as ws:
            a, b, _, events, ids = synced_pair(ws, items, through_proxy=False)
            events.close()
            app = AppLatency(a, b)
            rng = random.Random(items)
            for n in range(10):  # warm-up: first use of each code path
                app.edit(rng.choice(ids), f"warm-{n}-{random.getrandbits(32)}")
            samples: dict[str, list[float]] = {"latency": [], "edit_call": [], "event": []}
            cpu_before = (_cpu_seconds(a.pid), _cpu_seconds(b.pid))
            with profiled(profile, f"propagation-{items}", {"a": a.pid, "b": b.pid}):
                for n in range(edits):
                    for key, value in app.edit(rng.choice(ids), f"edit-{n}-{random.getrandbits(32)}").items():
                        samples[key].append(value)
                    time.sleep(0.01)  # let the session's tail (digest, done) end: one edit at a time
            cpu = (_cpu_seconds(a.pid) - cpu_before[0], _cpu_seconds(b.pid) - cpu_before[1])
            app.close()
            r = results[str(items)] = {
                "edits": edits, "latency_ms": percentiles(samples["latency"]),
                "edit_call_ms": percentiles(samples["edit_call"]), "event_ms": percentiles(samples["event"]),
                "cpu_ms_per_edit": {"a": cpu[0] * 1000 / edits, "b": cpu[1] * 1000 / edits},
            }
            print(f"  propagation, {items:,} items: p50 {r['latency_ms']['p50']:.1f} ms, "
                  f"p99 {r['latency_ms']['p99']:.1f} ms (edit call p50 {r['edit_call_ms']['p50']:.1f} ms, "
                  f"event p50 {r['event_ms']['p50']:.1f} ms; CPU per edit A {r['cpu_ms_per_edit']['a']:.1f} ms, "
                  f"B {r['cpu_ms_per_edit']['b']:.1f} ms)")
    return results


def wire(sizes: list[int], edits: int, keep: bool) -> dict:
    results = {}
    for items in sizes:
        with Workspace(keep) as ws:
            a, b, proxy, events, ids = synced_pair(ws, items, through_proxy=True)
            rng = random.Random(items)
            edit_and_wait(a, [(b, events)], rng.choice(ids), "warm-up")
            time.sleep(1.0)
            per_edit, forward, backward = [], [], []
            for n in range(edits):
                proxy.reset()
                edit_and_wait(a, [(b, events)], rng.choice(ids), f"wire-{n}-{random.getrandbits(32)}")
                time.sleep(0.5)  # let the session finish (acknowledgements, the closing hellos)
                with proxy.lock:
                    # the proxy's "forward" is B -> A (B dialed through it)
                    forward.append(proxy.backward)
                    backward.append(proxy.forward)
                per_edit.append(forward[-1] + backward[-1])
            events.close()
            results[str(items)] = {"edits": edits, "bytes_per_edit": percentiles(per_edit),
                                   "bytes_a_to_b_median": percentiles(forward)["p50"],
                                   "bytes_b_to_a_median": percentiles(backward)["p50"],
                                   "connections": proxy.connections}
            print(f"  wire, {items:,} items: {results[str(items)]['bytes_per_edit']['p50']:,} bytes per edit "
                  f"(max {results[str(items)]['bytes_per_edit']['max']:,})")
    return results


def initial(sizes: list[int], keep: bool, profile: Path | None = None) -> dict:
    results = {}
    for items in sizes:
        with Workspace(keep) as ws:
            a_home, c_home = ws.home(f"a{items}"), ws.home(f"new{items}")
            build_started = time.perf_counter()
            create_vault(a_home, items)
            enroll(a_home, c_home)
            build_s = time.perf_counter() - build_started
            a = ws.daemon(a_home)
            unlock_s, _ = timed(a.unlock)
            status_s, status = timed(lambda: a.api("status"))  # builds the item index (its conflicts count)
            expected = status["revisions"]
            proxy = ws.proxy(a.address)
            reset_peak_rss(a.pid)
            rss_a_before = _rss_mib(a.pid)
            sender_cpu_before = _cpu_seconds(a.pid)
            started = time.perf_counter()
            c = ws.daemon(c_home, "--peer", f"{proxy.address[0]}:{proxy.address[1]}")
            daemon_up = time.perf_counter() - started
            c_events = Events(c)
            with profiled(profile, f"initial-{items}", {"sender": a.pid, "receiver": c.pid}):
                wait_for(lambda: proxy.connections >= 1, 30, "the new device to connect", interval=0.005)
                connected_at = time.perf_counter() - started
                wait_for(lambda: progress_reached(c_events, c, expected), 600, "the initial sync", interval=0)
                done = time.perf_counter() - started
            # CPU time (from /proc: independent of the machine's load, unlike the seconds above);
            # the new device's is since it started (it did nothing else)
            cpu = {"sender": _cpu_seconds(a.pid) - sender_cpu_before, "receiver": _cpu_seconds(c.pid)}
            c_events.close()
            status = c.api("status")
            receiver_peak, sender_peak = peak_rss_mib(c.pid), peak_rss_mib(a.pid)
            # after the peaks are read: a listing's 100,000 JSON entries grow the heap for good
            list_s, listed = timed(lambda: a.api("item.list"))
            search_s, _ = timed(lambda: a.api("item.search", text="account 0999"))
            c_unlock_s, _ = timed(c.unlock)
            c_list_s, _ = timed(lambda: c.api("item.list"))
            results[str(items)] = {
                "items": items, "revisions": expected, "seconds_from_start": done,
                "seconds_from_connection": done - connected_at, "daemon_start_s": daemon_up,
                "bytes": proxy.total, "locked": status["locked"], "cpu_s": cpu,
                "peak_rss_mib": {"sender": sender_peak, "receiver": receiver_peak},
                "sender_rss_before_mib": rss_a_before, "vault_build_s": build_s,
                "sender_api_s": {"unlock": unlock_s, "first_status": status_s, "item_list": list_s,
                                 "item_search": search_s, "listed": len(listed)},
                "receiver_after_sync_s": {"unlock": c_unlock_s, "first_item_list": c_list_s,
                                          "rss_mib": _rss_mib(c.pid)},
            }
            r = results[str(items)]
            print(f"  initial sync, {items:,} items: {r['seconds_from_connection']:.2f} s from connection "
                  f"({r['seconds_from_start']:.2f} s from start), {r['bytes'] / 1e6:.1f} MB, peak RSS "
                  f"{r['peak_rss_mib']['sender']:.0f} / {r['peak_rss_mib']['receiver']:.0f} MiB, "
                  f"CPU {cpu['sender']:.2f} / {cpu['receiver']:.2f} s")
            print(f"    sender: unlock {unlock_s:.2f} s, first status {status_s:.2f} s, item.list {list_s:.2f} s, "
                  f"item.search {search_s:.2f} s; new device once synced: unlock {c_unlock_s:.2f} s, "
                  f"first item.list {c_list_s:.2f} s")
    return results


def progress_reached(events: Events, daemon: Daemon, expected: int) -> bool:
    """Whether ``daemon`` holds ``expected`` revisions: told by its sync.progress events (asking
    its status all the time would slow it down: counting 100,000 rows is not free), and
    confirmed by its status."""
    try:
        event = events.queue.get(timeout=0.5)
    except queue.Empty:
        event = None
    if event is not None and not (event.get("type") == "sync.progress" and event["received"] >= event["expected"]):
        return False
    return daemon.api("status")["revisions"] >= expected


def _rss_mib(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def reconnect(items: int, edits_each: int, keep: bool) -> dict:
    with Workspace(keep) as ws:
        a, b, _, events, ids = synced_pair(ws, items, through_proxy=False)
        events.close()
        a_home, b_home = a.home, b.home
        a.stop()
        b.stop()
        chosen = random.Random(7).sample(ids, 2 * edits_each)
        a_ids, b_ids = chosen[:edits_each], chosen[edits_each:]
        edit_in_process(a_home, a_ids, "apart-a")
        edit_in_process(b_home, b_ids, "apart-b")
        a = ws.daemon(a_home)
        a.unlock()
        proxy = ws.proxy(a.address)
        expected = a.api("status")["revisions"] + edits_each
        started = time.perf_counter()
        b = ws.daemon(b_home, "--peer", f"{proxy.address[0]}:{proxy.address[1]}")
        wait_for(lambda: proxy.connections >= 1, 30, "the reconnection", interval=0.005)
        connected_at = time.perf_counter() - started
        wait_for(lambda: a.api("status")["revisions"] >= expected and b.api("status")["revisions"] >= expected,
                 120, "both sides to hold all edits", interval=0.01)
        done = time.perf_counter() - started
        time.sleep(0.5)
        b.unlock()
        for daemon, item_id, label in ((b, a_ids[0], "apart-a"), (a, b_ids[-1], "apart-b")):
            value = daemon.api("item.get", item=item_id)["fields"]["password"]
            assert value == f"{label}-{item_id[:8]}", "an edit made apart did not arrive"
        # the session on the wire: from the connection to its last byte (status polling, above,
        # is slower than the sync itself on 10,000 items: it adds up to ~0.1 s of its own)
        wire_s = proxy.last_byte_at - proxy.first_connection_at
        result = {"items": items, "edits": 2 * edits_each, "seconds_from_start": done,
                  "seconds_from_connection": done - connected_at, "wire_seconds": wire_s, "bytes": proxy.total,
                  "bytes_per_edit": proxy.total / (2 * edits_each)}
        print(f"  reconnect, {2 * edits_each} edits on {items:,} items: {wire_s * 1000:.0f} ms on the wire "
              f"(connection to last byte), {result['seconds_from_connection']:.3f} s until both statuses "
              f"showed them, {result['bytes']:,} bytes")
        return result


def full_mesh(ws: Workspace, devices: int, items: int, prefix: str) -> list[Daemon]:
    """``devices`` daemons in sync on ``items`` items, unlocked, every one connected to every other
    (each dials the ones started before it, with --peer)."""
    homes = [ws.home(f"{prefix}{n}") for n in range(devices)]
    create_vault(homes[0], items)
    for home in homes[1:]:
        enroll(homes[0], home)
    for home in homes[1:]:
        sync_in_process(homes[0], home)
    for home in homes[1:]:  # every member learns the whole roster
        sync_in_process(homes[0], home)
    daemons: list[Daemon] = []
    for home in homes:
        peers = [arg for d in daemons for arg in ("--peer", f"{d.address[0]}:{d.address[1]}")]
        daemons.append(ws.daemon(home, *peers))
    for daemon in daemons:
        daemon.unlock()
    wait_for(lambda: all(connected(d, devices - 1) for d in daemons), MESH_TIMEOUT, "a full mesh", interval=0.5)
    return daemons


def traffic(daemons: list[Daemon]) -> tuple[int, int]:
    """Sync sessions (each counted once, not once per side) and bytes sent on the member links, in
    total over ``daemons`` since they started (``status``'s ``sync``)."""
    counts = [d.api("status").get("sync", {"sessions": 0, "bytes_sent": 0}) for d in daemons]  # 0: an older daemon
    return sum(c["sessions"] for c in counts) // 2, sum(c["bytes_sent"] for c in counts)


def settled(daemons: list[Daemon], timeout: float = 10) -> tuple[int, int]:
    """Wait until no session has ended for 0.5 s (the last ones finish after the edit is visible);
    the traffic then."""
    before = traffic(daemons)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = traffic(daemons)
        if now == before:
            return now
        before = now
    return before


def edit_and_wait_all(source: Client, targets: list[tuple[Client, Events]], item_id: str, value: str,
                      timeout: float = 10) -> float:
    """Edit ``item_id`` through ``source``; seconds until the API of every target returns the new
    value. Each target is watched as its own app would: a thread waits for its ``items.changed``
    and asks its ``item.get`` on a connection kept open (one after another they would add up)."""
    for _, events in targets:
        events.drain()
    finished: list[float | None] = [None] * len(targets)

    def watch(n: int, client: Client, events: Events, deadline: float) -> None:
        while time.monotonic() < deadline:
            if client.call("item.get", item=item_id)["fields"]["password"] == value:
                finished[n] = time.perf_counter()
                return
            if not events.wait_changed(item_id, deadline):
                return

    started = time.perf_counter()
    source.call("item.edit", item=item_id, fields={"password": value})
    deadline = time.monotonic() + timeout
    watchers = [threading.Thread(target=watch, args=(n, client, events, deadline))
                for n, (client, events) in enumerate(targets)]
    for watcher in watchers:
        watcher.start()
    for watcher in watchers:
        watcher.join()
    if None in finished:
        raise RuntimeError(f"an edit did not arrive everywhere within {timeout} s")
    return max(finished) - started


def mesh(devices: int, items: int, rounds: int, keep: bool) -> dict:
    """One edit on a full mesh: time until every member returns it, and the sync sessions and
    bytes it costs in all (the ideal: one session from the author to each other member)."""
    with Workspace(keep) as ws:
        daemons = full_mesh(ws, devices, items, "m")
        clients = [Client(d.home.path / "run" / "api.sock", timeout=60) for d in daemons]
        targets = [(client, Events(d)) for client, d in zip(clients[1:], daemons[1:])]
        ids = [entry["id"] for entry in clients[0].call("item.list")]
        rng = random.Random(3)
        edit_and_wait_all(clients[0], targets, rng.choice(ids), "warm-up")
        sessions_before, bytes_before = settled(daemons)
        tick = os.sysconf("SC_CLK_TCK")
        latencies, sessions, sent, cpu = [], [], [], []
        for n in range(rounds):
            cpu_before = sum(_cpu_ticks(d.pid) for d in daemons)
            latency = edit_and_wait_all(clients[0], targets, rng.choice(ids), f"mesh-{n}-{random.getrandbits(32)}")
            latencies.append(latency * 1000)
            time.sleep(0.5)  # the sessions end (digests, done), nothing asked of the daemons meanwhile
            # the CPU the daemons spent on the edit, in all (with the item.get calls that watch it):
            # on two cores, half of it bounds the latency from below whatever else runs
            cpu.append((sum(_cpu_ticks(d.pid) for d in daemons) - cpu_before) * 1000 / tick)
            sessions_after, bytes_after = settled(daemons)
            sessions.append(sessions_after - sessions_before)
            sent.append(bytes_after - bytes_before)
            sessions_before, bytes_before = sessions_after, bytes_after
        for _, events in targets:
            events.close()
        for client in clients:
            client.close()
        result = {"devices": devices, "items": items, "rounds": rounds, "links": devices * (devices - 1) // 2,
                  "all_converged_ms": percentiles(latencies),
                  "sessions_per_edit": percentiles(sessions), "bytes_per_edit": percentiles(sent),
                  "daemons_cpu_ms_per_edit": percentiles(cpu),
                  "ideal_sessions_per_edit": devices - 1}
        print(f"  mesh of {devices}: all converged p50 {result['all_converged_ms']['p50']:.1f} ms, "
              f"max {result['all_converged_ms']['max']:.1f} ms; per edit {result['sessions_per_edit']['p50']:.0f} "
              f"sessions (ideal {devices - 1}), {result['bytes_per_edit']['p50']:,.0f} bytes, "
              f"{result['daemons_cpu_ms_per_edit']['p50']:.0f} ms of CPU in all daemons")
        return result


# --- idle -----------------------------------------------------------------------------------------

def _cpu_ticks(pid: int) -> int:
    """utime + stime of the process (all its threads), in clock ticks."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def _context_switches(pid: int) -> dict[str, tuple[int, int]]:
    """Voluntary and involuntary context switches of each live thread of the process, by thread id."""
    counts = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = dict(line.split(":", 1) for line in (task / "status").read_text().splitlines() if ":" in line)
            counts[task.name] = (int(fields["voluntary_ctxt_switches"]), int(fields["nonvoluntary_ctxt_switches"]))
        except (OSError, KeyError, ValueError):
            pass  # the thread ended meanwhile
    return counts


def _switches_since(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]) -> tuple[int, int, int]:
    """Voluntary and involuntary switches between two samples (a thread born meanwhile counts all
    of its own; one that ended meanwhile took its last ones along: counted as threads ended)."""
    voluntary = involuntary = 0
    for tid, (v, i) in after.items():
        v0, i0 = before.get(tid, (0, 0))
        voluntary, involuntary = voluntary + v - v0, involuntary + i - i0
    return voluntary, involuntary, len(set(before) - set(after))


def _threads(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/task").iterdir()))


def _what_wakes(pid: int, seconds: float) -> dict:
    """Every system call of the process's threads in ``seconds`` (``strace -f -tt``), if strace can
    attach. The event loop sleeps in epoll_wait with the time to its next timer as the timeout: each
    call's timeout says which timer woke it (trio's own: the idle lock, the audit log's flush...)."""
    strace = shutil.which("strace")
    if strace is None:
        return {"skipped": "strace is not installed"}
    process = subprocess.Popen([strace, "-f", "-tt", "-q", "-p", str(pid)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    time.sleep(seconds)
    process.send_signal(signal.SIGINT)
    try:
        _, trace = process.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        _, trace = process.communicate()
    calls: dict[str, int] = {}
    waits = []
    for line in trace.splitlines():
        match = re.match(r"(?:\[pid\s+\d+\] )?(\d\d:\d\d:\d\d\.\d+) (\w+)\((.*)", line)
        if match is None or "resumed>" in line:
            continue
        stamp, name, args = match.groups()
        calls[name] = calls.get(name, 0) + 1
        if name in ("epoll_wait", "epoll_pwait"):
            timeout = args.split(",")[3].split(")")[0].strip() if args.count(",") >= 3 else "?"
            waits.append({"at": stamp, "timeout_ms": timeout})
    if not calls and "attach" in trace:
        return {"skipped": f"strace could not attach: {trace.strip()[-300:]}"}
    return {"seconds": seconds, "syscalls": dict(sorted(calls.items(), key=lambda kv: -kv[1])), "epoll_waits": waits}


def idle(devices: int, seconds: float, keep: bool) -> dict:
    """An idle daemon: ``devices`` daemons connected to one another (mDNS off, --peer), unlocked,
    nothing happening. After they are quiet, each one's CPU time and wakeups over ``seconds``."""
    tick = os.sysconf("SC_CLK_TCK")
    with Workspace(keep) as ws:
        daemons = full_mesh(ws, devices, 100, "i")
        settled(daemons)
        # quiet: no daemon used a clock tick in the last 2 s (at most 30 s)
        deadline = time.monotonic() + 30
        last = [_cpu_ticks(d.pid) for d in daemons]
        quiet_since = time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - quiet_since < 2:
            time.sleep(0.5)
            now = [_cpu_ticks(d.pid) for d in daemons]
            if now != last:
                quiet_since, last = time.monotonic(), now
        start_cpu = [_cpu_ticks(d.pid) for d in daemons]
        start_switches = [_context_switches(d.pid) for d in daemons]
        started = time.monotonic()
        time.sleep(seconds)
        elapsed = time.monotonic() - started
        per_daemon = []
        for daemon, cpu, switches in zip(daemons, start_cpu, start_switches):
            voluntary, involuntary, ended = _switches_since(switches, _context_switches(daemon.pid))
            used = (_cpu_ticks(daemon.pid) - cpu) / tick
            per_daemon.append({"cpu_percent": 100 * used / elapsed,
                               "wakeups_per_s": (voluntary + involuntary) / elapsed,
                               "voluntary": voluntary, "involuntary": involuntary,
                               "threads": _threads(daemon.pid), "threads_ended": ended})
        wakes = _what_wakes(daemons[0].pid, min(20.0, seconds))
        result = {"devices": devices, "seconds": elapsed, "daemons": per_daemon,
                  "worst_cpu_percent": max(d["cpu_percent"] for d in per_daemon),
                  "worst_wakeups_per_s": max(d["wakeups_per_s"] for d in per_daemon),
                  "what_wakes_daemon_0": wakes}
        print(f"  idle, {devices} daemons connected, {elapsed:.0f} s: worst {result['worst_cpu_percent']:.2f}% "
              f"of a core, {result['worst_wakeups_per_s']:.2f} wakeups/s")
        if "syscalls" in wakes:
            top = ", ".join(f"{name} {count}" for name, count in list(wakes["syscalls"].items())[:6])
            print(f"    daemon 0's system calls in {wakes['seconds']:.0f} s (strace -f): {top or 'none'}")
            timeouts = ", ".join(f"{w['at']} ({w['timeout_ms']} ms)" for w in wakes["epoll_waits"][:12])
            print(f"    its event loop's waits (the timeout: time to its next timer): {timeouts or 'none'}")
        else:
            print(f"    what wakes it: {wakes['skipped']}")
        return result


def anchor(sizes: list[int], edits: int) -> dict:
    try:
        from anchor_syncthing import measure_syncthing
    except ImportError as exc:
        return {"skipped": f"bench/anchor_syncthing.py could not be imported: {exc}"}
    return {str(n): measure_syncthing(n, edits) for n in sizes}


# --- report ---------------------------------------------------------------------------------------

def report(results: dict) -> None:
    rows = []
    for items, r in results.get("propagation", {}).items():
        rows.append((f"propagation A->B, {int(items):,} items, {r['edits']} edits",
                     f"p50 {r['latency_ms']['p50']:.1f} ms, p95 {r['latency_ms']['p95']:.1f} ms, "
                     f"p99 {r['latency_ms']['p99']:.1f} ms", "p50 <= 4 ms, p99 <= 10 ms"))
    for items, r in results.get("wire", {}).items():
        rows.append((f"wire bytes for one edit, {int(items):,} items",
                     f"{r['bytes_per_edit']['p50']:,.0f} B (max {r['bytes_per_edit']['max']:,.0f})", "<= 2 KB"))
    for items, r in results.get("initial", {}).items():
        target = "<= 2 s" if int(items) <= 10_000 else "<= 8 s"
        rows.append((f"initial sync to a locked device, {int(items):,} items",
                     f"{r['seconds_from_connection']:.2f} s, {r['bytes'] / 1e6:.1f} MB, RSS "
                     f"{r['peak_rss_mib']['sender']:.0f}/{r['peak_rss_mib']['receiver']:.0f} MiB"
                     + (f", CPU {r['cpu_s']['sender']:.1f}/{r['cpu_s']['receiver']:.1f} s" if "cpu_s" in r else ""),
                     f"{target}, <= 150 MiB RSS each"))
        if api := r.get("sender_api_s"):
            after = r["receiver_after_sync_s"]
            rows.append((f"  {int(items):,} items: sender unlock / status / list / search",
                         f"{api['unlock']:.2f} / {api['first_status']:.2f} / {api['item_list']:.2f} / "
                         f"{api['item_search']:.2f} s", "unlock 0.5-1 s"))
            rows.append((f"  {int(items):,} items: new device unlock / first list",
                         f"{after['unlock']:.2f} / {after['first_item_list']:.2f} s", ""))
    if r := results.get("reconnect"):
        rows.append((f"reconnect after {r['edits'] // 2}+{r['edits'] // 2} edits, {r['items']:,} items",
                     f"{r['wire_seconds'] * 1000:.0f} ms on the wire ({r['seconds_from_connection'] * 1000:.0f} ms "
                     f"polled), {r['bytes']:,} B", ""))
    if r := results.get("mesh"):
        rows.append((f"mesh of {r['devices']}, one edit until all return it",
                     f"p50 {r['all_converged_ms']['p50']:.1f} ms, max {r['all_converged_ms']['max']:.1f} ms",
                     "p50 <= 50 ms"))
        rows.append((f"mesh of {r['devices']}, sessions and bytes per edit",
                     f"{r['sessions_per_edit']['p50']:.0f} sessions, {r['bytes_per_edit']['p50']:,.0f} B",
                     f"{r['ideal_sessions_per_edit']} sessions"))
    if r := results.get("idle"):
        rows.append((f"idle daemon, {r['devices'] - 1} peers connected, {r['seconds']:.0f} s",
                     f"{r['worst_cpu_percent']:.2f}% of a core, {r['worst_wakeups_per_s']:.2f} wakeups/s (worst)",
                     "< 0.5%, < 5/s"))
    for items, r in results.get("anchor", {}).items():
        if "skipped" in r:
            rows.append((f"Syncthing + KeePass, {items} entries", f"skipped: {r['skipped']}", ""))
            continue
        # both latencies count the local write: vaultpeer's from the edit call, Syncthing's from
        # the start of KeePass's save (the whole file re-encrypted) until B's file is identical
        rows.append((f"Syncthing + KeePass, {int(items):,} entries, one edit",
                     f"{r['since_save_start_s']['p50']:.2f} s, {r['bytes']['median']:,.0f} B "
                     f"(file {r['file_bytes']:,} B)", ""))
        ours_ms = results.get("propagation", {}).get(items, {}).get("latency_ms", {}).get("p50")
        ours_bytes = results.get("wire", {}).get(items, {}).get("bytes_per_edit", {}).get("p50")
        if ours_ms and ours_bytes:
            ratios = {"latency": r["since_save_start_s"]["p50"] * 1000 / ours_ms,
                      "bytes": r["bytes"]["median"] / ours_bytes}
            results.setdefault("ratios", {})[items] = ratios
            rows.append((f"  ratio Syncthing+KeePass / vaultpeer, {int(items):,}",
                         f"{ratios['latency']:,.0f}x slower, {ratios['bytes']:,.0f}x the bytes", ""))
    width = max(len(row[0]) for row in rows) if rows else 0
    print()
    for label, value, target in rows:
        print(f"{label:<{width}}  {value:<48} {target}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated scenarios to run")
    parser.add_argument("--items", type=int, nargs="+", default=[1_000, 10_000],
                        help="vault sizes for propagation, wire and the anchor")
    parser.add_argument("--initial", type=int, nargs="+", default=[10_000, 100_000],
                        help="vault sizes for the initial sync")
    parser.add_argument("--edits", type=int, default=200, help="edits timed per size (propagation)")
    parser.add_argument("--wire-edits", type=int, default=20)
    parser.add_argument("--anchor-edits", type=int, default=5, help="edits per size through Syncthing (~12 s each)")
    parser.add_argument("--mesh", type=int, default=10, help="daemons in the mesh")
    parser.add_argument("--idle-seconds", type=float, default=60.0, help="how long the idle daemons are watched")
    parser.add_argument("--keep", action="store_true", help="keep the homes and daemon logs")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="record the daemons of propagation and initial with py-spy; stacks and summaries go here")
    parser.add_argument("--json", type=Path, default=Path(__file__).resolve().parent / "results" / "sync.json")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = set(chosen) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}; choose from {', '.join(SCENARIOS)}")

    results: dict[str, object] = {"cpu_count": os.cpu_count(), "python": sys.version.split()[0],
                                  "when": time.strftime("%Y-%m-%d %H:%M:%S")}
    if "propagation" in chosen:
        results["propagation"] = propagation(args.items, args.edits, args.keep, args.profile)
    if "wire" in chosen:
        results["wire"] = wire(args.items, args.wire_edits, args.keep)
    if "initial" in chosen:
        results["initial"] = initial(args.initial, args.keep, args.profile)
    if "reconnect" in chosen:
        results["reconnect"] = reconnect(10_000, 100, args.keep)
    if "mesh" in chosen:
        results["mesh"] = mesh(args.mesh, 1_000, 20, args.keep)
    if "idle" in chosen:
        results["idle"] = idle(4, args.idle_seconds, args.keep)
    if "anchor" in chosen:
        results["anchor"] = anchor(args.items, args.anchor_edits)
    report(results)
    save_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
