"""The Secret Service's object tree and its methods: a D-Bus method call in, the reply (and any
signals) out. jeepney does every byte of marshalling; this module only reads the parsed body.

    /org/freedesktop/secrets                         the service
    /org/freedesktop/secrets/collection/vaultpeer    the one collection (alias ``default``:
    /org/freedesktop/secrets/aliases/default          the same object under a second path)
    /org/freedesktop/secrets/collection/vaultpeer/ID an exposed vault item (ID: its item id)
    /org/freedesktop/secrets/session/N               a transfer session (plain or DH), its caller's own
    /org/freedesktop/secrets/prompt/N                an unlock waiting for the person

Every item operation goes through the command layer (``VaultCommands``), as the local API's do;
every commit reaches the other devices through ``Vault.on_local_commit``. No handler waits on
anything slow: an unlock runs as a prompt task that ends with the ``Completed`` signal, and a
search on a locked vault is answered by a task of its own once the vault unlocks ("unlock before
search": the attributes are sealed, so nothing can be searched before).
"""

import logging
import shlex
import subprocess
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from itertools import count
from typing import TYPE_CHECKING

import trio
from jeepney import DBusAddress, HeaderFields, Message, MessageFlag, new_error, new_method_return, new_signal

from vaultpeer.core import secret_service as ss
from vaultpeer.core.item import ItemId
from vaultpeer.core.secret_service_fields import COLLECTION_LABEL
from vaultpeer.core.errors import InvalidInput, NotFound, VaultLocked, VaultpeerError
from vaultpeer.io.secret_service import SecretServiceOptions, interfaces as ifaces
from vaultpeer.service.commands import ExposedItem, VaultCommands

if TYPE_CHECKING:
    from vaultpeer.io.daemon import Daemon

log = logging.getLogger("vaultpeer.secret_service")

ROOT = "/org/freedesktop/secrets"
COLLECTION_PATH = f"{ROOT}/collection/{ss.COLLECTION}"
DEFAULT_ALIAS_PATH = f"{ROOT}/aliases/default"
NO_OBJECT = "/"
#: Sessions open at once (over all callers); the oldest is closed to make room.
MAX_SESSIONS = 256
MAX_PROMPTS = 64
#: Searches waiting for the vault to unlock (over all callers); one more is answered IsLocked at once.
MAX_WAITING_SEARCHES = 64
#: The longest a search waits for the unlock: under the 25 s a libsecret (GDBus) call waits for
#: its answer by default, so the client gets IsLocked rather than a timeout of its own.
SEARCH_WAIT_LIMIT = 20.0
#: Calls answered only once the vault is unlocked (their answer needs the sealed attributes).
ANSWERED_ONCE_UNLOCKED = {("service", "SearchItems"), ("collection", "SearchItems")}
#: What a prompt command may print (a password, a newline).
MAX_PROMPT_OUTPUT = 64 * 1024

NO_SUCH_OBJECT = "org.freedesktop.Secret.Error.NoSuchObject"
IS_LOCKED = "org.freedesktop.Secret.Error.IsLocked"
NO_SESSION = "org.freedesktop.Secret.Error.NoSession"
INVALID_ARGS = "org.freedesktop.DBus.Error.InvalidArgs"
UNKNOWN_METHOD = "org.freedesktop.DBus.Error.UnknownMethod"
UNKNOWN_PROPERTY = "org.freedesktop.DBus.Error.UnknownProperty"
READ_ONLY = "org.freedesktop.DBus.Error.PropertyReadOnly"
NOT_SUPPORTED = "org.freedesktop.DBus.Error.NotSupported"
FAILED = "org.freedesktop.DBus.Error.Failed"
#: The properties of an item that change with a new revision (PropertiesChanged invalidates them).
ITEM_CHANGES = ["Label", "Attributes", "Modified"]


class DBusError(Exception):
    def __init__(self, name: str, message: str):
        super().__init__(message)
        self.name = name
        self.message = message


@dataclass
class SessionEntry:
    owner: str
    session: ss.Session


