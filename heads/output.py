"""What wraps a head: learned word-form and cluster inputs before it, a linear-chain CRF after it
(``heads.output: crf``).

The wrappers hold the head they wrap as a submodule (``head``), so a softmax head without extra inputs keeps
the parameter tree it always had, and each piece lives once: ``WordFormInput`` splits the word-form id
columns off a head's inputs and embeds them (``heads.word_forms``), ``ClusterInput`` the cluster id columns
(``heads.clusters``), ``CharInput`` the character id columns of a character CNN (``heads.char_cnn``, the
outermost: its columns come last); ``CRFHead`` reads the head's outputs as emissions
over BIO labels and scores label sequences with ``heads.crf``.

A CRF head answers like any head: ``__call__`` gives (per-category log-probabilities, latent), the logs of
the forward-backward marginals (B-x and I-x summed into x), so ``softmax`` of them is the marginals and every
caller that reads probabilities (the KL, entropy and self-training terms, the teacher's confidence, the
predictions' scores) reads the CRF's marginals unchanged. Two things differ and have one home each here:
the supervised loss (``supervised_loss``: the sequence negative log-likelihood instead of the per-word cross
entropy) and decoding (``decode``: the best path by Viterbi instead of each word's argmax).

Padding. The heads' batches pad with all-zero rows at the end; a real word's cached vector is never all zero.
A CRF head takes a word as real where its inputs are not all zero (as the BiLSTM does), unless the caller
gives the mask (the supervised loss: a pseudo-labelled batch masks the words the teacher was unsure of,
and the chain passes over them).
"""

from __future__ import annotations

from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from heads import crf
from heads.chars import CharCNN
from heads.losses import masked_cross_entropy, weighted_word_loss
from heads.word_forms import WordFormEmbed

# Below any marginal a float32 softmax can give a real word; the log of a zero marginal stays finite.
_TINY = 1e-30


def real_words(x):
    """(P,) bool: rows of ``x`` that are not all zero (the batches' padding rows are)."""
    return jnp.any(x != 0, axis=-1)


class _InputWrapper:
    """What a head that feeds another (``self.head``) answers for it: its outputs and how it reads sentences."""

    @property
    def reads_sentences(self) -> bool:
        return self.head.reads_sentences

    @property
    def num_classes(self) -> int:
        return self.head.num_classes

    @property
    def latent_dim(self) -> int:
        return self.head.latent_dim


class WordFormInput(_InputWrapper, nn.Module):
    """A head whose inputs end with ``len(attributes)`` columns of hashed word-form ids (``features.word_forms``,
    exact integers in float32): those ids are embedded by ``WordFormEmbed`` and the embedding replaces them."""

    head: nn.Module
    rows: int  # buckets per attribute (heads.word_form_rows)
    width: int  # of the embedding (heads.word_forms)
    attributes: tuple = ("lower", "prefix", "suffix", "shape")

    @nn.compact
    def __call__(self, x, starts=None, *, deterministic=True):
        columns = len(self.attributes)
        features, ids = x[:, :-columns], x[:, -columns:].astype(jnp.int32)  # (P, D), (P, A)
        real = real_words(features)  # a padding row's ids are 0, a real bucket: the mask keeps it at zero
        embedded = WordFormEmbed(self.rows, self.width, self.attributes, name="word_forms")(ids, real)
        inputs = jnp.concatenate([features.astype(jnp.float32), embedded], axis=-1)  # (P, D + width)
        return self.head(inputs, starts, deterministic=deterministic)


