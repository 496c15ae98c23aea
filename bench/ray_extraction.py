"""Ray benchmark: the same sentences through the local backend and the Ray backend (1 and 2 actors).

Each configuration runs in a fresh process of its own, so its peak RSS and its
start-up (torch import, encoder load, Ray start, actor start) are its own:

    local    encode_to_cache_local, in one process, all the machine's cores
    ray_1    a local Ray instance with the machine's cores, one actor holding all of them
             (the same resources as local: the difference is Ray's overhead)
    ray_2    the same instance, two actors of half the cores each

Writes words/s end to end and in steady state (an actor's own busy time), peak
RSS per process (driver, each actor, Ray's own daemons), Ray's overhead at equal
resources, whether the Ray caches equal the local one, and a cost model: how
many machines like the measured actor encode 100M words in an hour.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from data.prepared_io import atomic_write_text, read_prepared
from pipeline.params import ExtractParams, load_section

CONFIGS = ("local", "ray_1", "ray_2")
TARGET_WORDS, TARGET_SECONDS = 100_000_000, 3600


def run_one(config: str, params: ExtractParams, prepared_dir: str, sentences: int, out: Path) -> dict:
    """Run one configuration in this process; returns its figures."""
    prepared = read_prepared(prepared_dir)
    words = prepared.words[:sentences]
    offsets = prepared.offsets[: sentences + 1]
    corpus = f"bench-{sentences}"  # a fingerprint of its own: this cache is never the pipeline's
    cores = os.cpu_count() or 1
    start = time.perf_counter()
    if config == "local":
        from features.extract import encode_to_cache_local

        stats = encode_to_cache_local(params, words, offsets, corpus, str(out))
        figures = {"ray_init_seconds": 0.0}
    else:
        import psutil
        import ray

        from features.ray_extract import encode_to_cache_ray, runtime_env

        actors = int(config.split("_")[1])
        with tempfile.TemporaryDirectory() as staging:
            ray.init(
                address="local",
                num_cpus=cores,
                runtime_env=runtime_env(staging),
                include_dashboard=False,
                logging_level=logging.WARNING,
            )
        ray_init = time.perf_counter() - start
        stats = encode_to_cache_ray(
            dataclass_replace(params, threads=cores // actors),
            words,
            offsets,
            corpus,
            str(out),
            actors=actors,
            progress=False,
        )
        # Ray's own processes (GCS, raylet, agents, Ray Data's helper actors), before they stop.
        daemons = {
            f"{p.name()}[{p.pid}]": round(p.memory_info().rss / 2**20, 1)
            for p in psutil.Process().children(recursive=True)
            if p.is_running() and "MapWorker" not in p.name()
        }  # the actors report their own
        ray.shutdown()
        figures = {"ray_init_seconds": round(ray_init, 2), "ray_daemons_rss_mib": daemons}
    seconds = time.perf_counter() - start
    figures.update(
        config=config,
        sentences=sentences,
        words=int(offsets[-1]),
        seconds=round(seconds, 2),
        words_per_second=round(int(offsets[-1]) / seconds, 1),
        process_peak_rss_mib=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        stats=stats,
    )
    return figures


def dataclass_replace(params: ExtractParams, **changes) -> ExtractParams:
    import dataclasses

    return dataclasses.replace(params, **changes)


def compare(path: Path, reference: Path) -> dict:
    """Max abs difference and min per-word cosine of two caches' features; equal offsets and fingerprint."""
    from cache.store import open_cache

    with open_cache(path) as cache, open_cache(reference) as other:
        a, b = cache.load_features().astype(np.float32), other.load_features().astype(np.float32)
        cosine = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
        return {
            "max_abs_diff": float(np.abs(a - b).max()),
            "min_cosine": float(cosine.min()),
            "same_offsets": bool(np.array_equal(cache.offsets, other.offsets)),
            "same_fingerprint": cache.fingerprint == other.fingerprint,
        }


