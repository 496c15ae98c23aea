"""The report's cells: runs grouped and paired by seed, numbers formatted for Markdown tables.

The statistics themselves (mean ± std, the paired t-test) are ``heads.stats``.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from heads.stats import SIGNIFICANCE, mean_std, paired_test


def table(header: list[str], rows: list[list]) -> str:
    """A Markdown table of ``rows`` under ``header``."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(map(str, row)) + " |" for row in rows])


def cell(values, digits=4) -> str:
    """ "mean ± std" over seeds of the values that are not None; "n/a" with none."""
    mean, std = mean_std(values)
    return "n/a" if np.isnan(mean) else f"{mean:.{digits}f} ± {std:.{digits}f}"


def share(fraction: float) -> str:
    """A fraction as a whole percentage: 0.2 -> "20%"."""
    return f"{100 * fraction:.0f}%"


def group(runs, *keys) -> dict:
    """{(run[key] for key in keys): [runs]}, in order of first appearance."""
    grouped = defaultdict(list)
    for run in runs:
        grouped[tuple(run[k] for k in keys)].append(run)
    return grouped


def difference(a, b) -> tuple[float, float]:
    """Mean of ``a`` minus mean of ``b`` and the std of that difference (independent samples)."""
    (mean_a, std_a), (mean_b, std_b) = mean_std(a), mean_std(b)
    return mean_a - mean_b, float(np.hypot(std_a, std_b))


def seed_gain(runs: list, reference: list, metric: str = "mean_f1") -> str:
    """``metric`` of ``runs`` minus that of ``reference``, paired by seed: ``gain_cell`` of the paired t-test."""
    by_seed = {r["seed"]: r[metric] for r in reference}
    pairs = [(r[metric], by_seed[r["seed"]]) for r in runs if r["seed"] in by_seed]
    return gain_cell(paired_test([ours for ours, _ in pairs], [theirs for _, theirs in pairs]))


def control_of(model: str, models) -> str | None:
    """The matched control a model is tested against (bert_ner_es: the seed's schedule), or None."""
    if model == "bert_ner_es" and "bert_ner" in models:
        return "bert_ner"
    return f"{model}_control" if f"{model}_control" in models else None


def paired_by_seed(runs, model, reference, metric, **where) -> dict:
    """``heads.stats.paired_test`` of ``model`` against ``reference`` on ``metric``, runs matching ``where``.

    Runs pair by seed; a seed without both models is left out. Returns
    {"gain", "std", "p", "seeds"} (NaN gain, std and p under two pairs).
    """
    by_seed = {}
    for run in runs:
        if all(run.get(k) == v for k, v in where.items()) and run["model"] in (model, reference):
            by_seed.setdefault(run["seed"], {})[run["model"]] = run[metric]
    pairs = [(pair[model], pair[reference]) for pair in by_seed.values() if len(pair) == 2]
    return paired_test([ours for ours, _ in pairs], [theirs for _, theirs in pairs])


def significant_gain(test: dict) -> bool:
    """A gain with p below ``heads.stats.SIGNIFICANCE``."""
    return test["p"] < SIGNIFICANCE and test["gain"] > 0


def p_text(p: float) -> str:
    """ "p=0.012", "p<0.001", or "n/a" for NaN."""
    return "n/a" if np.isnan(p) else f"p={p:.3f}" if p >= 0.001 else "p<0.001"


def gain_cell(test: dict) -> str:
    """ "+gain ± std (p)" of a paired test, ✔ a significant gain, ✘ a significant loss."""
    if np.isnan(test["gain"]):
        return "n/a"
    star = " ✔" if significant_gain(test) else " ✘" if test["p"] < SIGNIFICANCE else ""
    return f"{test['gain']:+.4f} ± {test['std']:.4f} ({p_text(test['p'])}){star}"
