"""`vaultpeer generate --words` and `vaultpeer copy`, through the real CLI in subprocesses; the copy
round trip on a real X server (Xvfb) with the real xclip, where those are installed."""

import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from daemons import Daemon, short_tmp
from helpers import PASSWORD, cli_env, run_cli
from vaultpeer.api import ApiError
from vaultpeer.client import Client
from vaultpeer.core.generate import MAX_WORDS, MIN_WORDS
from vaultpeer.service.wordlist import eff_long_wordlist

PW = PASSWORD + "\n"
SECRET = "Tr0ub4dor&3-CANARY-9f1c"
EFF = set(eff_long_wordlist())


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, (result.stdout, result.stderr)
    return result.stdout


@pytest.fixture
def home(tmp_path):
    path = tmp_path / "laptop"
    ok(run_cli(path, "init", "--password-stdin", stdin=PW))
    ok(run_cli(path, "add", "Email", "--field", "username=alice", "--field", f"password={SECRET}",
               "--password-stdin", stdin=PW))
    return path


# --- generate ------------------------------------------------------------------------------------


def test_the_word_list_is_the_eff_long_list():
    words = eff_long_wordlist()
    assert len(words) == len(EFF) == 7776
    assert (words[0], words[-1]) == ("abacus", "zoom")


@pytest.mark.parametrize("count", [MIN_WORDS, 7, MAX_WORDS])
def test_generate_words_prints_that_many_eff_words(tmp_path, count):
    phrase = ok(run_cli(tmp_path, "generate", "--words", str(count))).strip()
    words = phrase.split("-")
    assert len(words) == count and set(words) <= EFF


def test_generate_words_defaults_to_six_and_takes_a_separator(tmp_path):
    assert len(ok(run_cli(tmp_path, "generate", "--words")).strip().split("-")) == 6
    phrase = ok(run_cli(tmp_path, "generate", "--words", "5", "--separator", " ")).rstrip("\n")
    assert len(phrase.split(" ")) == 5 and set(phrase.split(" ")) <= EFF
    dotted = ok(run_cli(tmp_path, "generate", "--words", "4", "--separator", "."))
    assert len(dotted.strip().split(".")) == 4


def test_generate_json_reports_the_entropy(tmp_path):
    phrase = json.loads(ok(run_cli(tmp_path, "generate", "--words", "6", "--json")))
    assert set(phrase) == {"password", "entropy_bits"}
    assert phrase["entropy_bits"] == 77.5  # 6 x log2(7,772): the four hyphenated words are left out for "-"
    assert json.loads(ok(run_cli(tmp_path, "generate", "--words", "6", "--separator", " ", "--json")))[
        "entropy_bits"] == 77.5
    password = json.loads(ok(run_cli(tmp_path, "generate", "--json")))
    assert len(password["password"]) == 24 and password["entropy_bits"] == 149.4
    assert json.loads(ok(run_cli(tmp_path, "generate", "--length", "12", "--json")))["entropy_bits"] == 74.3
    help_text = ok(run_cli(tmp_path, "generate", "--help"))
    assert "149.4 bits" in help_text and "77.5 bits" in help_text and "7,776" in help_text


@pytest.mark.parametrize("args", [["--words", str(MIN_WORDS - 1)], ["--words", str(MAX_WORDS + 1)],
                                  ["--words", "x"], ["--length", "7"]])
def test_generate_refuses_out_of_range_counts(tmp_path, args):
    result = run_cli(tmp_path, "generate", *args)
    assert result.returncode == 2 and result.stdout == "" and "Traceback" not in result.stderr


def test_length_and_words_exclude_each_other(tmp_path):
    result = run_cli(tmp_path, "generate", "--length", "20", "--words", "6")
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.strip().splitlines()[-1] == (
        "error: length and words exclude each other: a password has a length, a passphrase a number of words")
    lone = run_cli(tmp_path, "generate", "--separator", "+")
    assert lone.returncode == 2 and "only for passphrases" in lone.stderr
    empty = run_cli(tmp_path, "generate", "--words", "6", "--separator", "")
    assert empty.returncode == 2 and "separator" in empty.stderr


