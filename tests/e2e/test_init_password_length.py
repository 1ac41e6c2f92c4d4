"""`init --password-stdin` and `passwd --password-stdin` judge the new master password's length as soon as
it is read: they fail at once, before any Argon2id work (seconds). (At the prompt: tests/test_init_prompt.py.)"""

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


def test_passwd_judges_the_new_password_before_any_derivation_and_changes_nothing(tmp_path):
    """The same for `passwd` (it asked for the confirmation, and derived the current password's
    key, first): a short new password fails at once, and the old one still opens the vault."""
    home = tmp_path / "home"
    password = "correct horse battery staple"
    assert run_cli(home, "init", "--password-stdin", stdin=password + "\n").returncode == 0
    result = run_cli(home, "passwd", "--password-stdin", stdin=f"{password}\nshort\n")
    assert result.returncode == 2
    assert error_lines(result.stderr) == ["error: a master password needs at least 8 characters"], result.stderr
    assert run_cli(home, "ls", "--password-stdin", stdin=password + "\n").returncode == 0
