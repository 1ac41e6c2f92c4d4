"""systemd/vaultpeer.service: its settings, `systemd-analyze verify`, and the real daemon under its
seccomp rules (emulated with libseccomp by tests/sandbox.py, as systemd would apply them)."""

import ast
import json
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import sandbox
from daemons import short_tmp
from helpers import PASSWORD, cli_env, run_cli
from vaultpeer.client import Client

UNIT = Path(__file__).resolve().parent.parent / "systemd" / "vaultpeer.service"
VAULTPEER = Path(sys.executable).parent / "vaultpeer"
needs_systemd_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze is not installed (Debian package systemd; .ci/run installs it where it can)")


def sections(text: str) -> dict[str, dict[str, list[str]]]:
    """[Section] -> key -> every value, in order (systemd allows repeated keys)."""
    result: dict[str, dict[str, list[str]]] = {}
    current = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = result.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key, []).append(value)
    return result


def the(unit: dict, section: str, key: str) -> str:
    values = unit[section].get(key)
    assert values, f"{key}= missing from [{section}]"
    return values[-1]


def test_the_unit_is_a_hardened_notify_user_service():
    unit = sections(UNIT.read_text())
    service = "Service"
    assert the(unit, service, "Type") == "notify"
    assert the(unit, service, "ExecStart") == "%h/.local/bin/vaultpeer daemon"
    assert the(unit, service, "Restart") == "on-failure"
    assert the(unit, "Install", "WantedBy") == "default.target"  # a user unit: no multi-user.target
    expected = {
        "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "read-only",
        "ReadWritePaths": "%h/.local/share/vaultpeer", "PrivateTmp": "yes", "PrivateUsers": "yes",
        "LockPersonality": "yes", "MemoryDenyWriteExecute": "yes", "RestrictRealtime": "yes",
        "RestrictSUIDSGID": "yes", "RestrictNamespaces": "yes", "SystemCallArchitectures": "native",
        "UMask": "0077", "LimitCORE": "0", "CapabilityBoundingSet": "", "PrivateDevices": "yes",
    }
    assert {key: the(unit, service, key) for key in expected} == expected
    # writable besides the home: only the directory of the socket's link, under $XDG_RUNTIME_DIR
    assert unit[service]["ReadWritePaths"] == ["-%t/vaultpeer", "%h/.local/share/vaultpeer"]
    assert "+/bin/mkdir -p -m 0700 %t/vaultpeer" in unit[service]["ExecStartPre"]
    assert set(the(unit, service, "RestrictAddressFamilies").split()) == {"AF_UNIX", "AF_INET", "AF_INET6",
                                                                          "AF_NETLINK"}
    assert unit[service]["SystemCallFilter"] == ["@system-service", "~@privileged @resources"]
    # Settings a per-user manager cannot apply (systemd.exec(5)): none may pretend to protect.
    system_only = {"User", "Group", "DynamicUser", "ProtectControlGroups", "ProtectProc", "ProcSubset", "RemoveIPC",
                   "DevicePolicy", "DeviceAllow", "IPAddressDeny", "IPAddressAllow", "SecureBits"}
    assert system_only.isdisjoint(unit[service])


def test_the_writable_directory_is_the_default_home():
    """ReadWritePaths= must be where the daemon keeps its home when no --home is given."""
    code = "from vaultpeer.service.home import resolve_home; print(resolve_home(None))"
    env = {k: v for k, v in cli_env().items() if not k.startswith("XDG_")} | {"HOME": "/home/someone"}
    home = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True,
                          timeout=30).stdout.strip()
    writable = the(sections(UNIT.read_text()), "Service", "ReadWritePaths").replace("%h", "/home/someone")
    assert home == writable


def verify(unit_text: str, tmp_path: Path) -> subprocess.CompletedProcess:
    """`systemd-analyze --user verify` on a copy whose ExecStart= names this venv's real executable."""
    directory = tmp_path / "units"
    directory.mkdir(exist_ok=True)
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700, exist_ok=True)
    path = directory / "vaultpeer.service"
    path.write_text(unit_text.replace("%h/.local/bin/vaultpeer", str(VAULTPEER)))
    env = cli_env(XDG_RUNTIME_DIR=str(runtime), SYSTEMD_LOG_COLOR="0")
    return subprocess.run(["systemd-analyze", "--user", "verify", str(path)], capture_output=True, text=True,
                          env=env, cwd=directory, timeout=120)


@needs_systemd_analyze
def test_systemd_analyze_verifies_the_unit_without_a_single_warning(tmp_path):
    assert VAULTPEER.exists()
    result = verify(UNIT.read_text(), tmp_path)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")
    # ...and the same check does notice a misspelt setting or a missing executable.
    broken = verify(UNIT.read_text().replace("NoNewPrivileges=", "NoNewPrivilege="), tmp_path)
    assert "Unknown key 'NoNewPrivilege'" in broken.stdout + broken.stderr
    missing = verify(UNIT.read_text().replace("%h/.local/bin/vaultpeer daemon", "/nonexistent/vaultpeer daemon"),
                     tmp_path)
    assert missing.returncode != 0 and "/nonexistent/vaultpeer" in missing.stdout + missing.stderr


