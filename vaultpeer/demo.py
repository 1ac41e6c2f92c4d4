"""``vaultpeer demo``: a guided tour on throw-away devices in a temporary directory.

Every step runs the real ``vaultpeer`` command line as a separate process against real homes
(real Argon2id, real SQLite files, real signatures), and prints the command and what it answered.
Nothing touches the network and nothing outside the temporary directory is written.
"""

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "a much better passphrase"
SECRETS = {
    "title": "Example Mail",
    "username": "alice@example.org",
    "password": "Tr0ub4dor&3-demo",
}


class Tour:
    def __init__(self, root: Path):
        self.root = root
        self.failures = 0

    def say(self, text: str = "") -> None:
        print(text, flush=True)

    def step(self, title: str) -> None:
        self.say()
        self.say(f"== {title}")

    def run(self, device: str, *args: str, stdin: str = "", expect: int = 0, show: bool = True) -> str:
        shown = " ".join(shlex.quote(a) for a in ("vaultpeer", "--home", device, *args))
        if stdin:
            shown = f"printf '...' | {shown}"
        self.say(f"$ {shown}")
        started = time.perf_counter()
        completed = subprocess.run(
            [sys.executable, "-m", "vaultpeer", "--home", str(self.root / device), *args],
            input=stdin,
            capture_output=True,
            text=True,
            env={k: v for k, v in os.environ.items() if not k.startswith("VAULTPEER_")},
            timeout=120,
        )
        elapsed = time.perf_counter() - started
        output = (completed.stdout + completed.stderr).rstrip()
        if show and output:
            self.say("\n".join("    " + line for line in output.splitlines()))
        if completed.returncode != expect:
            self.failures += 1
            self.say(f"    !! expected exit status {expect}, got {completed.returncode}")
        else:
            self.say(f"    (exit {completed.returncode}, {elapsed * 1000:.0f} ms)")
        return completed.stdout


def scan_for_plaintext(home: Path, needles: dict[str, str]) -> tuple[int, int, list[str]]:
    files, total, found = 0, 0, []
    for path in home.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            files += 1
            total += len(data)
            found += [f"{what} in {path.name}" for what, value in needles.items() if value.encode() in data]
    return files, total, found


def run_demo(keep: bool = False) -> int:
    root = Path(tempfile.mkdtemp(prefix="vaultpeer-demo-"))
    tour = Tour(root)
    started = time.perf_counter()
    try:
        tour.say(f"vaultpeer demo: throw-away devices under {root}")
        tour.say("Each device is a home directory; every command below is the real CLI in its own process.")

        tour.step("1. A new device creates a vault")
        tour.say("(--quick-kdf uses Argon2id at its floor, 64 MiB x 2 passes, to keep the demo fast;")
        tour.say(" a real `init` calibrates it to about 0.5-1 s on your machine.)")
        tour.run("laptop", "init", "--password-stdin", "--quick-kdf", "--name", "laptop", stdin=PASSWORD + "\n")

        tour.step("2. Add items; secret fields are masked unless revealed")
        tour.run("laptop", "add", SECRETS["title"], "--field", f"username={SECRETS['username']}",
                 "--field", f"password={SECRETS['password']}", "--field", "url=https://mail.example.org",
                 "--password-stdin", stdin=PASSWORD + "\n")
        tour.run("laptop", "add", "Bank", "--field", "username=alice", "--generate", "password",
                 "--password-stdin", stdin=PASSWORD + "\n")
        tour.run("laptop", "ls", "--password-stdin", stdin=PASSWORD + "\n")
        tour.run("laptop", "get", SECRETS["title"], "--password-stdin", stdin=PASSWORD + "\n")
        tour.run("laptop", "get", SECRETS["title"], "--field", "password", "--password-stdin",
                 stdin=PASSWORD + "\n")

        tour.step("3. Nothing readable reaches the disk")
        files, total, found = scan_for_plaintext(root / "laptop", SECRETS)
        tour.say(f"Searched {files} files ({total} bytes) of the laptop's home for the title, username "
                 f"and password: {'FOUND ' + ', '.join(found) if found else 'none of them is there.'}")
        if found:
            tour.failures += 1

        tour.step("4. Every change is a revision; history keeps them all")
        tour.run("laptop", "edit", SECRETS["title"], "--field", "password=changed-on-the-laptop",
                 "--password-stdin", stdin=PASSWORD + "\n")
        tour.run("laptop", "history", SECRETS["title"], "--password-stdin", stdin=PASSWORD + "\n")
        tour.run("laptop", "rm", "Bank", "--password-stdin", stdin=PASSWORD + "\n")
        tour.run("laptop", "ls", "--deleted", "--password-stdin", stdin=PASSWORD + "\n")
        tour.run("laptop", "restore", "Bank", "--password-stdin", stdin=PASSWORD + "\n")

        tour.step("5. Change the master password (one key is re-wrapped, no item re-encrypted)")
        tour.run("laptop", "passwd", "--password-stdin", stdin=f"{PASSWORD}\n{NEW_PASSWORD}\n")
        tour.run("laptop", "ls", "--password-stdin", stdin=PASSWORD + "\n", expect=3)
        tour.run("laptop", "ls", "--password-stdin", stdin=NEW_PASSWORD + "\n")

        tour.step("6. Verify everything: database, signatures, decryption")
        tour.run("laptop", "check", "--decrypt", "--password-stdin", stdin=NEW_PASSWORD + "\n")

        tour.step("7. A second device has its own identity and home")
        tour.run("desktop", "device", "--name", "desktop")
        tour.run("desktop", "status")
        tour.say("Pairing devices and syncing them over the local network is the daemon's job,")
        tour.say("which is being built next (docs/architecture.md shows where it fits).")
    finally:
        if keep:
            print(f"\nKept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    tour.say()
    elapsed = time.perf_counter() - started
    if tour.failures:
        tour.say(f"Demo finished in {elapsed:.1f} s with {tour.failures} unexpected result(s).")
        return 1
    tour.say(f"Demo finished in {elapsed:.1f} s; everything behaved as expected.")
    return 0
