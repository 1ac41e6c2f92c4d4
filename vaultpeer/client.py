"""A small client for the daemon's local API: blocking (the CLI uses it) and trio (for apps).

trio is imported only by ``TrioClient.connect`` and ``follow``: a CLI command through the daemon
starts in well under 100 ms partly because it never loads an event loop.

Events carry change cursors (docs/api.md, ``events.subscribe``): both clients keep the last one
seen in ``cursor`` (a ``Cursor``: the daemon's store id and a seq), and ``subscribe`` takes it back
after a disconnection, so an app misses nothing. ``follow`` does that by itself across daemon
restarts. Events that arrive while a call waits for its answer are kept for ``events``."""

from __future__ import annotations

import errno
import itertools
import json
import os
import socket
from collections import deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from vaultpeer.api import ApiError

if TYPE_CHECKING:
    import trio


class DaemonNotRunning(Exception):
    def __init__(self, message: str = "no vaultpeer daemon is running for this home "
                                      "(start it with `vaultpeer daemon` or `systemctl --user start vaultpeer`)"):
        super().__init__(message)


def _request(request_id: int, method: str, params: dict) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}).encode() + b"\n"


def _result(response: dict | None) -> object:
    if response is None:
        raise ApiError(-32603, "the daemon closed the connection")
    if "error" in response:
        error = response["error"]
        raise ApiError(error.get("code", -32603), error.get("message", "error"), error.get("data"))
    return response.get("result")


def find_socket(home: str | os.PathLike | None = None, environ: dict[str, str] | None = None) -> Path:
    """Where the daemon's socket is (docs/api.md, "Finding the socket"): the socket of ``home`` if
    one is named; else ``$VAULTPEER_SOCKET``; else the socket of ``$VAULTPEER_HOME``, or of the
    default home (the platform's user data directory)."""
    from vaultpeer.service.home import SOCKET_ENV, Home, resolve_home

    environ = os.environ if environ is None else environ
    if home is None and environ.get(SOCKET_ENV):
        return Path(environ[SOCKET_ENV])
    return Home(resolve_home(home, environ)).socket_path


def _is_event(message: dict) -> bool:
    return message.get("method") == "event" and "id" not in message


@dataclass(frozen=True)
class Cursor:
    """Where an app is in a daemon's changes: the store's id and the last seq seen (docs/api.md)."""

    store: str
    seq: int

    def params(self) -> dict:
        return {"since": self.seq, "store": self.store}


def _subscribe_params(cursor: Cursor | None, items: list[str] | None) -> dict:
    params = cursor.params() if cursor is not None else {}
    if items is not None:
        params["items"] = list(items)
    return params


class _Cursors:
    """The cursor a client keeps: set by the subscription's answer, advanced by each event."""

    cursor: Cursor | None = None
    #: True when the last subscription's cursor could not be replayed: re-read what you show.
    reset: bool = False

    def _subscribed(self, result: dict) -> dict:
        if isinstance(result, dict) and "store" in result:  # a daemon of API version 3 or later
            self.cursor, self.reset = Cursor(result["store"], result["seq"]), bool(result.get("reset"))
        return result

    def _seen(self, event: dict) -> dict:
        if self.cursor is not None and isinstance(event.get("seq"), int) and event["seq"] > self.cursor.seq:
            self.cursor = Cursor(self.cursor.store, event["seq"])
        return event


def _monotonic() -> float:
    import time

    return time.monotonic()


def _registered(answer: dict, call, timeout: float, clock, step: float) -> str:
    """Wait (``app.wait``, ``step`` seconds at a time) for the answer to a registration."""
    deadline = clock() + timeout
    while True:
        left = deadline - clock()
        if left <= 0:
            raise TimeoutError(f"the request of {answer['name']!r} was not answered within {timeout:g} s")
        result = call("app.wait", request=answer["request"], timeout=min(left, step))
        if result["status"] != "pending":
            return _token_of(result)


