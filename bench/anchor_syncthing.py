"""The anchor for issue 7: a KeePass ``.kdbx`` synced between two machines by Syncthing.

The workload vaultpeer is compared against: a database of N entries (1,000 and 10,000) made with
pykeepass, kept in a Syncthing folder shared by two Syncthing instances; one entry's password is
changed on A and saved (KeePass rewrites and re-encrypts the whole file), and we time how long
until B holds a byte-identical file and count the bytes the two Syncthings exchanged for it.

    bench/setup                                   # once: installs syncthing + iproute2, the venv
    .venv/bin/python bench/anchor_syncthing.py [--entries 1000 10000] [--edits 5] \\
        [--json bench/results/anchor_syncthing.json]

Needs root (for ``ip netns``; as root no sudo is needed) and Debian's ``syncthing``. Without them
it says why and skips. Both Syncthings run in a network namespace of their own that has only
loopback, with global and local discovery, relays, NAT traversal (UPnP and STUN), usage and crash
reporting and upgrades all off, the GUI/REST API on 127.0.0.1, and the folder on Syncthing's
default watcher settings (fsWatcherEnabled, fsWatcherDelayS=10, rescanIntervalS=3600): that
watcher delay is what a user of Syncthing waits, so expect about 10 s per edit.

Bytes are counted by ``benchlib.CountingProxy``: A knows B only at the proxy's address and B
knows A as ``dynamic`` (no discovery, so B never dials), so every byte of the one connection
crosses the proxy: TCP payload both ways (TLS records included), the same measure as vaultpeer's.

As a module: ``measure_syncthing(entries, edits)`` returns the figures for one database size
(``{"skipped": reason}`` when it cannot run here; raises ``AnchorError`` when a run fails).
It re-runs this script with ``--inside`` in the namespace (``ip netns exec``): that process
starts the Syncthings, the proxy and the driver, and prints its result as JSON on its last line.
"""

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))

from benchlib import CountingProxy, percentiles, save_json  # noqa: E402

WAIT_S = 120              # the bound on every single wait
POLL_S = 0.02             # how often B's file is looked at while an edit is in flight
QUIET_S = 1.0             # no byte on the wire for this long (and both idle): an edit is over
FOLDER_ID = "vault"
DB_NAME = "Passwords.kdbx"
DB_PASSWORD = "correct horse battery staple (bench only)"
RESULT_PREFIX = "@anchor-result "
NAMESPACE_PREFIX = "vpbench-"  # then the pid of the process that made it
GROUPS = ["Internet", "Email", "Banking", "Work", "Shopping", "Social", "Servers", "Misc"]


class AnchorError(RuntimeError):
    """A Syncthing anchor run that started but could not finish (a bounded wait ran out...)."""


# ---------------------------------------------------------------- outside: namespace and driver

def measure_syncthing(entries: int, edits: int, *, workdir: Path | None = None, log=print) -> dict:
    """Time and count ``edits`` one-entry edits of a ``entries``-entry .kdbx synced by Syncthing.

    Returns the figures (see ``_inside``), or ``{"skipped": reason}`` when Syncthing or ``ip`` is
    missing, we are not root, or the namespace cannot be made. Raises ``AnchorError`` on a failed
    run. ``workdir``: where the Syncthing homes and folders go (a temporary directory, removed at
    the end, when None). The namespace and every process started are gone when this returns.
    """
    if entries < 1 or edits < 1:
        raise ValueError("entries and edits must be at least 1")
    reason = _why_not_here()
    if reason:
        log(f"syncthing anchor skipped: {reason}")
        return {"skipped": reason}
    _delete_stale_namespaces()
    namespace = f"{NAMESPACE_PREFIX}{os.getpid()}-{os.urandom(3).hex()}"
    own_dir = workdir is None
    root = Path(tempfile.mkdtemp(prefix="vpbench-syncthing-")) if own_dir else Path(workdir)
    made_namespace = False
    process = None
    try:
        add = _run(["ip", "netns", "add", namespace])
        if add.returncode != 0:
            reason = f"cannot make a network namespace (ip netns add: {add.stderr.strip() or add.returncode})"
            log(f"syncthing anchor skipped: {reason}")
            return {"skipped": reason}
        made_namespace = True
        up = _run(["ip", "netns", "exec", namespace, "ip", "link", "set", "lo", "up"])
        if up.returncode != 0:
            reason = f"cannot bring up loopback in the namespace: {up.stderr.strip() or up.returncode}"
            log(f"syncthing anchor skipped: {reason}")
            return {"skipped": reason}
        command = ["ip", "netns", "exec", namespace, sys.executable, str(Path(__file__).resolve()), "--inside",
                   "--entries", str(entries), "--edits", str(edits), "--workdir", str(root)]
        # a session of its own, so a Ctrl-C here does not hit it half-way through; and a SIGTERM
        # (it then stops its Syncthings) if this process is killed outright
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   start_new_session=True, preexec_fn=lambda: _die_with_parent(signal.SIGTERM))
        result = _read_result(process, log, budget_s=240 + (edits + 1) * 3 * WAIT_S)
        if "error" in result:
            raise AnchorError(f"syncthing anchor ({entries} entries): {result['error']}")
        result["network"]["namespace"] = namespace
        return result
    finally:
        if process is not None:
            _stop_group(process)
        if made_namespace:
            _kill_namespace_processes(namespace)
            _run(["ip", "netns", "del", namespace])
        if own_dir:
            shutil.rmtree(root, ignore_errors=True)


