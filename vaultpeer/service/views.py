"""The JSON shapes of items, history entries, conflicts and peers: one definition for the CLI's
``--json`` output and the daemon's local API, so the two can never drift apart (docs/cli.md,
docs/api.md)."""

from vaultpeer.core.merge import TITLE
from vaultpeer.core.roster import Member
from vaultpeer.core.search import Searchable
from vaultpeer.service.vault import HistoryEntry, ItemView


def item_json(view: ItemView) -> dict:
    return {
        "id": str(view.id),
        "title": view.title,
        "fields": {f.name: f.value for f in view.fields},
        "revision": str(view.revision),
        "conflict": view.conflict,
        "deleted": view.deleted,
        "flags": sorted(view.flags),
        "secrets": [f.name for f in view.fields if f.secret],
        # heads that show nothing: quarantined (they do not decrypt) or from a revoked device past
        # its cutoff; the item shows what its readable revisions say, and the next edit buries them
        "unreadable": [str(r) for r in view.opaque_heads],
    }


def listing_json(view: ItemView) -> dict:
    return {"id": str(view.id), "title": view.title, "conflict": view.conflict}


def searchable(view: ItemView) -> Searchable:
    """What a search reads of an item (never a secret: see core/search.py)."""
    return Searchable.from_fields(view.title, ((f.name, f.value) for f in view.fields))


def search_json(view: ItemView) -> dict:
    found = searchable(view)
    return {"id": str(view.id), "title": view.title, "username": found.username, "url": found.url,
            "folder": found.folder}


def history_json(entry: HistoryEntry) -> dict:
    return {
        "revision": str(entry.revision),
        "parents": [str(p) for p in entry.parents],
        "deleted": entry.deleted,
        "current": entry.is_head,
        "title": entry.title,
        "fields": {f.name: f.value for f in entry.fields},
        "secrets": [f.name for f in entry.fields if f.secret],
    }


def conflict_json(view: ItemView) -> dict:
    fields, title = {}, None
    for register, candidates in (view.conflicts or {}).items():
        if register == TITLE:
            title = [{"revision": str(c.revision), "value": c.value} for c in candidates]
        else:
            fields[register[1]] = [
                {"revision": str(c.revision), "value": None if c.value is None else c.value[0],
                 "secret": bool(c.value and c.value[1])}
                for c in candidates
            ]
    result = {"id": str(view.id), "title": view.title, "fields": fields, "flags": sorted(view.flags)}
    if title:
        result["title_candidates"] = title
    return result


def member_json(member: Member) -> dict:
    """A vault member as `admit` reports it (`peers --json` adds what the daemon knows of it)."""
    return {"device_id": str(member.device_id), "name": member.name, "os": member.os_description,
            "added_by": str(member.added_by)}
