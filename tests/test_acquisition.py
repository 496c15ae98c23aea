"""heads.acquisition: each strategy's score against an independent reference (brute-force enumeration of a CRF
head's label paths, SciPy's entropy, BALD from samples drawn by Flax directly), the choice of a batch, the
diversity strategy's clusters, and determinism for a seed."""

import functools
import itertools

import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import logsumexp
from scipy.stats import entropy as scipy_entropy
from sklearn.cluster import KMeans

from cache.rows import TakeRows
from heads import acquisition
from heads.acquisition import (
    STRATEGIES,
    choose,
    diverse_order,
    rank_candidates,
    ranked,
    sentence_vectors,
    uncertainty_scores,
    with_dropout,
    word_outputs,
)
from heads.build import build_model
from heads.settings import HeadParams

CATEGORIES = ["O", "loc", "per"]  # 5 BIO labels: 5**4 paths for a 4-word sentence
DIM = 6


@functools.cache
def head(output: str, dropout: float = 0.0, seed: int = 0):
    """A small random head over DIM-wide inputs, and its params, with the CRF's scores made far from zero."""
    settings_ = HeadParams(hidden=(8,), latent_dim=4, dropout=dropout, output=output)
    model = build_model(settings_, CATEGORIES)
    params = model.init(jax.random.PRNGKey(seed), np.zeros((4, DIM), np.float32), np.ones(4, bool))["params"]
    rng = np.random.default_rng(seed)
    return model, jax.tree_util.tree_map(lambda p: p + rng.normal(size=p.shape).astype(p.dtype), params)


def sentences(lengths, seed=0):
    """Random inputs of sentences of ``lengths`` words laid end to end: (inputs, starts, offsets)."""
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    starts = np.zeros(offsets[-1], bool)
    starts[offsets[:-1]] = True
    inputs = np.random.default_rng(seed).normal(size=(offsets[-1], DIM)).astype(np.float16)
    return inputs, starts, offsets


def crf_reference(model, params, inputs, starts, offsets):
    """Per sentence, by enumerating every label path: log p(best path), float64."""
    emissions, _, scores = model.apply({"params": params}, inputs, starts, False, method="emissions")
    emissions, transitions = np.float64(emissions), np.float64(scores.transitions)
    start, end = np.float64(scores.start), np.float64(scores.end)
    best = []
    for first, last in zip(offsets[:-1], offsets[1:]):
        rows = emissions[first:last]
        paths = np.array(list(itertools.product(range(rows.shape[1]), repeat=len(rows))))
        total = start[paths[:, 0]] + rows[np.arange(len(rows)), paths].sum(1) + end[paths[:, -1]]
        total += transitions[paths[:, :-1], paths[:, 1:]].sum(1)
        best.append(total.max() - logsumexp(total))
    return np.array(best)


@settings(max_examples=8, deadline=None)
@given(st.lists(st.integers(1, 4), min_size=1, max_size=5), st.integers(0, 1000))
def test_crf_best_path_log_probability_against_enumeration(lengths, seed):
    model, params = head("crf", seed=seed % 3)
    inputs, starts, offsets = sentences(lengths, seed)
    outputs = word_outputs(params, model, inputs, starts)
    expected = crf_reference(model, params, inputs, starts, offsets)
    log_p = acquisition.sentence_sums(outputs.path_log_prob, offsets)
    np.testing.assert_allclose(log_p, expected, atol=2e-4)
    np.testing.assert_allclose(uncertainty_scores("mnlp", outputs, offsets), -expected / lengths, atol=2e-4)
    np.testing.assert_allclose(
        uncertainty_scores("least_confidence", outputs, offsets), 1 - np.exp(expected), atol=2e-4
    )


def test_softmax_head_scores_against_numpy():
    model, params = head("softmax")
    inputs, starts, offsets = sentences([3, 1, 5])
    outputs = word_outputs(params, model, inputs, starts)
    logits, _ = model.apply({"params": params}, inputs.astype(np.float32))
    probabilities = np.exp(np.float64(logits) - logsumexp(np.float64(logits), axis=1, keepdims=True))
    np.testing.assert_allclose(outputs.probabilities, probabilities, atol=1e-5)
    np.testing.assert_array_equal(outputs.predicted, probabilities.argmax(1))
    best = np.log(probabilities.max(1))  # words labelled independently: the best labelling is each word's argmax
    log_p = np.array([best[a:b].sum() for a, b in zip(offsets[:-1], offsets[1:])])
    lengths = np.diff(offsets)
    np.testing.assert_allclose(uncertainty_scores("mnlp", outputs, offsets), -log_p / lengths, rtol=1e-4)
    np.testing.assert_allclose(uncertainty_scores("least_confidence", outputs, offsets), 1 - np.exp(log_p), rtol=1e-4)
    word_entropy = scipy_entropy(probabilities, axis=1)
    expected = [word_entropy[a:b].mean() for a, b in zip(offsets[:-1], offsets[1:])]
    np.testing.assert_allclose(uncertainty_scores("entropy", outputs, offsets), expected, rtol=1e-4)


