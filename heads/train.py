"""Train steps and schedules for the heads.

The step functions (``ce_step``, ``kl_step``, ``joint_step``) are pure and not
jitted here, so tests can call them directly; ``make_steps`` binds the model,
optimizer and loss options once and returns jitted closures that take only
``(state, batch(es), dropout_key)``.

The schedules do not call a jitted step per batch: on a CPU the Python
between steps (dispatch, keys, adding metrics) cost about as much as the
steps. A schedule draws all its batches first, copies the words they use to
the device once (``_word_table``: each distinct word once, however many
epochs reuse it), and runs every step as one jitted ``lax.scan`` over the
batches' word positions (``_schedule``): one compile, one call, one fetch of
the metrics. Step t's dropout key is ``fold_in(fold_in(key(seed), 1), t)``,
the same as a loop calling the jitted steps would use. The tables cost
memory once per schedule: the labelled words (~57k x 384 float16, 44 MB)
and, for the rounds, the unlabelled words drawn (80 rounds of 128
sentences, ~220k words, 170 MB).

Metrics are dicts of sums and counts (float32 scalars) per step; the
schedules fetch them once at the end and add them up in NumPy:

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
from heads.batches import Batch, make_batch, padded_size, sentence_batches, word_rows

KL_KINDS = ("data_distribution", "confidence", "both")

# fold_in tags that split the one seed into independent streams.
_INIT_STREAM, _DROPOUT_STREAM = 0, 1


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
_RUN_ONCE_OPTIONS = {"xla_backend_optimization_level": 1}


def init_head_params(model, inputs, key):
    """Fresh parameters of ``model`` for inputs shaped like ``inputs[1:]`` rows."""
    example = np.asarray(inputs[:1])  # (1, D) features or (1,) ids
    # Jitted as a whole: op by op, init compiles each operation on its own.
    init = jax.jit(functools.partial(_init_params, model), compiler_options=_RUN_ONCE_OPTIONS)
    return init(example, key)


def _init_params(model, example, key):
    return model.init(key, example)["params"]


def _seed_init(model, example, seed):
    """``init_head_params`` with the seed's init key (made here, so inside a jit of this)."""
    return _init_params(model, example, jax.random.fold_in(jax.random.key(seed), _INIT_STREAM))


def init_state(params, optimizer):
    """A HeadState with fresh CE and KL optimizer states over ``params``."""
    return HeadState(
        params=params,
        ce_opt_state=optimizer.init(params),
        kl_opt_state=optimizer.init(params),
        step=jnp.zeros((), jnp.int32),
    )


def kl_loss(logits, mask, *, kind, prior, target_gradient):
    """The unlabelled-batch regulariser named by ``kind``; a float32 scalar.

    ``"data_distribution"`` and ``"confidence"`` are the DESIGN's losses as
    defined (the confidence KL summed over words). ``"both"`` adds the
    data-distribution KL to the confidence KL averaged over real words, so
    the two are on the same per-word scale and neither drowns the other.
    """
    if kind == "data_distribution":
        return losses.data_distribution_kl(logits, mask, prior)
    if kind == "confidence":
        return losses.confidence_kl(logits, mask, target_gradient)
    if kind == "both":
        n_words = jnp.maximum(jnp.sum(mask.astype(jnp.float32)), 1.0)
        confidence = losses.confidence_kl(logits, mask, target_gradient) / n_words
        return losses.data_distribution_kl(logits, mask, prior) + confidence
    raise ValueError(f"unknown KL kind {kind!r}; expected one of {KL_KINDS}")


def _logits(apply_fn, params, inputs, dropout_key):
    logits, _ = apply_fn(
        {"params": params}, inputs, deterministic=False, rngs={"dropout": dropout_key}
    )
    return logits  # (P, C)


def _ce_objective(params, batch, apply_fn, dropout_key, class_weights):
    logits = _logits(apply_fn, params, batch.inputs, dropout_key)
    loss = losses.masked_cross_entropy(logits, batch.labels, batch.mask, class_weights)
    return loss, _ce_metrics(logits, batch)


def _ce_metrics(logits, batch):
    log_q = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    nll = -jnp.take_along_axis(log_q, batch.labels[:, None], axis=-1)[:, 0]  # (P,)
    correct = jnp.argmax(logits, axis=-1) == batch.labels
    return {
        "ce_sum": jnp.sum(jnp.where(batch.mask, nll, 0.0)),
        "correct": jnp.sum(correct & batch.mask).astype(jnp.float32),
        "words": jnp.sum(batch.mask).astype(jnp.float32),
    }


