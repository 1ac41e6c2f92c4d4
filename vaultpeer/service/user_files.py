"""The files a person names on the command line: bounded reads, and writes that are private from
their first byte and never replace a file by accident (`export`, `join-request`, `bundle export`,
`inject -o`). Light on purpose: a CLI command through the daemon may import it.
"""

import errno
import os
import secrets as secrets_module
from pathlib import Path

from vaultpeer.core.errors import InvalidInput

#: The largest file `vaultpeer import` reads.
MAX_INPUT_BYTES = 256 * 1024 * 1024


def read_input_file(path: Path, limit: int = MAX_INPUT_BYTES) -> bytes:
    with open(path, "rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise InvalidInput(f"{path} is larger than {limit // (1024 * 1024)} MiB")
    return data


def decode_text(data: bytes, path: Path) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput(f"{path} is not UTF-8 text") from None


def check_writable(path: Path, overwrite: bool) -> None:
    """Fail before any password is asked: the target exists (without ``overwrite``), or it is a
    directory, or its directory does not exist."""
    if path.is_dir():
        raise InvalidInput(f"{path} is a directory")
    if path.exists() and not overwrite:
        raise InvalidInput(f"{path} exists: choose another name, or pass --force to replace it")
    if not path.parent.is_dir():
        raise InvalidInput(f"{path.parent} is not a directory")


def write_private_file(path: Path, data: bytes, overwrite: bool) -> None:
    """Write ``data`` to a file only its owner can read (mode 0600 from the first byte), there
    complete or not at all: the data goes to a private temporary file in the same directory, which
    then takes the name.

    Without ``overwrite``, an existing file is never touched: the name is taken with a hard link,
    which fails if it exists (no race either; where the file system has no hard links, the file is
    created with O_EXCL and written in place). With it, the temporary file replaces the target, so
    a failure leaves the old file as it was. Any failure is one clear InvalidInput.
    """
    try:
        _write_private_file(path, data, overwrite)
    except OSError as exc:
        raise InvalidInput(f"cannot write {path}: {exc.strerror or exc}") from None


def _exists(path: Path) -> InvalidInput:
    return InvalidInput(f"{path} exists: choose another name, or pass --force to replace it")


def _write_private_file(path: Path, data: bytes, overwrite: bool) -> None:
    if not overwrite and path.exists():
        raise _exists(path)
    temporary = path.with_name(f".{path.name}.{secrets_module.token_hex(4)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    _write_all(fd, temporary, data)
    try:
        if overwrite:
            os.replace(temporary, path)
            return
        try:
            os.link(temporary, path)
        except FileExistsError:
            raise _exists(path) from None
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK):
                raise
            _write_in_place(path, data)
    finally:
        temporary.unlink(missing_ok=True)


def _write_in_place(path: Path, data: bytes) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise _exists(path) from None
    _write_all(fd, path, data)


def _write_all(fd: int, path: Path, data: bytes) -> None:
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        path.unlink(missing_ok=True)
        raise
