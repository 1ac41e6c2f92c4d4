"""Hypothesis strategies that turn valid encodings (seeds) into hostile ones.

Two layers, as structure-aware fuzzers do:

* **byte mutations**: bit flips, interesting byte values (CBOR length heads, 0xff...), truncation,
  deletion, insertion, a byte repeated thousands of times (deep nesting, huge numbers), a slice
  duplicated, a splice with another seed;
* **CBOR-tree mutations**: the seed (from ``offset`` on) is decoded with cbor2, one node of the
  tree is changed (a value replaced, a type swapped for another of the same length, a list
  element or map key deleted, duplicated or added, an integer pushed to a boundary) and the tree
  is re-encoded canonically, so the result gets past the strict decoder and reaches the message
  parsers behind it. Byte strings that themselves hold CBOR (a header inside a records message, a
  roster entry inside a bundle) are entered and mutated too.

Both are plain hypothesis strategies, so a failure shrinks to a small input.
"""

import json

import cbor2
from hypothesis import strategies as st

#: How often a repeated-byte insertion may repeat: enough for nesting past any depth limit and for
#: integers longer than Python's 4300-digit conversion limit.
MAX_REPEAT = 6000

_INTERESTING_BYTES = [0x00, 0x01, 0x7F, 0x80, 0xFF, 0x17, 0x18, 0x19, 0x1A, 0x1B, 0x1F, 0x40, 0x5B, 0x5F,
                      0x60, 0x7B, 0x7F, 0x80, 0x9B, 0x9F, 0xA0, 0xBB, 0xBF, 0xC0, 0xC2, 0xF4, 0xF5, 0xF6,
                      0xF7, 0xF9, 0xFB, 0xFF, ord("["), ord("{"), ord('"'), ord("\\"), ord("9"), ord("\n")]
_INTERESTING_INTS = [0, 1, -1, 23, 24, 255, 256, 65535, 65536, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**63 - 1,
                     2**63, 2**64 - 1, -(2**63), -(2**64)]
_INTERESTING_WIDTHS = [1, 2, 4, 8]


# Strategies are built once: hypothesis validates each new strategy object, which costs more than
# drawing from it.
_INTS = st.one_of(st.sampled_from(_INTERESTING_INTS), st.integers(-(2**64), 2**64 - 1))
_BYTE_VALUES = st.sampled_from(_INTERESTING_BYTES) | st.integers(0, 255)
_KINDS = st.sampled_from(["flip", "set", "int", "truncate", "delete", "insert", "repeat", "duplicate", "splice"])


@st.composite
def mutated_bytes(draw, seeds: list[bytes], seed: bytes | None = None, max_repeat: int = MAX_REPEAT) -> bytes:
    data = bytearray(draw(st.sampled_from(seeds)) if seed is None else seed)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(_KINDS)
        position = draw(st.integers(0, len(data))) if data else 0
        if kind == "flip" and data:
            position = min(position, len(data) - 1)
            data[position] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and data:
            position = min(position, len(data) - 1)
            data[position] = draw(_BYTE_VALUES)
        elif kind == "int" and data:
            width = draw(st.sampled_from(_INTERESTING_WIDTHS))
            value = draw(st.sampled_from(_INTERESTING_INTS)) % (1 << (8 * width))
            data[position:position + width] = value.to_bytes(width, "big")
        elif kind == "truncate":
            del data[position:]
        elif kind == "delete":
            del data[position:position + draw(st.integers(1, 16))]
        elif kind == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "repeat":
            byte = draw(_BYTE_VALUES)
            data[position:position] = bytes([byte]) * draw(st.integers(2, max_repeat))
        elif kind == "duplicate" and data:
            start = draw(st.integers(0, len(data) - 1))
            piece = data[start:start + draw(st.integers(1, 64))]
            data[position:position] = piece * draw(st.integers(1, 8))
        elif kind == "splice":
            other = draw(st.sampled_from(seeds))
            cut = draw(st.integers(0, len(other)))
            data = data[:position] + other[cut:]
    return bytes(data)


# --- CBOR trees --------------------------------------------------------------------------------

_NESTED = ("cbor",)  # a path step: "decode this byte string as CBOR and go inside"


