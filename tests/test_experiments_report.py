"""The experiments report's significance, recommendation and prose figures, on made-up runs."""

from pathlib import Path

import numpy as np
import pytest
from scipy.stats import ttest_rel

from experiments.report.curve import curve_intro, recommendation_section
from experiments.report.document import render
from experiments.report.sections import class_weight_section, features_section, joint_section, selection_section
from experiments.report.tables import control_of, paired_by_seed


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
    test = paired_by_seed(runs, "ner_entropy", "ner_entropy_control", "entity_f1", size=64)
    ours = [r["entity_f1"] for r in sorted(runs, key=lambda r: r["seed"]) if r["model"] == "ner_entropy"]
    theirs = [r["entity_f1"] for r in sorted(runs, key=lambda r: r["seed"]) if r["model"] == "ner_entropy_control"]
    assert test["seeds"] == 5 and test["p"] == pytest.approx(ttest_rel(ours, theirs).pvalue)
    assert test["gain"] == pytest.approx(np.mean(np.subtract(ours, theirs)))
    # A seed without its pair is left out, not paired with another seed's run.
    partial = [r for r in runs if not (r["model"] == "ner_entropy_control" and r["seed"] == 0)]
    assert paired_by_seed(partial, "ner_entropy", "ner_entropy_control", "entity_f1", size=64)["seeds"] == 4
    assert np.isnan(paired_by_seed(runs[:4], "ner_entropy", "ner_entropy_control", "entity_f1")["p"])


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
    dd = paired_by_seed(runs, "ner_dd_kl", "ner_dd_kl_control", "entity_f1", size=64)
    entropy = paired_by_seed(runs, "ner_entropy", "ner_entropy_control", "entity_f1", size=64)
    assert dd["gain"] > entropy["gain"] and dd["p"] >= 0.05 and entropy["p"] < 0.05
    report = recommendation_section({"runs": runs})
    assert "use `ner_entropy`" in report and "none does" not in report


def test_recommendation_names_the_sizes_where_no_method_wins():
    runs = runs_of({"ner_entropy": 0.02}, size=128) + runs_of({"ner_entropy": 0.0}, size=64)
    assert "At 64 labelled sentences none does" in recommendation_section({"runs": runs})


def selection_json(**recorded):
    """A selection experiment's JSON with one grid, plus the figures its experiment records (``recorded``)."""
    rows = [
        {"schedule": "joint", "kl_weight": w, "validation_entity_f1": 0.7 + w / 100, "validation_accuracy": 0.9}
        for w in (0.1, 1.0)
    ]
    return {
        "params": {"validation_fraction": 0.25},
        "supervised": [{"seed": 0, "best_step": 300, "converged": 0.75, "epochs_20": 0.74}],
        "grids": {"ner_entropy": rows},
        "chosen": {"ner_entropy": rows[1]},
        "defaults": {"ner_entropy": {"schedule": "joint", "kl_weight": 1.0}},
        **recorded,
    }


def test_selection_prose_reads_its_figures_from_the_json():
    text = selection_section(selection_json(labelled_sentences=1000, epochs=30))
    assert "validation part (25%) of the 1,000-sentence labelled split" in text and "the other 75%" in text
    assert "| 30 epochs (the seed's) |" in text
    # A JSON that did not record a figure gets no number in its place (never a default typed into the report).
    text = selection_section(selection_json())
    assert "validation part (25%) of the labelled split" in text and "| the seed's epochs |" in text
    assert "2,560" not in text and "20 epochs" not in text and "20%" not in text


def test_curve_prose_reads_its_figures_from_the_json():
    runs = runs_of({"ner_entropy": 0.02})
    protocol = {"bert_ner_epochs": 30, "early_stopping_validation_fraction": 0.25}
    intro = " ".join(curve_intro({"runs": runs, "protocol": protocol}))
    assert "schedule (30 epochs)" in intro and "early stopping on 25% of the labelled sample" in intro
    assert "| converged vs 30 epochs |" in recommendation_section({"runs": runs, "protocol": protocol})
    intro = " ".join(curve_intro({"runs": runs}))
    assert "20" not in intro and "a held-out part of the labelled sample" in intro
    assert "| converged vs the seed's epochs |" in recommendation_section({"runs": runs})


def test_features_prose_reads_the_validation_share():
    data = {
        "params": {"validation_fraction": 0.3},
        "grid": [
            {
                "layers": [3],
                "pooling": "mean",
                "validation_mean_f1": 0.5,
                "validation_entity_f1": 0.7,
                "validation_accuracy_no_o": 0.8,
            }
        ],
        "best": {"layers": [3], "pooling": "mean"},
        "default": {"layers": [3, 4, 5], "pooling": "mean"},
        "cost": {
            "labelled_words": 1234,
            "all_layer_seconds_on_labelled_split": {"mean": 2.5},
            "full_corpus_bytes_per_choice": 2**30,
            "full_corpus_bytes_all_layers": 7 * 2**30,
        },
    }
    text = features_section(data)
    assert "trained on 70% of the labelled split, scored on the other 30%" in text and "1,234 labelled words" in text


