"""`init --password-stdin` judges the master password's length as soon as it is read: it fails at
once, before the Argon2id calibration (seconds) starts. (At the prompt: tests/test_init_prompt.py.)"""

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
