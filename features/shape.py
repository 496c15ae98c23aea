"""Word-shape flags: casing and form cues computed from the word strings themselves.

Both packaged encoders lowercase their input, so "Bush"/"bush" and "US"/"us"
reach them as the same pieces; these flags carry the casing (and a few other
form cues) to the head another way. Each word gets eight 0/1 floats. All but
``first_word`` depend on the word alone, so they are computed once per distinct
word (a corpus of ~1M words has only tens of thousands) and gathered back.

With ``neighbours`` each word also gets the flags of the words before and after
it in its sentence (zeros at the sentence's edges): 24 columns, the previous
word's 8, the next word's 8, then its own 8, so a word's own flags are always
the last 8 columns. A capitalised word after a capitalised word is a cue the
word alone does not give; on validation it was not a significant gain
(bench/head_inputs.json), so our rows leave it off.
"""

from __future__ import annotations

import unicodedata

import numpy as np

# The order of the columns of every array returned here.
SHAPE_FLAGS = (
    "initial_capital",  # first character is upper case ("Bush", "US", "É")
    "all_caps",  # every cased character upper case, at least one ("US", "U.S.", "1990S")
    "has_digit",  # at least one decimal digit, any script ("1990s", "٣")
    "first_word",  # first word of its sentence
    "punctuation",  # non-empty and only punctuation or ASCII-style symbols ($ % + ^)
    "all_lower",  # every cased character lower case, at least one ("us", "1990s")
    "has_hyphen",  # a hyphen: "-", U+2010 or U+2011 ("well-known")
    "inner_dot",  # a "." that is neither the first nor the last character ("U.S.", "3.5")
)
FIRST_WORD = SHAPE_FLAGS.index("first_word")
HYPHENS = frozenset("-\u2010\u2011")
# Unicode punctuation (P*) plus the symbol categories of ASCII's string.punctuation
# ($ is Sc, + is Sm, ^ is Sk); "other symbols" (So: emoji, ©, °) are not punctuation.
PUNCTUATION_CATEGORIES = ("P", "Sc", "Sm", "Sk")


def _is_punctuation(char: str) -> bool:
    return unicodedata.category(char).startswith(PUNCTUATION_CATEGORIES)


def word_flags(word: str) -> tuple[float, ...]:
    """The eight flags of ``word`` in SHAPE_FLAGS order, with ``first_word`` left at 0."""
    return (
        float(word[:1].isupper()),
        float(word.isupper()),
        float(any(char.isdecimal() for char in word)),
        0.0,
        float(bool(word) and all(_is_punctuation(char) for char in word)),
        float(word.islower()),
        float(not HYPHENS.isdisjoint(word)),
        float("." in word[1:-1]),
    )


def shape_flags_flat(words: list[str], offsets: np.ndarray, neighbours: bool = False) -> np.ndarray:
    """Flags (num_words, 8) float16 of flat ``words``; sentence s is ``words[offsets[s]:offsets[s + 1]]``.

    With ``neighbours``: (num_words, 24), the previous word's flags, the next word's, then the word's own.
    """
    offsets = np.asarray(offsets)
    if (
        offsets.ndim != 1
        or len(offsets) == 0
        or offsets[0] != 0
        or offsets[-1] != len(words)
        or (np.diff(offsets) < 0).any()
    ):
        raise ValueError(f"offsets must be a non-decreasing (S+1,) array from 0 to {len(words)} words")
    # One row per distinct word: the per-word string tests run tens of thousands of times, not a million.
    distinct: dict[str, int] = {}
    codes = np.fromiter(
        (distinct.setdefault(word, len(distinct)) for word in words), dtype=np.int64, count=len(words)
    )  # (W,)
    table = np.array([word_flags(word) for word in distinct], dtype=np.float16)
    table = table.reshape(len(distinct), len(SHAPE_FLAGS))  # (distinct, 8)
    flags = table[codes]  # (W, 8)
    starts = offsets[:-1][np.diff(offsets) > 0]  # empty sentences have no first word
    flags[starts, FIRST_WORD] = 1
    return with_neighbours(flags, offsets) if neighbours else flags


def with_neighbours(flags: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """(W, 8) flags -> (W, 24): each word's previous and next word's flags in its sentence, then its own."""
    num_words = len(flags)
    first = np.zeros(num_words + 1, bool)  # first[w]: word w starts a sentence (w = W: past the end)
    first[offsets[:-1][np.diff(offsets) > 0]] = True
    first[num_words] = True
    previous = np.zeros_like(flags)
    previous[1:] = flags[:-1]
    previous[first[:num_words]] = 0  # (W, 8): nothing before a sentence's first word
    following = np.zeros_like(flags)
    following[:-1] = flags[1:]
    following[first[1:]] = 0  # (W, 8): nothing after its last word
    return np.concatenate([previous, following, flags], axis=1)


def shape_flags(sentences: list[list[str]], neighbours: bool = False) -> np.ndarray:
    """Flags (num_words, 8), or 24 with ``neighbours``, float16, of every word of ``sentences`` in order."""
    lengths = np.fromiter((len(sentence) for sentence in sentences), dtype=np.int64, count=len(sentences))
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)  # (S+1,)
    return shape_flags_flat([word for sentence in sentences for word in sentence], offsets, neighbours)
