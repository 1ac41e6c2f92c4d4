"""Issue 17, secret references through the real CLI: `read`, `run` and `inject`, on a home directly
(the master password on stdin) and through a running daemon. Every reference resolves before
anything runs or is written; one that does not is an error naming it; the secret reaches only
the requested output (masked in `run`'s), never another file."""

import json
import os
import pty
import signal
import stat
import subprocess
import sys

import pytest

from helpers import PASSWORD, cli_env, edited_apart, run_cli

PW = PASSWORD + "\n"
SECRET = "s3cret-CANARY-7f2a9"
TOKEN = "tok-CANARY-55e1"
MASK = "<concealed by vaultpeer>"
#: Prints the secret of $DB_PASSWORD one byte a write, to stdout and to stderr, then exits $STATUS.
PRINTER = """
import os, sys
secret = os.environ["DB_PASSWORD"].encode()
for stream in (sys.stdout.buffer, sys.stderr.buffer):
    stream.write(b"password=")
    for byte in secret:
        stream.write(bytes([byte]))
        stream.flush()
    stream.write(b" plain=" + os.environ.get("PLAIN", "-").encode() + b"\\n")
    stream.flush()
sys.exit(int(os.environ.get("STATUS", "0")))
"""


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, (result.stdout, result.stderr)
    return result.stdout


def failed(result: subprocess.CompletedProcess, status: int, *named: str) -> None:
    """Exit ``status``, an error naming each of ``named``, and never the secret."""
    assert result.returncode == status, (result.stdout, result.stderr)
    for text in named:
        assert text in result.stderr, result.stderr
    assert SECRET not in result.stdout + result.stderr


def no_secret_outside(roots, *allowed) -> None:
    """No file under ``roots`` but ``allowed`` holds the secret (the vault's database, its WAL, the
    daemon's log, temporary files...)."""
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file() and not path.is_socket() and path not in allowed:
                data = path.read_bytes()
                assert SECRET.encode() not in data and TOKEN.encode() not in data, path


@pytest.fixture
def home(tmp_path):
    path = tmp_path / "laptop"
    ok(run_cli(path, "init", "--password-stdin", stdin=PW))
    ok(run_cli(path, "add", "My Bank", "--field", "username=alice", "--field", f"password={SECRET}",
               "--field", f"API Token={TOKEN}", "--password-stdin", stdin=PW))
    for title in ("Mail", "MAIL"):
        ok(run_cli(path, "add", title, "--field", "password=x", "--password-stdin", stdin=PW))
    return path


@pytest.fixture
def daemon(world):
    laptop = world("laptop")
    laptop.init(PASSWORD)
    laptop.start("--offline")
    laptop.unlock(PASSWORD)
    laptop.api("item.add", title="My Bank", fields={"username": "alice", "password": SECRET, "API Token": TOKEN})
    for title in ("Mail", "MAIL"):
        laptop.api("item.add", title=title, fields={"password": "x"})
    return laptop


# --- read --------------------------------------------------------------------------------------


def test_read_prints_the_value_without_a_newline_on_the_home_directly(home, tmp_path):
    assert ok(run_cli(home, "read", "vp://My%20Bank/password", "--password-stdin", stdin=PW)) == SECRET
    assert ok(run_cli(home, "read", "vp://my%20bank/api%20token", "--password-stdin", stdin=PW)) == TOKEN
    item_id = json.loads(ok(run_cli(home, "get", "My Bank", "--json", "--password-stdin", stdin=PW)))["id"]
    assert ok(run_cli(home, "read", f"vp://{item_id}/username", "--password-stdin", stdin=PW)) == "alice"

    failed(run_cli(home, "read", "vp://Nothing/password", "--password-stdin", stdin=PW), 4, "vp://Nothing/password")
    failed(run_cli(home, "read", "vp://My%20Bank/pin", "--password-stdin", stdin=PW), 4, "vp://My%20Bank/pin")
    ambiguous = run_cli(home, "read", "vp://mail/password", "--password-stdin", stdin=PW)
    failed(ambiguous, 5, "vp://mail/password")
    assert len([line for line in ambiguous.stderr.splitlines() if line.startswith("  ")]) == 2  # the candidates
    failed(run_cli(home, "read", "vp://My%20Bank", "--password-stdin", stdin=PW), 2, "vp://ITEM/FIELD")
    failed(run_cli(home, "read", "vp://vault/My%20Bank/password", "--password-stdin", stdin=PW), 2, "names a vault")
    failed(run_cli(home, "read", "vp://My%20Bank/password", "--password-stdin", stdin="wrong\n"), 3)
    no_secret_outside([tmp_path])


