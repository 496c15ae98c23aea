"""The pipeline's models: which exist in params.yaml, and what one of them trains with.

A model is a supervised section (``baseline``, ``bert_ner``, ``bert_ner_es``), an
entry of ``kl_models`` or one of ``self_training_models``. ``model_settings``
reads params.yaml once, refuses an unknown model before any data is read, and
validates every section the model trains with.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from heads.checkpoint import check_trained_on, head_centroids, load_head
from heads.settings import (
    SUPERVISED,
    AutoHeadParams,
    EarlyStoppingParams,
    HeadParams,
    KLModelParams,
    KLParams,
    ModelSettings,
    SelfTrainingModelParams,
    SelfTrainingParams,
    SupervisedParams,
    merged,
)  # fmt: skip
from pipeline.params import load_section, read_params


def seed_head(model_dir: str | None, seed: int) -> str | None:
    """The head file of ``seed`` in a model's directory."""
    return None if model_dir is None else str(Path(model_dir) / f"seed{seed}" / "head.msgpack")


def load_init(model_dir: str | None, settings: ModelSettings, seed: int):
    """The parameters of the head ``settings``' model starts from: its init model's head of ``seed``."""
    path = seed_head(model_dir, seed)
    if path is None:
        raise ValueError(f"--init (the directory of {settings.init}'s heads, one per seed) is required")
    params, config = load_head(path)
    if config["model"] != settings.init or config["seed"] != seed:
        raise ValueError(
            f"{path}: expected {settings.init}'s head of seed {seed}, found {config['model']} seed {config['seed']}"
        )
    return params


def check_init(model_dir: str, seeds: list[int], prepared_dir: str, prepared, cache_path: str, fingerprint: dict):
    """Refuse, before any training, an init head of one of ``seeds`` trained on other categories, words, split
    or features than ``prepared`` and the cache (``fingerprint``) this model trains on."""
    for seed in seeds:
        path = seed_head(model_dir, seed)
        check_trained_on(path, load_head(path)[1], prepared_dir, prepared, cache_path, fingerprint)


def init_centroids(model_dir: str | None, settings: ModelSettings, seed: int) -> list | None:
    """The centroids of the head ``settings``' model starts from (None: no init, or a head without clusters)."""
    if settings.init is None or not settings.heads.clusters:
        return None
    path = seed_head(model_dir, seed)
    return head_centroids(load_head(path)[1], path)


def model_settings(
    model_id: str, params_path: str, init_dir: str | None = None, first_seed: int = 0, params: dict | None = None
) -> ModelSettings:
    """``model_id``'s ModelSettings from ``params_path`` (``params``: its contents, if read already); a model
    that starts from another head takes that head's settings (from ``init_dir``'s head of ``first_seed``)."""
    params = read_params(params_path) if params is None else params

    def section(cls, name):
        return load_section(cls, name, params_path, params=params)

    kl_models, self_training_models = params.get("kl_models") or {}, params.get("self_training_models") or {}
    if model_id in SUPERVISED:
        supervised = section(SupervisedParams, model_id)
        where = f"{params_path}: {model_id}.head_settings"
        heads = merged(section(HeadParams, "heads"), supervised.head_settings, where)
        stopping = section(EarlyStoppingParams, "early_stopping") if supervised.schedule == "early_stopping" else None
        auto = section(AutoHeadParams, "auto_head") if heads.kind == "auto" else None
        for name, changes in (auto.candidates if auto else {}).items():  # each candidate's head, checked now
            merged(heads, changes, f"{params_path}: auto_head.candidates.{name}")
        if auto is not None and stopping is None:
            raise ValueError(
                f"{params_path}: {model_id}: heads.kind auto chooses on validation: use schedule early_stopping"
            )
        return ModelSettings(model_id, heads, supervised=supervised, early_stopping=stopping, auto_head=auto)
    if model_id in kl_models:
        recipe = section(KLModelParams, f"kl_models.{model_id}")
        settings = ModelSettings(model_id, HeadParams(), kl_model=recipe, kl=section(KLParams, "kl"))
    elif model_id in self_training_models:
        recipe = section(SelfTrainingModelParams, f"self_training_models.{model_id}")
        shared = section(SelfTrainingParams, "self_training")
        settings = ModelSettings(model_id, HeadParams(), self_training_model=recipe, self_training=shared)
    else:
        raise ValueError(
            f"unknown model {model_id!r}: not {', '.join(SUPERVISED)}, in kl_models "
            f"({', '.join(kl_models)}) or in self_training_models ({', '.join(self_training_models)})"
        )
    path = seed_head(init_dir, first_seed)
    if path is None:
        raise ValueError(f"--init (the directory of {recipe.init}'s heads, one per seed) is required")
    return dataclasses.replace(settings, heads=HeadParams(**load_head(path)[1]["heads"]))
