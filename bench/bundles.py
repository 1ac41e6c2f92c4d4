"""Measure sync through files: a device joins a large vault through a bundle, then one edit travels
back in an incremental bundle. Prints a table and writes JSON.

    .venv/bin/python bench/bundles.py [--items 10000] [--json bench/results/bundles.json]

Uses the loudly named test-only KDF (bundles need no password). Runs in a temporary directory.
"""

import argparse
import os
import sys
import tempfile
from pathlib import Path

from benchlib import save_json, timed
from vaultpeer.service import bundle_files as bundles
from vaultpeer.core.kdf import insecure_test_parameters
from vaultpeer.service.home import Home
from vaultpeer.service.vault import Vault

PASSWORD = "benchmark master password"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--json", type=Path, default=Path("bench/results/bundles.json"))
    args = parser.parse_args()
    results: dict[str, object] = {"items": args.items, "cpu_count": os.cpu_count(), "python": sys.version.split()[0]}
    with tempfile.TemporaryDirectory(prefix="vaultpeer-bench-") as tmp:
        member = Vault.open(Home(Path(tmp) / "member"), allow_insecure_test_kdf=True)
        newcomer = Vault.open(Home(Path(tmp) / "newcomer"), allow_insecure_test_kdf=True)
        member.init(PASSWORD, insecure_test_parameters())
        with member.transaction():
            for n in range(args.items):
                member.add(f"Item {n:06d}", {"username": f"user{n}@example.org", "password": os.urandom(9).hex()})
        bundles.admit(member, bundles.join_request(newcomer))
        target = str(newcomer.device.device_id)
        results["export_all_s"], (data, _) = timed(lambda: bundles.export_bundle(member, target))
        results["bundle_all_bytes"] = len(data)
        results["import_join_s"], _ = timed(
            lambda: bundles.import_bundle(newcomer, data, expect_exporter=member.device.device_id))
        newcomer.unlock(PASSWORD)
        newcomer.edit("Item 000042", {"password": "changed offline"})
        results["export_one_s"], (one, report) = timed(lambda: bundles.export_bundle(newcomer, str(member.device.device_id)))
        assert report["revisions"] == 1 and report["incremental"]
        results["bundle_one_bytes"] = len(one)
        results["import_one_s"], _ = timed(lambda: bundles.import_bundle(member, one))
        member.close()
        newcomer.close()
    print(f"sync through files, {args.items} items, {results['cpu_count']} CPUs, Python {results['python']}")
    print(f"  join: export everything        {results['export_all_s']:.2f} s, {results['bundle_all_bytes'] / 1e6:.1f} MB")
    print(f"  join: import (verify + apply)  {results['import_join_s']:.2f} s")
    print(f"  one edit back: export          {results['export_one_s'] * 1000:.0f} ms, {results['bundle_one_bytes']:,} bytes")
    print(f"  one edit back: import          {results['import_one_s'] * 1000:.0f} ms")
    save_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