def _token_of(result: dict) -> str:
    if result["status"] == "approved":
        return result["token"]
    raise ApiError(1014, f"the app's request was {result['status']}", {"name": "forbidden", "reason": result["status"]})


class Client(_Cursors):
    """A blocking client. ``socket_path``: by default, ``find_socket()``'s. ``token``: an app token
    (docs/api.md, "App tokens"), presented with ``auth`` as the first request of the connection;
    None: the connection presents none."""

    def __init__(self, socket_path: Path | None = None, timeout: float = 30.0, token: str | None = None):
        if socket_path is None:
            socket_path = find_socket()
        self.socket_path = Path(socket_path)
        self.timeout = timeout
        self._ids = itertools.count(1)
        self._sock: socket.socket | None = None
        self._file = None
        self._pending: deque[dict] = deque()
        self._token = token

    def __repr__(self) -> str:
        return f"Client({str(self.socket_path)!r}, token={'redacted' if self._token else None})"

    def _connect(self) -> None:
        if self._sock is not None:
            return
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(str(self.socket_path))
        except OSError as exc:
            sock.close()
            if exc.errno in (errno.ENOENT, errno.ECONNREFUSED, errno.ENOTDIR):
                raise DaemonNotRunning() from None
            raise
        self._sock, self._file = sock, sock.makefile("rb")
        if self._token is not None:
            try:
                self.call("auth", token=self._token)
            except BaseException:
                self.close()
                raise

    def _message(self) -> dict | None:
        line = self._file.readline()
        return json.loads(line) if line else None

    def call(self, method: str, **params: object) -> object:
        self._connect()
        self._sock.sendall(_request(next(self._ids), method, params))
        while (message := self._message()) is not None and _is_event(message):
            self._pending.append(message["params"])  # a subscribed connection: kept for the iterator
        return _result(message)

    def register(self, name: str, scopes: list[str], timeout: float = 600.0) -> str:
        """Register this app (``app.register``) and wait up to ``timeout`` seconds for the person
        to run `vaultpeer apps approve NAME`: the app's token (keep it; it is shown once).
        ApiError 1014 (``forbidden``) when denied, TimeoutError when nobody answered in time."""
        return _registered(self.call("app.register", name=name, scopes=scopes), self.call, timeout, _monotonic,
                           step=min(60.0, self.timeout * 0.8))

    def subscribe(self, cursor: Cursor | None = None, items: list[str] | None = None) -> Iterator[dict]:
        """Subscribe now (before this returns), after ``cursor`` if given (the changes since are
        replayed first, unless ``reset`` says to re-read instead), to the ``items`` ids if given;
        the iterator yields the events as they come and keeps ``cursor`` current."""
        self._subscribed(self.call("events.subscribe", **_subscribe_params(cursor, items)))
        return self._events()

    def _events(self) -> Iterator[dict]:
        while True:
            while self._pending:
                yield self._seen(self._pending.popleft())
            message = self._message()
            if message is None:
                return
            if _is_event(message):
                yield self._seen(message["params"])

    def close(self) -> None:
        if self._sock is not None:
            try:  # wakes a thread blocked reading events, which would otherwise hold the file's lock
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._file.close()
            self._sock.close()
            self._sock = self._file = None

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class TrioClient(_Cursors):
    def __init__(self, stream: trio.SocketStream):
        self._stream = stream
        self._ids = itertools.count(1)
        self._buffer = b""
        self._pending: deque[dict] = deque()

    @classmethod
    async def connect(cls, socket_path: Path | None = None, token: str | None = None) -> TrioClient:
        """A connection to the daemon (``socket_path``: by default, ``find_socket()``'s); with
        ``token``, presented (``auth``) before this returns."""
        import trio

        if socket_path is None:
            socket_path = find_socket()
        try:
            client = cls(await trio.open_unix_socket(str(socket_path)))
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ECONNREFUSED):
                raise DaemonNotRunning() from None
            raise
        if token is not None:
            try:
                await client.call("auth", token=token)
            except BaseException:
                await client.aclose()
                raise
        return client

    async def register(self, name: str, scopes: list[str], timeout: float = 600.0) -> str:
        """As ``Client.register``: the token once the person approved, waiting in steps of a minute."""
        import trio

        answer = await self.call("app.register", name=name, scopes=scopes)
        deadline = trio.current_time() + timeout
        while True:
            left = deadline - trio.current_time()
            if left <= 0:
                raise TimeoutError(f"the request of {name!r} was not answered within {timeout:g} s")
            result = await self.call("app.wait", request=answer["request"], timeout=min(left, 60))
            if result["status"] != "pending":
                return _token_of(result)

    async def _line(self) -> bytes:
        while b"\n" not in self._buffer:
            data = await self._stream.receive_some(65536)
            if not data:
                return b""
            self._buffer += data
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line

    async def _message(self) -> dict | None:
        line = await self._line()
        return json.loads(line) if line else None

    async def call(self, method: str, **params: object) -> object:
        await self._stream.send_all(_request(next(self._ids), method, params))
        while (message := await self._message()) is not None and _is_event(message):
            self._pending.append(message["params"])  # a subscribed connection: kept for events()
        return _result(message)

    async def subscribe(self, cursor: Cursor | None = None, items: list[str] | None = None) -> dict:
        """Subscribe (as ``Client.subscribe``); returns the answer (``seq``, ``store``, ``reset``)
        and ``events()`` yields the events, replayed ones first, keeping ``cursor`` current."""
        return self._subscribed(await self.call("events.subscribe", **_subscribe_params(cursor, items)))

    async def events(self) -> AsyncIterator[dict]:
        while True:
            while self._pending:
                yield self._seen(self._pending.popleft())
            message = await self._message()
            if message is None:
                return
            if _is_event(message):
                yield self._seen(message["params"])

    async def aclose(self) -> None:
        await self._stream.aclose()


