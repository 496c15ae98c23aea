"""Cluster features: fitting centroids, assigning words, neighbours' ids and the checksummed record."""

from __future__ import annotations

import numpy as np
import pytest
from flax import serialization
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from cache.rows import ConcatColumns, ConcatRows
from features.clusters import (
    assign,
    centroids_from_record,
    centroids_record,
    fit_centroids,
    sample_rows,
    with_neighbour_ids,
)


def blobs(num_clusters: int, per_cluster: int, dim: int, seed: int):
    """Words (N, dim) float16 around ``num_clusters`` far-apart directions, each scaled by 0.2..5, and
    their true cluster (N,): the directions, not the norms, tell the clusters apart."""
    rng = np.random.default_rng(seed)
    directions = np.linalg.qr(rng.normal(size=(dim, dim)))[0][:num_clusters]  # orthonormal, (C, dim)
    truth = rng.permutation(np.repeat(np.arange(num_clusters), per_cluster))  # (N,)
    noise = rng.normal(scale=0.05, size=(len(truth), dim))
    scale = rng.uniform(0.2, 5.0, size=(len(truth), 1))
    return ((directions[truth] + noise) * scale).astype(np.float16), truth


def brute_force_scores(features, centroids) -> np.ndarray:
    """Cosine of every word with every centroid, (W, k) float64."""
    words = np.asarray(features, np.float64)
    centres = np.asarray(centroids, np.float64)
    words = words / np.maximum(np.linalg.norm(words, axis=1, keepdims=True), 1e-300)
    centres = centres / np.maximum(np.linalg.norm(centres, axis=1, keepdims=True), 1e-300)
    return words @ centres.T


class RecordingRows:
    """A (W, D) array that records every row index it is asked for (what fit_centroids reads)."""

    def __init__(self, array):
        self.array, self.shape, self.dtype, self.ndim, self.reads = array, array.shape, array.dtype, array.ndim, []

    def __len__(self):
        return len(self.array)

    def __getitem__(self, key):
        self.reads.append(key)
        return self.array[key]


# --- fitting ---------------------------------------------------------------------------------------


def test_separated_clusters_are_recovered_up_to_relabelling():
    features, truth = blobs(num_clusters=6, per_cluster=300, dim=24, seed=1)
    centroids = fit_centroids(features, k=6, sample=1_000, seed=0)
    ids = assign(features, centroids, batch_rows=256)
    # One id per true cluster and one true cluster per id: the contingency table is a permutation.
    table = np.zeros((6, 6), int)
    np.add.at(table, (truth, ids), 1)
    assert (np.count_nonzero(table, axis=1) == 1).all()
    assert (np.count_nonzero(table, axis=0) == 1).all()


def test_centroids_are_float32_unit_rows_of_the_features_width():
    features, _ = blobs(num_clusters=4, per_cluster=50, dim=10, seed=2)
    centroids = fit_centroids(features, k=4, sample=150, seed=3)
    assert centroids.dtype == np.float32 and centroids.shape == (4, 10)
    np.testing.assert_allclose(np.linalg.norm(centroids, axis=1), 1.0, rtol=1e-6)


def test_fitting_is_deterministic_for_a_seed_and_depends_on_it():
    features = np.random.default_rng(4).normal(size=(600, 8)).astype(np.float16)  # no structure: seeds matter
    first = fit_centroids(features, k=5, sample=400, seed=7)
    assert np.array_equal(first, fit_centroids(features, k=5, sample=400, seed=7))
    assert not np.allclose(first, fit_centroids(features, k=5, sample=400, seed=8))


def test_fitting_sees_directions_only():
    features = np.random.default_rng(10).normal(size=(300, 6)).astype(np.float16)
    # Powers of two scale float16 exactly, so the normalised words are bit for bit those of ``features``.
    scales = 2.0 ** np.random.default_rng(11).integers(-3, 4, size=(300, 1))
    rescaled = (features * scales).astype(np.float16)
    expected = fit_centroids(features, k=4, sample=250, seed=2)
    assert np.array_equal(fit_centroids(rescaled, k=4, sample=250, seed=2), expected)


def test_sampled_rows_are_distinct_ascending_seeded_and_capped():
    rows = sample_rows(num_words=1_000, sample=200, seed=5)
    assert len(rows) == 200 and len(np.unique(rows)) == 200
    assert (np.diff(rows) > 0).all() and rows.min() >= 0 and rows.max() < 1_000
    assert np.array_equal(rows, sample_rows(1_000, 200, 5))
    assert not np.array_equal(rows, sample_rows(1_000, 200, 6))
    assert np.array_equal(sample_rows(30, 200, 5), np.arange(30))  # asked for more than there are: all, once
    with pytest.raises(ValueError, match="sample"):
        sample_rows(30, 0, 5)