@dataclass
class Asking:
    """One run of the prompt command, shared by every prompt and search waiting for the unlock."""
    finished: trio.Event = field(default_factory=trio.Event)
    cancel: trio.CancelScope = field(default_factory=trio.CancelScope)
    #: How many wait for it: when the last one stops waiting, the command is stopped.
    waiters: int = 0


@dataclass
class WaitingSearch:
    """A search that waits for the unlock; cancelled if its caller leaves the bus."""
    owner: str
    cancel: trio.CancelScope = field(default_factory=trio.CancelScope)


@dataclass
class Prompt:
    path: str
    owner: str
    #: What Completed returns when the vault unlocks: the objects Unlock was asked for.
    objects: list[str]
    started: bool = False
    done: bool = False
    cancel: trio.CancelScope = field(default_factory=trio.CancelScope)


class SecretServiceObjects:
    """Answers method calls; ``send`` puts a message on the bus; ``spawn`` starts a task in the
    service's nursery (prompts)."""

    def __init__(self, daemon: "Daemon", options: SecretServiceOptions,
                 send: Callable[[Message], Awaitable[None]], spawn: Callable[..., None]):
        self.daemon = daemon
        self.vault = daemon.vault
        self.commands = VaultCommands(daemon.vault, daemon.home)
        self.options = options
        self.send = send
        self.spawn = spawn
        self.sessions: dict[str, SessionEntry] = {}
        self.prompts: dict[str, Prompt] = {}
        self.waiting_searches: list[WaitingSearch] = []
        self._asking: Asking | None = None
        self._numbers = count(1)
        #: Exposed item id -> revision, as last announced (for ItemCreated/Changed/Deleted).
        self._known: dict[str, str] | None = None
        self.unlocked = trio.Event()
        if not self.vault.locked:
            self.unlocked.set()
            self.know_items()

    # --- dispatch ------------------------------------------------------------------------------

    async def handle(self, message: Message, *, waited: bool = False) -> None:
        """Answer one method call (never raises: an error goes back to the caller). A search on a
        locked vault is handed to a task that answers it once the vault unlocks (``waited``: that
        task's call, answered whatever the vault's state)."""
        fields = message.header.fields
        path = fields.get(HeaderFields.path, "")
        member = fields.get(HeaderFields.member, "")
        interface = fields.get(HeaderFields.interface)
        signature = fields.get(HeaderFields.signature, "")
        sender = fields.get(HeaderFields.sender, "")
        after: list[Callable[[], None]] = []
        try:
            kind, target = self._resolve(path)
            method, expected = self._method(kind, interface, member)
            if signature != expected:
                raise DBusError(INVALID_ARGS, f"{member} takes ({expected}), not ({signature})")
            if not waited and self.vault.locked and (kind, member) in ANSWERED_ONCE_UNLOCKED \
                    and len(self.waiting_searches) < MAX_WAITING_SEARCHES:
                search = WaitingSearch(sender)
                self.waiting_searches.append(search)
                self.spawn(self._answer_once_unlocked, message, search)
                return
            out_signature, body = await method(target, sender, after, *message.body)
            reply = new_method_return(message, out_signature or None, body)
        except DBusError as exc:
            reply = new_error(message, exc.name, "s", (exc.message,))
        except VaultLocked:
            reply = new_error(message, IS_LOCKED, "s", ("the vault is locked: unlock it first",))
        except NotFound:
            reply = new_error(message, NO_SUCH_OBJECT, "s", ("no such object",))
        except InvalidInput as exc:
            reply = new_error(message, INVALID_ARGS, "s", (str(exc),))
        except VaultpeerError as exc:
            reply = new_error(message, FAILED, "s", (str(exc),))
        except Exception:  # noqa: BLE001 - one bad call must not stop the service
            log.exception("unexpected error answering %s.%s", interface, member)
            reply = new_error(message, FAILED, "s", ("internal error",))
        if not message.header.flags & MessageFlag.no_reply_expected:
            await self.send(reply)
        for follow_up in after:
            follow_up()

    def _resolve(self, path: str) -> tuple[str, str]:
        """The kind of object at ``path`` and what names it (an item id, a session or prompt path)."""
        if path.startswith(DEFAULT_ALIAS_PATH):
            path = COLLECTION_PATH + path[len(DEFAULT_ALIAS_PATH):]
        if path == ROOT:
            return "service", path
        if path == COLLECTION_PATH:
            return "collection", path
        if path in ("/", "/org", "/org/freedesktop", f"{ROOT}/collection", f"{ROOT}/aliases"):
            return "node", path
        if path.startswith(COLLECTION_PATH + "/"):
            item_id = path[len(COLLECTION_PATH) + 1:]
            if len(item_id) == 32 and all(c in "0123456789abcdef" for c in item_id):
                return "item", item_id
        if path in self.sessions:
            return "session", path
        if path in self.prompts:
            return "prompt", path
        raise DBusError(NO_SUCH_OBJECT, "no such object")

    def _method(self, kind: str, interface: str | None, member: str):
        for candidate in (*ifaces.STANDARD, *ifaces.INTERFACES[kind]):
            if (interface is None or interface == candidate.name) and member in candidate.methods:
                handler = getattr(self, f"_{kind}_{member}" if candidate.name.startswith("org.freedesktop.Secret")
                                  else f"_std_{member}")
                return handler, candidate.methods[member][0]
        raise DBusError(UNKNOWN_METHOD, f"no method {member} on this object")

    # --- org.freedesktop.DBus.* ---------------------------------------------------------------------

    async def _std_Introspect(self, target, sender, after):
        kind, _ = self._resolve(target) if target.startswith("/") else ("item", target)
        children = {"/": ["org"], "/org": ["freedesktop"], "/org/freedesktop": ["secrets"],
                    f"{ROOT}/collection": [ss.COLLECTION], f"{ROOT}/aliases": ["default"]}.get(target, [])
        if kind == "service":
            children = ["collection", "aliases"]
        elif kind == "collection" and not self.vault.locked:
            children = [e.id for e in self.commands.exposed_items()]
        return "s", (ifaces.introspect(kind, children),)

    async def _std_Ping(self, target, sender, after):
        return "", ()

    async def _std_GetMachineId(self, target, sender, after):
        try:
            with open("/etc/machine-id") as file:
                return "s", (file.read().strip(),)
        except OSError:
            raise DBusError(FAILED, "no machine id") from None

    def _kind_of(self, target: str) -> str:
        return "item" if not target.startswith("/") else self._resolve(target)[0]

    async def _std_Get(self, target, sender, after, interface, name):
        kind = self._kind_of(target)
        return "v", (self._property(kind, target, interface, name),)

    async def _std_GetAll(self, target, sender, after, interface):
        kind = self._kind_of(target)
        found = {}
        for candidate in ifaces.INTERFACES[kind]:
            if interface in ("", candidate.name):
                for name in candidate.properties:
                    found[name] = self._property(kind, target, candidate.name, name)
        return "a{sv}", (found,)

    async def _std_Set(self, target, sender, after, interface, name, value):
        kind = self._kind_of(target)
        self._property(kind, target, interface, name)  # exists, readable
        if kind == "item" and name == "Label" and value[0] == "s":
            self.commands.set_exposed_label(target, value[1])
        elif kind == "item" and name == "Attributes" and value[0] == "a{ss}":
            self.commands.set_exposed_attributes(target, value[1])
        elif kind in ("item", "collection") and name in ("Label", "Attributes"):
            if kind == "collection":
                raise DBusError(NOT_SUPPORTED, "the collection's label is fixed")
            raise DBusError(INVALID_ARGS, f"{name} has the wrong type")
        else:
            raise DBusError(READ_ONLY, f"{name} is read-only")
        return "", ()

    def _property(self, kind: str, target: str, interface: str, name: str) -> tuple[str, object]:
        for candidate in ifaces.INTERFACES[kind]:
            if interface in ("", candidate.name) and name in candidate.properties:
                value = getattr(self, f"_get_{kind}_{name}")(target)
                return candidate.properties[name][0], value
        raise DBusError(UNKNOWN_PROPERTY, f"no property {name}")

    # --- properties -------------------------------------------------------------------------------

    def _get_service_Collections(self, target):
        return [COLLECTION_PATH]

    def _get_collection_Items(self, target):
        return [] if self.vault.locked else [item_path(e.id) for e in self.commands.exposed_items()]

    def _get_collection_Label(self, target):
        return COLLECTION_LABEL

    def _get_collection_Locked(self, target):
        return self.vault.locked

    def _get_collection_Created(self, target):
        """When its oldest item was made (0 while locked, or while it holds none)."""
        if self.vault.locked:
            return 0
        times = [self.vault.created(ItemId.parse(e.id)) for e in self.commands.exposed_items()]
        return min((t for t in times if t), default=0)

    def _get_collection_Modified(self, target):
        if self.vault.locked:
            return 0
        return max((e.modified for e in self.commands.exposed_items()), default=0)

    def _item(self, item_id: str) -> ExposedItem:
        return self.commands.exposed_item(item_id)  # VaultLocked, NotFound

    def _get_item_Locked(self, target):
        return self.vault.locked

    def _get_item_Attributes(self, target):
        return dict(self._item(target).item.attributes)

    def _get_item_Label(self, target):
        return self._item(target).item.label

    def _get_item_Type(self, target):
        return self._item(target).item.attributes.get("xdg:schema", "")

    def _get_item_Created(self, target):
        item = self._item(target)
        return self.vault.created(ItemId.parse(item.id)) or item.modified  # its first revision's time

    def _get_item_Modified(self, target):
        return self._item(target).modified

    # --- org.freedesktop.Secret.Service -----------------------------------------------------------

    async def _service_OpenSession(self, target, sender, after, algorithm, variant):
        signature, value = variant
        if algorithm not in ss.ALGORITHMS:
            raise DBusError(NOT_SUPPORTED, "algorithm not supported")
        expected = "s" if algorithm == ss.PLAIN else "ay"
        if signature != expected:
            raise DBusError(INVALID_ARGS, f"the {algorithm} algorithm takes a variant of type {expected}")
        session, output = ss.open_session(algorithm, value)
        if len(self.sessions) >= MAX_SESSIONS:
            self.sessions.pop(next(iter(self.sessions)))
        path = f"{ROOT}/session/s{next(self._numbers)}"
        self.sessions[path] = SessionEntry(sender, session)
        return "vo", ((expected, output), path)

    async def _service_CreateCollection(self, target, sender, after, properties, alias):
        if alias not in ("", "default", ss.COLLECTION):
            raise DBusError(NOT_SUPPORTED, "vaultpeer has one collection (alias default); it cannot make others")
        return "oo", (COLLECTION_PATH, NO_OBJECT)

    async def _service_SearchItems(self, target, sender, after, attributes):
        self.vault.unlocked_keyring()  # VaultLocked: the attributes are sealed, nothing is known
        found = [item_path(e.id) for e in self.commands.exposed_items() if ss.matches(e.item.attributes, attributes)]
        return "aoao", (found, [])

    async def _service_Unlock(self, target, sender, after, objects):
        if not self.vault.locked:
            return "aoo", (list(objects), NO_OBJECT)
        if len(self.prompts) >= MAX_PROMPTS:  # the oldest never shown goes: no client fills the table
            idle = next((p for p in self.prompts.values() if not p.started), None)
            if idle is None:
                raise DBusError(FAILED, "too many prompts waiting")
            del self.prompts[idle.path]
        path = f"{ROOT}/prompt/p{next(self._numbers)}"
        self.prompts[path] = Prompt(path, sender, list(objects))
        return "aoo", ([], path)

    async def _service_Lock(self, target, sender, after, objects):
        self.daemon.lock()
        return "aoo", (list(objects), NO_OBJECT)

    async def _service_LockService(self, target, sender, after):
        self.daemon.lock()
        return "", ()

    async def _service_ChangeLock(self, target, sender, after, collection):
        raise DBusError(NOT_SUPPORTED, "change the master password with `vaultpeer passwd`")

    async def _service_GetSecrets(self, target, sender, after, items, session_path):
        session = self._session(session_path, sender)
        if self.vault.locked:
            return "a{o(oayays)}", ({},)
        secrets = {}
        for path in items:
            item_id = self._item_id(path)
            if item_id is not None:
                try:
                    exposed = self._item(item_id)
                except NotFound:
                    continue
                secrets[path] = self._secret_struct(session_path, session, exposed)
        return "a{o(oayays)}", (secrets,)

    async def _service_ReadAlias(self, target, sender, after, name):
        return "o", (COLLECTION_PATH if name == "default" else NO_OBJECT,)

    async def _service_SetAlias(self, target, sender, after, name, collection):
        if name == "default" and collection in (COLLECTION_PATH, DEFAULT_ALIAS_PATH):
            return "", ()
        raise DBusError(NOT_SUPPORTED, "the only alias is default, for vaultpeer's one collection")

    # --- org.freedesktop.Secret.Collection --------------------------------------------------------

    async def _collection_Delete(self, target, sender, after):
        """The items clients stored are deleted (restorable: `vaultpeer restore`); the person's own
        items shown to clients are hidden again, never deleted. The collection itself stays (it is
        vaultpeer's only one, and a later CreateItem fills it again)."""
        self.vault.unlocked_keyring()  # VaultLocked
        deleted, hidden = self.commands.delete_exposed_collection()
        log.info("a Secret Service client deleted the collection: %d item(s) deleted, %d hidden again", deleted, hidden)
        return "o", (NO_OBJECT,)

    async def _collection_SearchItems(self, target, sender, after, attributes):
        return "ao", (await self._service_SearchItems(target, sender, after, attributes))[1][:1]

    async def _collection_CreateItem(self, target, sender, after, properties, secret, replace):
        label, attributes = "", {}
        for name, (signature, value) in properties.items():
            if name == f"{ifaces.ITEM}.Label":
                if signature != "s":
                    raise DBusError(INVALID_ARGS, "Label is a string")
                label = value
            elif name == f"{ifaces.ITEM}.Attributes":
                if signature != "a{ss}":
                    raise DBusError(INVALID_ARGS, "Attributes maps strings to strings")
                attributes = value
        value, content_type = self._decode_secret(secret, sender)
        self.vault.unlocked_keyring()  # VaultLocked
        exposed, _ = self.commands.create_exposed(ss.SecretItem(label, value, content_type, attributes), replace)
        return "oo", (item_path(exposed.id), NO_OBJECT)

    # --- org.freedesktop.Secret.Item --------------------------------------------------------------

    async def _item_Delete(self, target, sender, after):
        self.commands.delete_exposed(target)
        return "o", (NO_OBJECT,)

    async def _item_GetSecret(self, target, sender, after, session_path):
        session = self._session(session_path, sender)
        return ifaces.SECRET, (self._secret_struct(session_path, session, self._item(target)),)

    async def _item_SetSecret(self, target, sender, after, secret):
        value, content_type = self._decode_secret(secret, sender)
        self.commands.set_exposed_secret(target, value, content_type)
        return "", ()

    # --- sessions and prompts ---------------------------------------------------------------------

    async def _session_Close(self, target, sender, after):
        entry = self.sessions.get(target)
        if entry is not None and entry.owner == sender:
            del self.sessions[target]
        return "", ()

    def _session(self, path: str, sender: str) -> ss.Session:
        entry = self.sessions.get(path)
        if entry is None or entry.owner != sender:  # another caller's session is no session of this one
            raise DBusError(NO_SESSION, "no such session")
        return entry.session

    def _decode_secret(self, secret: tuple, sender: str) -> tuple[bytes, str]:
        session_path, parameters, value, content_type = secret
        session = self._session(session_path, sender)
        if len(value) > ss.MAX_SECRET_BYTES + 64:
            raise DBusError(INVALID_ARGS, f"a secret is at most {ss.MAX_SECRET_BYTES // 1024} KiB")
        try:
            plain = session.decode(parameters, value)
        except ss.SessionError:
            raise DBusError(INVALID_ARGS, "the secret does not decode in its session") from None
        ss.check_secret(plain, content_type)
        return plain, content_type

    def _secret_struct(self, session_path: str, session: ss.Session, exposed: ExposedItem) -> tuple:
        parameters, value = session.encode(exposed.item.secret)
        return (session_path, parameters, value, exposed.item.content_type)

    def _item_id(self, path: str) -> str | None:
        try:
            kind, target = self._resolve(path)
        except DBusError:
            return None
        return target if kind == "item" else None

    async def _prompt_Prompt(self, target, sender, after, window_id):
        prompt = self.prompts[target]
        if not prompt.started:
            prompt.started = True
            after.append(lambda: self.spawn(self._run_prompt, prompt))
        return "", ()

    async def _prompt_Dismiss(self, target, sender, after):
        prompt = self.prompts[target]
        prompt.cancel.cancel()
        after.append(lambda: self.spawn(self._complete, prompt, True))
        return "", ()

    async def _run_prompt(self, prompt: Prompt) -> None:
        """Wait for the vault to unlock, at most the prompt timeout; then Completed."""
        with prompt.cancel:
            await self._wait_for_unlock(self.options.prompt_timeout)
        await self._complete(prompt, self.vault.locked)

    async def _answer_once_unlocked(self, message: Message, search: WaitingSearch) -> None:
        """Unlock before search: wait for the unlock (asking the person, as a prompt would), at
        most SEARCH_WAIT_LIMIT, then answer: the matches, or IsLocked. No answer if the caller left."""
        try:
            with search.cancel:
                await self._wait_for_unlock(min(self.options.prompt_timeout, SEARCH_WAIT_LIMIT))
                await self.handle(message, waited=True)
        finally:
            self.waiting_searches.remove(search)

    async def _wait_for_unlock(self, timeout: float) -> bool:
        """Wait until the vault unlocks (the person runs `vaultpeer unlock`, or the prompt command
        gives the password), at most ``timeout`` seconds, or until the prompt command is dismissed;
        whether the vault is unlocked."""
        if not self.vault.locked:
            return True
        if self.unlocked.is_set():  # locked, and the lock's event not here yet: wait for the next unlock
            self.unlocked = trio.Event()
        with trio.move_on_after(timeout):
            async with trio.open_nursery() as nursery:
                if self.options.prompt_command:
                    nursery.start_soon(self._follow_asking, nursery.cancel_scope)
                await self.unlocked.wait()
                nursery.cancel_scope.cancel()
        return not self.vault.locked

    async def _follow_asking(self, waiting: trio.CancelScope) -> None:
        """Wait for the prompt command (started if none runs: the person sees one prompt, however
        many wait); when it ends, so does the wait: unlocked, or dismissed (a failing command, a
        wrong password)."""
        asking = self._asking
        if asking is None or asking.finished.is_set():
            asking = self._asking = Asking()
            self.spawn(self._ask, asking)
        asking.waiters += 1
        try:
            await asking.finished.wait()
        finally:
            asking.waiters -= 1
            if asking.waiters == 0:
                asking.cancel.cancel()  # nobody waits any more: take the prompt away
        waiting.cancel()

    async def _ask(self, asking: Asking) -> None:
        """Run the prompt command, at most the prompt timeout; its stdout (one line) is the master
        password."""
        try:
            with asking.cancel, trio.move_on_after(self.options.prompt_timeout):
                await self._run_prompt_command()
        finally:
            asking.finished.set()

    async def _run_prompt_command(self) -> None:
        try:
            result = await trio.run_process(shlex.split(self.options.prompt_command), capture_stdout=True,
                                            capture_stderr=True, stdin=subprocess.DEVNULL, check=False)
        except OSError as exc:
            log.warning("the Secret Service prompt command did not run: %s", exc.strerror or type(exc).__name__)
            return
        if result.returncode != 0 or len(result.stdout) > MAX_PROMPT_OUTPUT:
            log.info("the Secret Service prompt was dismissed (the command exited %d)", result.returncode)
            return
        password = result.stdout.decode("utf-8", "replace").removesuffix("\n").removesuffix("\r")
        try:
            with trio.CancelScope(shield=True):  # an unlock under way finishes whoever stopped waiting
                await self.daemon.unlock(password)
        except VaultpeerError as exc:
            log.warning("the Secret Service prompt did not unlock the vault: %s", exc.code)

    async def _complete(self, prompt: Prompt, dismissed: bool) -> None:
        if prompt.done:
            return
        prompt.done = True
        self.prompts.pop(prompt.path, None)
        result = ("ao", [] if dismissed else prompt.objects)
        await self.send(new_signal(DBusAddress(prompt.path, interface=ifaces.PROMPT), "Completed", "bv",
                                   (dismissed, result)))

    # --- what happens to the vault ------------------------------------------------------------------

    def forget_caller(self, name: str) -> None:
        """A client left the bus: its sessions and prompts go."""
        for path in [p for p, e in self.sessions.items() if e.owner == name]:
            del self.sessions[path]
        for prompt in [p for p in self.prompts.values() if p.owner == name]:
            prompt.cancel.cancel()
            prompt.done = True
            self.prompts.pop(prompt.path, None)
        for search in self.waiting_searches:
            if search.owner == name:
                search.cancel.cancel()

    async def vault_event(self, event: dict) -> None:
        kind = event.get("type")
        if kind == "unlocked":
            self.unlocked.set()
            self.know_items()
            await self._collection_changed(locked=False)
        elif kind == "locked":
            if self.unlocked.is_set():
                self.unlocked = trio.Event()
            self._known = None
            await self._collection_changed(locked=True)
        elif kind == "items.changed" and not self.vault.locked:
            await self._announce_changes()

    def know_items(self) -> None:
        """What is exposed now: the items later signals are told against (nothing is announced
        at an unlock; a client that saw the vault locked reads it again)."""
        try:
            self._known = {e.id: e.revision for e in self.commands.exposed_items()}
        except VaultpeerError:
            self._known = None

    async def _announce_changes(self) -> None:
        """ItemCreated, ItemChanged and ItemDeleted for what changed since the last look (here or
        on another device)."""
        before = self._known
        self.know_items()
        if before is None or self._known is None:
            return
        now = self._known
        collection = DBusAddress(COLLECTION_PATH, interface=ifaces.COLLECTION)
        for item_id, revision in now.items():
            if item_id not in before:
                await self.send(new_signal(collection, "ItemCreated", "o", (item_path(item_id),)))
            elif before[item_id] != revision:
                await self.send(new_signal(collection, "ItemChanged", "o", (item_path(item_id),)))
                await self._properties_changed(item_path(item_id), ifaces.ITEM, {}, ITEM_CHANGES)
        for item_id in before.keys() - now.keys():
            await self.send(new_signal(collection, "ItemDeleted", "o", (item_path(item_id),)))
        if now.keys() != before.keys():
            await self._properties_changed(COLLECTION_PATH, ifaces.COLLECTION, {}, ["Items", "Modified"])
        elif now != before:
            await self._properties_changed(COLLECTION_PATH, ifaces.COLLECTION, {}, ["Modified"])

    async def _collection_changed(self, locked: bool) -> None:
        """Locked changed: what the collection shows changed with it."""
        await self._properties_changed(COLLECTION_PATH, ifaces.COLLECTION, {"Locked": ("b", locked)},
                                       ["Items", "Created", "Modified"])

    async def _properties_changed(self, path: str, interface: str, changed: dict, invalidated: list[str]) -> None:
        """org.freedesktop.DBus.Properties.PropertiesChanged: new values only where they tell
        nothing (Locked); the rest invalidated, for a client that caches to read again."""
        await self.send(new_signal(DBusAddress(path, interface=ifaces.PROPERTIES), "PropertiesChanged", "sa{sv}as",
                                   (interface, changed, invalidated)))


def item_path(item_id: str) -> str:
    return f"{COLLECTION_PATH}/{item_id}"
