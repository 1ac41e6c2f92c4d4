"""Relaying in a mesh of daemons (issue 20): a device pushes what it writes to every member it is
connected to, and a receiver passes revisions on only to the members that may lack them. In a
full mesh one edit costs one session per other member (no receiver relays); where a member is
reachable only through others, each hop passes it on; a member that relays nothing, or lies about
its connections, cannot keep another member's edit from anyone who has a path to it.

Real daemons in this process (real Noise, real SQLite), connected by in-memory streams between
named endpoints (tests/io/test_daemon_over_memory.py's transport), in the topology each test names."""

from collections.abc import Iterable
from contextlib import asynccontextmanager

import pytest
import trio

from helpers import PASSWORD
from test_daemon_over_memory import MEMORY, MemoryNetwork, init_vault, make_daemon, titles, until
from vaultpeer.core.identity import DeviceId
from vaultpeer.core.revision import RevisionId
from vaultpeer.core.sync import decode_message, link_id
from vaultpeer.core.vclock import VersionVector
from vaultpeer.io.daemon import Daemon, needs_relay
import vaultpeer.io.link as link_module
from vaultpeer.io.handlers import ApiHandlers
from vaultpeer.io.transports import Address
from vaultpeer.service.home import Home
from vaultpeer.service.vault import Vault


def members(root, names: list[str]) -> None:
    """A vault made on the first, every other enrolled there and joined with the whole roster (what
    pairing does), so each knows every other as a member."""
    homes = [Home(root / name) for name in names]
    init_vault(homes[0])
    with Vault.open(homes[0], allow_insecure_test_kdf=True) as founder:
        founder.unlock(PASSWORD)
        joiners = [Vault.open(home, allow_insecure_test_kdf=True) for home in homes[1:]]
        try:
            for name, joiner in zip(names[1:], joiners):
                founder.enroll(joiner.device.public, name, "test")
            for name, joiner in zip(names[1:], joiners):
                joiner.join(founder.header, founder.outgoing_roster(), founder.device.public, name, "test")
        finally:
            for joiner in joiners:
                joiner.close()


def at(name: str) -> Address:
    return Address(MEMORY, f"memory:{name}", name)


class Hostile(Daemon):
    """A member that relays nothing it receives, and whose hellos claim a connection to every member."""

    relays = False

    def applied(self, session, link) -> None:
        self.events.items_may_have_changed()
        if self.relays:
            for other in list(self.links.values()):
                if other is not link:
                    other.poke()

    def hello_links(self) -> Iterable[DeviceId]:
        return [d for d in self.vault.roster.members if d != self.device_id]


def start_all(root, network: MemoryNetwork, topology: dict[str, list[str]],
              kinds: dict[str, type] | None = None) -> dict[str, Daemon]:
    """A daemon per name, each dialling the names it lists (its --peer)."""
    daemons = {}
    for name, dials in topology.items():
        daemon = make_daemon(root, name, network, *(at(peer) for peer in dials))
        if kinds and name in kinds:
            daemon.__class__ = kinds[name]
        daemons[name] = daemon
    return daemons


async def run_mesh(nursery, daemons: dict[str, Daemon], topology: dict[str, list[str]]) -> None:
    for daemon in daemons.values():
        await nursery.start(daemon.run)
        daemon.vault.unlock(PASSWORD)
    linked = {(a, b) for a, dials in topology.items() for b in dials}
    linked |= {(b, a) for a, b in linked}
    await until(lambda: all(daemons[b].device_id in daemons[a].links for a, b in linked))
    for a in daemons:  # and nothing more: the topology is what the test says
        assert set(daemons[a].links) == {daemons[b].device_id for x, b in linked if x == a}
    await quiet(daemons)


def sessions(daemons: dict[str, Daemon]) -> int:
    """Sync sessions finished on every daemon, each counted once (both sides count it)."""
    return sum(d.traffic.sessions for d in daemons.values()) // 2


async def quiet(daemons: dict[str, Daemon]) -> None:
    """Until no session has ended for 0.3 s (the caller's fail_after bounds it)."""
    counted = -1
    while counted != sessions(daemons) or sum(d.traffic.sessions for d in daemons.values()) % 2:
        counted = sessions(daemons)
        await trio.sleep(0.3)


async def test_one_edit_in_a_full_mesh_costs_one_session_per_other_member(root):
    names = ["a", "b", "c", "d"]
    topology = {name: names[:i] for i, name in enumerate(names)}  # each dials the ones before it
    members(root, names)
    network = MemoryNetwork()
    daemons = start_all(root, network, topology)
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await run_mesh(nursery, daemons, topology)
            for n, author in enumerate(["a", "c", "a"]):
                before = sessions(daemons)
                daemons[author].vault.add(f"edit {n}", {"password": "x"})
                await until(lambda: all(f"edit {n}" in titles(d) for d in daemons.values()))
                await quiet(daemons)
                # the author's session with each of the three others, and no relay
                assert sessions(daemons) - before == 3
            # what `status` reports (bench/sync.py's mesh scenario counts with it)
            for daemon in daemons.values():
                counted = (await ApiHandlers(daemon).m_status({}))["sync"]
                assert counted == {"sessions": daemon.traffic.sessions, "bytes_sent": daemon.traffic.bytes_sent,
                                   "bytes_received": daemon.traffic.bytes_received}
                assert counted["sessions"] >= 3 and counted["bytes_sent"] > 0 and counted["bytes_received"] > 0
            assert (sum(d.traffic.bytes_sent for d in daemons.values())
                    == sum(d.traffic.bytes_received for d in daemons.values()))
            nursery.cancel_scope.cancel()


