"""The link ``$XDG_RUNTIME_DIR/vaultpeer/<home hash>.sock`` -> ``<home>/run/api.sock`` a running daemon
keeps, so an app finds the socket without knowing the home's layout (docs/api.md, "Finding the
socket").

Only in a directory that is this user's alone: ``$XDG_RUNTIME_DIR`` must belong to this user and
give nothing to the group or others, and ``vaultpeer/`` in it is made (or must already be) 0700 and
this user's, never a symlink. Everything in it was then made by this user, so a stale link (of a
daemon that died) is replaced, atomically (a new link renamed over it: a rename replaces the link
itself and never follows it); anything in it that is not a symlink is left alone. On exit the link
is removed only if it still points to this daemon's socket. Any problem is logged and skipped: the
socket in the home works without the link.
"""

import logging
import os
import stat
from pathlib import Path

from vaultpeer.service.home import runtime_socket_link

log = logging.getLogger("vaultpeer.daemon")


def _private_directory(path: Path, *, create: bool) -> bool:
    """Whether ``path`` is a real directory of this user's that no one else may enter or write."""
    if create:
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        return False
    if create and stat.S_IMODE(info.st_mode) & 0o077:
        os.chmod(path, 0o700)  # ours (owner checked, not a symlink): tighten it
        info = os.lstat(path)
    return not stat.S_IMODE(info.st_mode) & 0o077


def link_socket(runtime: Path, home_path: Path, socket_path: Path) -> Path | None:
    """Make the link; returns its path, or None (logged) when it could not be made safely."""
    link = runtime_socket_link(home_path, runtime)
    try:
        if not _private_directory(runtime, create=False):
            log.warning("not linking the API socket under %s: it is not a directory of this user's alone", runtime)
            return None
        if not _private_directory(link.parent, create=True):
            log.warning("not linking the API socket under %s: it is not a directory of this user's alone",
                        link.parent)
            return None
        try:
            existing = os.lstat(link)
        except FileNotFoundError:
            existing = None
        if existing is not None and not stat.S_ISLNK(existing.st_mode):
            log.warning("not linking the API socket: %s exists and is not a link", link)
            return None
        temporary = link.with_name(f".{link.name}.{os.getpid()}")
        temporary.unlink(missing_ok=True)
        os.symlink(socket_path, temporary)
        os.replace(temporary, link)
        return link
    except OSError as exc:
        log.warning("could not link the API socket under %s: %s", runtime, exc.strerror or exc)
        return None


def unlink_socket(link: Path, socket_path: Path) -> None:
    """Remove the link if it still points to ``socket_path`` (another daemon may have taken it over)."""
    try:
        if os.readlink(link) == str(socket_path):
            link.unlink()
    except OSError:
        pass