def _kl_objective(params, batch, apply_fn, dropout_key, kind, prior, target_gradient, weight):
    logits = _logits(apply_fn, params, batch.inputs, dropout_key)
    kl = kl_loss(logits, batch.mask, kind=kind, prior=prior, target_gradient=target_gradient)
    return weight * kl, {"kl_sum": kl, "kl_batches": jnp.ones((), jnp.float32)}


def _apply_update(optimizer, params, opt_state, grads):
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state


def ce_step(state, batch, *, apply_fn, optimizer, dropout_key, class_weights=None):
    """One optimizer step on the (class-weighted) CE of a labelled batch; returns (state, metrics)."""
    grads, metrics = jax.grad(_ce_objective, has_aux=True)(
        state.params, batch, apply_fn, dropout_key, class_weights
    )
    params, ce_opt_state = _apply_update(optimizer, state.params, state.ce_opt_state, grads)
    state = state._replace(params=params, ce_opt_state=ce_opt_state, step=state.step + 1)
    return state, metrics


def kl_step(
    state, batch, *, apply_fn, optimizer, dropout_key, kind, prior, target_gradient, weight=1.0
):
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

    Returns (state, metrics) with both the CE and the KL metrics.
    """
    ce_key, kl_key = jax.random.split(dropout_key)

    def objective(params):
        ce, ce_metrics = _ce_objective(params, labelled, apply_fn, ce_key, class_weights)
        weighted_kl, kl_metrics = _kl_objective(
            params, unlabelled, apply_fn, kl_key, kind, prior, target_gradient, kl_weight
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


def _bind_steps(model, optimizer, *, class_weights, kind, prior, target_gradient, kl_weight):
    """Un-jitted Steps with the model, optimizer and loss options bound."""
    if class_weights is not None:
        class_weights = jnp.asarray(class_weights, jnp.float32)
    ce = functools.partial(
        ce_step, apply_fn=model.apply, optimizer=optimizer, class_weights=class_weights
    )
    if kind is None:
        return Steps(lambda state, batch, key: ce(state, batch, dropout_key=key), None, None)

    _check_kl_options(kind, prior, model.num_classes)
    if prior is not None:
        prior = jnp.asarray(prior, jnp.float32)
    kl_options = dict(
        apply_fn=model.apply,
        optimizer=optimizer,
        kind=kind,
        prior=prior,
        target_gradient=bool(target_gradient),
    )
    kl = functools.partial(kl_step, weight=kl_weight, **kl_options)
    joint = functools.partial(
        joint_step, kl_weight=kl_weight, class_weights=class_weights, **kl_options
    )
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
):
    """Bind the model, optimizer and loss options once; returns jitted Steps.

    Build this once per schedule: each call makes new closures, which jit
    compiles anew.
    """
    steps = _bind_steps(
        model, optimizer, class_weights=class_weights, kind=kind, prior=prior,
        target_gradient=target_gradient, kl_weight=kl_weight,
    )  # fmt: skip
    return Steps(*(None if step is None else jax.jit(step) for step in steps))


def _check_kl_options(kind, prior, num_classes):
    if kind not in KL_KINDS:
        raise ValueError(f"unknown KL kind {kind!r}; expected one of {KL_KINDS}")
    if kind == "confidence":
        return
    if prior is None:
        raise ValueError(f"KL kind {kind!r} needs a prior")
    prior = np.asarray(prior, np.float64)
    if prior.shape != (num_classes,) or (prior < 0).any() or abs(prior.sum() - 1) > 1e-4:
        raise ValueError(
            f"prior must be {num_classes} non-negative numbers summing to 1; got {prior.tolist()}"
        )


def _word_positions(offsets, batches, size, labels):
    """Where the words of ``batches`` sit in a table of their distinct sentences' words.

    Returns (rows, stacked): ``rows`` (N,) ascending, the word rows of the
    distinct sentences in ``batches``, each once however many batches hold
    it; ``stacked`` a Batch with a leading axis over ``batches``: inputs
    (B, P) int32 positions in ``_word_table(inputs, rows)``, where padding
    points at the zero row N; labels (B, P) int32 (all zero where ``labels``
    is None, which is then never read); mask (B, P) bool. Looking the
    positions of batch b up in the table gives ``make_batch``'s inputs.
    """
    offsets = np.asarray(offsets, np.int64)
    sentence_ids = np.unique(np.concatenate([np.zeros(0, np.int64), *batches]))  # (S,) sorted
    rows = word_rows(offsets, sentence_ids)  # (N,)
    lengths = offsets[sentence_ids + 1] - offsets[sentence_ids]  # (S,)
    table_offsets = np.concatenate([[0], np.cumsum(lengths)])  # sentence k's words in the table

    stacked_positions = np.full((len(batches), size), len(rows), np.int32)  # (B, P)
    stacked_labels = np.zeros((len(batches), size), np.int32)
    mask = np.zeros((len(batches), size), bool)
    for b, ids in enumerate(batches):
        positions = word_rows(table_offsets, np.searchsorted(sentence_ids, ids))  # (n,)
        n = len(positions)
        if n > size:
            raise ValueError(f"batch has {n} words, more than the padded size {size}")
        stacked_positions[b, :n] = positions
        if labels is not None:
            stacked_labels[b, :n] = labels[rows[positions]]
        mask[b, :n] = True
    return rows, Batch(stacked_positions, stacked_labels, mask)


def _table_shape(inputs, rows):
    example = np.asarray(inputs[:1])  # (1, D) or (1,)
    return jax.ShapeDtypeStruct((len(rows) + 1,) + example.shape[1:], example.dtype)


def _word_table(inputs, rows):
    """``inputs[rows]`` then one zero row, (N + 1, D) or (N + 1,), as a device array."""
    shape = _table_shape(inputs, rows)
    table = _aligned_empty(shape.shape, shape.dtype)
    if isinstance(inputs, np.ndarray):
        # Ascending rows read a memmap front to back; mode="raise" would gather
        # into a temporary first.
        np.take(inputs, rows, axis=0, out=table[:-1], mode="clip")
    else:
        table[:-1] = np.asarray(inputs[rows])
    table[-1] = 0
    # The device (CPU) array shares the table's memory instead of copying it.
    return jax.device_put(table, may_alias=True)


def _aligned_empty(shape, dtype, alignment=64):
    """np.empty starting on an ``alignment``-byte boundary: the CPU device can share its memory."""
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    raw = np.empty(nbytes + alignment, np.uint8)
    start = -raw.ctypes.data % alignment
    return raw[start : start + nbytes].view(dtype).reshape(shape)


def _schedule(step, optimizer):
    """A jitted run of ``step`` over stacked batches, from fresh optimizer states.

    ``step(state, batches, dropout_root) -> (state, metrics)`` gets a tuple of
    Batches. The returned ``run(params, tables, stacked, seed)`` takes a tuple
    of word tables and the matching tuple of stacked position Batches (from
    ``_word_table`` and ``_word_positions``, leading axis T) and returns
    (params, metrics stacked to (T,)). The whole schedule is one
    ``lax.scan``: no Python between steps.
    """

    def run(params, tables, stacked, seed):
        dropout_root = jax.random.fold_in(jax.random.key(seed), _DROPOUT_STREAM)

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
    tables = tuple(_word_table(inputs, rows) for rows, _ in plans)
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
        init = jax.jit(functools.partial(_seed_init, model), compiler_options=_RUN_ONCE_OPTIONS)
        params = init(np.asarray(inputs[:1]), seed)

    # Draw every epoch's batches first so one padded size fits them all.
    epoch_batches = [sentence_batches(labelled_ids, batch_sentences, rng) for _ in range(epochs)]
    batches = [b for epoch in epoch_batches for b in epoch]
    size = padded_size(offsets, batches, pad_multiple)
    plan = _word_positions(offsets, batches, size, labels)

    optimizer = make_optimizer(learning_rate, weight_decay)
    steps = _bind_steps(
        model, optimizer, class_weights=class_weights, kind=None, prior=None,
        target_gradient=False, kl_weight=1.0,
    )  # fmt: skip

    def ce(state, batches, dropout_root):
        (labelled,) = batches
        return steps.ce(state, labelled, _step_key(dropout_root, state))

    run = _schedule(ce, optimizer)
    params, metrics = _run_schedule(run, params, inputs, (plan,), seed)
    metrics = jax.device_get(metrics)  # {name: (steps,)}
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


def _run_rounds(
    params,
    inputs,
    labels,
    offsets,
    labelled_ids,
    unlabelled_ids,
    *,
    joint,
    model,
    rounds,
    kind,
    prior=None,
    target_gradient=False,
    kl_weight=1.0,
    batch_sentences=128,
    learning_rate=1e-3,
    weight_decay=0.0,
    class_weights=None,
    seed=0,
    pad_multiple=256,
):
    """The KL phase's rounds (alternating or joint), one ``lax.scan``; see the two public wrappers below."""
    rng = np.random.default_rng(seed)
    if prior is None and kind != "confidence":
        prior = losses.prior_from_labels(
            labels[word_rows(offsets, labelled_ids)], model.num_classes
        )
    labelled_batches = _batch_stream(labelled_ids, batch_sentences, rng, rounds)
    unlabelled_batches = _batch_stream(unlabelled_ids, batch_sentences, rng, rounds)
    size = padded_size(offsets, labelled_batches + unlabelled_batches, pad_multiple)
    plans = (
        _word_positions(offsets, labelled_batches, size, labels),
        # Unlabelled batches never read labels: labels is None.
        _word_positions(offsets, unlabelled_batches, size, None),
    )

    optimizer = make_optimizer(learning_rate, weight_decay)
    steps = _bind_steps(
        model, optimizer, class_weights=class_weights, kind=kind, prior=prior,
        target_gradient=target_gradient, kl_weight=kl_weight,
    )  # fmt: skip

    def alternating(state, batches, dropout_root):
        labelled, unlabelled = batches
        state, kl_metrics = steps.kl(state, unlabelled, _step_key(dropout_root, state))
        state, ce_metrics = steps.ce(state, labelled, _step_key(dropout_root, state))
        return state, {**kl_metrics, **ce_metrics}

    def joint_round(state, batches, dropout_root):
        labelled, unlabelled = batches
        return steps.joint(state, labelled, unlabelled, _step_key(dropout_root, state))

    # Both Adam states start fresh for this phase.
    run = _schedule(joint_round if joint else alternating, optimizer)
    params, metrics = _run_schedule(run, params, inputs, plans, seed)
    metrics = jax.device_get(metrics)  # {name: (rounds,)}
    kl_sums, ce_sums, words = metrics["kl_sum"], metrics["ce_sum"], metrics["words"]
    history = [
        {"kl": float(kl_sums[r]), "ce": _mean_ce(ce_sums[r], words[r])} for r in range(rounds)
    ]
    return params, history


