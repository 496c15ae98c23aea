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

from data.prepared import atomic_write_text, read_prepared
from pipeline.extract_text import UnlabelledTextParams
from pipeline.params import load_section, run_main

log = logging.getLogger("train")
SUPERVISED = ("baseline", "bert_ner")


@dataclasses.dataclass(frozen=True)
class HeadParams:
    """Shared by every head (section ``heads``)."""
    batch_sentences: int = 128       # the seed's batch of sentences
    learning_rate: float = 1e-3      # Adam, as in the seed
    hidden: tuple = (256, 128, 64)   # the seed's MLP
    latent_dim: int = 32             # the plotted latent space
    dropout: float = 0.0             # the seed used none
    weight_decay: float = 0.0        # L2 via AdamW; the seed used none
    class_weighting: bool = False    # inverse-frequency class weights in CE


@dataclasses.dataclass(frozen=True)
class SupervisedParams:
    """Sections ``baseline`` and ``bert_ner``."""
    epochs: int = 20                 # the seed: 20 passes, after which it over-fit
    embed_dim: int = 784             # baseline only: the seed's embedding size


@dataclasses.dataclass(frozen=True)
class KLParams:
    """Section ``kl``: shared by the KL models."""
    learning_rate: float = 1e-3
    target_gradient: bool = False    # confidence KL: DEC's fixed target (False) or the seed's (True)
    prior: str | list | dict = "labelled"  # category shares of the labelled split, or explicit
    weight: float = 1.0              # KL scale (alternating) or lambda (joint)
    schedule: str = "alternating"    # alternating: the seed's KL step + CE step; joint: CE + w*KL


@dataclasses.dataclass(frozen=True)
class KLModelParams:
    """One entry of section ``kl_models``."""
    kind: str                        # data_distribution | confidence | both
    rounds: int                      # rounds of (KL step, CE step)


def explicit_prior(prior, categories: list[str]) -> np.ndarray | None:
    """None for 'labelled'; else a list in category order or a {category: share} dict, normalised."""
    if prior == "labelled":
        return None
    if isinstance(prior, dict):
        unknown = sorted(set(prior) - set(categories))
        if unknown:
            raise ValueError(f"kl.prior names unknown categories {unknown}; categories are {categories}")
        values = np.array([float(prior.get(c, 0.0)) for c in categories])
    else:
        values = np.asarray(prior, dtype=np.float64)
    if values.shape != (len(categories),) or (values < 0).any() or values.sum() <= 0:
        raise ValueError(f"kl.prior must give {len(categories)} non-negative shares ({categories})")
    return values / values.sum()


def load_inputs(prepared, cache_path: str, extract_params: dict, model_id: str):
    """Features (or first-piece ids for the baseline) of every word, and the cache fingerprint."""
    from cache.store import open_cache
    from features.extract import FEATURES_CODE_VERSION

    expected = {"encoder": extract_params["encoder"], "layers": [int(x) for x in extract_params["layers"]],
                "combine": extract_params["combine"], "pooling": extract_params["pooling"],
                "corpus_sha256": prepared.meta["words_sha256"], "code_version": FEATURES_CODE_VERSION}
    with open_cache(cache_path, expected) as cache:
        # The features stay memory-mapped: training reads only the rows of its batches.
        inputs = cache.piece_ids[...] if model_id == "baseline" else cache.features
        return inputs, cache.fingerprint


def add_unlabelled_text(inputs, offsets: np.ndarray, labels: np.ndarray, unlabelled: np.ndarray,
                        text_cache: str, mode: str, feature_fingerprint: dict):
    """Inputs, offsets, labels and unlabelled ids with the text cache's sentences appended.

    The text's rows follow the corpus's (a ConcatRows view: nothing is copied)
    and carry no label (-1). ``mode`` 'add' keeps the corpus's unlabelled
    sentences, 'replace' drops them. The text cache must hold features of the
    very encoder, weights, layers, pooling and precision of the corpus cache.
    Returns (inputs, offsets, labels, unlabelled ids, a summary for the config).
    """
    from cache.rows import ConcatRows
    from cache.store import open_cache

    with open_cache(text_cache) as cache:
        text_features, text_offsets, text_fingerprint = cache.features, cache.offsets, cache.fingerprint
    differ = [f"{k}: text cache has {text_fingerprint.get(k)!r}, corpus cache has {v!r}"
              for k, v in feature_fingerprint.items() if k != "corpus_sha256" and text_fingerprint.get(k) != v]
    if differ:
        raise ValueError(f"{text_cache}: made with other extract settings ({'; '.join(differ)}); "
                         "rerun the extract_text stage")
    num_sentences, num_words = len(offsets) - 1, int(offsets[-1])
    text_ids = np.arange(num_sentences, num_sentences + len(text_offsets) - 1, dtype=np.int64)
    inputs = ConcatRows(inputs, text_features)
    offsets = np.concatenate([offsets, num_words + text_offsets[1:]])                    # (S + T + 1,)
    labels = np.concatenate([labels, np.full(int(text_offsets[-1]), -1, dtype=labels.dtype)])
    unlabelled = text_ids if mode == "replace" else np.concatenate([unlabelled, text_ids])
    summary = {"mode": mode, "sentences": len(text_ids), "words": int(text_offsets[-1]),
               "corpus_sha256": text_fingerprint["corpus_sha256"]}
    return inputs, offsets, labels, unlabelled, summary


def baseline_vocabulary(piece_ids: np.ndarray) -> np.ndarray:
    """The first-piece ids seen in the labelled words, sorted: the baseline's embedding rows 1..V.

    Row 0 is shared by every id never seen in a labelled word. Such rows never
    receive a gradient, so giving each unseen id a row of its own (the seed's full
    30,522-row table) changes nothing learnable, and Adam over the full table
    makes every step ~5x slower.
    """
    return np.unique(piece_ids).astype(np.int32)


