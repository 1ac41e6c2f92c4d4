"""The apps a person let in (issue 18): registration requests waiting for `vaultpeer apps approve`,
and the approved apps, kept in the home (``Home.apps_file``, 0600) so their tokens survive a
restart. Only a token's SHA-256 is kept; the token itself is handed to the app once, and to the
command line through ``Home.cli_token_file`` (its own token, admin scope).

Requests live in memory only: a request waits ``REQUEST_LIFETIME`` seconds for the person (by the
clock passed in), an approval for the app to collect its token as long again; an approval never
collected lapses (the app is removed again), so no token is approved that nobody holds.
"""

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from vaultpeer.core.app_scopes import CLI_APP, Scopes, check_app_name, find_token, new_token, token_digest
from vaultpeer.core.errors import InvalidInput, NotFound, VaultpeerError
from vaultpeer.service.home import Home
from vaultpeer.service.user_files import write_private_file

#: Seconds a request waits for the person, and an approval for the app to collect its token.
REQUEST_LIFETIME = 600.0
#: Requests waiting at once (a flood of registrations cannot fill memory or the person's list).
MAX_REQUESTS = 16
MAX_APPS = 256
_FILE_VERSION = 1
_REQUEST_ID_BYTES = 16


@dataclass(frozen=True, repr=False)
class App:
    """An approved app (or the command line: ``name == CLI_APP``)."""

    name: str
    scopes: Scopes
    digest: bytes
    #: When it was approved (unix seconds).
    approved: int
    #: The registering process, as the daemon saw it (SO_PEERCRED, /proc/PID/exe).
    pid: int | None = None
    exe: str | None = None

    def to_json(self) -> dict:
        """As `apps --json` and app.list show it: never the token or its digest."""
        return {"name": self.name, "state": "approved", "scopes": self.scopes.texts(), "approved": self.approved,
                "pid": self.pid, "exe": self.exe}

    def __repr__(self) -> str:
        return f"App({self.name!r}, {self.scopes.texts()}, redacted)"


@dataclass(repr=False)
class Request:
    """A registration: ``pending`` until the person approves or denies it."""

    request_id: str
    name: str
    scopes: Scopes
    pid: int | None
    exe: str | None
    #: When it last changed, by the registry's clock (it lapses REQUEST_LIFETIME later).
    changed: float
    state: str = "pending"
    #: The token, from approval until the app collects it (once).
    token: str | None = field(default=None)

    def to_json(self) -> dict:
        return {"name": self.name, "state": self.state, "scopes": self.scopes.texts(), "pid": self.pid,
                "exe": self.exe}

    def __repr__(self) -> str:
        return f"Request({self.name!r}, {self.state}, redacted)"


