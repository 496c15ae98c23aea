"""Self-training with confident pseudo-labels, and its matched control.

The teacher (at first the best supervised head) labels a fixed pool of
unlabelled sentences; each word whose most likely category is confident
enough (a global probability threshold, or per category the same top share of
the words predicted as it) becomes a pseudo-labelled word. Each round then
takes ``steps`` steps of one Adam on CE(labelled batch) + ``weight`` *
CE(pseudo-labelled batch, confident words only), starting from the teacher's
weights; the student becomes the next round's teacher (Lee 2013; Xie et al.
2020 without noise). The rounds run as ``heads.train``'s compiled scan, one
segment per round, on the same cache and word tables as the KL phase.

The matched control draws the very same batches and takes the same CE steps
on the labelled batches, without the pseudo-labelled term.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax

from heads.batches import Batch, padded_size, sentence_starts
from heads.context import fit_grid
from heads.predict import predict
from heads.steps import ce_objective, init_state, make_optimizer
from heads.tables import word_positions
from heads.train import batch_stream, check_finite, compiled_schedule, device_tables, mean_ce, segment, step_key


@dataclasses.dataclass(frozen=True)
class SelfTraining:
    """One self-training model's recipe (section ``self_training`` plus a model's entry)."""

    rounds: int = 3  # teacher -> student generations
    steps: int = 100  # steps per round, each one labelled and one pseudo-labelled batch
    threshold: float = 0.9  # global: min probability; per_category: quantile kept from
    per_category: bool = False  # each category's words predicted as it (keeps the top 1 - threshold)
    weight: float = 1.0  # of the pseudo-label CE (a per-word mean, like the labelled CE)
    unlabelled_sentences: int = 5120  # the pool the teacher labels, drawn once from the unlabelled split
    learning_rate: float = 1e-3  # of the phase's Adam (fresh at its start, kept across rounds)
    control: bool = False  # the matched control: same batches and steps, no pseudo-labels

    def __post_init__(self):
        if self.rounds < 0 or self.steps < 0 or self.unlabelled_sentences < 1:
            raise ValueError("self_training: rounds and steps must be >= 0, unlabelled_sentences >= 1")
        if not 0 <= self.threshold < 1:
            raise ValueError(f"self_training.threshold must lie in [0, 1), got {self.threshold}")


def confident_pseudo_labels(probabilities, threshold, per_category=False):
    """(labels, keep): each word's most likely category (N,) int32 and whether it is confident (N,) bool.

    Global: keep where the top probability is >= ``threshold``. Per category:
    keep where it is >= the ``threshold`` quantile of the top probabilities of
    the words predicted as the same category, so rare categories keep their
    share instead of vanishing under one global cut.
    """
    probabilities = np.asarray(probabilities, np.float32)  # (N, C)
    labels = probabilities.argmax(1).astype(np.int32)
    confidence = probabilities.max(1)
    if not per_category:
        return labels, confidence >= threshold
    keep = np.zeros(len(labels), bool)
    for category in np.unique(labels):
        chosen = labels == category
        keep[chosen] = confidence[chosen] >= np.quantile(confidence[chosen], threshold)
    return labels, keep


def pseudo_label_step(state, labelled, pseudo, *, apply_fn, optimizer, dropout_key, weight, class_weights=None):
    """One CE-optimizer step on CE(labelled) + weight * CE(pseudo); returns (state, metrics).

    ``pseudo``'s labels are the teacher's and its mask keeps only confident
    words; a batch with none gives a zero term.
    """
    ce_key, pseudo_key = jax.random.split(dropout_key)

    def objective(params):
        ce, metrics = ce_objective(params, labelled, apply_fn, ce_key, class_weights)
        pseudo_ce, pseudo_metrics = ce_objective(params, pseudo, apply_fn, pseudo_key, None)
        return ce + weight * pseudo_ce, {
            **metrics,
            "pseudo_ce_sum": pseudo_metrics["ce_sum"],
            "pseudo_words": pseudo_metrics["words"],
        }

    grads, metrics = jax.grad(objective, has_aux=True)(state.params)
    updates, ce_opt_state = optimizer.update(grads, state.ce_opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    return state._replace(params=params, ce_opt_state=ce_opt_state, step=state.step + 1), metrics


def train_self_training(
    params,
    inputs,
    labels,
    offsets,
    labelled_ids,
    unlabelled_ids,
    recipe: SelfTraining,
    *,
    model,
    batch_sentences=128,
    weight_decay=0.0,
    class_weights=None,
    seed=0,
    pad_multiple=256,
):
    """``recipe.rounds`` rounds of self-training from ``params`` (the teacher); labels of unlabelled words unread.

    Returns (params, history): history[r] = {"ce": mean labelled CE per word
    of round r, "pseudo_share": share of pool words kept as pseudo-labels
    (0 for the control), "pseudo_ce": mean pseudo-label CE per kept word}.
    """
    if len(unlabelled_ids) == 0:
        raise ValueError("self-training needs unlabelled sentences")
    rng = np.random.default_rng(seed)
    total = recipe.rounds * recipe.steps
    labelled_batches = batch_stream(labelled_ids, batch_sentences, rng, total)
    pool = np.sort(
        rng.choice(
            np.asarray(unlabelled_ids, np.int64), min(len(unlabelled_ids), recipe.unlabelled_sentences), replace=False
        )
    )
    pseudo_batches = batch_stream(pool, batch_sentences, rng, total)
    size = padded_size(offsets, labelled_batches + pseudo_batches, pad_multiple)
    model = fit_grid(model, offsets, labelled_batches + pseudo_batches)
    labelled_plan = word_positions(offsets, labelled_batches, size, labels)
    # Unlabelled batches never read labels: the teacher's replace them each round.
    pseudo_plan = word_positions(offsets, pseudo_batches, size, None)
    pool_starts = sentence_starts(offsets, np.unique(np.concatenate([np.zeros(0, np.int64), *pseudo_batches])))
    optimizer = make_optimizer(recipe.learning_rate, weight_decay)
    ce_options = dict(apply_fn=model.apply, optimizer=optimizer, class_weights=class_weights)

    def student(state, batches, dropout_root):
        labelled, pseudo = batches
        return pseudo_label_step(
            state, labelled, pseudo, dropout_key=step_key(dropout_root, state), weight=recipe.weight, **ce_options
        )

    def control(state, batches, dropout_root):
        # The labelled CE step alone, with the student's CE dropout key; the
        # pseudo-labelled batch (the same draw) is never read.
        labelled, _ = batches
        ce_key, _ = jax.random.split(step_key(dropout_root, state))
        grads, metrics = jax.grad(ce_objective, has_aux=True)(
            state.params, labelled, model.apply, ce_key, class_weights
        )
        updates, ce_opt_state = optimizer.update(grads, state.ce_opt_state, state.params)
        state = state._replace(
            params=optax.apply_updates(state.params, updates), ce_opt_state=ce_opt_state, step=state.step + 1
        )
        zero = jnp.zeros((), jnp.float32)
        return state, {**metrics, "pseudo_ce_sum": zero, "pseudo_words": zero}

    run = compiled_schedule(control if recipe.control else student)
    tables = device_tables(inputs, (labelled_plan, pseudo_plan))
    pool_rows, pseudo_stacked = pseudo_plan
    state, history = init_state(params, optimizer), []
    for start in range(0, total, max(recipe.steps, 1)):
        stop = start + recipe.steps
        positions = pseudo_stacked.inputs[start:stop]  # (steps, P) rows of the pool table
        keep = np.zeros(len(pool_rows) + 1, bool)  # + the padding row
        pseudo_labels = np.zeros(len(pool_rows) + 1, np.int32)
        if not recipe.control:
            # The teacher (the current head) on the pool table: the pool's sentences in ascending order.
            probabilities, _ = predict(state.params, model, tables[1][: len(pool_rows)], pool_starts)
            pseudo_labels[:-1], keep[:-1] = confident_pseudo_labels(
                probabilities, recipe.threshold, recipe.per_category
            )
        pseudo = Batch(
            positions,
            pseudo_labels[positions],
            pseudo_stacked.mask[start:stop] & keep[positions],
            pseudo_stacked.starts[start:stop],
        )
        state, metrics = run(state, tables, (segment(labelled_plan[1], start, stop), pseudo), seed)
        metrics = jax.device_get(metrics)  # {name: (steps,)}
        check_finite(metrics["ce_sum"] + metrics["pseudo_ce_sum"], lambda step, s=start: f"step {s + step}")
        history.append(
            {
                "ce": mean_ce(metrics["ce_sum"].sum(dtype=np.float64), metrics["words"].sum()),
                "pseudo_share": float(keep[:-1].mean()) if len(pool_rows) else 0.0,
                "pseudo_ce": mean_ce(metrics["pseudo_ce_sum"].sum(dtype=np.float64), metrics["pseudo_words"].sum()),
            }
        )
    return state.params, history
