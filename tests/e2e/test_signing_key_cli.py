"""The sealed signing key through the real CLI and real daemons: a locked daemon refuses what would
sign (inviting, admitting, exporting a bundle) with one clear line; a device that joined is told to
unlock, and `status` says whether its key is sealed; without a daemon, admitting and exporting ask
for the password; an old home is sealed at its daemon's next unlock."""

import json

from daemons import answer_pairing, start_pairing, wait_until
from helpers import PASSWORD, make_old_home

EXIT_LOCKED = 9


def refused_for_the_seal(result) -> bool:
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    return (result.returncode == EXIT_LOCKED and len(errors) == 1 and "unlock the vault first" in errors[0]
            and "Traceback" not in result.stderr)


def test_a_locked_daemon_signs_nothing_and_a_device_that_joined_is_told_to_unlock(world):
    root = world.root
    laptop, desktop = world("laptop", "--no-mdns"), world("desktop", "--no-mdns")
    laptop.init()
    laptop.start()
    desktop.start()
    assert desktop.status()["signing_key"] == "in the clear"  # no vault yet: nothing to seal it with
    assert "unlock once" not in desktop.ok("status")

    invite = laptop.cli("pair", "--timeout", "5")
    assert refused_for_the_seal(invite), invite.stderr
    desktop.ok("join-request", str(root / "desktop.request"))
    admit = laptop.cli("admit", str(root / "desktop.request"), stdin="y\n")
    assert refused_for_the_seal(admit) and "admitting a device" in admit.stderr, admit.stderr
    export = laptop.cli("bundle", "export", str(root / "out.bundle"))
    assert refused_for_the_seal(export) and not (root / "out.bundle").exists(), export.stderr
    assert laptop.status()["signing_key"] == "sealed"

    laptop.unlock()
    inviting, joining = start_pairing(laptop, desktop)
    answer_pairing(inviting, joining)
    assert "seals this device's signing key" in joining.wait_for("Unlock now")
    assert (inviting.finish(), joining.finish()) == (0, 0)

    info = desktop.status()
    assert info["vault_id"] == laptop.status()["vault_id"] and info["signing_key"] == "in the clear"
    warnings = [line for line in desktop.ok("status").splitlines() if "unlock once to seal it" in line]
    assert len(warnings) == 1
    desktop.unlock()
    assert desktop.status()["signing_key"] == "sealed" and "unlock once" not in desktop.ok("status")
    assert not (desktop.home / "identity" / "signing-ed25519.key").exists()
    desktop.ok("add", "Written on the desktop", "--field", "password=d")
    assert wait_until(lambda: "Written on the desktop" in laptop.titles(), 15)


def test_without_a_daemon_admitting_and_exporting_ask_for_the_password(world):
    root = world.root
    laptop, airgapped = world("laptop"), world("airgapped")
    laptop.init()
    request, bundle = root / "airgapped.request", root / "to-airgapped.bundle"
    airgapped.ok("join-request", str(request))
    airgapped_id = airgapped.json("status")["device_id"]

    no_password = laptop.cli("admit", str(request), stdin="y\n")
    assert no_password.returncode == 2 and "--password-stdin" in no_password.stderr
    assert "Traceback" not in no_password.stderr
    admitted = laptop.ok("admit", str(request), "--password-stdin", stdin=f"y\n{PASSWORD}\n")
    assert airgapped_id in admitted
    report = json.loads(laptop.ok("bundle", "export", str(bundle), "--for", airgapped_id, "--password-stdin",
                                  "--json", stdin=PASSWORD + "\n"))
    assert report["for"] == airgapped_id
    joined = airgapped.ok("bundle", "import", str(bundle), stdin="y\n")
    assert "Joined the vault" in joined and "Unlock once now" in joined
    assert airgapped.json("status")["signing_key"] == "in the clear"
    airgapped.ok("ls", "--password-stdin", stdin=PASSWORD + "\n")
    assert airgapped.json("status")["signing_key"] == "sealed"


def test_an_old_home_is_sealed_at_its_daemons_next_unlock(world):
    home, seed = make_old_home(world.root / "old")
    old = world("old", "--no-mdns")
    old.start()
    assert old.status()["signing_key"] == "in the clear" and "unlock once to seal it" in old.ok("status")
    old.unlock()
    assert old.status()["signing_key"] == "sealed"
    assert not any(seed in p.read_bytes() for p in home.path.rglob("*") if p.is_file())
    verified = old.ok("log", "--verify")
    assert verified.startswith("chain intact: 3 entries")  # two from before, the daemon's unlock after
    old.ok("lock")
    assert old.status()["signing_key"] == "sealed"
    old.unlock()
    old.ok("add", "After the migration", "--field", "password=n")
