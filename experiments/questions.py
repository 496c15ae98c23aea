"""The experiments' questions: each takes the Runner and returns the runs (or a dict with them) it measured.

Every selection uses a validation part of the labelled split; the test split
only scores the chosen settings.
"""

from __future__ import annotations

import dataclasses
import logging
import time

import numpy as np

from data.split import outside_share, ranked_pool
from experiments.runner import Corpus, Runner, score
from features.align import tokenize
from features.encoder import load_encoder
from features.extract import encode_windows, use_bf16
from heads.batches import word_rows
from heads.losses import prior_from_labels

log = logging.getLogger("experiments")


def ce_control(runner: Runner, ner, labelled, unlabelled, seed):
    """The old unmatched control of the seed rows' experiments: BERT NER plus the most CE steps any seed KL model takes.

    The learning curve uses matched controls instead (``matched_heads``).
    """
    rounds = max(runner.kl_models[m].rounds for m in runner.seed_models)
    model = runner.seed_models[0]
    return runner.kl_heads(
        ner, labelled, unlabelled, seed, models=[model], schedule="joint", kl_weight=0.0, rounds=rounds
    )[model]


def record(runs: list, metrics: dict, **fields) -> None:
    runs.append(dict(fields, **metrics))
    log.info(
        "%s: mean F1 %.4f, entity F1 %.4f",
        " ".join(f"{k}={v}" for k, v in fields.items()),
        metrics["mean_f1"],
        metrics["entity_f1"],
    )


def matched_heads(
    runner: Runner, teacher, labelled, unlabelled, seed, models, evaluated, controls=None, **overrides
) -> dict:
    """{name: metrics on ``evaluated``} of each KL-phase model and its matched control, from ``teacher``.

    A control takes the model's CE steps on the same labelled batches, with
    no KL step; controls that would be identical (same rounds, schedule and
    CE step size: the labelled batches are drawn first from the same seed)
    are trained once (also across calls that pass the same ``controls`` dict).
    """
    scores, controls = {}, ({} if controls is None else controls)
    for model in models:
        phase = runner.phase(model, **overrides)
        head = runner.kl_heads(teacher, labelled, unlabelled, seed, models=[model], **overrides)[model]
        scores[model] = runner.score(head, evaluated)
        key = (phase.rounds, phase.schedule, phase.learning_rate)
        if key not in controls:
            control = runner.kl_heads(teacher, labelled, unlabelled, seed, models=[model], control=True, **overrides)[
                model
            ]
            controls[key] = runner.score(control, evaluated)
        scores[f"{model}_control"] = controls[key]
    return scores


def curve(runner: Runner, biased: bool) -> list:
    """Learning curve over labelled sizes, for a random or an O-biased labelled sample.

    At each size and seed: BERT NER on the seed's 20 epochs and trained to
    convergence (bert_ner_es); from the converged head, each validated KL-phase
    model of params.yaml (KL terms and entropy minimisation) and self-training
    named in ``curve_models``, each with its matched control; with ``curve_peer``,
    the classic CRF peer (bench/peers.py) trained on the same labelled sample.
    """
    p = runner.params
    outside = outside_share(runner.prepared.tags)
    # A prior the user could know without the biased sample: the shares of the random labelled split.
    given_prior = prior_from_labels(
        runner.corpus.labels[word_rows(runner.corpus.offsets, runner.split["labelled"])], len(runner.corpus.categories)
    )
    dd_models = [m for m in runner.validated_models if runner.kl_models[m].kind == "data_distribution"]
    runs, test = [], runner.split["test"]
    for seed in p.seeds:
        order = ranked_pool(runner.non_test, seed, outside, p.bias_strength if biased else 0.0)
        unlabelled = np.sort(order[p.pool_size :])
        for size in p.sizes:
            labelled = np.sort(order[:size])
            sample = {
                "sample": "biased" if biased else "random",
                "size": size,
                "seed": seed,
                "labelled_o_share": round(float(outside[labelled].mean()), 4),
            }
            record(runs, runner.score(runner.ner(labelled, seed), test), model="bert_ner", **sample)
            teacher = runner.converged(labelled, seed)
            record(runs, runner.score(teacher, test), model="bert_ner_es", **sample)
            kl_models = [m for m in runner.validated_models if m in p.curve_models]
            for model, metrics in matched_heads(runner, teacher, labelled, unlabelled, seed, kl_models, test).items():
                record(runs, metrics, model=model, **sample)
            if "ner_self_training" in p.curve_models:
                for name, control in (("ner_self_training", False), ("ner_self_training_control", True)):
                    head = runner.self_trained(teacher, labelled, unlabelled, seed, control=control)
                    record(runs, runner.score(head, test), model=name, **sample)
            if p.curve_peer:
                record(runs, runner.crf_peer(labelled, test), model="crf_peer", **sample)
            if biased and dd_models:
                head = runner.kl_heads(teacher, labelled, unlabelled, seed, models=dd_models[:1], prior=given_prior)[
                    dd_models[0]
                ]
                record(runs, runner.score(head, test), model=f"{dd_models[0]}_given_prior", **sample)
    return {"runs": runs, "settings": defaults(runner), "protocol": protocol(runner)}


