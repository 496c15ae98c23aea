"""Comparison report over models and seeds: summary statistics, a Markdown
table next to the seed project's numbers, a JSON summary and a bar chart.

A run is {"model": id, "seed": int, "metrics": word_metrics(...) plus
"entity": entity_metrics(...)}. Metric values are fractions in [0, 1]; the
Markdown shows accuracies as percentages.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence

from data.prepared_io import atomic_write_text
from heads.plots import plot_model_comparison
from heads.stats import mean_std, paired_test

# The seed project's reported numbers (one run each), as fractions like our
# metrics: accuracy 93.65% is 0.9365. Its precision/recall columns were
# swapped, so only these three are comparable.
SEED_RESULTS = {
    "baseline": {"accuracy": 0.9365, "accuracy_no_o": 0.6673, "mean_f1": 0.5457},
    "bert_ner": {"accuracy": 0.9590, "accuracy_no_o": 0.7841, "mean_f1": 0.6099},
    "bert_dd_kl": {"accuracy": 0.9444, "accuracy_no_o": 0.8350, "mean_f1": 0.6320},
    "bert_conf_kl": {"accuracy": 0.9605, "accuracy_no_o": 0.8082, "mean_f1": 0.6514},
}

DISPLAY_NAMES = {
    "baseline": "NER Baseline",
    "bert_ner": "BERT NER",
    "bert_dd_kl": "BERT NER Data Distribution KL",
    "bert_conf_kl": "BERT NER Confidence KL",
    "bert_both_kl": "BERT NER Both KL",
    # Ours: trained to convergence (early stopping on validation) with the word-shape flags.
    "bert_ner_es": "Ours: BERT NER (flags, head chosen on validation, early stopping)",
    "bert_ner_rare": "Ours: BERT NER, rare categories weighted (class-weighted word loss)",
    "ner_conf_kl": "Ours: Confidence KL",
    "ner_conf_kl_control": "Ours: Confidence KL's control",
    "ner_entropy": "Ours: Entropy minimisation",
    "ner_entropy_control": "Ours: Entropy minimisation's control",
    "ner_self_training": "Ours: Self-training",
    "ner_self_training_control": "Ours: Self-training's control",
}
CONTROL_SUFFIX = "_control"  # model X's matched control is X_control: the same steps and batches, no X

# Headline metrics summarised per model, in table order.
HEADLINE_METRICS = ("accuracy", "accuracy_no_o", "mean_f1", "entity_f1")


def display_name(model: str) -> str:
    """The name a reader sees for a model id; an unknown id shows as itself."""
    return DISPLAY_NAMES.get(model, model)


def _stat(values: Sequence[float | None]) -> dict:
    """{mean, std, n} over the values that are not None (``heads.stats.mean_std``: the sample std,
    0.0 for one value); mean and std are None when n == 0."""
    present = [float(v) for v in values if v is not None]
    if any(not math.isfinite(v) for v in present):
        raise ValueError(f"non-finite metric value among {present}")
    if not present:
        return {"mean": None, "std": None, "n": 0}
    mean, std = mean_std(present)
    return {"mean": mean, "std": std, "n": len(present)}


def _headline_values(metrics: dict) -> dict:
    entity = metrics.get("entity")
    return {
        "accuracy": metrics.get("accuracy"),
        "accuracy_no_o": metrics.get("accuracy_no_o"),
        "mean_f1": metrics.get("mean_f1"),
        "entity_f1": None if entity is None else entity.get("f1"),
    }


def summarise(runs: Sequence[dict]) -> dict:
    """Mean and spread over seeds, per model in order of first appearance.

    Returns {"num_runs", "categories" (union, first-seen order), "models": [
    {"model", "name", "seeds", "n_seeds", "accuracy", "accuracy_no_o",
    "mean_f1", "entity_f1", "per_category_f1": {category: stat},
    "seed_results": SEED_RESULTS entry or None}]}, where each stat is
    {"mean", "std", "n"} (n counts the seeds that reported the metric).
    """
    if not runs:
        raise ValueError("no runs to summarise")
    by_model: dict[str, list[dict]] = {}
    seen = set()
    categories: list[str] = []
    for run in runs:
        key = (run["model"], run["seed"])
        if key in seen:
            raise ValueError(f"model {run['model']!r} has seed {run['seed']} twice")
        seen.add(key)
        by_model.setdefault(run["model"], []).append(run)
        for name in run["metrics"].get("per_category", {}):
            if name not in categories:
                categories.append(name)

    models = []
    for model, model_runs in by_model.items():
        headline = [_headline_values(run["metrics"]) for run in model_runs]
        entry = {
            "model": model,
            "name": display_name(model),
            "seeds": sorted(int(run["seed"]) for run in model_runs),
            "n_seeds": len(model_runs),
        }
        for metric in HEADLINE_METRICS:
            entry[metric] = _stat([values[metric] for values in headline])
        entry["per_category_f1"] = {
            name: _stat(
                [
                    run["metrics"]["per_category"][name]["f1"]
                    if name in run["metrics"].get("per_category", {})
                    else None
                    for run in model_runs
                ]
            )
            for name in categories
        }
        seed = SEED_RESULTS.get(model)
        entry["seed_results"] = dict(seed) if seed is not None else None
        models.append(entry)
    return {"num_runs": len(runs), "categories": categories, "models": models}


def _percent(stat: dict) -> str:
    if stat is None or stat["mean"] is None:
        return "n/a"
    if stat["n"] == 1:
        return f"{100 * stat['mean']:.2f}%"
    return f"{100 * stat['mean']:.2f} ± {100 * stat['std']:.2f}%"


def _score(stat: dict) -> str:
    if stat is None or stat["mean"] is None:
        return "n/a"
    if stat["n"] == 1:
        return f"{stat['mean']:.4f}"
    return f"{stat['mean']:.4f} ± {stat['std']:.4f}"


def _seed_cell(seed: dict | None, metric: str, percent: bool) -> str:
    value = None if seed is None else seed.get(metric)
    if value is None:
        return "—"
    return f"{100 * value:.2f}%" if percent else f"{value:.4f}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _seed_counts_sentence(models: list[dict]) -> str:
    counts = {model["n_seeds"] for model in models}
    if len(counts) == 1:
        n = counts.pop()
        return f"Each model was trained with {n} seed{'s' if n != 1 else ''}"
    listed = ", ".join(f"{model['name']}: {model['n_seeds']}" for model in models)
    return f"Seeds per model: {listed}"


def results_markdown(summary: dict) -> str:
    """Markdown: a table of headline metrics (mean ± sample std over seeds)
    next to the seed project's single-run numbers, then a table of
    per-category F1. "n/a" marks a metric no run reported, "—" a number the
    seed project did not report; a single seed shows no ± part."""
    models = summary["models"]
    lines = [
        "## Results on the test split",
        "",
        f"{_seed_counts_sentence(models)}; values are mean ± sample standard "
        "deviation over seeds. The seed project's columns are its single "
        "reported runs on a split of its own, not this one (its figures are in heads/report.py: SEED_RESULTS).",
        "",
        "| model | seeds | accuracy | accuracy no O | mean F1 | entity F1 "
        "| seed accuracy | seed acc no O | seed mean F1 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for model in models:
        seed = model.get("seed_results")
        cells = [
            model["name"],
            str(model["n_seeds"]),
            _percent(model["accuracy"]),
            _percent(model["accuracy_no_o"]),
            _score(model["mean_f1"]),
            _score(model["entity_f1"]),
            _seed_cell(seed, "accuracy", percent=True),
            _seed_cell(seed, "accuracy_no_o", percent=True),
            _seed_cell(seed, "mean_f1", percent=False),
        ]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")

    lines += [
        "",
        "### F1 per category (word level)",
        "",
        "| category | " + " | ".join(_cell(m["name"]) for m in models) + " |",
        "|---|" + "---|" * len(models),
    ]
    for category in summary["categories"]:
        cells = [category] + [_score(m["per_category_f1"].get(category)) for m in models]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def control_comparisons(runs: Sequence[dict]) -> list[dict]:
    """Each model against its matched control, paired by seed: mean gain and paired t-test p per metric."""
    values: dict[str, dict] = {}
    for run in runs:
        values.setdefault(run["model"], {})[run["seed"]] = _headline_values(run["metrics"])
    rows = []
    for model, by_seed in values.items():
        control = values.get(model + CONTROL_SUFFIX)
        seeds = sorted(set(by_seed) & set(control or {}))
        if model.endswith(CONTROL_SUFFIX) or len(seeds) < 2:
            continue
        row = {"model": model, "control": model + CONTROL_SUFFIX, "seeds": len(seeds)}
        for metric in HEADLINE_METRICS:
            test = paired_test([by_seed[s][metric] for s in seeds], [control[s][metric] for s in seeds])
            row[metric] = {"gain": test["gain"], "gain_std": test["std"], "p": test["p"]}
        rows.append(row)
    return rows


def comparisons_markdown(rows: list[dict]) -> str:
    """The matched-control table: gain ± std over seeds and the paired t-test's p, per headline metric."""
    if not rows:
        return ""
    lines = [
        "",
        "### Gains over matched controls (paired by seed, two-sided paired t-test)",
        "",
        "| model | seeds | Δ entity F1 | p | Δ mean F1 | p | Δ accuracy | p | Δ accuracy no O | p |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        cells = [display_name(row["model"]), str(row["seeds"])]
        for metric in ("entity_f1", "mean_f1", "accuracy", "accuracy_no_o"):
            gain = row[metric]
            cells += [f"{gain['gain']:+.4f} ± {gain['gain_std']:.4f}", f"{gain['p']:.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def choices_markdown(choices: dict) -> str:
    """The heads chosen on validation (``heads.kind: auto``): per model, every candidate's validation entity F1
    and training time, the winner marked."""
    chosen = {model: choice for model, choice in choices.items() if choice.get("chosen")}
    if not chosen:
        return ""
    lines = ["", "### The head chosen on validation (heads.kind auto)", ""]
    for model, choice in chosen.items():
        lines += [
            f"{display_name(model)}: chosen **{choice['chosen']}** ({choice['rule']}; "
            f"{choice['validation_sentences']:,} validation sentences, seeds {choice['seeds']}).",
            "",
            "| candidate | changes | val. entity F1 | chosen steps | train s |",
            "|---|---|---|---|---|",
        ]
        for name, row in choice["candidates"].items():
            changes = ", ".join(f"{key}: {value}" for key, value in row["changes"].items())
            steps = "/".join(str(run["best_step"]) for run in row["runs"])
            mark = f"**{name}**" if name == choice["chosen"] else name
            lines.append(f"| {mark} | {changes} | {row['entity_f1']:.4f} | {steps} | {row['seconds']:.1f} |")
    return "\n".join(lines) + "\n"


def write_report(
    runs: Sequence[dict],
    md_path: str | os.PathLike,
    json_path: str | os.PathLike,
    plot_path: str | os.PathLike,
    choices: dict | None = None,
) -> dict:
    """Summarise `runs`, write the Markdown tables, the JSON summary and the
    comparison bar chart (headline metrics) atomically; returns the summary.
    ``choices`` (model -> its train stage's choice.json) adds the heads chosen on validation."""
    summary = summarise(runs)
    summary["controls"] = control_comparisons(runs)
    summary["choices"] = choices or {}
    markdown = (
        results_markdown(summary) + comparisons_markdown(summary["controls"]) + choices_markdown(summary["choices"])
    )
    # allow_nan=False: a NaN reaching the report is a bug, not a number.
    as_json = json.dumps(summary, indent=2, allow_nan=False) + "\n"
    plot_model_comparison(summary, HEADLINE_METRICS, plot_path)
    atomic_write_text(json_path, as_json)
    atomic_write_text(md_path, markdown)
    return summary
