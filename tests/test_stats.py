"""heads.stats against independent references: numpy's mean and std, scipy's paired t-test, and the split's properties."""

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy.stats import ttest_rel

from heads.stats import mean_std, paired_test, validation_split

scores = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)  # metric values are fractions


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(scores, st.none()), max_size=12))
def test_mean_std_is_numpy_mean_and_sample_std_of_the_present_values(values):
    present = [v for v in values if v is not None]
    mean, std = mean_std(values)
    if not present:
        assert math.isnan(mean) and math.isnan(std)
    elif len(present) == 1:
        assert (mean, std) == (present[0], 0.0)
    else:
        # Exactly numpy's numbers: the reports' figures must not move by a rounding step.
        assert mean == np.mean(present) and std == np.std(present, ddof=1)


def test_mean_std_uses_the_sample_std():
    assert mean_std([0.0, 1.0]) == (0.5, pytest.approx(math.sqrt(0.5)))
    assert mean_std([None, 0.25, None]) == (0.25, 0.0)


pairs = st.lists(st.tuples(scores, scores), min_size=2, max_size=10)


@settings(max_examples=200, deadline=None)
@given(pairs)
def test_paired_test_is_scipys_two_sided_paired_t_test(pairs):
    ours, theirs = (list(column) for column in zip(*pairs))
    differences = np.subtract(ours, theirs)
    assume(np.ptp(differences) > 1e-6)  # a spread to test (a constant difference has no t statistic)
    test = paired_test(ours, theirs)
    assert test["seeds"] == len(pairs)
    assert test["gain"] == pytest.approx(np.mean(differences), abs=1e-12)
    assert test["std"] == pytest.approx(np.std(differences, ddof=1), rel=1e-9, abs=1e-15)
    assert test["p"] == ttest_rel(ours, theirs).pvalue


def test_paired_test_signs_and_edge_cases():
    ours, theirs = [0.70, 0.74, 0.69, 0.75], [0.68, 0.73, 0.66, 0.72]
    forward, backward = paired_test(ours, theirs), paired_test(theirs, ours)
    assert forward["gain"] == pytest.approx(0.0225) and backward["gain"] == pytest.approx(-0.0225)
    assert forward["p"] == pytest.approx(backward["p"]) and forward["p"] < 0.05  # two-sided: the same p either way
    # Identical runs: no evidence of a difference (scipy's t is 0/0 here).
    assert paired_test(ours, ours) == {"gain": 0.0, "std": 0.0, "p": 1.0, "seeds": 4}
    one = paired_test([0.7], [0.6])
    assert one["seeds"] == 1 and all(math.isnan(one[k]) for k in ("gain", "std", "p"))
    with pytest.raises(ValueError):
        paired_test([0.1, 0.2], [0.1, 0.2, 0.3])


ids_and_fraction = st.tuples(
    st.lists(st.integers(0, 10**6), min_size=2, max_size=300, unique=True),
    st.floats(min_value=0.01, max_value=0.99),
    st.integers(0, 2**31),
)


@settings(max_examples=200, deadline=None)
@given(ids_and_fraction)
def test_validation_split_is_a_seeded_partition_of_the_requested_size(case):
    ids, fraction, seed = case
    train, held_out = validation_split(np.array(ids), fraction, seed)
    assert not set(train.tolist()) & set(held_out.tolist())  # disjoint
    assert sorted(train.tolist() + held_out.tolist()) == sorted(ids)  # covers
    assert len(held_out) == min(max(round(fraction * len(ids)), 1), len(ids) - 1)  # the fraction, >= 1 each
    assert list(train) == sorted(train) and list(held_out) == sorted(held_out)
    again = validation_split(np.array(ids[::-1]), fraction, seed)  # the same for a seed, in any order
    assert np.array_equal(again[0], train) and np.array_equal(again[1], held_out)


def test_validation_split_is_the_one_the_pipelines_heads_were_trained_on():
    """Fixed draws of the algorithm as early stopping has always run it: any change moves a pipeline head."""
    cases = [
        ((np.arange(10), 0.3, 0), ([0, 1, 3, 5, 7, 8, 9], [2, 4, 6])),
        ((np.arange(100, 112), 0.25, 1), ([100, 101, 102, 103, 105, 106, 107, 109, 110], [104, 108, 111])),
        ((np.array([7, 3, 9, 1, 5]), 0.2, 2), ([1, 3, 7, 9], [5])),
    ]
    for (ids, fraction, seed), (train, held_out) in cases:
        got = validation_split(ids, fraction, seed)
        assert [part.tolist() for part in got] == [train, held_out] and got[0].dtype == np.int64
    with pytest.raises(ValueError, match=">= 2 labelled"):
        validation_split(np.arange(1), 0.2)
