"""The local API server: JSON-RPC 2.0 over a Unix domain socket, for the CLI and client apps.

The socket lives in a 0700 directory and is 0600 from the moment it exists; on top of that, every
connection's peer credentials (SO_PEERCRED) must show the daemon's own uid, or it is closed
without an answer. trio has no Unix listener helper, so this builds one from an AF_UNIX socket,
``trio.SocketListener`` and ``trio.serve_listeners``.
"""

import errno
import json
import math
import logging
import os
import socket as stdlib_socket
import stat
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass, field
from pathlib import Path

import trio

from vaultpeer.api import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    MAX_LINE,
    PARSE_ERROR,
    error_object,
    standard_error,
)
from vaultpeer.core.text import holds_lone_surrogate
from vaultpeer.io.locks import held

log = logging.getLogger("vaultpeer.api")
MAX_SOCKET_PATH = 107
WRITE_TIMEOUT = 10.0
#: Request lines read ahead of the one being answered (reading on notices a client closing).
MAX_PIPELINED = 16


@dataclass(frozen=True)
class Connection:
    peer_uid: int
    peer_pid: int
    #: Set when the client has closed its end (or its writing half), even while a request of
    #: its is still being answered: what a pairing started from this connection waits on.
    closed: trio.Event = field(default_factory=trio.Event, compare=False)
    #: What the dispatcher keeps of this connection between its requests (the app whose token it
    #: presented with ``auth``).
    state: dict = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Subscription:
    """What a method that subscribes returns: its answer, then the events to send (each as an
    ``event`` notification) until they end or the connection does. ``events`` is closed either way.
    (A bare async iterator is a subscription answered ``{"subscribed": true}``.)"""

    result: dict
    events: AsyncIterator[dict]


Dispatch = Callable[[str, dict, Connection], Awaitable[object]]


def _peer_credentials(sock: trio.socket.SocketType) -> tuple[int, int, int]:
    raw = sock.getsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", raw)


def _prepare_directory(directory: Path) -> None:
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = directory.stat()
    if info.st_uid != os.getuid():
        raise RuntimeError(f"{directory} belongs to another user; refusing to put the API socket there")
    os.chmod(directory, 0o700)


