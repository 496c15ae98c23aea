"""The experiments report's significance and recommendation, on made-up runs."""

import numpy as np
import pytest
from scipy.stats import ttest_rel

from experiments.report import control_of, paired_test, recommendation_section


def runs_of(gains: dict, size=64, seeds=5, base=0.6):
    """Runs where each method beats its control by gains[method] (+ seeded noise), per seed."""
    rng = np.random.default_rng(0)
    runs = []
    for seed in range(seeds):
        runs.append({"model": "bert_ner", "size": size, "seed": seed, "entity_f1": base - 0.1})
        runs.append({"model": "bert_ner_es", "size": size, "seed": seed, "entity_f1": base})
        for method, gain in gains.items():
            control = base + rng.normal(0, 0.01)
            runs.append({"model": f"{method}_control", "size": size, "seed": seed, "entity_f1": control})
            runs.append(
                {"model": method, "size": size, "seed": seed, "entity_f1": control + gain + rng.normal(0, 0.002)}
            )
    return runs


def test_paired_test_matches_scipy_and_pairs_by_seed():
    runs = runs_of({"ner_entropy": 0.01})
    test = paired_test(runs, "ner_entropy", "ner_entropy_control", "entity_f1", size=64)
    ours = [r["entity_f1"] for r in sorted(runs, key=lambda r: r["seed"]) if r["model"] == "ner_entropy"]
    theirs = [r["entity_f1"] for r in sorted(runs, key=lambda r: r["seed"]) if r["model"] == "ner_entropy_control"]
    assert test["seeds"] == 5 and test["p"] == pytest.approx(ttest_rel(ours, theirs).pvalue)
    assert test["gain"] == pytest.approx(np.mean(np.subtract(ours, theirs)))
    # A seed without its pair is left out, not paired with another seed's run.
    partial = [r for r in runs if not (r["model"] == "ner_entropy_control" and r["seed"] == 0)]
    assert paired_test(partial, "ner_entropy", "ner_entropy_control", "entity_f1", size=64)["seeds"] == 4
    assert np.isnan(paired_test(runs[:4], "ner_entropy", "ner_entropy_control", "entity_f1")["p"])


def test_recommendation_names_the_significant_winner_or_none():
    report = recommendation_section({"runs": runs_of({"ner_entropy": 0.02, "ner_dd_kl": 0.0})})
    assert "use `ner_entropy`" in report and "at 1 of 1 sizes (64)" in report
    report = recommendation_section({"runs": runs_of({"ner_entropy": 0.0, "ner_dd_kl": -0.0})})
    assert "use `bert_ner_es`: no method beats its control" in report and "at 0 of 1 sizes" in report


def test_control_of():
    models = ["bert_ner", "bert_ner_es", "ner_entropy", "ner_entropy_control"]
    assert control_of("ner_entropy", models) == "ner_entropy_control"
    assert control_of("bert_ner_es", models) == "bert_ner"
    assert control_of("ner_entropy_control", models) is None


def test_recommendation_prefers_a_significant_gain_to_a_larger_noisy_one():
    runs = runs_of({"ner_entropy": 0.01})
    rng = np.random.default_rng(1)
    for seed, noise in enumerate(rng.normal(0, 0.08, 5)):  # a larger mean gain, far too noisy to be significant
        runs.append({"model": "ner_dd_kl_control", "size": 64, "seed": seed, "entity_f1": 0.6})
        runs.append({"model": "ner_dd_kl", "size": 64, "seed": seed, "entity_f1": 0.62 + noise})
    dd = paired_test(runs, "ner_dd_kl", "ner_dd_kl_control", "entity_f1", size=64)
    entropy = paired_test(runs, "ner_entropy", "ner_entropy_control", "entity_f1", size=64)
    assert dd["gain"] > entropy["gain"] and dd["p"] >= 0.05 and entropy["p"] < 0.05
    report = recommendation_section({"runs": runs})
    assert "use `ner_entropy`" in report and "none does" not in report


def test_recommendation_names_the_sizes_where_no_method_wins():
    runs = runs_of({"ner_entropy": 0.02}, size=128) + runs_of({"ner_entropy": 0.0}, size=64)
    assert "At 64 labelled sentences none does" in recommendation_section({"runs": runs})
