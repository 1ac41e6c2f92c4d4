"""Pure functions over an item's revision graph: heads, causal order, and the displayed head."""

import heapq
from collections.abc import Iterable

from vaultpeer.core.revision import Revision, RevisionId


def heads(revisions: Iterable[Revision]) -> list[Revision]:
    """The revisions that no other revision in the set names as a parent."""
    revisions = list(revisions)
    superseded = {parent for revision in revisions for parent in revision.parents}
    return sorted((r for r in revisions if r.revision_id not in superseded), key=lambda r: r.revision_id)


def causal_order(revisions: Iterable[Revision]) -> list[Revision]:
    """Every revision after its parents; concurrent ones in a fixed order (by revision id).

    The order is the same on every device for the same set, and never depends on a clock.
    """
    by_id = {r.revision_id: r for r in revisions}
    waiting = {rid: sum(1 for p in r.parents if p in by_id) for rid, r in by_id.items()}
    children: dict[RevisionId, list[RevisionId]] = {}
    for rid, revision in by_id.items():
        for parent in revision.parents:
            if parent in by_id:
                children.setdefault(parent, []).append(rid)
    ready = [rid for rid, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    ordered = []
    while ready:
        rid = heapq.heappop(ready)
        ordered.append(by_id[rid])
        for child in children.get(rid, ()):
            waiting[child] -= 1
            if waiting[child] == 0:
                heapq.heappush(ready, child)
    return ordered


def displayed_head(item_heads: Iterable[Revision]) -> Revision:
    """The head shown as current when there are several: live before deleted, then highest id.

    Deterministic, so every device shows the same value; the item is flagged while heads differ.
    """
    return max(item_heads, key=lambda r: (not r.deleted, r.revision_id))
