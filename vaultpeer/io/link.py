"""One authenticated connection to a member: a reader task, a writer task, and sync sessions one
after another over it (``vaultpeer.service.replication.SyncPeer``). Either side starts a session by sending its
hello; a local change starts one at once (``poke``). What the link learns goes back to its daemon
(``applied``, ``after_sync``, ``offense``, ``publish``).
"""

import logging
import math
import time
from contextlib import ExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING

import trio

from vaultpeer.core.identity import DeviceId
from vaultpeer.core.roster import Member, Roster
from vaultpeer.core.sync import Records
from vaultpeer.core.transport import TransportError
from vaultpeer.core.vclock import VersionVector
from vaultpeer.io.noise_stream import ConnectionClosed, NoiseStream
from vaultpeer.io.transports import Address
from vaultpeer.service.replication import PREPARE_FROM_BYTES, Prepared, SyncPeer, prepare

if TYPE_CHECKING:  # the daemon makes links: no import cycle at run time
    from vaultpeer.io.daemon import Daemon

log = logging.getLogger("vaultpeer.daemon")

#: A sync session in which the peer says nothing for this long is abandoned.
SESSION_TIMEOUT = 30.0
#: How long a link that is ending waits for its last messages (a session's `error`) to go out.
ERROR_FLUSH_TIMEOUT = 2.0
#: Messages read ahead of the session applying them: the reader waits when this many are queued,
#: so a receiver slower than its sender holds a few batches, not the whole vault, in memory. The
#: queued batches are decoded and checked meanwhile, several at once (``Link._preparation``).
READ_AHEAD = 4
#: The writer joins queued messages into one write until they reach this size.
_WRITE_BATCH_BYTES = 64 * 1024
#: Once a batch stored changes here, and this side has none for the member, what is left of the
#: session (hellos, empty batches, digests, ``done``: nothing the member's apps wait for) waits
#: this long before it is written, so that the apps told of the changes read them first instead of
#: competing with the session's bookkeeping, here and on the member, for a few cores. A local
#: change cuts the wait short. A few local round trips: an app reads within a millisecond or so.
SETTLE_DELAY = 0.002
#: Batches of revisions stored in one transaction, at most: a batch whose next one is already read
#: and checked (``_Preparation``) is committed with it, one sync of the disk for several (a new
#: device's first sync of 100,000 revisions makes 100 batches). Only batches already in hand are
#: joined: the session never waits with a transaction open, so no other task can write into it,
#: and nothing it sends, and no app it tells, comes before the commit.
MAX_JOINED_BATCHES = 8


@dataclass
class LinkTimes:
    """When a link was made, by ``trio.current_time()``: what bench/link_setup.py measures (dial to
    first sync message, and the handshake alone).

    The first three are stamped on dialled links only (``Dialer.dial_member``); ``first_message``
    on every link, when its first message from the member has been read and decrypted."""

    dialled: float | None = None        # before the transport's dial (a TCP connect)
    connected: float | None = None      # connected, before the handshake
    authenticated: float | None = None  # handshake done: an authenticated stream
    first_message: float | None = None  # the member's first message read and decrypted


class _Preparation:
    """One received message on its way to the session: ``prepare``'s answer once it is made."""

    def __init__(self) -> None:
        self._ready = trio.Event()
        self._result: "bytes | Prepared | None" = None

    def done(self, result: "bytes | Prepared") -> None:
        self._result = result
        self._ready.set()

    async def run(self, message: bytes, vault_id: bytes, roster: Roster) -> None:
        self.done(await trio.to_thread.run_sync(prepare, message, vault_id, roster))

    async def result(self) -> "bytes | Prepared":
        """The prepared message; no checkpoint when it is ready already (a small message always is)."""
        if not self._ready.is_set():
            await self._ready.wait()
        return self._result

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    @property
    def joinable(self) -> bool:
        """Ready, and a batch of revisions only (no header, roster, repair or early records): one
        that may be stored in the transaction of the batch before it (``MAX_JOINED_BATCHES``)."""
        return self.ready and _only_revisions(self._result)


