"""Issue 8, secret leaks: canary secrets sent through every path never appear outside encrypted data.

One scenario (a module fixture, run once) makes a fresh random canary for every secret on every
path and drives two real daemons at debug log level (`daemon -vv`) and the real CLI, through the
daemons and directly: master password, new master passwords (`passwd`, `passwd --recovery-key`),
the recovery key, an item's title, a field's name and value, a password the daemon generated, an
edited value, both values of a same-field conflict made on two offline daemons and then resolved,
an item carried by a bundle, backups (`backup`, `backup verify`, `restore`), imports (CSV, through
the daemon and directly), a KeePass export, and error paths whose input is itself a canary (wrong
passwords, a malformed recovery key, an edit of a missing item, an add while locked, an edit
refused by a conflict, malformed import files, a junk bundle).

Then each test below searches one kind of place for every canary, in UTF-8, UTF-16-LE and hex
(upper and lower case), dashes dropped, and the random part alone:

* every regular file under the scenario's root (all homes with their SQLite WAL/SHM, audit logs,
  the restored home, backups, bundles, the KeePass export, the daemon logs), scanned twice: while
  both daemons run, and at the end. Only the import files the test wrote itself (the person's own
  plaintext, under ``inputs/``) and the packet capture (under ``capture/``) are left out;
* every CLI call's stdout and stderr: a call may print only what the person asked it to show
  (`get --field`, `generate`, the recovery key at `init`, titles where a command names its item,
  the values of `conflicts --json`), and no other canary;
* a loopback packet capture (dumpcap on ``lo``) of the two daemons' ports (pairing, sync, the
  password change, the resolution all cross it) and mDNS (udp 5353), started after the daemons
  listen and before the first pairing, read back raw.
"""

import json
import secrets
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from capture import Capture, leaks_in, send_probe
from daemons import Daemon, Interactive, cleanup, short_tmp, wait_until
from helpers import run_cli
from vaultpeer.core.identity import DeviceKeys
from vaultpeer.core.transport import HandshakeInitiator, frame
from vaultpeer.service.device import load_or_create_keys
from vaultpeer.service.home import Home


# Every canary the scenario sends, by the path it takes. Each run draws new random values.
CANARY_NAMES = (
    "master", "new-master", "third-master", "title", "field-name", "field-value", "edited-value",
    "conflict-laptop", "conflict-desktop", "refused-edit", "locked-title", "locked-value",
    "missing-item", "missing-value", "missing-item-direct", "missing-value-direct",
    "wrong-unlock", "wrong-passwd", "wrong-passwd-new", "wrong-direct", "wrong-backup", "malformed-recovery",
    "import-title", "import-value", "import-direct-title", "import-direct-value", "bad-bitwarden",
    "bad-csv", "bad-kdbx", "bad-kdbx-password", "kdbx-password", "bundle-title",
    "bundle-value", "junk-bundle", "direct-title", "direct-value", "direct-edited",
)
# Learnt while the scenario runs (the vault or the daemon made them): added to the canaries.
LEARNT_NAMES = ("recovery", "generated", "generate-command")


@dataclass
class Call:
    what: str
    stdout: str
    stderr: str
    shows: frozenset[str]


@dataclass
class FileScan:
    files: int = 0
    bytes: int = 0
    log_bytes: int = 0
    names: set[str] = field(default_factory=set)
    findings: list[str] = field(default_factory=list)


@dataclass
class Scenario:
    root: Path
    canaries: dict[str, str]
    calls: list[Call]
    scans: list[FileScan]
    excluded: list[Path]
    capture: "Capture | None"
    capture_skip: str | None
    ports: tuple[int, int]
    #: The client port of each probe a stranger sent the laptop (issue 15), by kind.
    probes: dict[str, int]
    #: Both devices' Noise static public keys and device ids: never on the wire in clear.
    identifiers: dict[str, bytes]
    seconds: float = 0.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class DebugDaemon(Daemon):
    """A daemon on a fixed loopback port (so one capture filter covers every restart), at debug
    level: tests/daemons.py passes one -v and each start here adds the second."""

    def __init__(self, home: Path, port: int):
        super().__init__(home)
        self.port = port

    @property
    def dial(self) -> str:
        return f"127.0.0.1:{self.port}"

    def online(self, *peers: str) -> "DebugDaemon":
        args = ["--listen", self.dial, "-v"]
        for peer in peers:
            args += ["--peer", peer]
        self.start(*args)
        assert self.status()["listen"] == self.dial
        return self

    def offline(self) -> "DebugDaemon":
        self.start("--offline", "-v")
        return self


