"""`vaultpeer generate` and the API's ``generate``: a password or a passphrase, with its entropy (and
the values ``add``/``edit --generate FIELD`` fill in).

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
    GenerateOptions,
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


def generate_json(options: GenerateOptions = GenerateOptions()) -> dict:
    """``{"password", "entropy_bits"}``: a password of ``options.length`` characters from the chosen
    classes (the default), or a passphrase of ``options.words`` words joined by ``options.separator``."""
    if options.words is None:
        length = DEFAULT_LENGTH if options.length is None else options.length
        return {"password": generate_password(length, **options.classes),
                "entropy_bits": round(password_entropy_bits(length, **options.classes), 1)}
    separator = DEFAULT_SEPARATOR if options.separator is None else options.separator
    wordlist = eff_long_wordlist()
    try:
        entropy = passphrase_entropy_bits(wordlist, options.words, separator)
    except ValueError as exc:  # a separator that is empty, unprintable, or made of letters
        raise InvalidInput(f"unusable separator: {exc}") from None
    return {"password": generate_passphrase(wordlist, options.words, separator), "entropy_bits": round(entropy, 1)}
