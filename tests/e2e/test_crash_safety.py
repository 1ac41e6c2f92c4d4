"""Crash safety (issue 8), in small: the harness of tests/crash/harness.py with a few kills per
phase, and proof that it notices what it exists to notice.

The full run (25 + 25 kills on 5,000 items) is ``.venv/bin/python tests/crash/harness.py``.
"""

import os
import random
import shutil
import sqlite3

import pytest

from crash.harness import CrashSafetyError, Figures, Tamper, local_writes_phase, run
from sync import Workspace, create_vault, enroll, sync_in_process
from vaultpeer.service.home import Home


def test_a_daemon_killed_during_initial_sync_and_local_writes_loses_nothing():
    seed = random.randrange(2**32)  # printed (pytest shows it on failure): rerun the script with --seed
    results = run(items=1_000, initial_kills=3, write_kills=3, seed=seed, timeout=300, log=print)
    initial, writes = results["initial_sync"], results["local_writes"]
    assert initial["kills"] == 3 and writes["kills"] == 3, seed
    # every kill was followed by a read-only integrity check, and every round and the end converged
    assert initial["integrity_checks_passed"] == 3 + initial["kills_after_complete_not_counted"]
    assert writes["integrity_checks_passed"] == 3
    assert initial["converged_rounds"] == initial["rounds"] >= 1
    assert writes["acknowledged_writes"] > 0 and writes["acknowledged_reads_checked"] >= writes["items_written"]
    assert writes["b_writes_verified_on_a"] == writes["items_written"]


class RollBack(Tamper):
    """Durability broken on purpose: the store goes back to how it was before the burst, as if
    its commits had never reached the file."""

    def before_burst(self, home: Home) -> None:
        self.copy = home.path.parent / "before-burst.sqlite3"
        source = sqlite3.connect(f"file:{home.database}?mode=ro", uri=True)
        target = sqlite3.connect(self.copy)
        source.backup(target)
        source.close()
        target.close()

    def after_kill(self, home: Home) -> None:
        for suffix in ("", "-wal", "-shm"):
            home.database.with_name(home.database.name + suffix).unlink(missing_ok=True)
        shutil.copy(self.copy, home.database)


class Scribble(Tamper):
    """A torn database: bytes scribbled over pages of the file after the kill."""

    def after_kill(self, home: Home) -> None:
        with open(home.database, "r+b") as handle:
            size = handle.seek(0, os.SEEK_END)
            for offset in range(2 * 4096, size, 3 * 4096):
                handle.seek(offset + 8)
                handle.write(os.urandom(256))


@pytest.mark.parametrize(("tamper", "complaint"), [
    (RollBack(), "acknowledged write.* not in its database"),
    (Scribble(), "integrity"),
], ids=["rolled-back", "scribbled"])
def test_the_harness_fails_when_a_kill_loses_writes_or_damages_the_store(tamper, complaint):
    with Workspace() as ws:
        a_home, b_home = ws.home("a"), ws.home("b")
        create_vault(a_home, 200)
        enroll(a_home, b_home)
        sync_in_process(a_home, b_home)
        with pytest.raises(CrashSafetyError, match=complaint):
            local_writes_phase(ws, a_home, b_home, 1, random.Random(1), Figures(), float("inf"), burst=0.3,
                               tamper=tamper)