def _loads(data: bytes) -> object | None:
    try:
        value = cbor2.loads(data)
    except Exception:  # noqa: BLE001 - anything that does not decode is simply not entered
        return None
    return value if isinstance(value, (list, dict)) else None


def _paths(node: object, path: tuple = (), depth: int = 0) -> list[tuple]:
    paths = [path]
    if depth > 24:
        return paths
    if isinstance(node, list):
        for index, element in enumerate(node):
            paths += _paths(element, path + (index,), depth + 1)
    elif isinstance(node, dict):
        for key, element in node.items():
            paths += _paths(element, path + (("key", key),), depth + 1)
    elif isinstance(node, bytes) and len(node) > 2:
        inner = _loads(node)
        if inner is not None:
            paths += _paths(inner, path + (_NESTED,), depth + 1)
    return paths


def _replace(node: object, path: tuple, change) -> object:
    if not path:
        return change(node)
    step, rest = path[0], path[1:]
    if step == _NESTED:
        return cbor2.dumps(_replace(cbor2.loads(node), rest, change), canonical=True)
    if isinstance(step, tuple):
        copy = dict(node)
        copy[step[1]] = _replace(copy[step[1]], rest, change)
        return copy
    copy = list(node)
    copy[step] = _replace(copy[step], rest, change)
    return copy


def _same_length_swaps(node: object) -> list:
    """Values of another type that a length or shape check alone would not tell apart."""
    if isinstance(node, bool):
        return [int(node), None, "true" if node else "", b"\x01" if node else b""]
    if isinstance(node, int):
        return [bool(node & 1), str(node), node.to_bytes(8, "big", signed=True) if -(2**63) <= node < 2**63 else b"",
                float(node) if abs(node) < 2**53 else None, -node - 1, node + 1, [node]]
    if isinstance(node, bytes):
        return [node.decode("latin-1"), list(node), bytearray(node), {}, len(node), node + b"\x00", node[:-1]]
    if isinstance(node, str):
        return [node.encode("utf-8", "surrogatepass"), list(node), len(node), node + "\x00", node[:-1], node.upper()]
    if isinstance(node, list):
        return [tuple(node), {i: v for i, v in enumerate(node)}, bytes(len(node)), "x" * len(node), node[:1], []]
    if isinstance(node, dict):
        return [list(node.items()), list(node), list(node.values()), {}]
    return [0, b"", "", [], {}]


_SCALARS = st.one_of(st.none(), st.booleans(), _INTS, st.binary(max_size=40), st.text(max_size=24),
                     st.sampled_from([bytes(16), bytes(32), bytes(64), "a" * 16, "a" * 32, b"\xff" * 12]))
_KEYS = st.text(max_size=8) | st.integers(-2, 30)
_VALUES = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=3),
                       max_leaves=6)
_NODE_KINDS = st.sampled_from(["replace", "swap", "swap", "shape", "int"])
_LIST_ACTIONS = st.sampled_from(["delete", "duplicate", "insert", "swap", "reverse", "many"])
_MAP_ACTIONS = st.sampled_from(["delete", "add", "rename"])


def _mutate_node(draw, node: object) -> object:
    kind = draw(_NODE_KINDS)
    if kind == "swap":
        return draw(st.sampled_from(_same_length_swaps(node)))
    if kind == "int" and isinstance(node, int) and not isinstance(node, bool):
        return draw(st.sampled_from([node + 1, node - 1, 0, -1, 2**63 - 1, 2**63, 2**64 - 1, -(2**64), 2**32]))
    if kind == "shape" and isinstance(node, list):
        copy = list(node)
        action = draw(_LIST_ACTIONS)
        index = draw(st.integers(0, max(0, len(copy) - 1)))
        if action == "delete" and copy:
            del copy[index]
        elif action == "duplicate" and copy:
            copy.insert(index, copy[index])
        elif action == "insert":
            copy.insert(index, draw(_VALUES))
        elif action == "swap" and len(copy) > 1:
            other = draw(st.integers(0, len(copy) - 1))
            copy[index], copy[other] = copy[other], copy[index]
        elif action == "reverse":
            copy.reverse()
        elif action == "many" and copy:
            copy = copy + [copy[index]] * draw(st.integers(1, 2000))
        return copy
    if kind == "shape" and isinstance(node, dict):
        copy = dict(node)
        keys = list(copy)
        action = draw(_MAP_ACTIONS)
        if action == "delete" and keys:
            del copy[draw(st.sampled_from(keys))]
        elif action == "add":
            copy[draw(_KEYS | st.sampled_from(keys or ["t"]))] = draw(_VALUES)
        elif action == "rename" and keys:
            key = draw(st.sampled_from(keys))
            copy[draw(_KEYS)] = copy.pop(key)
        return copy
    return draw(_VALUES)


