"""Issue 19: `vaultpeer daemon --secret-service` is the desktop's Secret Service, used by unmodified
clients over a private session bus (tests/session_bus.py): `secret-tool` (libsecret), Python
`secretstorage` (plain and DH sessions) and `keyring`. What they store is a vault item with every
value sealed; bad input gets a D-Bus error and changes nothing; a locked vault gives no secret
until it is unlocked (by `vaultpeer unlock`, or the prompt command); another owner of the name is
named in the log and the daemon carries on.

The two-device acceptance is in test_secret_service_sync.py.
"""

import secrets
import subprocess
import sys
import time
from contextlib import ExitStack, closing, contextmanager

import pytest
import secretstorage
from jeepney import DBusAddress, HeaderFields, MatchRule, MessageType, message_bus, new_method_call
from jeepney.io.blocking import open_dbus_connection
from secretstorage.dhcrypto import Session

from daemons import Daemon, wait_until
from helpers import PASSWORD
from session_bus import (
    COLLECTION,
    COLLECTION_IFACE,
    bus_env,
    collection_signals,
    next_signal,
    python_client,
    require_dbus,
    secret_tool,
    session_bus,
)

BUS_NAME = "org.freedesktop.secrets"
ROOT = "/org/freedesktop/secrets"
SERVICE_IFACE = "org.freedesktop.Secret.Service"
ITEM_IFACE = "org.freedesktop.Secret.Item"


@pytest.fixture
def device(world):
    """``device(name, *daemon_args)``: a home with a vault, its own session bus, and its daemon
    serving the Secret Service there, started and unlocked. Yields (daemon, bus address); the
    daemons stop before their buses."""
    require_dbus()
    made: list[Daemon] = []
    with ExitStack() as stack:
        def make(name: str, *extra: str, unlock: bool = True, init: bool = True,
                 address: str | None = None) -> tuple[Daemon, str]:
            if address is None:
                address = stack.enter_context(session_bus(world.root / f"{name}-bus"))
            daemon = world(name, "--secret-service", *extra, mdns=False, env={"DBUS_SESSION_BUS_ADDRESS": address})
            made.append(daemon)
            if init:
                daemon.init()
            daemon.start()
            if unlock and init:
                daemon.unlock()
            return daemon, address

        make.root = world.root
        yield make
        for daemon in made:
            daemon.stop()


def canary(what: str) -> str:
    return f"canary-{what}-{secrets.token_hex(12)}"


def store(address: str, label: str, secret: str, *attributes: str) -> None:
    result = secret_tool(address, "store", f"--label={label}", *attributes, stdin=secret)
    assert result.returncode == 0, result.stderr


def lookup(address: str, *attributes: str) -> str | None:
    result = secret_tool(address, "lookup", *attributes)
    return result.stdout if result.returncode == 0 else None


def call(connection, path: str, interface: str, method: str, signature: str | None = None, body=()):
    """One method call on the Secret Service; the reply message (a return or an error)."""
    message = new_method_call(DBusAddress(path, bus_name=BUS_NAME, interface=interface), method, signature, body)
    return connection.send_and_get_reply(message, timeout=10)


def error_name(reply) -> str | None:
    return reply.header.fields.get(HeaderFields.error_name) if reply.header.message_type is MessageType.error else None


def plain_session(connection) -> Session:
    """A secretstorage session over the plain algorithm (its own open_session prefers DH)."""
    reply = call(connection, ROOT, SERVICE_IFACE, "OpenSession", "sv", ("plain", ("s", "")))
    assert error_name(reply) is None, reply.body
    session = Session()
    session.encrypted = False
    session.object_path = reply.body[1]
    return session


