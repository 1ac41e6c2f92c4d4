"""Moving items in from other password managers and out again: the pure part.

Every format is first turned into a neutral list of :class:`ImportEntry` (a title, ordered fields,
the names of extra secret fields, and a stable **source key**). Then :func:`plan_import` decides,
against the keys the vault already holds, which entries become items and why the others are
skipped. File reading and KeePass (pykeepass) live outside the core (``vaultpeer.service.transfer``,
``vaultpeer.service.kdbx``); here everything is text, dicts and values.

The source key is what makes importing twice import nothing twice: it is kept inside each imported
item, as the field :data:`SOURCE_FIELD` (sealed with the rest of the item, synced with it, never
in cleartext anywhere). Keys: ``kdbx:<entry uuid>``, ``bitwarden:<item id>``,
``csv:<hash of the row's mapped content>``. An item exported to a ``.kdbx`` keeps its item id as the
entry's UUID, so importing that file back into the same vault finds every entry already there.

Nothing here puts a value in a repr or an error message: a file's contents are secrets.
"""

import csv
import hashlib
import io
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone

from vaultpeer.core import encoding
from vaultpeer.core.errors import InvalidInput
from vaultpeer.core.item import (
    MAX_CONTENT_BYTES,
    MAX_FIELD_NAME_CHARS,
    MAX_FIELDS,
    MAX_TITLE_CHARS,
    Field,
    ItemContent,
    is_secret_by_default,
    is_valid_time,
)
from vaultpeer.core.text import holds_lone_surrogate

#: The field that records where an imported item came from (see the module docstring).
SOURCE_FIELD = "import-source"
#: Where a KeePass group path or a Bitwarden folder goes ("Internet/Email" for nested groups).
FOLDER_FIELD = "folder"
#: KeePass tags, joined with ", ".
TAGS_FIELD = "tags"
#: One import reads at most this many entries.
MAX_ENTRIES = 100_000
MAX_SOURCE_CHARS = 200

ALREADY_IMPORTED = "already imported"
ALREADY_IMPORTED_DELETED = "already imported (the item is deleted: `vaultpeer restore` brings it back)"
EXPORTED_FROM_HERE = "already in this vault (the file was exported from it)"
DUPLICATE_IN_FILE = "a duplicate of an earlier entry in this file"
EMPTY_ENTRY = "no title and no fields"
UNTITLED = "Untitled"


@dataclass(frozen=True, repr=False)
class ImportEntry:
    """One entry of a file, in vaultpeer's terms. ``fields`` keeps the file's order; empty values
    are dropped when it becomes an item. ``secrets`` names fields to mask besides ``password`` and
    ``totp`` (KeePass protected fields, Bitwarden hidden fields)."""

    title: str
    fields: tuple[tuple[str, str], ...]
    source: str
    secrets: frozenset[str] = frozenset()
    #: When the source says the entry was last changed (unix seconds), or None: the item's first
    #: revision carries it (else the time of the import).
    time: int | None = None

    def __repr__(self) -> str:
        return f"ImportEntry(redacted, {len(self.fields)} fields)"

    def to_json(self) -> dict:
        """The shape of one entry of the API's ``item.import`` (docs/api.md)."""
        result: dict = {"title": self.title, "fields": dict(self.fields), "source": self.source}
        secrets = sorted(name for name in self.secrets if any(n == name for n, _ in self.fields))
        if secrets:
            result["secrets"] = secrets
        if self.time is not None:
            result["time"] = self.time
        return result

    @classmethod
    def from_json(cls, value: object) -> "ImportEntry":
        """Check one entry of ``item.import``; InvalidInput (naming no value) if malformed."""
        if not isinstance(value, dict) or not set(value) <= {"title", "fields", "source", "secrets", "time"}:
            raise InvalidInput('an entry is an object with "title", "fields", "source" and optional "secrets" '
                               'and "time"')
        title, fields, source = value.get("title", ""), value.get("fields", {}), value.get("source")
        secrets, time = value.get("secrets", []), value.get("time")
        if time is not None and not is_valid_time(time):
            raise InvalidInput("an entry's time is whole unix seconds from 0 to 2^53 - 1")
        if not isinstance(title, str):
            raise InvalidInput("an entry's title is text")
        if not isinstance(fields, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                   for k, v in fields.items()):
            raise InvalidInput("an entry's fields map names to text values")
        if not isinstance(secrets, list) or not all(isinstance(s, str) for s in secrets):
            raise InvalidInput("an entry's secrets are a list of field names")
        if not isinstance(source, str) or not source.strip() or len(source) > MAX_SOURCE_CHARS \
                or any(ch in source for ch in "\x00\r\n"):
            raise InvalidInput(f"an entry's source is one line of 1-{MAX_SOURCE_CHARS} characters")
        return cls(title, tuple(fields.items()), source, frozenset(secrets), time)


