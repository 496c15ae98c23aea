"""Every section of params.yaml as a frozen dataclass, and the stages' shared entry point.

A stage calls ``load_section(Cls, "section")``: unknown keys are an error, so a
typo in params.yaml never silently falls back to a default. Sections that
configure a library (``extract``) use the library's own dataclass (``features.settings``); the others
are defined here.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from pathlib import Path
from typing import TypeVar

import yaml

from features.settings import ExtractParams

__all__ = [
    "EarlyStoppingParams", "ExtractParams", "HeadParams", "KLModelParams", "KLParams", "PrepareParams",
    "SelfTrainingModelParams", "SelfTrainingParams", "SupervisedParams", "UnlabelledTextParams",
    "enable_compilation_cache", "load_section", "read_params", "run_main",
]  # fmt: skip

T = TypeVar("T")
UNLABELLED_TEXT_MODES = ("none", "add", "replace")
HEAD_KINDS = ("mlp", "bilstm")


@dataclasses.dataclass(frozen=True)
class PrepareParams:
    """Section ``prepare``."""

    corpus: str = "data/raw/ner_dataset.csv.zip"  # Kaggle CSV/zip or CoNLL file
    format: str = "auto"  # kaggle | conll | auto (.csv/.zip -> kaggle)
    encoding: str = "auto"  # auto: utf-8 when the file is valid utf-8, else latin-1 (Kaggle as shipped)
    word_column: int | str | None = None  # None: CoNLL's first column, Kaggle's 'Word'; an index or a CSV name
    tag_column: int | str | None = None  # None: CoNLL's last column, Kaggle's 'Tag'; e.g. 1 for `word tag 0`
    tag_scheme: str = "auto"  # bio | plain | auto (bio when every tag is O/B-x/I-x; BIOES/IOB1 -> BIO)
    categories: list | None = None  # declare the categories to refuse any other; None: from data
    test_corpus: str | None = None  # a separate CoNLL/Kaggle test file; None: split the corpus
    test_size: float | str = 9600  # sentences (or a fraction < 1) drawn as the test split
    labelled_size: float | str = 2560  # sentences, a fraction (< 1, or 1.0) or 'all' drawn as labelled
    labelled_file: str | None = None  # sentence numbers (1-based) forming the labelled split
    seed: int = 0  # seed of the split; fixed so every head sees the same split


@dataclasses.dataclass(frozen=True)
class UnlabelledTextParams:
    """Section ``unlabelled_text``."""

    path: str = "examples/chatbot/unlabelled.txt"  # one sentence per line; a DVC dep, so it must exist
    mode: str = "none"  # none: not used | add: to the corpus's unlabelled split | replace: it
    encoding: str = "utf-8"  # of the text file; any codec whose newline is the byte 0x0a

    def __post_init__(self):
        if self.mode not in UNLABELLED_TEXT_MODES:
            raise ValueError(
                f"unlabelled_text.mode {self.mode!r}: use one of "
                f"{', '.join(UNLABELLED_TEXT_MODES)} (quote 'none' if YAML reads it otherwise)"
            )


@dataclasses.dataclass(frozen=True)
class HeadParams:
    """Section ``heads``: shared by every head."""

    batch_sentences: int = 128  # the seed's batch of sentences
    learning_rate: float = 1e-3  # Adam, as in the seed
    hidden: tuple = (256, 128, 64)  # the seed's MLP
    latent_dim: int = 32  # the plotted latent space
    dropout: float = 0.0  # the seed used none
    weight_decay: float = 0.0  # L2 via AdamW; the seed used none
    class_weighting: bool = False  # inverse-frequency class weights in CE
    kind: str = "mlp"  # mlp: the seed's, word by word | bilstm: a BiLSTM over the sentence first
    shape_flags: bool = False  # append features/shape.py's 8 word-shape flags: the encoders are uncased
    neighbour_flags: bool = False  # with shape_flags: the previous and next words' flags too (24 columns)
    lstm_units: int = 128  # bilstm: units per direction
    row_words: int = 32  # bilstm: a longer sentence is read in windows of this many words

    def __post_init__(self):
        if self.kind not in HEAD_KINDS:
            raise ValueError(f"heads.kind {self.kind!r}: use one of {', '.join(HEAD_KINDS)}")
        if self.kind == "bilstm" and not self.shape_flags:
            raise ValueError(
                "heads.kind bilstm reads sentence starts from the shape flags: set heads.shape_flags: true"
            )
        if self.neighbour_flags and not self.shape_flags:
            raise ValueError("heads.neighbour_flags adds the neighbours' shape flags: set heads.shape_flags: true")


SUPERVISED_SCHEDULES = ("epochs", "early_stopping")


@dataclasses.dataclass(frozen=True)
class SupervisedParams:
    """Sections ``baseline``, ``bert_ner`` and ``bert_ner_es`` (supervised heads)."""

    epochs: int = 20  # schedule epochs: the seed's 20 passes (400 steps at 2,560 sentences)
    embed_dim: int = 784  # baseline only: the seed's embedding size
    schedule: str = "epochs"  # epochs: the seed's; early_stopping: by steps, section early_stopping
    head_settings: dict | None = None  # this model's changes to section heads (our rows: shape_flags: true)

    def __post_init__(self):
        if self.schedule not in SUPERVISED_SCHEDULES:
            raise ValueError(f"supervised schedule {self.schedule!r}: use one of {', '.join(SUPERVISED_SCHEDULES)}")


@dataclasses.dataclass(frozen=True)
class EarlyStoppingParams:
    """Section ``early_stopping``: supervised heads trained to convergence (heads.early_stopping)."""

    max_steps: int = 3000  # a cap; the stop comes first (validation chose ~300-1,500 steps)
    eval_every: int = 50  # steps between validation entity-F1 scores
    patience: int = 6  # scores without a new best before stopping (300 steps)
    validation_fraction: float = 0.2  # of the labelled split, held out for the criterion only
    validation_seed: int = 0  # the same held-out part for every head seed
    refit: bool = True  # then retrain on the whole labelled split for the chosen steps


@dataclasses.dataclass(frozen=True)
class KLParams:
    """Section ``kl``: the validated defaults of the KL-phase models (experiments ``selection``)."""

    learning_rate: float = 1e-3  # CE (and joint) step of the phase: the supervised phase's step size
    kl_learning_rate: float = 1e-4  # the KL step's own Adam; the seed's was 1e-3 (= the CE step's)
    target_gradient: bool = True  # confidence KL: the seed's gradient through DEC's target won
    prior: str | list | dict = "labelled"  # category shares of the labelled split, or explicit
    weight: float = 1.0  # KL scale (alternating) or per-word lambda (joint)
    schedule: str = "alternating"  # alternating: the seed's KL step + CE step; joint: CE + w*KL


@dataclasses.dataclass(frozen=True)
class KLModelParams:
    """One entry of section ``kl_models``: a model's kind and rounds, and what it changes of ``kl``."""

    kind: str  # data_distribution | confidence | both | entropy
    rounds: int  # rounds of (KL step, CE step)
    init: str = "bert_ner"  # the supervised head it starts from (same seed)
    control: bool = False  # the matched control: the same rounds and batches, no KL step
    kl_learning_rate: float | None = None  # None: kl.kl_learning_rate (the seed rows set 1e-3)
    target_gradient: bool | None = None  # None: kl.target_gradient
    schedule: str | None = None  # None: kl.schedule
    weight: float | None = None  # None: kl.weight


