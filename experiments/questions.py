"""The experiments' questions: each takes the Runner and returns the runs (or a dict with them) it measured.

Every selection uses a validation part of the labelled split; the test split
only scores the chosen settings.
"""

from __future__ import annotations

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
    """BERT NER plus the KL models' extra CE steps without any KL: the control for every KL gain.

    A KL model's rounds also take a CE step each; this head takes the same CE
    steps (the joint schedule with lambda = 0, so the KL term has no effect)
    for the largest number of rounds any KL model uses.
    """
    rounds = max(recipe.rounds for recipe in runner.kl_models.values())
    model = next(iter(runner.kl_models))
    return runner.kl_heads(ner, labelled, unlabelled, seed, models=[model], schedule="joint",
                           kl_weight=0.0, rounds=rounds)[model]


def record(runs: list, metrics: dict, **fields) -> None:
    runs.append(dict(fields, **metrics))
    log.info("%s: mean F1 %.4f, entity F1 %.4f", " ".join(f"{k}={v}" for k, v in fields.items()),
             metrics["mean_f1"], metrics["entity_f1"])


def curve(runner: Runner, biased: bool) -> list:
    """Learning curve over labelled sizes, for a random or an O-biased labelled sample."""
    p = runner.params
    outside = outside_share(runner.prepared.tags)
    # A prior the user could know without the biased sample: the shares of the random labelled split.
    given_prior = prior_from_labels(runner.corpus.labels[word_rows(runner.corpus.offsets, runner.split["labelled"])],
                                    len(runner.corpus.categories))
    runs = []
    for seed in p.seeds:
        order = ranked_pool(runner.non_test, seed, outside, p.bias_strength if biased else 0.0)
        unlabelled = np.sort(order[p.pool_size:])
        for size in p.sizes:
            labelled = np.sort(order[:size])
            sample = {"sample": "biased" if biased else "random", "size": size, "seed": seed,
                      "labelled_o_share": round(float(outside[labelled].mean()), 4)}
            ner = runner.ner(labelled, seed)
            record(runs, runner.score(ner, runner.split["test"]), model="bert_ner", **sample)
            record(runs, runner.score(ce_control(runner, ner, labelled, unlabelled, seed), runner.split["test"]),
                   model="bert_ner_extra_ce", **sample)
            for model, head in runner.kl_heads(ner, labelled, unlabelled, seed).items():
                record(runs, runner.score(head, runner.split["test"]), model=model, **sample)
            if biased:
                head = runner.kl_heads(ner, labelled, unlabelled, seed, models=["bert_dd_kl"],
                                       prior=given_prior)["bert_dd_kl"]
                record(runs, runner.score(head, runner.split["test"]), model="bert_dd_kl_given_prior",
                       **sample)
    return runs


def select(runner: Runner, grid: list, train_and_score) -> tuple[object, list]:
    """The grid value with the best mean validation mean F1 over the selection seeds."""
    rows = []
    for value in grid:
        scores = [train_and_score(value, seed) for seed in runner.params.selection_seeds]
        rows.append({"value": value, "validation_mean_f1": float(np.mean([s["mean_f1"] for s in scores])),
                     "validation_entity_f1": float(np.mean([s["entity_f1"] for s in scores]))})
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
            record(runs, runner.score(ce_control(runner, ner, labelled, unlabelled, seed), runner.split["test"]),
                   model="bert_ner_extra_ce", regularizer=name, seed=seed)
            kl_options = {"weight_decay": options["weight_decay"]} if "weight_decay" in options else {}
            for model, head in runner.kl_heads(ner, labelled, unlabelled, seed, heads=kl_options).items():
                record(runs, runner.score(head, runner.split["test"]), model=model, regularizer=name, seed=seed)
    return {"chosen": chosen, "selection": selection, "runs": runs}


def joint(runner: Runner) -> dict:
    models = ["bert_dd_kl", "bert_conf_kl"]
    ners = {seed: runner.ner(runner.train_part, seed)
            for seed in runner.params.selection_seeds}
    chosen, selection = {}, {}
    for model in models:
        def run(value, seed, model=model):
            head = runner.kl_heads(ners[seed], runner.train_part, runner.split["unlabelled"], seed, models=[model],
                                   schedule="joint", kl_weight=value)[model]
            return runner.score(head, runner.validation_part)
        chosen[model], selection[model] = select(runner, list(runner.params.lambdas), run)
    runs = []
    labelled, unlabelled = runner.split["labelled"], runner.split["unlabelled"]
    for seed in runner.params.seeds:
        ner = runner.ner(labelled, seed)
        for model in models:
            rounds = runner.kl_models[model].rounds
            alternating = runner.kl_heads(ner, labelled, unlabelled, seed, models=[model])[model]
            record(runs, runner.score(alternating, runner.split["test"]), model=model,
                   schedule="alternating", rounds=rounds, seed=seed)
            same_batches = runner.kl_heads(ner, labelled, unlabelled, seed, models=[model], schedule="joint",
                                           kl_weight=chosen[model])[model]
            record(runs, runner.score(same_batches, runner.split["test"]), model=model,
                   schedule="joint, same unlabelled batches", rounds=rounds, seed=seed)
            # Same wall-clock budget: as many joint rounds as fit in the alternating run's time.
            budget_rounds = max(1, int(round(rounds * alternating.seconds / max(same_batches.seconds, 1e-9))))
            same_time = runner.kl_heads(ner, labelled, unlabelled, seed, models=[model], schedule="joint",
                                        kl_weight=chosen[model], rounds=budget_rounds)[model]
            record(runs, runner.score(same_time, runner.split["test"]), model=model,
                   schedule="joint, same wall-clock", rounds=budget_rounds, seed=seed)
    return {"chosen_lambda": chosen, "selection": selection, "runs": runs}


