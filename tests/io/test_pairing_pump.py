"""The pairing pump between two real daemons in this process: real API sockets, a real TCP
listener and real Noise streams on loopback, under a mock clock that jumps whenever everything
waits (a person who never answers costs no real time). The machine's own rules are tested purely
in tests/core/test_pairing_session.py; here, that the pump carries them over a connection."""

from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import pytest
import trio
import trio.testing

from helpers import PASSWORD
from vaultpeer.api import ApiError
from vaultpeer.client import TrioClient
from vaultpeer.core.audit import AuditEntry
from vaultpeer.core.identity import DeviceKeys
from vaultpeer.core.pairing import Commit, Nonce, Reveal, commitment, decode_message, encode_message
from vaultpeer.core.kdf import insecure_test_parameters
from vaultpeer.io.daemon import Daemon, DaemonOptions
from vaultpeer.io.noise_stream import ConnectionClosed, NoiseStream
from vaultpeer.io.transports.tcp import host_port
from vaultpeer.service.home import Home
from vaultpeer.service.vault import Vault


@pytest.fixture
def clock():
    """Jumps to the next deadline once the run has been idle for a moment of real time (long
    enough for loopback I/O between the two daemons to be seen first)."""
    return trio.testing.MockClock(autojump_threshold=0.05)


@asynccontextmanager
async def laptop_and_desktop(root: Path):
    """A laptop with an unlocked vault, listening on loopback, and a new desktop; API clients of both."""
    laptop_home = Home(root / "laptop")
    with Vault.open(laptop_home, allow_insecure_test_kdf=True) as vault:
        vault.init(PASSWORD, insecure_test_parameters())
    laptop = Daemon(laptop_home, DaemonOptions(listen=("127.0.0.1", 0), mdns=False,
                                               socket_path=root / "l" / "api.sock"), allow_insecure_test_kdf=True)
    desktop = Daemon(Home(root / "desktop"), DaemonOptions(listen=None, mdns=False,
                                                           socket_path=root / "d" / "api.sock"),
                     allow_insecure_test_kdf=True)
    with trio.fail_after(3600):  # the clock's seconds: a hang jumps here at once
        async with trio.open_nursery() as nursery:
            await nursery.start(laptop.run)
            await nursery.start(desktop.run)
            await call(laptop, "unlock", password=PASSWORD)
            yield laptop, desktop
            nursery.cancel_scope.cancel()


async def call(daemon: Daemon, method: str, **params: object) -> object:
    """One API call on a connection of its own (calls may run at once); an error is returned."""
    client = await TrioClient.connect(daemon.socket_path)
    try:
        return await client.call(method, **params)
    except ApiError as exc:
        return exc
    finally:
        await client.aclose()


async def codes(laptop: Daemon, desktop: Daemon, *, timeout: int = 60) -> tuple[object, object]:
    """pair.invite on the laptop, pair.join on the desktop (by address): what each answers."""
    answers = {}

    async def invite() -> None:
        answers["invite"] = await call(laptop, "pair.invite", timeout=timeout)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(invite)
        while not laptop.pairing_pump.invitation_open:
            await trio.sleep(0.01)
        answers["join"] = await call(desktop, "pair.join", address=str(laptop.listen_address), timeout=timeout)
    return answers["invite"], answers["join"]


async def confirm_both(laptop: Daemon, desktop: Daemon, laptop_says: bool | None,
                       desktop_says: bool | None) -> tuple[object, object]:
    """pair.confirm on each side that answers (None: that person never answers)."""
    results: dict[str, object] = {"laptop": None, "desktop": None}

    async def answer(name: str, daemon: Daemon, accept: bool) -> None:
        results[name] = await call(daemon, "pair.confirm", accept=accept)

    async with trio.open_nursery() as nursery:
        for name, daemon, accept in (("laptop", laptop, laptop_says), ("desktop", desktop, desktop_says)):
            if accept is not None:
                nursery.start_soon(answer, name, daemon, accept)
    return results["laptop"], results["desktop"]


def pairing_entries(daemon: Daemon) -> list[tuple[str, str, str | None]]:
    """(event, role, reason) of the pairing entries in a daemon's audit log."""
    rows = daemon.vault.audit_trail.rows()
    entries = [AuditEntry.from_stored(r.seq, r.time, r.event, r.details, r.entry_hash, r.signature).to_json()
               for r in rows]
    return [(e["event"], e["details"]["role"], e["details"].get("reason")) for e in entries
            if e["event"].startswith("pairing.")]


