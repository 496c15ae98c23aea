"""Sentence batches: word rows, shuffling, static padded sizes."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heads.batches import Batch, make_batch, padded_size, sentence_batches, sentence_starts, word_rows

sentence_lengths = st.lists(st.integers(0, 7), min_size=1, max_size=30)


def offsets_of(lengths):
    return np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)


@settings(max_examples=80, deadline=None)
@given(sentence_lengths, st.randoms(use_true_random=False))
def test_sentence_starts_mark_each_sentences_first_word(lengths, random):
    ids = list(range(len(lengths)))
    random.shuffle(ids)
    reference = [index == 0 for s in ids for index in range(lengths[s])]  # sentence by sentence, in ids' order
    assert sentence_starts(offsets_of(lengths), np.array(ids)).tolist() == reference


@settings(max_examples=80, deadline=None)
@given(sentence_lengths, st.randoms(use_true_random=False))
def test_word_rows_order_and_coverage(lengths, random):
    offsets = offsets_of(lengths)
    ids = np.array(random.sample(range(len(lengths)), k=random.randint(0, len(lengths))), np.int64)
    rows = word_rows(offsets, ids)
    expected = [np.arange(offsets[s], offsets[s + 1]) for s in ids]
    np.testing.assert_array_equal(rows, np.concatenate(expected) if len(ids) else [])
    assert rows.dtype == np.int64
    every = word_rows(offsets, np.random.default_rng(0).permutation(len(lengths)))
    np.testing.assert_array_equal(np.sort(every), np.arange(offsets[-1]))


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 50), st.integers(1, 16), st.integers(0, 1000))
def test_sentence_batches_partition(count, batch_sentences, seed):
    ids = np.arange(100, 100 + count)
    batches = sentence_batches(ids, batch_sentences, np.random.default_rng(seed))
    assert all(len(b) == batch_sentences for b in batches[:-1])
    assert len(batches) == -(-count // batch_sentences)
    joined = np.concatenate(batches) if batches else np.array([], int)
    np.testing.assert_array_equal(np.sort(joined), ids)
    again = sentence_batches(ids, batch_sentences, np.random.default_rng(seed))
    assert all((a == b).all() for a, b in zip(batches, again, strict=True))


def test_sentence_batches_without_shuffle_keeps_order():
    batches = sentence_batches(np.arange(10), 4, rng=None, shuffle=False)
    assert [b.tolist() for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    shuffled = sentence_batches(np.arange(40), 40, np.random.default_rng(0))
    assert shuffled[0].tolist() != list(range(40))


@settings(max_examples=60, deadline=None)
@given(sentence_lengths, st.integers(1, 5), st.sampled_from([1, 8, 256]))
def test_padded_size_fits_every_batch(lengths, batch_sentences, multiple):
    offsets = offsets_of(lengths)
    batches = sentence_batches(np.arange(len(lengths)), batch_sentences, np.random.default_rng(1))
    size = padded_size(offsets, batches, multiple)
    assert size % multiple == 0 and size >= multiple
    most = max(len(word_rows(offsets, b)) for b in batches)
    assert most <= size < most + multiple or size == multiple


@settings(max_examples=60, deadline=None)
@given(sentence_lengths, st.booleans(), st.booleans(), st.integers(0, 1000))
def test_make_batch(lengths, labelled, ids_input, seed):
    rng = np.random.default_rng(seed)
    offsets = offsets_of(lengths)
    n_words = int(offsets[-1])
    if ids_input:
        inputs_all = rng.integers(1, 50, n_words).astype(np.int32)  # (W,) word-piece ids
    else:
        inputs_all = rng.standard_normal((n_words, 3)).astype(np.float16)  # (W, D) features
    labels_all = rng.integers(1, 9, n_words).astype(np.int32)
    chosen = rng.permutation(len(lengths))[: rng.integers(0, len(lengths) + 1)]
    rows = word_rows(offsets, chosen)
    size = padded_size(offsets, [chosen], 8)
    batch = make_batch(inputs_all, labels_all if labelled else None, rows, size)

    assert isinstance(batch, Batch)
    n = len(rows)
    assert batch.mask.dtype == bool and batch.mask.sum() == n and batch.mask[:n].all()
    assert batch.inputs.shape == (size,) + inputs_all.shape[1:]
    assert batch.inputs.dtype == inputs_all.dtype
    assert batch.labels.shape == (size,) and batch.labels.dtype == np.int32
    np.testing.assert_array_equal(batch.inputs[:n], inputs_all[rows])
    assert (batch.inputs[n:] == 0).all() and (batch.labels[n:] == 0).all()
    if labelled:
        np.testing.assert_array_equal(batch.labels[:n], labels_all[rows])
    else:
        assert (batch.labels == 0).all()


def test_make_batch_refuses_overflow():
    with pytest.raises(ValueError, match="padded size"):
        make_batch(np.zeros((10, 2), np.float16), None, np.arange(10), 8)
