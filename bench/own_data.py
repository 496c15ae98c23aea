"""The figures of ``bench/own_data.sh``: our rows on a user's corpus beside the classic peers of the same split.

    python -m bench.own_data --peers peers.json --repro-seconds 171 --train T --test T --out bench/own_data_x.json

Run in the project the script reproduced: reads ``metrics/heads/<model>/seed*.json`` of bert_ner_es (the head
chosen on validation) and the self-training row, ``metrics/choice/bert_ner_es.json`` (which head was chosen
and every candidate's validation entity F1) and bench/peers.py's JSON of the same prepared split.
"""

from __future__ import annotations

import argparse
import glob
import json
import subprocess

from data.prepared_io import atomic_write_text
from heads.stats import mean_std

MODELS = ("bert_ner_es", "ner_self_training")
METRICS = ("entity_f1", "mean_f1", "accuracy_no_o")


def model_summary(model: str) -> dict:
    """mean ± std over the seeds of ``model``'s test metrics."""
    runs = []
    for path in sorted(glob.glob(f"metrics/heads/{model}/seed*.json")):
        with open(path, encoding="utf-8") as handle:
            run = json.load(handle)
        runs.append(
            {"entity_f1": run["entity"]["f1"], "mean_f1": run["mean_f1"], "accuracy_no_o": run["accuracy_no_o"]}
        )
    if not runs:
        raise FileNotFoundError(f"metrics/heads/{model}/: no seed*.json (run the pipeline first)")
    return {"seeds": len(runs), **{key: mean_std([run[key] for run in runs]) for key in METRICS}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peers", required=True, help="bench/peers.py's JSON on this project's prepared split")
    parser.add_argument("--repro-seconds", type=int, required=True)
    parser.add_argument("--train", required=True)
    parser.add_argument("--test", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    with open(args.peers, encoding="utf-8") as handle:
        peers = json.load(handle)
    with open("metrics/choice/bert_ner_es.json", encoding="utf-8") as handle:
        choice = json.load(handle)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True)
    report = {
        "commit": commit.stdout.strip(),
        "train": args.train,
        "test": args.test,
        "labelled_sentences": peers["labelled_sentences"],
        "test_sentences": peers["test_sentences"],
        "ours": {model: model_summary(model) for model in MODELS},
        "chosen_head": choice["chosen"],
        "candidates_validation_entity_f1": {name: row["entity_f1"] for name, row in choice["candidates"].items()},
        "peers": {
            name: {key: peer[key] for key in (*METRICS, "train_seconds") if key in peer}
            for name, peer in peers["peers"].items()
        },
        "repro_seconds": args.repro_seconds,
    }
    atomic_write_text(args.out, json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
