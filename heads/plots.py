"""PNG plots of the evaluation: confusion matrices, the 2-D PCA of the latent
space, and the model comparison. Rendering uses matplotlib's Agg backend (no
display); every PNG is written to a temporary name in its directory and then
renamed, so a half-written plot never stands under the final name.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

# Headline metrics and how a reader sees them.
METRIC_LABELS = {
    "accuracy": "accuracy",
    "accuracy_no_o": "accuracy no O",
    "mean_f1": "mean F1",
    "entity_f1": "entity F1",
}


def pyplot():
    """pyplot on the Agg backend; imported lazily so importing this module
    has no side effect on matplotlib's global state."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png_atomic(figure, path: str | os.PathLike) -> None:
    """Save `figure` as PNG at `path` via a temporary file in the same
    directory and `os.replace`; the figure is closed afterwards."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            figure.savefig(stream, format="png", dpi=120, bbox_inches="tight")
        os.replace(temp_name, path)
    except BaseException:
        if os.path.exists(temp_name):
            os.remove(temp_name)
        raise
    finally:
        pyplot().close(figure)


def _category_colours(num_categories: int) -> list:
    plt = pyplot()
    if num_categories <= 10:
        cmap = plt.get_cmap("tab10")
    elif num_categories <= 20:
        cmap = plt.get_cmap("tab20")
    else:
        cmap = plt.get_cmap("gist_ncar")
        return [cmap(i / num_categories) for i in range(num_categories)]
    return [cmap(i) for i in range(num_categories)]


def plot_confusion(matrix: np.ndarray, categories: Sequence[str], title: str, path: str | os.PathLike) -> None:
    """Write a PNG heat map of a (C, C) confusion matrix (rows true, columns
    predicted) with every cell annotated: two decimals for a normalised
    matrix, whole numbers for counts."""
    matrix = np.asarray(matrix)
    categories = list(categories)
    num_categories = len(categories)
    if matrix.shape != (num_categories, num_categories):
        raise ValueError(f"matrix shape {matrix.shape} does not match {num_categories} categories")
    plt = pyplot()
    # Cells stay legible from 9 to 20 categories: the figure grows, text shrinks.
    side = max(6.0, 0.6 * num_categories + 2.0)
    font_size = max(6.0, min(10.0, 90.0 / num_categories))
    figure, axes = plt.subplots(figsize=(side, side * 0.9))
    top = float(matrix.max()) if matrix.size and matrix.max() > 0 else 1.0
    image = axes.imshow(matrix, cmap="Blues", vmin=0.0, vmax=top)
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)

    is_count = np.issubdtype(matrix.dtype, np.integer)
    for row in range(num_categories):
        for column in range(num_categories):
            value = matrix[row, column]
            text = f"{int(value)}" if is_count else ("0" if value == 0 else f"{value:.2f}")
            colour = "white" if value > 0.5 * top else "black"
            axes.text(column, row, text, ha="center", va="center", fontsize=font_size, color=colour)

    axes.set_xticks(range(num_categories), labels=categories, rotation=45, ha="right")
    axes.set_yticks(range(num_categories), labels=categories)
    axes.set_xlabel("predicted category")
    axes.set_ylabel("true category")
    axes.set_title(title)
    save_png_atomic(figure, path)


def _scatter_by_category(axes, points, labels, categories, colours, limits, title):
    # Most frequent categories first so rare ones are drawn on top.
    counts = np.bincount(labels, minlength=len(categories))
    for c in np.argsort(-counts, kind="stable"):
        if counts[c] == 0:
            continue
        chosen = labels == c
        axes.scatter(
            points[chosen, 0],
            points[chosen, 1],
            s=3,
            alpha=0.5,
            color=colours[c],
            label=f"{categories[c]} ({counts[c]})",
            linewidths=0,
            rasterized=True,
        )
    axes.set_xlim(limits[0])
    axes.set_ylim(limits[1])
    axes.set_xlabel("PC 1")
    axes.set_ylabel("PC 2")
    axes.set_title(title)
    axes.legend(markerscale=4, fontsize=8, loc="best", frameon=True)


def principal_axes(points: np.ndarray, components: int = 2) -> tuple[np.ndarray, np.ndarray, float]:
    """The mean (D,), the top principal axes (D, components) and the share of variance they explain, exactly:
    the eigenvectors of the (D, D) covariance, so N words cost one product (a full SVD of (N, D): 3-8x the time
    at 209,397 words). Each axis's sign puts its largest-magnitude coordinate positive, so it is deterministic."""
    mean = points.mean(axis=0)
    centred = points - mean
    values, vectors = np.linalg.eigh(centred.T @ centred)  # ascending eigenvalues
    top = vectors[:, ::-1][:, :components]
    top = top * np.sign(top[np.argmax(np.abs(top), axis=0), np.arange(components)])
    total = values.sum()
    return mean, top, float(values[::-1][:components].sum() / total) if total > 0 else 0.0