async def test_a_member_reachable_only_through_another_gets_every_edit_both_ways(root):
    topology = {"a": [], "b": ["a"], "c": ["b"]}  # a chain: c knows no address of a
    members(root, list(topology))
    daemons = start_all(root, MemoryNetwork(), topology)
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await run_mesh(nursery, daemons, topology)
            daemons["a"].vault.add("written on a", {"password": "x"})
            await until(lambda: "written on a" in titles(daemons["c"]))
            daemons["c"].vault.add("written on c", {"password": "y"})
            await until(lambda: "written on c" in titles(daemons["a"]))
            daemons["b"].vault.add("written on b", {"password": "z"})
            await until(lambda: all("written on b" in titles(d) for d in daemons.values()))
            nursery.cancel_scope.cancel()


async def test_a_member_that_relays_nothing_and_lies_does_not_keep_an_edit_from_the_others(root):
    # a reaches c through h (hostile: relays nothing, claims a link to everyone) and through d
    topology = {"a": [], "h": ["a"], "d": ["a"], "c": ["h", "d"]}
    members(root, list(topology))
    daemons = start_all(root, MemoryNetwork(), topology, kinds={"h": Hostile})
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await run_mesh(nursery, daemons, topology)
            for n in range(3):
                daemons["a"].vault.add(f"from a {n}", {"password": "x"})
                await until(lambda: f"from a {n}" in titles(daemons["c"]))
            daemons["c"].vault.add("from c", {"password": "y"})
            await until(lambda: "from c" in titles(daemons["a"]))
            nursery.cancel_scope.cancel()


async def test_a_lying_relay_cannot_keep_another_members_edit_from_the_next_hop(root):
    # a chain a - h - d - c; h relays, but its hellos claim a link to c (and everyone): what a
    # wrote must still go on from d to c, as h's claims count only for what h wrote itself
    topology = {"a": [], "h": ["a"], "d": ["h"], "c": ["d"]}
    members(root, list(topology))

    class LyingRelay(Hostile):
        relays = True

    daemons = start_all(root, MemoryNetwork(), topology, kinds={"h": LyingRelay})
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await run_mesh(nursery, daemons, topology)
            daemons["a"].vault.add("from a", {"password": "x"})
            await until(lambda: "from a" in titles(daemons["c"]))
            nursery.cancel_scope.cancel()


def test_needs_relay_decides_from_the_authors_and_what_the_target_is_known_to_hold():
    a, b, c = (DeviceId(bytes([n]) * 32) for n in (1, 2, 3))
    by_a = [RevisionId(a, 5), RevisionId(a, 6)]
    # a wrote them and says it is connected to c: a pushes them to c itself
    assert not needs_relay(c, None, source=a, source_links=frozenset({link_id(c.raw)}), revisions=by_a)
    # a is not connected to c: pass them on
    assert needs_relay(c, None, source=a, source_links=frozenset({link_id(b.raw)}), revisions=by_a)
    # b relays a's revisions and claims a link to c: that is no reason for c to go without
    assert needs_relay(c, None, source=b, source_links=frozenset({link_id(c.raw)}), revisions=by_a)
    # a mixed batch (a's and b's) from b: b's claim covers only what b wrote
    assert needs_relay(c, None, source=b, source_links=frozenset({link_id(c.raw)}),
                       revisions=[*by_a, RevisionId(b, 1)])
    # c holds them already (its last hello, or a converged session), or wrote them
    assert not needs_relay(c, VersionVector({a: 6}), source=b, source_links=frozenset(), revisions=by_a)
    assert needs_relay(c, VersionVector({a: 5}), source=b, source_links=frozenset(), revisions=by_a)
    assert not needs_relay(c, None, source=b, source_links=frozenset(), revisions=[RevisionId(c, 9)])
    assert not needs_relay(c, None, source=b, source_links=frozenset(), revisions=[])


