"""Shard files: one finished chunk of a cache being made elsewhere (the Ray backend's workers).

Layout of one shard, ``<out>.shards/NNNNNN.h5`` for chunk NNNNNN of cache ``<out>``::

    features    float16 [words, D]   the chunk's word vectors
    piece_ids   int32   [words]      each word's first word-piece id
    attrs       format, first and last sentence (the chunk's range), fingerprint (JSON)

A shard is written to ``<path>.tmp`` and renamed, so a file at ``<path>`` is
always whole; a shard made from other inputs (another range, word count or
fingerprint) reads as missing, so a rerun encodes it again.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np

SHARD_FORMAT = "ssner-feature-shard"


def shard_dir(out: str | Path) -> Path:
    """Where the shards of cache ``out`` live while it is being made: ``<out>.shards/``."""
    out = Path(out)
    return out.with_name(out.name + ".shards")


def shard_path(directory: Path, shard: int) -> Path:
    """The file of shard (chunk) number ``shard`` in ``directory``."""
    return directory / f"{shard:06d}.h5"


def write_shard(path: Path, expected: dict, first: int, last: int, features: np.ndarray, piece_ids: np.ndarray) -> None:
    """Write sentences ``first:last``'s features (W, D) and piece ids (W,) to ``path`` atomically."""
    temporary = path.with_name(path.name + ".tmp")
    with h5py.File(temporary, "w") as handle:
        handle.create_dataset("features", data=features.astype(np.float16, copy=False))  # (W, D)
        handle.create_dataset("piece_ids", data=piece_ids.astype(np.int32, copy=False))  # (W,)
        handle.attrs.update(
            format=SHARD_FORMAT, first=first, last=last, fingerprint=json.dumps(expected, sort_keys=True)
        )
    os.replace(temporary, path)


def read_shard(path: Path, expected: dict, first: int, last: int, words: int):
    """(features (W, D) float16, piece_ids (W,) int32) of a finished shard made from these inputs, or None."""
    if not path.exists():
        return None
    try:
        with h5py.File(path, "r") as handle:
            attrs = handle.attrs
            if (
                attrs.get("format") != SHARD_FORMAT
                or int(attrs["first"]) != first
                or int(attrs["last"]) != last
                or handle["features"].shape[0] != words
                or attrs.get("fingerprint") != json.dumps(expected, sort_keys=True)
            ):
                return None
            return handle["features"][...], handle["piece_ids"][...]
    except (OSError, KeyError):
        return None
