"""Experiments beyond the seed: one subcommand per question, each writing reports/experiments/<name>.json.

    selection       the validated defaults: KL step size, joint lambda, target gradient, self-training threshold
    learning_curve  labelled size 64..5,120, random sample, unlabelled pool fixed: converged BERT NER, the
                    validated KL-phase models and self-training, each with its matched control
    biased          the same sizes, sentences with fewer O words drawn first;
                    data-distribution prior from the (biased) sample vs a given one
    regularizers    L2 weight decay and dropout, grid chosen on validation, alone and with the KL terms
    joint           CE + lambda * KL in one step (lambda chosen on validation) vs the alternating steps
    features        encoder layers x pooling, chosen on validation (runs the encoder on the labelled split)
    class_weights   inverse-frequency class weights in CE, per-category F1 of the rare categories
    target_gradient confidence KL with DEC's fixed target vs the seed's gradient through the target
    active_learning the simulated labelling curve: each strategy of heads.acquisition against random

    python -m experiments learning_curve --out reports/experiments/learning_curve.json

Heads are built from the main params.yaml (heads, bert_ner, kl, kl_models,
extract), so the experiments test the pipeline's own heads; the grids and
sizes come from the ``experiments`` section of experiments/params.yaml.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from typing import Annotated, Literal

from pydantic import Field, Strict

from data.prepared_io import atomic_write_text
from experiments import questions
from experiments.active import labelling_curve
from experiments.runner import Runner
from features.settings import Counts, Positive, settings
from heads.acquisition import STRATEGIES
from heads.settings import Strategy
from pipeline.params import enable_compilation_cache, load_section, run_main

Numbers = Annotated[tuple[Annotated[float, Field(ge=0)], ...], Strict(False)]  # a list of numbers >= 0
CurveModel = Literal["ner_dd_kl", "ner_conf_kl", "ner_both_kl", "ner_entropy", "ner_self_training"]
LayerChoices = Annotated[tuple[Counts, ...], Strict(False)]  # a list of lists of layers


@settings
class ExperimentParams:
    """Section ``experiments`` of experiments/params.yaml."""

    seeds: Counts = (0, 1, 2, 3, 4)  # test-split runs per point
    selection_seeds: Counts = (0, 1, 2)  # validation runs per grid point
    sizes: Annotated[tuple[Positive, ...], Strict(False)] = (64, 128, 256, 512, 1024, 2560, 5120)
    pool_size: Positive = 5120  # labelled pool; the other non-test sentences are unlabelled
    bias_strength: Annotated[float, Field(ge=0)] = 10.0  # biased draw: weight exp(-strength * O share)
    validation_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.2  # of the labelled split, for every selection
    weight_decays: Numbers = (1e-4, 1e-3, 1e-2, 1e-1)
    dropouts: Numbers = (0.1, 0.3, 0.5)
    lambdas: Numbers = (0.01, 0.1, 1.0, 10.0)  # per-word joint-loss weights (every kind is per word)
    kl_learning_rates: Numbers = (1e-5, 1e-4, 1e-3)  # the KL step's own Adam (the seed's: 1e-3)
    thresholds: Numbers = (0.7, 0.9, 0.97)  # self-training: global probability / per-category quantile
    # what `selection` chooses (one part per process, if split)
    selection_parts: Annotated[tuple[Literal["kl", "self_training"], ...], Strict(False)] = ("kl", "self_training")
    # the semi-supervised models the curves train (each with its matched control); the CRF peer beside them
    curve_models: Annotated[tuple[CurveModel, ...], Strict(False)] = (
        "ner_dd_kl",
        "ner_conf_kl",
        "ner_both_kl",
        "ner_entropy",
        "ner_self_training",
    )
    curve_peer: bool = True
    # class_weights: the per-word loss a CRF head's class weights act through (bert_ner_rare's, chosen on validation)
    class_weight_word_loss: Annotated[float, Field(gt=0)] = 0.3
    layer_choices: LayerChoices = ((2,), (3,), (4,), (6,), (2, 3, 4), (3, 4, 5), (1, 2, 3, 4, 5, 6))
    poolings: Annotated[tuple[Literal["first", "mean"], ...], Strict(False)] = ("first", "mean")
    # active_learning (experiments/active.py): every strategy over active_seeds (a screen), random and the
    # strategies of active_full over active_full_seeds
    active_strategies: Annotated[tuple[Strategy, ...], Strict(False)] = STRATEGIES
    active_full: Annotated[tuple[Strategy, ...], Strict(False)] = ("random", "mnlp")
    active_seeds: Counts = (0, 1, 2)
    active_full_seeds: Counts = (0, 1, 2, 3, 4)
    active_start: Positive = 64
    active_batch: Positive = 128
    active_until: Positive = 2560
    active_pool: Annotated[int, Field(ge=0)] = 0  # candidates scored per round; 0: every unlabelled sentence
    active_samples: Positive = 8  # BALD's dropout samples
    active_dropout: Annotated[float, Field(gt=0, lt=1)] = 0.3  # BALD's dropout for a head trained without


EXPERIMENTS = {
    "learning_curve": lambda runner: questions.curve(runner, biased=False),
    "biased": lambda runner: questions.curve(runner, biased=True),
    "regularizers": questions.regularizers,
    "joint": questions.joint,
    "features": questions.encoder_layers,
    "class_weights": questions.class_weights,
    "target_gradient": questions.target_gradient,
    "selection": questions.selection,
    "active_learning": labelling_curve,
}


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m experiments", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("experiment", choices=sorted(EXPERIMENTS))
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--experiment-params", default="experiments/params.yaml")
    parser.add_argument("--prepared", default="data/prepared")
    parser.add_argument("--cache", default="cache/features.h5")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    enable_compilation_cache()
    settings = load_section(ExperimentParams, "experiments", args.experiment_params)
    runner = Runner(settings, args.params, args.prepared, args.cache)
    start = time.perf_counter()
    run = EXPERIMENTS[args.experiment]
    # the labelling curve rewrites --out after each run: an interrupted one keeps what it measured
    result = run(runner, args.out) if run is labelling_curve else run(runner)
    payload = {
        "experiment": args.experiment,
        "seconds": round(time.perf_counter() - start, 1),
        "params": dataclasses.asdict(settings),
        "features": runner.fingerprint,
        **(result if isinstance(result, dict) else {"runs": result}),
    }
    atomic_write_text(args.out, json.dumps(payload, indent=1))


if __name__ == "__main__":
    run_main(main)
