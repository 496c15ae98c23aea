"""The per-word character CNN (issue 19, item 2's second alternative): ``features.chars``' ids, ``heads.chars``'
module, a head that reads them (``heads.char_cnn``), and train, evaluate and the tagger agreeing on them."""

from __future__ import annotations

import json
import sys
import unicodedata
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import yaml
from conftest import ROOT, run_cli

from features.chars import (
    ASCII_FIRST,
    BEGIN,
    CHAR_COLUMNS,
    CHAR_ROWS,
    END,
    HASHED_FIRST,
    MAX_CHARACTERS,
    PAD,
    char_ids,
    char_ids_flat,
    word_char_ids,
)
from features.inputs import head_inputs
from heads.build import build_model
from heads.chars import CharCNN
from heads.checkpoint import input_columns
from heads.output import CharInput
from heads.settings import HeadParams
from heads.train import train_supervised

# ---------------------------------------------------------------- the ids


def test_a_word_is_begin_its_characters_end_then_padding():
    assert word_char_ids("Bush") == [BEGIN, *(ASCII_FIRST + ord(c) for c in "Bush"), END] + [PAD] * 14
    assert word_char_ids("") == [BEGIN, END] + [PAD] * (CHAR_COLUMNS - 2)
    assert len(word_char_ids("x" * 50)) == CHAR_COLUMNS


def test_ids_keep_case_and_are_the_same_on_every_call_and_position():
    sentences = [["Bush", "bush", "BUSH"], ["US", "us", "Bush"]]
    ids = char_ids(sentences)
    assert ids.shape == (6, CHAR_COLUMNS) and ids.dtype == np.int32
    assert len({tuple(row) for row in ids[:3]}) == 3  # case is information: the encoder is uncased
    assert not np.array_equal(ids[3], ids[4])
    np.testing.assert_array_equal(ids[0], ids[5])  # one word, one row of ids wherever it stands
    np.testing.assert_array_equal(ids, char_ids(sentences))
    np.testing.assert_array_equal(ids, char_ids_flat([w for s in sentences for w in s]))


def test_characters_above_ascii_have_pinned_hashed_ids():
    # Pinned: BLAKE2b, not Python's per-process salted hash(); a change of the hash changes every saved head.
    assert [word_char_ids(c)[1] for c in "éÉ北"] == [PINNED["é"], PINNED["É"], PINNED["北"]]
    assert all(HASHED_FIRST <= PINNED[c] < CHAR_ROWS for c in PINNED)


PINNED = {"é": 365, "É": 503, "北": 135}


def test_unseen_and_odd_characters_still_get_ids_in_the_table():
    words = ["北京", "\ud800", "e\u0301", "ｂｕｓｈ", "ﬁne", "\x00", "😀x"]
    ids = char_ids([words])
    assert ((ids >= 0) & (ids < CHAR_ROWS)).all() and (ids[:, 0] == BEGIN).all()
    lengths = (ids != PAD).sum(1) - 2  # characters between the markers
    assert lengths.tolist() == [len(unicodedata.normalize("NFKC", w)) for w in words]
    np.testing.assert_array_equal(ids[2], word_char_ids("é"))  # NFKC composes e + accent, as the tokenizer reads it
    np.testing.assert_array_equal(ids[3], word_char_ids("bush"))  # full-width folds to ASCII, case kept


def test_an_overlong_word_keeps_its_first_and_last_characters_next_to_the_markers():
    half = MAX_CHARACTERS // 2
    assert word_char_ids("a" * MAX_CHARACTERS)[-1] == END  # the longest word kept whole fills every column
    word = "Counterrevolutionaryville"  # 25 characters
    ids = word_char_ids(word)
    kept = word[:half] + word[-half:]
    assert ids == [BEGIN, *(ASCII_FIRST + ord(c) for c in kept), END]
    assert word_char_ids(word + "s")[-2] == ASCII_FIRST + ord("s")  # the suffix survives the cut


# ---------------------------------------------------------------- the module


