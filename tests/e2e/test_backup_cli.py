"""`vaultpeer backup`, `backup verify` and `restore FILE` through the real CLI, and a restored device
that rejoins its vault by pairing with the original through two real daemons."""

import json
import subprocess


from daemons import Daemon, answer_pairing, pair, start_pairing, wait_until
from helpers import PASSWORD, run_cli

PW = PASSWORD + "\n"


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, (result.stdout, result.stderr)
    return result.stdout


def histories(home, titles=None, via_daemon: bool = False, password: str = PASSWORD) -> dict:
    """`history --json` of every item (deleted ones too), by item id."""
    stdin = "" if via_daemon else password + "\n"
    password = () if via_daemon else ("--password-stdin",)
    items = json.loads(ok(run_cli(home, "ls", "--json", *password, stdin=stdin)))
    items += json.loads(ok(run_cli(home, "ls", "--deleted", "--json", *password, stdin=stdin)))
    return {item["id"]: json.loads(ok(run_cli(home, "history", item["id"], "--json", *password, stdin=stdin)))
            for item in items if titles is None or item["title"] in titles}


def test_backup_verify_and_restore_through_the_cli(tmp_path):
    laptop = tmp_path / "laptop"
    init = ok(run_cli(laptop, "init", "--password-stdin", stdin=PW))
    recovery_key = next(line.strip() for line in init.splitlines() if line.startswith("    "))
    ok(run_cli(laptop, "add", "Email", "--field", "username=alice", "--field", "password=one", "--password-stdin",
               stdin=PW))
    ok(run_cli(laptop, "edit", "Email", "--field", "password=two", "--password-stdin", stdin=PW))
    ok(run_cli(laptop, "add", "Old", "--field", "notes=bye", "--password-stdin", stdin=PW))
    ok(run_cli(laptop, "rm", "Old", "--password-stdin", stdin=PW))

    assert run_cli(laptop, "backup", str(tmp_path / "b")).returncode == 2  # no terminal, no --password-stdin
    wrong = run_cli(laptop, "backup", str(tmp_path / "b"), "--password-stdin", stdin="not it\n")
    assert wrong.returncode == 3 and not (tmp_path / "b").exists()
    made = json.loads(ok(run_cli(laptop, "backup", str(tmp_path / "b"), "--keep", "1", "--json", "--password-stdin",
                                 stdin=PW)))
    assert made["revisions"] == 4 and made["items"] == 2 and made["removed"] == []
    again = json.loads(ok(run_cli(laptop, "backup", "create", str(tmp_path / "b"), "--keep", "1", "--json",
                                  "--password-stdin", stdin=PW)))
    assert again["removed"] == [made["file"]]
    file = again["file"]
    assert [p.name for p in (tmp_path / "b").iterdir()] == [file.rsplit("/", 1)[1]]

    report = json.loads(ok(run_cli(tmp_path / "no-home", "backup", "verify", file, "--json", "--password-stdin",
                                   stdin=PW)))
    assert report["ok"] is True and (report["items"], report["deleted_items"], report["revisions"]) == (2, 1, 4)
    assert report["tombstones"] == 1 and report["format_version"] == 2
    assert not (tmp_path / "no-home").exists()  # verify needs no home and makes none
    by_key = json.loads(ok(run_cli(tmp_path / "no-home", "backup", "verify", file, "--recovery-key", "--json",
                                   "--password-stdin", stdin=recovery_key + "\n")))
    assert by_key == report
    human = ok(run_cli(laptop, "backup", "verify", file, "--password-stdin", stdin=PW))
    assert "All good." in human and "every revision decrypts" in human
    bad = run_cli(laptop, "backup", "verify", file, "--password-stdin", stdin="not it\n")
    assert (bad.returncode, bad.stderr.strip().splitlines()[-1]) == (3, "error: wrong password")
    bad_key = run_cli(laptop, "backup", "verify", file, "--recovery-key", "--password-stdin", stdin="AAAA-BBBB\n")
    assert bad_key.returncode == 3 and "not a recovery key" in bad_key.stderr
    tampered = tmp_path / "tampered.vpbak"
    data = bytearray(open(file, "rb").read())
    data[-20] ^= 0x01
    tampered.write_bytes(bytes(data))
    altered = run_cli(laptop, "backup", "verify", str(tampered), "--password-stdin", stdin=PW)
    assert altered.returncode == 6 and "integrity" in altered.stderr
    truncated = tmp_path / "truncated.vpbak"
    truncated.write_bytes(bytes(data[: len(data) // 2]))
    assert run_cli(laptop, "backup", "verify", str(truncated), "--password-stdin", stdin=PW).returncode == 6
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    not_backup = run_cli(laptop, "backup", "verify", str(notes), "--password-stdin", stdin=PW)
    assert not_backup.returncode == 6 and "not a vaultpeer backup" in not_backup.stderr
    assert "Traceback" not in bad.stderr + altered.stderr + not_backup.stderr

    restored = tmp_path / "restored"
    assert run_cli(restored, "restore", str(tampered), "--password-stdin", stdin=PW).returncode == 6
    assert not (restored / "vault.sqlite3").exists()  # nothing written when the file does not verify
    result = json.loads(ok(run_cli(restored, "restore", file, "--json", "--password-stdin", stdin=PW)))
    assert (result["items"], result["revisions"]) == (2, 4)
    assert result["backup_device_id"] == json.loads(ok(run_cli(laptop, "status", "--json")))["device_id"]
    assert result["device_id"] == json.loads(ok(run_cli(restored, "status", "--json")))["device_id"]
    assert histories(restored) == histories(laptop)

    before = sorted((p.name, p.read_bytes()) for p in restored.rglob("*") if p.is_file())
    twice = run_cli(restored, "restore", file, "--password-stdin", stdin=PW)
    assert twice.returncode == 1 and "already holds a vault" in twice.stderr
    assert sorted((p.name, p.read_bytes()) for p in restored.rglob("*") if p.is_file()) == before

    # the item form of `restore` keeps its contract, and --recovery-key belongs to backups only
    item = json.loads(ok(run_cli(restored, "restore", "Old", "--json", "--password-stdin", stdin=PW)))
    assert item["title"] == "Old" and item["deleted"] is False
    assert run_cli(restored, "restore", "Email", "--recovery-key", "--password-stdin", stdin=PW).returncode == 2
    first = histories(restored, ["Email"])
    [email] = first.values()
    ok(run_cli(restored, "restore", "Email", email[0]["revision"], "--password-stdin", stdin=PW))
    assert json.loads(ok(run_cli(restored, "get", "Email", "--json", "--password-stdin",
                                 stdin=PW)))["fields"]["password"] == "one"

    # restored with the recovery key into another home: the new password is set with passwd
    by_recovery = tmp_path / "by-recovery"
    out = ok(run_cli(by_recovery, "restore", file, "--recovery-key", "--password-stdin", stdin=recovery_key + "\n"))
    assert "passwd --recovery-key" in out
    ok(run_cli(by_recovery, "passwd", "--recovery-key", "--password-stdin",
               stdin=f"{recovery_key}\na new password\n"))
    assert histories(by_recovery, password="a new password") == histories(laptop)


def titles(daemon: Daemon) -> list[str]:
    """Through the daemon's API (waiting on it costs no CLI process per look)."""
    return daemon.titles()


def api_histories(daemon: Daemon) -> dict:
    """What ``histories(home, via_daemon=True)`` reads through the CLI, read through the API."""
    items = daemon.api("item.list") + daemon.api("item.list", deleted=True)
    return {item["id"]: daemon.api("item.history", item=item["id"]) for item in items}


def test_a_backup_made_by_the_daemon_restores_and_rejoins_through_pairing(world):
    make, root = world, world.root
    laptop = make("laptop", "--no-mdns")
    laptop.init()
    laptop.start()
    locked = laptop.cli("backup", str(root / "backups"))
    assert locked.returncode == 9 and "unlock" in locked.stderr
    laptop.unlock()
    laptop.ok("add", "Email", "--field", "username=alice", "--field", "password=one")
    laptop.ok("edit", "Email", "--field", "password=two")
    laptop.ok("add", "Old", "--field", "notes=bye")
    laptop.ok("rm", "Old")
    made = laptop.json("backup", str(root / "backups"))  # no password asked: the daemon made it
    assert (made["items"], made["revisions"], made["removed"]) == (2, 4, [])

    restored = make("restored", "--no-mdns")
    result = json.loads(ok(run_cli(restored.home, "restore", made["file"], "--json", "--password-stdin", stdin=PW)))
    assert (result["items"], result["revisions"]) == (2, 4)
    assert histories(restored.home) == histories(laptop.home, via_daemon=True)

    laptop.ok("add", "Added on the laptop after the backup", "--field", "password=l")
    restored.start()
    restored.unlock()
    restored.ok("add", "Added on the restored device", "--field", "password=r")
    assert restored.json("peers") != [] and laptop.json("peers") == []  # trusted by it, not yet vouched for

    invite_status, join_status, code_a, code_b = pair(laptop, restored)
    assert (invite_status, join_status) == (0, 0) and code_a == code_b
    assert restored.status()["vault_id"] == laptop.status()["vault_id"]
    expected = ["Added on the laptop after the backup", "Added on the restored device", "Email"]
    assert wait_until(lambda: titles(laptop) == expected and titles(restored) == expected, 15), \
        (titles(laptop), titles(restored), laptop.log_tail(), restored.log_tail())
    restored_id = restored.status()["device_id"]
    assert restored_id in [p["device_id"] for p in laptop.json("peers")]
    # no duplicate, nothing lost: the same items, each with the same whole history, on both
    assert wait_until(lambda: api_histories(laptop) == api_histories(restored), 10)
    assert histories(laptop.home, via_daemon=True) == histories(restored.home, via_daemon=True)
    assert len(histories(laptop.home, via_daemon=True)) == 4  # three live items and the deleted one

    # and from now on, changes flow both ways at once
    laptop.ok("add", "Later on the laptop", "--field", "password=1")
    restored.ok("edit", "Email", "--field", "password=three")
    assert wait_until(lambda: "Later on the laptop" in titles(restored), 10)
    assert wait_until(lambda: laptop.item("Email")["fields"]["password"] == "three", 10)


def test_a_restored_device_cannot_pair_into_another_vault(world):
    make, root = world, world.root
    laptop = make("laptop", "--no-mdns")
    laptop.init()
    laptop.start()
    laptop.unlock()
    made = laptop.json("backup", str(root / "backups"))
    stranger = make("stranger", "--no-mdns")
    stranger.init()
    stranger.start()
    stranger.unlock()
    joined = stranger.cli("pair", "--join", laptop.address)  # a member of a vault is refused at once
    assert joined.returncode == 1 and "already belongs to a vault" in joined.stderr

    restored = make("restored", "--no-mdns")
    ok(run_cli(restored.home, "restore", made["file"], "--password-stdin", stdin=PW))
    restored.start()
    restored.unlock()  # rejoining signs with its key, sealed since the restore
    members_before = restored.json("peers")
    invite, join = start_pairing(stranger, restored)
    answer_pairing(invite, join)
    assert join.finish() == 11 and invite.finish() != 0
    assert "another vault" in join.stderr() and "Traceback" not in join.stderr()
    assert restored.status()["vault_id"] == laptop.status()["vault_id"]
    assert [p["device_id"] for p in restored.json("peers")] == [p["device_id"] for p in members_before]
    assert stranger.status()["vault_id"] != laptop.status()["vault_id"]
