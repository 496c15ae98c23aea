"""The cost of one active-learning round on GMB: train the default head on the labelled split, score every
unlabelled sentence, choose a batch and export it; the target is 60 s for about 36,000 unlabelled sentences.

The head is bert_ner_es's (its settings from the train stage's choice, metrics/choice/bert_ner_es.json),
trained to convergence as the pipeline trains it (early stopping, then the refit); the scoring, choice and
export are the select stage's own functions (``pipeline.select``), so this measures what a user waits for
between two labelling sessions, less the encoder (the cache is already there). Every strategy's score-and-choose
time is measured on the same trained head, for the record. Run after ``make repro``:

    python -m bench.active_round --out bench/active_round.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import tempfile
import time

import numpy as np

from cache.store import check_encodes
from data.annotations import write_exports
from data.prepared_io import atomic_write_text, read_prepared
from experiments.runner import Corpus, converged_heads, train_ner_converged
from features.inputs import head_inputs, load_inputs
from heads.acquisition import STRATEGIES
from heads.settings import ActiveParams, EarlyStoppingParams
from pipeline.params import ExtractParams, UnlabelledTextParams, enable_compilation_cache, load_section, run_main
from pipeline.select import candidates, choose_sentences

TARGET_SECONDS = 60.0


def trained_head(prepared, params_path: str, cache_path: str, seed: int):
    """(params, config, seconds): bert_ner_es's head trained on the labelled split as the pipeline trains it,
    and the part of a saved head's config that ``choose_sentences`` reads."""
    heads = converged_heads(params_path, "metrics")
    extract = load_section(ExtractParams, "extract", params_path)
    features, _ = load_inputs(cache_path, extract, prepared.meta["words_sha256"], piece_ids=False)
    stopping = load_section(EarlyStoppingParams, "early_stopping", params_path)
    started = time.perf_counter()
    tags = [tag for sentence in prepared.tags for tag in sentence]
    corpus = Corpus(head_inputs(features, prepared.words, heads), prepared.labels, tags, prepared.offsets,
                    prepared.categories)  # fmt: skip
    head = train_ner_converged(corpus, prepared.split["labelled"], seed, heads, stopping)
    config = {"heads": heads.as_config(), "input": "features", "categories": list(prepared.categories)}
    return head.params, config, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--prepared", default="data/prepared")
    parser.add_argument("--cache", default="cache/features.h5")
    parser.add_argument("--out", default="bench/active_round.json")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="whole rounds to time; the median is the figure")
    args = parser.parse_args()
    enable_compilation_cache()
    active = load_section(ActiveParams, "active", args.params)
    prepared = read_prepared(args.prepared)
    started = time.perf_counter()
    fingerprint = check_encodes(args.cache, prepared.meta["words_sha256"], args.prepared, "rerun extract")
    text = dataclasses.replace(load_section(UnlabelledTextParams, "unlabelled_text", args.params), mode="none")
    asked = {tuple(prepared.words[i]) for part in ("labelled", "test") for i in prepared.split[part]}

    def choose_and_export(strategy, params, config, keys, words, vectors) -> dict:
        chosen_started = time.perf_counter()
        chosen = choose_sentences(
            dataclasses.replace(active, strategy=strategy), params, config, "bench", keys, words, vectors, asked,
            prepared.categories,
        )  # fmt: skip
        with tempfile.TemporaryDirectory() as out:
            write_exports(chosen, prepared.categories, out, "bench", strategy)
            exported = sorted(os.listdir(out))
        return {
            "score_choose_export_seconds": round(time.perf_counter() - chosen_started, 2),
            "chosen": len(chosen),
            "chosen_words": sum(len(p.words) for p in chosen),
            "files": exported,
        }

    rounds = []  # the whole round, ``--repeats`` times: a round's time varies with the machine's load
    for _ in range(args.repeats):
        params, config, train_seconds = trained_head(prepared, args.params, args.cache, args.seed)
        read_started = time.perf_counter()
        keys, words, vectors = candidates(prepared, args.cache, text, "", fingerprint)
        read_seconds = time.perf_counter() - read_started
        default = choose_and_export(active.strategy, params, config, keys, words, vectors)
        seconds = {
            "train": train_seconds,
            "read": read_seconds,
            "score_choose_export": default["score_choose_export_seconds"],
        }
        rounds.append(
            {name: round(value, 2) for name, value in seconds.items()} | {"round": round(sum(seconds.values()), 2)}
        )
    strategies = {active.strategy: default}  # the last round's head scores for every other strategy
    for strategy in STRATEGIES:
        if strategy != active.strategy:
            strategies[strategy] = choose_and_export(strategy, params, config, keys, words, vectors)
    round_seconds = float(np.median([r["round"] for r in rounds]))
    result = {
        "what": "one round: train bert_ner_es's head (early stopping + refit) on the labelled split, read the "
        "unlabelled split's cached vectors, score, choose and export a batch (the select stage's functions)",
        "labelled_sentences": int(len(prepared.split["labelled"])),
        "candidates": len(keys),
        "candidate_words": int(sum(map(len, words))),
        "batch": active.batch,
        "strategy": active.strategy,
        "rounds": rounds,
        "round_seconds": round(round_seconds, 2),  # the median round
        "slowest_round_seconds": max(r["round"] for r in rounds),
        "target_seconds": TARGET_SECONDS,
        "met": round_seconds <= TARGET_SECONDS,
        "strategies": strategies,
        "features": {key: fingerprint.get(key) for key in ("encoder", "layers", "precision")},
        "candidate_vectors": type(vectors).__name__,  # a view of the cache read chunk by chunk, or an array
        "max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "total_seconds": round(time.perf_counter() - started, 1),
        "cpus": os.cpu_count(),
        "seed": args.seed,
        "numpy": np.__version__,
    }
    atomic_write_text(args.out, json.dumps(result, indent=1))
    print(json.dumps({k: result[k] for k in ("rounds", "round_seconds", "met")}))


if __name__ == "__main__":
    run_main(main)
