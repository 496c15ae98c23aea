"""The experiments' report: reports/experiments/*.json -> reports/experiments.md with plots.

    python -m experiments.report --runs reports/experiments --out reports/experiments.md --plots reports/experiments
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from data.prepared_io import atomic_write_text
from pipeline.params import run_main

RARE = ("art", "nat", "eve")
CE_MODELS = ("bert_ner", "bert_ner_extra_ce")                # heads without a KL term


def stats(values) -> tuple[float, float]:
    values = np.asarray([v for v in values if v is not None], dtype=float)
    if values.size == 0:
        return float("nan"), float("nan")
    return float(values.mean()), float(values.std(ddof=1)) if values.size > 1 else 0.0


def cell(values, digits=4) -> str:
    mean, std = stats(values)
    return "n/a" if np.isnan(mean) else f"{mean:.{digits}f} ± {std:.{digits}f}"


def group(runs, *keys) -> dict:
    grouped = defaultdict(list)
    for run in runs:
        grouped[tuple(run[k] for k in keys)].append(run)
    return grouped


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(map(str, row)) + " |" for row in rows])


def paired_gain(runs, model, baseline, metric, **where) -> tuple[float, float]:
    """Mean and std over seeds of (model - baseline) on the same seed and setting."""
    by_seed = {}
    for run in runs:
        if all(run.get(k) == v for k, v in where.items()) and run["model"] in (model, baseline):
            by_seed.setdefault(run["seed"], {})[run["model"]] = run[metric]
    gains = [pair[model] - pair[baseline] for pair in by_seed.values() if len(pair) == 2]
    return stats(gains)


def mark(mean: float, std: float) -> str:
    """▲ a gain larger than its std over seeds, ▼ a loss larger than its std."""
    if np.isnan(mean):
        return ""
    return " ▲" if mean > std else " ▼" if mean < -std else ""


def difference(a, b) -> tuple[float, float]:
    """Mean of ``a`` minus mean of ``b`` and the std of that difference (independent samples)."""
    (mean_a, std_a), (mean_b, std_b) = stats(a), stats(b)
    return mean_a - mean_b, float(np.hypot(std_a, std_b))


def size_axis(axis, sizes) -> None:
    """A log x axis labelled with the labelled sizes themselves."""
    axis.set_xscale("log")
    axis.set_xticks(sorted(sizes), [str(size) for size in sorted(sizes)])
    axis.minorticks_off()
    axis.set_xlabel("labelled sentences")


def bias_plot(random_runs: list, biased_runs: list, plots: Path) -> None:
    """Biased minus random test mean F1, per model and labelled size."""
    from heads.plots import pyplot, save_png_atomic

    plt = pyplot()
    figure, axis = plt.subplots(figsize=(7, 4.5))
    for color, model in enumerate(dict.fromkeys(r["model"] for r in random_runs + biased_runs)):
        sizes = sorted({r["size"] for r in biased_runs if r["model"] == model})
        gaps = [difference([r["mean_f1"] for r in biased_runs if r["model"] == model and r["size"] == size],
                           [r["mean_f1"] for r in random_runs if r["model"] == model and r["size"] == size])
                for size in sizes]
        if all(np.isnan(mean) for mean, _ in gaps):
            continue
        axis.errorbar(sizes, [g[0] for g in gaps], yerr=[g[1] for g in gaps], marker="o", markersize=3,
                      capsize=2, color=f"C{color}", label=model)
    axis.axhline(0.0, color="black", linewidth=0.8)
    size_axis(axis, {r["size"] for r in biased_runs})
    axis.set_ylabel("mean F1, biased - random sample")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7)
    save_png_atomic(figure, plots / "biased_vs_random.png")
    plt.close(figure)


def curve_section(curves: dict, plots: Path) -> str:
    from heads.plots import pyplot, save_png_atomic

    plt = pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    runs = [r for name in ("learning_curve", "biased") for r in curves.get(name, {}).get("runs", [])]
    models = list(dict.fromkeys(r["model"] for r in runs))
    for axis, metric in zip(axes, ("mean_f1", "entity_f1")):
        for color, model in enumerate(models):
            for sample, style in (("random", "-"), ("biased", "--")):
                points = sorted(group([r for r in runs if r["model"] == model and r["sample"] == sample], "size").items())
                if not points:
                    continue
                sizes = [size for (size,), _ in points]
                means = [stats([r[metric] for r in rs])[0] for _, rs in points]
                stds = [stats([r[metric] for r in rs])[1] for _, rs in points]
                axis.errorbar(sizes, means, yerr=stds, linestyle=style, marker="o", markersize=3, capsize=2,
                              color=f"C{color}", label=f"{model} ({sample})")
        size_axis(axis, {r["size"] for r in runs})
        axis.set_ylabel(metric.replace("_", " "))
        axis.grid(alpha=0.3)
    axes[1].legend(fontsize=7, ncol=2)
    save_png_atomic(figure, plots / "learning_curve.png")
    plt.close(figure)

    out = ["## 1. Learning curve (random labelled sample)", "",
           "Test mean F1 / entity F1, mean ± std over seeds. The unlabelled pool is fixed; labelled samples are",
           "nested. `bert_ner_extra_ce` is BERT NER plus the KL phase's CE steps with no KL term: the control",
           "that separates the KL term's effect from the extra CE steps the KL models also take.",
           "Gains are paired by seed against BERT NER (Δ) and against the control (Δc): ▲ gain larger than its",
           "std over seeds, ▼ loss larger than its std.", "", "![learning curve](experiments/plots/learning_curve.png)", ""]
    for name in ("learning_curve", "biased"):
        section_runs = curves.get(name, {}).get("runs", [])
        if not section_runs:
            continue
        if name == "biased":
            out += ["## 2. Biased labelled sample", "",
                    "Sentences with fewer O words drawn first (weight exp(-strength × O share)). `bert_dd_kl` takes",
                    "its prior from the (biased) labelled sample; `bert_dd_kl_given_prior` from a user-given prior",
                    "(the category shares of the unbiased 2,560-sentence labelled split). \"Δ vs random\" is the",
                    "biased mean minus the random-sample mean of the same model and size (± the std of that",
                    "difference).", "", "![biased minus random](experiments/plots/biased_vs_random.png)", ""]
            random_runs = curves.get("learning_curve", {}).get("runs", [])
            bias_plot(random_runs, section_runs, plots)
        sizes = sorted({r["size"] for r in section_runs})
        models = list(dict.fromkeys(r["model"] for r in section_runs))
        rows = []
        for size in sizes:
            for model in models:
                rs = [r for r in section_runs if r["size"] == size and r["model"] == model]
                gain = paired_gain(section_runs, model, "bert_ner", "mean_f1", size=size)
                control = paired_gain(section_runs, model, "bert_ner_extra_ce", "mean_f1", size=size)
                is_kl = model not in CE_MODELS
                row = [size, model, cell([r["mean_f1"] for r in rs]), cell([r["entity_f1"] for r in rs]),
                       f"{gain[0]:+.4f}{mark(*gain)}" if model != "bert_ner" else "",
                       f"{control[0]:+.4f}{mark(*control)}" if is_kl else "",
                       f"{np.mean([r['labelled_o_share'] for r in rs]):.3f}"]
                if name == "biased":
                    versus = difference([r["mean_f1"] for r in rs],
                                        [r["mean_f1"] for r in random_runs if r["size"] == size and r["model"] == model])
                    row.append("" if np.isnan(versus[0]) else f"{versus[0]:+.4f} ± {versus[1]:.4f}")
                rows.append(row)
        header = ["labelled", "model", "mean F1", "entity F1", "Δ mean F1 vs BERT NER", "Δc vs extra-CE control",
                  "O share of sample"] + (["Δ vs random"] if name == "biased" else [])
        out += [table(header, rows), ""]
    return "\n".join(out)


def seed_gain(runs: list, reference: list) -> str:
    """Mean F1 of ``runs`` minus that of ``reference`` paired by seed, marked ▲/▼."""
    by_seed = {r["seed"]: r["mean_f1"] for r in reference}
    gain = stats([r["mean_f1"] - by_seed[r["seed"]] for r in runs if r["seed"] in by_seed])
    return f"{gain[0]:+.4f}{mark(*gain)}"


def regularizer_section(data: dict) -> str:
    out = ["## 3. Traditional regularizers", "",
           f"Chosen on validation (BERT NER, mean F1 over selection seeds): weight decay "
           f"{data['chosen']['weight_decay']}, dropout {data['chosen']['dropout']}.", ""]
    for option, rows in data["selection"].items():
        out += [table([option, "validation mean F1", "validation entity F1"],
                      [[r["value"], f"{r['validation_mean_f1']:.4f}", f"{r['validation_entity_f1']:.4f}"] for r in rows]), ""]
    grouped = group(data["runs"], "regularizer", "model")
    rows = []
    for (regularizer, model), rs in grouped.items():
        rows.append([regularizer, model, cell([r["mean_f1"] for r in rs]), cell([r["entity_f1"] for r in rs]),
                     cell([r["accuracy_no_o"] for r in rs]),
                     seed_gain(rs, grouped[("none", model)]) if regularizer != "none" else "",
                     seed_gain(rs, grouped[(regularizer, "bert_ner_extra_ce")]) if model not in CE_MODELS else ""])
    out += ["Test split. Δ: paired by seed, against the same model without a regularizer, and (Δc) against the",
            "extra-CE control with the same regularizer; ▲/▼ a gain/loss larger than its std over seeds.", "",
            table(["regularizer", "model", "mean F1", "entity F1", "accuracy no O", "Δ vs none",
                   "Δc vs extra-CE control"], rows), ""]
    return "\n".join(out)


def joint_section(data: dict) -> str:
    out = ["## 4. Weighted joint loss vs alternating steps", "",
           "lambda chosen on validation: " + ", ".join(f"{m} {v}" for m, v in data["chosen_lambda"].items())
           + ". The joint schedule takes one Adam step on",
           "CE + lambda × KL per round; alternating takes a KL step then a CE step. \"Same wall-clock\" runs as many",
           "joint rounds as fit in the alternating run's measured time.", ""]
    for model, rows in data["selection"].items():
        out += [f"Validation, {model}:", "", table(["lambda", "validation mean F1", "validation entity F1"],
                [[r["value"], f"{r['validation_mean_f1']:.4f}", f"{r['validation_entity_f1']:.4f}"] for r in rows]), ""]
    rows = [[model, schedule, int(np.mean([r["rounds"] for r in rs])), cell([r["mean_f1"] for r in rs]),
             cell([r["entity_f1"] for r in rs]), cell([r["train_seconds"] for r in rs], 2)]
            for (model, schedule), rs in group(data["runs"], "model", "schedule").items()]
    out += ["Test split:", "", table(["model", "schedule", "rounds", "mean F1", "entity F1", "train seconds"], rows), ""]
    return "\n".join(out)


def features_section(data: dict) -> str:
    cost = data["cost"]
    out = ["## 5. Features: layers and pooling", "",
           "BERT NER trained on 80% of the labelled split, scored on the other 20%, mean over selection seeds.",
           f"Best: layers {data['best']['layers']}, {data['best']['pooling']} pooling; pipeline default: layers "
           f"{data['default']['layers']}, {data['default']['pooling']} pooling.", ""]
    rows = [[" ".join(map(str, r["layers"])), r["pooling"], f"{r['validation_mean_f1']:.4f}",
             f"{r['validation_entity_f1']:.4f}", f"{r['validation_accuracy_no_o']:.4f}"]
            for r in sorted(data["grid"], key=lambda r: -r["validation_mean_f1"])]
    out += [table(["layers (mean of)", "pooling", "val mean F1", "val entity F1", "val accuracy no O"], rows), "",
            f"Cache cost: every choice here averages layers, so each is {cost['full_corpus_bytes_per_choice'] / 2**30:.2f} GiB "
            f"(float16) for the full corpus; keeping all hidden states to choose later would take "
            f"{cost['full_corpus_bytes_all_layers'] / 2**30:.2f} GiB. Encoding all layers of the "
            f"{cost['labelled_words']:,} labelled words took "
            + " / ".join(f"{s} s ({p})" for p, s in cost["all_layer_seconds_on_labelled_split"].items()) + ".", ""]
    return "\n".join(out)


def class_weight_section(data: dict) -> str:
    rows = []
    for (model, weighting), rs in group(data["runs"], "model", "class_weights").items():
        rows.append([model, "yes" if weighting else "no", cell([r["mean_f1"] for r in rs]),
                     *[cell([r["f1"].get(c) for r in rs], 3) for c in RARE], cell([r["accuracy_no_o"] for r in rs])])
    return "\n".join(["## 6. Class weighting for rare categories", "",
                      "Inverse-frequency class weights in every CE step; test per-category F1.", "",
                      table(["model", "class weights", "mean F1", *[f"{c} F1" for c in RARE], "accuracy no O"], rows), ""])


def target_gradient_section(data: dict) -> str:
    rows = [[split, model, "on (seed)" if flag else "off (DEC)", cell([r["mean_f1"] for r in rs]),
             cell([r["entity_f1"] for r in rs]), cell([r["accuracy_no_o"] for r in rs])]
            for (split, model, flag), rs in group(data["runs"], "split", "model", "target_gradient").items()]
    return "\n".join(["## 7. Confidence KL: gradient through the target", "",
                      "DEC treats the sharpened target p as fixed; the seed let gradients flow through it.", "",
                      table(["split", "model", "target gradient", "mean F1", "entity F1", "accuracy no O"], rows), ""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", default="reports/experiments")
    parser.add_argument("--out", default="reports/experiments.md")
    parser.add_argument("--plots", default="reports/experiments")
    args = parser.parse_args()
    runs_dir, plots = Path(args.runs), Path(args.plots) / "plots"
    data = {p.stem: json.loads(p.read_text()) for p in sorted(runs_dir.glob("*.json"))}
    seconds = {name: d["seconds"] for name, d in data.items()}
    parts = ["# Experiments", "",
             "Generated by `dvc repro experiments/dvc.yaml` from `reports/experiments/*.json`; every number is a",
             "mean ± sample std over seeds on the fixed test split unless it says validation. Every selection",
             "(layers, lambda, weight decay, dropout) was made on a validation part of the labelled split.",
             "Compute per experiment: " + ", ".join(f"{name} {s:.0f} s" for name, s in seconds.items())
             + f"; {sum(seconds.values()) / 60:.0f} minutes in all.", "",
             curve_section(data, plots)]
    for name, section in (("regularizers", regularizer_section), ("joint", joint_section),
                          ("features", features_section), ("class_weights", class_weight_section),
                          ("target_gradient", target_gradient_section)):
        if name in data:
            parts.append(section(data[name]))
    atomic_write_text(Path(args.out), "\n".join(parts) + "\n")


if __name__ == "__main__":
    run_main(main)