def train_kl_rounds(params, inputs, labels, offsets, labelled_ids, unlabelled_ids, **options):
    """The seed's KL phase: ``rounds`` x (one KL step on an unlabelled batch, one CE step on a labelled batch).

    The KL and CE steps have their own Adam states, both fresh at the start.
    ``prior`` None uses the category frequency of the labelled words.
    ``kl_weight`` scales the KL loss; Adam is nearly invariant to that scale,
    so in this alternating schedule it matters little.
    Labels of ``unlabelled_ids`` are never read.
    Returns (params, history): history[r] = {"kl": KL of round r's unlabelled
    batch, "ce": mean CE per word of its labelled batch}, both before the step.
    ``options`` are ``_run_rounds``'s keywords: model, rounds, kind (required),
    prior, target_gradient, kl_weight, batch_sentences, learning_rate,
    weight_decay, class_weights, seed, pad_multiple.
    """
    return _run_rounds(params, inputs, labels, offsets, labelled_ids, unlabelled_ids, joint=False, **options)


def train_joint_rounds(params, inputs, labels, offsets, labelled_ids, unlabelled_ids, **options):
    """Like ``train_kl_rounds`` but each round is one Adam step on CE + kl_weight * KL.

    Here ``kl_weight`` is the trade-off lambda and does matter. History as in
    ``train_kl_rounds``.
    """
    return _run_rounds(params, inputs, labels, offsets, labelled_ids, unlabelled_ids, joint=True, **options)


