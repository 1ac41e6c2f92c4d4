"""Finding the items for a web page, as browser extensions match: by the page's site, never by a
word. Pure: the registrable domain of a host (eTLD+1, from the public suffix list) is asked of a
function the caller passes in (``service/public_suffixes.py`` reads the list vaultpeer ships).

The rules (docs/api.md, "Lookup by URL"):

* A URL is read as ``scheme://[userinfo@]host[:port]/path``; without a scheme it is ``https://``.
  The userinfo is ignored (and never shown); the query and fragment are ignored.
* Hosts compare after IDNA (``bücher.de`` and ``xn--bcher-kva.de`` are one host), in any case,
  without a trailing dot.
* The scheme must be the same, except that an ``http`` item is offered on an ``https`` page (a
  site that moved to https); an ``https`` item is never offered on an ``http`` page (its password
  would cross the network in clear). Other schemes match only themselves.
* The port must be the same, the scheme's default counting as given (``https://a`` is
  ``https://a:443``); an ``http`` item on its default port matches an ``https`` page on its default.
* An item matches when its host is the page's host (**host** match) or, failing that, when both
  hosts have the same registrable domain (**domain** match: ``login.example.co.uk`` and
  ``www.example.co.uk``; ``alice.github.io`` and ``bob.github.io`` are two sites, since
  ``github.io`` is a public suffix). IP addresses, ``localhost`` (and names under it), names of
  one label (``nas``), names ending in a number, and hosts that are a public suffix themselves
  match only the same host.
* Best first: host matches before domain matches; then an item whose path is a prefix of the
  page's (at a ``/``), then one without a path, then one with another path; then the same scheme
  before an upgraded one; then by title and id (the same order on every device).
"""

import unicodedata
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass

from vaultpeer.core.errors import InvalidInput
from vaultpeer.core.search import fold

#: The longest URL looked up (characters). A browser host sends the page's origin and path; a
#: query string is ignored anyway.
MAX_URL_LENGTH = 8192

#: Given an ASCII host (lower case, IDNA-encoded), its registrable domain, or None when it has
#: none (it is a public suffix itself).
RegistrableDomain = Callable[[str], str | None]

DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True, repr=False, slots=True)
class SiteUrl:
    """What matching reads of a URL. ``exact_only``: a host that matches only itself."""

    scheme: str
    host: str
    port: int | None
    path: str
    exact_only: bool

    def __repr__(self) -> str:  # item URLs are item content: never in a repr
        return "SiteUrl(redacted)"


def is_url_field(name: str) -> bool:
    """``url``, and ``url 2``, ``url 3``... (an import's further URLs), in any case."""
    words = name.casefold().split()
    return words[:1] == ["url"] and (len(words) == 1 or (len(words) == 2 and words[1].isdigit()))


def _has_scheme(text: str) -> bool:
    scheme, sep, _ = text.partition("://")
    return bool(sep) and scheme[:1].isascii() and scheme[:1].isalpha() and all(
        c.isascii() and (c.isalnum() or c in "+.-") for c in scheme)


def _host(raw: str) -> tuple[str, bool]:
    """The host in its one compared form, and whether it matches only itself."""
    import ipaddress

    if raw.startswith("["):
        if not raw.endswith("]"):
            raise ValueError
        return str(ipaddress.IPv6Address(raw[1:-1].split("%", 1)[0])), True
    host = unicodedata.normalize("NFC", raw).rstrip(".")
    if not host or any(c in host for c in " /\\?#@[]<>^|%\"'`{}"):
        raise ValueError
    try:
        host = host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise ValueError from None
    labels = host.split(".")
    if any(not label or len(label) > 63 for label in labels) or len(host) > 253:
        raise ValueError
    try:
        return str(ipaddress.IPv4Address(host)), True
    except ValueError:
        pass
    single = len(labels) == 1 or labels[-1].isdigit() or labels[-1] == "localhost"
    return host, single


