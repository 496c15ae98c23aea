"""Train and score many heads in one process, for the experiments (learning curves, sweeps).

The DVC pipeline trains one head per stage; an experiment trains hundreds, so
here the features stay memory-mapped, the XLA executables are reused, and
entity F1 is the vectorised ``entity_f1_fast`` (checked against seqeval).
Heads are built from the pipeline's own params sections (``heads``,
``bert_ner``, ``kl``, ``kl_models``), so an experiment tests the pipeline's
heads; an experiment's overrides are explicit ``dataclasses.replace`` calls.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from bench.peers import sentence_features, train_crf
from data.prepared_io import read_prepared
from data.tags import category_of
from features.clusters import fit_cluster_centroids
from features.inputs import head_inputs, load_inputs
from heads.batches import sentence_starts, word_rows
from heads.build import build_model
from heads.early_stopping import EarlyStopping, train_converged
from heads.losses import class_weights, explicit_prior
from heads.metrics import entity_f1_fast, word_metrics
from heads.predict import predict_categories
from heads.self_training import SelfTraining, train_self_training
from heads.settings import (
    EarlyStoppingParams,
    HeadParams,
    KLModelParams,
    KLParams,
    SelfTrainingParams,
    SupervisedParams,
)  # fmt: skip
from heads.stats import validation_split
from heads.train import KLPhase, kl_phase, train_kl_phase, train_supervised
from pipeline.models import model_settings
from pipeline.params import ExtractParams, load_section, read_params


@dataclasses.dataclass(frozen=True)
class Corpus:
    """What every experiment run reads: features (memory-mapped), labels, tags, sentences."""

    features: object  # (W, D) float16, indexable by row arrays
    labels: np.ndarray  # (W,) int32 category ids; training reads only labelled rows
    tags: list[str]  # (W,) the true tags as written (BIO), for entity F1
    offsets: np.ndarray  # (S+1,)
    categories: list[str]


class Corpora:
    """The corpus as each head's inputs make it (``features.inputs.head_inputs``: the pipeline's), built once per
    kind of inputs; the features stay memory-mapped."""

    def __init__(self, prepared, features):
        self.prepared, self.features = prepared, features
        self.tags = [tag for sentence in prepared.tags for tag in sentence]
        self._built = {}

    def for_heads(self, heads: HeadParams) -> Corpus:
        key = (
            heads.shape_flags,
            heads.neighbour_flags,
            heads.word_forms and heads.word_form_rows,
            tuple(heads.clusters),
            heads.char_cnn > 0,  # the words' character ids appended
        )
        if key not in self._built:
            centroids = fit_cluster_centroids(self.features, heads.clusters) if heads.clusters else None
            inputs = head_inputs(self.features, self.prepared.words, heads, centroids=centroids)
            prepared = self.prepared
            self._built[key] = Corpus(inputs, prepared.labels, self.tags, prepared.offsets, prepared.categories)
        return self._built[key]


@dataclasses.dataclass(frozen=True)
class Head:
    """A trained head and how long its training took."""

    params: dict
    model: object
    seconds: float
    info: dict | None = None  # e.g. early stopping's chosen steps
    corpus: Corpus | None = None  # the inputs it reads (None: the runner's corpus of section heads)


def _class_weights(corpus: Corpus, labelled: np.ndarray, heads: HeadParams):
    return class_weights(corpus.labels[word_rows(corpus.offsets, labelled)], len(corpus.categories), heads)


def train_ner(corpus: Corpus, labelled: np.ndarray, seed: int, heads: HeadParams, epochs: int) -> Head:
    """BERT NER as the pipeline trains it: CE for ``epochs`` passes over the labelled sentences."""
    model = _model(corpus, heads)
    start = time.perf_counter()
    params, _ = train_supervised(
        None,
        corpus.features,
        corpus.labels,
        corpus.offsets,
        labelled,
        model=model,
        epochs=epochs,
        batch_sentences=heads.batch_sentences,
        learning_rate=heads.learning_rate,
        weight_decay=heads.weight_decay,
        class_weights=_class_weights(corpus, labelled, heads),
        seed=seed,
    )
    return Head(params, model, time.perf_counter() - start, corpus=corpus)


def _model(corpus: Corpus, heads: HeadParams):
    """The head ``heads`` describes (MLP or BiLSTM) for the corpus's inputs."""
    return build_model(heads, corpus.categories)


def _common(corpus: Corpus, labelled, seed, heads: HeadParams) -> dict:
    return dict(
        batch_sentences=heads.batch_sentences,
        weight_decay=heads.weight_decay,
        class_weights=_class_weights(corpus, labelled, heads),
        seed=seed,
    )