class Recorder:
    """Runs the real CLI and keeps every call's stdout and stderr for the search."""

    def __init__(self) -> None:
        self.calls: list[Call] = []

    def run(self, home: Path, *args: str, stdin: str = "", shows=(), expect: int | None = 0):
        result = run_cli(home, *args, stdin=stdin)
        self.calls.append(Call(f"{home.name}: vaultpeer {' '.join(args)}", result.stdout, result.stderr,
                               frozenset(shows)))
        if expect is not None:
            assert result.returncode == expect, (args, result.returncode, result.stdout, result.stderr)
        return result

    def pair(self, inviter: DebugDaemon, joiner: DebugDaemon) -> None:
        """`pair` and `pair --join HOST:PORT` (so the pairing crosses the captured port)."""
        invite = Interactive(inviter.home, "pair", "--timeout", "60")
        time.sleep(0.3)  # let the invitation open before the joiner dials it
        join = Interactive(joiner.home, "pair", "--join", inviter.dial, "--timeout", "60")
        codes = [side.wait_for("Verification code:").strip() for side in (invite, join)]
        for side in (invite, join):
            side.wait_for("Do both devices show this code?")
            side.answer("y")
        statuses = [side.finish() for side in (invite, join)]
        for name, side in (("pair", invite), ("pair --join", join)):
            self.calls.append(Call(f"vaultpeer {name}", "".join(side.output), side.stderr(), frozenset()))
        assert statuses == [0, 0] and codes[0] == codes[1], (statuses, codes, self.calls[-2:])


def device_identifiers(*daemons: Daemon) -> dict[str, bytes]:
    """Each device's Noise static public key and device id, raw: what a prober would like to learn."""
    found = {}
    for daemon in daemons:
        keys = load_or_create_keys(Home(daemon.home)).public
        found[f"{daemon.home.name} noise key"] = keys.noise_public
        found[f"{daemon.home.name} device id"] = keys.device_id.raw
    return found


def send_strangers_probes(daemon: "DebugDaemon") -> dict[str, int]:
    """A stranger's first messages, each on its own connection: Noise XX (no invitation is open),
    and Noise IK sealed to the daemon's real key. Both must get silence. The client ports, by kind."""
    target = load_or_create_keys(Home(daemon.home)).public.noise_public
    firsts = {
        "xx": HandshakeInitiator(static_private=DeviceKeys.generate().noise_private, purpose="pair").start(),
        "ik": HandshakeInitiator(static_private=DeviceKeys.generate().noise_private, purpose="sync",
                                 responder_static=target, stamp=time.time_ns()).start(),
    }
    ports = {}
    for kind, first in firsts.items():
        with socket.create_connection(("127.0.0.1", daemon.port), timeout=10) as connection:
            ports[kind] = connection.getsockname()[1]
            connection.sendall(frame(first))
            assert connection.recv(65536) == b"", kind  # closed without a byte
    return ports


def scan_files(root: Path, canaries: dict[str, str], excluded: list[Path]) -> FileScan:
    scan = FileScan()
    for path in sorted(root.rglob("*")):
        if any(path.is_relative_to(part) for part in excluded) or not path.is_file():
            continue
        try:
            data = path.read_bytes()
        except FileNotFoundError:  # a temporary file a daemon just renamed or removed
            continue
        scan.files += 1
        scan.names.add(path.name)
        scan.bytes += len(data)
        if path.suffix == ".log":
            scan.log_bytes += len(data)
        scan.findings += [f"{name} in {path.relative_to(root)}" for name in leaks_in(data, canaries)]
    return scan


def print_figures(scenario: Scenario) -> None:
    """What was searched, for the record (pytest -s shows it)."""
    first, last = scenario.scans
    print(f"\ncanaries: {len(scenario.canaries)}; CLI calls searched: {len(scenario.calls)}; "
          f"files searched: {first.files} (daemons running, {first.bytes} bytes) and {last.files} (at the end, "
          f"{last.bytes} bytes); daemon logs: {last.log_bytes} bytes; scenario: {scenario.seconds:.1f} s")
    if scenario.capture is not None:
        print(f"capture: {scenario.capture.pcap.stat().st_size} bytes, {scenario.capture.packets} packets")


