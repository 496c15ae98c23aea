"""A linear-chain CRF over BIO labels, on the heads' flat word layout: pure, jit-friendly JAX functions.

Labels. The heads predict categories ("O", "geo", "per", ...); the CRF works on their BIO expansion
(``bio_labels``): label 0 is O, then B-x and I-x for each other category x in the categories' order, so that
two adjacent entities of one category stay apart. BIO forbids O -> I-x, B-x -> I-y and I-x -> I-y (x != y),
and a sentence that opens on I-x: ``CRF`` (or ``constrain`` with ``bio_allowed``) scores those moves ``NEG``.

Layout. A batch is its words laid end to end, (P, L) emissions, whole sentences in order: ``starts`` (P,)
bool marks each sentence's first word, ``mask`` (P,) bool the real words (the batches pad with False words
at the end). The CRF runs one ``lax.scan`` over the P word positions for the whole batch: a word that opens a
sentence takes the start score instead of a transition (the chain restarts there), and a word that closes
one (the next real word opens a sentence, or no real word follows) adds the end score. A masked word is
skipped: it takes no label and the chain passes over it. Why flat rather than (B, T, L) sentences: no static
T to choose (a T shorter than a sentence would cut its path; GMB has sentences of over 100 words), no gather
and scatter between the layouts, and it is faster on CPU: for 128 sentences (2,900 words, 17 labels) the NLL
and its gradient take about 5 ms on two cores, the log partition and its gradient of a (128, T, 17) scan
8-12 ms for T = 48-80 (a step over 128 sentences costs more than 3,000 / T steps over one word save).

Use from a Flax head: ``scores = CRF(len(bio.names))()`` in its ``__call__`` (the learnt parameters,
forbidden moves masked), then ``negative_log_likelihood(emissions, labels, starts, mask, scores)`` with
gold ``labels = categories_to_labels(category_ids, starts, mask, bio)``, ``viterbi`` to decode and
``labels_to_categories`` back to the heads' categories, ``marginals`` where softmax probabilities were used.
Gold labels from categories merge two adjacent entities of one category, as ``heads.metrics`` chunks
predictions; ``BioLabels.ids`` of the corpus's BIO tags keeps them apart.

Windows. The BiLSTM head (``heads.context``) cuts a sentence longer than ``row_words`` into windows for its
LSTMs only; its emissions come back to this flat layout, where nothing marks a window edge. The CRF's chain
runs over the whole sentence, so the transition from a window's last word into the next window's first is
an ordinary transition and a path is never broken at a window edge (``tests/test_crf.py`` checks it).

All math is float32; every value and gradient stays finite (forbidden moves score ``NEG``, never -inf) and
a fully masked batch has a zero loss with a zero gradient.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from data.corpus import BIO_PREFIXES, OUTSIDE
from data.tags import category_of

# The score of a move BIO forbids: far below any emission a head gives (even logits of 1e4), so exp() of a
# forbidden path is 0 in float32, while sums over a batch stay finite; -inf would make the loss of a gold path
# through a forbidden move infinite and its gradient NaN.
NEG = -1e9
# Word positions per loop iteration of the forward and backward scans: on two CPU cores this cuts the NLL
# gradient of a 3,000-word batch from about 11 ms to 4 ms, for about a second more compile time.
UNROLL = 4


@dataclasses.dataclass(frozen=True)
class BioLabels:
    """The BIO labels of ``categories``: names (L,), and id tables between labels and categories (tuples, so
    that a BioLabels is hashable and can be a static argument of a jitted function)."""

    categories: tuple[str, ...]
    names: tuple[str, ...]  # O, then B-x, I-x per other category in order
    category_of_label: tuple[int, ...]  # (L,) B-x and I-x -> x, O -> O
    begin_label: tuple[int, ...]  # (C,) x -> B-x, O -> O
    inside_label: tuple[int, ...]  # (C,) x -> I-x, O -> O

    def ids(self, tags: Sequence[str]) -> np.ndarray:
        """Label ids (N,) int32 of BIO tag names such as ``data.tags.normalize_tags`` returns."""
        return np.asarray([self.names.index(tag) for tag in tags], np.int32)


def bio_labels(categories: Sequence[str]) -> BioLabels:
    """The BIO label set of the category names (O must be one of them; see ``data.tags.check_categories``)."""
    categories = tuple(categories)
    if OUTSIDE not in categories or len(set(categories)) != len(categories):
        raise ValueError(f"categories must be distinct and hold {OUTSIDE!r}: {categories}")
    entities = [c for c in categories if c != OUTSIDE]
    names = (OUTSIDE,) + tuple(prefix + c for c in entities for prefix in BIO_PREFIXES)
    begin = np.zeros(len(categories), np.int32)
    begin[[categories.index(c) for c in entities]] = np.arange(1, len(names), 2)
    inside = np.where(begin > 0, begin + 1, 0).astype(np.int32)
    category_of_label = tuple(categories.index(category_of(name)) for name in names)
    return BioLabels(categories, names, category_of_label, tuple(begin.tolist()), tuple(inside.tolist()))


def labels_to_categories(labels, bio: BioLabels):
    """Category ids of BIO label ids (B-x and I-x both -> x), same shape."""
    return jnp.asarray(bio.category_of_label, jnp.int32)[labels]


def categories_to_labels(categories, starts, mask, bio: BioLabels):
    """BIO label ids (P,) int32 of the words' category ids (P,), as ``heads.metrics.categories_to_bio`` chunks:
    consecutive words of one category in one sentence form one entity. Masked words get O (0)."""
    categories = jnp.asarray(categories, jnp.int32)
    previous, first, _ = sentence_layout(starts, mask)
    continues = ~first & (categories == categories[jnp.maximum(previous, 0)])  # (P,)
    labels = jnp.where(
        continues,
        jnp.asarray(bio.inside_label, jnp.int32)[categories],
        jnp.asarray(bio.begin_label, jnp.int32)[categories],
    )
    return jnp.where(mask, labels, 0).astype(jnp.int32)


def bio_allowed(num_labels: int) -> tuple[np.ndarray, np.ndarray]:
    """(allowed (L, L) bool, from row label to column label; allowed_start (L,) bool) for ``bio_labels``' layout."""
    if num_labels < 1 or num_labels % 2 == 0:
        raise ValueError(f"a BIO label set has 1 + 2 * (entity categories) labels, got {num_labels}")
    label = np.arange(num_labels)
    entity = np.where(label > 0, (label - 1) // 2, -1)  # (L,) the entity category of B-x/I-x, -1 for O
    inside = (label > 0) & (label % 2 == 0)  # (L,) I-x
    allowed = ~inside[None, :] | (entity[:, None] == entity[None, :])  # I-x only after B-x or I-x
    return allowed, ~inside


class CrfScores(NamedTuple):
    """A CRF's scores, forbidden moves already at NEG."""

    transitions: jax.Array  # (L, L) from the row label to the column label
    start: jax.Array  # (L,) a sentence's first label
    end: jax.Array  # (L,) a sentence's last label


def constrain(transitions, start, end, allowed, allowed_start) -> CrfScores:
    """The scores with the moves not ``allowed`` (L, L) and starts not ``allowed_start`` (L,) set to NEG."""
    return CrfScores(
        jnp.where(allowed, transitions, NEG).astype(jnp.float32),
        jnp.where(allowed_start, start, NEG).astype(jnp.float32),
        jnp.asarray(end, jnp.float32),
    )


class CRF(nn.Module):
    """The learnt transition (L, L), start (L,) and end (L,) scores; calling it returns their CrfScores."""

    num_labels: int
    bio: bool = True  # mask the moves BIO forbids (bio_labels' layout); False: every move allowed

    @nn.compact
    def __call__(self) -> CrfScores:
        size = self.num_labels
        transitions = self.param("transitions", nn.initializers.zeros, (size, size))
        start = self.param("start", nn.initializers.zeros, (size,))
        end = self.param("end", nn.initializers.zeros, (size,))
        if not self.bio:
            return constrain(transitions, start, end, True, True)
        return constrain(transitions, start, end, *bio_allowed(size))


def sentence_layout(starts, mask):
    """(previous (P,) int32: the previous real word's index, -1 for none; first, last (P,) bool: real words that
    open and close a sentence). A real word opens one where ``starts`` says so or when no real word precedes
    it; it closes one when the next real word opens one or none follows."""
    size = mask.shape[0]
    index = jnp.arange(size, dtype=jnp.int32)
    real_index = jax.lax.cummax(jnp.where(mask, index, -1))  # (P,) the last real word at or before each word
    previous = jnp.concatenate([jnp.full(1, -1, jnp.int32), real_index[:-1]])
    first = mask & (starts | (previous < 0))
    following = jax.lax.cummin(jnp.where(mask, index, size), reverse=True)  # (P,) first real word at or after
    following = jnp.concatenate([following[1:], jnp.full(1, size, jnp.int32)])  # strictly after
    last = mask & jnp.concatenate([first, jnp.ones(1, bool)])[following]
    return previous, first, last


def _forward(emissions, first, mask, scores: CrfScores):
    """alphas (P, L): log of the summed scores of every path from its sentence's start up to each word's label."""

    def step(alpha, word):
        emission, opens, real = word
        continued = jax.nn.logsumexp(alpha[:, None] + scores.transitions, axis=0)  # (L,)
        new = jnp.where(opens, scores.start, continued) + emission
        alpha = jnp.where(real, new, alpha)
        return alpha, alpha

    initial = jnp.zeros(emissions.shape[1], jnp.float32)
    return jax.lax.scan(step, initial, (emissions.astype(jnp.float32), first, mask), unroll=UNROLL)[1]


def _backward(emissions, last, mask, scores: CrfScores):
    """betas (P, L): log of the summed scores of every path from each word's label to its sentence's end."""

    def step(message, word):  # message: beta of this word when it does not close its sentence
        emission, closes, real = word
        beta = jnp.where(closes, scores.end, message)
        following = jax.nn.logsumexp(scores.transitions + (emission + beta)[None, :], axis=1)  # (L,)
        return jnp.where(real, following, message), beta

    initial = jnp.zeros(emissions.shape[1], jnp.float32)
    return jax.lax.scan(step, initial, (emissions.astype(jnp.float32), last, mask), reverse=True, unroll=UNROLL)[1]


def log_partition_terms(emissions, starts, mask, scores: CrfScores):
    """Each sentence's log Z (the log of the summed exp-scores of all its paths) on its last word, 0 elsewhere;
    (P,) float32: summed over a sentence's words, its log Z."""
    _, first, last = sentence_layout(starts, mask)
    alphas = _forward(emissions, first, mask, scores)  # (P, L)
    closing = jax.nn.logsumexp(alphas + scores.end, axis=1)  # (P,) log Z where the word closes its sentence
    return jnp.where(last, closing, 0.0)


def log_partition(emissions, starts, mask, scores: CrfScores):
    """Sum over the batch's sentences of log Z; float32 scalar."""
    return jnp.sum(log_partition_terms(emissions, starts, mask, scores))


def path_score_terms(emissions, labels, starts, mask, scores: CrfScores):
    """Each word's part of the score of the label path ``labels`` (P,): its emission, the move into its label
    (or the start score) and, on a sentence's last word, the end score; (P,) float32, 0 on masked words."""
    previous, first, last = sentence_layout(starts, mask)
    labels = jnp.asarray(labels, jnp.int32)
    emitted = jnp.take_along_axis(emissions.astype(jnp.float32), labels[:, None], axis=1)[:, 0]  # (P,)
    moved = jnp.where(first, scores.start[labels], scores.transitions[labels[jnp.maximum(previous, 0)], labels])
    closed = jnp.where(last, scores.end[labels], 0.0)
    return jnp.where(mask, emitted + moved + closed, 0.0)


def path_score(emissions, labels, starts, mask, scores: CrfScores):
    """Sum over the batch's sentences of the score of the label path ``labels`` (P,); float32 scalar."""
    return jnp.sum(path_score_terms(emissions, labels, starts, mask, scores))


def negative_log_likelihood(emissions, labels, starts, mask, scores: CrfScores):
    """-log p(labels) summed over the sentences, divided by the real words (the scale of a per-word cross
    entropy); float32 scalar, 0.0 with a zero gradient for a fully masked batch."""
    total = log_partition(emissions, starts, mask, scores) - path_score(emissions, labels, starts, mask, scores)
    return total / jnp.maximum(jnp.sum(mask), 1).astype(jnp.float32)


def marginals(emissions, starts, mask, scores: CrfScores):
    """p(word's label = l) (P, L) float32 by forward-backward; rows of masked words are zero."""
    _, first, last = sentence_layout(starts, mask)
    alphas = _forward(emissions, first, mask, scores)
    betas = _backward(emissions, last, mask, scores)
    return jnp.where(mask[:, None], jax.nn.softmax(alphas + betas, axis=1), 0.0)


def viterbi(emissions, starts, mask, scores: CrfScores):
    """The best label path of each sentence, (P,) int32 label ids; masked words get 0 (O)."""
    _, first, last = sentence_layout(starts, mask)

    def step(delta, word):
        emission, opens, real = word
        candidates = delta[:, None] + scores.transitions  # (L, L) previous label x this label
        new = jnp.where(opens, scores.start, jnp.max(candidates, axis=0)) + emission
        delta = jnp.where(real, new, delta)
        return delta, (delta, jnp.argmax(candidates, axis=0).astype(jnp.int32))

    initial = jnp.zeros(emissions.shape[1], jnp.float32)
    _, (deltas, backpointers) = jax.lax.scan(step, initial, (emissions.astype(jnp.float32), first, mask))
    closing = jnp.argmax(deltas + scores.end, axis=1).astype(jnp.int32)  # (P,) best last label if the word closes

    def back(following, word):  # following: this word's label when it does not close its sentence
        best_closing, backpointer, closes, real = word
        label = jnp.where(closes, best_closing, following)
        return jnp.where(real, backpointer[label], following), jnp.where(real, label, 0)

    return jax.lax.scan(back, jnp.int32(0), (closing, backpointers, last, mask), reverse=True)[1]
