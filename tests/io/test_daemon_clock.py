"""The daemon's waits on trio's clock: a real daemon in this process, over its real Unix socket and
TCP listener, run under ``trio.testing.MockClock`` (pytest-trio's ``mock_clock``), so a test moves
time with ``mock_clock.jump`` instead of sleeping through a backoff, an idle lock or a penalty.

The mock clock stands still unless jumped (its rate is 0): what the daemon is told and answers is
the same whatever the machine's speed, and ``trio.fail_after`` would never fire, so each test is
bounded by real seconds instead (``wall_clock_limit``)."""

import logging
import threading
import time
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio
import trio.testing

from helpers import PASSWORD
from vaultpeer.api import ApiError
from vaultpeer.client import TrioClient
from vaultpeer.core.audit import AuditEntry
from vaultpeer.core.identity import DeviceKeys
from vaultpeer.core.kdf import insecure_test_parameters
from vaultpeer.service.home import Home
from vaultpeer.io.daemon import AUDIT_FLUSH_EVERY, Daemon, DaemonOptions
from vaultpeer.io.noise_stream import ConnectionClosed, NoiseStream
from vaultpeer.io.transports.tcp import host_port
from vaultpeer.service.vault import Vault


@asynccontextmanager
async def wall_clock_limit(seconds: float):
    """``trio.fail_after`` in real seconds, for a test whose trio clock stands still."""
    finished, expired = threading.Event(), False
    async with trio.open_nursery() as nursery:
        async def watchdog() -> None:
            nonlocal expired
            if not await trio.to_thread.run_sync(finished.wait, seconds, abandon_on_cancel=True):
                expired = True
                nursery.cancel_scope.cancel()

        nursery.start_soon(watchdog)
        try:
            yield
        finally:
            finished.set()  # the watchdog's thread returns at once
    if expired:
        raise trio.TooSlowError(f"the test took more than {seconds} s of real time")


@asynccontextmanager
async def running_daemon(root: Path, **options: object):
    """A daemon with an initialised, locked vault (the test-only KDF), its API client, and its home."""
    home = Home(root / "home")
    with Vault.open(home, allow_insecure_test_kdf=True) as vault:
        vault.init(PASSWORD, insecure_test_parameters())
    options = {"listen": None, "mdns": False, "offline": True, "socket_path": root / "run" / "api.sock", **options}
    daemon = Daemon(home, DaemonOptions(**options), allow_insecure_test_kdf=True)
    async with wall_clock_limit(60), trio.open_nursery() as nursery:
        await nursery.start(daemon.run)
        client = await TrioClient.connect(daemon.socket_path)
        await client.call("lock")
        yield daemon, client, home
        await client.aclose()
        nursery.cancel_scope.cancel()


async def unlock(client: TrioClient, password: str) -> str:
    try:
        await client.call("unlock", password=password)
    except ApiError as exc:
        return exc.data["name"]
    return "ok"


def audit_events(home: Home) -> list[tuple[str, dict]]:
    with Vault.open(home, allow_insecure_test_kdf=True) as vault:
        rows = vault.audit_trail.rows()
    entries = (AuditEntry.from_stored(r.seq, r.time, r.event, r.details, r.entry_hash, r.signature) for r in rows)
    return [(e.to_json()["event"], e.to_json()["details"]) for e in entries]


async def test_wrong_master_passwords_wait_doubling_times_on_the_daemons_clock_and_a_success_resets(
        root, mock_clock):
    async with running_daemon(root) as (daemon, client, home):
        assert [await unlock(client, "wrong password") for _ in range(3)] == ["wrong_password"] * 3  # free
        assert await unlock(client, PASSWORD) == "rate_limited"  # even the right password waits its turn (1 s)
        assert daemon.vault.locked
        mock_clock.jump(1.1)
        assert await unlock(client, "wrong again") == "wrong_password"
        assert await unlock(client, PASSWORD) == "rate_limited"  # now 2 s
        mock_clock.jump(1.9)
        assert await unlock(client, PASSWORD) == "rate_limited"  # not yet
        mock_clock.jump(0.2)
        assert await unlock(client, "wrong again") == "wrong_password"
        mock_clock.jump(4.1)
        assert await unlock(client, "wrong again") == "wrong_password"
        with pytest.raises(ApiError) as refused:  # now 8 s
            await client.call("unlock", password=PASSWORD)
        assert (refused.value.data["name"], refused.value.message) == (
            "rate_limited", "too many attempts: try again in 8 s")
        assert refused.value.code == 1012 and refused.value.data["retry_after"] == 8  # for programs
        assert daemon.vault.locked
        mock_clock.jump(8.1)
        assert await unlock(client, PASSWORD) == "ok"
        await client.call("lock")
        # the success reset the count: three free attempts again
        assert [await unlock(client, "wrong password") for _ in range(3)] == ["wrong_password"] * 3
    # the daemon has stopped, writing the counts still pending in the minute
    failed = [d for e, d in audit_events(home) if e == "unlock.failed"]
    assert [d["reason"] for d in failed].count("wrong_password") == 9
    limited = [d for d in failed if d["reason"] == "rate_limited"]
    assert limited[0] == {"via": "daemon", "method": "password", "reason": "rate_limited", "count": 1}
    assert sum(d["count"] for d in limited) == 4 and len(limited) == 2  # the first at once, the rest counted


