"""The head sections of params.yaml as frozen dataclasses, and one model's resolved settings.

The head library's own settings, in a module of their own (as ``features.settings``
is for extraction), typed and checked with its schema (strict types, ranges, defaults):
``pipeline.params`` reads them from params.yaml, rejecting unknown keys; the
library takes them as they are. ``ModelSettings`` is
everything one model of the pipeline trains with, resolved once per stage.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Literal

from pydantic import Field, Strict, ValidationError

from features.settings import Count, Counts, Name, Positive, PositiveNumber, SettingError, Share, explain, settings

HEAD_KINDS = ("mlp", "bilstm", "auto")
OUTPUTS = ("softmax", "crf")
SUPERVISED = ("baseline", "bert_ner", "bert_ner_es", "bert_ner_rare")  # the models trained from scratch
NonNegative = Annotated[float, Field(ge=0)]
Positives = Annotated[tuple[Positive, ...], Strict(False)]
Prior = Literal["labelled"] | Annotated[list[NonNegative], Field(min_length=1)] | dict[str, NonNegative]


@settings
class HeadParams:
    """Section ``heads``: shared by every head."""

    batch_sentences: Positive = 128  # the seed's batch of sentences
    learning_rate: PositiveNumber = 1e-3  # Adam, as in the seed
    hidden: Positives = (256, 128, 64)  # the seed's MLP
    latent_dim: Positive = 32  # the plotted latent space
    dropout: Share = 0.0  # the seed used none
    weight_decay: NonNegative = 0.0  # L2 via AdamW; the seed used none
    class_weighting: bool = False  # inverse-frequency class weights in CE (a CRF head's: in its word_loss)
    class_weight_power: PositiveNumber = 1.0  # weights proportional to 1 / count ** power (0.5: square root)
    word_loss: NonNegative = 0.0  # a CRF head: weight of a per-word cross entropy of its emissions added to its
    # sequence loss, class-weighted under class_weighting, so that rare categories are still decoded; 0: none
    kind: str = "mlp"  # mlp: the seed's, word by word | bilstm: a BiLSTM over the sentence first | auto: chosen
    # on validation among section auto_head's candidates (heads.auto)
    shape_flags: bool = False  # append features/shape.py's 8 word-shape flags: the encoders are uncased
    neighbour_flags: bool = False  # with shape_flags: the previous and next words' flags too (24 columns)
    lstm_units: Positive = 128  # bilstm: units per direction
    row_words: Positive = 32  # bilstm: a longer sentence is read in windows of this many words
    output: str = "softmax"  # softmax: each word's category alone | crf: a linear-chain CRF over BIO labels
    word_forms: int = 0  # width of the learned word-form embedding (features.word_forms); 0: none
    word_form_rows: int = 4096  # hash buckets per word-form attribute
    clusters: Counts = ()  # k of each set of k-means clusters of the cached vectors (features.clusters); (): none
    cluster_width: int = 16  # embedding width of a cluster id
    char_cnn: int = 0  # filters of a character CNN over each word (heads.chars; Ma and Hovy's 30); 0: none

    def __post_init__(self):
        for key, allowed in (("kind", HEAD_KINDS), ("output", OUTPUTS)):
            if getattr(self, key) not in allowed:
                raise SettingError("heads", key, f" {getattr(self, key)!r}: use one of {', '.join(allowed)}")
        if self.output == "crf" and self.class_weighting and not self.word_loss:
            raise SettingError(
                "heads", "class_weighting", " weights a per-word loss: with output crf set heads.word_loss > 0"
            )
        if self.word_loss and self.output != "crf":
            raise SettingError(
                "heads", "word_loss", f" {self.word_loss}: adds a per-word loss to a CRF's; output {self.output!r} "
                "has no other"
            )  # fmt: skip
        if any(k < 2 for k in self.clusters):
            raise SettingError("heads", "clusters", f": each k must be >= 2, got {list(self.clusters)}")
        if self.cluster_width < 1:
            raise SettingError("heads", "cluster_width", f" {self.cluster_width}: must be >= 1")
        if self.word_forms < 0:
            raise SettingError("heads", "word_forms", f" must be >= 0 (0: none), got {self.word_forms}")
        if self.char_cnn < 0:
            raise SettingError("heads", "char_cnn", f" must be >= 0 (0: none), got {self.char_cnn}")
        if self.word_form_rows < 1:
            raise SettingError("heads", "word_form_rows", f" {self.word_form_rows}: must be >= 1")
        if self.neighbour_flags and not self.shape_flags:
            raise SettingError(
                "heads", "neighbour_flags", " adds the neighbours' shape flags: set heads.shape_flags: true"
            )

    def as_config(self) -> dict:
        """The fields as a head's saved config holds them: tuples as lists (msgpack has no tuple)."""
        return {
            key: list(value) if isinstance(value, tuple) else value for key, value in dataclasses.asdict(self).items()
        }


