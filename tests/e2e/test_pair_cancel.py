"""Issue 18, bug 4: an invitation whose API connection closes is cancelled (and withdrawn), so the
next `pair` works; `pair.cancel` / `vaultpeer pair --cancel` ends one from anywhere; a join
likewise. Each cancellation is in the audit log."""

import json
import socket

from test_api_subscriptions import connect, lines, request


def no_answer_within(sock: socket.socket, seconds: float) -> bool:
    sock.settimeout(seconds)
    try:
        sock.recv(1)  # an answer, or the connection closed
    except TimeoutError:
        return True
    finally:
        sock.settimeout(10)
    return False


def test_closing_the_connection_or_pair_cancel_ends_an_invitation(world):
    laptop = world("laptop")
    laptop.init()
    laptop.start("--listen", "127.0.0.1:0", "--no-mdns")
    laptop.unlock()

    first = connect(laptop.socket_path)
    request(first, 1, "pair.invite", timeout=600)
    assert no_answer_within(first, 1)  # waiting for a device to join
    first.close()  # the program that asked went away: the invitation goes with it

    second = connect(laptop.socket_path)
    request(second, 2, "pair.invite", timeout=600)
    assert no_answer_within(second, 1)  # not "a pairing is already in progress"
    assert laptop.ok("pair", "--cancel") == "Cancelled the pairing in progress.\n"
    answer = next(lines(second))
    assert answer["error"]["code"] == 1011 and "cancelled" in answer["error"]["message"]
    assert laptop.ok("pair", "--cancel") == "No pairing was in progress.\n"
    assert laptop.api("pair.cancel") == {"cancelled": False}

    log = laptop.json("log")
    cancelled = [e for e in log if e["event"] == "pairing.failed" and e["details"].get("reason") == "cancelled"]
    assert len(cancelled) == 2 and all(e["details"]["role"] == "inviter" for e in cancelled), json.dumps(log)[-2000:]


def test_a_join_is_cancelled_with_its_connection(world):
    desktop = world("desktop", "--no-mdns")
    desktop.start()
    with socket.create_server(("127.0.0.1", 0)) as silent:  # takes connections, never answers
        joining = connect(desktop.socket_path)
        request(joining, 1, "pair.join", address="127.0.0.1:%d" % silent.getsockname()[1], timeout=600)
        assert no_answer_within(joining, 1)
        joining.close()
        again = connect(desktop.socket_path)
        request(again, 2, "pair.join", address="127.0.0.1:%d" % silent.getsockname()[1], timeout=600)
        assert no_answer_within(again, 1)  # the first join was cancelled: this one runs
        assert desktop.api("pair.cancel") == {"cancelled": True}
        assert "cancelled" in next(lines(again))["error"]["message"]
