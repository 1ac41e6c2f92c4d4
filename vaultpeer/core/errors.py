"""Every error the pure core raises.

Messages never contain secrets, item content or hints about which integrity check failed: like
pyca's Fernet ``InvalidToken``, one :class:`IntegrityError` covers a bad signature, a bad MAC, a
record moved to another item and a malformed encoding alike.
"""


class VaultpeerError(Exception):
    """Base of every error vaultpeer reports to a person or a peer."""

    #: A stable, machine-readable name (the local API will expose it as an error code).
    code = "error"


class IntegrityError(VaultpeerError):
    """Data failed verification. Deliberately says nothing about which check failed."""

    code = "integrity"

    def __init__(self, message: str = "integrity check failed: the data was altered or is not from this vault"):
        super().__init__(message)


class WrongPassword(VaultpeerError):
    code = "wrong_password"

    def __init__(self, message: str = "wrong password"):
        super().__init__(message)


class WrongRecoveryKey(VaultpeerError):
    code = "wrong_recovery_key"

    def __init__(self, message: str = "wrong recovery key"):
        super().__init__(message)


class InvalidInput(VaultpeerError):
    """A value given by the local user (not a peer) is malformed; the message says how."""

    code = "invalid_params"


class NotFound(VaultpeerError):
    code = "not_found"


class Ambiguous(VaultpeerError):
    """A name matches several items; ``candidates`` lists them to choose from, each
    ``{"id", "title"}`` and, where the vault adds them, ``"username"`` and ``"folder"``."""

    code = "ambiguous"

    def __init__(self, message: str, candidates: list[dict]):
        super().__init__(message)
        self.candidates = candidates


class WeakKdfParameters(VaultpeerError):
    """KDF parameters below the floor, outside the loudly named test mode."""

    code = "weak_kdf"


class VaultLocked(VaultpeerError):
    code = "locked"

    def __init__(self, message: str = "the vault is locked: unlock it first"):
        super().__init__(message)


class SigningKeyLocked(VaultLocked):
    """This device's signing key is sealed under the vault's keys and the vault is locked, so
    nothing can be signed (a revision, a roster entry, a header, a bundle). The code stays
    ``locked``: the remedy is the same, unlock."""

    def __init__(self, message: str = "unlock the vault first: this device's signing key is sealed by the "
                                      "vault's keys"):
        super().__init__(message)


class NoVault(VaultpeerError):
    code = "no_vault"

    def __init__(self, message: str = "this device has no vault yet: run `vaultpeer init` (or join one)"):
        super().__init__(message)


class AlreadyInitialized(VaultpeerError):
    code = "already_initialized"

    def __init__(self, message: str = "this device already has a vault"):
        super().__init__(message)


class RateLimited(VaultpeerError):
    """Too many attempts (e.g. wrong master passwords): the next one must wait ``retry_after``
    whole seconds."""

    code = "rate_limited"

    def __init__(self, message: str, retry_after: int = 1):
        super().__init__(message)
        self.retry_after = retry_after


class Forbidden(VaultpeerError):
    """Not allowed on this connection (issue 18, app tokens). ``reason`` says why, for scripts:
    ``token`` (no valid app token where one is needed; the same for a wrong, malformed, unknown or
    revoked token) or ``scope`` (the token's scopes do not take in this method or item)."""

    code = "forbidden"

    def __init__(self, message: str, reason: str = "scope"):
        super().__init__(message)
        self.reason = reason
