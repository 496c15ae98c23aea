"""One model's head for one seed: the data every seed shares, the schedule its settings name, its config.

The train stage reads the corpus and the cache once into ``TrainingData`` and
calls ``fit`` per seed; ``fit`` dispatches on the model's recipe
(``heads.settings.ModelSettings``): the seed's fixed epochs, early stopping,
the KL phase or self-training. ``head_config`` is what the saved head says
about how it was made: enough to rebuild it (``heads.build.model_from_config``)
and to refuse it with other features or categories.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from features.clusters import centroids_record, fit_cluster_centroids
from features.inputs import add_unlabelled_text, baseline_vocabulary, head_inputs
from heads.batches import word_rows
from heads.build import build_model
from heads.early_stopping import train_converged
from heads.losses import class_weights, explicit_prior
from heads.self_training import SelfTraining, train_self_training
from heads.settings import ModelSettings
from heads.train import kl_phase, train_kl_phase, train_supervised


@dataclasses.dataclass(frozen=True)
class TrainingData:
    """What every seed of one model trains from, read once."""

    inputs: object  # (W, D) the head's inputs (cache view + shape flags), or (W,) the baseline's embedding rows
    labels: np.ndarray  # (W,) the labelled split's categories, -1 on every other word
    offsets: np.ndarray  # (S+1,) sentence bounds of the rows of inputs (extra text's after the corpus's)
    labelled: np.ndarray  # ids of the labelled sentences
    unlabelled: np.ndarray  # ids of the sentences of the unlabelled batches
    categories: list[str]
    tags: list[list[str]]  # the corpus sentences' true tags: early stopping's criterion reads its held-out part's
    class_weights: np.ndarray | None  # heads.losses.class_weights of the labelled words (class_weighting, word_loss)
    vocabulary: np.ndarray | None = None  # the baseline's first-piece ids, embedding rows 1..V
    unlabelled_text: dict | None = None  # what extra text was added, if any
    centroids: list | None = None  # heads.clusters: the (k, D) centroids the cluster ids were assigned by

    @property
    def input_dim(self) -> int:
        """Columns of a feature head's inputs (0 for piece ids)."""
        return int(self.inputs.shape[1]) if len(self.inputs.shape) == 2 else 0


def training_data(settings: ModelSettings, prepared, word_inputs, centroids=None) -> TrainingData:
    """``prepared`` (data.prepared_io.Prepared) and its words' cached inputs, as ``settings``' head reads them.

    With ``heads.clusters`` the words' cluster ids come from ``centroids`` (a model that starts from a head:
    that head's), else from centroids fitted here on the cached vectors of all words (labels unused).
    """
    labelled = prepared.split["labelled"]
    labelled_rows = word_rows(prepared.offsets, labelled)
    # Training sees the labels of the labelled split only; every other word is -1.
    labels = np.full(len(prepared.labels), -1, dtype=np.int32)
    labels[labelled_rows] = prepared.labels[labelled_rows]
    vocabulary = baseline_vocabulary(word_inputs[labelled_rows]) if settings.input_kind == "piece_ids" else None
    weights = class_weights(labels[labelled_rows], len(prepared.categories), settings.heads)
    if settings.heads.clusters and centroids is None:
        centroids = fit_cluster_centroids(word_inputs, settings.heads.clusters)
    return TrainingData(
        inputs=head_inputs(word_inputs, prepared.words, settings.heads, vocabulary, centroids),
        labels=labels,
        offsets=prepared.offsets,
        labelled=labelled,
        unlabelled=prepared.split["unlabelled"],
        categories=prepared.categories,
        tags=prepared.tags,
        class_weights=weights,
        vocabulary=vocabulary,
        centroids=centroids if settings.heads.clusters else None,
    )


def with_unlabelled_text(
    data: TrainingData, settings: ModelSettings, text_cache: str, mode: str, fingerprint: dict, text_words
) -> TrainingData:
    """``data`` with the extra text's sentences added to the unlabelled batches (``mode`` add or replace)."""
    inputs, offsets, labels, unlabelled, summary = add_unlabelled_text(
        data.inputs, data.offsets, data.labels, data.unlabelled, text_cache, mode, fingerprint, settings.heads,
        text_words, data.centroids,
    )  # fmt: skip
    return dataclasses.replace(
        data, inputs=inputs, offsets=offsets, labels=labels, unlabelled=unlabelled, unlabelled_text=summary
    )


