"""Word-shape flags: a table of known words, and properties over arbitrary strings."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features.shape import FIRST_WORD, SHAPE_FLAGS, shape_flags, shape_flags_flat, word_flags

# Flags of a word that is not first in its sentence, in SHAPE_FLAGS order:
# initial_capital, all_caps, has_digit, first_word, punctuation, all_lower, has_hyphen, inner_dot
TABLE = {
    "Bush": (1, 0, 0, 0, 0, 0, 0, 0),
    "US": (1, 1, 0, 0, 0, 0, 0, 0),
    "us": (0, 0, 0, 0, 0, 1, 0, 0),
    "1990s": (0, 0, 1, 0, 0, 1, 0, 0),
    "U.S.": (1, 1, 0, 0, 0, 0, 0, 1),
    "well-known": (0, 0, 0, 0, 0, 1, 1, 0),
    ",": (0, 0, 0, 0, 1, 0, 0, 0),
    "...": (0, 0, 0, 0, 1, 0, 0, 1),
    "Mr.": (1, 0, 0, 0, 0, 0, 0, 0),
    "3.5": (0, 0, 1, 0, 0, 0, 0, 1),
    "$": (0, 0, 0, 0, 1, 0, 0, 0),
    "--": (0, 0, 0, 0, 1, 0, 1, 0),
    "Élysée": (1, 0, 0, 0, 0, 0, 0, 0),
    "ÖL": (1, 1, 0, 0, 0, 0, 0, 0),
    "١٩٩٠": (0, 0, 1, 0, 0, 0, 0, 0),  # Arabic-Indic digits
    "北京": (0, 0, 0, 0, 0, 0, 0, 0),  # letters without case
    "🙂": (0, 0, 0, 0, 0, 0, 0, 0),  # an emoji is a symbol, not punctuation
    "": (0, 0, 0, 0, 0, 0, 0, 0),
    " ": (0, 0, 0, 0, 0, 0, 0, 0),
}


def test_flag_names_are_eight_and_distinct():
    assert len(SHAPE_FLAGS) == len(set(SHAPE_FLAGS)) == 8
    assert SHAPE_FLAGS[FIRST_WORD] == "first_word"


@pytest.mark.parametrize("word", list(TABLE))
def test_known_words(word):
    flags = shape_flags([["the", word]])
    assert flags.dtype == np.float16 and flags.shape == (2, 8)
    assert tuple(flags[1].astype(int)) == TABLE[word]
    assert word_flags(word) == tuple(map(float, TABLE[word]))


def test_first_word_flag():
    flags = shape_flags([["Bush", "said"], [], ["us", "too", "us"]])
    assert flags.shape == (5, 8)
    assert flags[:, FIRST_WORD].tolist() == [1, 0, 1, 0, 0]
    # The same word gets the same other flags whether first or not.
    others = [i for i in range(8) if i != FIRST_WORD]
    np.testing.assert_array_equal(flags[2, others], flags[4, others])


def test_flat_form_matches_and_checks_offsets():
    sentences = [["Bush", "said"], [], ["U.S.", "troops", "."]]
    words = [w for s in sentences for w in s]
    offsets = np.array([0, 2, 2, 5], dtype=np.int64)
    np.testing.assert_array_equal(shape_flags_flat(words, offsets), shape_flags(sentences))
    for bad in ([0, 2, 2, 4], [1, 2, 5], [0, 3, 2, 5], []):
        with pytest.raises(ValueError, match="offsets"):
            shape_flags_flat(words, np.array(bad, dtype=np.int64))


def test_no_sentences():
    assert shape_flags([]).shape == (0, 8)
    assert shape_flags([[], []]).shape == (0, 8)


# Any string at all: letters of every script, digits, punctuation, spaces, surrogates-free emoji, controls.
WORDS = st.text(max_size=8)
SENTENCES = st.lists(st.lists(WORDS, max_size=6), max_size=6)


@settings(max_examples=200, deadline=None)
@given(SENTENCES)
def test_shape_values_and_determinism(sentences):
    flags = shape_flags(sentences)
    assert flags.shape == (sum(map(len, sentences)), len(SHAPE_FLAGS))
    assert flags.dtype == np.float16
    assert set(np.unique(flags).tolist()) <= {0.0, 1.0}
    np.testing.assert_array_equal(flags, shape_flags(sentences))


@settings(max_examples=200, deadline=None)
@given(SENTENCES)
def test_first_word_set_once_per_non_empty_sentence(sentences):
    first = shape_flags(sentences)[:, FIRST_WORD]
    start = 0
    for sentence in sentences:
        assert first[start : start + len(sentence)].tolist() == [1] * bool(sentence) + [0] * (len(sentence) - 1)
        start += len(sentence)


@settings(max_examples=200, deadline=None)
@given(SENTENCES, SENTENCES, st.lists(WORDS, max_size=6))
def test_flags_do_not_depend_on_other_sentences(before, after, sentence):
    alone = shape_flags([sentence])
    together = shape_flags(before + [sentence] + after)
    start = sum(map(len, before))
    np.testing.assert_array_equal(together[start : start + len(sentence)], alone)


@settings(max_examples=200, deadline=None)
@given(WORDS)
def test_flags_are_consistent(word):
    initial_capital, all_caps, has_digit, _, punctuation, all_lower, has_hyphen, inner_dot = word_flags(word)
    assert not (all_caps and all_lower)
    assert not (punctuation and (initial_capital or all_caps or all_lower or has_digit))
    assert has_hyphen == float(any(c in "-\u2010\u2011" for c in word))
    assert inner_dot <= float(len(word) >= 3)


def neighbours_by_hand(sentences):
    """Each word's (previous word's flags, next word's flags, own flags), sentence by sentence, in lists."""
    rows = []
    for sentence in sentences:
        own = [list(word_flags(word)) for word in sentence]
        if own:
            own[0][FIRST_WORD] = 1.0
        none = [0.0] * len(SHAPE_FLAGS)
        for i in range(len(sentence)):
            previous = own[i - 1] if i > 0 else none
            following = own[i + 1] if i + 1 < len(sentence) else none
            rows.append(previous + following + own[i])
    return np.array(rows, np.float16).reshape(len(rows), 3 * len(SHAPE_FLAGS))