@pytest.fixture(scope="module")
def scenario():
    started = time.monotonic()
    root = short_tmp()
    canaries = {name: f"canary-{name}-{secrets.token_hex(8)}" for name in CANARY_NAMES}
    c = canaries
    laptop, desktop = DebugDaemon(root / "laptop", free_port()), DebugDaemon(root / "desktop", free_port())
    inputs, capture_dir = root / "inputs", root / "capture"
    inputs.mkdir()
    excluded = [inputs, capture_dir]
    rec = Recorder()
    capture: Capture | None = None
    capture_skip = None
    scans: list[FileScan] = []
    L, D = laptop.home, desktop.home

    def wait_for_value(daemon: DebugDaemon, title: str, name: str, expected: str, shows: tuple[str, ...],
                       timeout: float = 15) -> None:
        def arrived() -> bool:
            result = rec.run(daemon.home, "get", title, "--field", name, shows=shows, expect=None)
            return result.returncode == 0 and result.stdout.strip() == expected
        assert wait_until(arrived, timeout, interval=0.2), (daemon.home.name, title, name, daemon.log_tail())

    try:
        # ---- init directly; the recovery key is printed once (that output may show it)
        init = rec.run(L, "init", "--password-stdin", stdin=c["master"] + "\n", shows={"recovery"})
        canaries["recovery"] = next(line.strip() for line in init.stdout.splitlines() if line.startswith("    "))

        # ---- both daemons listen; the capture starts before any traffic between them
        laptop.online()
        desktop.online()
        started_capture = Capture.start(capture_dir, (laptop.port, desktop.port))
        if isinstance(started_capture, str):
            capture_skip = started_capture
        else:
            capture = started_capture
            send_probe(laptop.port, capture.probe)  # a plaintext positive control for the capture test
        rec.run(L, "unlock", "--password-stdin", stdin=c["master"] + "\n")
        rec.pair(laptop, desktop)
        rec.run(D, "unlock", "--password-stdin", stdin=c["master"] + "\n")
        identifiers = device_identifiers(laptop, desktop)
        # ---- a stranger probes the laptop (it has a vault, a member, and no invitation open)
        probes = send_strangers_probes(laptop)

        # ---- an item through the laptop's daemon: title, a field's name and value, a generated password
        rec.run(L, "add", c["title"], "--field", f"notes={c['field-value']}", "--field", f"{c['field-name']}=x",
                "--generate", "password", shows={"title"})
        generated = rec.run(L, "get", c["title"], "--field", "password", shows={"generated"}).stdout.strip()
        canaries["generated"] = generated
        wait_for_value(desktop, c["title"], "notes", c["field-value"], shows=("field-value",))
        rec.run(L, "edit", c["title"], "--field", f"notes={c['edited-value']}", shows={"title"})
        wait_for_value(desktop, c["title"], "notes", c["edited-value"], shows=("field-value", "edited-value"))
        made = rec.run(L, "generate", "--length", "32", shows={"generate-command"}).stdout.strip()
        canaries["generate-command"] = made
        rec.run(L, "edit", c["title"], "--field", f"pin={made}", shows={"title"})

        # ---- errors through the daemon, each carrying a canary
        rec.run(L, "edit", c["missing-item"], "--field", f"password={c['missing-value']}", expect=4)
        rec.run(L, "lock")
        rec.run(L, "add", c["locked-title"], "--field", f"password={c['locked-value']}", expect=9)
        rec.run(L, "unlock", "--password-stdin", stdin=c["wrong-unlock"] + "\n", expect=3)
        rec.run(L, "unlock", "--password-stdin", stdin=c["master"] + "\n")
        rec.run(L, "passwd", "--password-stdin", stdin=f"{c['wrong-passwd']}\n{c['wrong-passwd-new']}\n", expect=3)

        # ---- imports through the daemon: one that works, three malformed files holding canaries
        good_csv = inputs / "import.csv"
        good_csv.write_text(f"title,username,password\n{c['import-title']},someone,{c['import-value']}\n")
        rec.run(L, "import", "csv", str(good_csv))
        wait_for_value(desktop, c["import-title"], "password", c["import-value"], shows=("import-value",))
        bad_json = inputs / "bitwarden.json"
        bad_json.write_text('{"encrypted": false, "items": [{"type": 1, "name": "%s", "login": {"password": "%s"'
                            % (c["bad-bitwarden"], c["bad-bitwarden"]))
        rec.run(L, "import", "bitwarden", str(bad_json), expect=2)
        bad_csv = inputs / "latin1.csv"
        bad_csv.write_bytes(f"title,password\n{c['bad-csv']},".encode() + b"caf\xe9\n")
        rec.run(L, "import", "csv", str(bad_csv), expect=2)
        bad_kdbx = inputs / "junk.kdbx"
        bad_kdbx.write_bytes(b"\x03\xd9\xa2\x9a" + c["bad-kdbx"].encode() * 4)
        rec.run(L, "import", "kdbx", str(bad_kdbx), "--password-stdin", stdin=c["bad-kdbx-password"] + "\n",
                expect=2)

        # ---- a KeePass export, encrypted under its own new password
        kdbx = root / "exports" / "vault.kdbx"
        kdbx.parent.mkdir()
        rec.run(L, "export", "kdbx", str(kdbx), "--password-stdin", stdin=c["kdbx-password"] + "\n")

        # ---- a same-field conflict made on two offline daemons, synced (captured) and resolved
        for daemon in (laptop, desktop):
            daemon.stop()
            daemon.offline()
            rec.run(daemon.home, "unlock", "--password-stdin", stdin=c["master"] + "\n")
        rec.run(L, "edit", c["title"], "--field", f"password={c['conflict-laptop']}", shows={"title"})
        rec.run(D, "edit", c["title"], "--field", f"password={c['conflict-desktop']}", shows={"title"})
        laptop.stop()
        laptop.online()
        rec.run(L, "unlock", "--password-stdin", stdin=c["master"] + "\n")
        desktop.stop()
        desktop.online(laptop.dial)
        rec.run(D, "unlock", "--password-stdin", stdin=c["master"] + "\n")
        conflict_shows = {"title", "conflict-laptop", "conflict-desktop"}

        def conflicts() -> list:
            return json.loads(rec.run(L, "conflicts", "--json", shows=conflict_shows).stdout)
        assert wait_until(conflicts, 15, interval=0.2), laptop.log_tail()
        candidates = {entry["value"]: entry["revision"] for entry in conflicts()[0]["fields"]["password"]}
        assert set(candidates) == {c["conflict-laptop"], c["conflict-desktop"]}
        rec.run(L, "conflicts", shows={"title"})
        rec.run(L, "edit", c["title"], "--field", f"password={c['refused-edit']}", expect=8)
        rec.run(L, "resolve", c["title"], "--take", candidates[c["conflict-laptop"]], shows={"title"})
        wait_for_value(desktop, c["title"], "password", c["conflict-laptop"],
                       shows=("conflict-laptop", "conflict-desktop"))

        # ---- a new master password through the daemon: the new header crosses the capture
        rec.run(L, "passwd", "--password-stdin", stdin=f"{c['master']}\n{c['new-master']}\n")
        rec.run(L, "add", "after the password change", "--field", "note=plain")
        # the desktop's derived key does not open the new header: it locks (exit 9 for reads) and
        # takes the new password
        assert wait_until(lambda: rec.run(D, "get", "after the password change", expect=None).returncode == 9, 15)
        rec.run(D, "unlock", "--password-stdin", stdin=c["new-master"] + "\n")
        assert wait_until(lambda: rec.run(D, "get", "after the password change", expect=None).returncode == 0, 15)

        # ---- a backup sealed by the daemon
        backups = root / "backups"
        backup = Path(json.loads(rec.run(L, "backup", str(backups), "--json").stdout)["file"])

        # ---- an item carried by a bundle to the desktop, offline
        desktop.stop()
        desktop.offline()
        rec.run(D, "unlock", "--password-stdin", stdin=c["new-master"] + "\n")
        rec.run(L, "add", c["bundle-title"], "--field", f"password={c['bundle-value']}", shows={"bundle-title"})
        bundle = root / "bundles" / "for-desktop.vpbundle"
        bundle.parent.mkdir()
        rec.run(L, "bundle", "export", str(bundle), "--for", desktop.status()["device_id"], "--json")
        rec.run(D, "bundle", "import", str(bundle), "--json")
        assert rec.run(D, "get", c["bundle-title"], "--field", "password",
                       shows={"bundle-value"}).stdout.strip() == c["bundle-value"]
        junk = inputs / "junk.vpbundle"
        junk.write_bytes(b"VPBUNDLE" + c["junk-bundle"].encode() * 8)
        assert rec.run(D, "bundle", "import", str(junk), expect=None).returncode != 0

        # ---- every file while both daemons run (WAL and SHM files are there now)
        scans.append(scan_files(root, canaries, excluded))
        if capture is not None:
            capture.stop()
        laptop.stop()
        desktop.stop()

        # ---- the same paths directly, no daemon
        master = c["new-master"] + "\n"
        rec.run(L, "add", c["direct-title"], "--field", f"password={c['direct-value']}", "--password-stdin",
                stdin=master, shows={"direct-title"})
        rec.run(L, "edit", c["direct-title"], "--field", f"password={c['direct-edited']}", "--password-stdin",
                stdin=master, shows={"direct-title"})
        assert rec.run(L, "get", c["direct-title"], "--field", "password", "--password-stdin", stdin=master,
                       shows={"direct-edited"}).stdout.strip() == c["direct-edited"]
        rec.run(L, "history", c["direct-title"], "--password-stdin", stdin=master, shows={"direct-title"})
        # the human view shows the fields that are not secret by default, and masks the password
        rec.run(L, "get", c["title"], "--password-stdin", stdin=master,
                shows={"title", "field-name", "edited-value", "generate-command"})
        rec.run(L, "ls", "--password-stdin", stdin=c["wrong-direct"] + "\n", expect=3)
        rec.run(L, "edit", c["missing-item-direct"], "--field", f"password={c['missing-value-direct']}",
                "--password-stdin", stdin=master, expect=4)
        direct_csv = inputs / "direct.csv"
        direct_csv.write_text(f"name,password\n{c['import-direct-title']},{c['import-direct-value']}\n")
        rec.run(L, "import", "csv", str(direct_csv), "--password-stdin", stdin=master)
        rec.run(L, "check", "--decrypt", "--json", "--password-stdin", stdin=master)
        rec.run(L, "backup", str(backups), "--json", "--password-stdin", stdin=master)
        nobody = root / "verifier"
        rec.run(nobody, "backup", "verify", str(backup), "--json", "--password-stdin", stdin=master)
        rec.run(nobody, "backup", "verify", str(backup), "--recovery-key", "--json", "--password-stdin",
                stdin=canaries["recovery"] + "\n")
        rec.run(nobody, "backup", "verify", str(backup), "--password-stdin", stdin=c["wrong-backup"] + "\n",
                expect=3)
        rec.run(root / "restored", "restore", str(backup), "--json", "--password-stdin", stdin=master)
        assert rec.run(root / "restored", "get", c["title"], "--field", "password", "--password-stdin",
                       stdin=master, shows={"conflict-laptop"}).stdout.strip() == c["conflict-laptop"]
        rec.run(L, "passwd", "--recovery-key", "--password-stdin",
                stdin=f"{c['malformed-recovery']}\n{c['third-master']}\n", expect=3)
        rec.run(L, "passwd", "--recovery-key", "--password-stdin",
                stdin=f"{canaries['recovery']}\n{c['third-master']}\n")
        assert rec.run(L, "get", c["import-direct-title"], "--field", "password", "--password-stdin",
                       stdin=c["third-master"] + "\n", shows={"import-direct-value"}).stdout.strip() \
            == c["import-direct-value"]

        scans.append(scan_files(root, canaries, excluded))
        assert set(canaries) == set(CANARY_NAMES) | set(LEARNT_NAMES)
        result = Scenario(root, canaries, rec.calls, scans, excluded, capture, capture_skip,
                          (laptop.port, desktop.port), probes, identifiers, time.monotonic() - started)
        print_figures(result)
        yield result
    finally:
        if capture is not None and capture.process.poll() is None:
            capture.stop()
        cleanup(root, [laptop, desktop])