def test_the_document_puts_the_recommendation_first_and_writes_its_plot(tmp_path):
    runs = [
        dict(r, sample="random", mean_f1=r["entity_f1"] - 0.1, accuracy=0.95) for r in runs_of({"ner_entropy": 0.02})
    ]
    data = {"learning_curve": {"seconds": 60.0, "params": {"seeds": [0, 1, 2, 3, 4]}, "runs": runs}}
    data["selection"] = dict(selection_json(), seconds=120.0)
    text = render(data, Path("reports/experiments"), tmp_path / "plots")
    assert text.index("## Recommendation") < text.index("## 0. Validated defaults") < text.index("## 1. Learning curve")
    assert "learning_curve 60 s, selection 120 s; 3 minutes in all" in text
    assert (tmp_path / "plots" / "learning_curve.png").read_bytes()[:4] == b"\x89PNG"


def test_recommendation_holds_the_recommended_model_against_the_crf_peer():
    """The peer column compares the recommended model (not bert_ner_es when a method wins) with the CRF peer."""
    runs = runs_of({"ner_entropy": 0.05}, size=128) + runs_of({"ner_entropy": 0.0}, size=64)
    for seed in range(5):  # between bert_ner_es (0.6) and ner_entropy (~0.65) at 128; above bert_ner_es at 64
        runs.append({"model": "crf_peer", "size": 128, "seed": seed, "entity_f1": 0.62 + 0.001 * seed})
        runs.append({"model": "crf_peer", "size": 64, "seed": seed, "entity_f1": 0.61 + 0.001 * seed})
    report = recommendation_section({"runs": runs})
    assert "| recommended vs the CRF peer |" in report
    assert "above the CRF peer (trained on the same labelled sample) at 1 of 2 sizes" in report
    row_64 = next(line for line in report.splitlines() if line.startswith("| 64 |"))
    assert row_64.split("|")[-2].strip().startswith("-0.01")  # bert_ner_es 0.6 minus the peer's 0.61..0.614
    assert "CRF peer" not in recommendation_section({"runs": runs_of({"ner_entropy": 0.05})})


def test_class_weight_rows_pair_each_weighted_head_with_its_unweighted_self():
    """Δ vs no weights: a paired t-test by seed against the same model, blank on the unweighted row."""
    runs = []
    for seed, (plain, weighted) in enumerate([(0.60, 0.65), (0.62, 0.66), (0.58, 0.64)]):
        for flag, mean_f1 in ((False, plain), (True, weighted)):
            f1 = {"art": 0.1, "eve": 0.2, "nat": 0.3}
            run = {"seed": seed, "class_weights": flag, "mean_f1": mean_f1, "entity_f1": 0.8, "f1": f1}
            runs.append(dict(run, model="bert_ner_es_word_loss", accuracy_no_o=0.82))
            runs.append(dict(run, model="bert_ner", mean_f1=mean_f1 - 0.1, accuracy_no_o=0.8))
    lines = class_weight_section({"runs": runs}).splitlines()
    rows = {tuple(line.split(" | ")[:2]): line for line in lines if line.startswith("| bert_ner")}
    p = ttest_rel([0.65, 0.66, 0.64], [0.60, 0.62, 0.58]).pvalue
    gain = f"| +{np.mean([0.05, 0.04, 0.06]):.4f} ± {np.std([0.05, 0.04, 0.06], ddof=1):.4f} (p={p:.3f}) ✔ |"
    same = "| +0.0000 ± 0.0000 (p=1.000) |"  # entity F1 equal on every seed: no evidence either way
    assert rows[("| bert_ner_es_word_loss", "no")].endswith("| 0.8200 ± 0.0000 |  |  |")
    assert rows[("| bert_ner_es_word_loss", "yes")].endswith(gain + same[1:])
    assert rows[("| bert_ner", "yes")].endswith(gain + same[1:])  # against bert_ner itself, not the other model


def test_joint_rows_pair_each_schedule_with_the_same_models_alternating_run():
    """Δ vs alternating: a paired t-test by seed within one model, blank on the alternating row itself."""
    runs = []
    for seed, (alternating, joint) in enumerate([(0.70, 0.72), (0.71, 0.74), (0.69, 0.70)]):
        for model, offset in (("bert_dd_kl", 0.0), ("bert_conf_kl", 0.1)):
            for schedule, f1 in (("alternating", alternating), ("joint, same unlabelled batches", joint)):
                runs.append(
                    {
                        "model": model,
                        "schedule": schedule,
                        "seed": seed,
                        "rounds": 10,
                        "mean_f1": 0.5,
                        "entity_f1": f1 + offset,
                        "train_seconds": 1.0,
                    }
                )
    data = {"chosen_lambda": {"bert_dd_kl": 0.1, "bert_conf_kl": 1.0}, "selection": {}, "runs": runs}
    rows = [line for line in joint_section(data).splitlines() if line.startswith("| bert_")]
    gains = [0.02, 0.03, 0.01]
    p = ttest_rel([0.72, 0.74, 0.70], [0.70, 0.71, 0.69]).pvalue
    entity = f"+{np.mean(gains):.4f} ± {np.std(gains, ddof=1):.4f} (p={p:.3f})"
    joint_rows = [row for row in rows if "| joint" in row]
    assert len(joint_rows) == 2
    for row in joint_rows:  # the same gain for both models: each is paired with itself, not the other
        assert row.endswith(f"| +0.0000 ± 0.0000 (p=1.000) | {entity}{' ✔' if p < 0.05 else ''} |")
    assert all(row.endswith("|  |  |") for row in rows if "| alternating |" in row)
