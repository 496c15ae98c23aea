"""The learning-curve, biased-sample and regularizer experiments, then their report, on the end-to-end
project (conftest's repro_project): the longest test after that project's build, so its worker builds it."""

from __future__ import annotations

import json
import subprocess
import sys

import yaml
from conftest import run_command


def run(command, cwd, env):
    result = run_command(command, cwd, env)
    return result.stdout + result.stderr


def test_experiments_and_their_report_run_on_the_tiny_project(repro_project, tmp_path):
    """The learning-curve, biased-sample and regularizer experiments, then the report, on the tiny corpus."""
    root, env, _, _ = repro_project
    settings = {
        "seeds": [0],
        "selection_seeds": [0],
        "sizes": [8],  # one size: the curves' code paths are per size, and a second doubles the test's time
        # One KL kind (the other two run the same curve code; each costs its rounds' compile), entropy, self-training.
        "curve_models": ["ner_conf_kl", "ner_entropy", "ner_self_training"],
        "pool_size": 12,
        "validation_fraction": 0.25,
        "weight_decays": [0.01],
        "dropouts": [0.3],
    }
    (tmp_path / "experiments.yaml").write_text(yaml.safe_dump({"experiments": settings}))
    runs = tmp_path / "runs"
    # The three at once: this test is the longest chain of `make test` (the project's build, then it).
    names = ("learning_curve", "biased", "regularizers")
    experiments = {
        name: subprocess.Popen(
            [sys.executable, "-m", "experiments", name, "--experiment-params", str(tmp_path / "experiments.yaml")]
            + ["--out", str(runs / f"{name}.json")],
            cwd=root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for name in names
    }
    outputs = {name: process.communicate()[0] for name, process in experiments.items()}
    for name, process in experiments.items():
        assert process.returncode == 0, f"experiments {name} failed:\n{outputs[name][-3000:]}"
    curve = json.loads((runs / "learning_curve.json").read_text())["runs"]
    biased = json.loads((runs / "biased.json").read_text())["runs"]
    kl_models = {"bert_dd_kl", "bert_conf_kl", "bert_both_kl"}
    methods = {"ner_conf_kl", "ner_entropy", "ner_self_training"}
    # every method with its matched control, and the CRF peer trained on the same labelled sample
    curve_models = {"bert_ner", "bert_ner_es", "crf_peer"} | methods | {f"{m}_control" for m in methods}
    assert {(r["model"], r["size"]) for r in curve} == {(m, s) for m in curve_models for s in (8,)}
    assert {r["model"] for r in biased} == curve_models | {"ner_dd_kl_given_prior"}
    # A matched control never reads the unlabelled words: the same control for every KL kind of 80 rounds.
    controls = {r["model"]: r["entity_f1"] for r in curve if r["size"] == 8 and r["model"].endswith("_control")}
    assert controls["ner_conf_kl_control"] == controls["ner_entropy_control"]
    assert {r["sample"] for r in biased} == {"biased"} and all(0 <= r["mean_f1"] <= 1 for r in curve + biased)
    regularizers = json.loads((runs / "regularizers.json").read_text())
    assert regularizers["chosen"]["weight_decay"] in (0.0, 0.01) and regularizers["chosen"]["dropout"] in (0.0, 0.3)
    assert {(r["regularizer"], r["model"]) for r in regularizers["runs"]} == {
        (v, m) for v in ("none", "l2", "dropout") for m in {"bert_ner", "bert_ner_extra_ce", "bert_ner_es"} | kl_models
    }

    run(
        [
            sys.executable,
            "-m",
            "experiments.report",
            "--runs",
            str(runs),
            "--out",
            str(tmp_path / "report.md"),
            "--plots",
            str(tmp_path),
        ],
        root,
        env,
    )
    report = (tmp_path / "report.md").read_text()
    assert all(
        title in report
        for title in (
            "## Recommendation",
            "## 1. Learning curve",
            "## 2. Biased labelled sample",
            "## 3. Traditional regularizers",
            "Δ entity F1 vs random",
            "Δc entity F1 vs control (p)",
            "| recommended vs the CRF peer |",
        )
    )
    assert report.index("## Recommendation") < report.index("## 1. Learning curve")
    for plot in ("learning_curve.png", "biased_vs_random.png"):
        assert (tmp_path / "plots" / plot).read_bytes()[:4] == b"\x89PNG"
