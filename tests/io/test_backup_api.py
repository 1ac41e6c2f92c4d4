"""`backup.create` on a real daemon (offline, in this process) over its real Unix socket."""

import shutil
import stat
import tempfile
from pathlib import Path

import pytest
import trio

from helpers import PASSWORD
from vaultpeer.api import ApiError
from vaultpeer.backup import open_backup_file
from vaultpeer.client import TrioClient
from vaultpeer.core.kdf import insecure_test_parameters
from vaultpeer.home import Home
from vaultpeer.io.daemon import Daemon, DaemonOptions
from vaultpeer.vault import Vault


@pytest.fixture
def root():
    directory = Path(tempfile.mkdtemp(prefix="vp", dir="/tmp"))  # short: Unix socket paths are limited
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


async def test_backup_create_needs_an_unlocked_vault_and_valid_params(root):
    home = Home(root / "home")
    with Vault.open(home, allow_insecure_test_kdf=True) as vault:
        vault.init(PASSWORD, insecure_test_parameters())
        vault.add("Email", {"password": "x"})
    daemon = Daemon(home, DaemonOptions(listen=None, mdns=False, offline=True, socket_path=root / "run" / "api.sock"),
                    allow_insecure_test_kdf=True)
    backups = root / "backups"
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(daemon.run)
            client = await TrioClient.connect(daemon.socket_path)
            with pytest.raises(ApiError) as caught:
                await client.call("backup.create", dir=str(backups))
            assert (caught.value.code, caught.value.data["name"]) == (1001, "locked")
            assert not backups.exists()
            await client.call("unlock", password=PASSWORD)
            for params in ({"dir": "relative/dir"}, {"dir": str(backups), "keep": 0},
                           {"dir": str(backups), "keep": "3"}, {}):
                with pytest.raises(ApiError) as caught:
                    await client.call("backup.create", **params)
                assert caught.value.code == -32602, params
            first = await client.call("backup.create", dir=str(backups), keep=1)
            assert set(first) == {"file", "revisions", "items", "removed"}
            assert (first["revisions"], first["items"], first["removed"]) == (1, 1, [])
            second = await client.call("backup.create", dir=str(backups), keep=1)
            assert second["removed"] == [first["file"]]
            blocked = root / "a-file"
            blocked.write_text("x")
            with pytest.raises(ApiError) as caught:
                await client.call("backup.create", dir=str(blocked))
            assert caught.value.code == 1000 and "cannot write a backup" in caught.value.message
            await client.aclose()
            nursery.cancel_scope.cancel()
    path = Path(second["file"])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and sorted(backups.iterdir()) == [path]
    assert open_backup_file(path, password=PASSWORD, allow_insecure_test_kdf=True).report.items == 1
