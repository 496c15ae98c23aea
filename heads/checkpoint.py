"""Self-describing head files: the parameters plus the config that made them, checksummed.

A file is the msgpack (flax.serialization) of
``{"format": "ssner-head", "version": 2, "sha256": hex, "payload": bytes}``,
where ``payload`` is the msgpack of ``{"config": config, "params": params}`` and
``sha256`` its hash, so a flipped byte anywhere in the weights is refused on
load instead of silently changing predictions. No pickle: loading a file never
runs code. Tuples in ``config`` come back as lists (msgpack has no tuple).

No file with a NaN or Inf weight is ever written, and a loaded head must be
one the model code can rebuild: its config names an input kind, at least two
categories and an architecture, and its parameters have exactly the shapes
of that architecture. Every refusal is one line naming the file.
"""

from __future__ import annotations

import hashlib
import os

import jax
import numpy as np
from flax import serialization
from flax.traverse_util import flatten_dict

FORMAT = "ssner-head"
VERSION = 2  # 2: payload + sha256
INPUTS = ("features", "piece_ids")


def _leaves(params) -> dict:
    """``{"Dense_0/kernel": array}`` for every leaf of a params tree."""
    return {"/".join(map(str, key)): value for key, value in flatten_dict(params).items()}


def nonfinite_parameters(params) -> list[str]:
    """Names of the parameters that hold a NaN or an Inf."""
    return [
        name
        for name, value in _leaves(params).items()
        if np.issubdtype(np.asarray(value).dtype, np.inexact) and not np.isfinite(value).all()
    ]


def save_head(path, params, config):
    """Write ``params`` and ``config`` (a msgpack-able dict) to ``path`` atomically.

    Refuses (ValueError, nothing written) parameters holding NaN or Inf.
    """
    path = os.fspath(path)
    state = jax.device_get(serialization.to_state_dict(params))
    bad = nonfinite_parameters(state)
    if bad:
        raise ValueError(
            f"{path}: not written: parameter(s) {', '.join(bad[:5])} hold NaN or Inf "
            "(training diverged; lower the learning rate or check the features)"
        )
    payload = serialization.msgpack_serialize({"config": dict(config), "params": state})
    record = {"format": FORMAT, "version": VERSION, "sha256": hashlib.sha256(payload).hexdigest(), "payload": payload}
    encoded = serialization.msgpack_serialize(record)
    partial = path + ".tmp"
    with open(partial, "wb") as f:
        f.write(encoded)
        f.flush()
        os.fsync(f.fileno())
    os.replace(partial, path)  # a reader sees the old file or the whole new one


def _config_problem(config: dict) -> str | None:
    """Why ``config`` cannot rebuild a head, or None."""
    categories = config.get("categories")
    if (
        not isinstance(categories, list)
        or len(categories) < 2
        or not all(isinstance(c, str) and c for c in categories)
        or len(set(categories)) != len(categories)
    ):
        return f"categories must be a list of two or more distinct names, found {categories!r}"
    if config.get("input") not in INPUTS:
        return f"input must be one of {', '.join(INPUTS)}, found {config.get('input')!r}"
    heads = config.get("heads")
    if not isinstance(heads, dict):
        return "config has no 'heads' architecture"
    hidden = heads.get("hidden")
    if (
        not isinstance(hidden, list)
        or not all(isinstance(w, int) and w > 0 for w in hidden)
        or not isinstance(heads.get("latent_dim"), int)
        or heads["latent_dim"] <= 0
        or not isinstance(heads.get("dropout"), (int, float))
    ):
        return (
            f"heads must give hidden (positive ints), latent_dim and dropout, found "
            f"hidden={hidden!r}, latent_dim={heads.get('latent_dim')!r}, dropout={heads.get('dropout')!r}"
        )
    if config["input"] == "piece_ids":
        if not isinstance(config.get("vocabulary"), list) or not isinstance(config.get("vocab_size"), int):
            return "a piece-id head needs its vocabulary and vocab_size"
        if not isinstance(config.get("embed_dim"), int) or config["embed_dim"] <= 0:
            return f"a piece-id head needs a positive embed_dim, found {config.get('embed_dim')!r}"
    if not isinstance(config.get("features"), dict):
        return "config has no feature fingerprint (the cache it was trained on)"
    return None


def _expected_shapes(config: dict, dim: int | None) -> dict:
    """Parameter shapes of the architecture ``config`` names, for inputs of width ``dim``."""
    from heads.build import model_from_config

    model = model_from_config(config)
    example = np.zeros((1,), np.int32) if config["input"] == "piece_ids" else np.zeros((1, dim), np.float16)
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), example)["params"])
    return {name: tuple(leaf.shape) for name, leaf in _leaves(shapes).items()}


def check_head(path: str, params, config: dict) -> None:
    """Refuse (one-line ValueError) a head whose config or parameters cannot be used."""
    problem = _config_problem(config)
    if problem:
        raise ValueError(f"{path}: malformed head config: {problem}")
    found = {name: tuple(np.shape(value)) for name, value in _leaves(params).items()}
    if not found:
        raise ValueError(f"{path}: malformed head: no parameters")
    bad = nonfinite_parameters(params)
    if bad:
        raise ValueError(f"{path}: parameter(s) {', '.join(bad[:5])} hold NaN or Inf; retrain the head")
    # A feature head's input width is its first kernel's fan-in: take it from the file.
    # A context head records its input width: its first kernel is not the input's.
    first = [shape for name, shape in sorted(found.items()) if name.endswith("kernel") and len(shape) == 2]
    dim = config.get("input_dim") or (first[0][0] if first else 1)
    expected = _expected_shapes(config, dim)
    if found != expected:
        missing = sorted(set(expected) - set(found))
        extra = sorted(set(found) - set(expected))
        wrong = sorted(k for k in set(found) & set(expected) if found[k] != expected[k])
        detail = "; ".join(
            part
            for part in (
                f"missing {', '.join(missing[:3])}" if missing else "",
                f"unknown {', '.join(extra[:3])}" if extra else "",
                ", ".join(f"{k} is {found[k]}, expected {expected[k]}" for k in wrong[:3]),
            )
            if part
        )
        raise ValueError(f"{path}: malformed head: parameters do not fit the architecture its config names ({detail})")