def test_secret_tool_stores_looks_up_searches_and_clears_a_sealed_vault_item(device):
    daemon, bus = device("laptop")
    secret, label, service, user = canary("secret"), canary("label"), canary("service"), canary("user")
    store(bus, label, secret, "service", service, "user", user)

    assert lookup(bus, "service", service, "user", user) == secret
    assert lookup(bus, "service", service) == secret  # a subset of the attributes finds it too
    assert lookup(bus, "service", service, "user", "someone else") is None
    found = secret_tool(bus, "search", "--all", "service", service)
    assert found.returncode == 0 and f"label = {label}" in found.stdout
    assert f"attribute.user = {user}" in found.stderr  # secret-tool prints the attributes there

    # an ordinary vault item: the label its title, the rest fields (all sealed), in the Secret Service folder
    [entry] = daemon.api("item.list")
    item = daemon.item(entry["id"])
    assert item["title"] == label and entry["folder"] == "Secret Service"
    assert item["fields"]["secret"] == secret
    assert item["fields"]["attr:service"] == service and item["fields"]["attr:user"] == user
    assert item["fields"]["secret-service"] == "vaultpeer"
    assert item["fields"]["content-type"].startswith("text/plain")

    # storing again with the same attributes replaces the secret (libsecret asks for replace)
    newer = canary("newer")
    store(bus, label, newer, "service", service, "user", user)
    assert lookup(bus, "service", service, "user", user) == newer
    assert len(daemon.api("item.list")) == 1
    assert len(daemon.api("item.history", item=entry["id"])) == 2

    assert secret_tool(bus, "clear", "service", service).returncode == 0
    assert lookup(bus, "service", service, "user", user) is None
    assert daemon.api("item.list") == []
    assert [e["id"] for e in daemon.api("item.list", deleted=True)] == [entry["id"]]  # restorable, as any item


def test_secretstorage_over_plain_and_dh_sessions(device):
    daemon, bus = device("laptop")
    with closing(open_dbus_connection(bus=bus)) as connection:
        # DH: secretstorage's own session (it asks for dh-ietf1024-sha256-aes128-cbc-pkcs7 first)
        collection = secretstorage.get_default_collection(connection)
        assert not collection.is_locked()  # reached through /aliases/default, which resolves to ours
        assert call(connection, ROOT, SERVICE_IFACE, "ReadAlias", "s", ("default",)).body == (COLLECTION,)
        assert collection.get_label() == "Secret Service"
        binary = bytes(range(256))  # not UTF-8: kept exactly
        created = collection.create_item("binary", {"app": "one", "kind": "key"}, binary, content_type="application/octet-stream")
        assert created.get_secret() == binary
        assert created.get_secret_content_type() == "application/octet-stream"
        assert created.get_attributes() == {"app": "one", "kind": "key"}
        assert created.get_modified() > 0

        # plain: the same item, read and written through a plain session
        plain = secretstorage.Collection(connection, session=plain_session(connection))
        [same] = list(plain.search_items({"app": "one"}))
        assert same.item_path == created.item_path and same.get_secret() == binary
        same.set_secret(b"now text")
        assert created.get_secret() == b"now text"
        same.set_label("renamed")
        same.set_attributes({"app": "two"})
        assert created.get_label() == "renamed" and created.get_attributes() == {"app": "two"}
        assert list(collection.search_items({"app": "one"})) == []
        assert [i.item_path for i in secretstorage.search_items(connection, {"app": "two"})] == [created.item_path]

        second = plain.create_item("second", {"app": "three"}, b"second secret")
        assert {i.item_path for i in collection.get_all_items()} == {created.item_path, second.item_path}
        second.delete()
        assert [i.item_path for i in collection.get_all_items()] == [created.item_path]
    assert daemon.titles() == ["renamed"]


def test_the_collection_signals_created_changed_and_deleted_items(device):
    daemon, bus = device("laptop")
    with closing(open_dbus_connection(bus=bus)) as connection, collection_signals(connection) as signals:
        store(bus, "signalled", "one", "service", "signals")
        [entry] = daemon.api("item.list")
        path = f"{COLLECTION}/{entry['id']}"
        assert next_signal(connection, signals) == ("ItemCreated", path)
        store(bus, "signalled", "two", "service", "signals")
        assert next_signal(connection, signals) == ("ItemChanged", path)
        daemon.add("not exposed", password="x")  # no signal: clients do not see it
        daemon.edit("signalled", note="edited through the local API")  # a change from any front end
        assert next_signal(connection, signals) == ("ItemChanged", path)
        assert secret_tool(bus, "clear", "service", "signals").returncode == 0
        assert next_signal(connection, signals) == ("ItemDeleted", path)


