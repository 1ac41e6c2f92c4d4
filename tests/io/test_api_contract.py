"""Issue 18: the API says what it is (api.info), and what it says is what the daemon has: every
listed method has a handler and every handler is listed, every event type the daemon sends is
listed, and docs/api.md documents every method and event."""

import re
from pathlib import Path

from vaultpeer import __version__
from vaultpeer.api import API_VERSION, EVENTS, METHODS
from vaultpeer.io.handlers import ApiHandlers

ROOT = Path(__file__).resolve().parents[2]


def test_methods_and_handlers_agree():
    handlers = {name[2:].replace("_", ".", 1) for name in dir(ApiHandlers) if name.startswith("m_")}
    # a handler's name is m_<group>_<method>: the first underscore is the dot
    assert handlers == set(METHODS)


def test_every_event_the_daemon_publishes_is_listed():
    sources = "\n".join(p.read_text() for p in (ROOT / "vaultpeer").rglob("*.py"))
    published = set(re.findall(r'"type": "([a-z._]+)"', sources))
    assert published == set(EVENTS)


def test_docs_api_md_names_every_method_and_event():
    doc = (ROOT / "docs" / "api.md").read_text()
    assert [m for m in METHODS if f"| `{m}` |" not in doc] == []
    assert [e for e in EVENTS if f"`{e}`" not in doc] == []


async def test_api_info(root):
    from vaultpeer.client import TrioClient
    from vaultpeer.io.daemon import Daemon, DaemonOptions
    from vaultpeer.service.home import Home

    import trio

    daemon = Daemon(Home(root / "h"), DaemonOptions(listen=None, mdns=False, offline=True,
                                                    socket_path=root / "h" / "api.sock"),
                    allow_insecure_test_kdf=True)
    async with trio.open_nursery() as nursery:
        await nursery.start(daemon.run)
        client = await TrioClient.connect(daemon.socket_path)
        info = await client.call("api.info")
        await client.aclose()
        nursery.cancel_scope.cancel()
    assert info == {"api_version": API_VERSION, "vaultpeer_version": __version__, "methods": list(METHODS),
                    "events": list(EVENTS)}
