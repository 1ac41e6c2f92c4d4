"""Secret references, ``vp://ITEM/FIELD``, for scripts: what `vaultpeer read`, `run` and `inject`
resolve. Pure: parsing, finding references in a template, filling it, and masking secrets in a
stream of output bytes.

ITEM is an item id (32 hex digits) or a title, FIELD a field name; both are percent-encoded
(``vp://My%20Bank/password``). A reference has exactly two segments; a third
(``vp://VAULT/ITEM/FIELD``) is kept for the day a device holds several vaults, and refused now.
"""

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import quote, unquote

from vaultpeer.core.errors import Ambiguous, InvalidInput, NotFound, VaultpeerError

SCHEME = "vp://"
MAX_REF_CHARS = 2048
#: ``{{ vp://... }}`` in a template (spaces inside the braces optional).
TEMPLATE_REF = re.compile(r"\{\{\s*(vp://[^\s{}]*)\s*\}\}", re.IGNORECASE)
#: Where a reference starts: one that does not make a whole TEMPLATE_REF is an error, not left as is.
_TEMPLATE_OPENING = re.compile(r"\{\{\s*vp://", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class SecretRef:
    item: str
    field: str

    def __str__(self) -> str:
        return f"{SCHEME}{quote(self.item, safe='')}/{quote(self.field, safe='')}"


def is_ref(text: str) -> bool:
    return isinstance(text, str) and text.strip()[:len(SCHEME)].lower() == SCHEME


def parse_ref(text: str) -> SecretRef:
    """The reference ``text`` names; InvalidInput (quoting it: a reference is no secret) if it is
    not one."""
    if not isinstance(text, str) or len(text) > MAX_REF_CHARS:
        raise InvalidInput("not a secret reference (vp://ITEM/FIELD)")
    stripped = text.strip()
    shown = stripped[:200]
    if not is_ref(stripped):
        raise InvalidInput(f"{shown!r} is not a secret reference: it starts with vp://")
    segments = stripped[len(SCHEME):].split("/")
    if len(segments) == 3:
        raise InvalidInput(f"{shown!r} names a vault; this device holds one vault: use vp://ITEM/FIELD")
    if len(segments) != 2 or not all(segments):
        raise InvalidInput(f"{shown!r} is not vp://ITEM/FIELD")
    try:
        item, field = (unquote(s, errors="strict") for s in segments)
    except UnicodeDecodeError:
        raise InvalidInput(f"{shown!r} is not valid percent-encoded UTF-8") from None
    if not item.strip() or not field.strip():
        raise InvalidInput(f"{shown!r} is not vp://ITEM/FIELD")
    return SecretRef(item, field)


class ReferenceInConflict(VaultpeerError):
    """The item a reference names is in conflict: a script must not silently get one side."""

    code = "conflict"


def field_value(ref: SecretRef, fields: Mapping[str, str], conflict: bool) -> str:
    """The value ``ref`` names among an item's ``fields``: the field of that exact name, else the
    one whose name matches in any case. Every error names the reference (it is no secret)."""
    if conflict:
        raise ReferenceInConflict(f"{ref}: the item is in conflict: settle it first "
                                  "(`vaultpeer conflicts`, `vaultpeer resolve`)")
    if ref.field in fields:
        return fields[ref.field]
    folded = [name for name in fields if name.casefold() == ref.field.casefold()]
    if len(folded) > 1:
        raise Ambiguous(f"{ref}: the item has {len(folded)} fields of that name in different cases: "
                        "write it exactly", [])
    if not folded:
        raise NotFound(f"{ref}: the item has no field of that name")
    return fields[folded[0]]


def template_refs(template: str) -> list[SecretRef]:
    """Every reference in ``template``, in order, each once. A ``{{ vp://`` that does not make a
    whole ``{{ vp://ITEM/FIELD }}`` is an error naming its line: a template is never filled with it
    left in place."""
    whole = {match.start() for match in TEMPLATE_REF.finditer(template)}
    for opening in _TEMPLATE_OPENING.finditer(template):
        if opening.start() not in whole:
            line = template.count("\n", 0, opening.start()) + 1
            raise InvalidInput(f"line {line}: a reference in a template is {{{{ vp://ITEM/FIELD }}}}, with no space "
                               "or brace inside it (percent-encode them: vp://My%20Bank/password)")
    seen: dict[SecretRef, None] = {}
    for match in TEMPLATE_REF.finditer(template):
        seen.setdefault(parse_ref(match.group(1)), None)
    return list(seen)


def fill_template(template: str, resolve: Callable[[SecretRef], str]) -> str:
    """``template`` with every ``{{ vp://... }}`` replaced by ``resolve``'s value for it."""
    return TEMPLATE_REF.sub(lambda match: resolve(parse_ref(match.group(1))), template)


class OutputMasker:
    """Replaces secrets in a byte stream with ``<concealed by vaultpeer>``, also when a secret is
    split across chunks: up to (longest secret - 1) bytes are held back until the next chunk or
    ``flush``."""

    MASK = b"<concealed by vaultpeer>"

    def __init__(self, secrets: Iterable[str]):
        values = {s.encode() for s in secrets if s}
        self._secrets = sorted(values, key=len, reverse=True)  # the longest first: no partial leak
        self._pattern = re.compile(b"|".join(re.escape(s) for s in self._secrets)) if values else None
        self._hold = max((len(s) for s in values), default=1) - 1
        self._pending = b""

    def feed(self, chunk: bytes) -> bytes:
        """What may be written now of ``chunk`` (and what was held back before), secrets masked."""
        if self._pattern is None:
            return chunk
        buffer = self._pending + chunk
        keep = next((size for size in range(min(self._hold, len(buffer)), 0, -1)
                     if any(secret.startswith(buffer[-size:]) for secret in self._secrets)), 0)
        cut, position, out = len(buffer) - keep, 0, []
        for match in self._pattern.finditer(buffer):
            if match.start() >= cut:
                break
            out += [buffer[position:match.start()], self.MASK]
            position = match.end()
        cut = max(cut, position)
        out.append(buffer[position:cut])
        self._pending = buffer[cut:]
        return b"".join(out)

    def flush(self) -> bytes:
        """The bytes held back, masked: call once the stream has ended."""
        pending, self._pending = self._pending, b""
        return self._pattern.sub(self.MASK, pending) if self._pattern is not None else pending
