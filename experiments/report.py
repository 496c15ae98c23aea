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
CE_MODELS = ("bert_ner", "bert_ner_extra_ce")  # heads without a KL term


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
        gaps = [
            difference(
                [r["mean_f1"] for r in biased_runs if r["model"] == model and r["size"] == size],
                [r["mean_f1"] for r in random_runs if r["model"] == model and r["size"] == size],
            )
            for size in sizes
        ]
        if all(np.isnan(mean) for mean, _ in gaps):
            continue
        axis.errorbar(
            sizes,
            [g[0] for g in gaps],
            yerr=[g[1] for g in gaps],
            marker="o",
            markersize=3,
            capsize=2,
            color=f"C{color}",
            label=model,
        )
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
                points = sorted(
                    group([r for r in runs if r["model"] == model and r["sample"] == sample], "size").items()
                )
                if not points:
                    continue
                sizes = [size for (size,), _ in points]
                means = [stats([r[metric] for r in rs])[0] for _, rs in points]
                stds = [stats([r[metric] for r in rs])[1] for _, rs in points]
                axis.errorbar(
                    sizes,
                    means,
                    yerr=stds,
                    linestyle=style,
                    marker="o",
                    markersize=3,
                    capsize=2,
                    color=f"C{color}",
                    label=f"{model} ({sample})",
                )
        size_axis(axis, {r["size"] for r in runs})
        axis.set_ylabel(metric.replace("_", " "))
        axis.grid(alpha=0.3)
    axes[1].legend(fontsize=7, ncol=2)
    save_png_atomic(figure, plots / "learning_curve.png")
    plt.close(figure)

    out = [
        "## 1. Learning curve (random labelled sample)",
        "",
        "Test entity F1 (seqeval-style, the headline), the seed's mean F1 and accuracy: mean ± std over seeds.",
        "The unlabelled pool is fixed; labelled samples are nested. `bert_ner` is the seed's schedule (20",
        "epochs); `bert_ner_es` is trained to convergence (early stopping on 20% of the labelled sample, then",
        "refit on all of it) and is the starting point of every semi-supervised model. Each `X_control` takes",
        "X's CE steps on the same labelled batches in the same order, with no unlabelled term. Δc: X minus",
        "its control, paired by seed, with the paired t-test's p-value (for `bert_ner_es` the reference is",
        "`bert_ner`).",
        "",
        "![learning curve](experiments/plots/learning_curve.png)",
        "",
    ]
    for name in ("learning_curve", "biased"):
        section_runs = curves.get(name, {}).get("runs", [])
        if not section_runs:
            continue
        if name == "biased":
            out += [
                "## 2. Biased labelled sample",
                "",
                "Sentences with fewer O words drawn first (weight exp(-strength × O share)). The data-",
                "distribution KL takes its prior from the (biased) labelled sample; `..._given_prior` from a",
                'user-given prior (the category shares of the unbiased labelled split). "Δ vs random" is the',
                "biased mean minus the random-sample mean of the same model and size (± the std of that",
                "difference).",
                "",
                "![biased minus random](experiments/plots/biased_vs_random.png)",
                "",
            ]
            random_runs = curves.get("learning_curve", {}).get("runs", [])
            bias_plot(random_runs, section_runs, plots)
        sizes = sorted({r["size"] for r in section_runs})
        models = list(dict.fromkeys(r["model"] for r in section_runs))
        rows = []
        for size in sizes:
            for model in models:
                rs = [r for r in section_runs if r["size"] == size and r["model"] == model]
                if not rs:
                    continue
                reference = control_of(model, models)
                row = [
                    size,
                    model,
                    cell([r["entity_f1"] for r in rs]),
                    cell([r["mean_f1"] for r in rs]),
                    cell([100 * r["accuracy"] for r in rs], 2),
                    gain_cell(paired_test(section_runs, model, reference, "entity_f1", size=size)) if reference else "",
                ]
                if name == "biased":
                    versus = difference(
                        [r["entity_f1"] for r in rs],
                        [r["entity_f1"] for r in random_runs if r["size"] == size and r["model"] == model],
                    )
                    row.append("" if np.isnan(versus[0]) else f"{versus[0]:+.4f} ± {versus[1]:.4f}")
                rows.append(row)
        header = ["labelled", "model", "entity F1", "mean F1", "accuracy %", "Δc entity F1 vs control (p)"] + (
            ["Δ entity F1 vs random"] if name == "biased" else []
        )
        out += [table(header, rows), ""]
    return "\n".join(out)


