"""The training objectives of the head (CE, both KLs, entropy), and the class statistics they use.

Every loss takes the logits of a flattened batch of words, (N, C), and a mask,
(N,) bool, that is True on real words and False on padding. Masked words
contribute nothing to a value or to a gradient, a fully masked batch gives 0.0,
and no value or gradient is ever NaN or Inf, even for logits of +-1e4: the
log-probabilities of the model come from ``log_softmax``, and every other
division and log is guarded by ``eps``.

All math is done in float32 whatever the dtype of the logits.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

# Probabilities below this are treated as exact zeros inside a log: p * log(p)
# is then below 1e-36, and 1/p stays finite in float32.
_TINY = float(np.finfo(np.float32).tiny)


def _safe_mean_denominator(total):
    """total where it is positive, else 1, so that 0 / 0 becomes 0 with a zero gradient."""
    return jnp.where(total > 0, total, 1.0)


def masked_cross_entropy(logits, labels, mask, class_weights=None):
    """Mean over real words of -log q(y); returns a float32 scalar.

    With ``class_weights`` (C,) the mean is weighted: sum_i w_{y_i} nll_i /
    sum_i w_{y_i}. A fully masked batch gives 0.0 with an all-zero gradient.
    """
    log_q = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)  # (N, C)
    nll = -jnp.take_along_axis(log_q, labels.astype(jnp.int32)[:, None], axis=-1)[:, 0]  # (N,)
    weights = mask.astype(jnp.float32)
    if class_weights is not None:
        weights = weights * jnp.asarray(class_weights, jnp.float32)[labels]
    nll = jnp.where(mask, nll, 0.0)
    total = jnp.sum(weights)
    return jnp.sum(weights * nll) / _safe_mean_denominator(total)


def weighted_word_loss(logits, labels, mask, class_weights):
    """Sum over real words of w_{y_i} * -log q(y_i), divided by the number of real words: a float32 scalar.

    Unlike ``masked_cross_entropy``'s weighted mean, the weights' scale is kept (a CRF head's ``word_loss``
    rides on it). A fully masked batch gives 0.0 with an all-zero gradient.
    """
    labels = jnp.where(mask, labels, 0).astype(jnp.int32)
    log_q = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    nll = -jnp.take_along_axis(log_q, labels[:, None], axis=-1)[:, 0]
    weighted = jnp.where(mask, jnp.asarray(class_weights, jnp.float32)[labels] * nll, 0.0)
    return jnp.sum(weighted) / _safe_mean_denominator(jnp.sum(mask.astype(jnp.float32)))


def _masked_probabilities(logits, mask):
    """Softmax probabilities with masked rows set to zero: (N, C) float32."""
    q = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
    return jnp.where(mask[:, None], q, 0.0)


def _xlogy_ratio(p, log_q):
    """p * (log p - log_q) elementwise, with 0 where p is (numerically) zero."""
    positive = p > _TINY
    log_p = jnp.log(jnp.where(positive, p, 1.0))
    return jnp.where(positive, p * (log_p - log_q), 0.0)


def data_distribution_kl(logits, mask, prior, eps=1e-8):
    """KL(prior || batch distribution of predicted categories); a float32 scalar.

    q(l) = mean over real words of softmax(logits)_l, and the loss is
    sum_l p(l) log(p(l) / (q(l) + eps)). Categories with p(l) = 0 contribute 0.
    (A category the head gives far less than ``eps`` everywhere gets little
    gradient from this term; eps = 1e-8 is well below the rarest prior.)
    A fully masked batch has no distribution to compare and gives 0.0.
    """
    q_words = _masked_probabilities(logits, mask)  # (N, C)
    n_words = jnp.sum(mask.astype(jnp.float32))
    q = jnp.sum(q_words, axis=0) / _safe_mean_denominator(n_words)  # (C,)
    prior = jnp.asarray(prior, jnp.float32)
    loss = jnp.sum(_xlogy_ratio(prior, jnp.log(q + eps)))
    return jnp.where(n_words > 0, loss, 0.0)


def confidence_target(logits, mask, eps=1e-8):
    """The DEC target distribution p_i(l) of each word, (N, C) float32, zero on masked rows.

    f_l = sum_i q_i(l) over real words; p_i(l) is proportional to q_i(l)^2 / f_l.
    """
    q_words = _masked_probabilities(logits, mask)  # (N, C)
    frequency = jnp.sum(q_words, axis=0)  # (C,) soft count of each category
    sharpened = q_words**2 / (frequency + eps)  # (N, C)
    # A real word's most likely category has q >= 1/C and f <= N, so its row sum
    # is at least 1/(C^2 N) > 0: only masked rows need a guard.
    row_sum = jnp.sum(sharpened, axis=-1, keepdims=True)
    return sharpened / jnp.where(mask[:, None], row_sum, 1.0)


def confidence_kl(logits, mask, target_gradient, eps=1e-8):
    """DEC confidence loss: sum over real words of KL(p_i || q_i); a float32 scalar.

    The loss is a SUM over words, not a mean, as in DEC and the seed, so its
    size grows with the number of words in a batch (Adam, which the schedules
    use, is insensitive to that scale; a weighted joint loss is not).

    ``target_gradient=False`` treats the target p as a constant, as DEC does;
    ``True`` lets gradients flow through p, as the seed did. The value is the
    same either way.
    """
    target = confidence_target(logits, mask, eps)  # (N, C)
    if not target_gradient:
        target = jax.lax.stop_gradient(target)
    log_q = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)  # (N, C), finite
    per_word = jnp.sum(_xlogy_ratio(target, log_q), axis=-1)  # (N,)
    return jnp.sum(jnp.where(mask, per_word, 0.0))


def _category_counts(labels, num_classes):
    labels = np.asarray(labels).reshape(-1)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes}); got [{labels.min()}, {labels.max()}]")
    return np.bincount(labels.astype(np.int64), minlength=num_classes).astype(np.float64)


def prior_from_labels(labels, num_classes, smoothing=0.0):
    """Category frequencies of ``labels`` (the labelled words), (C,) float64 summing to 1.

    ``smoothing`` is added to every count first (additive smoothing), so that
    a category absent from the labelled words can still get prior mass.
    """
    if smoothing < 0:
        raise ValueError(f"smoothing must be >= 0, got {smoothing}")
    counts = _category_counts(labels, num_classes) + smoothing
    total = counts.sum()
    if total <= 0:
        raise ValueError("cannot compute a prior from zero labels with zero smoothing")
    return counts / total


def inverse_frequency_weights(labels, num_classes, power=1.0):
    """Per-category weights proportional to 1 / count ** power, (C,) float64.

    Normalised so that the mean weight over the labelled words is 1 (with
    power 1: w_c = n / (K * count_c), K the number of categories present).
    Categories absent from ``labels`` get weight 0 (they cannot occur in a
    labelled batch).
    """
    counts = _category_counts(labels, num_classes)
    present = counts > 0
    if not present.any():
        raise ValueError("cannot compute class weights from zero labels")
    weights = np.zeros(num_classes, np.float64)
    weights[present] = counts[present].astype(np.float64) ** -power
    weights[present] *= counts.sum() / np.dot(weights[present], counts[present])
    return weights


def class_weights(labels, num_classes, heads) -> np.ndarray | None:
    """The per-category weights the supervised loss of a head of section ``heads`` takes, (C,), or None.

    A softmax head: ``inverse_frequency_weights`` under ``class_weighting``. A CRF head with a ``word_loss``:
    those weights (or 1 for every category) times ``word_loss``, the per-word term's weight
    (``heads.output.supervised_loss``).
    """
    crf = heads.output == "crf"
    if not heads.class_weighting:
        return heads.word_loss * np.ones(num_classes) if crf and heads.word_loss else None
    weighted = inverse_frequency_weights(labels, num_classes, heads.class_weight_power)
    return heads.word_loss * weighted if crf else weighted


def mean_entropy(logits, mask):
    """Entropy minimisation (Grandvalet & Bengio 2005): mean over real words of H(q_i); a float32 scalar.

    H(q_i) = -sum_l q_i(l) log q_i(l), from ``log_softmax`` so it stays finite
    for saturated logits. A fully masked batch gives 0.0.
    """
    log_q = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)  # (N, C)
    per_word = -jnp.sum(jnp.exp(log_q) * log_q, axis=-1)  # (N,)
    n_words = jnp.sum(mask.astype(jnp.float32))
    return jnp.sum(jnp.where(mask, per_word, 0.0)) / _safe_mean_denominator(n_words)


# "entropy" is not a KL, but it is an unlabelled-batch term that the KL phase's
# schedules, steps and controls run the same way.
KL_KINDS = ("data_distribution", "confidence", "both", "entropy")


def kl_loss(logits, mask, *, kind, prior, target_gradient, per_word=False):
    """The unlabelled-batch regulariser named by ``kind``; a float32 scalar.

    ``"data_distribution"`` and ``"confidence"`` are the DESIGN's losses as
    defined (the confidence KL summed over words, as in DEC and the seed).
    ``per_word`` divides the confidence KL by the number of real words, so a
    joint loss's lambda is a per-word weight like the data-distribution KL's
    (the sum is about 2,900x larger on a 128-sentence batch). ``"both"`` always
    adds the per-word confidence KL to the data-distribution KL, so neither
    drowns the other. ``"entropy"`` is ``mean_entropy``.
    """
    if kind == "data_distribution":
        return data_distribution_kl(logits, mask, prior)
    if kind == "entropy":
        return mean_entropy(logits, mask)
    n_words = jnp.maximum(jnp.sum(mask.astype(jnp.float32)), 1.0)
    if kind == "confidence":
        confidence = confidence_kl(logits, mask, target_gradient)
        return confidence / n_words if per_word else confidence
    if kind == "both":
        confidence = confidence_kl(logits, mask, target_gradient) / n_words
        return data_distribution_kl(logits, mask, prior) + confidence
    raise ValueError(f"unknown KL kind {kind!r}; expected one of {KL_KINDS}")


def check_prior(kind, prior, num_classes):
    """Fail fast on a KL kind this module does not know, or a prior that is not a distribution."""
    if kind not in KL_KINDS:
        raise ValueError(f"unknown KL kind {kind!r}; expected one of {KL_KINDS}")
    if kind in ("confidence", "entropy"):
        return
    if prior is None:
        raise ValueError(f"KL kind {kind!r} needs a prior")
    prior = np.asarray(prior, np.float64)
    if prior.shape != (num_classes,) or (prior < 0).any() or abs(prior.sum() - 1) > 1e-4:
        raise ValueError(f"prior must be {num_classes} non-negative numbers summing to 1; got {prior.tolist()}")


def explicit_prior(prior, categories: list[str]) -> np.ndarray | None:
    """None for 'labelled'; else a list in category order or a {category: share} dict, normalised."""
    if prior == "labelled":
        return None
    if isinstance(prior, dict):
        unknown = sorted(set(prior) - set(categories))
        if unknown:
            raise ValueError(f"kl.prior names unknown categories {unknown}; categories are {categories}")
        values = np.array([float(prior.get(c, 0.0)) for c in categories])
    else:
        values = np.asarray(prior, dtype=np.float64)
    if values.shape != (len(categories),) or (values < 0).any() or values.sum() <= 0:
        raise ValueError(f"kl.prior must give {len(categories)} non-negative shares ({categories})")
    return values / values.sum()
