"""The daemon's connection to the session bus: claim org.freedesktop.secrets, then answer method
calls one after another (each answer is quick; an unlock waits in a prompt task, a search on a
locked vault in a task of its own) and pass the
vault's events on as signals. Loaded only when the daemon runs with --secret-service: the CLI and a
daemon without it never import jeepney.

If another program owns the name (gnome-keyring, KeePassXC), the daemon logs which (its unique
name and process id, from the bus) and carries on without the Secret Service; with ``replace`` it
asks the bus to hand the name over, which works when the owner allowed replacement. vaultpeer
allows it too, and stops serving when it loses the name.
"""

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import trio
from jeepney import HeaderFields, MatchRule, MessageType, message_bus
from jeepney.io.common import RouterClosed
from jeepney.io.trio import open_dbus_connection

from vaultpeer.io.secret_service import SecretServiceOptions
from vaultpeer.io.secret_service.objects import SecretServiceObjects

if TYPE_CHECKING:
    from vaultpeer.io.daemon import Daemon

log = logging.getLogger("vaultpeer.secret_service")

NAME = "org.freedesktop.secrets"
ALLOW_REPLACEMENT, REPLACE_EXISTING, DO_NOT_QUEUE = 1, 2, 4
PRIMARY_OWNER, ALREADY_OWNER = 1, 4
#: How long connecting to the bus and claiming the name may take.
CONNECT_TIMEOUT = 10.0


async def serve_secret_service(daemon: "Daemon", options: SecretServiceOptions, *,
                               task_status=trio.TASK_STATUS_IGNORED) -> None:
    """Serve until cancelled, or until the name is lost; started once the name is ours or known
    to be someone else's. Never fails the daemon: a missing or vanished bus is logged."""
    started = []

    def ready() -> None:
        if not started:
            started.append(True)
            task_status.started()

    try:
        await _serve(daemon, options, ready)
    except* (trio.EndOfChannel, trio.BrokenResourceError, trio.ClosedResourceError, OSError, RouterClosed):
        log.warning("the Secret Service is off: the session bus closed the connection")
    except* trio.TooSlowError:
        log.warning("the Secret Service is off: the session bus did not answer in %d s", CONNECT_TIMEOUT)
    ready()


async def _serve(daemon: "Daemon", options: SecretServiceOptions, ready: Callable[[], None]) -> None:
    try:
        with trio.fail_after(CONNECT_TIMEOUT):
            connection = await open_dbus_connection(options.bus)
    except (OSError, KeyError, ValueError, trio.TooSlowError, RuntimeError) as exc:
        log.warning("the Secret Service is off: no session bus to serve it on (%s)",
                    "DBUS_SESSION_BUS_ADDRESS is not set" if isinstance(exc, KeyError) else type(exc).__name__)
        ready()
        return
    async with connection:
        async with connection.router() as router:
            incoming_send, incoming = trio.open_memory_channel(1024)
            router.filter(MatchRule(type=MessageType.method_call), channel=incoming_send.clone())
            router.filter(MatchRule(type=MessageType.signal, sender="org.freedesktop.DBus"), channel=incoming_send)
            # The filters stay until the router closes, which closes them: removing them while its
            # receiver shuts down too changes the dict it walks (jeepney's trio router, at a stop).
            with trio.fail_after(CONNECT_TIMEOUT):
                await router.send_and_get_reply(message_bus.AddMatch(MatchRule(
                    type="signal", sender="org.freedesktop.DBus", interface="org.freedesktop.DBus",
                    member="NameOwnerChanged")))
                claimed = await _claim(router, options.replace)
            if not claimed:
                ready()
                return
            log.info("serving the Secret Service (%s) as %s", NAME, router.unique_name)
            async with trio.open_nursery() as nursery:
                objects = SecretServiceObjects(daemon, options, router.send, nursery.start_soon)
                nursery.start_soon(_follow_vault, objects, daemon)
                ready()
                async for message in incoming:
                    if message.header.message_type is MessageType.method_call:
                        await objects.handle(message)
                    elif _lost_name(message, router.unique_name):
                        log.warning("the Secret Service is off: another program took %s over", NAME)
                        break
                    else:
                        _departed(message, objects)
                nursery.cancel_scope.cancel()


async def _claim(router, replace: bool) -> bool:
    flags = ALLOW_REPLACEMENT | DO_NOT_QUEUE | (REPLACE_EXISTING if replace else 0)
    reply = await router.send_and_get_reply(message_bus.RequestName(NAME, flags))
    if reply.header.message_type is MessageType.error:
        log.warning("the Secret Service is off: the bus refused %s (%s)", NAME,
                    reply.header.fields.get(HeaderFields.error_name))
        return False
    if reply.body[0] in (PRIMARY_OWNER, ALREADY_OWNER):
        return True
    owner, pid = await _owner(router)
    log.warning("the Secret Service is off: %s belongs to %s (pid %s%s)%s", NAME, owner, pid, _process_name(pid),
                "" if replace else "; --secret-service-replace takes it over if that program allows it")
    return False


async def _owner(router) -> tuple[str, str]:
    """The unique name and process id of the name's current owner, as far as the bus says."""
    reply = await router.send_and_get_reply(message_bus.GetNameOwner(NAME))
    if reply.header.message_type is MessageType.error:
        return "nobody now", "?"
    owner = reply.body[0]
    reply = await router.send_and_get_reply(message_bus.GetConnectionUnixProcessID(owner))
    pid = str(reply.body[0]) if reply.header.message_type is MessageType.method_return else "?"
    return owner, pid


def _process_name(pid: str) -> str:
    try:
        return ", " + Path(f"/proc/{int(pid)}/comm").read_text().strip()
    except (OSError, ValueError):
        return ""


def _lost_name(message, unique_name: str) -> bool:
    fields = message.header.fields
    return fields.get(HeaderFields.member) == "NameLost" and message.body[:1] == (NAME,)


def _departed(message, objects: SecretServiceObjects) -> None:
    """NameOwnerChanged(name, old, ""): a client left; forget its sessions and prompts."""
    fields = message.header.fields
    if fields.get(HeaderFields.member) == "NameOwnerChanged" and len(message.body) == 3:
        name, _old, new = message.body
        if name.startswith(":") and not new:
            objects.forget_caller(name)


async def _follow_vault(objects: SecretServiceObjects, daemon: "Daemon") -> None:
    """Pass the vault's events on as signals. A subscriber that falls behind is dropped by the
    feed: subscribe again, and look at what changed meanwhile."""
    while True:
        events = daemon.events.subscribe().events
        try:
            async for event in events:
                try:
                    await objects.vault_event(event)
                except Exception:  # noqa: BLE001 - an event must not stop the service
                    log.exception("could not pass a vault event on to Secret Service clients")
        finally:
            await events.aclose()
        # whatever the missed events said: a lock or unlock among them, and what changed
        if daemon.vault.locked == objects.unlocked.is_set():
            await objects.vault_event({"type": "locked" if daemon.vault.locked else "unlocked"})
        await objects.vault_event({"type": "items.changed"})
        await trio.sleep(0.1)