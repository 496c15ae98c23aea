"""What verifying the feature cache's contents costs: per-chunk CRC32 plus the finiteness check.

Measured on cache/features.h5 when it exists, else on a synthetic cache of
1M words x 384 float16 (the size of the default corpus cache), written with
the project's own CacheWriter. Writes bench/integrity.json.

    python -m bench.integrity [--words 1000000] [--dim 384]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from cache.store import CacheWriter, open_cache, verify_cache

log = logging.getLogger("bench.integrity")


def synthetic_cache(path: Path, words: int, dim: int, chunk_sentences: int = 2048) -> Path:
    """A complete cache of random features, sentences of 20 words."""
    lengths = np.full(words // 20, 20, dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    writer = CacheWriter(path, {"synthetic": True}, offsets, dim, chunk_sentences)
    rng = np.random.default_rng(0)
    for chunk in writer.pending_chunks():
        first, last = writer.chunk_sentence_range(chunk)
        rows = int(offsets[last] - offsets[first])
        writer.write_chunk(chunk, rng.standard_normal((rows, dim), dtype=np.float32), np.ones(rows, np.int32))
    return writer.finish()


def measure(path: Path) -> dict:
    """Seconds to open without and with verification; the best of three (page cache warm)."""

    def best(verify: bool) -> float:
        times = []
        for _ in range(3):
            start = time.perf_counter()
            with open_cache(path, verify=verify):
                pass
            times.append(time.perf_counter() - start)
        return min(times)

    plain, verified = best(False), best(True)
    start = time.perf_counter()
    verify_cache(path)
    alone = time.perf_counter() - start
    with open_cache(path, verify=False) as cache:
        words, dim = cache.num_words, cache.dim
    size = path.stat().st_size
    return {
        "cache": str(path),
        "words": words,
        "dim": dim,
        "bytes": size,
        "open_seconds": round(plain, 4),
        "open_and_verify_seconds": round(verified, 3),
        "verify_seconds": round(alone, 3),
        "verify_gib_per_second": round(size / 2**30 / max(alone, 1e-9), 2),
        "cpu": os.cpu_count(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--words", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--out", default="bench/integrity.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    real = Path("cache/features.h5")
    if real.exists():
        result = dict(measure(real), synthetic=False)
    else:
        with tempfile.TemporaryDirectory() as directory:
            path = synthetic_cache(Path(directory) / "features.h5", args.words, args.dim)
            result = dict(measure(path), synthetic=True, cache="synthetic")
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    log.info("%s", result)


if __name__ == "__main__":
    main()
