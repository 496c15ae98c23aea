"""cache.rows: the row views index as NumPy indexes the concatenated arrays, whatever the index (property test)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cache.rows import ConcatColumns, ConcatRows, TakeRows

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


@settings(max_examples=300, deadline=None)
@given(row_keys(), st.lists(st.integers(0, N - 1), min_size=N, max_size=N))
def test_take_rows_indexes_like_numpy_on_the_taken_rows(key, taken):
    vectors, flags = _arrays()
    taken = np.asarray(taken, np.int64)  # any rows of the array, repeats and any order
    np.testing.assert_array_equal(TakeRows(vectors, taken)[key], vectors[taken][key])
    # Through another view (the select stage's: the shape flags beside a split's cached vectors).
    view = ConcatColumns(TakeRows(vectors, taken), flags, dtype=np.float32)
    np.testing.assert_array_equal(view[key], np.concatenate([vectors[taken].astype(np.float32), flags], 1)[key])


def test_take_rows_refuses_rows_outside_the_array():
    vectors, _ = _arrays()
    with pytest.raises(IndexError, match="out of range for 23 rows"):
        TakeRows(vectors, [0, N])
    with pytest.raises(TypeError, match="1-D integer"):
        TakeRows(vectors, [0.5])


def test_whole_view_in_memory_equals_the_concatenation():
    vectors, flags = _arrays()
    np.testing.assert_array_equal(np.asarray(ConcatColumns(vectors, flags)), np.concatenate([vectors, flags], 1))
    np.testing.assert_array_equal(ConcatColumns(vectors, flags)[5:5], np.zeros((0, 6), np.float16))


def test_select_reads_a_memory_mapped_cache_lazily_and_an_h5py_one_now(tmp_path):
    import h5py

    from pipeline.select import _rows_of

    vectors, _ = _arrays()
    with h5py.File(tmp_path / "c.h5", "w") as f:
        dataset = f.create_dataset("features", data=vectors)
        offset = dataset.id.get_offset()
    mapped = np.memmap(tmp_path / "c.h5", dtype=vectors.dtype, mode="r", offset=offset, shape=vectors.shape)
    rows = np.array([2, 3, 4, 10, 11])
    lazy = _rows_of(mapped, rows)
    assert isinstance(lazy, TakeRows)  # nothing read yet: a chunk's rows are read when it is scored
    np.testing.assert_array_equal(lazy[1:4], vectors[rows][1:4])
    with h5py.File(tmp_path / "c.h5", "r") as f:
        read = _rows_of(f["features"], rows)
    assert isinstance(read, np.ndarray)  # an h5py dataset dies with its file: read before it closes
    np.testing.assert_array_equal(read, vectors[rows])
