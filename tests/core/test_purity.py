"""The pure core must not do I/O: no trio, sockets, SQLite or zeroconf, directly or indirectly."""

import ast
import subprocess
import sys
from pathlib import Path

import vaultpeer.core

FORBIDDEN = {"trio", "socket", "sqlite3", "_sqlite3", "zeroconf", "asyncio", "threading", "selectors", "ssl"}
#: What may not even be loaded indirectly. `threading` is missing on purpose: cryptography's OpenSSL
#: binding (loaded by noiseprotocol) imports it for an internal lock, which is no I/O. The core's own
#: source may still not import it (the AST test below).
FORBIDDEN_LOADED = FORBIDDEN - {"threading"}
CORE_DIR = Path(vaultpeer.core.__file__).parent
CORE_MODULES = sorted(f"vaultpeer.core.{p.stem}" for p in CORE_DIR.glob("*.py") if p.stem != "__init__")


def test_core_modules_exist():
    assert "vaultpeer.core.revision" in CORE_MODULES and len(CORE_MODULES) >= 8


def test_core_source_imports_nothing_forbidden():
    offenders = []
    for path in CORE_DIR.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in FORBIDDEN]
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("vaultpeer.") \
                    and not node.module.startswith("vaultpeer.core"):
                offenders.append(f"{path.name}: {node.module} (outside the core)")
    assert offenders == []


def test_importing_the_core_loads_no_io_module():
    """Catches indirect imports too: a fresh interpreter imports every core module and reports."""
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in CORE_MODULES)
        + f"print(sorted(set(sys.modules) & set({sorted(FORBIDDEN_LOADED)!r})))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
