"""train stage: one model's heads, one per seed, from the cached features; the encoder never runs here.

The corpus and the cache are read once for every seed (``seeds`` in params.yaml, or ``--seeds``); each seed's
head goes to ``OUT/seed<N>/`` (head.msgpack, train.json), and a model that starts from another head takes the
same seed's head from ``--init`` (that model's directory).

Models:
  baseline      learned embedding of each word's first piece -> MLP, CE
  bert_ner      cached encoder features -> MLP, CE for ``epochs`` passes of the labelled batches (the seed)
  bert_ner_es   the same head trained to convergence: early stopping on a held-out part, then a refit
  bert_ner_rare bert_ner_es's head with a class-weighted per-word loss beside its CRF (rare categories)
  <kl model>    starts from its ``init`` head of the same seed, then ``rounds`` of (one KL step on an
                unlabelled batch, one CE step on a labelled batch); ``control: true`` is its matched
                control (the same CE steps on the same batches, no KL step)
  <self-training model>  starts from its teacher (``init``), rounds of pseudo-labelling (or its control)

The KL phase's CE step starts a fresh Adam state: heads are saved as weights
only (heads.checkpoint), and its matched control starts the same way, so the
comparison is fair either way.

The semi-supervised models' unlabelled batches come from the corpus's unlabelled
split, plus or instead of the sentences of extra text (``unlabelled_text``, cached
by the extract_text stage): its rows follow the corpus's in one row space.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from cache.store import check_encodes
from data.prepared_io import atomic_write_text, read_prepared, words_sha256
from features.inputs import load_inputs, text_sentences
from heads.auto import choose_head
from heads.checkpoint import input_columns, save_head, trained_on
from heads.fit import fit, head_config, training_data, with_unlabelled_text
from pipeline.models import check_init, init_centroids, load_init, model_settings, seed_head
from pipeline.params import (
    ExtractParams,
    UnlabelledTextParams,
    enable_compilation_cache,
    load_section,
    load_seeds,
    read_params,
    run_main,
)  # fmt: skip

log = logging.getLogger("train")


def train(
    model_id: str,
    seeds: list[int],
    prepared_dir: str,
    cache_path: str,
    out: str,
    init: str | None,
    params_path: str,
    text_cache: str,
    choice_path: str | None = None,
) -> None:
    """Train ``model_id`` once per seed into ``out/seed<N>``; the corpus and cache are read once."""
    if not seeds:
        raise ValueError(f"{params_path}: no seeds to train")
    params = read_params(params_path)  # once: every section is checked here, before any data is read
    settings = model_settings(model_id, params_path, init, seeds[0], params)
    extract = load_section(ExtractParams, "extract", params_path, params=params)
    text = None
    if settings.init is not None:
        text = load_section(UnlabelledTextParams, "unlabelled_text", params_path, params=params)
    prepared = read_prepared(prepared_dir)
    check_encodes(cache_path, prepared.meta["words_sha256"], f"{prepared_dir}/meta.json", "rerun extract (dvc repro)")
    word_inputs, fingerprint = load_inputs(
        cache_path, extract, prepared.meta["words_sha256"], piece_ids=settings.input_kind == "piece_ids"
    )
    if settings.init is not None:  # the heads it starts from: trained on these categories, words, split, cache
        check_init(init, seeds, prepared_dir, prepared, cache_path, fingerprint)
    choice = {"chosen": None, "heads": settings.heads.as_config(), "candidates": {}}  # a head fixed in params
    if settings.auto_head is not None:
        settings, choice = choose_head(settings, settings.auto_head, prepared, word_inputs, log)
        log.info("auto head: chose %s", choice["chosen"])
    if choice_path is not None:
        Path(choice_path).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(choice_path, json.dumps(choice, indent=1))
    data = training_data(settings, prepared, word_inputs, init_centroids(init, settings, seeds[0]))
    dim = word_inputs.shape[1] if len(word_inputs.shape) == 2 else 0
    columns = input_columns({"input": settings.input_kind, "heads": settings.heads.as_config()}, dim)
    if settings.input_kind == "features" and sum(columns.values()) != data.input_dim:
        raise RuntimeError(f"input columns {columns} do not add up to the {data.input_dim} the head reads")
    if text is not None and text.mode != "none":
        text_words = text_sentences(text.path, text.encoding)  # their shape flags, word forms, clusters
        source = f"{text.path} (unlabelled_text.path)"
        check_encodes(text_cache, words_sha256(text_words), source, "rerun the extract_text stage (dvc repro)")
        data = with_unlabelled_text(data, settings, text_cache, text.mode, fingerprint, text_words)
        log.info(
            "unlabelled batches from %d sentences (%s, %d of extra text)",
            len(data.unlabelled),
            text.mode,
            data.unlabelled_text["sentences"],
        )
    for seed in seeds:
        start = time.perf_counter()
        init_params = None if settings.init is None else load_init(init, settings, seed)
        params, history = fit(settings, data, seed, init_params)
        seconds = time.perf_counter() - start
        seed_out = Path(out) / f"seed{seed}"
        seed_out.mkdir(parents=True, exist_ok=True)
        config = head_config(settings, data, seed, fingerprint, seed_head(init, seed))
        config["trained_on"] = trained_on(prepared_dir, prepared, cache_path, fingerprint, columns)
        save_head(seed_out / "head.msgpack", params, config)
        atomic_write_text(
            seed_out / "train.json", json.dumps({"seconds": round(seconds, 2), "history": history}, indent=1)
        )
        log.info("%s seed %d: trained in %.1f s", model_id, seed, seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True)
    parser.add_argument("--seeds", type=int, nargs="+", help="default: params.yaml's seeds")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--prepared", default="data/prepared")
    parser.add_argument("--cache", default="cache/features.h5")
    parser.add_argument(
        "--text-cache",
        default="cache/unlabelled.h5",
        help="extra unlabelled text's cache (read when unlabelled_text.mode is not none)",
    )
    parser.add_argument("--init", default=None, help="the directory of the model a semi-supervised model starts from")
    parser.add_argument("--out", required=True, help="the model's directory: one seed<N>/ per seed")
    parser.add_argument("--choice", default=None, help="write the head's choice (heads.kind auto) here")
    args = parser.parse_args()
    enable_compilation_cache()
    seeds = args.seeds if args.seeds is not None else load_seeds(args.params)
    train(args.model, seeds, args.prepared, args.cache, args.out, args.init, args.params, args.text_cache, args.choice)


if __name__ == "__main__":
    run_main(main)