def test_the_cnn_gives_one_vector_per_word_zero_for_padding_and_no_gradient_from_it():
    ids = jnp.asarray(char_ids([["Bush", "said"], ["Paris"]]), jnp.int32)
    ids = jnp.concatenate([ids, jnp.zeros((2, CHAR_COLUMNS), jnp.int32)])  # two padding rows
    cnn = CharCNN(7)
    params = cnn.init(jax.random.key(0), ids)["params"]
    assert params["embedding"]["embedding"].shape == (CHAR_ROWS, 30) and params["conv"]["kernel"].shape == (3, 30, 7)
    out = cnn.apply({"params": params}, ids)
    assert out.shape == (5, 7) and (np.abs(out[:3]) > 0).any(1).all() and (out[3:] == 0).all()
    # Each word alone: its vector does not depend on the words beside it.
    np.testing.assert_allclose(cnn.apply({"params": params}, ids[2:3]), out[2:3], atol=1e-6)
    grads = jax.grad(lambda p: cnn.apply({"params": p}, ids[3:]).sum())(params)
    assert all(float(jnp.abs(g).max()) == 0 for g in jax.tree_util.tree_leaves(grads))
    grads = jax.grad(lambda p: cnn.apply({"params": p}, ids).sum())(params)
    assert float(jnp.abs(grads["embedding"]["embedding"][PAD]).max()) == 0  # no character: no row trained


def test_padding_positions_never_win_the_maximum():
    ids = jnp.asarray([word_char_ids("ab")], jnp.int32)
    cnn = CharCNN(4)
    params = cnn.init(jax.random.key(1), ids)["params"]
    # A bias far below zero: every real window is negative, a zero (padding) window would win a plain maximum.
    params["conv"]["bias"] = jnp.full((4,), -50.0)
    out = cnn.apply({"params": params}, ids)
    assert (out < -0.99).all()


def test_a_head_with_char_cnn_reads_its_columns_last_and_records_them():
    heads = HeadParams(hidden=(8,), latent_dim=4, shape_flags=True, word_forms=4, word_form_rows=16, char_cnn=5)
    sentences = [["Bushville", "said"], ["ok"]]
    inputs = head_inputs(np.ones((3, 6), np.float16), sentences, heads)
    assert inputs.shape == (3, 6 + 8 + 4 + CHAR_COLUMNS) and inputs.dtype == np.float32
    np.testing.assert_array_equal(np.asarray(inputs[:])[:, -CHAR_COLUMNS:], char_ids(sentences))
    config = {"input": "features", "heads": heads.as_config()}
    assert input_columns(config, 6) == {"features": 6, "shape_flags": 8, "word_forms": 4, "char_ids": CHAR_COLUMNS}
    for kind in ("mlp", "bilstm"):
        model = build_model(HeadParams(kind=kind, output="crf", char_cnn=5, dropout=0.2), ["O", "geo"])
        assert isinstance(model.head, CharInput) and model.head.filters == 5 and model.head.dropout_rate == 0.2


def test_default_off_adds_no_column_and_no_parameter():
    heads = HeadParams(hidden=(8,), latent_dim=4, shape_flags=True)
    assert heads.char_cnn == 0
    inputs = head_inputs(np.ones((2, 6), np.float16), [["a", "b"]], heads)
    assert inputs.shape == (2, 14) and inputs.dtype == np.float16
    assert input_columns({"input": "features", "heads": heads.as_config()}, 6) == {"features": 6, "shape_flags": 8}
    params = build_model(heads, ["O", "geo"]).init(jax.random.key(0), np.ones((2, 14), np.float32))["params"]
    assert set(params) == {"body", "classifier"}


@pytest.mark.parametrize(
    "changes, message", [({"char_cnn": -1}, r"heads.char_cnn must be >= 0"), ({"char_cnn": 1.5}, r"char_cnn")]
)
def test_bad_settings_are_refused(changes, message):
    with pytest.raises(Exception, match=message):
        HeadParams(**changes)


def test_the_baseline_embedding_head_takes_no_characters():
    with pytest.raises(ValueError, match="no word-form, cluster or character inputs"):
        build_model(HeadParams(char_cnn=4), ["O", "geo"], input_kind="piece_ids", vocab_size=10, embed_dim=4)


