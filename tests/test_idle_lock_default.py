"""`vaultpeer daemon` locks after 15 minutes without use unless told otherwise: the options the
command line gives the daemon (its run replaced, so nothing listens), and its --help."""

import pytest
import trio
from click.testing import CliRunner

import vaultpeer.io.daemon as daemon_module
from vaultpeer.cli.app import cli


@pytest.fixture
def daemon_options(monkeypatch, tmp_path):
    """The DaemonOptions each `vaultpeer daemon ARGS` run would start a daemon with."""
    seen = []

    class Recorder:
        def __init__(self, home, options, **_):
            seen.append(options)

    monkeypatch.setattr(daemon_module, "Daemon", Recorder)
    monkeypatch.setattr(trio, "run", lambda *args, **kwargs: None)

    def options(*args: str):
        result = CliRunner().invoke(cli, ["--home", str(tmp_path / "home"), "daemon", "--offline", *args])
        assert result.exit_code == 0, result.output
        return seen[-1]

    return options


def test_the_daemon_locks_after_15_minutes_without_use_by_default_and_0_turns_it_off(daemon_options):
    assert daemon_options().idle_lock == 900
    assert daemon_options("--idle-lock", "60").idle_lock == 60
    assert daemon_options("--idle-lock", "0").idle_lock is None  # never


def test_the_help_says_so():
    shown = CliRunner().invoke(cli, ["daemon", "--help"], terminal_width=200).output
    assert "--idle-lock SECONDS" in shown and "(0: never)" in shown and "[default: 900" in shown, shown
