"""This device's identity on disk: key files (0600 in a 0700 directory) and its editable profile.

The keys are created on first use. They are not protected by the master password, on purpose: a
locked daemon must still authenticate to its peers to replicate ciphertext, exactly as Syncthing's
key.pem is read at boot. What a thief of these files can and cannot do is in docs/threat-model.md.
"""

import json
import os
import platform
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from vaultpeer.core.identity import DeviceKeys
from vaultpeer.core.text import MAX_TEXT, is_plain_text
from vaultpeer.home import Home

NOISE_KEY_FILE = "noise-x25519.key"
SIGNING_KEY_FILE = "signing-ed25519.key"
MAX_NAME_CHARS = MAX_TEXT


@dataclass(frozen=True)
class DeviceProfile:
    """How this device introduces itself to the person's other devices."""

    name: str
    os_description: str


def default_os_description() -> str:
    """E.g. ``Linux 6.1 (x86_64)``."""
    release = ".".join(platform.release().split("-")[0].split(".")[:2])
    described = f"{platform.system() or 'Unknown OS'} {release} ({platform.machine() or 'unknown'})"
    return _plain_or(described.replace("  ", " ")[:MAX_NAME_CHARS], "unknown")


def default_name() -> str:
    return _plain_or(platform.node().split(".")[0][:MAX_NAME_CHARS], "vaultpeer device")


def _plain_or(text: object, fallback: str) -> str:
    """``text`` if it may be a device name or OS description, else ``fallback``."""
    return text if is_plain_text(text) and text.strip() else fallback


def load_or_create_keys(home: Home) -> DeviceKeys:
    home.ensure()
    directory = home.identity_dir
    if not directory.exists():
        # Write both keys into a private temporary directory, then rename it into place: two
        # processes starting at once end up sharing whichever identity was renamed first.
        staging = Path(tempfile.mkdtemp(prefix=".identity-", dir=home.path))
        keys = DeviceKeys.generate()
        _write_private(staging / NOISE_KEY_FILE, keys.noise_private)
        _write_private(staging / SIGNING_KEY_FILE, keys.signing_seed)
        try:
            os.rename(staging, directory)
        except OSError:
            for name in (NOISE_KEY_FILE, SIGNING_KEY_FILE):
                (staging / name).unlink(missing_ok=True)
            staging.rmdir()
        fsync_directory(home.path)
    os.chmod(directory, 0o700)
    try:
        return DeviceKeys(
            (directory / NOISE_KEY_FILE).read_bytes(),
            (directory / SIGNING_KEY_FILE).read_bytes(),
        )
    except (OSError, ValueError) as exc:
        raise RuntimeError(f"the device key files in {directory} are unreadable or damaged") from exc


def load_profile(home: Home) -> DeviceProfile:
    """The saved profile; what is missing from it, or edited into something other devices would
    not accept (``save_profile``'s rule), is replaced by the default."""
    try:
        data = json.loads(home.device_file.read_text("utf-8"))
        if not isinstance(data, dict):
            raise ValueError("not a profile")
    except (OSError, ValueError):
        data = {}
    return DeviceProfile(name=_plain_or(data.get("name"), default_name()),
                         os_description=_plain_or(data.get("os_description"), default_os_description()))


def save_profile(home: Home, profile: DeviceProfile) -> None:
    for value in (profile.name, profile.os_description):
        if not is_plain_text(value, MAX_NAME_CHARS) or not value.strip():
            raise ValueError(f"a device name or OS description is 1-{MAX_NAME_CHARS} characters, not all spaces, "
                             "and holds no control or format character")
    home.ensure()
    data = json.dumps(asdict(profile), indent=2).encode("utf-8")
    staging = home.device_file.with_suffix(".json.tmp")
    _write_private(staging, data, exclusive=False)
    os.replace(staging, home.device_file)


def _write_private(path: Path, data: bytes, *, exclusive: bool = True) -> None:
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    fd = os.open(path, flags, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_directory(path: Path) -> None:
    """Make a rename or unlink in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
