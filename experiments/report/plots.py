"""The report's figures: the learning curve and the biased-minus-random gap, per model and labelled size, and the
active-learning curves per strategy."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from experiments.report.tables import difference, group
from heads.plots import pyplot, save_png_atomic
from heads.stats import mean_std


def size_axis(axis, sizes) -> None:
    """A log x axis labelled with the labelled sizes themselves."""
    axis.set_xscale("log")
    axis.set_xticks(sorted(sizes), [str(size) for size in sorted(sizes)])
    axis.minorticks_off()
    axis.set_xlabel("labelled sentences")


def learning_curve_plot(runs: list, path: Path) -> None:
    """Test mean F1 and entity F1 (mean ± std over seeds) against labelled size, random and biased samples."""
    plt = pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.5))
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
                means = [mean_std([r[metric] for r in rs])[0] for _, rs in points]
                stds = [mean_std([r[metric] for r in rs])[1] for _, rs in points]
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
    save_png_atomic(figure, path)
    plt.close(figure)


def bias_plot(random_runs: list, biased_runs: list, path: Path) -> None:
    """Biased minus random test mean F1, per model and labelled size."""
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
    save_png_atomic(figure, path)
    plt.close(figure)


def active_learning_plot(runs: list, path: Path) -> None:
    """Test entity F1 (mean over seeds, band ± std) against labelled sentences and against labelled words, a line
    per strategy, random dashed."""
    plt = pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    strategies = sorted(dict.fromkeys(r["strategy"] for r in runs), key=lambda s: s != "random")
    for color, strategy in enumerate(strategies):
        points = sorted(group([r for r in runs if r["strategy"] == strategy], "sentences").items())
        sentences = np.array([size for (size,), _ in points], dtype=float)
        words = np.array([mean_std([r["words"] for r in rs])[0] for _, rs in points])
        means, stds = np.array([mean_std([r["entity_f1"] for r in rs]) for _, rs in points]).T
        for axis, x in zip(axes, (sentences, words)):
            style = "--" if strategy == "random" else "-"
            axis.plot(x, means, linestyle=style, marker="o", markersize=3, color=f"C{color}", label=strategy)
            axis.fill_between(x, means - stds, means + stds, color=f"C{color}", alpha=0.15, linewidth=0)
    for axis, label in zip(axes, ("labelled sentences", "labelled words")):
        axis.set_xlabel(label)
        axis.set_ylabel("test entity F1")
        axis.grid(alpha=0.3)
    axes[1].legend(fontsize=7)
    save_png_atomic(figure, path)
    plt.close(figure)