def _only_revisions(data: "bytes | Prepared | None") -> bool:
    if not isinstance(data, Prepared) or not isinstance(data.message, Records):
        return False
    records = data.message
    return (bool(records.revisions) and records.header is None and not records.roster and not records.repair
            and records.basis is None)


class Link:
    """One authenticated connection to a member, carrying sync sessions one after another."""

    def __init__(self, daemon: "Daemon", stream: NoiseStream, member: Member, *, initiator: bool, address: Address,
                 times: LinkTimes | None = None):
        self.daemon = daemon
        self.stream = stream
        self.member = member
        self.initiator = initiator
        self.address = address
        self._inbox_send, self._inbox = trio.open_memory_channel(READ_AHEAD)
        #: Messages to send, and sessions whose batches the writer pulls one at a time as the stream
        #: takes them (``SyncPeer.next_pending``). Flow control: the writer makes the next batch
        #: only when the last is written, while the reader keeps reading and the session keeps
        #: applying, and nothing the session does waits for the writer (this queue takes what it
        #: is given at once, and holds small messages only): two links sending at once cannot
        #: deadlock.
        self._outbox_send, self._outbox = trio.open_memory_channel(math.inf)
        #: A local change came while the inbox was full: a session follows the current one.
        self._poke_missed = False
        #: The session loop waits for the next message with no session under way and nothing
        #: queued: a local change may start its session at once (``poke``).
        self._idle = False
        #: A session ``poke`` started, for the session loop to take over (its ``started`` message).
        self._started: SyncPeer | None = None
        #: Until when the writer holds back (``SETTLE_DELAY``), and what cuts it short (``poke``).
        self._settle_until = -math.inf
        self._hurry = trio.Event()
        #: The transaction that batches of revisions are joined in (``MAX_JOINED_BATCHES``), and how
        #: many it holds. Open only while the next message (``_session_loop``'s ``carried``) is one
        #: more such batch, ready: the session loop never waits for anything with it open.
        self._joined: ExitStack | None = None
        self._joined_batches = 0
        self._cancel = trio.CancelScope()
        self._sessions_scope = trio.CancelScope()
        #: The last message to send before the link ends (``dismiss``), instead of anything queued.
        self._farewell: bytes | None = None
        self._writer_done = trio.Event()
        self.sessions = 0
        #: The header and roster hashes of the member's hello in the last session that converged:
        #: while they are still ours, a session this side starts sends its records early.
        self._peer_hashes: tuple[bytes, bytes] | None = None
        self.closed = trio.Event()
        self.times = times or LinkTimes()
        stream.meter = daemon.traffic
        #: What the member is known to hold, from its last hello and the last converged session
        #: (None before the first): the daemon relays it nothing it holds.
        self.peer_holds: VersionVector | None = None

    @property
    def device_id(self) -> DeviceId:
        return self.member.device_id

    @property
    def dialer(self) -> DeviceId:
        return self.daemon.device_id if self.initiator else self.device_id

    def poke(self) -> None:
        """A local change: start a session now (or right after the current one).

        If the session loop is idle, the session starts here, in the caller's task: its hello and
        early records are queued before the caller next yields (an edit's API answer, say), one
        wakeup of the loop sooner. The loop takes the session over from the ``started`` message,
        which is then first in its inbox, so nothing the member sent can come between. Not while
        the change is still inside an open transaction (an import and its audit entry): its
        session would read, and send, what a rollback may yet undo."""
        self._settle_until = -math.inf  # the member waits for this: no more holding back
        self._hurry.set()
        if (self._idle and self._started is None and self._farewell is None
                and not self.daemon.vault.in_transaction):
            try:
                session = self._new_session(ours=True)
            except Exception:  # noqa: BLE001 - the loop starts it again, where a failure ends the link
                log.debug("a session could not start at once; the session loop starts it", exc_info=True)
            else:
                self._idle, self._started = False, session
                self._inbox_send.send_nowait(("started", b""))  # the inbox was empty: it has room
                return
        try:
            self._idle = False
            self._inbox_send.send_nowait(("sync", b""))
        except trio.WouldBlock:
            self._poke_missed = True  # the link is busy: a session follows the current one

    def close(self) -> None:
        self._cancel.cancel()

    def dismiss(self, farewell: bytes) -> None:
        """End the link now, sending ``farewell`` (a ``removed`` notice) as its last message in
        place of anything still queued: the peer is no longer a member, so nothing of the vault
        goes to it any more."""
        self._farewell = farewell
        self._sessions_scope.cancel()

    async def run(self, start: bool = True) -> None:
        try:
            with self._cancel:
                try:
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(self._reader, nursery)
                        nursery.start_soon(self._writer)
                        if start:
                            self.poke()
                        with self._sessions_scope:
                            await self._sessions()
                        if self._farewell is not None:
                            self._drop_queued()
                            self._outbox_send.send_nowait(self._farewell)
                        # a failed session queued its `error`: let the writer send it, then end
                        self._outbox_send.close()
                        with trio.move_on_after(ERROR_FLUSH_TIMEOUT):
                            await self._writer_done.wait()
                        nursery.cancel_scope.cancel()
                    if self._farewell is not None and self._writer_done.is_set():
                        await self.stream.close_when_read(ERROR_FLUSH_TIMEOUT)
                except* (ConnectionClosed, TransportError, trio.BrokenResourceError,
                         trio.ClosedResourceError) as ended:
                    log.info("connection to %s ended: %s", self.member.device_id.short, ended.exceptions[0])
                    if any(isinstance(e, TransportError) for e in ended.exceptions):
                        self.daemon.offense(self.address, "bad_frame")
                except* Exception:  # noqa: BLE001 - one peer's trouble must never stop the daemon
                    log.exception("connection to %s failed", self.member.device_id.short)
            await self.stream.aclose()
        finally:
            self.closed.set()

    async def _reader(self, nursery: trio.Nursery) -> None:
        """Read messages into the inbox; ``nursery`` (the link's, so that what ends the reader ends
        the link as one exception, not a group of its own) runs their preparations. When the peer
        closes, the close goes in the inbox after what was read before it: the session applies those
        messages first (a member's last message, a ``removed`` notice say, is never lost to the close
        that follows it), then ends the link."""
        while True:
            try:
                message = await self.stream.receive()
            except ConnectionClosed as closed:
                self._idle = False  # the loop has something to do (a waiting receiver is handed it directly)
                await self._inbox_send.send(("closed", closed))
                return
            if self.times.first_message is None:
                self.times.first_message = trio.current_time()
                for notify in self.daemon.on_first_message:
                    notify(self)
            self._idle = False
            # what came in the same read (a hello and the early records behind it) goes in the
            # inbox before this task yields: the session applies it before the writer answers the first
            while message is not None:
                item = ("message", self._preparation(message, nursery))
                try:
                    self._inbox_send.send_nowait(item)
                except trio.WouldBlock:
                    await self._inbox_send.send(item)  # READ_AHEAD messages wait already
                message = self.stream.receive_read()

    def _preparation(self, message: bytes, nursery: trio.Nursery) -> "_Preparation":
        """A batch decoded and its signatures checked on other threads (``replication.prepare``),
        while the session stores the ones before and the next ones are read: up to ``READ_AHEAD``
        batches are prepared at once, so the checking threads always have work. A small message
        is ready as it is."""
        preparation = _Preparation()
        if len(message) < PREPARE_FROM_BYTES:
            preparation.done(message)
        else:
            vault = self.daemon.vault
            nursery.start_soon(preparation.run, message, vault.vault_id, vault.roster)
        return preparation

    async def _writer(self) -> None:
        async for item in self._outbox:
            await self._settle()
            # what is queued together (a hello and its early records; a hello, an empty last batch
            # and a digest) goes in one write: one wakeup of the peer, not one each
            messages: list[bytes] = []
            size = 0
            while item is not None:
                if isinstance(item, bytes):
                    messages.append(item)
                    size += len(item)
                else:
                    # a session's batches, each made only when what comes before it is written (or
                    # joins it, while small): big batches go one by one, never all in memory
                    while self._farewell is None:
                        if size >= _WRITE_BATCH_BYTES:
                            await self.stream.send_many(messages)
                            messages, size = [], 0
                        batch = item.next_pending()
                        if batch is None:
                            break
                        messages.append(batch)
                        size += len(batch)
                item = None
                if size < _WRITE_BATCH_BYTES:
                    try:
                        item = self._outbox.receive_nowait()
                    except (trio.WouldBlock, trio.EndOfChannel):
                        pass
            if messages:
                await self.stream.send_many(messages)
        self._writer_done.set()

    async def _settle(self) -> None:
        """Hold back for what is left of ``SETTLE_DELAY``, unless a local change comes first."""
        if self._settle_until > trio.current_time():
            with trio.move_on_at(self._settle_until):
                await self._hurry.wait()
        if self._hurry.is_set():
            self._hurry = trio.Event()

    def _drop_queued(self) -> None:
        while True:
            try:
                self._outbox.receive_nowait()
            except trio.WouldBlock:
                return

    def _send(self, messages: list[bytes], session: SyncPeer | None = None) -> None:
        for message in messages:
            self._outbox_send.send_nowait(message)
        if session is not None and session.has_pending:
            self._outbox_send.send_nowait(session)

    def _new_session(self, *, ours: bool = False) -> SyncPeer:
        """A session, its hello queued. ``ours``: this side starts it (a local change), so it may
        send early records after the hello (protocol 5), if the last session converged. What a
        received batch made readable is announced, and passed on, the moment it is committed:
        before the session ends, and before this side's digest is built."""
        session = SyncPeer(self.daemon.vault, initiator=self.initiator, peer=self.device_id, lazy=True)
        session.on_stored = lambda _items: self.daemon.applied(session, self)
        self._send(session.start(self.daemon.hello_links(), early=self._peer_hashes if ours else None))
        return session

    async def _sessions(self) -> None:
        try:
            await self._session_loop()
        except BaseException as exc:
            # something unforeseen (not a bad batch: that ends the session, and wrote nothing, as
            # every check of a batch comes before its writes): what the transaction holds goes
            if self._joined is not None:
                joined, self._joined, self._joined_batches = self._joined, None, 0
                joined.__exit__(type(exc), exc, exc.__traceback__)
            raise
        self._commit_joined()

    def _take_queued(self) -> tuple | None:
        try:
            return self._inbox.receive_nowait()
        except trio.WouldBlock:
            return None

    def _commit_joined(self) -> None:
        if self._joined is not None:
            joined, self._joined, self._joined_batches = self._joined, None, 0
            joined.close()

    def _join(self, carried: tuple | None) -> bool:
        """Whether the message after the one being applied (taken from the inbox: ``carried``) is
        stored in the same transaction: it is a batch of revisions, ready, and there is room."""
        return (carried is not None and carried[0] == "message" and carried[1].joinable
                and self._joined_batches < MAX_JOINED_BATCHES)

    async def _session_loop(self) -> None:
        session: SyncPeer | None = None
        again = False
        #: The next message, taken from the inbox already (it was read): applied without a wait.
        carried: tuple | None = None
        vault = self.daemon.vault
        while True:
            kind = None
            if carried is not None:
                (kind, data), carried = carried, None
            if kind is None:
                timeout = SESSION_TIMEOUT if session is not None else math.inf
                self._idle = session is None and not self._inbox.statistics().current_buffer_used
                try:
                    with trio.move_on_after(timeout) as waited:
                        kind, data = await self._inbox.receive()
                finally:
                    self._idle = False
                if waited.cancelled_caught:
                    log.warning("sync with %s stalled; closing the connection", self.member.device_id.short)
                    return
            if kind == "started":  # poke started it (the loop was idle: there was no other)
                session, self._started = self._started, None
                continue
            if kind == "closed":
                raise data  # everything read before the close is applied
            if kind == "sync":
                if session is None:
                    session = self._new_session(ours=True)
                else:
                    again = True
                continue
            data = await data.result()
            if session is None:
                session = self._new_session()
            if self._joined is None and _only_revisions(data) and not session.finished:
                # a batch of revisions, and the next one is here and checked already: one commit for both
                carried = self._take_queued()
                if self._join(carried):
                    self._joined = ExitStack()
                    self._joined.enter_context(vault.transaction())
            received_before, was_unlocked = session.stats.revisions_new, not vault.locked
            replies = session.receive(data)
            if session.stats.revisions_new != received_before and not session.sends_changes:
                self._settle_until = trio.current_time() + SETTLE_DELAY  # the apps here read first
                if self._hurry.is_set():  # cut short by a change made before this, not after
                    self._hurry = trio.Event()
            self._send(replies, session)
            self.daemon.notice_self_lock(was_unlocked)
            if session.stats.revisions_new != received_before:
                # new revisions stored, against what the hello announced (a repair or an edit made
                # during the session may bring more: the total grows with them, never below)
                received = session.stats.revisions_new
                self.daemon.publish({"type": "sync.progress", "device_id": str(self.device_id),
                                     "received": received,
                                     "expected": max(received, session.stats.revisions_expected)})
            if session.peer_holds is not None:
                self.peer_holds = session.peer_holds
            if isinstance(data, bytes) and carried is None:
                # a small message (a hello, early records, a digest): the next, if read already, is
                # applied before the writer sends the answer to this one (a hello's early records:
                # the edit reaches the apps one wakeup sooner, the answers go out in one write). At
                # most the few messages read ahead (READ_AHEAD): the other tasks never wait long.
                carried = self._take_queued()
            if self._joined is not None:
                self._joined_batches += 1
                if carried is None and not session.finished:
                    carried = self._take_queued()
                if session.finished or not self._join(carried):
                    self._commit_joined()  # before anything waits, or the session ends
            if not session.finished:
                continue
            self._finish(session)
            if session.failed:
                return
            hello = session.session.peer_hello
            self._peer_hashes = (hello.header_hash, hello.roster_hash) if session.converged else None
            if not session.stats.revisions_new and not session.stats.revisions_expected:
                # nothing to receive (an empty vault, or all of it here already): a joining
                # device's progress bar learns it is done now rather than waiting for news
                self.daemon.publish({"type": "sync.progress", "device_id": str(self.device_id),
                                     "received": 0, "expected": 0})
            more, session = session.more_to_send, None
            if again or self._poke_missed or more:
                again = self._poke_missed = False
                session = self._new_session(ours=True)

    def _finish(self, session: SyncPeer) -> None:
        self.sessions += 1
        self.daemon.traffic.sessions += 1
        for note in session.notes:
            log.info("sync with %s: %s", self.member.device_id.short, note)
        state = self.daemon.peer_state(self.device_id)
        if session.failed:
            state.last_error = session.notes[-1] if session.notes else "sync failed"
            if session.removal is not None:
                self.daemon.removed_from_vault(session.removal)
            if session.peer_at_fault:
                self.daemon.offense(self.address, "sync_protocol", audit=False)  # SyncPeer recorded it
            return
        state.last_seen, state.address, state.last_error = time.time(), str(self.address), None
        if session.peer_holds is not None:
            self.peer_holds = session.peer_holds
        self.daemon.after_sync(session, self)
