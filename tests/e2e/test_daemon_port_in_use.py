"""A daemon told to listen on a port that is taken says so in one line and exits 1."""

import socket

from helpers import error_lines, run_cli


def test_a_listen_port_in_use_is_one_line_and_exit_1(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli(tmp_path / "home", "daemon", "--listen", f"127.0.0.1:{port}", "--no-mdns", timeout=60)
    assert result.returncode == 1, result.stderr
    lines = [line for line in error_lines(result.stderr)
             if not line.startswith(("vaultpeer daemon for", "local API on", "listening on"))]
    assert lines == [f"error: cannot listen on 127.0.0.1:{port}: port {port} is in use (another vaultpeer "
                     "daemon, or another program); choose another with --listen HOST:PORT"], result.stderr
    assert "Traceback" not in result.stderr