def test_read_adds_a_newline_on_a_terminal(home):
    controller, terminal = pty.openpty()
    try:
        result = subprocess.run([sys.executable, "-m", "vaultpeer", "--home", str(home), "read",
                                 "vp://My%20Bank/password", "--password-stdin"],
                                input=PW.encode(), stdout=terminal, stderr=subprocess.PIPE, env=cli_env(), timeout=60)
        assert result.returncode == 0, result.stderr
        os.close(terminal)
        terminal = None
        shown = b""
        while True:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # EIO: the terminal's other end is closed
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(controller)
        if terminal is not None:
            os.close(terminal)
    assert shown == SECRET.encode() + b"\r\n"  # the terminal turns the newline into CR LF


def test_read_through_the_daemon(daemon):
    assert daemon.ok("read", "vp://My%20Bank/password") == SECRET
    failed(daemon.cli("read", "vp://Nothing/password"), 4, "vp://Nothing/password")
    failed(daemon.cli("read", "vp://My%20Bank/pin"), 4, "vp://My%20Bank/pin")
    failed(daemon.cli("read", "vp://mail/password"), 5, "vp://mail/password")
    daemon.lock()
    failed(daemon.cli("read", "vp://My%20Bank/password"), 9, "vp://My%20Bank/password", "vaultpeer unlock")


def test_an_item_in_conflict_is_refused_naming_the_reference(tmp_path):
    from vaultpeer.service.home import Home

    laptop, desktop = Home(tmp_path / "laptop"), Home(tmp_path / "desktop")
    ok(run_cli(laptop.path, "init", "--password-stdin", stdin=PW))
    ok(run_cli(laptop.path, "add", "Email", "--field", "password=original", "--password-stdin", stdin=PW))
    edited_apart(laptop, desktop, "Email", "password", "from the laptop", "from the desktop")
    refused = run_cli(desktop.path, "read", "vp://Email/password", "--password-stdin", stdin=PW)
    assert refused.returncode == 8 and "vp://Email/password" in refused.stderr and refused.stdout == ""
    template = tmp_path / "t.txt"
    template.write_text("p={{ vp://Email/password }}\n")
    out = tmp_path / "out.txt"
    refused = run_cli(desktop.path, "inject", "-i", str(template), "-o", str(out), "--password-stdin", stdin=PW)
    assert refused.returncode == 8 and not out.exists()


# --- run ---------------------------------------------------------------------------------------


def run_env(tmp_path, **variables: str) -> dict[str, str]:
    """The CLI's environment with ``variables``, and its temporary files under ``tmp_path``."""
    (tmp_path / "tmp").mkdir(exist_ok=True)
    return cli_env(TMPDIR=str(tmp_path / "tmp"), **variables)


