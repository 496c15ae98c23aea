"""train stage: one head (model x seed) from the cached features; the encoder never runs here.

Models:
  baseline      learned embedding of each word's first piece -> MLP, CE
  bert_ner      cached encoder features -> MLP, CE for ``epochs`` passes of the labelled batches
  <kl model>    starts from bert_ner's head of the same seed, then ``rounds`` of
                (one KL step on an unlabelled batch, one CE step on a labelled batch)

The KL models' unlabelled batches come from the corpus's unlabelled split, plus
or instead of the sentences of extra text (``unlabelled_text``, cached by the
extract_text stage): its rows follow the corpus's in one row space.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import time
from pathlib import Path

import numpy as np

from data.prepared_io import atomic_write_text, read_prepared
from features.inputs import add_unlabelled_text, load_inputs
from heads.batches import word_rows
from heads.checkpoint import load_head, save_head
from heads.losses import explicit_prior, inverse_frequency_weights
from heads.model import baseline_inputs, baseline_vocabulary, build_model
from heads.train import KLPhase, train_kl_phase, train_supervised
from pipeline.params import (
    ExtractParams,
    HeadParams,
    KLModelParams,
    KLParams,
    SupervisedParams,
    UnlabelledTextParams,
    enable_compilation_cache,
    load_section,
    read_params,
    run_main,
)  # fmt: skip

log = logging.getLogger("train")
SUPERVISED = ("baseline", "bert_ner")


def train(model_id: str, seed: int, prepared_dir: str, cache_path: str, out: str,
          init: str | None, params_path: str, text_cache: str) -> None:
    heads = load_section(HeadParams, "heads", params_path)
    prepared = read_prepared(prepared_dir)
    categories = prepared.categories
    input_kind = "piece_ids" if model_id == "baseline" else "features"
    inputs, feature_fingerprint = load_inputs(cache_path, load_section(ExtractParams, "extract", params_path),
                                              prepared.meta["words_sha256"], piece_ids=input_kind == "piece_ids")
    labelled, unlabelled = prepared.split["labelled"], prepared.split["unlabelled"]
    # Training sees the labels of the labelled split only; every other word is -1.
    labels = np.full(len(prepared.labels), -1, dtype=np.int32)
    labelled_rows = word_rows(prepared.offsets, labelled)
    labels[labelled_rows] = prepared.labels[labelled_rows]
    class_weights = (inverse_frequency_weights(labels[labelled_rows], len(categories))
                     if heads.class_weighting else None)
    common = dict(batch_sentences=heads.batch_sentences, weight_decay=heads.weight_decay,
                  class_weights=class_weights, seed=seed)
    architecture = dict(hidden=heads.hidden, latent_dim=heads.latent_dim, dropout=heads.dropout)
    start = time.perf_counter()
    config = {"model": model_id, "seed": seed, "categories": categories, "heads": dataclasses.asdict(heads),
              "features": feature_fingerprint, "input": input_kind}
    if model_id in SUPERVISED:
        supervised = load_section(SupervisedParams, model_id, params_path)
        vocab_size = 0
        if input_kind == "piece_ids":
            vocabulary = baseline_vocabulary(inputs[labelled_rows])
            inputs = baseline_inputs(inputs, vocabulary)
            vocab_size = len(vocabulary) + 1
            config["vocabulary"] = vocabulary.tolist()
        model = build_model(input_kind, len(categories), **architecture, embed_dim=supervised.embed_dim,
                            vocab_size=vocab_size)
        params, history = train_supervised(None, inputs, labels, prepared.offsets, labelled, model=model,
                                           epochs=supervised.epochs, learning_rate=heads.learning_rate,
                                           **common)
        config.update(dataclasses.asdict(supervised), vocab_size=vocab_size)
    else:
        kl_models = read_params(params_path).get("kl_models") or {}
        if model_id not in kl_models:
            raise ValueError(f"unknown model {model_id!r}: not baseline, bert_ner or in kl_models "
                             f"({', '.join(kl_models)})")
        recipe = load_section(KLModelParams, f"kl_models.{model_id}", params_path)
        kl = load_section(KLParams, "kl", params_path)
        if init is None:
            raise ValueError(f"{model_id}: --init (bert_ner's head of the same seed) is required")
        params, init_config = load_head(init)
        if init_config["model"] != "bert_ner" or init_config["seed"] != seed:
            raise ValueError(f"{init}: expected bert_ner's head of seed {seed}, found "
                             f"{init_config['model']} seed {init_config['seed']}")
        model = build_model(input_kind, len(categories), **architecture)
        offsets = prepared.offsets
        text = load_section(UnlabelledTextParams, "unlabelled_text", params_path)
        if text.mode != "none":
            inputs, offsets, labels, unlabelled, config["unlabelled_text"] = add_unlabelled_text(
                inputs, offsets, labels, unlabelled, text_cache, text.mode, feature_fingerprint)
            log.info("unlabelled batches from %d sentences (%s, %d of extra text)", len(unlabelled),
                     text.mode, config["unlabelled_text"]["sentences"])
        if len(unlabelled) == 0:
            raise ValueError(f"{model_id}: no unlabelled sentences: the corpus's unlabelled split is empty "
                             "(prepare.labelled_size took them all); give extra text (unlabelled_text.path, "
                             "mode add or replace) or lower prepare.labelled_size")
        phase = KLPhase(kind=recipe.kind, rounds=recipe.rounds, schedule=kl.schedule, kl_weight=kl.weight,
                        prior=explicit_prior(kl.prior, categories), target_gradient=kl.target_gradient,
                        learning_rate=kl.learning_rate)
        params, history = train_kl_phase(params, inputs, labels, offsets, labelled, unlabelled, phase,
                                         model=model, **common)
        config.update(kind=recipe.kind, rounds=recipe.rounds, kl=dataclasses.asdict(kl), init=str(init))
    seconds = time.perf_counter() - start
    Path(out).mkdir(parents=True, exist_ok=True)
    save_head(Path(out) / "head.msgpack", params, config)
    atomic_write_text(Path(out) / "train.json",
                      json.dumps({"seconds": round(seconds, 2), "history": history}, indent=1))
    log.info("%s seed %d: trained in %.1f s", model_id, seed, seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--prepared", default="data/prepared")
    parser.add_argument("--cache", default="cache/features.h5")
    parser.add_argument("--text-cache", default="cache/unlabelled.h5",
                        help="extra unlabelled text's cache (read when unlabelled_text.mode is not none)")
    parser.add_argument("--init", default=None, help="bert_ner head to start a KL model from")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    enable_compilation_cache()
    train(args.model, args.seed, args.prepared, args.cache, args.out, args.init, args.params, args.text_cache)


if __name__ == "__main__":
    run_main(main)