def _why_not_here() -> str | None:
    if not shutil.which("syncthing"):
        return "syncthing is not installed (run bench/setup, or apt-get install syncthing)"
    if not shutil.which("ip"):
        return "ip (iproute2) is not installed (run bench/setup)"
    if os.geteuid() != 0:
        return "needs root to make a network namespace (ip netns); run it as root or with sudo"
    return None


def _run(command: list[str], timeout: float = 60) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as error:
        return subprocess.CompletedProcess(command, 1, "", str(error))


def _read_result(process: subprocess.Popen, log, budget_s: float) -> dict:
    """Pass the inside process's progress lines to ``log`` and return its JSON result."""
    import queue
    import threading

    lines: queue.Queue = queue.Queue()

    def pump():
        for line in process.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + budget_s
    result = None
    while True:
        try:
            line = lines.get(timeout=max(0.1, min(1.0, deadline - time.monotonic())))
        except queue.Empty:
            if time.monotonic() > deadline:
                raise AnchorError(f"the Syncthing run took more than {budget_s:.0f} s; stopped it") from None
            continue
        if line is None:
            break
        if line.startswith(RESULT_PREFIX):
            result = json.loads(line[len(RESULT_PREFIX):])
        else:
            log(line)
    status = process.wait(timeout=WAIT_S)
    if result is None:
        raise AnchorError(f"the inside process (in the namespace) ended with status {status} and no result")
    return result


def _delete_stale_namespaces() -> None:
    """Delete our namespaces left by runs that were killed outright (SIGKILL leaves no finally):
    those named after a process that no longer exists and with no process inside."""
    listing = _run(["ip", "netns", "list"]).stdout.split("\n")
    for line in listing:
        name = line.split(" ")[0]
        if not name.startswith(NAMESPACE_PREFIX):
            continue
        pid = name[len(NAMESPACE_PREFIX):].split("-")[0]
        if not pid.isdigit() or Path(f"/proc/{pid}").exists():
            continue
        if not _run(["ip", "netns", "pids", name]).stdout.strip():
            _run(["ip", "netns", "del", name])


def _kill_namespace_processes(namespace: str) -> None:
    """SIGKILL whatever still runs in our namespace (nothing, normally): a namespace with a
    process in it outlives ``ip netns del``."""
    pids = _run(["ip", "netns", "pids", namespace]).stdout.split()
    for pid in pids:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ValueError, ProcessLookupError, PermissionError):
            pass
    if pids:
        time.sleep(0.5)


def _stop_group(process: subprocess.Popen) -> None:
    """SIGTERM the inside process's group (it stops its Syncthings), then SIGKILL what is left.

    The Syncthings themselves move to process groups of their own (setLowPriority); they die
    with the inside process (PDEATHSIG) and ``_kill_namespace_processes`` is the last net."""
    for sig, grace in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            continue
        if sig == signal.SIGTERM:
            # the leader is gone; anything it left behind in the group goes too
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            return


