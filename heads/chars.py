"""A character CNN over each word (Ma and Hovy 2016): the ids of ``features.chars`` to one vector per word.

``CharCNN(filters)`` maps ids (P, T) to (P, filters): each character's embedding (``CHAR_DIM``), dropout on
the embeddings (Ma and Hovy's 0.5 before the CNN; here the head's own ``heads.dropout``, which validation
chose for the rest of the head), one convolution of ``KERNEL`` characters with ``filters`` filters along the
word, the maximum of each filter over the word's positions, then tanh. Ma and Hovy use 30-d characters,
30 filters of width 3 and no activation after the pooling; tanh keeps the vector in (-1, 1), the scale of
the shape flags and word-form embeddings beside it in a head's input.

Padding. Id 0 is no character: its embedding is zero and its position takes no part in the maximum (the
convolution still sees it as zeros at the word's edges, as "SAME" padding would). A word with no id at all
(a heads' padding row, or False in ``mask``) gives exactly zero and sends no gradient.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from features.chars import CHAR_ROWS, PAD

CHAR_DIM = 30  # Ma and Hovy's character embedding
KERNEL = 3  # characters per window: Ma and Hovy's
_LOW = -1e9  # below any filter's output: a padding position never wins the maximum


class CharCNN(nn.Module):
    """Character ids (P, T) int -> (P, filters) float32, zero for padding words."""

    filters: int  # the width of a word's vector (heads.char_cnn)
    dropout_rate: float = 0.0  # on the character embeddings
    rows: int = CHAR_ROWS  # of the character table: the ids' range

    @nn.compact
    def __call__(self, ids, mask=None, *, deterministic=True):
        ids = ids.astype(jnp.int32)
        present = ids != PAD  # (P, T)
        embedded = nn.Embed(self.rows, CHAR_DIM, name="embedding")(ids)  # (P, T, CHAR_DIM)
        embedded = jnp.where(present[..., None], embedded, 0.0)  # the pad row gets no gradient
        if self.dropout_rate > 0:
            embedded = nn.Dropout(self.dropout_rate)(embedded, deterministic=deterministic)
        windows = nn.Conv(self.filters, (KERNEL,), padding="SAME", name="conv")(embedded)  # (P, T, filters)
        pooled = jnp.max(jnp.where(present[..., None], windows, _LOW), axis=-2)  # (P, filters)
        real = present.any(axis=-1)  # (P,)
        if mask is not None:
            real = real & mask
        return jnp.where(real[..., None], jnp.tanh(pooled), 0.0)  # (P, filters)
