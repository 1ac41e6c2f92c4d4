"""App tokens and their scopes (issue 18): what an app registered with the daemon may do. Pure.

A scope is a level, optionally limited to the items of one folder or one tag:

    read                 search, get, otp, history, list, conflicts, events (and unlock, lock)
    write                read, and add, edit, delete, restore, import, resolve conflicts
    admin                everything: pairing, passwd, peers, export, backup, bundles, and the
                         approval of other apps. Never limited (its methods are vault-wide).
    read:folder=Work     read, only of items whose folder is Work (or Work/...)
    write:tag=ci         write, only of items tagged ci (and new items must carry the tag)

An app holds a list of them (``Scopes``): a method is allowed when one scope has its level, and
an item is visible (or writable) when one scope of the level read (or write) covers it. A token
is 256 random bits in text (``vpt1_`` + base64url); only its SHA-256 is kept, and a token is
checked by comparing digests in constant time.
"""

import base64
import hashlib
import hmac
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from vaultpeer.core.search import Searchable, fold

LEVELS = ("read", "write", "admin")
_RANK = {level: rank for rank, level in enumerate(LEVELS)}
#: A scope limited to a folder or a tag: ``LEVEL:folder=NAME`` / ``LEVEL:tag=NAME``.
LIMITS = ("folder", "tag")
MAX_SCOPES = 16
MAX_LIMIT_CHARS = 200
#: App names: a word a person types in `vaultpeer apps approve NAME` (and the audit log records).
_APP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
#: The name of the CLI's own token (kept in the home; no app may register under it).
CLI_APP = "cli"
TOKEN_PREFIX = "vpt1_"
TOKEN_BYTES = 32
#: The text length of every token this module makes (longer input is not compared at all).
TOKEN_CHARS = len(TOKEN_PREFIX) + 43


def check_app_name(name: object) -> str:
    """The app name, or ValueError: 1-64 characters of letters, digits, ``.``, ``_`` and ``-``,
    starting with a letter or digit (no look-alike or control character reaches a prompt)."""
    if not isinstance(name, str) or not _APP_NAME.match(name):
        raise ValueError("an app name is 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
    if name == CLI_APP:
        raise ValueError(f"the name {CLI_APP!r} is the command line's own")
    return name


@dataclass(frozen=True)
class Scope:
    level: str
    #: "folder" or "tag", with its ``value``; None: every item.
    limit: str | None = None
    value: str = ""

    @classmethod
    def parse(cls, text: object) -> "Scope":
        if not isinstance(text, str):
            raise ValueError("a scope is text: read, write or admin, optionally :folder=NAME or :tag=NAME")
        level, sep, rest = text.partition(":")
        if level not in _RANK:
            raise ValueError(f"unknown scope level {level[:16]!r}: read, write or admin")
        if not sep:
            return cls(level)
        limit, eq, value = rest.partition("=")
        value = value.strip()
        if limit not in LIMITS or not eq or not value or len(value) > MAX_LIMIT_CHARS or not value.isprintable():
            raise ValueError("a limited scope is LEVEL:folder=NAME or LEVEL:tag=NAME (one line, 1-200 characters)")
        if level == "admin":
            raise ValueError("admin cannot be limited to a folder or tag: its methods are vault-wide")
        return cls(level, limit, value)

    def __str__(self) -> str:
        return self.level if self.limit is None else f"{self.level}:{self.limit}={self.value}"

    def reaches(self, level: str) -> bool:
        return _RANK[self.level] >= _RANK[level]

    def covers(self, item: Searchable) -> bool:
        """Whether this scope's limit takes in the item (by its folder and tags fields)."""
        if self.limit is None:
            return True
        wanted = fold(self.value)
        if self.limit == "folder":
            folder = fold(item.folder).strip().strip("/")
            wanted = wanted.strip("/")
            return folder == wanted or folder.startswith(wanted + "/")
        return wanted in item_tags(item)


def item_tags(item: Searchable) -> set[str]:
    """An item's tags (its ``tags`` field, comma- or semicolon-separated), folded."""
    return {t.strip() for t in fold(item.tags).replace(";", ",").split(",") if t.strip()}


@dataclass(frozen=True)
class Scopes:
    """What one app may do: the union of its scopes."""

    scopes: tuple[Scope, ...]

    @classmethod
    def parse(cls, texts: object) -> "Scopes":
        if not isinstance(texts, list) or not texts or len(texts) > MAX_SCOPES:
            raise ValueError(f"scopes is a list of 1-{MAX_SCOPES} scopes (read, write, admin, "
                             f"LEVEL:folder=NAME, LEVEL:tag=NAME)")
        parsed = tuple(dict.fromkeys(Scope.parse(text) for text in texts))
        return cls(parsed)

    def texts(self) -> list[str]:
        return [str(s) for s in self.scopes]

    def allows(self, level: str) -> bool:
        """Whether some scope reaches ``level`` (the method may be called at all)."""
        return any(s.reaches(level) for s in self.scopes)

    @property
    def limited(self) -> bool:
        """Whether some items may be out of reach (no unlimited read scope or better)."""
        return not any(s.limit is None for s in self.scopes)

    @property
    def highest(self) -> str:
        return max((s.level for s in self.scopes), key=_RANK.__getitem__)

    def visible(self, item: Searchable) -> bool:
        return any(s.covers(item) for s in self.scopes)

    def writable(self, item: Searchable) -> bool:
        return any(s.reaches("write") and s.covers(item) for s in self.scopes)

    def limits_writes(self) -> bool:
        """Whether some items are out of reach for writing."""
        return not any(s.reaches("write") and s.limit is None for s in self.scopes)

    def limit_fields(self) -> set[str]:
        """The fields that decide whether an item is in reach ("folder", "tags")."""
        return {"folder" if s.limit == "folder" else "tags" for s in self.scopes if s.limit is not None}


# --- tokens ------------------------------------------------------------------------------------


def new_token(random_bytes: Callable[[int], bytes]) -> str:
    return TOKEN_PREFIX + base64.urlsafe_b64encode(random_bytes(TOKEN_BYTES)).decode().rstrip("=")


def token_digest(token: str) -> bytes:
    """What is kept of a token: its SHA-256 (256 random bits need no salt or slow hash)."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def find_token(token: str, digests: Iterable[tuple[str, bytes]]) -> str | None:
    """The name whose digest is the token's, compared in constant time; None for any token that is
    not one (wrong, revoked, malformed or oversized alike)."""
    if not isinstance(token, str) or len(token) != TOKEN_CHARS or not token.startswith(TOKEN_PREFIX):
        return None
    digest = token_digest(token)
    found = None
    for name, stored in digests:
        if hmac.compare_digest(digest, stored):
            found = name
    return found
