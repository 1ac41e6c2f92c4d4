"""The local API server over a real Unix socket, with a small dispatch table (no daemon)."""

import json
import os
import shutil
import stat
import sys
import tempfile
from functools import partial
from pathlib import Path

import pytest
import trio

from vaultpeer.api import ApiError
from vaultpeer.client import Client, DaemonNotRunning, TrioClient
from vaultpeer.core.errors import Ambiguous, NotFound, WrongPassword
from vaultpeer.io.api_server import serve_api


@pytest.fixture
def socket_path():
    directory = Path(tempfile.mkdtemp(prefix="vp", dir="/tmp"))
    yield directory / "run" / "api.sock"
    shutil.rmtree(directory, ignore_errors=True)


async def dispatch(method, params, connection):
    if method == "echo":
        return {"params": params, "uid": connection.peer_uid}
    if method == "missing":
        raise NotFound("no item matches that name or id")
    if method == "ambiguous":
        raise Ambiguous("that name matches 2 items; name one by id", [{"id": "aa", "title": "One"}, {"id": "bb", "title": "Two"}])
    if method == "password":
        raise WrongPassword()
    if method == "crash":
        raise RuntimeError("secret-ish internal detail hunter2")
    if method == "events.subscribe":
        async def events():
            for n in range(3):
                yield {"type": "tick", "n": n}
        return events()
    raise ApiError(-32601, "method not found")


async def raw_exchange(path, lines: list[bytes]) -> list[dict]:
    stream = await trio.open_unix_socket(str(path))
    answers, buffer = [], b""
    for line in lines:
        await stream.send_all(line)
        while b"\n" not in buffer:
            buffer += await stream.receive_some(65536)
        answer, buffer = buffer.split(b"\n", 1)
        answers.append(json.loads(answer))
    await stream.aclose()
    return answers


async def test_calls_errors_and_malformed_input(socket_path):
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(serve_api, socket_path, dispatch)
            assert stat.S_IMODE(socket_path.stat().st_mode) == 0o600
            assert stat.S_IMODE(socket_path.parent.stat().st_mode) == 0o700
            client = await TrioClient.connect(socket_path)
            assert (await client.call("echo", a=1))["params"] == {"a": 1}
            with pytest.raises(ApiError) as caught:
                await client.call("missing")
            assert (caught.value.code, caught.value.data["name"]) == (1004, "not_found")
            with pytest.raises(ApiError) as caught:
                await client.call("ambiguous")
            assert caught.value.code == 1005 and [c["title"] for c in caught.value.data["candidates"]] == ["One", "Two"]
            with pytest.raises(ApiError) as caught:
                await client.call("password")
            assert (caught.value.code, caught.value.message) == (1002, "wrong password")
            with pytest.raises(ApiError) as caught:
                await client.call("crash")
            assert (caught.value.code, caught.value.message) == (-32603, "internal error")
            await client.aclose()
            answers = await raw_exchange(socket_path, [
                b"{not json\n",
                b'{"jsonrpc": "2.0", "id": 1, "method": "echo", "params": [1, 2]}\n',
                b'[{"jsonrpc": "2.0", "id": 2, "method": "echo"}]\n',
                b'{"jsonrpc": "2.0", "id": 3, "method": "nope"}\n',
                b'{"jsonrpc": "2.0", "id": 4, "method": "echo"}\n',  # still usable after all that
            ])
            assert [a.get("error", {}).get("code") for a in answers] == [-32700, -32602, -32600, -32601, None]
            # every error has a stable data.name (issue 18)
            assert [a["error"]["data"]["name"] for a in answers[:4]] == [
                "parse_error", "invalid_params", "invalid_request", "method_not_found"]
            assert "hunter2" not in json.dumps(answers)
            nursery.cancel_scope.cancel()
    assert not socket_path.exists()


