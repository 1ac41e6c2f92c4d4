"""This device's identity on disk: key files (0600 in a 0700 directory) and its editable profile.

The keys are created on first use, in ``identity/``:

* ``noise-x25519.key``: the Noise static key, in clear on purpose: a locked daemon must still
  authenticate to its peers to replicate ciphertext, exactly as Syncthing's key.pem is read at boot.
* ``signing-ed25519.key``: the Ed25519 signing seed in clear, only until the device holds a vault
  and its keyring (a new device, one about to join, one writing a join request). From then on
  (``init``, the first unlock after joining, a restore, a password change proven with the old
  one) it is ``signing-ed25519.sealed``, sealed under the vault's keys
  (:mod:`vaultpeer.core.signing_seal`), with ``signing-ed25519.pub`` beside it so a locked
  device still knows its device id. The clear file is then removed. So a copied home without the
  master password signs nothing the other members accept.
* ``audit-ed25519.key``: the key of this device's own audit log, in clear, so a locked device can
  still record what happens to it (:class:`vaultpeer.core.audit.AuditKey`).

What a thief of these files can and cannot do is in docs/threat-model.md.
"""

import json
import os
import platform
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from vaultpeer.core.audit import AuditKey
from vaultpeer.core.errors import VaultpeerError
from vaultpeer.core.identity import DeviceKeys
from vaultpeer.core.keys import Keyring
from vaultpeer.core.signing_seal import open_signing_seed, seal_signing_seed, sealed_epoch
from vaultpeer.core.text import MAX_TEXT, is_plain_text
from vaultpeer.service.home import Home

NOISE_KEY_FILE = "noise-x25519.key"
SIGNING_KEY_FILE = "signing-ed25519.key"
SEALED_SIGNING_KEY_FILE = "signing-ed25519.sealed"
SIGNING_PUBLIC_FILE = "signing-ed25519.pub"
AUDIT_KEY_FILE = "audit-ed25519.key"
MAX_NAME_CHARS = MAX_TEXT

#: The two states of the signing key on disk, as `status` shows them.
SEALED = "sealed"
IN_THE_CLEAR = "in the clear"


class DeviceKeyFileError(VaultpeerError):
    """A key file of this device is missing, unreadable or damaged (the message names it)."""

    code = "device_keys"


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
    """This device's keys: the full keys while the signing seed is in clear (a new device), the
    public-only form once it is sealed (``secure_signing_key`` gives the full keys back)."""
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
    return _load_keys(directory)


def _load_keys(directory: Path) -> DeviceKeys:
    """The full keys while the seed is in clear, else the public-only form (the seed is sealed)."""
    noise_private = _read_key_file(directory / NOISE_KEY_FILE)
    seed = _read_key_file(directory / SIGNING_KEY_FILE, missing_ok=True)
    try:
        if seed is not None:
            return DeviceKeys(noise_private, seed)
        return DeviceKeys.public_only(noise_private, _read_key_file(directory / SIGNING_PUBLIC_FILE))
    except ValueError:
        raise DeviceKeyFileError(f"the device key files in {directory} are damaged") from None


def _read_key_file(path: Path, *, missing_ok: bool = False) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        if missing_ok:
            return None
        raise DeviceKeyFileError(f"this device's key file {path} is missing") from None
    except OSError as exc:
        raise DeviceKeyFileError(f"this device's key file {path} is unreadable: {exc.strerror or exc}") from None


def signing_key_state(home: Home) -> str:
    """``SEALED`` or ``IN_THE_CLEAR``: whether a copy of this home could sign without the password."""
    return IN_THE_CLEAR if (home.identity_dir / SIGNING_KEY_FILE).exists() else SEALED


def secure_signing_key(home: Home, keys: DeviceKeys, keyring: Keyring) -> DeviceKeys:
    """This device's full keys, with the signing seed opened by ``keyring`` (the vault's keys).

    A seed still in clear is sealed under the keyring's newest epoch first, and its clear file
    removed (written and fsynced before the unlink, so a crash leaves one form or both, never
    none). A seed sealed under an older epoch is sealed again under the newest. A sealed file that
    does not open is one IntegrityError; a missing one is named.
    """
    directory = home.identity_dir
    clear = directory / SIGNING_KEY_FILE
    seed = _read_key_file(clear, missing_ok=True)
    if seed is not None:
        full = keys.with_signing_seed(seed)
        _write_sealed(directory, full, keyring)
        clear.unlink(missing_ok=True)
        fsync_directory(directory)
        return full
    sealed = _read_key_file(directory / SEALED_SIGNING_KEY_FILE)
    full = keys.with_signing_seed(open_signing_seed(sealed, keyring, keys.device_id))
    if sealed_epoch(sealed) < keyring.current_epoch:
        _write_sealed(directory, full, keyring)
    return full


def _write_sealed(directory: Path, keys: DeviceKeys, keyring: Keyring) -> None:
    _replace_private(directory / SIGNING_PUBLIC_FILE, keys.public.signing_public)
    _replace_private(directory / SEALED_SIGNING_KEY_FILE, seal_signing_seed(keys.signing_seed, keyring, keys.device_id))
    fsync_directory(directory)


def load_or_create_audit_key(home: Home) -> AuditKey:
    """The key that signs this device's audit log entries, created on first use (after the
    device's identity, in the same directory)."""
    path = home.identity_dir / AUDIT_KEY_FILE
    if not path.exists():
        temp = _write_temporary(path, AuditKey.generate().seed)
        try:
            os.link(temp, path)  # never replaces one another process wrote meanwhile
        except FileExistsError:
            pass
        except OSError:
            if not path.exists():  # a filesystem without hard links
                os.rename(temp, path)
        finally:
            temp.unlink(missing_ok=True)
        fsync_directory(path.parent)
    try:
        return AuditKey(_read_key_file(path))
    except ValueError:
        raise DeviceKeyFileError(f"this device's key file {path} is damaged") from None


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
    _replace_private(home.device_file, json.dumps(asdict(profile), indent=2).encode("utf-8"))


def _replace_private(path: Path, data: bytes) -> None:
    """Write ``path`` (0600) all at once: a temporary file, fsynced, renamed over it. The caller
    fsyncs the directory when the rename must be durable."""
    os.replace(_write_temporary(path, data), path)


def _write_temporary(path: Path, data: bytes) -> Path:
    """A new 0600 file beside ``path`` holding ``data``, fsynced (unique: processes may race)."""
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(name)
        raise
    os.close(fd)
    return Path(name)


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
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
