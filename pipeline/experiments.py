"""Experiments beyond the seed: one subcommand per question, each writing reports/experiments/<name>.json.

    learning_curve  labelled size 64..5,120, random sample, unlabelled pool fixed
    biased          the same sizes, sentences with fewer O words drawn first;
                    data-distribution prior from the (biased) sample vs a given one
    regularizers    L2 weight decay and dropout, grid chosen on validation, alone and with the KL terms
    joint           CE + lambda * KL in one step (lambda chosen on validation) vs the alternating steps
    features        encoder layers x pooling, chosen on validation (runs the encoder on the labelled split)
    class_weights   inverse-frequency class weights in CE, per-category F1 of the rare categories
    target_gradient confidence KL with DEC's fixed target vs the seed's gradient through the target

Every selection uses a validation part of the labelled split; the test split
only scores the chosen settings. Models and KL schedules come from params.yaml
(bert_ner, kl, kl_models), so the experiments test the pipeline's own heads.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import time

import numpy as np
import yaml

from data.prepared import atomic_write_text, read_prepared
from data.split import outside_share, ranked_pool
from pipeline.params import load_section, run_main

log = logging.getLogger("experiments")


@dataclasses.dataclass(frozen=True)
class ExperimentParams:
    seeds: tuple = (0, 1, 2, 3, 4)                     # test-split runs per point
    selection_seeds: tuple = (0, 1, 2)                 # validation runs per grid point
    sizes: tuple = (64, 128, 256, 512, 1024, 2560, 5120)
    pool_size: int = 5120                              # labelled pool; the other non-test sentences are unlabelled
    bias_strength: float = 10.0                        # biased draw: weight exp(-strength * O share)
    validation_fraction: float = 0.2                   # of the labelled split, for every selection
    weight_decays: tuple = (1e-4, 1e-3, 1e-2, 1e-1)
    dropouts: tuple = (0.1, 0.3, 0.5)
    lambdas: tuple = (0.001, 0.01, 0.1, 1.0)           # the confidence KL sums over words: small lambdas
    layer_choices: tuple = ((2,), (3,), (4,), (6,), (2, 3, 4), (3, 4, 5), (1, 2, 3, 4, 5, 6))
    poolings: tuple = ("first", "mean")


class Runner:
    """The corpus, splits and head recipes shared by every experiment."""

    def __init__(self, params_path: str, experiment_params_path: str, prepared_dir: str, cache_path: str):
        from cache.store import open_cache
        from heads.experiment import Corpus
        from pipeline.train import KLParams, load_inputs

        with open(params_path, encoding="utf-8") as handle:
            self.all_params = yaml.safe_load(handle)
        self.params = load_section(ExperimentParams, "experiments", experiment_params_path)
        self.kl = load_section(KLParams, "kl", params_path)
        self.kl_models = self.all_params["kl_models"]
        self.epochs = int(self.all_params["bert_ner"]["epochs"])
        self.prepared = read_prepared(prepared_dir)
        features, self.fingerprint = load_inputs(self.prepared, cache_path, self.all_params["extract"], "bert_ner")
        tags = [t for sentence in self.prepared.tags for t in sentence]
        self.corpus = Corpus(features, self.prepared.labels, tags, self.prepared.offsets, self.prepared.categories)
        self.split = self.prepared.split
        rng = np.random.default_rng(0)
        labelled = self.split["labelled"]
        is_validation = rng.random(labelled.size) < self.params.validation_fraction
        self.train_part, self.validation_part = labelled[~is_validation], labelled[is_validation]
        self.non_test = np.sort(np.concatenate([self.split["labelled"], self.split["unlabelled"]]))

    def kl_heads(self, ner, labelled, unlabelled, seed, models=None, **options):
        """Each KL model of params.yaml (or ``models``) trained from ``ner``; {model: Head}."""
        from heads.experiment import train_kl

        heads = {}
        for model, recipe in self.kl_models.items():
            if models is not None and model not in models:
                continue
            settings = dict(kl_weight=self.kl.weight, target_gradient=self.kl.target_gradient,
                            learning_rate=self.kl.learning_rate, schedule=self.kl.schedule)
            settings.update(options)
            heads[model] = train_kl(self.corpus, ner, labelled, unlabelled, seed, kind=recipe["kind"],
                                    rounds=int(options.get("rounds", recipe["rounds"])),
                                    **{k: v for k, v in settings.items() if k != "rounds"})
        return heads


def ce_control(runner: Runner, ner, labelled, unlabelled, seed):
    """BERT NER plus the KL models' extra CE steps without any KL: the control for every KL gain.

    A KL model's rounds also take a CE step each; this head takes the same CE
    steps (the joint schedule with lambda = 0, so the KL term has no effect)
    for the largest number of rounds any KL model uses.
    """
    rounds = max(int(recipe["rounds"]) for recipe in runner.kl_models.values())
    model = next(iter(runner.kl_models))
    return runner.kl_heads(ner, labelled, unlabelled, seed, models=[model], schedule="joint",
                           kl_weight=0.0, rounds=rounds)[model]


def record(runs: list, metrics: dict, **fields) -> None:
    runs.append(dict(fields, **metrics))
    log.info("%s: mean F1 %.4f, entity F1 %.4f", " ".join(f"{k}={v}" for k, v in fields.items()),
             metrics["mean_f1"], metrics["entity_f1"])


def curve(runner: Runner, biased: bool) -> list:
    """Learning curve over labelled sizes, for a random or an O-biased labelled sample."""
    from heads.experiment import score, train_ner
    from heads.losses import prior_from_labels
    from heads.batches import word_rows

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
            ner = train_ner(runner.corpus, labelled, seed, epochs=runner.epochs)
            record(runs, score(runner.corpus, ner, runner.split["test"]), model="bert_ner", **sample)
            record(runs, score(runner.corpus, ce_control(runner, ner, labelled, unlabelled, seed), runner.split["test"]),
                   model="bert_ner_extra_ce", **sample)
            for model, head in runner.kl_heads(ner, labelled, unlabelled, seed).items():
                record(runs, score(runner.corpus, head, runner.split["test"]), model=model, **sample)
            if biased:
                head = runner.kl_heads(ner, labelled, unlabelled, seed, models=["bert_dd_kl"],
                                       prior=given_prior)["bert_dd_kl"]
                record(runs, score(runner.corpus, head, runner.split["test"]), model="bert_dd_kl_given_prior",
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
    from heads.experiment import score, train_ner

    def validate(option):
        def run(value, seed):
            head = train_ner(runner.corpus, runner.train_part, seed, epochs=runner.epochs, **{option: value})
            return score(runner.corpus, head, runner.validation_part)
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
            ner = train_ner(runner.corpus, labelled, seed, epochs=runner.epochs, **options)
            record(runs, score(runner.corpus, ner, runner.split["test"]), model="bert_ner", regularizer=name, seed=seed)
            record(runs, score(runner.corpus, ce_control(runner, ner, labelled, unlabelled, seed), runner.split["test"]),
                   model="bert_ner_extra_ce", regularizer=name, seed=seed)
            kl_options = {"weight_decay": options["weight_decay"]} if "weight_decay" in options else {}
            for model, head in runner.kl_heads(ner, labelled, unlabelled, seed, **kl_options).items():
                record(runs, score(runner.corpus, head, runner.split["test"]), model=model, regularizer=name, seed=seed)
    return {"chosen": chosen, "selection": selection, "runs": runs}


def joint(runner: Runner) -> dict:
    from heads.experiment import score, train_ner

    models = ["bert_dd_kl", "bert_conf_kl"]
    ners = {seed: train_ner(runner.corpus, runner.train_part, seed, epochs=runner.epochs)
            for seed in runner.params.selection_seeds}
    chosen, selection = {}, {}
    for model in models:
        def run(value, seed, model=model):
            head = runner.kl_heads(ners[seed], runner.train_part, runner.split["unlabelled"], seed, models=[model],
                                   schedule="joint", kl_weight=value)[model]
            return score(runner.corpus, head, runner.validation_part)
        chosen[model], selection[model] = select(runner, list(runner.params.lambdas), run)
    runs = []
    labelled, unlabelled = runner.split["labelled"], runner.split["unlabelled"]
    for seed in runner.params.seeds:
        ner = train_ner(runner.corpus, labelled, seed, epochs=runner.epochs)
        for model in models:
            rounds = int(runner.kl_models[model]["rounds"])
            alternating = runner.kl_heads(ner, labelled, unlabelled, seed, models=[model])[model]
            record(runs, score(runner.corpus, alternating, runner.split["test"]), model=model,
                   schedule="alternating", rounds=rounds, seed=seed)
            same_batches = runner.kl_heads(ner, labelled, unlabelled, seed, models=[model], schedule="joint",
                                           kl_weight=chosen[model])[model]
            record(runs, score(runner.corpus, same_batches, runner.split["test"]), model=model,
                   schedule="joint, same unlabelled batches", rounds=rounds, seed=seed)
            # Same wall-clock budget: as many joint rounds as fit in the alternating run's time.
            budget_rounds = max(1, int(round(rounds * alternating.seconds / max(same_batches.seconds, 1e-9))))
            same_time = runner.kl_heads(ner, labelled, unlabelled, seed, models=[model], schedule="joint",
                                        kl_weight=chosen[model], rounds=budget_rounds)[model]
            record(runs, score(runner.corpus, same_time, runner.split["test"]), model=model,
                   schedule="joint, same wall-clock", rounds=budget_rounds, seed=seed)
    return {"chosen_lambda": chosen, "selection": selection, "runs": runs}


def features(runner: Runner) -> dict:
    """Layers x pooling on validation: the encoder runs here, on the labelled split only."""
    from features.align import tokenize
    from features.encoder import load_encoder
    from features.extract import encode_windows
    from heads.experiment import Corpus, score, train_ner
    from pipeline.extract import ExtractParams, use_bf16

    extract = ExtractParams(**runner.all_params["extract"])
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
            scores = [score(corpus, train_ner(corpus, train_local, seed, epochs=runner.epochs), validation_local)
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
    from heads.experiment import score, train_ner

    runs = []
    labelled, unlabelled = runner.split["labelled"], runner.split["unlabelled"]
    for seed in runner.params.seeds:
        for weighting in (False, True):
            ner = train_ner(runner.corpus, labelled, seed, epochs=runner.epochs, class_weighting=weighting)
            record(runs, score(runner.corpus, ner, runner.split["test"]), model="bert_ner", class_weights=weighting, seed=seed)
            record(runs, score(runner.corpus, ce_control(runner, ner, labelled, unlabelled, seed), runner.split["test"]),
                   model="bert_ner_extra_ce", class_weights=weighting, seed=seed)
            for model, head in runner.kl_heads(ner, labelled, unlabelled, seed, class_weighting=weighting).items():
                record(runs, score(runner.corpus, head, runner.split["test"]), model=model,
                       class_weights=weighting, seed=seed)
    return runs


def target_gradient(runner: Runner) -> dict:
    """Confidence KL with DEC's fixed target (no gradient through p) against the seed's (gradient through p)."""
    from heads.experiment import score, train_ner

    models = [m for m, recipe in runner.kl_models.items() if recipe["kind"] in ("confidence", "both")]
    runs = []
    for split_name, labelled, seeds, evaluated in (
            ("validation", runner.train_part, runner.params.selection_seeds, runner.validation_part),
            ("test", runner.split["labelled"], runner.params.seeds, runner.split["test"])):
        for seed in seeds:
            ner = train_ner(runner.corpus, labelled, seed, epochs=runner.epochs)
            for flag in (False, True):
                for model, head in runner.kl_heads(ner, labelled, runner.split["unlabelled"], seed, models=models,
                                                   target_gradient=flag).items():
                    record(runs, score(runner.corpus, head, evaluated), model=model, target_gradient=flag,
                           split=split_name, seed=seed)
    return {"runs": runs}


EXPERIMENTS = {"learning_curve": lambda r: curve(r, biased=False), "biased": lambda r: curve(r, biased=True),
               "regularizers": regularizers, "joint": joint, "features": features, "class_weights": class_weights,
               "target_gradient": target_gradient}


def main() -> None:
    from pipeline.train import enable_compilation_cache

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("experiment", choices=sorted(EXPERIMENTS))
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--experiment-params", default="experiments/params.yaml")
    parser.add_argument("--prepared", default="data/prepared")
    parser.add_argument("--cache", default="cache/features.h5")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    enable_compilation_cache()
    runner = Runner(args.params, args.experiment_params, args.prepared, args.cache)
    start = time.perf_counter()
    result = EXPERIMENTS[args.experiment](runner)
    payload = {"experiment": args.experiment, "seconds": round(time.perf_counter() - start, 1),
               "params": dataclasses.asdict(runner.params), "features": runner.fingerprint,
               **(result if isinstance(result, dict) else {"runs": result})}
    atomic_write_text(args.out, json.dumps(payload, indent=1))


if __name__ == "__main__":
    run_main(main)