METHODS = ("ner_self_training", "ner_entropy", "ner_dd_kl", "ner_conf_kl", "ner_both_kl")  # each has X_control


def control_of(model: str, models) -> str | None:
    """The matched control a model is tested against (bert_ner_es: the seed's schedule), or None."""
    if model == "bert_ner_es" and "bert_ner" in models:
        return "bert_ner"
    return f"{model}_control" if f"{model}_control" in models else None


def paired_test(runs, model, reference, metric, **where) -> dict:
    """Mean gain of ``model`` over ``reference`` paired by seed, its std and the paired t-test's p-value."""
    from scipy.stats import ttest_rel

    by_seed = {}
    for run in runs:
        if all(run.get(k) == v for k, v in where.items()) and run["model"] in (model, reference):
            by_seed.setdefault(run["seed"], {})[run["model"]] = run[metric]
    pairs = [(pair[model], pair[reference]) for pair in by_seed.values() if len(pair) == 2]
    if len(pairs) < 2:
        return {"gain": float("nan"), "std": float("nan"), "p": float("nan"), "seeds": len(pairs)}
    ours, theirs = np.array(pairs).T
    gains = ours - theirs
    p = 1.0 if np.allclose(gains, gains[0]) and gains[0] == 0 else float(ttest_rel(ours, theirs).pvalue)
    return {"gain": float(gains.mean()), "std": float(gains.std(ddof=1)), "p": p, "seeds": len(pairs)}


def p_text(p: float) -> str:
    return "n/a" if np.isnan(p) else f"p={p:.3f}" if p >= 0.001 else "p<0.001"


def gain_cell(test: dict) -> str:
    if np.isnan(test["gain"]):
        return "n/a"
    star = " ✔" if test["p"] < 0.05 and test["gain"] > 0 else " ✘" if test["p"] < 0.05 else ""
    return f"{test['gain']:+.4f} ± {test['std']:.4f} ({p_text(test['p'])}){star}"


def recommendation_section(curve: dict) -> str:
    """Which method to use at which labelled size, generated from the learning curve's paired tests."""
    runs = curve.get("runs", [])
    if not runs:
        return ""
    models = list(dict.fromkeys(r["model"] for r in runs))
    methods = [m for m in METHODS if m in models and f"{m}_control" in models]
    rows, wins = [], []
    for size in sorted({r["size"] for r in runs}):
        tests = {m: paired_test(runs, m, f"{m}_control", "entity_f1", size=size) for m in methods}
        winners = [m for m in tests if tests[m]["p"] < 0.05 and tests[m]["gain"] > 0]
        best = max(winners or tests, key=lambda m: tests[m]["gain"]) if tests else None
        converged = paired_test(runs, "bert_ner_es", "bert_ner", "entity_f1", size=size)
        base = stats([r["entity_f1"] for r in runs if r["size"] == size and r["model"] == "bert_ner_es"])[0]
        if best and tests[best]["p"] < 0.05 and tests[best]["gain"] > 0:
            verdict = f"use `{best}`"
            wins.append(size)
        else:
            verdict = "use `bert_ner_es`: no method beats its control at p < 0.05"
        rows.append(
            [
                size,
                verdict,
                f"{base:.4f}",
                f"`{best}` {gain_cell(tests[best])}" if best else "n/a",
                "; ".join(f"{m} {tests[m]['gain']:+.4f} ({p_text(tests[m]['p'])})" for m in methods if m != best),
                gain_cell(converged),
            ]
        )
    seeds = max(len({r["seed"] for r in runs if r["size"] == size}) for size in {r["size"] for r in runs})
    summary = (
        f"A method beats its matched control at p < 0.05 on test entity F1 at {len(wins)} of "
        f"{len(rows)} sizes ({', '.join(map(str, wins)) or 'none'})."
    )
    without = [str(row[0]) for row in rows if row[0] not in wins]
    if without:
        summary += (
            f" At {', '.join(without)} labelled sentences none does, so the converged supervised head is the "
            "recommendation there."
        )
    return "\n".join(
        [
            "## Recommendation",
            "",
            f"Generated from the learning curve (section 1): {seeds} seeds per size, each method against its",
            "matched control (the same CE steps on the same labelled batches, without the unlabelled term), paired",
            "by seed, two-sided paired t-test; ✔ a gain with p < 0.05, ✘ a loss with p < 0.05. " + summary,
            "",
            table(
                [
                    "labelled",
                    "recommendation",
                    "bert_ner_es entity F1",
                    "best method vs its control",
                    "the other methods vs theirs",
                    "converged vs 20 epochs",
                ],
                rows,
            ),
            "",
        ]
    )