def test_properties_changed_tells_caching_clients_what_to_read_again(device):
    """org.freedesktop.DBus.Properties.PropertiesChanged (GDBus proxies, as libsecret's, cache
    properties by it): the collection's Locked with its value, the rest invalidated."""
    daemon, bus = device("laptop")
    store(bus, "cached", "one", "service", "cache")
    [entry] = daemon.api("item.list")
    item = f"{COLLECTION}/{entry['id']}"
    rule = MatchRule(type="signal", interface="org.freedesktop.DBus.Properties", member="PropertiesChanged")
    with closing(open_dbus_connection(bus=bus)) as connection:
        connection.send_and_get_reply(message_bus.AddMatch(rule), timeout=10)
        with connection.filter(rule, bufsize=64) as changes:
            def next_change() -> tuple:
                message = connection.recv_until_filtered(changes, timeout=10)
                return (message.header.fields[HeaderFields.path], *message.body)

            daemon.lock()
            assert next_change() == (COLLECTION, COLLECTION_IFACE, {"Locked": ("b", True)},
                                     ["Items", "Created", "Modified"])
            daemon.unlock()
            assert next_change() == (COLLECTION, COLLECTION_IFACE, {"Locked": ("b", False)},
                                     ["Items", "Created", "Modified"])
            store(bus, "cached", "two", "service", "cache")  # a new revision of the item
            assert next_change() == (item, ITEM_IFACE, {}, ["Label", "Attributes", "Modified"])
            assert next_change() == (COLLECTION, COLLECTION_IFACE, {}, ["Modified"])
            store(bus, "another", "three", "service", "cache-2")
            assert next_change() == (COLLECTION, COLLECTION_IFACE, {}, ["Items", "Modified"])


def test_keyring_sets_gets_and_deletes_a_password(device):
    daemon, bus = device("laptop")
    secret = canary("keyring")
    code = ("import sys, keyring\n"
            "action, service, user = sys.argv[1:4]\n"
            "if action == 'set': keyring.set_password(service, user, sys.stdin.readline().strip())\n"
            "elif action == 'get': print(keyring.get_password(service, user))\n"
            "else: keyring.delete_password(service, user)\n")

    def run(*args: str, stdin: str = "") -> str:
        result = python_client(bus, code, *args, stdin=stdin)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    run("set", "pypi", "alice", stdin=secret + "\n")
    assert run("get", "pypi", "alice") == secret
    assert lookup(bus, "service", "pypi", "username", "alice") == secret  # keyring's attributes, seen by libsecret
    run("delete", "pypi", "alice")
    assert run("get", "pypi", "alice") == "None"
    assert daemon.api("item.list") == []


