"""Statistics over seeds, one home for the reports, the experiments and the benchmarks.

- ``mean_std``: mean ± sample standard deviation (ddof=1) over seeds;
- ``paired_test``: a model against a reference on the same seeds, two-sided paired t-test;
- ``validation_split``: the seeded held-out part of a labelled split (early stopping, the
  experiments' selections and the benchmarks all hold out this one).
"""

from __future__ import annotations

import numpy as np

SIGNIFICANCE = 0.05  # a paired gain counts when its two-sided p is below this (reports' marks, benchmarks' rules)


def mean_std(values) -> tuple[float, float]:
    """(mean, sample std with ddof=1) of the values that are not None.

    The std of a single value is 0.0; with no value both are NaN.
    """
    present = np.asarray([value for value in values if value is not None], dtype=float)
    if present.size == 0:
        return float("nan"), float("nan")
    return float(present.mean()), float(present.std(ddof=1)) if present.size > 1 else 0.0


def paired_test(ours, theirs) -> dict:
    """Two-sided paired t-test of ``ours`` against ``theirs``, two sequences aligned by seed.

    Returns {"gain": mean of ours - theirs, "std": sample std (ddof=1) of
    those differences, "p": the test's p-value, "seeds": number of pairs}.
    Identical runs (every difference exactly 0) get p = 1.0, no evidence of a
    difference, where the t statistic is undefined; with fewer than two pairs
    gain, std and p are NaN.
    """
    from scipy.stats import ttest_rel

    ours, theirs = np.asarray(ours, dtype=float), np.asarray(theirs, dtype=float)
    if ours.shape != theirs.shape or ours.ndim != 1:
        raise ValueError(f"paired_test needs two aligned 1-D sequences, got shapes {ours.shape} and {theirs.shape}")
    if ours.size < 2:
        return {"gain": float("nan"), "std": float("nan"), "p": float("nan"), "seeds": int(ours.size)}
    gains = ours - theirs
    p = 1.0 if np.allclose(gains, gains[0]) and gains[0] == 0 else float(ttest_rel(ours, theirs).pvalue)
    return {"gain": float(gains.mean()), "std": float(gains.std(ddof=1)), "p": p, "seeds": int(ours.size)}


def validation_split(labelled_ids, fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(train part, validation part) of ``labelled_ids``: a seeded ``fraction`` held out, at least one each.

    The held-out count is ``round(fraction * n)`` clipped to [1, n - 1]; which
    sentences are held out depends only on ``seed`` and the sorted ids (not on
    their order). Both parts are sorted int64 arrays. The early-stopping heads
    of the pipeline are trained on this split: it must not change.
    """
    labelled_ids = np.sort(np.asarray(labelled_ids, np.int64))
    if len(labelled_ids) < 2:
        raise ValueError(f"a validation split needs >= 2 labelled sentences, got {len(labelled_ids)}")
    count = min(max(int(round(fraction * len(labelled_ids))), 1), len(labelled_ids) - 1)
    held_out = np.zeros(len(labelled_ids), bool)
    held_out[np.random.default_rng(seed).permutation(len(labelled_ids))[:count]] = True
    return labelled_ids[~held_out], labelled_ids[held_out]
