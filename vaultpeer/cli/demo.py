"""``vaultpeer demo``: three devices on this machine, pairing and syncing for real.

Every step runs the real ``vaultpeer`` command line or a real daemon process, in a temporary
directory: real Argon2id, real SQLite files, real Noise handshakes on loopback, real mDNS bound to
127.0.0.1 only (nothing is announced on your network). Everything is stopped and deleted at the end.
"""

import json
import os
import queue
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from vaultpeer.client import Client, DaemonNotRunning
from vaultpeer.service.home import Home

PASSWORD = "correct horse battery staple"
SECRETS = {"title": "Example Mail", "username": "alice@example.org", "password": "Tr0ub4dor&3-demo"}


class DemoFailed(Exception):
    pass


class Device:
    def __init__(self, tour: "Tour", name: str):
        self.tour = tour
        self.name = name
        self.home = tour.root / name
        self.process: subprocess.Popen | None = None

    def cli(self, *args: str, stdin: str = "", show: bool = True, expect: int | None = 0) -> str:
        shown = " ".join(shlex.quote(a) for a in ("vaultpeer", "--home", self.name, *args))
        if show:
            self.tour.say(f"$ {shown}")
        completed = subprocess.run(
            [sys.executable, "-m", "vaultpeer", "--home", str(self.home), *args], input=stdin, capture_output=True,
            text=True, env=self.tour.env, timeout=120,
        )
        output = (completed.stdout + completed.stderr).rstrip()
        if show and output:
            self.tour.say("\n".join("    " + line for line in output.splitlines()))
        if expect is not None and completed.returncode != expect:
            raise DemoFailed(f"`{shown}` exited {completed.returncode}: {output}")
        return completed.stdout

    def start(self, *extra: str) -> None:
        args = list(extra) or ["--listen", "127.0.0.1:0", "--mdns-interface", "127.0.0.1"]
        self.log = open(self.tour.root / f"{self.name}.log", "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "vaultpeer", "--home", str(self.home), "daemon", "-v", *args],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log, env=self.tour.env,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with Client(Home(self.home).socket_path, timeout=5) as client:
                    client.call("status")
                return
            except (DaemonNotRunning, OSError):
                time.sleep(0.05)
        raise DemoFailed(f"the {self.name}'s daemon did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process = None

    def api(self, method: str, **params: object) -> object:
        with Client(Home(self.home).socket_path, timeout=30) as client:
            return client.call(method, **params)

    def item(self, title: str) -> dict | None:
        try:
            return self.api("item.get", item=title)
        except Exception:  # noqa: BLE001 - not there (yet), or ambiguous: keep polling
            return None


class Tour:
    def __init__(self, root: Path):
        self.root = root
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("VAULTPEER_")}
        self.delays: list[tuple[str, float]] = []

    def say(self, text: str = "") -> None:
        print(text, flush=True)

    def step(self, title: str) -> None:
        self.say()
        self.say(f"== {title}")

    def pair(self, inviter: Device, joiner: Device) -> None:
        """Run `pair` and `pair --join` side by side, show both codes, and answer `y` on both."""
        invite = _Interactive(self, inviter, "pair")
        time.sleep(0.3)
        join = _Interactive(self, joiner, "pair", "--join")
        codes = [invite.wait_for("Verification code:"), join.wait_for("Verification code:")]
        self.say(f"    {inviter.name:>8} shows: {codes[0]}")
        self.say(f"    {joiner.name:>8} shows: {codes[1]}")
        if codes[0] != codes[1]:
            raise DemoFailed("the two devices show different codes")
        self.say("    The codes match, so the demo answers `y` on both devices for you.")
        for side in (invite, join):
            side.wait_for("Do both devices show this code?")
            side.answer("y")
        for side in (invite, join):
            result = side.finish()
            self.say(f"    {side.device.name:>8}: {result}")

    def wait_until(self, condition, what: str, timeout: float = 10) -> None:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if condition():
                return
            time.sleep(0.01)
        raise DemoFailed(f"not within {timeout} s: {what}")

    def wait_for_arrival(self, device: Device, title: str, check=lambda item: True, timeout: float = 10) -> None:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            item = device.item(title)
            if item is not None and check(item):
                return
            time.sleep(0.002)
        raise DemoFailed(f"{title!r} did not reach the {device.name} within {timeout} s")


class _Interactive:
    def __init__(self, tour: Tour, device: Device, *args: str):
        self.device = device
        tour.say(f"$ vaultpeer --home {device.name} {' '.join(args)}")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "vaultpeer", "--home", str(device.home), *args], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=tour.env,
        )
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        buffer = ""
        while char := self.process.stdout.read(1):
            buffer += char
            if char == "\n" or buffer.endswith("[y/N] "):
                self.lines.put(buffer.strip())
                buffer = ""
        self.lines.put(buffer.strip() or None)

    def wait_for(self, prefix: str) -> str:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=1)
            except queue.Empty:
                continue
            if line is None:
                break
            if line.startswith(prefix):
                return line.removeprefix("Verification code:").strip()
        raise DemoFailed(f"the {self.device.name} never printed {prefix!r}")

    def answer(self, text: str) -> None:
        self.process.stdin.write(text + "\n")
        self.process.stdin.flush()

    def finish(self) -> str:
        status = self.process.wait(60)
        rest = []
        while not self.lines.empty():
            line = self.lines.get()
            if line:
                rest.append(line)
        if status != 0:
            raise DemoFailed(f"pairing failed on the {self.device.name}: {' '.join(rest)}")
        return rest[-1] if rest else "paired"


