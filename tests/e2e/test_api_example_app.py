"""docs/api.md's example app, run as written against a real daemon: it registers and waits, the
person approves it through the CLI, it finds a login by URL, and it follows the changes across a
daemon restart (the edit made while the daemon was down comes as a replayed change)."""

import queue
import re
import subprocess
import sys
import threading
from pathlib import Path

from helpers import PASSWORD, cli_env

DOCS = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def example_code() -> str:
    text = DOCS.read_text()
    found = re.search(r"<!-- example-app -->\n```python\n(.*?)\n```", text, re.S)
    assert found, "docs/api.md has no example app block"
    return found[1]


class Lines:
    """The lines a process prints, read by a thread, each awaited with a timeout."""

    def __init__(self, process: subprocess.Popen):
        self.queue: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, args=(process.stdout,), daemon=True).start()

    def _read(self, stream) -> None:
        for line in stream:
            self.queue.put(line.rstrip("\n"))

    def next(self, timeout: float = 20) -> str:
        return self.queue.get(timeout=timeout)


def test_the_example_app_registers_finds_a_login_by_url_and_follows_changes_across_a_restart(world, tmp_path):
    laptop = world("laptop")
    laptop.init()
    laptop.start()
    laptop.unlock()
    github = laptop.add("GitHub", url="https://github.com", username="alice", password="s3cret")
    laptop.add("Bank", url="https://bank.example", username="bob", password="x")
    script = tmp_path / "app.py"
    script.write_text(example_code())
    token_file = tmp_path / "token"
    app = subprocess.Popen([sys.executable, str(script), str(token_file), "https://github.com/login"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env=cli_env(VAULTPEER_SOCKET=str(laptop.socket_path)))
    try:
        lines = Lines(app)
        # the person sees the request and approves it
        for _ in range(100):
            waiting = [a for a in laptop.json("apps") if a["state"] == "pending"]
            if waiting:
                break
            threading.Event().wait(0.1)
        assert [a["name"] for a in waiting] == ["browser-host"], app.stderr
        laptop.ok("apps", "approve", "browser-host", "--yes")
        assert lines.next() == "login GitHub alice"
        assert lines.next() == "reset"
        assert token_file.stat().st_mode & 0o777 == 0o600
        laptop.edit("GitHub", username="alice2")
        assert lines.next() == f"change updated {github['id']}"
        # the daemon stops; an edit is made without it; it starts again: the app hears of the edit
        laptop.stop()
        laptop.ok("edit", "GitHub", "--field", "username=alice3", "--password-stdin", stdin=PASSWORD + "\n")
        laptop.start()
        try:
            replayed = lines.next(timeout=30)
        except queue.Empty:
            app.kill()
            raise AssertionError(f"no replayed change; the app said: {app.stderr.read()}\n{laptop.log_tail()}")
        assert replayed == f"change updated {github['id']}"
        assert app.poll() is None  # still following
    finally:
        app.kill()
        app.wait(5)
