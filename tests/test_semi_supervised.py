"""Early stopping, the KL phase's own step size and matched control, and self-training, on a tiny problem."""

import jax
import numpy as np
import pytest
from test_train import Corpus, leaves_equal, model

from heads.early_stopping import EarlyStopping, train_converged, train_steps, validation_split
from heads.self_training import SelfTraining, confident_pseudo_labels, train_self_training
from heads.train import KLPhase, table_rows, train_kl_phase

TINY = dict(batch_sentences=8, pad_multiple=16)


@pytest.fixture(scope="module")
def corpus():
    return Corpus()


@pytest.fixture(scope="module")
def teacher(corpus):
    params, _ = train_steps(
        None,
        corpus.features,
        corpus.labels,
        corpus.offsets,
        corpus.labelled_ids,
        model=model(),
        max_steps=40,
        learning_rate=3e-3,
        seed=7,
        **TINY,
    )
    return params


def test_segments_continue_one_run(corpus):
    """Steps run in segments (early stopping) give exactly the parameters of one uncut run."""
    run = dict(model=model(), learning_rate=3e-3, seed=2, **TINY)
    whole, info = train_steps(
        None, corpus.features, corpus.labels, corpus.offsets, corpus.labelled_ids, max_steps=30, **run
    )
    scores = iter(range(100))  # always improving: never stops early
    cut, cut_info = train_steps(
        None,
        corpus.features,
        corpus.labels,
        corpus.offsets,
        corpus.labelled_ids,
        max_steps=30,
        eval_every=10,
        patience=2,
        validate=lambda _: next(scores),
        **run,
    )
    assert info["steps"] == 30 and cut_info["best_step"] == 30 and len(cut_info["history"]) == 3
    assert leaves_equal(whole, cut)


def test_a_fixed_run_is_cut_into_segments_only_when_eval_every_divides_it(corpus):
    """A refit (no validation) runs in ``eval_every`` segments, the compiled segment its stopped run used,
    with exactly the parameters of one uncut run; a length it does not divide runs whole."""
    run = dict(model=model(), learning_rate=3e-3, seed=2, **TINY)
    arrays = (corpus.features, corpus.labels, corpus.offsets, corpus.labelled_ids)
    whole, info = train_steps(None, *arrays, max_steps=30, **run)
    cut, cut_info = train_steps(None, *arrays, max_steps=30, eval_every=10, **run)
    assert len(info["history"]) == 1 and [h["step"] for h in cut_info["history"]] == [10, 20, 30]
    assert cut_info["best_step"] == 30 and leaves_equal(whole, cut)
    _, odd = train_steps(None, *arrays, max_steps=25, eval_every=10, **run)
    assert [h["step"] for h in odd["history"]] == [25]


@pytest.mark.parametrize(
    ("rows", "padded"),
    [(1, 4096), (4096, 4096), (4097, 8192), (56_000, 65_536), (131_072, 131_072), (131_073, 135_168)],
)
def test_word_tables_are_padded_to_powers_of_two_then_to_buckets(rows, padded):
    assert table_rows(rows) == padded


def test_early_stopping_keeps_the_best_and_stops_after_patience(corpus):
    scores = iter([0.5, 0.9, 0.8, 0.7, 0.95])
    params, info = train_steps(
        None,
        corpus.features,
        corpus.labels,
        corpus.offsets,
        corpus.labelled_ids,
        model=model(),
        max_steps=50,
        eval_every=10,
        patience=2,
        validate=lambda _: next(scores),
        seed=0,
        **TINY,
    )
    assert info["best_step"] == 20 and info["steps"] == 40  # two segments without a new best
    again, _ = train_steps(
        None,
        corpus.features,
        corpus.labels,
        corpus.offsets,
        corpus.labelled_ids,
        model=model(),
        max_steps=20,
        seed=0,
        **TINY,
    )
    assert leaves_equal(params, again)  # the returned head is the one of step 20


def test_validation_split_is_seeded_disjoint_and_complete():
    ids = np.arange(100, 150)
    train, held_out = validation_split(ids, 0.2, seed=0)
    assert len(held_out) == 10 and not set(train) & set(held_out) and set(train) | set(held_out) == set(ids)
    assert np.array_equal(held_out, validation_split(ids[::-1], 0.2, seed=0)[1])
    assert len(validation_split(np.arange(2), 0.2)[1]) == 1
    with pytest.raises(ValueError, match=">= 2 labelled"):
        validation_split(np.arange(1), 0.2)


