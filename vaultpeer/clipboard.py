"""The system clipboard, through the platform's own tools, and clearing it after a while.

Backends, the first that fits: Wayland ``wl-copy``/``wl-paste`` (with ``WAYLAND_DISPLAY``), X11
``xclip`` or ``xsel`` (with ``DISPLAY``), macOS ``pbcopy``/``pbpaste``. A value always reaches a
tool through its stdin, never through argv or the environment (which other local users can read
in ``ps``/``/proc``), and no tool's output is ever shown (it could echo the value).

Clearing (``vaultpeer copy``): the command returns at once, and a small detached process
(``python -m vaultpeer.clipboard clear``, in its own session, stdio closed, cwd ``/``) receives the
copied value on its stdin, sleeps, reads the clipboard, and empties it only if it still holds that
exact value (compared with ``hmac.compare_digest``): something the person copied meanwhile is left
alone. Chosen over a command that stays in the foreground with a countdown because it behaves the
same from a terminal, a script or a launcher, and the shell is free at once.
"""

import hmac
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import click

from vaultpeer.core.errors import VaultpeerError

#: How long one clipboard tool may take (it only talks to the local display server).
TOOL_TIMEOUT = 10.0
DEFAULT_CLEAR_AFTER = 45
MAX_CLEAR_AFTER = 86_400


class NoClipboard(VaultpeerError):
    """No usable clipboard: no graphical session, no clipboard tool, or the tool failed."""

    code = "no_clipboard"


@dataclass(frozen=True)
class Backend:
    name: str
    copy_command: tuple[str, ...]   # reads the value on stdin
    paste_command: tuple[str, ...]  # prints the clipboard's text
    clear_command: tuple[str, ...]  # empties the clipboard (stdin: nothing)

    def copy(self, value: str) -> None:
        self._run(self.copy_command, value.encode())

    def clear(self) -> None:
        self._run(self.clear_command, b"")

    def paste(self) -> bytes | None:
        """The clipboard's text, or None when it holds no text (or cannot be read)."""
        try:
            result = subprocess.run(self.paste_command, stdin=subprocess.DEVNULL, capture_output=True,
                                    timeout=TOOL_TIMEOUT)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return result.stdout if result.returncode == 0 else None

    def _run(self, command: tuple[str, ...], data: bytes) -> None:
        # The copy tools fork a child that keeps serving the selection and inherits stdout/stderr:
        # a pipe there would never reach EOF, so stdout goes nowhere and stderr to a file.
        with tempfile.TemporaryFile() as errors:
            try:
                result = subprocess.run(command, input=data, stdout=subprocess.DEVNULL, stderr=errors,
                                        timeout=TOOL_TIMEOUT)
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise NoClipboard(f"{command[0]} did not work ({type(exc).__name__})") from None
            if result.returncode != 0:
                errors.seek(0)
                detail = errors.read(300).decode(errors="replace").strip().splitlines()
                raise NoClipboard(f"{command[0]} failed (exit {result.returncode})"
                                  + (f": {detail[0]}" if detail else ""))


BACKENDS = {
    "wayland": Backend("wayland", ("wl-copy", "--type", "text/plain"),
                       ("wl-paste", "--type", "text/plain", "--no-newline"), ("wl-copy", "--clear")),
    "xclip": Backend("xclip", ("xclip", "-selection", "clipboard", "-in"),
                     ("xclip", "-selection", "clipboard", "-out"), ("xclip", "-selection", "clipboard", "-in")),
    "xsel": Backend("xsel", ("xsel", "--clipboard", "--input"), ("xsel", "--clipboard", "--output"),
                    ("xsel", "--clipboard", "--clear")),
    "macos": Backend("macos", ("pbcopy",), ("pbpaste",), ("pbcopy",)),
}

_HINT = "`vaultpeer get ITEM --field NAME` prints the value instead"


def detect(environ: Mapping[str, str] | None = None, which: Callable[[str], str | None] = shutil.which,
           platform: str = sys.platform) -> Backend:
    """The clipboard of this session, or NoClipboard with a one-line reason and a hint."""
    environ = os.environ if environ is None else environ
    if platform == "darwin":
        if which("pbcopy") and which("pbpaste"):
            return BACKENDS["macos"]
        raise NoClipboard(f"pbcopy/pbpaste not found; {_HINT}")
    wayland, x11 = bool(environ.get("WAYLAND_DISPLAY")), bool(environ.get("DISPLAY"))
    if wayland and which("wl-copy") and which("wl-paste"):
        return BACKENDS["wayland"]
    if x11:
        for name in ("xclip", "xsel"):
            if which(name):
                return BACKENDS[name]
    if not wayland and not x11:
        raise NoClipboard(f"no clipboard: this is not a graphical session (neither WAYLAND_DISPLAY nor DISPLAY "
                          f"is set); {_HINT}")
    wanted = "wl-clipboard (wl-copy)" if wayland else "xclip or xsel"
    raise NoClipboard(f"no clipboard tool found: install {wanted}; or {_HINT}")


def clear_later(backend: Backend, value: str, after: float) -> None:
    """Start the detached clearer and hand it the value through a pipe; returns at once."""
    process = subprocess.Popen(
        [sys.executable, "-m", "vaultpeer.clipboard", "clear", "--backend", backend.name, "--after", str(after)],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        cwd="/", start_new_session=True, close_fds=True,
    )
    try:
        process.stdin.write(value.encode())
        process.stdin.close()
    except OSError:
        process.kill()
        raise


def clear_if_unchanged(backend: Backend, expected: bytes) -> bool:
    """Empty the clipboard if it holds exactly ``expected``; True if it did."""
    current = backend.paste()
    if current is None or not hmac.compare_digest(current, expected):
        return False
    backend.clear()
    return True


@click.group(hidden=True)
def main() -> None:
    """Internal: run by `vaultpeer copy`."""


@main.command()
@click.option("--backend", "backend_name", type=click.Choice(sorted(BACKENDS)), required=True,
              help="The clipboard tools `copy` used.")
@click.option("--after", type=click.FloatRange(0, MAX_CLEAR_AFTER), required=True, metavar="SECONDS",
              help="How long to wait before clearing.")
def clear(backend_name: str, after: float) -> None:
    """Read the copied value from stdin, wait AFTER seconds, clear the clipboard if it still holds it."""
    expected = sys.stdin.buffer.read()
    sys.stdin.close()
    time.sleep(after)
    try:
        clear_if_unchanged(BACKENDS[backend_name], expected)
    except NoClipboard:
        sys.exit(1)


if __name__ == "__main__":
    main(prog_name="python -m vaultpeer.clipboard")
