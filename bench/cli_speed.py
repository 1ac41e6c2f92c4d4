"""How long everyday commands take, wall clock, as a person or a script feels them: each command run
as a fresh `vaultpeer` process against a running, unlocked daemon. Prints a table and writes JSON.

    .venv/bin/python bench/cli_speed.py              # 20 runs of each command, about 30 s
    .venv/bin/python bench/cli_speed.py --runs 50 --items 1000
    .venv/bin/python bench/cli_speed.py --code /tmp/old   # the vaultpeer of another checkout
                                                          # (git worktree add /tmp/old COMMIT): before/after

Anchors measured in the same run: ``python3 -c pass`` (the interpreter alone) and
``python3 -c "import vaultpeer.cli"`` (the import of the whole command line). The target (issue
17) is a p50 of at most 100 ms for `get ITEM --field password`, `ls`, `search` and `otp`.

The daemon is a real subprocess (`vaultpeer daemon --offline`: no listener, no mDNS, so nothing
leaves the machine) on a home in a temporary directory, with the loudly named test-only KDF (the
unlock is not what is measured). Commands the installed vaultpeer lacks are reported as such.
Every wait is bounded; the daemon is stopped at the end whatever happens.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import percentiles, save_json

PASSWORD = "benchmark master password"
START_TIMEOUT = 30.0
COMMANDS = {
    "get --field password": ["get", "Account 000007", "--field", "password"],
    "ls": ["ls"],
    "ls --json": ["ls", "--json"],
    "status": ["status"],
    "search": ["search", "account 00000"],
    "otp": ["otp", "Account 000007"],
}


def cli(home: Path, env: dict, *args: str, stdin: str = "", timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vaultpeer", "--home", str(home), *args], input=stdin,
                          capture_output=True, text=True, env=env, timeout=timeout)


def wall(argv: list[str], env: dict, runs: int) -> tuple[list[float], int]:
    """Wall seconds of ``runs`` runs of ``argv`` (after one warm-up run), and the last exit status."""
    samples, status = [], 0
    for n in range(runs + 1):
        start = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, env=env, timeout=60)
        elapsed = time.perf_counter() - start
        status = done.returncode
        if n:
            samples.append(elapsed)
    return samples, status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--items", type=int, default=100)
    parser.add_argument("--json", type=Path, default=Path(__file__).parent / "results" / "cli_speed.json")
    parser.add_argument("--code", type=Path, metavar="DIR",
                        help="measure the vaultpeer package of this checkout (first on the commands' PYTHONPATH)")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="vp-bench-cli-"))
    home = root / "home"
    env = {**os.environ, "VAULTPEER_INSECURE_TEST_KDF": "i-understand-this-vault-is-not-protected"}
    if args.code is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(args.code.resolve()), *filter(None, [env.get("PYTHONPATH")])])
    daemon = None
    try:
        assert cli(home, env, "init", "--password-stdin", stdin=PASSWORD + "\n").returncode == 0
        lines = "".join(f"Account {n:06d},user{n}@example.org,pw-{n:06d},https://site{n}.example.org/,"
                        f"JBSWY3DPEHPK3P{n % 10}P\n" for n in range(args.items))
        (root / "items.csv").write_text("title,username,password,url,totp\n" + lines)
        imported = cli(home, env, "import", "csv", str(root / "items.csv"), "--password-stdin", stdin=PASSWORD + "\n")
        assert imported.returncode == 0, imported.stderr
        daemon = subprocess.Popen([sys.executable, "-m", "vaultpeer", "--home", str(home), "daemon", "--offline"],
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT
        while '"socket": "' not in cli(home, env, "status", "--json").stdout:  # not yet through a daemon
            if time.monotonic() > deadline or daemon.poll() is not None:
                raise SystemExit("the daemon did not start")
            time.sleep(0.2)
        assert cli(home, env, "unlock", "--password-stdin", stdin=PASSWORD + "\n").returncode == 0

        results: dict = {"runs": args.runs, "items": args.items, "cpus": os.cpu_count(),
                         "code": str(args.code) if args.code else None, "commands": {}}
        anchors = {
            "python3 -c pass": [sys.executable, "-c", "pass"],
            "import vaultpeer.cli": [sys.executable, "-c", "import vaultpeer.cli"],
        }
        rows = []
        for name, argv in anchors.items():
            samples, _ = wall(argv, env, args.runs)
            results["commands"][name] = {**percentiles(samples), "anchor": True}
            rows.append((name, samples, "anchor"))
        for name, command in COMMANDS.items():
            argv = [sys.executable, "-m", "vaultpeer", "--home", str(home), *command]
            samples, status = wall(argv, env, args.runs)
            if status == 2:  # click's usage error: this vaultpeer has no such command yet
                results["commands"][name] = {"missing": True}
                rows.append((name, None, "not a command here"))
                continue
            results["commands"][name] = {**percentiles(samples), "exit": status}
            rows.append((name, samples, f"exit {status}"))

        print(f"\nWall time of one command, fresh process, daemon unlocked ({args.runs} runs, "
              f"{args.items} items, {os.cpu_count()} CPUs), ms:")
        print(f"{'command':28} {'p50':>7} {'p95':>7} {'min':>7}  note")
        for name, samples, note in rows:
            if samples is None:
                print(f"{name:28} {'-':>7} {'-':>7} {'-':>7}  {note}")
                continue
            figures = percentiles(samples)
            print(f"{name:28} {figures['p50'] * 1000:7.1f} {figures['p95'] * 1000:7.1f} "
                  f"{figures['min'] * 1000:7.1f}  {note}")
        save_json(args.json, results)
    finally:
        if daemon is not None:
            daemon.terminate()
            try:
                daemon.wait(timeout=10)
            except subprocess.TimeoutExpired:
                daemon.kill()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