def check_no_canary_reaches_any_file_or_daemon_log(scenario):
    """Every file under every home, backup, bundle, export and daemon log (debug level), while the
    daemons run and after they stopped."""
    findings = [finding for scan in scenario.scans for finding in scan.findings]
    assert not findings, "\n".join(findings)
    first, last = scenario.scans
    assert first.files >= 10 and last.files >= first.files and first.log_bytes > 1_000
    logs = [p for p in scenario.root.glob("*.log")]
    assert {p.name for p in logs} == {"laptop.log", "desktop.log"}
    assert all(" DEBUG " in p.read_text() for p in logs), "the daemons did not log at debug level"
    assert {"vault.sqlite3", "vault.sqlite3-wal", "vault.sqlite3-shm"} <= first.names
    assert any(name.endswith(".vpbak") for name in last.names) and "vault.kdbx" in last.names
    # the search works: the person's own import files, left out above, do hold their canaries
    inputs = scan_files(scenario.excluded[0], scenario.canaries, [])
    assert {f.split(" in ")[0] for f in inputs.findings} >= {"import-title", "import-value", "bad-csv",
                                                            "bad-bitwarden", "bad-kdbx", "junk-bundle"}


def check_no_cli_output_shows_a_canary_it_was_not_asked_for(scenario):
    """stdout and stderr of every call: only what the person asked to see (`get --field`, `generate`,
    the recovery key at init, titles, conflict values under `conflicts --json`)."""
    findings = []
    for call in scenario.calls:
        for stream, text, allowed in (("stdout", call.stdout, call.shows), ("stderr", call.stderr, frozenset())):
            findings += [f"{name} on the {stream} of {call.what}"
                         for name in leaks_in(text.encode(), scenario.canaries, allowed)]
    assert not findings, "\n".join(findings)
    assert len(scenario.calls) > 60
    # the search works: the calls that were asked to show a value did show it
    shown = {name for call in scenario.calls for name in call.shows
             if leaks_in(call.stdout.encode(), {name: scenario.canaries[name]})}
    assert {"recovery", "generated", "generate-command", "direct-edited", "bundle-value"} <= shown


