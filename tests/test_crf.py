"""heads.crf against brute-force enumeration of every label path (float64 NumPy/SciPy), on short random
sentences laid end to end with padding; the BIO label set and mask; a path across the BiLSTM's window edges;
finite gradients; and a transition rule the emissions cannot see, learnt with Adam."""

import itertools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import logsumexp

from heads import crf
from heads.context import sentence_grid
from heads.metrics import categories_to_bio

WORDS = 24  # every random batch is padded to this size: one compile per label count
EXAMPLES = settings(max_examples=60, deadline=None)

log_partition = jax.jit(crf.log_partition)
path_score = jax.jit(crf.path_score)
marginals = jax.jit(crf.marginals)
viterbi = jax.jit(crf.viterbi)
negative_log_likelihood = jax.jit(crf.negative_log_likelihood)
nll_gradient = jax.jit(jax.value_and_grad(crf.negative_log_likelihood, argnums=(0, 4)))
log_z_gradient = jax.jit(jax.grad(crf.log_partition))


# ---------------------------------------------------------------- random batches and the reference


@st.composite
def batches(draw):
    """A dict: emissions (WORDS, L), starts, mask, labels, the raw and allowed scores, and the sentences' rows.

    1-4 pieces of 1-4 words, each after 0 or 1 padding words, then padding to WORDS; a piece whose start flag
    is off continues the sentence before it (up to 6 words), across any padding between them. L in 2..5, the
    BIO mask when L is odd, else a random mask that always allows label 0. Padding carries huge emissions and
    random start flags, so reading it anywhere shows.
    """
    num_labels = draw(st.integers(2, 5))
    lengths = draw(st.lists(st.integers(1, 4), min_size=1, max_size=4))
    gaps = draw(st.lists(st.integers(0, 1), min_size=len(lengths), max_size=len(lengths)))
    opens = draw(st.lists(st.booleans(), min_size=len(lengths), max_size=len(lengths)))
    first_flagged = draw(st.booleans())  # the first sentence opens even when its start flag is off
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    starts = rng.random(WORDS) < 0.5
    mask = np.zeros(WORDS, bool)
    sentences, position = [], 0
    for length, gap, opening in zip(lengths, gaps, opens):
        position += gap
        rows = np.arange(position, position + length)
        mask[rows], starts[rows] = True, False
        if sentences and not opening and len(sentences[-1]) + length <= 6:
            sentences[-1] = np.concatenate([sentences[-1], rows])  # one sentence: its chain passes over the gap
        else:
            starts[position] = first_flagged or bool(sentences)
            sentences.append(rows)
        position += length
    if num_labels % 2:
        allowed, allowed_start = crf.bio_allowed(num_labels)
    else:
        allowed, allowed_start = rng.random((num_labels, num_labels)) < 0.6, rng.random(num_labels) < 0.6
        allowed[:, 0], allowed_start[0] = True, True
    emissions = np.where(mask[:, None], 2.0, 1e3) * rng.normal(size=(WORDS, num_labels))
    raw = [rng.normal(size=shape) for shape in ((num_labels, num_labels), (num_labels,), (num_labels,))]
    return dict(
        emissions=emissions.astype(np.float32),
        starts=starts,
        mask=mask,
        labels=rng.integers(0, num_labels, WORDS).astype(np.int32),
        raw=[r.astype(np.float32) for r in raw],
        allowed=allowed,
        allowed_start=allowed_start,
        sentences=sentences,
    )


def scores_of(batch):
    return crf.constrain(*batch["raw"], batch["allowed"], batch["allowed_start"])


def reference_score(batch, rows, paths):
    """float64 scores (K,) of label paths (K, n) of the sentence on ``rows``; forbidden moves -inf."""
    transitions, start, end = (np.float64(r) for r in batch["raw"])
    transitions = np.where(batch["allowed"], transitions, -np.inf)
    start = np.where(batch["allowed_start"], start, -np.inf)
    emitted = np.float64(batch["emissions"][rows])[np.arange(len(rows)), paths].sum(axis=1)
    return start[paths[:, 0]] + emitted + transitions[paths[:, :-1], paths[:, 1:]].sum(axis=1) + end[paths[:, -1]]


