"""The learning-curve sections: the recommendation, the accuracy check, the random and biased samples.

Every figure in their prose is read from learning_curve.json and biased.json:
the sizes, seeds and paired tests from the runs, the seed's epochs and early
stopping's held-out share from their ``protocol`` block (a JSON written before
that block existed gets the same sentences without those two figures).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from experiments.report.plots import bias_plot, learning_curve_plot
from experiments.report.tables import (
    cell,
    control_of,
    difference,
    gain_cell,
    p_text,
    paired_by_seed,
    share,
    significant_gain,
    table,
)  # fmt: skip
from heads.stats import SIGNIFICANCE, mean_std

METHODS = ("ner_self_training", "ner_entropy", "ner_dd_kl", "ner_conf_kl", "ner_both_kl")  # each has X_control


def epochs_of(curve: dict) -> int | None:
    """The seed's fixed epochs (``bert_ner``) the curve ran with, or None where its JSON does not say."""
    return curve.get("protocol", {}).get("bert_ner_epochs")


def recommendation_section(curve: dict) -> str:
    """Which method to use at which labelled size, generated from the learning curve's paired tests."""
    runs = curve.get("runs", [])
    if not runs:
        return ""
    models = list(dict.fromkeys(r["model"] for r in runs))
    methods = [m for m in METHODS if m in models and f"{m}_control" in models]
    peer = "crf_peer" in models
    rows, wins, above = [], [], []
    for size in sorted({r["size"] for r in runs}):
        tests = {m: paired_by_seed(runs, m, f"{m}_control", "entity_f1", size=size) for m in methods}
        winners = [m for m in tests if significant_gain(tests[m])]
        best = max(winners or tests, key=lambda m: tests[m]["gain"]) if tests else None
        converged = paired_by_seed(runs, "bert_ner_es", "bert_ner", "entity_f1", size=size)
        base = mean_std([r["entity_f1"] for r in runs if r["size"] == size and r["model"] == "bert_ner_es"])[0]
        if best and significant_gain(tests[best]):
            verdict, recommended = f"use `{best}`", best
            wins.append(size)
        else:
            verdict = f"use `bert_ner_es`: no method beats its control at p < {SIGNIFICANCE}"
            recommended = "bert_ner_es"
        row = [
            size,
            verdict,
            f"{base:.4f}",
            f"`{best}` {gain_cell(tests[best])}" if best else "n/a",
            "; ".join(f"{m} {tests[m]['gain']:+.4f} ({p_text(tests[m]['p'])})" for m in methods if m != best),
            gain_cell(converged),
        ]
        if peer:
            versus = paired_by_seed(runs, recommended, "crf_peer", "entity_f1", size=size)
            above.append(versus["gain"] > 0)
            row.append(gain_cell(versus))
        rows.append(row)
    seeds = max(len({r["seed"] for r in runs if r["size"] == size}) for size in {r["size"] for r in runs})
    summary = (
        f"A method beats its matched control at p < {SIGNIFICANCE} on test entity F1 at {len(wins)} of "
        f"{len(rows)} sizes ({', '.join(map(str, wins)) or 'none'})."
    )
    without = [str(row[0]) for row in rows if row[0] not in wins]
    if without:
        summary += (
            f" At {', '.join(without)} labelled sentences none does, so the converged supervised head is the "
            "recommendation there."
        )
    if peer:
        summary += (
            f" The recommended model is above the CRF peer (trained on the same labelled sample) at {sum(above)} of "
            f"{len(above)} sizes."
        )
    epochs = epochs_of(curve)
    return "\n".join(
        [
            "## Recommendation",
            "",
            f"Generated from the learning curve (section 1): {seeds} seeds per size, each method against its",
            "matched control (the same CE steps on the same labelled batches, without the unlabelled term), paired",
            f"by seed, two-sided paired t-test; ✔ a gain with p < {SIGNIFICANCE}, ✘ a loss with p < {SIGNIFICANCE}. "
            + summary,
            "",
            table(
                [
                    "labelled",
                    "recommendation",
                    "bert_ner_es entity F1",
                    "best method vs its control",
                    "the other methods vs theirs",
                    f"converged vs {epochs} epochs" if epochs else "converged vs the seed's epochs",
                    *(["recommended vs the CRF peer"] if peer else []),
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
        test = paired_by_seed(runs, "ner_conf_kl", "bert_ner_es", "accuracy", size=size)
        if not np.isnan(test["gain"]):
            lines.append(f"{size}: {100 * test['gain']:+.2f} points ({p_text(test['p'])})")
    if not lines:
        return ""
    return (
        "Accuracy of the confidence KL at its validated defaults minus BERT NER's (converged), paired by "
        "seed: " + "; ".join(lines) + ".\n"
    )


def curve_intro(curve: dict) -> list[str]:
    """Section 1's opening paragraph: the metrics, the samples and the supervised heads."""
    epochs = epochs_of(curve)
    held_out = curve.get("protocol", {}).get("early_stopping_validation_fraction")
    return [
        "Test entity F1 (seqeval-style, the headline), the seed's mean F1 and accuracy: mean ± std over seeds.",
        "The unlabelled pool is fixed; labelled samples are nested. `bert_ner` is the seed's schedule "
        + (f"({epochs}" if epochs else "(a fixed number of"),
        "epochs); `bert_ner_es` is trained to convergence (early stopping on "
        + (share(held_out) if held_out else "a held-out part")
        + " of the labelled sample, then",
        "refit on all of it) and is the starting point of every semi-supervised model. Each `X_control` takes",
        "X's CE steps on the same labelled batches in the same order, with no unlabelled term. Δc: X minus",
        "its control, paired by seed, with the paired t-test's p-value (for `bert_ner_es` the reference is",
        "`bert_ner`).",
    ]


def curve_section(data: dict, plots: Path) -> str:
    """Sections 1 and 2 (random and biased labelled samples) with their two plots written under ``plots``."""
    random_runs = data.get("learning_curve", {}).get("runs", [])
    runs = [r for name in ("learning_curve", "biased") for r in data.get(name, {}).get("runs", [])]
    learning_curve_plot(runs, plots / "learning_curve.png")
    out = [
        "## 1. Learning curve (random labelled sample)",
        "",
        *curve_intro(data.get("learning_curve", {})),
        "",
        "![learning curve](experiments/plots/learning_curve.png)",
        "",
    ]
    for name in ("learning_curve", "biased"):
        section_runs = data.get(name, {}).get("runs", [])
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
            bias_plot(random_runs, section_runs, plots / "biased_vs_random.png")
        out += [sample_table(section_runs, random_runs if name == "biased" else None), ""]
    return "\n".join(out)


def sample_table(runs: list, random_runs: list | None) -> str:
    """Per size and model: test scores, the paired gain over its control and (biased) the gap to random."""
    sizes = sorted({r["size"] for r in runs})
    models = list(dict.fromkeys(r["model"] for r in runs))
    rows = []
    for size in sizes:
        for model in models:
            rs = [r for r in runs if r["size"] == size and r["model"] == model]
            if not rs:
                continue
            reference = control_of(model, models)
            row = [
                size,
                model,
                cell([r["entity_f1"] for r in rs]),
                cell([r["mean_f1"] for r in rs]),
                cell([100 * r["accuracy"] for r in rs], 2),
                gain_cell(paired_by_seed(runs, model, reference, "entity_f1", size=size)) if reference else "",
            ]
            if random_runs is not None:
                versus = difference(
                    [r["entity_f1"] for r in rs],
                    [r["entity_f1"] for r in random_runs if r["size"] == size and r["model"] == model],
                )
                row.append("" if np.isnan(versus[0]) else f"{versus[0]:+.4f} ± {versus[1]:.4f}")
            rows.append(row)
    header = ["labelled", "model", "entity F1", "mean F1", "accuracy %", "Δc entity F1 vs control (p)"]
    return table(header + (["Δ entity F1 vs random"] if random_runs is not None else []), rows)
