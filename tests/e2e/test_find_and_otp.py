"""Issue 17 through the real CLI: `search`, `ls PATTERN`, `otp` and `copy --otp`, on a home directly
(the master password on stdin) and through a running daemon, with the same JSON."""

import base64
import json
import time

import pytest

from helpers import run_cli
from test_generate_copy import clipboard, wait_for_clearers_to_finish, x_display, x_env  # noqa: F401 - fixture
from vaultpeer.core.totp import parse_totp, totp_code

PASSWORD = "correct horse battery staple"
PW = PASSWORD + "\n"
SEED = base64.b32encode(b"12345678901234567890").decode().rstrip("=")
URI = f"otpauth://totp/GitHub:alice?secret={SEED}&issuer=GitHub&digits=8&algorithm=SHA256&period=60"
ITEMS = [
    ("GitHub (work)", ["username=alice@corp.example", "url=https://github.com/login", "folder=Work",
                       "password=gh-secret", f"totp={URI}"]),
    ("github", ["username=alice", "url=github.com", "folder=Personal", f"totp={SEED}"]),
    ("Bank", ["username=alice", "url=https://www.mybank.example/", "folder=Finance", "tags=money, important"]),
    ("Steam", ["username=gamer", f"totp=steam://{SEED}"]),
    ("Mail", ["username=alice@mail.example", "folder=Personal"]),
    ("MAIL", ["username=bob@mail.example", "folder=Work"]),
]


def ok(result) -> str:
    assert result.returncode == 0, (result.stdout, result.stderr)
    return result.stdout


def codes_around(call, uri: str) -> tuple[str, set[str]]:
    """What ``call`` printed, and the codes valid just before and just after it ran."""
    settings = parse_totp(uri)
    before = totp_code(settings, time.time()).code
    out = call()
    after = totp_code(settings, time.time()).code
    return out, {before, after}


def check_finding_and_codes(cli) -> None:
    """The acceptance, through ``cli(*args)`` (a home directly or a daemon)."""
    found = json.loads(cli("search", "GITHUB", "--json"))
    assert [f["title"] for f in found] == ["github", "GitHub (work)"]  # the exact title first
    assert found[1] == {"id": found[1]["id"], "title": "GitHub (work)", "username": "alice@corp.example",
                        "url": "https://github.com/login", "folder": "Work"}
    assert [f["title"] for f in json.loads(cli("search", "github work", "--json"))] == ["GitHub (work)"]
    assert [f["title"] for f in json.loads(cli("search", "mybank", "--json"))] == ["Bank"]
    assert [f["title"] for f in json.loads(cli("search", "important", "--json"))] == ["Bank"]
    assert json.loads(cli("search", "gh-secret", "--json")) == []  # passwords are never searched
    assert "No item matches." in cli("search", "nothing-like-this")
    human = cli("search", "alice")
    assert "USERNAME" in human and "mybank" in human and "gh-secret" not in human

    assert [i["title"] for i in json.loads(cli("ls", "git", "--json"))] == ["github", "GitHub (work)"]
    assert [i["title"].casefold() for i in json.loads(cli("ls", "--json"))] == \
        ["bank", "github", "github (work)", "mail", "mail", "steam"]  # by title in any case, then id

    # a name resolves in any case when only one title folds to it; else the candidates tell apart
    assert json.loads(cli("get", "STEAM", "--json"))["title"] == "Steam"
    assert json.loads(cli("get", "MAIL", "--json"))["fields"]["username"] == "bob@mail.example"  # exact wins

    out, expected = codes_around(lambda: json.loads(cli("otp", "GitHub (work)", "--json")), URI)
    assert out["code"] in expected and (out["period"], out["digits"]) == (60, 8) and 1 <= out["remaining"] <= 60
    out, expected = codes_around(lambda: cli("otp", "github"), SEED)
    assert out.strip() in expected and len(out.strip()) == 6
    steam = json.loads(cli("otp", "Steam", "--json"))
    assert len(steam["code"]) == 5 and steam["code"].isalnum() and steam["digits"] == 5


def check_ambiguity(result) -> None:
    assert result.returncode == 5
    lines = [line for line in result.stderr.splitlines() if line.startswith("  ")]
    assert len(lines) == 2
    assert any("user: alice@mail.example" in line and "folder: Personal" in line for line in lines)
    assert any("user: bob@mail.example" in line and "folder: Work" in line for line in lines)


