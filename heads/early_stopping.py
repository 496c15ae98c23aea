"""Supervised heads trained to convergence: CE by steps, early stopping on validation entity F1, refit.

The seed trained BERT NER for a fixed 20 epochs (``heads.train.train_supervised``),
which at 2,560 labelled sentences is 400 steps with the labelled CE still
falling, and at 64 sentences 20 steps. Here a fixed, seeded part of the
labelled split is held out; CE steps run in segments of ``eval_every`` steps
(one compiled ``lax.scan`` continued segment after segment) and the entity F1
on the held-out part is taken after each; training stops after ``patience``
segments without a new best. ``train_converged`` then (with ``refit``) trains
a fresh head on the whole labelled split for the chosen number of steps, so
no label is spent on validation alone.
"""

from __future__ import annotations

import functools

import jax
import numpy as np

from heads.batches import padded_size, sentence_starts, word_rows
from heads.context import fit_grid
from heads.metrics import entity_f1_fast
from heads.predict import predict_categories
from heads.settings import EarlyStoppingParams
from heads.stats import validation_split
from heads.steps import RUN_ONCE_OPTIONS, bind_steps, init_state, make_optimizer, seed_init
from heads.tables import word_positions
from heads.train import (
    batch_stream,
    check_finite,
    compiled_schedule,
    device_tables,
    mean_ce,
    segment,
    step_key,
)  # fmt: skip

EarlyStopping = EarlyStoppingParams  # the schedule's settings are section early_stopping's (heads.settings)


def entity_f1_scorer(inputs, offsets, sentence_ids, true_tags, categories, model):
    """``score(params) -> entity F1`` of a head ``model`` on ``sentence_ids``.

    ``true_tags`` are the flat tags (BIO or plain) of those sentences' words in
    order; their inputs are gathered once.
    """
    rows = word_rows(offsets, sentence_ids)
    features = np.asarray(inputs[rows])  # (N, D) or (N,)
    if len(true_tags) != len(rows):
        raise ValueError(f"{len(true_tags)} tags for {len(rows)} validation words")
    lengths = np.diff(np.asarray(offsets, np.int64))[np.asarray(sentence_ids, np.int64)]
    local_offsets = np.concatenate([[0], np.cumsum(lengths)])
    starts = sentence_starts(offsets, sentence_ids)

    def score(params):
        predicted, _, _ = predict_categories(params, model, features, starts)
        return entity_f1_fast(true_tags, predicted, categories, local_offsets)["f1"]

    return score


def train_steps(
    init_params,
    inputs,
    labels,
    offsets,
    labelled_ids,
    *,
    model,
    max_steps,
    eval_every=0,
    patience=0,
    validate=None,
    batch_sentences=128,
    learning_rate=1e-3,
    weight_decay=0.0,
    class_weights=None,
    seed=0,
    pad_multiple=256,
):
    """CE steps on batches from consecutive shuffled passes of the labelled sentences, by step count.

    Without ``validate``: exactly ``max_steps`` steps. With ``validate(params)
    -> score`` (higher is better, e.g. validation entity F1): the steps run in
    segments of ``eval_every``, the score is taken after each, and training
    stops once ``patience`` scores in a row have not beaten the best; the
    best-scoring parameters are returned. Returns (params, info): info has
    ``best_step`` (steps of the returned params), ``steps`` (steps run) and
    ``history`` [{"step", "ce" (mean CE per word of the segment), "score"}].
    """
    if len(labelled_ids) == 0:
        raise ValueError("train_steps needs at least one labelled sentence")
    # Steps per compiled segment: ``eval_every``, also without validation when it divides ``max_steps`` (a refit
    # of any length then runs the segment the stopped run compiled), else the whole run in one.
    length = eval_every if validate is not None or (eval_every > 0 and max_steps % eval_every == 0) else max_steps
    if max_steps < 0 or (validate is not None and (eval_every < 1 or patience < 1)):
        raise ValueError(
            f"need max_steps >= 0, and eval_every, patience >= 1 with validation; got "
            f"{max_steps}, {eval_every}, {patience}"
        )
    rng = np.random.default_rng(seed)
    params = init_params
    if params is None:
        init = jax.jit(functools.partial(seed_init, model), compiler_options=RUN_ONCE_OPTIONS)
        params = init(np.asarray(inputs[:1]), seed)
    if max_steps == 0:
        return params, {"best_step": 0, "steps": 0, "history": []}
    total = -(-max_steps // length) * length  # whole segments
    batches = batch_stream(labelled_ids, batch_sentences, rng, total)
    rows, stacked = word_positions(offsets, batches, padded_size(offsets, batches, pad_multiple), labels)
    model = fit_grid(model, offsets, batches)
    optimizer = make_optimizer(learning_rate, weight_decay)
    steps = bind_steps(
        model, optimizer, class_weights=class_weights, kind=None, prior=None, target_gradient=False, kl_weight=1.0
    )

    def ce(state, batches, dropout_root):
        (labelled,) = batches
        return steps.ce(state, labelled, step_key(dropout_root, state))

    run, tables = compiled_schedule(ce), device_tables(inputs, ((rows, stacked),))
    state = init_state(params, optimizer)
    best = {"score": -np.inf, "step": 0, "params": params}
    history, waited = [], 0
    for start in range(0, total, length):
        state, metrics = run(state, tables, (segment(stacked, start, start + length),), seed)
        metrics = jax.device_get(metrics)  # {name: (length,)}
        check_finite(metrics["ce_sum"], lambda step, start=start: f"step {start + step}")
        done = start + length
        entry = {
            "step": done,
            "ce": mean_ce(metrics["ce_sum"].sum(dtype=np.float64), metrics["words"].sum(dtype=np.float64)),
        }
        if validate is not None:
            entry["score"] = float(validate(state.params))
            if entry["score"] > best["score"]:
                best, waited = {"score": entry["score"], "step": done, "params": state.params}, 0
            else:
                waited += 1
        history.append(entry)
        if validate is not None and waited >= patience:
            break
    if validate is None:
        best = {"step": history[-1]["step"], "params": state.params}
    return best["params"], {"best_step": best["step"], "steps": history[-1]["step"], "history": history}


def train_converged(
    inputs, labels, offsets, labelled_ids, true_tags_of, categories, stopping: EarlyStopping, *, model, **options
):
    """A supervised head from scratch: early stopping on a held-out part, then (``refit``) all labels.

    ``true_tags_of(sentence_ids)`` gives the flat true tags of those sentences
    (only the held-out part's are asked for). ``options`` go to ``train_steps``
    (batch_sentences, learning_rate, weight_decay, class_weights, seed,
    pad_multiple). Returns (params, info): ``train_steps``'s info of the
    stopped run plus ``refit_steps`` (0 without a refit).
    """
    train_part, validation_part = validation_split(labelled_ids, stopping.validation_fraction, stopping.validation_seed)
    validate = entity_f1_scorer(inputs, offsets, validation_part, true_tags_of(validation_part), categories, model)
    params, info = train_steps(
        None,
        inputs,
        labels,
        offsets,
        train_part,
        model=model,
        max_steps=stopping.max_steps,
        eval_every=stopping.eval_every,
        patience=stopping.patience,
        validate=validate,
        **options,
    )
    info = dict(info, refit_steps=0, validation_sentences=len(validation_part))
    if stopping.refit:
        params, _ = train_steps(
            None, inputs, labels, offsets, labelled_ids, model=model, max_steps=info["best_step"],
            eval_every=stopping.eval_every, **options,
        )  # fmt: skip
        info["refit_steps"] = info["best_step"]
    return params, info
