"""The head sections of params.yaml as frozen dataclasses, and one model's resolved settings.

The head library's own settings, in a module of their own (as ``features.settings``
is for extraction): ``pipeline.params`` reads them from params.yaml, rejecting
unknown keys; the library takes them as they are. ``ModelSettings`` is
everything one model of the pipeline trains with, resolved once per stage.
"""

from __future__ import annotations

import dataclasses

HEAD_KINDS = ("mlp", "bilstm", "auto")
OUTPUTS = ("softmax", "crf")
SUPERVISED = ("baseline", "bert_ner", "bert_ner_es")  # the models trained from scratch


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
    kind: str = "mlp"  # mlp: the seed's, word by word | bilstm: a BiLSTM over the sentence first | auto: chosen
    # on validation among section auto_head's candidates (heads.auto)
    shape_flags: bool = False  # append features/shape.py's 8 word-shape flags: the encoders are uncased
    neighbour_flags: bool = False  # with shape_flags: the previous and next words' flags too (24 columns)
    lstm_units: int = 128  # bilstm: units per direction
    row_words: int = 32  # bilstm: a longer sentence is read in windows of this many words
    output: str = "softmax"  # softmax: each word's category alone | crf: a linear-chain CRF over BIO labels
    word_forms: int = 0  # width of the learned word-form embedding (features.word_forms); 0: none
    word_form_rows: int = 4096  # hash buckets per word-form attribute
    clusters: tuple = ()  # k of each set of k-means clusters of the cached vectors (features.clusters); (): none
    cluster_width: int = 16  # embedding width of a cluster id

    def __post_init__(self):
        if self.kind not in HEAD_KINDS:
            raise ValueError(f"heads.kind {self.kind!r}: use one of {', '.join(HEAD_KINDS)}")
        if self.output not in OUTPUTS:
            raise ValueError(f"heads.output {self.output!r}: use one of {', '.join(OUTPUTS)}")
        if self.output == "crf" and self.class_weighting:
            raise ValueError("heads.class_weighting weights a per-word cross entropy: a CRF's loss is per sentence")
        if isinstance(self.clusters, (int, str)):
            raise ValueError(f"heads.clusters {self.clusters!r}: give a list of k, e.g. [64, 512]")
        if any(int(k) < 2 for k in self.clusters) or self.cluster_width < 1:
            raise ValueError("heads.clusters: each k must be >= 2, and heads.cluster_width >= 1")
        if self.word_forms < 0 or self.word_form_rows < 1:
            raise ValueError("heads.word_forms must be >= 0 (0: none) and heads.word_form_rows >= 1")
        if self.neighbour_flags and not self.shape_flags:
            raise ValueError("heads.neighbour_flags adds the neighbours' shape flags: set heads.shape_flags: true")

    def as_config(self) -> dict:
        """The fields as a head's saved config holds them: tuples as lists (msgpack has no tuple)."""
        return {
            key: list(value) if isinstance(value, tuple) else value for key, value in dataclasses.asdict(self).items()
        }


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

    def __post_init__(self):
        if self.max_steps < 1 or self.eval_every < 1 or self.patience < 1:
            raise ValueError("early_stopping: max_steps, eval_every and patience must be >= 1")
        if not 0 < self.validation_fraction < 1:
            raise ValueError(f"early_stopping.validation_fraction must lie in (0, 1), got {self.validation_fraction}")


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


@dataclasses.dataclass(frozen=True)
class AutoHeadParams:
    """Section ``auto_head``: the candidates of ``heads.kind: auto``, each a name and its changes to the head
    settings, and the seeds each is scored with (heads.auto)."""

    candidates: dict = dataclasses.field(default_factory=lambda: {"mlp": {"kind": "mlp"}})
    seeds: tuple = (0,)

    def __post_init__(self):
        known = {field.name for field in dataclasses.fields(HeadParams)}
        if not self.candidates or not isinstance(self.candidates, dict):
            raise ValueError("auto_head.candidates: give at least one candidate, a name and its head settings")
        for name, changes in self.candidates.items():
            unknown = sorted(set(changes or {}) - known)
            if not isinstance(changes, dict) or unknown:
                raise ValueError(f"auto_head.candidates.{name}: unknown head setting(s) {unknown or changes}")
            if changes.get("kind", "auto") == "auto":
                raise ValueError(f"auto_head.candidates.{name}: name its kind (mlp or bilstm)")
        if not self.seeds:
            raise ValueError("auto_head.seeds: give at least one seed")


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