def accuracy_check(curve: dict) -> str:
    """The confidence KL's accuracy against the converged BERT NER it starts from, per size."""
    runs = curve.get("runs", [])
    lines = []
    for size in sorted({r["size"] for r in runs}):
        test = paired_test(runs, "ner_conf_kl", "bert_ner_es", "accuracy", size=size)
        if not np.isnan(test["gain"]):
            lines.append(f"{size}: {100 * test['gain']:+.2f} points ({p_text(test['p'])})")
    if not lines:
        return ""
    return (
        "Accuracy of the confidence KL at its validated defaults minus BERT NER's (converged), paired by "
        "seed: " + "; ".join(lines) + ".\n"
    )


ALL_EXPERIMENTS = (
    "selection",
    "learning_curve",
    "biased",
    "regularizers",
    "joint",
    "features",
    "class_weights",
    "target_gradient",
)


def protocol_notes(data: dict) -> list[str]:
    """What this report holds and how its runs were made (seeds, sizes, processes), from the JSONs."""
    notes = []
    curve = data.get("learning_curve")
    if curve:
        params = curve.get("params", {})
        notes.append(
            f"Learning curve: seeds {params.get('seeds')}, labelled sizes {params.get('sizes')}, unlabelled "
            f"pool = every non-test sentence outside the {params.get('pool_size')}-sentence labelled pool."
        )
        if curve.get("split_into_processes"):
            notes.append(
                f"It ran as separate processes over the size groups {curve['split_into_processes']} and "
                "was merged into one JSON."
            )
    notes.append(
        "Every head here follows section `heads` of params.yaml (`experiments/runner.py`): with its defaults, "
        "the MLP on the encoder's features alone, without the word-shape flags that the pipeline's rows of ours "
        "add (`bert_ner_es.head_settings`); a method and its control always share the same inputs."
    )
    missing = [name for name in ALL_EXPERIMENTS if name not in data]
    if missing:
        notes.append("Not in this report (not rerun under this protocol): " + ", ".join(missing) + ".")
    return [" ".join(notes), ""] if notes else []


def selection_section(data: dict, used: dict | None = None) -> str:
    """The validated defaults: each grid on validation and whether the learning curve ran with the choice.

    ``used``: the settings the learning curve ran with (params.yaml then); without it, those the
    selection itself saw.
    """
    out = [
        "## 0. Validated defaults",
        "",
        "Every choice below was made on the validation part (20%) of the 2,560-sentence labelled split, mean",
        "validation entity F1 over the selection seeds, teachers = BERT NER trained to convergence on the",
        "other 80%. Each model's line says whether the learning curve ran with the validated choice (the",
        "pipeline's params.yaml holds every choice below).",
        "",
    ]
    rows = [[r["seed"], r["best_step"], f"{r['converged']:.4f}", f"{r['epochs_20']:.4f}"] for r in data["supervised"]]
    out += [
        "Early stopping (validation entity F1):",
        "",
        table(["seed", "chosen steps", "converged", "20 epochs (the seed's)"], rows),
        "",
    ]
    grid_values = data.get("grid_values", {})
    for model, rows in data["grids"].items():
        chosen, default = data["chosen"][model], (used or data["defaults"]).get(model, {})
        keys = [
            k
            for k in ("schedule", "kl_learning_rate", "target_gradient", "kl_weight", "threshold", "per_category")
            if any(k in r for r in rows)
        ]
        body = [
            [r.get(k, "") for k in keys]
            + [
                f"{r['validation_entity_f1']:.4f}",
                f"{r['control_entity_f1']:.4f}" if "control_entity_f1" in r else "",
                f"{100 * r['validation_accuracy']:.2f}",
            ]
            for r in rows
        ]
        choice = {k: chosen[k] for k in keys if k in chosen}
        agrees = all(default.get(k) == v for k, v in choice.items() if k in default)
        edge = [
            k
            for k, values in (
                ("kl_learning_rate", grid_values.get("kl_learning_rates")),
                ("kl_weight", grid_values.get("lambdas")),
                ("threshold", grid_values.get("thresholds")),
            )
            if k in choice and values and choice[k] in (min(values), max(values))
        ]
        out += [
            f"**{model}**: chosen {choice}; "
            + (
                f"the learning curve ran {'it ✓' if agrees else f'{default} instead'}"
                if used
                else f"params.yaml {'holds it ✓' if agrees else f'differs: {default}'}"
            )
            + (f"; on the grid's edge: {', '.join(edge)}" if edge else "")
            + ".",
            "",
            table(keys + ["validation entity F1", "its control", "validation accuracy %"], body),
            "",
        ]
    return "\n".join(out)


