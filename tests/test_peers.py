"""bench/peers.py: the CRF's features, the word shape, the BIO <-> span conversion, the scoring and both peers end to
end on a tiny prepared corpus."""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench import peers
from data.prepared_io import read_prepared, write_prepared

CATEGORIES = ["O", "geo", "per", "tim"]
NAMES = ["Alice", "Bob", "Chen", "Dmitri", "Emma", "Farid", "Grace", "Hiro"]
CITIES = ["Paris", "Lagos", "Lima", "Oslo", "Kyoto"]
DAYS = ["Monday", "Friday", "Sunday"]


def test_word_features_of_a_known_sentence():
    words = ["The", "U.S.", "sent", "2000", "troops"]
    assert peers.word_features(words, 1) == {
        "lower": "u.s.",
        "prefix3": "u.s",
        "suffix2": "s.",
        "suffix3": ".s.",
        "title": True,
        "upper": True,
        "digit": False,
        "shape": "X.X.",
        "first": False,
        "-1:lower": "the",
        "-1:title": True,
        "-1:upper": False,
        "-1:shape": "Xx",
        "+1:lower": "sent",
        "+1:title": False,
        "+1:upper": False,
        "+1:shape": "x",
        "+2:lower": "2000",
        "+2:title": False,
        "+2:upper": False,
        "+2:shape": "d",
    }
    first = peers.word_features(words, 0)
    assert first["first"] is True and first["shape"] == "Xx" and first["title"] is True
    assert "-1:lower" not in first and "-2:lower" not in first and first["+2:lower"] == "sent"
    last = peers.word_features(words, 4)
    assert last["-2:lower"] == "sent" and last["-1:shape"] == "d" and "+1:lower" not in last
    assert peers.word_features(words, 3)["digit"] is True and last["digit"] is False
    assert [f["lower"] for f in peers.sentence_features(words)] == ["the", "u.s.", "sent", "2000", "troops"]


@pytest.mark.parametrize(
    ("word", "shape"),
    [("Hello", "Xx"), ("2006", "d"), ("U.S.", "X.X."), ("McDonald's", "XxXx'x"), ("3:30pm", "d:dx"), ("IBM", "X")],
)
def test_word_shape_examples(word, shape):
    assert peers.word_shape(word) == shape


@given(st.text(max_size=12))
def test_word_shape_has_no_runs_and_ignores_repeats(word):
    shape = peers.word_shape(word)
    assert all(a != b for a, b in zip(shape, shape[1:]))
    assert peers.word_shape("".join(character * 2 for character in word)) == shape
    assert set(shape) <= {"X", "x", "d"} | {c for c in word if not (c.isalpha() or c.isdigit())}


@given(st.text(alphabet="aZq7Q0-.", max_size=12))
def test_word_shape_depends_only_on_character_classes(word):
    """Swapping a letter for another of its case, or a digit for a digit, keeps the shape."""
    assert peers.word_shape(word.translate(str.maketrans("aZ7", "qQ0"))) == peers.word_shape(word)


def test_bio_spans_of_known_tags():
    tags = ["B-geo", "I-geo", "O", "B-per", "B-per", "I-org", "I-org", "O", "I-tim"]
    spans = [(0, 2, "geo"), (3, 4, "per"), (4, 5, "per"), (5, 7, "org"), (8, 9, "tim")]
    assert peers.bio_spans(tags) == spans
    assert peers.spans_to_bio(spans, len(tags)) == [
        "B-geo", "I-geo", "O", "B-per", "B-per", "B-org", "I-org", "O", "B-tim",
    ]  # fmt: skip
    assert peers.spans_to_bio([], 3) == ["O", "O", "O"]


@st.composite
def spans_and_length(draw):
    """Non-overlapping (start, end, category) spans in a sentence of some length."""
    length = draw(st.integers(0, 12))
    cuts = sorted(draw(st.sets(st.integers(0, length), max_size=8)))
    spans = []
    for start, end in zip(cuts[::2], cuts[1::2]):
        spans.append((start, end, draw(st.sampled_from(CATEGORIES[1:]))))
    return spans, length


@given(spans_and_length())
def test_spans_round_trip_through_bio(case):
    spans, length = case
    tags = peers.spans_to_bio(spans, length)
    assert len(tags) == length
    assert peers.bio_spans(tags) == spans


def test_docbin_holds_the_words_and_entities(tmp_path):
    from spacy import blank
    from spacy.tokens import DocBin

    words = [["In", "New", "York", "City", "today"], ["Bob", "Chen", "met", "Emma"], ["no", "entity"]]
    tags = [["O", "B-geo", "I-geo", "I-geo", "B-tim"], ["B-per", "I-per", "O", "B-per"], ["O", "O"]]
    peers.write_docbin(tmp_path / "docs.spacy", words, tags)
    docs = list(DocBin().from_disk(tmp_path / "docs.spacy").get_docs(blank("en").vocab))
    assert [[token.text for token in doc] for doc in docs] == words
    assert [peers.spans_to_bio([(e.start, e.end, e.label_) for e in doc.ents], len(doc)) for doc in docs] == tags


