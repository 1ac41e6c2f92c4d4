"""Issue 17 through the real CLI: what `add`/`edit --generate FIELD` and `generate` make with
--length, --words/--separator and the class options (--no-digits, --no-symbols, --exclude-similar),
on a home directly (the master password on stdin) and through a running daemon; the combinations
that are usage errors; and the same options as the local API's params."""

import json
import string

import pytest

from helpers import PASSWORD, run_cli
from test_cli_imports import loaded_by
from vaultpeer.api import ApiError
from vaultpeer.core.generate import SIMILAR, SYMBOLS
from vaultpeer.service.wordlist import eff_long_wordlist

PW = PASSWORD + "\n"
EFF = set(eff_long_wordlist())


def ok(result) -> str:
    assert result.returncode == 0, (result.stdout, result.stderr)
    return result.stdout


def usage_error(result, message: str) -> None:
    assert (result.returncode, result.stdout) == (2, ""), (result.stdout, result.stderr)
    assert message in result.stderr and "Traceback" not in result.stderr


def check_generated_fields(cli) -> None:
    """Each option of add/edit --generate, through ``cli(*args) -> stdout`` (a home or a daemon)."""
    def value(item: str, field: str = "password") -> str:
        return cli("get", item, "--field", field).rstrip("\n")

    cli("add", "Router", "--generate", "password", "--length", "12", "--no-digits", "--no-symbols",
        "--exclude-similar")
    password = value("Router")
    assert len(password) == 12 and set(password) <= set(string.ascii_letters) - set(SIMILAR)
    assert set(password) & set(string.ascii_lowercase) and set(password) & set(string.ascii_uppercase)

    cli("add", "Wifi", "--field", "username=guest", "--generate", "password", "--generate", "admin",
        "--words", "5", "--separator", " ")
    for field in ("password", "admin"):
        words = value("Wifi", field).split(" ")
        assert len(words) == 5 and set(words) <= EFF
    assert value("Wifi", "password") != value("Wifi", "admin")  # each field drawn on its own

    cli("edit", "Router", "--generate", "password", "--no-symbols")
    password = value("Router")
    assert len(password) == 24 and not set(password) & set(SYMBOLS) and set(password) & set(string.digits)

    cli("edit", "Router", "--generate", "password", "--exclude-similar", "--length", "64")
    password = value("Router")
    assert len(password) == 64 and not set(password) & set(SIMILAR) and set(password) & set(SYMBOLS)

    cli("edit", "Router", "--generate", "pin", "--no-digits", "--length", "10")
    pin = value("Router", "pin")
    assert len(pin) == 10 and not set(pin) & set(string.digits) and set(pin) & set(SYMBOLS)

    cli("edit", "Wifi", "--generate", "password", "--words", "3")
    words = value("Wifi").split("-")
    assert len(words) == 3 and set(words) <= EFF
    assert value("Wifi", "username") == "guest"


def check_usage_errors(cli) -> None:
    """Refused with exit 2 and a clear line, before any password is read: ``cli(*args)`` runs the
    CLI with nothing on stdin and returns the process."""
    for option in (["--length", "30"], ["--words", "5"], ["--separator", "."], ["--no-digits"], ["--no-symbols"],
                   ["--exclude-similar"]):
        usage_error(cli("add", "Nothing", "--field", "username=x", *option), "give --generate too")
        usage_error(cli("edit", "Router", *option), "give --generate too")
    usage_error(cli("add", "Nothing", "--generate", "password", "--words", "6", "--length", "20"),
                "length and words exclude each other")
    for option in ("--no-digits", "--no-symbols", "--exclude-similar"):
        usage_error(cli("add", "Nothing", "--generate", "password", "--words", "6", option),
                    "a passphrase is made of words only")
        usage_error(cli("edit", "Router", "--generate", "password", "--words", "6", option),
                    "a passphrase is made of words only")
    usage_error(cli("add", "Nothing", "--generate", "password", "--separator", "+"), "only for passphrases")
    usage_error(cli("add", "Nothing", "--generate", "password", "--length", "7"), "--length")
    usage_error(cli("add", "Nothing", "--generate", "password", "--words", "2"), "--words")


def test_add_and_edit_generate_with_every_option_on_the_home_directly(tmp_path):
    home = tmp_path / "laptop"
    ok(run_cli(home, "init", "--password-stdin", stdin=PW))
    check_generated_fields(lambda *args: ok(run_cli(home, *args, "--password-stdin", stdin=PW)))
    check_usage_errors(lambda *args: run_cli(home, *args, "--password-stdin"))
    titles = [i["title"] for i in json.loads(ok(run_cli(home, "ls", "--json", "--password-stdin", stdin=PW)))]
    assert titles == ["Router", "Wifi"]


