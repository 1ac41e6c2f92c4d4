"""Environment files for `vaultpeer run --env-file` (the common dotenv form). Pure: text in, pairs out.

One ``KEY=VALUE`` a line, an optional ``export`` before it; blank lines and lines starting with
``#`` are skipped. A value in double quotes may hold ``\\n``, ``\\"`` and ``\\\\``; one in single
quotes is taken as written; an unquoted value is stripped and ends at `` #`` (a comment). An
error names the line by its number only: the file may hold secrets in plain text.
"""

import re

from vaultpeer.core.errors import InvalidInput

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "$": "$"}


def parse_dotenv(text: str, name: str = "the environment file") -> list[tuple[str, str]]:
    """The ``(key, value)`` pairs of ``text``, in order (a later one of a key wins when they are
    made a dict). ``name`` is how an error refers to the file."""
    pairs = []
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("export") and stripped[6:7] in (" ", "\t"):
            stripped = stripped[6:].lstrip()
        key, sep, rest = stripped.partition("=")
        key = key.rstrip()
        if not sep or not _KEY.fullmatch(key):
            raise InvalidInput(f"{name}, line {number}: expected KEY=VALUE (KEY: letters, digits and _)")
        pairs.append((key, _value(rest.lstrip(), f"{name}, line {number}")))
    return pairs


def _value(text: str, where: str) -> str:
    if text[:1] == "'":
        end = text.find("'", 1)
        if end < 0:
            raise InvalidInput(f"{where}: the single quote is not closed")
        _comment_only(text[end + 1:], where)
        return text[1:end]
    if text[:1] == '"':
        out, position = [], 1
        while position < len(text):
            char = text[position]
            if char == '"':
                _comment_only(text[position + 1:], where)
                return "".join(out)
            if char == "\\" and position + 1 < len(text):
                following = text[position + 1]
                out.append(_ESCAPES.get(following, "\\" + following))
                position += 2
                continue
            out.append(char)
            position += 1
        raise InvalidInput(f"{where}: the double quote is not closed")
    comment = re.search(r"\s#", text)
    return (text[:comment.start()] if comment else text).strip()


def _comment_only(rest: str, where: str) -> None:
    rest = rest.strip()
    if rest and not rest.startswith("#"):
        raise InvalidInput(f"{where}: unexpected text after the closing quote")
