"""Device tables of the words a schedule trains on, and where each batch's words sit in them.

A schedule draws all its batches first; ``word_positions`` lists the distinct
words they use and each batch's positions among them, and ``word_table``
copies those words to the device once (each distinct word once, however many
epochs reuse it). The scan in ``heads.train`` then gathers a batch's inputs
from the table by position. The tables cost memory once per schedule: the
labelled words (~57k x 384 float16, 44 MB) and, for the rounds, the
unlabelled words drawn (80 rounds of 128 sentences, ~220k words, 170 MB).
"""

from __future__ import annotations

import jax
import numpy as np

from heads.batches import Batch, sentence_starts, word_rows


def word_positions(offsets, batches, size, labels):
    """Where the words of ``batches`` sit in a table of their distinct sentences' words.

    Returns (rows, stacked): ``rows`` (N,) ascending, the word rows of the
    distinct sentences in ``batches``, each once however many batches hold
    it; ``stacked`` a Batch with a leading axis over ``batches``: inputs
    (B, P) int32 positions in ``word_table(inputs, rows)``, where padding
    points at the zero row N; labels (B, P) int32 (all zero where ``labels``
    is None, which is then never read); mask (B, P) bool; starts (B, P) bool,
    each sentence's first word. Looking the
    positions of batch b up in the table gives ``make_batch``'s inputs.
    """
    offsets = np.asarray(offsets, np.int64)
    sentence_ids = np.unique(np.concatenate([np.zeros(0, np.int64), *batches]))  # (S,) sorted
    rows = word_rows(offsets, sentence_ids)  # (N,)
    lengths = offsets[sentence_ids + 1] - offsets[sentence_ids]  # (S,)
    table_offsets = np.concatenate([[0], np.cumsum(lengths)])  # sentence k's words in the table

    stacked_positions = np.full((len(batches), size), len(rows), np.int32)  # (B, P)
    stacked_labels = np.zeros((len(batches), size), np.int32)
    mask = np.zeros((len(batches), size), bool)
    starts = np.zeros((len(batches), size), bool)
    for b, ids in enumerate(batches):
        positions = word_rows(table_offsets, np.searchsorted(sentence_ids, ids))  # (n,)
        n = len(positions)
        if n > size:
            raise ValueError(f"batch has {n} words, more than the padded size {size}")
        stacked_positions[b, :n] = positions
        if labels is not None:
            stacked_labels[b, :n] = labels[rows[positions]]
        mask[b, :n] = True
        starts[b, :n] = sentence_starts(offsets, ids)
    return rows, Batch(stacked_positions, stacked_labels, mask, starts)


def _table_shape(inputs, rows):
    example = np.asarray(inputs[:1])  # (1, D) or (1,)
    return jax.ShapeDtypeStruct((len(rows) + 1,) + example.shape[1:], example.dtype)


def word_table(inputs, rows):
    """``inputs[rows]`` then one zero row, (N + 1, D) or (N + 1,), as a device array."""
    shape = _table_shape(inputs, rows)
    table = _aligned_empty(shape.shape, shape.dtype)
    if isinstance(inputs, np.ndarray):
        # Ascending rows read a memmap front to back; mode="raise" would gather
        # into a temporary first.
        np.take(inputs, rows, axis=0, out=table[:-1], mode="clip")
    else:
        table[:-1] = np.asarray(inputs[rows])
    table[-1] = 0
    # The device (CPU) array shares the table's memory instead of copying it.
    return jax.device_put(table, may_alias=True)


def _aligned_empty(shape, dtype, alignment=64):
    """np.empty starting on an ``alignment``-byte boundary: the CPU device can share its memory."""
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    raw = np.empty(nbytes + alignment, np.uint8)
    start = -raw.ctypes.data % alignment
    return raw[start : start + nbytes].view(dtype).reshape(shape)
