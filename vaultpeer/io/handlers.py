"""The local API's methods: JSON-RPC params in, the documented JSON shapes out (docs/api.md).

The item methods parse their params and call the command layer (``vaultpeer.service.commands``), as the
CLI does without a daemon. Every commit reaches the connected members at once through
``Vault.on_local_commit``, which the daemon listens to: no handler pushes anything itself.
Passwords arrive in params and go straight into the KDF; they are never logged or echoed.
"""

import base64
from typing import TYPE_CHECKING
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from functools import partial

import trio

from vaultpeer.service import transfer
from vaultpeer.service.bundle_files import read_bundle_file
from vaultpeer import __version__
from vaultpeer.api import API_VERSION, EVENTS, MAX_PAIRING_TIMEOUT, MAX_WATCHED_ITEMS, METHODS, ApiError
from vaultpeer.core.app_scopes import CLI_APP
from vaultpeer.core.audit import parse_noted_head
from vaultpeer.core.errors import InvalidInput, RateLimited
from vaultpeer.core.interchange import ImportEntry
from vaultpeer.core.generate import GenerateOptions
from vaultpeer.service.wordlist import generate_json
from vaultpeer.core.identity import DeviceId
from vaultpeer.core.item import ITEM_ID_SIZE
from vaultpeer.service.commands import Running, Slow, VaultCommands
from vaultpeer.service.hygiene import process_state
from vaultpeer.service.vault import prepare_rotation
from vaultpeer.service.views import member_json
from vaultpeer.io.api_server import Subscription
from vaultpeer.service.vault.audit_trail import acting_app
from vaultpeer.io.app_access import DEFAULT_WAIT, MAX_WAIT, AppAccess
from vaultpeer.io.transports.tcp import tcp_address

if TYPE_CHECKING:  # the daemon creates the handlers: no import cycle at run time
    from vaultpeer.io.api_server import Connection
    from vaultpeer.io.daemon import Daemon

INVALID_PARAMS = -32602


def _param(params: dict, name: str, kind: type | tuple, *, required: bool = True, default: object = None):
    if name not in params:
        if required:
            raise ApiError(INVALID_PARAMS, f"missing parameter: {name}")
        return default
    value = params[name]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ApiError(INVALID_PARAMS, f"parameter {name} has the wrong type")
    return value


def _pairing_timeout(params: dict) -> float | None:
    """``timeout`` of pair.invite / pair.join: seconds to wait for the other device, 1-3600."""
    timeout = _param(params, "timeout", (int, float), required=False)
    if timeout is not None and (isinstance(timeout, bool) or not 1 <= timeout <= MAX_PAIRING_TIMEOUT):
        raise ApiError(INVALID_PARAMS, f"timeout is a number of seconds from 1 to {MAX_PAIRING_TIMEOUT}")
    return timeout


def _text_map(params: dict, name: str) -> dict[str, str]:
    value = _param(params, name, dict, required=False, default={})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ApiError(INVALID_PARAMS, f"parameter {name} maps field names to text values")
    return value


def _text_list(params: dict, name: str) -> list[str]:
    value = _param(params, name, list, required=False, default=[])
    if not all(isinstance(v, str) for v in value):
        raise ApiError(INVALID_PARAMS, f"parameter {name} is a list of field names")
    return value


def _generate_options(params: dict) -> GenerateOptions:
    """What generate, item.add and item.edit are asked to generate (docs/api.md)."""
    return GenerateOptions(length=_param(params, "length", int, required=False),
                           words=_param(params, "words", int, required=False),
                           separator=_param(params, "separator", str, required=False),
                           digits=_param(params, "digits", bool, required=False, default=True),
                           symbols=_param(params, "symbols", bool, required=False, default=True),
                           exclude_similar=_param(params, "exclude_similar", bool, required=False, default=False))


