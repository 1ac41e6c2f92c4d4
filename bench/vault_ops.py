"""Measure the vault engine: unlock with default (calibrated) KDF parameters, and add / get / list
with a large vault. Prints a table and writes JSON.

    .venv/bin/python bench/vault_ops.py [--items 10000] [--json bench/results/vault_ops.json]

Runs entirely in a temporary directory; touches no network.
"""

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

from benchlib import save_json, timed
from vaultpeer.core import kdf as kdf_module
from vaultpeer.service.home import Home
from vaultpeer.service.vault import Vault


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--gets", type=int, default=200, help="random gets to time (by title and by id)")
    parser.add_argument("--json", type=Path, default=Path("bench/results/vault_ops.json"))
    args = parser.parse_args()

    results: dict[str, object] = {"items": args.items, "cpu_count": os.cpu_count(), "python": sys.version.split()[0]}
    with tempfile.TemporaryDirectory(prefix="vaultpeer-bench-") as tmp:
        home = Home(Path(tmp) / "device")
        password = "benchmark master password"

        def measure(params):
            return timed(lambda: params.derive("calibration"))[0]

        calibration_s, params = timed(lambda: kdf_module.calibrate(measure, cpu_count=os.cpu_count() or 1))
        results["kdf"] = {"memory_mib": params.memory_kib // 1024, "time_cost": params.time_cost,
                          "parallelism": params.parallelism, "calibration_s": calibration_s}

        with Vault.open(home) as vault:
            init_s, _ = timed(lambda: vault.init(password, params))
            results["init_s"] = init_s
            adds = []
            for n in range(args.items):
                seconds, _ = timed(lambda n=n: vault.add(
                    f"Item {n:06d}",
                    {"username": f"user{n}@example.org", "password": f"pw-{n}-{os.urandom(6).hex()}",
                     "url": f"https://site{n}.example.org/login"},
                ))
                adds.append(seconds)
        results["add_ms"] = summary(adds)
        results["database_bytes"] = sum(p.stat().st_size for p in home.path.glob("vault.sqlite3*"))

        with Vault.open(home) as vault:
            unlocks = []
            for _ in range(3):
                seconds, _ = timed(lambda: vault.unlock(password))
                unlocks.append(seconds)
                vault.lock()
            results["unlock_s"] = summary(unlocks, scale=1)
            vault.unlock(password)
            first_list_s, listed = timed(lambda: vault.list_items())
            assert len(listed) == args.items
            cached_list_s, _ = timed(lambda: vault.list_items())
            results["list_first_s"] = first_list_s
            results["list_cached_s"] = cached_list_s
            step = max(1, args.items // args.gets)
            by_title = [timed(lambda n=n: vault.get(f"Item {n:06d}"))[0] for n in range(0, args.items, step)]
            ids = [str(v.id) for v in listed[::step]]
            by_id = [timed(lambda i=i: vault.get(i))[0] for i in ids]
            results["get_by_title_ms"] = summary(by_title)
            results["get_by_id_ms"] = summary(by_id)
            edits = [timed(lambda n=n: vault.edit(f"Item {n:06d}", {"password": "changed"}))[0]
                     for n in range(0, args.items, step)]
            results["edit_ms"] = summary(edits)

        # a fresh process's view: open, unlock, and list everything (what one CLI command costs)
        cold_s, _ = timed(lambda: cold_list(home, password))
        results["cold_open_unlock_list_s"] = cold_s

    print_table(results)
    save_json(args.json, results)
    return 0


def cold_list(home: Home, password: str) -> None:
    with Vault.open(home) as vault:
        vault.unlock(password)
        vault.list_items()


def summary(samples: list[float], scale: float = 1000) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "n": len(samples),
        "mean": statistics.fmean(samples) * scale,
        "p50": ordered[len(ordered) // 2] * scale,
        "p95": ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))] * scale,
        "max": ordered[-1] * scale,
    }


def print_table(r: dict) -> None:
    kdf = r["kdf"]
    print(f"vault engine, {r['items']} items, {r['cpu_count']} CPUs, Python {r['python']}")
    print(f"  KDF (calibrated)         Argon2id {kdf['memory_mib']} MiB x {kdf['time_cost']} passes x "
          f"{kdf['parallelism']} lanes (calibration {kdf['calibration_s']:.2f} s)")
    print(f"  unlock                   mean {r['unlock_s']['mean']:.3f} s  max {r['unlock_s']['max']:.3f} s")
    for key, label in (("add_ms", "add (one transaction)"), ("get_by_title_ms", "get by title"),
                       ("get_by_id_ms", "get by id"), ("edit_ms", "edit")):
        s = r[key]
        print(f"  {label:<24} p50 {s['p50']:.2f} ms  p95 {s['p95']:.2f} ms  max {s['max']:.2f} ms  (n={s['n']})")
    print(f"  list all (first, decrypts every head)  {r['list_first_s']:.3f} s")
    print(f"  list all (cached while unlocked)       {r['list_cached_s'] * 1000:.1f} ms")
    print(f"  cold: open + unlock + list             {r['cold_open_unlock_list_s']:.3f} s")
    print(f"  database on disk                       {r['database_bytes'] / 1e6:.1f} MB")


if __name__ == "__main__":
    sys.exit(main())
