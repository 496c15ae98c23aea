"""Extraction benchmark: our extractor against a naive loop, on the same sentences, in one run.

The naive loop is what a first script does: corpus order, batches of 128
sentences padded to the longest, the full encoder in fp32, first piece per
word. Ours: length-sorted batches under a token budget, padded lengths
repeated, layers above the highest kept one dropped, bf16 autocast where the
CPU has it. Both run the same weights on the same sentences. Writes word pieces
per second for both, their ratio, padding fill, peak RSS and the minimum
per-word cosine of our bf16 features against our fp32 ones to a JSON file.
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import numpy as np
import torch

from data.prepared_io import atomic_write_text, read_prepared
from features.encoder import cpu_supports_bf16, load_encoder
from features.extract import encode_chunk, truncate_encoder
from features.settings import EncodeSettings
from pipeline.params import ExtractParams, load_section


def naive_loop(encoder, sentences, layers, batch_size=128):
    """Corpus order, fixed batches padded to the longest, fp32.

    Returns (vectors, rows, pieces, slots): ``rows`` are the flat word rows that
    got a vector; a word that tokenises to nothing is silently lost here.
    """
    vectors, rows, pieces, slots = [], [], 0, 0
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in sentences])])
    with torch.inference_mode():
        for start in range(0, len(sentences), batch_size):
            batch = sentences[start : start + batch_size]
            encoding = encoder.tokenizer(
                batch,
                is_split_into_words=True,
                truncation=True,
                max_length=encoder.max_length,
                padding=True,
                return_tensors="pt",
            )
            hidden = encoder.model(**encoding, output_hidden_states=True).hidden_states
            combined = torch.stack([hidden[layer] for layer in layers]).mean(0)  # (B, T, H)
            pieces += int(encoding["attention_mask"].sum())
            slots += encoding["attention_mask"].numel()
            for b in range(len(batch)):
                word_ids = encoding.word_ids(b)
                firsts = [t for t, w in enumerate(word_ids) if w is not None and (t == 0 or word_ids[t - 1] != w)]
                vectors.append(combined[b, firsts].numpy())
                rows.extend(offsets[start + b] + word_ids[t] for t in firsts)
    return np.concatenate(vectors), np.asarray(rows), pieces, slots


def ours(encoder, sentences, layers, bf16, max_batch_tokens):
    """The extract stage's own encoding of one chunk: (vectors, pieces, padded slots)."""
    settings = EncodeSettings(
        layers=tuple(layers),
        combine="mean",
        pooling="first",
        bf16=bf16,
        max_length=encoder.max_length,
        stride=128,
        max_batch_tokens=max_batch_tokens,
    )
    vectors, _, counters = encode_chunk(encoder, sentences, settings)
    return vectors, counters["pieces"], counters["padded_slots"]


def timed(function, *args):
    start = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sentences", type=int, default=2048)
    parser.add_argument("--out", default="bench/extraction.json")
    args = parser.parse_args()
    params = load_section(ExtractParams, "extract")
    layers = [int(layer) for layer in params.layers]
    sentences = read_prepared("data/prepared").words[: args.sentences]
    bf16 = cpu_supports_bf16()

    naive_encoder = load_encoder(params.encoder)
    fast_encoder = load_encoder(params.encoder)
    truncate_encoder(fast_encoder, max(layers))
    warm = sentences[:128]
    naive_loop(naive_encoder, warm, layers)
    ours(fast_encoder, warm, layers, bf16, params.max_batch_tokens)

    (naive_vectors, naive_rows, naive_pieces, naive_slots), naive_seconds = timed(
        naive_loop, naive_encoder, sentences, layers
    )
    (fast_vectors, pieces, slots), fast_seconds = timed(
        ours, fast_encoder, sentences, layers, bf16, params.max_batch_tokens
    )
    (fp32_vectors, _, _), fp32_seconds = timed(ours, fast_encoder, sentences, layers, False, params.max_batch_tokens)

    def min_cosine(a, b):
        return float(((a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)).min())

    figures = {
        "sentences": len(sentences),
        "words": int(fast_vectors.shape[0]),
        "layers": layers,
        "bf16": bf16,
        "cpu_threads": torch.get_num_threads(),
        "naive": {
            "seconds": round(naive_seconds, 2),
            "pieces_per_second": round(naive_pieces / naive_seconds),
            "padding_fill": round(naive_pieces / naive_slots, 3),
        },
        "ours": {
            "seconds": round(fast_seconds, 2),
            "pieces_per_second": round(pieces / fast_seconds),
            "padding_fill": round(pieces / slots, 3),
        },
        "ours_fp32": {"seconds": round(fp32_seconds, 2), "pieces_per_second": round(pieces / fp32_seconds)},
        "speedup": round(naive_seconds / fast_seconds, 2),
        "speedup_fp32_only_batching": round(naive_seconds / fp32_seconds, 2),
        "min_cosine_bf16_vs_fp32": round(min_cosine(fast_vectors, fp32_vectors), 5),
        "min_cosine_fp32_vs_naive": round(min_cosine(fp32_vectors[naive_rows], naive_vectors), 5),
        "words_lost_by_naive": int(fast_vectors.shape[0] - len(naive_rows)),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    atomic_write_text(args.out, json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