def protocol(runner: Runner) -> dict:
    """The supervised heads' figures the report's prose names: the seed's epochs, early stopping's held-out share."""
    return {
        "bert_ner_epochs": runner.epochs,
        "early_stopping_validation_fraction": runner.stopping.validation_fraction,
    }


def split_sizes(runner: Runner) -> dict:
    """The sizes of the labelled split and its validation part, for the report's prose."""
    return {
        "labelled_sentences": int(len(runner.split["labelled"])),
        "validation_sentences": int(len(runner.validation_part)),
    }


def defaults(runner: Runner) -> dict:
    """The settings each validated model runs with (params.yaml), for the report to hold against validation."""
    settings = {
        model: {
            k: v
            for k, v in dataclasses.asdict(runner.phase(model)).items()
            if k in ("schedule", "kl_learning_rate", "kl_weight", "target_gradient")
        }
        for model in runner.validated_models
    }
    settings["ner_self_training"] = {
        "threshold": runner.self_training.threshold,
        "per_category": runner.self_training.per_category,
    }
    return settings


def selection(runner: Runner) -> dict:
    """The validated defaults: every choice made on the validation part of the labelled split.

    Teachers: BERT NER trained to convergence on the train part (its own
    early stopping holds out a part of that). For each validated KL-phase
    model: the alternating schedule over KL step sizes (and, for the
    confidence KL, with and without the gradient through DEC's target), and
    the joint schedule over per-word lambdas. Self-training: the threshold,
    global or per category. Each grid point is scored by validation entity F1
    averaged over the selection seeds, beside its matched control.
    """
    p = runner.params
    labelled, validation, unlabelled = runner.train_part, runner.validation_part, runner.split["unlabelled"]
    seeds = list(p.selection_seeds)
    teachers = {seed: runner.converged(labelled, seed) for seed in seeds}
    supervised = [
        {
            "seed": seed,
            "best_step": teachers[seed].info["best_step"],
            "converged": runner.score(teachers[seed], validation)["entity_f1"],
            "epochs_20": runner.score(runner.ner(labelled, seed), validation)["entity_f1"],
        }
        for seed in seeds
    ]
    log.info("supervised on validation: %s", supervised)
    grids, chosen, controls = {}, {}, {}
    for model in runner.validated_models if "kl" in p.selection_parts else []:
        kind = runner.kl_models[model].kind
        flags = (False, True) if kind == "confidence" else (None,)
        configs = [
            {"schedule": "alternating", "kl_learning_rate": rate, **({} if flag is None else {"target_gradient": flag})}
            for rate in p.kl_learning_rates
            for flag in flags
        ]
        configs += [{"schedule": "joint", "kl_weight": weight} for weight in p.lambdas]
        rows = []
        for config in configs:
            scores = [
                matched_heads(
                    runner,
                    teachers[seed],
                    labelled,
                    unlabelled,
                    seed,
                    [model],
                    validation,
                    controls.setdefault(seed, {}),
                    **config,
                )
                for seed in seeds
            ]
            rows.append(
                {
                    **config,
                    "validation_entity_f1": float(np.mean([s[model]["entity_f1"] for s in scores])),
                    "control_entity_f1": float(np.mean([s[f"{model}_control"]["entity_f1"] for s in scores])),
                    "validation_accuracy": float(np.mean([s[model]["accuracy"] for s in scores])),
                }
            )
            log.info("selection %s %s", model, rows[-1])
        grids[model] = rows
        chosen[model] = max(rows, key=lambda row: row["validation_entity_f1"])
    rows = []
    for per_category in (False, True) if "self_training" in p.selection_parts else ():
        for threshold in p.thresholds:
            scores = [
                runner.score(
                    runner.self_trained(
                        teachers[seed], labelled, unlabelled, seed, threshold=threshold, per_category=per_category
                    ),
                    validation,
                )
                for seed in seeds
            ]
            rows.append(
                {
                    "threshold": threshold,
                    "per_category": per_category,
                    "validation_entity_f1": float(np.mean([s["entity_f1"] for s in scores])),
                    "validation_accuracy": float(np.mean([s["accuracy"] for s in scores])),
                }
            )
            log.info("selection self-training %s", rows[-1])
    if rows:
        control = [
            runner.score(runner.self_trained(teachers[seed], labelled, unlabelled, seed, control=True), validation)[
                "entity_f1"
            ]
            for seed in seeds
        ]
        grids["ner_self_training"] = rows
        chosen["ner_self_training"] = dict(
            max(rows, key=lambda row: row["validation_entity_f1"]), control_entity_f1=float(np.mean(control))
        )
    return {
        **split_sizes(runner),
        "epochs": runner.epochs,
        "supervised": supervised,
        "grids": grids,
        "chosen": chosen,
        "defaults": defaults(runner),
        "grid_values": {
            "kl_learning_rates": list(p.kl_learning_rates),
            "lambdas": list(p.lambdas),
            "thresholds": list(p.thresholds),
        },
    }


