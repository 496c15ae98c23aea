"""The Ray backend writes the local backend's cache: same features, offsets and fingerprint,
whatever the actor count, after a stopped run or a killed actor. And device selection.

One local Ray instance (2 CPUs) serves the whole module; each Ray run starts its
own actors (a torch import and an encoder load each), so the runs are few.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cache.store import open_cache
from features.extract import encode_to_cache_local, resolve_device, resolve_precision
from features.settings import ExtractParams

ray = pytest.importorskip("ray")

WORDS = (
    "the",
    "minister",
    "said",
    "on",
    "Tuesday",
    "that",
    "Baghdad",
    "talks",
    "will",
    "resume",
    "in",
    "Geneva",
    "after",
    "a",
    "long",
    "pause",
    "UN",
    "officials",
    "reported",
    ".",
)


def tiny_corpus() -> list[list[str]]:
    """38 sentences of 1 to 45 words (the longest span several 32-piece windows)."""
    rng = np.random.default_rng(7)
    lengths = [1, 45, *rng.integers(2, 20, size=36)]
    return [[WORDS[i] for i in rng.integers(0, len(WORDS), size=n)] for n in lengths]


SENTENCES = tiny_corpus()
OFFSETS = np.concatenate([[0], np.cumsum([len(s) for s in SENTENCES])]).astype(np.int64)
CORPUS_SHA = "tiny-corpus"
# fp32 and one thread everywhere: the same arithmetic in both backends, so the caches agree to the bit.
PARAMS = ExtractParams(
    layers=(2, 3), precision="fp32", max_length=32, stride=8, chunk_sentences=6, threads=1, backend="ray"
)
NUM_SHARDS = -(-len(SENTENCES) // PARAMS.chunk_sentences)  # 7


@pytest.fixture(scope="module")
def ray_instance(tmp_path_factory):
    from features.ray_extract import runtime_env

    ray.init(
        num_cpus=2,
        runtime_env=runtime_env(tmp_path_factory.mktemp("code")),
        include_dashboard=False,
        logging_level="ERROR",
    )
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def local_cache(tmp_path_factory):
    import torch

    threads = torch.get_num_threads()
    path = tmp_path_factory.mktemp("local") / "features.h5"
    stats = encode_to_cache_local(PARAMS, SENTENCES, OFFSETS, CORPUS_SHA, str(path))
    torch.set_num_threads(threads)  # threads=1 above must not slow the tests that run after these
    return path, stats


@pytest.fixture(scope="module")
def two_actor_cache(ray_instance, tmp_path_factory):
    from features.ray_extract import encode_to_cache_ray

    path = tmp_path_factory.mktemp("ray2") / "features.h5"
    stats = encode_to_cache_ray(PARAMS, SENTENCES, OFFSETS, CORPUS_SHA, str(path), actors=2, progress=False)
    return path, stats


def read(path):
    with open_cache(path) as cache:
        return (cache.load_features(), cache.offsets.copy(), cache.piece_ids[...], cache.num_words, cache.fingerprint)


def assert_same_cache(path, reference):
    features, offsets, piece_ids, words, print_ = read(path)
    want_features, want_offsets, want_piece_ids, want_words, want_print = read(reference)
    assert words == want_words == OFFSETS[-1]
    np.testing.assert_array_equal(offsets, want_offsets)
    np.testing.assert_array_equal(piece_ids, want_piece_ids)
    assert print_ == want_print
    assert np.abs(features.astype(np.float32) - want_features.astype(np.float32)).max() <= 1e-6


def test_ray_cache_equals_the_local_cache(local_cache, two_actor_cache):
    path, stats = two_actor_cache
    assert_same_cache(path, local_cache[0])
    assert stats["fingerprint"] == local_cache[1]["fingerprint"]
    assert stats["words"] == local_cache[1]["words"] == OFFSETS[-1]
    assert (stats["actors"], stats["shards"], stats["shards_encoded"]) == (2, NUM_SHARDS, NUM_SHARDS)
    assert 1 <= len(stats["actor_processes"]) <= 2  # on 7 tiny shards one actor may do them all
    assert sum(worker["words"] for worker in stats["actor_processes"]) == OFFSETS[-1]
    assert not path.with_name(path.name + ".shards").exists()  # shards go once assembled


def test_a_stopped_run_resumes_without_redoing_its_shards_on_any_actor_count(
    ray_instance, tmp_path, monkeypatch, local_cache, two_actor_cache
):
    import features.ray_extract as ray_extract

    path = tmp_path / "features.h5"
    write_shard, written = ray_extract.write_shard, []

    def stop_after_three(*args, **kwargs):
        if len(written) == 3:
            raise KeyboardInterrupt("stopped")  # as Ctrl-C would, between two shards
        write_shard(*args, **kwargs)
        written.append(args[0])

    monkeypatch.setattr(ray_extract, "write_shard", stop_after_three)
    with pytest.raises(KeyboardInterrupt):
        ray_extract.encode_to_cache_ray(PARAMS, SENTENCES, OFFSETS, CORPUS_SHA, str(path), actors=1, progress=False)
    assert not path.exists() and all(p.exists() for p in written)
    monkeypatch.undo()

    stats = ray_extract.encode_to_cache_ray(PARAMS, SENTENCES, OFFSETS, CORPUS_SHA, str(path), actors=1, progress=False)
    assert (stats["shards_reused"], stats["shards_encoded"]) == (3, NUM_SHARDS - 3)
    assert stats["actors"] == 1
    assert_same_cache(path, local_cache[0])
    # One actor and two give the same bits.
    np.testing.assert_array_equal(read(path)[0], read(two_actor_cache[0])[0])


def test_a_killed_actor_is_restarted_and_the_cache_is_the_same(ray_instance, tmp_path, monkeypatch, local_cache):
    import features.ray_extract as ray_extract

    marker = tmp_path / "killed"

    class DiesOnce(ray_extract.ShardEncoder):
        """Kills its own process (no exception, no cleanup) on shard 4, the first time only."""

        def __call__(self, batch):
            if int(batch["shard"][0]) == 4 and not marker.exists():
                marker.write_text("killed")
                import os

                os._exit(1)
            return super().__call__(batch)

    monkeypatch.setattr(ray_extract, "ShardEncoder", DiesOnce)
    path = tmp_path / "features.h5"
    stats = ray_extract.encode_to_cache_ray(PARAMS, SENTENCES, OFFSETS, CORPUS_SHA, str(path), actors=1, progress=False)
    assert marker.exists()  # an actor did die
    assert stats["shards_encoded"] == NUM_SHARDS
    assert_same_cache(path, local_cache[0])


# --- selection logic: no Ray, no GPU needed --------------------------------------------------


def test_auto_is_the_cpu_without_a_gpu_and_cuda_with_one(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu" and resolve_device("cpu") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == "cuda" and resolve_device("cpu") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert resolve_precision("auto", "cuda") and not resolve_precision("fp32", "cuda")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert not resolve_precision("auto", "cuda")  # fp32 then: the fingerprint records no fp16
    with pytest.raises(ValueError, match="no bf16"):
        resolve_precision("bf16", "cuda")
    with pytest.raises(ValueError, match="extract.device 'gpu'"):
        resolve_device("gpu")


def test_cuda_without_a_gpu_is_a_one_line_error_before_any_work(monkeypatch, capsys, tmp_path):
    import torch

    from pipeline.params import run_main

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    params = ExtractParams(device="cuda")
    with pytest.raises(SystemExit) as exit_:
        run_main(lambda: encode_to_cache_local(params, SENTENCES, OFFSETS, CORPUS_SHA, str(tmp_path / "f.h5")))
    assert exit_.value.code == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: extract.device is cuda") and "\n" not in error
    assert not list(tmp_path.iterdir())  # failed before writing anything


def test_ray_refuses_cuda_on_a_cluster_without_gpus(ray_instance):
    from features.ray_extract import plan_actors

    with pytest.raises(ValueError, match="no GPU"):
        plan_actors("cuda", 1, None)
    assert plan_actors("auto", 1, None) == ("cpu", 2, {"num_cpus": 1})
    assert plan_actors("auto", 0, None) == ("cpu", 1, {"num_cpus": 2})  # 0: one actor per node


def test_params_yaml_names_the_new_settings():
    import yaml

    section = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())["extract"]
    assert (section["device"], section["backend"], section["ray_address"]) == ("auto", "local", "")
    assert json.dumps(ExtractParams(**{k: v for k, v in section.items() if k != "layers"}).backend) == '"local"'