# ---------------------------------------------------------------- inside the namespace

class Syncthing:
    """One Syncthing instance: its home, folder, ports, API key and process."""

    def __init__(self, name: str, root: Path, new_cli: bool):
        self.name = name
        self.home = root / name / "home"
        self.folder = root / name / "folder"
        self.new_cli = new_cli
        self.api_key = os.urandom(16).hex()
        self.process: subprocess.Popen | None = None
        self.log_path = root / name / "syncthing.log"
        self.gui_port = self.listen_port = 0
        self.device_id = ""

    def generate(self) -> None:
        self.home.mkdir(parents=True)
        self.folder.mkdir(parents=True)
        (self.folder / ".stfolder").mkdir()  # the folder marker, so Syncthing takes the folder as is
        command = (["syncthing", "generate", "--home", str(self.home), "--no-default-folder"] if self.new_cli
                   else ["syncthing", f"-generate={self.home}"])
        done = subprocess.run(command, capture_output=True, text=True, timeout=WAIT_S, env=self.env())
        if done.returncode != 0:
            raise AnchorError(f"syncthing generate failed: {(done.stderr or done.stdout).strip()[-500:]}")
        for line in (done.stdout + done.stderr).splitlines():
            if "Device ID:" in line:
                self.device_id = line.split("Device ID:")[1].strip()
        if not self.device_id:
            raise AnchorError("syncthing generate printed no device ID")

    def env(self) -> dict:
        # STMONITORED: run Syncthing itself, not its monitor that re-spawns it (its own restart
        # logic is not wanted here): one process, ours to stop, and SIGKILLed if we die
        # (PDEATHSIG survives its move to a process group of its own for setLowPriority)
        return dict(os.environ, HOME=str(self.home), STNOUPGRADE="1", STNORESTART="1", STNODEFAULTFOLDER="1",
                    STMONITORED="yes")

    def configure(self, peer: "Syncthing", peer_address: str) -> dict:
        """Edit the generated config.xml: ports, key, everything that talks to the world off, one folder."""
        import copy
        import xml.etree.ElementTree as ET

        path = self.home / "config.xml"
        tree = ET.parse(path)
        config = tree.getroot()
        gui = config.find("gui")
        gui.set("tls", "false")
        gui.find("address").text = f"127.0.0.1:{self.gui_port}"
        gui.find("apikey").text = self.api_key
        options = config.find("options")
        settings = {
            "listenAddress": f"tcp://127.0.0.1:{self.listen_port}",
            "globalAnnounceEnabled": "false",
            "localAnnounceEnabled": "false",
            "relaysEnabled": "false",
            "natEnabled": "false",
            "stunKeepaliveStartS": "0",  # no STUN either (the other half of NAT traversal)
            "urAccepted": "-1",
            "crashReportingEnabled": "false",
            "autoUpgradeIntervalH": "0",
            "startBrowser": "false",
        }
        for key, value in settings.items():
            element = options.find(key)
            if element is None:
                element = ET.SubElement(options, key)
            element.text = value
        defaults = config.find("defaults")
        # the peer device, from the version's own defaults
        device = copy.deepcopy(defaults.find("device"))
        device.set("id", peer.device_id)
        device.set("name", peer.name)
        device.find("address").text = peer_address
        config.insert(1, device)
        # one shared folder, from the version's own folder defaults (watcher on, 10 s delay, hourly rescan)
        folder = copy.deepcopy(defaults.find("folder"))
        folder.set("id", FOLDER_ID)
        folder.set("label", FOLDER_ID)
        folder.set("path", str(self.folder))
        folder.set("type", "sendreceive")
        for old in folder.findall("device"):
            folder.remove(old)
        for device_id in (self.device_id, peer.device_id):
            member = ET.Element("device", {"id": device_id, "introducedBy": ""})
            ET.SubElement(member, "encryptionPassword").text = ""
            folder.insert(1, member)
        config.insert(2, folder)
        tree.write(path)
        return {"folder": {key: folder.get(key) for key in ("type", "rescanIntervalS", "fsWatcherEnabled",
                                                             "fsWatcherDelayS")},
                "options": settings, "peer_address": peer_address,
                "device_compression": device.get("compression")}

    def start(self) -> None:
        command = (["syncthing", "serve", "--home", str(self.home), "--no-browser", "--no-restart",
                    "--no-upgrade", "--no-default-folder", "--logflags=3"] if self.new_cli
                   else ["syncthing", f"-home={self.home}", "-no-browser", "-no-restart", "-logflags=3"])
        log_file = open(self.log_path, "ab")
        self.process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, env=self.env(),
                                        stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        log_file.close()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def rest(self, path: str):
        import urllib.request

        if self.process is not None and self.process.poll() is not None:
            raise AnchorError(f"syncthing {self.name} exited (status {self.process.returncode}); "
                              f"its log ends with:\n{self.log_tail()}")
        # no proxy from the environment: this is 127.0.0.1 in the namespace
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        request = urllib.request.Request(f"http://127.0.0.1:{self.gui_port}{path}",
                                         headers={"X-API-Key": self.api_key})
        with opener.open(request, timeout=10) as response:
            return json.load(response)

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def _die_with_parent(sig: int = signal.SIGKILL) -> None:
    """In a child before exec: have the kernel send it ``sig`` if its parent dies first."""
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, sig)


