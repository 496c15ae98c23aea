"""Learned word-form features: a Flax module that embeds the hashed ids of ``features.word_forms``.

``WordFormEmbed(rows, width, attributes)`` maps ids (P, A), one column per attribute, to (P, width): each
attribute has its own table of ``rows`` embeddings of ``width``, the A looked-up vectors are concatenated and
one Dense(width) + tanh mixes them. This is spaCy's MultiHashEmbed (concatenate, then a Maxout layer with
layer norm) made simpler:

- Concatenate rather than sum: a Dense over the concatenation is a sum of per-attribute projections, so it can
  do all a sum does, and it also weighs the attributes apart (a suffix's row means something other than a
  lower-cased form's) and lets the activation combine them ("Xx" shape with an "-ton" suffix).
- Dense + tanh rather than Maxout + LayerNorm: one matrix of A * width x width, no pieces to choose. tanh keeps
  the output in (-1, 1), the scale of the 0/1 shape flags beside which it goes into a head's input, and it has
  no dead units: every row a batch uses gets a gradient from the first step (a ReLU unit off for every word
  in a batch would not).

Padding. An id below 0 (-1) is an absent attribute: its slot of the concatenation is zero and no row of that
attribute's table gets a gradient from it. A padding word (all its ids negative, or False in the optional
``mask`` (P,) bool that marks real words as the heads' batches do) gives exactly zero and no parameter gets a
gradient from it. Ids must be below ``rows``, as ``features.word_forms`` makes them (an id >= rows reads a NaN
row under ``jnp.take``'s default mode).
Leading dimensions are free: (B, T, A) ids give (B, T, width).
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax.numpy as jnp

from features.word_forms import WORD_FORM_ATTRIBUTES


class WordFormEmbed(nn.Module):
    """Hashed word-form ids (P, A) int -> (P, width) float32, zero for padding words."""

    rows: int  # buckets per attribute: the ``rows`` the ids were hashed into
    width: int  # of each attribute's embedding and of the output
    attributes: Sequence[str] = WORD_FORM_ATTRIBUTES  # the ids' columns, in order; names the tables

    @nn.compact
    def __call__(self, ids, mask=None):
        if ids.ndim < 1 or ids.shape[-1] != len(self.attributes):
            raise ValueError(f"ids must be (..., {len(self.attributes)}) for attributes {tuple(self.attributes)}")
        present = ids >= 0  # (P, A): -1 marks an absent attribute
        pieces = []  # A x (P, width)
        for a, name in enumerate(self.attributes):
            table = nn.Embed(self.rows, self.width, name=f"{name}_embedding")
            # A -1 reads the table's last row (``jnp.take`` wraps it); the ``where`` discards it and its gradient.
            pieces.append(jnp.where(present[..., a, None], table(ids[..., a].astype(jnp.int32)), 0.0))
        hidden = nn.Dense(self.width, name="mix")(jnp.concatenate(pieces, axis=-1))  # (P, A * width) -> (P, width)
        mixed = jnp.tanh(hidden)
        real = present.any(axis=-1)  # (P,): a word with no attribute is padding
        if mask is not None:
            real = real & mask
        return jnp.where(real[..., None], mixed, 0.0)  # (P, width)