def test_one_adam_step_changes_every_parameter_of_the_cnn():
    inputs, labels, offsets = ville_corpus(40, seed=5)
    model = build_model(HeadParams(hidden=(8,), latent_dim=4, char_cnn=6), ["O", "geo"])
    params = model.init(jax.random.key(0), inputs[:64])["params"]

    def loss(p):
        logits, _ = model.apply({"params": p}, inputs[:64])
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels[:64]).mean()

    optimizer = optax.adam(1e-2)
    updates, _ = optimizer.update(jax.grad(loss)(params), optimizer.init(params), params)
    changed = optax.apply_updates(params, updates)
    for path, (before, after) in zip(
        jax.tree_util.tree_flatten_with_path(params)[0],
        zip(jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(changed)),
    ):
        if "embedding" in jax.tree_util.keystr(path[0]):
            continue  # a table: only the rows of the characters in the batch move
        assert not np.array_equal(before, after), jax.tree_util.keystr(path[0])


# ---------------------------------------------------------------- learnt only from the characters

SUFFIXES_O = ["ton", "burg", "villeton", "vill", "ille", "land", "Ville"]  # near misses, case included


def ville_corpus(sentences: int, seed: int, stems_seed: int | None = None):
    """Sentences of made-up capitalised words: those ending in "-ville" are geo (1), every other word is O (0).
    The "encoder features" are noise drawn per word occurrence: only the characters tell the categories apart.
    Returns (inputs (W, 8 + CHAR_COLUMNS) as ``head_inputs`` builds them with char_cnn, labels (W,), offsets)."""
    rng = np.random.default_rng(seed)
    stems = np.random.default_rng(seed if stems_seed is None else stems_seed)
    letters = np.array(list("abcdefghijklmnoprstuvwy"))
    words, labels, lengths = [], [], []
    for _ in range(sentences):
        length = int(rng.integers(3, 7))
        for _ in range(length):
            stem = "".join(stems.choice(letters, int(stems.integers(3, 8)))).capitalize()
            geo = rng.random() < 0.3
            words.append(stem + ("ville" if geo else str(rng.choice(SUFFIXES_O))))
            labels.append(int(geo))
        lengths.append(length)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    sentences_of_words = [words[a:b] for a, b in zip(offsets[:-1], offsets[1:])]
    features = rng.standard_normal((len(words), 8)).astype(np.float16)
    inputs = np.asarray(head_inputs(features, sentences_of_words, HeadParams(char_cnn=1))[:])
    return inputs, np.asarray(labels, np.int32), offsets


@pytest.mark.parametrize("char_cnn", [0, 16])
def test_a_label_only_the_characters_tell_is_learnt_with_the_char_cnn_only(char_cnn):
    from heads.batches import sentence_starts
    from heads.predict import predict_categories

    inputs, labels, offsets = ville_corpus(300, seed=0)
    test_inputs, test_labels, test_offsets = ville_corpus(100, seed=1)  # other stems: words never seen
    if not char_cnn:
        inputs, test_inputs = inputs[:, :-CHAR_COLUMNS], test_inputs[:, :-CHAR_COLUMNS]
    model = build_model(HeadParams(hidden=(16,), latent_dim=8, output="crf", char_cnn=char_cnn), ["O", "geo"])
    ids = np.arange(len(offsets) - 1)
    params, _ = train_supervised(
        None, inputs, labels, offsets, ids, model=model, epochs=30, batch_sentences=32, learning_rate=1e-2, seed=0
    )
    test_ids = np.arange(len(test_offsets) - 1)
    predicted, _, _ = predict_categories(params, model, test_inputs, sentence_starts(test_offsets, test_ids))
    geo, found = test_labels == 1, predicted == 1
    f1 = 2 * (geo & found).sum() / max(geo.sum() + found.sum(), 1)
    if char_cnn:
        assert f1 > 0.97, f1
    else:
        assert f1 < 0.6, f1  # noise features: at best a guess


# ---------------------------------------------------------------- train, evaluate and the tagger agree

CITIES = ["Porto", "Lisbon", "Paris", "Berlin", "Madrid", "Rome", "Abbeville", "Louisville"]
DAYS = ["Monday", "Friday", "Sunday", "today"]


