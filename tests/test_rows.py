"""cache.rows: the row views index as NumPy indexes the concatenated arrays, whatever the index (property test)."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from cache.rows import ConcatColumns, ConcatRows

N = 23


def _arrays():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(N, 4)).astype(np.float16)
    flags = rng.integers(0, 2, (N, 2)).astype(np.float32)
    return vectors, flags


@st.composite
def row_keys(draw):
    """Slices (any start, stop and step), sorted unique rows (the fast path), any rows with repeats and
    negative indices, and single ints."""
    kind = draw(st.sampled_from(["slice", "sorted", "any", "int"]))
    if kind == "slice":
        bound = st.one_of(st.none(), st.integers(-N - 3, N + 3))
        return slice(draw(bound), draw(bound), draw(st.one_of(st.none(), st.integers(1, 4), st.integers(-4, -1))))
    if kind == "sorted":
        return np.array(sorted(draw(st.sets(st.integers(0, N - 1), max_size=N))), np.int64)
    if kind == "any":
        return np.array(draw(st.lists(st.integers(-N, N - 1), max_size=40)), np.int64)
    return draw(st.integers(-N, N - 1))


@settings(max_examples=300, deadline=None)
@given(row_keys())
def test_concat_columns_indexes_like_the_concatenation(key):
    vectors, flags = _arrays()
    view = ConcatColumns(vectors, flags, dtype=np.float32)
    whole = np.concatenate([vectors.astype(np.float32), flags], axis=1)
    got = view[key]
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, whole[key])


@settings(max_examples=300, deadline=None)
@given(row_keys(), st.integers(1, N - 1))
def test_concat_rows_indexes_like_the_concatenation(key, cut):
    vectors, _ = _arrays()
    view = ConcatRows(vectors[:cut], vectors[cut:])
    np.testing.assert_array_equal(view[key], vectors[key])


def test_whole_view_in_memory_equals_the_concatenation():
    vectors, flags = _arrays()
    np.testing.assert_array_equal(np.asarray(ConcatColumns(vectors, flags)), np.concatenate([vectors, flags], 1))
    np.testing.assert_array_equal(ConcatColumns(vectors, flags)[5:5], np.zeros((0, 6), np.float16))
