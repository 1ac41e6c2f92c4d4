"""Process hygiene for every vaultpeer process (the CLI holds a master password for a moment, the
daemon holds the vault key while unlocked): no core dump may write that memory to disk, and
other processes of the same user may not read it through ptrace or /proc/PID/mem.

* ``RLIMIT_CORE`` 0: a crash writes no core file (the systemd unit also sets ``LimitCORE=0``).
* ``PR_SET_DUMPABLE`` 0 (Linux): no core dump, and the kernel refuses ptrace and /proc/PID/mem to
  processes of the same user that lack CAP_SYS_PTRACE (root keeps it).
"""

import ctypes
import ctypes.util
import resource
import sys

PR_SET_DUMPABLE = 4
PR_GET_DUMPABLE = 3


def harden_process() -> dict:
    """Apply both settings; returns what holds afterwards (``core_limit``, ``dumpable``)."""
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ValueError, OSError):
        pass
    prctl = _prctl()
    if prctl is not None:
        prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    return process_state()


def process_state() -> dict:
    """``{"core_limit": soft limit in bytes, "dumpable": bool or None where unknown}``."""
    prctl = _prctl()
    dumpable = None if prctl is None else bool(prctl(PR_GET_DUMPABLE, 0, 0, 0, 0))
    return {"core_limit": resource.getrlimit(resource.RLIMIT_CORE)[0], "dumpable": dumpable}


def _prctl():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None
    function = libc.prctl
    function.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    function.restype = ctypes.c_int
    return function