class ClusterInput(_InputWrapper, nn.Module):
    """A head whose inputs end with three columns per set of clusters (``features.clusters.cluster_columns``:
    the previous, own and next word's cluster id, k for none): each id is embedded (one table of k + 1 rows
    per set, shared by the three positions) and the embeddings replace the ids."""

    head: nn.Module
    sizes: tuple  # k of each set, in the columns' order (heads.clusters)
    width: int  # of each id's embedding (heads.cluster_width)

    @nn.compact
    def __call__(self, x, starts=None, *, deterministic=True):
        columns = 3 * len(self.sizes)
        rest, ids = x[:, :-columns], x[:, -columns:].astype(jnp.int32)  # (P, D'), (P, 3 * sets)
        real = real_words(rest)[:, None]  # padding rows (all zero) embed to zero
        pieces = [rest.astype(jnp.float32)]
        for index, k in enumerate(self.sizes):
            table = nn.Embed(int(k) + 1, self.width, name=f"clusters_{k}")
            embedded = table(ids[:, 3 * index : 3 * index + 3])  # (P, 3, width)
            pieces.append(jnp.where(real, embedded.reshape(x.shape[0], -1), 0.0))
        return self.head(jnp.concatenate(pieces, axis=-1), starts, deterministic=deterministic)


class CharInput(_InputWrapper, nn.Module):
    """A head whose inputs end with ``columns`` character ids per word (``features.chars``, exact integers in
    float32; the outermost input wrapper: its columns come last): a ``CharCNN`` turns them into one vector of
    ``filters`` per word, which replaces them (``heads.char_cnn``)."""

    head: nn.Module
    filters: int  # of the CNN: the width of a word's vector (heads.char_cnn)
    columns: int  # ids per word (features.chars.CHAR_COLUMNS)
    dropout_rate: float = 0.0  # on the character embeddings (heads.dropout)

    @nn.compact
    def __call__(self, x, starts=None, *, deterministic=True):
        rest, ids = x[:, : -self.columns], x[:, -self.columns :]  # (P, D'), (P, T)
        cnn = CharCNN(self.filters, self.dropout_rate, name="chars")
        vectors = cnn(ids, real_words(rest), deterministic=deterministic)  # (P, filters)
        inputs = jnp.concatenate([rest.astype(jnp.float32), vectors], axis=-1)  # (P, D' + filters)
        return self.head(inputs, starts, deterministic=deterministic)


class CRFHead(nn.Module):
    """A head's outputs as emissions over ``bio``'s labels (its ``num_classes`` is len(bio.names)), and a CRF.

    ``num_classes`` is the number of categories, as for any head; the wrapped head's is the number of labels.
    """

    reads_sentences: ClassVar[bool] = True  # a path runs over whole sentences: callers pass ``starts``

    head: nn.Module
    bio: crf.BioLabels

    @property
    def num_classes(self) -> int:
        return len(self.bio.categories)

    @property
    def latent_dim(self) -> int:
        return self.head.latent_dim

    def setup(self):
        self.crf = crf.CRF(len(self.bio.names))

    def emissions(self, x, starts, deterministic):
        """(emissions (P, L), latent, the CRF's scores)."""
        emissions, latent = self.head(x, starts, deterministic=deterministic)
        return emissions.astype(jnp.float32), latent, self.crf()

    def __call__(self, x, starts=None, *, deterministic=True):
        """(log p(word's category) (P, C) from the marginals, latent (P, latent_dim))."""
        starts = _starts(x, starts)
        emissions, latent, scores = self.emissions(x, starts, deterministic)
        label_marginals = crf.marginals(emissions, starts, real_words(x), scores)  # (P, L)
        categories = jnp.zeros((x.shape[0], self.num_classes), jnp.float32)
        categories = categories.at[:, jnp.asarray(self.bio.category_of_label)].add(label_marginals)
        return jnp.log(categories + _TINY), latent

    def nll(self, x, starts, labels, mask, *, deterministic=True):
        """(the per-word negative log-likelihood of the category ``labels`` (P,) over ``mask``'s words, each
        word's best category score (P, C) from its emissions, for the training metrics)."""
        emissions, _, scores = self.emissions(x, starts, deterministic)
        gold = crf.categories_to_labels(labels, starts, mask, self.bio)
        loss = crf.negative_log_likelihood(emissions, gold, starts, mask, scores)
        categories = jnp.full((x.shape[0], self.num_classes), crf.NEG, jnp.float32)
        categories = categories.at[:, jnp.asarray(self.bio.category_of_label)].max(emissions)
        return loss, categories

    def decode(self, x, starts=None):
        """Each word's category on its sentence's best path (Viterbi), (P,) int32; 0 on padding rows."""
        starts = _starts(x, starts)
        emissions, _, scores = self.emissions(x, starts, True)
        return crf.labels_to_categories(crf.viterbi(emissions, starts, real_words(x), scores), self.bio)

    def best_path(self, x, starts=None):
        """(each word's category on its sentence's best path (P,) int32, each word's part of that path's log
        probability (P,) float32: a sentence's parts sum to log p(best path | sentence)); 0 on padding rows."""
        starts, mask = _starts(x, starts), real_words(x)
        emissions, _, scores = self.emissions(x, starts, True)
        labels = crf.viterbi(emissions, starts, mask, scores)
        terms = crf.path_score_terms(emissions, labels, starts, mask, scores)
        terms = terms - crf.log_partition_terms(emissions, starts, mask, scores)
        return crf.labels_to_categories(labels, self.bio), terms