def _watched_items(params: dict) -> frozenset[str] | None:
    """events.subscribe's ``items``: 1 to MAX_WATCHED_ITEMS item ids (full ids, any case), or None."""
    value = _param(params, "items", list, required=False)
    if value is None:
        return None
    if not 1 <= len(value) <= MAX_WATCHED_ITEMS:
        raise ApiError(INVALID_PARAMS, f"items is a list of 1 to {MAX_WATCHED_ITEMS} item ids")
    watched = set()
    for item_id in value:
        if not isinstance(item_id, str) or len(item_id) != 2 * ITEM_ID_SIZE \
                or not all(c in "0123456789abcdef" for c in item_id.lower()):
            raise ApiError(INVALID_PARAMS, "items is a list of item ids (32 hexadecimal digits each)")
        watched.add(item_id.lower())
    return frozenset(watched)


def _base64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        raise ApiError(INVALID_PARAMS, "expected base64") from None


def _absolute_path(params: dict) -> Path:
    path = Path(_param(params, "path", str))
    if not path.is_absolute():
        raise ApiError(INVALID_PARAMS, "path must be absolute (the daemon reads the file itself)")
    return path


#: The parameters each method takes (docs/api.md). Any other is refused with -32602 before the
#: method runs: a misspelt optional parameter ("feilds") must not be ignored silently.
#: tests/io/test_api_contract.py checks this table against what each handler reads.
PARAMETERS: dict[str, frozenset[str]] = {method: frozenset(names) for method, names in {
    "api.info": (), "status": (), "unlock": ("password",), "lock": (),
    "passwd": ("password", "recovery_key", "new_password"),
    "device.rename": ("name", "os"), "vault.check": ("decrypt",), "vault.init": ("password", "name", "quick_kdf"),
    "audit.log": ("limit",), "audit.verify": ("head",),
    "item.list": ("deleted",), "item.get": ("item",), "item.search": ("text", "url", "deleted"), "item.otp": ("item",),
    "item.add": ("title", "fields", "generate", "length", "words", "separator", "digits", "symbols",
                 "exclude_similar"),
    "item.edit": ("item", "fields", "remove", "title", "generate", "length", "words", "separator", "digits",
                  "symbols", "exclude_similar"),
    "item.delete": ("item",), "item.history": ("item",), "item.restore": ("item", "revision"),
    "item.import": ("entries", "more", "batch", "format"), "item.export": (),
    "conflict.list": (), "conflict.resolve": ("item", "take", "fields", "title"),
    "generate": ("length", "words", "separator", "digits", "symbols", "exclude_similar"),
    "peer.list": (), "peer.remove": ("device", "password"),
    "pair.invite": ("timeout",), "pair.join": ("address", "timeout"), "pair.confirm": ("accept",),
    "pair.cancel": (), "sync.now": (), "events.subscribe": ("since", "store", "items"), "backup.seal": (),
    "device.admit": ("request",), "bundle.export": ("for",), "bundle.inspect": ("path",),
    "bundle.import": ("path", "exporter"),
    "auth": ("token",), "app.register": ("name", "scopes"), "app.wait": ("request", "timeout"),
    "app.list": (), "app.approve": ("name", "pid"), "app.deny": ("name",), "app.revoke": ("name",),
}.items()}

#: The scope of an app token each method needs (issue 18; core/app_scopes.py): None, any
#: connection may call it, with a token or without. Without `--require-app-tokens` a connection
#: that presented no token may call everything but the app.* admin methods (``TOKEN_ALWAYS``);
#: one that did is held to its token's scopes. tests/io/test_app_tokens.py checks that every
#: method has an entry.
REQUIRED_SCOPE: dict[str, str | None] = {
    "api.info": None, "status": None, "auth": None, "app.register": None, "app.wait": None,
    "unlock": "read", "lock": "read", "generate": "read", "vault.check": "read", "sync.now": "read",
    "item.list": "read", "item.get": "read", "item.search": "read", "item.otp": "read", "item.history": "read",
    "conflict.list": "read", "peer.list": "read", "events.subscribe": "read",
    "item.add": "write", "item.edit": "write", "item.delete": "write", "item.restore": "write",
    "item.import": "write", "conflict.resolve": "write",
    "passwd": "admin", "device.rename": "admin", "item.export": "admin", "peer.remove": "admin",
    "pair.invite": "admin", "pair.join": "admin", "pair.confirm": "admin", "pair.cancel": "admin",
    "backup.seal": "admin", "device.admit": "admin", "bundle.export": "admin", "bundle.inspect": "admin",
    "bundle.import": "admin",
    "app.list": "admin", "app.approve": "admin", "app.deny": "admin", "app.revoke": "admin",
    "vault.init": "admin", "audit.log": "read", "audit.verify": "read",
}

