"""The HDF5 cache: atomic, resumable, fingerprinted; foreign or corrupt files are refused."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from cache.store import CacheError, CacheWriter, open_cache
from features.extract import extract_to_cache, fingerprint
from features.settings import ExtractParams

SENTENCES = [
    ["Thousands", "of", "demonstrators"],
    ["London"],
    ["NaN", "null", "NA", "\x85"],
    ["a", "b"],
    ["Iraq", "war"],
]
OFFSETS = np.concatenate([[0], np.cumsum([len(s) for s in SENTENCES])])


def make_writer(path, encoder, layers=(2, 3), chunk_sentences=2):
    settings = ExtractParams(
        layers=tuple(layers),
        combine="mean",
        pooling="first",
        precision="fp32",
        max_length=512,
        stride=128,
        chunk_sentences=chunk_sentences,
    )
    print_ = fingerprint(encoder, settings, False, 512, "corpus-hash")
    return CacheWriter(path, print_, OFFSETS, encoder.hidden_size, chunk_sentences), print_


def run_extraction(writer, encoder, layers=(2, 3)):
    return extract_to_cache(
        encoder, SENTENCES, writer, list(layers), "mean", "first", False, 512, 128, 4096, progress=False
    )


def test_complete_cache_reads_back_with_its_fingerprint(tmp_path, encoder):
    writer, print_ = make_writer(tmp_path / "f.h5", encoder)
    run_extraction(writer, encoder)
    writer.finish()
    with open_cache(tmp_path / "f.h5", print_) as cache:
        assert cache.num_sentences == len(SENTENCES) and cache.num_words == OFFSETS[-1]
        features = cache.load_features()
        assert features.dtype == np.float16 and np.isfinite(features).all()
        assert isinstance(cache.features, np.memmap)  # rows are read on demand, not all at once
        np.testing.assert_array_equal(cache.features[[4, 0, 2]], features[[4, 0, 2]])
        assert (cache.piece_ids[...] > 0).all()


def test_stale_fingerprint_is_refused(tmp_path, encoder):
    writer, print_ = make_writer(tmp_path / "f.h5", encoder)
    run_extraction(writer, encoder)
    writer.finish()
    with pytest.raises(CacheError, match=r"stale cache.*layers: cache has \[2, 3\], asked \[4\]"):
        open_cache(tmp_path / "f.h5", dict(print_, layers=[4]))
    with pytest.raises(CacheError, match="corpus_sha256"):
        open_cache(tmp_path / "f.h5", dict(print_, corpus_sha256="another corpus"))


def test_interrupted_cache_never_looks_complete_and_resumes(tmp_path, encoder):
    path = tmp_path / "f.h5"
    writer, print_ = make_writer(path, encoder)
    first_chunk = writer.pending_chunks()[0]
    # Write one chunk with the real extractor, then stop as an interrupted run would.
    from features.align import tokenize
    from features.extract import encode_windows

    windows = tokenize(encoder.tokenizer, SENTENCES[:2], 512, 128)
    writer.write_chunk(
        first_chunk, encode_windows(encoder, windows, [2, 3], "mean", "first", False, 4096), windows.first_piece_id
    )
    writer.close()
    assert not path.exists()
    with pytest.raises(CacheError, match="no such cache"):
        open_cache(path, print_)

    resumed, _ = make_writer(path, encoder)
    assert resumed.pending_chunks() == [1, 2]
    counters = run_extraction(resumed, encoder)
    assert counters["sentences"] == len(SENTENCES) - 2
    resumed.finish()

    fresh, _ = make_writer(tmp_path / "fresh.h5", encoder)
    run_extraction(fresh, encoder)
    fresh.finish()
    with open_cache(path, print_) as a, open_cache(tmp_path / "fresh.h5", print_) as b:
        np.testing.assert_array_equal(a.load_features(), b.load_features())


def test_partial_from_other_inputs_starts_over(tmp_path, encoder):
    path = tmp_path / "f.h5"
    writer, _ = make_writer(path, encoder, layers=(2, 3))
    writer.write_chunk(0, np.zeros((int(OFFSETS[2]), encoder.hidden_size)), np.ones(int(OFFSETS[2]), np.int32))
    writer.close()
    other, _ = make_writer(path, encoder, layers=(4,))
    assert other.pending_chunks() == [0, 1, 2]
    other.close()


def test_foreign_and_corrupt_files_are_refused(tmp_path):
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"\x89HDF\r\n\x1a\n but then nonsense")
    with pytest.raises(CacheError, match="garbage.h5: not a readable HDF5 file"):
        open_cache(garbage)
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as handle:
        handle["features"] = np.zeros((2, 3))
    with pytest.raises(CacheError, match="foreign.h5: not a feature cache written by this project"):
        open_cache(foreign)


class _Interrupted(Exception):
    pass


class _StopAt(list):
    """Sentences that raise when chunk ``stop`` is read: an extraction killed mid-way."""

    def __init__(self, sentences, stop):
        super().__init__(sentences)
        self.stop = stop

    def __getitem__(self, key):
        if isinstance(key, slice) and key.start == self.stop:
            raise _Interrupted
        return super().__getitem__(key)


def test_resumed_extraction_stats_describe_the_whole_cache(tmp_path):
    from features.extract import encode_to_cache

    settings = ExtractParams(layers=(2,), precision="fp32", chunk_sentences=2, device="cpu")
    out = str(tmp_path / "f.h5")
    with pytest.raises(_Interrupted):
        encode_to_cache(settings, _StopAt(SENTENCES, 2), OFFSETS, "corpus", out)
    stats = encode_to_cache(settings, SENTENCES, OFFSETS, "corpus", out)
    assert (stats["sentences"], stats["words"], stats["chunks"]) == (len(SENTENCES), int(OFFSETS[-1]), 3)
    assert stats["chunks_resumed"] == 1 and stats["this_run"]["sentences"] == len(SENTENCES) - 2
