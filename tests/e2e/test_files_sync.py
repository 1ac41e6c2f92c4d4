"""Acceptance for sync through files, with the real CLI: C never touches a network (its daemon runs
--offline), joins through a join request and a bundle, and then C and A carry bundles both ways
while A and B sync live over loopback."""

import json


from daemons import Daemon, paired_pair, wait_until


def titles(daemon: Daemon) -> list[str]:
    """Through the API: the CLI under test here is join-request, admit and bundle."""
    return daemon.titles()


def test_an_air_gapped_device_joins_and_syncs_through_files(world):
    root = world.root
    a, b = paired_pair(world)
    c = world("airgapped")
    c.start("--offline")
    a.ok("add", "Email", "--field", "username=alice", "--field", "password=one")

    stick = root / "usb-stick"
    stick.mkdir()
    request_out = c.ok("join-request", str(stick / "c.request"))
    c_id = c.status()["device_id"]
    assert c_id in request_out

    declined = a.cli("admit", str(stick / "c.request"), stdin="n\n")
    assert declined.returncode == 11 and c_id not in [p["device_id"] for p in a.json("peers")]
    admitted = a.ok("admit", str(stick / "c.request"), stdin="y\n")
    assert c_id in admitted and "Does the new device show this device id? [y/N]" in admitted
    a_id = a.status()["device_id"]
    assert a_id in admitted  # what C must see when it imports
    exported = json.loads(a.ok("bundle", "export", str(stick / "to-c.bundle"), "--for", c_id[:15], "--json"))
    assert exported["revisions"] >= 1 and exported["for"] == c_id

    refused = c.cli("bundle", "import", str(stick / "to-c.bundle"), stdin="n\n")
    assert refused.returncode == 11 and c.status()["vault_id"] is None
    joined = c.ok("bundle", "import", str(stick / "to-c.bundle"), stdin="y\n")
    assert a_id in joined and "Joined the vault" in joined
    assert c.status()["vault_id"] == a.status()["vault_id"]
    c.unlock()
    assert c.json("get", "Email")["fields"] == {"username": "alice", "password": "one"}

    # both ways: an edit on C reaches A by file and B live; B's edit reaches C by file
    c.ok("edit", "Email", "--field", "password=from-c")
    c.ok("add", "Written offline", "--field", "password=c")
    c.ok("bundle", "export", str(stick / "to-a.bundle"), "--for", a_id[:15])
    report = json.loads(a.ok("bundle", "import", str(stick / "to-a.bundle"), "--json"))
    assert report["new_revisions"] == 2 and report["joining"] is False
    assert wait_until(lambda: "Written offline" in titles(b), 10), "A did not pass C's items on to B"
    b.ok("edit", "Email", "--field", "username=alice@home")
    assert wait_until(lambda: a.item("Email")["fields"]["username"] == "alice@home", 10)

    again = json.loads(a.ok("bundle", "import", str(stick / "to-a.bundle"), "--json"))
    assert again["new_revisions"] == 0  # importing twice is harmless

    a.ok("bundle", "export", str(stick / "to-c-2.bundle"), "--for", c_id[:15])
    c.ok("bundle", "import", str(stick / "to-c-2.bundle"))
    expected = {"username": "alice@home", "password": "from-c"}
    for daemon in (a, b, c):
        assert wait_until(lambda: daemon.item("Email")["fields"] == expected, 10), daemon.home.name
        assert titles(daemon) == ["Email", "Written offline"]
    assert c.status()["listen"] is None  # C never listened on any network


def test_a_tampered_bundle_is_refused_by_the_cli_and_changes_nothing(world):
    root = world.root
    a, c = world("laptop"), world("airgapped")
    a.init()
    a.start("--offline")
    c.start("--offline")
    c.ok("join-request", str(root / "c.request"))
    a.unlock()  # admitting and exporting sign with a's key, sealed while locked
    a.ok("admit", str(root / "c.request"), stdin="y\n")
    a.ok("bundle", "export", str(root / "to-c.bundle"), "--for", c.status()["device_id"])
    data = bytearray((root / "to-c.bundle").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (root / "tampered.bundle").write_bytes(bytes(data))
    result = c.cli("bundle", "import", str(root / "tampered.bundle"), stdin="y\n")
    assert result.returncode == 6 and "cannot be opened" in result.stderr and "Traceback" not in result.stderr
    assert c.status()["vault_id"] is None
    exists = a.cli("bundle", "export", str(root / "to-c.bundle"))
    assert exists.returncode == 2 and "exists" in exists.stderr and "--force" in exists.stderr
