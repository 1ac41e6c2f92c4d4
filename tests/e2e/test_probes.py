"""Issue 15: a prober learns no stable identifier. Raw TCP against a real daemon that has a vault,
a paired member and no open invitation: whatever first message a stranger sends (a pairing XX
first message, a member-link IK first message sealed to a random key or to the daemon's real key,
junk), it gets not one byte back, so neither the daemon's static key nor anything of its vault,
and the connection ends at once (one that sends nothing, when the handshake times out). The member stays connected
and in sync throughout. (A revoked member, and a replayed first message of a current member, get
the same silence: tests/e2e/test_hostile_member.py, which has a member turned hostile.)"""

import os
import time

import trio

from daemons import paired_pair, wait_until
from hostile_member import send_first_frame
from vaultpeer.core.identity import DeviceKeys
from vaultpeer.core.transport import HandshakeInitiator
from vaultpeer.service.device import load_or_create_keys
from vaultpeer.service.home import Home
from vaultpeer.io.noise_stream import HANDSHAKE_TIMEOUT


def probe_all(daemon, probes: dict[str, bytes | None]) -> dict[str, tuple[bytes, float]]:
    """Every probe on its own connection, all at once."""
    host, port = daemon.address.rsplit(":", 1)
    results: dict[str, tuple[bytes, float]] = {}

    async def main():
        async def one(name: str, first: bytes | None):
            results[name] = await send_first_frame(host, int(port), first)

        async with trio.open_nursery() as nursery:
            for name, first in probes.items():
                nursery.start_soon(one, name, first)

    trio.run(main)
    return results


def link_first_message(to: bytes, keys: DeviceKeys | None = None) -> bytes:
    keys = keys or DeviceKeys.generate()
    return HandshakeInitiator(static_private=keys.noise_private, purpose="sync", responder_static=to,
                              stamp=time.time_ns()).start()


def has_item(daemon, title: str) -> bool:
    return daemon.has_item(title)


def test_a_prober_gets_silence_and_a_closed_connection_whatever_it_sends(world):
    laptop, desktop = paired_pair(world)
    laptop_keys = load_or_create_keys(Home(laptop.home)).public
    probes = {
        # a pairing XX first message: answered only while an invitation is open (none is)
        "xx": HandshakeInitiator(static_private=DeviceKeys.generate().noise_private, purpose="pair").start(),
        # a member link's IK first message, sealed to a key that is not the laptop's
        "ik-random-key": link_first_message(os.urandom(32)),
        # ... and to the laptop's real key, by a stranger that learned it somehow
        "ik-right-key": link_first_message(laptop_keys.noise_public),
        "unknown-kind": b"\x07" + os.urandom(100),
        "junk": os.urandom(200),
        "silent": None,
    }
    results = probe_all(laptop, probes)
    for name, (received, seconds) in results.items():
        assert received == b"", (name, received[:64])
        if name == "silent":  # sends nothing: closed when the handshake times out
            assert HANDSHAKE_TIMEOUT - 1 <= seconds <= HANDSHAKE_TIMEOUT + 2, seconds
        else:
            assert seconds < 2, (name, seconds)  # closed at once

    # the member link is untouched: an edit on either side still arrives
    laptop.add("After the probes", password="x")
    assert wait_until(lambda: has_item(desktop, "After the probes"), 15)
    desktop_id = desktop.status()["device_id"]
    assert laptop.status()["peers"] == [desktop_id]

    # each refusal is in the audit log with its reason (a word), and nothing names the laptop
    reasons = {e["details"]["reason"] for e in laptop.json("log") if e["event"] == "peer.rejected"}
    assert {"no_invitation", "handshake_failed", "not_member"} <= reasons, reasons