def test_bad_input_gets_a_dbus_error_and_changes_nothing(device):
    daemon, bus = device("laptop")
    store(bus, "kept", "kept secret", "service", "kept")
    before = daemon.api("item.list")
    with closing(open_dbus_connection(bus=bus)) as connection:
        session = plain_session(connection).object_path
        item = call(connection, ROOT, SERVICE_IFACE, "SearchItems", "a{ss}", ({"service": "kept"},)).body[0][0]
        properties = {f"{ITEM_IFACE}.Label": ("s", "x"), f"{ITEM_IFACE}.Attributes": ("a{ss}", {"a": "b"})}

        refusals = {
            # wrong types: a string where the secret struct goes; a Label that is not a string
            "wrong signature": call(connection, COLLECTION, COLLECTION_IFACE, "CreateItem", "a{sv}sb",
                                    (properties, "secret", False)),
            "wrong variant": call(connection, COLLECTION, COLLECTION_IFACE, "CreateItem", "a{sv}(oayays)b",
                                  ({f"{ITEM_IFACE}.Label": ("u", 7)}, (session, b"", b"v", "text/plain"), False)),
            "wrong attribute": call(connection, item, "org.freedesktop.DBus.Properties", "Set", "ssv",
                                    (ITEM_IFACE, "Attributes", ("s", "not a dict"))),
            "huge secret": call(connection, COLLECTION, COLLECTION_IFACE, "CreateItem", "a{sv}(oayays)b",
                                (properties, (session, b"", b"x" * (10 * 1024 * 1024), "text/plain"), False)),
            "unknown session": call(connection, COLLECTION, COLLECTION_IFACE, "CreateItem", "a{sv}(oayays)b",
                                    (properties, (f"{ROOT}/session/s999", b"", b"v", "text/plain"), False)),
            "unknown session read": call(connection, item, ITEM_IFACE, "GetSecret", "o", (f"{ROOT}/session/nope",)),
            "unknown object": call(connection, f"{COLLECTION}/{'0' * 32}", ITEM_IFACE, "GetSecret", "o", (session,)),
            "unknown path": call(connection, f"{ROOT}/elsewhere", ITEM_IFACE, "Delete"),
            "unknown method": call(connection, ROOT, SERVICE_IFACE, "Explode"),
            "unknown algorithm": call(connection, ROOT, SERVICE_IFACE, "OpenSession", "sv", ("rot13", ("s", ""))),
            "bad DH key": call(connection, ROOT, SERVICE_IFACE, "OpenSession", "sv",
                               ("dh-ietf1024-sha256-aes128-cbc-pkcs7", ("ay", b"\x01"))),
            "label on two lines": call(connection, item, "org.freedesktop.DBus.Properties", "Set", "ssv",
                                       (ITEM_IFACE, "Label", ("s", "two\nlines"))),
            "read-only": call(connection, item, "org.freedesktop.DBus.Properties", "Set", "ssv",
                              (ITEM_IFACE, "Created", ("t", 5))),
        }
        names = {what: error_name(reply) for what, reply in refusals.items()}
        assert names == {
            "wrong signature": "org.freedesktop.DBus.Error.InvalidArgs",
            "wrong variant": "org.freedesktop.DBus.Error.InvalidArgs",
            "wrong attribute": "org.freedesktop.DBus.Error.InvalidArgs",
            "huge secret": "org.freedesktop.DBus.Error.InvalidArgs",
            "unknown session": "org.freedesktop.Secret.Error.NoSession",
            "unknown session read": "org.freedesktop.Secret.Error.NoSession",
            "unknown object": "org.freedesktop.Secret.Error.NoSuchObject",
            "unknown path": "org.freedesktop.Secret.Error.NoSuchObject",
            "unknown method": "org.freedesktop.DBus.Error.UnknownMethod",
            "unknown algorithm": "org.freedesktop.DBus.Error.NotSupported",
            "bad DH key": "org.freedesktop.DBus.Error.InvalidArgs",
            "label on two lines": "org.freedesktop.DBus.Error.InvalidArgs",
            "read-only": "org.freedesktop.DBus.Error.PropertyReadOnly",
        }
        # another client's session is no session of this one
        with closing(open_dbus_connection(bus=bus)) as other:
            reply = call(other, item, ITEM_IFACE, "GetSecret", "o", (session,))
            assert error_name(reply) == "org.freedesktop.Secret.Error.NoSession"
        # the service still answers, and nothing changed
        assert lookup(bus, "service", "kept") == "kept secret"
        introspection = call(connection, COLLECTION, "org.freedesktop.DBus.Introspectable", "Introspect").body[0]
        assert '<interface name="org.freedesktop.Secret.Collection">' in introspection
    assert daemon.api("item.list") == before
    assert daemon.running


def test_a_locked_vault_gives_no_secret_until_vaultpeer_unlock(device):
    daemon, bus = device("laptop", "--secret-service-prompt-timeout", "3")
    store(bus, "token", "locked away", "service", "locked")
    daemon.lock()
    # unlock before search: the search waits for the unlock (the prompt timeout here), then IsLocked
    started = time.monotonic()
    result = secret_tool(bus, "lookup", "service", "locked")
    assert result.returncode != 0 and result.stdout == "" and "locked" in result.stderr
    assert 2.5 < time.monotonic() - started < 15
    with closing(open_dbus_connection(bus=bus)) as connection:
        locked = call(connection, COLLECTION, "org.freedesktop.DBus.Properties", "Get", "ss", (COLLECTION_IFACE, "Locked"))
        assert locked.body[0] == ("b", True)
        reply = call(connection, COLLECTION, COLLECTION_IFACE, "CreateItem", "a{sv}(oayays)b",
                     ({}, (plain_session(connection).object_path, b"", b"v", "text/plain"), False))
        assert error_name(reply) == "org.freedesktop.Secret.Error.IsLocked"

        # Unlock gives a prompt; nobody answers it in time: Completed(dismissed=true)
        assert completed(connection, wait_for=None) == (True, ("ao", []))
        # the person runs `vaultpeer unlock` while a prompt waits: Completed(false, [the collection])
        assert completed(connection, wait_for=lambda: daemon.ok("unlock", "--password-stdin", stdin=PASSWORD + "\n")) \
            == (False, ("ao", [COLLECTION]))
    assert lookup(bus, "service", "locked") == "locked away"


