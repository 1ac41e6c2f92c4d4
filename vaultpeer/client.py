"""A small client for the daemon's local API: blocking (the CLI uses it) and trio (for apps).

trio is imported only by ``TrioClient.connect``: a CLI command through the daemon starts in well
under 100 ms partly because it never loads an event loop."""

from __future__ import annotations

import errno
import itertools
import json
import os
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


def find_socket(home: str | os.PathLike | None = None, environ: dict[str, str] | None = None) -> Path:
    """Where the daemon's socket is (docs/api.md, "Finding the socket"): the socket of ``home`` if
    one is named; else ``$VAULTPEER_SOCKET``; else the socket of ``$VAULTPEER_HOME``, or of the
    default home (the platform's user data directory)."""
    from vaultpeer.service.home import SOCKET_ENV, Home, resolve_home

    environ = os.environ if environ is None else environ
    if home is None and environ.get(SOCKET_ENV):
        return Path(environ[SOCKET_ENV])
    return Home(resolve_home(home, environ)).socket_path


class Client:
    """A blocking client. ``socket_path``: by default, ``find_socket()``'s."""

    def __init__(self, socket_path: Path | None = None, timeout: float = 30.0):
        if socket_path is None:
            socket_path = find_socket()
        self.socket_path = Path(socket_path)
        self.timeout = timeout
        self._ids = itertools.count(1)
        self._sock: socket.socket | None = None
        self._file = None

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

    def call(self, method: str, **params: object) -> object:
        self._connect()
        self._sock.sendall(_request(next(self._ids), method, params))
        return _result(self._file.readline())

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
    async def connect(cls, socket_path: Path | None = None) -> TrioClient:
        """``socket_path``: by default, ``find_socket()``'s."""
        import trio

        if socket_path is None:
            socket_path = find_socket()
        try:
            return cls(await trio.open_unix_socket(str(socket_path)))
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ECONNREFUSED):
                raise DaemonNotRunning() from None
            raise

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
