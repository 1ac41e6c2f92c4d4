"""KeePass / KeePassXC ``.kdbx`` files, through pykeepass: bytes in, entries out, and back.

Reading walks the decrypted XML tree itself (pykeepass's own finders build XPath expressions from
titles and field names, which a quote in a title would break). Every entry outside the recycle
bin becomes an :class:`ImportEntry`: Title, UserName, Password, URL and Notes map to vaultpeer's
standard fields, ``otp`` (KeePassXC; or KeePass's ``TimeOtp-Secret-Base32``, or the older
``TOTP Seed``) to ``totp``, every other string to a field of the same name (protected ones stay
secret), the group path to ``folder`` and tags to ``tags``; the entry's last modification time is
the time of the item's first revision. History entries and attachments are not imported (a warning
names the entries with attachments).

Writing builds a new KDBX 4 database from pykeepass's template (AES-256, Argon2d at 64 MiB and 14
passes, a fresh salt per file): the export's protection is KeePass's own. Each entry's UUID is its
vaultpeer item id, so importing the file back into the same vault imports nothing twice.
"""

import base64
import binascii
import io
import re
import uuid
from collections.abc import Iterable, Mapping
from urllib.parse import quote

from lxml.builder import E
from pykeepass import PyKeePass
from pykeepass.entry import Entry
from pykeepass.entry import reserved_keys as KEEPASS_RESERVED
from pykeepass.exceptions import CredentialsError
from pykeepass.group import Group
from pykeepass.pykeepass import BLANK_DATABASE_LOCATION, BLANK_DATABASE_PASSWORD

from vaultpeer.core.errors import InvalidInput, WrongPassword
from vaultpeer.core.interchange import (
    FOLDER_FIELD,
    MAX_ENTRIES,
    SOURCE_FIELD,
    TAGS_FIELD,
    ImportEntry,
    Notice,
    Parsed,
    content_key,
    one_line,
    unix_time,
)
from vaultpeer.core.item import MAX_TITLE_CHARS

_STANDARD = (("UserName", "username"), ("Password", "password"), ("URL", "url"), ("Notes", "notes"))
_TOTP_KEYS = ("otp", "TimeOtp-Secret-Base32", "TOTP Seed")
_BASE32 = re.compile(r"^[A-Z2-7]+=*$")


def read_kdbx(data: bytes, password: str) -> Parsed:
    """The entries of a password-protected ``.kdbx`` (KDBX 3.1 or 4). WrongPassword if the password
    does not open it; InvalidInput if it is not a KeePass database (or a damaged one)."""
    try:
        keepass = PyKeePass(io.BytesIO(data), password=password)
    except CredentialsError:
        raise WrongPassword("wrong password for this KeePass database "
                            "(one that also needs a key file cannot be imported)") from None
    except Exception:  # noqa: BLE001 - whatever a malformed file makes the parser raise
        raise InvalidInput("not a KeePass database, or a damaged one") from None
    meta = keepass.tree.find("Meta")
    recycle_bin = meta.findtext("RecycleBinUUID") if meta is not None else None
    root = keepass.tree.find("Root/Group")
    if root is None:
        raise InvalidInput("not a KeePass database, or a damaged one")
    entries: list[ImportEntry] = []
    skipped: list[Notice] = []
    warnings: list[Notice] = []
    _walk(keepass, root, [], False, recycle_bin, entries, skipped, warnings)
    return Parsed(tuple(entries), tuple(skipped), tuple(warnings))


def _walk(keepass: PyKeePass, group, path: list[str], in_bin: bool, recycle_bin: str | None, entries: list,
          skipped: list, warnings: list) -> None:
    for child in group:
        if child.tag == "Entry":
            if len(entries) >= MAX_ENTRIES:
                raise InvalidInput(f"the file holds more than {MAX_ENTRIES} entries")
            entry, attachments = _entry(child, path, _modified(keepass, child))
            label = one_line(entry.title, MAX_TITLE_CHARS) or None
            if in_bin:
                skipped.append(Notice(label, "in the KeePass recycle bin"))
                continue
            if attachments:
                warnings.append(Notice(label, f"{attachments} attachment(s) not imported"))
            entries.append(entry)
        elif child.tag == "Group":
            uuid_text = child.findtext("UUID")
            name = child.findtext("Name") or ""
            _walk(keepass, child, [*path, name], in_bin or (bool(recycle_bin) and uuid_text == recycle_bin),
                  recycle_bin, entries, skipped, warnings)