@dataclasses.dataclass(frozen=True)
class SelfTrainingParams:
    """Section ``self_training``: the validated defaults of self-training (heads.self_training)."""

    rounds: int = 3  # teacher -> student generations
    steps: int = 100  # steps per round: one labelled + one pseudo-labelled batch each
    threshold: float = 0.9  # chosen on validation (experiments ``selection``)
    per_category: bool = False  # global threshold, or the same top share of each category
    weight: float = 1.0  # of the pseudo-label CE
    unlabelled_sentences: int = 5120  # the pool the teacher labels
    learning_rate: float = 1e-3  # the supervised phase's step size


@dataclasses.dataclass(frozen=True)
class SelfTrainingModelParams:
    """One entry of section ``self_training_models``."""

    init: str = "bert_ner_es"  # the teacher: the converged supervised head of the same seed
    control: bool = False  # the matched control: same batches and steps, no pseudo-labels


def read_params(path: str | Path = "params.yaml") -> dict:
    """The whole params file as a dict (``yaml.safe_load``; an empty file is ``{}``)."""
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle) or {}


def load_section(cls: type[T], section: str, path: str | Path = "params.yaml", overrides: dict | None = None) -> T:
    """Build ``cls`` from ``params.yaml[section]`` (plus ``overrides``); unknown keys are an error.

    ``section`` may be a dotted path into nested mappings (``kl_models.bert_dd_kl``).
    """
    values = read_params(path)
    for key in section.split("."):
        values = (values or {}).get(key) if isinstance(values, dict) else None
    values = dict(values or {})
    values.update(overrides or {})
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise SystemExit(
            f"{path}: unknown key(s) in section '{section}': {', '.join(unknown)} (known: {', '.join(sorted(known))})"
        )
    missing = sorted(
        f.name for f in dataclasses.fields(cls) if f.name not in values and f.default is dataclasses.MISSING
    )
    if missing:
        raise SystemExit(f"{path}: section '{section}' lacks required key(s): {', '.join(missing)}")
    return cls(**values)


def setup_logging() -> None:
    """Progress and diagnostics go to stderr."""
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )


def run_main(main) -> None:
    """Run a stage's ``main``; a user-facing error becomes one line on stderr and exit status 1."""
    setup_logging()
    try:
        main()
    except (ValueError, FileNotFoundError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(1) from None


def enable_compilation_cache(directory: str = ".jax_cache") -> None:
    """Reuse XLA executables across stage processes: 25 heads compile the same steps."""
    import jax

    jax.config.update("jax_compilation_cache_dir", directory)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
