"""TOTP codes (RFC 6238) from what an item's ``totp`` field holds. Pure: the time is passed in.

What a field may hold, as password managers write it:

* an ``otpauth://totp/LABEL?secret=BASE32&period=30&digits=6&algorithm=SHA1`` URI (Google
  Authenticator's key URI format; KeePassXC and Bitwarden export these), with KeePassXC's
  ``encoder=steam`` for Steam Guard codes;
* a bare base32 secret (spaces, dashes and lowercase allowed; 30 s, 6 digits, SHA1), with
  KeePass's older separate ``TOTP Settings`` string (``"30;6"``, ``"30;8"``, ``"30;S"`` for Steam)
  passed as ``legacy_settings``;
* ``steam://BASE32`` (Bitwarden's form for Steam Guard).

The HMAC and the RFC 4226 truncation are cryptography's (``HOTP``); only Steam's alphabet
encoding of the truncated value, which cryptography does not offer, is done here. A secret never
appears in a repr or in an error message.
"""

import base64
import binascii
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.hmac import HMAC
from cryptography.hazmat.primitives.twofactor.hotp import HOTP

from vaultpeer.core.errors import InvalidInput

ALGORITHMS = {"SHA1": hashes.SHA1, "SHA256": hashes.SHA256, "SHA512": hashes.SHA512}
DEFAULT_PERIOD, DEFAULT_DIGITS, DEFAULT_ALGORITHM = 30, 6, "SHA1"
#: cryptography's HOTP draws 6 to 8 digits; Steam Guard codes are 5 characters.
MIN_DIGITS, MAX_DIGITS, STEAM_DIGITS = 6, 8, 5
MAX_PERIOD = 24 * 3600
#: Longer than any real secret (SHA512's block is 128 bytes); bounds what a field can make us hash.
MAX_SECRET_BYTES = 1024
STEAM_ALPHABET = "23456789BCDFGHJKMNPQRTVWXY"


@dataclass(frozen=True, repr=False, slots=True)
class TotpSettings:
    secret: bytes
    period: int = DEFAULT_PERIOD
    digits: int = DEFAULT_DIGITS
    algorithm: str = DEFAULT_ALGORITHM
    steam: bool = False

    def __post_init__(self) -> None:
        if not self.secret:
            raise InvalidInput("the TOTP secret is empty")
        if len(self.secret) > MAX_SECRET_BYTES:
            raise InvalidInput(f"the TOTP secret is longer than {MAX_SECRET_BYTES} bytes")
        if not 1 <= self.period <= MAX_PERIOD:
            raise InvalidInput(f"a TOTP period is 1 to {MAX_PERIOD} seconds")
        if self.algorithm not in ALGORITHMS:
            raise InvalidInput("a TOTP algorithm is SHA1, SHA256 or SHA512")
        if self.steam:
            if self.digits != STEAM_DIGITS or self.algorithm != "SHA1":
                raise InvalidInput("Steam Guard codes are 5 characters from HMAC-SHA1")
        elif not MIN_DIGITS <= self.digits <= MAX_DIGITS:
            raise InvalidInput(f"a TOTP code has {MIN_DIGITS} to {MAX_DIGITS} digits")

    def __repr__(self) -> str:
        return f"TotpSettings(redacted, period={self.period}, digits={self.digits}, algorithm={self.algorithm})"


@dataclass(frozen=True, repr=False, slots=True)
class TotpCode:
    code: str
    #: Whole seconds until the next code (1..period).
    remaining: int
    period: int
    digits: int

    def __repr__(self) -> str:
        return f"TotpCode(redacted, remaining={self.remaining})"

    def to_json(self) -> dict:
        return {"code": self.code, "remaining": self.remaining, "period": self.period, "digits": self.digits}


