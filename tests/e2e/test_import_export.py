"""`vaultpeer import` / `vaultpeer export`: the real CLI in subprocesses, with and without a running
daemon, and KeePassXC's own command line (keepassxc-cli) on the other side of the .kdbx files."""

import csv
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import threading

import pytest

from daemons import Daemon, cleanup, short_tmp
from helpers import PASSWORD, cli_env, run_cli

PW = PASSWORD + "\n"
KDBX_PASSWORD = "kdbx pass 1"
#: Entries made with keepassxc-cli: (group path, title, username, password, url, notes)
KPX_ENTRIES = [
    ("Internet", "Email", "alice", "Em-pass-1", "https://mail.example", "first line"),
    ("Internet/Forums", "Forum", "carol", 'p@ss "wörd" € ;,', "", ""),
    ("", "Bank", "bob", "Bk-pass-2 with spaces", "https://bank.example", "two\nlines"),
    ("", "Note only", "", "", "", "just a note"),
]


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, (result.stdout, result.stderr)
    return result.stdout


def keepassxc_cli() -> str:
    path = shutil.which("keepassxc-cli")
    if path is None:
        pytest.skip("keepassxc-cli is not installed (Debian package keepassxc; .ci/run installs it where it "
                    "runs as root with apt-get)")
    return path


