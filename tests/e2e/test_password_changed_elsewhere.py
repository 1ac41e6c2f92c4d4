"""A wrong master password on a device whose vault header came from a password change made on
another device says that the password may have changed there (and which device changed it); on
the device that changed it, or after no change at all, it is just a wrong password."""

from daemons import paired_pair, wait_until
from helpers import PASSWORD, error_lines

NEW_PASSWORD = "a brand new passphrase"


def test_a_wrong_password_after_a_change_on_another_device_says_it_may_have_changed_there(world):
    laptop, desktop = paired_pair(world)
    plain = desktop.cli("unlock", "--password-stdin", stdin="not the password\n")
    assert plain.returncode == 3 and error_lines(plain.stderr) == ["error: wrong password"], plain.stderr

    laptop.ok("passwd", "--password-stdin", stdin=f"{PASSWORD}\n{NEW_PASSWORD}\n")
    assert wait_until(lambda: desktop.status()["locked"], 10), "the new header never reached the desktop"
    laptop_name = laptop.status()["name"]

    old = desktop.cli("unlock", "--password-stdin", stdin=PASSWORD + "\n")  # through the daemon
    assert old.returncode == 3
    assert error_lines(old.stderr) == [f"error: wrong password: the master password may have been changed on "
                                       f"{laptop_name} (the vault's header from that device replaced this "
                                       "one's): try the new one"], old.stderr
    desktop.stop()
    direct = desktop.cli("ls", "--password-stdin", stdin=PASSWORD + "\n")  # no daemon: the home itself
    assert direct.returncode == 3 and f"may have been changed on {laptop_name}" in direct.stderr, direct.stderr
    assert desktop.cli("ls", "--password-stdin", stdin=NEW_PASSWORD + "\n").returncode == 0

    mine = laptop.cli("lock")
    assert mine.returncode == 0
    here = laptop.cli("unlock", "--password-stdin", stdin=PASSWORD + "\n")  # it changed here: nothing to add
    assert here.returncode == 3 and error_lines(here.stderr) == ["error: wrong password"], here.stderr
