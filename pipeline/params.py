"""Every section of params.yaml as a frozen dataclass, and the stages' shared entry point.

A stage calls ``load_section(Cls, "section")``: unknown keys are an error, so a
typo in params.yaml never silently falls back to a default. Sections that
configure a library use the library's own dataclass (``features.settings`` for
``extract``, ``heads.settings`` for the heads); the others are defined here.
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
    "ExtractParams", "PrepareParams", "UnlabelledTextParams", "enable_compilation_cache", "load_section",
    "read_params", "run_main",
]  # fmt: skip

T = TypeVar("T")
UNLABELLED_TEXT_MODES = ("none", "add", "replace")


@dataclasses.dataclass(frozen=True)
class PrepareParams:
    """Section ``prepare``."""

    corpus: str = "data/raw/ner_dataset.csv.zip"  # Kaggle CSV/zip or CoNLL file
    format: str = "auto"  # kaggle | conll | auto (.csv/.zip -> kaggle)
    encoding: str = "auto"  # auto: utf-8 if valid, latin-1 only if it holds no utf-8 at all (docs/own-data.md)
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


def read_params(path: str | Path = "params.yaml") -> dict:
    """The whole params file as a dict (``yaml.safe_load``; an empty file is ``{}``)."""
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle) or {}


def load_section(
    cls: type[T], section: str, path: str | Path = "params.yaml", overrides: dict | None = None, params=None
) -> T:
    """Build ``cls`` from ``params.yaml[section]`` (plus ``overrides``); unknown keys are an error.

    ``section`` may be a dotted path into nested mappings (``kl_models.bert_dd_kl``); ``params``, the
    file's contents when the caller has read them already (``path`` then only names it in errors).
    """
    values = read_params(path) if params is None else params
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
    # JAX reports at INFO each backend it probes and lacks ("Unable to initialize backend 'tpu'") on every
    # machine without one: not a diagnostic of ours. Its warnings still show.
    logging.getLogger("jax").setLevel(logging.WARNING)


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