def predict(params, model, inputs, batch_words=65536):
    """Category probabilities (N, C) and latent vectors (N, latent_dim), float32 NumPy.

    Runs in chunks of one fixed size (the last one zero-padded), so a call
    compiles once however many words it gets.
    """

    # A closure rather than a jit with the model as a static argument: a model
    # rebuilt from a loaded config may hold lists, which cannot be hashed.
    @jax.jit
    def predict_chunk(params, inputs):
        logits, latent = model.apply({"params": params}, inputs)
        return jax.nn.softmax(logits, axis=-1), latent  # (P, C), (P, latent_dim)

    n = len(inputs)
    probabilities = np.empty((n, model.num_classes), np.float32)
    latent = np.empty((n, model.latent_dim), np.float32)
    chunk = min(batch_words, -(-max(n, 1) // 256) * 256)  # no bigger than the input needs
    for start in range(0, n, chunk):
        piece = np.asarray(inputs[start : start + chunk])
        real = len(piece)
        if real < chunk:
            padding = np.zeros((chunk - real,) + piece.shape[1:], piece.dtype)
            piece = np.concatenate([piece, padding])
        chunk_probabilities, chunk_latent = predict_chunk(params, jnp.asarray(piece))
        probabilities[start : start + real] = np.asarray(chunk_probabilities[:real])
        latent[start : start + real] = np.asarray(chunk_latent[:real])
    return probabilities, latent
