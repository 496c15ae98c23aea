"""The full-corpus check of the Ray backend: its cache and a head trained on it against the local backend's.

Run the pipeline once with each backend (for example in a second clone:
``dvc exp run -S extract.backend=ray evaluate@bert_ner``), then compare the two caches word by word, the
two heads byte by byte and the two metrics files. Writes bench/ray_full_corpus.json.

    python -m bench.ray_full_corpus --local cache/features.h5 --ray ../ray-check/cache/features.h5 \
        --local-head models/bert_ner/seed0/head.msgpack --ray-head ../ray-check/models/bert_ner/seed0/head.msgpack \
        --local-metrics metrics/heads/bert_ner/seed0.json --ray-metrics ../ray-check/metrics/heads/bert_ner/seed0.json \
        --local-stats metrics/extract.json --ray-stats ../ray-check/metrics/extract.json
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np

from cache.store import open_cache
from data.prepared_io import atomic_write_text

log = logging.getLogger("bench.ray_full_corpus")
METRICS = ("accuracy", "accuracy_no_o", "mean_f1")


def compare_caches(local: Path, ray: Path, rows_per_read: int = 200_000) -> dict:
    """Max absolute difference and minimum cosine per word between two caches, and whether layouts agree."""
    with open_cache(local) as a, open_cache(ray) as b:
        if a.features.shape != b.features.shape:
            raise ValueError(f"{ray}: features {b.features.shape}, {local} has {a.features.shape}")
        max_abs, min_cosine = 0.0, 1.0
        for start in range(0, a.features.shape[0], rows_per_read):
            x = a.features[start : start + rows_per_read].astype(np.float32)
            y = b.features[start : start + rows_per_read].astype(np.float32)
            max_abs = max(max_abs, float(np.abs(x - y).max()))
            norms = np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1)
            cosine = (x * y).sum(1) / np.where(norms > 0, norms, 1.0)
            min_cosine = min(min_cosine, float(cosine[norms > 0].min()))
        return {
            "words": int(a.features.shape[0]),
            "dim": int(a.features.shape[1]),
            "max_abs_difference": max_abs,
            "min_cosine_per_word": min_cosine,
            "same_offsets": bool(np.array_equal(a.offsets[...], b.offsets[...])),
            "same_piece_ids": bool(np.array_equal(a.piece_ids[...], b.piece_ids[...])),
            "same_fingerprint": a.fingerprint == b.fingerprint,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for side in ("local", "ray"):
        parser.add_argument(f"--{side}", required=True, type=Path, help=f"the {side} backend's cache")
        parser.add_argument(f"--{side}-head", required=True, type=Path)
        parser.add_argument(f"--{side}-metrics", required=True, type=Path)
        parser.add_argument(f"--{side}-stats", required=True, type=Path, help="the extract stage's stats JSON")
    parser.add_argument("--out", type=Path, default=Path("bench/ray_full_corpus.json"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")

    metrics = {side: json.loads(getattr(args, f"{side}_metrics").read_text()) for side in ("local", "ray")}
    stats = {side: json.loads(getattr(args, f"{side}_stats").read_text()) for side in ("local", "ray")}
    scores = {
        side: {**{name: m[name] for name in METRICS}, "entity_f1": m["entity"]["f1"]} for side, m in metrics.items()
    }
    result = {
        "cache": compare_caches(args.local, args.ray),
        "head_bytes_identical": args.local_head.read_bytes() == args.ray_head.read_bytes(),
        "model": metrics["local"]["model"],
        "seed": metrics["local"]["seed"],
        "metrics": scores,
        "largest_metric_difference": max(abs(scores["local"][k] - scores["ray"][k]) for k in scores["local"]),
        # Not the two runs' seconds: they ran at different times on a shared machine; bench/ray_extraction.json
        # compares the backends' speed in one run.
        "extraction": {
            side: {key: s.get(key) for key in ("backend", "device", "peak_rss_mib", "cache_bytes")}
            for side, s in stats.items()
        },
    }
    atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    log.info("wrote %s: %s", args.out, json.dumps(result["cache"]))


if __name__ == "__main__":
    main()