def parse_site_url(text: str) -> SiteUrl:
    """A URL as matching reads it; InvalidInput (which never quotes it: it may hold a password
    in its userinfo) when it is too long, holds a control character, or has no valid host."""
    if not isinstance(text, str):
        raise InvalidInput("the URL must be text")
    if len(text) > MAX_URL_LENGTH:
        raise InvalidInput(f"the URL is longer than {MAX_URL_LENGTH} characters")
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in text):
        raise InvalidInput("the URL holds a control character")
    text = text.strip()
    if not text:
        raise InvalidInput("the URL is empty")
    if not _has_scheme(text):
        text = "https://" + text
    scheme, _, rest = text.partition("://")
    scheme = scheme.lower()
    # the authority ends at the first / ? or #; the userinfo at its last @ (as browsers read it)
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority, path = rest[:end], rest[end:]
    path = path.split("#", 1)[0].split("?", 1)[0]
    hostport = authority.rpartition("@")[2]
    if hostport.startswith("["):
        close = hostport.find("]")
        host_text, port_text = (hostport[:close + 1], hostport[close + 1:]) if close >= 0 else (hostport, "")
        if port_text and not port_text.startswith(":"):
            raise InvalidInput("the URL has no valid host")
        port_text = port_text[1:]
    else:
        host_text, _, port_text = hostport.partition(":")
    try:
        host, exact_only = _host(host_text)
    except ValueError:
        raise InvalidInput("the URL has no valid host") from None
    if port_text:
        if not (port_text.isascii() and port_text.isdigit() and len(port_text) <= 5 and int(port_text) <= 65535):
            raise InvalidInput("the URL's port is not a number from 0 to 65535")
        port = int(port_text)
    else:
        port = DEFAULT_PORTS.get(scheme)
    return SiteUrl(scheme, host, port, path.rstrip("/"), exact_only)


def _scheme_rank(page: SiteUrl, item: SiteUrl) -> int | None:
    """0: the same scheme and port; 1: an http item on an https page, both on default ports or the
    same port; None: no match."""
    if item.scheme == page.scheme:
        return 0 if item.port == page.port else None
    if item.scheme == "http" and page.scheme == "https":
        defaults = item.port == DEFAULT_PORTS["http"] and page.port == DEFAULT_PORTS["https"]
        return 1 if defaults or item.port == page.port else None
    return None


def _path_rank(page: SiteUrl, item: SiteUrl) -> int:
    if not item.path:
        return 1
    return 0 if page.path == item.path or page.path.startswith(item.path + "/") else 2


def match_rank(page: SiteUrl, item: SiteUrl, registrable: RegistrableDomain) -> tuple[int, int, int] | None:
    """How well an item's URL fits the page (lower is better), or None when it does not."""
    scheme = _scheme_rank(page, item)
    if scheme is None:
        return None
    if item.host == page.host:
        host = 0
    elif page.exact_only or item.exact_only:
        return None
    else:
        domain = registrable(page.host)
        if domain is None or registrable(item.host) != domain:
            return None
        host = 1
    return host, _path_rank(page, item), scheme


def search_by_url(url: str, items: Iterable[tuple[Hashable, str, Iterable[str]]],
                  registrable: RegistrableDomain) -> list[Hashable]:
    """The keys of the items (``(key, title, their URLs)``) that match the page at ``url``, best
    first (InvalidInput if ``url`` is not one). An item URL that does not parse matches nothing."""
    page = parse_site_url(url)
    ranked = []
    for key, title, urls in items:
        best = None
        for text in urls:
            try:
                item_url = parse_site_url(text)
            except InvalidInput:
                continue
            rank = match_rank(page, item_url, registrable)
            if rank is not None and (best is None or rank < best):
                best = rank
        if best is not None:
            ranked.append((best, fold(title), str(key), key))
    ranked.sort(key=lambda entry: entry[:3])
    return [entry[3] for entry in ranked]
