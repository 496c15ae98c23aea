"""End to end: `dvc repro` of the real pipeline, one model per train stage kind (conftest's repro_project),
then what DVC does after a change, and a seed trained alone (the experiments on it: test_experiments_e2e.py)."""

from __future__ import annotations

import json
import sys

import yaml
from conftest import (
    E2E_MODELS,
    E2E_STAGE_MODELS,
    ROOT,
    project_copy,
    project_environment,
    run_command,
    write_kaggle_csv,
)

NAMES = ["Anna", "Bert", "Carla", "Dmitri"]
PLACES = ["Paris", "Lagos", "Quito", "Oslo"]


def tiny_corpus(num_sentences: int) -> list[list[tuple[str, str]]]:
    sentences = []
    for i in range(num_sentences):
        name, place = NAMES[i % 4], PLACES[(i // 4) % 4]
        sentence = [
            (name, "B-per"),
            ("flew", "O"),
            ("to", "O"),
            (place, "B-geo"),
            ("on", "O"),
            ("Monday", "B-tim"),
            ("NaN", "O"),
            (".", "O"),
        ]
        sentences.append(sentence[: 4 + i % 5])
    return sentences


def run(command, cwd, env):
    result = run_command(command, cwd, env)
    return result.stdout + result.stderr


def dirty_stages(root, env) -> set[str]:
    return set(json.loads(run(["dvc", "status", "--json", "dvc.yaml"], root, env)))


def test_dvc_repro_runs_every_stage(repro_project):
    root, env, output, status = repro_project
    ran = {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")}
    trained = {f"{stage}@{model}" for stage, models in E2E_STAGE_MODELS.items() for model in models}
    evaluated = {f"evaluate@{model}" for model in E2E_MODELS}
    assert ran == {"prepare", "extract", "extract_text", "select", "compare"} | trained | evaluated
    assert "up to date" in status
    meta = json.loads((root / "data/prepared/meta.json").read_text())
    from cache.store import open_cache

    with open_cache(root / "cache/features.h5") as cache:
        assert cache.num_sentences == meta["num_sentences"] and cache.num_words == meta["num_words"]
    assert json.loads((root / "metrics/extract.json").read_text())["words"] == meta["num_words"]

    for model in E2E_MODELS:
        metrics = json.loads((root / f"metrics/heads/{model}/seed0.json").read_text())
        assert 0 <= metrics["accuracy"] <= 1 and "entity" in metrics
        predictions = (root / f"predictions/{model}/seed0.tsv").read_text().splitlines()
        assert len(predictions) - 1 == metrics["num_words"]  # every test word has a prediction
        assert sorted(p.name for p in (root / f"plots/{model}/seed0").iterdir()) == [
            "confusion_by_pred.png",
            "confusion_by_true.png",
            "latent_predicted.png",
            "latent_true.png",
        ]
    results = (root / "reports/results.md").read_text()
    titles = ("| BERT NER |", "| BERT NER Confidence KL |", "| Ours: BERT NER (flags, head chosen on validation,")
    assert all(title in results for title in titles + ("| Ours: Entropy minimisation |", "| Ours: Self-training |"))
    assert (root / "reports/plots/comparison.png").read_bytes()[:4] == b"\x89PNG"

    # heads.kind auto: the choice is written, reported, and every model of our rows trained the chosen head.
    from heads.checkpoint import load_head

    choice = json.loads((root / "metrics/choice/bert_ner_es.json").read_text())
    candidates = yaml.safe_load((root / "params.yaml").read_text())["auto_head"]["candidates"]
    assert set(choice["candidates"]) == set(candidates) and choice["chosen"] in candidates
    assert f"chosen **{choice['chosen']}**" in results
    for model in ("bert_ner_es", "ner_entropy", "ner_self_training"):
        _, config = load_head(root / f"models/{model}/seed0/head.msgpack")
        assert config["heads"] == choice["heads"], model
        assert config["heads"]["clusters"] == [4] and len(config["centroids"]) == 1  # the same centroids, saved
    assert json.loads((root / "metrics/choice/bert_ner.json").read_text())["chosen"] is None  # a fixed head


def test_select_then_import_closes_the_loop(repro_project, tmp_path):
    """The select stage on the chatbot example (its unlabelled split and extra text), then its CoNLL taken as
    labelled by pipeline.annotate: the labelled file grows, prepare is stale, and its labelled split grows."""
    root, env = project_copy(repro_project, tmp_path)
    params = yaml.safe_load((root / "params.yaml").read_text())
    meta = json.loads((root / "data/prepared/meta.json").read_text())
    manifest = [json.loads(line) for line in (root / "selection/manifest.jsonl").read_text().splitlines()]
    stats = json.loads((root / "metrics/select.json").read_text())
    assert stats["candidates"] > meta["split_sizes"]["unlabelled"]  # the extra text's sentences too
    assert len(manifest) == stats["chosen"] == min(params["active"]["batch"], stats["candidates"])
    assert {m["sentence"].split(":")[0] for m in manifest} == {"corpus", "text"}  # both kinds of candidate
    prepared = [json.loads(line)["words"] for line in (root / "data/prepared/sentences.jsonl").read_text().splitlines()]
    split = json.loads((root / "data/prepared/split.json").read_text())
    asked = {tuple(prepared[i]) for i in split["labelled"] + split["test"]}
    assert not {tuple(m["words"]) for m in manifest} & asked
    labelled = root / params["prepare"]["labelled_file"]
    before = labelled.read_bytes()
    try:
        output = run([sys.executable, "-m", "pipeline.annotate", "import", "selection/selection.conll"], root, env)
        assert f"imported {len(manifest)} into" in output
        assert "prepare" in dirty_stages(root, env)
        command = [sys.executable, "-m", "pipeline.prepare", "--params", "params.yaml", "--out", str(tmp_path / "p")]
        run(command, root, env)
        grown = json.loads((tmp_path / "p/meta.json").read_text())
        assert grown["split_sizes"]["labelled"] == meta["split_sizes"]["labelled"] + len(manifest)
        assert grown["split_sizes"]["test"] == meta["split_sizes"]["test"]
    finally:
        labelled.write_bytes(before)
    assert "prepare" not in dirty_stages(root, env)


def test_a_kaggle_csv_is_split_by_counts(tmp_path):
    """The full corpus's format (Kaggle CSV, Latin-1, a word "NaN") through the prepare stage's command."""
    write_kaggle_csv(tmp_path / "corpus.csv", tiny_corpus(48))
    prepare = {"corpus": str(tmp_path / "corpus.csv"), "test_size": 12, "labelled_size": 16}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"prepare": prepare}))
    command = [sys.executable, "-m", "pipeline.prepare", "--params", str(tmp_path / "params.yaml")]
    run_command(command + ["--out", str(tmp_path / "prepared")], ROOT, project_environment())
    meta = json.loads((tmp_path / "prepared/meta.json").read_text())
    assert meta["num_sentences"] == 48 and meta["split_sizes"] == {"test": 12, "labelled": 16, "unlabelled": 20}
    assert meta["categories"] == ["O", "geo", "per", "tim"]