def test_run_masks_the_secret_in_both_streams_and_passes_the_exit_status(daemon, tmp_path):
    env = run_env(tmp_path, DB_PASSWORD="vp://My%20Bank/password", PLAIN="visible", STATUS="7")
    result = run_cli(daemon.home, "run", "--", sys.executable, "-c", PRINTER, env=env)
    assert result.returncode == 7, result.stderr
    assert result.stdout == f"password={MASK} plain=visible\n"
    assert f"password={MASK} plain=visible\n" in result.stderr
    assert SECRET not in result.stdout + result.stderr

    shown = run_cli(daemon.home, "run", "--no-masking", "--", sys.executable, "-c", PRINTER,
                    env=run_env(tmp_path, DB_PASSWORD="vp://My%20Bank/password"))
    assert shown.returncode == 0 and shown.stdout == f"password={SECRET} plain=-\n"

    killed = run_cli(daemon.home, "run", "--", sys.executable, "-c", "import os, signal; os.kill(os.getpid(), 9)",
                     env=env)
    assert killed.returncode == 128 + 9
    missing = run_cli(daemon.home, "run", "--", str(tmp_path / "no-such-command"), env=env)
    assert missing.returncode == 127 and "command not found" in missing.stderr
    no_secret_outside([tmp_path, daemon.home.parent])


def test_run_reads_an_env_file_and_the_environment(daemon, tmp_path):
    env_file = tmp_path / "app.env"
    env_file.write_text("# the database\nexport DB_PASSWORD='vp://My%20Bank/password'\n"
                        'PLAIN="from the file"  # a comment\nTOKEN=vp://my%20bank/API%20Token\n')
    code = "import os; print(os.environ['DB_PASSWORD'] == %r, os.environ['TOKEN'] == %r, os.environ['PLAIN'], " \
           "os.environ['OTHER'])" % (SECRET, TOKEN)
    result = run_cli(daemon.home, "run", "--env-file", str(env_file), "--", sys.executable, "-c", code,
                     env=run_env(tmp_path, PLAIN="from the environment", OTHER="vp://My%20Bank/username"))
    assert ok(result) == f"True True from the file {MASK}\n"  # every value a reference gave is masked

    env_file.write_text("BROKEN LINE with " + SECRET + "\n")
    broken = run_cli(daemon.home, "run", "--env-file", str(env_file), "--", "true", env=run_env(tmp_path))
    failed(broken, 2, "line 1")
    no_secret_outside([daemon.home.parent], env_file)


def test_run_runs_nothing_when_a_reference_does_not_resolve(daemon, tmp_path):
    marker = tmp_path / "ran"
    code = f"open({str(marker)!r}, 'w').close()"
    daemon.api("item.add", title="Binary", fields={"password": "ab\0cd"})  # no environment variable holds a NUL
    for reference, status in (("vp://Nothing/password", 4), ("vp://My%20Bank/pin", 4), ("vp://mail/password", 5),
                              ("vp://My%20Bank", 2), ("vp://Binary/password", 2)):
        result = run_cli(daemon.home, "run", "--", sys.executable, "-c", code,
                         env=run_env(tmp_path, DB_PASSWORD="vp://My%20Bank/password", OTHER=reference))
        failed(result, status, reference)
        assert not marker.exists()
    ok(run_cli(daemon.home, "run", "--", sys.executable, "-c", code, env=run_env(tmp_path)))
    assert marker.exists()  # the same command runs when everything resolves


def test_run_on_the_home_directly_passes_the_rest_of_stdin_on(home, tmp_path):
    code = "import os, sys; print(sys.stdin.read().upper(), os.environ['DB_PASSWORD'] == %r)" % SECRET
    result = run_cli(home, "run", "--password-stdin", "--", sys.executable, "-c", code,
                     stdin=PW + "for the command\n", env=run_env(tmp_path, DB_PASSWORD="vp://My%20Bank/password"))
    assert ok(result) == "FOR THE COMMAND\n True\n"
    wrong = run_cli(home, "run", "--password-stdin", "--", sys.executable, "-c", "print('ran')",
                    stdin="wrong\n", env=run_env(tmp_path, DB_PASSWORD="vp://My%20Bank/password"))
    assert wrong.returncode == 3 and "ran" not in wrong.stdout
    masked = run_cli(home, "run", "--password-stdin", "--", sys.executable, "-c", PRINTER,
                     stdin=PW, env=run_env(tmp_path, DB_PASSWORD="vp://My%20Bank/password"))
    assert ok(masked) == f"password={MASK} plain=-\n"
    no_secret_outside([tmp_path])


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_run_passes_signals_on_to_the_command(daemon, tmp_path, signum):
    code = ("import signal, sys, time\n"
            "def bye(n, frame):\n    print('got', n, flush=True)\n    sys.exit(40)\n"
            "signal.signal(signal.SIGTERM, bye)\nsignal.signal(signal.SIGINT, bye)\n"
            "print('ready', flush=True)\ntime.sleep(30)\n")
    process = subprocess.Popen(
        [sys.executable, "-m", "vaultpeer", "--home", str(daemon.home), "run", "--", sys.executable, "-c", code],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,  # no terminal
        env=run_env(tmp_path, DB_PASSWORD="vp://My%20Bank/password"))
    try:
        assert process.stdout.readline() == "ready\n"
        process.send_signal(signum)
        out, _ = process.communicate(timeout=30)
    finally:
        process.kill()
        process.wait()
    assert out == f"got {int(signum)}\n" and process.returncode == 40


