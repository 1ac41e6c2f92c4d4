"""`init` at a terminal: a master password that is too short is refused as soon as it is typed,
and asked again, before the confirmation (click's prompt driven in this process: the prompt reads
from the test's input, and stdin says it is a terminal)."""

import sys

from click.testing import CliRunner

import vaultpeer.cli.app as app
from vaultpeer.service.home import INSECURE_TEST_KDF_ENV, INSECURE_TEST_KDF_VALUE


class _Terminal:
    """The stream the command reads, claiming to be a terminal."""

    def __init__(self, stream):
        self._stream = stream

    def isatty(self) -> bool:
        return True

    def __getattr__(self, name):
        return getattr(self._stream, name)


class _SysOnATerminal:
    def __getattr__(self, name):
        value = getattr(sys, name)
        return _Terminal(value) if name == "stdin" else value


def test_a_short_password_at_the_prompt_is_refused_and_asked_again_before_the_confirmation(monkeypatch, tmp_path):
    monkeypatch.setattr(app, "sys", _SysOnATerminal())
    result = CliRunner(env={INSECURE_TEST_KDF_ENV: INSECURE_TEST_KDF_VALUE}).invoke(
        app.cli, ["--home", str(tmp_path / "home"), "init"],
        input="short\nlong enough password\nlong enough password\n")
    assert result.exit_code == 0, result.output
    output = result.output
    refused = output.index("Error: a master password needs at least 8 characters")
    assert "Repeat for confirmation" not in output[:refused]
    assert output.count("Master password:") == 2 and output.count("Repeat for confirmation:") == 1
    assert "Recovery key" in output


def test_passwd_refuses_a_short_new_password_at_the_prompt_before_the_confirmation(monkeypatch, tmp_path):
    monkeypatch.setattr(app, "sys", _SysOnATerminal())
    runner = CliRunner(env={INSECURE_TEST_KDF_ENV: INSECURE_TEST_KDF_VALUE})
    home = ["--home", str(tmp_path / "home")]
    assert runner.invoke(app.cli, [*home, "init"], input="first password\nfirst password\n").exit_code == 0
    result = runner.invoke(app.cli, [*home, "passwd"],
                           input="first password\nshort\nsecond password\nsecond password\n")
    assert result.exit_code == 0, result.output
    output = result.output
    refused = output.index("Error: a master password needs at least 8 characters")
    assert "Repeat for confirmation" not in output[:refused]
    assert output.count("New master password:") == 2 and "Master password changed" in output
