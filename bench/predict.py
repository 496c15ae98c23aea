"""Tagging benchmark: words and sentences per second of ``heads.tagger`` (what ``pipeline.predict`` runs) on a 10,000-sentence file.

The file holds corpus sentences drawn at random (any split: only the speed is
measured), one per line, words joined by spaces. Each head is loaded as the
CLI loads it (encoder from the head's fingerprint, weight check), then the
file is tagged by the CLI's own loop (decode, tokenize, encode, head, format)
into a null sink. Loading and tagging are timed apart; both go to the JSON.

    python -m bench.predict --heads models/bert_ner/seed0/head.msgpack models/baseline/seed0/head.msgpack
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from data.prepared_io import atomic_write_text, read_prepared
from heads.tagger import Tagger, input_lines, tag_lines


def sentence_file(path: Path, prepared_dir: str, count: int, seed: int) -> None:
    prepared = read_prepared(prepared_dir)
    chosen = np.random.default_rng(seed).choice(len(prepared.words), size=count, replace=False)
    path.write_text("".join(" ".join(prepared.words[i]) + "\n" for i in chosen), encoding="utf-8")


def bench_head(head: str, text: Path, as_json: bool, batch_sentences: int) -> dict:
    start = time.perf_counter()
    tagger = Tagger.load(head)
    loaded = time.perf_counter()
    with open(os.devnull, "w", encoding="utf-8") as sink:
        counts = tag_lines(tagger, input_lines([], str(text), "utf-8"), sink, as_json, batch_sentences)
    seconds = time.perf_counter() - loaded
    return {
        "head": head,
        "model": tagger.config["model"],
        "input": tagger.config["input"],
        "precision": tagger.config["features"]["precision"],
        "json": as_json,
        "load_seconds": round(loaded - start, 2),
        "tag_seconds": round(seconds, 2),
        "sentences": counts["sentences"],
        "words": counts["words"],
        "sentences_per_second": round(counts["sentences"] / seconds, 1),
        "words_per_second": round(counts["words"] / seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--heads", nargs="+", default=["models/bert_ner/seed0/head.msgpack"])
    parser.add_argument("--prepared", default="data/prepared")
    parser.add_argument("--sentences", type=int, default=10000)
    parser.add_argument("--batch-sentences", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="bench/predict.json")
    args = parser.parse_args()
    load_before = os.getloadavg()  # a busy shared machine shows here: figures are then lower
    with tempfile.TemporaryDirectory() as work:
        text = Path(work) / "sentences.txt"
        sentence_file(text, args.prepared, args.sentences, args.seed)
        runs = [
            bench_head(head, text, as_json, args.batch_sentences) for head in args.heads for as_json in (False, True)
        ]
    report = {
        "cpu_threads": os.cpu_count(),
        "load_average_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "file_sentences": args.sentences,
        "batch_sentences": args.batch_sentences,
        "runs": runs,
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    atomic_write_text(Path(args.out), json.dumps(report, indent=2) + "\n")
    for run in runs:
        print(
            f"{run['model']:>9} {'json' if run['json'] else 'conll'}: {run['sentences_per_second']:8.1f} "
            f"sentences/s, {run['words_per_second']:9.1f} words/s (load {run['load_seconds']} s)"
        )


if __name__ == "__main__":
    main()