def train_ner_converged(
    corpus: Corpus, labelled: np.ndarray, seed: int, heads: HeadParams, stopping: EarlyStopping
) -> Head:
    """BERT NER trained to convergence as the pipeline's bert_ner_es: early stopping, then a refit."""
    model = _model(corpus, heads)
    start = time.perf_counter()

    def true_tags_of(sentence_ids):
        return [corpus.tags[row] for row in word_rows(corpus.offsets, sentence_ids)]

    params, info = train_converged(
        corpus.features,
        corpus.labels,
        corpus.offsets,
        labelled,
        true_tags_of,
        corpus.categories,
        stopping,
        model=model,
        learning_rate=heads.learning_rate,
        **_common(corpus, labelled, seed, heads),
    )
    return Head(params, model, time.perf_counter() - start, info, corpus)


def train_self(
    corpus: Corpus,
    teacher: Head,
    labelled: np.ndarray,
    unlabelled: np.ndarray,
    seed: int,
    heads: HeadParams,
    recipe: SelfTraining,
) -> Head:
    """Self-training (or its matched control) from ``teacher``, as the pipeline runs it."""
    start = time.perf_counter()
    params, history = train_self_training(
        teacher.params,
        corpus.features,
        corpus.labels,
        corpus.offsets,
        labelled,
        unlabelled,
        recipe,
        model=teacher.model,
        **_common(corpus, labelled, seed, heads),
    )
    return Head(
        params,
        teacher.model,
        time.perf_counter() - start,
        {"pseudo_share": [round(h["pseudo_share"], 4) for h in history]},
        corpus,
    )


def train_kl(
    corpus: Corpus,
    start_from: Head,
    labelled: np.ndarray,
    unlabelled: np.ndarray,
    seed: int,
    heads: HeadParams,
    phase: KLPhase,
) -> Head:
    """A KL model from ``start_from``'s weights, as the pipeline's train stage runs ``phase``."""
    start = time.perf_counter()
    params, _ = train_kl_phase(
        start_from.params,
        corpus.features,
        corpus.labels,
        corpus.offsets,
        labelled,
        unlabelled,
        phase,
        model=start_from.model,
        batch_sentences=heads.batch_sentences,
        weight_decay=heads.weight_decay,
        class_weights=_class_weights(corpus, labelled, heads),
        seed=seed,
    )
    return Head(params, start_from.model, time.perf_counter() - start, corpus=corpus)


def score(corpus: Corpus, head: Head, sentences: np.ndarray) -> dict:
    """Word and entity metrics of ``head`` on ``sentences`` (test or validation ids)."""
    rows = word_rows(corpus.offsets, sentences)
    predicted, _, _ = predict_categories(
        head.params, head.model, corpus.features[rows], sentence_starts(corpus.offsets, sentences)
    )
    info = {"train_seconds": round(head.seconds, 3)}
    if head.info and "best_step" in head.info:
        info["best_step"] = head.info["best_step"]
    if head.info and "pseudo_share" in head.info:
        info["pseudo_share"] = head.info["pseudo_share"]
    return score_categories(corpus, predicted, sentences, info)


def score_categories(corpus: Corpus, predicted: np.ndarray, sentences: np.ndarray, info: dict) -> dict:
    """Word and entity metrics of the predicted category ids of the words of ``sentences``, with ``info``."""
    rows = word_rows(corpus.offsets, sentences)
    metrics = word_metrics(corpus.labels[rows], predicted, corpus.categories)
    lengths = np.diff(corpus.offsets)[sentences]
    entity = entity_f1_fast(
        [corpus.tags[r] for r in rows], predicted, corpus.categories, np.concatenate([[0], np.cumsum(lengths)])
    )
    return {
        "accuracy": metrics["accuracy"],
        "accuracy_no_o": metrics["accuracy_no_o"],
        "mean_f1": metrics["mean_f1"],
        "entity_f1": entity["f1"],
        "f1": {c: v["f1"] for c, v in metrics["per_category"].items()},
        "predicted_share": {c: v["predicted_share"] for c, v in metrics["per_category"].items()},
        **info,
    }


def converged_heads(params_path: str, metrics_dir: str) -> HeadParams:
    """bert_ner_es's head settings; with ``heads.kind: auto`` the ones its train stage chose
    (metrics/choice/bert_ner_es.json)."""
    heads = model_settings("bert_ner_es", params_path).heads
    if heads.kind != "auto":
        return heads
    path = Path(metrics_dir) / "choice" / "bert_ner_es.json"
    if not path.exists():
        raise ValueError(f"{path}: not found; bert_ner_es has heads.kind auto: run `dvc repro` first")
    return HeadParams(**json.loads(path.read_text(encoding="utf-8"))["heads"])


