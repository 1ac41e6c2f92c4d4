"""Batches of revisions stored in one transaction (``Link``, ``MAX_JOINED_BATCHES``): a batch
whose next one has arrived and been checked already is committed with it, one sync of the disk for
several. Only batches already in hand are joined, so the session never waits with a transaction
open (no other task ever sees one), and a member's bad batch among them changes nothing while the
good ones before it are kept.

Real daemons in this process (real Noise, real SQLite) over in-memory streams. The first batch's
preparation is held back until the ones behind it are ready, as they are when it is stored: what a
receiver slower than its sender meets at every step of a new device's first sync."""

import dataclasses

import trio

from helpers import PASSWORD
from test_audit import events
from test_daemon_over_memory import MemoryNetwork, until
from test_mesh_relay import members, run_mesh, start_all, titles
from vaultpeer.core.item import ItemContent
import pytest

from vaultpeer.core.sync import decode_message, encode_message
import vaultpeer.io.link as link_module
from vaultpeer.service import replication
from vaultpeer.service.home import Home
from vaultpeer.service.vault import Vault

#: Batches as a sender makes them (a small first one, then full ones), cut smaller here so that
#: five of them are quick to make: each is still big enough to be prepared on a thread.
FIRST_BATCH, FULL_BATCH = 60, 200
#: Five batches from a to b.
ITEMS = FIRST_BATCH + 4 * FULL_BATCH
#: What the first two batches hold.
TWO_BATCHES = FIRST_BATCH + FULL_BATCH


@pytest.fixture(autouse=True)
def small_batches(monkeypatch):
    monkeypatch.setattr(replication, "FIRST_BATCH_REVISIONS", FIRST_BATCH)
    monkeypatch.setattr(replication, "MAX_BATCH_REVISIONS", FULL_BATCH)


def founder_with_items(root) -> None:
    members(root, ["a", "b"])
    with Vault.open(Home(root / "a"), allow_insecure_test_kdf=True) as vault:
        vault.unlock(PASSWORD)
        vault.add_many(ItemContent.build(f"a {n:05d}", {"password": f"secret-{n}"}) for n in range(ITEMS))


def hold_back_the_first_batch(monkeypatch, behind: int = 3) -> None:
    """The first big message's preparation (decode and signature checks, on a worker thread)
    starts only once the ``behind`` messages after it are ready: they are when it is stored."""
    real_run, made = link_module._Preparation.run, []

    async def run(self, message, vault_id, roster):
        made.append(self)
        if len(made) == 1:
            with trio.fail_after(30):
                while not (len(made) > behind and all(p.ready for p in made[1:behind + 1])):
                    await trio.sleep(0.005)
        await real_run(self, message, vault_id, roster)

    monkeypatch.setattr(link_module._Preparation, "run", run)


async def run_until(daemons: dict, condition) -> None:
    """The daemons running (each unlocked, b dialling a) until ``condition`` holds."""
    with trio.fail_after(90):
        async with trio.open_nursery() as nursery:
            for daemon in daemons.values():
                await nursery.start(daemon.run)
                daemon.vault.unlock(PASSWORD)
            await until(condition)
            nursery.cancel_scope.cancel()


def record_commits(monkeypatch) -> list[int]:
    """How many batches each joined transaction held, as it was committed."""
    joined: list[int] = []
    real_commit = link_module.Link._commit_joined

    def commit(self):
        if self._joined is not None:
            joined.append(self._joined_batches)
        real_commit(self)

    monkeypatch.setattr(link_module.Link, "_commit_joined", commit)
    return joined


async def test_batches_that_arrived_together_are_committed_together_and_nothing_waits_inside(root, monkeypatch):
    founder_with_items(root)
    hold_back_the_first_batch(monkeypatch)
    joined = record_commits(monkeypatch)
    topology = {"a": [], "b": ["a"]}
    daemons = start_all(root, MemoryNetwork(), topology)
    a, b = daemons["a"], daemons["b"]
    seen_open = []

    async def watch_for_an_open_transaction():
        while True:  # every time any other task runs, no transaction may be open on b
            seen_open.append(b.vault.in_transaction)
            await trio.sleep(0)

    with trio.fail_after(90):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch_for_an_open_transaction)
            await run_mesh(nursery, daemons, topology)
            await until(lambda: b.vault.counts()["revisions"] >= ITEMS)
            assert b.vault.knowledge() == a.vault.knowledge()
            assert b.vault.state_digest().root == a.vault.state_digest().root
            assert f"a {ITEMS - 1:05d}" in titles(b) and b.vault.find("a 00500").content.field("password").value == "secret-500"
            nursery.cancel_scope.cancel()
    assert joined and max(joined) >= 2, joined  # batches were joined...
    assert max(joined) <= link_module.MAX_JOINED_BATCHES
    assert seen_open and not any(seen_open)  # ...and no task ever ran while their transaction was open


