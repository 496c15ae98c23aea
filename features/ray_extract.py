"""Feature extraction on a Ray cluster (``extract.backend: ray``): the same cache, more machines.

The sentences are cut into shards, each one chunk of the cache (the sentence
ranges ``CacheWriter.chunk_sentence_range`` gives), so a shard's content never
depends on how many workers there are. Ray Data feeds the shards to a pool of
actors (``map_batches``), each of which loads the encoder once and encodes whole
shards with the local backend's own code (``features.extract.encode_chunk``):
one actor per GPU when the cluster has GPUs, else actors of ``threads`` CPUs.

The actors return their features; the driver (the machine running the stage,
where the output lives) writes each shard atomically to its own HDF5 file under
``<out>.shards/`` (``cache.shards``), so no shared filesystem is needed and a run
killed at any point keeps every finished shard. Assembly then copies the shards, chunk by
chunk, into the same ``CacheWriter`` the local backend uses (same layout,
offsets and fingerprint), deleting each shard once its chunk is flushed.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from cache.shards import read_shard, shard_dir, shard_path, write_shard
from cache.store import CacheWriter
from features.extract import (
    encode_chunk,
    feature_dim,
    fingerprint,
    load_for_params,
    release_freed_memory,
    resolve_precision,
    truncate_encoder,
)
from features.settings import ExtractParams

log = logging.getLogger(__name__)

# --- the actor -----------------------------------------------------------------------------


class ShardEncoder:
    """A Ray Data actor: loads the encoder once, then encodes one shard per batch row.

    Returns each shard's float16 features with the fingerprint this worker
    computed, so a worker with other weights or code is caught by the driver.
    """

    def __init__(self, params: ExtractParams, device: str, bf16: bool, threads: int, words_sha256: str):
        import torch

        if device == "cuda" and bf16 and not torch.cuda.is_bf16_supported():
            raise ValueError("this worker's GPU has no bf16: set extract.precision: fp32")
        self.encoder, self.settings = load_for_params(params, bf16, device, threads)
        self.fingerprint = json.dumps(
            fingerprint(self.encoder, params, bf16, self.settings.max_length, words_sha256), sort_keys=True
        )
        truncate_encoder(self.encoder, max(self.settings.layers))

    def __call__(self, batch: dict) -> dict:
        out = {
            key: []
            for key in (
                "shard",
                "features",
                "piece_ids",
                "pieces",
                "windows",
                "padded_slots",
                "fingerprint",
                "pid",
                "peak_rss_mib",
                "busy_seconds",
            )
        }
        for shard, words in zip(batch["shard"], batch["words"]):
            sentences = json.loads(str(words))
            started = time.perf_counter()
            vectors, piece_ids, counters = encode_chunk(self.encoder, sentences, self.settings)
            out["shard"].append(int(shard))
            out["features"].append(vectors.astype(np.float16).reshape(-1))  # (W*D,): shards differ in W
            out["piece_ids"].append(piece_ids.astype(np.int32))
            for key in ("pieces", "windows", "padded_slots"):
                out[key].append(counters[key])
            out["fingerprint"].append(self.fingerprint)
            out["pid"].append(os.getpid())
            out["peak_rss_mib"].append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
            out["busy_seconds"].append(time.perf_counter() - started)
            del vectors
            release_freed_memory()
        ragged = ("features", "piece_ids")
        return {key: (_object_array(values) if key in ragged else np.asarray(values)) for key, values in out.items()}


def _object_array(arrays: list[np.ndarray]) -> np.ndarray:
    """A 1-D object array of arrays of different lengths (a ragged column for Ray Data)."""
    column = np.empty(len(arrays), dtype=object)
    column[:] = arrays
    return column


# --- the cluster ---------------------------------------------------------------------------


def runtime_env(staging: Path) -> dict:
    """The job's Ray runtime environment: the project's own code travels with the job, so
    workers need only the packages of requirements.txt.

    Only the ``.py`` files of ``features`` and ``cache`` are copied (into
    ``staging``, which must live until ``ray.init`` returns): the ``cache``
    folder also holds the feature caches, gigabytes Ray would try to upload.
    """
    import cache
    import features

    modules = []
    for package in (features, cache):
        source = Path(package.__file__).parent
        target = Path(staging) / source.name
        target.mkdir(parents=True, exist_ok=True)
        for module in source.glob("*.py"):
            shutil.copy2(module, target / module.name)
        modules.append(str(target))
    return {"py_modules": modules}


def connect(address: str) -> bool:
    """Join the cluster at ``address`` (else ``$RAY_ADDRESS``), or start a local instance.

    Returns True when this call connected (so the caller must ``ray.shutdown()``),
    False when Ray was already initialised in this process (a test, a notebook:
    then it should have been given ``runtime_env()``).
    """
    import ray

    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS", "")
    with tempfile.TemporaryDirectory(prefix="ray-code-") as staging:
        if address:
            log.info("joining the Ray cluster at %s", address)
            ray.init(address=address, runtime_env=runtime_env(staging), logging_level=logging.WARNING)
        else:
            log.info("no extract.ray_address or RAY_ADDRESS: starting a local Ray instance")
            ray.init(
                address="local",
                runtime_env=runtime_env(staging),
                include_dashboard=False,
                logging_level=logging.WARNING,
            )
    return True


def plan_actors(device: str, threads: int, actors: int | None) -> tuple[str, int, dict]:
    """(actor device, actor count, per-actor Ray resources) for this cluster.

    GPUs (device auto or cuda): one actor per GPU, with one CPU for its
    tokenisation. CPUs: ``threads`` per actor (0: all the CPUs of the smallest
    node, so one actor per node), as many actors as the nodes hold.
    """
    import ray

    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"extract.device {device!r}: use auto, cpu or cuda")
    gpus = int(ray.cluster_resources().get("GPU", 0))
    if device == "cuda" and not gpus:
        raise ValueError("extract.device is cuda but the Ray cluster has no GPU (use auto or cpu)")
    if gpus and device != "cpu":
        return "cuda", actors or gpus, {"num_gpus": 1, "num_cpus": 1}
    node_cpus = [int(node["Resources"].get("CPU", 0)) for node in ray.nodes() if node["Alive"]]
    per_actor = threads or min(c for c in node_cpus if c > 0)
    fit = sum(c // per_actor for c in node_cpus)
    if not fit:
        raise ValueError(f"extract.threads {threads}: no Ray node has that many CPUs ({node_cpus})")
    return "cpu", actors or fit, {"num_cpus": per_actor}


def precision_for(precision: str, device: str) -> bool:
    """bf16 autocast on the actors? Decided once on the driver, so the whole cache has one precision.

    ``auto`` means bf16 on GPU actors, and on CPU actors when the driver's CPU
    has native bf16 (a cluster's nodes are assumed alike; set it explicitly if not).
    """
    return resolve_precision(precision, "cpu") if device == "cpu" else precision in ("auto", "bf16")


# --- the driver ----------------------------------------------------------------------------


def encode_to_cache_ray(
    params: ExtractParams,
    sentences,
    offsets,
    words_sha256: str,
    out: str,
    actors: int | None = None,
    progress: bool = True,
) -> dict:
    """Fill cache ``out`` as ``features.extract.encode_to_cache_local`` does, with the encoding on Ray.

    ``actors`` overrides the count the cluster's resources give (tests, the
    benchmark). Returns the local backend's figures plus the Ray ones.
    """
    import ray

    started = connect(params.ray_address)
    try:
        return _encode_on_ray(
            params, sentences, np.asarray(offsets, dtype=np.int64), words_sha256, Path(out), actors, progress
        )
    finally:
        if started:
            ray.shutdown()


def _encode_on_ray(params, sentences, offsets, words_sha256, out, actors, progress) -> dict:
    import ray
    from tqdm import tqdm

    start = time.perf_counter()
    device, num_actors, resources = plan_actors(params.device, params.threads, actors)
    bf16 = precision_for(params.precision, device)
    # The driver loads the encoder on its CPU once, for the fingerprint (the weights' hash);
    # the fingerprint names the actors' device, not the driver's.
    encoder, settings = load_for_params(params, bf16, "cpu", 1)
    expected = dict(fingerprint(encoder, params, bf16, settings.max_length, words_sha256), device=device)
    dim = feature_dim(encoder, list(settings.layers), settings.combine)
    del encoder
    writer = CacheWriter(out, expected, offsets, dim, params.chunk_sentences)
    shards = shard_dir(out)
    shards.mkdir(parents=True, exist_ok=True)
    ranges = {chunk: writer.chunk_sentence_range(chunk) for chunk in writer.pending_chunks()}
    todo = [
        chunk
        for chunk, (first, last) in ranges.items()
        if read_shard(shard_path(shards, chunk), expected, first, last, int(offsets[last] - offsets[first])) is None
    ]
    num_actors = max(1, min(num_actors, len(todo)))
    log.info(
        "%s, layers %s (%s), %s pooling, %s; %d sentences in %d shards, %d to encode on %d %s actor(s), %s each",
        params.encoder,
        list(settings.layers),
        settings.combine,
        settings.pooling,
        "bf16" if bf16 else "fp32",
        len(offsets) - 1,
        len(ranges),
        len(todo),
        num_actors,
        device,
        resources,
    )

    counters = {"sentences": 0, "words": 0, "pieces": 0, "padded_slots": 0, "windows": 0}
    workers: dict[int, dict] = {}  # per actor process: its shards, words, busy time and peak RSS
    encode_start = time.perf_counter()
    try:
        if todo:
            items = [
                {
                    "shard": chunk,
                    "words": json.dumps(sentences[ranges[chunk][0] : ranges[chunk][1]], ensure_ascii=False),
                }
                for chunk in todo
            ]
            dataset = ray.data.from_items(items, override_num_blocks=len(items))
            del items
            encoded = dataset.map_batches(
                ShardEncoder,
                batch_size=1,
                batch_format="numpy",
                compute=ray.data.ActorPoolStrategy(size=num_actors),
                fn_constructor_kwargs={
                    "params": params,
                    "device": device,
                    "bf16": bf16,
                    "threads": resources["num_cpus"],
                    "words_sha256": words_sha256,
                },
                **resources,
            )
            with tqdm(total=len(todo), unit="shard", disable=not progress, desc="extract (ray)") as bar:
                for batch in encoded.iter_batches(batch_size=1, batch_format="numpy", prefetch_batches=0):
                    _store(batch, expected, ranges, offsets, dim, shards, counters, workers)
                    bar.update(1)
        encode_seconds = time.perf_counter() - encode_start
        assemble_start = time.perf_counter()
        for chunk in writer.pending_chunks():
            first, last = writer.chunk_sentence_range(chunk)
            path = shard_path(shards, chunk)
            found = read_shard(path, expected, first, last, int(offsets[last] - offsets[first]))
            if found is None:
                raise RuntimeError(f"{path}: shard {chunk} missing after the Ray run")
            writer.write_chunk(chunk, found[0], found[1])  # flushed: the shard is no longer needed
            path.unlink()
        path = writer.finish()
    except BaseException:
        writer.close()  # the partial cache and the finished shards stay; the next run resumes
        raise
    shutil.rmtree(shards, ignore_errors=True)
    seconds = time.perf_counter() - start
    log.info("wrote %s: %d shards encoded, %d reused, %.1f s", path, len(todo), len(ranges) - len(todo), seconds)
    total = -(-(len(offsets) - 1) // params.chunk_sentences)
    # The same keys as the local backend's figures (whole-cache totals, then this run's counters).
    return dict(
        sentences=len(offsets) - 1,
        words=int(offsets[-1]),
        chunks=total,
        chunks_resumed=total - len(todo),
        this_run=counters,
        backend="ray",
        device=device,
        actors=num_actors,
        actor_resources=resources,
        shards=total,
        shards_encoded=len(todo),
        shards_reused=total - len(todo),
        seconds=round(seconds, 2),
        encode_seconds=round(encode_seconds, 2),
        assemble_seconds=round(time.perf_counter() - assemble_start, 2),
        pieces_per_second=round(counters["pieces"] / max(encode_seconds, 1e-9), 1),
        padding_fill=round(counters["pieces"] / max(counters["padded_slots"], 1), 4),
        peak_rss_mib=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        actor_processes=[
            dict(worker, busy_seconds=round(worker["busy_seconds"], 2)) for _, worker in sorted(workers.items())
        ],
        cache_bytes=path.stat().st_size,
        fingerprint=expected,
    )


def _store(batch, expected, ranges, offsets, dim, shards, counters, workers) -> None:
    """Check one encoded shard from an actor and write it to its shard file."""
    shard = int(batch["shard"][0])
    if batch["fingerprint"][0] != json.dumps(expected, sort_keys=True):
        raise ValueError(
            f"a Ray worker computed another fingerprint than the driver "
            f"(other encoder weights or code version on the workers?): "
            f"{batch['fingerprint'][0]} != {json.dumps(expected, sort_keys=True)}"
        )
    first, last = ranges[shard]
    words = int(offsets[last] - offsets[first])
    features = np.asarray(batch["features"][0]).reshape(words, dim)  # (W, D)
    write_shard(shard_path(shards, shard), expected, first, last, features, np.asarray(batch["piece_ids"][0]))
    counters["sentences"] += last - first
    counters["words"] += words
    for key in ("pieces", "windows", "padded_slots"):
        counters[key] += int(batch[key][0])
    worker = workers.setdefault(
        int(batch["pid"][0]), {"shards": 0, "words": 0, "busy_seconds": 0.0, "peak_rss_mib": 0.0}
    )
    worker["shards"] += 1
    worker["words"] += words
    worker["busy_seconds"] += float(batch["busy_seconds"][0])
    worker["peak_rss_mib"] = max(worker["peak_rss_mib"], round(float(batch["peak_rss_mib"][0]), 1))
