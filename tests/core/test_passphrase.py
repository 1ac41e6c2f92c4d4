"""Passphrases and entropy figures from the pure generator (word list and randomness injected)."""

import itertools
import math
import random

import pytest

from vaultpeer.core.generate import (
    ALPHABET,
    MAX_WORDS,
    MIN_WORDLIST_SIZE,
    MIN_WORDS,
    generate_passphrase,
    generate_password,
    passphrase_entropy_bits,
    password_entropy_bits,
    usable_words,
)

#: A synthetic list of 2,000 distinct lowercase words, two of them hyphenated like the EFF list's.
WORDS = tuple("".join(letters) for letters in itertools.product("abcdefg", repeat=4))[:1998] + ("drop-down", "yo-yo")


def test_the_synthetic_list_is_what_the_tests_assume():
    assert len(set(WORDS)) == len(WORDS) == 2000 and all(w.replace("-", "").isalpha() for w in WORDS)


@pytest.mark.parametrize("count", [MIN_WORDS, 6, MAX_WORDS])
def test_a_passphrase_has_the_asked_number_of_words_all_from_the_list(count):
    phrase = generate_passphrase(WORDS, count, " ")
    words = phrase.split(" ")
    assert len(words) == count and set(words) <= set(WORDS)


def test_the_separator_joins_the_words_and_words_containing_it_are_never_drawn():
    rng = random.Random(7)
    drawn = [generate_passphrase(WORDS, 20, "-", choice=rng.choice).split("-") for _ in range(200)]
    assert all(len(words) == 20 for words in drawn)
    assert "drop-down" not in {w for words in drawn for w in words}
    assert usable_words(WORDS, "-") == WORDS[:-2] and usable_words(WORDS, " ") == WORDS
    assert generate_passphrase(WORDS, 4, " :: ", choice=lambda pool: pool[0]) == " :: ".join([WORDS[0]] * 4)


def test_the_draw_is_uniform_over_the_list_through_the_injected_choice():
    seen = []

    def choice(pool):
        seen.append(pool)
        return pool[len(seen) % len(pool)]

    generate_passphrase(WORDS, 5, " ", choice=choice)
    assert len(seen) == 5 and all(pool == WORDS for pool in seen)  # each word: one draw from the whole list


@pytest.mark.parametrize("count", [0, MIN_WORDS - 1, MAX_WORDS + 1])
def test_word_counts_outside_the_bounds_are_refused(count):
    with pytest.raises(ValueError, match=f"{MIN_WORDS}-{MAX_WORDS} words"):
        generate_passphrase(WORDS, count)


@pytest.mark.parametrize("separator", ["", "\n", "\t", "x" * 9])
def test_unusable_separators_are_refused(separator):
    with pytest.raises(ValueError, match="separator"):
        generate_passphrase(WORDS, 6, separator)


def test_a_separator_that_empties_the_list_is_refused_rather_than_weakening_it():
    with pytest.raises(ValueError, match=f"at least {MIN_WORDLIST_SIZE}"):
        generate_passphrase(WORDS, 6, "ab")  # most synthetic words contain an "a" or a "b"


def test_small_or_duplicated_lists_are_refused():
    with pytest.raises(ValueError, match="at least"):
        generate_passphrase(WORDS[:MIN_WORDLIST_SIZE - 1], 6, " ")
    with pytest.raises(ValueError, match="duplicate"):
        generate_passphrase(WORDS + WORDS[:1], 6, " ")


def test_passphrase_entropy_is_words_times_log2_of_the_usable_list():
    assert passphrase_entropy_bits(WORDS, 6, " ") == pytest.approx(6 * math.log2(2000))
    assert passphrase_entropy_bits(WORDS, 6, "-") == pytest.approx(6 * math.log2(1998))
    eff_size = 7776
    assert 6 * math.log2(eff_size) == pytest.approx(77.5, abs=0.05)  # the figure the docs quote


def test_password_entropy_counts_exactly_the_strings_with_every_class():
    # Length 4 with all four classes: one character of each, in any order.
    assert 2 ** password_entropy_bits(4) == pytest.approx(math.factorial(4) * 26 * 26 * 10 * 13)
    assert len(ALPHABET) == 75
    assert password_entropy_bits(24) == pytest.approx(149.43, abs=0.01)  # the figure `generate --help` quotes
    assert 24 * math.log2(75) - password_entropy_bits(24) < 0.07  # the cost of requiring every class
    assert len(generate_password(24)) == 24
