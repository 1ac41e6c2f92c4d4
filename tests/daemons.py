"""Real `vaultpeer daemon` processes on loopback (for tests/e2e), driven through the real CLI where
the CLI is what a test is about, and otherwise through the daemon's local API (vaultpeer.client),
which answers in a millisecond where a CLI process takes half a second to start.

A daemon counts as started when it sends sd_notify READY=1 to a datagram socket the test owns
(``NOTIFY_SOCKET``), as systemd would see it. Devices join a vault by real pairing in the tests of
pairing, and otherwise by ``enroll``: the same vault calls a confirmed pairing makes, in-process.

Every wait is bounded; every daemon is stopped (SIGTERM, then SIGKILL) when the test ends. mDNS is
bound to 127.0.0.1 only.
"""

import functools
import json
import os
import queue
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from helpers import PASSWORD, cli_env, run_cli
from vaultpeer.api import ApiError
from vaultpeer.client import Client, DaemonNotRunning
from vaultpeer.core.kdf import insecure_test_parameters
from vaultpeer.service.device import load_profile
from vaultpeer.service.home import Home
from vaultpeer.service.vault import Vault


#: Run in a new network namespace by `unshare`: brings its loopback up, says its pid, and holds the
#: namespace until its stdin closes.
_HOLD_NAMESPACE = """
import fcntl, os, socket, struct, sys
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
    flags = struct.unpack("16sh22x", fcntl.ioctl(s, SIOCGIFFLAGS, struct.pack("16sh22x", b"lo", 0)))[1]
    fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sh22x", b"lo", flags | IFF_UP))
print(os.getpid(), flush=True)
sys.stdin.read()
"""


