"""Measure the reconciler: revisions applied and merged per second, bytes for one edit, and the
time to work out what to send for a large vault. Prints a table and writes JSON.

    .venv/bin/python bench/reconcile.py [--items 10000] [--big 100000] [--json bench/results/reconcile.json]

Sync runs through the real session state machine and the real SQLite store (in memory), with
messages passed directly between the two sides: no network. Byte counts are the sync messages
themselves (the transport's framing and encryption come with the daemon).
"""

import argparse
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from benchlib import save_json, timed  # noqa: E402
from helpers import make_replicas, sync_pair  # noqa: E402
from vaultpeer.core.vclock import VersionVector  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--big", type=int, default=100_000)
    parser.add_argument("--json", type=Path, default=Path("bench/results/reconcile.json"))
    args = parser.parse_args()
    results: dict[str, object] = {"items": args.items, "big": args.big}

    from helpers import PASSWORD

    a, b, fresh = make_replicas(3)
    for n in range(args.items):
        a.add(f"item {n:06d}", {"username": f"user{n}@example.org", "password": f"password-{n}",
                                "url": f"https://site{n}.example.org"})
    b.lock()
    seconds, (left, right) = timed(lambda: sync_pair(a, b))
    results["initial_sync_locked"] = {"seconds": seconds, "revisions_per_s": args.items / seconds,
                                      "bytes": left.stats.bytes_sent + right.stats.bytes_sent}
    # an unlocked receiver test-opens every revision as it arrives (junk is quarantined at once);
    # a locked one does it at its next unlock
    seconds, _ = timed(lambda: sync_pair(a, fresh))
    results["initial_sync_unlocked"] = {"seconds": seconds, "revisions_per_s": args.items / seconds}
    seconds, _ = timed(lambda: b.unlock(PASSWORD))
    results["unlock_after_locked_initial_sync"] = {"seconds": seconds,
                                                   "note": "the key derivation is the test-only KDF here"}
    c = make_replicas(1)[0]
    c.lock()

    # one edit, then a sync: what crosses between two converged devices
    views = a.list_items()
    a.edit(str(views[123].id), {"password": "one edit"})
    left, right = sync_pair(a, b)
    results["one_edit"] = {
        "revisions": left.stats.revisions_sent,
        "bytes_a_to_b": left.stats.bytes_sent,
        "bytes_b_to_a": right.stats.bytes_sent,
        "bytes_total": left.stats.bytes_sent + right.stats.bytes_sent,
        "messages": left.stats.messages_sent + right.stats.messages_sent,
    }
    revision = next(iter(a._store.revisions_after(b.knowledge().__class__({}))))
    results["revision_record_bytes"] = len(revision.to_bytes())

    # concurrent edits to different fields of the same items on both sides, then merge
    rng = random.Random(1)
    chosen = rng.sample(views, 1000)
    for view in chosen:
        a.edit(str(view.id), {"username": "changed on a"})
        b.edit(str(view.id), {"url": "https://changed-on-b.example.org"})
    seconds, (left, right) = timed(lambda: sync_pair(a, b, merge=False))
    results["apply_unlocked"] = {"revisions": left.stats.revisions_sent + right.stats.revisions_sent,
                                 "seconds": seconds,
                                 "revisions_per_s": (left.stats.revisions_sent + right.stats.revisions_sent) / seconds}
    seconds, merged = timed(lambda: a.merge_pending())
    results["merge"] = {"items": len(merged), "seconds": seconds, "merges_per_s": len(merged) / seconds}

    # what to send: a vault of --big items, for a new device (everything) and for a peer missing 100
    big, _ = make_replicas(2)
    for n in range(args.big):
        big.add(f"item {n}", {"password": str(n)})
    everything, revisions = timed(lambda: list(big.revisions_missing_from(VersionVector())))
    knowledge = big.knowledge()
    for n in range(100):
        big.add(f"late {n}", {})
    missing_100, late = timed(lambda: list(big.revisions_missing_from(knowledge)))
    digest_s, _ = timed(lambda: big.state_digest())
    results["what_to_send"] = {"vault_items": args.big, "everything_s": everything, "everything_count": len(revisions),
                               "missing_100_s": missing_100, "missing_100_count": len(late),
                               "state_digest_s": digest_s}

    print_table(results)
    save_json(args.json, results)
    return 0


def print_table(r: dict) -> None:
    print(f"reconciler, {r['items']} items")
    s = r["initial_sync_locked"]
    print(f"  initial sync to a locked device      {s['seconds']:.2f} s  ({s['revisions_per_s']:.0f} revisions/s applied, "
          f"{s['bytes'] / 1e6:.1f} MB of messages)")
    s = r["initial_sync_unlocked"]
    print(f"  initial sync to an unlocked device    {s['seconds']:.2f} s  ({s['revisions_per_s']:.0f} revisions/s, "
          "each test-opened on arrival)")
    print(f"  then unlocking the locked device      {r['unlock_after_locked_initial_sync']['seconds']:.2f} s  "
          "(test-opens what arrived while locked; test-only KDF)")
    s = r["apply_unlocked"]
    print(f"  apply {s['revisions']} revisions (unlocked)      {s['seconds']:.2f} s  ({s['revisions_per_s']:.0f} revisions/s)")
    s = r["merge"]
    print(f"  merge {s['items']} items (two heads each)   {s['seconds']:.2f} s  ({s['merges_per_s']:.0f} merges/s)")
    s = r["one_edit"]
    print(f"  one edit, whole session               {s['bytes_total']} bytes in {s['messages']} messages "
          f"(a->b {s['bytes_a_to_b']}, b->a {s['bytes_b_to_a']}); one revision record is "
          f"{r['revision_record_bytes']} bytes")
    s = r["what_to_send"]
    print(f"  what to send, {s['vault_items']} items: everything {s['everything_s']:.2f} s, "
          f"the 100 missing {s['missing_100_s'] * 1000:.1f} ms; state digest {s['state_digest_s']:.2f} s")


if __name__ == "__main__":
    sys.exit(main())
