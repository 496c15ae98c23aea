"""The HDF5 feature cache.

Layout of one file::

    features    float16 [words, D]     one vector per word, corpus order, contiguous (memory-mapped)
    offsets     int64   [sentences+1]  sentence s owns rows offsets[s]:offsets[s+1]
    piece_ids   int32   [words]        each word's first word-piece id (the baseline's input)
    chunk_done  uint8   [chunks]       which sentence chunks are written (for resuming)
    chunk_crc32 uint32  [chunks]       CRC32 of each chunk's feature bytes, then its piece_ids bytes
    attrs       format, version, complete, fingerprint (JSON) and its fields

A cache is written to ``<path>.partial`` and renamed to ``<path>`` only when
every chunk is written, so a file at ``<path>`` is always complete. A writer
holds ``<path>.lock`` (flock) from before it opens the partial file until it
closes it: a second writer of the same cache refuses before touching the first's
partial file. A reader names the fingerprint it expects and refuses any other;
the fingerprint's ``corpus_sha256`` is the hash of the words the cache encodes
(``data.prepared_io.words_sha256``), which ``check_encodes`` compares with a
prepared corpus's or a text file's.

Contents are checked too: the writer refuses NaN or Inf features (a float32
value beyond float16's range becomes Inf here), and each chunk's CRC32 is
written with the chunk. ``open_cache`` verifies every chunk's CRC32 and
finiteness once, at open: measured on 1M x 384 float16 (bench/integrity.json)
that costs about a second, less than one training epoch reads, while a lazy
per-chunk check would have to wrap the memory map that training indexes.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import zlib
from pathlib import Path

import h5py
import numpy as np

from data.prepared_io import disagreement

FORMAT = "ssner-features"
VERSION = 3  # 2: contiguous features; 3: per-chunk CRC32

log = logging.getLogger(__name__)


class CacheError(ValueError):
    """A cache that is foreign, corrupt, incomplete or made from other inputs."""


def _describe_mismatch(found: dict, expected: dict) -> str:
    diffs = [
        f"{k}: cache has {found.get(k)!r}, asked {expected[k]!r}"
        for k in sorted(expected)
        if found.get(k) != expected[k]
    ]
    return "; ".join(diffs)


def _chunk_crc32(features: np.ndarray, piece_ids: np.ndarray) -> int:
    """CRC32 of a chunk's float16 feature bytes followed by its int32 piece-id bytes."""
    crc = zlib.crc32(memoryview(np.ascontiguousarray(features)).cast("B"))
    return zlib.crc32(memoryview(np.ascontiguousarray(piece_ids)).cast("B"), crc)


def nonfinite_rows(features: np.ndarray) -> np.ndarray:
    """Indices of the rows of float16 ``features`` (N, D) holding a NaN or an Inf, (K,) int64."""
    exponent = features.view(np.uint16) & 0x7C00  # float16: all exponent bits set = Inf or NaN
    return np.flatnonzero((exponent == 0x7C00).any(axis=1))


def _describe_rows(rows: np.ndarray, offsets: np.ndarray) -> str:
    """'rows 4, 9 (sentences 2, 3)': the first few word rows and the sentences that own them."""
    shown = rows[:5]
    sentences = np.searchsorted(offsets, shown, side="right") - 1
    more = f" and {len(rows) - len(shown)} more" if len(rows) > len(shown) else ""
    return (
        f"word row(s) {', '.join(map(str, shown.tolist()))}{more} "
        f"(sentence(s) {', '.join(str(s + 1) for s in sentences.tolist())}, 1-based)"
    )


def verify_cache(path: str | Path) -> None:
    """Check every chunk's CRC32 and finiteness; raise CacheError naming the file and rows."""
    with FeatureCache(path, verify=False) as cache:
        cache.verify()


