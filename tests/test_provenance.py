"""Every artefact says what it was made from, and every reader checks it (issue 20, items 2 and 5).

One tiny project, built once by the real stages called in-process (prepare, extract, train): a corpus, its
cache, a text file and its cache, a head. Each case then hands a stage a file that disagrees with the others
and asserts the exit status, the one-line message naming both files and the field, and that nothing was
written or altered. The encoder is the session's (loaded once, never truncated).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import ROOT, run_cli

from cache.store import CacheError, CacheWriter
from data.prepared_io import read_prepared, split_sha256, words_sha256
from heads.checkpoint import load_head, save_head

CITIES = ["Porto", "Lisbon", "Paris", "Berlin", "Madrid", "Rome"]
DAYS = ["Monday", "Friday", "Sunday", "today"]


def corpus_sentences(count=48):
    """(word, tag) sentences of two categories, city and date, all different."""
    sentences = []
    for i in range(count):
        city, day = CITIES[i % len(CITIES)], DAYS[i % len(DAYS)]
        sentences.append(
            [("book", "O"), (f"trip{i}", "O"), ("to", "O"), (city, "B-city"), ("on", "O"), (day, "B-date")]
        )
    return sentences


def write_conll(path: Path, sentences) -> str:
    path.write_text("\n\n".join("\n".join(f"{w}\t{t}" for w, t in s) for s in sentences) + "\n", encoding="utf-8")
    return str(path)


def one_error(err: str) -> str:
    """The single ``error:`` line of a refusal (no traceback)."""
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, err
    return errors[0]


def tree_digest(*paths) -> dict:
    """Every file under ``paths`` with its sha256: what 'nothing was altered' compares."""
    found = {}
    for root in map(Path, paths):
        for path in sorted([root] if root.is_file() else root.rglob("*")):
            if path.is_file():
                found[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


@pytest.fixture(scope="module")
def project(tmp_path_factory, encoder):
    """The tiny project: params.yaml, data/prepared (split seed 0), cache/features.h5, extra text and its
    cache, models/bert_ner/seed0 (2 epochs), all by the stages' own code."""
    import features.extract
    from pipeline import extract, extract_text, prepare, train

    root = tmp_path_factory.mktemp("provenance")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["prepare"].update(
        corpus=write_conll(root / "corpus.conll", corpus_sentences()), test_size=12, labelled_size=24, seed=0
    )
    params["extract"].update(
        layers=[1], pooling="first", precision="fp32", max_length=64, stride=16, chunk_sentences=16
    )
    params["extract"].update(device="cpu", threads=1)
    text = root / "text.txt"
    text.write_text("book a trip to Porto\nsee you in Rome on Friday\n", encoding="utf-8")
    params["unlabelled_text"].update(path=str(text), mode="add")
    params["seeds"] = [0]
    params["heads"].update(hidden=[16], latent_dim=8)
    params["bert_ner"]["epochs"] = 2
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(features.extract, "load_encoder", lambda *args, **kwargs: encoder)
        patch.setattr(features.extract, "truncate_encoder", lambda *args: None)  # the session's stays whole
        prepare.prepare(prepare.load_section(prepare.PrepareParams, "prepare", root / "params.yaml"), root / "prepared")
        argv = ["--params", root / "params.yaml", "--prepared", root / "prepared", "--out", root / "features.h5"]
        patch.setattr(sys, "argv", ["extract", *map(str, argv)])
        extract.main()
        extract_text.extract_text(
            extract_text.load_section(extract_text.UnlabelledTextParams, "unlabelled_text", root / "params.yaml"),
            extract_text.load_section(extract_text.ExtractParams, "extract", root / "params.yaml"),
            str(root / "text.h5"),
            None,
        )
    train.train(
        "bert_ner", [0], str(root / "prepared"), str(root / "features.h5"), str(root / "bert_ner"), None,
        str(root / "params.yaml"), str(root / "text.h5"),
    )  # fmt: skip
    return root


