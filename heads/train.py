"""The training schedules of the heads: supervised epochs, then the KL phase's rounds.

The schedules do not call a jitted step per batch: on a CPU the Python between steps (dispatch, keys, adding
metrics) cost about as much as the steps. A schedule draws all its batches first, copies the words they use to the
device once (``heads.tables``), and runs every step as one jitted ``lax.scan`` over the batches' word positions
(``compiled_schedule``): one compile, one call, one fetch of the metrics. Step t's dropout key is
``fold_in(fold_in(key(seed), 1), t)``, the same as a loop calling the jitted steps of ``heads.steps`` would use.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from heads import losses
from heads.batches import padded_size, sentence_batches, word_rows
from heads.context import fit_grid
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

    kind: str  # data_distribution | confidence | both | entropy (losses.KL_KINDS)
    rounds: int  # rounds of the schedule, each one labelled and one unlabelled batch
    schedule: str = "alternating"  # alternating: the seed's KL step then CE step; joint: one step on both
    kl_weight: float = 1.0  # KL scale (alternating; Adam nearly ignores it) or per-word lambda (joint)
    prior: np.ndarray | None = None  # (C,) for the data-distribution KL; None: the labelled words' shares
    target_gradient: bool = False  # confidence KL: gradient through DEC's target (the seed) or not
    learning_rate: float = 1e-3  # of the CE (and joint) step's Adam state, fresh at the phase's start
    kl_learning_rate: float | None = None  # of the KL step's own Adam state; None: learning_rate (the seed)
    control: bool = False  # the matched control: same batches and step count, no KL step

    def __post_init__(self):
        if self.schedule not in SCHEDULES:
            raise ValueError(f"kl schedule {self.schedule!r}: use one of {', '.join(SCHEDULES)}")
        if self.kind not in losses.KL_KINDS:
            raise ValueError(f"unknown KL kind {self.kind!r}; expected one of {losses.KL_KINDS}")
        if self.rounds < 0:
            raise ValueError(f"KL rounds must be >= 0, got {self.rounds}")


def kl_phase(recipe, kl, prior) -> KLPhase:
    """The phase a KL model (a ``kl_models`` entry, ``heads.settings.KLModelParams``) runs: its own values,
    else section ``kl``'s validated defaults (``heads.settings.KLParams``); ``prior`` (C,) or None."""

    def chosen(value, default):
        return default if value is None else value

    return KLPhase(
        kind=recipe.kind,
        rounds=recipe.rounds,
        schedule=chosen(recipe.schedule, kl.schedule),
        kl_weight=chosen(recipe.weight, kl.weight),
        prior=prior,
        target_gradient=chosen(recipe.target_gradient, kl.target_gradient),
        learning_rate=kl.learning_rate,
        kl_learning_rate=chosen(recipe.kl_learning_rate, kl.kl_learning_rate),
        control=recipe.control,
    )


def compiled_schedule(step):
    """A jitted run of ``step`` over stacked batches, continuing a HeadState.

    ``step(state, batches, dropout_root) -> (state, metrics)`` gets a tuple of
    Batches. The returned ``run(state, tables, stacked, seed)`` takes a tuple
    of word tables and the matching tuple of stacked position Batches (from
    ``word_table`` and ``word_positions``, leading axis T) and returns
    (state, metrics stacked to (T,)). The whole run is one ``lax.scan``: no
    Python between steps; a schedule cut into segments of one length (early
    stopping) calls the same compiled ``run`` once per segment.
    """

    def run(state, tables, stacked, seed):
        dropout_root = jax.random.fold_in(jax.random.key(seed), DROPOUT_STREAM)

        def body(state, positions):
            batches = tuple(
                batch._replace(inputs=table[batch.inputs])  # (P, D) or (P,)
                for table, batch in zip(tables, positions, strict=True)
            )
            return step(state, batches, dropout_root)

        return jax.lax.scan(body, state, stacked)

    return jax.jit(run)


