"""Category probabilities, predicted categories and latent vectors of a trained head, jitted once per head
architecture.

The predicted category of a word is the argmax of its probabilities for a softmax head, and its label on its
sentence's best path (Viterbi) for a CRF head (``heads.output``), whose probabilities are the marginals.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from heads.context import rows_needed, sentence_head
from heads.output import decode, grid_clone


@functools.partial(jax.jit, static_argnums=0)
def _outputs(model, params, inputs, starts):
    # The model is a static argument (a hashable Flax module), so each head
    # architecture compiles once per input shape and every later call reuses it.
    logits, latent = model.apply({"params": params}, inputs, starts)
    predicted = decode(model, params, inputs, starts)  # (P,) int32
    return jax.nn.softmax(logits, axis=-1), latent, predicted  # (P, C), (P, latent_dim), (P,)


def _hashable(model):
    """``model`` with list fields as tuples (a config read from msgpack has lists), so jit can key on it."""
    lists = {
        f.name: tuple(getattr(model, f.name))
        for f in dataclasses.fields(model)
        if isinstance(getattr(model, f.name), list)
    }
    return model.clone(**lists) if lists else model


def predict_padded(params, model, inputs, starts=None):
    """Probabilities (P, C), latent vectors (P, latent_dim) and predicted categories (P,) of ``inputs`` as given,
    device arrays.

    ``starts`` (P,) bool: each sentence's first word, for a head that reads sentences (None: a word-by-word head).
    """
    starts = np.zeros(len(inputs), bool) if starts is None else np.asarray(starts, bool)
    return _outputs(_hashable(model), params, jnp.asarray(inputs), jnp.asarray(starts))


def _sentence_chunks(starts, n, max_words, max_sentences):
    """(first, last) word ranges of at most ``max_sentences`` whole sentences and ``max_words`` words each.

    A sentence longer than ``max_words`` is a chunk of its own.
    """
    bounds = np.append(starts, n)
    chunks, first, count = [], 0, 0
    for start, stop in zip(bounds[:-1], bounds[1:]):
        if count and (stop - first > max_words or count == max_sentences):
            chunks.append((first, int(start)))
            first, count = int(start), 0
        count += 1
    if n:
        chunks.append((first, n))
    return chunks


def _chunked_sentences(outputs, params, model, inputs, first_words, batch_words, batch_sentences=256):
    """``outputs(params, model, piece, piece_starts)`` over chunks cut at sentence starts, each padded to a power
    of two of at least 256 words; the per-word arrays it returns, joined, as NumPy. ``inputs`` is read a chunk
    at a time (an array or a ``cache.rows`` view). Only a grid head's chunks hold at most ``batch_sentences``
    sentences (its grid has that many rows); a chain over flat words fills ``batch_words``."""
    n = len(inputs)
    starts = np.flatnonzero(first_words)
    if n and (not len(starts) or starts[0] != 0):
        starts = np.concatenate([[0], starts])
    results = None
    bounds = np.append(starts, n)
    grid = sentence_head(model)  # the BiLSTM inside, if any: its grid is fitted to each chunk
    for first, last in _sentence_chunks(starts, n, batch_words, batch_words if grid is None else batch_sentences):
        size = max(256, 1 << (last - first - 1).bit_length())  # a power of two: few shapes, little padding
        piece = np.zeros((size,) + inputs.shape[1:], inputs.dtype)
        piece[: last - first] = inputs[first:last]
        piece_starts = np.zeros(size, bool)
        piece_starts[starts[(starts >= first) & (starts < last)] - first] = True
        fitted = model
        if grid is not None:
            # The grid the chunk's sentences fill, rounded to 64 rows: few distinct shapes to compile.
            lengths = np.diff(bounds[(bounds >= first) & (bounds <= last)])
            fitted = grid_clone(
                model, max_sentences=batch_sentences, grid_rows=rows_needed(lengths, grid.row_words, 64)
            )
        chunk = [np.asarray(values) for values in outputs(params, fitted, piece, piece_starts)]
        results = results or [np.empty((n,) + values.shape[1:], values.dtype) for values in chunk]
        for out, values in zip(results, chunk):
            out[first:last] = values[: last - first]  # sliced on the host: no compile per length
    return tuple(results) if results is not None else None


def _chunked_words(outputs, params, model, inputs, batch_words):
    """``outputs(params, model, piece, None)`` over chunks of one fixed size (the last one zero-padded), so a
    call compiles once however many words it gets; the per-word arrays it returns, joined, as NumPy."""
    n = len(inputs)
    results = None
    chunk = min(batch_words, -(-max(n, 1) // 256) * 256)  # no bigger than the input needs
    for start in range(0, n, chunk):
        piece = np.asarray(inputs[start : start + chunk])
        real = len(piece)
        if real < chunk:
            padding = np.zeros((chunk - real,) + piece.shape[1:], piece.dtype)
            piece = np.concatenate([piece, padding])
        values = [np.asarray(v) for v in outputs(params, model, piece, None)]
        results = results or [np.empty((n,) + v.shape[1:], v.dtype) for v in values]
        for out, v in zip(results, values):
            out[start : start + real] = v[:real]
    return tuple(results) if results is not None else None


def map_words(outputs, params, model, inputs, starts=None, batch_words=65536):
    """Per-word arrays ``outputs(params, model, piece, piece_starts)`` gives (each (P, ...)), over ``inputs`` in
    chunks that compile once per shape: whole sentences for a head that reads them (``starts`` needed, chunks of
    at most 8,192 words), fixed word chunks otherwise. None for no words."""
    if model.reads_sentences:
        if starts is None or len(starts) != len(inputs):
            raise ValueError(f"{type(model).__name__} reads whole sentences: give the first word of each (starts)")
        return _chunked_sentences(outputs, params, model, inputs, np.asarray(starts, bool), min(batch_words, 8192))
    return _chunked_words(outputs, params, model, inputs, batch_words)


def predict_categories(params, model, inputs, starts=None, batch_words=65536):
    """Each word's predicted category (N,) int32, category probabilities (N, C) and latent vectors
    (N, latent_dim), float32 NumPy.

    A head that reads sentences (``reads_sentences``: the BiLSTM, a CRF) needs ``starts`` (N,) bool, each
    sentence's first word (``heads.batches.sentence_starts``); see ``map_words``.
    """
    outputs = map_words(predict_padded, params, model, inputs, starts, batch_words)
    if outputs is None:
        n = len(inputs)
        outputs = (
            np.empty((n, model.num_classes), np.float32),
            np.empty((n, model.latent_dim), np.float32),
            np.empty(n, np.int32),
        )
    probabilities, latent, predicted = outputs
    return predicted, probabilities, latent


def predict(params, model, inputs, starts=None, batch_words=65536):
    """Category probabilities (N, C) and latent vectors (N, latent_dim), float32 NumPy: ``predict_categories``
    without the categories."""
    _, probabilities, latent = predict_categories(params, model, inputs, starts, batch_words)
    return probabilities, latent
