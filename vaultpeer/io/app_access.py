"""App tokens in the daemon (issue 18): which app a connection speaks for, what it may call, the
registration an app waits on, and the person's answers (docs/api.md, "App tokens").

The table of which method needs which scope is ``handlers.REQUIRED_SCOPE``; the registry of apps
and requests (kept in the home) is ``service.app_tokens.AppRegistry``; the item limits of a
folder- or tag-limited app are applied by the command layer (``VaultCommands(access=...)``).
"""

import logging
import os
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import trio

from vaultpeer.core.app_scopes import CLI_APP, Scopes
from vaultpeer.core.errors import Forbidden, NotFound, VaultpeerError
from vaultpeer.service.app_tokens import REQUEST_LIFETIME, App, AppRegistry, Request
from vaultpeer.io.events import Events

if TYPE_CHECKING:
    from vaultpeer.io.api_server import Connection
    from vaultpeer.io.daemon import Daemon

log = logging.getLogger("vaultpeer.apps")

#: Methods that need a token with the admin scope even without `--require-app-tokens`: an app
#: never approves itself (or another) over a connection that presented no token.
TOKEN_ALWAYS = frozenset({"app.list", "app.approve", "app.deny", "app.revoke"})
#: How long `app.wait` waits by default, and at most (seconds).
DEFAULT_WAIT = 60.0
MAX_WAIT = 3600.0


def executable_of(pid: int) -> str | None:
    """The program a process runs (/proc/PID/exe), or None where it cannot be read (gone, or not ours)."""
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return None


