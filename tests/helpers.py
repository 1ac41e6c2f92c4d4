"""Helpers shared by the tests: the real CLI in a subprocess, with the loudly named test-only KDF."""

import os
import subprocess
import sys
from pathlib import Path

from vaultpeer.service.home import INSECURE_TEST_KDF_ENV, INSECURE_TEST_KDF_VALUE, Home

PASSWORD = "correct horse battery"


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VAULTPEER_")}
    env[INSECURE_TEST_KDF_ENV] = INSECURE_TEST_KDF_VALUE
    env.update(extra)
    return env


def error_lines(stderr: str) -> list[str]:
    """What a command said on stderr, beyond the test-only KDF's warning and the `pair` invitation's
    "Waiting up to N s" line: a failing command says one line."""
    return [line for line in stderr.strip().splitlines()
            if line and not line.startswith(("WARNING: VAULTPEER_", "Waiting up to "))]


def run_cli(home: Path, *args: str, stdin: str = "", env: dict[str, str] | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess:
    """The real `vaultpeer` CLI in its own process."""
    return subprocess.run(
        [sys.executable, "-m", "vaultpeer", "--home", str(home), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=cli_env() if env is None else env,
        timeout=timeout,
    )


def make_replicas(count: int, password: str = PASSWORD):
    """``count`` unlocked vaults of one vault on in-memory stores: the first created it, the others
    joined through it (as pairing will), and none holds any revision yet."""
    from vaultpeer.core.identity import DeviceKeys
    from vaultpeer.core.kdf import insecure_test_parameters
    from vaultpeer.service.store import Store
    from vaultpeer.service.vault import Vault

    founder = Vault(Store.open_in_memory(), DeviceKeys.generate(), allow_insecure_test_kdf=True)
    founder.init(password, insecure_test_parameters(), "device-0", "Test OS")
    replicas = [founder]
    for n in range(1, count):
        joiner = Vault(Store.open_in_memory(), DeviceKeys.generate(), allow_insecure_test_kdf=True)
        entry = founder.enroll(joiner.device.public, f"device-{n}", "Test OS")
        joiner.join(founder.header, [*founder.outgoing_roster(), entry], founder.device.public, f"device-{n}", "Test OS")
        joiner.unlock(password)
        replicas.append(joiner)
    return replicas


def edited_apart(laptop: Home, desktop: Home, item: str, field: str, on_laptop: str, on_desktop: str,
                 password: str = PASSWORD) -> None:
    """Make ``desktop`` a second device of ``laptop``'s vault (which holds ``item``), set ``field``
    of ``item`` on each apart, and sync: both homes then hold ``item`` in conflict."""
    from vaultpeer.service.vault import Vault

    with Vault.open(laptop, allow_insecure_test_kdf=True) as a, Vault.open(desktop, allow_insecure_test_kdf=True) as b:
        a.unlock(password)
        entry = a.enroll(b.device.public, "desktop", "Linux")
        b.join(a.header, [*a.outgoing_roster(), entry], a.device.public, "desktop", "Linux")
        b.unlock(password)
        sync_pair(a, b)
        a.edit(item, {field: on_laptop})
        b.edit(item, {field: on_desktop})
        sync_pair(a, b)


def vault_state(vault) -> tuple:
    """What a sync could change in a vault: its knowledge, counts, heads, header and roster (equal
    before and after: nothing was stored)."""
    return (vault.knowledge(), vault.counts(), vault._store.head_ids(), vault._store.header_record(),
            sorted(e.to_bytes() for e in vault._store.roster_entries()))


def deliver(b, a, messages):
    """Feed a crafted stream to b as if it came from a. Returns b's SyncPeer and its replies."""
    from vaultpeer.service.replication import SyncPeer

    peer = SyncPeer(b, initiator=False, peer=a.device.device_id)
    replies = peer.start()
    for message in messages:
        replies += peer.receive(message)
        if peer.finished:
            break
    return peer, replies


def sync_pair(a, b, *, cut_after: int | None = None, max_messages: int = 10_000, merge: bool = True):
    """Run one sync session between two vaults by passing messages directly (no sockets).

    ``cut_after`` drops the connection after that many delivered messages, as a network would.
    Returns the two SyncPeers (their stats count what moved).
    """
    from collections import deque

    from vaultpeer.service.replication import SyncPeer

    left = SyncPeer(a, initiator=True, peer=b.device.device_id)
    right = SyncPeer(b, initiator=False, peer=a.device.device_id)
    to_right, to_left = deque(left.start()), deque(right.start())
    delivered = 0
    while (to_right or to_left) and delivered < max_messages:
        if cut_after is not None and delivered >= cut_after:
            break
        if to_right:
            to_left.extend(right.receive(to_right.popleft()))
            delivered += 1
        if to_left and (cut_after is None or delivered < cut_after):
            to_right.extend(left.receive(to_left.popleft()))
            delivered += 1
    assert delivered < max_messages, "a sync session did not end"
    if merge:
        for vault in (a, b):
            if not vault.locked:
                vault.merge_pending()
    return left, right


def make_old_home(path: Path) -> tuple[Home, bytes]:
    """A home as the release before the sealed signing key left it: both device keys in clear, in
    files written the way it wrote them, a vault with an item, and audit entries signed with the
    device's signing key. Returns the home and the signing seed."""
    from vaultpeer.core.audit import AuditKey
    from vaultpeer.core.errors import WrongPassword
    from vaultpeer.core.identity import DeviceKeys
    from vaultpeer.core.kdf import insecure_test_parameters
    from vaultpeer.service.device import NOISE_KEY_FILE, SIGNING_KEY_FILE
    from vaultpeer.service.store import Store
    from vaultpeer.service.vault import Vault

    home = Home(Path(path)).ensure()
    keys = DeviceKeys.generate()
    os.mkdir(home.identity_dir, 0o700)
    for name, data in ((NOISE_KEY_FILE, keys.noise_private), (SIGNING_KEY_FILE, keys.signing_seed)):
        fd = os.open(home.identity_dir / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, data)
        os.close(fd)
    # an AuditKey with the signing seed signs exactly as that release did with the device's key
    old = Vault(Store.open(home.database), keys, allow_insecure_test_kdf=True, audit_key=AuditKey(keys.signing_seed))
    old.init(PASSWORD, insecure_test_parameters(), "old laptop", "Test OS")
    old.add("Old item", {"password": "old"})
    old.lock()
    try:
        old.unlock("not the password")
    except WrongPassword:
        pass
    old.close()
    return home, keys.signing_seed
