"""Head-training benchmark: cached features against the encoder inside every training step.

Ours: one head stage as the pipeline runs it, from the memory-mapped cache:
BERT NER's 400 CE steps plus the confidence-KL model's 80 rounds (160 steps),
JIT compilation included. The seed's design: the frozen encoder (fp32, as the
seed ran it) encodes each batch of 128 sentences inside the step, then the same
jitted CE step runs; timed for ``--loop-steps`` steps on the same labelled
batches and extrapolated to the same 560 steps.

Head kinds, in the same run: the seed's 20 epochs (400 CE steps at 2,560 sentences), JIT included, with
the inputs of our rows (bert_ner_es.head_settings: the shape flags, and the neighbours' flags when on), for
the MLP and for the BiLSTM context head (issue targets: <= 10 s and <= 60 s), each with a softmax and with a
CRF output (issue 19's targets: MLP + CRF <= 15 s, BiLSTM + CRF <= 90 s). Each is timed ``--repeats``
times, each time a fresh head compiled anew; the median is the figure. Writes bench/heads.json.
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import numpy as np

from cache.store import open_cache
from data.prepared_io import atomic_write_text, read_prepared
from features.align import tokenize
from features.encoder import load_encoder
from features.extract import encode_windows
from features.inputs import head_inputs
from heads.batches import make_batch, sentence_batches, sentence_starts, word_rows
from heads.build import build_model
from heads.model import MLPHead
from heads.settings import HeadParams, SupervisedParams
from heads.steps import init_head_params, init_state, make_optimizer, make_steps
from heads.train import KLPhase, train_kl_phase, train_supervised
from pipeline.params import ExtractParams, load_section


def time_head_kinds(prepared, labels, labelled, repeats=3) -> dict:
    """Seconds to train each head kind for the seed's 20 epochs on our rows' inputs, JIT included (median)."""
    settings = load_section(SupervisedParams, "bert_ner_es").head_settings or {}
    neighbours = bool(settings.get("neighbour_flags"))
    figures = {"inputs": "shape flags" + (" with the neighbours' flags" if neighbours else "")}
    with open_cache("cache/features.h5") as cache:
        inputs = head_inputs(cache.features, prepared.words, HeadParams(shape_flags=True, neighbour_flags=neighbours))
        for kind, output in [(k, o) for o in ("softmax", "crf") for k in ("mlp", "bilstm")]:
            times = []
            for _ in range(repeats):
                # A new model object each time: nothing compiled before is reused.
                heads = HeadParams(kind=kind, shape_flags=True, neighbour_flags=neighbours, output=output)
                model = build_model(heads, prepared.categories)
                start = time.perf_counter()
                train_supervised(None, inputs, labels, prepared.offsets, labelled, model=model, epochs=20, seed=0)
                times.append(round(time.perf_counter() - start, 2))
            name = kind if output == "softmax" else f"{kind}_{output}"
            figures[name] = {"seconds": float(np.median(times)), "runs": times, "steps": 20 * -(-len(labelled) // 128)}
    figures["bilstm_over_mlp"] = round(figures["bilstm"]["seconds"] / figures["mlp"]["seconds"], 1)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--loop-steps", type=int, default=20)
    parser.add_argument("--out", default="bench/heads.json")
    parser.add_argument("--head-kinds-only", action="store_true", help="time the head kinds only; keep the rest")
    args = parser.parse_args()
    if args.head_kinds_only:
        prepared = read_prepared("data/prepared")
        labelled = prepared.split["labelled"]
        rows = word_rows(prepared.offsets, labelled)
        labels = np.full(len(prepared.labels), -1, np.int32)
        labels[rows] = prepared.labels[rows]
        with open(args.out) as handle:
            figures = json.load(handle)
        figures["head_kinds"] = time_head_kinds(prepared, labels, labelled)
        atomic_write_text(args.out, json.dumps(figures, indent=2) + "\n")
        print(json.dumps(figures["head_kinds"], indent=2))
        return
    prepared = read_prepared("data/prepared")
    labelled, unlabelled = prepared.split["labelled"], prepared.split["unlabelled"]
    rows = word_rows(prepared.offsets, labelled)
    labels = np.full(len(prepared.labels), -1, np.int32)
    labels[rows] = prepared.labels[rows]
    model = MLPHead(len(prepared.categories))

    start = time.perf_counter()
    with open_cache("cache/features.h5") as cache:
        features = cache.features
        params, _ = train_supervised(None, features, labels, prepared.offsets, labelled, model=model, seed=0)
        supervised_seconds = time.perf_counter() - start
        train_kl_phase(
            params,
            features,
            labels,
            prepared.offsets,
            labelled,
            unlabelled,
            KLPhase(kind="confidence", rounds=80),
            model=model,
            seed=0,
        )
    cached_seconds = time.perf_counter() - start
    cached_steps = 400 + 2 * 80
    head_kinds = time_head_kinds(prepared, labels, labelled)

    extract = load_section(ExtractParams, "extract")
    layers = [int(layer) for layer in extract.layers]
    encoder = load_encoder(extract.encoder)
    optimizer = make_optimizer(1e-3)
    steps = make_steps(model, optimizer)
    state = init_state(
        init_head_params(model, np.zeros((8, encoder.hidden_size), np.float16), jax.random.key(0)), optimizer
    )
    batches = sentence_batches(labelled, 128, np.random.default_rng(0))
    key = jax.random.key(1)
    loop_seconds = []
    for step in range(args.loop_steps + 1):
        ids = batches[step % len(batches)]
        begin = time.perf_counter()
        sentences = [prepared.words[s] for s in ids]
        windows = tokenize(encoder.tokenizer, sentences, encoder.max_length, extract.stride)
        vectors = encode_windows(
            encoder, windows, layers, "mean", "first", False, 10**9, sort=False, batch_windows=128
        ).astype(np.float16)
        batch_rows = np.arange(len(vectors))
        batch_labels = prepared.labels[word_rows(prepared.offsets, ids)]
        batch = make_batch(vectors, batch_labels, batch_rows, 4096, sentence_starts(prepared.offsets, ids))
        state, _ = steps.ce(state, batch, key)
        jax.block_until_ready(state)
        loop_seconds.append(time.perf_counter() - begin)
    per_step = float(np.mean(loop_seconds[1:]))  # the first step also compiles
    figures = {
        "cached": {
            "seconds": round(cached_seconds, 2),
            "supervised_400_steps_seconds": round(supervised_seconds, 2),
            "steps": cached_steps,
            "includes_jit": True,
        },
        "encoder_in_loop": {
            "measured_steps": args.loop_steps,
            "seconds_per_step": round(per_step, 3),
            "extrapolated_seconds": round(per_step * cached_steps, 1),
            "precision": "fp32",
        },
        "speedup": round(per_step * cached_steps / cached_seconds, 1),
        "head_kinds": head_kinds,
    }
    atomic_write_text(args.out, json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
