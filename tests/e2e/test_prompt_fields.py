"""Issue 17: `add` and `edit --prompt FIELD` take a secret without putting it on the command line:
one stdin line per field without a terminal, a hidden prompt typed twice on one."""

import os
import pty
import select
import sys
import time

from helpers import cli_env, run_cli

PASSWORD = "correct horse battery staple"
PW = PASSWORD + "\n"


def ok(result) -> str:
    assert result.returncode == 0, (result.stdout, result.stderr)
    return result.stdout


def test_prompted_values_come_from_stdin_lines_in_order(tmp_path):
    home = tmp_path / "laptop"
    ok(run_cli(home, "init", "--password-stdin", stdin=PW))
    ok(run_cli(home, "add", "Email", "--field", "username=alice", "--prompt", "password", "--prompt", "pin",
               "--password-stdin", stdin=PW + "hunter2 with spaces\n1234\n"))
    item = __import__("json").loads(ok(run_cli(home, "get", "Email", "--json", "--password-stdin", stdin=PW)))
    assert item["fields"] == {"username": "alice", "password": "hunter2 with spaces", "pin": "1234"}
    ok(run_cli(home, "edit", "Email", "--prompt", "password", "--password-stdin", stdin=PW + "new one\n"))
    assert ok(run_cli(home, "get", "Email", "--field", "password", "--password-stdin", stdin=PW)) == "new one\n"

    short = run_cli(home, "add", "Other", "--prompt", "password", "--prompt", "pin", "--password-stdin",
                    stdin=PW + "only one\n")
    assert short.returncode != 0 and "value of pin" in short.stderr
    twice = run_cli(home, "add", "Other", "--field", "password=x", "--prompt", "password", "--password-stdin",
                    stdin=PW + "y\n")
    assert twice.returncode == 2 and "more than once" in twice.stderr
    both = run_cli(home, "add", "Other", "--generate", "password", "--prompt", "password", "--password-stdin",
                   stdin=PW + "y\n")
    assert both.returncode == 2
    assert "Other" not in ok(run_cli(home, "ls", "--password-stdin", stdin=PW))  # nothing was added


def test_through_the_daemon_the_master_password_line_is_still_first(world):
    laptop = world("laptop")
    laptop.init(PASSWORD)
    laptop.start("--offline")
    laptop.unlock(PASSWORD)
    laptop.ok("add", "Email", "--prompt", "password", stdin="email secret\n")  # the first line is the value
    assert laptop.json("get", "Email")["fields"] == {"password": "email secret"}
    laptop.ok("add", "Bank", "--prompt", "password", "--password-stdin", stdin=PW + "bank secret\n")
    assert laptop.json("get", "Bank")["fields"] == {"password": "bank secret"}


def test_a_terminal_gets_a_hidden_prompt_typed_twice(tmp_path):
    home = tmp_path / "laptop"
    ok(run_cli(home, "init", "--password-stdin", stdin=PW))
    pid, fd = pty.fork()
    if pid == 0:  # the child: the CLI on a terminal of its own
        os.execve(sys.executable, [sys.executable, "-m", "vaultpeer", "--home", str(home), "add", "Email",
                                   "--prompt", "password"], cli_env())
    seen = b""

    def answer_after(prompt: bytes, text: str) -> None:
        nonlocal seen
        deadline = time.monotonic() + 30
        while prompt not in seen:
            assert time.monotonic() < deadline, seen
            if select.select([fd], [], [], 0.5)[0]:
                seen += os.read(fd, 1024)
        seen = seen[seen.index(prompt) + len(prompt):]
        os.write(fd, text.encode() + b"\r")

    answer_after(b"Master password:", PASSWORD)
    answer_after(b"Value of password:", "typed secret")
    answer_after(b"Repeat for confirmation:", "typed secret")
    deadline = time.monotonic() + 30
    while True:
        assert time.monotonic() < deadline
        ready = select.select([fd], [], [], 0.5)[0]
        try:
            chunk = os.read(fd, 1024) if ready else b""
        except OSError:  # the child is gone and its terminal closed
            break
        seen += chunk
        if ready and not chunk:
            break
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, seen
    assert b"typed secret" not in seen  # not echoed
    assert ok(run_cli(home, "get", "Email", "--field", "password", "--password-stdin", stdin=PW)) == "typed secret\n"