def cost_model(runs: dict, cores: int) -> dict:
    """Machines for TARGET_WORDS in TARGET_SECONDS, from the measured steady-state throughput.

    Steady state is an actor's words over its busy seconds (encoding only). A
    machine of C cores is assumed to hold C/cores actors like the measured one
    (linear in cores: what ray_2 against ray_1 checks on this machine).
    """
    needed = TARGET_WORDS / TARGET_SECONDS
    model = {
        "target_words": TARGET_WORDS,
        "target_seconds": TARGET_SECONDS,
        "needed_words_per_second": round(needed, 1),
    }
    for config in ("ray_1", "ray_2"):
        processes = runs[config]["stats"]["actor_processes"]
        per_actor = [p["words"] / p["busy_seconds"] for p in processes if p["busy_seconds"] > 0]
        machine = sum(per_actor) if config == "ray_2" else per_actor[0]
        model[config] = {
            "steady_words_per_second_per_actor": [round(v, 1) for v in per_actor],
            f"steady_words_per_second_per_{cores}_core_machine": round(machine, 1),
            f"{cores}_core_machines_needed": int(np.ceil(needed / machine)),
            "cores_needed": int(np.ceil(needed / machine * cores)),
            "16_core_machines_needed": int(np.ceil(needed / (machine * 16 / cores))),
        }
    # The driver writes every shard and the assembled cache: its per-word cost bounds the cluster.
    stats = runs["ray_2"]["stats"]
    driver_seconds_per_word = stats["assemble_seconds"] / stats["words"]  # a fresh run: every word
    model["driver_assembly_hours_for_target"] = round(driver_seconds_per_word * TARGET_WORDS / 3600, 2)
    model["driver_assembly_seconds_per_million_words"] = round(driver_seconds_per_word * 1e6, 2)
    model["cache_gb_for_target"] = round(stats["cache_bytes"] / stats["words"] * TARGET_WORDS / 1e9, 1)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--prepared", default="data/prepared")
    parser.add_argument("--sentences", type=int, default=20_000)
    parser.add_argument("--out", default="bench/ray_extraction.json")
    parser.add_argument("--one", choices=CONFIGS, help=argparse.SUPPRESS)  # a child process: one config
    parser.add_argument("--cache", help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    params = load_section(ExtractParams, "extract", args.params)
    if args.one:
        figures = run_one(args.one, params, args.prepared, args.sentences, Path(args.cache))
        print("RESULT " + json.dumps(figures))
        return

    cores = os.cpu_count() or 1
    available = read_prepared(args.prepared).meta["num_sentences"]
    sentences = min(args.sentences, available)
    runs = {}
    with tempfile.TemporaryDirectory() as scratch:
        for config in CONFIGS:
            cache = Path(scratch) / f"{config}.h5"
            command = [
                sys.executable,
                "-m",
                "bench.ray_extraction",
                "--one",
                config,
                "--params",
                args.params,
                "--prepared",
                args.prepared,
                "--sentences",
                str(sentences),
                "--cache",
                str(cache),
            ]
            logging.info("running %s", config)
            result = subprocess.run(command, capture_output=True, text=True)
            lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
            if result.returncode or not lines:
                raise SystemExit(f"{config} failed:\n{result.stderr[-3000:]}")
            runs[config] = json.loads(lines[-1][len("RESULT ") :])
            if config != "local":
                runs[config]["versus_local"] = compare(cache, Path(scratch) / "local.h5")
    local, ray_1 = runs["local"], runs["ray_1"]
    overhead = {
        "end_to_end_seconds": {c: runs[c]["seconds"] for c in CONFIGS},
        "ray_1_over_local_end_to_end": round(ray_1["seconds"] / local["seconds"] - 1, 3),
        # Steady state: the actor's busy time against the local loop's encoding time.
        "ray_1_steady_over_local_encoding": round(
            sum(p["busy_seconds"] for p in ray_1["stats"]["actor_processes"]) / local["stats"]["seconds"] - 1, 3
        ),
        "ray_fixed_seconds": {  # what Ray adds whatever the corpus size
            c: round(runs[c]["seconds"] - max(p["busy_seconds"] for p in runs[c]["stats"]["actor_processes"]), 2)
            for c in ("ray_1", "ray_2")
        },
    }
    figures = {
        "machine": {
            "cores": cores,
            "bf16_autocast": local["stats"]["fingerprint"]["precision"] == "bf16",
            "note": "2 cores shared with other work while measured: figures are noisy",
        },
        "sentences": sentences,
        "sentences_requested": args.sentences,
        "words": local["words"],
        "encoder": params.encoder,
        "chunk_sentences": params.chunk_sentences,
        "words_per_second_end_to_end": {c: runs[c]["words_per_second"] for c in CONFIGS},
        "peak_rss_mib": {
            "local_process": local["process_peak_rss_mib"],
            **{f"{c}_driver": runs[c]["process_peak_rss_mib"] for c in ("ray_1", "ray_2")},
            **{
                f"{c}_actors": [p["peak_rss_mib"] for p in runs[c]["stats"]["actor_processes"]]
                for c in ("ray_1", "ray_2")
            },
            **{f"{c}_ray_daemons": runs[c]["ray_daemons_rss_mib"] for c in ("ray_1", "ray_2")},
        },
        "ray_overhead": overhead,
        "cost_model": cost_model(runs, cores),
        "runs": runs,
    }
    atomic_write_text(args.out, json.dumps(figures, indent=2) + "\n")
    print(json.dumps({k: v for k, v in figures.items() if k != "runs"}, indent=2))


if __name__ == "__main__":
    main()