def features(runner: Runner) -> dict:
    """Layers x pooling on validation: the encoder runs here, on the labelled split only."""
    extract = runner.extract
    encoder = load_encoder(extract.encoder)
    labelled = runner.split["labelled"]
    sentences = [runner.prepared.words[s] for s in labelled]
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in sentences])])
    local = {s: i for i, s in enumerate(labelled)}
    train_local = np.array([local[s] for s in runner.train_part])
    validation_local = np.array([local[s] for s in runner.validation_part])
    rows = np.concatenate([np.arange(runner.corpus.offsets[s], runner.corpus.offsets[s + 1]) for s in labelled])
    all_layers = list(range(encoder.num_layers + 1))
    windows = tokenize(encoder.tokenizer, sentences, encoder.max_length, extract.stride)
    grid, timings = [], {}
    for pooling in runner.params.poolings:
        start = time.perf_counter()
        hidden = encode_windows(encoder, windows, all_layers, "concat", pooling, use_bf16(extract.precision),
                                extract.max_batch_tokens)
        timings[pooling] = time.perf_counter() - start
        hidden = hidden.reshape(len(hidden), len(all_layers), -1)             # (W, L+1, H)
        for layers in runner.params.layer_choices:
            vectors = hidden[:, list(layers)].mean(1).astype(np.float16)      # (W, H)
            corpus = Corpus(vectors, runner.corpus.labels[rows], [runner.corpus.tags[r] for r in rows],
                            offsets, runner.corpus.categories)
            scores = [score(corpus, runner.ner(train_local, seed, corpus=corpus), validation_local)
                      for seed in runner.params.selection_seeds]
            grid.append({"layers": list(layers), "pooling": pooling,
                         "validation_mean_f1": float(np.mean([s["mean_f1"] for s in scores])),
                         "validation_entity_f1": float(np.mean([s["entity_f1"] for s in scores])),
                         "validation_accuracy_no_o": float(np.mean([s["accuracy_no_o"] for s in scores]))})
            log.info("features %s", grid[-1])
    best = max(grid, key=lambda row: row["validation_mean_f1"])
    words = int(runner.corpus.offsets[-1])
    cost = {"labelled_words": int(len(rows)), "all_layer_seconds_on_labelled_split": {k: round(v, 2) for k, v in timings.items()},
            "full_corpus_bytes_per_choice": words * encoder.hidden_size * 2,
            "full_corpus_bytes_all_layers": words * encoder.hidden_size * 2 * len(all_layers)}
    return {"grid": grid, "best": best, "default": {"layers": list(extract.layers), "pooling": extract.pooling},
            "cost": cost}


def class_weights(runner: Runner) -> list:
    runs = []
    labelled, unlabelled = runner.split["labelled"], runner.split["unlabelled"]
    for seed in runner.params.seeds:
        for weighting in (False, True):
            ner = runner.ner(labelled, seed, class_weighting=weighting)
            record(runs, runner.score(ner, runner.split["test"]), model="bert_ner", class_weights=weighting, seed=seed)
            record(runs, runner.score(ce_control(runner, ner, labelled, unlabelled, seed), runner.split["test"]),
                   model="bert_ner_extra_ce", class_weights=weighting, seed=seed)
            for model, head in runner.kl_heads(ner, labelled, unlabelled, seed, heads={"class_weighting": weighting}).items():
                record(runs, runner.score(head, runner.split["test"]), model=model,
                       class_weights=weighting, seed=seed)
    return runs


def target_gradient(runner: Runner) -> dict:
    """Confidence KL with DEC's fixed target (no gradient through p) against the seed's (gradient through p)."""
    models = [m for m, recipe in runner.kl_models.items() if recipe.kind in ("confidence", "both")]
    runs = []
    for split_name, labelled, seeds, evaluated in (
            ("validation", runner.train_part, runner.params.selection_seeds, runner.validation_part),
            ("test", runner.split["labelled"], runner.params.seeds, runner.split["test"])):
        for seed in seeds:
            ner = runner.ner(labelled, seed)
            for flag in (False, True):
                for model, head in runner.kl_heads(ner, labelled, runner.split["unlabelled"], seed, models=models,
                                                   target_gradient=flag).items():
                    record(runs, runner.score(head, evaluated), model=model, target_gradient=flag,
                           split=split_name, seed=seed)
    return {"runs": runs}
