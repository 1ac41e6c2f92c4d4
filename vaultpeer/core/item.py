"""Item content: a title and ordered fields. Only ever stored or sent sealed (see revision.py).

Nothing here appears in a repr: item content is the thing vaultpeer exists to keep secret.
"""

import dataclasses
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from vaultpeer.core import encoding
from vaultpeer.core.errors import Ambiguous, IntegrityError, InvalidInput, NotFound
from vaultpeer.core.search import fold

ITEM_ID_SIZE = 16
STANDARD_FIELDS = ("username", "password", "url", "notes", "totp")
#: Fields whose values are masked in human output unless revealed.
SECRET_FIELDS = frozenset({"password", "totp"})
MAX_TITLE_CHARS = 1_000
MAX_FIELD_NAME_CHARS = 200
MAX_FIELDS = 500
#: The largest item plaintext (notes included) that one revision may carry.
MAX_CONTENT_BYTES = 1024 * 1024
#: A revision's time (unix seconds, the author's claim) is at most this: the largest integer every
#: JSON reader holds exactly. Anything else under "time" makes the plaintext an integrity error.
MAX_TIME = 2**53 - 1


@dataclass(frozen=True, order=True, slots=True)
class ItemId:
    raw: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.raw, bytes) or len(self.raw) != ITEM_ID_SIZE:
            raise ValueError("an item id is 16 bytes")

    @classmethod
    def generate(cls, random_bytes: Callable[[int], bytes] = os.urandom) -> "ItemId":
        return cls(random_bytes(ITEM_ID_SIZE))

    @classmethod
    def parse(cls, text: str) -> "ItemId":
        try:
            return cls(bytes.fromhex(text))
        except ValueError:
            raise InvalidInput("not an item id") from None

    def __str__(self) -> str:
        return self.raw.hex()

    def __repr__(self) -> str:
        return f"ItemId({self.raw.hex()})"


@dataclass(frozen=True, repr=False, slots=True)
class Field:
    name: str
    value: str
    secret: bool

    def __repr__(self) -> str:
        return "Field(redacted)"


def is_secret_by_default(name: str) -> bool:
    return name.lower() in SECRET_FIELDS