def enumerate_paths(batch, rows):
    """Every label path (K, n) of the sentence on ``rows`` and its float64 score (K,)."""
    num_labels = batch["emissions"].shape[1]
    paths = np.array(list(itertools.product(range(num_labels), repeat=len(rows))))
    return paths, reference_score(batch, rows, paths)


def call(function, batch, *extra):
    return function(batch["emissions"], *extra, batch["starts"], batch["mask"], scores_of(batch))


# ---------------------------------------------------------------- against enumeration


@EXAMPLES
@given(batches())
def test_log_partition_is_the_sum_over_sentences_of_log_z(batch):
    expected = sum(logsumexp(enumerate_paths(batch, rows)[1]) for rows in batch["sentences"])
    assert float(call(log_partition, batch)) == pytest.approx(expected, rel=1e-5, abs=1e-3)


@EXAMPLES
@given(batches())
def test_path_score_and_nll_of_an_allowed_path(batch):
    labels = batch["labels"].copy()  # padding keeps its random labels
    rng = np.random.default_rng(int(labels.sum()))
    expected = log_z = 0.0
    for rows in batch["sentences"]:  # a random allowed path per sentence
        paths, scores = enumerate_paths(batch, rows)
        choice = rng.choice(np.flatnonzero(np.isfinite(scores)))
        labels[rows], expected, log_z = paths[choice], expected + scores[choice], log_z + logsumexp(scores)
    assert float(call(path_score, batch, labels)) == pytest.approx(expected, rel=1e-5, abs=1e-3)
    nll = call(negative_log_likelihood, batch, labels)
    assert float(nll) == pytest.approx((log_z - expected) / batch["mask"].sum(), rel=1e-4, abs=1e-4)
    closed = np.flatnonzero(~batch["allowed_start"])
    if closed.size:  # a gold path that opens on a forbidden label: scored about NEG, never -inf
        labels[batch["sentences"][0][0]] = closed[0]
        forbidden_score = float(call(path_score, batch, labels))
        assert np.isfinite(forbidden_score) and forbidden_score < crf.NEG / 2


@EXAMPLES
@given(batches())
def test_per_word_terms_sum_to_each_sentence_s_log_z_and_path_score(batch):
    """The terms the acquisition scores read (heads.acquisition): per sentence, not summed over the batch."""
    labels = np.asarray(call(viterbi, batch))
    log_z = np.asarray(call(jax.jit(crf.log_partition_terms), batch))
    path = np.asarray(call(jax.jit(crf.path_score_terms), batch, labels))
    assert np.all(log_z[~batch["mask"]] == 0) and np.all(path[~batch["mask"]] == 0)
    for rows in batch["sentences"]:
        scores = enumerate_paths(batch, rows)[1]
        assert log_z[rows[-1]] == pytest.approx(logsumexp(scores), rel=1e-5, abs=1e-3)
        assert np.all(log_z[rows[:-1]] == 0)
        assert path[rows].sum() == pytest.approx(reference_score(batch, rows, labels[rows][None])[0], abs=1e-3)


@EXAMPLES
@given(batches())
def test_viterbi_finds_the_best_path_of_each_sentence(batch):
    best = np.asarray(call(viterbi, batch))
    assert best.dtype == np.int32
    assert np.all(best[~batch["mask"]] == 0)
    for rows in batch["sentences"]:
        paths, scores = enumerate_paths(batch, rows)
        found = reference_score(batch, rows, best[rows][None])[0]
        assert found == pytest.approx(scores.max(), abs=1e-3)  # ties: any best path will do
        runner_up = np.sort(scores)[-2] if len(scores) > 1 else -np.inf
        if scores.max() - runner_up > 1e-2:
            assert best[rows].tolist() == paths[np.argmax(scores)].tolist()


@EXAMPLES
@given(batches())
def test_marginals_are_the_path_probabilities_per_word(batch):
    found = np.asarray(call(marginals, batch))
    expected = np.zeros_like(found, dtype=np.float64)
    for rows in batch["sentences"]:
        paths, scores = enumerate_paths(batch, rows)
        probabilities = np.exp(scores - logsumexp(scores))  # (K,)
        for position, row in enumerate(rows):
            np.add.at(expected[row], paths[:, position], probabilities)
    np.testing.assert_allclose(found, expected, atol=1e-4)


