"""Hashed word-form ids: each word's lower-cased form, prefix, suffix and shape as bucket ids, as spaCy's
MultiHashEmbed does, for ``heads.word_forms.WordFormEmbed`` to embed (issue 19, item 2).

The packaged encoders are uncased and see word pieces, so the head lacks the word-form cues a CRF reads.
These ids are computed from the word strings themselves, never by the encoder (the feature cache does not
change), the same way on training words and on new text: a word never seen in training still gets its
prefix, suffix and shape rows, and only its lower-cased form's row is one no labelled word trained.

Attributes, in ``WORD_FORM_ATTRIBUTES`` order, all of the word after NFKC normalisation:

- ``lower``: the NFKC form, lower-cased (``str.lower``). NFKC folds compatibility variants that the encoder's
  tokenizer also folds or that print alike: full-width "Ｂｕｓｈ", the ligature "ﬁ", a decomposed "é" (e + a
  combining accent) all take the id of their plain spelling. Not ``casefold``: "ß" stays "ß", as spaCy's LOWER.
- ``prefix``: the first ``AFFIX_LENGTH`` (3) characters (code points) of ``lower``; the whole of a shorter word.
- ``suffix``: the last ``AFFIX_LENGTH`` characters of ``lower``.
- ``shape``: the collapsed shape of the NFKC form (not lower-cased): an upper-case letter "X", another letter
  "x", a digit "d", a combining mark nothing (it belongs to the character before it), any other character
  itself, each run of one symbol written once: "Bush" -> "Xx", "U.S." -> "X.X.", "1990s" -> "dx", "2006" -> "d".
  It is the CRF peer's shape (``bench/peers.py``) but for the combining marks.

Hash. Each attribute's string is hashed into ``rows`` buckets (one table of ``rows`` per attribute, spaCy's
``rows``) by BLAKE2b (``hashlib.blake2b``, 8-byte digest) of its UTF-8 bytes, personalised with the attribute's
name (``person``, the per-attribute seed), the digest read as a little-endian integer modulo ``rows``. Python's
``hash()`` is salted per process, so its ids would change between runs; BLAKE2b is in the standard library,
fixed by RFC 7693 and the same on every machine. The per-attribute seed decorrelates the tables' collisions:
two short words that share a bucket in ``lower`` would otherwise share one in ``prefix`` too. Lone surrogates
(a JSON "\\ud800") are encoded with ``surrogatepass``, so every ``str`` has an id.

Every attribute depends on the word alone, so the ids are computed once per distinct word (GMB's ~1M words
have tens of thousands) and gathered back, as ``features.shape`` does; no sentence offsets are needed. The
prepared GMB corpus (1,048,575 words, 35,178 distinct) takes about 0.3 s on one core and 34 MiB at its peak,
16 of them the ids; a million all-distinct words would take about 6 s (6 us a distinct word).
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Sequence

import numpy as np

# The column order of the ids returned here, and the hash seeds (BLAKE2b ``person``, at most 16 bytes).
WORD_FORM_ATTRIBUTES = ("lower", "prefix", "suffix", "shape")
AFFIX_LENGTH = 3  # characters of the prefix and suffix, the CRF features and spaCy's default suffix
DIGEST_BYTES = 8  # 64 bits: the modulo's bias is below 1e-15 for any table size


def word_shape(word: str) -> str:
    """The collapsed shape of ``word`` as given (no normalisation): "Bush" -> "Xx", "U.S." -> "X.X.", "2006" -> "d"."""
    shape: list[str] = []
    for character in word:
        if unicodedata.category(character).startswith("M"):
            continue  # a combining mark changes no class: "e\u0301" is the letter "x"
        if character.isupper():
            symbol = "X"
        elif character.isalpha():
            symbol = "x"
        elif character.isdigit():
            symbol = "d"
        else:
            symbol = character
        if not shape or shape[-1] != symbol:
            shape.append(symbol)
    return "".join(shape)


def word_attributes(word: str) -> dict[str, str]:
    """The attribute strings of ``word``, keyed by the names of ``WORD_FORM_ATTRIBUTES``."""
    normal = unicodedata.normalize("NFKC", word)
    lower = normal.lower()
    return {
        "lower": lower,
        "prefix": lower[:AFFIX_LENGTH],
        "suffix": lower[-AFFIX_LENGTH:],
        "shape": word_shape(normal),
    }


def attribute_id(attribute: str, value: str, rows: int) -> int:
    """The bucket in [0, rows) of the string ``value`` of ``attribute``: BLAKE2b seeded by the attribute's name."""
    digest = hashlib.blake2b(
        value.encode("utf-8", "surrogatepass"), digest_size=DIGEST_BYTES, person=attribute.encode("ascii")
    ).digest()
    return int.from_bytes(digest, "little") % rows


def _check(rows: int, attributes: Sequence[str]) -> None:
    if isinstance(rows, bool) or not isinstance(rows, int | np.integer) or not 0 < rows <= np.iinfo(np.int32).max:
        raise ValueError(f"rows must be a positive int32, got {rows!r}")
    unknown = [name for name in attributes if name not in WORD_FORM_ATTRIBUTES]
    if unknown or not attributes or len(set(attributes)) != len(attributes):
        raise ValueError(f"attributes must be distinct names of {WORD_FORM_ATTRIBUTES}, got {tuple(attributes)}")


def word_form_ids_flat(words: Sequence[str], rows: int, attributes: Sequence[str] = WORD_FORM_ATTRIBUTES) -> np.ndarray:
    """Ids (W, A) int32 in [0, rows) of flat ``words``, column a the bucket of attribute ``attributes[a]``."""
    _check(rows, attributes)
    # One row per distinct word: NFKC and four hashes run tens of thousands of times, not a million.
    distinct: dict[str, int] = {}
    codes = np.fromiter(
        (distinct.setdefault(word, len(distinct)) for word in words), dtype=np.int64, count=len(words)
    )  # (W,)
    table = np.fromiter(
        (attribute_id(name, values[name], rows) for values in map(word_attributes, distinct) for name in attributes),
        dtype=np.int32,
        count=len(distinct) * len(attributes),
    ).reshape(len(distinct), len(attributes))  # (distinct, A)
    return table[codes]  # (W, A)


def word_form_ids(
    sentences: Sequence[Sequence[str]], rows: int, attributes: Sequence[str] = WORD_FORM_ATTRIBUTES
) -> np.ndarray:
    """Ids (num_words, A) int32 of every word of ``sentences`` in order; see ``word_form_ids_flat``."""
    return word_form_ids_flat([word for sentence in sentences for word in sentence], rows, attributes)