def _remove_stale_socket(path: Path) -> None:
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise RuntimeError(f"{path} exists and is not a socket; refusing to replace it")
    probe = stdlib_socket.socket(stdlib_socket.AF_UNIX, stdlib_socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError as exc:
        if exc.errno not in (errno.ECONNREFUSED, errno.ENOENT):
            raise
        path.unlink(missing_ok=True)  # nobody answers: a leftover of a daemon that died
        return
    finally:
        probe.close()
    raise RuntimeError(f"another vaultpeer daemon is already running on {path}")


async def serve_api(socket_path: Path, dispatch: Dispatch, *, idle_timeout: float = 300.0,
                    max_connections: int = 64, task_status=trio.TASK_STATUS_IGNORED) -> None:
    socket_path = Path(socket_path)
    if len(str(socket_path).encode()) > MAX_SOCKET_PATH:
        raise RuntimeError(f"the API socket path is too long for a Unix socket: {socket_path}")
    _prepare_directory(socket_path.parent)
    _remove_stale_socket(socket_path)
    sock = trio.socket.socket(stdlib_socket.AF_UNIX, stdlib_socket.SOCK_STREAM)
    old_umask = os.umask(0o177)
    try:
        await sock.bind(str(socket_path))
    finally:
        os.umask(old_umask)
    os.chmod(socket_path, 0o600)
    sock.listen(max_connections)
    limiter = trio.CapacityLimiter(max_connections)

    async def handler(stream: trio.SocketStream) -> None:
        try:
            await _serve_connection(stream, dispatch, idle_timeout, limiter)
        except Exception:  # noqa: BLE001 - one connection must never take the server down
            log.exception("unexpected error on an API connection")
        finally:
            with trio.move_on_after(1) as scope:
                scope.shield = True
                await stream.aclose()

    try:
        task_status.started(socket_path)
        await trio.serve_listeners(handler, [trio.SocketListener(sock)])
    finally:
        socket_path.unlink(missing_ok=True)


async def _serve_connection(stream: trio.SocketStream, dispatch: Dispatch, idle_timeout: float,
                            limiter: trio.CapacityLimiter) -> None:
    try:
        limiter.acquire_nowait()
    except trio.WouldBlock:
        log.warning("refused an API connection: too many open")
        return
    try:
        _pid, uid, _gid = _peer_credentials(stream.socket)
        if uid != os.getuid():
            log.warning("refused an API connection from uid %d (only uid %d may use this socket)", uid, os.getuid())
            return
        async with trio.open_nursery() as nursery:
            session = _Session(stream, dispatch, Connection(peer_uid=uid, peer_pid=_pid), nursery)
            await session.serve(idle_timeout)
    finally:
        limiter.release()


class _Session:
    """One API connection. A reader task takes request lines as they come, and notices at once
    when the client closes its end (or only its writing half): ``Connection.closed``. Requests are
    answered one at a time, in order, each answer written before the next request starts; what
    was sent before the close is still answered. A subscription's events are written by a task of
    their own, so a subscribed connection keeps answering requests, and it ends with the
    connection. Lines never interleave (one lock for writes); a client that reads nothing of
    what is sent for WRITE_TIMEOUT is closed."""

    def __init__(self, stream: trio.SocketStream, dispatch: Dispatch, connection: Connection,
                 nursery: trio.Nursery):
        self.stream = stream
        self.dispatch = dispatch
        self.connection = connection
        self.nursery = nursery
        self.write_lock = trio.Lock()
        self.subscribed = False
        self.busy = False
        self.last_answered = -math.inf
        self.ended = False

    async def serve(self, idle_timeout: float) -> None:
        send, receive = trio.open_memory_channel(MAX_PIPELINED)
        self.nursery.start_soon(self.answer_requests, receive)
        async with send:
            await self.read_requests(send, idle_timeout)
        self.connection.closed.set()

    async def answer_requests(self, receive: trio.MemoryReceiveChannel) -> None:
        async with receive:
            async for line in receive:
                self.busy = True
                await self.answer(line)
                self.busy, self.last_answered = False, trio.current_time()
                if self.ended:
                    return
        self.end()  # every request answered, and the client sends no more: a subscription ends too

    def end(self) -> None:
        self.ended = True
        self.nursery.cancel_scope.cancel()

    async def read_requests(self, send: trio.MemorySendChannel, idle_timeout: float) -> None:
        buffer = b""
        while not self.ended:
            while b"\n" not in buffer:
                if len(buffer) > MAX_LINE:
                    await self.write(_response(None, error=standard_error(INVALID_REQUEST, "request too large")))
                    self.end()
                    return
                try:
                    data = await self.receive(send, idle_timeout)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return  # reset by the client
                if not data:
                    return  # closed, or idle too long
                buffer += data
            line, buffer = buffer.split(b"\n", 1)
            if len(line) > MAX_LINE:
                await self.write(_response(None, error=standard_error(INVALID_REQUEST, "request too large")))
                self.end()
                return
            if line.strip():
                await send.send(line)

    async def receive(self, send: trio.MemorySendChannel, idle_timeout: float) -> bytes:
        """The client's next bytes; b"" once it closed, or after ``idle_timeout`` seconds with
        nothing to do. A subscriber may stay quiet for as long as it listens, and a request may
        take its time (a pairing waits for the other device): that is not idle."""
        deadline = trio.current_time() + idle_timeout
        while True:
            with trio.move_on_at(deadline):
                return await self.stream.receive_some(65536)
            now = trio.current_time()
            if self.subscribed or self.busy or send.statistics().current_buffer_used:
                deadline = now + idle_timeout
            elif self.last_answered + idle_timeout > now:
                deadline = self.last_answered + idle_timeout
            else:
                return b""

    async def answer(self, line: bytes) -> None:
        request = parse_request(line)
        if isinstance(request, Rejected):
            if request.response is not None:
                await self.write(request.response)
            return
        request_id, notification = request.request_id, request.notification
        try:
            result = await self.dispatch(request.method, request.params, self.connection)
        except Exception as exc:  # noqa: BLE001 - every error becomes an error object, never a traceback
            error = error_object(exc)
            if error["code"] == INTERNAL_ERROR:
                log.exception("internal error in %s", request.method)
            if not notification:
                await self.write(_response(request_id, error=error))
            return
        if isinstance(result, Subscription) or hasattr(result, "__aiter__"):
            subscription = result if isinstance(result, Subscription) else Subscription({"subscribed": True}, result)
            if self.subscribed:
                await subscription.events.aclose()
                if not notification:
                    await self.write(_response(request_id, error=standard_error(
                        INVALID_REQUEST, "this connection is subscribed already")))
                return
            self.subscribed = True
            # written before the first event: the answer comes first, then the replay, then live events
            if not notification and not await self.write(_response(request_id, result=subscription.result)):
                await subscription.events.aclose()
                return
            self.nursery.start_soon(self.forward_events, subscription.events)
            return
        if not notification:
            await self.write(_response(request_id, result=result))

    async def forward_events(self, events) -> None:
        async with aclosing(events):  # closing it closes the daemon's channel: no slot is kept
            async for event in events:
                if not await self.write({"jsonrpc": "2.0", "method": "event", "params": event}):
                    return
        self.end()  # the events ended (the daemon is stopping): so does the connection

    async def write(self, message: dict) -> bool:
        """Send one line; False, and the connection ends, when the client is gone or does not read."""
        data = json.dumps(message, ensure_ascii=False).encode("utf-8") + b"\n"
        async with held(self.write_lock):  # an event or an answer goes out at once when nothing else is being written
            if self.ended:
                return False
            try:
                with trio.fail_after(WRITE_TIMEOUT):
                    await self.stream.send_all(data)
                return True
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                log.debug("an API client went away before reading its answer")
            except trio.TooSlowError:
                log.warning("an API client read nothing for %g s: its connection is closed", WRITE_TIMEOUT)
            self.end()
            return False


@dataclass(frozen=True)
class Request:
    """One well-formed JSON-RPC request line."""

    method: str
    params: dict
    request_id: str | int | None
    #: No ``id``: nothing is sent back, not even an error.
    notification: bool


@dataclass(frozen=True)
class Rejected:
    """A line that is not a request: the error response to send (None for a notification)."""

    response: dict | None


def parse_request(line: bytes) -> Request | Rejected:
    """One line from a client -> the request, or the error to answer with. Pure, never raises.

    A parse error is also: nesting deeper than Python's recursion limit, an integer longer than its
    4300-digit conversion limit, NaN/Infinity (not JSON, and a float that overflows to infinity),
    and a lone surrogate (a ``\\ud800`` escape or its raw bytes), which is not Unicode text: it
    could be neither echoed back as UTF-8 nor stored.
    """
    try:
        request = json.loads(line, parse_constant=_not_json, parse_float=_finite_float)
        if holds_lone_surrogate(request):
            raise ValueError("a lone surrogate")
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return Rejected(_response(None, error=standard_error(PARSE_ERROR, "parse error")))
    request_id = request.get("id") if isinstance(request, dict) else None
    if not isinstance(request, dict) or request.get("jsonrpc") != "2.0" or not isinstance(request.get("method"), str) \
            or not isinstance(request_id, (str, int, type(None))) or isinstance(request_id, bool):
        return Rejected(_response(None, error=standard_error(INVALID_REQUEST, "invalid request")))
    params = request.get("params", {})
    notification = "id" not in request
    if not isinstance(params, dict):
        return Rejected(None if notification else _response(
            request_id, error=standard_error(INVALID_PARAMS, "params must be an object")))
    return Request(request["method"], params, request_id, notification)


def _not_json(constant: str) -> None:
    raise ValueError(f"{constant} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError("a number out of range")
    return value


def _response(request_id: object, *, result: object = None, error: dict | None = None) -> dict:
    response: dict = {"jsonrpc": "2.0", "id": request_id}
    if error is not None:
        response["error"] = error
    else:
        response["result"] = result
    return response