@settings(max_examples=20, deadline=None)
@given(batches())
def test_the_gradient_of_log_z_is_the_marginals(batch):
    np.testing.assert_allclose(np.asarray(call(log_z_gradient, batch)), np.asarray(call(marginals, batch)), atol=1e-4)


# ---------------------------------------------------------------- gradients at the extremes


@pytest.mark.parametrize("scale", [1.0, 1e4])
def test_nll_and_its_gradient_stay_finite(scale):
    rng = np.random.default_rng(0)
    scores = crf.CRF(5).apply(
        {"params": {"transitions": rng.normal(size=(5, 5)), "start": np.zeros(5), "end": np.zeros(5)}}
    )
    emissions = (scale * rng.normal(size=(WORDS, 5))).astype(np.float32)
    starts, mask = np.arange(WORDS) % 5 == 0, np.arange(WORDS) < 18
    for labels in (np.zeros(WORDS, np.int32), np.full(WORDS, 2, np.int32)):  # all O; all I-x (forbidden starts)
        loss, (emission_gradient, score_gradient) = nll_gradient(emissions, labels, starts, mask, scores)
        leaves = [loss, emission_gradient, *jax.tree_util.tree_leaves(score_gradient)]
        assert all(np.all(np.isfinite(np.asarray(leaf))) for leaf in leaves)
        assert np.all(np.asarray(emission_gradient)[~mask] == 0)
    loss, (emission_gradient, score_gradient) = nll_gradient(emissions, labels, starts, np.zeros(WORDS, bool), scores)
    assert float(loss) == 0.0 and not np.any(np.asarray(emission_gradient))
    assert not any(np.any(np.asarray(leaf)) for leaf in jax.tree_util.tree_leaves(score_gradient))


# ---------------------------------------------------------------- labels and the BIO mask


def test_bio_labels_and_their_categories():
    bio = crf.bio_labels(["geo", "O", "per"])
    assert bio.names == ("O", "B-geo", "I-geo", "B-per", "I-per")
    assert bio.category_of_label == (1, 0, 0, 2, 2)
    assert bio.begin_label == (1, 0, 3) and bio.inside_label == (2, 0, 4)
    assert bio.ids(["B-per", "I-per", "O"]).tolist() == [3, 4, 0]
    assert np.asarray(crf.labels_to_categories(np.arange(5), bio)).tolist() == [1, 0, 0, 2, 2]
    with pytest.raises(ValueError, match="O"):
        crf.bio_labels(["geo", "per"])


@EXAMPLES
@given(st.lists(st.lists(st.sampled_from(["O", "geo", "per"]), min_size=1, max_size=5), min_size=1, max_size=4))
def test_categories_to_labels_chunks_as_the_metrics_do(sentences):
    categories = ["per", "O", "geo"]
    bio = crf.bio_labels(categories)
    words = [categories.index(c) for sentence in sentences for c in sentence]
    starts = np.zeros(WORDS, bool)
    starts[np.cumsum([len(s) for s in sentences]) - [len(s) for s in sentences]] = True
    ids = np.zeros(WORDS, np.int32)
    ids[: len(words)] = words
    mask = np.arange(WORDS) < len(words)
    labels = np.asarray(jax.jit(crf.categories_to_labels, static_argnums=3)(ids, starts, mask, bio))
    expected = [tag for sentence in sentences for tag in categories_to_bio(sentence)]
    assert [bio.names[label] for label in labels[mask]] == expected
    assert np.all(labels[~mask] == 0)
    assert np.asarray(crf.labels_to_categories(labels, bio))[mask].tolist() == words


def test_bio_allowed_forbids_exactly_the_moves_bio_forbids():
    names = crf.bio_labels(["O", "geo", "per"]).names
    allowed, allowed_start = crf.bio_allowed(len(names))
    for (i, source), (j, target) in itertools.product(enumerate(names), repeat=2):
        forbidden = target.startswith("I-") and (source == "O" or source[2:] != target[2:])
        assert allowed[i, j] == (not forbidden), (source, target)
    assert allowed_start.tolist() == [not name.startswith("I-") for name in names]
    scores = crf.CRF(len(names)).apply({"params": crf.CRF(len(names)).init(jax.random.key(0))["params"]})
    assert np.all((np.asarray(scores.transitions) == crf.NEG) == ~allowed)
    assert np.all((np.asarray(scores.start) == crf.NEG) == ~allowed_start)
    with pytest.raises(ValueError):
        crf.bio_allowed(4)


