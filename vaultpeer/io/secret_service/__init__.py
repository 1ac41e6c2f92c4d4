"""The daemon as a freedesktop Secret Service provider (org.freedesktop.secrets on the session
bus; docs/secret-service.md). ``bus`` holds the connection, ``objects`` the object tree and its
methods, ``interfaces`` the interface table; the mapping to vault items and the transfer sessions
are pure (``vaultpeer.core.secret_service``). This package's root imports no D-Bus library: the
daemon's options name it whether or not the Secret Service is on."""

from dataclasses import dataclass

#: How long a prompt waits for the person before it is dismissed.
DEFAULT_PROMPT_TIMEOUT = 120.0


@dataclass(frozen=True)
class SecretServiceOptions:
    #: Take org.freedesktop.secrets over from its current owner (if it allows that).
    replace: bool = False
    #: A command that asks the person for the master password and prints it (a prompt).
    prompt_command: str | None = None
    prompt_timeout: float = DEFAULT_PROMPT_TIMEOUT
    #: The bus to serve on (default: $DBUS_SESSION_BUS_ADDRESS).
    bus: str = "SESSION"
