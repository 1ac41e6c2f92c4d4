import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vaultpeer.core.encoding import decode, encode
from vaultpeer.core.errors import IntegrityError

plain_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.binary(max_size=40) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=20,
)


@given(plain_values)
def test_round_trip_is_exact(value):
    data = encode(value)
    assert decode(data, max_size=len(data)) == value


@pytest.mark.parametrize(
    "data",
    [
        cbor2.dumps({"b": 1, "a": 2}),  # keys not in canonical order
        encode(1) + b"\x00",  # trailing bytes
        cbor2.dumps(cbor2.CBORTag(1, 0)),  # a tag (would decode to a datetime)
        cbor2.dumps(1.5),  # a float
        b"\x9f\x01\xff",  # an indefinite-length array
        b"\xa2\x01\x01\x01\x02",  # a duplicate key
        b"\x18\x01",  # 1 in a non-shortest form
        b"\x82\x01",  # truncated
        b"",
    ],
)
def test_rejects_non_canonical_or_malformed(data):
    with pytest.raises(IntegrityError):
        decode(data, max_size=1000)


def test_size_and_depth_limits():
    with pytest.raises(IntegrityError):
        decode(encode(b"x" * 100), max_size=50)
    deep: list = []
    for _ in range(40):
        deep = [deep]
    with pytest.raises(IntegrityError):
        decode(encode(deep), max_size=10_000)


@given(st.binary(max_size=200))
def test_random_bytes_never_escape_as_another_error(data):
    try:
        decode(data, max_size=1000)
    except IntegrityError:
        pass
