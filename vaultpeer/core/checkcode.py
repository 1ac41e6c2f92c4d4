"""Human-readable codes with check characters, for device ids and recovery keys.

Syncthing's device ids are the model: base32 without padding, cut into chunks that each get a
Luhn mod 32 check character, then grouped with dashes for reading aloud. Luhn mod N catches every
single-character substitution and most transpositions of neighbours, so a typo in any chunk is
caught before the code is used.
"""

import base64
from dataclasses import dataclass

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_N = len(ALPHABET)


def luhn_check_character(data: str) -> str:
    """The Luhn mod N check character for ``data`` (characters of ALPHABET)."""
    total, factor = 0, 2
    for char in reversed(data):
        addend = factor * ALPHABET.index(char)
        total += addend // _N + addend % _N
        factor = 3 - factor
    return ALPHABET[(_N - total % _N) % _N]


def luhn_valid(text: str) -> bool:
    """True when the last character is the check character of the rest."""
    return len(text) >= 2 and luhn_check_character(text[:-1]) == text[-1]


@dataclass(frozen=True)
class CheckedCodeFormat:
    """A code of ``raw_bytes`` bytes, Luhn-checked per ``chunk`` characters, shown in ``group``s."""

    raw_bytes: int
    chunk: int
    group: int

    @property
    def data_chars(self) -> int:
        return len(base64.b32encode(bytes(self.raw_bytes)).rstrip(b"="))

    def format(self, raw: bytes) -> str:
        if len(raw) != self.raw_bytes:
            raise ValueError("wrong length for this code format")
        data = base64.b32encode(raw).decode("ascii").rstrip("=")
        checked = "".join(
            piece + luhn_check_character(piece)
            for piece in (data[i : i + self.chunk] for i in range(0, len(data), self.chunk))
        )
        return "-".join(checked[i : i + self.group] for i in range(0, len(checked), self.group))

    def parse(self, text: str) -> bytes:
        """Accept any case, spaces and dashes; raise ValueError on a wrong length or check char."""
        cleaned = "".join(text.split()).replace("-", "").upper()
        step = self.chunk + 1
        data_chars = self.data_chars
        expected = data_chars + -(-data_chars // self.chunk)
        if len(cleaned) != expected or any(c not in ALPHABET for c in cleaned):
            raise ValueError("not a valid code: wrong length or characters")
        data = ""
        for i in range(0, len(cleaned), step):
            piece = cleaned[i : i + step]
            if not luhn_valid(piece):
                raise ValueError("not a valid code: a check character does not match (typo?)")
            data += piece[:-1]
        padding = "=" * (-len(data) % 8)
        raw = base64.b32decode(data + padding)
        if self.format(raw).replace("-", "") != cleaned:
            raise ValueError("not a valid code")
        return raw


#: 32-byte SHA-256 fingerprints: 52 base32 characters + 4 check characters, 8 groups of 7.
DEVICE_ID_FORMAT = CheckedCodeFormat(raw_bytes=32, chunk=13, group=7)

#: 160-bit recovery keys: 32 characters + 4 check characters, 6 groups of 6.
RECOVERY_KEY_FORMAT = CheckedCodeFormat(raw_bytes=20, chunk=8, group=6)