def seed_gain(runs: list, reference: list) -> str:
    """Mean F1 of ``runs`` minus that of ``reference`` paired by seed, marked ▲/▼."""
    by_seed = {r["seed"]: r["mean_f1"] for r in reference}
    gain = stats([r["mean_f1"] - by_seed[r["seed"]] for r in runs if r["seed"] in by_seed])
    return f"{gain[0]:+.4f}{mark(*gain)}"


def regularizer_section(data: dict) -> str:
    out = [
        "## 3. Traditional regularizers",
        "",
        f"Chosen on validation (BERT NER, mean F1 over selection seeds): weight decay "
        f"{data['chosen']['weight_decay']}, dropout {data['chosen']['dropout']}.",
        "",
    ]
    for option, rows in data["selection"].items():
        out += [
            table(
                [option, "validation mean F1", "validation entity F1"],
                [[r["value"], f"{r['validation_mean_f1']:.4f}", f"{r['validation_entity_f1']:.4f}"] for r in rows],
            ),
            "",
        ]
    grouped = group(data["runs"], "regularizer", "model")
    rows = []
    for (regularizer, model), rs in grouped.items():
        rows.append(
            [
                regularizer,
                model,
                cell([r["mean_f1"] for r in rs]),
                cell([r["entity_f1"] for r in rs]),
                cell([r["accuracy_no_o"] for r in rs]),
                seed_gain(rs, grouped[("none", model)]) if regularizer != "none" else "",
                seed_gain(rs, grouped[(regularizer, "bert_ner_extra_ce")]) if model not in CE_MODELS else "",
            ]
        )
    out += [
        "Test split. Δ: paired by seed, against the same model without a regularizer, and (Δc) against the",
        "extra-CE control with the same regularizer; ▲/▼ a gain/loss larger than its std over seeds.",
        "",
        table(
            ["regularizer", "model", "mean F1", "entity F1", "accuracy no O", "Δ vs none", "Δc vs extra-CE control"],
            rows,
        ),
        "",
    ]
    return "\n".join(out)


def joint_section(data: dict) -> str:
    out = [
        "## 4. Weighted joint loss vs alternating steps",
        "",
        "lambda chosen on validation: "
        + ", ".join(f"{m} {v}" for m, v in data["chosen_lambda"].items())
        + ". The joint schedule takes one Adam step on",
        'CE + lambda × KL per round; alternating takes a KL step then a CE step. "Same wall-clock" runs as many',
        "joint rounds as fit in the alternating run's measured time.",
        "",
    ]
    for model, rows in data["selection"].items():
        out += [
            f"Validation, {model}:",
            "",
            table(
                ["lambda", "validation mean F1", "validation entity F1"],
                [[r["value"], f"{r['validation_mean_f1']:.4f}", f"{r['validation_entity_f1']:.4f}"] for r in rows],
            ),
            "",
        ]
    rows = [
        [
            model,
            schedule,
            int(np.mean([r["rounds"] for r in rs])),
            cell([r["mean_f1"] for r in rs]),
            cell([r["entity_f1"] for r in rs]),
            cell([r["train_seconds"] for r in rs], 2),
        ]
        for (model, schedule), rs in group(data["runs"], "model", "schedule").items()
    ]
    out += [
        "Test split:",
        "",
        table(["model", "schedule", "rounds", "mean F1", "entity F1", "train seconds"], rows),
        "",
    ]
    return "\n".join(out)