def reprepare(project: Path, name: str, sentences=None, **changes) -> Path:
    """The project's corpus prepared again into ``name`` by the prepare stage, with ``changes`` to its params."""
    from pipeline import prepare

    params = yaml.safe_load((project / "params.yaml").read_text())
    if sentences is not None:
        changes["corpus"] = write_conll(project / f"{name}.conll", sentences)
    params["prepare"].update(changes)
    (project / f"{name}.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    prepare.prepare(prepare.load_section(prepare.PrepareParams, "prepare", project / f"{name}.yaml"), project / name)
    return project / name


def evaluate_argv(project: Path, out: Path, prepared="prepared", cache="features.h5", heads="bert_ner"):
    return [
        "--heads", project / heads, "--prepared", project / prepared, "--cache", project / cache,
        "--metrics", out / "metrics", "--predictions", out / "predictions", "--plots", out / "plots",
    ]  # fmt: skip


# ---------------------------------------------------------------- what each artefact records


def test_each_artefact_records_what_it_was_made_from(project):
    from cache.store import open_cache

    prepared = read_prepared(project / "prepared")
    meta = json.loads((project / "prepared" / "meta.json").read_text())
    assert meta["words_sha256"] == words_sha256(prepared.words)
    assert meta["split_sha256"] == split_sha256(prepared.split)
    assert meta["categories"] == ["O", "city", "date"]
    with open_cache(project / "features.h5") as cache:
        assert cache.fingerprint["corpus_sha256"] == meta["words_sha256"]
    with open_cache(project / "text.h5") as cache:
        text_words = [["book", "a", "trip", "to", "Porto"], ["see", "you", "in", "Rome", "on", "Friday"]]
        assert cache.fingerprint["corpus_sha256"] == words_sha256(text_words)
    _, config = load_head(project / "bert_ner" / "seed0" / "head.msgpack")
    record = config["trained_on"]
    assert record["words_sha256"] == meta["words_sha256"] and record["split_sha256"] == meta["split_sha256"]
    assert record["categories"] == config["categories"] == meta["categories"]
    assert record["input_columns"] == {"features": 384} and config["features"]["corpus_sha256"] == meta["words_sha256"]


def test_evaluate_accepts_the_head_with_the_corpus_and_cache_it_was_trained_on(project, tmp_path, capsys, monkeypatch):
    from pipeline import evaluate

    status, _, err = run_cli(evaluate.main, evaluate_argv(project, tmp_path), capsys, monkeypatch)
    assert status == 0, err
    assert json.loads((tmp_path / "metrics" / "seed0.json").read_text())["seed"] == 0


# ---------------------------------------------------------------- evaluate


def test_evaluate_refuses_a_prepared_corpus_the_cache_does_not_encode(project, tmp_path, capsys, monkeypatch):
    """The same corpus reordered (was: exit 0, entity F1 near 0): the cache holds other sentences' rows."""
    from pipeline import evaluate

    reordered = reprepare(project, "reordered", corpus_sentences()[::-1])
    before = tree_digest(project / "features.h5", reordered, project / "bert_ner")
    status, out, err = run_cli(evaluate.main, evaluate_argv(project, tmp_path, "reordered"), capsys, monkeypatch)
    line = one_error(err)
    assert status == 1 and out == ""
    assert line.startswith(f"error: {project / 'features.h5'} and {reordered / 'meta.json'} disagree on ")
    assert "the words' hash (corpus_sha256)" in line and "rerun extract" in line
    assert not (tmp_path / "metrics").exists() and not (tmp_path / "predictions").exists()
    assert tree_digest(project / "features.h5", reordered, project / "bert_ner") == before


def test_evaluate_refuses_a_head_trained_on_another_corpus(project, tmp_path, capsys, monkeypatch, encoder):
    """The reordered corpus with a cache of its own: the cache fits the corpus, the head fits neither."""
    import features.extract
    from pipeline import extract

    reordered = reprepare(project, "reordered_cached", corpus_sentences()[::-1])
    monkeypatch.setattr(features.extract, "load_encoder", lambda *args, **kwargs: encoder)
    monkeypatch.setattr(features.extract, "truncate_encoder", lambda *args: None)
    argv = ["--params", project / "params.yaml", "--prepared", reordered, "--out", tmp_path / "reordered.h5"]
    assert run_cli(extract.main, argv, capsys, monkeypatch)[0] == 0
    from pipeline import evaluate

    argv = evaluate_argv(project, tmp_path, "reordered_cached", tmp_path / "reordered.h5")
    status, out, err = run_cli(evaluate.main, argv, capsys, monkeypatch)
    line = one_error(err)
    head = project / "bert_ner" / "seed0" / "head.msgpack"
    assert status == 1 and out == "" and not (tmp_path / "metrics").exists()
    assert line.startswith(f"error: {head} and {reordered / 'meta.json'} disagree on words_sha256: ")


def test_evaluate_refuses_a_split_the_head_was_not_trained_on(project, tmp_path, capsys, monkeypatch):
    """Re-prepared with another split seed: the same words and cache, but some test sentences were training ones."""
    from pipeline import evaluate

    other = reprepare(project, "seed1", seed=1)
    original = read_prepared(project / "prepared")
    leaked = np.intersect1d(read_prepared(other).split["test"], original.split["labelled"])
    assert leaked.size  # what the refusal prevents: scoring the head on sentences it was trained on
    status, out, err = run_cli(evaluate.main, evaluate_argv(project, tmp_path, "seed1"), capsys, monkeypatch)
    line = one_error(err)
    head = project / "bert_ner" / "seed0" / "head.msgpack"
    assert status == 1 and out == "" and not (tmp_path / "metrics").exists()
    assert line.startswith(f"error: {head} and {other / 'meta.json'} disagree on split_sha256 ")
    assert "test sentences may be ones the head was trained on" in line


def copy_head(project: Path, name: str, edit, seed: int = 0) -> Path:
    """The project's head saved again as ``name``/seed<seed> with its config edited by ``edit``."""
    params, config = load_head(project / "bert_ner" / "seed0" / "head.msgpack")
    edit(config)
    path = project / name / f"seed{seed}" / "head.msgpack"
    path.parent.mkdir(parents=True, exist_ok=True)
    save_head(path, params, config)
    return path


def test_evaluate_refuses_a_head_made_before_heads_recorded_their_data(project, tmp_path, capsys, monkeypatch):
    from pipeline import evaluate

    head = copy_head(project, "older", lambda config: config.pop("trained_on"))
    status, out, err = run_cli(evaluate.main, evaluate_argv(project, tmp_path, heads="older"), capsys, monkeypatch)
    line = one_error(err)
    assert status == 1 and not (tmp_path / "metrics").exists()
    assert line.startswith(f"error: {head}: made by an older version of train") and "rerun dvc repro" in line


def test_evaluate_refuses_a_cache_of_other_settings_than_the_head_was_trained_on(
    project, tmp_path, capsys, monkeypatch
):
    """A cache of the same words made with another layer: the head's inputs would mean something else."""
    from pipeline import evaluate

    head = copy_head(project, "layer2", lambda config: config["features"].update(layers=[2]))
    status, out, err = run_cli(evaluate.main, evaluate_argv(project, tmp_path, heads="layer2"), capsys, monkeypatch)
    line = one_error(err)
    assert status == 1 and not (tmp_path / "metrics").exists()
    assert line.startswith(
        f"error: {head} and {project / 'features.h5'} disagree on the cache's layers: [2] against [1]"
    )


def test_evaluate_checks_every_seed_before_writing_any(project, tmp_path, capsys, monkeypatch):
    """seed0 fits, seed1 was trained on other categories: nothing of seed0 is written either."""
    from pipeline import evaluate

    copy_head(project, "two_seeds", lambda config: None)
    seed1 = copy_head(project, "two_seeds", lambda config: config.update(seed=1, categories=["O", "date", "city"]), 1)
    status, _, err = run_cli(evaluate.main, evaluate_argv(project, tmp_path, heads="two_seeds"), capsys, monkeypatch)
    line = one_error(err)
    assert status == 1 and not (tmp_path / "metrics").exists() and not (tmp_path / "plots").exists()
    assert line.startswith(
        f"error: {seed1} and {project / 'prepared' / 'meta.json'} disagree on categories: "
        "['O', 'date', 'city'] against ['O', 'city', 'date']"
    )


# ---------------------------------------------------------------- train and train --init


def train_argv(
    project: Path, model: str, out: Path, prepared="prepared", init=None, text_cache="text.h5", params="params.yaml"
):
    argv = ["--model", model, "--params", project / params, "--prepared", project / prepared]
    argv += ["--cache", project / "features.h5", "--text-cache", project / text_cache, "--out", out]
    return argv + ([] if init is None else ["--init", project / init])


def test_train_refuses_a_cache_that_does_not_encode_the_prepared_corpus(project, tmp_path, capsys, monkeypatch):
    from pipeline import train

    reordered = reprepare(project, "reordered_train", corpus_sentences()[::-1])
    argv = train_argv(project, "bert_ner", tmp_path / "out", prepared="reordered_train")
    status, out, err = run_cli(train.main, argv, capsys, monkeypatch)
    line = one_error(err)
    assert status == 1 and not (tmp_path / "out").exists()
    assert line.startswith(f"error: {project / 'features.h5'} and {reordered / 'meta.json'} disagree on ")
    assert "corpus_sha256" in line


@pytest.mark.parametrize(
    "name, tags, shown",
    [
        ("renamed", {"B-city": "B-town", "B-date": "B-day"}, "['O', 'city', 'date'] against ['O', 'day', 'town']"),
        ("more", {"Sunday": "B-time"}, "['O', 'city', 'date'] against ['O', 'city', 'date', 'time']"),
        ("fewer", {"B-date": "O"}, "['O', 'city', 'date'] against ['O', 'city']"),
    ],
)
def test_train_init_refuses_a_head_trained_on_other_categories(
    project, tmp_path, capsys, monkeypatch, name, tags, shown
):
    """Other names, same count (was: trained from permuted labels); another count (was: a traceback)."""
    from pipeline import train

    sentences = [[(w, tags.get(w, tags.get(t, t))) for w, t in s] for s in corpus_sentences()]
    relabelled = reprepare(project, f"relabelled_{name}", sentences)
    before = tree_digest(project / "bert_ner")
    argv = train_argv(project, "bert_conf_kl", tmp_path / "out", prepared=f"relabelled_{name}", init="bert_ner")
    status, out, err = run_cli(train.main, argv, capsys, monkeypatch)
    line = one_error(err)
    head = project / "bert_ner" / "seed0" / "head.msgpack"
    assert status == 1 and not (tmp_path / "out").exists()
    assert line.startswith(f"error: {head} and {relabelled / 'meta.json'} disagree on categories: {shown}")
    assert tree_digest(project / "bert_ner") == before


def test_train_init_refuses_a_head_trained_on_another_split(project, tmp_path, capsys, monkeypatch):
    from pipeline import train

    other = reprepare(project, "seed1_train", seed=1)
    argv = train_argv(project, "bert_conf_kl", tmp_path / "out", prepared="seed1_train", init="bert_ner")
    status, _, err = run_cli(train.main, argv, capsys, monkeypatch)
    line = one_error(err)
    assert status == 1 and not (tmp_path / "out").exists()
    assert line.startswith(
        f"error: {project / 'bert_ner' / 'seed0' / 'head.msgpack'} and {other / 'meta.json'} disagree on split_sha256"
    )


def test_check_init_accepts_the_head_of_the_same_data(project):
    from cache.store import open_cache
    from pipeline.models import check_init

    with open_cache(project / "features.h5") as cache:
        fingerprint = cache.fingerprint
    prepared = read_prepared(project / "prepared")
    check_init(
        str(project / "bert_ner"), [0], str(project / "prepared"), prepared, str(project / "features.h5"), fingerprint
    )


def test_train_refuses_a_text_cache_of_another_text(project, tmp_path, capsys, monkeypatch):
    """unlabelled_text.path edited after extract_text ran: the text cache holds the old text's features."""
    from pipeline import train

    params = yaml.safe_load((project / "params.yaml").read_text())
    edited = tmp_path / "edited.txt"
    edited.write_text("book a trip to Paris\n", encoding="utf-8")
    params["unlabelled_text"]["path"] = str(edited)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    argv = train_argv(project, "bert_conf_kl", tmp_path / "out", init="bert_ner")
    argv[argv.index(project / "params.yaml")] = tmp_path / "params.yaml"
    status, _, err = run_cli(train.main, argv, capsys, monkeypatch)
    line = one_error(err)
    assert status == 1 and not (tmp_path / "out").exists()
    assert line.startswith(
        f"error: {project / 'text.h5'} and {edited} (unlabelled_text.path) disagree on the words' hash (corpus_sha256)"
    )
    assert "rerun the extract_text stage" in line


def test_train_refuses_the_placeholder_text_cache_when_text_is_asked_for(project, tmp_path, capsys, monkeypatch):
    from pipeline import extract_text, train

    params = extract_text.load_section(extract_text.ExtractParams, "extract", project / "params.yaml")
    extract_text.extract_text(extract_text.UnlabelledTextParams(mode="none"), params, str(tmp_path / "none.h5"), None)
    argv = train_argv(project, "bert_conf_kl", tmp_path / "out", init="bert_ner", text_cache=tmp_path / "none.h5")
    status, _, err = run_cli(train.main, argv, capsys, monkeypatch)
    line = one_error(err)
    assert status == 1 and not (tmp_path / "out").exists()
    assert line.startswith(f"error: {tmp_path / 'none.h5'} and ") and "none recorded against" in line


# ---------------------------------------------------------------- the prepared corpus itself


@pytest.mark.parametrize(
    "damage, field, name", [("sentences", "words_sha256", "sentences.jsonl"), ("split", "split_sha256", "split.json")]
)
def test_a_prepared_corpus_whose_files_disagree_with_its_meta_is_refused(project, tmp_path, damage, field, name):
    import shutil

    copy = tmp_path / "prepared"
    shutil.copytree(project / "prepared", copy)
    if damage == "sentences":  # two sentences swapped by hand: the same words, in another order
        lines = (copy / "sentences.jsonl").read_text().splitlines()
        lines[0], lines[1] = lines[1], lines[0]
        (copy / "sentences.jsonl").write_text("\n".join(lines) + "\n")
    else:  # a test sentence moved to the labelled split
        split = json.loads((copy / "split.json").read_text())
        split["labelled"] = sorted(split["labelled"] + [split["test"].pop()])
        (copy / "split.json").write_text(json.dumps(split))
    with pytest.raises(ValueError) as error:
        read_prepared(copy)
    assert str(error.value).startswith(f"{copy / 'meta.json'} and {copy / name} disagree on {field}: ")
    assert "\n" not in str(error.value) and str(error.value).endswith("rerun prepare")


def test_a_prepared_corpus_of_an_older_prepare_gets_its_split_hash_from_its_files(project, tmp_path):
    import shutil

    copy = tmp_path / "prepared"
    shutil.copytree(project / "prepared", copy)
    meta = json.loads((copy / "meta.json").read_text())
    expected = meta.pop("split_sha256")
    (copy / "meta.json").write_text(json.dumps(meta))
    assert read_prepared(copy).meta["split_sha256"] == expected


# ---------------------------------------------------------------- outputs all or nothing


def test_predict_refuses_a_bad_line_before_writing_anything(project, tmp_path, capsys, monkeypatch):
    """A bad byte at line 1,201 of 1,500 (was: 1,024 sentences tagged on stdout, then exit 1)."""
    from pipeline import predict

    lines = [f"book a trip to Porto {i}".encode() for i in range(1500)]
    lines[1200] = b"caf\xe9 in Lisbon"
    (tmp_path / "in.txt").write_bytes(b"\n".join(lines) + b"\n")
    (tmp_path / "out.txt").write_text("the previous output\n")
    head = project / "bert_ner" / "seed0" / "head.msgpack"
    for extra in ([], ["--out", tmp_path / "out.txt"]):
        argv = ["--head", head, "--file", tmp_path / "in.txt", "--batch-sentences", 4, *extra]
        status, out, err = run_cli(predict.main, argv, capsys, monkeypatch)
        line = one_error(err)
        assert status == 1 and out == ""
        assert line.startswith(f"error: {tmp_path / 'in.txt'}:1201: ")
    assert (tmp_path / "out.txt").read_text() == "the previous output\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt", "out.txt"]


