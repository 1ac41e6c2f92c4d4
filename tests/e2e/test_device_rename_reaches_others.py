"""`device --name` reaches the other devices: at once through a daemon running unlocked, and from
a locked one once it is unlocked (it signs the change then)."""

from daemons import paired_pair, wait_until


def name_seen_by(viewer, device) -> str | None:
    device_id = device.status()["device_id"]
    return next((peer["name"] for peer in viewer.api("peer.list") if peer["device_id"] == device_id), None)


def test_a_rename_reaches_the_other_devices_at_once_or_at_the_next_unlock(world):
    laptop, desktop = paired_pair(world)
    shown = desktop.json("device", "--name", "Study desktop")
    assert shown == {"device_id": desktop.status()["device_id"], "name": "Study desktop", "os": shown["os"]}
    assert wait_until(lambda: name_seen_by(laptop, desktop) == "Study desktop", 10), name_seen_by(laptop, desktop)

    desktop.lock()
    later = desktop.cli("device", "--name", "Den")
    assert later.returncode == 0 and "learn it once this device is unlocked" in later.stderr, later.stderr
    assert name_seen_by(laptop, desktop) == "Study desktop"
    desktop.unlock()
    assert wait_until(lambda: name_seen_by(laptop, desktop) == "Den", 10), name_seen_by(laptop, desktop)

    laptop.stop()  # without a daemon: the home signs it when a command next unlocks it
    laptop.ok("device", "--name", "Old laptop")
    laptop.start()
    assert name_seen_by(desktop, laptop) != "Old laptop"
    laptop.unlock()
    assert wait_until(lambda: name_seen_by(desktop, laptop) == "Old laptop", 10), name_seen_by(desktop, laptop)
