"""Category probabilities and latent vectors of a trained head, jitted once per head architecture."""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from heads.context import rows_needed


@functools.partial(jax.jit, static_argnums=0)
def _probabilities(model, params, inputs, starts):
    # The model is a static argument (a hashable Flax module), so each head
    # architecture compiles once per input shape and every later call reuses it.
    logits, latent = model.apply({"params": params}, inputs, starts)
    return jax.nn.softmax(logits, axis=-1), latent  # (P, C), (P, latent_dim)


def _hashable(model):
    """``model`` with list fields as tuples (a config read from msgpack has lists), so jit can key on it."""
    lists = {
        f.name: tuple(getattr(model, f.name))
        for f in dataclasses.fields(model)
        if isinstance(getattr(model, f.name), list)
    }
    return model.clone(**lists) if lists else model


def predict_padded(params, model, inputs, starts=None):
    """Probabilities (P, C) and latent vectors (P, latent_dim) of ``inputs`` as given, device arrays.

    ``starts`` (P,) bool: each sentence's first word, for a head that reads sentences (None: a word-by-word head).
    """
    starts = np.zeros(len(inputs), bool) if starts is None else np.asarray(starts, bool)
    return _probabilities(_hashable(model), params, jnp.asarray(inputs), jnp.asarray(starts))


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


def _predict_context(params, model, inputs, first_words, batch_words, batch_sentences=256):
    """``predict`` for a context head: chunks cut at sentence starts, each padded to ``batch_words``."""
    inputs = np.asarray(inputs)
    n = len(inputs)
    starts = np.flatnonzero(first_words)
    if n and (not len(starts) or starts[0] != 0):
        starts = np.concatenate([[0], starts])
    probabilities = np.empty((n, model.num_classes), np.float32)
    latent = np.empty((n, model.latent_dim), np.float32)
    bounds = np.append(starts, n)
    for first, last in _sentence_chunks(starts, n, batch_words, batch_sentences):
        size = max(batch_words, 1 << (last - first - 1).bit_length())  # a rare long sentence: a power of two
        piece = np.zeros((size,) + inputs.shape[1:], inputs.dtype)
        piece[: last - first] = inputs[first:last]
        piece_starts = np.zeros(size, bool)
        piece_starts[starts[(starts >= first) & (starts < last)] - first] = True
        # The grid the chunk's sentences fill, rounded to 64 rows: few distinct shapes to compile.
        lengths = np.diff(bounds[(bounds >= first) & (bounds <= last)])
        fitted = model.clone(max_sentences=batch_sentences, grid_rows=rows_needed(lengths, model.row_words, 64))
        chunk_probabilities, chunk_latent = predict_padded(params, fitted, piece, piece_starts)
        probabilities[first:last] = np.asarray(chunk_probabilities[: last - first])
        latent[first:last] = np.asarray(chunk_latent[: last - first])
    return probabilities, latent


def predict(params, model, inputs, starts=None, batch_words=65536):
    """Category probabilities (N, C) and latent vectors (N, latent_dim), float32 NumPy.

    Runs in chunks of one fixed size (the last one zero-padded), so a call
    compiles once however many words it gets. A head that reads sentences
    (``reads_sentences``) needs ``starts`` (N,) bool, each sentence's first word
    (``heads.batches.sentence_starts``), and gets whole sentences, in chunks of 8,192 words.
    """
    if model.reads_sentences:
        if starts is None or len(starts) != len(inputs):
            raise ValueError(f"{type(model).__name__} reads whole sentences: give the first word of each (starts)")
        return _predict_context(params, model, inputs, np.asarray(starts, bool), min(batch_words, 8192))
    n = len(inputs)
    probabilities = np.empty((n, model.num_classes), np.float32)
    latent = np.empty((n, model.latent_dim), np.float32)
    chunk = min(batch_words, -(-max(n, 1) // 256) * 256)  # no bigger than the input needs
    for start in range(0, n, chunk):
        piece = np.asarray(inputs[start : start + chunk])
        real = len(piece)
        if real < chunk:
            padding = np.zeros((chunk - real,) + piece.shape[1:], piece.dtype)
            piece = np.concatenate([piece, padding])
        chunk_probabilities, chunk_latent = predict_padded(params, model, piece)
        probabilities[start : start + real] = np.asarray(chunk_probabilities[:real])
        latent[start : start + real] = np.asarray(chunk_latent[:real])
    return probabilities, latent