def baseline_inputs(piece_ids: np.ndarray, vocabulary) -> np.ndarray:
    """Map first-piece ids to the baseline's embedding rows (0 for unseen ids), (N,) int32."""
    vocabulary = np.asarray(vocabulary, dtype=np.int32)
    position = np.clip(np.searchsorted(vocabulary, piece_ids), 0, max(len(vocabulary) - 1, 0))
    found = vocabulary[position] == piece_ids if len(vocabulary) else np.zeros(len(piece_ids), bool)
    return np.where(found, position + 1, 0).astype(np.int32)


def build_model(model_id: str, num_classes: int, heads: HeadParams, embed_dim: int, vocab_size: int):
    from heads.model import EmbeddingHead, MLPHead

    if model_id == "baseline":
        return EmbeddingHead(vocab_size, num_classes, embed_dim, tuple(heads.hidden), heads.latent_dim,
                             heads.dropout)
    return MLPHead(num_classes, tuple(heads.hidden), heads.latent_dim, heads.dropout)


def model_from_config(config: dict):
    """Rebuild the Flax module a saved head was trained as."""
    heads = HeadParams(**config["heads"])
    return build_model("baseline" if config["input"] == "piece_ids" else config["model"],
                       len(config["categories"]), heads, config.get("embed_dim", 0),
                       config.get("vocab_size", 0))


def enable_compilation_cache(directory: str = ".jax_cache") -> None:
    """Reuse XLA executables across stage processes: 25 heads compile the same steps."""
    import jax

    jax.config.update("jax_compilation_cache_dir", directory)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


def train(model_id: str, seed: int, prepared_dir: str, cache_path: str, out: str,
          init: str | None, params_path: str, text_cache: str = "cache/unlabelled.h5") -> None:
    import yaml

    from heads.checkpoint import load_head, save_head
    from heads.losses import inverse_frequency_weights
    from heads.train import train_joint_rounds, train_kl_rounds, train_supervised

    with open(params_path, encoding="utf-8") as handle:
        all_params = yaml.safe_load(handle)
    heads = load_section(HeadParams, "heads", params_path)
    prepared = read_prepared(prepared_dir)
    categories = prepared.categories
    inputs, feature_fingerprint = load_inputs(prepared, cache_path, all_params["extract"], model_id)
    labelled, unlabelled = prepared.split["labelled"], prepared.split["unlabelled"]
    # Training sees the labels of the labelled split only; every other word is -1.
    labels = np.full(len(prepared.labels), -1, dtype=np.int32)
    labelled_rows = np.concatenate([np.arange(prepared.offsets[s], prepared.offsets[s + 1]) for s in labelled])
    labels[labelled_rows] = prepared.labels[labelled_rows]
    class_weights = (inverse_frequency_weights(labels[labelled_rows], len(categories))
                     if heads.class_weighting else None)
    common = dict(batch_sentences=heads.batch_sentences, weight_decay=heads.weight_decay,
                  class_weights=class_weights, seed=seed)
    start = time.perf_counter()
    config = {"model": model_id, "seed": seed, "categories": categories, "heads": dataclasses.asdict(heads),
              "features": feature_fingerprint, "input": "piece_ids" if model_id == "baseline" else "features"}
    if model_id in SUPERVISED:
        supervised = load_section(SupervisedParams, model_id, params_path)
        vocab_size = 0
        if model_id == "baseline":
            vocabulary = baseline_vocabulary(inputs[labelled_rows])
            inputs = baseline_inputs(inputs, vocabulary)
            vocab_size = len(vocabulary) + 1
            config["vocabulary"] = vocabulary.tolist()
        model = build_model(model_id, len(categories), heads, supervised.embed_dim, vocab_size)
        params, history = train_supervised(None, inputs, labels, prepared.offsets, labelled, model=model,
                                           epochs=supervised.epochs, learning_rate=heads.learning_rate,
                                           **common)
        config.update(dataclasses.asdict(supervised), vocab_size=vocab_size)
    else:
        kl_models = all_params.get("kl_models") or {}
        if model_id not in kl_models:
            raise ValueError(f"unknown model {model_id!r}: not baseline, bert_ner or in kl_models "
                             f"({', '.join(kl_models)})")
        model_params = KLModelParams(**kl_models[model_id])
        kl = load_section(KLParams, "kl", params_path)
        if init is None:
            raise ValueError(f"{model_id}: --init (bert_ner's head of the same seed) is required")
        params, init_config = load_head(init)
        if init_config["model"] != "bert_ner" or init_config["seed"] != seed:
            raise ValueError(f"{init}: expected bert_ner's head of seed {seed}, found "
                             f"{init_config['model']} seed {init_config['seed']}")
        model = build_model(model_id, len(categories), heads, 0, 0)
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
        schedule = {"alternating": train_kl_rounds, "joint": train_joint_rounds}.get(kl.schedule)
        if schedule is None:
            raise ValueError(f"kl.schedule {kl.schedule!r}: use alternating or joint")
        params, history = schedule(params, inputs, labels, offsets, labelled, unlabelled,
                                   model=model, rounds=model_params.rounds, kind=model_params.kind,
                                   prior=explicit_prior(kl.prior, categories),
                                   target_gradient=kl.target_gradient, kl_weight=kl.weight,
                                   learning_rate=kl.learning_rate, **common)
        config.update(kind=model_params.kind, rounds=model_params.rounds, kl=dataclasses.asdict(kl),
                      init=str(init))
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
