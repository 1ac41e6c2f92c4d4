"""Measure how long a member link takes to come up: from the moment a daemon starts dialling a known
member (before the TCP connect) until the first sync message from that member has arrived over the
new authenticated link. Prints a table and writes JSON.

    .venv/bin/python bench/link_setup.py            # 200 link setups, about 2 s on 2 cores
    .venv/bin/python bench/link_setup.py --rounds 1000 --items 10000

Figures (all from one run, in ms: p50, p90, p99, mean, max):

- ``dial_to_first_message``: dial start until the member's first sync message (its hello) has been
  read and decrypted by the dialer. It is the sum of the three below.
- ``tcp_connect``: dial start until the TCP connection is open.
- ``handshake``: the handshake alone, TCP connected until the stream is authenticated.
- ``after_handshake``: authenticated until the member's first sync message arrives (the member
  admits the link and sends its hello).

Two real daemons (``vaultpeer.io.daemon.Daemon``) run in this process, in one ``trio.run``: real
loopback TCP on 127.0.0.1, real Noise, real SQLite in a temporary directory, real Argon2id at the
``--quick-kdf`` floor, mDNS off, no static peers. The vault (``--items`` items) is created, the
second device enrolled and the two brought in sync in-process with the same calls pairing makes
(bench/benchlib.py), and both daemons are unlocked. Each round, A dials B by calling
``Dialer.dial_member`` directly (no dial loop: no backoff or jitter is counted), reads the stamps
the daemon takes itself (``vaultpeer.io.link.LinkTimes``, handed over by
``Daemon.on_first_message``), then closes the link and waits until both daemons have let it go, so
that every dial finds B idle. The first ``--warmup`` rounds are not counted; every wait is bounded.

Both daemons share one thread, so a figure adds up the work of both sides, and loopback has next to
no round-trip time: a handshake of fewer messages gains here their processing, not the round trips
a real network adds. Compare handshakes by ``dial_to_first_message``: where the split between
``handshake`` and ``after_handshake`` falls depends on which side finishes its handshake last.

Nothing here touches the handshake: the bench uses ``Dialer.dial_member``, ``Daemon.links``,
``Daemon.on_first_message``, ``Link.times``, ``Link.close`` and ``Link.closed``, so it measures
any handshake the same way as long as the daemon keeps stamping ``LinkTimes`` where it does now.
"""

import argparse
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trio

from benchlib import PASSWORD, create_vault, enroll, percentiles, save_json, sync_in_process
from vaultpeer.core.discovery import PeerSeen
from vaultpeer.service.home import Home
from vaultpeer.io.daemon import Daemon, DaemonOptions
from vaultpeer.io.link import Link, LinkTimes
from vaultpeer.io.transports import Address

#: One round: the dial, the first message, and both daemons letting the link go.
ROUND_TIMEOUT = 10.0
#: Starting a daemon (its listener bound).
START_TIMEOUT = 10.0
FIGURES = {
    "dial_to_first_message": ("dial -> first sync message", lambda t: t.first_message - t.dialled),
    "tcp_connect": ("  TCP connect", lambda t: t.connected - t.dialled),
    "handshake": ("  handshake (connected -> authenticated)", lambda t: t.authenticated - t.connected),
    "after_handshake": ("  authenticated -> first sync message", lambda t: t.first_message - t.authenticated),
}


async def measure(root: Path, items: int, rounds: int, warmup: int) -> list[LinkTimes]:
    """Run two daemons and ``warmup + rounds`` link setups from A to B; the stamps of the counted ones."""
    a_home, b_home = Home(root / "a"), Home(root / "b")
    create_vault(a_home, items)
    enroll(a_home, b_home)
    sync_in_process(a_home, b_home)
    a, b = (Daemon(home, DaemonOptions(listen=("127.0.0.1", 0), mdns=False)) for home in (a_home, b_home))
    for daemon in (a, b):
        daemon.vault.unlock(PASSWORD)
    arrived_send, arrived = trio.open_memory_channel(math.inf)
    a.on_first_message.append(arrived_send.send_nowait)
    times: list[LinkTimes] = []
    async with trio.open_nursery() as nursery:
        with trio.fail_after(START_TIMEOUT):
            await nursery.start(a.run)
            await nursery.start(b.run)
        address = b.listen_address
        for n in range(warmup + rounds):
            with trio.fail_after(ROUND_TIMEOUT):
                nursery.start_soon(dial, a, address, b.vault.device.public.noise_public)
                link: Link = await arrived.receive()
                b_link = b.links[a.device_id]  # it sent that message, so it is there
                link.close()
                await link.closed.wait()
                await b_link.closed.wait()
            if link.times.dialled is None:
                raise RuntimeError("the first message came over a link A did not dial")
            if n >= warmup:
                times.append(link.times)
        nursery.cancel_scope.cancel()
    return times


async def dial(daemon: Daemon, address: Address, key: bytes) -> None:
    """One dial, run until the link ends; a dial that never got a sync message fails the run. The
    address comes with the member's key, as a name found by mDNS does (Noise IK needs it)."""
    link = await daemon.dialer.dial_member(PeerSeen(f"bench:{address}", address, False, "static", key))
    if link is None or link.times.first_message is None:
        raise RuntimeError(f"dialling {address} ended without a sync message")


def summarise(times: list[LinkTimes]) -> dict[str, dict[str, float]]:
    return {name: percentiles([part(t) * 1000 for t in times], points=(50, 90, 99))
            for name, (_, part) in FIGURES.items()}


def report(results: dict) -> None:
    print(f"\nlink setup, {results['rounds']} rounds (after {results['warmup']} warm-up), "
          f"{results['items']:,} items, {results['cpu_count']} CPUs, Python {results['python']}")
    width = max(len(label) for label, _ in FIGURES.values())
    columns = ("p50", "p90", "p99", "mean", "max")
    print(f"{'ms':<{width}}" + "".join(f"{c:>9}" for c in columns))
    for name, (label, _) in FIGURES.items():
        figures = results[name]
        print(f"{label:<{width}}" + "".join(f"{figures[c]:>9.2f}" for c in columns))


def commit() -> str | None:
    """The commit measured, to tell runs before and after a change apart."""
    try:
        return subprocess.run(["git", "describe", "--always", "--dirty"], cwd=Path(__file__).resolve().parent,
                              capture_output=True, text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.TimeoutExpired):
        return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=200, help="link setups counted")
    parser.add_argument("--warmup", type=int, default=10, help="link setups run first and not counted")
    parser.add_argument("--items", type=int, default=1_000, help="items in the vault")
    parser.add_argument("--keep", action="store_true", help="keep the homes")
    parser.add_argument("--json", type=Path, default=Path(__file__).resolve().parent / "results" / "link_setup.json")
    args = parser.parse_args()
    if args.rounds < 1 or args.warmup < 0:
        parser.error("--rounds must be at least 1 and --warmup at least 0")
    sys.stdout.reconfigure(line_buffering=True)

    root = Path(tempfile.mkdtemp(prefix="vp-bench-", dir="/tmp"))  # short: Unix socket paths are limited
    try:
        times = trio.run(measure, root, args.items, args.rounds, args.warmup)
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    results: dict[str, object] = {"rounds": args.rounds, "warmup": args.warmup, "items": args.items,
                                  "cpu_count": os.cpu_count(), "python": sys.version.split()[0],
                                  "commit": commit(), "when": time.strftime("%Y-%m-%d %H:%M:%S"),
                                  **summarise(times)}
    report(results)
    save_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
