"""heads.output: a CRF on a head (marginals and best path against enumeration, a transition rule learnt,
predict in chunks) and word-form inputs; heads.settings' refusals of what they cannot do together."""

from __future__ import annotations

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heads import losses
from heads.build import build_model
from heads.output import CRFHead, WordFormInput, decode
from heads.predict import predict_categories
from heads.settings import HeadParams
from heads.train import train_supervised

CATEGORIES = ("O", "a", "b")  # BIO labels: O, B-a, I-a, B-b, I-b


def crf_head(**changes):
    return build_model(HeadParams(hidden=(8,), latent_dim=4, output="crf", **changes), CATEGORIES)


def enumerate_sentence(emissions, scores):
    """Every label path of one sentence: (log-probability (paths,), paths (paths, n))."""
    n, size = emissions.shape
    paths = np.array(list(itertools.product(range(size), repeat=n)))
    total = scores.start[paths[:, 0]] + scores.end[paths[:, -1]] + emissions[np.arange(n), paths].sum(1)
    total += scores.transitions[paths[:, :-1], paths[:, 1:]].sum(1)
    return total - np.logaddexp.reduce(total), paths


ROWS = 16  # every example padded to one shape, so each jitted function below compiles once


@functools.cache
def enumeration_functions():
    """The CRF head and its jitted init, emissions, marginals and decoding, shared by every example."""
    model = crf_head()
    init = jax.jit(lambda key, x, starts: model.init(key, x, starts)["params"])
    emissions = jax.jit(lambda p, x, starts: model.apply({"params": p}, x, starts, True, method="emissions"))
    marginals = jax.jit(lambda p, x, starts: model.apply({"params": p}, x, starts)[0])
    best_path = jax.jit(lambda p, x, starts: decode(model, p, x, starts))
    return model, init, emissions, marginals, best_path


@settings(max_examples=15, deadline=None)
@given(lengths=st.lists(st.integers(1, 4), min_size=1, max_size=3), seed=st.integers(0, 2**16))
def test_category_marginals_and_best_path_equal_enumeration(lengths, seed):
    model, init, apply_emissions, apply_marginals, best_path = enumeration_functions()
    rng = np.random.default_rng(seed)
    words = sum(lengths)  # the rows after them are padding
    x = np.zeros((ROWS, 6), np.float32)
    x[:words] = rng.standard_normal((words, 6))
    starts = np.zeros(len(x), bool)
    starts[np.cumsum([0] + lengths[:-1])] = True
    params = init(jax.random.key(seed), x, starts)
    # Random transitions: zeros (the initial values) would make every move score alike.
    params["crf"] = jax.tree_util.tree_map(lambda p: jnp.asarray(rng.standard_normal(p.shape), p.dtype), params["crf"])
    emissions, _, scores = apply_emissions(params, x, starts)
    emissions = np.asarray(emissions, np.float64)
    scores = jax.tree_util.tree_map(lambda s: np.asarray(s, np.float64), scores)
    log_categories = apply_marginals(params, x, starts)
    predicted = np.asarray(best_path(params, x, starts))
    category_of = np.asarray(model.bio.category_of_label)
    first = 0
    for n in lengths:
        log_p, paths = enumerate_sentence(emissions[first : first + n], scores)
        expected = np.zeros((n, len(CATEGORIES)))
        for i in range(n):
            np.add.at(expected[i], category_of[paths[:, i]], np.exp(log_p))
        np.testing.assert_allclose(np.exp(log_categories[first : first + n]), expected, atol=2e-5)
        np.testing.assert_array_equal(predicted[first : first + n], category_of[paths[np.argmax(log_p)]])
        first += n
    assert (predicted[words:] == 0).all()


def toy_corpus(sentences=240, seed=0):
    """Sentences that open on a word saying "a" or "b", then words that say only "inside an entity", then "O".

    The inside words' inputs are one vector whatever the entity: their category follows from the first word
    through the labels' transitions alone (a word-by-word softmax can only guess).
    """
    rng = np.random.default_rng(seed)
    rows, labels, lengths = [], [], []
    for _ in range(sentences):
        category = int(rng.integers(1, 3))
        inside = int(rng.integers(1, 4))
        outside = int(rng.integers(1, 3))
        rows += [[category == 1, category == 2, 0, 0]] + [[0, 0, 1, 0]] * inside + [[0, 0, 0, 1]] * outside
        labels += [category] * (1 + inside) + [0] * outside
        lengths.append(1 + inside + outside)
    inputs = np.asarray(rows, np.float16) + np.float16(0.01) * rng.standard_normal((len(rows), 4)).astype(np.float16)
    return inputs, np.asarray(labels, np.int32), np.concatenate([[0], np.cumsum(lengths)])


