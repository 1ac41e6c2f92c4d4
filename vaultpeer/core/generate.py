"""Password and passphrase generation from a cryptographic random source (``secrets`` unless one is
injected). Pure: the passphrase word list is passed in (``vaultpeer.service.wordlist`` loads it)."""

import math
import secrets
import string
from collections.abc import Callable, Sequence

SYMBOLS = "-_.!@#%^&*+=?"
ALPHABET = string.ascii_letters + string.digits + SYMBOLS
DEFAULT_LENGTH = 24
MIN_LENGTH = 8
MAX_LENGTH = 256
_CLASSES = (string.ascii_lowercase, string.ascii_uppercase, string.digits, SYMBOLS)


def generate_password(length: int = DEFAULT_LENGTH, choice: Callable[[str], str] = secrets.choice) -> str:
    """Uniform over ALPHABET, redrawn until every character class appears (so sites that demand
    one of each accept it); for 24 characters that costs 0.06 bits of the 149.5
    (``password_entropy_bits`` gives the exact figure)."""
    if not MIN_LENGTH <= length <= MAX_LENGTH:
        raise ValueError(f"a generated password has {MIN_LENGTH}-{MAX_LENGTH} characters")
    for _ in range(1000):
        candidate = "".join(choice(ALPHABET) for _ in range(length))
        if all(any(c in cls for c in candidate) for cls in _CLASSES):
            return candidate
    raise RuntimeError("the random source is not random")


def password_entropy_bits(length: int) -> float:
    """Entropy of generate_password(length): log2 of how many strings it can return with equal
    probability (every string over ALPHABET that has every class, counted by inclusion-exclusion)."""
    count = 0
    for mask in range(1 << len(_CLASSES)):
        missing = [cls for i, cls in enumerate(_CLASSES) if mask >> i & 1]
        count += (-1) ** len(missing) * (len(ALPHABET) - sum(map(len, missing))) ** length
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
