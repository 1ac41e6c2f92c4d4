"""Import and export against a vault: what the CLI (without a daemon) and the daemon's API share.

The formats themselves are in ``vaultpeer.core.interchange`` (CSV, Bitwarden JSON) and
``vaultpeer.service.kdbx`` (KeePass). Here: deciding what to import against what the vault
holds and writing it as one batch; collecting the items to export. The files themselves (a
bounded input file; an export private from its first byte) are ``vaultpeer.service.user_files``.
"""

import json
import secrets as secrets_module
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from vaultpeer.core.errors import InvalidInput, NoVault, NotFound, VaultLocked
from vaultpeer.core.interchange import MAX_ENTRIES, ImportEntry, Notice, display_title, known_sources, plan_import
from vaultpeer.service.vault import Vault
from vaultpeer.service.views import item_json, member_names


def import_entries(vault: Vault, entries: Iterable[ImportEntry],
                   progress: Callable[[int], None] | None = None, *, source_format: str | None = None) -> dict:
    """Import entries as one batch of new items; skip those already imported (their source key is
    in an item, deleted ones included) and those that cannot be items. Returns the report:
    ``{"imported", "skipped": [{"title"?, "reason"}], "items": [{"id", "title"}]}``. The audit log
    records the count and ``source_format`` (kdbx, bitwarden, csv), nothing of the entries."""
    views = [*vault.list_items(), *vault.list_items(deleted=True)]
    known = known_sources((str(v.id), v.deleted, v.content.field_map()) for v in views)
    plan = plan_import(entries, known)
    recorded_format = source_format if source_format in ("kdbx", "bitwarden", "csv") else "unknown"
    with vault.transaction():  # the items and their audit entry, together
        added = vault.add_many(plan.contents, progress=progress)
        vault.audit("items.imported", via=vault.audit_via, format=recorded_format, count=len(added),
                    skipped=len(plan.skipped))
    return {
        "imported": len(added),
        "skipped": [notice.to_json() for notice in plan.skipped],
        "items": [{"id": str(view.id), "title": view.title} for view in added],
    }


def export_items(vault: Vault) -> list[dict]:
    """Every item that is not deleted, in the ``get --json`` shape, heads' signatures checked (as
    `get` does: what leaves the vault is verified). An item in conflict carries the value shown."""
    items, names = [], member_names(vault.roster)
    for view in vault.list_items():
        vault.items.verify_heads(view.id)
        items.append(item_json(view, names, vault.created(view.id)))
    return items


# --- the daemon's staged imports --------------------------------------------------------------

#: What one ``item.import`` request carries at most: well under the API's 1 MiB line.
CHUNK_BYTES = 768 * 1024
TOO_LARGE_FOR_DAEMON = "too large to send to the daemon (stop it, then import without it)"


def chunk_entries(entries: Iterable[ImportEntry], limit: int = CHUNK_BYTES) -> tuple[list[list[dict]], list[dict]]:
    """Entries in the API's shape, grouped into requests of at most ``limit`` bytes of JSON; and
    the skip notices of entries too large for any request."""
    chunks: list[list[dict]] = []
    current: list[dict] = []
    size = 0
    too_large = []
    for entry in entries:
        data = entry.to_json()
        length = len(json.dumps(data)) + 2  # as the client encodes it (ASCII escapes), plus ", "
        if length > limit:
            too_large.append(Notice(display_title(entry), TOO_LARGE_FOR_DAEMON).to_json())
            continue
        if current and size + length > limit:
            chunks.append(current)
            current, size = [], 0
        current.append(data)
        size += length
    if current:
        chunks.append(current)
    return chunks, too_large



@dataclass
class _Batch:
    entries: list[ImportEntry] = field(default_factory=list)
    size: int = 0
    touched: float = 0.0


class StagedImports:
    """Imports sent to the daemon in several calls, committed in one batch by the last call.

    An API request line holds at most 1 MiB, so a large import arrives in parts: each part but the
    last is staged under a random batch token (``"more": true``); the last commits them all in one
    transaction. Staged entries are plaintext in the daemon's memory: they are bounded (entries,
    characters, open batches), dropped after ``ttl`` seconds without use, and when the vault locks.
    """

    MAX_BATCHES = 4
    MAX_CHARS = 256 * 1024 * 1024

    def __init__(self, clock: Callable[[], float] = time.monotonic, ttl: float = 600.0):
        self._clock = clock
        self._ttl = ttl
        self._batches: dict[str, _Batch] = {}

    def stage(self, token: str | None, entries: Sequence[ImportEntry]) -> str:
        self._prune()
        if token is None:
            if len(self._batches) >= self.MAX_BATCHES:
                raise InvalidInput("too many imports in progress: finish or abandon one first")
            token = secrets_module.token_hex(16)
            self._batches[token] = _Batch()
        batch = self._get(token)
        size = sum(len(e.title) + sum(len(n) + len(v) for n, v in e.fields) for e in entries)
        if len(batch.entries) + len(entries) > MAX_ENTRIES or \
                sum(b.size for b in self._batches.values()) + size > self.MAX_CHARS:
            del self._batches[token]
            raise InvalidInput(f"an import holds at most {MAX_ENTRIES} entries and "
                               f"{self.MAX_CHARS // (1024 * 1024)} Mi characters")
        batch.entries.extend(entries)
        batch.size += size
        batch.touched = self._clock()
        return token

    def take(self, token: str) -> list[ImportEntry]:
        self._prune()
        self._get(token)
        return self._batches.pop(token).entries

    def count(self, token: str) -> int:
        return len(self._get(token).entries)

    def clear(self) -> None:
        self._batches.clear()

    def _get(self, token: str) -> _Batch:
        batch = self._batches.get(token)
        if batch is None:
            raise NotFound("no such import batch (it expired, or the vault was locked): start the import again")
        return batch

    def _prune(self) -> None:
        now = self._clock()
        for token in [t for t, b in self._batches.items() if now - b.touched > self._ttl]:
            del self._batches[token]


def require_unlocked(vault: Vault) -> None:
    if not vault.initialized:
        raise NoVault()
    if vault.locked:
        raise VaultLocked()