def select(runner: Runner, grid: list, train_and_score) -> tuple[object, list]:
    """The grid value with the best mean validation mean F1 over the selection seeds."""
    rows = []
    for value in grid:
        scores = [train_and_score(value, seed) for seed in runner.params.selection_seeds]
        rows.append(
            {
                "value": value,
                "validation_mean_f1": float(np.mean([s["mean_f1"] for s in scores])),
                "validation_entity_f1": float(np.mean([s["entity_f1"] for s in scores])),
            }
        )
        log.info("validation %s: %s", value, rows[-1])
    best = max(rows, key=lambda row: row["validation_mean_f1"])["value"]
    return best, rows


def regularizers(runner: Runner) -> dict:
    def validate(option):
        def run(value, seed):
            head = runner.ner(runner.train_part, seed, **{option: value})
            return runner.score(head, runner.validation_part)

        return run

    grid = {"weight_decay": [0.0, *runner.params.weight_decays], "dropout": [0.0, *runner.params.dropouts]}
    chosen, selection = {}, {}
    for option, values in grid.items():
        chosen[option], selection[option] = select(runner, values, validate(option))
    variants = {"none": {}, "l2": {"weight_decay": chosen["weight_decay"]}, "dropout": {"dropout": chosen["dropout"]}}
    runs = []
    labelled, unlabelled = runner.split["labelled"], runner.split["unlabelled"]
    for seed in runner.params.seeds:
        for name, options in variants.items():
            ner = runner.ner(labelled, seed, **options)
            record(runs, runner.score(ner, runner.split["test"]), model="bert_ner", regularizer=name, seed=seed)
            record(
                runs,
                runner.score(ce_control(runner, ner, labelled, unlabelled, seed), runner.split["test"]),
                model="bert_ner_extra_ce",
                regularizer=name,
                seed=seed,
            )
            kl_options = {"weight_decay": options["weight_decay"]} if "weight_decay" in options else {}
            for model, head in runner.kl_heads(ner, labelled, unlabelled, seed, heads=kl_options).items():
                record(runs, runner.score(head, runner.split["test"]), model=model, regularizer=name, seed=seed)
            # The default head (bert_ner_es's choice), trained to convergence, with the same values and none.
            default = runner.converged(labelled, seed, **{"weight_decay": 0.0, "dropout": 0.0, **options})
            record(runs, runner.score(default, runner.split["test"]), model="bert_ner_es", regularizer=name, seed=seed)
    return {"chosen": chosen, "selection": selection, "default_head": default_head(runner), "runs": runs}