async def test_two_daemons_pair_and_go_on_as_members(root, clock):
    async with laptop_and_desktop(root) as (laptop, desktop):
        events = await TrioClient.connect(laptop.socket_path)
        await events.call("events.subscribe")
        invited, joined = await codes(laptop, desktop)
        assert invited == joined and set(invited) == {"code"}
        assert (await call(laptop, "pair.invite")).message == "a pairing is already in progress on this device"
        on_laptop, on_desktop = await confirm_both(laptop, desktop, True, True)
        assert on_laptop["device_id"] == str(desktop.device_id) and on_laptop["paired"]
        assert on_desktop["device_id"] == str(laptop.device_id) and on_desktop["vault_id"] == laptop.vault.vault_id.hex()
        async for event in events.events():
            if event["type"] == "peer.paired":
                assert event["device_id"] == str(desktop.device_id)
                break
        await events.aclose()
        while desktop.device_id not in laptop.links:  # the same connection goes on as a member link
            await trio.sleep(0.01)
        assert not laptop.pairing_pump.invitation_open
        assert pairing_entries(laptop) == [("pairing.paired", "inviter", None)]
        assert pairing_entries(desktop) == [("pairing.paired", "joiner", None)]


async def test_a_strangers_attempt_that_fails_after_another_took_the_invitation_changes_nothing(root, clock):
    async with laptop_and_desktop(root) as (laptop, desktop):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(partial(call, laptop, "pair.invite", timeout=60))
            while not laptop.pairing_pump.invitation_open:
                await trio.sleep(0.01)
            # a stranger's attempt starts (commitment, nonce) before the desktop comes
            tcp = await trio.open_tcp_stream(*host_port(laptop.listen_address))
            stranger = await NoiseStream.dial(tcp, DeviceKeys.generate(), purpose="pair")
            await stranger.send(encode_message(Commit(commitment(bytes(32)))))
            assert isinstance(decode_message(await stranger.receive()), Nonce)
            joined = await call(desktop, "pair.join", address=str(laptop.listen_address), timeout=60)
            assert set(joined) == {"code"}  # the desktop took the invitation
            await stranger.send(encode_message(Reveal(b"\x01" * 32)))  # not what it committed to
            with pytest.raises(ConnectionClosed):
                await stranger.receive()
            nursery.cancel_scope.cancel()
        on_laptop, on_desktop = await confirm_both(laptop, desktop, True, True)
        assert on_laptop["device_id"] == str(desktop.device_id) and on_desktop["paired"]
        assert pairing_entries(laptop) == [("pairing.failed", "inviter", "failed"), ("pairing.paired", "inviter", None)]


async def test_a_person_who_never_answers_ends_both_sides_in_time(root, clock):
    async with laptop_and_desktop(root) as (laptop, desktop):
        await codes(laptop, desktop)
        start = trio.current_time()
        on_laptop, _ = await confirm_both(laptop, desktop, True, None)
        assert on_laptop.message == "the other device did not confirm the code"
        assert 120 <= trio.current_time() - start < 125
        late = await call(desktop, "pair.confirm", accept=True)  # the desktop's person, too late
        assert late.message == "no answer was given on this device within 120 s"


async def test_the_other_sides_no_ends_the_wait_before_this_person_answers(root, clock):
    async with laptop_and_desktop(root) as (laptop, desktop):
        await codes(laptop, desktop)
        start = trio.current_time()
        assert (await call(desktop, "pair.confirm", accept=False)).message == "pairing was declined on this device"
        while not pairing_entries(laptop):  # the laptop's person has not answered, and is not waited for
            await trio.sleep(0.01)
        assert trio.current_time() - start < 1
        assert pairing_entries(laptop) == [("pairing.failed", "inviter", "declined_by_peer")]
        assert pairing_entries(desktop) == [("pairing.failed", "joiner", "declined")]
        late = await call(laptop, "pair.confirm", accept=True)
        assert late.message == "the other device did not confirm the code"
        assert not desktop.vault.initialized


async def test_an_invitation_nobody_takes_ends_at_its_time_and_the_next_opens_at_once(root, clock):
    async with laptop_and_desktop(root) as (laptop, _):
        start = trio.current_time()
        refused = await call(laptop, "pair.invite", timeout=3)
        assert refused.message == "no device joined within 3 s; the invitation is withdrawn"
        assert trio.current_time() - start == pytest.approx(3, abs=0.1)
        assert not laptop.pairing_pump.invitation_open
        async with trio.open_nursery() as nursery:
            nursery.start_soon(partial(call, laptop, "pair.invite", timeout=3))
            while not laptop.pairing_pump.invitation_open:
                await trio.sleep(0.01)
            nursery.cancel_scope.cancel()


async def test_pair_cancel_once_the_codes_are_shown_declines_and_the_other_side_is_told(root, clock):
    """Issue 18: pair.cancel after the codes are shown is a "no" from this device."""
    async with laptop_and_desktop(root) as (laptop, desktop):
        invited, joined = await codes(laptop, desktop)
        assert set(invited) == set(joined) == {"code"}
        assert await call(laptop, "pair.cancel") == {"cancelled": True}
        assert await call(laptop, "pair.cancel") == {"cancelled": False}  # declined already
        _, on_desktop = await confirm_both(laptop, desktop, None, True)
        assert isinstance(on_desktop, ApiError) and on_desktop.message == "the other device did not confirm the code"
        assert ("pairing.failed", "inviter", "declined") in pairing_entries(laptop)
        assert desktop.device_id not in laptop.links
