"""One place that turns head settings into a Flax module: for training, and for a saved head's config.

Apart from ``heads.model`` and ``heads.context`` so that neither imports the
other: both define modules, this one chooses among them.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn

from features.chars import CHAR_COLUMNS
from features.word_forms import WORD_FORM_ATTRIBUTES
from heads.context import BiLSTMHead
from heads.crf import bio_labels
from heads.model import EmbeddingHead, MLPHead
from heads.output import CharInput, ClusterInput, CRFHead, WordFormInput
from heads.settings import HeadParams

INPUT_KINDS = ("features", "piece_ids")


def build_model(
    heads: HeadParams,
    categories: Sequence[str],
    *,
    input_kind: str = "features",
    vocab_size: int = 0,
    embed_dim: int = 0,
) -> nn.Module:
    """The head ``heads`` describes for the category names ``categories`` (Flax takes the input width from the
    inputs).

    ``input_kind`` ``"piece_ids"`` is the baseline's embedding head (a table of
    ``vocab_size`` rows of ``embed_dim``); ``"features"``
    goes to the MLP, or to the BiLSTM first (``heads.kind``), whose callers pass
    each sentence's first word (``starts``) beside the inputs. With ``heads.word_forms`` the inputs' last
    columns are word-form ids, embedded first (``heads.output.WordFormInput``), with ``heads.clusters`` the
    next ones cluster ids (``heads.output.ClusterInput``), with ``heads.char_cnn`` the last ones character ids
    (``heads.output.CharInput``); with ``heads.output: crf`` the
    head's outputs are emissions over the categories' BIO labels, scored by a CRF (``heads.output.CRFHead``).
    """
    hidden = tuple(int(width) for width in heads.hidden)  # hashable, so the module can be a static jit argument
    num_classes = len(categories)
    if input_kind == "piece_ids":
        if heads.output != "softmax" or heads.word_forms or heads.clusters or heads.char_cnn:
            raise ValueError(
                "the baseline's embedding head has a softmax output and no word-form, cluster or character inputs"
            )
        return EmbeddingHead(vocab_size, num_classes, embed_dim, hidden, heads.latent_dim, heads.dropout)
    if input_kind != "features":
        raise ValueError(f"unknown head input {input_kind!r}: expected one of {', '.join(INPUT_KINDS)}")
    if heads.kind == "auto":
        raise ValueError("heads.kind auto is chosen on validation first (heads.auto.choose_head)")
    bio = bio_labels(categories) if heads.output == "crf" else None
    outputs = num_classes if bio is None else len(bio.names)
    head = _feature_head(heads, outputs, hidden)
    if heads.word_forms:
        head = WordFormInput(head, heads.word_form_rows, heads.word_forms, WORD_FORM_ATTRIBUTES)
    if heads.clusters:
        head = ClusterInput(head, tuple(int(k) for k in heads.clusters), heads.cluster_width)
    if heads.char_cnn:
        head = CharInput(head, heads.char_cnn, CHAR_COLUMNS, heads.dropout)
    return head if bio is None else CRFHead(head, bio)


def _feature_head(heads: HeadParams, num_classes: int, hidden: tuple) -> nn.Module:
    if heads.kind == "mlp":
        return MLPHead(num_classes, hidden, heads.latent_dim, heads.dropout)
    return BiLSTMHead(
        num_classes,
        hidden,
        heads.latent_dim,
        heads.dropout,
        lstm_units=heads.lstm_units,
        row_words=heads.row_words,
        max_sentences=heads.batch_sentences,
    )


def model_from_config(config: dict) -> nn.Module:
    """Rebuild the Flax module a saved head was trained as, from its config."""
    try:
        heads = HeadParams(**config["heads"])
    except TypeError as error:  # a key this code does not know
        raise ValueError(f"head config's heads section: {error}") from None
    return build_model(
        heads,
        [str(category) for category in config["categories"]],
        input_kind=config["input"],
        vocab_size=config.get("vocab_size", 0),
        embed_dim=config.get("embed_dim", 0),
    )
