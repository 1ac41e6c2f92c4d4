"""Where a device keeps everything: its home directory, and the switches read from the environment.

``--home DIR`` beats ``$VAULTPEER_HOME``, which beats the platform's user data directory. Every
file of a device lives under its home, so several devices can run side by side on one machine.
"""

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path


HOME_ENV = "VAULTPEER_HOME"
#: Where a client finds the daemon's socket when no home is named (docs/api.md, "Finding the socket").
SOCKET_ENV = "VAULTPEER_SOCKET"
RUNTIME_DIR_ENV = "XDG_RUNTIME_DIR"

#: The one switch that allows trivially cheap Argon2id parameters. It exists so the test suite can
#: create hundreds of vaults in seconds. It must be set to exactly this value to take effect, every
#: command run with it prints a warning, and a vault created with it refuses to open without it.
INSECURE_TEST_KDF_ENV = "VAULTPEER_INSECURE_TEST_KDF"
INSECURE_TEST_KDF_VALUE = "i-understand-this-vault-is-not-protected"


def insecure_test_kdf_enabled(environ: dict[str, str] | None = None) -> bool:
    environ = os.environ if environ is None else environ
    return environ.get(INSECURE_TEST_KDF_ENV) == INSECURE_TEST_KDF_VALUE


def resolve_home(option: str | os.PathLike | None, environ: dict[str, str] | None = None) -> Path:
    environ = os.environ if environ is None else environ
    if option:
        return Path(option).expanduser().absolute()
    if environ.get(HOME_ENV):
        return Path(environ[HOME_ENV]).expanduser().absolute()
    import platformdirs  # only here: with --home or VAULTPEER_HOME set, a command never loads it

    return Path(platformdirs.user_data_dir("vaultpeer", appauthor=False))


def home_hash(path: Path) -> str:
    """The first 16 hex characters of the SHA-256 of the home's real path (absolute, symlinks
    resolved, as the file system's bytes): how the home's socket link is named."""
    return hashlib.sha256(os.fsencode(os.path.realpath(path))).hexdigest()[:16]


def runtime_dir(environ: dict[str, str] | None = None) -> Path | None:
    """``$XDG_RUNTIME_DIR`` if it is set to an absolute path."""
    environ = os.environ if environ is None else environ
    value = environ.get(RUNTIME_DIR_ENV, "")
    return Path(value) if value and os.path.isabs(value) else None


def runtime_socket_link(home_path: Path, runtime: Path) -> Path:
    """``$XDG_RUNTIME_DIR/vaultpeer/<home hash>.sock``: the link a running daemon keeps to its socket."""
    return runtime / "vaultpeer" / f"{home_hash(home_path)}.sock"


@dataclass(frozen=True)
class Home:
    path: Path

    @property
    def database(self) -> Path:
        return self.path / "vault.sqlite3"

    @property
    def identity_dir(self) -> Path:
        return self.path / "identity"

    @property
    def device_file(self) -> Path:
        return self.path / "device.json"

    @property
    def rename_pending_file(self) -> Path:
        """There while a change of device.json is still to be signed for the other devices (the
        vault was locked): the next unlock signs it."""
        return self.path / "device.json.pending"

    @property
    def socket_path(self) -> Path:
        """The daemon's local API socket (the one place this path is spelled)."""
        return self.path / "run" / "api.sock"

    @property
    def apps_file(self) -> Path:
        """The apps the daemon approved (issue 18): names, scopes and SHA-256 of their tokens, 0600."""
        return self.path / "apps.json"

    @property
    def cli_token_file(self) -> Path:
        """The command line's own app token (admin scope), 0600: written by the daemon at start,
        sent by the CLI on each connection (what `daemon --require-app-tokens` needs)."""
        return self.path / "cli.token"

    def ensure(self) -> "Home":
        """Create the home (0700), or tighten an existing one to 0700."""
        self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.path, 0o700)
        return self

    def exists(self) -> bool:
        return self.path.is_dir()
