"""Flax (linen) heads that turn one word's input into category logits.

Both heads return ``(logits, latent)``: logits (N, C) float32 and the 32-d
latent vectors (N, latent_dim) float32 that the evaluation projects to 2-D.
Their parameters live under ``{"params": ...}``; the train module keeps only
the inner ``params`` dict.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax.numpy as jnp
import numpy as np


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

    num_classes: int
    hidden: Sequence[int] = (256, 128, 64)
    latent_dim: int = 32
    dropout_rate: float = 0.0

    @nn.compact
    def __call__(self, x, *, deterministic=True):
        latent = MLPBody(self.hidden, self.latent_dim, self.dropout_rate, name="body")(x, deterministic=deterministic)
        logits = nn.Dense(self.num_classes, name="classifier")(latent)  # (N, C)
        return logits, latent


class EmbeddingHead(nn.Module):
    """The NER baseline: word-piece ids (N,) -> learned embedding -> the same MLP."""

    vocab_size: int
    num_classes: int
    embed_dim: int = 784  # the seed's baseline embedding size
    hidden: Sequence[int] = (256, 128, 64)
    latent_dim: int = 32
    dropout_rate: float = 0.0

    @nn.compact
    def __call__(self, ids, *, deterministic=True):
        x = nn.Embed(self.vocab_size, self.embed_dim, name="embedding")(ids.astype(jnp.int32))
        head = MLPHead(self.num_classes, self.hidden, self.latent_dim, self.dropout_rate, name="head")
        return head(x, deterministic=deterministic)  # (N, C), (N, latent_dim)


def build_model(
    kind: str,
    num_classes: int,
    *,
    hidden=(256, 128, 64),
    latent_dim: int = 32,
    dropout: float = 0.0,
    embed_dim: int = 0,
    vocab_size: int = 0,
    head: str = "mlp",
    input_dim: int = 0,
    lstm_units: int = 128,
    row_words: int = 32,
    max_sentences: int = 128,
) -> nn.Module:
    """The head for input ``kind``: ``"piece_ids"`` (the baseline's embedding head) or ``"features"``.

    Features go to the seed's MLP (``head="mlp"``) or to a BiLSTM first
    (``head="bilstm"``, ``heads.context``), which reads sentence starts from
    the first-word shape flag among the last ``len(SHAPE_FLAGS)`` of the
    ``input_dim`` columns.
    """
    hidden = tuple(int(width) for width in hidden)  # hashable, so the module can be a static jit argument
    if kind == "piece_ids":
        return EmbeddingHead(vocab_size, num_classes, embed_dim, hidden, latent_dim, dropout)
    if kind != "features":
        raise ValueError(f"unknown head input {kind!r}: expected 'features' or 'piece_ids'")
    if head == "mlp":
        return MLPHead(num_classes, hidden, latent_dim, dropout)
    if head == "bilstm":
        from features.shape import FIRST_WORD, SHAPE_FLAGS
        from heads.context import BiLSTMHead

        first_word_column = input_dim - len(SHAPE_FLAGS) + FIRST_WORD
        return BiLSTMHead(
            num_classes,
            first_word_column,
            hidden,
            latent_dim,
            dropout,
            lstm_units=lstm_units,
            row_words=row_words,
            max_sentences=max_sentences,
        )
    raise ValueError(f"unknown head {head!r}: expected mlp or bilstm")


def model_from_config(config: dict) -> nn.Module:
    """Rebuild the Flax module a saved head was trained as, from its config."""
    heads = config["heads"]
    return build_model(
        config["input"],
        len(config["categories"]),
        hidden=heads["hidden"],
        latent_dim=heads["latent_dim"],
        dropout=heads["dropout"],
        embed_dim=config.get("embed_dim", 0),
        vocab_size=config.get("vocab_size", 0),
        head=heads.get("kind", "mlp"),
        input_dim=config.get("input_dim", 0),
        lstm_units=heads.get("lstm_units", 128),
        row_words=heads.get("row_words", 32),
        max_sentences=heads.get("batch_sentences", 128),
    )


def baseline_vocabulary(piece_ids: np.ndarray) -> np.ndarray:
    """The first-piece ids seen in the labelled words, sorted: the baseline's embedding rows 1..V.

    Row 0 is shared by every id never seen in a labelled word. Such rows never
    receive a gradient, so giving each unseen id a row of its own (the seed's full
    30,522-row table) changes nothing learnable, and Adam over the full table
    makes every step ~5x slower.
    """
    return np.unique(piece_ids).astype(np.int32)


def baseline_inputs(piece_ids: np.ndarray, vocabulary) -> np.ndarray:
    """Map first-piece ids to the baseline's embedding rows (0 for unseen ids), (N,) int32."""
    vocabulary = np.asarray(vocabulary, dtype=np.int32)
    position = np.clip(np.searchsorted(vocabulary, piece_ids), 0, max(len(vocabulary) - 1, 0))
    found = vocabulary[position] == piece_ids if len(vocabulary) else np.zeros(len(piece_ids), bool)
    return np.where(found, position + 1, 0).astype(np.int32)
