"""``heads.kind: auto``: the head chosen per corpus, on the validation part of its labelled split.

Each candidate (section ``auto_head``: a name and its changes to the model's head settings, e.g. the kind,
the output, the dropout, the word-form inputs) trains as the model would: early stopping on the
held-out part of the labelled split (section ``early_stopping``: the same part for every candidate); its
best validation entity F1 is its score. The highest mean score over ``auto_head.seeds`` wins, and the
model then trains with the winner's settings, once per seed, refit on the whole labelled split. A user
with little time fixes ``heads.kind`` instead (mlp or bilstm), which skips all of this.

The choice, every candidate's validation scores, chosen steps and training time are what ``choose_head``
returns; the train stage writes them to metrics/choice/<model>.json and the saved heads record the
winner's concrete settings, so a model that starts from them (the semi-supervised rows) reads the same
head.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from heads.build import build_model
from heads.early_stopping import train_converged
from heads.fit import training_data
from heads.settings import AutoHeadParams, ModelSettings
from heads.stats import validation_split


def candidate_settings(settings: ModelSettings, changes: dict) -> ModelSettings:
    """``settings`` with a candidate's ``changes`` to its head settings (``kind`` must end concrete)."""
    heads = dataclasses.replace(settings.heads, **changes)
    if heads.kind == "auto":
        raise ValueError(f"auto_head candidate {changes}: name a concrete heads.kind (mlp or bilstm)")
    return dataclasses.replace(settings, heads=heads)


def choose_head(settings: ModelSettings, auto: AutoHeadParams, prepared, word_inputs, log=None):
    """(``settings`` with the winning candidate's head settings, the choice as a dict for choice.json)."""
    if settings.early_stopping is None:
        raise ValueError(f"{settings.model_id}: heads.kind auto chooses on validation: use schedule early_stopping")
    stopping = dataclasses.replace(settings.early_stopping, refit=False)  # the score is all a candidate gives
    tags = prepared.tags
    candidates = {}
    for name, changes in auto.candidates.items():
        candidate = candidate_settings(settings, changes)
        data = training_data(candidate, prepared, word_inputs)
        model = build_model(candidate.heads, data.categories)
        runs = []
        for seed in auto.seeds:
            start = time.perf_counter()
            _, info = train_converged(
                data.inputs, data.labels, data.offsets, data.labelled,
                lambda ids: [tag for s in ids for tag in tags[s]], data.categories, stopping, model=model,
                batch_sentences=candidate.heads.batch_sentences, learning_rate=candidate.heads.learning_rate,
                weight_decay=candidate.heads.weight_decay, class_weights=data.class_weights, seed=seed,
            )  # fmt: skip
            score = max(entry["score"] for entry in info["history"])
            runs.append({"seed": seed, "entity_f1": score, "best_step": info["best_step"],
                         "seconds": round(time.perf_counter() - start, 2)})  # fmt: skip
        candidates[name] = {
            "changes": changes,
            "entity_f1": float(np.mean([run["entity_f1"] for run in runs])),
            "seconds": float(np.sum([run["seconds"] for run in runs])),
            "runs": runs,
        }
        if log is not None:
            log.info("auto head: %s validation entity F1 %.4f", name, candidates[name]["entity_f1"])
    chosen = max(candidates, key=lambda name: candidates[name]["entity_f1"])
    choice = {
        "chosen": chosen,
        "heads": candidate_settings(settings, auto.candidates[chosen]).heads.as_config(),
        "rule": "the candidate of highest validation entity F1 (mean over auto_head.seeds)",
        "validation_sentences": len(
            validation_split(prepared.split["labelled"], stopping.validation_fraction, stopping.validation_seed)[1]
        ),
        "seeds": list(auto.seeds),
        "candidates": candidates,
    }
    return candidate_settings(settings, auto.candidates[chosen]), choice