SUPERVISED_SCHEDULES = ("epochs", "early_stopping")
Schedule = Literal["alternating", "joint"]  # of a KL phase: the seed's KL step + CE step | one step on CE + w * KL


@settings
class SupervisedParams:
    """Sections ``baseline``, ``bert_ner``, ``bert_ner_es`` and ``bert_ner_rare`` (supervised heads)."""

    epochs: Positive = 20  # schedule epochs: the seed's 20 passes (400 steps at 2,560 sentences)
    embed_dim: Positive = 784  # baseline only: the seed's embedding size
    schedule: str = "epochs"  # epochs: the seed's; early_stopping: by steps, section early_stopping
    head_settings: dict[str, object] | None = None  # this model's changes to section heads (ours: shape_flags)

    def __post_init__(self):
        if self.schedule not in SUPERVISED_SCHEDULES:
            raise SettingError(
                "supervised", "schedule", f" {self.schedule!r}: use one of {', '.join(SUPERVISED_SCHEDULES)}"
            )
        unknown = sorted(set(self.head_settings or {}) - {field.name for field in dataclasses.fields(HeadParams)})
        if unknown:
            raise SettingError("supervised", "head_settings", f": unknown head setting(s) {', '.join(unknown)}")


@settings
class EarlyStoppingParams:
    """Section ``early_stopping``: supervised heads trained to convergence (heads.early_stopping)."""

    max_steps: int = 3000  # a cap; the stop comes first (validation chose ~300-1,500 steps)
    eval_every: int = 50  # steps between validation entity-F1 scores
    patience: int = 6  # scores without a new best before stopping (300 steps)
    validation_fraction: float = 0.2  # of the labelled split, held out for the criterion only
    validation_seed: Count = 0  # the same held-out part for every head seed
    refit: bool = True  # then retrain on the whole labelled split for the chosen steps

    def __post_init__(self):
        for key in ("max_steps", "eval_every", "patience"):
            if getattr(self, key) < 1:
                raise SettingError("early_stopping", key, f" {getattr(self, key)}: must be >= 1")
        if not 0 < self.validation_fraction < 1:
            raise SettingError(
                "early_stopping", "validation_fraction", f" must lie in (0, 1), got {self.validation_fraction}"
            )


@settings
class KLParams:
    """Section ``kl``: the validated defaults of the KL-phase models (experiments ``selection``)."""

    learning_rate: PositiveNumber = 1e-3  # CE (and joint) step of the phase: the supervised phase's step size
    kl_learning_rate: PositiveNumber = 1e-4  # the KL step's own Adam; the seed's was 1e-3 (= the CE step's)
    target_gradient: bool = True  # confidence KL: the seed's gradient through DEC's target won
    prior: Prior = "labelled"  # category shares of the labelled split, or explicit (a list or {category: share})
    weight: NonNegative = 1.0  # KL scale (alternating) or per-word lambda (joint)
    schedule: Schedule = "alternating"  # alternating: the seed's KL step + CE step; joint: CE + w*KL


@settings
class KLModelParams:
    """One entry of section ``kl_models``: a model's kind and rounds, and what it changes of ``kl``."""

    kind: Literal["data_distribution", "confidence", "both", "entropy"]  # the KL term (heads.losses)
    rounds: Positive  # rounds of (KL step, CE step)
    init: Name = "bert_ner"  # the supervised head it starts from (same seed)
    control: bool = False  # the matched control: the same rounds and batches, no KL step
    kl_learning_rate: PositiveNumber | None = None  # None: kl.kl_learning_rate (the seed rows set 1e-3)
    target_gradient: bool | None = None  # None: kl.target_gradient
    schedule: Schedule | None = None  # None: kl.schedule
    weight: NonNegative | None = None  # None: kl.weight