def _wait(what: str, check, timeout: float = WAIT_S, interval: float = 0.25):
    """Call ``check`` until it returns something true; AnchorError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except AnchorError:
            raise
        except Exception as error:  # the REST API not up yet, a file half there...
            last_error = error
        time.sleep(interval)
    raise AnchorError(f"timed out after {timeout:.0f} s waiting for {what}"
                      + (f" (last error: {last_error})" if last_error else ""))


def _free_ports(count: int) -> list[int]:
    import socket

    sockets = [socket.create_server(("127.0.0.1", 0)) for _ in range(count)]
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _digest(path: Path) -> str | None:
    import hashlib

    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


def _wait_identical(path: Path, digest: str, timeout: float = WAIT_S) -> float:
    """Poll ``path`` every 20 ms until its content hashes to ``digest``; the monotonic time it did.

    Only a changed stat (inode, size, mtime) is re-hashed, so polling costs next to nothing;
    Syncthing writes a temporary file and renames it, so the file is never seen half-written.
    """
    deadline = time.monotonic() + timeout
    seen = None
    while True:
        now = time.monotonic()
        try:
            st = path.stat()
            signature = (st.st_ino, st.st_size, st.st_mtime_ns)
        except FileNotFoundError:
            signature = None
        if signature is not None and signature != seen:
            seen = signature
            if _digest(path) == digest:
                return now
        if now > deadline:
            raise AnchorError(f"B did not hold A's new {path.name} within {timeout:.0f} s")
        time.sleep(POLL_S)


def _quiesce(a: Syncthing, b: Syncthing, proxy: CountingProxy, timeout: float = WAIT_S) -> None:
    """Wait until both folders are idle with nothing needed, each knows the other is up to date,
    and no byte has crossed the proxy for QUIET_S seconds."""
    state = {"total": proxy.total, "since": time.monotonic()}

    def settled():
        total = proxy.total
        if total != state["total"]:
            state["total"], state["since"] = total, time.monotonic()
            return False
        for here, there in ((a, b), (b, a)):
            status = here.rest(f"/rest/db/status?folder={FOLDER_ID}")
            if status.get("state") != "idle" or status.get("needBytes", 0) or status.get("needTotalItems", 0):
                return False
            completion = here.rest(f"/rest/db/completion?folder={FOLDER_ID}&device={there.device_id}")
            if completion.get("completion") != 100:
                return False
        return time.monotonic() - state["since"] >= QUIET_S

    _wait("both Syncthings to be idle and the wire quiet", settled, timeout=timeout, interval=0.2)


def _let_watcher_idle(last_scan: float, delay: float) -> None:
    """Sleep until A's watcher has gone idle after its last scan (at or before ``last_scan``).

    Syncthing's watcher ticks every fsWatcherDelayS while it has work and stops after one empty
    tick; a change scans at the first tick that finds it older than half the delay. So an edit
    made within a tick of the last scan waits 5-15 s depending on phase, and an edit on an idle
    watcher (a person changing one password now and then) waits the full delay. We measure the
    latter: after the last scan, the empty tick (``delay`` s later) must have passed.
    """
    remaining = last_scan + delay + 2.0 - time.monotonic()
    if remaining > 0:
        time.sleep(remaining)


def _make_database(path: Path, entries: int):
    """A vault-like .kdbx: ``entries`` entries in 8 groups with title, username, password and URL."""
    import random
    import string

    from pykeepass import PyKeePass, create_database

    rng = random.Random(entries)  # a benchmark: the same file contents each run
    alphabet = string.ascii_letters + string.digits + "!#$%&*+-=?@^_"
    kp = create_database(str(path), password=DB_PASSWORD)
    groups = [kp.add_group(kp.root_group, name) for name in GROUPS]
    for n in range(entries):
        kp.add_entry(groups[n % len(groups)], _title(n), f"user{n}@example.org",
                     "".join(rng.choice(alphabet) for _ in range(20)),
                     url=f"https://site{n:05d}.example.org/login", force_creation=True)
    kp.save()
    # opened and saved once more, as every later save is (the first save keeps the blank
    # template's whitespace, ~1 KB more), so the initial file is the same shape as the edited ones
    kp = PyKeePass(str(path), password=DB_PASSWORD)
    kp.save()
    return kp


def _title(n: int) -> str:
    return f"Site {n:05d}"


def _kdf_parameters(kp) -> dict:
    params = kp.kdbx.header.value.dynamic_header.kdf_parameters.data.dict
    result = {"algorithm": {"argon2": "Argon2d", "argon2id": "Argon2id"}.get(kp.kdf_algorithm, kp.kdf_algorithm)}
    if "M" in params:
        result.update(memory_kib=params["M"].value // 1024, iterations=params["I"].value,
                      parallelism=params["P"].value, version=hex(params["V"].value))
    elif "R" in params:
        result.update(rounds=params["R"].value)
    return result


def _edit_once(path: Path, n: int, rng) -> tuple[float, float]:
    """Open the database, change entry ``n``'s password as KeePass does (old one to history), save.

    Returns (open seconds, save seconds). pykeepass saves to a temporary file beside the
    database and renames it over, as KeePassXC does: the whole file is re-encrypted.
    """
    import string

    from pykeepass import PyKeePass

    start = time.perf_counter()
    kp = PyKeePass(str(path), password=DB_PASSWORD)
    opened = time.perf_counter()
    entry = kp.find_entries(title=_title(n), first=True)
    entry.save_history()
    entry.password = "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(24))
    entry.touch(modify=True)
    before_save = time.perf_counter()
    kp.save()
    return opened - start, time.perf_counter() - before_save


def _bytes(proxy: CountingProxy) -> dict:
    with proxy.lock:
        return {"a_to_b": proxy.forward, "b_to_a": proxy.backward, "total": proxy.forward + proxy.backward}


def _inside(entries: int, edits: int, root: Path, say) -> dict:
    """Run the whole workload in this (isolated) namespace and return the figures."""
    import random
    import socket

    interfaces = sorted(name for _, name in socket.if_nameindex())
    if interfaces != ["lo"]:
        raise AnchorError(f"refusing to run outside a loopback-only namespace (interfaces: {interfaces})")
    version = subprocess.run(["syncthing", "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    help_text = subprocess.run(["syncthing", "--help"], capture_output=True, text=True, timeout=30)
    new_cli = "serve" in help_text.stdout + help_text.stderr  # 1.18+: subcommands (generate, serve)

    a, b = Syncthing("a", root, new_cli), Syncthing("b", root, new_cli)
    proxy = None
    try:
        for node in (a, b):
            node.generate()
        a.gui_port, b.gui_port, a.listen_port, b.listen_port = _free_ports(4)
        proxy = CountingProxy(("127.0.0.1", b.listen_port))
        proxy_address = f"tcp://127.0.0.1:{proxy.address[1]}"
        config = a.configure(b, proxy_address)  # A reaches B only through the proxy
        b.configure(a, "dynamic")                # and B never dials A (no discovery to find it)

        # B first, so that A's first dial finds it (a failed dial waits reconnectionIntervalS=60 s)
        started = time.monotonic()
        b.start()
        _wait("syncthing B's REST API", lambda: b.rest("/rest/system/status"))
        _wait("syncthing B to listen",
              lambda: socket.create_connection(("127.0.0.1", b.listen_port), 2).close() or True)
        a.start()
        a_started = time.monotonic()
        _wait("syncthing A's REST API", lambda: a.rest("/rest/system/status"))
        _wait("A to connect to B", lambda: a.rest("/rest/system/connections")["connections"]
              .get(b.device_id, {}).get("connected"))
        _quiesce(a, b, proxy)
        connection = a.rest("/rest/system/connections")["connections"][b.device_id]
        connect = {"seconds": time.monotonic() - started, "bytes": _bytes(proxy),
                   "note": "from starting B to both idle: TLS handshake, cluster config, empty indexes"}
        say(f"  syncthing {version.split()[1]} A and B connected through the proxy "
            f"({connect['seconds']:.1f} s, {connect['bytes']['total']} bytes)")

        # the database, built outside the shared folder, then moved in at once
        staging = root / "staging"
        staging.mkdir()
        made_s = time.perf_counter()
        kp = _make_database(staging / DB_NAME, entries)
        made_s = time.perf_counter() - made_s
        kdbx = {"format": f"KDBX {kp.version[0]}.{kp.version[1]}", "cipher": kp.encryption_algorithm,
                "kdf": _kdf_parameters(kp),
                "compression": bool(kp.kdbx.header.value.dynamic_header.compression_flags.data.compression),
                "entries": entries, "groups": len(GROUPS), "create_s": made_s}
        del kp
        a_db, b_db = a.folder / DB_NAME, b.folder / DB_NAME
        watcher_delay = float(config["folder"]["fsWatcherDelayS"])
        _let_watcher_idle(a_started, watcher_delay)
        proxy.reset()
        os.replace(staging / DB_NAME, a_db)
        placed = time.monotonic()
        initial_bytes_file = a_db.stat().st_size
        say(f"  {entries} entries, {initial_bytes_file} bytes; waiting for the initial sync")
        arrived = _wait_identical(b_db, _digest(a_db))
        _quiesce(a, b, proxy)
        initial = {"latency_s": arrived - placed, "bytes": _bytes(proxy), "file_bytes": initial_bytes_file}
        say(f"  initial sync {initial['latency_s']:.2f} s, {initial['bytes']['total']} bytes")

        rng = random.Random(entries + 1)
        runs = []
        for i in range(edits):
            _let_watcher_idle(arrived, watcher_delay)
            before = a.rest("/rest/system/connections")["connections"][b.device_id]
            proxy.reset()
            open_s, save_s = _edit_once(a_db, rng.randrange(entries), rng)
            saved = time.monotonic()
            arrived = _wait_identical(b_db, _digest(a_db))
            _quiesce(a, b, proxy)
            after = a.rest("/rest/system/connections")["connections"][b.device_id]
            # Syncthing's watcher sees the change when the save starts writing, hence the second figure
            run = {"latency_s": arrived - saved, "since_save_start_s": arrived - saved + save_s,
                   "save_s": save_s, "open_s": open_s,
                   "file_bytes": a_db.stat().st_size, "bytes": _bytes(proxy),
                   "syncthing_counted": {"out": after["outBytesTotal"] - before["outBytesTotal"],
                                         "in": after["inBytesTotal"] - before["inBytesTotal"]}}
            runs.append(run)
            say(f"  edit {i + 1}/{edits}: {run['latency_s']:.2f} s to B, {run['bytes']['total']} bytes "
                f"(file {run['file_bytes']} bytes, save {save_s:.2f} s)")

        totals = [r["bytes"]["total"] for r in runs]
        return {
            "anchor": "KeePass .kdbx synced by Syncthing",
            "syncthing_version": version,
            "entries": entries,
            "edits": edits,
            "kdbx": kdbx,
            "syncthing_config": dict(config, gui="127.0.0.1, API key, no TLS",
                                     env={"STNOUPGRADE": "1", "STNORESTART": "1",
                                          "STMONITORED": "yes (no monitor process)"}),
            "network": {"interfaces": interfaces, "proxy_connections": proxy.connections,
                        "a_connected_to": connection.get("address"), "proxy_address": proxy_address,
                        "through_proxy": proxy.connections >= 1
                        and connection.get("address", "").endswith(f":{proxy.address[1]}")},
            "connect": connect,
            "initial_sync": initial,
            "runs": runs,
            "latency_s": percentiles([r["latency_s"] for r in runs], points=(50,)),
            "bytes": {"median": statistics.median(totals),
                      "a_to_b_median": statistics.median(r["bytes"]["a_to_b"] for r in runs),
                      "b_to_a_median": statistics.median(r["bytes"]["b_to_a"] for r in runs),
                      "min": min(totals), "max": max(totals)},
            "since_save_start_s": percentiles([r["since_save_start_s"] for r in runs], points=(50,)),
            "file_bytes": runs[-1]["file_bytes"],
            "save_s": percentiles([r["save_s"] for r in runs], points=(50,)),
            "method": ("latency: from the end of the save on A until B's file hashes the same (polled every "
                       "20 ms); each edit starts on an idle watcher (fsWatcherDelayS + 2 s after the last "
                       "sync), as an occasional edit by a person does; bytes: TCP payload both ways through "
                       "the proxy from just before the edit until both sides are idle and the wire is quiet "
                       f"for {QUIET_S} s"),
        }
    finally:
        for node in (a, b):
            node.stop()
        if proxy is not None:
            proxy.close()


def _inside_main(args) -> int:
    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)

    def say(text):
        print(text, flush=True)

    try:
        result = _inside(args.entries[0], args.edits, args.workdir, say)
    except AnchorError as error:
        result = {"error": str(error)}
    print(RESULT_PREFIX + json.dumps(result), flush=True)
    return 1 if "error" in result else 0


# ---------------------------------------------------------------- the script

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, nargs="+", default=[1000, 10000],
                        help="database sizes to measure (entries)")
    parser.add_argument("--edits", type=int, default=5, help="one-entry edits per database (each takes ~10 s)")
    parser.add_argument("--json", type=Path, default=Path("bench/results/anchor_syncthing.json"),
                        help="where to write the figures as JSON")
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.edits < 1:
        parser.error("--edits must be at least 1")
    if args.inside:
        return _inside_main(args)

    def stop(signum, frame):  # a SIGTERM cleans up as a Ctrl-C does
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)

    results: dict[str, object] = {}
    for entries in args.entries:
        print(f"syncthing anchor: {entries} entries, {args.edits} edits")
        try:
            results[str(entries)] = measure_syncthing(entries, args.edits)
        except AnchorError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("error: interrupted (Syncthings stopped, namespace deleted)", file=sys.stderr)
            return 130
    print_table(results)
    save_json(args.json, {"syncthing": results})
    return 0


def print_table(results: dict) -> None:
    print("\nKeePass .kdbx synced by Syncthing (watcher delay 10 s), one-entry edits")
    header = (f"  {'entries':>8}  {'file':>10}  {'initial sync':>22}  {'edit latency p50 (min-max)':>27}  "
              f"{'bytes/edit':>10}  {'a->b':>9}  {'b->a':>7}  {'save':>6}")
    print(header)
    for entries, r in results.items():
        if "skipped" in r:
            print(f"  {entries:>8}  skipped: {r['skipped']}")
            continue
        lat, init = r["latency_s"], r["initial_sync"]
        print(f"  {entries:>8}  {r['file_bytes']:>10}  {init['latency_s']:>7.2f} s {init['bytes']['total']:>10} B  "
              f"{lat['p50']:>9.2f} s ({lat['min']:.2f}-{lat['max']:.2f})  {r['bytes']['median']:>10.0f}  "
              f"{r['bytes']['a_to_b_median']:>9.0f}  {r['bytes']['b_to_a_median']:>7.0f}  "
              f"{r['save_s']['p50']:>4.2f} s")


if __name__ == "__main__":
    sys.exit(main())
