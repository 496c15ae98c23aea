"""MLP or BiLSTM head, each trained to convergence: chosen on the validation part of the labelled split.

    python -m bench.head_kinds --out bench/head_kinds.json

bench/encoders.py compared the head kinds at the seed's fixed 20 epochs, which
may under- or over-train one of them. Here both kinds read the pipeline's cache
with the word-shape flags and train as bert_ner_es does (early stopping, section
early_stopping, on a part held out of the train part, then a refit); the
validation part (``heads.stats.validation_split``, by default the experiments'
20% of the labelled split) scores them, paired by seed, with a two-sided paired
t-test on validation entity F1 (``heads.stats.paired_test``). Nothing here reads
the test split. ``Validation`` and ``paired_gain`` serve bench/head_inputs.py too.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import numpy as np

from data.prepared_io import atomic_write_text, read_prepared
from experiments.runner import Corpora, Corpus, score, train_ner_converged
from features.inputs import load_inputs
from heads.settings import EarlyStoppingParams, HeadParams
from heads.stats import SIGNIFICANCE, paired_test, validation_split
from pipeline.params import ExtractParams, load_section

KINDS = ("mlp", "bilstm")
REPORTED = ("entity_f1", "mean_f1", "accuracy", "accuracy_no_o", "train_seconds", "best_step")
VALIDATION_FRACTION = 0.2  # of the labelled split: the experiments' default (experiments/params.yaml)


class Validation:
    """The pipeline's cache and labelled split, cut into the experiments' train and validation parts."""

    def __init__(self, params_path: str, prepared_dir: str, cache_path: str, validation_fraction: float):
        self.prepared = read_prepared(prepared_dir)
        self.features, self.fingerprint = load_inputs(
            cache_path,
            load_section(ExtractParams, "extract", params_path),
            self.prepared.meta["words_sha256"],
            piece_ids=False,
        )
        self.validation_fraction = validation_fraction
        self.train_part, self.validation = validation_split(self.prepared.split["labelled"], validation_fraction)
        self.stopping = load_section(EarlyStoppingParams, "early_stopping", params_path)
        self.heads = load_section(HeadParams, "heads", params_path)
        self.corpora = Corpora(self.prepared, self.features)

    def corpus(self, heads: HeadParams) -> Corpus:
        """The corpus with the inputs ``heads`` asks for (shape flags, the neighbours' flags)."""
        return self.corpora.for_heads(heads)

    def run(self, heads: HeadParams, seed: int) -> dict:
        """One head trained as bert_ner_es is, on the train part; its scores on the validation part."""
        corpus = self.corpus(heads)
        head = train_ner_converged(corpus, self.train_part, seed, heads, self.stopping)
        result = score(corpus, head, self.validation)
        return {key: result.get(key) for key in REPORTED}

    def describe(self, seeds) -> dict:
        return {
            "encoder": self.fingerprint["encoder"],
            "layers": self.fingerprint["layers"],
            "seeds": list(seeds),
            "validation_fraction": self.validation_fraction,
            "train_sentences": int(self.train_part.size),
            "validation_sentences": int(self.validation.size),
            "early_stopping": dataclasses.asdict(self.stopping),
        }


def paired_gain(variant: list[dict], reference: list[dict]) -> dict:
    """Validation entity F1 of ``variant`` minus ``reference``, paired by seed: {"mean", "p_value" (two-sided)}."""
    by_seed = {r["seed"]: r["entity_f1"] for r in reference}
    test = paired_test([r["entity_f1"] for r in variant], [by_seed[r["seed"]] for r in variant])
    return {"mean": test["gain"], "p_value": test["p"]}


def significant_gain(gain: dict) -> bool:
    """The benchmarks' rule: a positive gain with p below ``heads.stats.SIGNIFICANCE``."""
    return gain["mean"] > 0 and gain["p_value"] < SIGNIFICANCE


def means(rows: list[dict]) -> dict:
    return {key: float(np.mean([r[key] for r in rows])) for key in REPORTED}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--prepared", default="data/prepared")
    parser.add_argument("--cache", default="cache/features.h5")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--validation-fraction", type=float, default=VALIDATION_FRACTION)
    parser.add_argument("--out", default="bench/head_kinds.json")
    args = parser.parse_args()
    start = time.perf_counter()
    validation = Validation(args.params, args.prepared, args.cache, args.validation_fraction)
    runs = []
    for seed in args.seeds:
        for kind in KINDS:
            heads = dataclasses.replace(validation.heads, kind=kind, shape_flags=True)
            runs.append({"kind": kind, "seed": seed, **validation.run(heads, seed)})
            print(json.dumps(runs[-1]), flush=True)
    by_kind = {kind: [r for r in runs if r["kind"] == kind] for kind in KINDS}
    gain = paired_gain(by_kind["bilstm"], by_kind["mlp"])
    figures = {
        **validation.describe(args.seeds),
        "runs": runs,
        "mean": {kind: means(rows) for kind, rows in by_kind.items()},
        "bilstm_minus_mlp_entity_f1": gain,
        "rule": f"the BiLSTM only if it beats the MLP on validation entity F1 with p < {SIGNIFICANCE} (it costs more to train)",
        "chosen": "bilstm" if significant_gain(gain) else "mlp",
        "seconds": round(time.perf_counter() - start, 1),
    }
    atomic_write_text(args.out, json.dumps(figures, indent=2) + "\n")
    print(json.dumps({k: figures[k] for k in ("mean", "bilstm_minus_mlp_entity_f1", "chosen")}, indent=2))


if __name__ == "__main__":
    main()
