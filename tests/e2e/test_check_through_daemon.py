"""`check --decrypt` asks for no password when the daemon runs unlocked: the daemon checks (API
vault.check); a locked daemon leaves it to the master password, as without a daemon."""

import json

from helpers import PASSWORD, error_lines


def test_check_decrypt_goes_through_an_unlocked_daemon_and_asks_the_password_of_a_locked_one(world):
    laptop = world("laptop")
    laptop.init()
    laptop.start("--offline")
    laptop.unlock()
    laptop.add("Mail", password="pw1")
    laptop.add("Bank", password="pw2")

    result = laptop.cli("check", "--decrypt")  # no terminal and no --password-stdin: nothing to ask with
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert "Revisions checked:  2 (signatures and decryption)" in result.stdout
    assert "All good." in result.stdout
    assert error_lines(result.stderr) == []
    report = json.loads(laptop.ok("check", "--decrypt", "--json"))
    assert report["ok"] and report["decrypted"] and report["revisions_checked"] == 2

    laptop.lock()
    refused = laptop.cli("check", "--decrypt")
    assert refused.returncode == 2 and "no terminal to ask for the master password" in refused.stderr
    report = json.loads(laptop.ok("check", "--decrypt", "--json", "--password-stdin", stdin=PASSWORD + "\n"))
    assert report["ok"] and report["decrypted"]
    assert laptop.api("vault.check") == {**report, "decrypted": False}  # locked: signatures only