def check_no_canary_crosses_loopback_outside_encrypted_frames(scenario):
    """The pairing, every sync, the password change and the conflict's resolution crossed this capture."""
    if scenario.capture is None:
        pytest.skip(scenario.capture_skip)
    capture = scenario.capture
    data = capture.pcap.read_bytes()
    leaked = leaks_in(data, scenario.canaries)
    assert not leaked, f"canaries in the capture: {leaked}"
    # the capture really holds the traffic: the plaintext probe, both ports' TCP payloads, mDNS
    assert capture.probe.encode() in data, "the capture missed the probe sent before the pairing"
    laptop, desktop = scenario.ports
    payload = {port: capture.read(f"tcp.len > 0 and tcp.port == {port}", "tcp.len") for port in (laptop, desktop)}
    sizes = {port: sum(int(row[0]) for row in rows) for port, rows in payload.items()}
    # the pairing (always to the laptop), the syncs, the new header and the resolution
    assert sizes[laptop] > 1_000 and sum(sizes.values()) > 10_000, sizes
    ours = capture.read(f"mdns and (dns.srv.port == {laptop} or dns.srv.port == {desktop})", "frame.len")
    assert ours, "none of the daemons' mDNS announcements was captured"

    # issue 15: no static key or device id crosses in clear, in any form
    for name, value in scenario.identifiers.items():
        for form in (value, value.hex().encode(), value.hex().upper().encode()):
            assert form not in data, f"{name} is in the capture"
    # member links over Noise IK crossed it (the desktop dials the laptop's address after a restart)
    firsts = [bytes.fromhex(row[0].replace(":", "")) for row in
              capture.read(f"tcp.len > 0 and tcp.dstport == {laptop}", "tcp.payload") if row and row[0]]
    links = [p for p in firsts if len(p) > 3 and p[2] == 0x01 and int.from_bytes(p[:2], "big") == len(p) - 2]
    assert links, "no member link's IK first message was captured"
    # the probes crossed it too: the stranger's first messages went in, and not one byte came back
    for kind, port in scenario.probes.items():
        sent = capture.read(f"tcp.len > 0 and tcp.srcport == {port} and tcp.dstport == {laptop}", "tcp.len")
        answered = capture.read(f"tcp.len > 0 and tcp.srcport == {laptop} and tcp.dstport == {port}", "tcp.len")
        assert sent and not answered, (kind, sent, answered)
    print(f"\ncapture: {capture.packets} packets, {sum(map(len, payload.values()))} with TCP payload to or from "
          f"the daemons ({sum(sizes.values())} payload bytes), {len(ours)} mDNS from them")


def test_no_canary_leaks_to_a_file_a_log_an_unasked_output_or_loopback(scenario):
    """One test over the one scenario (it takes half a minute to play): .ci/run hands tests to
    whichever worker is free, and each worker that ran a test of this file would play it again.
    The loopback check comes last: it skips where no capture could be made."""
    check_no_canary_reaches_any_file_or_daemon_log(scenario)
    check_no_cli_output_shows_a_canary_it_was_not_asked_for(scenario)
    check_no_canary_crosses_loopback_outside_encrypted_frames(scenario)
