"""A small client for the daemon's local API: blocking (the CLI uses it) and trio (for apps).

trio is imported only by ``TrioClient.connect``: a CLI command through the daemon starts in well
under 100 ms partly because it never loads an event loop."""

from __future__ import annotations

import errno
import itertools
import json
import socket
from collections.abc import Iterator
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


def _result(line: bytes) -> object:
    if not line:
        raise ApiError(-32603, "the daemon closed the connection")
    response = json.loads(line)
    if "error" in response:
        error = response["error"]
        raise ApiError(error.get("code", -32603), error.get("message", "error"), error.get("data"))
    return response.get("result")


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


class Client:
    """``token``: an app token (docs/api.md, "App tokens"), presented with ``auth`` as the first
    request of the connection; None: the connection presents none."""

    def __init__(self, socket_path: Path, timeout: float = 30.0, token: str | None = None):
        self.socket_path = Path(socket_path)
        self.timeout = timeout
        self._ids = itertools.count(1)
        self._sock: socket.socket | None = None
        self._file = None
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

    def call(self, method: str, **params: object) -> object:
        self._connect()
        self._sock.sendall(_request(next(self._ids), method, params))
        return _result(self._file.readline())

    def register(self, name: str, scopes: list[str], timeout: float = 600.0) -> str:
        """Register this app (``app.register``) and wait up to ``timeout`` seconds for the person
        to run `vaultpeer apps approve NAME`: the app's token (keep it; it is shown once).
        ApiError 1014 (``forbidden``) when denied, TimeoutError when nobody answered in time."""
        return _registered(self.call("app.register", name=name, scopes=scopes), self.call, timeout, _monotonic,
                           step=min(60.0, self.timeout * 0.8))

    def subscribe(self, **params: object) -> Iterator[dict]:
        """Subscribe now (before this returns); the iterator yields the events as they come."""
        self.call("events.subscribe", **params)
        return self._events()

    def _events(self) -> Iterator[dict]:
        for line in self._file:
            yield json.loads(line)["params"]

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


class TrioClient:
    def __init__(self, stream: trio.SocketStream):
        self._stream = stream
        self._ids = itertools.count(1)
        self._buffer = b""

    @classmethod
    async def connect(cls, socket_path: Path, token: str | None = None) -> TrioClient:
        """A connection to the daemon; with ``token``, presented (``auth``) before this returns."""
        import trio

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

    async def call(self, method: str, **params: object) -> object:
        await self._stream.send_all(_request(next(self._ids), method, params))
        return _result(await self._line())

    async def events(self):
        while True:
            line = await self._line()
            if not line:
                return
            yield json.loads(line)["params"]

    async def aclose(self) -> None:
        await self._stream.aclose()
