"""Which unlabelled sentences to label next: active-learning scores of sentences from a trained head.

Each strategy gives every candidate sentence a score, higher meaning "ask for this one first":

- ``random``: a seeded uniform draw, the baseline every other strategy must beat.
- ``least_confidence``: 1 - p(best labelling | sentence) (Culotta and McCallum 2005). For a CRF head the
  best labelling is the Viterbi path and its probability is exp(path score - log Z); a softmax head labels its
  words independently, so its best labelling's probability is the product of each word's top probability.
- ``mnlp``: -log p(best labelling) / words (Shen et al. 2017, maximum normalised log-probability): least
  confidence without its pull towards long sentences.
- ``entropy``: the mean over the sentence's words of the entropy of each word's category probabilities (a CRF
  head's marginals).
- ``bald``: the mean over words of the mutual information between a word's category and the head's weights
  (Houlsby et al. 2011), the weights sampled by dropout left on at prediction time (Gal et al. 2017):
  H(mean of the samples' probabilities) - mean of the samples' entropies. A head trained without dropout gets
  ``active.dropout`` for the samples.
- ``diversity``: the candidates' sentence vectors (the mean of their words' cached vectors, unit length) cut
  into ``batch`` k-means clusters; from each cluster the sentence of highest ``mnlp``, so that one batch does
  not spend itself on near-copies of one confusing sentence.

Word outputs come from ``heads.predict.map_words``: the same chunks, shapes and compiled functions as
prediction. ``choose`` turns scores into a batch: highest first, ties broken by a seeded draw, and a sentence
whose words equal an already-labelled sentence, or one already chosen, skipped.
"""

from __future__ import annotations

import dataclasses
import functools
import typing

import jax
import jax.numpy as jnp
import numpy as np

from heads.output import best_path
from heads.predict import _hashable, map_words
from heads.settings import Strategy

STRATEGIES = typing.get_args(Strategy)


@functools.partial(jax.jit, static_argnums=1)
def _best_outputs(params, model, inputs, starts):
    logits, _ = model.apply({"params": params}, inputs, starts)
    predicted, terms = best_path(model, params, inputs, starts)
    return jax.nn.softmax(logits.astype(jnp.float32), axis=-1), terms, predicted


@functools.partial(jax.jit, static_argnums=1)
def _sampled_outputs(params, model, inputs, starts, key):
    logits, _ = model.apply({"params": params}, inputs, starts, deterministic=False, rngs={"dropout": key})
    probabilities = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
    return probabilities, entropy(probabilities)


def entropy(probabilities):
    """The entropy in nats of each row of probabilities (..., C) -> (...); 0 log 0 = 0."""
    p = jnp.asarray(probabilities, jnp.float32)
    return -jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1.0)), 0.0), axis=-1)


def sentence_sums(values, offsets) -> np.ndarray:
    """Per sentence, the sum of its words' ``values`` (W,) over ``offsets`` (S+1,); float64 (S,)."""
    values = np.asarray(values, np.float64)
    return np.diff(np.concatenate([[0.0], np.cumsum(values)])[np.asarray(offsets)])


@dataclasses.dataclass(frozen=True)
class WordOutputs:
    """A head's outputs on the candidate sentences' words."""

    probabilities: np.ndarray  # (W, C) float32: each word's category probabilities (a CRF's marginals)
    path_log_prob: np.ndarray  # (W,) each word's part of log p(best labelling | its sentence)
    predicted: np.ndarray  # (W,) int32: each word's category on the best labelling


def word_outputs(params, model, inputs, starts) -> WordOutputs:
    """``WordOutputs`` of ``inputs`` (W, ...) whose sentences start where ``starts`` (W,) says."""
    model = _hashable(model)
    outputs = map_words(lambda p, m, x, s: _best_outputs(p, m, x, _starts(x, s)), params, model, inputs, starts)
    return WordOutputs(*outputs)


def _starts(inputs, starts):
    return np.zeros(len(inputs), bool) if starts is None else starts


def with_dropout(model, rate: float):
    """``model`` with its dropout rate set to ``rate`` wherever it is 0 (through the wrappers), for BALD's
    samples of a head trained without dropout."""
    if hasattr(model, "head") and hasattr(model.head, "apply"):
        return model.clone(head=with_dropout(model.head, rate))
    if getattr(model, "dropout_rate", None) == 0.0:
        return model.clone(dropout_rate=rate)
    return model


def bald_scores(params, model, inputs, starts, offsets, samples: int, rate: float, seed: int) -> np.ndarray:
    """Each sentence's BALD score (S,): the mean over its words of H(mean_t p_t) - mean_t H(p_t), from
    ``samples`` dropout masks (``with_dropout(model, rate)``), the masks drawn from ``seed``."""
    model = _hashable(with_dropout(model, rate))
    mean_probabilities, mean_entropy = 0.0, 0.0
    for key in jax.random.split(jax.random.PRNGKey(seed), samples):

        def sampled(p, m, x, s, key=key):
            return _sampled_outputs(p, m, x, _starts(x, s), key)

        probabilities, word_entropy = map_words(sampled, params, model, inputs, starts)
        mean_probabilities = mean_probabilities + probabilities / samples
        mean_entropy = mean_entropy + word_entropy / samples
    information = np.asarray(entropy(mean_probabilities)) - mean_entropy
    return sentence_sums(information, offsets) / np.diff(offsets)