@dataclass(frozen=True)
class Notice:
    """Why an entry was skipped, or what of it was left out. ``title`` is None when it had none."""

    title: str | None
    reason: str

    def to_json(self) -> dict:
        return {"reason": self.reason} if self.title is None else {"title": self.title, "reason": self.reason}


@dataclass(frozen=True, repr=False)
class Parsed:
    """What a file held: the entries to consider, those skipped while reading it (an unsupported
    type, the recycle bin) and warnings about parts that cannot be imported (attachments)."""

    entries: tuple[ImportEntry, ...]
    skipped: tuple[Notice, ...] = ()
    warnings: tuple[Notice, ...] = ()

    def __repr__(self) -> str:
        return f"Parsed({len(self.entries)} entries, {len(self.skipped)} skipped)"


@dataclass(frozen=True, repr=False)
class ImportPlan:
    contents: tuple[ItemContent, ...]
    skipped: tuple[Notice, ...]

    def __repr__(self) -> str:
        return f"ImportPlan({len(self.contents)} items, {len(self.skipped)} skipped)"


# --- from entries to items --------------------------------------------------------------------


def one_line(text: str, limit: int) -> str:
    """A title or field name as ItemContent accepts it: one line, no NUL, at most ``limit``."""
    text = re.sub(r"[\x00\r\n]+", " ", text).strip()
    return text[:limit].rstrip()


def display_title(entry: ImportEntry) -> str | None:
    return one_line(entry.title, MAX_TITLE_CHARS) or None


def to_content(entry: ImportEntry) -> ItemContent | None:
    """The item an entry becomes (None if it has no title and no non-empty field).

    Field names are made valid and unique (``url 2``), a missing title is taken from the URL or
    the user name (never from a secret), and the source key is appended as :data:`SOURCE_FIELD`.
    Raises InvalidInput if the result cannot be an item (too many fields, too large).
    """
    used = {SOURCE_FIELD}
    fields = []
    for name, value in entry.fields:
        if value == "":
            continue
        clean = one_line(name, MAX_FIELD_NAME_CHARS - 4) or "field"
        unique, n = clean, 1
        while unique in used:
            n += 1
            unique = f"{clean} {n}"
        used.add(unique)
        secret = is_secret_by_default(name) or is_secret_by_default(unique) or name in entry.secrets
        fields.append(Field(unique, value, secret))
    title = one_line(entry.title, MAX_TITLE_CHARS)
    if not title:
        if not fields:
            return None
        by_name = {f.name: f.value for f in fields}
        title = one_line(by_name.get("url", "") or by_name.get("username", ""), MAX_TITLE_CHARS) or UNTITLED
    if len(fields) >= MAX_FIELDS:
        raise InvalidInput(f"an item has at most {MAX_FIELDS} fields")
    content = ItemContent(title, (*fields, Field(SOURCE_FIELD, entry.source, False)), time=entry.time)
    content.to_plaintext()  # raises if larger than an item may be
    return content


