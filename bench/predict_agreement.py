"""Does ``predict`` tag the test split as ``evaluate`` did? Word by word, for one head (issue 19: a CRF head).

    python -m bench.predict_agreement --head models/bert_ner_es/seed0/head.msgpack \
        --predictions predictions/bert_ner_es/seed0.tsv --out bench/predict_agreement.json

``evaluate`` reads the head's inputs from the feature cache; the tagger (what ``pipeline.predict`` and the
server run) encodes the same words itself, in batches of its own. Both decode with ``heads.predict``. The
words are given as the test split holds them (not re-split from text), so any difference is the head's or
the encoder's arithmetic, which this counts.
"""

from __future__ import annotations

import argparse
import csv
import json
import time

from data.prepared_io import atomic_write_text
from heads.tagger import Tagger


def read_predictions(path: str) -> tuple[list[list[str]], list[list[str]]]:
    """The words and predicted categories of each test sentence, from evaluate's predictions TSV."""
    words: list[list[str]] = []
    predicted: list[list[str]] = []
    current = None
    with open(path, encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            if row["sentence"] != current:
                current = row["sentence"]
                words.append([])
                predicted.append([])
            words[-1].append(row["word"])
            predicted[-1].append(row["predicted"])
    return words, predicted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--head", required=True)
    parser.add_argument("--predictions", required=True, help="evaluate's predictions/<model>/seed<N>.tsv")
    parser.add_argument("--out", default="bench/predict_agreement.json")
    args = parser.parse_args()
    words, evaluated = read_predictions(args.predictions)
    tagger = Tagger.load(args.head)
    start = time.perf_counter()
    tagged = [category for chunk in range(0, len(words), 1024) for category in tagger.tag(words[chunk : chunk + 1024])]
    seconds = time.perf_counter() - start
    pairs = [(a, b) for sentence_a, sentence_b in zip(tagged, evaluated) for a, b in zip(sentence_a, sentence_b)]
    differ = sum(a != b for a, b in pairs)
    figures = {
        "head": args.head,
        "output": tagger.heads.output,
        "kind": tagger.heads.kind,
        "sentences": len(words),
        "words": len(pairs),
        "words_that_differ": differ,
        "sentences_that_differ": sum(a != b for a, b in zip(tagged, evaluated)),
        "agreement": 1 - differ / max(len(pairs), 1),
        "tag_seconds": round(seconds, 1),
    }
    atomic_write_text(args.out, json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