#: Methods that are handed their connection (the app it authenticated as, its peer's process).
_GIVEN_THEIR_CONNECTION = frozenset({"auth", "app.register", "events.subscribe"})
#: The command layer for the request being answered: limited to an app's reach when its token's
#: scopes are (a context variable: each connection's requests run in a task of their own).
_request_commands: ContextVar[VaultCommands | None] = ContextVar("request_commands", default=None)


#: Methods that start a pairing: it is cancelled when the connection that asked closes (the
#: program that would show the code and ask the person is gone); and vault.init, whose answer
#: (the recovery key) no one else could receive.
_ENDED_BY_THEIR_CONNECTION = frozenset({"pair.invite", "pair.join", "vault.init"})


class ApiHandlers:
    def __init__(self, daemon: "Daemon"):
        self.daemon = daemon
        self.vault = daemon.vault
        self._commands = VaultCommands(daemon.vault, daemon.home)
        self.apps = AppAccess(daemon, require_tokens=daemon.options.require_app_tokens)
        self.apps.start()
        self.staged_imports = transfer.StagedImports(clock=trio.current_time)
        daemon.on_lock.append(self.staged_imports.clear)  # staged plaintext never outlives the key

    async def dispatch(self, method: str, params: dict, connection: object) -> object:
        handler = getattr(self, "m_" + method.replace(".", "_"), None)
        if handler is None or method not in PARAMETERS:
            raise ApiError(-32601, "method not found")
        unknown = sorted(set(params or {}) - PARAMETERS[method])
        if unknown:
            raise ApiError(INVALID_PARAMS, f"unknown parameter: {unknown[0][:64]!r}")
        app = self.apps.app_of(connection, method)
        self.apps.authorize(method, REQUIRED_SCOPE[method], app)
        self.apps.note_use(app, method)
        self.daemon.touch()
        was_unlocked = not self.vault.locked
        scoped = VaultCommands(self.vault, self.daemon.home, access=app.scopes) if app is not None else None
        commands = _request_commands.set(scoped if scoped is not None and scoped.access is not None else None)
        acting = acting_app.set(app.name if app is not None and app.name != CLI_APP else None)
        try:
            if method in _ENDED_BY_THEIR_CONNECTION:
                return await handler(params or {}, connection.closed)
            if method in _GIVEN_THEIR_CONNECTION:
                return await handler(params or {}, connection)
            return await handler(params or {})
        finally:  # a bundle import or a write may have met a rotated key: the vault locked itself
            acting_app.reset(acting)
            _request_commands.reset(commands)
            if method not in ("lock", "unlock"):
                self.daemon.notice_self_lock(was_unlocked)

    @property
    def commands(self) -> VaultCommands:
        """The command layer, held to the reach of the request's app (if its scopes are limited)."""
        return _request_commands.get() or self._commands

    # --- daemon and vault state ---

    async def m_api_info(self, params: dict) -> dict:
        return {"api_version": API_VERSION, "vaultpeer_version": __version__, "methods": list(METHODS),
                "events": list(EVENTS)}

    async def m_status(self, params: dict) -> dict:
        daemon = self.daemon
        listen = str(daemon.listen_address) if daemon.listen_address else None
        status = self.commands.status(Running(listen=listen, socket=str(daemon.socket_path),
                                              peers=sorted(str(d) for d in daemon.links), process=process_state(),
                                              pairing=daemon.pairing_pump.in_progress()))
        status["sync"] = daemon.traffic.to_json()
        return status

    async def m_unlock(self, params: dict) -> dict:
        await self.daemon.unlock(_param(params, "password", str))
        return {"locked": False}

    async def m_passwd(self, params: dict) -> dict:
        """Change the master password, proven by the current one or by the recovery key."""
        new_password = _param(params, "new_password", str)
        if "recovery_key" in params and "password" in params:
            raise ApiError(INVALID_PARAMS, "give the current password or the recovery key, not both")
        if "recovery_key" in params:
            return await _run_in_threads(self.commands.change_password(
                new_password, recovery_key=_param(params, "recovery_key", str)))
        with self._password_attempt("password.change_failed"):
            return await _run_in_threads(self.commands.change_password(
                new_password, password=_param(params, "password", str)))

    async def m_device_rename(self, params: dict) -> dict:
        return self.commands.rename_device(_param(params, "name", str, required=False),
                                           _param(params, "os", str, required=False))

    async def m_vault_check(self, params: dict) -> dict:
        return self.commands.check(_param(params, "decrypt", bool, required=False, default=False))

    async def m_vault_init(self, params: dict, client_gone: trio.Event) -> dict:
        """Create this device's vault (as `vaultpeer init`): the daemon serves it at once, unlocked.
        The result carries the recovery key, told this once: a client that closed its connection
        during the derivation gets no vault (it could never learn the key)."""
        result = await _run_in_threads(self.commands.init(
            _param(params, "password", str), _param(params, "name", str, required=False),
            _param(params, "quick_kdf", bool, required=False, default=False),
            still_wanted=lambda: not client_gone.is_set()))
        self.daemon.after_init()
        return result

    async def m_audit_log(self, params: dict) -> list:
        limit = _param(params, "limit", int, required=False)
        if limit is not None and limit < 1:
            raise ApiError(INVALID_PARAMS, "limit is a number of entries, at least 1")
        return self.commands.audit_log(limit)

    async def m_audit_verify(self, params: dict) -> dict:
        head = _param(params, "head", str, required=False)
        try:
            expected = None if head is None else parse_noted_head(head)
        except ValueError as exc:
            raise ApiError(INVALID_PARAMS, str(exc)) from None
        return self.commands.verify_audit_log(expected)

    async def m_lock(self, params: dict) -> dict:
        self.daemon.lock()
        return {"locked": True}

    @contextmanager
    def _password_attempt(self, event: str) -> Iterator[None]:
        """One master-password attempt: refused while the backoff says wait (and recorded in the
        audit log as ``event``, counted per minute); a success resets the count. Counted when it
        starts, so parallel guesses are counted too."""
        try:
            self.daemon.password_attempts.begin(trio.current_time())
        except RateLimited:
            self.daemon.audit_refused_attempt(event)
            raise
        yield
        self.daemon.password_attempts.succeeded()

    # --- items ---

    async def m_item_list(self, params: dict) -> list:
        return self.commands.list_items(_param(params, "deleted", bool, required=False, default=False))

    async def m_item_get(self, params: dict) -> dict:
        return self.commands.get(_param(params, "item", str))

    async def m_item_search(self, params: dict) -> list:
        """By words (``text``) or by the web page an item is for (``url``): one of the two."""
        text = _param(params, "text", str, required=False)
        url = _param(params, "url", str, required=False)
        deleted = _param(params, "deleted", bool, required=False, default=False)
        if (text is None) == (url is None):
            raise ApiError(INVALID_PARAMS, "give text or url (one of the two)")
        if url is not None:
            return self.commands.search_url(url, deleted)
        return self.commands.search(text, deleted)

    async def m_item_otp(self, params: dict) -> dict:
        return self.commands.otp(_param(params, "item", str))

    async def m_item_add(self, params: dict) -> dict:
        return self.commands.add(_param(params, "title", str), _text_map(params, "fields"),
                                 _text_list(params, "generate"), _generate_options(params))

    async def m_item_edit(self, params: dict) -> dict:
        return self.commands.edit(_param(params, "item", str), _text_map(params, "fields"),
                                  _text_list(params, "remove"), _param(params, "title", str, required=False),
                                  _text_list(params, "generate"), _generate_options(params))

    async def m_item_delete(self, params: dict) -> dict:
        return self.commands.delete(_param(params, "item", str))

    async def m_item_history(self, params: dict) -> list:
        return self.commands.history(_param(params, "item", str))

    async def m_item_restore(self, params: dict) -> dict:
        return self.commands.restore(_param(params, "item", str), _param(params, "revision", str, required=False))

    async def m_item_import(self, params: dict) -> dict:
        """Import entries as one batch (docs/api.md); a large import arrives in parts."""
        if self.vault.initialized and self.vault.locked:
            self.staged_imports.clear()  # staged plaintext does not outlive the vault key
        transfer.require_unlocked(self.vault)
        entries = [ImportEntry.from_json(e) for e in _param(params, "entries", list)]
        batch = _param(params, "batch", str, required=False)
        if _param(params, "more", bool, required=False, default=False):
            token = self.staged_imports.stage(batch, entries)
            return {"batch": token, "staged": self.staged_imports.count(token)}
        if batch is not None:
            entries = self.staged_imports.take(batch) + entries
        return self.commands.import_entries(entries, file_format=_param(params, "format", str, required=False))

    async def m_item_export(self, params: dict) -> list:
        return self.commands.export_items()

    async def m_conflict_list(self, params: dict) -> list:
        return self.commands.conflicts()

    async def m_conflict_resolve(self, params: dict) -> dict:
        return self.commands.resolve(_param(params, "item", str), _param(params, "take", str, required=False),
                                     _text_map(params, "fields"), _param(params, "title", str, required=False))

    async def m_generate(self, params: dict) -> dict:
        return generate_json(_generate_options(params))

    # --- peers, pairing, sync ---

    async def m_peer_list(self, params: dict) -> list:
        if not self.vault.initialized:
            return []
        roster = self.vault.roster
        peers = []
        for member in sorted(roster.members.values(), key=lambda m: m.name.casefold()):
            if member.device_id == self.daemon.device_id:
                continue
            state = self.daemon.peers.get(member.device_id)
            peers.append({
                "device_id": str(member.device_id),
                "name": member.name,
                "os": member.os_description,
                "connected": member.device_id in self.daemon.links,
                "last_seen": state.last_seen if state else None,
                "address": state.address if state else None,
                "added_by": str(member.added_by),
            })
        return peers

    async def m_peer_remove(self, params: dict) -> dict:
        """Revoke a member. The master password is needed: the rotated keyring is wrapped for it
        under a fresh salt (two Argon2id derivations, in a thread: one checks it, one wraps)."""
        text = _param(params, "device", str)
        password = _param(params, "password", str)
        device_id = self.vault.find_member(text)
        self.vault.unlocked_keyring()  # VaultLocked before any slow work
        added_by_it = [member_json(m) for m in self.vault.vouched_for_only_by(device_id)]
        prepare = partial(prepare_rotation, self.vault.header, password,
                          allow_insecure_test_kdf=self.vault.allows_insecure_test_kdf)
        with self._password_attempt("unlock.failed"):
            kdf, kek = await trio.to_thread.run_sync(prepare)
        await self.daemon.remove_peer(device_id, kdf, kek)
        return {"revoked": str(device_id), "added_by_it": added_by_it}

    # --- sync through files (docs/cli.md: join-request, admit, bundle) ---

    async def m_device_admit(self, params: dict) -> dict:
        request = _base64(_param(params, "request", str))
        return self.commands.admit(request)

    async def m_bundle_export(self, params: dict) -> dict:
        data, report = self.commands.export_bundle(_param(params, "for", str, required=False))
        return {**report, "bundle": base64.b64encode(data).decode()}

    async def m_bundle_inspect(self, params: dict) -> dict:
        data = await trio.to_thread.run_sync(read_bundle_file, _absolute_path(params))
        return self.commands.inspect_bundle(data)

    async def m_bundle_import(self, params: dict) -> dict:
        data = await trio.to_thread.run_sync(read_bundle_file, _absolute_path(params))
        try:
            exporter = DeviceId.parse(_param(params, "exporter", str))
        except ValueError:
            raise ApiError(INVALID_PARAMS, "exporter is not a device id") from None
        report = self.commands.import_bundle(data, exporter)
        self.daemon.after_import(report)
        return report

    async def m_pair_invite(self, params: dict, client_gone: trio.Event) -> dict:
        return {"code": await self.daemon.pairing_pump.invite(_pairing_timeout(params), client_gone)}

    async def m_pair_join(self, params: dict, client_gone: trio.Event) -> dict:
        address = _param(params, "address", str, required=False)
        target = None
        if address:
            host, _, port_text = address.rpartition(":")
            if not host or not port_text.isdigit():
                raise InvalidInput("address must be HOST:PORT")
            target = tcp_address(host, int(port_text))  # the API's addresses are TCP ones
        return {"code": await self.daemon.pairing_pump.join(target, _pairing_timeout(params), client_gone)}

    async def m_pair_confirm(self, params: dict) -> dict:
        return await self.daemon.pairing_pump.confirm(_param(params, "accept", bool))

    async def m_pair_cancel(self, params: dict) -> dict:
        return {"cancelled": self.daemon.pairing_pump.cancel()}

    # --- backups (docs/cli.md: backup) ---

    async def m_backup_seal(self, params: dict) -> dict:
        """A sealed backup of the whole vault, for the caller to write (the daemon writes no file
        outside its home, which its systemd sandbox forbids anyway)."""
        # read on the trio thread (SQLite lives here), seal in a worker thread
        data, report = await _run_in_threads(self.commands.seal_backup())
        return {"backup": base64.b64encode(data).decode(), **report}

    async def m_sync_now(self, params: dict) -> dict:
        self.daemon.sync_now()
        return {"peers": len(self.daemon.links)}

    async def m_events_subscribe(self, params: dict, connection: "Connection") -> Subscription:
        """Events from now on, after replaying the item changes since the client's cursor (docs/api.md);
        an app's are held to its reach, and end when its token is revoked."""
        since = _param(params, "since", int, required=False)
        if since is not None and since < 0:
            raise ApiError(INVALID_PARAMS, "since is a seq: an integer from 0")
        store = _param(params, "store", str, required=False)
        if store is not None and since is None:
            raise ApiError(INVALID_PARAMS, "store goes with since (the cursor's store)")
        subscription = self.daemon.events.subscribe(since, store, _watched_items(params))
        app = connection.state.get("app")
        if app is None:
            return subscription
        return Subscription(subscription.result, self.apps.events(subscription.events, app, self.commands.access))

    # --- app tokens (issue 18; io/app_access.py) ---

    async def m_auth(self, params: dict, connection: "Connection") -> dict:
        return self.apps.authenticate(connection, _param(params, "token", str))

    async def m_app_register(self, params: dict, connection: "Connection") -> dict:
        return self.apps.register(_param(params, "name", str), _param(params, "scopes", list), connection)

    async def m_app_wait(self, params: dict) -> dict:
        timeout = _param(params, "timeout", (int, float), required=False, default=DEFAULT_WAIT)
        if isinstance(timeout, bool) or not 0 <= timeout <= MAX_WAIT:
            raise ApiError(INVALID_PARAMS, f"timeout is a number of seconds from 0 to {MAX_WAIT:.0f}")
        return await self.apps.wait(_param(params, "request", str), timeout)

    async def m_app_list(self, params: dict) -> list:
        return self.apps.listing()

    async def m_app_approve(self, params: dict) -> dict:
        return self.apps.approve(_param(params, "name", str), _param(params, "pid", int, required=False))

    async def m_app_deny(self, params: dict) -> dict:
        return self.apps.deny(_param(params, "name", str))

    async def m_app_revoke(self, params: dict) -> dict:
        return self.apps.revoke(_param(params, "name", str))


async def _run_in_threads(steps: Generator[Slow, object, object]) -> object:
    """Run a command of the command layer: its slow steps in a worker thread, the rest (the
    vault's) here on the trio thread."""
    try:
        step = next(steps)
        while True:
            step = steps.send(await trio.to_thread.run_sync(step.function))
    except StopIteration as done:
        return done.value
