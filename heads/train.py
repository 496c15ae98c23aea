"""The training schedules of the heads: supervised epochs, then the KL phase's rounds.

The schedules do not call a jitted step per batch: on a CPU the Python
between steps (dispatch, keys, adding metrics) cost about as much as the
steps. A schedule draws all its batches first, copies the words they use to
the device once (``heads.tables``), and runs every step as one jitted
``lax.scan`` over the batches' word positions (``_schedule``): one compile,
one call, one fetch of the metrics. Step t's dropout key is
``fold_in(fold_in(key(seed), 1), t)``, the same as a loop calling the jitted
steps of ``heads.steps`` would use.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import numpy as np

from heads import losses
from heads.batches import padded_size, sentence_batches, word_rows
from heads.steps import (
    DROPOUT_STREAM,
    RUN_ONCE_OPTIONS,
    bind_steps,
    init_state,
    make_optimizer,
    seed_init,
)  # fmt: skip
from heads.tables import word_positions, word_table

SCHEDULES = ("alternating", "joint")


@dataclasses.dataclass(frozen=True)
class KLPhase:
    """What the KL phase does after supervised training (one KL model's recipe)."""

    kind: str                        # data_distribution | confidence | both (heads.losses.KL_KINDS)
    rounds: int                      # rounds of the schedule, each one labelled and one unlabelled batch
    schedule: str = "alternating"    # alternating: the seed's KL step then CE step; joint: one step on both
    kl_weight: float = 1.0           # KL scale (alternating; Adam nearly ignores it) or lambda (joint)
    prior: np.ndarray | None = None  # (C,) for the data-distribution KL; None: the labelled words' shares
    target_gradient: bool = False    # confidence KL: gradient through DEC's target (the seed) or not
    learning_rate: float = 1e-3      # of the phase's Adam states (both fresh at its start)

    def __post_init__(self):
        if self.schedule not in SCHEDULES:
            raise ValueError(f"kl schedule {self.schedule!r}: use one of {', '.join(SCHEDULES)}")
        if self.kind not in losses.KL_KINDS:
            raise ValueError(f"unknown KL kind {self.kind!r}; expected one of {losses.KL_KINDS}")
        if self.rounds < 0:
            raise ValueError(f"KL rounds must be >= 0, got {self.rounds}")


def _schedule(step, optimizer):
    """A jitted run of ``step`` over stacked batches, from fresh optimizer states.

    ``step(state, batches, dropout_root) -> (state, metrics)`` gets a tuple of
    Batches. The returned ``run(params, tables, stacked, seed)`` takes a tuple
    of word tables and the matching tuple of stacked position Batches (from
    ``word_table`` and ``word_positions``, leading axis T) and returns
    (params, metrics stacked to (T,)). The whole schedule is one
    ``lax.scan``: no Python between steps.
    """

    def run(params, tables, stacked, seed):
        dropout_root = jax.random.fold_in(jax.random.key(seed), DROPOUT_STREAM)

        def body(state, positions):
            batches = tuple(
                batch._replace(inputs=table[batch.inputs])  # (P, D) or (P,)
                for table, batch in zip(tables, positions, strict=True)
            )
            return step(state, batches, dropout_root)

        state, metrics = jax.lax.scan(body, init_state(params, optimizer), stacked)
        return state.params, metrics

    return jax.jit(run)


def _run_schedule(run, params, inputs, plans, seed):
    """``run`` (from ``_schedule``) on the words of ``plans``, (rows, stacked) pairs."""
    tables = tuple(word_table(inputs, rows) for rows, _ in plans)
    return run(params, tables, tuple(stacked for _, stacked in plans), seed)


def _step_key(dropout_root, state):
    # Depends only on the seed and how many steps of any kind came before.
    return jax.random.fold_in(dropout_root, state.step)


def _mean_ce(ce_sum, words):
    return float(ce_sum / max(words, 1.0))


def train_supervised(
    init_params,
    inputs,
    labels,
    offsets,
    labelled_ids,
    *,
    model,
    epochs=20,
    batch_sentences=128,
    learning_rate=1e-3,
    weight_decay=0.0,
    class_weights=None,
    seed=0,
    pad_multiple=256,
):
    """Train on CE over ``epochs`` shuffled passes of the labelled sentences.

    ``inputs`` (words, D) float16 features or (words,) int32 ids and
    ``labels`` (words,) stay in NumPy (or any array that NumPy row numbers
    index); only the labelled words are copied to the device, once.
    ``init_params`` None initialises the model from ``seed``.
    Returns (params, history): history[e] is the mean CE per real word of
    epoch e (a Python float), measured on the batches as they were trained.
    """
    if len(labelled_ids) == 0:
        raise ValueError("train_supervised needs at least one labelled sentence")
    rng = np.random.default_rng(seed)
    params = init_params
    if params is None:
        init = jax.jit(functools.partial(seed_init, model), compiler_options=RUN_ONCE_OPTIONS)
        params = init(np.asarray(inputs[:1]), seed)

    # Draw every epoch's batches first so one padded size fits them all.
    epoch_batches = [sentence_batches(labelled_ids, batch_sentences, rng) for _ in range(epochs)]
    batches = [b for epoch in epoch_batches for b in epoch]
    size = padded_size(offsets, batches, pad_multiple)
    plan = word_positions(offsets, batches, size, labels)

    optimizer = make_optimizer(learning_rate, weight_decay)
    steps = bind_steps(
        model, optimizer, class_weights=class_weights, kind=None, prior=None,
        target_gradient=False, kl_weight=1.0,
    )  # fmt: skip

    def ce(state, batches, dropout_root):
        (labelled,) = batches
        return steps.ce(state, labelled, _step_key(dropout_root, state))

    run = _schedule(ce, optimizer)
    params, metrics = _run_schedule(run, params, inputs, (plan,), seed)
    metrics = jax.device_get(metrics)  # {name: (steps,)}
    bad = np.flatnonzero(~np.isfinite(metrics["ce_sum"]))
    if bad.size:  # a non-finite loss: stop before any head is written
        per_epoch = max(len(epoch_batches[0]), 1)
        raise ValueError(f"non-finite loss (NaN or Inf) at step {int(bad[0])}, epoch {int(bad[0]) // per_epoch + 1} "
                         f"of {len(epoch_batches)}: check the features for NaN/Inf or lower the learning rate")
    history, start = [], 0
    for epoch in epoch_batches:
        stop = start + len(epoch)
        ce_sum = metrics["ce_sum"][start:stop].sum(dtype=np.float64)
        history.append(_mean_ce(ce_sum, metrics["words"][start:stop].sum(dtype=np.float64)))
        start = stop
    return params, history


def _batch_stream(sentence_ids, batch_sentences, rng, count):
    """``count`` batches from consecutive shuffled passes over ``sentence_ids``."""
    if len(sentence_ids) == 0:
        raise ValueError("cannot draw batches from an empty set of sentences")
    stream = []
    while len(stream) < count:
        stream.extend(sentence_batches(sentence_ids, batch_sentences, rng))
    return stream[:count]


def train_kl_phase(
    params,
    inputs,
    labels,
    offsets,
    labelled_ids,
    unlabelled_ids,
    phase: KLPhase,
    *,
    model,
    batch_sentences=128,
    weight_decay=0.0,
    class_weights=None,
    seed=0,
    pad_multiple=256,
):
    """The KL phase from ``params``: ``phase.rounds`` rounds of one labelled and one unlabelled batch.

    ``alternating`` (the seed's): each round is one step of the KL optimizer
    on the unlabelled batch, then one step of the CE optimizer on the
    labelled batch, each with its own Adam state. ``joint``: each round is one
    step on CE + ``kl_weight`` * KL. Both Adam states start fresh. Labels of
    ``unlabelled_ids`` are never read.
    Returns (params, history): history[r] = {"kl": KL of round r's unlabelled
    batch, "ce": mean CE per word of its labelled batch}, both before the step.
    """
    rng = np.random.default_rng(seed)
    prior = phase.prior
    if prior is None and phase.kind != "confidence":
        prior = losses.prior_from_labels(labels[word_rows(offsets, labelled_ids)], model.num_classes)
    labelled_batches = _batch_stream(labelled_ids, batch_sentences, rng, phase.rounds)
    unlabelled_batches = _batch_stream(unlabelled_ids, batch_sentences, rng, phase.rounds)
    size = padded_size(offsets, labelled_batches + unlabelled_batches, pad_multiple)
    plans = (
        word_positions(offsets, labelled_batches, size, labels),
        # Unlabelled batches never read labels: labels is None.
        word_positions(offsets, unlabelled_batches, size, None),
    )

    optimizer = make_optimizer(phase.learning_rate, weight_decay)
    steps = bind_steps(
        model, optimizer, class_weights=class_weights, kind=phase.kind, prior=prior,
        target_gradient=phase.target_gradient, kl_weight=phase.kl_weight,
    )  # fmt: skip

    def alternating(state, batches, dropout_root):
        labelled, unlabelled = batches
        state, kl_metrics = steps.kl(state, unlabelled, _step_key(dropout_root, state))
        state, ce_metrics = steps.ce(state, labelled, _step_key(dropout_root, state))
        return state, {**kl_metrics, **ce_metrics}

    def joint(state, batches, dropout_root):
        labelled, unlabelled = batches
        return steps.joint(state, labelled, unlabelled, _step_key(dropout_root, state))

    run = _schedule(joint if phase.schedule == "joint" else alternating, optimizer)
    params, metrics = _run_schedule(run, params, inputs, plans, seed)
    metrics = jax.device_get(metrics)  # {name: (rounds,)}
    bad = np.flatnonzero(~(np.isfinite(metrics["kl_sum"]) & np.isfinite(metrics["ce_sum"])))
    if bad.size:  # a non-finite loss: stop before any head is written
        raise ValueError(f"non-finite loss (NaN or Inf) in KL round {int(bad[0]) + 1} of {phase.rounds}: "
                         "check the features for NaN/Inf or lower the learning rate")
    kl_sums, ce_sums, words = metrics["kl_sum"], metrics["ce_sum"], metrics["words"]
    history = [
        {"kl": float(kl_sums[r]), "ce": _mean_ce(ce_sums[r], words[r])}
        for r in range(phase.rounds)
    ]
    return params, history