class Runner:
    """The corpus, splits and head recipes (from params.yaml) shared by every experiment."""

    def __init__(
        self, params: object, params_path: str, prepared_dir: str, cache_path: str, metrics_dir: str = "metrics"
    ):
        self.params = params  # the experiments' own section (experiments.cli.ExperimentParams)
        self.extract = load_section(ExtractParams, "extract", params_path)
        self.heads = load_section(HeadParams, "heads", params_path)  # the seed's rows: bert_ner and its KL models
        # Our rows: bert_ner_es's head settings (heads.kind auto: the pipeline's choice, metrics/choice/).
        self.converged_heads = converged_heads(params_path, metrics_dir)
        self.kl = load_section(KLParams, "kl", params_path)
        self.epochs = load_section(SupervisedParams, "bert_ner", params_path).epochs
        self.kl_models = {
            name: load_section(KLModelParams, f"kl_models.{name}", params_path)
            for name in read_params(params_path).get("kl_models") or {}
        }
        # The seed's KL rows start from the 20-epoch head; the validated ones from the converged head.
        self.seed_models = [m for m, r in self.kl_models.items() if r.init == "bert_ner" and not r.control]
        self.validated_models = [m for m, r in self.kl_models.items() if r.init == "bert_ner_es" and not r.control]
        self.stopping = load_section(EarlyStoppingParams, "early_stopping", params_path)
        self.self_training = SelfTraining(
            **dataclasses.asdict(load_section(SelfTrainingParams, "self_training", params_path))
        )
        self.prepared = read_prepared(prepared_dir)
        self.features, self.fingerprint = load_inputs(
            cache_path, self.extract, self.prepared.meta["words_sha256"], piece_ids=False
        )
        self.corpora = Corpora(self.prepared, self.features)
        self.corpus = self.corpus_for(self.heads)
        self.split = self.prepared.split
        self.prior = explicit_prior(self.kl.prior, self.prepared.categories)
        # Every selection holds out this part: the split early stopping uses, seed 0.
        labelled = self.split["labelled"]
        self.train_part, self.validation_part = validation_split(labelled, self.params.validation_fraction)
        self.non_test = np.sort(np.concatenate([self.split["labelled"], self.split["unlabelled"]]))

    def corpus_for(self, heads: HeadParams) -> Corpus:
        """The corpus with the inputs ``heads`` reads, built once."""
        return self.corpora.for_heads(heads)

    def ner(self, labelled, seed, corpus: Corpus | None = None, **overrides) -> Head:
        """BERT NER with the ``heads`` section, ``overrides`` (e.g. dropout=0.3) replacing its values."""
        heads = dataclasses.replace(self.heads, **overrides)
        return train_ner(corpus or self.corpus_for(heads), labelled, seed, heads, self.epochs)

    def converged(self, labelled, seed, **overrides) -> Head:
        """BERT NER trained to convergence as bert_ner_es is (its head settings), ``overrides`` replacing them."""
        heads = dataclasses.replace(self.converged_heads, **overrides)
        return train_ner_converged(self.corpus_for(heads), labelled, seed, heads, self.stopping)

    def self_trained(self, teacher: Head, labelled, unlabelled, seed, **overrides) -> Head:
        """Self-training from ``teacher`` with the ``self_training`` section, ``overrides`` of its fields."""
        return train_self(
            teacher.corpus or self.corpus,
            teacher,
            labelled,
            unlabelled,
            seed,
            self.heads,
            dataclasses.replace(self.self_training, **overrides),
        )

    def phase(self, model: str, **overrides) -> KLPhase:
        """KL model ``model``'s phase as the pipeline runs it, with ``overrides`` of KLPhase fields."""
        return dataclasses.replace(kl_phase(self.kl_models[model], self.kl, self.prior), **overrides)

    def kl_heads(
        self, ner: Head, labelled, unlabelled, seed, models=None, heads: dict | None = None, **overrides
    ) -> dict:
        """Each seed KL model of params.yaml (or ``models``) trained from ``ner``; {model: Head}.

        ``heads`` overrides values of the ``heads`` section, ``overrides`` fields of the phase.
        """
        head_params = dataclasses.replace(self.heads, **(heads or {}))
        corpus = ner.corpus or self.corpus  # the inputs of the head it starts from
        return {
            model: train_kl(corpus, ner, labelled, unlabelled, seed, head_params, self.phase(model, **overrides))
            for model in (self.seed_models if models is None else models)
        }

    def score(self, head: Head, sentences) -> dict:
        return score(head.corpus or self.corpus, head, sentences)

    def crf_peer(self, labelled, sentences) -> dict:
        """The classic CRF peer (bench/peers.py: hand features, no encoder) trained on the ``labelled`` sentences'
        words and BIO tags, scored on ``sentences`` as a head is (its tags' categories)."""
        words, tags = self.prepared.words, self.prepared.tags
        start = time.perf_counter()
        crf = train_crf([words[i] for i in labelled], [tags[i] for i in labelled])
        seconds = time.perf_counter() - start
        predicted = crf.predict([sentence_features(words[i]) for i in sentences])
        index = {category: i for i, category in enumerate(self.corpus.categories)}
        categories = np.asarray([index[category_of(tag)] for sentence in predicted for tag in sentence], np.int32)
        return score_categories(self.corpus, categories, sentences, {"train_seconds": round(seconds, 3)})
