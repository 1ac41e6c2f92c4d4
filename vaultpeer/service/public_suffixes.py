"""The registrable domain of a host (eTLD+1), from the public suffix list that the
``publicsuffixlist`` package ships: read from that file, never fetched (vaultpeer makes no
connection to look a domain up). Loaded on the first URL lookup, not before: a command that does
not look up a URL never reads the list (the CLI's start stays small)."""

import functools


@functools.cache
def _suffixes():
    from publicsuffixlist import PublicSuffixList

    # private suffixes count (github.io, blogspot.com...): two people's pages there are two sites
    return PublicSuffixList(accept_unknown=True, only_icann=False)


def registrable_domain(host: str) -> str | None:
    """``login.example.co.uk`` -> ``example.co.uk``; None for a public suffix (``co.uk``,
    ``github.io``). ``host``: lower case ASCII (IDNA-encoded)."""
    return _suffixes().privatesuffix(host)


def list_version() -> str:
    """The version of the bundled list (the package's, which carries the list's date)."""
    from importlib.metadata import version

    return version("publicsuffixlist")
