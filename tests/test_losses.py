"""The losses against float64 NumPy/SciPy references, and their gradients at the extremes."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import log_softmax, rel_entr, softmax

from heads import losses
from heads.settings import HeadParams

EPS = 1e-8
TARGET_GRADIENT = [False, True]


# ---------------------------------------------------------------- references


def reference_cross_entropy(logits, labels, mask, weights=None):
    nll = -log_softmax(logits.astype(np.float64), axis=-1)[np.arange(len(labels)), labels]
    w = mask.astype(np.float64) * (1.0 if weights is None else weights[labels])
    return 0.0 if w.sum() == 0 else float((w * nll).sum() / w.sum())


def reference_data_distribution_kl(logits, mask, prior, eps=EPS):
    if not mask.any():
        return 0.0
    q = softmax(logits[mask].astype(np.float64), axis=-1).mean(axis=0)
    return float(rel_entr(prior, q + eps).sum())


def reference_confidence_kl(logits, mask):
    if not mask.any():
        return 0.0
    q = softmax(logits[mask].astype(np.float64), axis=-1)  # (n, C)
    sharpened = q**2 / q.sum(axis=0)
    target = sharpened / sharpened.sum(axis=1, keepdims=True)
    return float(rel_entr(target, q).sum())


# ---------------------------------------------------------------- strategies


@st.composite
def word_batches(draw, scale=20.0):
    """(logits (N, C) float32, labels (N,), mask (N,) bool, prior (C,) with some zeros).

    Few distinct shapes (each one costs JAX a compile); the mask varies freely.
    """
    n = draw(st.sampled_from([1, 5, 12]))
    c = draw(st.sampled_from([3, 9]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    logits = (rng.standard_normal((n, c)) * draw(st.floats(0.1, scale))).astype(np.float32)
    labels = rng.integers(0, c, n)
    mask = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    prior = rng.random(c) * (rng.random(c) < 0.8)
    prior[rng.integers(c)] += 0.1  # at least one positive entry
    return logits, labels, mask, prior / prior.sum()


def close(value, expected, rtol=1e-4, atol=1e-4):
    return np.isclose(float(value), expected, rtol=rtol, atol=atol)


# ---------------------------------------------------------------- values


@settings(max_examples=40, deadline=None)
@given(word_batches())
def test_cross_entropy_matches_reference(example):
    logits, labels, mask, _ = example
    value = losses.masked_cross_entropy(jnp.asarray(logits), jnp.asarray(labels), jnp.asarray(mask))
    assert close(value, reference_cross_entropy(logits, labels, mask))


@settings(max_examples=40, deadline=None)
@given(word_batches())
def test_weighted_cross_entropy_matches_reference(example):
    logits, labels, mask, prior = example
    weights = prior * 3 + 0.05
    value = losses.masked_cross_entropy(
        jnp.asarray(logits), jnp.asarray(labels), jnp.asarray(mask), jnp.asarray(weights)
    )
    assert close(value, reference_cross_entropy(logits, labels, mask, weights))


@settings(max_examples=40, deadline=None)
@given(word_batches())
def test_data_distribution_kl_matches_reference(example):
    logits, _, mask, prior = example
    value = losses.data_distribution_kl(jnp.asarray(logits), jnp.asarray(mask), jnp.asarray(prior))
    assert close(value, reference_data_distribution_kl(logits, mask, prior))


@settings(max_examples=40, deadline=None)
@given(word_batches(), st.booleans())
def test_confidence_kl_matches_reference(example, target_gradient):
    logits, _, mask, _ = example
    value = losses.confidence_kl(jnp.asarray(logits), jnp.asarray(mask), target_gradient)
    assert close(value, reference_confidence_kl(logits, mask))


def test_confidence_kl_is_a_sum_over_words():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((2, 5)).astype(np.float32)
    repeated = np.tile(logits, (3, 1))  # each word three times: f triples, p does not change
    two = losses.confidence_kl(jnp.asarray(logits), jnp.ones(2, bool), False)
    six = losses.confidence_kl(jnp.asarray(repeated), jnp.ones(6, bool), False)
    assert float(two) > 1e-3
    np.testing.assert_allclose(float(six), 3 * float(two), rtol=1e-5)


def test_confidence_target_rows_are_distributions():
    rng = np.random.default_rng(1)
    logits = jnp.asarray(rng.standard_normal((6, 4)) * 3)
    mask = jnp.array([True, True, False, True, False, True])
    target = np.asarray(losses.confidence_target(logits, mask))
    np.testing.assert_allclose(target[np.asarray(mask)].sum(axis=1), 1.0, rtol=1e-5)
    assert (target[~np.asarray(mask)] == 0).all()


def test_data_distribution_kl_is_zero_when_batch_matches_prior():
    probabilities = np.array([[0.7, 0.2, 0.1]] * 3)
    logits = jnp.asarray(np.log(probabilities), jnp.float32)
    value = losses.data_distribution_kl(logits, jnp.ones(3, bool), jnp.asarray([0.7, 0.2, 0.1]))
    assert abs(float(value)) < 1e-5


def test_one_word_batches():
    logits = np.array([[2.0, -1.0, 0.5]], np.float32)
    mask = np.array([True])
    prior = np.array([0.5, 0.0, 0.5])
    args = jnp.asarray(logits), jnp.asarray(mask)
    assert close(losses.masked_cross_entropy(*args[:1], jnp.array([2]), args[1]),
                 reference_cross_entropy(logits, np.array([2]), mask))  # fmt: skip
    assert close(losses.data_distribution_kl(*args, jnp.asarray(prior)),
                 reference_data_distribution_kl(logits, mask, prior))  # fmt: skip
    assert close(losses.confidence_kl(*args, False), reference_confidence_kl(logits, mask))


# ---------------------------------------------------------------- masking


def all_losses(target_gradient):
    """name -> f(logits, mask), one per loss, labels and prior fixed for C = 4."""
    labels = jnp.array([0, 1, 2, 3, 1, 0])
    prior = jnp.array([0.6, 0.3, 0.1, 0.0])
    weights = jnp.array([0.5, 2.0, 1.0, 4.0])
    return {
        "cross_entropy": lambda z, m: losses.masked_cross_entropy(z, labels, m),
        "weighted_cross_entropy": lambda z, m: losses.masked_cross_entropy(z, labels, m, weights),
        "data_distribution_kl": lambda z, m: losses.data_distribution_kl(z, m, prior),
        "confidence_kl": lambda z, m: losses.confidence_kl(z, m, target_gradient),
    }


MASKS = {
    "empty": np.zeros(6, bool),
    "one": np.array([False, False, True, False, False, False]),
    "some": np.array([True, False, True, True, False, True]),
    "all": np.ones(6, bool),
}


@pytest.mark.parametrize("target_gradient", TARGET_GRADIENT)
@pytest.mark.parametrize("mask_name", list(MASKS))
@pytest.mark.parametrize("scale", [1.0, 1e4])
def test_values_and_gradients_finite(target_gradient, mask_name, scale):
    rng = np.random.default_rng(2)
    logits = np.sign(rng.standard_normal((6, 4))) * scale  # +-scale: saturated softmax
    logits[0] = scale  # a row of ties
    logits = jnp.asarray(logits, jnp.float32)
    mask = jnp.asarray(MASKS[mask_name])
    for name, loss in all_losses(target_gradient).items():
        value, grad = jax.value_and_grad(loss)(logits, mask)
        assert np.isfinite(float(value)), name
        assert np.isfinite(np.asarray(grad)).all(), name
        masked_rows = np.asarray(grad)[~MASKS[mask_name]]
        assert (masked_rows == 0).all(), f"{name}: gradient reaches masked words"
        if mask_name == "empty":
            assert float(value) == 0.0, name


@pytest.mark.parametrize("target_gradient", TARGET_GRADIENT)
def test_masked_words_do_not_change_values(target_gradient):
    rng = np.random.default_rng(3)
    logits = rng.standard_normal((6, 4)).astype(np.float32)
    mask = MASKS["some"]
    garbage = logits.copy()
    garbage[~mask] = rng.standard_normal(((~mask).sum(), 4)) * 1e3
    for name, loss in all_losses(target_gradient).items():
        a = loss(jnp.asarray(logits), jnp.asarray(mask))
        b = loss(jnp.asarray(garbage), jnp.asarray(mask))
        np.testing.assert_allclose(float(a), float(b), rtol=1e-6, err_msg=name)


def test_target_gradient_changes_gradient_not_value():
    rng = np.random.default_rng(4)
    logits = jnp.asarray(rng.standard_normal((8, 5)) * 2, jnp.float32)
    mask = jnp.asarray(rng.random(8) < 0.8)
    dec_value, dec_grad = jax.value_and_grad(losses.confidence_kl)(logits, mask, False)
    seed_value, seed_grad = jax.value_and_grad(losses.confidence_kl)(logits, mask, True)
    assert float(dec_value) == pytest.approx(float(seed_value), rel=1e-6)
    assert not np.allclose(np.asarray(dec_grad), np.asarray(seed_grad), atol=1e-4)


def test_logits_dtype_float16_is_accepted():
    logits = jnp.asarray([[1.0, 2.0, 3.0], [0.5, 0.1, -2.0]], jnp.float16)
    value = losses.masked_cross_entropy(logits, jnp.array([2, 0]), jnp.ones(2, bool))
    assert value.dtype == jnp.float32
    assert close(value, reference_cross_entropy(np.asarray(logits, np.float32), np.array([2, 0]),
                                                np.ones(2, bool)), rtol=1e-3)  # fmt: skip


# ---------------------------------------------------------------- class statistics


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 5), min_size=1, max_size=60), st.floats(0.0, 2.0))
def test_prior_from_labels(labels, smoothing):
    prior = losses.prior_from_labels(np.array(labels), 6, smoothing)
    counts = np.bincount(labels, minlength=6) + smoothing
    np.testing.assert_allclose(prior, counts / counts.sum())
    assert prior.shape == (6,)
    assert prior.sum() == pytest.approx(1.0)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 5), min_size=1, max_size=60))
def test_inverse_frequency_weights(labels):
    labels = np.array(labels)
    weights = losses.inverse_frequency_weights(labels, 7)
    assert weights[labels].mean() == pytest.approx(1.0)
    counts = np.bincount(labels, minlength=7)
    present = counts > 0
    assert (weights[~present] == 0).all()
    products = weights[present] * counts[present]  # equal: every class weighs the same in total
    np.testing.assert_allclose(products, products[0])


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 5), min_size=1, max_size=60), st.sampled_from([0.25, 0.5, 1.0, 2.0]))
def test_inverse_frequency_weights_power(labels, power):
    labels = np.array(labels)
    weights = losses.inverse_frequency_weights(labels, 7, power)
    assert weights[labels].mean() == pytest.approx(1.0)  # still mean 1 over the labelled words
    counts = np.bincount(labels, minlength=7)
    present = np.flatnonzero(counts)
    # w_c proportional to count_c ** -power: w_a / w_b = (count_b / count_a) ** power
    np.testing.assert_allclose(weights[present] / weights[present[0]], (counts[present[0]] / counts[present]) ** power)


def test_class_weights_follow_the_head_settings():
    labels = np.array([0] * 90 + [1] * 9 + [2])
    crf = HeadParams(output="crf", word_loss=0.5)
    assert losses.class_weights(labels, 3, HeadParams()) is None
    assert losses.class_weights(labels, 3, HeadParams(output="crf")) is None
    np.testing.assert_allclose(losses.class_weights(labels, 3, crf), [0.5, 0.5, 0.5])  # unweighted word loss
    weighted = dataclasses.replace(crf, class_weighting=True, class_weight_power=0.5)
    np.testing.assert_allclose(
        losses.class_weights(labels, 3, weighted), 0.5 * losses.inverse_frequency_weights(labels, 3, 0.5)
    )
    softmax = HeadParams(class_weighting=True, class_weight_power=0.5)
    np.testing.assert_allclose(
        losses.class_weights(labels, 3, softmax), losses.inverse_frequency_weights(labels, 3, 0.5)
    )


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 12), st.integers(0, 2**31 - 1))
def test_weighted_word_loss_against_numpy(n, seed):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, 4)) * 3
    labels = rng.integers(0, 4, n)
    mask = rng.random(n) < 0.7
    labels_padded = np.where(mask, labels, -1)  # padding rows may hold any label
    weights = rng.random(4) * 2
    log_q = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    nll = -log_q[np.arange(n), labels]
    expected = (weights[labels] * nll * mask).sum() / max(mask.sum(), 1)
    got = losses.weighted_word_loss(jnp.asarray(logits), jnp.asarray(labels_padded), jnp.asarray(mask), weights)
    assert float(got) == pytest.approx(expected, rel=1e-5, abs=1e-6)
    # the weights' scale is kept (masked_cross_entropy's weighted mean would cancel it)
    doubled = losses.weighted_word_loss(jnp.asarray(logits), jnp.asarray(labels_padded), jnp.asarray(mask), 2 * weights)
    assert float(doubled) == pytest.approx(2 * expected, rel=1e-5, abs=1e-6)


def test_class_statistics_reject_bad_labels():
    with pytest.raises(ValueError):
        losses.prior_from_labels(np.array([0, 3]), 3)
    with pytest.raises(ValueError):
        losses.inverse_frequency_weights(np.array([-1, 0]), 3)
    with pytest.raises(ValueError):
        losses.prior_from_labels(np.array([], int), 3)


# ---------------------------------------------------------------- entropy, per-word confidence


def reference_mean_entropy(logits, mask):
    if not mask.any():
        return 0.0
    from scipy.stats import entropy

    return float(entropy(softmax(logits[mask].astype(np.float64), axis=-1), axis=-1).mean())


@settings(max_examples=30, deadline=None)
@given(word_batches())
def test_mean_entropy_matches_scipy(example):
    logits, _, mask, _ = example
    assert close(losses.mean_entropy(jnp.asarray(logits), jnp.asarray(mask)), reference_mean_entropy(logits, mask))


@pytest.mark.parametrize("scale", [1.0, 1e4])
def test_entropy_value_and_gradient_finite_and_zero_when_masked(scale):
    logits = jnp.asarray(np.random.default_rng(0).standard_normal((6, 9)).astype(np.float32) * scale)
    mask = jnp.asarray([True, True, False, True, False, False])
    value, grad = jax.value_and_grad(losses.mean_entropy)(logits, mask)
    assert np.isfinite(float(value)) and np.isfinite(np.asarray(grad)).all()
    assert np.all(np.asarray(grad)[~np.asarray(mask)] == 0)
    assert float(losses.mean_entropy(logits, jnp.zeros(6, bool))) == 0.0
    # A uniform distribution has the most entropy: log C per word.
    assert close(losses.mean_entropy(jnp.zeros((3, 9)), jnp.ones(3, bool)), np.log(9))


@pytest.mark.parametrize("target_gradient", TARGET_GRADIENT)
def test_per_word_confidence_is_the_sum_over_real_words_divided_by_their_count(target_gradient):
    rng = np.random.default_rng(1)
    logits = jnp.asarray(rng.standard_normal((10, 9)).astype(np.float32) * 3)
    mask = jnp.asarray(rng.random(10) < 0.7)
    options = dict(kind="confidence", prior=None, target_gradient=target_gradient)
    summed = losses.kl_loss(logits, mask, **options)
    per_word = losses.kl_loss(logits, mask, per_word=True, **options)
    assert close(per_word, reference_confidence_kl(np.asarray(logits), np.asarray(mask)) / int(mask.sum()))
    assert close(summed / int(mask.sum()), per_word) and float(summed) > float(per_word)


def test_kl_loss_entropy_kind_and_check_prior():
    logits, mask = jnp.asarray(np.eye(4, dtype=np.float32) * 5), jnp.ones(4, bool)
    assert close(
        losses.kl_loss(logits, mask, kind="entropy", prior=None, target_gradient=False),
        reference_mean_entropy(np.asarray(logits), np.asarray(mask)),
    )
    losses.check_prior("entropy", None, 4)  # needs no prior
    with pytest.raises(ValueError, match="unknown KL kind"):
        losses.check_prior("bogus", None, 4)