@functools.cache
def can_make_private_loopback() -> bool:
    """Whether ``private_loopback`` can make a namespace here: as root (CI is), with util-linux's
    unshare and nsenter, where the kernel lets it (a container may not): tried once."""
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("nsenter") is None:
        return False
    try:
        return subprocess.run(["unshare", "--net", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@contextmanager
def private_loopback() -> Iterator[tuple[str, ...]]:
    """A network namespace of the test's own, its loopback up: mDNS there reaches only the processes
    the test runs in it (with the prefix this yields), whatever else advertises on the machine's
    127.0.0.1 (another run of the suite, someone's `vaultpeer demo`). Yields () where none can be
    made (not root): the test then runs on the machine's loopback, alone among the suite's tests
    that advertise (the ``mdns_alone`` marker, tests/conftest.py)."""
    if not can_make_private_loopback():
        yield ()
        return
    holder = subprocess.Popen(["unshare", "--net", "--fork", "--", sys.executable, "-c", _HOLD_NAMESPACE],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([holder.stdout], [], [], 10)
        pid = holder.stdout.readline().strip() if ready else ""
        assert pid.isdigit(), f"no network namespace: unshare said {pid!r}"
        yield ("nsenter", f"--net=/proc/{pid}/ns/net", "--")
    finally:
        holder.stdin.close()
        try:
            holder.wait(10)
        except subprocess.TimeoutExpired:
            holder.kill()
            holder.wait(5)


def short_tmp() -> Path:
    """Unix socket paths are limited to ~107 bytes: homes live under a short /tmp directory."""
    return Path(tempfile.mkdtemp(prefix="vp-", dir="/tmp"))


class Daemon:
    def __init__(self, home: Path, *extra: str, mdns: bool = True, rotate: float | None = None,
                 env: dict[str, str] | None = None, netns: tuple[str, ...] = ()):
        self.env = env or {}
        #: A command prefix that runs the daemon in a network namespace of its own (``private_loopback``).
        self.netns = netns
        self.home = home
        self.extra = list(extra)
        self.mdns = mdns
        self.rotate = rotate
        self.process: subprocess.Popen | None = None
        self._notify: socket.socket | None = None
        self.log = home.parent / f"{home.name}.log"

    def start(self, *override: str, timeout: float = 20) -> "Daemon":
        """Start the daemon and return once it is ready (``launch``, then ``wait_ready``)."""
        return self.launch(*override).wait_ready(timeout)

    def launch(self, *override: str) -> "Daemon":
        """Start the daemon's process; ``wait_ready`` waits for it (several may start at once)."""
        args = list(override) if override else ["--listen", "127.0.0.1:0", *self.extra]
        if self.mdns and "--offline" not in args and "--no-mdns" not in args:
            args += ["--mdns-interface", "127.0.0.1"]
            if self.rotate:
                args += ["--rotate-names", str(self.rotate)]
        self.home.mkdir(parents=True, exist_ok=True)
        env = dict(self.env)
        self._notify = None
        if "NOTIFY_SOCKET" not in env:
            notify_path = self.home.parent / f"{self.home.name}.notify"
            notify_path.unlink(missing_ok=True)
            self._notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._notify.bind(str(notify_path))
            env["NOTIFY_SOCKET"] = str(notify_path)
        log = open(self.log, "ab")
        self.process = subprocess.Popen(
            [*self.netns, sys.executable, "-m", "vaultpeer", "--home", str(self.home), "daemon", "-v", *args],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=cli_env(**env),
        )
        return self

    def wait_ready(self, timeout: float = 20) -> "Daemon":
        """Return once the daemon sent READY=1 to our notify socket, as it tells systemd (or, when
        the test set NOTIFY_SOCKET itself, once its local API answers)."""
        notify, self._notify = self._notify, None
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise AssertionError(f"daemon exited early:\n{self.log.read_text()}")
                if notify is not None:
                    notify.settimeout(0.05)
                    try:
                        if notify.recv(4096).split(b"\n")[0] == b"READY=1":
                            return self
                    except TimeoutError:
                        pass
                else:
                    try:
                        self.api("status")
                        return self
                    except (DaemonNotRunning, OSError):
                        time.sleep(0.05)
            raise AssertionError(f"daemon did not start in {timeout} s:\n{self.log.read_text()}")
        finally:
            if notify is not None:
                path = notify.getsockname()
                notify.close()
                os.unlink(path)

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
        """A reading command's ``--json`` output, through the CLI."""
        return json.loads(self.ok(*args, "--json"))

    @property
    def socket_path(self) -> Path:
        return self.home / "run" / "api.sock"

    def api(self, method: str, timeout: float = 60, **params: object) -> object:
        """One call to the running daemon's local API (docs/api.md): what the CLI's commands call."""
        with Client(self.socket_path, timeout=timeout) as client:
            return client.call(method, **params)

    def status(self) -> dict:
        """The daemon's status, through the API (the same object as `status --json` prints)."""
        return self.api("status")

    @property
    def address(self) -> str:
        return self.status()["listen"]

    def init(self, password: str = PASSWORD) -> str:
        """Create the vault in-process, as `vaultpeer init` does with the test-only KDF (the command
        itself is tested in tests/e2e/test_cli.py); returns the recovery key."""
        home = Home(self.home)
        with Vault.open(home, allow_insecure_test_kdf=True) as vault:
            profile = load_profile(home)
            return vault.init(password, insecure_test_parameters(), profile.name, profile.os_description).reveal()

    def unlock(self, password: str = PASSWORD) -> None:
        """Unlock the running daemon through the API (what `vaultpeer unlock` calls)."""
        assert self.api("unlock", password=password) == {"locked": False}

    def lock(self) -> None:
        assert self.api("lock") == {"locked": True}

    def has_item(self, title: str) -> bool:
        """Whether an item of this exact title is there and readable, through the API."""
        try:
            return self.api("item.get", item=title)["title"] == title
        except ApiError:
            return False

    def item(self, item: str) -> dict:
        return self.api("item.get", item=item)

    def titles(self) -> list[str]:
        return sorted(entry["title"] for entry in self.api("item.list"))

    def peer_ids(self) -> list[str]:
        return [peer["device_id"] for peer in self.api("peer.list")]

    def add(self, title: str, **fields: str) -> dict:
        return self.api("item.add", title=title, fields=fields)

    def edit(self, item: str, **fields: str) -> dict:
        return self.api("item.edit", item=item, fields=fields)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


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
    mDNS (only one test does that, in a network namespace of its own, ``private_loopback``: any
    other invitation on the machine's loopback could be found first, and the codes would then
    rightly differ). ``before_join`` runs once the
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
    # the joiner starts once the invitation is open (a joining device's handshake is answered
    # from then on): a fixed pause was too short on a loaded machine
    assert wait_until(lambda: inviter.api("status")["pairing"] is not None, 30), "the invitation did not open"
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
    laptop.launch()
    desktop.launch()
    laptop.wait_ready()
    desktop.wait_ready()
    laptop.unlock()
    return laptop, desktop


def enroll(member: "Daemon", joiner: "Daemon", password: str = PASSWORD) -> None:
    """What a confirmed pairing does to the two homes, in-process, while neither daemon runs:
    the member vouches for the joiner (``Vault.enroll``), the joiner takes the member's header and
    roster (``Vault.join``) and hands its own roster entries back (pairing's Joined message). The
    joiner is left locked, its signing key in the clear until its first unlock, as after pairing.
    For tests where pairing is not the subject; the tests of pairing pair through `vaultpeer pair`."""
    assert not member.running and not joiner.running, "enroll homes whose daemons are stopped"
    member_home, joiner_home = Home(member.home), Home(joiner.home)
    with Vault.open(member_home, allow_insecure_test_kdf=True) as inviter, \
            Vault.open(joiner_home, allow_insecure_test_kdf=True) as new:
        inviter.unlock(password)  # vouching signs with the member's key, sealed under the vault's keys
        profile = load_profile(joiner_home)
        entry = inviter.enroll(new.device.public, profile.name, profile.os_description)
        new.join(inviter.header, [*inviter.outgoing_roster(), entry], inviter.device.public,
                 profile.name, profile.os_description)
        inviter.receive_records(None, new.outgoing_roster(), ())


def enrolled(world, *names: str, extra: tuple[str, ...] = (), recovery_keys: list[str] | None = None) -> list["Daemon"]:
    """Devices of one vault: the first creates it and enrols the others (``enroll``); all started
    (mDNS on 127.0.0.1, so they find each other as members do) and unlocked. The recovery key is
    appended to ``recovery_keys`` when given."""
    devices = [world(name, *extra) for name in names]
    recovery_key = devices[0].init()
    if recovery_keys is not None:
        recovery_keys.append(recovery_key)
    for joiner in devices[1:]:
        enroll(devices[0], joiner)
    for device in devices:
        device.launch()
    for device in devices:
        device.wait_ready()
    for device in devices:
        device.unlock()
    return devices


def paired_pair(world, *extra: str) -> tuple[Daemon, Daemon]:
    """A laptop with a vault and a desktop enrolled in it (``enroll``), both running and unlocked."""
    laptop, desktop = enrolled(world, "laptop", "desktop", extra=extra)
    return laptop, desktop


def paired_through_cli(world, *extra: str) -> tuple[Daemon, Daemon]:
    """A laptop with a vault and a desktop paired with it through `vaultpeer pair`, both running
    and unlocked (for tests of what pairing itself leaves behind)."""
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
