"""train stage: one model's heads, one per seed, from the cached features; the encoder never runs here.

The corpus and the cache are read once for every seed (``seeds`` in params.yaml, or ``--seeds``); each seed's
head goes to ``OUT/seed<N>/`` (head.msgpack, train.json), and a model that starts from another head takes the
same seed's head from ``--init`` (that model's directory).

Models:
  baseline      learned embedding of each word's first piece -> MLP, CE
  bert_ner      cached encoder features -> MLP, CE for ``epochs`` passes of the labelled batches (the seed)
  bert_ner_es   the same head trained to convergence: early stopping on a held-out part, then a refit
  <kl model>    starts from its ``init`` head of the same seed, then ``rounds`` of (one KL step on an
                unlabelled batch, one CE step on a labelled batch); ``control: true`` is its matched
                control (the same CE steps on the same batches, no KL step)
  <self-training model>  starts from its teacher (``init``), rounds of pseudo-labelling (or its control)

The KL phase's CE step starts a fresh Adam state: heads are saved as weights
only (heads.checkpoint), and its matched control starts the same way, so the
comparison is fair either way.

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
from features.inputs import add_unlabelled_text, load_inputs, text_sentences, with_shape_flags
from heads.batches import word_rows
from heads.checkpoint import load_head, save_head
from heads.early_stopping import EarlyStopping, train_converged
from heads.losses import explicit_prior, inverse_frequency_weights
from heads.model import baseline_inputs, baseline_vocabulary, build_model
from heads.self_training import SelfTraining, train_self_training
from heads.train import KLPhase, train_kl_phase, train_supervised
from pipeline.params import (
    EarlyStoppingParams,
    ExtractParams,
    HeadParams,
    KLModelParams,
    KLParams,
    SelfTrainingModelParams,
    SelfTrainingParams,
    SupervisedParams,
    UnlabelledTextParams,
    enable_compilation_cache,
    load_section,
    read_params,
    run_main,
)  # fmt: skip

log = logging.getLogger("train")
SUPERVISED = ("baseline", "bert_ner", "bert_ner_es")


@dataclasses.dataclass(frozen=True)
class Run:
    """What every seed of one model trains from, read once."""

    model_id: str
    params_path: str
    heads: HeadParams
    prepared: object  # data.prepared_io.Prepared
    inputs: object  # (W, D) features (+ shape flags) or (W,) piece ids
    input_kind: str  # features | piece_ids
    labels: np.ndarray  # (W,) the labelled split's categories, -1 elsewhere
    offsets: np.ndarray  # (S+1,) sentence bounds of the rows of inputs (extra text's after the corpus's)
    unlabelled: np.ndarray  # the sentences of the unlabelled batches
    architecture: dict
    class_weights: np.ndarray | None
    feature_fingerprint: dict
    shape_flags: bool
    unlabelled_text: dict | None = None  # what extra text was added, if any

    def common(self, seed: int) -> dict:
        """The keyword arguments every schedule takes."""
        return dict(
            batch_sentences=self.heads.batch_sentences,
            weight_decay=self.heads.weight_decay,
            class_weights=self.class_weights,
            seed=seed,
        )


def _supervised(run: Run, seed: int, config: dict):
    """A supervised head: the seed's fixed epochs, or early stopping by steps then a refit."""
    prepared, inputs, labels, input_kind, common = (
        run.prepared,
        run.inputs,
        run.labels,
        run.input_kind,
        run.common(seed),
    )
    supervised = load_section(SupervisedParams, run.model_id, run.params_path)
    labelled, vocab_size = prepared.split["labelled"], 0
    if input_kind == "piece_ids":
        vocabulary = baseline_vocabulary(inputs[word_rows(prepared.offsets, labelled)])
        inputs = baseline_inputs(inputs, vocabulary)
        vocab_size = len(vocabulary) + 1
        config["vocabulary"] = vocabulary.tolist()
    model = build_model(
        input_kind, len(prepared.categories), **run.architecture, embed_dim=supervised.embed_dim, vocab_size=vocab_size
    )
    config.update(dataclasses.asdict(supervised), vocab_size=vocab_size)
    if supervised.schedule == "epochs":
        return train_supervised(
            None,
            inputs,
            labels,
            prepared.offsets,
            labelled,
            model=model,
            epochs=supervised.epochs,
            learning_rate=run.heads.learning_rate,
            **common,
        )
    stopping = load_section(EarlyStoppingParams, "early_stopping", run.params_path)
    config["early_stopping"] = dataclasses.asdict(stopping)

    def true_tags_of(sentence_ids):
        return [tag for s in sentence_ids for tag in prepared.tags[s]]

    return train_converged(
        inputs,
        labels,
        prepared.offsets,
        labelled,
        true_tags_of,
        prepared.categories,
        EarlyStopping(**dataclasses.asdict(stopping)),
        model=model,
        learning_rate=run.heads.learning_rate,
        **common,
    )


