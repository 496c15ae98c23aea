"""Own data end to end: the made-up chatbot corpus (bespoke BIO tag set) plus raw unlabelled text,
through `dvc repro` (conftest's repro_project), then tagging new text; and the bad inputs of that path."""

from __future__ import annotations

import csv
import json
import sys

import pytest
import yaml
from conftest import ROOT, project_environment, run_command

CATEGORIES = ["O", "city", "date", "product", "time"]

run = run_command
environment = project_environment


def test_repro_on_a_bespoke_tag_set_and_extra_text(repro_project):
    root, env, _, _ = repro_project
    meta = json.loads((root / "data/prepared/meta.json").read_text())
    assert meta["categories"] == CATEGORIES and meta["tag_scheme"] == "bio"
    assert meta["split_sizes"] == {"test": 32, "labelled": 64, "unlabelled": 32}
    text_stats = json.loads((root / "metrics/extract_text.json").read_text())
    assert text_stats["sentences"] == text_stats["lines"] == 160 and text_stats["mode"] == "add"
    from heads.checkpoint import load_head

    _, config = load_head(root / "models/bert_conf_kl/seed0/head.msgpack")
    assert config["unlabelled_text"]["sentences"] == 160 and config["categories"] == CATEGORIES
    # A model that starts from bert_ner_es trains with its flags, on the extra text's words too.
    _, config = load_head(root / "models/ner_entropy/seed0/head.msgpack")
    assert config["unlabelled_text"]["sentences"] == 160 and config["heads"]["neighbour_flags"]
    from cache.store import open_cache

    with open_cache(root / "cache/features.h5") as cache:
        # The vectors, 8 flags of each of three words, 4 word-form ids, 3 cluster ids (conftest's head settings).
        inputs = cache.features.shape[1] + 24 + 4 + 3
    assert config["input_dim"] == inputs
    metrics = json.loads((root / "metrics/heads/bert_ner/seed0.json").read_text())
    assert list(metrics["per_category"]) == CATEGORIES
    assert set(metrics["entity"]["per_type"]) <= set(CATEGORIES[1:])
    report = (root / "reports/results.md").read_text()
    assert all(f"| {category} |" in report for category in CATEGORIES)


def test_predict_tags_new_text_as_evaluate_tagged_the_cache(repro_project):
    """A new sentence, then the test sentences as raw text: predict must give evaluate's words and (up to
    bf16 batching noise) its categories, which it computed from the cache. The head reads the vectors, the
    shape flags and the neighbours' flags."""
    root, env, _, _ = repro_project
    with open(root / "predictions/bert_ner_es/seed0.tsv", encoding="utf-8") as handle:
        table = list(csv.DictReader(handle, delimiter="\t"))
    sentences: dict[int, list[dict]] = {}
    for row in table:
        sentences.setdefault(int(row["sentence"]), []).append(row)
    lines = ["Ship the Luma lamp to Porto on Friday."] + [" ".join(r["word"] for r in s) for s in sentences.values()]
    (root / "new.txt").write_text("\n".join(lines) + "\n")
    head = "models/bert_ner_es/seed0/head.msgpack"
    result = run([sys.executable, "-m", "pipeline.predict", "--head", head, "--file", "new.txt", "--json"], root, env)
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert records[0]["words"] == ["Ship", "the", "Luma", "lamp", "to", "Porto", "on", "Friday", "."]
    assert set(records[0]["categories"]) <= set(CATEGORIES) and "predict" in result.stderr  # the progress bar
    assert [r["words"] for r in records[1:]] == [[row["word"] for row in s] for s in sentences.values()]
    predicted = [c for r in records[1:] for c in r["categories"]]
    agreement = sum(p == row["predicted"] for p, row in zip(predicted, table)) / len(table)
    print(f"predict agrees with evaluate on {agreement:.2%} of {len(table)} test words")
    assert agreement >= 0.98, agreement


@pytest.mark.parametrize(
    "train, test, message",
    [
        (
            "a\tO\nLisbon\tB-city\n\nb\tO\n",
            "Osaka\tB-city\n\nFriday\tB-date\n",
            "test.conll:3: category 'date' appears in the test split but not in the labelled split",
        ),
        ("a\tO\nLisbon\n", None, "train.conll:2: missing tag"),
        ("a\tO\nLisbon B-city\n", None, "train.conll:2: mixed tab and space separators"),
        # With encoding: auto a Latin-1 file is read as Latin-1 (logged); a declared utf-8 is enforced.
        ("a\tO\n\ncaf\xe9\tB-city\n", None, "train.conll:3: not valid utf-8"),
    ],
)
def test_bad_corpus_files_give_one_line_errors(tmp_path, train, test, message):
    (tmp_path / "train.conll").write_bytes(train.encode("latin-1"))
    prepare = {"corpus": str(tmp_path / "train.conll"), "labelled_size": "all", "encoding": "utf-8"}
    if test is not None:
        (tmp_path / "test.conll").write_text(test)
        prepare["test_corpus"] = str(tmp_path / "test.conll")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"prepare": prepare}))
    result = run(
        [
            sys.executable,
            "-m",
            "pipeline.prepare",
            "--params",
            str(tmp_path / "params.yaml"),
            "--out",
            str(tmp_path / "prepared"),
        ],
        ROOT,
        environment(),
        check=False,
    )
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith(f"error: {tmp_path}/") and message in result.stderr