@settings
class SelfTrainingParams:
    """Section ``self_training``: the validated defaults of self-training (heads.self_training)."""

    rounds: Positive = 3  # teacher -> student generations
    steps: Positive = 100  # steps per round: one labelled + one pseudo-labelled batch each
    threshold: Annotated[float, Field(ge=0, le=1)] = 0.9  # chosen on validation (experiments ``selection``)
    per_category: bool = False  # global threshold, or the same top share of each category
    weight: NonNegative = 1.0  # of the pseudo-label CE
    unlabelled_sentences: Positive = 5120  # the pool the teacher labels
    learning_rate: PositiveNumber = 1e-3  # the supervised phase's step size


@settings
class SelfTrainingModelParams:
    """One entry of section ``self_training_models``."""

    init: Name = "bert_ner_es"  # the teacher: the converged supervised head of the same seed
    control: bool = False  # the matched control: same batches and steps, no pseudo-labels


@settings
class AutoHeadParams:
    """Section ``auto_head``: the candidates of ``heads.kind: auto``, each a name and its changes to the head
    settings, and the seeds each is scored with (heads.auto)."""

    candidates: dict[str, dict[str, object] | None] = dataclasses.field(
        default_factory=lambda: {"mlp": {"kind": "mlp"}}
    )
    seeds: Counts = (0,)

    def __post_init__(self):
        known = {field.name for field in dataclasses.fields(HeadParams)}
        if not self.candidates:
            raise SettingError("auto_head", "candidates", ": give at least one candidate, a name and its head settings")
        for name, changes in self.candidates.items():
            unknown = sorted(set(changes or {}) - known)
            if unknown:
                raise SettingError("auto_head", f"candidates.{name}", f": unknown head setting(s) {unknown}")
            if (changes or {}).get("kind", "auto") == "auto":
                raise SettingError("auto_head", f"candidates.{name}", ": name its kind (mlp or bilstm)")
        if not self.seeds or len(set(self.seeds)) < len(self.seeds):
            raise SettingError("auto_head", "seeds", f" {list(self.seeds)}: give at least one seed, each once")


def merged(heads: HeadParams, changes: dict | None, where: str) -> HeadParams:
    """``heads`` with ``changes`` (a model's head_settings, an auto_head candidate), every key checked; a refusal
    is one line naming ``where`` the changes are given (``params.yaml: bert_ner_es.head_settings``)."""
    try:
        return dataclasses.replace(heads, **(changes or {}))
    except ValidationError as error:
        raise ValueError(explain(error, HeadParams, where, changes or {})) from None


@dataclasses.dataclass(frozen=True)
class ModelSettings:
    """What one model trains with: its head settings and the one recipe of its kind (the others None)."""

    model_id: str
    heads: HeadParams  # section heads, with a supervised model's head_settings, or its init head's
    supervised: SupervisedParams | None = None  # baseline, bert_ner, bert_ner_es
    early_stopping: EarlyStoppingParams | None = None  # a supervised model with schedule early_stopping
    auto_head: AutoHeadParams | None = None  # a supervised model with heads.kind auto: its candidates
    kl_model: KLModelParams | None = None  # an entry of kl_models...
    kl: KLParams | None = None  # ...and section kl, its defaults
    self_training_model: SelfTrainingModelParams | None = None  # an entry of self_training_models...
    self_training: SelfTrainingParams | None = None  # ...and section self_training

    @property
    def init(self) -> str | None:
        """The model whose head of the same seed this one starts from (None: from scratch)."""
        recipe = self.kl_model or self.self_training_model
        return None if recipe is None else recipe.init

    @property
    def input_kind(self) -> str:
        """``piece_ids`` for the baseline's embedding head, ``features`` for every other."""
        return "piece_ids" if self.model_id == "baseline" else "features"


# heads.acquisition's strategies of choosing sentences to label
Strategy = Literal["random", "least_confidence", "mnlp", "entropy", "bald", "diversity"]


@settings
class ActiveParams:
    """Section ``active``: which unlabelled sentences the select stage asks to label next (heads.acquisition)."""

    model: Name = "bert_ner_es"  # whose head scores the candidates
    seed: Count = 0  # which of its seeds' heads; also seeds the random draws and the ties
    strategy: Strategy = "mnlp"
    batch: Positive = 128  # sentences to label in this round
    pool: Count = 0  # candidates drawn at random to score; 0: every unlabelled sentence
    samples: Positive = 8  # bald: dropout samples
    dropout: Annotated[float, Field(gt=0, lt=1)] = 0.3  # bald: the rate, where the head was trained without
