"""Finding items by what a person remembers of them: title, username, URL (its host too), folder
and tags, case-insensitively, best matches first. Pure: the caller passes the unlocked items'
searchable text in and gets their keys back in order.

Every word of the query must match somewhere in an item (``git hub`` finds "GitHub work" only if
both words occur); each word scores by where it matched, the best place counting, and an item's
score is the sum. Ties go to the title's alphabetical order, then to the key, so the order is the
same on every device.
"""

import unicodedata
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

#: The fields a search reads. Secrets (passwords, TOTP seeds, notes) are never searched: a match
#: would tell whoever watches the screen something about the secret.
SEARCHED_FIELDS = ("username", "url", "folder", "tags")


@dataclass(frozen=True, repr=False, slots=True)
class Searchable:
    title: str
    username: str = ""
    url: str = ""
    folder: str = ""
    tags: str = ""

    def __repr__(self) -> str:
        return "Searchable(redacted)"

    @classmethod
    def from_fields(cls, title: str, fields: Iterable[tuple[str, str]]) -> "Searchable":
        """From an item's (name, value) pairs: the first value of each searched field."""
        found: dict[str, str] = {}
        for name, value in fields:
            key = name.lower()
            if key in SEARCHED_FIELDS and key not in found:
                found[key] = value
        return cls(title, **found)


def fold(text: str) -> str:
    """Case- and compatibility-folded: "ＧｉｔＨｕｂ" and "github" compare equal."""
    return unicodedata.normalize("NFKC", text).casefold()


def url_host(url: str) -> str:
    """The host part of a URL, also of one written without a scheme ("github.com/login")."""
    text = url.strip()
    if not text:
        return ""
    try:
        parts = urlsplit(text if "://" in text else f"//{text}")
        return (parts.hostname or "").removeprefix("www.")
    except ValueError:
        return ""


def query_words(query: str) -> list[str]:
    return [w for w in fold(query).split() if w]


def score(words: list[str], item: Searchable) -> int:
    """How well ``item`` matches every word (0: some word matches nowhere)."""
    title, username, url, folder = fold(item.title), fold(item.username), fold(item.url), fold(item.folder)
    host = url_host(url)
    tags = [t.strip() for t in fold(item.tags).replace(";", ",").split(",") if t.strip()]
    total = 0
    for word in words:
        best = max(
            100 if title == word else 80 if title.startswith(word) else
            60 if any(part.startswith(word) for part in title.split()) else 50 if word in title else 0,
            45 if username == word else 35 if username.startswith(word) else 30 if word in username else 0,
            40 if host == word or host.startswith(word + ".") else 35 if word in host else
            20 if word in url else 0,
            25 if word in tags else 10 if any(word in tag for tag in tags) else 0,
            15 if word in folder else 0,
        )
        if best == 0:
            return 0
        total += best
    return total


def search(query: str, items: Iterable[tuple[Hashable, Searchable]]) -> list[Hashable]:
    """The keys of the items matching ``query``, best first. An empty query matches everything,
    in title order."""
    words = query_words(query)
    ranked = []
    for key, item in items:
        value = score(words, item) if words else 1
        if value:
            ranked.append((-value, fold(item.title), str(key), key))
    ranked.sort(key=lambda entry: entry[:3])
    return [entry[3] for entry in ranked]
