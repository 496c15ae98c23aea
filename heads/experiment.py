"""Train and score many heads in one process, for the experiments (learning curves, sweeps).

The DVC pipeline trains one head per stage; an experiment trains hundreds, so
here the features stay memory-mapped, the XLA executables are reused, and
entity F1 is the vectorised `entity_f1_fast` (checked against seqeval).
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from heads.batches import word_rows
from heads.losses import inverse_frequency_weights
from heads.metrics import entity_f1_fast, word_metrics
from heads.model import MLPHead
from heads.train import predict, train_joint_rounds, train_kl_rounds, train_supervised


@dataclasses.dataclass(frozen=True)
class Corpus:
    """What every experiment run reads: features (memory-mapped), labels, tags, sentences."""

    features: object          # (W, D) float16, indexable by row arrays
    labels: np.ndarray        # (W,) int32 category ids; training reads only labelled rows
    tags: list[str]           # (W,) the true tags as written (BIO), for entity F1
    offsets: np.ndarray       # (S+1,)
    categories: list[str]


@dataclasses.dataclass(frozen=True)
class Head:
    """A trained head and how long its training took."""

    params: dict
    model: MLPHead
    seconds: float


def train_ner(corpus: Corpus, labelled: np.ndarray, seed: int, *, epochs: int = 20,
              learning_rate: float = 1e-3, weight_decay: float = 0.0, dropout: float = 0.0,
              class_weighting: bool = False) -> Head:
    """BERT NER: CE for ``epochs`` passes over the labelled sentences."""
    model = MLPHead(len(corpus.categories), dropout_rate=dropout)
    weights = (inverse_frequency_weights(corpus.labels[word_rows(corpus.offsets, labelled)],
                                         len(corpus.categories)) if class_weighting else None)
    start = time.perf_counter()
    params, _ = train_supervised(None, corpus.features, corpus.labels, corpus.offsets, labelled,
                                 model=model, epochs=epochs, learning_rate=learning_rate,
                                 weight_decay=weight_decay, class_weights=weights, seed=seed)
    return Head(params, model, time.perf_counter() - start)


def train_kl(corpus: Corpus, start_from: Head, labelled: np.ndarray, unlabelled: np.ndarray, seed: int,
             *, kind: str, rounds: int, schedule: str = "alternating", kl_weight: float = 1.0,
             prior: np.ndarray | None = None, target_gradient: bool = False,
             learning_rate: float = 1e-3, weight_decay: float = 0.0, class_weighting: bool = False) -> Head:
    """A KL model from ``start_from``'s weights: alternating KL/CE steps, or the joint loss."""
    function = {"alternating": train_kl_rounds, "joint": train_joint_rounds}[schedule]
    weights = (inverse_frequency_weights(corpus.labels[word_rows(corpus.offsets, labelled)],
                                         len(corpus.categories)) if class_weighting else None)
    start = time.perf_counter()
    params, _ = function(start_from.params, corpus.features, corpus.labels, corpus.offsets, labelled,
                         unlabelled, model=start_from.model, rounds=rounds, kind=kind, prior=prior,
                         target_gradient=target_gradient, kl_weight=kl_weight, learning_rate=learning_rate,
                         weight_decay=weight_decay, class_weights=weights, seed=seed)
    return Head(params, start_from.model, time.perf_counter() - start)


def score(corpus: Corpus, head: Head, sentences: np.ndarray) -> dict:
    """Word and entity metrics of ``head`` on ``sentences`` (test or validation ids)."""
    rows = word_rows(corpus.offsets, sentences)
    probabilities, _ = predict(head.params, head.model, corpus.features[rows])
    predicted = probabilities.argmax(1)
    metrics = word_metrics(corpus.labels[rows], predicted, corpus.categories)
    lengths = np.diff(corpus.offsets)[sentences]
    entity = entity_f1_fast([corpus.tags[r] for r in rows], predicted, corpus.categories,
                            np.concatenate([[0], np.cumsum(lengths)]))
    return {"accuracy": metrics["accuracy"], "accuracy_no_o": metrics["accuracy_no_o"],
            "mean_f1": metrics["mean_f1"], "entity_f1": entity["f1"],
            "f1": {c: v["f1"] for c, v in metrics["per_category"].items()},
            "predicted_share": {c: v["predicted_share"] for c, v in metrics["per_category"].items()},
            "train_seconds": round(head.seconds, 3)}
