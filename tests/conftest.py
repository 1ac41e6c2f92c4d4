import fcntl
import time
from pathlib import Path

import pytest

from daemons import can_make_private_loopback
from helpers import PASSWORD
from vaultpeer.core.kdf import insecure_test_parameters
from vaultpeer.service.home import Home
from vaultpeer.service.vault import Vault


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return Home(tmp_path / "device-a")


@pytest.fixture
def vault(home: Home):
    """An initialised, unlocked vault with the loudly named test-only KDF (real Argon2id, tiny cost)."""
    with Vault.open(home, allow_insecure_test_kdf=True) as opened:
        opened.recovery_key = opened.init(PASSWORD, insecure_test_parameters())
        yield opened


#: Loopback mDNS is one network for every process on the machine: pytest-xdist's workers, a second
#: run of the suite, a developer's `vaultpeer demo`. A test that joins "the" invitation found by mDNS
#: (marked ``mdns_alone``) runs its daemons in a network namespace of its own where it can (as root:
#: tests/daemons.py private_loopback). Where it cannot, it holds this lock exclusively, and every
#: other test that may advertise an invitation (tests/e2e, tests/io/test_mdns.py) holds it shared,
#: so none of the suite's is open meanwhile. Both pass through the gate first, so a test waiting to
#: be alone keeps new sharers out until its turn.
INVITATIONS_LOCK = Path("/tmp/vaultpeer-tests-invitations.lock")
INVITATIONS_GATE = Path("/tmp/vaultpeer-tests-invitations.gate")
#: The longest a test waits for its turn (the longest e2e test takes well under a minute).
INVITATIONS_LOCK_TIMEOUT = 600


def _take(handle, mode: int, deadline: float) -> None:
    while True:
        try:
            fcntl.flock(handle, mode | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                pytest.fail(f"{handle.name} stayed taken for {INVITATIONS_LOCK_TIMEOUT} s")
            time.sleep(0.02)


@pytest.fixture(autouse=True)
def _invitations_on_loopback(request):
    path = request.node.path.as_posix()
    alone = request.node.get_closest_marker("mdns_alone") is not None
    if alone and can_make_private_loopback():
        yield  # it runs in a network namespace of its own (tests/e2e/conftest.py private_netns)
        return
    if not alone and "/tests/e2e/" not in path and not path.endswith("/tests/io/test_mdns.py"):
        yield
        return
    deadline = time.monotonic() + INVITATIONS_LOCK_TIMEOUT
    with open(INVITATIONS_GATE, "a") as gate, open(INVITATIONS_LOCK, "a") as lock:
        _take(gate, fcntl.LOCK_EX, deadline)
        try:
            _take(lock, fcntl.LOCK_EX if alone else fcntl.LOCK_SH, deadline)
        finally:
            fcntl.flock(gate, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)