# --- inject ------------------------------------------------------------------------------------


TEMPLATE = "user: {{ vp://My%20Bank/username }}\npassword: {{vp://My%20Bank/password}}\nagain: {{ vp://my%20bank/password }}\n"
FILLED = f"user: alice\npassword: {SECRET}\nagain: {SECRET}\n"


def test_inject_fills_a_template_from_stdin_or_a_file(daemon, tmp_path):
    env = run_env(tmp_path)
    assert ok(run_cli(daemon.home, "inject", stdin=TEMPLATE, env=env)) == FILLED
    template = tmp_path / "config.tpl"
    template.write_text(TEMPLATE)
    out = tmp_path / "config.yml"
    assert ok(run_cli(daemon.home, "inject", "-i", str(template), "-o", str(out), env=env)) == ""
    assert out.read_text() == FILLED and stat.S_IMODE(out.stat().st_mode) == 0o600

    out.write_text("old")
    refused = run_cli(daemon.home, "inject", "-i", str(template), "-o", str(out), env=env)
    failed(refused, 2, "--force")
    assert out.read_text() == "old"
    out.chmod(0o644)
    ok(run_cli(daemon.home, "inject", "-i", str(template), "-o", str(out), "--force", env=env))
    assert out.read_text() == FILLED and stat.S_IMODE(out.stat().st_mode) == 0o600
    no_secret_outside([tmp_path, daemon.home.parent], out)


def test_inject_writes_nothing_when_a_reference_does_not_resolve(daemon, tmp_path):
    out = tmp_path / "config.yml"
    for line, status in (("{{ vp://Nothing/password }}", 4), ("{{ vp://My%20Bank/pin }}", 4),
                         ("{{ vp://mail/password }}", 5), ("{{ vp://My Bank/password }}", 2)):
        result = run_cli(daemon.home, "inject", "-o", str(out), stdin=TEMPLATE + line + "\n", env=run_env(tmp_path))
        failed(result, status)
        assert not out.exists() and result.stdout == ""
    assert "vp://Nothing/password" in run_cli(daemon.home, "inject", stdin="{{ vp://Nothing/password }}").stderr


def test_inject_on_the_home_directly(home, tmp_path):
    template = tmp_path / "config.tpl"
    template.write_text(TEMPLATE)
    out = tmp_path / "config.yml"
    ok(run_cli(home, "inject", "-i", str(template), "-o", str(out), "--password-stdin", stdin=PW,
               env=run_env(tmp_path)))
    assert out.read_text() == FILLED and stat.S_IMODE(out.stat().st_mode) == 0o600
    both = run_cli(home, "inject", "--password-stdin", stdin=PW + TEMPLATE)
    failed(both, 2, "-i TEMPLATE")
    assert ok(run_cli(home, "inject", stdin="no references here\n")) == "no references here\n"  # no password
    no_secret_outside([tmp_path], out)


@pytest.mark.parametrize("command", ["read", "run", "inject"])
def test_help_explains(tmp_path, command):
    assert "vp://" in ok(run_cli(tmp_path / "h", command, "--help"))
