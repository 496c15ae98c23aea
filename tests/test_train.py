"""Schedules end to end on a tiny separable problem, determinism, prediction, checkpoints."""

import functools

import jax
import msgpack
import numpy as np
import pytest

from heads import checkpoint, losses
from heads.batches import make_batch, padded_size, sentence_batches, sentence_starts, word_rows
from heads.model import EmbeddingHead, MLPHead
from heads.predict import predict
from heads.steps import (
    ce_step,
    init_head_params,
    init_state,
    joint_step,
    kl_step,
    make_optimizer,
    make_steps,
)
from heads.tables import word_positions, word_table
from heads.train import KLPhase, train_kl_phase, train_supervised

NUM_CLASSES = 4
DIM = 16
SMALL = dict(hidden=(32, 16), latent_dim=32)  # the seed's widths are not needed to separate blobs


def kl_rounds(*args, joint=False, rounds, kind, prior=None, target_gradient=False, kl_weight=1.0, **options):
    """train_kl_phase with the phase's fields as keywords."""
    phase = KLPhase(
        kind=kind,
        rounds=rounds,
        schedule="joint" if joint else "alternating",
        prior=prior,
        target_gradient=target_gradient,
        kl_weight=kl_weight,
    )
    return train_kl_phase(*args, phase=phase, **options)


train_kl_rounds = kl_rounds
train_joint_rounds = functools.partial(kl_rounds, joint=True)


class Corpus:
    """Sentences of 2-8 words; a word's features are its category's centre plus noise."""

    def __init__(self, sentences=120, seed=0):
        rng = np.random.default_rng(seed)
        lengths = rng.integers(2, 9, sentences)
        self.offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        n_words = int(self.offsets[-1])
        # Skewed like NER: most words are category 0.
        self.labels = rng.choice(NUM_CLASSES, n_words, p=[0.7, 0.1, 0.1, 0.1]).astype(np.int32)
        centres = rng.standard_normal((NUM_CLASSES, DIM)) * 2.0
        noise = rng.standard_normal((n_words, DIM)) * 0.5
        self.features = (centres[self.labels] + noise).astype(np.float16)  # (W, D)
        self.piece_ids = (self.labels * 10 + rng.integers(0, 10, n_words)).astype(np.int32)
        order = rng.permutation(sentences)
        self.labelled_ids, self.unlabelled_ids = order[:60], order[60:]


@pytest.fixture(scope="module")
def corpus():
    return Corpus()


def model():
    return MLPHead(NUM_CLASSES, **SMALL)


@pytest.fixture(scope="module")
def supervised(corpus):
    params, history = train_supervised(
        None, corpus.features, corpus.labels, corpus.offsets, corpus.labelled_ids,
        model=model(), epochs=15, batch_sentences=8, learning_rate=3e-3, seed=7,
        pad_multiple=16,
    )  # fmt: skip
    return params, history


def accuracy(params, head, inputs, labels):
    probabilities, _ = predict(params, head, inputs)
    return float((probabilities.argmax(axis=1) == labels).mean())


def leaves_equal(a, b):
    return all(
        np.array_equal(np.asarray(x), np.asarray(y))
        for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True)
    )


def test_supervised_learns_separable_problem(corpus, supervised):
    params, history = supervised
    assert len(history) == 15 and all(isinstance(h, float) for h in history)
    assert history[-1] < 0.5 * history[0]
    assert accuracy(params, model(), corpus.features, corpus.labels) > 0.95


def test_embedding_baseline_learns(corpus):
    head = EmbeddingHead(NUM_CLASSES * 10, NUM_CLASSES, embed_dim=8, **SMALL)
    params, history = train_supervised(
        None, corpus.piece_ids, corpus.labels, corpus.offsets, corpus.labelled_ids,
        model=head, epochs=15, batch_sentences=8, learning_rate=3e-3, seed=0, pad_multiple=16,
    )  # fmt: skip
    assert history[-1] < history[0]
    assert accuracy(params, head, corpus.piece_ids, corpus.labels) > 0.9