#: What ``follow`` yields when the app must (re)read what it shows: at the start without a cursor,
#: and when the daemon could not replay the changes since the cursor. Made by the client, never
#: sent by the daemon.
RESET = "reset"


async def follow(socket_path: Path, cursor: Cursor | None = None, items: list[str] | None = None, *,
                 token: str | None = None, retry_every: float = 1.0, retries: int = 60) -> AsyncIterator[dict]:
    """The daemon's events for as long as the caller iterates, across disconnections and daemon
    restarts: each reconnection subscribes after the last event seen, so nothing is missed. Yields
    an event of type RESET (with ``store`` and ``seq``) first when there is no ``cursor``, and
    whenever the daemon could not replay (a store rebuilt or restored, a cursor too old): re-read
    everything then (``item.list``...); the events after it are changes since. Each event's ``seq`` with the
    last reset's ``store`` is the cursor to keep. DaemonNotRunning after ``retries`` attempts in a
    row, ``retry_every`` seconds apart, found no daemon. ``token``: an app token, presented on
    every connection (``TrioClient.connect``)."""
    import trio

    failures = 0
    while True:
        try:
            client = await TrioClient.connect(socket_path, token=token)
        except (DaemonNotRunning, OSError):
            failures += 1
            if failures > retries:
                raise DaemonNotRunning() from None
            await trio.sleep(retry_every)
            continue
        try:
            try:
                answer = await client.subscribe(cursor, items)
            except (ApiError, OSError, trio.BrokenResourceError) as exc:
                failures += 1
                if failures > retries or (isinstance(exc, ApiError) and exc.code != -32603):
                    raise  # a refusal (bad items, say) is not a disconnection
                await trio.sleep(retry_every)
                continue
            failures = 0
            if cursor is None or answer["reset"]:
                yield {"type": RESET, "store": answer["store"], "seq": answer["seq"]}
            cursor = client.cursor
            try:
                async for event in client.events():
                    cursor = client.cursor
                    yield event
            except (OSError, trio.BrokenResourceError, trio.ClosedResourceError):
                pass  # the daemon went away: subscribe again after the cursor
        finally:
            await client.aclose()
