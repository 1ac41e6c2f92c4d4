"""The daemon's events for the local API (``events.subscribe``), with change cursors.

Every event carries ``seq``. An ``items.changed`` event describes the revisions stored in a range
of the store's arrival numbers, ``(previous seq, seq]`` (``vaultpeer.core.changes``): its ``seq``
is the newest arrival it covers, so item events' seqs strictly increase, survive a restart (the
numbers are the store's) and say exactly what a client has seen. Every other event carries the
seq of the last item change published before it: seqs never decrease, and a cursor is always
"the last item change I saw".

Item events are published by one task after each commit (``items_may_have_changed``), from what
the store holds, never from what a caller says changed: only committed revisions are announced
(an arrival number of a rolled back transaction is used again), a burst of commits becomes one
event, and a revision stored by another process is announced with the next one.

``subscribe`` registers the live channel first, then reads how far the published events go
(``through``; nothing can be published in between, as nothing awaits), replays from the store the
changes after the client's cursor up to there, and then forwards the live events, all of which are
past ``through``: nothing is lost and nothing comes twice. A subscriber that falls
``SUBSCRIBER_BUFFER`` events behind is dropped (its connection ends) rather than silently missing
events: it resumes from its cursor.
"""

import logging
from collections.abc import AsyncIterator, Callable

import trio

from vaultpeer.api import CHANGES_PER_EVENT, MAX_REPLAY
from vaultpeer.io.api_server import Subscription
from vaultpeer.service.vault import Vault

log = logging.getLogger("vaultpeer.events")

#: Events queued for one subscriber at most; one that falls further behind is dropped.
SUBSCRIBER_BUFFER = 256
#: Revisions read per step when item events are built (a 100,000-item import is announced in steps).
_READ_STEP = 5000


class EventFeed:
    def __init__(self, vault: Vault):
        self.vault = vault
        #: Every item change up to this arrival number has been published (the live events' cursor).
        self.through = 0
        self._subscribers: list[trio.MemorySendChannel] = []
        self._due = trio.Event()

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Announce item changes as they are committed. What was stored before the daemon started is
        for replay only."""
        self.through = self.vault.change_cursor()
        task_status.started()
        while True:
            await self._due.wait()
            self._due = trio.Event()
            while not self.announce_item_changes():
                await trio.sleep(0.01)  # a transaction is open: announce once it is committed

    def items_may_have_changed(self) -> None:
        """Revisions may have been stored: the feed looks at the next checkpoint (after the commit)."""
        self._due.set()

    def announce_now(self) -> None:
        """Revisions were just committed: publish them now, from the caller's task (no wait for the
        feed's own task to be scheduled), or at the next checkpoint if a transaction is open."""
        if not self.announce_item_changes():
            self._due.set()

    def announce_item_changes(self) -> bool:
        """Publish the item changes stored since the last ones published; False (nothing done)
        while a transaction is open."""
        if self.vault.in_transaction:
            return False
        target = self.vault.change_cursor()
        if not self._subscribers:  # nobody to tell: a later subscriber's replay reads the store itself
            self.through = max(self.through, target)
            return True
        while self.through < target:
            batches = self.vault.item_changes(self.through, target, per_batch=CHANGES_PER_EVENT, limit=_READ_STEP)
            if not batches:
                break
            for batch in batches:
                self.through = batch.through
                self.publish(batch.to_event())
        self.through = max(self.through, target)
        return True

    def publish(self, event: dict) -> None:
        """Send ``event`` to every subscriber (with ``seq``: the current cursor, unless it has one)."""
        event = {**event, "seq": event.get("seq", self.through)}
        for channel in list(self._subscribers):
            try:
                channel.send_nowait(event)
            except trio.WouldBlock:
                log.info("an API subscriber fell %d events behind: its connection ends (it resumes from its "
                         "cursor)", SUBSCRIBER_BUFFER)
                channel.close()
                self._subscribers.remove(channel)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._subscribers.remove(channel)

    def subscribe(self, since: int | None = None, store: str | None = None,
                  watched: frozenset[str] | None = None) -> Subscription:
        """A subscription: live from now, after replaying the item changes after ``since`` (docs/api.md,
        ``events.subscribe``). ``reset`` when they cannot be replayed: ``since`` is past anything
        this store published, ``store`` names another store, or more than ``MAX_REPLAY`` revisions
        were stored since."""
        send, receive = trio.open_memory_channel(SUBSCRIBER_BUFFER)
        self._subscribers.append(send)
        through, store_id = self.through, self.vault.store_id
        reset = since is not None and (
            since > through or (store is not None and store != store_id)
            or self.vault.revisions_between(since, through, limit=MAX_REPLAY + 1) > MAX_REPLAY)
        start = since if since is not None and not reset else through
        return Subscription({"subscribed": True, "seq": through, "store": store_id, "reset": reset},
                            Events(receive, self._replay(start, through, watched), through, watched,
                                    on_close=lambda: self._unsubscribe(send)))

    def _unsubscribe(self, channel: trio.MemorySendChannel) -> None:
        channel.close()
        if channel in self._subscribers:
            self._subscribers.remove(channel)

    async def _replay(self, after: int, through: int, watched: frozenset[str] | None) -> AsyncIterator[dict]:
        while after < through:
            batches = self.vault.item_changes(after, through, per_batch=CHANGES_PER_EVENT, limit=_READ_STEP)
            if not batches:
                return
            for batch in batches:
                event = _watching(batch.to_event(), watched)
                if event is not None:
                    yield event
            after = batches[-1].through


def _watching(event: dict, watched: frozenset[str] | None) -> dict | None:
    """An item event limited to the watched items (None: all); None when none of them changed."""
    if watched is None or event["type"] != "items.changed":
        return event
    changes = [c for c in event["changes"] if c["id"] in watched]
    if not changes:
        return None
    return {**event, "items": [c["id"] for c in changes], "changes": changes}


class Events:
    """One subscription's events: the replay, then the live ones (those past the replay). Closing
    it, started or not, closes its channel, so the feed keeps no slot for it."""

    def __init__(self, receive: trio.MemoryReceiveChannel, replay: AsyncIterator[dict], through: int,
                 watched: frozenset[str] | None, on_close: Callable[[], None]):
        self._receive = receive
        self._events = self._all(replay, through, watched)
        self._on_close = on_close

    def __aiter__(self) -> "Events":
        return self

    async def __anext__(self) -> dict:
        return await self._events.__anext__()

    def end(self) -> None:
        """End it now (an app's token was revoked): the live wait ends, and nothing more comes."""
        self._receive.close()

    async def aclose(self) -> None:
        try:
            await self._events.aclose()
        finally:
            self._receive.close()
            self._on_close()

    async def _all(self, replay: AsyncIterator[dict], through: int,
                   watched: frozenset[str] | None) -> AsyncIterator[dict]:
        async for event in replay:
            yield event
        with self._receive:
            async for event in self._receive:
                if event["type"] == "items.changed":
                    if event["seq"] <= through:
                        continue  # replayed already (cannot happen: subscribed before `through` was read)
                    event = _watching(event, watched)
                    if event is None:
                        continue
                yield event