def features_section(data: dict) -> str:
    cost = data["cost"]
    out = [
        "## 5. Features: layers and pooling",
        "",
        "BERT NER trained on 80% of the labelled split, scored on the other 20%, mean over selection seeds.",
        f"Best: layers {data['best']['layers']}, {data['best']['pooling']} pooling; pipeline default: layers "
        f"{data['default']['layers']}, {data['default']['pooling']} pooling.",
        "",
    ]
    rows = [
        [
            " ".join(map(str, r["layers"])),
            r["pooling"],
            f"{r['validation_mean_f1']:.4f}",
            f"{r['validation_entity_f1']:.4f}",
            f"{r['validation_accuracy_no_o']:.4f}",
        ]
        for r in sorted(data["grid"], key=lambda r: -r["validation_mean_f1"])
    ]
    out += [
        table(["layers (mean of)", "pooling", "val mean F1", "val entity F1", "val accuracy no O"], rows),
        "",
        f"Cache cost: every choice here averages layers, so each is {cost['full_corpus_bytes_per_choice'] / 2**30:.2f} GiB "
        f"(float16) for the full corpus; keeping all hidden states to choose later would take "
        f"{cost['full_corpus_bytes_all_layers'] / 2**30:.2f} GiB. Encoding all layers of the "
        f"{cost['labelled_words']:,} labelled words took "
        + " / ".join(f"{s} s ({p})" for p, s in cost["all_layer_seconds_on_labelled_split"].items())
        + ".",
        "",
    ]
    return "\n".join(out)


def class_weight_section(data: dict) -> str:
    rows = []
    for (model, weighting), rs in group(data["runs"], "model", "class_weights").items():
        rows.append(
            [
                model,
                "yes" if weighting else "no",
                cell([r["mean_f1"] for r in rs]),
                *[cell([r["f1"].get(c) for r in rs], 3) for c in RARE],
                cell([r["accuracy_no_o"] for r in rs]),
            ]
        )
    return "\n".join(
        [
            "## 6. Class weighting for rare categories",
            "",
            "Inverse-frequency class weights in every CE step; test per-category F1.",
            "",
            table(["model", "class weights", "mean F1", *[f"{c} F1" for c in RARE], "accuracy no O"], rows),
            "",
        ]
    )


def target_gradient_section(data: dict) -> str:
    rows = [
        [
            split,
            model,
            "on (seed)" if flag else "off (DEC)",
            cell([r["mean_f1"] for r in rs]),
            cell([r["entity_f1"] for r in rs]),
            cell([r["accuracy_no_o"] for r in rs]),
        ]
        for (split, model, flag), rs in group(data["runs"], "split", "model", "target_gradient").items()
    ]
    return "\n".join(
        [
            "## 7. Confidence KL: gradient through the target",
            "",
            "DEC treats the sharpened target p as fixed; the seed let gradients flow through it.",
            "",
            table(["split", "model", "target gradient", "mean F1", "entity F1", "accuracy no O"], rows),
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", default="reports/experiments")
    parser.add_argument("--out", default="reports/experiments.md")
    parser.add_argument("--plots", default="reports/experiments")
    args = parser.parse_args()
    runs_dir, plots = Path(args.runs), Path(args.plots) / "plots"
    data = {p.stem: json.loads(p.read_text()) for p in sorted(runs_dir.glob("*.json"))}
    seconds = {name: d["seconds"] for name, d in data.items()}
    parts = [
        "# Experiments",
        "",
        "Generated by `dvc repro experiments/dvc.yaml` from `reports/experiments/*.json`; every number is a",
        "mean ± sample std over seeds on the fixed test split unless it says validation. Every selection",
        "(layers, lambda, weight decay, dropout) was made on a validation part of the labelled split.",
        "Compute per experiment: "
        + ", ".join(f"{name} {s:.0f} s" for name, s in seconds.items())
        + f"; {sum(seconds.values()) / 60:.0f} minutes in all.",
        "",
        *protocol_notes(data),
        recommendation_section(data.get("learning_curve", {})),
        accuracy_check(data.get("learning_curve", {})),
        *(
            [selection_section(data["selection"], data.get("learning_curve", {}).get("settings"))]
            if "selection" in data
            else []
        ),
        curve_section(data, plots),
    ]
    for name, section in (
        ("regularizers", regularizer_section),
        ("joint", joint_section),
        ("features", features_section),
        ("class_weights", class_weight_section),
        ("target_gradient", target_gradient_section),
    ):
        if name in data:
            parts.append(section(data[name]))
    atomic_write_text(Path(args.out), "\n".join(parts) + "\n")


if __name__ == "__main__":
    run_main(main)