def test_same_seed_gives_identical_params(corpus):
    run = functools.partial(
        train_supervised, None, corpus.features, corpus.labels, corpus.offsets,
        corpus.labelled_ids, model=MLPHead(NUM_CLASSES, dropout_rate=0.1, **SMALL),
        epochs=2, batch_sentences=8, pad_multiple=16,
    )  # fmt: skip
    first, history_first = run(seed=3)
    second, history_second = run(seed=3)
    other, _ = run(seed=4)
    assert leaves_equal(first, second) and history_first == history_second
    assert not leaves_equal(first, other)


@pytest.mark.parametrize(
    "kind, target_gradient",
    [("data_distribution", False), ("confidence", True), ("both", False)],
)
def test_kl_rounds_run_and_change_params(corpus, supervised, kind, target_gradient):
    params, _ = supervised
    new_params, history = train_kl_rounds(
        params, corpus.features, corpus.labels, corpus.offsets, corpus.labelled_ids,
        corpus.unlabelled_ids, model=model(), rounds=4, kind=kind, prior=None,
        target_gradient=target_gradient, kl_weight=1.0, batch_sentences=8, seed=1,
        pad_multiple=16,
    )  # fmt: skip
    assert len(history) == 4
    assert all(np.isfinite(h["kl"]) and np.isfinite(h["ce"]) for h in history)
    assert not leaves_equal(params, new_params)
    # A few small steps from a good head keep it good.
    assert accuracy(new_params, model(), corpus.features, corpus.labels) > 0.9


def test_kl_rounds_never_read_unlabelled_labels(corpus, supervised):
    params, _ = supervised
    garbage = corpus.labels.copy()
    garbage[word_rows(corpus.offsets, corpus.unlabelled_ids)] = 10**6
    run = functools.partial(
        train_kl_rounds, params, corpus.features, offsets=corpus.offsets,
        labelled_ids=corpus.labelled_ids, unlabelled_ids=corpus.unlabelled_ids, model=model(),
        rounds=3, kind="both", target_gradient=False, kl_weight=1.0, batch_sentences=8,
        seed=2, pad_multiple=16,
    )  # fmt: skip
    honest, honest_history = run(labels=corpus.labels)
    blind, blind_history = run(labels=garbage)
    assert leaves_equal(honest, blind) and honest_history == blind_history


def test_joint_rounds_run_and_change_params(corpus, supervised):
    params, _ = supervised
    new_params, history = train_joint_rounds(
        params, corpus.features, corpus.labels, corpus.offsets, corpus.labelled_ids,
        corpus.unlabelled_ids, model=model(), rounds=3, kind="data_distribution",
        prior=np.full(NUM_CLASSES, 1 / NUM_CLASSES), kl_weight=0.5, batch_sentences=8,
        seed=1, pad_multiple=16,
    )  # fmt: skip
    assert len(history) == 3 and all(np.isfinite(h["kl"]) for h in history)
    assert not leaves_equal(params, new_params)


def assert_close_trees(a, b):
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-6)


def test_supervised_scan_matches_a_loop_of_jitted_steps(corpus):
    """The one-scan schedule takes the steps, with the keys, that ``steps.ce`` per batch takes."""
    head, seed, epochs = MLPHead(NUM_CLASSES, dropout_rate=0.2, **SMALL), 5, 3
    params, history = train_supervised(
        None, corpus.features, corpus.labels, corpus.offsets, corpus.labelled_ids, model=head,
        epochs=epochs, batch_sentences=8, seed=seed, pad_multiple=16,
    )  # fmt: skip

    rng = np.random.default_rng(seed)
    key = jax.random.key(seed)
    epoch_batches = [sentence_batches(corpus.labelled_ids, 8, rng) for _ in range(epochs)]
    size = padded_size(corpus.offsets, [b for e in epoch_batches for b in e], 16)
    optimizer = make_optimizer(1e-3)
    state = init_state(init_head_params(head, corpus.features, jax.random.fold_in(key, 0)), optimizer)
    steps, dropout_root, step = make_steps(head, optimizer), jax.random.fold_in(key, 1), 0
    loop_history = []
    for batches in epoch_batches:
        ce_sum = words = 0.0
        for ids in batches:
            batch = make_batch(corpus.features, corpus.labels, word_rows(corpus.offsets, ids), size)
            state, metrics = steps.ce(state, batch, jax.random.fold_in(dropout_root, step))
            ce_sum += float(metrics["ce_sum"])
            words += float(metrics["words"])
            step += 1
        loop_history.append(ce_sum / words)
    assert_close_trees(params, state.params)
    np.testing.assert_allclose(history, loop_history, rtol=1e-5)


