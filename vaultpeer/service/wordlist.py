"""`vaultpeer generate` and the API's ``generate``: a password or a passphrase, with its entropy.

The drawing itself is pure (``vaultpeer.core.generate``). This module does the part that is I/O:
loading the passphrase word list, the EFF long list (7,776 words) as shipped by the xkcdpass
package. The list is checked on load (size, uniqueness, lowercase ASCII words), so a damaged or
substituted file fails loudly instead of quietly weakening every passphrase.
"""

from functools import cache
from importlib import resources

from vaultpeer.core.errors import InvalidInput, VaultpeerError
from vaultpeer.core.generate import (
    DEFAULT_LENGTH,
    DEFAULT_SEPARATOR,
    MAX_LENGTH,
    MAX_WORDS,
    MIN_LENGTH,
    MIN_WORDS,
    generate_passphrase,
    generate_password,
    passphrase_entropy_bits,
    password_entropy_bits,
)

#: Where the list comes from: the xkcdpass distribution's package data (a dependency).
PACKAGE, RESOURCE = "xkcdpass", "static/eff-long"
EFF_LONG_SIZE = 7776
WORDLIST_NAME = "EFF long word list"


class WordlistUnavailable(VaultpeerError):
    """The word list is missing or not the one expected (a broken install)."""


@cache
def eff_long_wordlist() -> tuple[str, ...]:
    try:
        text = resources.files(PACKAGE).joinpath(RESOURCE).read_text(encoding="ascii")
    except (ModuleNotFoundError, FileNotFoundError, UnicodeDecodeError) as exc:
        raise WordlistUnavailable(f"the {WORDLIST_NAME} is missing ({PACKAGE}/{RESOURCE}): reinstall vaultpeer") \
            from exc
    words = tuple(line.strip() for line in text.splitlines() if line.strip())
    if len(words) != EFF_LONG_SIZE or len(set(words)) != EFF_LONG_SIZE \
            or not all(w.replace("-", "").isalpha() and w.islower() and w.isascii() for w in words):
        raise WordlistUnavailable(f"the {WORDLIST_NAME} in {PACKAGE} is not the expected {EFF_LONG_SIZE} words")
    return words


def generate_json(length: int | None = None, words: int | None = None, separator: str | None = None) -> dict:
    """``{"password", "entropy_bits"}``: a password of LENGTH characters (the default), or a
    passphrase of WORDS words joined by SEPARATOR. LENGTH and WORDS exclude each other."""
    if length is not None and words is not None:
        raise InvalidInput("length and words exclude each other: a password has a length, a passphrase a number of words")
    if words is None:
        if separator is not None:
            raise InvalidInput("a separator is only for passphrases: give a number of words too")
        length = DEFAULT_LENGTH if length is None else length
        if not MIN_LENGTH <= length <= MAX_LENGTH:
            raise InvalidInput(f"length must be {MIN_LENGTH}-{MAX_LENGTH}")
        return {"password": generate_password(length), "entropy_bits": round(password_entropy_bits(length), 1)}
    separator = DEFAULT_SEPARATOR if separator is None else separator
    if not MIN_WORDS <= words <= MAX_WORDS:
        raise InvalidInput(f"words must be {MIN_WORDS}-{MAX_WORDS}")
    wordlist = eff_long_wordlist()
    try:
        entropy = passphrase_entropy_bits(wordlist, words, separator)
    except ValueError as exc:  # a separator that is empty, unprintable, or made of letters
        raise InvalidInput(f"unusable separator: {exc}") from None
    return {"password": generate_passphrase(wordlist, words, separator), "entropy_bits": round(entropy, 1)}