# ---------------------------------------------------------------- one path across window edges


def test_a_long_sentence_is_one_path_across_the_bilstm_windows():
    row_words, length = 16, 40
    bio = crf.bio_labels(["O", "per"])  # O, B-per, I-per
    emissions = np.zeros((64, 3), np.float32)
    emissions[:length] = [-5.0, 0.0, 0.0]  # every word is per; B- or I- is for the transitions to say
    emissions[0] = [-5.0, 5.0, -5.0]
    starts, mask = np.arange(64) == 0, np.arange(64) < length
    row, column = sentence_grid(jnp.asarray(starts), jnp.asarray(mask), row_words, 8)
    edges = np.flatnonzero((np.asarray(column) == 0) & mask & ~starts)
    assert edges.tolist() == [16, 32]  # the BiLSTM starts a new window (grid row) there
    transitions = np.zeros((3, 3), np.float32)
    transitions[1:, 2] = 1.0  # per continues per
    scores = crf.constrain(transitions, np.zeros(3), np.zeros(3), *crf.bio_allowed(3))
    labels = np.asarray(viterbi(emissions, starts, mask, scores))
    assert [bio.names[label] for label in labels[:length]] == ["B-per"] + ["I-per"] * (length - 1)
    # Had the windows been decoded on their own, each would open with B-per: the path would break.
    windowed = np.asarray(viterbi(emissions, starts | (np.isin(np.arange(64), edges)), mask, scores))
    assert windowed[edges].tolist() == [1, 1]


# ---------------------------------------------------------------- learning a rule the emissions cannot see


class ToyTagger(nn.Module):
    """One-hot words -> emissions (a linear layer) and a CRF's scores, every move allowed."""

    num_labels: int = 3

    @nn.compact
    def __call__(self, words):
        emissions = nn.Dense(self.num_labels)(jax.nn.one_hot(words, 2))  # (P, L)
        return emissions, crf.CRF(self.num_labels, bio=False)()


def toy_corpus(rng, sentences, size):
    """Words (A = 0, X = 1) and labels by the rule: A is 0; X at a sentence start or after 0 is 1, after 1 it is
    2, after 2 it is 1. An X's emission cannot tell 1 from 2: only the previous label can."""
    words, labels, starts = [], [], []
    for _ in range(sentences):
        previous = 0
        for position in range(rng.integers(2, 9)):
            word = int(rng.random() < 0.6)
            label = 0 if word == 0 else (2 if previous == 1 else 1)
            words.append(word), labels.append(label), starts.append(position == 0)
            previous = label
    pad = size - len(words)
    mask = np.arange(size) < len(words)
    return np.pad(words, (0, pad)), np.pad(labels, (0, pad)).astype(np.int32), np.pad(starts, (0, pad)), mask


def test_a_transition_rule_the_emissions_cannot_see_is_learnt():
    rng = np.random.default_rng(0)
    words, labels, starts, mask = toy_corpus(rng, 64, 512)
    on_x = mask & (words == 1)
    assert 0.25 < np.mean(labels[on_x] == 1) < 0.75  # per-word emissions alone get a quarter of the X words wrong
    model = ToyTagger()
    params = model.init(jax.random.key(0), words)
    optimizer = optax.adam(0.1)

    def loss(params):
        emissions, scores = model.apply(params, words)
        return crf.negative_log_likelihood(emissions, labels, starts, mask, scores)

    @jax.jit
    def step(params, state):
        value, gradient = jax.value_and_grad(loss)(params)
        updates, state = optimizer.update(gradient, state)
        return optax.apply_updates(params, updates), state, value

    state = optimizer.init(params)
    for _ in range(300):
        params, state, value = step(params, state)
    assert float(value) < 0.05
    words, labels, starts, mask = toy_corpus(np.random.default_rng(1), 64, 512)
    emissions, scores = model.apply(params, words)
    decoded = np.asarray(viterbi(emissions, starts, mask, scores))
    assert np.array_equal(decoded[mask], labels[mask])
