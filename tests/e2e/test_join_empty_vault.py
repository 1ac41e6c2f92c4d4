"""`pair --join` on a terminal, into a vault with no item: it says at once that there was nothing
to receive, instead of a "Receiving the vault 0/?" bar that waits 15 s and ends without a word."""

import os
import pty
import queue
import subprocess
import sys
import threading
import time

from daemons import Interactive, answer_pairing, ready_to_pair
from helpers import cli_env


class JoinOnATerminal(Interactive):
    """`pair --join` with its stderr on a pseudo-terminal (so it shows the progress bar)."""

    def __init__(self, home, *args: str):
        master, slave = pty.openpty()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "vaultpeer", "--home", str(home), *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=slave, text=True, env=cli_env(),
        )
        os.close(slave)
        self.terminal: list[bytes] = []
        self.lines: queue.Queue = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_terminal, args=(master,), daemon=True).start()

    def _read_terminal(self, master: int) -> None:
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:
                return
            if not data:
                return
            self.terminal.append(data)

    def stderr(self) -> str:
        return b"".join(self.terminal).decode(errors="replace")


def test_joining_an_empty_vault_on_a_terminal_says_so_at_once(world):
    laptop, desktop = ready_to_pair(world, "--no-mdns")
    invite = Interactive(laptop.home, "pair", "--timeout", "60")
    time.sleep(0.3)
    join = JoinOnATerminal(desktop.home, "pair", "--join", laptop.address, "--timeout", "60")
    invite.wait_for("Verification code:")
    join.wait_for("Verification code:")
    answer_pairing(invite, join)
    assert invite.finish() == 0
    join.wait_for("Paired with")
    answered = time.monotonic()
    assert join.finish(timeout=30) == 0
    took = time.monotonic() - answered
    time.sleep(0.2)  # the last of the terminal's output
    assert "Done: nothing to receive (the vault is empty" in join.stderr(), join.stderr()
    assert took < 10, f"took {took:.1f} s after pairing; terminal: {join.stderr()}"
