"""The BiLSTM context head: sentences stay apart, every word gets a prediction, training moves every weight."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from cache.rows import ConcatColumns
from heads.batches import make_batch, sentence_starts, word_rows
from heads.build import build_model
from heads.context import sentence_grid
from heads.predict import predict
from heads.settings import HeadParams
from heads.steps import ce_step, init_state, make_optimizer

DIM, CATEGORIES = 12, ("O", "a", "b")
CLASSES = len(CATEGORIES)


def sentences_and_inputs(lengths, seed=0):
    """Each word's sentence start (W,) bool and random word vectors (W, DIM) of sentences of ``lengths`` words."""
    rng = np.random.default_rng(seed)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    features = rng.normal(size=(sum(lengths), DIM)).astype(np.float16)
    return sentence_starts(offsets, np.arange(len(lengths))), features


def bilstm(**options):
    settings = dict(hidden=(16,), latent_dim=8, kind="bilstm", lstm_units=8, row_words=4, batch_sentences=8)
    settings.update(options)
    return build_model(HeadParams(**settings), CATEGORIES)


def test_grid_places_windows_of_long_sentences_on_rows_of_their_own():
    starts = np.array([1, 0, 0, 0, 0, 0, 1, 0, 0, 0], bool)  # sentences of 6 and 3 words, then padding
    real = np.array([True] * 9 + [False])
    row, column = sentence_grid(starts, real, row_words=4, rows=5)
    assert row.tolist() == [0, 0, 0, 0, 1, 1, 2, 2, 2, 5]
    assert column.tolist() == [0, 1, 2, 3, 0, 1, 0, 1, 2, 3]


def test_sentences_do_not_see_each_other():
    starts, inputs = sentences_and_inputs([3, 5, 2])
    model = bilstm()
    params = model.init(jax.random.key(0), inputs[:1])["params"]
    changed = inputs.copy()
    changed[3:8, :DIM] += 1  # the second sentence only
    before, _ = predict(params, model, inputs, starts)
    after, _ = predict(params, model, changed, starts)
    np.testing.assert_array_equal(before[:3], after[:3])
    np.testing.assert_array_equal(before[8:], after[8:])
    assert not np.allclose(before[3:8], after[3:8])
    # Context matters, both ways, within a window of row_words (4) words: words 3-6, then word 7.
    moved = inputs.copy()
    moved[4, :DIM] += 1
    after = predict(params, model, moved, starts)[0]
    assert not np.allclose(after[3], before[3]) and not np.allclose(after[6], before[6])
    np.testing.assert_array_equal(after[7], before[7])


@pytest.mark.parametrize("lengths", [[1], [9, 1, 4], [40] + [2] * 30, [3] * 300])
def test_every_word_gets_the_same_prediction_however_the_input_is_cut(lengths):
    first_words, inputs = sentences_and_inputs(lengths, seed=len(lengths))
    model = bilstm()
    params = model.init(jax.random.key(1), inputs[:1])["params"]
    whole, latent = predict(params, model, inputs, first_words)
    assert whole.shape == (len(inputs), CLASSES) and latent.shape == (len(inputs), 8)
    assert np.isfinite(whole).all() and np.allclose(whole.sum(1), 1, atol=1e-5)
    # Sentence by sentence, the same probabilities: chunking never splits a sentence.
    starts = np.concatenate([[0], np.cumsum(lengths)])
    for a, b in zip(starts[:-1], starts[1:]):
        alone, _ = predict(params, model, inputs[a:b], first_words[a:b])
        np.testing.assert_allclose(alone, whole[a:b], atol=1e-5)


def test_one_train_step_changes_every_parameter():
    starts, inputs = sentences_and_inputs([5, 3, 7, 2])
    offsets = np.concatenate([[0], np.cumsum([5, 3, 7, 2])])
    labels = np.random.default_rng(0).integers(0, CLASSES, len(inputs)).astype(np.int32)
    model = bilstm(dropout=0.1)
    params = model.init(jax.random.key(0), inputs[:1])["params"]
    optimizer = make_optimizer(1e-2)
    batch = make_batch(inputs, labels, word_rows(offsets, np.arange(4)), 32, starts)
    state, metrics = ce_step(
        init_state(params, optimizer), batch, apply_fn=model.apply, optimizer=optimizer, dropout_key=jax.random.key(3)
    )
    assert float(metrics["words"]) == len(inputs)
    moved = jax.tree_util.tree_map(lambda a, b: bool(np.any(np.asarray(a) != np.asarray(b))), params, state.params)
    assert all(jax.tree_util.tree_leaves(moved))