def test_score_reads_bio_predictions_as_evaluate_reads_categories():
    true = [["B-per", "I-per", "O", "B-geo"], ["B-tim", "O"]]
    perfect = peers.score(true, true, CATEGORIES)
    assert perfect["accuracy"] == 1.0 and perfect["entity"]["f1"] == 1.0 and perfect["entity_bio"]["f1"] == 1.0
    # Two adjacent per entities predicted: the categories join them into one, as evaluate chunks a head's output.
    predicted = [["B-per", "B-per", "O", "O"], ["B-tim", "O"]]
    metrics = peers.score(true, predicted, CATEGORIES)
    assert metrics["accuracy"] == 5 / 6 and metrics["accuracy_no_o"] == 3 / 4
    assert metrics["entity"]["num_pred_entities"] == 2 and metrics["entity"]["f1"] == pytest.approx(2 * 2 / (3 + 2))
    assert metrics["entity_bio"]["f1"] == pytest.approx(2 * 1 / (3 + 3))
    assert metrics["per_category"]["geo"]["recall"] == 0.0 and metrics["per_category"]["per"]["f1"] == 1.0


def tiny_sentence(rng) -> tuple[list[str], list[str]]:
    name, city, day = rng.choice(NAMES), rng.choice(CITIES), rng.choice(DAYS)
    if rng.random() < 0.5:
        return [name, "visited", city, "on", day, "."], ["B-per", "O", "B-geo", "O", "B-tim", "O"]
    if rng.random() < 0.5:  # a word spaCy's tokenizer would split: the peers must keep the corpus's words
        return [name, "can't", "visit", city, "."], ["B-per", "O", "O", "B-geo", "O"]
    return ["On", day, ",", name, "left", city, "."], ["O", "B-tim", "O", "B-per", "O", "B-geo", "O"]


@pytest.fixture
def tiny_prepared(tmp_path):
    """40 short sentences: 30 labelled, 10 test."""
    rng = np.random.default_rng(0)
    words, tags = zip(*(tiny_sentence(rng) for _ in range(40)))
    split = {"labelled": np.arange(30), "unlabelled": np.arange(0), "test": np.arange(30, 40)}
    write_prepared(tmp_path / "prepared", list(words), list(tags), CATEGORIES, split, {"tag_scheme": "bio"})
    return tmp_path / "prepared"


def test_train_crf_uses_the_issues_settings():
    words, tags = [["Bob", "visited", "Lima"], ["Emma", "left"]], [["B-per", "O", "B-geo"], ["B-per", "O"]]
    crf = peers.train_crf(words, tags, iterations=3)
    assert (crf.algorithm, crf.c1, crf.c2, crf.max_iterations) == ("lbfgs", 0.1, 0.1, 3)
    assert crf.all_possible_transitions is True
    assert crf.predict([peers.sentence_features(["Bob", "left"])])[0][1] == "O"


def test_crf_peer_learns_a_tiny_corpus(tiny_prepared):
    result = peers.run_peers(read_prepared(tiny_prepared), ["crf"], seed=0, crf_iterations=30)
    assert result["labelled_sentences"] == 30 and result["test_sentences"] == 10
    crf = result["peers"]["crf"]
    assert crf["train_sentences"] == 30 and crf["max_iterations"] == 30
    assert crf["entity_f1"] == crf["metrics"]["entity"]["f1"] >= 0.9
    assert crf["metrics"]["num_words"] == sum(len(s) for s in read_prepared(tiny_prepared).words[30:])


def test_both_peers_end_to_end(tiny_prepared, tmp_path, monkeypatch):
    """The command line: both peers on the tiny corpus, limits applied, one JSON. spaCy at 4 steps learns little:
    this checks the plumbing (DocBins, config, train, Docs from the words, BIO back), not its score."""
    out = tmp_path / "peers.json"
    argv = ["peers", "--prepared", str(tiny_prepared), "--out", str(out), "--labelled-limit", "25"]
    argv += ["--test-limit", "8", "--crf-iterations", "20", "--spacy-max-steps", "4", "--seed", "3"]
    monkeypatch.setattr(sys, "argv", argv)
    start = time.perf_counter()
    peers.main()
    assert time.perf_counter() - start < 60
    figures = json.loads(out.read_text())
    assert figures["labelled_sentences"] == 25 and figures["test_sentences"] == 8 and figures["seed"] == 3
    assert figures["categories"] == CATEGORIES and figures["versions"]["spacy"].startswith("3.8.")
    assert set(figures["peers"]) == {"crf", "spacy"}
    spacy_run = figures["peers"]["spacy"]
    assert (spacy_run["train_sentences"], spacy_run["dev_sentences"]) == (20, 5)
    trained_with = spacy_run["trained_with"]
    assert trained_with["system.seed"] == 3 and trained_with["training.max_steps"] == 4
    assert trained_with["training.patience"] == 1600  # spaCy's own default: nothing else overridden
    for run in figures["peers"].values():
        assert run["metrics"]["num_words"] == sum(len(s) for s in read_prepared(tiny_prepared).words[30:38])
        assert 0 <= run["entity_f1"] <= 1 and run["train_seconds"] >= 0
    assert figures["peers"]["crf"]["entity_f1"] >= 0.9


def test_unknown_peer_is_refused(tiny_prepared):
    with pytest.raises(ValueError, match="unknown peers"):
        peers.run_peers(read_prepared(tiny_prepared), ["hmm"], seed=0)