def test_changing_a_head_parameter_reruns_only_heads(repro_project, tmp_path):
    root, env = project_copy(repro_project, tmp_path)
    assert dirty_stages(root, env) == set()  # the copy is as up to date as the project
    original = (root / "params.yaml").read_text()
    params = yaml.safe_load(original)
    params["kl"]["learning_rate"] = 0.0005  # read by every KL-phase model
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert dirty_stages(root, env) == {"train_kl@bert_conf_kl", "train_semi@ner_entropy"}
    # One model's own setting: repro reruns its train and evaluate stages (and compare), nothing else.
    params = yaml.safe_load(original)
    params["kl_models"]["bert_conf_kl"]["rounds"] += 1
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert dirty_stages(root, env) == {"train_kl@bert_conf_kl"}
    output = run(["dvc", "repro"], root, env)
    ran = {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")}
    # compare reruns only if the metrics changed, which a tiny corpus may not show.
    assert (
        {"train_kl@bert_conf_kl", "evaluate@bert_conf_kl"}
        <= ran
        <= {"train_kl@bert_conf_kl", "evaluate@bert_conf_kl", "compare"}
    )


def test_same_seed_gives_bit_identical_heads(repro_project, tmp_path):
    """A seed's head does not depend on the other seeds trained before it in the same process."""
    root, env, _, _ = repro_project
    command = [sys.executable, "-m", "pipeline.train", "--model", "bert_ner", "--seeds", "1", "0", "--out"]
    run(command + [str(tmp_path / "again")], root, env)
    again = tmp_path / "again"
    assert (again / "seed0/head.msgpack").read_bytes() == (root / "models/bert_ner/seed0/head.msgpack").read_bytes()
    assert (again / "seed1/head.msgpack").read_bytes() != (again / "seed0/head.msgpack").read_bytes()


def test_a_change_to_an_imported_module_makes_its_stages_dirty(repro_project, tmp_path):
    """DVC's view of code deps (tests/test_dvc_deps.py checks them statically) on the real repro."""
    root, env = project_copy(repro_project, tmp_path)
    metrics_module = root / "heads" / "metrics.py"
    original = metrics_module.read_text()
    try:
        metrics_module.write_text(original + "\n# a change\n")
        changed = dirty_stages(root, env)
    finally:
        metrics_module.write_text(original)
    assert {f"evaluate@{model}" for model in E2E_MODELS} <= changed
    assert not changed & {"prepare", "extract", "extract_text", "compare"}
    assert dirty_stages(root, env) == set()