def test_a_search_on_a_locked_vault_is_answered_once_vaultpeer_unlock_runs(device):
    """The attributes are sealed, so a locked daemon cannot tell which items match: the search is
    answered when the person unlocks, and the bus answers everyone else meanwhile."""
    daemon, bus = device("laptop")
    store(bus, "token", "found after the unlock", "service", "waits")
    daemon.lock()
    with lookups_in_background(bus, 2, "service", "waits") as waiting:
        time.sleep(1.0)
        assert all(process.poll() is None for process in waiting)  # waiting for the unlock
        with closing(open_dbus_connection(bus=bus)) as connection:  # the bus is not blocked
            locked = call(connection, COLLECTION, "org.freedesktop.DBus.Properties", "Get", "ss",
                          (COLLECTION_IFACE, "Locked"))
            assert locked.body[0] == ("b", True)
        daemon.ok("unlock", "--password-stdin", stdin=PASSWORD + "\n")
        assert answers(waiting) == ["found after the unlock"] * 2


@contextmanager
def lookups_in_background(bus: str, count: int, *attributes: str):
    """``count`` `secret-tool lookup` processes at once, killed at the end whatever happened."""
    processes = [subprocess.Popen(["secret-tool", "lookup", *attributes], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, env=bus_env(bus)) for _ in range(count)]
    try:
        yield processes
    finally:
        for process in processes:
            process.kill()
            process.wait()


def answers(processes: list[subprocess.Popen], timeout: float = 15) -> list[str]:
    """What each lookup printed; each must succeed."""
    printed = []
    for process in processes:
        out, err = process.communicate(timeout=timeout)
        assert process.returncode == 0, err
        printed.append(out)
    return printed


def test_a_search_on_a_locked_vault_runs_the_prompt_command_once(device):
    daemon, bus = device("laptop")
    store(bus, "token", "asked for", "service", "asks")
    runs = device.root / "prompt-runs"
    ask = device.root / "ask.sh"
    # (a search that comes after the unlock needs no prompt: a short one is enough)
    ask.write_text(f"#!/bin/sh\necho run >> {runs}\nsleep 0.2\necho '{PASSWORD}'\n")
    ask.chmod(0o700)
    daemon.stop()
    daemon.extra += ["--secret-service-prompt", str(ask)]
    daemon.start()  # locked
    with lookups_in_background(bus, 3, "service", "asks") as searches:
        assert answers(searches) == ["asked for"] * 3
    assert runs.read_text() == "run\n"  # one prompt for the three searches
    assert daemon.status()["locked"] is False


def test_a_caller_that_leaves_while_its_search_waits_takes_its_prompt_away(device):
    daemon, bus = device("laptop")
    pid_file = device.root / "prompt-pid"
    ask = device.root / "ask-slowly.sh"
    ask.write_text(f"#!/bin/sh\necho $$ > {pid_file}\nexec sleep 60\n")
    ask.chmod(0o700)
    assert daemon.stop() == 0  # a clean stop with the Secret Service on
    daemon.extra += ["--secret-service-prompt", str(ask)]
    daemon.start()  # locked
    with closing(open_dbus_connection(bus=bus)) as connection:
        search = new_method_call(DBusAddress(ROOT, bus_name=BUS_NAME, interface=SERVICE_IFACE), "SearchItems",
                                 "a{ss}", ({"service": "gone"},))
        connection.send(search)
        assert wait_until(lambda: pid_file.exists() and pid_file.read_text().strip(), 10)
        pid = int(pid_file.read_text())
        assert process_alive(pid)
    # the caller left the bus: nobody waits for the prompt, so it is taken away
    assert wait_until(lambda: not process_alive(pid), 10)
    with closing(open_dbus_connection(bus=bus)) as connection:  # and the service answers as before
        locked = call(connection, COLLECTION, "org.freedesktop.DBus.Properties", "Get", "ss", (COLLECTION_IFACE, "Locked"))
        assert locked.body[0] == ("b", True)
    assert "Traceback" not in daemon.log.read_text()  # the stop above included: jeepney's router shut down cleanly