@pytest.mark.parametrize("output", ["softmax", "crf"])
def test_bald_is_the_mutual_information_of_the_dropout_samples(output):
    model, params = head(output, dropout=0.3)
    inputs, starts, offsets = sentences([4, 2, 6], seed=3)
    found = acquisition.bald_scores(params, model, inputs, starts, offsets, samples=5, rate=0.3, seed=7)
    samples = []
    for key in jax.random.split(jax.random.PRNGKey(7), 5):  # the masks bald_scores draws, applied by Flax here
        logits, _ = model.apply({"params": params}, inputs, starts, deterministic=False, rngs={"dropout": key})
        samples.append(np.exp(np.float64(logits) - logsumexp(np.float64(logits), axis=1, keepdims=True)))
    samples = np.array(samples)  # (T, W, C)
    information = scipy_entropy(samples.mean(0), axis=1) - scipy_entropy(samples, axis=2).mean(0)
    expected = [information[a:b].mean() for a, b in zip(offsets[:-1], offsets[1:])]
    np.testing.assert_allclose(found, expected, atol=1e-5)
    assert np.all(np.asarray(found) > 0)  # the masks differ, so the samples disagree


def test_with_dropout_sets_the_rate_only_where_the_head_has_none():
    without, _ = head("crf", dropout=0.0)
    with_own, _ = head("crf", dropout=0.5)
    assert with_dropout(without, 0.3).head.dropout_rate == 0.3
    assert with_dropout(with_own, 0.3).head.dropout_rate == 0.5


@settings(max_examples=50, deadline=None)
@given(st.lists(st.lists(st.sampled_from("abc"), min_size=1, max_size=2), min_size=1, max_size=12), st.data())
def test_choose_against_brute_force(words, data):
    order = data.draw(st.permutations(range(len(words))))
    labelled = {tuple(w) for w in data.draw(st.lists(st.sampled_from(words), max_size=3))}
    batch = data.draw(st.integers(1, 6))
    chosen = choose(order, words, batch, labelled)
    expected = []
    for index in order:  # the first candidates in order, new words only
        if tuple(words[index]) not in labelled and all(words[index] != words[i] for i in expected):
            expected.append(index)
    assert chosen.tolist() == expected[:batch]


def test_ranked_breaks_ties_by_the_seed_and_only_ties():
    scores = np.array([0.5, 0.9, 0.5, 0.5, 0.1, 0.5])
    orders = {tuple(ranked(scores, seed)) for seed in range(20)}
    assert len(orders) > 1  # ties come out in another order for another seed
    for order in orders:
        assert order[0] == 1 and order[-1] == 4 and sorted(order[1:5]) == [0, 2, 3, 5]
    assert ranked(scores, 3).tolist() == ranked(scores, 3).tolist()


def test_diverse_order_takes_the_best_of_each_cluster_first():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 5)) * 10
    vectors = np.concatenate([centre + rng.normal(size=(20, 5)) for centre in centres]).astype(np.float32)
    scores = rng.random(60)
    scores[:20] += 10  # the first cluster is the most uncertain: plain ranking would take only its sentences
    order = diverse_order(vectors, scores, 3, seed=0)
    clusters = KMeans(n_clusters=3, n_init=1, random_state=0).fit_predict(vectors)
    leaders = order[:3]
    assert sorted(clusters[leaders].tolist()) == [0, 1, 2]
    for leader in leaders:
        assert scores[leader] == scores[clusters == clusters[leader]].max()
    assert sorted(order.tolist()) == list(range(60))


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_is_deterministic_for_a_seed(strategy):
    model, params = head("crf", dropout=0.2)
    inputs, starts, offsets = sentences([3, 2, 4, 1, 2, 3, 2, 4], seed=1)
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(8, 5)).astype(np.float32)

    def run(seed):
        ranking = rank_candidates(
            strategy, params, model, inputs, starts, offsets, batch=3, seed=seed, vectors=vectors, samples=3
        )
        return ranking.order.tolist(), ranking.scores.tolist()

    assert run(0) == run(0)
    assert sorted(run(0)[0]) == list(range(8))
    if strategy == "random":
        assert run(0) != run(1)


def test_an_unknown_strategy_is_refused():
    model, params = head("softmax")
    inputs, starts, offsets = sentences([2])
    with pytest.raises(ValueError, match="no strategy named 'maximal'"):
        rank_candidates("maximal", params, model, inputs, starts, offsets, batch=1, seed=0)
    with pytest.raises(ValueError, match="diversity strategy needs one sentence vector"):
        rank_candidates("diversity", params, model, inputs, starts, offsets, batch=1, seed=0)


@pytest.mark.parametrize("block", [1, 2, 3, 100])
def test_sentence_vectors_are_unit_means_whatever_the_block(block):
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 6, 7)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    features = rng.normal(size=(offsets[-1], 5)).astype(np.float16)
    got = sentence_vectors(TakeRows(features, np.arange(len(features))), offsets, block_sentences=block)
    for s in range(len(lengths)):
        mean = features[offsets[s] : offsets[s + 1]].astype(np.float64).mean(axis=0)
        np.testing.assert_allclose(got[s], mean / np.linalg.norm(mean), rtol=1e-5, atol=1e-6)