@dataclass(frozen=True, repr=False, slots=True)
class ItemContent:
    title: str
    fields: tuple[Field, ...] = ()
    #: Markers the merge sets for the person's attention (see core/merge.py); cleared by an edit.
    flags: frozenset[str] = frozenset()
    #: When the revision carrying this content was sealed (unix seconds, by its author's clock), or
    #: None (written before revisions had times, or not sealed yet). The author's claim, shown and
    #: nothing more: not part of the content (equality ignores it), never a merge register.
    time: int | None = dataclasses.field(default=None, compare=False)

    def __post_init__(self) -> None:
        _check_text(self.title, "title", MAX_TITLE_CHARS, allow_empty=False)
        if self.time is not None and not is_valid_time(self.time):
            raise InvalidInput(f"a revision's time is a whole number of seconds from 0 to {MAX_TIME}")
        if len(self.fields) > MAX_FIELDS:
            raise InvalidInput(f"an item has at most {MAX_FIELDS} fields")
        names = set()
        for field in self.fields:
            _check_text(field.name, "field name", MAX_FIELD_NAME_CHARS, allow_empty=False)
            if not isinstance(field.value, str):
                raise InvalidInput("field values are text")
            if field.name in names:
                raise InvalidInput("field names must be unique within an item")
            names.add(field.name)

    def __repr__(self) -> str:
        return f"ItemContent(redacted, {len(self.fields)} fields)"

    @classmethod
    def build(cls, title: str, fields: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> "ItemContent":
        pairs = fields.items() if isinstance(fields, Mapping) else fields
        return cls(title, tuple(Field(n, v, is_secret_by_default(n)) for n, v in pairs))

    def field(self, name: str) -> Field | None:
        return next((f for f in self.fields if f.name == name), None)

    def field_map(self) -> dict[str, str]:
        return {f.name: f.value for f in self.fields}

    def edited(
        self,
        set_fields: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        remove: Iterable[str] = (),
        title: str | None = None,
    ) -> "ItemContent":
        """A copy with fields set (in place, or appended if new), removed, and the title changed."""
        pairs = list(set_fields.items() if isinstance(set_fields, Mapping) else set_fields)
        remove = list(remove)
        missing = [name for name in remove if self.field(name) is None]
        if missing:
            raise InvalidInput(f"no field named {missing[0]!r} to remove")
        updates = dict(pairs)
        fields = [
            Field(f.name, updates.pop(f.name), f.secret) if f.name in updates else f
            for f in self.fields
            if f.name not in remove
        ]
        fields += [Field(n, v, is_secret_by_default(n)) for n, v in updates.items()]
        return ItemContent(self.title if title is None else title, tuple(fields))  # an edit clears flags

    def at(self, time: int | None) -> "ItemContent":
        """The same content, stamped with ``time`` (what a revision sealed then carries)."""
        return dataclasses.replace(self, time=time)

    def to_plaintext(self) -> bytes:
        record: dict = {"title": self.title, "fields": [[f.name, f.value, f.secret] for f in self.fields]}
        if self.flags:
            record["flags"] = sorted(self.flags)
        if self.time is not None:
            record["time"] = self.time
        data = encoding.encode(record)
        if len(data) > MAX_CONTENT_BYTES:
            raise InvalidInput(f"an item may hold at most {MAX_CONTENT_BYTES // 1024} KiB")
        return data

    @classmethod
    def from_plaintext(cls, data: bytes) -> "ItemContent":
        value = encoding.decode(data, max_size=MAX_CONTENT_BYTES)
        try:
            if not isinstance(value, dict) or set(value) - {"flags", "time"} != {"title", "fields"}:
                raise ValueError
            time = value.get("time")
            if "time" in value and not is_valid_time(time):
                raise ValueError
            flags = value.get("flags", [])
            if not isinstance(flags, list) or not flags and "flags" in value or len(flags) > 16 \
                    or not all(isinstance(f, str) and 0 < len(f) <= 64 for f in flags) or flags != sorted(set(flags)):
                raise ValueError
            if not isinstance(value["fields"], list):
                raise ValueError
            fields = []
            for entry in value["fields"]:
                name, field_value, secret = entry
                if not isinstance(secret, bool):
                    raise ValueError
                # names repeat in every item ("username", "password"...): one copy in memory
                fields.append(Field(sys.intern(name) if type(name) is str else name, field_value, secret))
            return cls(value["title"], tuple(fields), frozenset(flags), time)
        except (ValueError, TypeError, InvalidInput):
            raise IntegrityError() from None


def is_valid_time(value: object) -> bool:
    """A revision time as the plaintext may carry it: an integer (not a bool) from 0 to MAX_TIME."""
    return type(value) is int and 0 <= value <= MAX_TIME


def _check_text(text: object, what: str, limit: int, *, allow_empty: bool) -> None:
    if not isinstance(text, str):
        raise InvalidInput(f"the {what} must be text")
    if not allow_empty and not text.strip():
        raise InvalidInput(f"the {what} must not be empty")
    if len(text) > limit:
        raise InvalidInput(f"the {what} is longer than {limit} characters")
    if any(ch in text for ch in "\x00\r\n"):
        raise InvalidInput(f"the {what} must be a single line")


MIN_ID_PREFIX = 6


def resolve_reference(reference: str, items: Iterable[tuple[ItemId, str]]) -> ItemId:
    """Find the one item that ``reference`` names: a full id, a unique id prefix of at least six
    characters, an exact unique title, or else a title equal in any case ("github" names
    "GitHub" when no other title folds to "github"). Raises NotFound or Ambiguous (with the
    candidates: ``{"id", "title"}``)."""
    items = list(items)
    wanted = reference.strip()
    lowered = wanted.lower()
    for item_id, _ in items:
        if str(item_id) == lowered:
            return item_id
    by_prefix = (
        [(i, t) for i, t in items if str(i).startswith(lowered)]
        if len(lowered) >= MIN_ID_PREFIX and all(c in "0123456789abcdef" for c in lowered)
        else []
    )
    by_title = [(i, t) for i, t in items if t == wanted]
    matches = list({i: (i, t) for i, t in by_prefix + by_title}.values())
    if not matches:
        folded = fold(wanted)
        matches = [(i, t) for i, t in items if fold(t) == folded]
    if len(matches) == 1:
        return matches[0][0]
    if not matches:
        raise NotFound("no item matches that name or id")
    raise Ambiguous(
        f"that name matches {len(matches)} items; name one by id",
        [{"id": str(i), "title": t} for i, t in sorted(matches, key=lambda m: str(m[0]))],
    )