def _load_init(init, expected_model, seed):
    if init is None:
        raise ValueError(f"--init (the directory of {expected_model}'s heads, one per seed) is required")
    params, init_config = load_head(init)
    if init_config["model"] != expected_model or init_config["seed"] != seed:
        raise ValueError(
            f"{init}: expected {expected_model}'s head of seed {seed}, found "
            f"{init_config['model']} seed {init_config['seed']}"
        )
    return params


def _semi_supervised(run: Run, seed: int, init: str | None, config: dict):
    """A KL-phase model (kl_models) or a self-training model (self_training_models), from ``init``."""
    model_id, params_path, prepared, common = run.model_id, run.params_path, run.prepared, run.common(seed)
    all_params = read_params(params_path)
    kl_models, self_training_models = all_params.get("kl_models") or {}, all_params.get("self_training_models") or {}
    if model_id not in kl_models and model_id not in self_training_models:
        raise ValueError(
            f"unknown model {model_id!r}: not {', '.join(SUPERVISED)}, in kl_models "
            f"({', '.join(kl_models)}) or in self_training_models ({', '.join(self_training_models)})"
        )
    is_kl = model_id in kl_models
    recipe = (
        load_section(KLModelParams, f"kl_models.{model_id}", params_path)
        if is_kl
        else load_section(SelfTrainingModelParams, f"self_training_models.{model_id}", params_path)
    )
    params = _load_init(init, recipe.init, seed)
    model = build_model("features", len(prepared.categories), **run.architecture)
    inputs, labels, offsets = run.inputs, run.labels, run.offsets
    labelled, unlabelled = prepared.split["labelled"], run.unlabelled
    if run.unlabelled_text is not None:
        config["unlabelled_text"] = run.unlabelled_text
    if len(unlabelled) == 0:
        raise ValueError(
            f"{model_id}: no unlabelled sentences: the corpus's unlabelled split is empty "
            "(prepare.labelled_size took them all); give extra text (unlabelled_text.path, "
            "mode add or replace) or lower prepare.labelled_size"
        )
    config.update(recipe=dataclasses.asdict(recipe), init=str(init))
    if not is_kl:
        shared = load_section(SelfTrainingParams, "self_training", params_path)
        config["self_training"] = dataclasses.asdict(shared)
        recipe = SelfTraining(**dataclasses.asdict(shared), control=recipe.control)
        return train_self_training(params, inputs, labels, offsets, labelled, unlabelled, recipe, model=model, **common)
    kl = load_section(KLParams, "kl", params_path)
    config["kl"] = dataclasses.asdict(kl)

    def chosen(value, default):  # a model's own value, else the kl section's validated default
        return default if value is None else value

    phase = KLPhase(
        kind=recipe.kind,
        rounds=recipe.rounds,
        schedule=chosen(recipe.schedule, kl.schedule),
        kl_weight=chosen(recipe.weight, kl.weight),
        prior=explicit_prior(kl.prior, prepared.categories),
        target_gradient=chosen(recipe.target_gradient, kl.target_gradient),
        learning_rate=kl.learning_rate,
        kl_learning_rate=chosen(recipe.kl_learning_rate, kl.kl_learning_rate),
        control=recipe.control,
    )
    config["phase"] = {k: v for k, v in dataclasses.asdict(phase).items() if k != "prior"}
    return train_kl_phase(params, inputs, labels, offsets, labelled, unlabelled, phase, model=model, **common)


def _with_unlabelled_text(run: Run, text_cache: str) -> Run:
    """``run`` with the extra unlabelled text (section unlabelled_text) added to its rows, read once."""
    text = load_section(UnlabelledTextParams, "unlabelled_text", run.params_path)
    if text.mode == "none":
        return run
    text_words = text_sentences(text.path, text.encoding) if run.shape_flags else None
    inputs, offsets, labels, unlabelled, summary = add_unlabelled_text(
        run.inputs, run.offsets, run.labels, run.unlabelled, text_cache, text.mode, run.feature_fingerprint,
        text_words, run.heads.neighbour_flags,
    )  # fmt: skip
    log.info(
        "unlabelled batches from %d sentences (%s, %d of extra text)", len(unlabelled), text.mode, summary["sentences"]
    )
    return dataclasses.replace(
        run, inputs=inputs, offsets=offsets, labels=labels, unlabelled=unlabelled, unlabelled_text=summary
    )


