"""Measure what users feel when their devices sync: real daemons on loopback, driven through their
local APIs. Prints a table and writes JSON.

    bash bench/setup                          # once: the venv, and Syncthing for the anchor
    .venv/bin/python bench/sync.py            # everything (about 10 minutes on 2 cores)
    .venv/bin/python bench/sync.py --only propagation,wire --items 1000

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
  seconds until both return all 200 edits, and bytes.
- ``mesh``: ten daemons, one edit, time until all ten return it (20 rounds).
- ``anchor``: the same one-edit workload on a .kdbx synced by two Syncthing instances in a
  network namespace with only loopback (bench/anchor_syncthing.py); skipped with the reason when
  Syncthing or namespaces are unavailable.

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
from vaultpeer.client import Client, DaemonNotRunning
from vaultpeer.service.home import Home
from vaultpeer.service.vault import Vault

SCENARIOS = ("propagation", "wire", "initial", "reconnect", "mesh", "anchor")


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


def propagation(sizes: list[int], edits: int, keep: bool) -> dict:
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


def initial(sizes: list[int], keep: bool) -> dict:
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
            started = time.perf_counter()
            c = ws.daemon(c_home, "--peer", f"{proxy.address[0]}:{proxy.address[1]}")
            daemon_up = time.perf_counter() - started
            c_events = Events(c)
            wait_for(lambda: proxy.connections >= 1, 30, "the new device to connect", interval=0.005)
            connected_at = time.perf_counter() - started
            wait_for(lambda: progress_reached(c_events, c, expected), 600, "the initial sync", interval=0)
            done = time.perf_counter() - started
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
                "bytes": proxy.total, "locked": status["locked"],
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
                  f"{r['peak_rss_mib']['sender']:.0f} / {r['peak_rss_mib']['receiver']:.0f} MiB")
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
        result = {"items": items, "edits": 2 * edits_each, "seconds_from_start": done,
                  "seconds_from_connection": done - connected_at, "bytes": proxy.total,
                  "bytes_per_edit": proxy.total / (2 * edits_each)}
        print(f"  reconnect, {2 * edits_each} edits on {items:,} items: {result['seconds_from_connection']:.3f} s "
              f"from connection, {result['bytes']:,} bytes")
        return result


def mesh(devices: int, items: int, rounds: int, keep: bool) -> dict:
    with Workspace(keep) as ws:
        homes = [ws.home(f"m{n}") for n in range(devices)]
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
        wait_for(lambda: all(connected(d, devices - 1) for d in daemons), 60, "a full mesh", interval=0.2)
        subscriptions = [(d, Events(d)) for d in daemons[1:]]
        ids = [entry["id"] for entry in daemons[0].api("item.list")]
        rng = random.Random(3)
        edit_and_wait(daemons[0], subscriptions, rng.choice(ids), "warm-up")
        latencies = []
        for n in range(rounds):
            latency, _ = edit_and_wait(daemons[0], subscriptions, rng.choice(ids), f"mesh-{n}-{random.getrandbits(32)}")
            latencies.append(latency * 1000)
            time.sleep(0.05)
        for _, events in subscriptions:
            events.close()
        result = {"devices": devices, "items": items, "rounds": rounds, "links": devices * (devices - 1) // 2,
                  "all_converged_ms": percentiles(latencies)}
        print(f"  mesh of {devices}: all converged p50 {result['all_converged_ms']['p50']:.1f} ms, "
              f"max {result['all_converged_ms']['max']:.1f} ms")
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
                     f"{r['peak_rss_mib']['sender']:.0f}/{r['peak_rss_mib']['receiver']:.0f} MiB",
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
                     f"{r['seconds_from_connection'] * 1000:.0f} ms, {r['bytes']:,} B", ""))
    if r := results.get("mesh"):
        rows.append((f"mesh of {r['devices']}, one edit until all return it",
                     f"p50 {r['all_converged_ms']['p50']:.1f} ms, max {r['all_converged_ms']['max']:.1f} ms",
                     "<= 500 ms"))
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
    parser.add_argument("--keep", action="store_true", help="keep the homes and daemon logs")
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
        results["propagation"] = propagation(args.items, args.edits, args.keep)
    if "wire" in chosen:
        results["wire"] = wire(args.items, args.wire_edits, args.keep)
    if "initial" in chosen:
        results["initial"] = initial(args.initial, args.keep)
    if "reconnect" in chosen:
        results["reconnect"] = reconnect(10_000, 100, args.keep)
    if "mesh" in chosen:
        results["mesh"] = mesh(args.mesh, 1_000, 20, args.keep)
    if "anchor" in chosen:
        results["anchor"] = anchor(args.items, args.anchor_edits)
    report(results)
    save_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
