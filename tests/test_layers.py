"""Issue 16: imports point inward only. The rings, inside out:

* **core** (``vaultpeer.core``): pure; imports only the core (tests/core/test_purity.py also keeps
  I/O modules out of it);
* **service** (``vaultpeer.service`` and ``vaultpeer.api``): the vault and what works on it (store, vault, replication, commands, files, bundles,
  backups, imports, the device's home and key files); imports the core and the service;
* **io** (``vaultpeer.io``): the trio shells (daemon, local API server and handlers, discovery,
  the Noise stream); imports the core, the service and io;
* **front ends**: the CLI, the API client, the demo; may import anything.

A new module must be placed in a ring here before its first test run: an unplaced module fails.
"""

import ast
import functools
from pathlib import Path

import vaultpeer

PACKAGE = Path(vaultpeer.__file__).parent

#: Outside the packages: the local API's contract (method names, error codes), shared by the
#: server (io) and the clients, and so in the service ring.
SERVICE = {"vaultpeer", "vaultpeer.api"}
FRONT_ENDS = {"vaultpeer.__main__", "vaultpeer.client", "vaultpeer.clipboard"}
#: What each ring may import from vaultpeer.
ALLOWED = {
    "core": {"core"},
    "service": {"core", "service"},
    "io": {"core", "service", "io"},
    "front end": {"core", "service", "io", "front end"},
}


def ring(module: str) -> str | None:
    if module == "vaultpeer.core" or module.startswith("vaultpeer.core."):
        return "core"
    if module == "vaultpeer.io" or module.startswith("vaultpeer.io."):
        return "io"
    if module in SERVICE or module == "vaultpeer.service" or module.startswith("vaultpeer.service."):
        return "service"
    if module in FRONT_ENDS or module == "vaultpeer.cli" or module.startswith("vaultpeer.cli."):
        return "front end"
    return None


@functools.cache
def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports_of(path: Path, module: str) -> set[str]:
    """Every vaultpeer module ``path`` imports, absolute or relative, at any depth of the file."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".")[: -node.level] if path.name != "__init__.py" else \
                    module.split(".")[: len(module.split(".")) - node.level + 1]
                base = ".".join(package + ([base] if base else []))
            names.add(base)
            # `from vaultpeer.service import transfer` imports the module vaultpeer.service.transfer
            names |= {f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in modules()}
    return {n for n in names if n == "vaultpeer" or n.startswith("vaultpeer.")}


def test_every_module_has_a_ring():
    assert [m for m in modules() if ring(m) is None] == []


def test_imports_point_inward_only():
    offenders = []
    for module, path in sorted(modules().items()):
        own = ring(module)
        for imported in sorted(imports_of(path, module)):
            target = ring(imported)
            if target is not None and target not in ALLOWED[own]:
                offenders.append(f"{module} ({own}) imports {imported} ({target})")
    assert offenders == []


def test_the_check_would_catch_an_outward_import(tmp_path):
    """The rule is not vacuous: a service module importing the daemon, or io importing the CLI."""
    service = tmp_path / "service.py"
    service.write_text("from vaultpeer.io.daemon import Daemon\nimport vaultpeer.cli\n")
    assert {ring(m) for m in imports_of(service, "vaultpeer.service.vault")} == {"io", "front end"}
    assert not {"io", "front end"} & ALLOWED["service"] and "front end" not in ALLOWED["io"]
