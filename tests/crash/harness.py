"""Crash safety (issue 8): kill -9 a receiving daemon at random moments, restart it, and check
every time that nothing was lost. Prints a table and writes JSON; exits 1 at the first broken
property.

    .venv/bin/python tests/crash/harness.py                  # 25 + 25 kills, 5,000 items
    .venv/bin/python tests/crash/harness.py --kills 5 --items 1000 --seed 7 --keep

Phase 1, initial sync. Device A holds a vault of ``--items`` items; device B is enrolled (joined,
locked, empty) and receives it from A's daemon. B's daemon is killed with SIGKILL after a uniform
random delay in [0, w] from the moment its API answers, where w is how long an uninterrupted sync
(measured once, first) takes to store what B still lacks, plus its start-up. It is restarted until
it holds everything; then both daemons are stopped and the two stores compared (revision count,
state digest root, every signature), and the next round starts with a newly enrolled device. Only
kills that land before B holds everything count towards ``--kills``.

Phase 2, bursts of local writes. The last B, unlocked, adds and edits items through its local API
as fast as one client can, while A edits other items (so B also receives) and B pushes to A. A
write is acknowledged when the API call returned a result: its item id and value are recorded.
B is killed at a uniform random moment in [0, ``--burst``] s after its first acknowledged write,
restarted and unlocked, and every acknowledged write is read back with ``item.get``. (The one
call in flight at the kill may or may not have committed: either value is accepted.) At the end
A and B converge: A returns every write B acknowledged, B every write A acknowledged, and the
stores have identical digests.

After every kill, before the restart, B's database is opened read-only: ``PRAGMA
integrity_check`` is ok, the knowledge table agrees with the revisions, every item has a head, the
revisions held are a superset of those held after the previous kill (the count never goes down),
and every item B announced as stored (``items.changed``) is there.

Every daemon is a real ``vaultpeer daemon`` on 127.0.0.1 with ``--no-mdns``, peers given with
``--peer``; vaults use real Argon2id at the floor (bench/sync.py ``create_vault``). Every wait is
bounded; every daemon is stopped and the homes removed at the end (unless ``--keep``).
"""

