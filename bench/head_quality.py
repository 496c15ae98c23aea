"""The output layer, word-form inputs and head kind of our rows, chosen on validation (issue 19).

    python -m bench.head_quality --out bench/head_quality.json [--seeds 0 1 2] [--candidates mlp mlp_crf ...]

Every candidate is bert_ner_es's head (section heads with its head_settings: shape flags) with the changes
named in ``CANDIDATES``, trained as bert_ner_es is (early stopping on a part held out of the train part, then
a refit) on the experiments' train part of the labelled split and scored on its validation part, paired by
seed against the reference (``mlp``: today's default) with a two-sided paired t-test. Nothing here reads the
test split. The training time of each head (JIT included) is reported beside its scores.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time

from bench.head_kinds import VALIDATION_FRACTION, Validation, paired_gain
from data.prepared_io import atomic_write_text
from experiments.runner import Corpora
from heads.stats import SIGNIFICANCE, mean_std, paired_test
from pipeline.models import model_settings

REFERENCE = "mlp"
INCUMBENT = "mlp_crf_dropout"  # the chosen head so far: a later candidate is also paired against it
RULE = (
    "of the candidates that beat the reference on validation entity F1 (paired by seed, p < 0.05), "
    "the highest validation entity F1"
)
# Changes to bert_ner_es's head settings. The BiLSTM's dropout and batch size are the PyTorch probe's of the
# issue (dropout 0.5 on its inputs and outputs, 32-sentence batches); its step size stays Adam's 1e-3.
CANDIDATES = {
    "mlp": {"kind": "mlp"},
    "mlp_crf": {"kind": "mlp", "output": "crf"},
    "mlp_word_forms": {"kind": "mlp", "word_forms": 64},
    "mlp_crf_word_forms": {"kind": "mlp", "output": "crf", "word_forms": 64},
    "mlp_crf_word_forms_dropout": {"kind": "mlp", "output": "crf", "word_forms": 64, "dropout": 0.3},
    "mlp_crf_word_forms_dropout5": {"kind": "mlp", "output": "crf", "word_forms": 64, "dropout": 0.5},
    "mlp_dropout": {"kind": "mlp", "dropout": 0.3},
    "mlp_crf_dropout": {"kind": "mlp", "output": "crf", "dropout": 0.3},
    "mlp_crf_dropout5": {"kind": "mlp", "output": "crf", "dropout": 0.5},
    "mlp_crf_dropout_clusters": {"kind": "mlp", "output": "crf", "dropout": 0.3, "clusters": [64, 512]},
    "mlp_crf_dropout_word_forms16": {"kind": "mlp", "output": "crf", "dropout": 0.3, "word_forms": 16},
    "mlp_crf_dropout_neighbours": {"kind": "mlp", "output": "crf", "dropout": 0.3, "neighbour_flags": True},
    "mlp_crf_dropout_wide": {"kind": "mlp", "output": "crf", "dropout": 0.3, "hidden": [512, 256], "latent_dim": 128},
    "mlp_crf_dropout_slow": {"kind": "mlp", "output": "crf", "dropout": 0.3, "learning_rate": 0.0003},
    "bilstm_crf_word_forms": {
        "kind": "bilstm",
        "output": "crf",
        "word_forms": 64,
        "dropout": 0.5,
        "batch_sentences": 32,
    },  # fmt: skip
    "bilstm_crf": {"kind": "bilstm", "output": "crf", "dropout": 0.5, "batch_sentences": 32},
    "bilstm": {"kind": "bilstm", "dropout": 0.5, "batch_sentences": 32},
    # The BiLSTM's step size, chosen on validation before it is judged (issue 19): Adam's 1e-3 above.
    "bilstm_crf_step_2e-3": {
        "kind": "bilstm",
        "output": "crf",
        "dropout": 0.5,
        "batch_sentences": 32,
        "learning_rate": 0.002,
    },
    # A character CNN over each word (heads.chars; issue 19 item 2's second alternative) on the chosen head.
    "mlp_crf_dropout_chars": {"kind": "mlp", "output": "crf", "dropout": 0.3, "char_cnn": 30},
    "bilstm_crf_step_5e-4": {
        "kind": "bilstm",
        "output": "crf",
        "dropout": 0.5,
        "batch_sentences": 32,
        "learning_rate": 0.0005,
    },
}


def _over_incumbent(results: list[dict], incumbent: list[dict]) -> dict:
    """Validation entity F1 and mean F1 gains over ``INCUMBENT``, paired by seed (two-sided paired t-test)."""
    gains = {}
    for key in ("entity_f1", "mean_f1"):
        by_seed = {r["seed"]: r[key] for r in incumbent}
        test = paired_test([r[key] for r in results], [by_seed[r["seed"]] for r in results])
        gains[f"{key}_gain_over_{INCUMBENT}"] = {"mean": test["gain"], "p_value": test["p"]}
    return gains


def _significant(row: dict) -> bool:
    gain = row["gain_over_reference"]
    return gain["mean"] > 0 and gain["p_value"] < SIGNIFICANCE


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--prepared", default="data/prepared")
    parser.add_argument("--cache", default="cache/features.h5")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--candidates", nargs="+", default=list(CANDIDATES), choices=list(CANDIDATES))
    parser.add_argument("--out", default="bench/head_quality.json")
    parser.add_argument("--resume", action="store_true", help="keep the runs --out holds for these seeds")
    args = parser.parse_args()
    done = {}
    if args.resume and os.path.exists(args.out):
        with open(args.out, encoding="utf-8") as handle:
            done = {name: runs for name, runs in json.load(handle)["runs"].items() if
                    [r["seed"] for r in runs] == args.seeds}  # fmt: skip

    validation = Validation(args.params, args.prepared, args.cache, VALIDATION_FRACTION)
    # experiments.runner's Corpora key their inputs by the settings that add columns, heads.char_cnn not among
    # them: one Corpora with character columns, one without.
    corpora = {False: validation.corpora, True: Corpora(validation.prepared, validation.features)}
    base = model_settings("bert_ner_es", args.params).heads
    runs: dict[str, list[dict]] = {}
    for name in [REFERENCE] + [c for c in args.candidates if c != REFERENCE]:
        if name in done:
            runs[name] = done[name]
            continue
        heads = dataclasses.replace(base, **CANDIDATES[name])
        validation.corpora = corpora[bool(heads.char_cnn)]
        runs[name] = []
        for seed in args.seeds:
            result = {"seed": seed, **validation.run(heads, seed)}
            runs[name].append(result)
            print(name, json.dumps(result), flush=True)
    summary = {}
    for name, results in runs.items():
        summary[name] = {
            "changes": CANDIDATES[name],
            **{key: mean_std([r[key] for r in results]) for key in ("entity_f1", "mean_f1", "accuracy_no_o")},
            "train_seconds": mean_std([r["train_seconds"] for r in results]),
            "best_step": mean_std([r["best_step"] for r in results]),
            "gain_over_reference": None if name == REFERENCE else paired_gain(results, runs[REFERENCE]),
            **(_over_incumbent(results, runs[INCUMBENT]) if name != INCUMBENT and INCUMBENT in runs else {}),
        }
    better = [n for n, row in summary.items() if row["gain_over_reference"] and _significant(row)]
    chosen = max(better, key=lambda n: summary[n]["entity_f1"][0], default=REFERENCE)
    report = {
        **validation.describe(args.seeds),
        "reference": REFERENCE,
        "rule": RULE,
        "chosen": chosen,
        "significance": SIGNIFICANCE,
        "summary": summary,
        "runs": runs,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    atomic_write_text(args.out, json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