def process_alive(pid: int) -> bool:
    try:
        state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def completed(connection, wait_for) -> tuple:
    """Ask to unlock the collection, show the prompt, run ``wait_for`` (if any), and return the
    prompt's Completed signal's body."""
    reply = call(connection, ROOT, SERVICE_IFACE, "Unlock", "ao", ([COLLECTION],))
    unlocked, prompt = reply.body
    assert unlocked == [] and prompt.startswith(f"{ROOT}/prompt/")
    rule = MatchRule(type="signal", interface="org.freedesktop.Secret.Prompt", member="Completed", path=prompt)
    connection.send_and_get_reply(message_bus.AddMatch(rule), timeout=10)
    with connection.filter(rule) as signals:
        assert error_name(call(connection, prompt, "org.freedesktop.Secret.Prompt", "Prompt", "s", ("",))) is None
        if wait_for is not None:
            wait_for()
        return connection.recv_until_filtered(signals, timeout=20).body


def test_the_prompt_command_gives_the_password(device):
    daemon, bus = device("laptop")
    answer = device.root / "answer"
    answer.write_text(PASSWORD + "\n")
    daemon.stop()
    daemon.extra += ["--secret-service-prompt", f"cat {answer}"]
    daemon.start()
    with closing(open_dbus_connection(bus=bus)) as connection:
        assert completed(connection, wait_for=None) == (False, ("ao", [COLLECTION]))
    assert daemon.status()["locked"] is False
    # a command that fails is a dismissal, and the vault stays locked
    daemon.stop()
    daemon.extra[-1] = "false"
    daemon.start()
    with closing(open_dbus_connection(bus=bus)) as connection:
        assert completed(connection, wait_for=None) == (True, ("ao", []))
    # a search is dismissed with it: answered IsLocked at once, not after the 120 s prompt timeout
    started = time.monotonic()
    result = secret_tool(bus, "lookup", "service", "anything")
    assert result.returncode != 0 and result.stdout == "" and time.monotonic() - started < 10
    assert daemon.status()["locked"] is True


def test_another_owner_of_the_name_is_named_and_the_daemon_carries_on(device):
    first, bus = device("laptop")
    store(bus, "first", "from the first", "service", "owner")
    second, _ = device("desktop", address=bus)
    assert wait_until(lambda: "org.freedesktop.secrets belongs to :1." in second.log_tail(), 10), second.log_tail()
    assert f"(pid {first.process.pid}" in second.log_tail()
    assert second.status()["locked"] is False  # carries on without it
    assert lookup(bus, "service", "owner") == "from the first"

    third, _ = device("phone", "--secret-service-replace", address=bus)
    assert wait_until(lambda: "another program took org.freedesktop.secrets over" in first.log_tail(), 10)
    assert lookup(bus, "service", "owner") is None  # the phone's vault answers now: its own items
    store(bus, "third", "from the phone", "service", "owner")
    assert third.titles() == ["third"] and first.titles() == ["first"]
    assert first.running and first.status()["locked"] is False


def test_a_person_exposes_and_hides_an_item_of_their_own(device):
    daemon, bus = device("laptop")
    daemon.add("My login", username="me", password="own password", **{"attr:service": "mine"})
    assert lookup(bus, "service", "mine") is None  # not handed to every process by default

    daemon.ok("edit", "My login", "--expose-to-secret-service")
    assert lookup(bus, "service", "mine") == "own password"
    assert daemon.item("My login")["fields"]["secret-service"] == "vaultpeer"
    assert "already shown" in daemon.ok("edit", "My login", "--expose-to-secret-service")

    # a client's new secret for it is its password
    with closing(open_dbus_connection(bus=bus)) as connection:
        [item] = list(secretstorage.search_items(connection, {"service": "mine"}))
        item.set_secret(b"changed by an app")
    assert daemon.item("My login")["fields"]["password"] == "changed by an app"

    daemon.ok("edit", "My login", "--hide-from-secret-service")
    assert lookup(bus, "service", "mine") is None
    assert "secret-service" not in daemon.item("My login")["fields"]