@pytest.mark.parametrize("output", ["softmax", "crf"])
def test_a_label_transition_rule_the_emissions_cannot_see_is_learnt_by_the_crf_only(output):
    inputs, labels, offsets = toy_corpus()
    ids = np.arange(len(offsets) - 1)
    model = build_model(HeadParams(hidden=(16,), latent_dim=4, output=output), CATEGORIES)
    params, _ = train_supervised(
        None, inputs, labels, offsets, ids, model=model, epochs=40, batch_sentences=32, learning_rate=1e-2, seed=0
    )
    from heads.batches import sentence_starts

    predicted, probabilities, _ = predict_categories(params, model, inputs, sentence_starts(offsets, ids))
    inside = inputs[:, 2] > 0.5
    accuracy = float((predicted[inside] == labels[inside]).mean())
    if output == "crf":
        assert accuracy == 1.0
    else:
        assert accuracy < 0.75  # a coin toss per inside word, as the softmax head cannot tell a from b
    np.testing.assert_allclose(probabilities.sum(1), 1.0, atol=1e-5)


def test_predict_in_chunks_of_whole_sentences_decodes_as_one_call():
    inputs, _, offsets = toy_corpus(sentences=300, seed=1)
    starts = np.zeros(len(inputs), bool)
    starts[offsets[:-1]] = True
    model = crf_head()
    params = model.init(jax.random.key(0), inputs[:4], starts[:4])["params"]
    params["crf"]["transitions"] = jnp.asarray(np.random.default_rng(2).standard_normal((5, 5)), jnp.float32)
    chunked, _, _ = predict_categories(params, model, inputs, starts, batch_words=64)  # ~20 chunks
    whole = np.asarray(decode(model, params, jnp.asarray(inputs, jnp.float32), starts))
    np.testing.assert_array_equal(chunked, whole)


def test_the_unlabelled_terms_read_the_crf_marginals():
    """The entropy of a CRF head's outputs depends on its transitions: the KL phase trains through them."""
    inputs, _, offsets = toy_corpus(sentences=8)
    starts = np.zeros(len(inputs), bool)
    starts[offsets[:-1]] = True
    model = crf_head()
    params = model.init(jax.random.key(0), inputs, starts)["params"]
    mask = jnp.ones(len(inputs), bool)

    def entropy(params):
        logits, _ = model.apply({"params": params}, inputs, starts)
        return losses.kl_loss(logits, mask, kind="entropy", prior=None, target_gradient=False)

    gradient = jax.grad(entropy)(params)["crf"]["transitions"]
    assert np.isfinite(gradient).all() and np.abs(gradient).max() > 1e-4


def test_word_form_ids_are_embedded_and_padding_stays_zero():
    model = build_model(HeadParams(hidden=(8,), latent_dim=4, word_forms=6, word_form_rows=32), CATEGORIES)
    assert isinstance(model, WordFormInput)
    x = np.zeros((5, 7), np.float32)
    x[:3, :3] = 1.0
    x[:3, 3:] = [[1, 2, 3, 4], [5, 6, 7, 8], [1, 2, 3, 4]]  # words 0 and 2 have the same forms
    params = model.init(jax.random.key(0), x)["params"]
    assert params["word_forms"]["lower_embedding"]["embedding"].shape == (32, 6)
    logits, _ = model.apply({"params": params}, x)
    np.testing.assert_allclose(logits[0], logits[2])
    assert not np.allclose(logits[0], logits[1])  # the same features, other forms


def test_cluster_ids_are_embedded_per_set_and_padding_stays_zero():
    from heads.output import ClusterInput

    heads = HeadParams(hidden=(8,), latent_dim=4, clusters=(2, 3), cluster_width=5, word_forms=4, word_form_rows=8)
    model = build_model(heads, CATEGORIES)
    assert isinstance(model, ClusterInput) and isinstance(model.head, WordFormInput)
    x = np.zeros((4, 3 + 4 + 6), np.float32)
    x[:3, :3] = 1.0
    x[:3, 3:7] = 1  # one word form for all
    x[:3, 7:] = [[2, 0, 1, 3, 0, 1], [2, 1, 0, 3, 0, 1], [2, 0, 1, 3, 0, 1]]  # (prev, own, next) per set
    params = model.init(jax.random.key(0), x)["params"]
    assert params["clusters_2"]["embedding"].shape == (3, 5) and params["clusters_3"]["embedding"].shape == (4, 5)
    logits, _ = model.apply({"params": params}, x)
    np.testing.assert_allclose(logits[0], logits[2])
    assert not np.allclose(logits[0], logits[1])  # the same features and forms, other clusters


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"output": "argmax"}, r"heads.output 'argmax': use one of softmax, crf"),
        ({"output": "crf", "class_weighting": True}, r"with output crf set heads.word_loss > 0"),
        ({"word_loss": 0.5}, r"heads.word_loss 0.5: adds a per-word loss to a CRF's"),
        ({"word_forms": -1}, r"heads.word_forms must be >= 0"),
        ({"clusters": (1,)}, r"heads.clusters: each k must be >= 2"),
    ],
)
def test_settings_that_cannot_work_are_refused(changes, message):
    with pytest.raises(ValueError, match=message):
        HeadParams(**changes)