def load_head(path):
    """Read and check a head file written by ``save_head``; returns (params, config).

    Raises ValueError (one line, naming the file) on any file that is not one of
    ours, that is corrupt, or whose config and parameters do not fit together.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise ValueError(f"{path}: is a directory, not a head file")
    with open(path, "rb") as f:
        encoded = f.read()

    def refuse(why):
        return ValueError(f"{path}: not a head file written by this project ({why})")

    try:
        record = serialization.msgpack_restore(encoded)
    except Exception as err:  # msgpack raises several unrelated types on garbage
        raise refuse(f"unreadable msgpack: {type(err).__name__}") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise refuse(f"no '{FORMAT}' format tag")
    if record.get("version") != VERSION:
        raise refuse(f"format version {record.get('version')!r}, expected {VERSION}; retrain the head")
    payload, digest = record.get("payload"), record.get("sha256")
    if not isinstance(payload, bytes) or not isinstance(digest, str):
        raise refuse("no payload or checksum")
    if hashlib.sha256(payload).hexdigest() != digest:
        raise ValueError(f"{path}: corrupt head file: its payload does not match its sha256 checksum")
    try:
        content = serialization.msgpack_restore(payload)
    except Exception as err:
        raise refuse(f"unreadable payload: {type(err).__name__}") from None
    params, config = content.get("params"), content.get("config")
    if not isinstance(params, dict) or not isinstance(config, dict):
        raise refuse("missing params or config")
    check_head(path, params, config)
    return params, config


def head_centroids(config: dict, where: str, dim: int | None = None) -> list | None:
    """The cluster centroids a head's config carries (``heads.clusters``), checked; None for a head without."""
    from features.clusters import centroids_from_record

    records = config.get("centroids")
    if not config.get("heads", {}).get("clusters"):
        return None
    if not isinstance(records, list) or len(records) != len(config["heads"]["clusters"]):
        raise ValueError(f"{where}: the head reads cluster ids but its config holds no centroids for them")
    return [centroids_from_record(record, where, dim) for record in records]


def input_columns(config: dict, feature_dim: int) -> dict:
    """The column groups of a head's inputs and their widths, as ``features.inputs.head_inputs`` builds them."""
    if config["input"] == "piece_ids":
        return {"piece_ids": 1}
    heads = config["heads"]
    columns = {"features": int(feature_dim)}
    if heads.get("shape_flags"):
        columns["shape_flags"] = 24 if heads.get("neighbour_flags") else 8
    if heads.get("word_forms"):
        columns["word_forms"] = 4
    if heads.get("clusters"):
        columns["cluster_ids"] = 3 * len(heads["clusters"])
    if heads.get("char_cnn"):
        from features.chars import CHAR_COLUMNS

        columns["char_ids"] = CHAR_COLUMNS
    return columns


def trained_on(prepared_dir, prepared, cache_path, fingerprint: dict, columns: dict) -> dict:
    """What a head records of the data it was trained on (its config's ``trained_on``)."""
    return {
        "prepared": str(prepared_dir),
        "words_sha256": prepared.meta["words_sha256"],
        "split_sha256": prepared.meta["split_sha256"],
        "categories": list(prepared.categories),
        "cache": str(cache_path),
        "corpus_sha256": fingerprint.get("corpus_sha256"),
        "input_columns": columns,
    }


def check_trained_on(head_path, config: dict, prepared_dir, prepared, cache_path, fingerprint: dict) -> None:
    """Refuse (one line naming both files and the field) a head used with a corpus, split or cache other
    than those it was trained on: another split's test sentences may be sentences it was trained on."""
    from data.prepared_io import disagreement

    record = config.get("trained_on")
    if not isinstance(record, dict):
        raise ValueError(
            f"{head_path}: made by an older version of train (it does not record the corpus, split and cache "
            "it was trained on, so it cannot be checked against them); rerun dvc repro"
        )
    meta = f"{prepared_dir}/meta.json"
    hint = f"the head was trained on {record.get('prepared')}; use that corpus or retrain the head"
    found = {
        "categories": (config.get("categories"), list(prepared.categories)),
        "words_sha256": (record.get("words_sha256"), prepared.meta["words_sha256"]),
        "split_sha256": (record.get("split_sha256"), prepared.meta["split_sha256"]),
    }
    for field, (head_value, corpus_value) in found.items():
        if head_value != corpus_value:
            why = " (its test sentences may be ones the head was trained on)" if field == "split_sha256" else ""
            raise ValueError(disagreement(head_path, meta, field + why, head_value, corpus_value, hint))
    features = config.get("features") or {}
    for field in [*features, *(k for k in fingerprint if k not in features)]:
        if features.get(field) != fingerprint.get(field):
            raise ValueError(
                disagreement(
                    head_path,
                    cache_path,
                    f"the cache's {field}",
                    features.get(field),
                    fingerprint.get(field),
                    f"the head was trained on {record.get('cache')}'s features; use that cache or retrain the head",
                )  # fmt: skip
            )
