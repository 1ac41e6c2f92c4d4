"""Measure backups of a large vault: write, verify (open + check + decrypt every revision), restore
into a new home. Prints a table and writes JSON.

    .venv/bin/python bench/backup.py [--items 10000] [--json bench/results/backup.json]

Every item gets one edit, so there are twice as many revisions as items. The vault uses the
loudly named test-only KDF, so the times are those of backups, not of Argon2id (add one unlock's
worth, about 0.5-1 s, for a real vault's verify and restore). Runs in a temporary directory.
"""

import argparse
import os
import sys
import tempfile
from pathlib import Path

from benchlib import save_json, timed
from vaultpeer.service.backup_files import create_backup, open_backup_file, restore_home
from vaultpeer.core.kdf import insecure_test_parameters
from vaultpeer.service.home import Home
from vaultpeer.service.vault import Vault

PASSWORD = "benchmark master password"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--json", type=Path, default=Path("bench/results/backup.json"))
    args = parser.parse_args()
    results: dict[str, object] = {"items": args.items, "cpu_count": os.cpu_count(), "python": sys.version.split()[0]}
    with tempfile.TemporaryDirectory(prefix="vaultpeer-bench-") as tmp:
        home = Home(Path(tmp) / "device")
        with Vault.open(home, allow_insecure_test_kdf=True) as vault:
            vault.init(PASSWORD, insecure_test_parameters())
            with vault.transaction():  # one commit for the whole setup
                for n in range(args.items):
                    vault.add(f"Item {n:06d}", {"username": f"user{n}@example.org", "password": os.urandom(9).hex(),
                                                "url": f"https://site{n}.example.org/login"})
                    vault.edit(f"Item {n:06d}", {"password": os.urandom(9).hex()})
            results["revisions"] = vault.counts()["revisions"]
            results["database_bytes"] = home.database.stat().st_size
            create_s, written = timed(lambda: create_backup(vault, Path(tmp) / "backups"))
        results["create_s"] = create_s
        results["file_bytes"] = written.path.stat().st_size
        verify_s, opened = timed(lambda: open_backup_file(written.path, password=PASSWORD,
                                                          allow_insecure_test_kdf=True))
        results["verify_s"] = verify_s
        restore_s, restored = timed(lambda: restore_home(Home(Path(tmp) / "restored"), opened,
                                                         allow_insecure_test_kdf=True))
        assert restored.revisions == results["revisions"]
        results["restore_s"] = restore_s
    print(f"backups, {args.items} items ({results['revisions']} revisions), {results['cpu_count']} CPUs, "
          f"Python {results['python']}")
    print(f"  database                      {results['database_bytes'] / 1e6:.1f} MB")
    print(f"  backup file                   {results['file_bytes'] / 1e6:.1f} MB")
    print(f"  create (read, seal, write)    {create_s:.2f} s")
    print(f"  verify (open, check, decrypt) {verify_s:.2f} s")
    print(f"  restore (verify already done) {restore_s:.2f} s")
    save_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
