"""`backup.seal` on a real daemon (offline, in this process) over its real Unix socket; the caller
writes the file (the daemon writes nothing outside its home)."""

import base64
import stat

import pytest
import trio

from helpers import PASSWORD
from vaultpeer.api import ApiError
from vaultpeer.service.backup_files import open_backup_file, write_sealed
from vaultpeer.client import TrioClient
from vaultpeer.core.kdf import insecure_test_parameters
from vaultpeer.service.home import Home
from vaultpeer.io.daemon import Daemon, DaemonOptions
from vaultpeer.service.vault import Vault


async def test_backup_seal_needs_an_unlocked_vault_and_gives_a_backup_the_caller_writes(root):
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
                await client.call("backup.seal")
            assert (caught.value.code, caught.value.data["name"]) == (1001, "locked")
            await client.call("unlock", password=PASSWORD)
            sealed = await client.call("backup.seal")
            assert set(sealed) == {"backup", "revisions", "items"}
            assert (sealed["revisions"], sealed["items"]) == (1, 1)
            await client.aclose()
            nursery.cancel_scope.cancel()
    written = write_sealed(backups, base64.b64decode(sealed["backup"]), revisions=sealed["revisions"],
                           items=sealed["items"], keep=1)
    path = written.path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and sorted(backups.iterdir()) == [path]
    assert open_backup_file(path, password=PASSWORD, allow_insecure_test_kdf=True).report.items == 1
    assert b"Email" not in path.read_bytes()
