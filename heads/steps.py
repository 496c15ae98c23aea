"""Training state, optimizers and the jitted train steps of the heads.

The step functions (``ce_step``, ``kl_step``, ``joint_step``) are pure and not
jitted here, so tests can call them directly; ``bind_steps`` binds the model,
optimizer and loss options once, and ``make_steps`` returns those closures
jitted, taking only ``(state, batch(es), dropout_key)``.

Metrics are dicts of sums and counts (float32 scalars) per step:

- CE:    ``ce_sum`` (unweighted -log q(y) summed over real words),
         ``correct`` (argmax == label), ``words`` (real labelled words);
- KL:    ``kl_sum`` (the KL value of the batch, before ``weight``),
         ``kl_batches`` (1 per step);
- joint: the union of both.

Parameters are the inner ``params`` dict of a flax variables dict.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from heads import losses
from heads.output import is_crf, supervised_loss

# fold_in tags that split the one seed into independent streams.
INIT_STREAM, DROPOUT_STREAM = 0, 1


class HeadState(NamedTuple):
    """Parameters plus one optimizer state per objective (the seed's two Adams)."""

    params: Any
    ce_opt_state: Any
    kl_opt_state: Any
    step: jax.Array  # int32 scalar, counts steps of every kind


def make_optimizer(learning_rate=1e-3, weight_decay=0.0):
    """Adam, or AdamW with decoupled decay of the weight matrices when ``weight_decay`` > 0."""
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
    if weight_decay == 0:
        return optax.adam(learning_rate)

    # Biases are not decayed: only kernels and the embedding table (ndim > 1).
    def matrices(params):
        return jax.tree_util.tree_map(lambda leaf: leaf.ndim > 1, params)

    return optax.adamw(learning_rate, weight_decay=weight_decay, mask=matrices)


# Compiler options for code that runs once, where compiling is most of the
# cost: XLA's level 1 compiles the initialisers in half the time of the
# default 2 and gives the same numbers.
RUN_ONCE_OPTIONS = {"xla_backend_optimization_level": 1}


def init_head_params(model, inputs, key):
    """Fresh parameters of ``model`` for inputs shaped like ``inputs[1:]`` rows."""
    example = np.asarray(inputs[:1])  # (1, D) features or (1,) ids
    # Jitted as a whole: op by op, init compiles each operation on its own.
    init = jax.jit(functools.partial(_init_params, model), compiler_options=RUN_ONCE_OPTIONS)
    return init(example, key)


def _init_params(model, example, key):
    return model.init(key, example)["params"]


def seed_init(model, example, seed):
    """``init_head_params`` with the seed's init key (made here, so inside a jit of this)."""
    return _init_params(model, example, jax.random.fold_in(jax.random.key(seed), INIT_STREAM))


def init_state(params, optimizer, kl_optimizer=None):
    """A HeadState with fresh CE and KL optimizer states over ``params``.

    ``kl_optimizer`` (None: ``optimizer``) is the KL step's, with a learning
    rate of its own.
    """
    return HeadState(
        params=params,
        ce_opt_state=optimizer.init(params),
        kl_opt_state=(kl_optimizer or optimizer).init(params),
        step=jnp.zeros((), jnp.int32),
    )


def _logits(apply_fn, params, batch, dropout_key):
    logits, _ = apply_fn(
        {"params": params}, batch.inputs, batch.starts, deterministic=False, rngs={"dropout": dropout_key}
    )
    return logits  # (P, C); a CRF head's: the log of its marginals (heads.output)


def ce_objective(params, batch, apply_fn, dropout_key, class_weights):
    """(the supervised loss of a labelled batch, its metrics); the objective ``ce_step`` differentiates.

    The loss is the (class-weighted) cross entropy, or a CRF head's sequence negative log-likelihood
    per word (``heads.output.supervised_loss``); the metrics' ``ce_sum`` is then the NLL summed over words.
    """
    loss, scores = supervised_loss(apply_fn, params, batch, dropout_key, class_weights)
    if is_crf(getattr(apply_fn, "__self__", None)):
        metrics = {
            "ce_sum": loss * jnp.sum(batch.mask),
            "correct": jnp.sum((jnp.argmax(scores, axis=-1) == batch.labels) & batch.mask).astype(jnp.float32),
            "words": jnp.sum(batch.mask).astype(jnp.float32),
        }
        return loss, metrics
    return loss, _ce_metrics(scores, batch)


def _ce_metrics(logits, batch):
    log_q = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    nll = -jnp.take_along_axis(log_q, batch.labels[:, None], axis=-1)[:, 0]  # (P,)
    correct = jnp.argmax(logits, axis=-1) == batch.labels
    return {
        "ce_sum": jnp.sum(jnp.where(batch.mask, nll, 0.0)),
        "correct": jnp.sum(correct & batch.mask).astype(jnp.float32),
        "words": jnp.sum(batch.mask).astype(jnp.float32),
    }


def _kl_objective(params, batch, apply_fn, dropout_key, kind, prior, target_gradient, weight, per_word=False):
    logits = _logits(apply_fn, params, batch, dropout_key)
    kl = losses.kl_loss(logits, batch.mask, kind=kind, prior=prior, target_gradient=target_gradient, per_word=per_word)
    return weight * kl, {"kl_sum": kl, "kl_batches": jnp.ones((), jnp.float32)}


def _apply_update(optimizer, params, opt_state, grads):
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state


def ce_step(state, batch, *, apply_fn, optimizer, dropout_key, class_weights=None):
    """One optimizer step on the (class-weighted) CE of a labelled batch; returns (state, metrics)."""
    grads, metrics = jax.grad(ce_objective, has_aux=True)(state.params, batch, apply_fn, dropout_key, class_weights)
    params, ce_opt_state = _apply_update(optimizer, state.params, state.ce_opt_state, grads)
    state = state._replace(params=params, ce_opt_state=ce_opt_state, step=state.step + 1)
    return state, metrics


def kl_step(state, batch, *, apply_fn, optimizer, dropout_key, kind, prior, target_gradient, weight=1.0):
    """One step of the KL optimizer on ``weight * kl_loss`` of an unlabelled batch.

    The batch's labels are not read. Returns (state, metrics).
    """
    grads, metrics = jax.grad(_kl_objective, has_aux=True)(
        state.params, batch, apply_fn, dropout_key, kind, prior, target_gradient, weight
    )
    params, kl_opt_state = _apply_update(optimizer, state.params, state.kl_opt_state, grads)
    state = state._replace(params=params, kl_opt_state=kl_opt_state, step=state.step + 1)
    return state, metrics


def joint_step(
    state,
    labelled,
    unlabelled,
    *,
    apply_fn,
    optimizer,
    dropout_key,
    kind,
    prior,
    target_gradient,
    kl_weight,
    class_weights=None,
):
    """One step of the CE optimizer on CE(labelled) + kl_weight * KL(unlabelled).

    The confidence KL enters as a per-word mean (``kl_loss(per_word=True)``),
    so ``kl_weight`` is a per-word weight for every kind.
    Returns (state, metrics) with both the CE and the KL metrics.
    """
    ce_key, kl_key = jax.random.split(dropout_key)

    def objective(params):
        ce, ce_metrics = ce_objective(params, labelled, apply_fn, ce_key, class_weights)
        weighted_kl, kl_metrics = _kl_objective(
            params,
            unlabelled,
            apply_fn,
            kl_key,
            kind,
            prior,
            target_gradient,
            kl_weight,
            per_word=True,
        )
        return ce + weighted_kl, {**ce_metrics, **kl_metrics}

    grads, metrics = jax.grad(objective, has_aux=True)(state.params)
    params, ce_opt_state = _apply_update(optimizer, state.params, state.ce_opt_state, grads)
    state = state._replace(params=params, ce_opt_state=ce_opt_state, step=state.step + 1)
    return state, metrics


class Steps(NamedTuple):
    """Jitted steps: ce(state, batch, key), kl(state, batch, key), joint(state, labelled, unlabelled, key).

    ``kl`` and ``joint`` are None when ``make_steps`` got no ``kind``.
    """

    ce: Callable
    kl: Callable | None
    joint: Callable | None


def bind_steps(model, optimizer, *, class_weights, kind, prior, target_gradient, kl_weight, kl_optimizer=None):
    """Un-jitted Steps with the model, optimizers and loss options bound.

    ``optimizer`` serves the CE and joint steps, ``kl_optimizer`` (None: the
    same) the KL step.
    """
    if class_weights is not None:
        class_weights = jnp.asarray(class_weights, jnp.float32)
    ce = functools.partial(ce_step, apply_fn=model.apply, optimizer=optimizer, class_weights=class_weights)
    if kind is None:
        return Steps(lambda state, batch, key: ce(state, batch, dropout_key=key), None, None)

    losses.check_prior(kind, prior, model.num_classes)
    if prior is not None:
        prior = jnp.asarray(prior, jnp.float32)
    kl_options = dict(apply_fn=model.apply, kind=kind, prior=prior, target_gradient=bool(target_gradient))
    kl = functools.partial(kl_step, weight=kl_weight, optimizer=kl_optimizer or optimizer, **kl_options)
    joint = functools.partial(
        joint_step, kl_weight=kl_weight, class_weights=class_weights, optimizer=optimizer,
        **kl_options,
    )  # fmt: skip
    return Steps(
        lambda state, batch, key: ce(state, batch, dropout_key=key),
        lambda state, batch, key: kl(state, batch, dropout_key=key),
        lambda state, lab, unlab, key: joint(state, lab, unlab, dropout_key=key),
    )


def make_steps(
    model,
    optimizer,
    *,
    class_weights=None,
    kind=None,
    prior=None,
    target_gradient=False,
    kl_weight=1.0,
    kl_optimizer=None,
):
    """Bind the model, optimizers and loss options once; returns jitted Steps.

    Build this once per schedule: each call makes new closures, which jit
    compiles anew.
    """
    steps = bind_steps(
        model, optimizer, class_weights=class_weights, kind=kind, prior=prior,
        target_gradient=target_gradient, kl_weight=kl_weight, kl_optimizer=kl_optimizer,
    )  # fmt: skip
    return Steps(*(None if step is None else jax.jit(step) for step in steps))
