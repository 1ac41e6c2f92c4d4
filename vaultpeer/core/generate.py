"""Password and passphrase generation from a cryptographic random source (``secrets`` unless one is
injected). Pure: the passphrase word list is passed in (``vaultpeer.service.wordlist`` loads it)."""

import math
import secrets
import string
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

from vaultpeer.core.errors import InvalidInput

SYMBOLS = "-_.!@#%^&*+=?"
ALPHABET = string.ascii_letters + string.digits + SYMBOLS
#: Look-alike characters ``exclude_similar`` leaves out: Bitwarden's "avoid ambiguous characters" set.
SIMILAR = "Il1O0"
DEFAULT_LENGTH = 24
MIN_LENGTH = 8
MAX_LENGTH = 256


def character_classes(*, digits: bool = True, symbols: bool = True,
                      exclude_similar: bool = False) -> tuple[str, ...]:
    """The classes a password is drawn from: lower and upper case letters always, digits and
    SYMBOLS unless left out; with ``exclude_similar``, each without the characters of SIMILAR.
    The classes are disjoint, and their union is the alphabet of the draw."""
    chosen = [string.ascii_lowercase, string.ascii_uppercase]
    if digits:
        chosen.append(string.digits)
    if symbols:
        chosen.append(SYMBOLS)
    if exclude_similar:
        chosen = ["".join(c for c in cls if c not in SIMILAR) for cls in chosen]
    return tuple(chosen)


def generate_password(length: int = DEFAULT_LENGTH, choice: Callable[[str], str] = secrets.choice, *,
                      digits: bool = True, symbols: bool = True, exclude_similar: bool = False) -> str:
    """Uniform over the chosen classes' characters (ALPHABET by default), redrawn until every chosen
    class appears (so sites that demand one of each accept it); for 24 characters of ALPHABET that
    costs 0.06 bits of the 149.5 (``password_entropy_bits`` gives the exact figure)."""
    if not MIN_LENGTH <= length <= MAX_LENGTH:
        raise ValueError(f"a generated password has {MIN_LENGTH}-{MAX_LENGTH} characters")
    classes = character_classes(digits=digits, symbols=symbols, exclude_similar=exclude_similar)
    alphabet = "".join(classes)
    for _ in range(1000):
        candidate = "".join(choice(alphabet) for _ in range(length))
        if all(any(c in cls for c in candidate) for cls in classes):
            return candidate
    raise RuntimeError("the random source is not random")


def password_entropy_bits(length: int, *, digits: bool = True, symbols: bool = True,
                          exclude_similar: bool = False) -> float:
    """Entropy of generate_password(length) with the same class choices: log2 of how many strings it
    can return with equal probability (every string over the chosen classes' characters that has
    every chosen class, counted by inclusion-exclusion over the classes it could lack)."""
    classes = character_classes(digits=digits, symbols=symbols, exclude_similar=exclude_similar)
    size = sum(map(len, classes))
    count = 0
    for mask in range(1 << len(classes)):
        missing = [cls for i, cls in enumerate(classes) if mask >> i & 1]
        count += (-1) ** len(missing) * (size - sum(map(len, missing))) ** length
    return math.log2(count)


# --- passphrases -------------------------------------------------------------------------------

DEFAULT_WORDS = 6
MIN_WORDS = 3
MAX_WORDS = 20
DEFAULT_SEPARATOR = "-"
MAX_SEPARATOR_LENGTH = 8
#: A word list shorter than this (after dropping words that contain the separator) is refused: a
#: passphrase's strength is all in the list's size (the EFF long list has 7,776 words).
MIN_WORDLIST_SIZE = 1024


def usable_words(wordlist: Sequence[str], separator: str = DEFAULT_SEPARATOR) -> tuple[str, ...]:
    """The words a passphrase is drawn from: the list, minus every word that shares a character with
    the separator (the EFF list's four hyphenated words, for "-"), so that the passphrase always
    splits back into exactly its words and the entropy below is exact, not an upper bound."""
    if not 1 <= len(separator) <= MAX_SEPARATOR_LENGTH or not separator.isprintable():
        raise ValueError(f"the separator is 1-{MAX_SEPARATOR_LENGTH} printable characters")
    if len(set(wordlist)) != len(wordlist) or not all(wordlist):
        raise ValueError("the word list has duplicate or empty words")
    words = tuple(word for word in wordlist if not set(word) & set(separator))
    if len(words) < MIN_WORDLIST_SIZE:
        raise ValueError(f"only {len(words)} words of the list do not contain the separator's characters; "
                         f"at least {MIN_WORDLIST_SIZE} are needed")
    return words


def passphrase_entropy_bits(wordlist: Sequence[str], words: int = DEFAULT_WORDS,
                            separator: str = DEFAULT_SEPARATOR) -> float:
    """words x log2(size of the usable list): 77.5 bits for 6 words of the EFF long list."""
    return words * math.log2(len(usable_words(wordlist, separator)))


def generate_passphrase(wordlist: Sequence[str], words: int = DEFAULT_WORDS, separator: str = DEFAULT_SEPARATOR,
                        choice: Callable[[Sequence[str]], str] = secrets.choice) -> str:
    """WORDS words drawn independently and uniformly from the list (repeats allowed, as in diceware),
    joined by SEPARATOR. The caller loads the list; ``choice`` is the randomness (``secrets`` by default)."""
    if not MIN_WORDS <= words <= MAX_WORDS:
        raise ValueError(f"a passphrase has {MIN_WORDS}-{MAX_WORDS} words")
    pool = usable_words(wordlist, separator)
    return separator.join(choice(pool) for _ in range(words))


# --- what to generate ---------------------------------------------------------------------------


@dataclass(frozen=True)
class GenerateOptions:
    """What to generate, as a person or an API client asked for it: a password of ``length``
    characters (default 24) from the chosen classes, or, with ``words``, a passphrase of that many
    words joined by ``separator`` (default "-"). The class choices are for passwords only, the
    separator for passphrases only; a combination that mixes the two kinds, or a count out of
    bounds, is refused when the value is made (InvalidInput: a usage error, API -32602)."""

    length: int | None = None
    words: int | None = None
    separator: str | None = None
    digits: bool = True
    symbols: bool = True
    exclude_similar: bool = False

    def __post_init__(self) -> None:
        if self.words is None:
            if self.separator is not None:
                raise InvalidInput("a separator is only for passphrases: give a number of words too")
            if self.length is not None and not MIN_LENGTH <= self.length <= MAX_LENGTH:
                raise InvalidInput(f"length must be {MIN_LENGTH}-{MAX_LENGTH}")
            return
        if self.length is not None:
            raise InvalidInput("length and words exclude each other: a password has a length, a passphrase a number of words")
        if not (self.digits and self.symbols) or self.exclude_similar:
            raise InvalidInput("leaving out digits, symbols or similar characters is for passwords: "
                               "a passphrase is made of words only")
        if not MIN_WORDS <= self.words <= MAX_WORDS:
            raise InvalidInput(f"words must be {MIN_WORDS}-{MAX_WORDS}")

    @property
    def classes(self) -> dict[str, bool]:
        """The class choices, as generate_password and password_entropy_bits take them."""
        return {"digits": self.digits, "symbols": self.symbols, "exclude_similar": self.exclude_similar}

    def to_params(self) -> dict:
        """Only what differs from the defaults, under the local API's parameter names (docs/api.md)."""
        defaults = asdict(GenerateOptions())
        return {name: value for name, value in asdict(self).items() if value != defaults[name]}
