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


def handler_reads() -> dict[str, set[str]]:
    """The parameters each handler reads, found in its source: ``_param(params, "x")``-style calls
    (any helper called with ``params``, followed into module functions and methods),
    ``"x" in params`` and ``params.get("x")``."""
    import ast

    source = (ROOT / "vaultpeer" / "io" / "handlers.py").read_text()
    tree = ast.parse(source)
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "ApiHandlers")
    methods = {f.name: f for f in cls.body if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))}
    functions = {f.name: f for f in tree.body if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))}

    def is_params(node) -> bool:
        return isinstance(node, ast.Name) and node.id == "params"

    def reads(function, seen: frozenset = frozenset()) -> set[str]:
        found = set()
        for node in ast.walk(function):
            if isinstance(node, ast.Call):
                callee = node.func
                name = callee.id if isinstance(callee, ast.Name) else getattr(callee, "attr", None)
                if len(node.args) >= 2 and is_params(node.args[0]) and isinstance(node.args[1], ast.Constant):
                    found.add(node.args[1].value)
                if isinstance(callee, ast.Attribute) and is_params(callee.value) and callee.attr == "get" \
                        and node.args and isinstance(node.args[0], ast.Constant):
                    found.add(node.args[0].value)
                if any(is_params(a) for a in node.args) and name not in seen:
                    if name in functions:
                        found |= reads(functions[name], seen | {name})
                    elif isinstance(callee, ast.Attribute) and name in methods:
                        found |= reads(methods[name], seen | {name})
            if isinstance(node, ast.Compare) and isinstance(node.left, ast.Constant) \
                    and any(is_params(c) for c in node.comparators):
                found.add(node.left.value)
        return found

    return {name[2:].replace("_", ".", 1): reads(f) for name, f in methods.items() if name.startswith("m_")}


def test_the_parameter_table_is_what_the_handlers_read():
    from vaultpeer.io.handlers import PARAMETERS

    assert {method: set(names) for method, names in PARAMETERS.items()} == handler_reads()