def test_the_api_generates_passphrases_too():
    root = short_tmp()
    daemon = Daemon(root / "laptop", "--offline", mdns=False)
    try:
        daemon.start("--offline")
        with Client(Path(daemon.status()["socket"])) as client:
            phrase = client.call("generate", words=8, separator=" ")
            assert len(phrase["password"].split(" ")) == 8 and set(phrase["password"].split(" ")) <= EFF
            assert phrase["entropy_bits"] == pytest.approx(8 * 12.925, abs=0.05)
            assert len(client.call("generate")["password"]) == 24  # the old call still works
            for bad in ({"words": 6, "length": 20}, {"words": 2}, {"words": "6"}, {"separator": "-"}):
                with pytest.raises(ApiError) as caught:
                    client.call("generate", **bad)
                assert caught.value.code == -32602, bad
    finally:
        daemon.stop()
        shutil.rmtree(root, ignore_errors=True)


# --- copy: no clipboard ----------------------------------------------------------------------------


def env_without_clipboard(tmp_path: Path, **extra: str) -> dict[str, str]:
    """No display variables and a PATH with no clipboard tool on it."""
    empty_bin = tmp_path / "empty-bin"
    empty_bin.mkdir(exist_ok=True)
    env = {k: v for k, v in cli_env().items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    return env | {"PATH": str(empty_bin)} | extra


def test_copy_without_a_graphical_session_fails_before_asking_for_anything(home, tmp_path):
    # A WRONG password on stdin: had the item been looked up first, this would fail with exit 3.
    result = run_cli(home, "copy", "Email", "--password-stdin", stdin="not the password\n",
                     env=env_without_clipboard(tmp_path))
    assert result.returncode == 12 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: no clipboard: this is not a graphical session")
    assert "vaultpeer get ITEM --field NAME" in lines[-1] and "Traceback" not in result.stderr


@pytest.mark.parametrize("variable, wanted", [("DISPLAY", "install xclip or xsel"),
                                              ("WAYLAND_DISPLAY", "install wl-clipboard")])
def test_copy_without_a_clipboard_tool_says_which_to_install(home, tmp_path, variable, wanted):
    result = run_cli(home, "copy", "Email", "--password-stdin", stdin="not the password\n",
                     env=env_without_clipboard(tmp_path, **{variable: ":99" if variable == "DISPLAY" else "wl-9"}))
    assert result.returncode == 12
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: no clipboard tool found: {wanted}")


def test_copy_of_a_missing_field_copies_nothing(home, tmp_path):
    # Detection passes (a fake DISPLAY, a fake xclip that records being run), the field is missing.
    fake_bin = tmp_path / "fake-bin"
    fake_bin.mkdir()
    marker = tmp_path / "xclip-ran"
    (fake_bin / "xclip").write_text(f"#!/bin/sh\ntouch {marker}\n")
    (fake_bin / "xclip").chmod(0o755)
    env = env_without_clipboard(tmp_path, DISPLAY=":99", PATH=str(fake_bin))
    result = run_cli(home, "copy", "Email", "--field", "nope", "--password-stdin", stdin=PW, env=env)
    assert result.returncode == 4 and "no field" in result.stderr and not marker.exists()


# --- copy: a real X server and xclip ------------------------------------------------------------------


@pytest.fixture
def x_display():
    if not (shutil.which("Xvfb") and shutil.which("xclip")):
        pytest.skip("needs Xvfb and xclip (Debian packages xvfb, xclip; .ci/run installs them where it can)")
    read_end, write_end = os.pipe()
    server = subprocess.Popen(["Xvfb", "-displayfd", str(write_end), "-nolisten", "tcp", "-screen", "0", "64x64x8"],
                              pass_fds=(write_end,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write_end)
    try:
        ready, _, _ = select.select([read_end], [], [], 30)
        number = os.read(read_end, 32).decode().strip() if ready else ""
        assert number.isdigit(), "Xvfb did not start within 30 s"
        yield f":{number}"
    finally:
        os.close(read_end)
        server.terminate()
        server.wait(10)


def x_env(display: str) -> dict[str, str]:
    env = {k: v for k, v in cli_env().items() if k != "WAYLAND_DISPLAY"}
    return env | {"DISPLAY": display}


def clipboard(display: str) -> bytes | None:
    result = subprocess.run(["xclip", "-selection", "clipboard", "-out"], capture_output=True,
                            env=x_env(display), timeout=10)
    return result.stdout if result.returncode == 0 else None


def copy_elsewhere(display: str, text: bytes) -> None:
    subprocess.run(["xclip", "-selection", "clipboard", "-in"], input=text, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, env=x_env(display), timeout=10, check=True)


def clearers(display: str) -> list[int]:
    """Pids of live `python -m vaultpeer.clipboard` processes serving this display."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes()
            environ = b"\0" + (entry / "environ").read_bytes()
        except OSError:
            continue
        if b"vaultpeer.clipboard" in argv and f"\0DISPLAY={display}\0".encode() in environ:
            found.append(int(entry.name))
    return found


def wait_for_clearers_to_finish(display: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while clearers(display):
        assert time.monotonic() < deadline, "the clearing process did not finish"
        time.sleep(0.05)


def test_copy_puts_the_value_on_the_clipboard_and_clears_it(home, x_display):
    result = run_cli(home, "copy", "Email", "--clear-after", "1", "--password-stdin", stdin=PW,
                     env=x_env(x_display))
    assert ok(result).strip() == "Copied the password of 'Email' to the clipboard; it is cleared in 1 s."
    assert SECRET not in result.stdout + result.stderr
    assert clipboard(x_display) == SECRET.encode()
    wait_for_clearers_to_finish(x_display)
    assert clipboard(x_display) in (b"", None)


def test_copy_leaves_alone_what_was_copied_meanwhile_and_never_passes_the_value_in_argv(home, x_display):
    ok(run_cli(home, "copy", "Email", "--field", "username", "--clear-after", "4", "--password-stdin", stdin=PW,
               env=x_env(x_display)))
    assert clipboard(x_display) == b"alice"
    pids = clearers(x_display)
    assert len(pids) == 1  # it sleeps 4 s, and the command has already returned
    argv = Path(f"/proc/{pids[0]}/cmdline").read_bytes()
    environ = Path(f"/proc/{pids[0]}/environ").read_bytes()
    assert b"alice" not in argv and b"alice" not in environ
    copy_elsewhere(x_display, b"something the person copied")
    wait_for_clearers_to_finish(x_display)
    assert clipboard(x_display) == b"something the person copied"


def test_copy_with_clear_after_zero_leaves_the_value(home, x_display):
    ok(run_cli(home, "copy", "Email", "--clear-after", "0", "--password-stdin", stdin=PW, env=x_env(x_display)))
    assert clearers(x_display) == []
    assert clipboard(x_display) == SECRET.encode()


def test_copy_through_the_daemon_needs_no_password(x_display):
    root = short_tmp()
    daemon = Daemon(root / "laptop", "--offline", mdns=False)
    try:
        daemon.init()
        daemon.start("--offline")
        daemon.unlock()
        daemon.ok("add", "Bank", "--field", f"password={SECRET}")
        result = run_cli(daemon.home, "copy", "Bank", "--clear-after", "1", env=x_env(x_display))  # no stdin
        assert ok(result).startswith("Copied the password of 'Bank'")
        assert clipboard(x_display) == SECRET.encode()
        wait_for_clearers_to_finish(x_display)
        assert clipboard(x_display) in (b"", None)
    finally:
        daemon.stop()
        shutil.rmtree(root, ignore_errors=True)