def joint(runner: Runner) -> dict:
    models = ["bert_dd_kl", "bert_conf_kl"]
    ners = {seed: runner.ner(runner.train_part, seed) for seed in runner.params.selection_seeds}
    chosen, selection = {}, {}
    for model in models:

        def run(value, seed, model=model):
            head = runner.kl_heads(
                ners[seed],
                runner.train_part,
                runner.split["unlabelled"],
                seed,
                models=[model],
                schedule="joint",
                kl_weight=value,
            )[model]
            return runner.score(head, runner.validation_part)

        chosen[model], selection[model] = select(runner, list(runner.params.lambdas), run)
    runs = []
    labelled, unlabelled = runner.split["labelled"], runner.split["unlabelled"]
    for seed in runner.params.seeds:
        ner = runner.ner(labelled, seed)
        for model in models:
            rounds = runner.kl_models[model].rounds
            alternating = runner.kl_heads(ner, labelled, unlabelled, seed, models=[model])[model]
            record(
                runs,
                runner.score(alternating, runner.split["test"]),
                model=model,
                schedule="alternating",
                rounds=rounds,
                seed=seed,
            )
            same_batches = runner.kl_heads(
                ner, labelled, unlabelled, seed, models=[model], schedule="joint", kl_weight=chosen[model]
            )[model]
            record(
                runs,
                runner.score(same_batches, runner.split["test"]),
                model=model,
                schedule="joint, same unlabelled batches",
                rounds=rounds,
                seed=seed,
            )
            # Same wall-clock budget: as many joint rounds as fit in the alternating run's time.
            budget_rounds = max(1, int(round(rounds * alternating.seconds / max(same_batches.seconds, 1e-9))))
            same_time = runner.kl_heads(
                ner,
                labelled,
                unlabelled,
                seed,
                models=[model],
                schedule="joint",
                kl_weight=chosen[model],
                rounds=budget_rounds,
            )[model]
            record(
                runs,
                runner.score(same_time, runner.split["test"]),
                model=model,
                schedule="joint, same wall-clock",
                rounds=budget_rounds,
                seed=seed,
            )
    return {"chosen_lambda": chosen, "selection": selection, "runs": runs}


def encoder_layers(runner: Runner) -> dict:
    """Layers x pooling on validation: the encoder runs here, on the labelled split only.

    ``features.extract.encode_windows`` keeps every hidden state of one encoder
    pass per pooling, and each layer choice averages its layers from those:
    the pipeline's ``encode_to_cache`` writes one choice to an HDF5 cache, which
    would take one encoder pass per choice.
    """
    extract = runner.extract
    encoder = load_encoder(extract.encoder)
    labelled = runner.split["labelled"]
    sentences = [runner.prepared.words[s] for s in labelled]
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in sentences])])
    local = {s: i for i, s in enumerate(labelled)}
    train_local = np.array([local[s] for s in runner.train_part])
    validation_local = np.array([local[s] for s in runner.validation_part])
    rows = word_rows(runner.corpus.offsets, labelled)  # the labelled words, in sentence order
    all_layers = list(range(encoder.num_layers + 1))
    windows = tokenize(encoder.tokenizer, sentences, encoder.max_length, extract.stride)
    grid, timings = [], {}
    for pooling in runner.params.poolings:
        start = time.perf_counter()
        hidden = encode_windows(
            encoder, windows, all_layers, "concat", pooling, use_bf16(extract.precision), extract.max_batch_tokens
        )
        timings[pooling] = time.perf_counter() - start
        hidden = hidden.reshape(len(hidden), len(all_layers), -1)  # (W, L+1, H)
        for layers in runner.params.layer_choices:
            vectors = hidden[:, list(layers)].mean(1).astype(np.float16)  # (W, H)
            corpus = Corpus(
                vectors,
                runner.corpus.labels[rows],
                [runner.corpus.tags[r] for r in rows],
                offsets,
                runner.corpus.categories,
            )
            scores = [
                score(corpus, runner.ner(train_local, seed, corpus=corpus), validation_local)
                for seed in runner.params.selection_seeds
            ]
            grid.append(
                {
                    "layers": list(layers),
                    "pooling": pooling,
                    "validation_mean_f1": float(np.mean([s["mean_f1"] for s in scores])),
                    "validation_entity_f1": float(np.mean([s["entity_f1"] for s in scores])),
                    "validation_accuracy_no_o": float(np.mean([s["accuracy_no_o"] for s in scores])),
                }
            )
            log.info("features %s", grid[-1])
    best = max(grid, key=lambda row: row["validation_mean_f1"])
    words = int(runner.corpus.offsets[-1])
    cost = {
        "labelled_words": int(len(rows)),
        "all_layer_seconds_on_labelled_split": {k: round(v, 2) for k, v in timings.items()},
        "full_corpus_bytes_per_choice": words * encoder.hidden_size * 2,
        "full_corpus_bytes_all_layers": words * encoder.hidden_size * 2 * len(all_layers),
    }
    return {
        **split_sizes(runner),
        "grid": grid,
        "best": best,
        "default": {"layers": list(extract.layers), "pooling": extract.pooling},
        "cost": cost,
    }