def plot_latent_pca(
    latent: np.ndarray,
    true: np.ndarray,
    pred: np.ndarray,
    categories: Sequence[str],
    path_true: str | os.PathLike,
    path_pred: str | os.PathLike,
    max_points: int = 20000,
    seed: int = 0,
) -> None:
    """Project latent vectors (N, D) to 2-D with one PCA (``principal_axes``) fitted on all of
    them, and write two PNGs of the same projection and axes: coloured by true
    and by predicted category. At most `max_points` words are drawn, chosen
    with `seed` (the same seed draws the same words)."""
    latent = np.asarray(latent, dtype=np.float64)
    true = np.asarray(true, dtype=np.int64)
    pred = np.asarray(pred, dtype=np.int64)
    categories = list(categories)
    if latent.ndim != 2 or latent.shape[0] < 2 or latent.shape[1] < 2:
        raise ValueError(f"latent must be (N >= 2, D >= 2), got {latent.shape}")
    if true.shape != (latent.shape[0],) or pred.shape != (latent.shape[0],):
        raise ValueError(f"true {true.shape} and pred {pred.shape} must be ({latent.shape[0]},)")
    for name, labels in (("true", true), ("pred", pred)):
        if labels.min() < 0 or labels.max() >= len(categories):
            raise ValueError(f"{name} holds ids outside [0, {len(categories)})")
    if max_points < 1:
        raise ValueError(f"max_points must be positive, got {max_points}")

    mean, axes_2d, explained = principal_axes(latent)
    num_words = latent.shape[0]
    if num_words > max_points:
        rng = np.random.default_rng(seed)
        shown = np.sort(rng.choice(num_words, size=max_points, replace=False))
    else:
        shown = np.arange(num_words)
    points = (latent[shown] - mean) @ axes_2d  # (M, 2)
    margin = 0.03 * (points.max(axis=0) - points.min(axis=0) + 1e-12)
    limits = [(points[:, k].min() - margin[k], points[:, k].max() + margin[k]) for k in range(2)]
    explained = 100.0 * explained
    colours = _category_colours(len(categories))

    plt = pyplot()
    for labels, path, which in ((true, path_true, "true"), (pred, path_pred, "predicted")):
        figure, axes = plt.subplots(figsize=(8, 7))
        _scatter_by_category(
            axes,
            points,
            labels[shown],
            categories,
            colours,
            limits,
            f"latent space PCA ({explained:.1f}% variance), {len(shown)} of {num_words} words, by {which} category",
        )
        save_png_atomic(figure, path)


def plot_model_comparison(summary: dict, metric_names: Sequence[str], path: str | os.PathLike) -> None:
    """Write a grouped bar chart: one group per metric, one bar per model at
    its mean over seeds with a ± sample-std error bar, and a black marker at
    the seed project's number where it reported one. `summary` is the output
    of `heads.report.summarise`; metrics are fractions in [0, 1]."""
    models = summary["models"]
    metric_names = list(metric_names)
    if not models or not metric_names:
        raise ValueError("nothing to plot: no models or no metrics")
    plt = pyplot()
    num_models = len(models)
    width = 0.8 / num_models
    figure, axes = plt.subplots(figsize=(max(7.0, 0.5 * len(metric_names) * num_models + 2.0), 5))
    colours = _category_colours(num_models)
    seed_labelled = False
    for m, model in enumerate(models):
        x = np.arange(len(metric_names)) + (m - (num_models - 1) / 2) * width
        means, stds, seed_values = [], [], []
        for name in metric_names:
            stat = model.get(name)
            has_mean = stat is not None and stat.get("mean") is not None
            means.append(stat["mean"] if has_mean else np.nan)
            stds.append(stat["std"] if has_mean else 0.0)
            seed_result = (model.get("seed_results") or {}).get(name)
            seed_values.append(np.nan if seed_result is None else seed_result)
        n_seeds = model.get("n_seeds", 0)
        axes.bar(
            x,
            means,
            width=width * 0.95,
            yerr=stds,
            capsize=3,
            color=colours[m],
            label=f"{model.get('name', model['model'])} (n={n_seeds})",
        )
        seed_values = np.asarray(seed_values, dtype=np.float64)
        if np.isfinite(seed_values).any():
            axes.scatter(
                x,
                seed_values,
                marker="D",
                color="black",
                s=22,
                zorder=3,
                label=None if seed_labelled else "seed project (one run)",
            )
            seed_labelled = True
    axes.set_xticks(np.arange(len(metric_names)), labels=[METRIC_LABELS.get(n, n) for n in metric_names])
    axes.set_ylim(0.0, 1.05)
    axes.set_ylabel("mean ± std over seeds")
    axes.grid(axis="y", alpha=0.3)
    axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    axes.set_title("model comparison on the test split")
    save_png_atomic(figure, path)