def test_the_head_is_told_where_sentences_start_and_reads_no_column_for_it():
    starts, inputs = sentences_and_inputs([3, 5, 2])
    model = bilstm()  # no shape flags among its inputs: none needed
    params = model.init(jax.random.key(0), inputs[:1])["params"]
    apart, _ = predict(params, model, inputs, starts)
    one_sentence, _ = predict(params, model, inputs, np.eye(1, len(inputs), dtype=bool)[0])
    # One sentence of 10 words is read in windows of row_words (4): words 0-3, 4-7, 8-9. The last window holds
    # the same two words as the third sentence did; the others now see words of other sentences.
    np.testing.assert_array_equal(apart[8:], one_sentence[8:])
    assert not np.allclose(apart[:3], one_sentence[:3]) and not np.allclose(apart[3:8], one_sentence[3:8])
    with pytest.raises(ValueError, match="reads whole sentences"):
        predict(params, model, inputs)
    with pytest.raises(ValueError, match="heads.kind"):
        HeadParams(kind="transformer")


def test_concat_columns_reads_rows_like_the_concatenation():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(20, 3)).astype(np.float16), rng.integers(0, 2, (20, 2)).astype(np.float16)
    view = ConcatColumns(a, b)
    whole = np.concatenate([a, b], axis=1)
    rows = np.array([5, 1, 5, 19, 0])
    np.testing.assert_array_equal(view[rows], whole[rows])
    np.testing.assert_array_equal(view[3:7], whole[3:7])
    np.testing.assert_array_equal(view[4], whole[4])
    assert view.shape == (20, 5) and np.asarray(view).shape == (20, 5)
    with pytest.raises(ValueError):
        ConcatColumns(a, b[:5])


def test_a_saved_bilstm_head_loads_and_predicts_the_same(tmp_path):
    from heads.build import model_from_config
    from heads.checkpoint import load_head, save_head

    starts, inputs = sentences_and_inputs([4, 6])
    model = bilstm()
    params = model.init(jax.random.key(2), inputs[:1])["params"]
    config = {
        "model": "bert_ner",
        "seed": 0,
        "categories": ["O", "a", "b"],
        "input": "features",
        "input_dim": DIM,
        "features": {"encoder": "e"},
        "heads": {
            "hidden": [16],
            "latent_dim": 8,
            "dropout": 0.0,
            "kind": "bilstm",
            "lstm_units": 8,
            "row_words": 4,
            "batch_sentences": 8,
        },
    }
    save_head(tmp_path / "head.msgpack", params, config)
    loaded, loaded_config = load_head(tmp_path / "head.msgpack")
    np.testing.assert_array_equal(
        predict(loaded, model_from_config(loaded_config), inputs, starts)[0], predict(params, model, inputs, starts)[0]
    )


@pytest.mark.parametrize("lengths", [[1], [9, 1, 4], [40] + [2] * 30, [33, 32, 31, 65]])
def test_a_grid_fitted_to_the_sentences_gives_what_the_full_grid_gives(lengths):
    from heads.context import fit_grid, rows_needed
    from heads.predict import predict_padded

    first_words, inputs = sentences_and_inputs(lengths, seed=3)
    model = bilstm(batch_sentences=len(lengths))
    params = model.init(jax.random.key(4), inputs[:1])["params"]
    padded = np.concatenate([inputs, np.zeros((7, inputs.shape[1]), inputs.dtype)])  # padding rows, as in a batch
    starts = np.concatenate([first_words, np.zeros(7, bool)])
    full, _, _ = predict_padded(params, model, padded, starts)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    fitted = fit_grid(model, offsets, [np.arange(len(lengths))])
    assert fitted.grid_rows == rows_needed(lengths, 4) >= sum(-(-n // 4) for n in lengths)
    np.testing.assert_allclose(
        predict_padded(params, fitted, padded, starts)[0][: len(inputs)], full[: len(inputs)], atol=1e-6
    )
    # One row short, the last window's words fall off the grid: the bound matters (0 would mean no bound).
    needed = sum(-(-n // 4) for n in lengths)
    if needed > 1:
        short = model.clone(grid_rows=needed - 1)
        assert not np.allclose(predict_padded(params, short, padded, starts)[0][: len(inputs)], full[: len(inputs)])


def test_fit_grid_leaves_other_heads_alone():
    from heads.context import fit_grid

    mlp = build_model(HeadParams(hidden=(16,), latent_dim=8), CATEGORIES)
    assert fit_grid(mlp, np.array([0, 3]), [np.array([0])]) is mlp
