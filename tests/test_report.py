"""Plots (PNG files written atomically) and the comparison report."""

import json

import numpy as np
import pytest
from sklearn.decomposition import PCA

from heads.metrics import confusion, word_metrics
from heads.plots import plot_confusion, plot_latent_pca, plot_model_comparison, principal_axes
from heads.report import (
    SEED_RESULTS,
    display_name,
    results_markdown,
    summarise,
    write_report,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CATEGORIES = ["O", "art", "eve", "geo", "gpe", "nat", "org", "per", "tim"]


def assert_png(path):
    data = path.read_bytes()
    assert len(data) > 1000
    assert data[:8] == PNG_SIGNATURE


def assert_no_temp_files(directory):
    leftovers = [p.name for p in directory.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def fake_run(model, seed, rng, categories=CATEGORIES, with_entity=True):
    true = rng.integers(0, len(categories), 400)
    pred = np.where(rng.random(400) < 0.7, true, rng.integers(0, len(categories), 400))
    metrics = word_metrics(true, pred, categories)
    if with_entity:
        metrics["entity"] = {"precision": 0.5, "recall": 0.5, "f1": float(rng.random()), "per_type": {}}
    return {"model": model, "seed": seed, "metrics": metrics}


@pytest.fixture
def runs():
    rng = np.random.default_rng(0)
    models = ["bert_ner", "baseline", "bert_both_kl", "my_new_head"]
    return [fake_run(model, seed, rng) for seed in (0, 1, 2) for model in models]


@pytest.mark.parametrize("num_categories", [9, 20])
def test_plot_confusion_writes_png(tmp_path, num_categories):
    rng = np.random.default_rng(1)
    true = rng.integers(0, num_categories, 500)
    pred = rng.integers(0, num_categories, 500)
    path = tmp_path / "plots" / "confusion.png"  # parent created on demand
    names = [f"cat{k}" for k in range(num_categories)]
    plot_confusion(confusion(true, pred, num_categories, "true"), names, "by true", path)
    assert_png(path)
    assert_no_temp_files(path.parent)
    with pytest.raises(ValueError):
        plot_confusion(np.zeros((3, 3)), names, "wrong shape", tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()


def test_principal_axes_match_scikit_learns_pca():
    rng = np.random.default_rng(4)
    points = rng.normal(size=(2000, 12)) @ rng.normal(size=(12, 12)) + 3.0  # correlated, off-centre
    mean, axes, explained = principal_axes(points)
    reference = PCA(n_components=2, svd_solver="full").fit(points)
    signs = np.sign(np.sum(axes.T * reference.components_, axis=1))  # each axis is defined up to its sign
    np.testing.assert_allclose(axes.T * signs[:, None], reference.components_, atol=1e-9)
    np.testing.assert_allclose(mean, reference.mean_)
    assert explained == pytest.approx(reference.explained_variance_ratio_.sum(), rel=1e-9)
    assert np.all(axes[np.argmax(np.abs(axes), axis=0), [0, 1]] > 0)  # the sign rule


def test_plot_latent_pca_is_deterministic(tmp_path):
    rng = np.random.default_rng(2)
    true = rng.integers(0, len(CATEGORIES), 3000)
    latent = rng.normal(size=(3000, 32)) + true[:, None] * 0.5  # (N, 32)
    pred = np.where(rng.random(3000) < 0.8, true, 0)
    paths = [tmp_path / name for name in ("t0.png", "p0.png", "t0b.png", "p0b.png", "t1.png", "p1.png")]
    plot_latent_pca(latent, true, pred, CATEGORIES, paths[0], paths[1], max_points=500, seed=0)
    plot_latent_pca(latent, true, pred, CATEGORIES, paths[2], paths[3], max_points=500, seed=0)
    plot_latent_pca(latent, true, pred, CATEGORIES, paths[4], paths[5], max_points=500, seed=1)
    for path in paths:
        assert_png(path)
    assert_no_temp_files(tmp_path)
    assert paths[0].read_bytes() == paths[2].read_bytes()  # same seed, same picture
    assert paths[0].read_bytes() != paths[1].read_bytes()  # true vs predicted colours
    assert paths[0].read_bytes() != paths[4].read_bytes()  # another subsample
    with pytest.raises(ValueError):
        plot_latent_pca(latent, true[:10], pred, CATEGORIES, paths[0], paths[1])


def test_summarise_matches_numpy(runs):
    summary = summarise(runs)
    assert [m["model"] for m in summary["models"]] == ["bert_ner", "baseline", "bert_both_kl", "my_new_head"]
    assert summary["categories"] == CATEGORIES
    assert summary["num_runs"] == 12
    baseline = summary["models"][1]
    own = [r["metrics"] for r in runs if r["model"] == "baseline"]
    for key, values in {
        "accuracy": [m["accuracy"] for m in own],
        "mean_f1": [m["mean_f1"] for m in own],
        "entity_f1": [m["entity"]["f1"] for m in own],
    }.items():
        assert baseline[key]["mean"] == pytest.approx(np.mean(values))
        assert baseline[key]["std"] == pytest.approx(np.std(values, ddof=1))
        assert baseline[key]["n"] == 3
    geo = [m["per_category"]["geo"]["f1"] for m in own]
    assert baseline["per_category_f1"]["geo"]["std"] == pytest.approx(np.std(geo, ddof=1))
    assert baseline["seeds"] == [0, 1, 2]
    assert baseline["name"] == "NER Baseline"
    assert baseline["seed_results"] == SEED_RESULTS["baseline"]
    assert summary["models"][3]["seed_results"] is None
    json.dumps(summary, allow_nan=False)


def test_summarise_single_seed_and_missing_values():
    rng = np.random.default_rng(3)
    run = fake_run("bert_ner", 7, rng, with_entity=False)
    run["metrics"]["accuracy_no_o"] = None
    summary = summarise([run])
    model = summary["models"][0]
    assert model["accuracy"]["std"] == 0.0 and model["accuracy"]["n"] == 1
    assert model["entity_f1"] == {"mean": None, "std": None, "n": 0}
    assert model["accuracy_no_o"]["n"] == 0
    markdown = results_markdown(summary)
    assert "n/a" in markdown
    with pytest.raises(ValueError):
        summarise([run, run])  # the same seed twice


def test_seed_results_and_names():
    assert SEED_RESULTS["bert_conf_kl"] == {"accuracy": 0.9605, "accuracy_no_o": 0.8082, "mean_f1": 0.6514}
    assert SEED_RESULTS["baseline"]["accuracy_no_o"] == 0.6673
    assert display_name("bert_dd_kl") == "BERT NER Data Distribution KL"
    assert display_name("bert_both_kl") == "BERT NER Both KL"
    assert display_name("something_else") == "something_else"


def test_results_markdown_lists_models_and_seed_numbers(runs):
    summary = summarise(runs)
    markdown = results_markdown(summary)
    for name in ("BERT NER", "NER Baseline", "BERT NER Both KL", "my_new_head"):
        assert f"| {name} |" in markdown
    for seed_number in ("95.90%", "78.41%", "0.6099", "93.65%", "66.73%", "0.5457"):
        assert seed_number in markdown
    assert "Confidence KL" not in markdown  # only models that ran are listed
    assert "3 seeds" in markdown
    bert = summary["models"][0]
    expected = f"{100 * bert['accuracy']['mean']:.2f} ± {100 * bert['accuracy']['std']:.2f}%"
    assert expected in markdown
    expected_f1 = f"{bert['mean_f1']['mean']:.4f} ± {bert['mean_f1']['std']:.4f}"
    assert expected_f1 in markdown
    both_row = next(line for line in markdown.splitlines() if line.startswith("| BERT NER Both KL |"))
    assert both_row.count("—") == 3  # the seed project has no such model
    # second table: one row per category, one column per model
    for category in CATEGORIES:
        assert any(line.startswith(f"| {category} |") for line in markdown.splitlines())


def test_write_report_writes_three_files(tmp_path, runs):
    out = tmp_path / "report"
    summary = write_report(runs, out / "results.md", out / "summary.json", out / "comparison.png")
    assert (out / "results.md").read_text(encoding="utf-8") == results_markdown(summary)
    assert json.loads((out / "summary.json").read_text(encoding="utf-8")) == summary
    assert_png(out / "comparison.png")
    assert_no_temp_files(out)


def test_plot_model_comparison_handles_missing_metric(tmp_path, runs):
    summary = summarise(runs[:1])
    summary["models"][0]["entity_f1"] = {"mean": None, "std": None, "n": 0}
    path = tmp_path / "cmp.png"
    plot_model_comparison(summary, ["accuracy_no_o", "mean_f1", "entity_f1"], path)
    assert_png(path)
    assert_no_temp_files(tmp_path)


def test_control_comparisons_pair_runs_by_seed():
    from scipy.stats import ttest_rel

    from heads.report import comparisons_markdown, control_comparisons

    def run(model, seed, f1):
        return {
            "model": model,
            "seed": seed,
            "metrics": {"accuracy": 0.9, "accuracy_no_o": 0.8, "mean_f1": 0.5, "entity": {"f1": f1}},
        }

    ours, theirs = [0.70, 0.74, 0.69, 0.75], [0.68, 0.73, 0.66, 0.72]
    runs = [run("m", s, f) for s, f in enumerate(ours)] + [run("m_control", s, f) for s, f in enumerate(theirs)]
    rows = control_comparisons(list(reversed(runs)))  # order of runs does not matter: seeds pair them
    assert len(rows) == 1 and rows[0]["control"] == "m_control" and rows[0]["seeds"] == 4
    entity = rows[0]["entity_f1"]
    assert entity["gain"] == pytest.approx(np.mean(np.subtract(ours, theirs)))
    assert entity["gain_std"] == pytest.approx(np.std(np.subtract(ours, theirs), ddof=1))
    assert entity["p"] == pytest.approx(ttest_rel(ours, theirs).pvalue)
    assert rows[0]["accuracy"]["p"] == 1.0  # identical runs: no evidence of a difference
    assert "| m | 4 | +0.0225" in comparisons_markdown(rows)
    assert control_comparisons([run("m", 0, 0.7), run("x", 0, 0.7)]) == []


def test_the_head_chosen_on_validation_is_reported_with_every_candidate():
    from heads.report import choices_markdown

    run = {"seed": 0, "entity_f1": 0.8, "best_step": 350, "seconds": 61.2}
    choice = {
        "chosen": "mlp_crf",
        "rule": "the candidate of highest validation entity F1",
        "validation_sentences": 512,
        "seeds": [0],
        "candidates": {
            "mlp": {
                "changes": {"kind": "mlp"},
                "entity_f1": 0.7712,
                "seconds": 20.0,
                "runs": [dict(run, best_step=250)],
            },
            "mlp_crf": {
                "changes": {"kind": "mlp", "output": "crf"},
                "entity_f1": 0.8101,
                "seconds": 61.2,
                "runs": [run],
            },
        },
    }
    text = choices_markdown({"bert_ner_es": choice, "bert_ner": {"chosen": None, "candidates": {}}})
    assert "chosen **mlp_crf**" in text and "512 validation sentences" in text
    assert "| **mlp_crf** | kind: mlp, output: crf | 0.8101 | 350 | 61.2 |" in text
    assert "| mlp | kind: mlp | 0.7712 | 250 | 20.0 |" in text
    assert "BERT NER |" not in text  # a fixed head has no choice to report
    assert choices_markdown({"bert_ner": {"chosen": None, "candidates": {}}}) == ""
