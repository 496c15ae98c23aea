"""extract_text stage: a plain-text file of unlabelled sentences -> its own feature cache.

One sentence per line, split into words by ``features.text.tokenize_line``.
The file is streamed twice: a first pass counts the words of every line
(no text is kept), a second encodes it chunk by chunk with the corpus cache's
encoder, layers, pooling and precision (section ``extract``), resuming an
interrupted run. The KL heads then draw unlabelled batches from it
(``unlabelled_text.mode``: add to the corpus's unlabelled split, or replace it).

With ``mode: none`` the stage writes an empty placeholder cache and loads no
encoder: DVC needs the output to exist, and training does not read it.
"""

from __future__ import annotations

import argparse
import json
import logging

import numpy as np

from cache.store import CacheWriter
from data.prepared_io import atomic_write_text
from features.backend import encode_to_cache
from features.text import TextSentences, scan_text
from pipeline.params import ExtractParams, UnlabelledTextParams, load_section, run_main

log = logging.getLogger("extract_text")
PLACEHOLDER = {"unlabelled_text": "none"}  # the fingerprint of the mode-none placeholder


def extract_text(text: UnlabelledTextParams, params: ExtractParams, out: str, stats_path: str | None) -> None:
    if text.mode == "none":
        CacheWriter(out, PLACEHOLDER, np.zeros(1, np.int64), 1, params.chunk_sentences).finish()
        stats = {"mode": "none"}
        log.info("unlabelled_text.mode is none: wrote the empty placeholder %s", out)
    else:
        scan = scan_text(text.path, text.encoding, params.chunk_sentences)
        log.info(
            "%s: %d lines, %d sentences, %d words (%d blank lines skipped)",
            text.path,
            scan.lines,
            scan.num_sentences,
            scan.num_words,
            scan.blank_lines,
        )
        # extract.backend: local, or shards on a Ray cluster: the same cache
        stats = encode_to_cache(params, TextSentences(scan), scan.offsets, scan.words_sha256, out)
        stats.update(mode=text.mode, path=text.path, lines=scan.lines, blank_lines=scan.blank_lines)
    if stats_path:
        atomic_write_text(stats_path, json.dumps(stats, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--out", default="cache/unlabelled.h5")
    parser.add_argument("--stats", default=None, help="write counts, timing and peak memory to this JSON")
    args = parser.parse_args()
    extract_text(
        load_section(UnlabelledTextParams, "unlabelled_text", args.params),
        load_section(ExtractParams, "extract", args.params),
        args.out,
        args.stats,
    )


if __name__ == "__main__":
    run_main(main)
