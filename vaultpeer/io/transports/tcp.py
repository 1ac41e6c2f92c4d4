"""TCP, the first transport: an address is ``host:port``, and a remote is its host.

Every connection, dialled or accepted, has TCP keepalive on, so a peer that vanished (a half-open
connection) is noticed within about 90 s.
"""

import errno
import socket as stdlib_socket
from functools import partial

import trio

from vaultpeer.io.transports import Address, CannotListen, Handler

NAME = "tcp"


def tcp_address(host: str, port: int) -> Address:
    """The address of ``host:port`` (IPv6 hosts without brackets, as the log has always shown them)."""
    return Address(NAME, f"{host}:{port}", host)


def host_port(address: Address) -> tuple[str, int]:
    """The host and port of a TCP address (IPv6 hosts keep their colons)."""
    if address.transport != NAME:
        raise ValueError(f"not a TCP address: {address}")
    host, _, port = address.text.rpartition(":")
    return host, int(port)


class TcpTransport:
    """Listens on ``bind`` (host, port; port 0 picks a free one), or nowhere when it is None (it
    still dials)."""

    name = NAME

    def __init__(self, bind: tuple[str, int] | None = None):
        self.bind = bind
        self.listen_address: Address | None = None

    async def serve(self, handler: Handler, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        if self.bind is None:
            task_status.started(None)
            return
        host, port = self.bind
        try:
            listeners = await trio.open_tcp_listeners(port, host=host)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise CannotListen(f"cannot listen on {host}:{port}: port {port} is in use (another vaultpeer "
                                   "daemon, or another program); choose another with --listen HOST:PORT") from None
            raise CannotListen(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        sockname = listeners[0].socket.getsockname()
        self.listen_address = tcp_address(sockname[0], sockname[1])
        task_status.started(self.listen_address)
        await trio.serve_listeners(partial(_accepted, handler), listeners)

    async def dial(self, address: Address) -> trio.SocketStream:
        stream = await trio.open_tcp_stream(*host_port(address))
        _keepalive(stream)
        return stream


async def _accepted(handler: Handler, stream: trio.SocketStream) -> None:
    _keepalive(stream)
    await handler(stream, _remote_address(stream))


def _keepalive(stream: trio.SocketStream) -> None:
    """Let the kernel notice a peer that vanished (a half-open connection) within about 90 s."""
    sock = stream.socket
    try:
        sock.setsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_KEEPALIVE, 1)
        for option, value in (("TCP_KEEPIDLE", 60), ("TCP_KEEPINTVL", 10), ("TCP_KEEPCNT", 3)):
            if hasattr(stdlib_socket, option):
                sock.setsockopt(stdlib_socket.IPPROTO_TCP, getattr(stdlib_socket, option), value)
    except OSError:
        pass


def _remote_address(stream: trio.SocketStream) -> Address:
    try:
        host, port = stream.socket.getpeername()[:2]
    except OSError:
        return Address(NAME, "unknown", "unknown")
    return tcp_address(host, port)
