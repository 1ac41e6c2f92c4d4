"""The local socket API's shared schema: method names, error codes, the error object.

JSON-RPC 2.0 over a Unix domain socket, one JSON object per line in each direction (docs/api.md).
Application errors carry a stable numeric code and, in ``data.name``, the stable name of the
vaultpeer error, so scripts can match either. A message never holds a secret or a traceback.
"""

from vaultpeer.core.errors import Ambiguous, Forbidden, RateLimited, VaultpeerError
# How long a person has to compare the codes and answer once they are shown: pair.confirm answers
# within CONFIRM_TIMEOUT and CONFIRM_FINISH seconds more (the other's answer, the roster exchange).
from vaultpeer.core.pairing_limits import CONFIRM_FINISH, CONFIRM_TIMEOUT  # noqa: F401

#: The version of this API's methods and shapes (docs/api.md, "Versions"): raised with every
#: change to a method, a parameter, a result or an event.
API_VERSION = 3

METHODS = (
    "api.info", "status", "unlock", "lock", "passwd", "vault.init", "vault.check", "device.rename",
    "audit.log", "audit.verify",
    "item.list", "item.get", "item.search", "item.otp", "item.add", "item.edit", "item.delete", "item.history", "item.restore",
    "item.import", "item.export",
    "conflict.list", "conflict.resolve", "generate",
    "peer.list", "peer.remove", "pair.invite", "pair.join", "pair.confirm", "pair.cancel",
    "sync.now", "events.subscribe", "backup.seal",
    "device.admit", "bundle.export", "bundle.inspect", "bundle.import",
    "auth", "app.register", "app.wait", "app.list", "app.approve", "app.deny", "app.revoke",
)

#: The ``type`` of every event ``events.subscribe`` delivers.
EVENTS = ("items.changed", "locked", "unlocked", "peer.connected", "peer.disconnected", "peer.paired",
          "sync.progress", "device.removed")

#: events.subscribe: at most this many revisions stored after ``since`` are replayed (more: ``reset``).
MAX_REPLAY = 10_000
#: An items.changed event describes at most this many items (a larger change comes as several events).
CHANGES_PER_EVENT = 500
#: events.subscribe ``items``: at most this many item ids watched.
MAX_WATCHED_ITEMS = 1000

#: pair.invite / pair.join take ``timeout``: seconds to wait for the other device, 1 to this.
MAX_PAIRING_TIMEOUT = 3600

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
MAX_LINE = 1024 * 1024
#: The stable names (``data.name``) of JSON-RPC's own error codes.
STANDARD_NAMES = {PARSE_ERROR: "parse_error", INVALID_REQUEST: "invalid_request", METHOD_NOT_FOUND: "method_not_found",
                  INVALID_PARAMS: "invalid_params", INTERNAL_ERROR: "internal_error"}

#: Application error codes by vaultpeer error name (``VaultpeerError.code``).
ERROR_CODES = {
    "error": 1000,
    "locked": 1001,
    "wrong_password": 1002,
    "wrong_recovery_key": 1003,
    "not_found": 1004,
    "ambiguous": 1005,
    "conflict": 1006,
    "integrity": 1007,
    "no_vault": 1008,
    "already_initialized": 1009,
    "weak_kdf": 1010,
    "pairing": 1011,
    "rate_limited": 1012,
    "protocol": 1013,
    "forbidden": 1014,
    "invalid_params": INVALID_PARAMS,
}


class ApiError(Exception):
    """An error response, raised by handlers on the server and by clients on receipt."""

    def __init__(self, code: int, message: str, data: dict | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        if data is None and code in STANDARD_NAMES:
            data = {"name": STANDARD_NAMES[code]}  # every error has a data.name (docs/api.md)
        self.data = data

    def to_object(self) -> dict:
        error = {"code": self.code, "message": self.message}
        data = {"name": "invalid_params"} if self.data is None and self.code == INVALID_PARAMS else self.data
        if data is not None:  # every -32602 names itself, as an InvalidInput from the command layer does
            error["data"] = data
        return error


def error_object(exc: BaseException) -> dict:
    """The JSON-RPC error object for an exception a handler raised."""
    if isinstance(exc, ApiError):
        return exc.to_object()
    if isinstance(exc, VaultpeerError):
        data: dict = {"name": exc.code}
        if isinstance(exc, Ambiguous):
            data["candidates"] = [dict(candidate) for candidate in exc.candidates]
        if isinstance(exc, RateLimited):
            data["retry_after"] = exc.retry_after
        if isinstance(exc, Forbidden):
            data["reason"] = exc.reason
        return {"code": ERROR_CODES.get(exc.code, 1000), "message": str(exc), "data": data}
    return standard_error(INTERNAL_ERROR, "internal error")


def standard_error(code: int, message: str) -> dict:
    """A JSON-RPC error object of one of the protocol's own codes, with its ``data.name``."""
    return {"code": code, "message": message, "data": {"name": STANDARD_NAMES[code]}}