@pytest.fixture(scope="module")
def project(tmp_path_factory, encoder):
    """A tiny project whose bert_ner is an MLP + CRF with char_cnn, made by the stages' own code: prepare,
    extract (the session's encoder), train (one seed, 4 epochs)."""
    import features.extract
    from pipeline import extract, prepare, train

    root = tmp_path_factory.mktemp("char_cnn")
    sentences = []
    for i in range(48):
        city, day = CITIES[i % len(CITIES)], DAYS[i % len(DAYS)]
        sentences.append(
            [("book", "O"), (f"trip{i}", "O"), ("to", "O"), (city, "B-city"), ("on", "O"), (day, "B-date")]
        )
    corpus = root / "corpus.conll"
    corpus.write_text("\n\n".join("\n".join(f"{w}\t{t}" for w, t in s) for s in sentences) + "\n", encoding="utf-8")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["prepare"].update(corpus=str(corpus), test_size=12, labelled_size=24, seed=0)
    params["extract"].update(
        layers=[1], pooling="first", precision="fp32", max_length=64, stride=16, chunk_sentences=16
    )
    params["extract"].update(device="cpu", threads=1)
    params["seeds"] = [0]
    params["heads"].update(hidden=[16], latent_dim=8, output="crf", char_cnn=8, dropout=0.1)
    params["bert_ner"]["epochs"] = 4
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(features.extract, "load_encoder", lambda *args, **kwargs: encoder)
        patch.setattr(features.extract, "truncate_encoder", lambda *args: None)  # the session's stays whole
        prepare.prepare(prepare.load_section(prepare.PrepareParams, "prepare", root / "params.yaml"), root / "prepared")
        argv = ["--params", root / "params.yaml", "--prepared", root / "prepared", "--out", root / "features.h5"]
        patch.setattr(sys, "argv", ["extract", *map(str, argv)])
        extract.main()
    train.train(
        "bert_ner", [0], str(root / "prepared"), str(root / "features.h5"), str(root / "bert_ner"), None,
        str(root / "params.yaml"), None,
    )  # fmt: skip
    return root


def test_train_evaluate_and_the_tagger_read_the_same_character_ids(project, encoder, capsys, monkeypatch):
    from data.prepared_io import read_prepared
    from heads.checkpoint import load_head
    from heads.tagger import Tagger
    from pipeline import evaluate

    head = project / "bert_ner" / "seed0" / "head.msgpack"
    params, config = load_head(head)
    assert config["heads"]["char_cnn"] == 8
    assert config["trained_on"]["input_columns"]["char_ids"] == CHAR_COLUMNS
    assert params["head"]["chars"]["conv"]["kernel"].shape == (3, 30, 8)
    out = project / "evaluated"
    argv = [
        "--heads", project / "bert_ner", "--prepared", project / "prepared", "--cache", project / "features.h5",
        "--metrics", out / "metrics", "--predictions", out / "predictions", "--plots", out / "plots",
    ]  # fmt: skip
    status, _, err = run_cli(evaluate.main, argv, capsys, monkeypatch)
    assert status == 0, err
    evaluated = [line.split("\t") for line in (out / "predictions" / "seed0.tsv").read_text().splitlines()]
    header, rows = evaluated[0], [row for row in evaluated[1:] if len(row) == len(evaluated[0])]
    word_at, predicted_at = header.index("word"), header.index("predicted")
    prepared = read_prepared(project / "prepared")
    test_words = [prepared.words[s] for s in prepared.split["test"]]
    assert [row[word_at] for row in rows] == [w for s in test_words for w in s]
    tagger = Tagger(str(head), params, config, encoder)
    tagged = [c for sentence in tagger.tag(test_words) for c in sentence]
    assert tagged == [row[predicted_at] for row in rows]
    # The tagger really reads the characters: another word's ids change the head's scores.
    scored = tagger.tag_scored([["to", "Abbeville"]])[0][1]
    assert scored != tagger.tag_scored([["to", "ABBEVILLE"]])[0][1]
    json.dumps(scored)  # plain floats
    assert Path(head).stat().st_size > 0
