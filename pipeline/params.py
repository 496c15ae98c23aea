"""Load one section of params.yaml into a frozen dataclass that rejects unknown keys."""

from __future__ import annotations

import dataclasses
import logging
import sys
from pathlib import Path
from typing import TypeVar

import yaml

T = TypeVar("T")


def load_section(cls: type[T], section: str, path: str | Path = "params.yaml",
                 overrides: dict | None = None) -> T:
    """Build ``cls`` from ``params.yaml[section]`` (plus ``overrides``); unknown keys are an error."""
    with open(path, encoding="utf-8") as handle:
        params = yaml.safe_load(handle) or {}
    values = dict(params.get(section) or {})
    values.update(overrides or {})
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise SystemExit(f"{path}: unknown key(s) in section '{section}': {', '.join(unknown)} "
                         f"(known: {', '.join(sorted(known))})")
    return cls(**values)


def setup_logging() -> None:
    """Progress and diagnostics go to stderr."""
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")


def run_main(main) -> None:
    """Run a stage's ``main``; a user-facing error becomes one line on stderr and exit status 1."""
    setup_logging()
    try:
        main()
    except (ValueError, FileNotFoundError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(1) from None
