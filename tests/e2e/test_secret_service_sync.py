"""Issue 19's two-device acceptance: each device has its own daemon and its own session bus; what
`secret-tool` stores on one is found by `secret-tool` on the other within a second, and an update
and a `clear` on the second show on the first. The Secret Service items are vault items, so they
travel as every item does (sealed, over the members' Noise connection): a loopback capture of
both daemons' ports holds none of the secrets, labels or attribute values in clear."""

import secrets
import time
from contextlib import ExitStack, closing

from jeepney.io.blocking import open_dbus_connection

from capture import Capture, leaks_in, send_probe
from daemons import enroll, wait_until
from session_bus import collection_signals, next_signal, require_dbus, secret_tool, session_bus


def lookup(bus: str, *attributes: str) -> str | None:
    result = secret_tool(bus, "lookup", *attributes)
    return result.stdout if result.returncode == 0 else None


def within(seconds: float, bus: str, expected: str | None, *attributes: str) -> float | None:
    """How long until `secret-tool lookup` on ``bus`` gives ``expected`` (None: finds nothing),
    or None if it did not within ``seconds``."""
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        if lookup(bus, *attributes) == expected:
            return time.monotonic() - start
    return None


def test_store_on_one_device_lookup_on_the_other_update_and_clear_come_back(world):
    require_dbus()
    canaries = {name: f"canary-{name}-{secrets.token_hex(8)}"
                for name in ("ss-secret", "ss-update", "ss-label", "ss-service", "ss-user")}
    with ExitStack() as stack:
        buses = [stack.enter_context(session_bus(world.root / f"{name}-bus")) for name in ("laptop", "desktop")]
        laptop = world("laptop", "--secret-service", mdns=False, env={"DBUS_SESSION_BUS_ADDRESS": buses[0]})
        desktop = world("desktop", "--secret-service", mdns=False, env={"DBUS_SESSION_BUS_ADDRESS": buses[1]})
        laptop.init()
        enroll(laptop, desktop)
        laptop.start()
        laptop.unlock()
        desktop.extra += ["--peer", laptop.address]
        desktop.start()
        desktop.unlock()
        ports = tuple(int(d.address.rsplit(":", 1)[1]) for d in (laptop, desktop))
        capture = Capture.start(world.root / "capture", ports)
        try:
            assert wait_until(lambda: laptop.peer_ids() and laptop.api("peer.list")[0]["connected"], 20)
            if isinstance(capture, Capture):
                send_probe(ports[0], capture.probe)  # a plaintext positive control

            label = canaries["ss-label"]
            attributes = ("service", canaries["ss-service"], "user", canaries["ss-user"])
            assert secret_tool(buses[0], "store", f"--label={label}", *attributes,
                               stdin=canaries["ss-secret"]).returncode == 0
            took = within(1.0, buses[1], canaries["ss-secret"], *attributes)
            assert took is not None, "the desktop did not find the laptop's secret within 1 s"
            print(f"store on the laptop -> lookup on the desktop: {took * 1000:.0f} ms")

            with closing(open_dbus_connection(bus=buses[0])) as connection, collection_signals(connection) as signals:
                assert secret_tool(buses[1], "store", f"--label={label}", *attributes,
                                   stdin=canaries["ss-update"]).returncode == 0
                assert within(2.0, buses[0], canaries["ss-update"], *attributes) is not None
                # the laptop's clients hear of a change made on the desktop
                assert next_signal(connection, signals)[0] == "ItemChanged"
            assert laptop.titles() == [label] and desktop.titles() == [label]  # replaced, not a second item

            assert secret_tool(buses[1], "clear", *attributes).returncode == 0
            assert within(2.0, buses[0], None, *attributes) is not None
            assert laptop.api("item.list") == []
        finally:
            laptop.stop()
            desktop.stop()
            if isinstance(capture, Capture):
                capture.stop()
    if not isinstance(capture, Capture):
        print(f"no loopback capture: {capture}")
        return
    data = capture.pcap.read_bytes()
    assert capture.probe.encode() in data, "the capture missed its positive control"
    sizes = [sum(int(row[0]) for row in capture.read(f"tcp.len > 0 and tcp.port == {port}", "tcp.len"))
             for port in ports]
    assert sum(sizes) > 2_000, sizes  # the sync of the store, the update and the clear crossed it
    assert not leaks_in(data, canaries), f"in clear on loopback: {leaks_in(data, canaries)}"
