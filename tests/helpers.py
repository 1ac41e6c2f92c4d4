"""Helpers shared by the tests: the real CLI in a subprocess, with the loudly named test-only KDF."""

import os
import subprocess
import sys
from pathlib import Path

from vaultpeer.home import INSECURE_TEST_KDF_ENV, INSECURE_TEST_KDF_VALUE

PASSWORD = "correct horse battery"


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VAULTPEER_")}
    env[INSECURE_TEST_KDF_ENV] = INSECURE_TEST_KDF_VALUE
    env.update(extra)
    return env


def run_cli(home: Path, *args: str, stdin: str = "", env: dict[str, str] | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess:
    """The real `vaultpeer` CLI in its own process."""
    return subprocess.run(
        [sys.executable, "-m", "vaultpeer", "--home", str(home), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=cli_env() if env is None else env,
        timeout=timeout,
    )