def test_no_value_appears_in_clear_in_any_file_or_log(device):
    """The canary approach of test_canaries.py: what clients store is sealed in the homes, the
    SQLite files and the daemon's debug log."""
    daemon, bus = device("laptop", "-v")
    values = {name: canary(name) for name in ("secret", "label", "attribute", "dh-secret", "dh-label", "updated")}
    store(bus, values["label"], values["secret"], "service", values["attribute"])
    with closing(open_dbus_connection(bus=bus)) as connection:
        collection = secretstorage.get_default_collection(connection)
        collection.create_item(values["dh-label"], {"service": values["attribute"] + "2"}, values["dh-secret"].encode())
    store(bus, values["label"], values["updated"], "service", values["attribute"])
    assert lookup(bus, "service", values["attribute"]) == values["updated"]
    values["attribute-2"] = values["attribute"] + "2"

    def leaks() -> list[str]:
        found = []
        for path in device.root.rglob("*"):
            if path.is_file() and not path.is_socket():
                data = path.read_bytes()
                for name, value in values.items():
                    if any(form in data for form in (value.encode(), value.encode("utf-16-le"),
                                                     value.encode().hex().encode())):
                        found.append(f"{name} in {path.relative_to(device.root)}")
        return found

    assert leaks() == []
    daemon.stop()  # the WAL checkpointed, the log complete
    assert leaks() == []
    assert "serving the Secret Service" in daemon.log.read_text()


def test_without_a_bus_the_daemon_says_so_and_runs(world):
    daemon = world("laptop", "--secret-service", mdns=False, env={"DBUS_SESSION_BUS_ADDRESS": "unix:path=/nonexistent/bus"})
    daemon.init()
    daemon.start()
    assert wait_until(lambda: "the Secret Service is off" in daemon.log_tail(), 10)
    assert daemon.status()["locked"] is True


def test_only_a_daemon_with_the_secret_service_loads_jeepney():
    code = ("import sys\n"
            "from vaultpeer.io.daemon import Daemon, DaemonOptions\n"
            "import vaultpeer.cli.app\n"
            "print('jeepney' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout == "False\n", result.stderr


def test_the_secret_service_options_need_secret_service(world):
    daemon = world("laptop", mdns=False)
    result = daemon.cli("daemon", "--offline", "--secret-service-replace")
    assert result.returncode == 2 and "--secret-service" in result.stderr


def test_round_trip_times(device):
    """The numbers docs/secret-service.md quotes (printed with -s): a `secret-tool lookup`, most of
    it the process's own start."""
    _, bus = device("laptop")
    store(bus, "timed", "timed secret", "service", "timed")
    times = []
    for _ in range(5):
        start = time.monotonic()
        assert lookup(bus, "service", "timed") == "timed secret"
        times.append(time.monotonic() - start)
    print(f"secret-tool lookup: median {sorted(times)[2] * 1000:.0f} ms")
    assert sorted(times)[2] < 5



def test_deleting_the_collection_deletes_what_clients_stored_and_only_hides_the_persons_own(device):
    """Collection.Delete (seahorse's "delete keyring"): the items clients stored are deleted, and
    restorable like any deleted item; a login of the person's own that was shown to clients is
    hidden again, never deleted. The collection stays, and takes new items at once."""
    daemon, bus = device("laptop")
    store(bus, "Token A", "secret-a", "service", "a")
    store(bus, "Token B", "secret-b", "service", "b")
    daemon.add("My login", username="me", password="own password", **{"attr:service": "mine"})
    daemon.ok("edit", "My login", "--expose-to-secret-service")
    with closing(open_dbus_connection(bus=bus)) as connection:
        reply = call(connection, COLLECTION, COLLECTION_IFACE, "Delete")
        assert error_name(reply) is None and reply.body == ("/",), reply.body
    assert daemon.titles() == ["My login"]
    assert daemon.item("My login")["fields"]["password"] == "own password"
    assert "secret-service" not in daemon.item("My login")["fields"]
    assert all(lookup(bus, "service", s) is None for s in ("a", "b", "mine"))
    assert sorted(i["title"] for i in daemon.api("item.list", deleted=True)) == ["Token A", "Token B"]
    daemon.ok("restore", "Token A")
    assert lookup(bus, "service", "a") == "secret-a"
    store(bus, "Token C", "secret-c", "service", "c")
    assert lookup(bus, "service", "c") == "secret-c"


def test_an_items_created_time_is_its_first_revisions(device):
    daemon, bus = device("laptop")
    store(bus, "Dated", "one", "service", "dated")
    with closing(open_dbus_connection(bus=bus)) as connection:
        [item] = list(secretstorage.search_items(connection, {"service": "dated"}))
        created = item.get_created()
        assert created == daemon.item("Dated")["created"]
        item.set_secret(b"two")
        assert item.get_created() == created and item.get_modified() >= created
        collection = secretstorage.get_default_collection(connection)
        assert collection._collection.get_property("Created") == created  # its oldest item's
