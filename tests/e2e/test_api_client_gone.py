"""A client that goes away while the daemon still writes to it (`pair --join` on a terminal closes
its event subscription once the vault arrived, with events still coming) is normal: nothing in the
daemon's log at its usual level, and the daemon goes on serving."""

import time

from vaultpeer.client import Client


def test_a_subscriber_that_closes_while_events_still_come_leaves_no_error_in_the_log(world):
    device = world("laptop")
    device.init()
    device.start()
    device.unlock()
    client = Client(device.socket_path, timeout=10)
    client.subscribe()
    client.close()  # as `pair --join` does once the progress bar is full
    for n in range(5):  # each publishes items.changed to the closed subscriber
        device.add(f"item {n}", password="x")
        time.sleep(0.05)
    assert device.has_item("item 4")
    device.stop()
    log = device.log.read_text()
    assert "unexpected error on an API connection" not in log, log
    assert "BrokenPipe" not in log and "Traceback" not in log, log