def test_converged_head_learns_and_refits_for_the_chosen_steps(corpus):
    tags = ["O", "B-a", "B-b", "B-c"]

    def true_tags_of(ids):
        return [tags[label] for s in ids for label in corpus.labels[corpus.offsets[s] : corpus.offsets[s + 1]]]

    stopping = EarlyStopping(max_steps=200, eval_every=10, patience=3)
    params, info = train_converged(
        corpus.features,
        corpus.labels,
        corpus.offsets,
        corpus.labelled_ids,
        true_tags_of,
        ["O", "a", "b", "c"],
        stopping,
        model=model(),
        learning_rate=3e-3,
        seed=1,
        **TINY,
    )
    assert 10 <= info["best_step"] <= info["steps"] < 200 and info["refit_steps"] == info["best_step"]
    assert max(h["score"] for h in info["history"]) > 0.9
    from heads.predict import predict

    accuracy = (predict(params, model(), corpus.features)[0].argmax(1) == corpus.labels).mean()
    assert accuracy > 0.95


def kl(corpus, teacher, features=None, **fields):
    phase = KLPhase(**{"kind": "confidence", "rounds": 6, **fields})
    return train_kl_phase(
        teacher,
        corpus.features if features is None else features,
        corpus.labels,
        corpus.offsets,
        corpus.labelled_ids,
        corpus.unlabelled_ids,
        phase,
        model=model(),
        seed=3,
        **TINY,
    )


def test_matched_control_is_the_kl_model_without_its_kl_steps(corpus, teacher):
    """A KL step of step size 0 changes nothing: the KL model is then its control, step for step."""
    control, history = kl(corpus, teacher, control=True)
    frozen_kl, _ = kl(corpus, teacher, kl_learning_rate=0.0)
    assert leaves_equal(control, frozen_kl) and len(history) == 6
    # The control never reads the unlabelled words...
    noisy = corpus.features.copy()
    rows = np.concatenate([np.arange(corpus.offsets[s], corpus.offsets[s + 1]) for s in corpus.unlabelled_ids])
    noisy[rows] = 0
    assert leaves_equal(control, kl(corpus, teacher, features=noisy, control=True)[0])
    # ...and a KL step that moves (its own step size) makes a different head.
    assert not leaves_equal(control, kl(corpus, teacher, kl_learning_rate=1e-3)[0])


def test_kl_step_size_is_its_own(corpus, teacher):
    small, _ = kl(corpus, teacher, kl_learning_rate=1e-6)
    large, _ = kl(corpus, teacher, kl_learning_rate=1e-2)
    control, _ = kl(corpus, teacher, control=True)
    distance = lambda a, b: sum(
        float(np.abs(np.asarray(x) - np.asarray(y)).sum())  # noqa: E731
        for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b))
    )
    assert distance(small, control) < 0.01 * distance(large, control)


@pytest.mark.parametrize("schedule", ["alternating", "joint"])
def test_entropy_phase_runs_and_lowers_entropy(corpus, teacher, schedule):
    params, history = kl(corpus, teacher, kind="entropy", schedule=schedule, kl_learning_rate=1e-2, kl_weight=1.0)
    assert all(np.isfinite(h["kl"]) for h in history) and not leaves_equal(params, teacher)


def test_confident_pseudo_labels_against_numpy():
    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet(np.full(3, 0.5), 200).astype(np.float32)
    labels, keep = confident_pseudo_labels(probabilities, 0.8)
    assert np.array_equal(labels, probabilities.argmax(1)) and np.array_equal(keep, probabilities.max(1) >= 0.8)
    labels, keep = confident_pseudo_labels(probabilities, 0.75, per_category=True)
    for category in range(3):
        chosen = labels == category
        share = keep[chosen].mean()
        assert 0.2 <= share <= 0.3  # the top quarter of each category's words


def test_self_training_uses_pseudo_labels_and_its_control_does_not(corpus, teacher):
    recipe = SelfTraining(rounds=2, steps=5, threshold=0.5, unlabelled_sentences=30)
    run = dict(model=model(), seed=4, **TINY)
    args = (corpus.labels, corpus.offsets, corpus.labelled_ids, corpus.unlabelled_ids)
    student, history = train_self_training(teacher, corpus.features, *args, recipe, **run)
    assert len(history) == 2 and all(0.5 < h["pseudo_share"] <= 1 for h in history)
    assert all(np.isfinite(h["pseudo_ce"]) for h in history)
    control_recipe = SelfTraining(rounds=2, steps=5, threshold=0.5, unlabelled_sentences=30, control=True)
    control, control_history = train_self_training(teacher, corpus.features, *args, control_recipe, **run)
    assert not leaves_equal(student, control) and all(h["pseudo_share"] == 0 for h in control_history)
    # The control equals 10 CE steps on the same labelled batches, whatever the unlabelled words hold.
    noisy = corpus.features.copy()
    rows = np.concatenate([np.arange(corpus.offsets[s], corpus.offsets[s + 1]) for s in corpus.unlabelled_ids])
    noisy[rows] = 0
    assert leaves_equal(control, train_self_training(teacher, noisy, *args, control_recipe, **run)[0])
    # Labels of unlabelled words are never read.
    hidden = corpus.labels.copy()
    hidden[rows] = -1
    assert leaves_equal(student, train_self_training(teacher, corpus.features, hidden, *args[1:], recipe, **run)[0])
