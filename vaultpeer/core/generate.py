"""Password generation from a cryptographic random source (``secrets`` unless one is injected)."""

import secrets
import string
from collections.abc import Callable

SYMBOLS = "-_.!@#%^&*+=?"
ALPHABET = string.ascii_letters + string.digits + SYMBOLS
DEFAULT_LENGTH = 24
MIN_LENGTH = 8
MAX_LENGTH = 256
_CLASSES = (string.ascii_lowercase, string.ascii_uppercase, string.digits, SYMBOLS)


def generate_password(length: int = DEFAULT_LENGTH, choice: Callable[[str], str] = secrets.choice) -> str:
    """Uniform over ALPHABET, redrawn until every character class appears (so sites that demand
    one of each accept it); for 24 characters that costs about 6.5 bits of the ~145."""
    if not MIN_LENGTH <= length <= MAX_LENGTH:
        raise ValueError(f"a generated password has {MIN_LENGTH}-{MAX_LENGTH} characters")
    for _ in range(1000):
        candidate = "".join(choice(ALPHABET) for _ in range(length))
        if all(any(c in cls for c in candidate) for cls in _CLASSES):
            return candidate
    raise RuntimeError("the random source is not random")
