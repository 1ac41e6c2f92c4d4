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
from vaultpeer.home import Home

NOISE_KEY_FILE = "noise-x25519.key"
SIGNING_KEY_FILE = "signing-ed25519.key"
MAX_NAME_CHARS = 64


@dataclass(frozen=True)
class DeviceProfile:
    """How this device introduces itself to the person's other devices."""

    name: str
    os_description: str


def default_os_description() -> str:
    """E.g. ``Linux 6.1 (x86_64)``."""
    release = ".".join(platform.release().split("-")[0].split(".")[:2])
    return f"{platform.system() or 'Unknown OS'} {release} ({platform.machine() or 'unknown'})".replace("  ", " ")


def default_name() -> str:
    return (platform.node().split(".")[0] or "vaultpeer device")[:MAX_NAME_CHARS]


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
    try:
        data = json.loads(home.device_file.read_text("utf-8"))
        return DeviceProfile(name=str(data["name"]), os_description=str(data["os_description"]))
    except (OSError, ValueError, KeyError, TypeError):
        return DeviceProfile(name=default_name(), os_description=default_os_description())


def save_profile(home: Home, profile: DeviceProfile) -> None:
    for value in (profile.name, profile.os_description):
        if not value.strip() or len(value) > MAX_NAME_CHARS or any(ch < " " for ch in value):
            raise ValueError(f"a device name or OS description is 1-{MAX_NAME_CHARS} printable characters")
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
