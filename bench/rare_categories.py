"""A class-weighted per-word loss beside the CRF's, for the rare categories: chosen on validation mean F1.

    python -m bench.rare_categories --out bench/rare_categories.json

GMB's art, eve and nat hold a dozen or two labelled entities each; a CRF head
trained on the sequence likelihood alone never decodes them, and the macro mean
F1 counts each category once. ``heads.word_loss`` adds each word's cross entropy
of its emissions, weighted by ``1 / count ** heads.class_weight_power`` of its
category under ``heads.class_weighting``. Every configuration trains as
bert_ner_rare does (bert_ner_es's head on GMB, early stopping) on the train part
of the labelled split; the validation part scores it (``bench.head_kinds``'
protocol, paired by seed). Rule: the highest validation mean F1, the metric the
loss is for; entity F1 is reported beside it. Nothing here reads the test split.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import numpy as np

from bench.head_kinds import REPORTED, VALIDATION_FRACTION, Validation
from data.prepared_io import atomic_write_text
from experiments.runner import score, train_ner_converged
from heads.stats import paired_test
from pipeline.models import model_settings

RARE = ("art", "eve", "nat")  # GMB's categories of fewer than 30 labelled entities
GRID = ((0.3, 1.0), (1.0, 1.0))  # (word_loss, class_weight_power)
RULE = "the highest validation mean F1 (mean over seeds); (0, -): no word loss, bert_ner_es's head"


def gains(rows: list[dict], reference: list[dict]) -> dict:
    """Entity F1 and mean F1 of ``rows`` minus ``reference``, paired by seed: {metric: {"mean", "p_value"}}."""
    out = {}
    for key in ("entity_f1", "mean_f1"):
        by_seed = {r["seed"]: r[key] for r in reference}
        test = paired_test([r[key] for r in rows], [by_seed[r["seed"]] for r in rows])
        out[key] = {"mean": test["gain"], "p_value": test["p"]}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--prepared", default="data/prepared")
    parser.add_argument("--cache", default="cache/features.h5")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", default="bench/rare_categories.json")
    args = parser.parse_args()
    start = time.perf_counter()
    validation = Validation(args.params, args.prepared, args.cache, VALIDATION_FRACTION)
    rare = model_settings("bert_ner_rare", args.params).heads
    reference = dataclasses.replace(rare, class_weighting=False, word_loss=0.0, class_weight_power=1.0)
    configs = {"0/-": reference} | {
        f"{loss}/{power}": dataclasses.replace(rare, word_loss=loss, class_weight_power=power) for loss, power in GRID
    }
    runs = {}
    for name, heads in configs.items():
        corpus = validation.corpus(heads)
        runs[name] = []
        for seed in args.seeds:
            head = train_ner_converged(corpus, validation.train_part, seed, heads, validation.stopping)
            result = score(corpus, head, validation.validation)
            row = {"seed": seed, **{k: result.get(k) for k in REPORTED}}
            row["rare_f1"] = {c: result["f1"][c] for c in RARE if c in result["f1"]}
            runs[name].append(row)
            print(name, json.dumps(row), flush=True)
    summary = {
        name: {
            "word_loss": configs[name].word_loss,
            "class_weight_power": configs[name].class_weight_power if configs[name].word_loss else None,
            **{k: [float(np.mean(v)), float(np.std(v, ddof=1))] for k, v in _columns(rows).items()},
            "rare_f1": {c: float(np.mean([r["rare_f1"][c] for r in rows])) for c in RARE},
            "minus_reference": gains(rows, runs["0/-"]) if name != "0/-" else None,
        }
        for name, rows in runs.items()
    }
    chosen = max(summary, key=lambda name: summary[name]["mean_f1"][0])
    figures = {
        **validation.describe(args.seeds),
        "rule": RULE,
        "chosen": chosen,
        "params_yaml": f"{rare.word_loss}/{rare.class_weight_power}",  # what bert_ner_rare trains with
        "summary": summary,
        "runs": runs,
        "seconds": round(time.perf_counter() - start, 1),
    }
    atomic_write_text(args.out, json.dumps(figures, indent=1) + "\n")
    print(json.dumps({k: figures[k] for k in ("chosen", "params_yaml")}))


def _columns(rows: list[dict]) -> dict:
    return {key: [r[key] for r in rows] for key in ("entity_f1", "mean_f1", "accuracy_no_o", "train_seconds")}


if __name__ == "__main__":
    main()