def kpx(*args: str, stdin: str) -> str:
    result = subprocess.run([keepassxc_cli(), *args], input=stdin, capture_output=True, text=True, timeout=60,
                            env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result.stdout


def kpx_value(db, entry: str, attribute: str) -> str:
    return kpx("show", "-q", "-s", "-a", attribute, str(db), entry, stdin=KDBX_PASSWORD + "\n").rstrip("\n")


@pytest.fixture
def home(tmp_path):
    path = tmp_path / "laptop"
    ok(run_cli(path, "init", "--password-stdin", stdin=PW))
    return path


def revisions(home) -> int:
    return json.loads(ok(run_cli(home, "status", "--json")))["revisions"]


def item(home, title: str) -> dict:
    return json.loads(ok(run_cli(home, "get", title, "--json", "--password-stdin", stdin=PW)))


# --- KeePassXC ---------------------------------------------------------------------------------


def make_keepassxc_database(path) -> None:
    kpx("db-create", "-q", "-p", "-t", "100", str(path), stdin=f"{KDBX_PASSWORD}\n{KDBX_PASSWORD}\n")
    kpx("mkdir", "-q", str(path), "Internet", stdin=KDBX_PASSWORD + "\n")
    kpx("mkdir", "-q", str(path), "Internet/Forums", stdin=KDBX_PASSWORD + "\n")
    for group, title, username, password, url, notes in KPX_ENTRIES:
        args = ["add", "-q"]
        if username:
            args += ["-u", username]
        if url:
            args += ["--url", url]
        if notes:
            args += ["--notes", notes]
        stdin = KDBX_PASSWORD + "\n"
        if password:
            args.append("-p")
            stdin += password + "\n"
        kpx(*args, str(path), f"{group}/{title}" if group else title, stdin=stdin)


def test_a_database_made_by_keepassxc_imports_completely_and_only_once(home, tmp_path):
    """Acceptance: a .kdbx made by keepassxc-cli imports completely (every entry and password)."""
    db = tmp_path / "keepassxc.kdbx"
    make_keepassxc_database(db)
    listed = kpx("ls", "-q", "-R", "-f", str(db), stdin=KDBX_PASSWORD + "\n").split()
    assert {"Internet/Email", "Internet/Forums/Forum", "Bank"} <= set(listed)

    report = json.loads(ok(run_cli(home, "import", "kdbx", str(db), "--password-stdin", "--json",
                                   stdin=f"{KDBX_PASSWORD}\n{PASSWORD}\n")))
    assert report["imported"] == len(KPX_ENTRIES) and report["skipped"] == [] and report["format"] == "kdbx"
    titles = [entry["title"] for entry in json.loads(ok(run_cli(home, "ls", "--json", "--password-stdin", stdin=PW)))]
    assert sorted(titles) == sorted(title for _, title, *_ in KPX_ENTRIES)
    for group, title, username, password, url, notes in KPX_ENTRIES:
        entry_path = f"{group}/{title}" if group else title
        fields = item(home, title)["fields"]
        expected = {"username": username, "password": password, "url": url, "notes": notes, "folder": group}
        assert {k: v for k, v in fields.items() if k != "import-source"} == {k: v for k, v in expected.items() if v}
        # the same password keepassxc itself shows, and the entry's own UUID as the source key
        assert fields.get("password", "") == kpx_value(db, entry_path, "Password")
        assert fields["import-source"] == "kdbx:" + kpx_value(db, entry_path, "Uuid").strip("{}").replace("-", "")

    before = revisions(home)
    again = json.loads(ok(run_cli(home, "import", "kdbx", str(db), "--password-stdin", "--json",
                                  stdin=f"{KDBX_PASSWORD}\n{PASSWORD}\n")))
    assert again["imported"] == 0 and len(again["skipped"]) == len(KPX_ENTRIES)
    assert {s["reason"] for s in again["skipped"]} == {"already imported"}
    assert revisions(home) == before


def test_an_exported_vault_opens_in_keepassxc_with_the_same_entries_and_passwords(home, tmp_path):
    """Acceptance: a vault exported to .kdbx opens in keepassxc-cli showing the same entries and passwords."""
    keepassxc_cli()
    items = {
        "Email": {"username": "alice", "password": "Em-pass-1", "url": "https://mail.example", "folder": "Internet"},
        "Bank": {"username": "bob", "password": 'p@ss "wörd" € ;,', "PIN": "2468"},
        "Wifi": {"password": "hunter2 hunter2", "notes": "WPA2\nguest network", "folder": "Home/Network"},
    }
    for title, fields in items.items():
        ok(run_cli(home, "add", title, *[a for n, v in fields.items() for a in ("--field", f"{n}={v}")],
                   "--password-stdin", stdin=PW))
    ok(run_cli(home, "add", "Gone", "--field", "password=Gone-pass", "--password-stdin", stdin=PW))
    ok(run_cli(home, "rm", "Gone", "--password-stdin", stdin=PW))
    out = tmp_path / "export.kdbx"
    report = json.loads(ok(run_cli(home, "export", "kdbx", str(out), "--password-stdin", "--json",
                                   stdin=f"{KDBX_PASSWORD}\n{PASSWORD}\n")))
    assert report == {"format": "kdbx", "file": str(out), "exported": 3, "conflicts": []}
    assert stat.S_IMODE(out.stat().st_mode) == 0o600

    listed = set(kpx("ls", "-q", "-R", "-f", str(out), stdin=KDBX_PASSWORD + "\n").split("\n"))
    assert {"Internet/Email", "Bank", "Home/Network/Wifi"} <= listed and not any("Gone" in e for e in listed)
    for title, fields in items.items():
        path = {"Email": "Internet/Email", "Bank": "Bank", "Wifi": "Home/Network/Wifi"}[title]
        assert kpx_value(out, path, "Title") == title
        assert kpx_value(out, path, "Password") == fields["password"]
        assert kpx_value(out, path, "UserName") == fields.get("username", "")
    assert kpx_value(out, "Bank", "PIN") == "2468"
    assert kpx_value(out, "Home/Network/Wifi", "Notes") == "WPA2\nguest network"
    wrong = subprocess.run([keepassxc_cli(), "ls", "-q", str(out)], input="not the password\n", capture_output=True,
                           text=True, timeout=60)
    assert wrong.returncode != 0

    # the file does not get replaced by accident
    again = run_cli(home, "export", "kdbx", str(out), "--password-stdin", stdin=f"{KDBX_PASSWORD}\n{PASSWORD}\n")
    assert again.returncode == 2 and "exists" in again.stderr


# --- without keepassxc ---------------------------------------------------------------------------

BITWARDEN = {
    "encrypted": False,
    "folders": [{"id": "f1", "name": "Social"}],
    "items": [
        {"id": "bw-1", "folderId": "f1", "type": 1, "name": "Forum", "notes": None, "favorite": False,
         "fields": [{"name": "recovery", "value": "RC-1", "type": 1, "linkedId": None}],
         "login": {"uris": [{"match": None, "uri": "https://forum.example"}], "username": "alice",
                   "password": "Fo-pass-1", "totp": None}},
        {"id": "bw-2", "folderId": None, "type": 2, "name": "Wifi", "notes": "hunter2", "secureNote": {"type": 0}},
        {"id": "bw-3", "type": 7, "name": "Unknown kind"},
    ],
}


def test_bitwarden_and_csv_import_without_a_daemon(home, tmp_path):
    export = tmp_path / "bitwarden.json"
    export.write_text(json.dumps(BITWARDEN))
    report = json.loads(ok(run_cli(home, "import", "bitwarden", str(export), "--password-stdin", "--json", stdin=PW)))
    assert report["imported"] == 2
    assert report["skipped"] == [{"title": "Unknown kind", "reason": "unsupported Bitwarden item type 7"}]
    forum = item(home, "Forum")
    assert forum["fields"] == {"username": "alice", "password": "Fo-pass-1", "url": "https://forum.example",
                               "recovery": "RC-1", "folder": "Social", "import-source": "bitwarden:bw-1"}
    assert set(forum["secrets"]) == {"password", "recovery"}

    table = tmp_path / "passwords.csv"
    table.write_text("Title,Username,Password,URL,Notes,Custom\nMail,bob,Ma-pass,https://m,\"a\nb\",c1\n"
                     "Mail,bob,Ma-pass,https://m,\"a\nb\",c1\n,,,,,\n", encoding="utf-8")
    human = ok(run_cli(home, "import", "csv", str(table), "--password-stdin", stdin=PW))
    assert "Imported 1 item(s)" in human and "a duplicate of an earlier entry" in human
    assert "no title and no fields" in human and "Ma-pass" not in human
    assert item(home, "Mail")["fields"]["Custom"] == "c1"
    again = json.loads(ok(run_cli(home, "import", "csv", str(table), "--password-stdin", "--json", stdin=PW)))
    assert again["imported"] == 0


def test_bad_input_gives_one_clear_error_and_changes_nothing(home, tmp_path):
    ok(run_cli(home, "add", "Existing", "--field", "password=x", "--password-stdin", stdin=PW))
    before = revisions(home)
    broken = tmp_path / "broken.json"
    broken.write_text('{"items": [{"type": 1, "name": "A", "login": {"password": ["S3CRET"]}}]}')
    result = run_cli(home, "import", "bitwarden", str(broken), "--password-stdin", stdin=PW)
    assert result.returncode == 2 and result.stderr.count("error:") == 1 and "S3CRET" not in result.stderr
    not_kdbx = tmp_path / "not.kdbx"
    not_kdbx.write_bytes(b"\x03\xd9\xa2\x9a" + os.urandom(300))
    result = run_cli(home, "import", "kdbx", str(not_kdbx), "--password-stdin", stdin=f"x\n{PASSWORD}\n")
    assert result.returncode == 2 and "not a KeePass database" in result.stderr
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes("title,password\nCaf\xe9,x\n".encode("latin-1"))
    assert run_cli(home, "import", "csv", str(latin1), "--password-stdin", stdin=PW).returncode == 2
    assert run_cli(home, "import", "csv", str(tmp_path / "missing.csv"), "--password-stdin", stdin=PW).returncode == 2
    assert revisions(home) == before


def test_a_wrong_kdbx_password_changes_nothing(home, tmp_path):
    from pykeepass import create_database

    db = tmp_path / "db.kdbx"
    keepass = create_database(str(db), password=KDBX_PASSWORD)
    keepass.add_entry(keepass.root_group, "Entry", "u", "p")
    keepass.save()
    before = revisions(home)
    result = run_cli(home, "import", "kdbx", str(db), "--password-stdin", stdin=f"wrong one\n{PASSWORD}\n")
    assert result.returncode == 3 and "wrong password for this KeePass database" in result.stderr
    assert "wrong one" not in result.stderr + result.stdout
    assert revisions(home) == before
    assert run_cli(home, "import", "kdbx", str(db)).returncode == 2  # no terminal and no --password-stdin


def test_csv_export_needs_confirmation_and_is_private(home, tmp_path):
    ok(run_cli(home, "add", "Mail", "--field", "username=alice", "--field", "password=Ma,pass\"1",
               "--password-stdin", stdin=PW))
    out = tmp_path / "export.csv"
    declined = run_cli(home, "export", "csv", str(out), "--password-stdin", stdin=f"n\n{PASSWORD}\n")
    assert declined.returncode == 1 and "not confirmed" in declined.stderr and not out.exists()
    assert "plaintext" in declined.stderr
    eof = run_cli(home, "export", "csv", str(out), "--password-stdin", stdin="")
    assert eof.returncode == 1 and not out.exists()
    ok(run_cli(home, "export", "csv", str(out), "--password-stdin", stdin=f"y\n{PASSWORD}\n"))
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [(r["title"], r["username"], r["password"]) for r in rows] == [("Mail", "alice", 'Ma,pass"1')]
    exists = run_cli(home, "export", "csv", str(out), "--plaintext", "--password-stdin", stdin=PW)
    assert exists.returncode == 2 and "--force" in exists.stderr
    assert run_cli(home, "export", "kdbx", str(tmp_path / "x.kdbx"), "--plaintext").returncode == 2
    short = run_cli(home, "export", "kdbx", str(tmp_path / "x.kdbx"), "--password-stdin", stdin=f"short\n{PASSWORD}\n")
    assert short.returncode == 2 and not (tmp_path / "x.kdbx").exists()
    # a CSV export imports back into another vault with the same items
    other = tmp_path / "desktop"
    ok(run_cli(other, "init", "--password-stdin", stdin=PW))
    ok(run_cli(other, "import", "csv", str(out), "--password-stdin", stdin=PW))
    assert {k: v for k, v in item(other, "Mail")["fields"].items() if k != "import-source"} == \
        {"username": "alice", "password": 'Ma,pass"1'}


# --- with a running daemon ---------------------------------------------------------------------


@pytest.fixture
def daemon():
    root = short_tmp()
    node = Daemon(root / "a", mdns=False)
    try:
        node.init()
        node.start("--offline")
        node.unlock()
        yield node
    finally:
        cleanup(root, [node])


def test_import_and_export_through_a_running_daemon(daemon, tmp_path):
    export = tmp_path / "bitwarden.json"
    export.write_text(json.dumps(BITWARDEN))
    # no master password: the daemon holds the unlocked vault
    report = json.loads(daemon.ok("import", "bitwarden", str(export), "--json"))
    assert report["imported"] == 2 and {i["title"] for i in report["items"]} == {"Forum", "Wifi"}
    assert daemon.json("get", "Forum")["fields"]["password"] == "Fo-pass-1"
    assert json.loads(daemon.ok("import", "bitwarden", str(export), "--json"))["imported"] == 0

    # more than one request line's worth: sent in parts, committed as one batch
    rows = ["title,username,password,notes"] + [f"Bulk {n},user{n},pw-{n},{'x' * 4000}" for n in range(400)]
    table = tmp_path / "bulk.csv"
    table.write_text("\n".join(rows) + "\n")
    assert table.stat().st_size > 1024 * 1024
    before = daemon.status()["revisions"]
    report = json.loads(daemon.ok("import", "csv", str(table), "--json"))
    assert report["imported"] == 400 and daemon.status()["revisions"] == before + 400
    assert daemon.json("get", "Bulk 399")["fields"]["password"] == "pw-399"
    assert json.loads(daemon.ok("import", "csv", str(table), "--json"))["imported"] == 0

    out = tmp_path / "all.csv"
    exported = json.loads(daemon.ok("export", "csv", str(out), "--plaintext", "--json"))
    assert exported["exported"] == 402 and stat.S_IMODE(out.stat().st_mode) == 0o600
    assert len(list(csv.DictReader(io.StringIO(out.read_text())))) == 402

    from pykeepass import create_database

    db = tmp_path / "db.kdbx"
    keepass = create_database(str(db), password=KDBX_PASSWORD)
    keepass.add_entry(keepass.root_group, "From KeePass", "u", "Kp-pass-1")
    keepass.save()
    # with a daemon, stdin holds only the database's password
    assert json.loads(daemon.ok("import", "kdbx", str(db), "--password-stdin", "--json",
                                stdin=KDBX_PASSWORD + "\n"))["imported"] == 1
    assert daemon.json("get", "From KeePass")["fields"]["password"] == "Kp-pass-1"

    # an entry too large for one request line is named, the others still arrive
    huge = {"items": [{"id": "big", "type": 2, "name": "Huge note", "notes": "\u00e9" * 300_000},
                      {"id": "small", "type": 2, "name": "Small note", "notes": "hi"}]}
    export.write_text(json.dumps(huge))
    report = json.loads(daemon.ok("import", "bitwarden", str(export), "--json"))
    assert report["imported"] == 1 and report["skipped"] == [
        {"title": "Huge note", "reason": "too large to send to the daemon (stop it, then import without it)"}]

    # the API checks what it is sent, and a batch token must be one it gave
    from vaultpeer.api import ApiError
    from vaultpeer.client import Client

    with Client(daemon.status()["socket"]) as client:
        for params in ({"entries": [{"title": 1, "fields": {}, "source": "s"}]}, {"entries": "x"}, {},
                       {"entries": [], "more": "yes"}):
            with pytest.raises(ApiError) as caught:
                client.call("item.import", **params)
            assert caught.value.code == -32602
        with pytest.raises(ApiError) as caught:
            client.call("item.import", entries=[], batch="not-a-batch")
        assert caught.value.data["name"] == "not_found"
        staged = client.call("item.import", entries=[{"title": "Staged", "fields": {"password": "St-1"},
                                                      "source": "api:1"}], more=True)
        assert staged["staged"] == 1 and daemon.status()["revisions"] == before + 400 + 2
        with Client(daemon.status()["socket"], timeout=30) as listener:
            events = listener.subscribe()
            done = client.call("item.import", entries=[], batch=staged["batch"])
            assert done["imported"] == 1 and done["items"][0]["title"] == "Staged"
            # the batch is announced (and pushed to connected members) like any other change
            event = next(events)
            assert event["type"] == "items.changed" and event["items"] == [done["items"][0]["id"]]

    daemon.ok("lock")
    locked = daemon.cli("import", "bitwarden", str(export))
    assert locked.returncode == 9


# --- progress ------------------------------------------------------------------------------------


def run_with_terminal_stderr(home, *args: str, stdin: str) -> tuple[int, str]:
    """The CLI with stderr on a pseudo-terminal (stdin and stdout stay pipes); returns what the
    terminal received."""
    master, slave = os.openpty()
    process = subprocess.Popen([sys.executable, "-m", "vaultpeer", "--home", str(home), *args],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=slave,
                               env=cli_env(TERM="xterm-256color", COLUMNS="120"))
    os.close(slave)
    received = bytearray()

    def read() -> None:
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                return
            if not chunk:
                return
            received.extend(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        process.communicate(stdin.encode(), timeout=120)
    finally:
        reader.join(10)
        os.close(master)
    return process.returncode, received.decode("utf-8", "replace")


def test_an_import_shows_a_progress_bar_on_a_terminal_only(home, tmp_path):
    table = tmp_path / "many.csv"
    table.write_text("title,password\n" + "".join(f"Item {n},pw-{n}\n" for n in range(300)))
    status, terminal = run_with_terminal_stderr(home, "import", "csv", str(table), "--password-stdin", stdin=PW)
    assert status == 0
    assert "Importing 300 entries" in terminal and "300/300" in terminal
    other = tmp_path / "other.csv"
    other.write_text("title,password\nOne more,pw\n")
    piped = run_cli(home, "import", "csv", str(other), "--password-stdin", stdin=PW)
    assert piped.returncode == 0 and "Importing" not in piped.stderr and "\x1b[" not in piped.stderr
