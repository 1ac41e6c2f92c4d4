"""Issue 18, bug 1: a subscribed API connection keeps answering requests, notices its client
closing (either half) at once, and frees its slot; 200 subscribe-then-close cycles leave the daemon
answering the API and the CLI, with no error in its log."""

import json
import socket
import time

import pytest

from vaultpeer.api import ApiError


def connect(path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(str(path))
    return sock


def request(sock: socket.socket, request_id: int, method: str, **params) -> None:
    sock.sendall(json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}).encode() + b"\n")


def lines(sock: socket.socket):
    buffer = b""
    while True:
        while b"\n" not in buffer:
            data = sock.recv(65536)
            if not data:
                return
            buffer += data
        line, buffer = buffer.split(b"\n", 1)
        yield json.loads(line)


def offline_laptop(world, *, unlocked: bool = True):
    """A device with a vault and its daemon, offline (the API is all these tests need)."""
    laptop = world("laptop")
    laptop.init()
    laptop.start("--offline")
    if unlocked:
        laptop.unlock()
    return laptop


def test_a_subscribed_connection_answers_requests_and_hears_events(world):
    laptop = offline_laptop(world)
    sock = connect(laptop.socket_path)
    incoming = lines(sock)
    request(sock, 1, "events.subscribe")
    answer = next(incoming)
    assert answer["id"] == 1 and answer["result"]["subscribed"] is True
    request(sock, 2, "status")
    answer = next(incoming)
    assert answer["id"] == 2 and answer["result"]["locked"] is False
    laptop.api("item.add", title="Email", fields={"password": "x"})  # from another connection
    event = next(incoming)
    assert event["method"] == "event" and event["params"]["type"] == "items.changed"
    request(sock, 3, "item.get", item="Email")  # and still answers after an event
    assert next(m for m in incoming if m.get("id") == 3)["result"]["title"] == "Email"
    request(sock, 4, "events.subscribe")
    assert next(m for m in incoming if m.get("id") == 4)["error"]["code"] == -32600  # one per connection
    sock.close()


def test_closing_either_half_ends_the_subscription_at_once_and_frees_its_slot(world):
    laptop = offline_laptop(world, unlocked=False)
    # half close: the client says it sends nothing more; the daemon closes the connection at once
    sock = connect(laptop.socket_path)
    request(sock, 1, "events.subscribe")
    incoming = lines(sock)
    assert next(incoming)["result"]["subscribed"] is True
    sock.shutdown(socket.SHUT_WR)
    started = time.monotonic()
    assert list(incoming) == [] and time.monotonic() - started < 5
    sock.close()
    # 200 full closes (the daemon allows 64 connections at once: a leak would lock everyone out)
    for n in range(200):
        sock = connect(laptop.socket_path)
        request(sock, n, "events.subscribe")
        assert next(lines(sock))["result"]["subscribed"] is True
        sock.close()
    assert laptop.api("status")["locked"] is True
    assert laptop.json("status")["locked"] is True  # the CLI too
    log = laptop.log.read_text()
    assert "ERROR" not in log and "Traceback" not in log, log[-3000:]


def test_lock_and_unlock_events_only_when_the_state_changes_and_passwd_takes_one_proof(world):
    """Issue 18, bug 6 (two of its items)."""
    from helpers import PASSWORD

    laptop = offline_laptop(world, unlocked=False)
    sock = connect(laptop.socket_path)
    incoming = lines(sock)
    request(sock, 1, "events.subscribe")
    assert next(incoming)["result"]["subscribed"] is True
    laptop.api("lock")  # locked already (it starts locked): no event
    laptop.unlock()
    laptop.unlock()  # unlocked already: no second event
    laptop.lock()
    laptop.api("lock")  # locked already: no event
    seen = []
    sock.settimeout(1)
    try:  # every event written within a second of the calls (they were published during them)
        for message in incoming:
            seen.append(message["params"]["type"])
    except TimeoutError:
        pass
    assert seen == ["unlocked", "locked"]
    sock.close()
    with pytest.raises(ApiError) as both:
        laptop.api("passwd", password=PASSWORD, recovery_key="x" * 40, new_password="another long password")
    assert both.value.code == -32602 and both.value.data == {"name": "invalid_params"}


def test_an_unknown_parameter_is_refused_before_anything_is_done(world):
    """Issue 18, bug 6: `"feilds"` is not silently ignored (the item would be added without them)."""
    laptop = offline_laptop(world)
    with pytest.raises(ApiError) as refused:
        laptop.api("item.add", title="Email", feilds={"password": "x"})
    assert refused.value.code == -32602 and "feilds" in refused.value.message
    assert refused.value.data == {"name": "invalid_params"}
    assert laptop.api("item.list") == []
    with pytest.raises(ApiError) as unknown_method:
        laptop.api("item.nonexistent")
    assert unknown_method.value.code == -32601


def test_a_field_given_a_value_and_to_generate_is_refused(world):
    """Issue 18, bug 6: item.add with a value and `generate` for the same field kept one silently."""
    laptop = offline_laptop(world)
    with pytest.raises(ApiError) as refused:
        laptop.api("item.add", title="Email", fields={"password": "mine"}, generate=["password"])
    assert refused.value.code == -32602 and "password" in refused.value.message
    assert laptop.api("item.list") == []
