"""The JSON shapes of items, history entries, conflicts and peers: one definition for the CLI's
``--json`` output and the daemon's local API, so the two can never drift apart (docs/cli.md,
docs/api.md)."""

from collections.abc import Mapping

from vaultpeer.core.audit import AuditEntry, utc_text
from vaultpeer.core.errors import IntegrityError
from vaultpeer.core.identity import DeviceId
from vaultpeer.core.merge import TITLE
from vaultpeer.core.roster import Member, Roster
from vaultpeer.service.vault import CheckReport, HistoryEntry, ItemSummary, ItemView


#: Device id -> the roster's name for it (``member_names``): who made a revision, as JSON names it.
Names = Mapping[DeviceId, str]


def member_names(roster: Roster) -> dict[DeviceId, str]:
    """The name of every current member (a revoked or unknown device has none: null in JSON)."""
    return {device_id: member.name for device_id, member in roster.members.items()}


def item_json(view: ItemView, names: Names, created: int | None = None) -> dict:
    """``created``: the time of the item's first revision (``Vault.created``)."""
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
        # the displayed head's time and author, and the first revision's time: the authors' claims
        # (docs/threat-model.md)
        "created": created,
        "modified": view.modified,
        "modified_by": str(view.revision.author),
        "modified_by_name": names.get(view.revision.author),
    }


def listing_json(view: "ItemView | ItemSummary") -> dict:
    shown = view.searchable
    return {"id": str(view.id), "title": view.title, "username": shown.username, "url": shown.url,
            "folder": shown.folder, "conflict": view.conflict, "flags": sorted(view.flags),
            "modified": view.modified}


def search_json(view: "ItemView | ItemSummary") -> dict:
    found = view.searchable
    return {"id": str(view.id), "title": view.title, "username": found.username, "url": found.url,
            "folder": found.folder}


def history_json(entry: HistoryEntry, names: Names) -> dict:
    return {
        "revision": str(entry.revision),
        "parents": [str(p) for p in entry.parents],
        "deleted": entry.deleted,
        "current": entry.is_head,
        "title": entry.title,
        "fields": {f.name: f.value for f in entry.fields},
        "secrets": [f.name for f in entry.fields if f.secret],
        "time": entry.time,
        "author": str(entry.revision.author),
        "author_name": names.get(entry.revision.author),
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


def check_json(report: CheckReport) -> dict:
    """`check --json` and the API's vault.check."""
    return {
        "ok": report.ok,
        "database_ok": report.database_ok,
        "revisions_checked": report.revisions_checked,
        "bad_signatures": list(report.bad_signatures),
        "undecryptable": list(report.undecryptable),
        "decrypted": report.decrypted,
        "equivocations": list(report.equivocations),
    }


def audit_entry_json(row) -> dict:
    """An audit log entry as `log --json` and the API's audit.log show it (a ``StoredRow``); a row
    that does not even parse is shown as unreadable (`log --verify` says where the chain breaks)."""
    try:
        return AuditEntry.from_stored(row.seq, row.time, row.event, row.details, row.entry_hash,
                                      row.signature).to_json()
    except IntegrityError:
        seq = row.seq if isinstance(row.seq, int) else None
        time = utc_text(row.time) if isinstance(row.time, int) and row.time >= 0 else None
        return {"seq": seq, "time": time, "event": "unreadable", "details": {},
                "hash": row.entry_hash.hex() if isinstance(row.entry_hash, bytes) else None}
