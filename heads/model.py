"""Flax (linen) heads that turn one word's input into category logits.

Both heads return ``(logits, latent)``: logits (N, C) float32 and the 32-d
latent vectors (N, latent_dim) float32 that the evaluation projects to 2-D.
Their parameters live under ``{"params": ...}``; the train module keeps only
the inner ``params`` dict.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import flax.linen as nn
import jax.numpy as jnp


class MLPBody(nn.Module):
    """Dense-ReLU layers of sizes ``hidden``, then a linear Dense(latent_dim): the latent."""

    hidden: Sequence[int] = (256, 128, 64)  # the seed's MLP
    latent_dim: int = 32  # the seed's plotted latent space
    dropout_rate: float = 0.0  # 0 = no dropout, as in the seed

    @nn.compact
    def __call__(self, x, *, deterministic=True):
        x = x.astype(jnp.float32)  # cached features arrive as float16
        for width in self.hidden:
            x = nn.relu(nn.Dense(width)(x))
            if self.dropout_rate > 0:
                x = nn.Dropout(self.dropout_rate)(x, deterministic=deterministic)
        return nn.Dense(self.latent_dim)(x)  # (N, latent_dim), no activation


class MLPHead(nn.Module):
    """Word features (N, D) -> (logits (N, C), latent (N, latent_dim))."""

    reads_sentences: ClassVar[bool] = False  # word by word

    num_classes: int
    hidden: Sequence[int] = (256, 128, 64)
    latent_dim: int = 32
    dropout_rate: float = 0.0

    @nn.compact
    def __call__(self, x, starts=None, *, deterministic=True):
        del starts  # word by word: where sentences start does not matter
        latent = MLPBody(self.hidden, self.latent_dim, self.dropout_rate, name="body")(x, deterministic=deterministic)
        logits = nn.Dense(self.num_classes, name="classifier")(latent)  # (N, C)
        return logits, latent


class EmbeddingHead(nn.Module):
    """The NER baseline: word-piece ids (N,) -> learned embedding -> the same MLP."""

    reads_sentences: ClassVar[bool] = False  # word by word

    vocab_size: int
    num_classes: int
    embed_dim: int = 784  # the seed's baseline embedding size
    hidden: Sequence[int] = (256, 128, 64)
    latent_dim: int = 32
    dropout_rate: float = 0.0

    @nn.compact
    def __call__(self, ids, starts=None, *, deterministic=True):
        del starts  # word by word
        x = nn.Embed(self.vocab_size, self.embed_dim, name="embedding")(ids.astype(jnp.int32))
        head = MLPHead(self.num_classes, self.hidden, self.latent_dim, self.dropout_rate, name="head")
        return head(x, deterministic=deterministic)  # (N, C), (N, latent_dim)
