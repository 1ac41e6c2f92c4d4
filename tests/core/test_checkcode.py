import pytest
from hypothesis import given
from hypothesis import strategies as st

from vaultpeer.core.checkcode import (
    ALPHABET,
    DEVICE_ID_FORMAT,
    RECOVERY_KEY_FORMAT,
    luhn_check_character,
    luhn_valid,
)

codes = st.sampled_from([DEVICE_ID_FORMAT, RECOVERY_KEY_FORMAT])


@given(codes.flatmap(lambda f: st.tuples(st.just(f), st.binary(min_size=f.raw_bytes, max_size=f.raw_bytes))))
def test_format_parse_round_trip_in_any_case_and_spacing(pair):
    code_format, raw = pair
    text = code_format.format(raw)
    assert code_format.parse(text) == raw
    assert code_format.parse(" " + text.lower().replace("-", " ") + "\n") == raw


def test_device_id_shape_matches_syncthing_style():
    text = DEVICE_ID_FORMAT.format(bytes(range(32)))
    groups = text.split("-")
    assert len(groups) == 8 and all(len(g) == 7 for g in groups)


def test_recovery_key_carries_at_least_128_bits():
    assert RECOVERY_KEY_FORMAT.raw_bytes * 8 >= 128


@given(st.text(alphabet=ALPHABET, min_size=1, max_size=20), st.data())
def test_luhn_catches_every_single_character_substitution(data, draw):
    checked = data + luhn_check_character(data)
    position = draw.draw(st.integers(0, len(checked) - 1))
    replacement = draw.draw(st.sampled_from([c for c in ALPHABET if c != checked[position]]))
    typo = checked[:position] + replacement + checked[position + 1 :]
    assert luhn_valid(checked)
    assert not luhn_valid(typo)


def test_parse_reports_typos_and_wrong_lengths():
    text = RECOVERY_KEY_FORMAT.format(bytes(20))
    typo = ("B" if text[0] != "B" else "C") + text[1:]
    with pytest.raises(ValueError, match="check character"):
        RECOVERY_KEY_FORMAT.parse(typo)
    with pytest.raises(ValueError, match="length"):
        RECOVERY_KEY_FORMAT.parse(text[:-2])
    with pytest.raises(ValueError):
        RECOVERY_KEY_FORMAT.parse(text.replace(text[1], "1", 1))