@pytest.mark.parametrize("joint", [False, True])
def test_rounds_scan_matches_a_loop_of_jitted_steps(corpus, supervised, joint):
    params, _ = supervised
    head, seed, rounds, kind = MLPHead(NUM_CLASSES, dropout_rate=0.2, **SMALL), 2, 5, "both"
    schedule = train_joint_rounds if joint else train_kl_rounds
    new_params, history = schedule(
        params, corpus.features, corpus.labels, corpus.offsets, corpus.labelled_ids,
        corpus.unlabelled_ids, model=head, rounds=rounds, kind=kind, kl_weight=0.5,
        batch_sentences=8, seed=seed, pad_multiple=16,
    )  # fmt: skip

    rng = np.random.default_rng(seed)
    streams = []
    for ids in (corpus.labelled_ids, corpus.unlabelled_ids):
        stream = []
        while len(stream) < rounds:
            stream.extend(sentence_batches(ids, 8, rng))
        streams.append(stream[:rounds])
    labelled_batches, unlabelled_batches = streams
    size = padded_size(corpus.offsets, labelled_batches + unlabelled_batches, 16)
    prior = losses.prior_from_labels(corpus.labels[word_rows(corpus.offsets, corpus.labelled_ids)], NUM_CLASSES)
    optimizer = make_optimizer(1e-3)
    steps = make_steps(head, optimizer, kind=kind, prior=prior, kl_weight=0.5)
    state, dropout_root = init_state(params, optimizer), jax.random.fold_in(jax.random.key(seed), 1)
    loop_history = []
    for r in range(rounds):
        labelled = make_batch(corpus.features, corpus.labels,
                              word_rows(corpus.offsets, labelled_batches[r]), size)  # fmt: skip
        unlabelled = make_batch(corpus.features, None,
                                word_rows(corpus.offsets, unlabelled_batches[r]), size)  # fmt: skip
        if joint:
            key = jax.random.fold_in(dropout_root, r)
            state, metrics = steps.joint(state, labelled, unlabelled, key)
        else:
            state, kl_metrics = steps.kl(state, unlabelled, jax.random.fold_in(dropout_root, 2 * r))
            state, metrics = steps.ce(state, labelled, jax.random.fold_in(dropout_root, 2 * r + 1))
            metrics = {**kl_metrics, **metrics}
        loop_history.append((float(metrics["kl_sum"]), float(metrics["ce_sum"] / metrics["words"])))
    assert_close_trees(new_params, state.params)
    history = [(h["kl"], h["ce"]) for h in history]
    np.testing.assert_allclose(history, loop_history, rtol=1e-5, atol=1e-7)


class RowsOnly:
    """An array-like that only answers row indexing, like an h5py dataset or a custom store."""

    def __init__(self, array):
        self.array = array

    def __getitem__(self, rows):
        return self.array[rows]


@pytest.mark.parametrize("wrap", [np.asarray, RowsOnly], ids=["ndarray", "rows-only"])
def test_word_table_rebuilds_make_batch(corpus, wrap):
    rng = np.random.default_rng(0)
    batches = [b for _ in range(2) for b in sentence_batches(corpus.labelled_ids, 8, rng)]
    size = 64
    for inputs in (corpus.features, corpus.piece_ids):
        for labels in (corpus.labels, None):
            rows, stacked = word_positions(corpus.offsets, batches, size, labels)
            table = np.asarray(word_table(wrap(inputs), rows))
            # Each sentence's words are in the table once, however many batches hold it.
            assert len(table) == len(word_rows(corpus.offsets, corpus.labelled_ids)) + 1
            for b, ids in enumerate(batches):
                starts = sentence_starts(corpus.offsets, ids)
                expected = make_batch(inputs, labels, word_rows(corpus.offsets, ids), size, starts)
                np.testing.assert_array_equal(table[stacked.inputs[b]], expected.inputs)
                np.testing.assert_array_equal(stacked.labels[b], expected.labels)
                np.testing.assert_array_equal(stacked.mask[b], expected.mask)
                np.testing.assert_array_equal(stacked.starts[b], expected.starts)
    with pytest.raises(ValueError, match="more than the padded size"):
        word_positions(corpus.offsets, batches, 8, corpus.labels)