def table_rows(rows: int, bucket: int = 4096, small: int = 1 << 17) -> int:
    """Rows a word table of ``rows`` is padded to: a power of two (>= ``bucket``) up to ``small``, then multiples
    of ``bucket``: labelled words, which an active-learning simulation grows each round, get a handful of shapes;
    unlabelled ones waste little memory."""
    power = max(bucket, 1 << max(rows - 1, 0).bit_length())
    return power if power <= small else -(-rows // bucket) * bucket


def device_tables(inputs, plans, bucket=4096):
    """The device word table of each (rows, stacked) plan, zero rows appended up to ``table_rows``: never read
    (positions stop at row N, the padding row), they give runs few distinct shapes, so the persistent compilation
    cache serves a schedule's next run (the experiments train hundreds of heads) instead of compiling it again."""
    tables = []
    for rows, _ in plans:
        table = word_table(inputs, rows)  # (N + 1, D) or (N + 1,)
        extra = table_rows(len(table), bucket) - len(table)
        tables.append(jnp.pad(table, [(0, extra)] + [(0, 0)] * (table.ndim - 1)) if extra else table)
    return tuple(tables)


def segment(stacked, start, stop):
    """Steps ``start:stop`` of a stacked Batch (NumPy slices; the same length compiles once)."""
    return jax.tree_util.tree_map(lambda array: array[start:stop], stacked)


def check_finite(values, where):
    """Stop before any head is written when a loss went NaN or Inf."""
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise ValueError(
            f"non-finite loss (NaN or Inf) at {where(int(bad[0]))}: "
            "check the features for NaN/Inf or lower the learning rate"
        )


def step_key(dropout_root, state):
    # Depends only on the seed and how many steps of any kind came before.
    return jax.random.fold_in(dropout_root, state.step)


def mean_ce(ce_sum, words):
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
    model = fit_grid(model, offsets, batches)

    optimizer = make_optimizer(learning_rate, weight_decay)
    steps = bind_steps(
        model, optimizer, class_weights=class_weights, kind=None, prior=None,
        target_gradient=False, kl_weight=1.0,
    )  # fmt: skip

    def ce(state, batches, dropout_root):
        (labelled,) = batches
        return steps.ce(state, labelled, step_key(dropout_root, state))

    run = compiled_schedule(ce)
    state, metrics = run(init_state(params, optimizer), device_tables(inputs, (plan,)), (plan[1],), seed)
    metrics = jax.device_get(metrics)  # {name: (steps,)}
    per_epoch = max(len(epoch_batches[0]), 1) if epoch_batches else 1
    check_finite(metrics["ce_sum"], lambda step: f"step {step}, epoch {step // per_epoch + 1} of {epochs}")
    history, start = [], 0
    for epoch in epoch_batches:
        stop = start + len(epoch)
        ce_sum = metrics["ce_sum"][start:stop].sum(dtype=np.float64)
        history.append(mean_ce(ce_sum, metrics["words"][start:stop].sum(dtype=np.float64)))
        start = stop
    return state.params, history


def batch_stream(sentence_ids, batch_sentences, rng, count):
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
    labelled_batches = batch_stream(labelled_ids, batch_sentences, rng, phase.rounds)
    unlabelled_batches = batch_stream(unlabelled_ids, batch_sentences, rng, phase.rounds)
    size = padded_size(offsets, labelled_batches + unlabelled_batches, pad_multiple)
    model = fit_grid(model, offsets, labelled_batches + unlabelled_batches)
    plans = (
        word_positions(offsets, labelled_batches, size, labels),
        # Unlabelled batches never read labels: labels is None.
        word_positions(offsets, unlabelled_batches, size, None),
    )

    optimizer = make_optimizer(phase.learning_rate, weight_decay)
    kl_rate = phase.learning_rate if phase.kl_learning_rate is None else phase.kl_learning_rate
    kl_optimizer = make_optimizer(kl_rate, weight_decay)
    steps = bind_steps(
        model, optimizer, class_weights=class_weights, kind=phase.kind, prior=prior,
        target_gradient=phase.target_gradient, kl_weight=phase.kl_weight, kl_optimizer=kl_optimizer,
    )  # fmt: skip

    def alternating(state, batches, dropout_root):
        labelled, unlabelled = batches
        state, kl_metrics = steps.kl(state, unlabelled, step_key(dropout_root, state))
        state, ce_metrics = steps.ce(state, labelled, step_key(dropout_root, state))
        return state, {**kl_metrics, **ce_metrics}

    def joint(state, batches, dropout_root):
        labelled, unlabelled = batches
        return steps.joint(state, labelled, unlabelled, step_key(dropout_root, state))

    def control(state, batches, dropout_root):
        # The KL model's CE steps alone: the step counter skips the KL step's
        # number, so each CE step gets the dropout key it has in the KL model.
        (labelled,) = batches
        if phase.schedule == "alternating":
            state = state._replace(step=state.step + 1)
        state, ce_metrics = steps.ce(state, labelled, step_key(dropout_root, state))
        return state, {"kl_sum": jnp.zeros(()), **ce_metrics}

    body = control if phase.control else joint if phase.schedule == "joint" else alternating
    plans = plans[:1] if phase.control else plans  # a control never reads its unlabelled batches
    state = init_state(params, optimizer, kl_optimizer)
    state, metrics = compiled_schedule(body)(state, device_tables(inputs, plans), tuple(p[1] for p in plans), seed)
    metrics = jax.device_get(metrics)  # {name: (rounds,)}
    check_finite(metrics["kl_sum"] + metrics["ce_sum"], lambda r: f"KL round {r + 1} of {phase.rounds}")
    kl_sums, ce_sums, words = metrics["kl_sum"], metrics["ce_sum"], metrics["words"]
    history = [{"kl": float(kl_sums[r]), "ce": mean_ce(ce_sums[r], words[r])} for r in range(phase.rounds)]
    return state.params, history