def _modified(keepass: PyKeePass, element) -> int | None:
    """The entry's LastModificationTime (KDBX 4: seconds since year 1, base64; KDBX 3: ISO text),
    as pykeepass decodes it; None if it has none or it does not parse (the import's time then)."""
    try:
        return unix_time(Entry(element=element, kp=keepass).mtime)
    except Exception:  # noqa: BLE001 - whatever a malformed time makes pykeepass raise
        return None


def _entry(element, path: list[str], modified: int | None = None) -> tuple[ImportEntry, int]:
    strings: dict[str, str] = {}
    protected: set[str] = set()
    for string in element.findall("String"):
        key = string.findtext("Key") or ""
        value = string.find("Value")
        strings[key] = (value.text if value is not None else None) or ""
        if value is not None and value.get("Protected", "").lower() == "true":
            protected.add(key)
    title = strings.pop("Title", "")
    fields = [(name, strings.pop(key, "")) for key, name in _STANDARD]
    totp_key = next((key for key in _TOTP_KEYS if strings.get(key)), None)
    fields.append(("totp", strings.pop(totp_key) if totp_key else ""))
    secrets = set()
    for key, value in strings.items():
        fields.append((key, value))
        if key in protected:
            secrets.add(key)
    fields.append((FOLDER_FIELD, "/".join(p for p in path if p)))
    tags = [t.strip() for t in re.split(r"[;,]", element.findtext("Tags") or "") if t.strip()]
    fields.append((TAGS_FIELD, ", ".join(tags)))
    fields = [(n, v) for n, v in fields if v != ""]
    try:
        raw = base64.b64decode(element.findtext("UUID") or "", validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    source = f"kdbx:{raw.hex()}" if len(raw) == 16 else content_key("kdbx", title, fields)
    return ImportEntry(title, tuple(fields), source, frozenset(secrets), modified), len(element.findall("Binary"))


def build_kdbx(items: Iterable[Mapping], password: str) -> bytes:
    """A new ``.kdbx`` holding ``items`` (the ``get --json`` shape), protected by ``password``.

    Raises InvalidInput (naming the item id, never a value) if an item holds characters XML
    cannot carry."""
    keepass = PyKeePass(BLANK_DATABASE_LOCATION, BLANK_DATABASE_PASSWORD)
    keepass.password = password
    groups: dict[tuple[str, ...], Group] = {(): keepass.root_group}
    for item in items:
        try:
            _add_entry(keepass, groups, item)
        except ValueError:  # lxml: "All strings must be XML compatible"
            raise InvalidInput(f"item {item['id']} holds control characters a KeePass file cannot store; "
                               "edit it, or export it as CSV") from None
    buffer = io.BytesIO()
    keepass.save(buffer)
    return buffer.getvalue()


def _add_entry(keepass: PyKeePass, groups: dict, item: Mapping) -> None:
    fields = dict(item["fields"])
    secrets = set(item.get("secrets", ()))
    fields.pop(SOURCE_FIELD, None)
    folder = [part for part in fields.pop(FOLDER_FIELD, "").split("/") if part.strip()]
    tags = [tag.strip() for tag in re.split(r"[;,]", fields.pop(TAGS_FIELD, "")) if tag.strip()]
    group = _group(keepass, groups, tuple(folder))
    entry = Entry(
        title=item["title"],
        username=fields.pop("username", ""),
        password=fields.pop("password", ""),
        url=fields.pop("url", "") or None,
        notes=fields.pop("notes", "") or None,
        otp=_otp_uri(fields.pop("totp", ""), item["title"]) or None,
        tags=tags or None,
        kp=keepass,
    )
    entry.uuid = uuid.UUID(hex=item["id"])
    used = set(KEEPASS_RESERVED) | set(_TOTP_KEYS)
    for name, value in fields.items():
        key, n = name, 1
        while key in used:
            n += 1
            key = f"{name} {n}"
        used.add(key)
        entry._element.append(E.String(E.Key(key), E.Value(value, Protected="True") if name in secrets
                                       else E.Value(value)))
    group.append(entry)


def _group(keepass: PyKeePass, groups: dict, path: tuple[str, ...]) -> Group:
    if path not in groups:
        parent = _group(keepass, groups, path[:-1])
        group = Group(name=path[-1], kp=keepass)
        parent.append(group)
        groups[path] = group
    return groups[path]


def _otp_uri(value: str, title: str) -> str:
    """KeePassXC reads TOTP settings from an ``otpauth://`` URI: a bare base32 secret becomes one
    (30 s, 6 digits, the defaults); anything else is kept as it is."""
    secret = value.replace(" ", "").upper()
    if value and not value.startswith("otpauth://") and _BASE32.match(secret):
        return f"otpauth://totp/{quote(title, safe='')}?secret={secret.rstrip('=')}"
    return value