@needs_systemd_analyze
def test_systemd_analyze_security_rates_the_unit_ok(tmp_path):
    verify(UNIT.read_text(), tmp_path)  # writes the copy with a real ExecStart=
    result = subprocess.run(
        ["systemd-analyze", "--user", "security", "--offline=true", "--no-pager", str(tmp_path / "units" / "vaultpeer.service")],
        capture_output=True, text=True, env=cli_env(XDG_RUNTIME_DIR=str(tmp_path / "runtime")), timeout=120)
    if "--offline" in result.stderr and result.returncode != 0:
        pytest.skip("this systemd-analyze has no --offline mode (systemd < 250)")
    found = re.search(r"Overall exposure level for vaultpeer\.service: (\d+\.\d)", result.stdout)
    assert found, result.stdout + result.stderr
    # 0 is a sealed box, 10 no sandbox at all. What is left is the network itself, which the
    # service needs, and settings a per-user manager cannot apply.
    assert float(found.group(1)) <= 3.0


needs_seccomp = pytest.mark.skipif(
    sandbox.libseccomp() is None or shutil.which("systemd-analyze") is None,
    reason="needs libseccomp (Debian package libseccomp2) and systemd-analyze to emulate the unit's filters")


def run_sandboxed(spec: dict, tmp_path: Path, *command: str, **kwargs) -> subprocess.CompletedProcess:
    spec_file = tmp_path / f"spec-{len(list(tmp_path.glob('spec-*')))}.json"
    spec_file.write_text(json.dumps(spec))
    return subprocess.run([sys.executable, str(Path(sandbox.__file__)), str(spec_file), *command],
                          capture_output=True, text=True, timeout=60, **kwargs)


CONTROLS = r"""
import ctypes, errno, mmap, os, socket
def attempt(fn):
    try:
        fn()
        return "allowed"
    except OSError as exc:
        return errno.errorcode[exc.errno]
print({
    "mmap_wx": attempt(lambda: mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)),
    "af_packet": attempt(lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW)),
    "chroot": attempt(lambda: os.chroot("/")),
    "af_inet6": attempt(lambda: socket.socket(socket.AF_INET6, socket.SOCK_DGRAM).close()),
    "ctypes_callback": ctypes.CFUNCTYPE(ctypes.c_int)(lambda: 7)(),
})
"""


@needs_seccomp
def test_the_units_seccomp_rules_are_in_force_and_leave_what_the_daemon_needs(tmp_path):
    spec = sandbox.sandbox_spec(UNIT)
    result = run_sandboxed(spec, tmp_path, sys.executable, "-c", CONTROLS)
    assert result.returncode == 0, result.stderr
    assert ast.literal_eval(result.stdout) == {  # the rules really apply (as root, chroot would otherwise succeed)...
        "mmap_wx": "EPERM", "af_packet": "EAFNOSUPPORT", "chroot": "EPERM",
        "af_inet6": "allowed", "ctypes_callback": 7,  # ...and W^X leaves ctypes (libffi) working
    }
    # zeroconf lists interfaces with ifaddr, i.e. getifaddrs(), i.e. netlink: hence AF_NETLINK.
    listing = "import ifaddr; print(len(list(ifaddr.get_adapters())))"
    assert run_sandboxed(spec, tmp_path, sys.executable, "-c", listing).returncode == 0
    without_netlink = {**spec, "address_families": [f for f in spec["address_families"] if f != socket.AF_NETLINK]}
    assert run_sandboxed(without_netlink, tmp_path, sys.executable, "-c", listing).returncode != 0


@needs_seccomp
def test_the_daemon_runs_under_the_units_seccomp_rules(tmp_path):
    """Start (READY=1), unlock (Argon2), write and read items (AEAD, Ed25519, SQLite), serve the API,
    announce over mDNS on 127.0.0.1, and stop cleanly on SIGTERM, all under the unit's filters."""
    root = short_tmp()
    home = root / "home"
    notify_path = str(root / "notify.sock")
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(notify_path)
    receiver.settimeout(30)
    spec_file = root / "spec.json"
    spec_file.write_text(json.dumps(sandbox.sandbox_spec(UNIT)))
    log = open(root / "daemon.log", "wb")
    process = None
    try:
        assert run_cli(home, "init", "--password-stdin", stdin=PASSWORD + "\n").returncode == 0
        process = subprocess.Popen(
            [sys.executable, str(Path(sandbox.__file__)), str(spec_file), sys.executable, "-m", "vaultpeer",
             "--home", str(home), "daemon", "-v", "--listen", "127.0.0.1:0", "--mdns-interface", "127.0.0.1"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=cli_env(NOTIFY_SOCKET=notify_path))
        assert receiver.recv(100) == b"READY=1", (root / "daemon.log").read_text()
        for args, stdin in [(("unlock", "--password-stdin"), PASSWORD + "\n"),
                            (("add", "Email", "--field", "username=alice", "--generate", "password"), "")]:
            result = run_cli(home, *args, stdin=stdin)
            assert result.returncode == 0, (result.stderr, (root / "daemon.log").read_text())
        item = json.loads(run_cli(home, "get", "Email", "--json").stdout)
        assert item["fields"]["username"] == "alice" and len(item["fields"]["password"]) == 24
        status = json.loads(run_cli(home, "status", "--json").stdout)
        assert status["locked"] is False and status["listen"].startswith("127.0.0.1:")
        with Client(Path(status["socket"])) as client:
            assert len(client.call("generate", words=5)["password"].split("-")) == 5
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0
        assert "Traceback" not in (root / "daemon.log").read_text()
    finally:
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(10)
        receiver.close()
        log.close()
        shutil.rmtree(root, ignore_errors=True)