async def test_a_members_bad_batch_among_joined_ones_changes_nothing_and_the_good_ones_before_it_stay(
        root, monkeypatch):
    """a's third batch carries a revision whose signature is not a's (a stolen device, or a bug):
    it arrives with the batches before it and is checked in the transaction of the second. b
    refuses it and ends the session; of that batch nothing is stored, and the batches before it
    are committed."""
    founder_with_items(root)
    hold_back_the_first_batch(monkeypatch)
    joined = record_commits(monkeypatch)
    sent = []
    real_next_pending = replication.SyncPeer.next_pending

    def next_pending(self):
        message = real_next_pending(self)
        if message is not None and len(message) > replication.PREPARE_FROM_BYTES:
            sent.append(True)
            if len(sent) == 3:
                records = decode_message(message)
                forged = dataclasses.replace(records.revisions[100], signature=bytes(64))
                revisions = (*records.revisions[:100], forged, *records.revisions[101:])
                return encode_message(dataclasses.replace(records, revisions=revisions))
        return message

    monkeypatch.setattr(replication.SyncPeer, "next_pending", next_pending)
    at_failure = []
    real_finish = link_module.Link._finish

    def finish(self, session):
        if session.failed and not at_failure:
            at_failure.append((self.daemon.vault.counts()["revisions"], titles(self.daemon), list(session.notes)))
        real_finish(self, session)

    monkeypatch.setattr(link_module.Link, "_finish", finish)
    await run_until(start_all(root, MemoryNetwork(), {"a": [], "b": ["a"]}), lambda: bool(at_failure))
    revisions, held, notes = at_failure[0]
    assert revisions == TWO_BATCHES  # the two good batches, committed
    assert {f"a {n:05d}" for n in range(TWO_BATCHES)} <= held
    assert not {f"a {n:05d}" for n in range(TWO_BATCHES, ITEMS)} & held  # nothing of the bad one, or after it
    assert any("failed verification" in note for note in notes)
    # the bad batch was checked in the transaction of the one before it (the first batch, which
    # carries a's roster too, is stored on its own)
    assert joined == [2]
    with Vault.open(Home(root / "b"), allow_insecure_test_kdf=True) as vault:
        assert ("peer.rejected", "sync_rejected") in [(e, d.get("reason")) for e, d in events(vault)]


async def test_an_unforeseen_failure_inside_joined_batches_keeps_nothing_of_them(root, monkeypatch):
    """Should applying a joined batch fail in a way no check foresaw (a bug, after its rows were
    written), the link ends and the transaction is rolled back: nothing of the batches it held is
    kept, so nothing half-written is ever committed, and the next session brings them again."""
    founder_with_items(root)
    hold_back_the_first_batch(monkeypatch)
    real_on_records, seen = replication.SyncPeer._on_records, []

    def on_records(self, records):
        out = real_on_records(self, records)
        if len(records.revisions) == FULL_BATCH:
            seen.append(True)
            if len(seen) == 2:
                raise RuntimeError("a bug, after the batch's rows were written")
        return out

    monkeypatch.setattr(replication.SyncPeer, "_on_records", on_records)
    at_failure = []
    real_sessions = link_module.Link._sessions

    async def sessions(self):
        try:
            await real_sessions(self)
        except BaseException:
            if self.daemon.device_id == daemons["b"].device_id and not at_failure:
                at_failure.append((self.daemon.vault.counts()["revisions"], self.daemon.vault.in_transaction))
            raise

    monkeypatch.setattr(link_module.Link, "_sessions", sessions)
    await run_until(daemons := start_all(root, MemoryNetwork(), {"a": [], "b": ["a"]}), lambda: bool(at_failure))
    revisions, open_after = at_failure[0]
    assert not open_after
    assert revisions <= FIRST_BATCH  # the first batch (stored on its own) at most