@settings(max_examples=200, deadline=None)
@given(SENTENCES)
def test_neighbour_flags_are_the_previous_and_next_words_flags_within_the_sentence(sentences):
    flags = shape_flags(sentences, neighbours=True)
    np.testing.assert_array_equal(flags, neighbours_by_hand(sentences))
    # A word's own flags stay the last 8 columns (the BiLSTM reads first_word there).
    np.testing.assert_array_equal(flags[:, -len(SHAPE_FLAGS) :], shape_flags(sentences))


def test_neighbour_flags_of_a_known_sentence():
    flags = shape_flags([["Mr.", "Bush", "said"], ["US"]], neighbours=True)
    assert flags.shape == (4, 24)
    bush = flags[1]
    assert bush[: len(SHAPE_FLAGS)].tolist() == [1, 0, 0, 1, 0, 0, 0, 0]  # "Mr.", first word
    assert bush[len(SHAPE_FLAGS) : 2 * len(SHAPE_FLAGS)].tolist() == [0, 0, 0, 0, 0, 1, 0, 0]  # "said"
    assert not flags[2, len(SHAPE_FLAGS) : 2 * len(SHAPE_FLAGS)].any()  # "said" ends its sentence
    assert not flags[3, : 2 * len(SHAPE_FLAGS)].any()  # "US" is alone


def test_neighbour_flags_need_shape_flags():
    from heads.settings import HeadParams

    with pytest.raises(ValueError, match="shape_flags"):
        HeadParams(neighbour_flags=True)
    assert HeadParams(shape_flags=True, neighbour_flags=True).neighbour_flags
