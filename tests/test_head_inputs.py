"""The train stage's library helpers: the baseline's compact vocabulary and explicit priors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features.inputs import baseline_inputs, baseline_vocabulary
from heads.losses import explicit_prior


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 500), min_size=1, max_size=60), st.lists(st.integers(0, 500), max_size=60))
def test_baseline_inputs_map_seen_ids_to_distinct_rows_and_unseen_to_zero(seen, queried):
    vocabulary = baseline_vocabulary(np.array(seen))
    rows = baseline_inputs(np.array(queried, dtype=np.int64), vocabulary)
    for piece, row in zip(queried, rows):
        if piece in seen:
            assert row >= 1 and vocabulary[row - 1] == piece
        else:
            assert row == 0
    assert len(set(baseline_inputs(np.array(seen), vocabulary).tolist())) == len(set(seen))


def test_explicit_prior_by_name_or_list():
    categories = ["O", "geo", "per"]
    assert explicit_prior("labelled", categories) is None
    np.testing.assert_allclose(explicit_prior({"O": 8, "per": 2}, categories), [0.8, 0.0, 0.2])
    np.testing.assert_allclose(explicit_prior([1, 1, 2], categories), [0.25, 0.25, 0.5])
    with pytest.raises(ValueError, match="unknown categories"):
        explicit_prior({"xyz": 1}, categories)
    with pytest.raises(ValueError, match="3 non-negative shares"):
        explicit_prior([1, 2], categories)