import argparse
import os
import queue
import random
import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
for _path in (ROOT / "tests", ROOT / "bench"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from benchlib import save_json  # noqa: E402
from sync import Daemon, Events, Workspace, create_vault, enroll, wait_for  # noqa: E402
from vaultpeer.api import ApiError  # noqa: E402
from vaultpeer.client import Client, DaemonNotRunning  # noqa: E402
from vaultpeer.core.identity import DeviceId  # noqa: E402
from vaultpeer.service.home import Home  # noqa: E402
from vaultpeer.service.vault import Vault  # noqa: E402

#: The longest any one wait may take (a restart, a sync to completion, a writer to stop).
WAIT = 120.0


class CrashSafetyError(AssertionError):
    """A property the crash harness checks did not hold (raised at the first one)."""


@dataclass
class Figures:
    kills: int = 0
    restarts: int = 0
    integrity_checks: int = 0
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    def as_json(self) -> dict:
        return {"kills": self.kills, "restarts": self.restarts, "integrity_checks_passed": self.integrity_checks,
                "seconds": round(self.seconds, 1), **self.extra}


# --- the store, read-only, before anything restarts -----------------------------------------------

@dataclass
class StoreState:
    revisions: frozenset  # (author, seq) of every revision held
    items: frozenset      # hex ids of every item with a revision
    names: frozenset      # every revision held as the API names it ("ABCDEFG-12")


def inspect_store(home: Home, previous: StoreState | None, figures: Figures) -> StoreState:
    """Open ``home``'s database read-only, as the kill left it, and check it (CrashSafetyError)."""
    try:
        db = sqlite3.connect(f"file:{home.database}?mode=ro", uri=True, timeout=10)
        try:
            integrity = db.execute("PRAGMA integrity_check").fetchall()
            rows = db.execute("SELECT author, seq, item_id FROM revisions").fetchall()
            knowledge = dict(db.execute("SELECT author, seq FROM knowledge").fetchall())
            headless = db.execute("SELECT COUNT(DISTINCT item_id) FROM revisions "
                                  "WHERE item_id NOT IN (SELECT item_id FROM heads)").fetchone()[0]
        finally:
            db.close()
    except sqlite3.DatabaseError as exc:
        raise CrashSafetyError(f"the database does not open after a kill (integrity): {exc}") from None
    if integrity != [("ok",)]:
        raise CrashSafetyError(f"PRAGMA integrity_check after a kill: {integrity[:5]}")
    figures.integrity_checks += 1
    held: dict[bytes, set[int]] = {}
    for author, seq, _ in rows:
        held.setdefault(author, set()).add(seq)
    for author, seqs in held.items():
        count = knowledge.get(author, 0)
        if not (set(range(1, count + 1)) <= seqs and count + 1 not in seqs):
            raise CrashSafetyError("after a kill the knowledge table disagrees with the revisions held")
    if headless:
        raise CrashSafetyError(f"after a kill {headless} item(s) have revisions but no head")
    shorts = {author: DeviceId(author).short for author in held}
    state = StoreState(frozenset((author, seq) for author, seq, _ in rows), frozenset(row[2].hex() for row in rows),
                       frozenset(f"{shorts[author]}-{seq}" for author, seq, _ in rows))
    if previous is not None and not previous.revisions <= state.revisions:
        lost = len(previous.revisions - state.revisions)
        raise CrashSafetyError(f"{lost} revision(s) held after an earlier kill are gone "
                               f"(held {len(previous.revisions)}, now {len(state.revisions)})")
    return state


def kill(daemon: Daemon) -> None:
    daemon.process.kill()  # SIGKILL: no handler, no flush, no clean close
    daemon.process.wait(WAIT)


def compare_stores(a_home: Home, b_home: Home) -> int:
    """With both daemons stopped: same revisions, same state digest, every signature valid on B.
    Returns the revision count."""
    with Vault.open(a_home) as a, Vault.open(b_home) as b:
        counts = a.counts()["revisions"], b.counts()["revisions"]
        if counts[0] != counts[1]:
            raise CrashSafetyError(f"A holds {counts[0]} revisions and B {counts[1]} after sync")
        if a.state_digest().root != b.state_digest().root:
            raise CrashSafetyError("A and B hold as many revisions but their state digests differ")
        report = b.check()
        if not report.ok:
            raise CrashSafetyError(f"`check` on B after the kills: database ok {report.database_ok}, "
                                   f"{len(report.bad_signatures)} bad signature(s)")
        return counts[0]


def peer_arg(daemon: Daemon) -> list[str]:
    return ["--peer", f"{daemon.address[0]}:{daemon.address[1]}"]


def drain(events: Events) -> list[dict]:
    out = []
    while True:
        try:
            out.append(events.queue.get_nowait())
        except queue.Empty:
            return out


# --- phase 1: kills during the initial sync -------------------------------------------------------

def initial_sync_phase(ws: Workspace, a_home: Home, kills: int, rng: random.Random, figures: Figures,
                       deadline: float) -> Home:
    """Kill receiving devices during their initial sync until ``kills`` landed before the end;
    returns the home of the last device, in sync with A (both daemons stopped)."""
    started = time.monotonic()
    with Vault.open(a_home) as a:
        total = a.counts()["revisions"]
    rounds, converged, early, partial, late, resumed_exactly = 0, 0, 0, 0, 0, 0
    announced_checked = 0

    def new_device() -> Home:
        home = ws.home(f"b{rounds}")
        enroll(a_home, home)
        return home

    # calibration: one uninterrupted initial sync, timed from the moment the API answers
    b_home = new_device()
    a = ws.daemon(a_home)
    b = ws.daemon(b_home, *peer_arg(a))
    events = Events(b)
    t0 = time.monotonic()
    # timed by B's own events, not by asking its status (which would slow it down)
    first = wait_for(lambda: _progress_at(events, b, 1), WAIT, "the first batch of the calibration sync")
    done = wait_for(lambda: _progress_at(events, b, total), WAIT, "the calibration sync")
    first_s, transfer_s = first - t0, done - first
    if b.api("status")["revisions"] < total:
        raise CrashSafetyError("B reported the whole vault received but does not hold it")
    events.close()
    b.stop()
    a.stop()
    compare_stores(a_home, b_home)
    figures.extra.update(uninterrupted_sync_s=round(first_s + transfer_s, 3), first_batch_s=round(first_s, 3))

    while figures.kills < kills:
        rounds += 1
        b_home = new_device()
        a = ws.daemon(a_home)
        state: StoreState | None = None
        while True:
            if time.monotonic() > deadline:
                raise CrashSafetyError("the initial-sync phase ran out of time")
            held = len(state.revisions) if state else 0
            b = ws.daemon(b_home, *peer_arg(a))
            figures.restarts += 1
            events = Events(b)
            t0 = time.monotonic()
            if held >= total or figures.kills >= kills:
                break  # B holds everything, or enough kills: let this life finish the sync
            window = first_s + transfer_s * (total - held) / total
            time.sleep(max(0.0, rng.uniform(0, window) - (time.monotonic() - t0)))
            kill(b)
            seen = drain(events)
            events.close()
            state = inspect_store(b_home, state, figures)
            announced = {i for e in seen if e.get("type") == "items.changed" for i in e["items"]}
            if not announced <= state.items:
                raise CrashSafetyError(f"{len(announced - state.items)} item(s) B announced as stored are "
                                       "missing after the kill")
            announced_checked += len(announced)
            progress = [e for e in seen if e.get("type") == "sync.progress"]
            if progress:
                # this life's first session knew what the last life had stored: it never starts over
                if progress[0]["expected"] > total - held:
                    raise CrashSafetyError(f"after a restart B expected {progress[0]['expected']} revisions "
                                           f"but lacked only {total - held}: the sync did not resume")
                resumed_exactly += progress[0]["expected"] == total - held
            if len(state.revisions) >= total:
                late += 1  # B had everything when it died: not a kill during the sync
                continue
            figures.kills += 1
            if len(state.revisions) == held:
                early += 1
            else:
                partial += 1
        wait_for(lambda: b.api("status")["revisions"] >= total, WAIT, "the initial sync to complete after the kills",
                 interval=0.05)
        events.close()
        b.stop()
        a.stop()
        compare_stores(a_home, b_home)
        converged += 1
    figures.seconds = time.monotonic() - started
    figures.extra.update(
        items=total, rounds=rounds, kills_before_first_batch_stored=early, kills_mid_transfer=partial,
        kills_after_complete_not_counted=late, sessions_resumed_exactly_where_stopped=resumed_exactly,
        announced_items_checked=announced_checked, converged_rounds=converged,
    )
    return b_home


def _progress_at(events: Events, daemon: Daemon, count: int) -> float | None:
    """When B said it holds ``count`` revisions (its events; its status, if it said so before the
    subscription or the event was missed), or None while it does not."""
    try:
        event = events.queue.get(timeout=0.2)
    except queue.Empty:
        event = None
    if event is None:
        return time.monotonic() if daemon.api("status")["revisions"] >= count else None
    if event.get("type") == "sync.progress" and event["received"] >= min(count, event["expected"]):
        return time.monotonic()
    return None


# --- phase 2: kills during bursts of local writes -------------------------------------------------

class Writer(threading.Thread):
    """Adds and edits items through one daemon's API as fast as it answers. A write is recorded in
    ``acked`` (item id -> password) and ``revisions`` (the revision it wrote) only once its call
    returned; the call in flight when the daemon died is left in ``in_flight``."""

    def __init__(self, daemon: Daemon, label: str, pool: list[str], acked: dict[str, str],
                 rng: random.Random, *, pause: float = 0.0, adds: bool = True):
        super().__init__(daemon=True)
        self.revisions: list[str] = []
        self.socket = daemon.home.path / "run" / "api.sock"
        self.label, self.pool, self.acked, self.pause, self.adds = label, pool, acked, pause, adds
        self.rng = random.Random(rng.random())
        self.stopping = threading.Event()
        self.killing = threading.Event()  # set just before the daemon is killed: errors expected
        self.count = 0  # calls made
        self.acks = 0   # calls that returned
        self.in_flight: tuple[str | None, str, str] | None = None  # (item id or None for an add, title, value)
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with Client(self.socket, timeout=30) as client:
                while not self.stopping.is_set():
                    self.count += 1
                    value = f"{self.label}-{self.count}-{self.rng.getrandbits(48):012x}"
                    if self.adds and (not self.pool or self.rng.random() < 0.4):
                        self.in_flight = (None, value, value)
                        result = client.call("item.add", title=value, fields={"username": self.label,
                                                                              "password": value})
                        self.pool.append(result["id"])
                    else:
                        item_id = self.rng.choice(self.pool)
                        self.in_flight = (item_id, "", value)
                        result = client.call("item.edit", item=item_id, fields={"password": value})
                    self.acked[result["id"]] = value
                    self.revisions.append(result["revision"])
                    self.acks += 1
                    self.in_flight = None
                    if self.pause:
                        self.stopping.wait(self.pause)
        except (ApiError, OSError, ValueError, DaemonNotRunning) as exc:
            if not self.killing.is_set():  # the daemon was not being killed: a real failure
                self.error = exc

    def stop(self) -> None:
        self.stopping.set()
        self.join(WAIT)
        if self.is_alive():
            raise CrashSafetyError(f"writer {self.label} did not stop")
        if self.error is not None:
            raise CrashSafetyError(f"writer {self.label} failed while its daemon ran: {self.error!r}")


def verify_acked(daemon: Daemon, acked: dict[str, str], in_flight: tuple | None) -> tuple[int, str | None]:
    """Every acknowledged write reads back with its value; the write in flight at the kill may
    have committed or not. Returns (writes checked, what became of the write in flight)."""
    outcome = None
    with Client(daemon.home.path / "run" / "api.sock", timeout=WAIT) as client:
        if in_flight is not None and in_flight[0] is None:  # an add: did it commit?
            titles = {e["title"]: e["id"] for e in client.call("item.list")}
            if (item_id := titles.get(in_flight[1])) is not None:
                acked[item_id] = in_flight[2]
                outcome = "committed"
            else:
                outcome = "not committed"
        for item_id, value in acked.items():
            try:
                got = client.call("item.get", item=item_id)["fields"].get("password")
            except ApiError as exc:
                raise CrashSafetyError(f"an acknowledged write is gone after a kill: item.get {item_id[:8]}: "
                                       f"{exc.message}") from None
            if got == value:
                continue
            if in_flight is not None and in_flight[0] == item_id and got == in_flight[2]:
                acked[item_id] = got  # the edit in flight committed before the kill
                outcome = "committed"
                continue
            raise CrashSafetyError(f"an acknowledged write is lost after a kill: item {item_id[:8]} does not "
                                   "hold the value its last acknowledged edit wrote")
        if in_flight is not None and in_flight[0] is not None and outcome is None:
            outcome = "not committed"
    return len(acked), outcome


class Tamper:
    """A seam for the harness's own test: damage B's store around a kill (the real run has none)."""

    def before_burst(self, home: Home) -> None: ...

    def after_kill(self, home: Home) -> None: ...


def local_writes_phase(ws: Workspace, a_home: Home, b_home: Home, kills: int, rng: random.Random, figures: Figures,
                       deadline: float, *, burst: float = 1.0, tamper: Tamper | None = None) -> None:
    """Kill B ``kills`` times during bursts of its own writes; check them all after each restart,
    then that A and B converge with every acknowledged write on both."""
    started = time.monotonic()
    a = ws.daemon(a_home)
    a.unlock()
    b = ws.daemon(b_home, *peer_arg(a))
    b.unlock()
    ids = [entry["id"] for entry in b.api("item.list")]
    rng.shuffle(ids)
    a_acked: dict[str, str] = {}
    b_acked: dict[str, str] = {}
    b_pool = ids[: len(ids) // 2]
    a_writer = Writer(a, "a", ids[len(ids) // 2:], a_acked, rng, pause=0.02, adds=False)
    a_writer.start()
    state: StoreState | None = None
    acked_revisions: set[str] = set()
    checked, acked_total, outcomes = 0, 0, {"committed": 0, "not committed": 0}
    found_in_file = 0
    try:
        for n in range(kills):
            if time.monotonic() > deadline:
                raise CrashSafetyError("the local-writes phase ran out of time")
            if tamper:
                tamper.before_burst(b_home)
            writer = Writer(b, f"b{n}", b_pool, b_acked, rng)
            writer.start()
            wait_for(lambda: writer.acks or not writer.is_alive(), WAIT, "the first acknowledged write of a burst",
                     interval=0.005)
            time.sleep(rng.uniform(0, burst))
            writer.killing.set()
            kill(b)
            writer.stop()
            figures.kills += 1
            acked_total += writer.acks
            if tamper:
                tamper.after_kill(b_home)
            state = inspect_store(b_home, state, figures)
            # in the file as the kill left it: before B restarts, and so before A could send any back
            acked_revisions.update(writer.revisions)
            if missing := acked_revisions - state.names:
                raise CrashSafetyError(f"{len(missing)} acknowledged write(s) of B are not in its database after "
                                       f"a kill (e.g. revision {sorted(missing)[0]})")
            found_in_file += len(acked_revisions)
            b = ws.daemon(b_home, *peer_arg(a))
            figures.restarts += 1
            b.unlock()
            count, outcome = verify_acked(b, b_acked, writer.in_flight)
            checked += count
            if outcome:
                outcomes[outcome] += 1
        a_writer.stop()
    finally:
        a_writer.stopping.set()

    def converged() -> bool:
        a_status, b_status = a.api("status"), b.api("status")
        return a_status["revisions"] == b_status["revisions"] and not a_status["conflicts"]

    wait_for(converged, WAIT, "A and B to converge after the kills", interval=0.1)
    time.sleep(0.5)
    wait_for(converged, WAIT, "A and B to stay converged", interval=0.1)
    on_a, _ = verify_acked(a, dict(b_acked), None)
    on_b, _ = verify_acked(b, dict(a_acked), None)
    b.stop()
    a.stop()
    revisions = compare_stores(a_home, b_home)
    figures.seconds = time.monotonic() - started
    figures.extra.update(
        acknowledged_writes=acked_total, items_written=len(b_acked), acknowledged_reads_checked=checked,
        acknowledged_revisions_found_in_file=found_in_file,
        in_flight_writes=outcomes, b_writes_verified_on_a=on_a, a_writes_verified_on_b=on_b,
        a_writes_during_phase=len(a_acked), revisions_at_end=revisions,
    )


# --- the whole run --------------------------------------------------------------------------------

def run(*, items: int, initial_kills: int, write_kills: int, seed: int, burst: float = 1.0, keep: bool = False,
        timeout: float = 3600.0, log: Callable[[str], None] = print) -> dict:
    """Both phases; returns the figures, or raises CrashSafetyError at the first broken property."""
    rng = random.Random(seed)
    deadline = time.monotonic() + timeout
    results: dict = {"seed": seed, "items": items, "cpu_count": os.cpu_count(), "python": sys.version.split()[0],
                     "when": time.strftime("%Y-%m-%d %H:%M:%S")}
    log(f"seed {seed}")
    with Workspace(keep) as ws:
        try:
            a_home = ws.home("a")
            log(f"building a vault of {items:,} items (real Argon2id at the floor)")
            create_vault(a_home, items)
            phase1 = Figures()
            log(f"phase 1: {initial_kills} kills during initial syncs")
            b_home = initial_sync_phase(ws, a_home, initial_kills, rng, phase1, deadline)
            results["initial_sync"] = phase1.as_json()
            log(f"  {phase1.kills} kills survived in {phase1.seconds:.0f} s")
            phase2 = Figures()
            log(f"phase 2: {write_kills} kills during bursts of local writes")
            local_writes_phase(ws, a_home, b_home, write_kills, rng, phase2, deadline, burst=burst)
            results["local_writes"] = phase2.as_json()
            log(f"  {phase2.kills} kills survived in {phase2.seconds:.0f} s")
        except BaseException:
            for daemon in ws.daemons[-4:]:
                log(f"--- {daemon.log_path.name} (tail)\n{daemon.log_path.read_text()[-1500:]}")
            raise
    results["total"] = {
        "kills": phase1.kills + phase2.kills,
        "kills_all": phase1.kills + phase1.extra["kills_after_complete_not_counted"] + phase2.kills,
        "restarts": phase1.restarts + phase2.restarts,
        "integrity_checks_passed": phase1.integrity_checks + phase2.integrity_checks,
        "seconds": round(phase1.seconds + phase2.seconds, 1),
    }
    return results


def report(results: dict) -> None:
    p1, p2, total = results["initial_sync"], results["local_writes"], results["total"]
    rows = [
        ("vault", f"{results['items']:,} items; an uninterrupted initial sync takes {p1['uninterrupted_sync_s']:.2f} s"),
        ("phase 1: kills during initial sync", f"{p1['kills']} survived in {p1['rounds']} rounds "
         f"({p1['kills_mid_transfer']} mid-transfer, {p1['kills_before_first_batch_stored']} before the first "
         f"batch was stored; {p1['kills_after_complete_not_counted']} more, not counted, after it completed)"),
        ("  restarts / integrity checks ok", f"{p1['restarts']} / {p1['integrity_checks_passed']}"),
        ("  announced items found after kills", f"{p1['announced_items_checked']:,} (summed over kills)"),
        ("  sessions resumed where they stopped", f"{p1['sessions_resumed_exactly_where_stopped']}"),
        ("  rounds converged (count, digest, signatures)", f"{p1['converged_rounds']} of {p1['rounds']}"),
        ("phase 2: kills during local writes", f"{p2['kills']} survived"),
        ("  restarts / integrity checks ok", f"{p2['restarts']} / {p2['integrity_checks_passed']}"),
        ("  acknowledged writes", f"{p2['acknowledged_writes']:,} on {p2['items_written']:,} items"),
        ("  checked after the kills", f"{p2['acknowledged_revisions_found_in_file']:,} revisions found in the file "
         f"before restart, {p2['acknowledged_reads_checked']:,} values read back after"),
        ("  write in flight at the kill", f"{p2['in_flight_writes']['committed']} committed, "
         f"{p2['in_flight_writes']['not committed']} not"),
        ("  converged with A", f"{p2['b_writes_verified_on_a']:,} of B's writes on A, {p2['a_writes_verified_on_b']:,} "
         f"of A's on B, {p2['revisions_at_end']:,} revisions, same digest"),
        ("total", f"{total['kills']} kills counted ({total['kills_all']} in all), {total['restarts']} restarts, "
         f"{total['integrity_checks_passed']} integrity checks passed, {total['seconds']:.0f} s"),
    ]
    width = max(len(label) for label, _ in rows)
    print()
    for label, value in rows:
        print(f"{label:<{width}}  {value}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=5_000, help="items in A's vault (default 5,000)")
    parser.add_argument("--kills", type=int, default=25, help="kills in each phase (default 25)")
    parser.add_argument("--burst", type=float, default=1.0,
                        help="phase 2 kills land up to this many seconds into a burst (default 1)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: random, printed)")
    parser.add_argument("--timeout", type=float, default=3600.0, help="give up after this many seconds")
    parser.add_argument("--keep", action="store_true", help="keep the homes and daemon logs")
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "crash.json")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    try:
        results = run(items=args.items, initial_kills=args.kills, write_kills=args.kills, seed=seed,
                      burst=args.burst, keep=args.keep, timeout=args.timeout)
    except CrashSafetyError as exc:
        print(f"FAILED (seed {seed}): {exc}", file=sys.stderr)
        return 1
    report(results)
    save_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