def test_the_baseline_embedding_head_takes_no_crf():
    with pytest.raises(ValueError, match="the baseline's embedding head has a softmax output"):
        build_model(HeadParams(output="crf"), CATEGORIES, input_kind="piece_ids", vocab_size=4, embed_dim=2)


def test_a_crf_head_wraps_the_head_with_one_output_per_bio_label():
    model = crf_head(kind="bilstm")
    assert isinstance(model, CRFHead) and model.num_classes == 3 and model.head.num_classes == 5
    assert model.reads_sentences


def test_auto_chooses_the_crf_where_only_transitions_tell_the_categories_apart():
    from data.prepared_io import Prepared
    from heads.auto import choose_head
    from heads.settings import AutoHeadParams, EarlyStoppingParams, ModelSettings, SupervisedParams

    inputs, labels, offsets = toy_corpus(sentences=200, seed=3)
    names = [CATEGORIES[label] for label in labels]
    words = [[f"w{row}" for row in range(a, b)] for a, b in zip(offsets[:-1], offsets[1:])]
    tags = [names[a:b] for a, b in zip(offsets[:-1], offsets[1:])]
    ids = np.arange(len(words))
    prepared = Prepared(words, tags, list(CATEGORIES), {"labelled": ids, "unlabelled": ids[:0], "test": ids[:0]}, {})
    settings = ModelSettings(
        "bert_ner_es",
        HeadParams(hidden=(16,), latent_dim=4, kind="auto", learning_rate=1e-2, batch_sentences=32),
        supervised=SupervisedParams(schedule="early_stopping"),
        early_stopping=EarlyStoppingParams(max_steps=120, eval_every=40, patience=2),
    )
    auto = AutoHeadParams({"softmax": {"kind": "mlp"}, "crf": {"kind": "mlp", "output": "crf"}}, seeds=(0,))
    chosen, choice = choose_head(settings, auto, prepared, inputs)
    assert choice["chosen"] == "crf" and chosen.heads.output == "crf" and chosen.heads.kind == "mlp"
    scores = {name: row["entity_f1"] for name, row in choice["candidates"].items()}
    assert scores["crf"] > scores["softmax"] + 0.1, scores
    assert choice["validation_sentences"] == 40 and all(row["seconds"] > 0 for row in choice["candidates"].values())


@pytest.mark.parametrize(
    "candidates, message",
    [
        ({"x": {"kind": "auto"}}, r"auto_head.candidates.x: name its kind"),
        ({"x": {"kind": "mlp", "colour": 1}}, r"auto_head.candidates.x: unknown head setting\(s\) \['colour'\]"),
        ({}, r"give at least one candidate"),
    ],
)
def test_auto_candidates_that_cannot_be_trained_are_refused(candidates, message):
    from heads.settings import AutoHeadParams

    with pytest.raises(ValueError, match=message):
        AutoHeadParams(candidates)


def test_a_crf_heads_word_loss_adds_the_weighted_per_word_cross_entropy_of_its_emissions():
    from heads.batches import sentence_starts
    from heads.output import supervised_loss

    inputs, labels, offsets = toy_corpus(sentences=6)
    model = crf_head()
    starts = sentence_starts(offsets, np.arange(len(offsets) - 1))
    params = model.init(jax.random.key(0), inputs, starts)["params"]
    batch = type("Batch", (), {})()
    batch.inputs, batch.starts, batch.labels = jnp.asarray(inputs, jnp.float32), jnp.asarray(starts), labels
    batch.mask = jnp.asarray(np.arange(len(inputs)) < len(inputs) - 3)  # the last words are padding
    key = jax.random.key(1)
    sequence, scores = supervised_loss(model.apply, params, batch, key, None)
    weights = np.array([0.2, 3.0, 1.5])
    combined, same_scores = supervised_loss(model.apply, params, batch, key, weights)
    np.testing.assert_allclose(same_scores, scores)
    log_q = jax.nn.log_softmax(np.asarray(scores), axis=-1)
    mask = np.asarray(batch.mask)
    log_q = np.asarray(log_q)
    word = float(-(weights[labels] * log_q[np.arange(len(labels)), labels] * mask).sum() / mask.sum())
    assert float(combined) == pytest.approx(float(sequence) + word, rel=1e-5)