async def test_refused_password_attempts_are_counted_once_a_minute_by_the_daemons_clock(root, mock_clock):
    async with running_daemon(root) as (daemon, client, home):
        assert [await unlock(client, "wrong password") for _ in range(3)] == ["wrong_password"] * 3
        assert [await unlock(client, PASSWORD) for _ in range(3)] == ["rate_limited"] * 3
        mock_clock.jump(61)  # the minute has passed: the next flush (every 15 s) writes the count
        await trio.testing.wait_all_tasks_blocked()
        limited = [d["count"] for e, d in audit_events(home) if e == "unlock.failed" and "count" in d]
        assert limited == [1, 2]


async def test_the_idle_lock_waits_for_the_idle_time_then_drops_the_keys_and_staged_plaintext(root, mock_clock):
    async with running_daemon(root, idle_lock=60.0) as (daemon, client, home):
        assert await unlock(client, PASSWORD) == "ok"
        staged = await client.call("item.import", more=True, entries=[
            {"title": "Staged", "fields": {"password": "canary-staged"}, "source": "api:1"}])
        listener = await TrioClient.connect(daemon.socket_path)
        await listener.call("events.subscribe")  # listening is not use; a call is
        for _ in range(3):
            mock_clock.jump(50)
            await trio.testing.wait_all_tasks_blocked()
            assert not daemon.vault.locked
            await client.call("status")
        mock_clock.jump(61)
        events = listener.events()
        assert (await anext(events))["type"] == "locked"
        assert daemon.vault.locked
        await listener.aclose()
        assert await unlock(client, PASSWORD) == "ok"
        with pytest.raises(ApiError) as caught:
            await client.call("item.import", entries=[], batch=staged["batch"])
        assert caught.value.data["name"] == "not_found"  # the staged batch was dropped with the key
        assert await client.call("item.list") == []


async def test_an_address_that_keeps_failing_is_refused_for_the_penalty_by_the_daemons_clock(
        root, mock_clock, caplog):
    async with running_daemon(root, listen=("127.0.0.1", 0), offline=False) as (daemon, client, home):
        stranger = DeviceKeys.generate()
        member_key = daemon.vault.device.public.noise_public
        penalty = daemon.offenders.penalty

        async def dial() -> None:
            """A stranger's member handshake: the daemon closes it without a word, refused or not."""
            tcp = await trio.open_tcp_stream(*host_port(daemon.listen_address))
            with pytest.raises((ConnectionClosed, trio.BrokenResourceError)):  # a reset, if closed unread
                await NoiseStream.dial(tcp, stranger, purpose="sync", responder_static=member_key,
                                       stamp=time.time_ns())
            await tcp.aclose()

        def refused() -> bool:
            return daemon.offenders.refused("127.0.0.1", trio.current_time())

        caplog.set_level(logging.INFO, logger="vaultpeer.daemon")
        for _ in range(daemon.offenders.limit - 1):
            await dial()
        assert not refused()
        await dial()
        assert refused()
        await dial()  # closed unread, not counted or logged again
        assert caplog.text.count("refusing connections from 127.0.0.1") == 1
        assert caplog.text.count("refused 127.0.0.1") == daemon.offenders.limit
        mock_clock.jump(penalty - 1)
        assert refused()
        mock_clock.jump(1)
        assert not refused()
        await dial()  # heard again (and counted again)
        assert caplog.text.count("refused 127.0.0.1") == daemon.offenders.limit + 1


async def test_an_idle_unlocked_daemon_has_no_timer_sooner_than_its_audit_flush(root, mock_clock):
    """Nothing happening, nothing wakes the daemon every second (laptops on battery): the idle lock
    sleeps until it could be due, not in ticks; the nearest timer is the audit log's flush."""
    async with running_daemon(root, idle_lock=900.0) as (daemon, client, home):
        assert await unlock(client, PASSWORD) == "ok"
        for _ in range(3):
            mock_clock.jump(AUDIT_FLUSH_EVERY)
            await trio.testing.wait_all_tasks_blocked()
            assert trio.lowlevel.current_statistics().seconds_to_next_deadline >= AUDIT_FLUSH_EVERY - 0.01
        assert not daemon.vault.locked
        mock_clock.jump(900 - 3 * AUDIT_FLUSH_EVERY)  # and the lock still comes on time
        await trio.testing.wait_all_tasks_blocked()
        assert daemon.vault.locked