def test_empty_schedules(corpus, supervised):
    params, history = train_supervised(
        None, corpus.features, corpus.labels, corpus.offsets, corpus.labelled_ids,
        model=model(), epochs=0, batch_sentences=8, pad_multiple=16,
    )  # fmt: skip
    assert history == []
    same, history = train_kl_rounds(
        params, corpus.features, corpus.labels, corpus.offsets, corpus.labelled_ids,
        corpus.unlabelled_ids, model=model(), rounds=0, kind="confidence", batch_sentences=8,
        pad_multiple=16,
    )  # fmt: skip
    assert history == [] and leaves_equal(params, same)


def small_batches(corpus, size=64):
    labelled = make_batch(corpus.features, corpus.labels,
                          word_rows(corpus.offsets, corpus.labelled_ids[:8]), size)  # fmt: skip
    unlabelled = make_batch(corpus.features, None,
                            word_rows(corpus.offsets, corpus.unlabelled_ids[:8]), size)  # fmt: skip
    return labelled, unlabelled


def test_joint_step_with_zero_weight_is_a_ce_step(corpus, supervised):
    params, _ = supervised
    head, optimizer = model(), make_optimizer(1e-3)
    labelled, unlabelled = small_batches(corpus)
    state = init_state(params, optimizer)
    key = jax.random.key(0)
    prior = losses.prior_from_labels(corpus.labels, NUM_CLASSES)
    joint_state, metrics = jax.jit(
        functools.partial(
            joint_step,
            apply_fn=head.apply,
            optimizer=optimizer,
            kind="data_distribution",
            prior=prior,
            target_gradient=False,
            kl_weight=0.0,
        )  # fmt: skip
    )(state, labelled, unlabelled, dropout_key=key)
    ce_state, ce_metrics = jax.jit(functools.partial(ce_step, apply_fn=head.apply, optimizer=optimizer))(
        state, labelled, dropout_key=key
    )
    assert set(metrics) == {"ce_sum", "correct", "words", "kl_sum", "kl_batches"}
    assert float(metrics["words"]) == float(labelled.mask.sum())
    np.testing.assert_allclose(float(metrics["ce_sum"]), float(ce_metrics["ce_sum"]), rtol=1e-5)
    for a, b in zip(jax.tree_util.tree_leaves(joint_state.params),
                    jax.tree_util.tree_leaves(ce_state.params), strict=True):  # fmt: skip
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-7)


def test_kl_step_uses_its_own_optimizer_state(corpus, supervised):
    params, _ = supervised
    head, optimizer = model(), make_optimizer(1e-3)
    _, unlabelled = small_batches(corpus)
    state = init_state(params, optimizer)
    step = functools.partial(
        kl_step, apply_fn=head.apply, optimizer=optimizer, kind="confidence", prior=None,
        target_gradient=True,
    )  # fmt: skip
    new_state, metrics = jax.jit(step)(state, unlabelled, dropout_key=jax.random.key(0))
    assert set(metrics) == {"kl_sum", "kl_batches"} and float(metrics["kl_sum"]) > 0
    assert not leaves_equal(state.params, new_state.params)
    assert leaves_equal(state.ce_opt_state, new_state.ce_opt_state)
    assert not leaves_equal(state.kl_opt_state, new_state.kl_opt_state)


def test_make_steps_validates_kl_options():
    optimizer = make_optimizer(1e-3)
    with pytest.raises(ValueError, match="unknown KL kind"):
        make_steps(model(), optimizer, kind="bogus", prior=np.full(4, 0.25))
    with pytest.raises(ValueError, match="needs a prior"):
        make_steps(model(), optimizer, kind="data_distribution")
    with pytest.raises(ValueError, match="summing to 1"):
        make_steps(model(), optimizer, kind="both", prior=np.ones(4))
    assert make_steps(model(), optimizer, kind="confidence").kl is not None