def uncertainty_scores(strategy: str, outputs: WordOutputs, offsets) -> np.ndarray:
    """Each sentence's score (S,) under ``least_confidence``, ``mnlp`` or ``entropy``."""
    lengths = np.diff(offsets)
    log_p = sentence_sums(outputs.path_log_prob, offsets)  # (S,) log p(best labelling)
    if strategy == "least_confidence":
        return 1.0 - np.exp(np.minimum(log_p, 0.0))
    if strategy == "mnlp":
        return -log_p / lengths
    if strategy == "entropy":
        return sentence_sums(entropy(outputs.probabilities), offsets) / lengths
    raise ValueError(f"no uncertainty score named {strategy!r}")


def sentence_vectors(features, offsets, block_sentences=4096) -> np.ndarray:
    """The mean of each sentence's word vectors, scaled to unit length; (S, D) float32. ``features`` (an array
    or a ``cache.rows`` view) are read ``block_sentences`` sentences at a time."""
    offsets = np.asarray(offsets, np.int64)
    sums = np.zeros((len(offsets) - 1, features.shape[1]), np.float32)
    for first in range(0, len(offsets) - 1, block_sentences):
        bounds = offsets[first : first + block_sentences + 1]
        block = np.asarray(features[bounds[0] : bounds[-1]], np.float32)
        sums[first : first + len(bounds) - 1] = np.add.reduceat(block, bounds[:-1] - bounds[0], axis=0)
    means = sums / np.diff(offsets)[:, None]
    return (means / np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def diverse_order(vectors, scores, batch: int, seed: int) -> np.ndarray:
    """Candidate indices: the highest-scoring sentence of each of ``batch`` k-means clusters of ``vectors``,
    best first, then every other candidate by score (to fill the batch where duplicates are skipped)."""
    from sklearn.cluster import KMeans

    k = min(batch, len(vectors))
    clusters = KMeans(n_clusters=k, n_init=1, random_state=seed).fit_predict(vectors) if k else np.zeros(0, int)
    by_score = np.argsort(-np.asarray(scores), kind="stable")
    _, first_of_cluster = np.unique(clusters[by_score], return_index=True)
    leaders = by_score[np.sort(first_of_cluster)]
    rest = by_score[~np.isin(by_score, leaders)]
    return np.concatenate([leaders, rest]).astype(np.int64)


def choose(order, words, batch: int, labelled: set) -> np.ndarray:
    """The first ``batch`` candidates of ``order`` (indices into ``words``, a list of word lists) whose words are
    neither in ``labelled`` (tuples of words) nor those of a candidate chosen before them."""
    seen, chosen = set(labelled), []
    for index in order:
        key = tuple(words[index])
        if key in seen:
            continue
        seen.add(key)
        chosen.append(int(index))
        if len(chosen) == batch:
            break
    return np.asarray(chosen, np.int64)


def ranked(scores, seed: int) -> np.ndarray:
    """Indices of ``scores`` highest first; equal scores in an order drawn from ``seed``."""
    tiebreak = np.random.default_rng(seed).permutation(len(scores))
    return np.lexsort((tiebreak, -np.asarray(scores, np.float64))).astype(np.int64)


@dataclasses.dataclass(frozen=True)
class Ranking:
    """A strategy's verdict on the candidate sentences."""

    order: np.ndarray  # (S,) candidate indices, the one to ask first first
    scores: np.ndarray  # (S,) float64, each candidate's score (diversity: its mnlp)
    outputs: WordOutputs  # the head's best labelling of every candidate: the pre-annotations


def rank_candidates(
    strategy: str, params, model, inputs, starts, offsets, *, batch: int, seed: int, vectors=None,
    samples: int = 8, dropout: float = 0.3,
) -> Ranking:  # fmt: skip
    """Score the candidate sentences (their words' head ``inputs``, ``starts``, ``offsets`` (S+1,)) by
    ``strategy`` and order them; ``vectors`` (S, D) are needed by ``diversity``, ``samples`` and ``dropout`` by
    ``bald``."""
    if strategy not in STRATEGIES:
        raise ValueError(f"no strategy named {strategy!r}: expected one of {', '.join(STRATEGIES)}")
    outputs = word_outputs(params, model, inputs, starts)
    count = len(offsets) - 1
    if strategy == "random":
        scores = np.random.default_rng(seed).random(count)
    elif strategy == "bald":
        scores = bald_scores(params, model, inputs, starts, offsets, samples, dropout, seed)
    else:
        scores = uncertainty_scores("mnlp" if strategy == "diversity" else strategy, outputs, offsets)
    if strategy == "diversity":
        if vectors is None or len(vectors) != count:
            raise ValueError("the diversity strategy needs one sentence vector per candidate")
        order = diverse_order(vectors, scores, batch, seed)
    else:
        order = ranked(scores, seed)
    return Ranking(order, np.asarray(scores, np.float64), outputs)
