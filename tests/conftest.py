from pathlib import Path

import pytest

from helpers import PASSWORD
from vaultpeer.core.kdf import insecure_test_parameters
from vaultpeer.home import Home
from vaultpeer.vault import Vault


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return Home(tmp_path / "device-a")


@pytest.fixture
def vault(home: Home):
    """An initialised, unlocked vault with the loudly named test-only KDF (real Argon2id, tiny cost)."""
    with Vault.open(home, allow_insecure_test_kdf=True) as opened:
        opened.recovery_key = opened.init(PASSWORD, insecure_test_parameters())
        yield opened
