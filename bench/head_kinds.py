"""MLP or BiLSTM head, each trained to convergence: chosen on the validation part of the labelled split.

    python -m bench.head_kinds --out bench/head_kinds.json

bench/encoders.py compared the head kinds at the seed's fixed 20 epochs, which
may under- or over-train one of them. Here both kinds read the pipeline's cache
with the word-shape flags and train as bert_ner_es does (early stopping, section
early_stopping, on a part held out of the train part, then a refit); the
validation part (the experiments' fixed 20% of the labelled split) scores
them, paired by seed, with a two-sided paired t-test on validation entity F1.
Nothing here reads the test split.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import numpy as np
from scipy import stats

from bench.encoders import validation_split
from data.prepared_io import atomic_write_text, read_prepared
from experiments.runner import Corpus, score, train_ner_converged
from features.inputs import load_inputs, with_shape_flags
from heads.early_stopping import EarlyStopping
from pipeline.params import EarlyStoppingParams, ExtractParams, HeadParams, load_section

KINDS = ("mlp", "bilstm")
REPORTED = ("entity_f1", "mean_f1", "accuracy", "accuracy_no_o", "train_seconds", "best_step")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--prepared", default="data/prepared")
    parser.add_argument("--cache", default="cache/features.h5")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", default="bench/head_kinds.json")
    args = parser.parse_args()
    start = time.perf_counter()
    prepared = read_prepared(args.prepared)
    features, fingerprint = load_inputs(
        args.cache, load_section(ExtractParams, "extract", args.params), prepared.meta["words_sha256"], piece_ids=False
    )
    tags = [tag for sentence in prepared.tags for tag in sentence]
    corpus = Corpus(
        with_shape_flags(features, prepared.words), prepared.labels, tags, prepared.offsets, prepared.categories
    )
    train_part, validation = validation_split(prepared.split["labelled"])
    stopping = EarlyStopping(**dataclasses.asdict(load_section(EarlyStoppingParams, "early_stopping", args.params)))
    heads = load_section(HeadParams, "heads", args.params)
    runs = []
    for seed in args.seeds:
        for kind in KINDS:
            head = train_ner_converged(
                corpus, train_part, seed, dataclasses.replace(heads, kind=kind, shape_flags=True), stopping
            )
            result = score(corpus, head, validation)
            runs.append({"kind": kind, "seed": seed, **{key: result.get(key) for key in REPORTED}})
            print(json.dumps(runs[-1]), flush=True)
    by_kind = {kind: [r for r in runs if r["kind"] == kind] for kind in KINDS}
    summary = {
        kind: {key: float(np.mean([r[key] for r in rows])) for key in REPORTED} for kind, rows in by_kind.items()
    }
    gains = np.array([b["entity_f1"] - m["entity_f1"] for m, b in zip(by_kind["mlp"], by_kind["bilstm"])])
    test = stats.ttest_rel([r["entity_f1"] for r in by_kind["bilstm"]], [r["entity_f1"] for r in by_kind["mlp"]])
    chosen = "bilstm" if gains.mean() > 0 and test.pvalue < 0.05 else "mlp"
    figures = {
        "encoder": fingerprint["encoder"],
        "layers": fingerprint["layers"],
        "seeds": args.seeds,
        "train_sentences": int(train_part.size),
        "validation_sentences": int(validation.size),
        "early_stopping": dataclasses.asdict(stopping),
        "runs": runs,
        "mean": summary,
        "bilstm_minus_mlp_entity_f1": {"mean": float(gains.mean()), "p_value": float(test.pvalue)},
        "rule": "the BiLSTM only if it beats the MLP on validation entity F1 with p < 0.05 (it costs more to train)",
        "chosen": chosen,
        "seconds": round(time.perf_counter() - start, 1),
    }
    atomic_write_text(args.out, json.dumps(figures, indent=2) + "\n")
    print(json.dumps({k: figures[k] for k in ("mean", "bilstm_minus_mlp_entity_f1", "chosen")}, indent=2))


if __name__ == "__main__":
    main()
