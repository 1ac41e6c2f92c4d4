"""What README.md's "Using it" says of the daemon's network defaults is what `vaultpeer daemon`
does: listening on all interfaces at the default port, mDNS on, and the options that limit it."""

from pathlib import Path

from click.testing import CliRunner

from vaultpeer.cli.app import DEFAULT_IDLE_LOCK, cli
from vaultpeer.core.ports import DEFAULT_PORT

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_says_where_the_daemon_listens_and_announces_itself_and_how_to_limit_it():
    using_it = README.read_text().split("## Using it", 1)[1].split("\n## ", 1)[0]
    help_text = CliRunner().invoke(cli, ["daemon", "--help"], terminal_width=200).output
    assert f"all interfaces (`0.0.0.0:{DEFAULT_PORT}`)" in using_it
    assert f"[default: 0.0.0.0:{DEFAULT_PORT}]" in help_text
    assert "announces itself by\nmDNS on the LAN" in using_it
    for option in ("--listen 127.0.0.1", "--mdns-interface IP", "--no-mdns", "--peer HOST:PORT", "--idle-lock"):
        assert option in using_it, option
        assert option.split()[0] in help_text, option
    assert DEFAULT_IDLE_LOCK == 15 * 60 and "locks after 15 minutes without use" in using_it


def test_readme_gives_the_demos_and_the_suites_duration_on_a_busy_2_core_machine():
    text = README.read_text()
    assert "about 20 s" not in text
    assert "30-50 s on a busy 2-core machine" in text and "the test suite about 3.5 minutes" in text
