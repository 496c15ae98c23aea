"""Whole-sentence tokenisation, overlapping windows and word <-> piece alignment.

Each sentence is tokenised as a whole by the fast tokenizer (context matters),
split into overlapping windows when it exceeds the encoder's length, and every
word is then read from the window where it has the most context on both sides,
as the BERT authors recommend for long documents. A word that tokenises to
nothing (a stray control character, say) is given the unknown token, so no
word is ever lost.

Words are text: a corpus word that spells a special token (``[SEP]``,
``[CLS]``, ``<s>``, ``[MASK]``, also inside a word: ``a[SEP]b``) is tokenised
as its characters (``[``, ``sep``, ``]``), never as the special token
(``split_special_tokens``); only the tokenizer itself adds the special tokens
that frame each window.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Windows:
    """Tokenised windows of a list of sentences and each word's chosen pieces.

    ``word_window[j]`` is the window holding word j (words flattened over the
    sentences) and ``word_first[j]`` the position of its first piece there;
    ``piece_window``, ``piece_position`` and ``piece_word`` list every piece of
    every word in its chosen window (for mean pooling).
    """

    input_ids: list[list[int]]  # per window, with special tokens
    window_sentence: np.ndarray  # (num_windows,) sentence of each window
    word_window: np.ndarray  # (num_words,)
    word_first: np.ndarray  # (num_words,)
    first_piece_id: np.ndarray  # (num_words,) int32, the word's first piece id
    piece_window: np.ndarray  # (num_pieces,)
    piece_position: np.ndarray  # (num_pieces,)
    piece_word: np.ndarray  # (num_pieces,)

    @property
    def num_words(self) -> int:
        return len(self.word_window)


def _encode(tokenizer, sentences, max_length, stride):
    return tokenizer(
        sentences,
        is_split_into_words=True,
        truncation=True,
        max_length=max_length,
        stride=stride,
        return_overflowing_tokens=True,
        add_special_tokens=True,
        split_special_tokens=True,  # a word spelling "[SEP]" is text, not the separator
    )


def _one_piece_word(tokenizer) -> str:
    """A word the tokenizer turns into exactly one piece: stands in for a word with none, then becomes unk."""
    for word in ("a", "x", ".", "0"):
        if len(tokenizer([[word]], is_split_into_words=True, add_special_tokens=False)["input_ids"][0]) == 1:
            return word
    raise AssertionError("the tokenizer splits every one-character word into several pieces")


def tokenize(tokenizer, sentences: list[list[str]], max_length: int, stride: int) -> Windows:
    """Tokenise ``sentences`` into windows of at most ``max_length`` pieces overlapping by ``stride``."""
    encoding = _encode(tokenizer, sentences, max_length, stride)
    window_sentence = list(encoding["overflow_to_sample_mapping"])
    input_ids = list(encoding["input_ids"])
    word_ids = [encoding.word_ids(w) for w in range(len(input_ids))]

    # Words with no pieces: re-tokenise their sentences with a one-piece word in their place, then make
    # that piece the unknown token. (Not the unknown token's text: words are split as text, so "[UNK]"
    # would be four pieces.)
    seen = [set() for _ in sentences]
    for window, sentence in enumerate(window_sentence):
        seen[sentence].update(i for i in word_ids[window] if i is not None)
    broken = [s for s, words in enumerate(sentences) if len(seen[s]) != len(words)]
    if broken:
        stand_in = _one_piece_word(tokenizer)
        repaired = [[w if i in seen[s] else stand_in for i, w in enumerate(sentences[s])] for s in broken]
        fixed = _encode(tokenizer, repaired, max_length, stride)
        fixed_ids, fixed_word_ids = [], []
        for window, sentence in enumerate(fixed["overflow_to_sample_mapping"]):
            ids, words = list(fixed["input_ids"][window]), fixed.word_ids(window)
            for position, word in enumerate(words):
                if word is not None and word not in seen[broken[sentence]]:
                    ids[position] = tokenizer.unk_token_id
            fixed_ids.append(ids)
            fixed_word_ids.append(words)
        keep = [w for w, s in enumerate(window_sentence) if s not in set(broken)]
        input_ids = [input_ids[w] for w in keep] + fixed_ids
        word_ids = [word_ids[w] for w in keep] + fixed_word_ids
        window_sentence = [window_sentence[w] for w in keep] + [broken[s] for s in fixed["overflow_to_sample_mapping"]]
    return _align(sentences, input_ids, word_ids, np.asarray(window_sentence, dtype=np.int64))


def _align(sentences, input_ids, word_ids, window_sentence) -> Windows:
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in sentences])]).astype(np.int64)
    num_words = int(offsets[-1])
    best_score = np.full(num_words, -1, dtype=np.int64)
    word_window = np.full(num_words, -1, dtype=np.int64)
    spans: dict[tuple[int, int], list[int]] = {}  # (window, word row) -> piece positions
    for window, ids in enumerate(word_ids):
        base = offsets[window_sentence[window]]
        real = [p for p, i in enumerate(ids) if i is not None]
        first_real, last_real = real[0], real[-1]
        positions: dict[int, list[int]] = {}
        for position, word in enumerate(ids):
            if word is not None:
                positions.setdefault(word, []).append(position)
        for word, pieces in positions.items():
            row = base + word
            # Context on the poorer side: pieces before the word and after it in this window.
            score = min(pieces[0] - first_real, last_real - pieces[-1])
            if score > best_score[row]:
                best_score[row] = score
                word_window[row] = window
            spans[(window, row)] = pieces
    if (word_window < 0).any():
        missing = int(np.flatnonzero(word_window < 0)[0])
        raise AssertionError(f"word row {missing} has no pieces after unknown-token repair")
    word_first = np.empty(num_words, dtype=np.int64)
    first_piece_id = np.empty(num_words, dtype=np.int32)
    piece_window, piece_position, piece_word = [], [], []
    for row in range(num_words):
        window = int(word_window[row])
        pieces = spans[(window, row)]
        word_first[row] = pieces[0]
        first_piece_id[row] = input_ids[window][pieces[0]]
        piece_window.extend([window] * len(pieces))
        piece_position.extend(pieces)
        piece_word.extend([row] * len(pieces))
    return Windows(
        [list(ids) for ids in input_ids],
        window_sentence,
        word_window,
        word_first,
        first_piece_id,
        np.asarray(piece_window, dtype=np.int64),
        np.asarray(piece_position, dtype=np.int64),
        np.asarray(piece_word, dtype=np.int64),
    )
