"""Run a command under the seccomp rules of systemd/vaultpeer.service, applied the way systemd does.

systemd turns SystemCallFilter=, MemoryDenyWriteExecute=, RestrictAddressFamilies= and
NoNewPrivileges= into seccomp filters installed just before it execs the service, one filter per
setting (the kernel applies the strictest answer of all). This module does the same with
libseccomp (through ctypes), reading the settings from the unit file and expanding the syscall
groups with `systemd-analyze syscall-filter`, so tests/test_systemd.py can run the real daemon
under the real rules without a running systemd. (The mount-namespace settings, ProtectSystem= and
friends, are not emulated.)

    python tests/sandbox.py SPEC.json COMMAND [ARG...]    # SPEC from sandbox_spec(); then execs COMMAND
"""

import ctypes
import ctypes.util
import errno
import json
import mmap
import os
import socket
import subprocess
import sys
from pathlib import Path

# libseccomp's ABI (seccomp.h)
SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_CMP_GE = 5
SCMP_CMP_EQ = 4
SCMP_CMP_MASKED_EQ = 7
SHM_EXEC = 0o100000
#: What systemd always allows under SystemCallFilter= (systemd.exec(5)).
IMPLICITLY_ALLOWED = {"execve", "exit", "exit_group", "getrlimit", "rt_sigreturn", "sigreturn"}


def scmp_act_errno(number: int) -> int:
    return 0x00050000 | (number & 0xFFFF)


class ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                ("datum_b", ctypes.c_uint64)]


def libseccomp() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("seccomp")
    if name is None or sys.platform != "linux":
        return None
    lib = ctypes.CDLL(name, use_errno=True)
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                           ctypes.POINTER(ArgCmp)]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    return lib


# --- reading the unit ---------------------------------------------------------------------------


def unit_settings(path: Path) -> dict[str, list[str]]:
    """Every KEY=VALUE of the unit's [Service] section, repeated keys kept in order."""
    settings: dict[str, list[str]] = {}
    section = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, sep, value = line.partition("=")
        if sep and section == "Service":
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def syscall_group(name: str, _seen: set | None = None) -> set[str]:
    """The system calls of a systemd group such as @system-service, nested groups expanded."""
    seen = set() if _seen is None else _seen
    if name in seen:
        return set()
    seen.add(name)
    output = subprocess.run(["systemd-analyze", "syscall-filter", name], capture_output=True, text=True,
                            check=True, timeout=30).stdout
    calls: set[str] = set()
    for line in output.splitlines()[1:]:
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        calls |= syscall_group(entry, seen) if entry.startswith("@") else {entry}
    return calls


def sandbox_spec(unit: Path) -> dict:
    """The unit's seccomp settings, resolved to plain data (the allowed syscalls by name)."""
    settings = unit_settings(unit)
    allowed: set[str] | None = None
    for value in settings.get("SystemCallFilter", []):
        deny = value.startswith("~")
        names: set[str] = set()
        for entry in value.lstrip("~").split():
            names |= syscall_group(entry) if entry.startswith("@") else {entry}
        if deny and allowed is None:
            raise NotImplementedError("a deny-only SystemCallFilter= (this emulation expects an allow list first)")
        allowed = allowed - names if deny else (allowed or set()) | names
    families = None
    if settings.get("RestrictAddressFamilies"):
        families = sorted({getattr(socket, name) for value in settings["RestrictAddressFamilies"]
                           for name in value.split()})
    return {
        "allowed_syscalls": sorted(allowed | IMPLICITLY_ALLOWED) if allowed is not None else None,
        "syscall_errno": getattr(errno, settings.get("SystemCallErrorNumber", ["EPERM"])[-1]),
        "memory_deny_write_execute": settings.get("MemoryDenyWriteExecute", ["no"])[-1] == "yes",
        "address_families": families,
    }


# --- installing the filters (in the process that will exec the service) ----------------------------


def _filter(lib, default_action: int, rules: list[tuple[int, str, list[tuple[int, int, int, int]]]]) -> None:
    ctx = lib.seccomp_init(default_action)
    if not ctx:
        raise OSError("seccomp_init failed")
    try:
        for action, name, comparisons in rules:
            number = lib.seccomp_syscall_resolve_name(name.encode())
            if number < 0:
                continue  # not a system call on this architecture
            array = (ArgCmp * max(1, len(comparisons)))(*[ArgCmp(*c) for c in comparisons])
            result = lib.seccomp_rule_add_array(ctx, action, number, len(comparisons), array)
            if result < 0:
                raise OSError(-result, f"seccomp_rule_add_array({name}): {os.strerror(-result)}")
        result = lib.seccomp_load(ctx)
        if result < 0:
            raise OSError(-result, f"seccomp_load: {os.strerror(-result)}")
    finally:
        lib.seccomp_release(ctx)


def install(spec: dict) -> None:
    lib = libseccomp()
    if lib is None:
        raise OSError("libseccomp is not available")
    if spec["memory_deny_write_execute"]:
        eperm = scmp_act_errno(errno.EPERM)
        wx = mmap.PROT_WRITE | mmap.PROT_EXEC
        _filter(lib, SCMP_ACT_ALLOW, [
            (eperm, "mmap", [(2, SCMP_CMP_MASKED_EQ, wx, wx)]),
            (eperm, "mprotect", [(2, SCMP_CMP_MASKED_EQ, mmap.PROT_EXEC, mmap.PROT_EXEC)]),
            (eperm, "pkey_mprotect", [(2, SCMP_CMP_MASKED_EQ, mmap.PROT_EXEC, mmap.PROT_EXEC)]),
            (eperm, "shmat", [(2, SCMP_CMP_MASKED_EQ, SHM_EXEC, SHM_EXEC)]),
        ])
    if spec["address_families"] is not None:
        refused = scmp_act_errno(errno.EAFNOSUPPORT)
        rules = [(refused, "socket", [(0, SCMP_CMP_EQ, family, 0)])
                 for family in range(64) if family not in spec["address_families"]]
        rules.append((refused, "socket", [(0, SCMP_CMP_GE, 64, 0)]))
        _filter(lib, SCMP_ACT_ALLOW, rules)
    # Last, as systemd does: the allow list need not allow seccomp() itself.
    if spec["allowed_syscalls"] is not None:
        _filter(lib, scmp_act_errno(spec["syscall_errno"]),
                [(SCMP_ACT_ALLOW, name, []) for name in spec["allowed_syscalls"]])


if __name__ == "__main__":
    install(json.loads(Path(sys.argv[1]).read_text()))
    os.execv(sys.argv[2], sys.argv[2:])
