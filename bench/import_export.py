"""Measure import and export: parse a CSV of N entries, import it as one batch into an empty vault,
import it again (nothing new), export to CSV and to .kdbx, and read that .kdbx back. Prints a table
and writes JSON.

    .venv/bin/python bench/import_export.py [--entries 5000] [--json bench/results/import_export.json]

Runs entirely in a temporary directory with the test-only KDF for the vault (the vault's KDF is
not what is measured; the .kdbx file's Argon2d is, since it is part of every KeePass export).
"""

import argparse
import os
import sys
import tempfile
from pathlib import Path

from benchlib import save_json, timed
from vaultpeer.core.interchange import csv_export, parse_csv
from vaultpeer.core.kdf import insecure_test_parameters
from vaultpeer.service.home import Home
from vaultpeer.service.kdbx import build_kdbx, read_kdbx
from vaultpeer.service.transfer import export_items, import_entries
from vaultpeer.service.vault import Vault


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=5_000)
    parser.add_argument("--json", type=Path, default=Path("bench/results/import_export.json"))
    args = parser.parse_args()

    rows = ["title,username,password,url,notes"] + [
        f"Site {n:06d},user{n}@example.org,pw-{os.urandom(8).hex()},https://site{n}.example.org/login,note {n}"
        for n in range(args.entries)]
    text = "\n".join(rows) + "\n"
    results: dict[str, object] = {"entries": args.entries, "csv_bytes": len(text), "cpu_count": os.cpu_count(),
                                  "python": sys.version.split()[0]}
    with tempfile.TemporaryDirectory(prefix="vaultpeer-bench-") as tmp:
        with Vault.open(Home(Path(tmp) / "device"), allow_insecure_test_kdf=True) as vault:
            vault.init("benchmark master password", insecure_test_parameters())
            results["parse_csv_s"], parsed = timed(lambda: parse_csv(text))
            results["import_s"], report = timed(lambda: import_entries(vault, parsed.entries))
            assert report["imported"] == args.entries
            results["reimport_s"], again = timed(lambda: import_entries(vault, parsed.entries))
            assert again["imported"] == 0
            results["collect_items_s"], items = timed(lambda: export_items(vault))
            results["export_csv_s"], _ = timed(lambda: csv_export(items))
            results["export_kdbx_s"], data = timed(lambda: build_kdbx(items, "benchmark kdbx password"))
            results["kdbx_bytes"] = len(data)
            results["read_kdbx_s"], back = timed(lambda: read_kdbx(data, "benchmark kdbx password"))
            assert len(back.entries) == args.entries
    for key, value in results.items():
        print(f"{key:>16}  {value:.3f}" if isinstance(value, float) else f"{key:>16}  {value}")
    save_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