def test_fit_reads_only_the_sampled_rows_once_in_ascending_order():
    features, _ = blobs(num_clusters=3, per_cluster=100, dim=6, seed=6)
    recording = RecordingRows(features)
    fit_centroids(recording, k=3, sample=120, seed=9)
    assert len(recording.reads) == 1
    assert np.array_equal(recording.reads[0], sample_rows(300, 120, 9))


def test_fit_and_assign_read_a_memmap_and_row_views_as_an_array(tmp_path):
    features, _ = blobs(num_clusters=3, per_cluster=80, dim=8, seed=7)
    mapped = np.memmap(tmp_path / "features.f16", dtype=np.float16, mode="w+", shape=features.shape)
    mapped[:] = features
    mapped.flush()
    mapped = np.memmap(tmp_path / "features.f16", dtype=np.float16, mode="r", shape=features.shape)
    expected = fit_centroids(features, k=3, sample=200, seed=1)
    views = (mapped, ConcatRows(mapped[:100], mapped[100:]), ConcatColumns(mapped[:, :5], mapped[:, 5:]))
    for view in views:
        assert np.array_equal(fit_centroids(view, k=3, sample=200, seed=1), expected)
        assert np.array_equal(assign(view, expected, batch_rows=50), assign(features, expected, batch_rows=50))


def test_fit_refuses_more_clusters_than_sampled_words():
    features, _ = blobs(num_clusters=2, per_cluster=5, dim=4, seed=8)
    with pytest.raises(ValueError, match="cannot fit 11 clusters to 10 sampled words"):
        fit_centroids(features, k=11, sample=100, seed=0)


# --- assignment ------------------------------------------------------------------------------------


@st.composite
def words_and_centroids(draw):
    num_words = draw(st.integers(0, 40))
    dim = draw(st.integers(1, 6))
    k = draw(st.integers(1, 7))
    values = st.floats(-8, 8, allow_nan=False, width=16)
    features = draw(hnp.arrays(np.float16, (num_words, dim), elements=values))
    # Centroids of any norm: assign must compare directions, not raw dot products.
    centroids = draw(hnp.arrays(np.float32, (k, dim), elements=st.floats(-8, 8, allow_nan=False, width=32)))
    batch_rows = draw(st.sampled_from([1, max(num_words - 1, 1), max(num_words, 1), num_words + 1, 7]))
    return features, centroids, batch_rows


@settings(max_examples=300, deadline=None)
@given(words_and_centroids())
@example(  # subnormal centroids: their squares underflow, a plain norm would call them zero
    (np.array([[1, 0, 0]], np.float16), np.array([[1e-45, 1e-45, 1e-45], [1e-45, 0, 1e-45]], np.float32), 1)
)
def test_assign_is_the_brute_force_argmax_over_all_centroids(case):
    features, centroids, batch_rows = case
    ids = assign(features, centroids, batch_rows)
    assert ids.dtype == np.int32 and ids.shape == (len(features),)
    scores = brute_force_scores(features, centroids)  # (W, k)
    if not len(features):
        return
    best = scores.max(axis=1)
    # The chosen centroid is a best one (float32 rounding may pick either of two within 1e-5)...
    assert (scores[np.arange(len(ids)), ids] >= best - 1e-5).all()
    # ...and the brute-force argmax itself wherever the best is clear of the runner-up.
    runner_up = np.sort(scores, axis=1)[:, -2] if scores.shape[1] > 1 else np.full(len(ids), -np.inf)
    clear = best - runner_up > 1e-4
    assert np.array_equal(ids[clear], scores.argmax(axis=1)[clear])


def test_assign_batches_agree_at_every_boundary():
    rng = np.random.default_rng(9)
    features = rng.normal(size=(37, 5)).astype(np.float16)
    centroids = rng.normal(size=(6, 5)).astype(np.float32)
    expected = brute_force_scores(features, centroids).argmax(axis=1)
    for batch_rows in (1, 2, 10, 36, 37, 38, 1_000):
        assert np.array_equal(assign(features, centroids, batch_rows), expected), batch_rows


def test_assign_refuses_mismatched_widths_and_empty_batches():
    features = np.zeros((4, 3), np.float16)
    with pytest.raises(ValueError, match="do not fit centroids of width 2"):
        assign(features, np.ones((2, 2), np.float32), batch_rows=2)
    with pytest.raises(ValueError, match="batch_rows"):
        assign(features, np.ones((2, 3), np.float32), batch_rows=0)


# --- neighbours' ids -------------------------------------------------------------------------------


def reference_neighbours(ids, lengths, k):
    """Sentence by sentence: (previous or k, the word, next or k) for each word."""
    rows, start = [], 0
    for length in lengths:
        sentence = list(ids[start : start + length])
        for position, word in enumerate(sentence):
            previous = sentence[position - 1] if position > 0 else k
            following = sentence[position + 1] if position + 1 < length else k
            rows.append((previous, word, following))
        start += length
    return np.array(rows, np.int32).reshape(-1, 3)


