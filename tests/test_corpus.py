"""Corpus readers: formats, every word surviving as written, and one-line errors."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
from conftest import write_kaggle_csv
from hypothesis import given, settings
from hypothesis import strategies as st

from data.corpus import CorpusError, read_conll, read_corpus, read_kaggle_csv
from data.split import random_split
from data.tags import category_vocabulary, validate_tags

TAGS = ["O", "B-geo", "I-geo", "B-per", "I-per"]
# Words as a corpus may hold them: no empty strings, no line breaks, Latin-1 only.
WORDS = st.text(
    alphabet=st.characters(min_codepoint=32, max_codepoint=255, exclude_characters="\x7f"), min_size=1, max_size=8
).filter(lambda w: w.strip() == w and w != "")
SENTENCES = st.lists(st.lists(st.tuples(WORDS, st.sampled_from(TAGS)), min_size=1, max_size=6), min_size=1, max_size=5)


@settings(max_examples=40, deadline=None)
@given(SENTENCES)
def test_kaggle_csv_roundtrip_keeps_every_word(tmp_path_factory, sentences):
    path = write_kaggle_csv(tmp_path_factory.mktemp("csv") / "c.csv", sentences)
    corpus = read_kaggle_csv(path)
    assert corpus.words == [[w for w, _ in s] for s in sentences]
    assert corpus.tags == [[t for _, t in s] for s in sentences]


@settings(max_examples=40, deadline=None)
@given(SENTENCES, st.sampled_from(["\t", " "]))
def test_conll_roundtrip(tmp_path_factory, sentences, separator):
    sentences = [[(w.replace(" ", "_").replace("\t", "_"), t) for w, t in s] for s in sentences]
    text = "\n\n".join("\n".join(f"{w}{separator}NN{separator}{t}" for w, t in s) for s in sentences)
    path = tmp_path_factory.mktemp("conll") / "c.conll"
    path.write_text(text + "\n", encoding="utf-8")
    corpus = read_conll(path)
    assert corpus.words == [[w for w, _ in s] for s in sentences]
    assert corpus.tags == [[t for _, t in s] for s in sentences]


def test_missing_value_words_and_latin1_survive(tmp_path):
    sentence = [
        ("NaN", "O"),
        ("null", "O"),
        ("NA", "O"),
        ("None", "O"),
        ("Citroën", "B-org"),
        ("°C", "O"),
        ("\x85", "O"),
        (",", "O"),
        ('"', "O"),
    ]
    path = write_kaggle_csv(tmp_path / "c.csv", [sentence])
    zipped = tmp_path / "c.zip"
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.write(path, "ner_dataset.csv")
    for source in (path, zipped):
        assert read_corpus(source).words == [[w for w, _ in sentence]]


@pytest.mark.parametrize(
    "content, message",
    [
        ("", "empty file"),
        ("Sentence #,Word,POS\nSentence: 1,a,DT\n", "missing column(s) Tag"),
        ("Sentence #,Word,POS,Tag\n,a,DT,O\n", ":2: first row has no 'Sentence #'"),
        ("Sentence #,Word,POS,Tag\nSentence: 1,,DT,O\n", ":2: empty word"),
        ("Sentence #,Word,POS,Tag\nSentence: 1,a,DT,O\n,b,NN,\n", ":3: word 'b' has no tag"),
        ("Sentence #,Word,POS,Tag\nSentence: 1,a,DT,O,extra\n", ":2: expected 4 fields"),
    ],
)
def test_kaggle_errors_name_file_line_and_problem(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content, encoding="latin-1")
    with pytest.raises(CorpusError) as error:
        read_kaggle_csv(path)
    text = str(error.value)
    assert str(path) in text and message in text and "\n" not in text


def test_unreadable_zip_and_missing_file(tmp_path):
    bad = tmp_path / "broken.zip"
    bad.write_bytes(b"PK\x03\x04 definitely not a zip")
    with pytest.raises(CorpusError, match="broken.zip: unreadable zip"):
        read_corpus(bad)
    with pytest.raises(CorpusError, match="file not found"):
        read_corpus(tmp_path / "absent.csv")


@pytest.mark.parametrize(
    "content, message",
    [
        ("a\tO\nb\n", ":2: missing tag"),
        ("a\tO\nb B-per\n", ":2: mixed tab and space separators"),
        ("a O\nb\tB-per\n", ":2: mixed tab and space separators"),
        ("\n\n", "empty file"),
    ],
)
def test_conll_errors(tmp_path, content, message):
    path = tmp_path / "bad.conll"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(CorpusError, match=message):
        read_conll(path)


def test_conll_wrong_encoding_names_the_line(tmp_path):
    path = tmp_path / "latin.conll"
    path.write_bytes("a\tO\n\nCitroën\tB-org\n".encode("latin-1"))
    with pytest.raises(CorpusError, match=r"latin.conll:3: not valid utf-8"):
        read_conll(path)
    assert read_conll(path, encoding="latin-1").words == [["a"], ["Citroën"]]


def test_tag_scheme_is_enforced(tmp_path):
    path = write_kaggle_csv(tmp_path / "c.csv", [[("a", "O"), ("b", "geo")]])
    corpus = read_kaggle_csv(path)
    assert validate_tags(corpus, "auto") == "plain"
    with pytest.raises(CorpusError, match=r"c.csv:3: tag 'geo' is not BIO"):
        validate_tags(corpus, "bio")
    with pytest.raises(CorpusError, match="category 'geo' is not among the declared"):
        validate_tags(corpus, "plain", ["O", "per"])


def test_category_vocabulary_puts_outside_first():
    assert category_vocabulary([["B-tim", "O", "I-geo"], ["B-art"]]) == ["O", "art", "geo", "tim"]
    assert category_vocabulary([["x", "y"]]) == ["x", "y"]


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 300), st.floats(0, 0.5), st.floats(0, 0.5), st.integers(0, 10))
def test_split_is_a_deterministic_partition(num, test_fraction, labelled_fraction, seed):
    split = random_split(num, test_fraction, labelled_fraction, seed)
    joined = sorted(i for part in split.values() for i in part.tolist())
    assert joined == list(range(num))
    again = random_split(num, test_fraction, labelled_fraction, seed)
    assert all((split[k] == again[k]).all() for k in split)


@settings(max_examples=30, deadline=None)
@given(st.integers(5, 200), st.integers(0, 5), st.floats(0, 20))
def test_ranked_pool_is_a_nested_permutation(num, seed, strength):
    from data.split import ranked_pool

    outside = np.random.default_rng(seed).random(num)
    order = ranked_pool(np.arange(num), seed, outside, strength)
    assert sorted(order.tolist()) == list(range(num))
    assert (ranked_pool(np.arange(num), seed, outside, strength) == order).all()


def test_biased_pool_prefers_sentences_with_fewer_o_words():
    from data.split import ranked_pool

    outside = np.linspace(0.5, 1.0, 2000)
    random_first = ranked_pool(np.arange(2000), 0)[:200]
    biased_first = ranked_pool(np.arange(2000), 0, outside, strength=10)[:200]
    assert outside[biased_first].mean() < outside[random_first].mean() - 0.1