async def test_blocking_client_subscriptions_and_a_second_server(socket_path):
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(serve_api, socket_path, dispatch)

            def blocking() -> list:
                with Client(socket_path) as client:
                    result = client.call("echo", b=2)
                with Client(socket_path) as client:
                    events = list(client.subscribe())
                return [result, events]

            result, events = await trio.to_thread.run_sync(blocking)
            assert result["params"] == {"b": 2} and [e["n"] for e in events] == [0, 1, 2]
            with pytest.raises(RuntimeError, match="already running"):
                await serve_api(socket_path, dispatch)
            nursery.cancel_scope.cancel()
    with pytest.raises(DaemonNotRunning):
        Client(socket_path).call("echo")


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root and setpriv to act as another user")
async def test_another_user_gets_no_answer(socket_path):
    probe = (
        "import socket, sys\n"
        "s = socket.socket(socket.AF_UNIX)\n"
        "try:\n"
        f"    s.connect({str(socket_path)!r})\n"
        "    s.sendall(b'{\"jsonrpc\": \"2.0\", \"id\": 1, \"method\": \"echo\"}\\n')\n"
        "    s.settimeout(5)\n"
        "    print('ANSWER:' + s.recv(1000).decode())\n"
        "except OSError as exc:\n"
        "    print('REFUSED:' + type(exc).__name__)\n"
    )
    command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c", probe]
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            await nursery.start(serve_api, socket_path, dispatch)
            denied = await trio.run_process(command, capture_stdout=True, check=False)
            assert b"REFUSED:PermissionError" in denied.stdout  # 0700 directory, 0600 socket
            # even with the file modes opened up, the peer-credential check refuses the other uid
            os.chmod(socket_path.parent.parent, 0o755)
            os.chmod(socket_path.parent, 0o777)
            os.chmod(socket_path, 0o666)
            refused = await trio.run_process(command, capture_stdout=True, check=False)
            # closed without an answer: seen as an empty read, or a reset or broken pipe, by timing
            assert refused.stdout.strip() in (b"ANSWER:", b"REFUSED:ConnectionResetError",
                                              b"REFUSED:BrokenPipeError"), refused.stdout
            assert b"jsonrpc" not in refused.stdout
            nursery.cancel_scope.cancel()


async def slow_dispatch(method, params, connection):
    if method == "slow":
        await trio.sleep(params["seconds"])
        return {"slept": params["seconds"]}
    if method == "until_closed":
        await connection.closed.wait()
        return {"closed": True}
    return await dispatch(method, params, connection)


async def read_line(stream: trio.SocketStream, buffer: bytearray) -> dict | None:
    while b"\n" not in buffer:
        data = await stream.receive_some(65536)
        if not data:
            return None
        buffer += data
    line, _, rest = bytes(buffer).partition(b"\n")
    buffer[:] = rest
    return json.loads(line)


async def test_idle_connections_end_but_busy_ones_and_answers_before_a_close_do_not(socket_path, autojump_clock):
    """Issue 18: the idle limit counts from the last answer (a long request is not idle); the
    connection notices its client's close while a request runs (Connection.closed), and still
    answers what was sent before the close (`nc -q1` pipes a request and closes its writing half)."""
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(serve_api, socket_path, slow_dispatch, idle_timeout=300))
        idle = await trio.open_unix_socket(str(socket_path))
        started = trio.current_time()
        assert await idle.receive_some(100) == b""  # closed by the daemon
        assert 300 <= trio.current_time() - started < 301

        busy = await trio.open_unix_socket(str(socket_path))
        buffer = bytearray()
        await busy.send_all(b'{"jsonrpc": "2.0", "id": 1, "method": "slow", "params": {"seconds": 1000}}\n')
        assert (await read_line(busy, buffer))["result"] == {"slept": 1000}
        answered = trio.current_time()
        assert await read_line(busy, buffer) is None
        assert 300 <= trio.current_time() - answered < 301  # idle counted from the answer

        piped = await trio.open_unix_socket(str(socket_path))
        await piped.send_all(b'{"jsonrpc": "2.0", "id": 2, "method": "until_closed"}\n'
                             b'{"jsonrpc": "2.0", "id": 3, "method": "echo", "params": {"a": 1}}\n')
        await piped.send_eof()
        buffer = bytearray()
        assert (await read_line(piped, buffer))["result"] == {"closed": True}
        assert (await read_line(piped, buffer))["result"]["params"] == {"a": 1}
        assert await read_line(piped, buffer) is None
        nursery.cancel_scope.cancel()


async def test_a_request_line_of_exactly_the_limit_is_answered_and_one_byte_more_is_not(socket_path):
    """docs/api.md, Limits: at most MAX_LINE bytes before the newline."""
    from vaultpeer.api import MAX_LINE

    def line_of(size: int, request_id: int) -> bytes:
        head = b'{"jsonrpc": "2.0", "id": %d, "method": "echo", "params": {"pad": "' % request_id
        tail = b'"}}'
        return head + b"x" * (size - len(head) - len(tail)) + tail

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            await nursery.start(serve_api, socket_path, dispatch)
            stream = await trio.open_unix_socket(str(socket_path))
            buffer = bytearray()
            await stream.send_all(line_of(MAX_LINE, 1) + b"\n")
            assert (await read_line(stream, buffer))["id"] == 1
            await stream.send_all(line_of(MAX_LINE + 1, 2) + b"\n")
            answer = await read_line(stream, buffer)
            assert answer["id"] is None and answer["error"]["code"] == -32600
            assert await read_line(stream, buffer) is None  # and the connection is closed
            nursery.cancel_scope.cancel()
