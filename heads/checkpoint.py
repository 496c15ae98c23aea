"""Self-describing head files: the parameters plus the config that made them.

A file is the msgpack (flax.serialization) of
``{"format": "ssner-head", "version": 1, "config": config, "params": params}``.
No pickle: loading a file never runs code. Tuples in ``config`` come back as
lists (msgpack has no tuple).
"""

from __future__ import annotations

import os

import jax
from flax import serialization

FORMAT = "ssner-head"
VERSION = 1


def save_head(path, params, config):
    """Write ``params`` and ``config`` (a msgpack-able dict) to ``path`` atomically."""
    path = os.fspath(path)
    record = {
        "format": FORMAT,
        "version": VERSION,
        "config": dict(config),
        "params": jax.device_get(serialization.to_state_dict(params)),
    }
    encoded = serialization.msgpack_serialize(record)
    partial = path + ".tmp"
    with open(partial, "wb") as f:
        f.write(encoded)
        f.flush()
        os.fsync(f.fileno())
    os.replace(partial, path)  # a reader sees the old file or the whole new one


def load_head(path):
    """Read a head file written by ``save_head``; returns (params, config).

    Raises ValueError on any file that is not one of ours.
    """
    path = os.fspath(path)
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
        raise refuse(f"format version {record.get('version')!r}, expected {VERSION}")
    params, config = record.get("params"), record.get("config")
    if not isinstance(params, dict) or not isinstance(config, dict):
        raise refuse("missing params or config")
    return params, config
