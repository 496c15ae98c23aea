"""Every section of params.yaml as a frozen, validated dataclass, and the stages' shared entry point.

A stage calls ``load_section(Cls, "section")`` before any work: each key's type and range is checked by the
schema (``features.settings``: strict, no coercion, defaults there), an unknown key is an error, so a typo
never falls back to a default, and a refusal is one line naming the file, the key, the value and what is
allowed. Sections that configure a library use the library's own dataclass
(``features.settings`` for ``extract``, ``heads.settings`` for the heads); the others are defined here.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import ValidationError

from features import settings as schema
from features.settings import ExtractParams

__all__ = [
    "ExtractParams", "ParamsError", "PrepareParams", "UnlabelledTextParams", "enable_compilation_cache",
    "load_section", "load_seeds", "read_params", "run_main",
]  # fmt: skip

T = TypeVar("T")


class ParamsError(ValueError):
    """A params file that no stage can run with: one line, naming the file and the key."""


@schema.settings
class PrepareParams:
    """Section ``prepare``."""

    corpus: schema.Name = "data/raw/ner_dataset.csv.zip"  # Kaggle CSV/zip or CoNLL file
    format: Literal["auto", "kaggle", "conll"] = "auto"  # kaggle | conll | auto (.csv/.zip -> kaggle)
    encoding: str = "auto"  # auto: utf-8 if valid, latin-1 only if it holds no utf-8 at all (docs/own-data.md)
    word_column: schema.Column = None  # None: CoNLL's first column, Kaggle's 'Word'; an index or a CSV name
    tag_column: schema.Column = None  # None: CoNLL's last column, Kaggle's 'Tag'; e.g. 1 for `word tag 0`
    tag_scheme: Literal["auto", "bio", "plain"] = "auto"  # bio | plain | auto (bio when every tag is O/B-x/I-x)
    categories: list[schema.Name] | None = None  # declared: any other refused; None: data
    test_corpus: schema.Name | None = None  # a separate CoNLL/Kaggle test file; None: split the corpus
    test_size: schema.Size = 9600  # sentences (or a fraction < 1) drawn as the test split
    labelled_size: schema.Size = 2560  # sentences, a fraction (< 1, or 1.0) or 'all' drawn as labelled
    labelled_file: schema.Name | None = None  # labelled sentences (CoNLL) added, or sentence numbers (1-based)
    seed: schema.Count = 0  # seed of the split; fixed so every head sees the same split

    def __post_init__(self):
        if self.encoding != "auto":
            schema.text_encoding("prepare", "encoding", self.encoding)
        if self.categories is not None and (len(set(self.categories)) < len(self.categories) or not self.categories):
            raise schema.SettingError(
                "prepare", "categories", f" {schema.shown(self.categories)}: give each category once"
            )


@schema.settings
class UnlabelledTextParams:
    """Section ``unlabelled_text``."""

    path: schema.Name = "examples/chatbot/unlabelled.txt"  # one sentence per line; a DVC dep, so it must exist
    mode: Literal["none", "add", "replace"] = (
        "none"  # none: not used | add: to the corpus's unlabelled split | replace: it
    )
    encoding: str = "utf-8"  # of the text file; any codec whose newline is the byte 0x0a

    def __post_init__(self):
        schema.text_encoding("unlabelled_text", "encoding", self.encoding, by_line=True)


def read_params(path: str | Path = "params.yaml") -> dict:
    """The whole params file as a dict (an empty file is ``{}``); invalid YAML is one line with its line."""
    try:
        params = schema.read_yaml(path)
    except ValueError as error:
        raise ParamsError(str(error)) from None
    if not isinstance(params, (dict, type(None))):
        raise ParamsError(f"{path}: expected a mapping of sections (prepare: ...), found {schema.shown(params)}")
    return params or {}


def load_section(
    cls: type[T], section: str, path: str | Path = "params.yaml", overrides: dict | None = None, params=None
) -> T:
    """Build ``cls`` from ``params.yaml[section]`` (plus ``overrides``), every key checked; unknown keys are an error.

    ``section`` may be a dotted path into nested mappings (``kl_models.bert_dd_kl``); ``params``, the
    file's contents when the caller has read them already (``path`` then only names it in errors).
    """
    values = read_params(path) if params is None else params
    for depth, key in enumerate(section.split(".")):
        values = values.get(key) if isinstance(values, dict) else None
        if not isinstance(values, (dict, type(None))):
            where = ".".join(section.split(".")[: depth + 1])
            raise ParamsError(f"{path}: {where} is {schema.shown(values)}: expected a mapping of its keys")
    values = dict(values or {}, **(overrides or {}))
    known = {f.name for f in dataclasses.fields(cls)}
    if unknown := sorted(set(values) - known, key=str):
        raise ParamsError(
            f"{path}: unknown key(s) in section '{section}': {', '.join(map(str, unknown))} "
            f"(known: {', '.join(sorted(known))})"
        )
    if missing := [f.name for f in dataclasses.fields(cls) if f.name not in values and f.default == f.default_factory]:
        raise ParamsError(f"{path}: section '{section}' lacks required key(s): {', '.join(missing)}")
    try:
        return cls(**values)
    except ValidationError as error:
        raise ParamsError(f"{path}: {schema.explain(error, cls, section, values)}") from None


def load_seeds(path: str | Path = "params.yaml", params: dict | None = None) -> list[int]:
    """The top-level ``seeds``: a list of distinct integers >= 0 (default [0])."""
    seeds = (read_params(path) if params is None else params).get("seeds", [0])
    valid = isinstance(seeds, list) and seeds and all(type(seed) is int and seed >= 0 for seed in seeds)
    if not valid or len(set(seeds)) < len(seeds):
        raise ParamsError(f"{path}: seeds is {schema.shown(seeds)}: expected a list of distinct integers >= 0")
    return seeds


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