class AppAccess:
    def __init__(self, daemon: "Daemon", *, require_tokens: bool):
        self.daemon = daemon
        self.require_tokens = require_tokens
        self.registry = AppRegistry(daemon.home, clock=trio.current_time)
        self.registry.on_decided.append(self._decided)
        #: Request id -> woken when the person answers (or the request lapses).
        self._waiters: dict[str, trio.Event] = {}
        #: App name -> its connections' event subscriptions, ended when the app is revoked.
        self._subscriptions: dict[str, set[Events]] = {}

    def start(self) -> None:
        """At daemon start: the command line's own token, in the home."""
        self.registry.ensure_cli_token()

    def _record(self, record, *args: object, **details: object) -> None:
        """Write to the audit log; a failure to write is logged and never fails the request."""
        try:
            record(*args, **details)
        except Exception:  # noqa: BLE001
            log.exception("could not write to the audit log")

    # --- each request ------------------------------------------------------------------------

    def app_of(self, connection: "Connection", method: str) -> App | None:
        """The app this connection authenticated as; Forbidden once its token was revoked (but a
        new ``auth`` may come)."""
        app = connection.state.get("app")
        if app is not None and method != "auth" and not self.registry.current(app):
            raise Forbidden("this connection's app token was revoked", reason="token")
        return app

    def authorize(self, method: str, required: str | None, app: App | None) -> None:
        if app is None:
            if method in TOKEN_ALWAYS or (required is not None and self.require_tokens):
                raise Forbidden(f"{method} needs an app token: register the app (app.register) and present "
                                f"its token (auth) first", reason="token")
            return
        if required is not None and not app.scopes.allows(required):
            raise Forbidden(f"this app's token does not allow {method} (that needs the {required} scope)")

    def note_use(self, app: App | None, method: str) -> None:
        """Every request made with an app's token, in the audit log (one entry per app, method and
        minute, with a count). The command line's own token is the person: not recorded."""
        if app is not None and app.name != CLI_APP and method != "auth":
            self._record(self.daemon.vault.audit_trail.app_used, app.name, method)

    # --- auth and registration -------------------------------------------------------------------

    def authenticate(self, connection: "Connection", token: str) -> dict:
        app = self.registry.authenticate(token)
        if app is None:
            self._record(self.daemon.vault.audit_trail.app_refused)
            raise Forbidden("not a valid app token (unknown, revoked or malformed)", reason="token")
        connection.state["app"] = app
        return {"app": app.name, "scopes": app.scopes.texts()}

    def register(self, name: object, scopes: object, connection: "Connection") -> dict:
        request = self.registry.register(name, scopes, connection.peer_pid, executable_of(connection.peer_pid))
        self._record(self.daemon.vault.audit, "app.registered", app=request.name, pid=connection.peer_pid)
        # the scopes stay out of the log: a folder or tag name is item data
        log.info("app %s (pid %d) asks for a token: `vaultpeer apps` shows it", request.name, connection.peer_pid)
        return {"request": request.request_id, "status": "pending", "name": request.name,
                "scopes": request.scopes.texts()}

    async def wait(self, request_id: str, timeout: float) -> dict:
        """The person's answer to a registration, within ``timeout`` seconds (else still pending);
        NotFound once the request lapsed (woken when it does)."""
        deadline = trio.current_time() + timeout
        while True:
            request = self.registry.collect(request_id)
            if request is None:
                raise NotFound("no such app request: it lapsed (10 minutes without an answer), or its "
                               "answer was collected already")
            if request.state != "pending":
                return _answer(request)
            if trio.current_time() >= deadline:
                return {"status": "pending"}
            with trio.move_on_at(min(deadline, request.changed + REQUEST_LIFETIME)):
                await self._waiters.setdefault(request_id, trio.Event()).wait()

    def _decided(self, request: Request) -> None:
        waiter = self._waiters.pop(request.request_id, None)
        if waiter is not None:
            waiter.set()

    # --- the person's answers ----------------------------------------------------------------------

    def listing(self) -> list[dict]:
        return [a.to_json() for a in self.registry.apps()] + [r.to_json() for r in self.registry.requests()]

    def approve(self, name: str, pid: int | None) -> dict:
        app = self.registry.approve(name, pid)
        limited = sum(1 for s in app.scopes.scopes if s.limit is not None)
        self._record(self.daemon.vault.audit, "app.approved", app=name, access=app.scopes.highest,
                           limited=limited)
        return app.to_json()

    def deny(self, name: str) -> dict:
        request = self.registry.deny(name)
        self._record(self.daemon.vault.audit, "app.denied", app=name)
        return request.to_json()

    def revoke(self, name: str) -> dict:
        """End the app's token at once: its connections are refused from their next request, and
        their event subscriptions end now (the connection closes)."""
        self.registry.revoke(name)
        self._record(self.daemon.vault.audit, "app.revoked", app=name)
        for events in self._subscriptions.pop(name, set()):
            events.end()
        return {"name": name, "revoked": True}

    # --- events ---------------------------------------------------------------------------------

    def events(self, events: Events, app: App | None, access: Scopes | None) -> AsyncIterator[dict]:
        """An app's subscription (``EventFeed.subscribe``'s events), held to its reach, ending
        when its token is revoked."""
        if app is not None:
            self._subscriptions.setdefault(app.name, set()).add(events)
        # only a reach limited to a folder or tag hides items (a read-only app sees them all)
        return self._events(events, app, access if access is not None and access.limited else None)

    async def _events(self, events: Events, app: App | None, access: Scopes | None) -> AsyncIterator[dict]:
        try:
            async for event in events:
                if app is not None and not self.registry.current(app):
                    return
                if access is not None and event.get("type") == "items.changed":
                    visible = [i for i in event["items"] if self._visible(i, access)]
                    if not visible:
                        continue  # nothing it can see changed
                    shown = set(visible)
                    event = {**event, "items": visible,
                             "changes": [c for c in event.get("changes", []) if c["id"] in shown]}
                yield event
        except trio.ClosedResourceError:
            return  # revoked
        finally:
            if app is not None:
                self._subscriptions.get(app.name, set()).discard(events)
            await events.aclose()

    def _visible(self, item: object, access: Scopes) -> bool:
        """Whether an item of an ``items.changed`` event is in a limited app's reach (while the
        vault is locked nothing can be judged, so nothing is shown)."""
        try:
            view = self.daemon.vault.find_summary(str(item), deleted=None)
        except VaultpeerError:
            return False
        return access.visible(view.searchable)


def _answer(request: Request) -> dict:
    if request.state == "approved":
        return {"status": "approved", "name": request.name, "scopes": request.scopes.texts(), "token": request.token}
    return {"status": request.state, "name": request.name}