def unix_time(value: datetime | str | None) -> int | None:
    """A source's date as a revision time: whole unix seconds (an ISO 8601 text without a zone is
    UTC), or None when it is missing, unreadable or out of range (the import's own time then)."""
    try:
        if isinstance(value, str):
            value = datetime.fromisoformat(value.strip())
        if not isinstance(value, datetime):
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        seconds = math.floor(value.timestamp())
    except (ValueError, OverflowError, OSError):
        return None
    return seconds if is_valid_time(seconds) else None


def known_sources(items: Iterable[tuple[str, bool, Mapping[str, str]]]) -> dict[str, str]:
    """Source keys the vault already holds, each with the reason to give when it comes again.

    ``items`` are (item id, deleted, fields) of every item, deleted ones included.
    """
    known: dict[str, str] = {}
    for item_id, deleted, fields in items:
        known.setdefault(f"kdbx:{item_id}", EXPORTED_FROM_HERE)
        source = fields.get(SOURCE_FIELD)
        if source:
            known[source] = ALREADY_IMPORTED_DELETED if deleted else ALREADY_IMPORTED
    return known


def plan_import(entries: Iterable[ImportEntry], known: Mapping[str, str]) -> ImportPlan:
    """Which entries become items (in file order), and why the others are skipped."""
    contents, skipped, seen = [], [], set()
    for entry in entries:
        title = display_title(entry)
        if entry.source in known:
            skipped.append(Notice(title, known[entry.source]))
            continue
        if entry.source in seen:
            skipped.append(Notice(title, DUPLICATE_IN_FILE))
            continue
        try:
            content = to_content(entry)
        except InvalidInput as exc:
            skipped.append(Notice(title, f"cannot be stored: {exc}"))
            continue
        if content is None:
            skipped.append(Notice(title, EMPTY_ENTRY))
            continue
        seen.add(entry.source)
        contents.append(content)
    return ImportPlan(tuple(contents), tuple(skipped))


def content_key(prefix: str, title: str, fields: Iterable[tuple[str, str]]) -> str:
    """A source key from content alone (for rows with no id of their own): a hash of the title and
    the non-empty fields, sorted, so column order does not matter. It lives only inside sealed
    items."""
    record = [title.strip(), sorted([n, v] for n, v in fields if v != "")]
    return f"{prefix}:{hashlib.sha256(encoding.encode(record)).hexdigest()[:32]}"


# --- CSV --------------------------------------------------------------------------------------

#: Header names (compared case-insensitively, with "_" and "-" read as spaces) and what they mean.
#: A column whose header is not listed becomes a field of that name; the first column of a role
#: takes it, a later one with the same role becomes a field under its own header.
CSV_COLUMNS: dict[str, tuple[str, ...]] = {
    "title": ("title", "name", "account", "entry"),
    "username": ("username", "user name", "user", "login", "login username", "login name"),
    "password": ("password", "login password", "pass"),
    "url": ("url", "uri", "login uri", "website", "web site"),
    "notes": ("notes", "note", "comments", "comment", "extra"),
    "totp": ("totp", "login totp", "otp", "otpauth"),
    FOLDER_FIELD: ("folder", "group", "grouping"),
    TAGS_FIELD: ("tags", "tag"),
    # Bitwarden's CSV export: one "name: value" custom field per line
    "fields": ("fields",),
}
#: Columns of other managers' CSV exports that carry no item data.
CSV_IGNORED = frozenset({"favorite", "fav", "reprompt", "type", "icon", "last modified", "created", "modified"})
CSV_STANDARD_ORDER = ("username", "password", "url", "notes", "totp")
#: The columns `vaultpeer export csv` always writes, in this order; other fields follow.
CSV_EXPORT_COLUMNS = ("title", "username", "password", "url", "notes", "totp", FOLDER_FIELD, TAGS_FIELD)


def _header_key(text: str) -> str:
    return re.sub(r"[\s_\-]+", " ", text.strip().lower())


_ROLE_BY_HEADER = {alias: role for role, aliases in CSV_COLUMNS.items() for alias in aliases}