def fit(settings: ModelSettings, data: TrainingData, seed: int, init_params=None):
    """Train ``settings``' head for ``seed``: (params, history). A semi-supervised model starts from ``init_params``."""
    heads = settings.heads
    vocab_size = 0 if data.vocabulary is None else len(data.vocabulary) + 1
    embed_dim = settings.supervised.embed_dim if settings.supervised else 0
    model = build_model(
        heads, data.categories, input_kind=settings.input_kind, vocab_size=vocab_size, embed_dim=embed_dim
    )
    common = dict(
        batch_sentences=heads.batch_sentences, weight_decay=heads.weight_decay, class_weights=data.class_weights,
        seed=seed,
    )  # fmt: skip
    split = (data.inputs, data.labels, data.offsets, data.labelled)
    if settings.supervised is not None and settings.early_stopping is None:
        epochs = settings.supervised.epochs
        return train_supervised(None, *split, model=model, epochs=epochs, learning_rate=heads.learning_rate, **common)
    if settings.supervised is not None:

        def true_tags_of(sentence_ids):
            return [tag for s in sentence_ids for tag in data.tags[s]]

        return train_converged(
            *split,
            true_tags_of,
            data.categories,
            settings.early_stopping,
            model=model,
            learning_rate=heads.learning_rate,
            **common,
        )
    if len(data.unlabelled) == 0:
        raise ValueError(
            f"{settings.model_id}: no unlabelled sentences: the corpus's unlabelled split is empty "
            "(prepare.labelled_size took them all); give extra text (unlabelled_text.path, "
            "mode add or replace) or lower prepare.labelled_size"
        )
    if settings.self_training is not None:
        recipe = SelfTraining(
            **dataclasses.asdict(settings.self_training), control=settings.self_training_model.control
        )
        return train_self_training(init_params, *split, data.unlabelled, recipe, model=model, **common)
    phase = kl_phase(settings.kl_model, settings.kl, explicit_prior(settings.kl.prior, data.categories))
    return train_kl_phase(init_params, *split, data.unlabelled, phase, model=model, **common)


def head_config(settings: ModelSettings, data: TrainingData, seed: int, fingerprint: dict, init: str | None) -> dict:
    """The config saved with a head: what it is, what it was trained on and how (``init``: its start's file)."""
    heads = settings.heads
    config = {
        "model": settings.model_id,
        "seed": seed,
        "categories": data.categories,
        "heads": heads.as_config(),
        "features": fingerprint,
        "input": settings.input_kind,
    }
    if settings.input_kind == "features":
        # Only a plain MLP's first kernel shows the input width (not a BiLSTM's, nor a wrapped head's).
        config["input_dim"] = data.input_dim
    if data.centroids is not None:
        config["centroids"] = [centroids_record(c) for c in data.centroids]  # predict assigns new words to them
    if settings.supervised is not None:
        if data.vocabulary is not None:
            config["vocabulary"] = data.vocabulary.tolist()
        vocab_size = 0 if data.vocabulary is None else len(data.vocabulary) + 1
        config.update(dataclasses.asdict(settings.supervised), vocab_size=vocab_size)
        if settings.early_stopping is not None:
            config["early_stopping"] = dataclasses.asdict(settings.early_stopping)
        return config
    if data.unlabelled_text is not None:
        config["unlabelled_text"] = data.unlabelled_text
    config.update(recipe=dataclasses.asdict(settings.kl_model or settings.self_training_model), init=str(init))
    if settings.self_training is not None:
        config["self_training"] = dataclasses.asdict(settings.self_training)
        return config
    config["kl"] = dataclasses.asdict(settings.kl)
    phase = kl_phase(settings.kl_model, settings.kl, None)
    config["phase"] = {k: v for k, v in dataclasses.asdict(phase).items() if k != "prior"}
    return config
