"""The BiLSTM context head: sentences stay apart, every word gets a prediction, training moves every weight."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from cache.rows import ConcatColumns
from features.shape import FIRST_WORD, SHAPE_FLAGS, shape_flags
from heads.batches import make_batch, word_rows
from heads.build import build_model
from heads.context import sentence_grid
from heads.predict import predict
from heads.settings import HeadParams
from heads.steps import ce_step, init_state, make_optimizer

DIM, CLASSES = 12, 3


def sentences_and_inputs(lengths, seed=0):
    """Random word vectors with the shape flags of made-up sentences of ``lengths`` words, (W, DIM + 8)."""
    rng = np.random.default_rng(seed)
    sentences = [[f"w{i}" for i in range(n)] for n in lengths]
    features = rng.normal(size=(sum(lengths), DIM)).astype(np.float16)
    return sentences, np.concatenate([features, shape_flags(sentences)], axis=1)


def bilstm(**options):
    settings = dict(
        hidden=(16,), latent_dim=8, kind="bilstm", shape_flags=True, lstm_units=8, row_words=4, batch_sentences=8
    )
    settings.update(options)
    return build_model(HeadParams(**settings), CLASSES, DIM + len(SHAPE_FLAGS))


def test_grid_places_windows_of_long_sentences_on_rows_of_their_own():
    starts = np.array([1, 0, 0, 0, 0, 0, 1, 0, 0, 0], bool)  # sentences of 6 and 3 words, then padding
    real = np.array([True] * 9 + [False])
    row, column = sentence_grid(starts, real, row_words=4, rows=5)
    assert row.tolist() == [0, 0, 0, 0, 1, 1, 2, 2, 2, 5]
    assert column.tolist() == [0, 1, 2, 3, 0, 1, 0, 1, 2, 3]


def test_sentences_do_not_see_each_other():
    _, inputs = sentences_and_inputs([3, 5, 2])
    model = bilstm()
    params = model.init(jax.random.key(0), inputs[:1])["params"]
    changed = inputs.copy()
    changed[3:8, :DIM] += 1  # the second sentence only
    before, _ = predict(params, model, inputs)
    after, _ = predict(params, model, changed)
    np.testing.assert_array_equal(before[:3], after[:3])
    np.testing.assert_array_equal(before[8:], after[8:])
    assert not np.allclose(before[3:8], after[3:8])
    # Context matters, both ways, within a window of row_words (4) words: words 3-6, then word 7.
    moved = inputs.copy()
    moved[4, :DIM] += 1
    after = predict(params, model, moved)[0]
    assert not np.allclose(after[3], before[3]) and not np.allclose(after[6], before[6])
    np.testing.assert_array_equal(after[7], before[7])


@pytest.mark.parametrize("lengths", [[1], [9, 1, 4], [40] + [2] * 30, [3] * 300])
def test_every_word_gets_the_same_prediction_however_the_input_is_cut(lengths):
    _, inputs = sentences_and_inputs(lengths, seed=len(lengths))
    model = bilstm()
    params = model.init(jax.random.key(1), inputs[:1])["params"]
    whole, latent = predict(params, model, inputs)
    assert whole.shape == (len(inputs), CLASSES) and latent.shape == (len(inputs), 8)
    assert np.isfinite(whole).all() and np.allclose(whole.sum(1), 1, atol=1e-5)
    # Sentence by sentence, the same probabilities: chunking never splits a sentence.
    starts = np.concatenate([[0], np.cumsum(lengths)])
    for a, b in zip(starts[:-1], starts[1:]):
        alone, _ = predict(params, model, inputs[a:b])
        np.testing.assert_allclose(alone, whole[a:b], atol=1e-5)


def test_one_train_step_changes_every_parameter():
    sentences, inputs = sentences_and_inputs([5, 3, 7, 2])
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in sentences])])
    labels = np.random.default_rng(0).integers(0, CLASSES, len(inputs)).astype(np.int32)
    model = bilstm(dropout=0.1)
    params = model.init(jax.random.key(0), inputs[:1])["params"]
    optimizer = make_optimizer(1e-2)
    batch = make_batch(inputs, labels, word_rows(offsets, np.arange(4)), 32)
    state, metrics = ce_step(
        init_state(params, optimizer), batch, apply_fn=model.apply, optimizer=optimizer, dropout_key=jax.random.key(3)
    )
    assert float(metrics["words"]) == len(inputs)
    moved = jax.tree_util.tree_map(lambda a, b: bool(np.any(np.asarray(a) != np.asarray(b))), params, state.params)
    assert all(jax.tree_util.tree_leaves(moved))


def test_a_bilstm_without_shape_flags_is_refused():
    with pytest.raises(ValueError, match="shape_flags"):
        HeadParams(kind="bilstm", shape_flags=False)
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


def test_first_word_column_is_where_the_model_looks():
    assert bilstm().first_word_column == DIM + FIRST_WORD


def test_a_saved_bilstm_head_loads_and_predicts_the_same(tmp_path):
    from heads.build import model_from_config
    from heads.checkpoint import load_head, save_head

    _, inputs = sentences_and_inputs([4, 6])
    model = bilstm()
    params = model.init(jax.random.key(2), inputs[:1])["params"]
    config = {
        "model": "bert_ner",
        "seed": 0,
        "categories": ["O", "a", "b"],
        "input": "features",
        "input_dim": DIM + len(SHAPE_FLAGS),
        "features": {"encoder": "e"},
        "heads": {
            "hidden": [16],
            "latent_dim": 8,
            "dropout": 0.0,
            "kind": "bilstm",
            "shape_flags": True,
            "lstm_units": 8,
            "row_words": 4,
            "batch_sentences": 8,
        },
    }
    save_head(tmp_path / "head.msgpack", params, config)
    loaded, loaded_config = load_head(tmp_path / "head.msgpack")
    np.testing.assert_array_equal(
        predict(loaded, model_from_config(loaded_config), inputs)[0], predict(params, model, inputs)[0]
    )


@pytest.mark.parametrize("lengths", [[1], [9, 1, 4], [40] + [2] * 30, [33, 32, 31, 65]])
def test_a_grid_fitted_to_the_sentences_gives_what_the_full_grid_gives(lengths):
    from heads.context import fit_grid, rows_needed
    from heads.predict import predict_padded

    _, inputs = sentences_and_inputs(lengths, seed=3)
    model = bilstm(batch_sentences=len(lengths))
    params = model.init(jax.random.key(4), inputs[:1])["params"]
    padded = np.concatenate([inputs, np.zeros((7, inputs.shape[1]), inputs.dtype)])  # padding rows, as in a batch
    full, _ = predict_padded(params, model, padded)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    fitted = fit_grid(model, offsets, [np.arange(len(lengths))])
    assert fitted.grid_rows == rows_needed(lengths, 4) >= sum(-(-n // 4) for n in lengths)
    np.testing.assert_allclose(predict_padded(params, fitted, padded)[0][: len(inputs)], full[: len(inputs)], atol=1e-6)
    # One row short, the last window's words fall off the grid: the bound matters (0 would mean no bound).
    needed = sum(-(-n // 4) for n in lengths)
    if needed > 1:
        short = model.clone(grid_rows=needed - 1)
        assert not np.allclose(predict_padded(params, short, padded)[0][: len(inputs)], full[: len(inputs)])


def test_fit_grid_leaves_other_heads_alone():
    from heads.context import fit_grid

    mlp = build_model(HeadParams(hidden=(16,), latent_dim=8), CLASSES, DIM)
    assert fit_grid(mlp, np.array([0, 3]), [np.array([0])]) is mlp