def parse_totp(value: str, legacy_settings: str | None = None) -> TotpSettings:
    """The settings a ``totp`` field holds; InvalidInput (never quoting the secret) if none."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput("the item has no TOTP secret")
    text = value.strip()
    lowered = text.lower()
    if lowered.startswith("otpauth://"):
        return _from_uri(text)
    if lowered.startswith("steam://"):
        return TotpSettings(_base32(text[len("steam://"):]), digits=STEAM_DIGITS, steam=True)
    secret = _base32(text)
    if legacy_settings is None or not legacy_settings.strip():
        return TotpSettings(secret)
    return _with_legacy_settings(secret, legacy_settings)


def totp_code(settings: TotpSettings, now: float) -> TotpCode:
    """The code valid at unix time ``now``, and how long it stays valid."""
    if now < 0:
        raise InvalidInput("the time is before 1970")
    counter, into = divmod(int(now), settings.period)
    if settings.steam:
        code = _steam_code(settings.secret, counter)
    else:
        hotp = HOTP(settings.secret, settings.digits, ALGORITHMS[settings.algorithm](), enforce_key_length=False)
        code = hotp.generate(counter).decode("ascii")
    return TotpCode(code, settings.period - into, settings.period, settings.digits)


def _from_uri(text: str) -> TotpSettings:
    parts = urlsplit(text)
    kind = parts.netloc.lower()
    if kind == "hotp":
        raise InvalidInput("HOTP (counter-based) codes are not supported, only TOTP")
    if kind != "totp":
        raise InvalidInput("not an otpauth://totp/ URI")
    try:
        query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError:
        raise InvalidInput("the otpauth URI's parameters are malformed") from None
    one = {}
    for key, values in query.items():
        if len(values) != 1:
            raise InvalidInput(f"the otpauth URI gives {unquote(key)[:40]!r} more than once")
        one[key.lower()] = values[0]
    if "secret" not in one:
        raise InvalidInput("the otpauth URI has no secret")
    secret = _base32(one["secret"])
    steam = one.get("encoder", "").lower() == "steam"
    period = _number(one.get("period"), DEFAULT_PERIOD, "period")
    digits = _number(one.get("digits"), STEAM_DIGITS if steam else DEFAULT_DIGITS, "digits")
    algorithm = one.get("algorithm", DEFAULT_ALGORITHM).upper().replace("-", "")
    if algorithm not in ALGORITHMS:
        raise InvalidInput("a TOTP algorithm is SHA1, SHA256 or SHA512")
    return TotpSettings(secret, period, digits, algorithm, steam)


def _with_legacy_settings(secret: bytes, settings: str) -> TotpSettings:
    """KeePass's ``TOTP Settings`` string: ``PERIOD;DIGITS`` where DIGITS may be ``S`` (Steam),
    optionally ``;ALGORITHM`` after it."""
    parts = [p.strip() for p in settings.split(";")]
    if len(parts) not in (2, 3):
        raise InvalidInput("the TOTP settings are not PERIOD;DIGITS")
    period = _number(parts[0], DEFAULT_PERIOD, "period")
    algorithm = parts[2].upper().replace("-", "").replace("HMAC", "") if len(parts) == 3 else DEFAULT_ALGORITHM
    if parts[1].upper() == "S":
        return TotpSettings(secret, period, STEAM_DIGITS, algorithm, steam=True)
    return TotpSettings(secret, period, _number(parts[1], DEFAULT_DIGITS, "digits"), algorithm)


def _number(text: str | None, default: int, what: str) -> int:
    if text is None or text == "":
        return default
    if not text.isascii() or not text.isdigit() or len(text) > 6:
        raise InvalidInput(f"the TOTP {what} is not a whole number")
    return int(text)


def _base32(text: str) -> bytes:
    cleaned = "".join(text.split()).replace("-", "").upper().rstrip("=")
    if not cleaned:
        raise InvalidInput("the TOTP secret is empty")
    if len(cleaned) > MAX_SECRET_BYTES * 2:
        raise InvalidInput(f"the TOTP secret is longer than {MAX_SECRET_BYTES} bytes")
    try:
        return base64.b32decode(cleaned + "=" * (-len(cleaned) % 8))
    except (binascii.Error, ValueError):
        raise InvalidInput("the TOTP secret is not base32 (letters A-Z and digits 2-7)") from None


def _steam_code(secret: bytes, counter: int) -> str:
    """Steam Guard: RFC 4226's dynamic truncation of HMAC-SHA1, written in a 26-letter alphabet."""
    mac = HMAC(secret, hashes.SHA1())
    mac.update(counter.to_bytes(8, "big"))
    digest = mac.finalize()
    offset = digest[-1] & 0x0F
    value = int.from_bytes(digest[offset:offset + 4], "big") & 0x7FFFFFFF
    code = []
    for _ in range(STEAM_DIGITS):
        value, index = divmod(value, len(STEAM_ALPHABET))
        code.append(STEAM_ALPHABET[index])
    return "".join(code)