def _dumps(value: object) -> bytes | None:
    try:
        return cbor2.dumps(value, canonical=True)
    except Exception:  # noqa: BLE001 - e.g. a float NaN swap: leave that to byte mutations
        return None


@st.composite
def mutated_cbor(draw, seeds: list[bytes], offset: int = 0) -> bytes:
    """A seed whose CBOR (from ``offset``) had one to three nodes changed, re-encoded canonically."""
    seed = draw(st.sampled_from(seeds))
    tree = _loads(seed[offset:])
    if tree is None:
        return seed
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(tree)
        path = draw(st.sampled_from(paths))
        try:
            tree = _replace(tree, path, lambda node: _mutate_node(draw, node))
        except (TypeError, ValueError, KeyError, cbor2.CBOREncodeError):
            break
    encoded = _dumps(tree)
    return seed if encoded is None else seed[:offset] + encoded


# --- JSON trees (API lines, Bitwarden exports) -----------------------------------------------------

#: Tokens json.dumps never writes, and that a JSON reader must still survive.
_JSON_TOKENS = [b'"\\ud800"', b'"x\\udfff\\ud800"', b'"\xed\xa0\x80"', b"NaN", b"-Infinity", b"1e400", b"-1e999",
                b"1" * 4301, b"-" + b"9" * 5000, b"[" * 3000 + b"]" * 3000, b'{"a":' * 2000 + b"1" + b"}" * 2000,
                b"1.5", b"-0", b"0.0", b"true", b"null", b'""', b"{}", b"[]", b'"' + b"x" * 70000 + b'"']
_JSON_TOKEN = st.sampled_from(_JSON_TOKENS)


def _json_default(value: object) -> object:
    return value.decode("latin-1") if isinstance(value, (bytes, bytearray)) else str(value)


@st.composite
def mutated_json(draw, seeds: list[bytes]) -> bytes:
    """A JSON seed with one to three nodes changed, or replaced by a hostile token."""
    seed = draw(st.sampled_from(seeds))
    try:
        tree = json.loads(seed)
    except ValueError:
        return seed
    tokens: list[bytes] = []
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(tree)))
        if draw(st.booleans()):
            marker = f"\x00{len(tokens)}\x00"
            tokens.append(draw(_JSON_TOKEN))
            tree = _replace(tree, path, lambda node: marker)
        else:
            tree = _replace(tree, path, lambda node: _mutate_node(draw, node))
    try:
        text = json.dumps(tree, ensure_ascii=draw(st.booleans()), default=_json_default)
    except (TypeError, ValueError, RecursionError):
        return seed
    data = text.encode("utf-8", "surrogatepass")
    for n, token in enumerate(tokens):
        data = data.replace(json.dumps(f"\x00{n}\x00").encode(), token)
    return data


def inputs(seeds: list[bytes], cbor_offset: int | None, *, max_size: int = 512, max_repeat: int = MAX_REPEAT,
           json_seeds: bool = False) -> st.SearchStrategy[bytes]:
    """Everything a target is fed: seeds as they are, mutated, and plain random bytes."""
    branches = [st.sampled_from(seeds), mutated_bytes(seeds, max_repeat=max_repeat), st.binary(max_size=max_size)]
    structured = None
    if cbor_offset is not None:
        structured = mutated_cbor(seeds, cbor_offset)
    elif json_seeds:
        structured = mutated_json(seeds)
    if structured is not None:
        branches += [structured, structured, structured.flatmap(lambda s: mutated_bytes([s], max_repeat=max_repeat))]
    return st.one_of(branches)