def parse_csv(text: str) -> Parsed:
    """A CSV file with a header row (comma-separated, RFC 4180 quoting). Raises InvalidInput for
    a file that is not such a CSV; nothing of it is imported then."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    # a cell may be as large as an item (the default limit, 128 KiB, would refuse long notes)
    previous_limit = csv.field_size_limit(MAX_CONTENT_BYTES)
    try:
        header = next(reader, None)
        if header is None:
            raise InvalidInput("the CSV file is empty: it needs a header row")
        roles: list[tuple[str, str]] = []  # (role or "field" or "ignore", field name)
        taken = set()
        for cell in header:
            key = _header_key(cell)
            role = _ROLE_BY_HEADER.get(key)
            if role is not None and role not in taken:
                taken.add(role)
                roles.append((role, role))
            elif key in CSV_IGNORED or not key:
                roles.append(("ignore", ""))
            else:
                roles.append(("field", cell.strip()))
        if not taken:
            raise InvalidInput("the CSV file's first row names no known column (title, username, password, url, "
                               "notes, totp, folder, tags...): it needs a header row")
        entries = []
        for row in reader:
            if not row:
                continue
            if len(row) > len(roles) and any(cell.strip() for cell in row[len(roles):]):
                raise InvalidInput(f"line {reader.line_num} of the CSV file has more cells than the header row")
            if len(entries) >= MAX_ENTRIES:
                raise InvalidInput(f"the file holds more than {MAX_ENTRIES} entries")
            entries.append(_csv_entry(roles, row))
    except csv.Error as exc:
        raise InvalidInput(f"not a valid CSV file (line {reader.line_num}): {exc}") from None
    finally:
        csv.field_size_limit(previous_limit)
    return Parsed(tuple(entries))


def _csv_entry(roles: list[tuple[str, str]], row: list[str]) -> ImportEntry:
    title, standard, custom, trailing = "", {}, [], {}
    for (role, name), value in zip(roles, row):
        if role == "title":
            title = value
        elif role in CSV_STANDARD_ORDER:
            standard[role] = value
        elif role in (FOLDER_FIELD, TAGS_FIELD):
            trailing[role] = value
        elif role == "fields":
            custom += _bitwarden_csv_fields(value)
        elif role == "field":
            custom.append((name, value))
    fields = [(n, standard[n]) for n in CSV_STANDARD_ORDER if n in standard]
    fields += custom + [(n, trailing[n]) for n in (FOLDER_FIELD, TAGS_FIELD) if n in trailing]
    fields = [(n, v) for n, v in fields if v != ""]
    return ImportEntry(title, tuple(fields), content_key("csv", title, fields))


def _bitwarden_csv_fields(text: str) -> list[tuple[str, str]]:
    pairs = []
    for line in text.splitlines():
        name, sep, value = line.partition(": ")
        if sep and name.strip():
            pairs.append((name.strip(), value))
        elif line.strip():
            pairs.append(("field", line))
    return pairs


def csv_export(items: Iterable[Mapping]) -> str:
    """Items (the ``get --json`` shape) as CSV: :data:`CSV_EXPORT_COLUMNS`, then every other field
    name in order of first appearance. The import-source field is left out. Importing the result
    into another vault gives back the same titles and fields."""
    items = list(items)
    extra: dict[str, None] = {}
    for item in items:
        for name in item["fields"]:
            if name not in CSV_EXPORT_COLUMNS and name != SOURCE_FIELD:
                extra.setdefault(name)
    columns = [*CSV_EXPORT_COLUMNS, *extra]
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow(columns)
    for item in items:
        fields = item["fields"]
        writer.writerow([item["title"], *(fields.get(name, "") for name in columns[1:])])
    return out.getvalue()


# --- Bitwarden (unencrypted JSON export) -------------------------------------------------------

BITWARDEN_LOGIN, BITWARDEN_NOTE, BITWARDEN_CARD, BITWARDEN_IDENTITY, BITWARDEN_SSH_KEY = 1, 2, 3, 4, 5
#: Bitwarden identity keys -> field names (secret ones flagged).
_IDENTITY_FIELDS = (
    ("title", "honorific", False), ("firstName", "first name", False), ("middleName", "middle name", False),
    ("lastName", "last name", False), ("username", "username", False), ("company", "company", False),
    ("email", "email", False), ("phone", "phone", False), ("address1", "address 1", False),
    ("address2", "address 2", False), ("address3", "address 3", False), ("city", "city", False),
    ("state", "state", False), ("postalCode", "postal code", False), ("country", "country", False),
    ("ssn", "ssn", True), ("passportNumber", "passport number", True), ("licenseNumber", "license number", True),
)
_BITWARDEN_TEXT, _BITWARDEN_HIDDEN, _BITWARDEN_BOOLEAN, _BITWARDEN_LINKED = 0, 1, 2, 3


class _Malformed(Exception):
    pass


def parse_bitwarden(text: str) -> Parsed:
    """Bitwarden's unencrypted JSON export (``bw export --format json`` or the web vault). Logins,
    secure notes, cards, identities and SSH keys; custom fields (hidden ones stay secret); folders
    (or an organization's collections) as the folder field. Raises InvalidInput for a file that is
    not such an export, or an encrypted one."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"not a valid JSON file (line {exc.lineno}, column {exc.colno})") from None
    except RecursionError:
        raise InvalidInput("not a Bitwarden JSON export: nested too deeply") from None
    except ValueError:  # an integer past Python's 4300-digit conversion limit
        raise InvalidInput("not a Bitwarden JSON export: a number is too long") from None
    if holds_lone_surrogate(data):
        # a "\ud800" escape decodes to a lone surrogate, which no item can store (it is not UTF-8)
        raise InvalidInput("not a valid JSON file: it holds an escaped character that is not Unicode text")
    if isinstance(data, dict) and (data.get("encrypted") is True or data.get("passwordProtected") is True):
        raise InvalidInput("this is an encrypted Bitwarden export: export again in the unencrypted JSON format")
    if not isinstance(data, dict) or not isinstance(data.get("items"), list):
        raise InvalidInput('not a Bitwarden JSON export: expected an object with "items"')
    if len(data["items"]) > MAX_ENTRIES:
        raise InvalidInput(f"the file holds more than {MAX_ENTRIES} entries")
    try:
        folders = _names(data.get("folders"))
        collections = _names(data.get("collections"))
        entries, skipped, warnings = [], [], []
        for number, item in enumerate(data["items"], 1):
            _bitwarden_item(item, number, folders, collections, entries, skipped, warnings)
    except _Malformed as exc:
        raise InvalidInput(f"not a Bitwarden JSON export: {exc}") from None
    return Parsed(tuple(entries), tuple(skipped), tuple(warnings))


def _names(value: object) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, list):
        raise _Malformed("folders and collections are lists")
    names = {}
    for entry in value:
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
            raise _Malformed("a folder or collection has no id")
        names[entry["id"]] = _text(entry.get("name"), "a folder or collection name")
    return names