async def test_a_member_whose_link_to_the_author_failed_gets_the_edit_from_the_others(root):
    """The cost of trusting the author's ``links``: if its push to a member it named is lost with
    their connection, the others do not relay it. The member gets it once it notices the loss: it
    syncs with every member still connected (here the author stays out of its reach)."""
    topology = {"a": [], "b": ["a"], "c": ["a", "b"]}
    members(root, list(topology))
    network = MemoryNetwork()
    daemons = start_all(root, network, topology)
    a, b, c = (daemons[n] for n in "abc")
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await run_mesh(nursery, daemons, topology)
            a.links[c.device_id].poke = lambda: None  # a's push to c is lost with their connection
            a.vault.add("pushed as the link failed", {"password": "x"})
            await until(lambda: "pushed as the link failed" in titles(b))
            await quiet(daemons)
            assert "pushed as the link failed" not in titles(c)  # b relayed nothing: a named c
            network.listening.pop("a")  # and c cannot reach a again
            c.links[a.device_id].close()
            await until(lambda: "pushed as the link failed" in titles(c))
            assert a.device_id not in c.links
            nursery.cancel_scope.cancel()


@asynccontextmanager
async def two_in_sync(root):
    """a and b (b dials a), linked, with one session between them converged, so the next one a
    starts sends its records early: ``(a, b, daemons)``."""
    topology = {"a": [], "b": ["a"]}
    members(root, list(topology))
    daemons = start_all(root, MemoryNetwork(), topology)
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await run_mesh(nursery, daemons, topology)
            a, b = daemons["a"], daemons["b"]
            a.vault.add("first", {"password": "x"})
            await until(lambda: "first" in titles(b))
            await quiet(daemons)
            yield a, b, daemons
            nursery.cancel_scope.cancel()


async def test_a_write_is_pushed_only_once_committed_never_from_inside_an_open_transaction(root):
    """A local change starts its push in the committing task (Link.poke), but not from inside an
    open transaction (an import with its audit entry): had it, the member would get a revision
    that a rollback then undid, and the next write here would reuse its id with other content."""
    async with two_in_sync(root) as (a, b, daemons):
        with pytest.raises(RuntimeError):
            with a.vault.transaction():
                a.vault.add("rolled back", {"password": "y"})
                raise RuntimeError("the import failed after its items were written")
        a.vault.add("kept", {"password": "z"})
        await until(lambda: "kept" in titles(b))
        await quiet(daemons)
        assert "rolled back" not in titles(b) and titles(b) == titles(a)
        assert b.vault.knowledge() == a.vault.knowledge()


async def test_a_session_that_brought_changes_holds_back_its_bookkeeping_until_a_local_change(root, monkeypatch):
    """Once a batch stored a's edit on b, and b has nothing for a, the rest of b's session (its
    digest and done, and its hello and empty last batch if they were not out yet) waits
    SETTLE_DELAY: b's apps read the edit first. Made 5 s here to be seen: the edit is readable on
    b at once while the session is held; a change on b cuts the wait short, and the session, and
    b's change, go on at once. What b writes goes out joined (a hello with the batch after it)."""
    async with two_in_sync(root) as (a, b, daemons):
        monkeypatch.setattr(link_module, "SETTLE_DELAY", 5.0)
        b_link = b.links[a.device_id]
        writes = []
        real_send_many = b_link.stream.send_many

        async def counted(messages):
            writes.append([type(decode_message(m)).__name__ for m in messages])
            await real_send_many(messages)

        monkeypatch.setattr(b_link.stream, "send_many", counted)
        before = sessions(daemons)
        started = trio.current_time()
        a.vault.add("edit", {"password": "y"})
        await until(lambda: "edit" in titles(b))
        await trio.sleep(0.5)
        held = [kind for write in writes for kind in write]
        assert sessions(daemons) == before and "Digest" not in held and "Done" not in held
        assert all("Hello" not in write or write[:2] == ["Hello", "Records"] for write in writes)
        b.vault.add("on b", {"password": "z"})
        await until(lambda: "on b" in titles(a))
        await quiet(daemons)
        assert trio.current_time() - started < 4.0  # the change cut the 5 s short
        assert sessions(daemons) > before  # the held session ended (b's change in it, or in the next)


async def test_bursts_of_edits_on_both_sides_converge_with_nothing_lost_or_forked(root):
    """Edits made on both devices while their sessions are under way (pushed at commit, early
    records that end a records phase, sessions that end unconverged because more came meanwhile,
    held bookkeeping cut short by the next change): both end with every edit, the same state and
    no revision id under two contents."""
    async with two_in_sync(root) as (a, b, daemons):
        for n in range(25):
            a.vault.add(f"a {n}", {"password": f"a{n}"})
            if n % 3:
                b.vault.add(f"b {n}", {"password": f"b{n}"})
            if n % 5 == 0:
                a.vault.edit("first", {"password": f"edited on a {n}"})
            await trio.sleep(0.001 * (n % 4))
        await until(lambda: titles(a) == titles(b) and len(titles(a)) == 1 + 25 + 16)
        await quiet(daemons)
        assert a.vault.knowledge() == b.vault.knowledge()
        assert a.vault.get("first").content.field_map() == b.vault.get("first").content.field_map()
        assert a.vault.state_digest().root == b.vault.state_digest().root
        assert not a.vault.check().equivocations and not b.vault.check().equivocations

