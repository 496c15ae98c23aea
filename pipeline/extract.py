"""extract stage: prepared sentences -> HDF5 cache of per-word encoder features.

The only place the encoder runs over the corpus. Resumes an interrupted run
from its last finished chunk; a cache made from other inputs is never reused.
"""

from __future__ import annotations

import argparse
import json

from data.prepared_io import atomic_write_text, read_prepared
from features.backend import encode_to_cache
from pipeline.params import ExtractParams, load_section, run_main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--prepared", default="data/prepared")
    parser.add_argument("--out", default="cache/features.h5")
    parser.add_argument("--stats", default=None, help="write timing and size figures to this JSON")
    args = parser.parse_args()
    params = load_section(ExtractParams, "extract", args.params)
    prepared = read_prepared(args.prepared)
    # extract.backend: local, or shards on a Ray cluster: the same cache
    stats = encode_to_cache(params, prepared.words, prepared.offsets, prepared.meta["words_sha256"], args.out)
    if args.stats:
        atomic_write_text(args.stats, json.dumps(stats, indent=2))


if __name__ == "__main__":
    run_main(main)
