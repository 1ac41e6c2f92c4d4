"""Real `vaultpeer daemon` processes on loopback, driven through the real CLI (for tests/e2e).

Every wait is bounded; every daemon is stopped (SIGTERM, then SIGKILL) when the test ends. mDNS is
bound to 127.0.0.1 only.
"""

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from helpers import PASSWORD, cli_env, run_cli


def short_tmp() -> Path:
    """Unix socket paths are limited to ~107 bytes: homes live under a short /tmp directory."""
    return Path(tempfile.mkdtemp(prefix="vp-", dir="/tmp"))


class Daemon:
    def __init__(self, home: Path, *extra: str, mdns: bool = True, rotate: float | None = None,
                 env: dict[str, str] | None = None):
        self.env = env or {}
        self.home = home
        self.extra = list(extra)
        self.mdns = mdns
        self.rotate = rotate
        self.process: subprocess.Popen | None = None
        self.log = home.parent / f"{home.name}.log"

    def start(self, *override: str, timeout: float = 20) -> "Daemon":
        args = list(override) if override else ["--listen", "127.0.0.1:0", *self.extra]
        if self.mdns and "--offline" not in args and "--no-mdns" not in args:
            args += ["--mdns-interface", "127.0.0.1"]
            if self.rotate:
                args += ["--rotate-names", str(self.rotate)]
        self.home.mkdir(parents=True, exist_ok=True)
        log = open(self.log, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "vaultpeer", "--home", str(self.home), "daemon", "-v", *args],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=cli_env(**self.env),
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"daemon exited early:\n{self.log.read_text()}")
            result = self.cli("status", "--json")
            if result.returncode == 0 and json.loads(result.stdout).get("socket"):
                return self
            time.sleep(0.1)
        raise AssertionError(f"daemon did not start in {timeout} s:\n{self.log.read_text()}")

    def stop(self, timeout: float = 10) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
            raise AssertionError("daemon did not stop on SIGTERM")

    def cli(self, *args: str, stdin: str = "", timeout: float = 60) -> subprocess.CompletedProcess:
        return run_cli(self.home, *args, stdin=stdin, timeout=timeout)

    def ok(self, *args: str, stdin: str = "") -> str:
        result = self.cli(*args, stdin=stdin)
        assert result.returncode == 0, (args, result.stdout, result.stderr, self.log_tail())
        return result.stdout

    def log_tail(self) -> str:
        return self.log.read_text()[-3000:] if self.log.exists() else "(no daemon log)"

    def json(self, *args: str) -> object:
        return json.loads(self.ok(*args, "--json"))

    def status(self) -> dict:
        return self.json("status")

    @property
    def address(self) -> str:
        return self.status()["listen"]

    def init(self, password: str = PASSWORD) -> None:
        self.ok("init", "--password-stdin", stdin=password + "\n")

    def unlock(self, password: str = PASSWORD) -> None:
        self.ok("unlock", "--password-stdin", stdin=password + "\n")


class Interactive:
    """A CLI process whose output is read line by line while it runs (for `pair`)."""

    def __init__(self, home: Path, *args: str):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "vaultpeer", "--home", str(home), *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(),
        )
        self.lines: queue.Queue = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        buffer = ""
        while True:
            char = self.process.stdout.read(1)
            if not char:
                if buffer:
                    self.lines.put(buffer)
                self.lines.put(None)
                return
            buffer += char
            if char == "\n" or buffer.endswith("[y/N] "):
                self.lines.put(buffer)
                self.output.append(buffer)
                buffer = ""

    def wait_for(self, prefix: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            if line.startswith(prefix):
                return line
        raise AssertionError(f"never saw {prefix!r}; output: {self.output}; stderr: {self.stderr()}")

    def answer(self, text: str) -> None:
        self.process.stdin.write(text + "\n")
        self.process.stdin.flush()

    def finish(self, timeout: float = 60) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise

    def stderr(self) -> str:
        if self.process.poll() is None:
            return "(still running)"
        return self.process.stderr.read()


def pair(inviter: Daemon, joiner: Daemon, *, answers=("y", "y"), address: bool = True,
         before_join: Callable[[], None] | None = None) -> tuple[int, int, str, str]:
    """Run `pair` on the inviter and `pair --join` on the joiner; answer the prompts; return exit
    statuses and the two codes shown. With ``address=False`` the joiner finds the invitation by
    mDNS (only one test does that: any other invitation on loopback, from a concurrent test run,
    could be found first, and the codes would then rightly differ). ``before_join`` runs once the
    invitation is (about to be) open, before the joiner starts."""
    invite, join = start_pairing(inviter, joiner, address=address, before_join=before_join)
    code_a = invite.wait_for("Verification code:")
    code_b = join.wait_for("Verification code:")
    answer_pairing(invite, join, answers)
    return invite.finish(), join.finish(), code_a.strip(), code_b.strip()


def start_pairing(inviter: Daemon, joiner: Daemon, *, address: bool = True,
                  before_join: Callable[[], None] | None = None) -> tuple[Interactive, Interactive]:
    """`pair` on the inviter, then `pair --join` on the joiner, both left running."""
    invite = Interactive(inviter.home, "pair", "--timeout", "60")
    time.sleep(0.3)  # let the invitation open before the joiner looks for it
    if before_join is not None:
        before_join()
    join_args = ["pair", "--join", inviter.address] if address else ["pair", "--join"]
    return invite, Interactive(joiner.home, *join_args, "--timeout", "60")


def answer_pairing(invite: Interactive, join: Interactive, answers=("y", "y")) -> None:
    """Answer `Do both devices show this code?` on both sides, once both asked."""
    for side in (invite, join):
        side.wait_for("Do both devices show this code?")
    invite.answer(answers[0])
    join.answer(answers[1])


def ready_to_pair(world, *extra: str) -> tuple[Daemon, Daemon]:
    """A laptop with a vault, running and unlocked, and a desktop with none, running."""
    laptop, desktop = world("laptop", *extra), world("desktop", *extra)
    laptop.init()
    laptop.start()
    desktop.start()
    laptop.unlock()
    return laptop, desktop


def paired_pair(world, *extra: str) -> tuple[Daemon, Daemon]:
    """A laptop with a vault and a desktop paired with it through the CLI, both running and unlocked."""
    laptop, desktop = ready_to_pair(world, *extra)
    statuses = pair(laptop, desktop)
    assert statuses[:2] == (0, 0), statuses
    desktop.unlock()
    return laptop, desktop


def wait_until(predicate, timeout: float, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


def cleanup(root: Path, daemons: list[Daemon]) -> None:
    for daemon in daemons:
        try:
            daemon.stop()
        except AssertionError:
            pass
    if not os.environ.get("VAULTPEER_KEEP_TEST_HOMES"):
        shutil.rmtree(root, ignore_errors=True)
