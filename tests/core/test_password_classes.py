"""Passwords with a choice of character classes (no digits, no symbols, no look-alikes): what the
generator draws, the exact entropy it reports, and the options value every front end builds."""

import itertools
import math
import random
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vaultpeer.core.errors import InvalidInput
from vaultpeer.core.generate import (
    ALPHABET,
    MAX_LENGTH,
    MAX_WORDS,
    MIN_LENGTH,
    MIN_WORDS,
    SIMILAR,
    SYMBOLS,
    GenerateOptions,
    character_classes,
    generate_password,
    password_entropy_bits,
)

CHOICES = [dict(digits=d, symbols=s, exclude_similar=x) for d, s, x in itertools.product([True, False], repeat=3)]


def count_by_walking(classes: tuple[str, ...], length: int) -> int:
    """How many strings of ``length`` over the classes' characters contain every class, counted
    one character at a time by the set of classes seen so far: no inclusion-exclusion."""
    full = (1 << len(classes)) - 1
    ways = {0: 1}
    for _ in range(length):
        after: dict[int, int] = {}
        for seen, n in ways.items():
            for i, cls in enumerate(classes):
                after[seen | 1 << i] = after.get(seen | 1 << i, 0) + n * len(cls)
        ways = after
    return ways.get(full, 0)


def test_the_default_classes_are_the_alphabet_and_bitwardens_look_alikes_are_left_out():
    assert "".join(character_classes()) == ALPHABET
    assert sorted(SIMILAR) == sorted("Il1O0")
    assert character_classes(exclude_similar=True) == (
        "abcdefghijkmnopqrstuvwxyz", "ABCDEFGHJKLMNPQRSTUVWXYZ", "23456789", SYMBOLS)
    assert character_classes(digits=False, symbols=False) == (string.ascii_lowercase, string.ascii_uppercase)


@pytest.mark.parametrize("choice", CHOICES, ids=str)
@pytest.mark.parametrize("length", [MIN_LENGTH, 24, 64])
def test_the_entropy_is_exact_for_every_combination_of_classes(choice, length):
    exact = count_by_walking(character_classes(**choice), length)
    assert password_entropy_bits(length, **choice) == pytest.approx(math.log2(exact), rel=1e-12)


def test_the_figures_the_docs_quote():
    figures = {(True, True, False): 149.4, (True, False, False): 142.9, (False, True, False): 144.5,
               (True, True, True): 147.0, (False, False, False): 136.8, (False, False, True): 134.8}
    for (digits, symbols, exclude_similar), bits in figures.items():
        assert round(password_entropy_bits(24, digits=digits, symbols=symbols, exclude_similar=exclude_similar),
                     1) == bits
    assert round(password_entropy_bits(24, symbols=False, exclude_similar=True), 1) == 140.0


def test_leaving_a_class_out_always_costs_entropy():
    for choice in CHOICES:
        assert password_entropy_bits(24, **choice) <= password_entropy_bits(24)
    assert password_entropy_bits(24, exclude_similar=True) < password_entropy_bits(24)


@given(length=st.integers(MIN_LENGTH, 48), digits=st.booleans(), symbols=st.booleans(),
       exclude_similar=st.booleans(), seed=st.integers(0, 2**32))
def test_no_left_out_character_ever_appears_and_every_chosen_class_does(length, digits, symbols, exclude_similar,
                                                                          seed):
    password = generate_password(length, random.Random(seed).choice, digits=digits, symbols=symbols,
                                 exclude_similar=exclude_similar)
    assert len(password) == length
    if not digits:
        assert not set(password) & set(string.digits)
    if not symbols:
        assert not set(password) & set(SYMBOLS)
    if exclude_similar:
        assert not set(password) & set(SIMILAR)
    classes = character_classes(digits=digits, symbols=symbols, exclude_similar=exclude_similar)
    assert set(password) <= set("".join(classes))
    assert all(set(password) & set(cls) for cls in classes)


def test_the_draw_is_from_the_chosen_characters_through_the_injected_choice():
    seen = []

    def choice(pool):
        seen.append(pool)
        return pool[len(seen) * 17 % len(pool)]  # strides over every class of the pool

    generate_password(MIN_LENGTH, choice, symbols=False, exclude_similar=True)
    assert set(seen) == {"".join(character_classes(symbols=False, exclude_similar=True))}


# --- the options value --------------------------------------------------------------------------


def test_the_default_options_are_a_24_character_password_of_every_class():
    options = GenerateOptions()
    assert (options.length, options.words, options.separator) == (None, None, None)
    assert options.classes == {"digits": True, "symbols": True, "exclude_similar": False}
    assert options.to_params() == {}


def test_only_what_differs_from_the_defaults_is_sent_to_the_daemon():
    assert GenerateOptions(length=30, symbols=False).to_params() == {"length": 30, "symbols": False}
    assert GenerateOptions(words=5, separator=" ").to_params() == {"words": 5, "separator": " "}
    assert GenerateOptions(exclude_similar=True, digits=False).to_params() == {"digits": False,
                                                                               "exclude_similar": True}


@pytest.mark.parametrize("kwargs, message", [
    (dict(length=20, words=6), "length and words exclude each other"),
    (dict(separator="+"), "only for passphrases"),
    (dict(words=6, digits=False), "a passphrase is made of words only"),
    (dict(words=6, symbols=False), "a passphrase is made of words only"),
    (dict(words=6, exclude_similar=True), "a passphrase is made of words only"),
    (dict(length=MIN_LENGTH - 1), f"length must be {MIN_LENGTH}-{MAX_LENGTH}"),
    (dict(length=MAX_LENGTH + 1), f"length must be {MIN_LENGTH}-{MAX_LENGTH}"),
    (dict(words=MIN_WORDS - 1), f"words must be {MIN_WORDS}-{MAX_WORDS}"),
    (dict(words=MAX_WORDS + 1), f"words must be {MIN_WORDS}-{MAX_WORDS}"),
])
def test_options_that_mix_a_password_with_a_passphrase_or_leave_the_bounds_are_refused(kwargs, message):
    with pytest.raises(InvalidInput, match=message):
        GenerateOptions(**kwargs)
