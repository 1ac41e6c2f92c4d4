"""The TCP transport on 127.0.0.1: what it listens on and reports, what it dials, the addresses it
makes (shown exactly as ``host:port``, counted by host)."""

import socket

import pytest
import trio

from vaultpeer.io.transports import Address
from vaultpeer.io.transports.tcp import TcpTransport, host_port, tcp_address


def keepalive_on(stream: trio.SocketStream) -> bool:
    return bool(stream.socket.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE))


async def test_it_listens_where_told_reports_host_port_and_hands_over_each_connection_with_its_address():
    accepted_send, accepted = trio.open_memory_channel(1)

    async def handler(stream, address):
        await accepted_send.send((stream, address))
        await trio.sleep_forever()

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            listening = await nursery.start(TcpTransport(("127.0.0.1", 0)).serve, handler)
            host, port = host_port(listening)
            assert (listening.transport, host, listening.remote) == ("tcp", "127.0.0.1", "127.0.0.1")
            assert str(listening) == f"127.0.0.1:{port}" and port > 0

            dialled = await TcpTransport().dial(listening)
            inbound, remote = await accepted.receive()
            their_port = dialled.socket.getsockname()[1]
            assert remote == tcp_address("127.0.0.1", their_port)
            assert (str(remote), remote.remote) == (f"127.0.0.1:{their_port}", "127.0.0.1")
            assert keepalive_on(dialled) and keepalive_on(inbound)  # both ends notice a vanished peer

            await dialled.send_all(b"over tcp")
            assert await inbound.receive_some(100) == b"over tcp"
            await dialled.aclose()
            nursery.cancel_scope.cancel()


async def test_a_transport_without_a_place_to_listen_reports_none_and_still_dials():
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            assert await nursery.start(TcpTransport(None).serve, None) is None
            with socket.create_server(("127.0.0.1", 0)) as server:
                stream = await TcpTransport(None).dial(tcp_address(*server.getsockname()[:2]))
                await stream.aclose()


async def test_nothing_answering_is_an_os_error():
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
    with trio.fail_after(10), pytest.raises(OSError):
        await TcpTransport().dial(tcp_address("127.0.0.1", port))


def test_addresses_are_values_that_show_as_host_port_and_count_by_host():
    assert tcp_address("127.0.0.1", 5000) == tcp_address("127.0.0.1", 5000) != tcp_address("127.0.0.1", 5001)
    assert len({tcp_address("127.0.0.1", 5000), tcp_address("127.0.0.1", 5000)}) == 1
    assert f"{tcp_address('10.0.0.2', 7)}" == "10.0.0.2:7"
    v6 = tcp_address("::1", 5000)  # shown as the daemon always has: no brackets
    assert (str(v6), v6.remote, host_port(v6)) == ("::1:5000", "::1", ("::1", 5000))
    with pytest.raises(ValueError):
        host_port(Address("memory", "laptop", "laptop"))