class FeatureCache:
    """A complete cache opened read-only; use as a context manager or call close()."""

    def __init__(self, path: str | Path, expected: dict | None = None, verify: bool = True):
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
                raise CacheError(
                    f"{self.path}: cache format version {attrs.get('version')}, "
                    f"this code reads {VERSION}; rerun extract"
                )
            if not bool(attrs.get("complete", False)):
                raise CacheError(f"{self.path}: cache is incomplete (an interrupted extraction)")
            self.fingerprint = json.loads(attrs["fingerprint"])
            # Every field the caller names must match; a caller that cannot know a field
            # (the weights' hash without loading the encoder) leaves it out.
            if expected is not None and {k: self.fingerprint.get(k) for k in expected} != expected:
                raise CacheError(
                    f"{self.path}: stale cache, fingerprint differs: "
                    f"{_describe_mismatch(self.fingerprint, expected)}; rerun extract"
                )
        except Exception:
            self.file.close()
            raise
        self.features = _memory_map(self.path, self.file["features"])
        self.offsets = self.file["offsets"][...]
        self.piece_ids = self.file["piece_ids"]
        if verify:
            try:
                self.verify()
            except Exception:
                self.file.close()
                raise

    def verify(self) -> None:
        """Refuse the cache if any chunk's bytes differ from its CRC32 or hold NaN/Inf features."""
        chunk_sentences = int(self.file.attrs.get("chunk_sentences", 0))
        crcs = self.file["chunk_crc32"][...] if "chunk_crc32" in self.file else None
        if crcs is None or chunk_sentences <= 0:
            raise CacheError(f"{self.path}: no chunk checksums; rerun extract")
        num_chunks = -(-self.num_sentences // chunk_sentences)
        if len(crcs) != num_chunks:
            raise CacheError(f"{self.path}: {len(crcs)} chunk checksums for {num_chunks} chunks; rerun extract")
        for chunk in range(num_chunks):
            first = chunk * chunk_sentences
            last = min(first + chunk_sentences, self.num_sentences)
            start, stop = int(self.offsets[first]), int(self.offsets[last])
            features = np.asarray(self.features[start:stop])  # (rows, D) float16
            bad = nonfinite_rows(features)
            if bad.size:
                raise CacheError(
                    f"{self.path}: NaN or Inf features in {_describe_rows(bad + start, self.offsets)}; rerun extract"
                )
            if _chunk_crc32(features, self.piece_ids[start:stop]) != int(crcs[chunk]):
                raise CacheError(
                    f"{self.path}: chunk {chunk} (word rows {start}..{stop - 1}) does not "
                    "match its checksum: the file is corrupt; delete it and rerun extract"
                )

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


def open_cache(path: str | Path, expected: dict | None = None, verify: bool = True) -> FeatureCache:
    """Open a complete cache whose fingerprint carries every field of ``expected``.

    With ``verify`` (the default) every chunk's checksum and finiteness are checked first.
    """
    return FeatureCache(path, expected, verify)


def check_encodes(path: str | Path, words_sha256: str, source: str, hint: str) -> dict:
    """The fingerprint of the cache at ``path``, refused (one line naming both) unless it encodes the words of
    ``source`` (a prepared corpus's meta.json, a text file), whose hash is ``words_sha256``."""
    with FeatureCache(path, verify=False) as cache:
        found = cache.fingerprint
    if found.get("corpus_sha256") != words_sha256:
        field = "the words' hash (corpus_sha256)"
        raise CacheError(disagreement(path, source, field, found.get("corpus_sha256"), words_sha256, hint))
    return found


def cache_totals(path: str | Path) -> dict:
    """Sentences, words and chunks of a whole cache (complete or partial), read from the file.

    Statistics of a resumed extraction use these: its own counters cover only the chunks it wrote.
    """
    with h5py.File(path, "r") as handle:
        offsets = handle["offsets"][...]
        done = handle["chunk_done"][...]
        return {
            "sentences": len(offsets) - 1,
            "words": int(offsets[-1]),
            "chunks": int(len(done)),
            "chunks_done": int(done.sum()),
        }


class CacheWriter:
    """Write a cache chunk by chunk to ``<path>.partial``; resume one whose fingerprint matches."""

    def __init__(self, path: str | Path, fingerprint: dict, offsets: np.ndarray, dim: int, chunk_sentences: int):
        self.path = Path(path)
        self.partial = self.path.with_name(self.path.name + ".partial")
        self.fingerprint = fingerprint
        self.offsets = np.asarray(offsets, dtype=np.int64)
        self.chunk_sentences = chunk_sentences
        num_chunks = -(-(len(self.offsets) - 1) // chunk_sentences)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.lock = self._lock()  # before the partial file is opened: a second writer must not truncate it
        try:
            self.file = self._resume(num_chunks, dim) or self._create(num_chunks, dim)
        except BaseException:
            self._unlock()
            raise
        self.chunks_done_at_open = int(self.file["chunk_done"][...].sum())  # written by an earlier run

    def _lock(self):
        """Hold ``<path>.lock``; refuse (CacheError, nothing touched) while another writer holds it."""
        lock_path = self.path.with_name(self.path.name + ".lock")
        handle = open(lock_path, "a")  # noqa: SIM115 (held until close or finish)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise CacheError(
                f"{self.partial}: another extraction is writing this cache (it holds {lock_path}); "
                "wait for it to finish or stop it: nothing was touched"
            ) from None
        return handle

    def _unlock(self) -> None:
        """Remove and release the lock (removed first: a writer that finds no file makes its own)."""
        if not self.lock.closed:
            Path(self.lock.name).unlink(missing_ok=True)
            self.lock.close()

    def _resume(self, num_chunks: int, dim: int):
        if not self.partial.exists():
            return None
        try:
            handle = h5py.File(self.partial, "r+")
        except OSError:
            log.warning("%s: unreadable partial cache, starting over", self.partial)
            return None
        same = (
            handle.attrs.get("format") == FORMAT
            and handle.attrs.get("fingerprint") == json.dumps(self.fingerprint, sort_keys=True)
            and handle.attrs.get("chunk_sentences") == self.chunk_sentences
            and int(handle.attrs.get("version", -1)) == VERSION
            and "chunk_crc32" in handle
            and handle["features"].shape == (self.offsets[-1], dim)
            and np.array_equal(handle["offsets"][...], self.offsets)
        )
        if not same:
            handle.close()
            log.warning("%s: partial cache made from other inputs, starting over", self.partial)
            return None
        log.info(
            "%s: resuming, %d of %d chunks already written",
            self.partial,
            int(handle["chunk_done"][...].sum()),
            num_chunks,
        )
        return handle

    def _create(self, num_chunks: int, dim: int):
        handle = h5py.File(self.partial, "w")
        words = int(self.offsets[-1])
        # Contiguous, not chunked: readers memory-map it and touch only the rows they use.
        handle.create_dataset("features", shape=(words, dim), dtype=np.float16)
        handle.create_dataset("offsets", data=self.offsets)
        handle.create_dataset("piece_ids", shape=(words,), dtype=np.int32)
        handle.create_dataset("chunk_done", shape=(num_chunks,), dtype=np.uint8)
        handle.create_dataset("chunk_crc32", shape=(num_chunks,), dtype=np.uint32)
        handle.attrs.update(
            format=FORMAT,
            version=VERSION,
            complete=False,
            chunk_sentences=self.chunk_sentences,
            fingerprint=json.dumps(self.fingerprint, sort_keys=True),
        )
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
        with np.errstate(over="ignore"):  # beyond ±65504 becomes Inf, refused just below
            features = np.ascontiguousarray(features, dtype=np.float16)  # (rows, D)
        piece_ids = np.ascontiguousarray(piece_ids, dtype=np.int32)
        bad = nonfinite_rows(features)
        if bad.size:
            raise CacheError(
                f"{self.partial}: the encoder gave NaN or Inf features for "
                f"{_describe_rows(bad + rows.start, self.offsets)}; nothing of chunk {chunk} "
                "was written"
            )
        self.file["features"][rows] = features
        self.file["piece_ids"][rows] = piece_ids
        self.file["chunk_crc32"][chunk] = _chunk_crc32(features, piece_ids)
        self.file["chunk_done"][chunk] = 1  # after the data and its checksum: a crash leaves it undone
        self.file.flush()

    def finish(self) -> Path:
        """Mark complete and move into place; returns the final path."""
        if self.pending_chunks():
            raise RuntimeError(f"{self.partial}: chunks {self.pending_chunks()[:5]} not written")
        self.file.attrs["complete"] = True
        self.file.close()
        os.replace(self.partial, self.path)
        self._unlock()
        return self.path

    def close(self) -> None:
        """Close without finishing; the partial file stays for a later resume."""
        if self.file.id.valid:
            self.file.close()
        self._unlock()