def model_heads(model_id: str, init: str | None, params_path: str) -> HeadParams:
    """The head settings a model trains with: section ``heads`` with the model's own changes
    (a supervised model's ``head_settings``), or, for a model that starts from another head, that head's."""
    heads = load_section(HeadParams, "heads", params_path)
    if model_id in SUPERVISED:
        changes = load_section(SupervisedParams, model_id, params_path).head_settings or {}
        try:
            return dataclasses.replace(heads, **changes)
        except TypeError as error:
            raise ValueError(f"{params_path}: {model_id}.head_settings: {error}") from None
    if init is None:
        return heads  # _load_init says what is missing
    return HeadParams(**load_head(init)[1]["heads"])


def _seed_init(init: str | None, seed: int) -> str | None:
    """The head of ``seed`` in the init model's directory."""
    return None if init is None else str(Path(init) / f"seed{seed}" / "head.msgpack")


def train(
    model_id: str,
    seeds: list[int],
    prepared_dir: str,
    cache_path: str,
    out: str,
    init: str | None,
    params_path: str,
    text_cache: str,
) -> None:
    """Train ``model_id`` once per seed into ``out/seed<N>``; the corpus and cache are read once."""
    if not seeds:
        raise ValueError(f"{params_path}: no seeds to train")
    heads = model_heads(model_id, _seed_init(init, seeds[0]), params_path)
    prepared = read_prepared(prepared_dir)
    categories = prepared.categories
    input_kind = "piece_ids" if model_id == "baseline" else "features"
    inputs, feature_fingerprint = load_inputs(
        cache_path,
        load_section(ExtractParams, "extract", params_path),
        prepared.meta["words_sha256"],
        piece_ids=input_kind == "piece_ids",
    )
    shape_flags = heads.shape_flags and input_kind == "features"
    if shape_flags:
        # (W, D + 8), or D + 24 with the neighbours' flags: a view, the cache stays mapped
        inputs = with_shape_flags(inputs, prepared.words, heads.neighbour_flags)
    labelled = prepared.split["labelled"]
    # Training sees the labels of the labelled split only; every other word is -1.
    labels = np.full(len(prepared.labels), -1, dtype=np.int32)
    labelled_rows = word_rows(prepared.offsets, labelled)
    labels[labelled_rows] = prepared.labels[labelled_rows]
    class_weights = inverse_frequency_weights(labels[labelled_rows], len(categories)) if heads.class_weighting else None
    architecture = dict(
        hidden=heads.hidden,
        latent_dim=heads.latent_dim,
        dropout=heads.dropout,
        head=heads.kind,
        input_dim=int(inputs.shape[1]) if inputs.ndim == 2 else 0,
        lstm_units=heads.lstm_units,
        row_words=heads.row_words,
        max_sentences=heads.batch_sentences,
    )
    run = Run(
        model_id=model_id,
        params_path=params_path,
        heads=heads,
        prepared=prepared,
        inputs=inputs,
        input_kind=input_kind,
        labels=labels,
        offsets=prepared.offsets,
        unlabelled=prepared.split["unlabelled"],
        architecture=architecture,
        class_weights=class_weights,
        feature_fingerprint=feature_fingerprint,
        shape_flags=shape_flags,
    )
    if model_id not in SUPERVISED:
        run = _with_unlabelled_text(run, text_cache)
    for seed in seeds:
        start = time.perf_counter()
        config = {
            "model": model_id,
            "seed": seed,
            "categories": categories,
            "heads": dataclasses.asdict(heads),
            "features": feature_fingerprint,
            "input": input_kind,
        }
        if heads.kind != "mlp":
            config["input_dim"] = architecture["input_dim"]  # where the context head finds the shape flags
        if model_id in SUPERVISED:
            params, history = _supervised(run, seed, config)
        else:
            params, history = _semi_supervised(run, seed, _seed_init(init, seed), config)
        seconds = time.perf_counter() - start
        seed_out = Path(out) / f"seed{seed}"
        seed_out.mkdir(parents=True, exist_ok=True)
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
    args = parser.parse_args()
    enable_compilation_cache()
    seeds = args.seeds if args.seeds is not None else read_params(args.params).get("seeds", [0])
    train(args.model, seeds, args.prepared, args.cache, args.out, args.init, args.params, args.text_cache)


if __name__ == "__main__":
    run_main(main)
