"""Character ids of each word, for the per-word character CNN of ``heads.chars`` (Ma and Hovy 2016; issue 19,
item 2's second alternative).

The packaged encoders are uncased and see word pieces; a CNN over a word's characters sees its case, its
affixes of any length and its digits and punctuation. The ids are computed here from the word strings, never
by the encoder (the feature cache does not change), the same way on training words and on new text
(``features.inputs.head_inputs`` builds them for training, evaluation, the experiments and the tagger), and
every character has an id, so a word never seen in training still gets a vector.

A word becomes ``CHAR_COLUMNS`` ids: a begin marker, its characters, an end marker, then ``PAD`` (0) up to the
width. The markers let the CNN tell a suffix from the same letters inside a word ("-ville" from "villeneuve"):
max pooling over positions forgets where a match was, a window that holds the end marker does not.

- Case is kept: the encoder is uncased, so case is information here. The word is NFKC-normalised first (as
  ``features.word_forms`` does; case survives it): a full-width "Ｂ", the ligature "ﬁ" or a decomposed "é"
  become the characters the encoder's tokenizer also reads.
- A character (code point) below 128 has a row of its own (``ASCII_FIRST`` + its code); any other is hashed
  into the ``HASHED_ROWS`` rows after them by BLAKE2b of its UTF-8 bytes (``surrogatepass``: a lone surrogate
  has an id too), so an unseen letter shares a row with a few others rather than having none. Python's
  ``hash()`` is salted per process; BLAKE2b is the same on every machine.
- A word of more than ``MAX_CHARACTERS`` characters keeps its first and last ``MAX_CHARACTERS // 2``, both
  next to their marker: its prefix and suffix, where most of the cues are (the middle of "counter-
  revolutionaries" tells little that the encoder's pieces do not).

The ids depend on the word alone, so they are computed once per distinct word (GMB's 1,048,575 words have
35,178 distinct) and gathered back, as ``features.word_forms`` does.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Sequence

import numpy as np

CHAR_COLUMNS = 20  # ids per word, markers included: 99.98% of GMB's words have at most 18 characters
MAX_CHARACTERS = CHAR_COLUMNS - 2  # characters kept between the markers
PAD, BEGIN, END = 0, 1, 2  # PAD: no character (after the end marker, and the heads' padding rows)
ASCII_FIRST = 3  # code point c < 128 has id ASCII_FIRST + c
HASHED_FIRST = ASCII_FIRST + 128
HASHED_ROWS = 381  # buckets of the characters above ASCII
CHAR_ROWS = HASHED_FIRST + HASHED_ROWS  # 512: the ids are in [0, CHAR_ROWS), exact in float32


def character_id(character: str) -> int:
    """The id of one character (code point): its own row below 128, else a BLAKE2b bucket."""
    code = ord(character)
    if code < 128:
        return ASCII_FIRST + code
    digest = hashlib.blake2b(character.encode("utf-8", "surrogatepass"), digest_size=8, person=b"char").digest()
    return HASHED_FIRST + int.from_bytes(digest, "little") % HASHED_ROWS


def word_characters(word: str) -> str:
    """The characters of ``word`` the CNN reads: NFKC, case kept, an overlong word's first and last halves."""
    normal = unicodedata.normalize("NFKC", word)
    if len(normal) > MAX_CHARACTERS:
        half = MAX_CHARACTERS // 2
        normal = normal[:half] + normal[-half:]
    return normal


def word_char_ids(word: str) -> list[int]:
    """The ``CHAR_COLUMNS`` ids of ``word``: begin marker, characters, end marker, padding."""
    ids = [BEGIN, *map(character_id, word_characters(word)), END]
    return ids + [PAD] * (CHAR_COLUMNS - len(ids))


def char_ids_flat(words: Sequence[str]) -> np.ndarray:
    """Ids (W, CHAR_COLUMNS) int32 in [0, CHAR_ROWS) of flat ``words``."""
    distinct: dict[str, int] = {}
    codes = np.fromiter(
        (distinct.setdefault(word, len(distinct)) for word in words), dtype=np.int64, count=len(words)
    )  # (W,)
    table = np.asarray([word_char_ids(word) for word in distinct], np.int32).reshape(len(distinct), CHAR_COLUMNS)
    return table[codes]  # (W, CHAR_COLUMNS)


def char_ids(sentences: Sequence[Sequence[str]]) -> np.ndarray:
    """Ids (num_words, CHAR_COLUMNS) int32 of every word of ``sentences`` in order; see ``char_ids_flat``."""
    return char_ids_flat([word for sentence in sentences for word in sentence])