def test_predict_refuses_an_undecodable_argument(project, capsys, monkeypatch):
    from pipeline import predict

    head = project / "bert_ner" / "seed0" / "head.msgpack"
    argv = ["--head", head, "book a trip", "caf" + b"\xe9".decode("utf-8", "surrogateescape")]
    status, out, err = run_cli(predict.main, argv, capsys, monkeypatch)
    assert status == 1 and out == ""
    assert one_error(err) == "error: argument 2: byte 0xe9 at character 4 is not UTF-8"


def test_predict_out_is_written_whole_or_not_at_all(tmp_path):
    from pipeline.predict import output

    (tmp_path / "out.txt").write_text("old\n")
    with pytest.raises(KeyboardInterrupt), output(str(tmp_path / "out.txt")) as out:
        out.write("half of the new output\n")
        raise KeyboardInterrupt
    assert (tmp_path / "out.txt").read_text() == "old\n" and sorted(tmp_path.iterdir()) == [tmp_path / "out.txt"]
    with output(str(tmp_path / "out.txt")) as out:
        out.write("new\n")
    assert (tmp_path / "out.txt").read_text() == "new\n" and sorted(tmp_path.iterdir()) == [tmp_path / "out.txt"]


def test_a_second_writer_of_one_cache_refuses_before_touching_the_first_ones_partial_file(tmp_path):
    offsets = np.array([0, 3, 5, 9, 10])
    path = tmp_path / "features.h5"
    first = CacheWriter(path, {"corpus_sha256": "a"}, offsets, 4, 2)
    first.write_chunk(0, np.ones((5, 4)), np.arange(5))
    first.file.flush()
    partial = tmp_path / "features.h5.partial"
    before = partial.read_bytes()
    for fingerprint in ({"corpus_sha256": "a"}, {"corpus_sha256": "b"}):  # resuming or starting over
        with pytest.raises(CacheError) as error:
            CacheWriter(path, fingerprint, offsets, 4, 2)
        assert str(error.value).startswith(f"{partial}: another extraction is writing this cache")
        assert "\n" not in str(error.value)
        assert partial.read_bytes() == before
    first.write_chunk(1, np.full((5, 4), 2.0), np.arange(5))  # the first run goes on and finishes
    first.finish()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["features.h5"]  # its lock is gone
    CacheWriter(path, {"corpus_sha256": "a"}, offsets, 4, 2).close()  # a later writer is free to start