def run_demo(keep: bool = False) -> int:
    root = Path(tempfile.mkdtemp(prefix="vp-demo-", dir="/tmp"))
    tour = Tour(root)
    laptop, desktop, phone = (Device(tour, name) for name in ("laptop", "desktop", "phone"))
    started = time.monotonic()
    try:
        tour.say(f"vaultpeer demo: three devices (laptop, desktop, phone) under {root}")
        tour.say("Each is a home directory with its own daemon on loopback; mDNS stays on 127.0.0.1.")

        tour.step("1. The laptop creates a vault; all three daemons start")
        tour.say("(--quick-kdf: Argon2id at its floor, 64 MiB x 2 passes, to keep the demo fast)")
        laptop.cli("init", "--password-stdin", "--quick-kdf", "--name", "laptop", stdin=PASSWORD + "\n")
        desktop.cli("device", "--name", "desktop", show=False)
        phone.cli("device", "--name", "phone", show=False)
        for device in (laptop, desktop, phone):
            device.start()
        laptop.cli("unlock", "--password-stdin", stdin=PASSWORD + "\n")

        tour.step("2. Pairing: the desktop finds the laptop's invitation by mDNS; both show a code")
        tour.pair(laptop, desktop)
        desktop.cli("unlock", "--password-stdin", stdin=PASSWORD + "\n")

        tour.step("3. The phone pairs with the desktop (the laptop learns of it through the roster)")
        tour.pair(desktop, phone)
        phone.cli("unlock", "--password-stdin", stdin=PASSWORD + "\n")
        phone_id = json.loads(phone.cli("status", "--json", show=False))["device_id"]
        deadline = time.monotonic() + 10
        while phone_id not in [p["device_id"] for p in laptop.api("peer.list")]:
            if time.monotonic() > deadline:
                raise DemoFailed("the laptop never learned of the phone")
            time.sleep(0.05)
        laptop.cli("peers")

        tour.step("4. Items added on one device arrive on the others at once")
        laptop.cli("add", SECRETS["title"], "--field", f"username={SECRETS['username']}",
                   "--field", f"password={SECRETS['password']}", "--field", "url=https://mail.example.org")
        desktop.cli("get", SECRETS["title"])
        tour.say("An app adds items through each device's local API; the demo times their arrival elsewhere:")
        for source, title, targets in ((laptop, "Bank", (desktop, phone)), (phone, "Router", (laptop, desktop))):
            started_at = time.monotonic()
            source.api("item.add", title=title, fields={"username": "admin"}, generate=["password"])
            for device in targets:
                tour.wait_for_arrival(device, title)
                delay = time.monotonic() - started_at
                tour.delays.append((f"{source.name} -> {device.name}", delay))
                tour.say(f"    {title!r} added on the {source.name}, readable on the {device.name} "
                         f"after {delay * 1000:.0f} ms")

        tour.step("5. Concurrent edits of different fields, made offline, merge by themselves")
        _offline_edits(tour, laptop, desktop, ["--field", "username=alice@work.example"],
                       ["--field", "url=https://webmail.example.org"])
        merged = lambda item: item["fields"]["username"] == "alice@work.example" and "webmail" in item["fields"]["url"]
        tour.wait_for_arrival(phone, SECRETS["title"], merged)
        phone.cli("get", SECRETS["title"])

        tour.step("6. The same field edited two ways is a conflict: both values are kept until you choose")
        _offline_edits(tour, laptop, desktop, ["--field", "password=chosen-on-the-laptop"],
                       ["--field", "password=chosen-on-the-desktop"])
        tour.wait_for_arrival(phone, SECRETS["title"], lambda item: item["conflict"])
        conflicts = json.loads(phone.cli("conflicts", "--json", show=False))
        phone.cli("conflicts", "--reveal")
        laptop_value = next(c for c in conflicts[0]["fields"]["password"] if c["value"] == "chosen-on-the-laptop")
        phone.cli("resolve", SECRETS["title"], "--take", laptop_value["revision"])
        tour.wait_for_arrival(laptop, SECRETS["title"], lambda item: not item["conflict"])
        laptop.cli("get", SECRETS["title"], "--field", "password")

        tour.step("7. Unpairing the phone: every member refuses it, and it gets nothing new")
        laptop.cli("unpair", "phone", "--password-stdin", stdin=PASSWORD + "\n")
        tour.say("    the rotated vault key is wrapped under a fresh salt: the desktop locked and asks once")
        tour.wait_until(lambda: desktop.api("status")["locked"], "the desktop took the rotated key")
        desktop.cli("unlock", "--password-stdin", stdin=PASSWORD + "\n")
        laptop.cli("add", "After the phone left", "--field", "password=not-for-the-phone")
        tour.wait_for_arrival(desktop, "After the phone left")
        time.sleep(1.0)
        phone.cli("sync", show=False, expect=None)
        time.sleep(1.0)
        if phone.item("After the phone left") is not None:
            raise DemoFailed("the revoked phone received a new item")
        tour.say("    the desktop has the new item; the phone does not (it keeps what it already had)")
    except DemoFailed as exc:
        tour.say(f"\nDEMO FAILED: {exc}")
        for device in (laptop, desktop, phone):
            log = root / f"{device.name}.log"
            if log.exists():
                tour.say(f"--- {device.name} daemon log (last lines)\n" + log.read_text()[-1500:])
        return 1
    finally:
        for device in (laptop, desktop, phone):
            device.stop()
        if keep:
            print(f"\nKept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    tour.say()
    tour.say("Propagation delays measured (through the local API, loopback):")
    for label, delay in tour.delays:
        tour.say(f"    {label:<20} {delay * 1000:6.0f} ms")
    tour.say(f"Demo finished in {time.monotonic() - started:.1f} s; everything behaved as expected.")
    return 0


def _offline_edits(tour: Tour, first: Device, second: Device, first_edit: list[str], second_edit: list[str]) -> None:
    """Take two devices offline, edit on each, and bring them back: the edits are concurrent."""
    tour.say("(the laptop and the desktop go offline, each is edited, then both come back)")
    for device in (first, second):
        device.stop()
        device.start("--offline")
        device.cli("unlock", "--password-stdin", stdin=PASSWORD + "\n", show=False)
    first.cli("edit", SECRETS["title"], *first_edit)
    second.cli("edit", SECRETS["title"], *second_edit)
    for device in (first, second):
        device.stop()
        device.start()
        device.cli("unlock", "--password-stdin", stdin=PASSWORD + "\n", show=False)
