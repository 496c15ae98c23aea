"""What ``--int8`` (the encoder's linear layers in int8: ``features.packing.quantize_linear_int8``) costs and
gains for one head: entity F1 on the test split with and without it, how many words' tags change, and the time
a chatbot message takes, alone and in batches of 8, on one thread (a server worker's share of two cores).

    python -m bench.int8 --head models/bert_ner_es/seed0/head.msgpack --out bench/int8.json

The test split's words are tagged as the split holds them, in batches of 32 sentences, by two taggers loaded
from the same head: the one ``predict`` and the server load by default, and the one ``--int8`` loads.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from bench.serve import chat_messages
from data.prepared_io import atomic_write_text, read_prepared
from heads.metrics import entity_metrics
from heads.tagger import Tagger


def tag_all(tagger: Tagger, sentences: list[list[str]], batch: int) -> tuple[list[list[str]], float]:
    """Each sentence's categories, and the milliseconds a sentence took on average, in batches of ``batch``."""
    start, tagged = time.perf_counter(), []
    for first in range(0, len(sentences), batch):
        tagged += tagger.tag(sentences[first : first + batch])
    return tagged, (time.perf_counter() - start) / len(sentences) * 1000


def message_ms(tagger: Tagger, messages: list[list[str]]) -> dict:
    """Milliseconds per message: one message a call (p50, p95), and eight a call (mean per message)."""
    for message in messages[:20]:
        tagger.tag([message])  # warm-up: the head's shapes compiled
    alone = []
    for message in messages:
        start = time.perf_counter()
        tagger.tag([message])
        alone.append((time.perf_counter() - start) * 1000)
    _, batched = tag_all(tagger, messages, 8)
    return {
        "alone_p50_ms": round(float(np.percentile(alone, 50)), 2),
        "alone_p95_ms": round(float(np.percentile(alone, 95)), 2),
        "batched_8_ms_per_message": round(batched, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--head", default="models/bert_ner_es/seed0/head.msgpack")
    parser.add_argument("--prepared", default="data/prepared", help="its test split is tagged and scored")
    parser.add_argument("--messages", type=int, default=400, help="chatbot-length test sentences timed")
    parser.add_argument("--threads", type=int, default=1, help="torch's CPU threads")
    parser.add_argument("--out", default="bench/int8.json")
    args = parser.parse_args()

    import torch

    prepared = read_prepared(Path(args.prepared))
    test = prepared.split["test"]
    words, gold = [prepared.words[i] for i in test], [prepared.tags[i] for i in test]
    messages = [line.split() for line in chat_messages([" ".join(w) for w in words], args.messages, 0)]
    report = {"head": args.head, "cpu": platform.processor() or platform.machine(), "threads": args.threads}
    report["load_average_before"] = round(os.getloadavg()[0], 2)
    tagged = {}
    for name, int8 in (("as_trained", False), ("int8", True)):
        tagger = Tagger.load(args.head, int8=int8)
        torch.set_num_threads(args.threads)
        tagged[name], ms = tag_all(tagger, words, 32)
        scores = entity_metrics(gold, tagged[name])
        report[name] = {
            "entity_f1": round(scores["f1"], 4),
            "precision": round(scores["precision"], 4),
            "recall": round(scores["recall"], 4),
            "test_ms_per_sentence": round(ms, 2),
            **message_ms(tagger, messages),
        }
        del tagger
    pairs = [(a, b) for x, y in zip(tagged["as_trained"], tagged["int8"]) for a, b in zip(x, y)]
    changed = sum(a != b for a, b in pairs)
    report["test_words"], report["words_changed"] = len(pairs), changed
    report["sentences_changed"] = sum(x != y for x, y in zip(tagged["as_trained"], tagged["int8"]))
    report["entity_f1_change"] = round(report["int8"]["entity_f1"] - report["as_trained"]["entity_f1"], 4)
    report["load_average_after"] = round(os.getloadavg()[0], 2)
    atomic_write_text(Path(args.out), json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