def _starts(x, starts):
    return jnp.zeros(x.shape[0], bool) if starts is None else jnp.asarray(starts, bool)


def is_crf(model) -> bool:
    return isinstance(model, CRFHead)


def supervised_loss(apply_fn, params, batch, dropout_key, class_weights):
    """(the labelled batch's loss, per-category scores (P, C) for the metrics) of the head ``apply_fn`` applies.

    A CRF head: the sequence negative log-likelihood per word, plus, given ``class_weights`` (``heads.word_loss``
    times the class weights: ``heads.losses.class_weights``), the mean over words of each word's weighted cross
    entropy of its best emission per category; any other head: the (class-weighted) cross entropy of its logits.
    """
    variables, rngs = {"params": params}, {"dropout": dropout_key}
    if is_crf(getattr(apply_fn, "__self__", None)):
        loss, scores = apply_fn(
            variables, batch.inputs, batch.starts, batch.labels, batch.mask, deterministic=False, rngs=rngs,
            method="nll",
        )  # fmt: skip
        if class_weights is not None:
            loss = loss + weighted_word_loss(scores, batch.labels, batch.mask, class_weights)
        return loss, scores
    logits, _ = apply_fn(variables, batch.inputs, batch.starts, deterministic=False, rngs=rngs)
    return masked_cross_entropy(logits, batch.labels, batch.mask, class_weights), logits


def decode(model, params, inputs, starts):
    """Each word's category id (P,) int32: the Viterbi path of a CRF head, else the argmax of the logits."""
    if is_crf(model):
        return model.apply({"params": params}, inputs, starts, method="decode")
    logits, _ = model.apply({"params": params}, inputs, starts)
    return jnp.argmax(logits, axis=-1).astype(jnp.int32)


def best_path(model, params, inputs, starts):
    """(each word's category on its sentence's most probable labelling (P,) int32, each word's part of that
    labelling's log probability (P,) float32). A CRF head: the Viterbi path and log p(path) = score - log Z; any
    other head labels its words independently: each word's argmax and the log of its probability."""
    if is_crf(model):
        return model.apply({"params": params}, inputs, starts, method="best_path")
    logits, _ = model.apply({"params": params}, inputs, starts)
    log_probabilities = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    return jnp.argmax(logits, axis=-1).astype(jnp.int32), jnp.max(log_probabilities, axis=-1)


def grid_clone(model, **changes):
    """``model`` with ``changes`` applied to the sentence-reading head inside it (through the wrappers)."""
    if isinstance(model, (WordFormInput, ClusterInput, CharInput, CRFHead)):
        return model.clone(head=grid_clone(model.head, **changes))
    return model.clone(**changes) if hasattr(model, "grid_rows") else model  # the BiLSTM; an MLP has no grid


__all__ = [
    "CRFHead",
    "CharInput",
    "best_path",
    "ClusterInput",
    "WordFormInput",
    "decode",
    "grid_clone",
    "is_crf",
    "real_words",
    "supervised_loss",
]