def test_init_gives_flax_init_numbers(corpus):
    """init_head_params compiles at a lower optimisation level; the numbers must not change."""
    head, key = MLPHead(NUM_CLASSES, **SMALL), jax.random.key(3)
    expected = jax.jit(head.init)(key, corpus.features[:1])["params"]
    assert leaves_equal(init_head_params(head, corpus.features, key), expected)


def test_weight_decay_shrinks_kernels_not_biases(corpus):
    head = model()
    params = init_head_params(head, corpus.features, jax.random.key(0))
    optimizer = make_optimizer(1e-2, weight_decay=0.5)
    labelled, _ = small_batches(corpus)
    zero_batch = labelled._replace(mask=np.zeros_like(labelled.mask))  # no data gradient
    step = jax.jit(functools.partial(ce_step, apply_fn=head.apply, optimizer=optimizer))
    state, _ = step(init_state(params, optimizer), zero_batch, dropout_key=jax.random.key(0))
    old, new = params["classifier"], state.params["classifier"]
    assert np.abs(new["kernel"]).sum() < np.abs(old["kernel"]).sum()
    np.testing.assert_array_equal(new["bias"], old["bias"])


def test_predict_chunks_agree(corpus, supervised):
    params, _ = supervised
    head = model()
    inputs = corpus.features[:301]  # not a multiple of any chunk size
    whole_p, whole_latent = predict(params, head, inputs)
    chunked_p, chunked_latent = predict(params, head, inputs, batch_words=64)
    assert whole_p.shape == (301, NUM_CLASSES) and whole_latent.shape == (301, 32)
    assert whole_p.dtype == np.float32 and whole_latent.dtype == np.float32
    np.testing.assert_allclose(whole_p.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(chunked_p, whole_p, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(chunked_latent, whole_latent, rtol=1e-5, atol=1e-5)
    empty_p, empty_latent = predict(params, head, inputs[:0])
    assert empty_p.shape == (0, NUM_CLASSES) and empty_latent.shape == (0, 32)


def test_checkpoint_roundtrip(tmp_path, corpus, supervised):
    params, _ = supervised
    config = {
        "model": "bert_ner",
        "num_classes": NUM_CLASSES,
        "hidden": [32, 16],
        "seed": 7,
        "categories": ["O", "a", "b", "c"],
        "input": "features",
        "features": {"encoder": "test"},
        "heads": {"hidden": [32, 16], "latent_dim": 32, "dropout": 0.0},
    }
    path = tmp_path / "head.msgpack"
    checkpoint.save_head(path, params, config)
    assert not (tmp_path / "head.msgpack.tmp").exists()
    loaded, loaded_config = checkpoint.load_head(path)
    assert loaded_config == config
    assert leaves_equal(params, loaded)
    rebuilt = MLPHead(NUM_CLASSES, hidden=loaded_config["hidden"])  # a list after msgpack
    np.testing.assert_array_equal(
        predict(loaded, rebuilt, corpus.features)[0], predict(params, model(), corpus.features)[0]
    )


@pytest.mark.parametrize(
    "content",
    [
        b"",
        bytes(np.random.default_rng(0).integers(0, 256, 300, dtype=np.uint8)),
        msgpack.packb([1, 2, 3]),
        msgpack.packb({"params": {}, "config": {}}),
        msgpack.packb({"format": "other", "version": 1, "params": {}, "config": {}}),
        msgpack.packb({"format": "ssner-head", "version": 2, "params": {}, "config": {}}),
        msgpack.packb({"format": "ssner-head", "version": 1, "config": {}}),
    ],
    ids=["empty", "random", "list", "untagged", "foreign-tag", "future-version", "no-params"],
)
def test_checkpoint_refuses_foreign_files(tmp_path, content):
    path = tmp_path / "foreign.msgpack"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="not a head file written by this project") as info:
        checkpoint.load_head(path)
    assert "\n" not in str(info.value)
