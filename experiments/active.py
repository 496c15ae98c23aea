"""The simulated labelling curve: which sentences to label next, each strategy against random.

A run starts from ``active_start`` sentences drawn at random from the corpus's non-test sentences (the
learning curve's nested random order, ``data.split.ranked_pool``), trains bert_ner_es's head to convergence
on them (the pipeline's own head: its settings, early stopping, refit), scores it on the fixed test split, and
asks the strategy for the next ``active_batch`` sentences among ``active_pool`` candidates drawn at random from
the rest (all of it for 0); the corpus's own tags are the oracle. Rounds go on until ``active_until``
sentences are labelled; the last round is cut to land on it exactly. Every strategy of a seed starts from the
same sentences, so a round's scores pair across strategies.

Each round records the labelled sentences and words (uncertainty favours long sentences: words are the honest
cost), the test entity F1 and the seconds spent training and choosing. The output JSON is rewritten after
every round with ``complete: false`` until the last one, so an interrupted run keeps what it measured and does
not look finished.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time

import numpy as np

from data.prepared_io import atomic_write_text
from data.split import ranked_pool
from experiments.runner import Runner
from heads.acquisition import choose, rank_candidates, sentence_vectors
from heads.batches import sentence_starts, word_rows

log = logging.getLogger("experiments")


@dataclasses.dataclass(frozen=True)
class Simulation:
    """The settings of one simulated labelling run."""

    start: int
    batch: int
    until: int
    pool: int  # candidates scored per round; 0: every unlabelled sentence
    samples: int  # BALD's dropout samples
    dropout: float  # BALD's dropout where the head has none


def rounds(settings: Simulation) -> list[int]:
    """The labelled sizes at which a head is trained and scored: start, start + batch, ..., until."""
    sizes = list(range(settings.start, settings.until, settings.batch))
    return sizes + [settings.until]


def simulate(runner: Runner, strategy: str, seed: int, settings: Simulation, vectors, progress=None) -> list[dict]:
    """One strategy's labelling curve for one seed; a row per round (each also handed to ``progress``)."""
    corpus = runner.corpus_for(runner.converged_heads)
    words = runner.prepared.words
    labelled = ranked_pool(runner.non_test, seed)[: settings.start]
    rows = []
    for size in rounds(settings)[1:] + [None]:
        head = runner.converged(labelled, seed)
        metrics = runner.score(head, runner.split["test"])
        row = {
            "strategy": strategy,
            "seed": seed,
            "sentences": len(labelled),
            "words": int(np.diff(corpus.offsets)[labelled].sum()),
            "entity_f1": metrics["entity_f1"],
            "mean_f1": metrics["mean_f1"],
            "train_seconds": round(head.seconds, 2),
        }
        if size is None:
            rows.append(row)
            if progress:
                progress(rows)
            break
        start = time.perf_counter()
        rest = np.setdiff1d(runner.non_test, labelled, assume_unique=True)
        rng = np.random.default_rng([seed, len(labelled)])
        candidates = np.sort(rng.permutation(rest)[: settings.pool]) if settings.pool else rest
        offsets = np.concatenate([[0], np.cumsum(np.diff(corpus.offsets)[candidates])])
        ranking = rank_candidates(
            strategy, head.params, head.model, corpus.features[word_rows(corpus.offsets, candidates)],
            sentence_starts(corpus.offsets, candidates), offsets, batch=size - len(labelled),
            seed=seed * 1000 + len(labelled), vectors=vectors[candidates], samples=settings.samples,
            dropout=settings.dropout,
        )  # fmt: skip
        labelled_words = {tuple(words[i]) for i in labelled}
        chosen = choose(ranking.order, [words[i] for i in candidates], size - len(labelled), labelled_words)
        labelled = np.concatenate([labelled, candidates[chosen]])
        row["choose_seconds"] = round(time.perf_counter() - start, 2)
        rows.append(row)
        if progress:
            progress(rows)
        log.info("%s seed %d: %d sentences, %d words, entity F1 %.4f", strategy, seed, row["sentences"], row["words"],
                 row["entity_f1"])  # fmt: skip
    return rows


def labelling_curve(runner: Runner, out: str | None = None) -> dict:
    """Every strategy of ``active_strategies`` over ``active_seeds``, those of ``active_full`` over
    ``active_full_seeds``, one run after another; ``out`` is rewritten after every round."""
    params = runner.params
    settings = Simulation(
        params.active_start, params.active_batch, params.active_until, params.active_pool,
        params.active_samples, params.active_dropout,
    )  # fmt: skip
    corpus = runner.corpus_for(runner.converged_heads)
    # The diversity strategy's sentence vectors: the cached features, whatever columns the head adds.
    vectors = sentence_vectors(runner.features, runner.prepared.offsets)
    plan = [
        (strategy, seed)
        for strategy in params.active_strategies
        for seed in (params.active_full_seeds if strategy in params.active_full else params.active_seeds)
    ]
    runs, started = [], time.perf_counter()

    def result(rows: list, complete: bool) -> dict:
        return {
            "settings": dataclasses.asdict(settings),
            "rounds": rounds(settings),
            "test_sentences": int(len(runner.split["test"])),
            "mean_words_per_sentence": float(np.diff(corpus.offsets)[runner.non_test].mean()),
            "complete": complete,
            "runs": rows,
        }

    def save(rows: list) -> None:  # after every round: an interrupted run keeps what it measured, marked incomplete
        if out:
            payload = {
                "experiment": "active_learning",
                "seconds": round(time.perf_counter() - started, 1),
                "params": dataclasses.asdict(params),
                "features": runner.fingerprint,
            }
            atomic_write_text(out, json.dumps(dict(payload, **result(runs + rows, False)), indent=1))

    for strategy, seed in plan:
        runs.extend(simulate(runner, strategy, seed, settings, vectors, save))
    return result(runs, True)
