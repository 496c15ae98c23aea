"""The HDF5 feature cache.

Layout of one file::

    features    float16 [words, D]     one vector per word, corpus order, contiguous (memory-mapped)
    offsets     int64   [sentences+1]  sentence s owns rows offsets[s]:offsets[s+1]
    piece_ids   int32   [words]        each word's first word-piece id (the baseline's input)
    chunk_done  uint8   [chunks]       which sentence chunks are written (for resuming)
    attrs       format, version, complete, fingerprint (JSON) and its fields

A cache is written to ``<path>.partial`` and renamed to ``<path>`` only when
every chunk is written, so a file at ``<path>`` is always complete. A reader
names the fingerprint it expects and refuses any other.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import h5py
import numpy as np

FORMAT = "ssner-features"
VERSION = 2  # 2: contiguous features

log = logging.getLogger(__name__)


class CacheError(ValueError):
    """A cache that is foreign, corrupt, incomplete or made from other inputs."""


def _describe_mismatch(found: dict, expected: dict) -> str:
    keys = sorted(set(found) | set(expected))
    diffs = [f"{k}: cache has {found.get(k)!r}, asked {expected.get(k)!r}"
             for k in keys if found.get(k) != expected.get(k)]
    return "; ".join(diffs)


class FeatureCache:
    """A complete cache opened read-only; use as a context manager or call close()."""

    def __init__(self, path: str | Path, expected: dict | None = None):
        self.path = Path(path)
        if not self.path.exists():
            raise CacheError(f"{self.path}: no such cache; run the extract stage")
        try:
            self.file = h5py.File(self.path, "r")
        except OSError as error:
            raise CacheError(f"{self.path}: not a readable HDF5 file ({error})") from None
        try:
            attrs = self.file.attrs
            if attrs.get("format") != FORMAT or any(k not in self.file for k in ("features", "offsets", "piece_ids")):
                raise CacheError(f"{self.path}: not a feature cache written by this project")
            if int(attrs.get("version", -1)) != VERSION:
                raise CacheError(f"{self.path}: cache format version {attrs.get('version')}, "
                                 f"this code reads {VERSION}; rerun extract")
            if not bool(attrs.get("complete", False)):
                raise CacheError(f"{self.path}: cache is incomplete (an interrupted extraction)")
            self.fingerprint = json.loads(attrs["fingerprint"])
            # Every field the caller names must match; a caller that cannot know a field
            # (the weights' hash without loading the encoder) leaves it out.
            if expected is not None and {k: self.fingerprint.get(k) for k in expected} != expected:
                raise CacheError(f"{self.path}: stale cache, fingerprint differs: "
                                 f"{_describe_mismatch(self.fingerprint, expected)}")
        except Exception:
            self.file.close()
            raise
        self.features = _memory_map(self.path, self.file["features"])
        self.offsets = self.file["offsets"][...]
        self.piece_ids = self.file["piece_ids"]

    @property
    def num_sentences(self) -> int:
        return len(self.offsets) - 1

    @property
    def num_words(self) -> int:
        return int(self.offsets[-1])

    @property
    def dim(self) -> int:
        return int(self.features.shape[1])

    def load_features(self) -> np.ndarray:
        """All features in memory, (W, D) float16: one sequential read."""
        return np.array(self.features)

    def close(self) -> None:
        self.file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _memory_map(path: Path, dataset: h5py.Dataset):
    """The features as a read-only NumPy memmap: reading a few rows costs only those rows.

    HDF5 stores a contiguous, uncompressed dataset as one block at a known
    offset, so NumPy can map it directly; any other layout is read through h5py.
    """
    offset = dataset.id.get_offset()
    if dataset.chunks is not None or dataset.compression is not None or offset is None:
        return dataset
    return np.memmap(path, dtype=dataset.dtype, mode="r", offset=offset, shape=dataset.shape)


def open_cache(path: str | Path, expected: dict | None = None) -> FeatureCache:
    """Open a complete cache whose fingerprint carries every field of ``expected``."""
    return FeatureCache(path, expected)


class CacheWriter:
    """Write a cache chunk by chunk to ``<path>.partial``; resume one whose fingerprint matches."""

    def __init__(self, path: str | Path, fingerprint: dict, offsets: np.ndarray, dim: int,
                 chunk_sentences: int):
        self.path = Path(path)
        self.partial = self.path.with_name(self.path.name + ".partial")
        self.fingerprint = fingerprint
        self.offsets = np.asarray(offsets, dtype=np.int64)
        self.chunk_sentences = chunk_sentences
        num_chunks = -(-(len(self.offsets) - 1) // chunk_sentences)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.file = self._resume(num_chunks, dim) or self._create(num_chunks, dim)

    def _resume(self, num_chunks: int, dim: int):
        if not self.partial.exists():
            return None
        try:
            handle = h5py.File(self.partial, "r+")
        except OSError:
            log.warning("%s: unreadable partial cache, starting over", self.partial)
            return None
        same = (handle.attrs.get("format") == FORMAT
                and handle.attrs.get("fingerprint") == json.dumps(self.fingerprint, sort_keys=True)
                and handle.attrs.get("chunk_sentences") == self.chunk_sentences
                and handle["features"].shape == (self.offsets[-1], dim)
                and np.array_equal(handle["offsets"][...], self.offsets))
        if not same:
            handle.close()
            log.warning("%s: partial cache made from other inputs, starting over", self.partial)
            return None
        log.info("%s: resuming, %d of %d chunks already written", self.partial,
                 int(handle["chunk_done"][...].sum()), num_chunks)
        return handle

    def _create(self, num_chunks: int, dim: int):
        handle = h5py.File(self.partial, "w")
        words = int(self.offsets[-1])
        # Contiguous, not chunked: readers memory-map it and touch only the rows they use.
        handle.create_dataset("features", shape=(words, dim), dtype=np.float16)
        handle.create_dataset("offsets", data=self.offsets)
        handle.create_dataset("piece_ids", shape=(words,), dtype=np.int32)
        handle.create_dataset("chunk_done", shape=(num_chunks,), dtype=np.uint8)
        handle.attrs.update(format=FORMAT, version=VERSION, complete=False,
                            chunk_sentences=self.chunk_sentences,
                            fingerprint=json.dumps(self.fingerprint, sort_keys=True))
        for key, value in self.fingerprint.items():
            handle.attrs[key] = json.dumps(value) if isinstance(value, (list, dict)) else value
        return handle

    def pending_chunks(self) -> list[int]:
        """Indices of chunks not yet written."""
        return [int(i) for i in np.flatnonzero(self.file["chunk_done"][...] == 0)]

    def chunk_sentence_range(self, chunk: int) -> tuple[int, int]:
        start = chunk * self.chunk_sentences
        return start, min(start + self.chunk_sentences, len(self.offsets) - 1)

    def write_chunk(self, chunk: int, features: np.ndarray, piece_ids: np.ndarray) -> None:
        """Write the rows of one chunk's sentences and mark it done (flushed to disk)."""
        first, last = self.chunk_sentence_range(chunk)
        rows = slice(int(self.offsets[first]), int(self.offsets[last]))
        expected = rows.stop - rows.start
        if features.shape[0] != expected or piece_ids.shape[0] != expected:
            raise ValueError(f"chunk {chunk}: {features.shape[0]} vectors for {expected} words")
        self.file["features"][rows] = features.astype(np.float16)
        self.file["piece_ids"][rows] = piece_ids
        self.file["chunk_done"][chunk] = 1
        self.file.flush()

    def finish(self) -> Path:
        """Mark complete and move into place; returns the final path."""
        if self.pending_chunks():
            raise RuntimeError(f"{self.partial}: chunks {self.pending_chunks()[:5]} not written")
        self.file.attrs["complete"] = True
        self.file.close()
        os.replace(self.partial, self.path)
        return self.path

    def close(self) -> None:
        """Close without finishing; the partial file stays for a later resume."""
        if self.file.id.valid:
            self.file.close()