class AppRegistry:
    def __init__(self, home: Home, *, clock: Callable[[], float], wall_clock: Callable[[], float] = time.time,
                 random_bytes: Callable[[int], bytes] = os.urandom):
        self.home = home
        self._clock = clock
        self._wall_clock = wall_clock
        self._random_bytes = random_bytes
        self._apps: dict[str, App] = _load(home)
        self._requests: dict[str, Request] = {}
        #: Called with a request whenever it is decided or lapses (the daemon wakes its waiter).
        self.on_decided: list[Callable[[Request], None]] = []

    # --- the approved apps -----------------------------------------------------------------

    def apps(self) -> list[App]:
        self.expire()
        return sorted(self._apps.values(), key=lambda a: a.name)

    def authenticate(self, token: str) -> App | None:
        """The app this token belongs to, or None (one answer for every kind of bad token)."""
        self.expire()
        name = find_token(token, ((a.name, a.digest) for a in self._apps.values()))
        return self._apps.get(name) if name is not None else None

    def current(self, app: App) -> bool:
        """Whether ``app`` (authenticated earlier) is still approved with the same token."""
        return self._apps.get(app.name) is app

    def revoke(self, name: str) -> App:
        if name == CLI_APP:
            raise InvalidInput("the command line's own token is not revoked: delete cli.token in the home and "
                               "restart the daemon to replace it")
        app = self._apps.get(name)
        if app is None:
            raise NotFound(f"no approved app is named {name!r}")
        del self._apps[name]
        self._save()
        return app

    def ensure_cli_token(self) -> None:
        """Make sure the command line has a valid token of its own (admin), in ``cli_token_file``."""
        path = self.home.cli_token_file
        try:
            current = path.read_text().strip()
        except (FileNotFoundError, UnicodeDecodeError):
            current = ""
        known = self._apps.get(CLI_APP)
        if known is not None and find_token(current, [(CLI_APP, known.digest)]) == CLI_APP:
            return
        token = new_token(self._random_bytes)
        self._apps[CLI_APP] = App(CLI_APP, Scopes.parse(["admin"]), token_digest(token), int(self._wall_clock()),
                                  os.getpid(), None)
        self._save()
        write_private_file(path, token.encode() + b"\n", overwrite=True)

    # --- requests --------------------------------------------------------------------------

    def register(self, name: object, scopes: object, pid: int | None, exe: str | None) -> Request:
        """A new request (InvalidInput for a bad name or scopes, or a name in use)."""
        self.expire()
        try:
            name = check_app_name(name)
            parsed = Scopes.parse(scopes)
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None
        if name in self._apps:
            raise InvalidInput(f"an app named {name!r} is approved already (revoke it first: "
                               f"`vaultpeer apps revoke {name}`)")
        if any(r.name == name for r in self._requests.values()):
            raise InvalidInput(f"a request named {name!r} is waiting already")
        if len(self._requests) >= MAX_REQUESTS:
            raise VaultpeerError(f"{MAX_REQUESTS} app requests are waiting already: approve or deny them first")
        if len(self._apps) >= MAX_APPS:
            raise VaultpeerError(f"{MAX_APPS} apps are approved already: revoke some first")
        request = Request(self._random_bytes(_REQUEST_ID_BYTES).hex(), name, parsed, pid, exe, self._clock())
        self._requests[request.request_id] = request
        return request

    def requests(self) -> list[Request]:
        self.expire()
        return sorted((r for r in self._requests.values() if r.state == "pending"), key=lambda r: r.name)

    def pending(self, name: str) -> Request:
        for request in self.requests():
            if request.name == name:
                return request
        raise NotFound(f"no app request named {name!r} is waiting (see `vaultpeer apps`)")

    def approve(self, name: str, pid: int | None = None) -> App:
        """Approve the waiting request ``name`` (from process ``pid``, if given: the one the person
        was shown). Its token waits for the app in memory; only its digest is saved."""
        request = self.pending(name)
        if pid is not None and request.pid != pid:
            raise NotFound(f"the request named {name!r} comes from another process now: look again")
        token = new_token(self._random_bytes)
        app = App(name, request.scopes, token_digest(token), int(self._wall_clock()), request.pid, request.exe)
        self._apps[name] = app
        self._save()
        request.state, request.token, request.changed = "approved", token, self._clock()
        self._decided(request)
        return app

    def deny(self, name: str) -> Request:
        request = self.pending(name)
        request.state, request.changed = "denied", self._clock()
        self._decided(request)
        return request

    def collect(self, request_id: str) -> Request | None:
        """The request with this id (None if unknown or lapsed). An approved one gives its token
        once: after that, the request is gone."""
        self.expire()
        request = self._requests.get(request_id) if isinstance(request_id, str) else None
        if request is not None and request.state != "pending":
            del self._requests[request_id]
        return request

    def expire(self) -> None:
        """Drop what waited too long: a request nobody decided, an approval nobody collected
        (whose app is removed again)."""
        now = self._clock()
        for request_id, request in list(self._requests.items()):
            if now - request.changed < REQUEST_LIFETIME:
                continue
            del self._requests[request_id]
            if request.state == "approved":
                self._apps.pop(request.name, None)
                self._save()
            request.state, request.token = "expired", None
            self._decided(request)

    def _decided(self, request: Request) -> None:
        for listener in list(self.on_decided):
            listener(request)

    def _save(self) -> None:
        apps = [{"name": a.name, "scopes": a.scopes.texts(), "sha256": a.digest.hex(), "approved": a.approved,
                 "pid": a.pid, "exe": a.exe} for a in sorted(self._apps.values(), key=lambda a: a.name)]
        data = json.dumps({"version": _FILE_VERSION, "apps": apps}, indent=1).encode()
        write_private_file(self.home.apps_file, data, overwrite=True)


def _load(home: Home) -> dict[str, App]:
    try:
        data = json.loads(home.apps_file.read_bytes())
    except FileNotFoundError:
        return {}
    except ValueError:
        raise VaultpeerError(f"{home.apps_file} is damaged (not JSON): move it away to start over "
                             f"(every app then registers again)") from None
    try:
        if data["version"] != _FILE_VERSION:
            raise ValueError("version")
        apps = {}
        for entry in data["apps"]:
            name = entry["name"]
            if name != CLI_APP:
                check_app_name(name)
            digest = bytes.fromhex(entry["sha256"])
            if len(digest) != 32 or not isinstance(entry["approved"], int):
                raise ValueError("digest")
            apps[name] = App(name, Scopes.parse(entry["scopes"]), digest, entry["approved"],
                             entry.get("pid"), entry.get("exe"))
        return apps
    except (KeyError, TypeError, ValueError):
        raise VaultpeerError(f"{home.apps_file} is damaged: move it away to start over "
                             f"(every app then registers again)") from None
