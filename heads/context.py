"""A context head: a bidirectional LSTM over each sentence's cached word vectors, then the seed's MLP.

The heads see a batch as its words laid end to end, (P, D), whole sentences in
order and zero rows of padding at the end, the same as the MLP does, so every
loss, step, schedule and table is shared. The BiLSTM needs the sentences back:
it is told where each one starts (``starts``: every batch, ``heads.predict`` and the
tagger pass each sentence's first word; no input column is read for it), lays the words out on a grid
of rows of ``row_words`` words (a longer sentence is cut into windows of that
length), runs the LSTMs along the rows with their true lengths, and gathers
each word's two states back to its place.

The grid has ``max_sentences + ceil(P / row_words)`` rows: enough for any P
words in at most ``max_sentences`` sentences, since a sentence of n words takes
ceil(n / row_words) <= n / row_words + 1 rows. Training batches hold at most
``batch_sentences`` sentences; ``heads.predict`` cuts longer inputs at
sentence starts and sets ``max_sentences`` per chunk.

That bound is about 1.7x the rows a batch of news sentences fills, and the
LSTMs' cost (their gates' sigmoids and tanhs, cell by cell) grows with the
grid. Whoever knows the sentences sets ``grid_rows`` to what they need
(``fit_grid``: the schedules from their batches, ``heads.predict`` per
chunk); words on rows past it would be dropped, so it must not be smaller.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from heads.model import MLPBody
from heads.output import grid_clone


def sentence_grid(starts, real, row_words: int, rows: int):
    """Where each word sits on a (rows, row_words) grid: (row, column), each (P,) int32.

    ``starts`` (P,) bool marks each sentence's first word, ``real`` (P,) bool
    the words (False on padding, which gets row ``rows``: outside the grid).
    """
    index = jnp.arange(starts.shape[0])
    first = jax.lax.cummax(jnp.where(starts | (index == 0), index, 0))  # (P,) the sentence's first word
    position = index - first  # (P,) word index within its sentence
    column = position % row_words
    row = jnp.cumsum(column == 0) - 1  # a new row at each sentence start and each window start
    return jnp.where(real, row, rows).astype(jnp.int32), column.astype(jnp.int32)


def rows_needed(lengths, row_words: int, multiple: int = 8) -> int:
    """Grid rows for sentences of ``lengths`` words (one per ``row_words`` window), rounded up to ``multiple``."""
    rows = int((-(-np.asarray(lengths, np.int64) // row_words)).sum())
    return max(multiple, -(-rows // multiple) * multiple)


def sentence_head(model):
    """The BiLSTM ``model`` is or wraps (``heads.output``'s wrappers hold their head as ``head``), else None."""
    while not isinstance(model, BiLSTMHead):
        model = getattr(model, "head", None)
        if not isinstance(model, nn.Module):
            return None
    return model


def fit_grid(model, offsets, batches):
    """``model`` with a grid just large enough for every batch of ``batches`` (a head without one: as is)."""
    grid = sentence_head(model)
    if grid is None:
        return model
    lengths = np.diff(np.asarray(offsets, np.int64))
    rows = max(rows_needed(lengths[np.asarray(b, np.int64)], grid.row_words) for b in batches)
    return grid_clone(model, grid_rows=rows)


class BiLSTMHead(nn.Module):
    """Words of whole sentences (P, D) -> (logits (P, C), latent (P, latent_dim))."""

    reads_sentences: ClassVar[bool] = True  # its callers pass each sentence's first word (``starts``)

    num_classes: int
    hidden: Sequence[int] = (256, 128, 64)  # the MLP after the LSTMs: the seed's
    latent_dim: int = 32  # the plotted latent space
    dropout_rate: float = 0.0
    lstm_units: int = 128  # per direction
    projection: int = 128  # the words' vectors are projected to this size before the LSTMs (speed)
    row_words: int = 32  # grid row length; most sentences of news text fit in one row
    max_sentences: int = 128  # at most this many sentences per call (a batch's batch_sentences)
    grid_rows: int = 0  # rows of the grid; 0: enough for any input (see the module's docstring)

    @nn.compact
    def __call__(self, x, starts=None, *, deterministic=True):
        """``x`` (P, D) words of whole sentences, ``starts`` (P,) bool their sentences' first words (None: one
        sentence, as when only shapes matter: ``init``)."""
        x = x.astype(jnp.float32)  # (P, D); cached features arrive as float16
        rows = self.grid_rows or self.max_sentences + -(-x.shape[0] // self.row_words)
        real = jnp.any(x != 0, axis=-1)  # (P,) padding rows are all zero
        starts = jnp.zeros(x.shape[0], bool) if starts is None else jnp.asarray(starts, bool)
        row, column = sentence_grid(starts, real, self.row_words, rows)
        projected = nn.Dense(self.projection, name="projection")(x)  # (P, H): one matmul, not one per step
        grid = jnp.zeros((rows, self.row_words, self.projection), jnp.float32)
        grid = grid.at[row, column].set(projected, mode="drop")  # (R, T, H); padding rows dropped
        lengths = jnp.zeros(rows, jnp.int32).at[row].max(column + 1, mode="drop")  # (R,)
        lstm = nn.Bidirectional(
            nn.RNN(nn.OptimizedLSTMCell(self.lstm_units), name="forward"),
            nn.RNN(nn.OptimizedLSTMCell(self.lstm_units), name="backward"),
            name="bilstm",
        )
        states = lstm(grid, seq_lengths=lengths)  # (R, T, 2U)
        context = states.at[row, column].get(mode="fill", fill_value=0.0)  # (P, 2U)
        if self.dropout_rate > 0:
            context = nn.Dropout(self.dropout_rate)(context, deterministic=deterministic)
        latent = MLPBody(self.hidden, self.latent_dim, self.dropout_rate, name="body")(
            jnp.concatenate([x, context], axis=-1), deterministic=deterministic
        )
        logits = nn.Dense(self.num_classes, name="classifier")(latent)  # (P, C)
        return logits, latent
