"""`init` judges the master password's length as soon as it is typed: on a terminal it says so
and asks again before the confirmation; with --password-stdin it fails at once, before the
Argon2id calibration (seconds) starts."""

import os
import pty
import select
import subprocess
import sys
import time

from helpers import cli_env, error_lines, run_cli
from vaultpeer.service.home import INSECURE_TEST_KDF_ENV


def test_a_short_password_on_stdin_fails_before_calibrating(tmp_path):
    env = {k: v for k, v in cli_env().items() if k != INSECURE_TEST_KDF_ENV}  # a real calibration
    started = time.monotonic()
    result = run_cli(tmp_path / "home", "init", "--password-stdin", stdin="short\n", env=env)
    assert result.returncode == 2, result.stderr
    assert error_lines(result.stderr) == ["error: a master password needs at least 8 characters"], result.stderr
    assert "Calibrating" not in result.stderr
    assert time.monotonic() - started < 5


def _read_until(fd: int, text: str, seen: list[str], timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while text not in "".join(seen):
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            raise AssertionError(f"never saw {text!r} in {''.join(seen)!r}")
        try:
            seen.append(os.read(fd, 4096).decode(errors="replace"))
        except OSError:
            raise AssertionError(f"ended before {text!r}: {''.join(seen)!r}") from None
    return "".join(seen)


def test_a_short_password_at_the_prompt_is_refused_before_the_confirmation(tmp_path):
    master, terminal = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "vaultpeer", "--home", str(tmp_path / "home"), "init"],
                               stdin=terminal, stdout=terminal, stderr=terminal, env=cli_env(),
                               start_new_session=True)
    os.close(terminal)
    try:
        seen: list[str] = []
        _read_until(master, "Master password:", seen)
        os.write(master, b"short\n")
        after = _read_until(master, "at least 8 characters", seen)
        assert "Repeat for confirmation" not in after
        seen.clear()
        _read_until(master, "Master password:", seen)  # asked again
        os.write(master, b"long enough password\n")
        _read_until(master, "Repeat for confirmation:", seen)
        os.write(master, b"long enough password\n")
        _read_until(master, "Recovery key", seen)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        os.close(master)
