"""Batches of sentences, flattened to their words and zero-padded to one static size.

Words of all sentences live in one array of rows; sentence s owns rows
``offsets[s]:offsets[s + 1]``. A batch is a group of sentence ids; its words
are gathered with NumPy and padded to a size that is the same for every batch
of a schedule, so the jitted steps compile once. Pure NumPy, no JAX.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Batch(NamedTuple):
    """One padded batch of words: inputs (P, D) float16 or (P,) int32, labels (P,) int32, mask (P,) bool,
    starts (P,) bool: each sentence's first word (a head that reads whole sentences is told where they start)."""

    inputs: np.ndarray
    labels: np.ndarray
    mask: np.ndarray
    starts: np.ndarray


def word_rows(offsets, sentence_ids):
    """The word rows of ``sentence_ids``, in the order given, (W,) int64."""
    offsets = np.asarray(offsets, np.int64)
    sentence_ids = np.asarray(sentence_ids, np.int64).reshape(-1)
    starts = offsets[sentence_ids]  # (S,)
    lengths = offsets[sentence_ids + 1] - starts  # (S,)
    total = int(lengths.sum())
    # Row k of the output is starts[s] + (k - first output index of sentence s).
    first_out = np.cumsum(lengths) - lengths  # (S,)
    return np.repeat(starts - first_out, lengths) + np.arange(total, dtype=np.int64)


def sentence_starts(offsets, sentence_ids):
    """Whether each word of ``sentence_ids`` (their words in the order given, as ``word_rows``) starts its
    sentence, (W,) bool."""
    offsets = np.asarray(offsets, np.int64)
    sentence_ids = np.asarray(sentence_ids, np.int64).reshape(-1)
    lengths = offsets[sentence_ids + 1] - offsets[sentence_ids]  # (S,)
    starts = np.zeros(int(lengths.sum()), bool)
    starts[(np.cumsum(lengths) - lengths)[lengths > 0]] = True
    return starts


def sentence_batches(sentence_ids, batch_sentences, rng, shuffle=True):
    """Split ``sentence_ids`` into batches of ``batch_sentences`` ids (the last may be smaller).

    With ``shuffle`` the ids are permuted by ``rng`` (a numpy Generator) first.
    Returns a list of int64 arrays.
    """
    if batch_sentences < 1:
        raise ValueError(f"batch_sentences must be >= 1, got {batch_sentences}")
    sentence_ids = np.asarray(sentence_ids, np.int64).reshape(-1)
    if shuffle:
        sentence_ids = rng.permutation(sentence_ids)
    return [sentence_ids[start : start + batch_sentences] for start in range(0, len(sentence_ids), batch_sentences)]


def padded_size(offsets, batches, multiple=256):
    """The most words in any of ``batches``, rounded up to ``multiple`` (at least ``multiple``)."""
    if multiple < 1:
        raise ValueError(f"multiple must be >= 1, got {multiple}")
    offsets = np.asarray(offsets, np.int64)
    lengths = np.diff(offsets)
    most = max((int(lengths[np.asarray(b, np.int64)].sum()) for b in batches), default=0)
    return max(multiple, -(-most // multiple) * multiple)


def make_batch(inputs_all, labels_all, rows, size, starts=None):
    """Gather ``rows`` of the word arrays into a Batch zero-padded to ``size`` words.

    ``labels_all`` None (an unlabelled batch) gives all-zero labels: labels of
    unlabelled sentences are never read. ``starts`` (len(rows),) bool marks the
    sentences' first words (``sentence_starts``); None: the rows are one sentence.
    """
    rows = np.asarray(rows, np.int64)
    n = len(rows)
    if n > size:
        raise ValueError(f"batch has {n} words, more than the padded size {size}")
    picked = np.asarray(inputs_all[rows])  # (n, D) or (n,)
    inputs = np.zeros((size,) + picked.shape[1:], picked.dtype)
    inputs[:n] = picked
    labels = np.zeros(size, np.int32)
    if labels_all is not None:
        labels[:n] = labels_all[rows]
    mask = np.zeros(size, bool)
    mask[:n] = True
    first = np.zeros(size, bool)
    if starts is None:
        first[:1] = n > 0
    else:
        first[:n] = starts
    return Batch(inputs, labels, mask, first)