def _text(value: object, where: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise _Malformed(f"{where} is not text")


def _object(value: object, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _Malformed(f"{where} is not an object")
    return value


def _bitwarden_item(item: object, number: int, folders: dict, collections: dict, entries: list,
                    skipped: list, warnings: list) -> None:
    where = f"item {number}"
    if not isinstance(item, dict):
        raise _Malformed(f"{where} is not an object")
    title = _text(item.get("name"), f"{where}'s name")
    label = one_line(title, MAX_TITLE_CHARS) or None
    kind = item.get("type")
    if item.get("deletedDate"):
        skipped.append(Notice(label, "in the Bitwarden trash"))
        return
    fields: list[tuple[str, str]] = []
    secrets: set[str] = set()
    if kind == BITWARDEN_LOGIN:
        login = _object(item.get("login"), f"{where}'s login")
        fields.append(("username", _text(login.get("username"), f"{where}'s username")))
        fields.append(("password", _text(login.get("password"), f"{where}'s password")))
        uris = login.get("uris") or []
        if not isinstance(uris, list):
            raise _Malformed(f"{where}'s uris are not a list")
        addresses = [_text(_object(uri, f"{where}'s uri").get("uri"), f"{where}'s uri") for uri in uris]
        for n, address in enumerate([a for a in addresses if a], 1):
            fields.append(("url" if n == 1 else f"url {n}", address))
        fields.append(("totp", _text(login.get("totp"), f"{where}'s totp")))
        if login.get("fido2Credentials"):
            warnings.append(Notice(label, "passkeys are not imported"))
    elif kind == BITWARDEN_NOTE:
        pass
    elif kind == BITWARDEN_CARD:
        card = _object(item.get("card"), f"{where}'s card")
        month, year = _text(card.get("expMonth"), where), _text(card.get("expYear"), where)
        fields += [("cardholder", _text(card.get("cardholderName"), where)), ("brand", _text(card.get("brand"), where)),
                   ("card number", _text(card.get("number"), where)),
                   ("expiry", f"{month.zfill(2)}/{year}" if month and year else month or year),
                   ("security code", _text(card.get("code"), where))]
        secrets |= {"card number", "security code"}
    elif kind == BITWARDEN_IDENTITY:
        identity = _object(item.get("identity"), f"{where}'s identity")
        for key, name, secret in _IDENTITY_FIELDS:
            fields.append((name, _text(identity.get(key), where)))
            if secret:
                secrets.add(name)
    elif kind == BITWARDEN_SSH_KEY:
        key = _object(item.get("sshKey"), f"{where}'s sshKey")
        fields += [("private key", _text(key.get("privateKey"), where)),
                   ("public key", _text(key.get("publicKey"), where)),
                   ("fingerprint", _text(key.get("keyFingerprint"), where))]
        secrets.add("private key")
    else:
        skipped.append(Notice(label, f"unsupported Bitwarden item type {kind!r}"[:80]))
        return
    fields.append(("notes", _text(item.get("notes"), f"{where}'s notes")))
    custom = item.get("fields") or []
    if not isinstance(custom, list):
        raise _Malformed(f"{where}'s fields are not a list")
    linked = 0
    for field in custom:
        field = _object(field, f"{where}'s field")
        name = _text(field.get("name"), f"{where}'s field name") or "field"
        kind_of_field = field.get("type", _BITWARDEN_TEXT)
        if kind_of_field == _BITWARDEN_LINKED:
            linked += 1
            continue
        value = field.get("value")
        if kind_of_field == _BITWARDEN_BOOLEAN and isinstance(value, bool):
            value = "true" if value else "false"
        value = _text(value, f"{where}'s field value")
        if kind_of_field == _BITWARDEN_HIDDEN:
            # a hidden field's name may repeat a visible one's: mark the name the entry will carry
            secrets.add(name)
        fields.append((name, value))
    if linked:
        warnings.append(Notice(label, "linked custom fields are not imported (they repeat another field)"))
    folder = folders.get(item.get("folderId")) if isinstance(item.get("folderId"), str) else None
    if not folder:
        ids = item.get("collectionIds") or []
        folder = ", ".join(collections[c] for c in ids if isinstance(c, str) and c in collections) \
            if isinstance(ids, list) else ""
    fields.append((FOLDER_FIELD, folder or ""))
    fields = [(n, v) for n, v in fields if v != ""]
    item_id = item.get("id")
    source = f"bitwarden:{item_id}" if isinstance(item_id, str) and item_id.strip() \
        and len(item_id) <= MAX_SOURCE_CHARS - 10 and not any(c in item_id for c in "\x00\r\n") \
        else content_key("bitwarden", title, fields)
    entries.append(ImportEntry(title, tuple(fields), source, frozenset(secrets), unix_time(item.get("revisionDate"))))