def default_head(runner: Runner) -> dict:
    """The default head's settings the experiment started from (bert_ner_es's choice), for the report."""
    heads = runner.converged_heads
    return {"kind": heads.kind, "output": heads.output, "dropout": heads.dropout, "weight_decay": heads.weight_decay}


def class_weights(runner: Runner) -> list:
    """Inverse-frequency class weights on the seed's rows; on the default head (a CRF), in its per-word loss.

    A CRF head's weights act through ``heads.word_loss`` (``class_weight_word_loss``,
    bert_ner_rare's), so its control is the same head with that word loss and no weights.
    """
    runs = []
    labelled, unlabelled = runner.split["labelled"], runner.split["unlabelled"]
    crf = runner.converged_heads.output == "crf"
    word_loss = {"word_loss": runner.params.class_weight_word_loss} if crf else {}
    for seed in runner.params.seeds:
        for weighting in (False, True):
            head = runner.converged(labelled, seed, class_weighting=weighting, class_weight_power=1.0, **word_loss)
            name = "bert_ner_es_word_loss" if word_loss else "bert_ner_es"
            record(runs, runner.score(head, runner.split["test"]), model=name, class_weights=weighting, seed=seed)
        for weighting in (False, True):
            ner = runner.ner(labelled, seed, class_weighting=weighting)
            record(runs, runner.score(ner, runner.split["test"]), model="bert_ner", class_weights=weighting, seed=seed)
            record(
                runs,
                runner.score(ce_control(runner, ner, labelled, unlabelled, seed), runner.split["test"]),
                model="bert_ner_extra_ce",
                class_weights=weighting,
                seed=seed,
            )
            for model, head in runner.kl_heads(
                ner, labelled, unlabelled, seed, heads={"class_weighting": weighting}
            ).items():
                record(runs, runner.score(head, runner.split["test"]), model=model, class_weights=weighting, seed=seed)
    return runs


def target_gradient(runner: Runner) -> dict:
    """Confidence KL with DEC's fixed target (no gradient through p) against the seed's (gradient through p)."""
    models = [m for m, recipe in runner.kl_models.items() if recipe.kind in ("confidence", "both")]
    runs = []
    for split_name, labelled, seeds, evaluated in (
        ("validation", runner.train_part, runner.params.selection_seeds, runner.validation_part),
        ("test", runner.split["labelled"], runner.params.seeds, runner.split["test"]),
    ):
        for seed in seeds:
            ner = runner.ner(labelled, seed)
            for flag in (False, True):
                for model, head in runner.kl_heads(
                    ner, labelled, runner.split["unlabelled"], seed, models=models, target_gradient=flag
                ).items():
                    record(
                        runs,
                        runner.score(head, evaluated),
                        model=model,
                        target_gradient=flag,
                        split=split_name,
                        seed=seed,
                    )
    return {"runs": runs}
