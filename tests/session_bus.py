"""A private D-Bus session bus per device, for the Secret Service tests: a real `dbus-daemon
--session` of the test's own (its socket in the test's directory), its address handed only to the
processes of the test (a daemon's environment, a `secret-tool` call, a jeepney connection). Never
the desktop's bus: nothing here reads or sets the test runner's DBUS_SESSION_BUS_ADDRESS.

Every wait is bounded; the bus is killed when the test ends.
"""

import select
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from jeepney import HeaderFields, MatchRule, message_bus

from helpers import cli_env

SECRET_TOOL_TIMEOUT = 30
COLLECTION = "/org/freedesktop/secrets/collection/vaultpeer"
COLLECTION_IFACE = "org.freedesktop.Secret.Collection"


def require_dbus() -> None:
    """Skip, saying why, where the bus or the clients are missing (.ci/run installs them)."""
    if shutil.which("dbus-daemon") is None:
        pytest.skip("dbus-daemon is not installed (Debian package dbus; .ci/run installs it as root)")
    if shutil.which("secret-tool") is None:
        pytest.skip("secret-tool is not installed (Debian package libsecret-tools; .ci/run installs it as root)")


@contextmanager
def session_bus(directory: Path) -> Iterator[str]:
    """Run a session bus listening in ``directory``; yield its address."""
    directory.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        ["dbus-daemon", "--session", "--nofork", "--nopidfile", "--print-address=1",
         f"--address=unix:path={directory / 'bus'}"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        ready, _, _ = select.select([process.stdout], [], [], 10)
        address = process.stdout.readline().strip() if ready else ""
        assert address.startswith("unix:"), f"dbus-daemon did not say its address: {address!r}"
        yield address
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def bus_env(address: str, **extra: str) -> dict[str, str]:
    """The environment of a client of the bus at ``address`` (only that bus)."""
    env = cli_env(DBUS_SESSION_BUS_ADDRESS=address, **extra)
    env.pop("DISPLAY", None)  # libsecret would try to show a prompt window
    return env


def secret_tool(address: str, *args: str, stdin: str = "",
                timeout: float = SECRET_TOOL_TIMEOUT) -> subprocess.CompletedProcess:
    """Unmodified `secret-tool` (libsecret) against the bus at ``address``."""
    return subprocess.run(["secret-tool", *args], input=stdin, capture_output=True, text=True,
                          env=bus_env(address), timeout=timeout)


def python_client(address: str, code: str, *args: str, stdin: str = "",
                  timeout: float = 60) -> subprocess.CompletedProcess:
    """Python code (``keyring``) in a process of its own on the bus at ``address``."""
    return subprocess.run([sys.executable, "-c", code, *args], input=stdin, capture_output=True, text=True,
                          env=bus_env(address, PYTHON_KEYRING_BACKEND="keyring.backends.SecretService.Keyring"),
                          timeout=timeout)


def collection_signals(connection):
    """A filter of the collection's ItemCreated/ItemChanged/ItemDeleted signals (the bus told to send them)."""
    rule = MatchRule(type="signal", interface=COLLECTION_IFACE, path=COLLECTION)
    connection.send_and_get_reply(message_bus.AddMatch(rule), timeout=10)
    return connection.filter(rule, bufsize=64)


def next_signal(connection, signals) -> tuple[str, str]:
    message = connection.recv_until_filtered(signals, timeout=10)
    return message.header.fields[HeaderFields.member], message.body[0]