def test_on_the_home_directly(tmp_path):
    home = tmp_path / "laptop"
    ok(run_cli(home, "init", "--password-stdin", stdin=PW))
    for title, fields in ITEMS:
        ok(run_cli(home, "add", title, *[a for f in fields for a in ("--field", f)], "--password-stdin", stdin=PW))

    check_finding_and_codes(lambda *args: ok(run_cli(home, *args, "--password-stdin", stdin=PW)))
    check_ambiguity(run_cli(home, "get", "mail", "--password-stdin", stdin=PW))
    missing = run_cli(home, "otp", "Bank", "--password-stdin", stdin=PW)
    assert missing.returncode == 4 and "no TOTP secret" in missing.stderr
    ok(run_cli(home, "edit", "Bank", "--field", "totp=not base32!", "--password-stdin", stdin=PW))
    broken = run_cli(home, "otp", "Bank", "--password-stdin", stdin=PW)
    assert broken.returncode == 2 and "not base32" in broken.stderr


def test_through_the_daemon(world):
    laptop = world("laptop")
    laptop.init(PASSWORD)
    laptop.start("--offline")
    laptop.unlock(PASSWORD)
    for title, fields in ITEMS:
        laptop.api("item.add", title=title, fields=dict(f.split("=", 1) for f in fields))

    check_finding_and_codes(lambda *args: laptop.ok(*args))
    check_ambiguity(laptop.cli("get", "mail"))
    assert laptop.api("item.search", text="work")[0]["title"] == "GitHub (work)"
    assert laptop.api("item.otp", item="github")["digits"] == 6
    laptop.ok("rm", "Bank")
    assert [i["title"] for i in laptop.json("ls", "bank", "--deleted")] == ["Bank"]
    assert laptop.json("ls", "bank") == []


def test_copy_otp_puts_the_current_code_on_the_clipboard(tmp_path, x_display):  # noqa: F811 - the fixture
    home = tmp_path / "laptop"
    ok(run_cli(home, "init", "--password-stdin", stdin=PW))
    ok(run_cli(home, "add", "GitHub", "--field", f"totp={URI}", "--password-stdin", stdin=PW))
    out, expected = codes_around(lambda: ok(run_cli(home, "copy", "GitHub", "--otp", "--clear-after", "1",
                                                    "--password-stdin", stdin=PW, env=x_env(x_display))), URI)
    assert "Copied the TOTP code" in out
    assert clipboard(x_display).decode() in expected
    wait_for_clearers_to_finish(x_display)
    both = run_cli(home, "copy", "GitHub", "--otp", "--field", "password", "--password-stdin", stdin=PW,
                   env=x_env(x_display))
    assert both.returncode == 2 and "--otp" in both.stderr


@pytest.mark.parametrize("command", [["search", "x"], ["otp", "x"]])
def test_help_explains(tmp_path, command):
    assert "--json" in ok(run_cli(tmp_path / "h", command[0], "--help"))


def test_otp_matches_keepassxc_cli_on_an_imported_kdbx(tmp_path):
    """Issue 17's acceptance: the codes of an imported .kdbx are the ones KeePassXC shows."""
    from pykeepass import create_database

    from test_import_export import KDBX_PASSWORD, kpx

    db = tmp_path / "otp.kdbx"
    keepass = create_database(str(db), password=KDBX_PASSWORD)
    uris = {
        "Plain": f"otpauth://totp/Plain:alice?secret={SEED}&issuer=Plain",
        "Long": f"otpauth://totp/Long:alice?secret={SEED}&digits=8&algorithm=SHA256&period=60",
        "Steam": f"otpauth://totp/Steam:alice?secret={SEED}&encoder=steam",
    }
    for title, uri in uris.items():
        keepass.add_entry(keepass.root_group, title, "alice", "pw", otp=uri)
    keepass.save()
    home = tmp_path / "laptop"
    ok(run_cli(home, "init", "--password-stdin", stdin=PW))
    ok(run_cli(home, "import", "kdbx", str(db), "--password-stdin", stdin=KDBX_PASSWORD + "\n" + PW))
    for title in uris:
        for _ in range(3):  # the two reads must fall in one period
            period = 60 if title == "Long" else 30
            window = int(time.time()) // period
            ours = json.loads(ok(run_cli(home, "otp", title, "--json", "--password-stdin", stdin=PW)))["code"]
            theirs = kpx("show", "-q", "--totp", str(db), title, stdin=KDBX_PASSWORD + "\n").strip()
            if int(time.time()) // period == window:
                break
        assert ours == theirs, title