def test_add_and_edit_generate_with_every_option_through_the_daemon(world):
    laptop = world("laptop")
    laptop.init()
    laptop.start("--offline")
    laptop.unlock()
    check_generated_fields(laptop.ok)
    check_usage_errors(laptop.cli)
    assert [i["title"] for i in laptop.json("ls")] == ["Router", "Wifi"]
    # the daemon draws the passphrase: the CLI loads nothing heavy for it
    result, loaded = loaded_by(laptop.home, "add", "Light", "--generate", "password", "--words", "4")
    assert result.returncode == 0 and loaded == []


def test_generate_with_class_options(tmp_path):
    def generated(*args: str) -> dict:
        return json.loads(ok(run_cli(tmp_path, "generate", *args, "--json")))

    default = generated()["entropy_bits"]
    for args, bits in ((["--no-symbols"], 142.9), (["--no-digits"], 144.5), (["--exclude-similar"], 147.0),
                       (["--no-digits", "--no-symbols", "--exclude-similar"], 134.8)):
        result = generated(*args)
        assert result["entropy_bits"] == bits < default, args
        assert len(result["password"]) == 24
    letters = generated("--no-digits", "--no-symbols", "--exclude-similar", "--length", "40")["password"]
    assert len(letters) == 40 and set(letters) <= set(string.ascii_letters) - set(SIMILAR)
    plain = ok(run_cli(tmp_path, "generate", "--no-symbols", "--length", "16")).strip()
    assert len(plain) == 16 and plain.isalnum()
    help_text = ok(run_cli(tmp_path, "generate", "--help"))
    assert "--exclude-similar" in help_text and "I l 1 O 0" in help_text and "142.9 bits" in help_text


@pytest.mark.parametrize("option", ["--no-digits", "--no-symbols", "--exclude-similar"])
def test_generate_refuses_class_options_with_words(tmp_path, option):
    usage_error(run_cli(tmp_path, "generate", "--words", "5", option), "a passphrase is made of words only")
    usage_error(run_cli(tmp_path, "generate", option, "--words"), "a passphrase is made of words only")


def test_the_api_takes_the_options_and_refuses_wrong_types(world):
    laptop = world("laptop")
    laptop.init()
    laptop.start("--offline")
    laptop.unlock()

    def field(item: str, name: str = "password") -> str:
        return laptop.api("item.get", item=item)["fields"][name]

    laptop.api("item.add", title="Api", generate=["password"], length=16, digits=False, exclude_similar=True)
    password = field("Api")
    assert len(password) == 16 and not set(password) & (set(string.digits) | set(SIMILAR)) \
        and set(password) & set(SYMBOLS)
    laptop.api("item.edit", item="Api", generate=["password"], words=5, separator=".")
    assert len(field("Api").split(".")) == 5 and set(field("Api").split(".")) <= EFF
    laptop.api("item.edit", item="Api", generate=["password"], symbols=False)
    assert len(field("Api")) == 24 and not set(field("Api")) & set(SYMBOLS)
    # every shape that worked before still does: the old CLI sent length with or without generate
    laptop.api("item.add", title="Old", fields={"username": "u"}, generate=["password"], length=20)
    assert len(field("Old")) == 20
    laptop.api("item.edit", item="Old", fields={"username": "v"}, generate=[], length=24)
    assert field("Old", "username") == "v"

    plain = laptop.api("generate", digits=False, symbols=False)
    assert plain["password"].isalpha() and plain["entropy_bits"] == 136.8
    assert laptop.api("generate", exclude_similar=True)["entropy_bits"] == 147.0
    assert laptop.api("generate", words=6, digits=True, symbols=True, exclude_similar=False)["entropy_bits"] == 77.5

    wrong = [("generate", {"digits": "no"}), ("generate", {"symbols": 0}), ("generate", {"exclude_similar": None}),
             ("generate", {"words": 5, "digits": False}), ("generate", {"words": 5, "exclude_similar": True}),
             ("item.add", {"title": "X", "generate": ["password"], "words": "5"}),
             ("item.add", {"title": "X", "generate": ["password"], "separator": 1, "words": 5}),
             ("item.add", {"title": "X", "generate": ["password"], "digits": 1}),
             ("item.add", {"title": "X", "generate": ["password"], "words": 5, "symbols": False}),
             ("item.edit", {"item": "Api", "generate": ["password"], "exclude_similar": "yes"}),
             ("item.edit", {"item": "Api", "generate": ["password"], "words": 5, "length": 20})]
    for method, params in wrong:
        with pytest.raises(ApiError) as caught:
            laptop.api(method, **params)
        assert (caught.value.code, caught.value.data) == (-32602, {"name": "invalid_params"}), (method, params)
    assert [i["title"] for i in laptop.api("item.list")] == ["Api", "Old"]