@settings(max_examples=200, deadline=None)
@given(
    lengths=st.lists(st.integers(0, 4), max_size=8),  # empty and one-word sentences included
    k=st.integers(1, 9),
    seed=st.integers(0, 2**32 - 1),
)
def test_neighbour_ids_match_a_per_sentence_reference(lengths, k, seed):
    offsets = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)])  # (S+1,)
    ids = np.random.default_rng(seed).integers(0, k, size=int(offsets[-1])).astype(np.int32)
    got = with_neighbour_ids(ids, offsets, k)
    assert got.dtype == np.int32
    assert np.array_equal(got, reference_neighbours(ids, lengths, k))


def test_neighbour_ids_of_empty_and_one_word_sentences():
    # Sentences: [], [4], [], [1, 2], [3]
    got = with_neighbour_ids(np.array([4, 1, 2, 3]), np.array([0, 0, 1, 1, 3, 4]), k=5)
    assert got.tolist() == [[5, 4, 5], [5, 1, 2], [1, 2, 5], [5, 3, 5]]


def test_neighbour_ids_refuse_bad_offsets_and_ids():
    with pytest.raises(ValueError, match="offsets"):
        with_neighbour_ids(np.array([0, 1]), np.array([0, 3]), k=2)
    with pytest.raises(ValueError, match="offsets"):
        with_neighbour_ids(np.array([0, 1]), np.array([0, 2, 1, 2]), k=2)
    with pytest.raises(ValueError, match=r"0\.\.1"):
        with_neighbour_ids(np.array([0, 2]), np.array([0, 2]), k=2)


# --- the saved record ------------------------------------------------------------------------------


def msgpack_round_trip(record):
    """What a head file gives back: the record through flax's msgpack, as heads/checkpoint.py writes it."""
    return serialization.msgpack_restore(serialization.msgpack_serialize({"clusters": record}))["clusters"]


@settings(max_examples=50, deadline=None)
@given(hnp.arrays(np.float32, hnp.array_shapes(min_dims=2, max_dims=2), elements=st.floats(-1, 1, width=32)))
def test_record_round_trips_exactly_through_msgpack(centroids):
    restored = centroids_from_record(msgpack_round_trip(centroids_record(centroids)), "head.msgpack")
    assert restored.dtype == np.float32 and restored.shape == centroids.shape
    assert restored.tobytes() == centroids.tobytes()  # bit for bit, signed zeros included
    restored[0, 0] = 2.0  # a writable copy, not a view of the record's bytes


def refusal(record, **kwargs) -> str:
    with pytest.raises(ValueError) as caught:
        centroids_from_record(record, "models/head.msgpack", **kwargs)
    message = str(caught.value)
    assert message.startswith("models/head.msgpack: ") and "\n" not in message
    return message


def test_a_flipped_byte_is_refused_naming_the_file():
    record = centroids_record(np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32))
    for position in (0, 21, len(record["bytes"]) - 1):
        damaged = bytearray(record["bytes"])
        damaged[position] ^= 0x01
        assert "sha256" in refusal({**record, "bytes": bytes(damaged)})
    assert "sha256" in refusal({**record, "sha256": "0" * 64})


def test_a_mis_shaped_record_is_refused_naming_the_file():
    record = centroids_record(np.random.default_rng(1).normal(size=(4, 3)).astype(np.float32))
    assert "sha256" in refusal({**record, "shape": [3, 4]})  # same bytes, other shape: the checksum covers it
    assert "cannot hold" in refusal({**record, "shape": [5, 3]})
    assert "two positive ints" in refusal({**record, "shape": [12]})
    assert "two positive ints" in refusal({**record, "shape": [4, 3, 1]})
    assert "two positive ints" in refusal({**record, "shape": [-4, -3]})
    assert "dtype" in refusal({**record, "dtype": "float16"})
    assert "not a centroids record" in refusal({key: value for key, value in record.items() if key != "sha256"})
    assert "not a centroids record" in refusal(["not", "a", "dict"])
    assert "width 3, the features have 384" in refusal(record, dim=384)
    assert centroids_from_record(record, "x", dim=3).shape == (4, 3)


def test_a_record_of_nonfinite_centroids_is_refused():
    with pytest.raises(ValueError, match="finite"):
        centroids_record(np.array([[np.nan, 1.0]], np.float32))
    bad = np.array([[np.inf, 1.0]], np.float32)
    shape, data = [1, 2], bad.astype("<f4").tobytes()
    from features.clusters import _digest

    assert "NaN or Inf" in refusal({"shape": shape, "dtype": "float32", "bytes": data, "sha256": _digest((1, 2), data)})
