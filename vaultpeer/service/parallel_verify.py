"""Checking many revisions' signatures at once, on every core.

An Ed25519 check costs ~100 µs here, so the 100,000 revisions a new device receives take ~10 s of
one core. cryptography releases the GIL while it verifies, so a few threads divide that time by
the number of cores. The work is the same as one ``Revision.verify`` per revision, and the answer
too: every revision passes, or IntegrityError (which one failed is not said).
"""

import os
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

from vaultpeer.core.errors import IntegrityError
from vaultpeer.core.identity import DevicePublicKeys
from vaultpeer.core.revision import Revision

#: Below this many revisions, threads cost more than they save.
PARALLEL_FROM = 64
_WORKERS = max(1, min(4, os.cpu_count() or 1))
_executor: ThreadPoolExecutor | None = None
_lock = threading.Lock()


def verify_revisions(revisions: Sequence[Revision], vault_id: bytes,
                     keys: Sequence[DevicePublicKeys | None]) -> None:
    """Raise IntegrityError unless each revision is signed by its author, whose keys (or None, for
    a device not allowed to author it) are at the same position in ``keys``."""
    if len(revisions) < PARALLEL_FROM or _WORKERS == 1:
        _verify(revisions, vault_id, keys)
        return
    size = -(-len(revisions) // _WORKERS)
    futures = [_pool().submit(_verify, revisions[start:start + size], vault_id, keys[start:start + size])
               for start in range(0, len(revisions), size)]
    for future in futures:  # every chunk is waited for; the first failure is raised
        future.exception()
    for future in futures:
        future.result()


def verified_ahead(revisions: Sequence[Revision], vault_id: bytes,
                   keys: Sequence[DevicePublicKeys | None]) -> dict[int, DevicePublicKeys]:
    """Check signatures before the revisions are admitted (on another thread, while the batch
    before is being stored): ``{id(revision): the keys it verified under}`` if every one with keys
    verified; empty otherwise (admitting them will check again, and fail as it should)."""
    try:
        verify_revisions([r for r, k in zip(revisions, keys, strict=True) if k is not None], vault_id,
                         [k for k in keys if k is not None])
    except IntegrityError:
        return {}
    return {id(r): k for r, k in zip(revisions, keys, strict=True) if k is not None}


def verify_revisions_unless(revisions: Sequence[Revision], vault_id: bytes, keys: Sequence[DevicePublicKeys | None],
                            verified: Mapping[int, DevicePublicKeys] | None) -> None:
    """``verify_revisions``, skipping each revision already checked under exactly these keys
    (``verified_ahead``; the keys looked up now must be the ones it was checked under)."""
    if verified:
        todo = [(r, k) for r, k in zip(revisions, keys, strict=True) if k is None or verified.get(id(r)) != k]
        revisions, keys = [r for r, _ in todo], [k for _, k in todo]
    verify_revisions(revisions, vault_id, keys)


def _verify(revisions: Sequence[Revision], vault_id: bytes, keys: Sequence[DevicePublicKeys | None]) -> None:
    for revision, author_keys in zip(revisions, keys, strict=True):
        revision.verify(vault_id, author_keys)


def _pool() -> ThreadPoolExecutor:
    global _executor
    with _lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="vaultpeer-verify")
        return _executor
