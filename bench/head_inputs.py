"""The MLP's inputs and loss, each change chosen on the validation part of the labelled split.

    python -m bench.head_inputs --out bench/head_inputs.json

The reference is the head of our rows before this choice: the MLP on the cached
vectors plus the word's 8 shape flags, unweighted CE, trained as bert_ner_es is
(early stopping, then a refit). Each variant changes one thing:

- ``neighbour_flags``: the previous and next words' shape flags too (24 columns);
- ``class_weighting``: inverse-frequency class weights in the CE.

Each is paired by seed with the reference on validation entity F1 (two-sided
paired t-test, ``heads.stats``). Rule: a variant is taken when it gains with
p < ``heads.stats.SIGNIFICANCE``. Nothing here reads the test split.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

from bench.head_kinds import VALIDATION_FRACTION, Validation, means, paired_gain, significant_gain
from data.prepared_io import atomic_write_text
from heads.stats import SIGNIFICANCE

VARIANTS = {
    "reference": {},
    "neighbour_flags": {"neighbour_flags": True},
    "class_weighting": {"class_weighting": True},
}
RULE = f"a variant is taken when it beats the reference on validation entity F1 with p < {SIGNIFICANCE}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--prepared", default="data/prepared")
    parser.add_argument("--cache", default="cache/features.h5")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--validation-fraction", type=float, default=VALIDATION_FRACTION)
    parser.add_argument("--out", default="bench/head_inputs.json")
    args = parser.parse_args()
    start = time.perf_counter()
    validation = Validation(args.params, args.prepared, args.cache, args.validation_fraction)
    reference = dataclasses.replace(validation.heads, kind="mlp", shape_flags=True)
    runs = []
    for seed in args.seeds:
        for name, changes in VARIANTS.items():
            runs.append(
                {"variant": name, "seed": seed, **validation.run(dataclasses.replace(reference, **changes), seed)}
            )
            print(json.dumps(runs[-1]), flush=True)
    by_variant = {name: [r for r in runs if r["variant"] == name] for name in VARIANTS}
    gains = {name: paired_gain(by_variant[name], by_variant["reference"]) for name in VARIANTS if name != "reference"}
    figures = {
        **validation.describe(args.seeds),
        "variants": VARIANTS,
        "runs": runs,
        "mean": {name: means(rows) for name, rows in by_variant.items()},
        "minus_reference_entity_f1": gains,
        "rule": RULE,
        "chosen": [name for name, gain in gains.items() if significant_gain(gain)],
        "seconds": round(time.perf_counter() - start, 1),
    }
    atomic_write_text(args.out, json.dumps(figures, indent=2) + "\n")
    print(json.dumps({k: figures[k] for k in ("mean", "minus_reference_entity_f1", "chosen")}, indent=2))


if __name__ == "__main__":
    main()
